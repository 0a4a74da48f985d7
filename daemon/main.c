/* main - a2ad: command line, start-up, the signal-driven main loop, and the
 * graceful stop. Signal handlers only set flags; this loop acts on them. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/auth.h"
#include "config.h"
#include "configtest.h"
#include "front/http.h"
#include "delivery/hu.h"
#include "log.h"
#include "front/metrics.h"
#include "agents/plugins.h"
#include "delivery/push.h"
#include "store/store.h"
#include "store/store_pg.h"
#include "store/cluster.h"
#include "core/rpc.h"
#include "front/replay.h"
#include "agents/runner.h"
#include "front/streams.h"
#include "front/tls.h"
#include "core/tenant.h"
#include "core/tasks.h"
#include "util.h"
#include "delivery/guard.h"
#include "delivery/sign.h"
#include "delivery/webhooks.h"
#include "agents/workers.h"

#define A2AD_VERSION "0.1.0"

static volatile sig_atomic_t stop_requests;
static volatile sig_atomic_t reload_requested;

static void on_stop_signal(int sig) {
    (void)sig;
    /* A second TERM/INT during the graceful stop means "now". */
    if (++stop_requests >= 2) {
        static const char msg[] = "a2ad: second stop signal, exiting at once\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        _exit(1);
    }
}

static void on_hup(int sig) {
    (void)sig;
    reload_requested = 1;
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    /* A file-size limit must fail the write (the store reports it), not
     * kill the daemon. */
    sigaction(SIGXFSZ, &sa, NULL);
}

/* systemd's readiness protocol without libsystemd: one datagram to
 * $NOTIFY_SOCKET ('@' = abstract namespace). */
static void sd_notify_text(const char *text) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    memcpy(sun.sun_path, path, n);
    if (sun.sun_path[0] == '@') sun.sun_path[0] = '\0';
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (sendto(fd, text, strlen(text), MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0)
        log_debug("sd_notify: %s", strerror(errno));
    close(fd);
}

static void usage(FILE *to) {
    fprintf(to,
            "usage: a2ad [-c FILE] [-t [-v]] [-V] [-h]\n"
            "       a2ad --hash-token [NAME] < token.txt\n"
            "  -c, --config FILE  configuration file (default /etc/a2ad/a2ad.conf)\n"
            "  -t, --test         check the configuration, load and initialise the plugins\n"
            "                     it names, check the database path and the port, then exit\n"
            "  -v, --verbose      with -t: print the effective configuration\n"
            "  -V, --version      print the version and exit\n"
            "  -h, --help         print this help and exit\n"
            "  --hash-token [NAME]  read a token on stdin, print its line for\n"
            "           [server] auth_tokens_file (NAME defaults to client)\n"
            "See a2ad(8) and a2ad.conf(5).\n");
}

/* Keys that only a restart applies: logged by name when a reload finds
 * them changed, so the operator knows the reload did not do it. */
static void note_restart_keys(const struct config *a, const struct config *b) {
#define STR_CHANGED(f) (strcmp(a->f ? a->f : "", b->f ? b->f : "") != 0)
    const struct {
        const char *key;
        bool changed;
    } keys[] = {
        {"[server] listen", STR_CHANGED(listen)},
        {"[server] port", a->port != b->port},
        {"[server] http_threads", a->http_threads != b->http_threads},
        {"[server] max_connections", a->max_connections != b->max_connections},
        {"[server] max_body_bytes", a->max_body_bytes != b->max_body_bytes},
        {"[server] connection_timeout_s", a->connection_timeout_s != b->connection_timeout_s},
        {"[server] public_url", STR_CHANGED(public_url)},
        {"[server] max_connections_per_ip", a->max_connections_per_ip != b->max_connections_per_ip},
        {"[server] request_timeout_s", a->request_timeout_s != b->request_timeout_s},
        {"[server] rate_limit_per_s", a->rate_limit_per_s != b->rate_limit_per_s},
        {"[server] rate_burst", a->rate_burst != b->rate_burst},
        {"[tasks] max_json_depth", a->max_json_depth != b->max_json_depth},
        {"[tasks] dsn", STR_CHANGED(pg_dsn)},
        {"[tasks] password_file", STR_CHANGED(pg_password_file)},
        {"[tasks] lease_s", a->lease_s != b->lease_s},
        {"[tasks] cluster_connections", a->cluster_connections != b->cluster_connections},
        {"[tasks] cluster_timeout_ms", a->cluster_timeout_ms != b->cluster_timeout_ms},
        {"[tasks] share_jobs", a->share_jobs != b->share_jobs},
        {"[tasks] share_after_ms", a->share_after_ms != b->share_after_ms},
        {"[server] node_name", STR_CHANGED(node_name)},
        {"[tasks] write_timeout_ms", a->write_timeout_ms != b->write_timeout_ms},
        {"[log] client_lines_per_s", a->log_client_lines_per_s != b->log_client_lines_per_s},
        /* The files themselves are re-read by tls_reload; on <-> off is not. */
        {"[server] tls_cert_file (TLS on or off)",
         !(a->tls_cert_file && *a->tls_cert_file) != !(b->tls_cert_file && *b->tls_cert_file)},
        /* Credentials are read-only after start-up (HTTP threads read them
         * without a lock); never echoed, only named. */
        /* Tokens (file, inline hashes, plaintext) reload with auth_reload;
         * the JWT keys are read at start only. */
        {"[server] auth_jwt_hs256_secret_file", STR_CHANGED(auth_jwt_hs256_secret_file)},
        {"[server] auth_jwt_jwks_file", STR_CHANGED(auth_jwt_jwks_file)},
        {"[server] allow_unauthenticated", a->allow_unauthenticated != b->allow_unauthenticated},
        {"[server] admin_tokens", STR_CHANGED(admin_tokens)},
        {"[server] ui", a->ui_enabled != b->ui_enabled},
        {"[server] stream_replay_bytes", a->stream_replay_bytes != b->stream_replay_bytes},
        {"[log] format", STR_CHANGED(log_format)},
        {"[server] stream_buffer_bytes", a->stream_buffer_bytes != b->stream_buffer_bytes},
        {"[server] stream_keepalive_s", a->stream_keepalive_s != b->stream_keepalive_s},
        {"[workers] threads", a->worker_threads != b->worker_threads},
        {"[tasks] store", STR_CHANGED(store)},
        {"[tasks] path", STR_CHANGED(db_path)},
        {"[tasks] sync", STR_CHANGED(db_sync)},
        {"[tasks] write_queue", a->write_queue != b->write_queue},
        {"[tasks] lock_timeout_ms", a->lock_timeout_ms != b->lock_timeout_ms},
        {"[tasks] cache_kib", a->cache_kib != b->cache_kib},
        {"[webhooks] timeout_ms", a->webhook_timeout_ms != b->webhook_timeout_ms},
        {"[webhooks] connect_timeout_ms", a->webhook_connect_timeout_ms != b->webhook_connect_timeout_ms},
        {"[webhooks] max_attempts", a->webhook_max_attempts != b->webhook_max_attempts},
        {"[webhooks] backoff_initial_ms", a->webhook_backoff_initial_ms != b->webhook_backoff_initial_ms},
        {"[webhooks] backoff_max_ms", a->webhook_backoff_max_ms != b->webhook_backoff_max_ms},
        {"[webhooks] max_in_flight", a->webhook_max_in_flight != b->webhook_max_in_flight},
        {"[webhooks] max_pending", a->webhook_max_pending != b->webhook_max_pending},
        {"[webhooks] max_age_s", a->webhook_max_age_s != b->webhook_max_age_s},
        {"[webhooks] max_configs_per_task", a->webhook_max_configs != b->webhook_max_configs},
        {"[webhooks] enabled", a->webhooks_enabled != b->webhooks_enabled},
        {"[webhooks] allow_networks", STR_CHANGED(webhook_allow_networks)},
        {"[webhooks] proxy", STR_CHANGED(webhook_proxy)},
        {"[webhooks] ca_file", STR_CHANGED(webhook_ca_file)},
        {"[webhooks] ca_path", STR_CHANGED(webhook_ca_path)},
        {"[webhooks] signing_secret_file", STR_CHANGED(webhook_signing_secret_file)},
        {"[webhooks] max_in_flight_per_host", a->webhook_max_in_flight_per_host != b->webhook_max_in_flight_per_host},
        {"[webhooks] breaker_failures", a->webhook_breaker_failures != b->webhook_breaker_failures},
        {"[webhooks] breaker_cooldown_ms", a->webhook_breaker_cooldown_ms != b->webhook_breaker_cooldown_ms},
        {"[webhooks] max_pending_bytes", a->webhook_max_pending_bytes != b->webhook_max_pending_bytes},
        {"[webhooks] max_outbox_bytes", a->webhook_max_outbox_bytes != b->webhook_max_outbox_bytes},
    };
#undef STR_CHANGED
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].changed)
            log_warn("reload: %s changed; it takes effect at the next restart", keys[i].key);
    for (const struct agent_config *n = b->agents; n; n = n->next) {
        const struct agent_config *o = config_agent(a, n->name);
        if ((o ? o->hu_min_importance : -1) != n->hu_min_importance)
            log_warn("reload: [agent.%s] hu_min_importance changed; it takes effect at the next "
                     "restart",
                     n->name);
    }
}

/* The SSRF guard's allowlist and the signing secrets, before the webhook
 * thread starts. */
static a2ad_status delivery_setup(const struct config *cfg) {
    char err[512];
    if (guard_set_allow(cfg->webhook_allow_networks) != A2AD_OK) return A2AD_ERR_CONFIG;
    a2ad_status st = sign_load(cfg->webhook_signing_secret_file, err, sizeof err);
    if (st != A2AD_OK) {
        log_error("%s", err);
        return st;
    }
    if (!*cfg->webhook_allow_networks)
        log_info("webhooks: internal addresses (loopback, private, link-local, ...) are refused; "
                 "[webhooks] allow_networks lists exceptions");
    else
        log_info("webhooks: internal addresses are refused except %s ([webhooks] allow_networks)",
                 cfg->webhook_allow_networks);
    if (sign_enabled()) log_info("webhooks: signed (Standard Webhooks, webhook-signature)");
    return A2AD_OK;
}

/* "echo 1.0.0 (FILE), vers 2 (FILE)" for the reload's log line. */
static void agent_line(const struct agent *a, void *arg) {
    char *out = arg;
    size_t n = strlen(out);
    if (n + 1 < 1024)
        snprintf(out + n, 1024 - n, "%s%s %s (%s)", n ? ", " : "", a->desc.name,
                 a->desc.version && a->desc.version[0] ? a->desc.version : "(no version)", a->path);
}

/* SIGHUP: read the file again; refuse it whole on any error, else apply
 * what can change live and name what needs a restart. cfg stays the
 * configuration the daemon started with, except for the live scalars,
 * which follow the file. */
static void reload(const char *path, struct config *cfg) {
    struct config fresh;
    char err[512];
    config_defaults(&fresh);
    sd_notify_text("RELOADING=1");
    if (config_load(&fresh, path, err, sizeof err) != A2AD_OK) {
        log_error("reload refused: %s; the running configuration stays", err);
        config_free(&fresh);
        sd_notify_text("READY=1");
        return;
    }
    /* Credentials first: a bad tokens file refuses the whole reload, before
     * anything else changed. */
    if (auth_reload(&fresh, err, sizeof err) != A2AD_OK) {
        log_error("reload refused: %s; the running configuration stays", err);
        auth_wipe(fresh.auth_bearer_tokens);
        config_free(&fresh);
        sd_notify_text("READY=1");
        return;
    }
    auth_wipe(fresh.auth_bearer_tokens);
    log_info("reload: %s read; credentials in force: %zu; applying the rest", path,
             auth_count());
    note_restart_keys(cfg, &fresh);
    tls_reload(&fresh);
    cfg->log_level = fresh.log_level;
    log_set_level(fresh.log_level);
    tasks_init(fresh.retention_s, fresh.max_tasks);
    cfg->retention_s = fresh.retention_s;
    cfg->max_tasks = fresh.max_tasks;
    workers_set_queue_length(fresh.queue_length);
    cfg->queue_length = fresh.queue_length;
    cfg->shutdown_grace_s = fresh.shutdown_grace_s;
    cfg->webhook_flush_s = fresh.webhook_flush_s;
    /* Agents: files, options, limits, default_agent. */
    a2ad_status st = plugins_reload(&fresh);
    if (st != A2AD_OK)
        log_error("reload: agents not fully applied (%s); see the lines above",
                  a2ad_status_name(st));
    char agents[1024] = "";
    plugins_each(agent_line, agents);
    log_info("reload: %s applied (credentials, log level, limits, agents): %s", path,
             agents[0] ? agents : "no agents");
    config_free(&fresh);
    sd_notify_text("READY=1");
}

int main(int argc, char **argv) {
    const char *path = "/etc/a2ad/a2ad.conf";
    int test_only = 0, verbose = 0, opt;
    if (argc >= 2 && strcmp(argv[1], "--hash-token") == 0) {
        if (argc > 3) {
            usage(stderr);
            return 2;
        }
        return auth_hash_token_main(argc == 3 ? argv[2] : NULL, stdin, stdout, stderr);
    }
    static const struct option long_opts[] = {
        {"config", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},      {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    while ((opt = getopt_long(argc, argv, "c:tvVh", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': test_only = 1; break;
        case 'v': verbose = 1; break;
        case 'V': printf("a2ad %s (plugin ABI %u)\n", A2AD_VERSION, A2AD_ABI_MAJOR); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "a2ad: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (verbose && !test_only) {
        fprintf(stderr, "a2ad: -v only goes with -t\n");
        usage(stderr);
        return 2;
    }

    struct config cfg;
    char err[512];
    config_defaults(&cfg);
    a2ad_status st = config_load(&cfg, path, err, sizeof err);
    if (st != A2AD_OK) {
        fprintf(stderr, "a2ad: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    log_set_json(strcmp(cfg.log_format, "json") == 0);
    /* Credentials are hashed now; the plaintext of the older key goes. */
    st = auth_init(&cfg, err, sizeof err);
    if (st != A2AD_OK) {
        fprintf(stderr, "a2ad: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    if (test_only) {
        /* Only the problems; -v shows each agent loading too. */
        log_set_level(verbose ? A2AD_LOG_INFO : A2AD_LOG_WARNING);
        int rc = check_config(&cfg, path, verbose, workers_host());
        auth_shutdown();
        config_free(&cfg);
        return rc;
    }
    auth_wipe(cfg.auth_bearer_tokens);
    log_set_level(cfg.log_level);
    uint64_t t0 = util_now_ms();

    /* libcurl's global state must be set up while we are single-threaded. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("cannot initialise libcurl");
        return 1;
    }
    install_signals();
    runner_install_crash_handler();
    tasks_init(cfg.retention_s, cfg.max_tasks);
    tasks_set_max_artifact_bytes(cfg.max_artifact_bytes);
    push_init(cfg.webhook_max_configs);
    auth_register_owner_slot();
    log_info("auth: %s", auth_enabled() ? "credentials required on every JSON-RPC method"
                                         : "no credentials configured: open to every caller");
    streams_init(cfg.stream_buffer_bytes, cfg.stream_keepalive_s);
    replay_init(cfg.stream_replay_bytes);
    tenant_init();
    struct rpc_settings rs = {.push_enabled = cfg.webhooks_enabled};
    rpc_init(&rs);
    hu_init(&cfg);
    /* The durable store: its hook runs after every observer (tasks.c). */
    bool pg = strcmp(cfg.store, "postgresql") == 0;
    bool durable = strcmp(cfg.store, "sqlite") == 0 || pg;
    if (durable && (pg ? store_pg_open(&cfg) : store_open(&cfg)) != A2AD_OK) {
        log_error(pg ? "start-up stopped: fix [tasks] dsn or the database (or set [tasks] store "
                       "= memory)"
                     : "start-up stopped: fix [tasks] path (or set [tasks] store = memory)");
        tasks_shutdown();
        hu_shutdown();
        auth_shutdown();
        curl_global_cleanup();
        config_free(&cfg);
        return 1;
    }
    if (pg) cluster_init(); /* its observer, before any task exists */
    struct webhooks_options wo = {
        .timeout_ms = cfg.webhook_timeout_ms,
        .connect_timeout_ms = cfg.webhook_connect_timeout_ms,
        .max_attempts = cfg.webhook_max_attempts,
        .backoff_initial_ms = cfg.webhook_backoff_initial_ms,
        .backoff_max_ms = cfg.webhook_backoff_max_ms,
        .max_in_flight = cfg.webhook_max_in_flight,
        .max_pending = cfg.webhook_max_pending,
        .max_age_s = cfg.webhook_max_age_s,
        .max_in_flight_per_host = cfg.webhook_max_in_flight_per_host,
        .breaker_failures = cfg.webhook_breaker_failures,
        .breaker_cooldown_ms = cfg.webhook_breaker_cooldown_ms,
        .max_pending_bytes = cfg.webhook_max_pending_bytes,
        .max_outbox_bytes = cfg.webhook_max_outbox_bytes,
        .proxy = cfg.webhook_proxy,
        .ca_file = cfg.webhook_ca_file,
        .ca_path = cfg.webhook_ca_path,
    };
    int rc = 1;
    bool plugins_loaded = false;
    if (delivery_setup(&cfg) != A2AD_OK) goto out;
    if (webhooks_start(&wo) != A2AD_OK) {
        log_error("cannot start the webhook thread");
        goto out;
    }
    if (plugins_load(&cfg, workers_host()) != A2AD_OK) {
        log_error("start-up stopped: fix the plugin problems above (or set [plugins] errors = skip)");
        goto out_webhooks;
    }
    plugins_loaded = true;
    metrics_init();
    /* Half the webhook queue: the other half absorbs what running jobs
     * still emit while new ones wait. */
    workers_set_webhook_high_water(cfg.webhook_max_pending > 1 ? cfg.webhook_max_pending / 2 : 1);
    if (workers_start(cfg.worker_threads, cfg.queue_length) != A2AD_OK) goto out_webhooks;
    workers_keep_queued_at_stop(durable);
    if (durable && (pg ? store_pg_recover() : store_recover()) != A2AD_OK) goto out_workers;
    if (pg && cluster_start(&cfg) != A2AD_OK) goto out_workers;
    if (http_start(&cfg) != A2AD_OK) goto out_workers;
    /* After recovery and HTTP: a plugin dropped in from now on loads live. */
    plugins_watch_start();

    log_info("a2ad %s ready in %llu ms: %zu agents, store %s", A2AD_VERSION,
             (unsigned long long)(util_now_ms() - t0), plugins_count(), cfg.store);
    sd_notify_text("READY=1");

    uint64_t last_expire = util_now_ms();
    while (!stop_requests) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL); /* a signal cuts the nap short */
        if (reload_requested) {
            reload_requested = 0;
            reload(path, &cfg);
        }
        if (util_now_ms() - last_expire >= 1000) {
            streams_tick();
            size_t n = tasks_expire();
            if (n) log_debug("expired %zu finished tasks", n);
            last_expire = util_now_ms();
        }
    }

    sd_notify_text("STOPPING=1");
    http_quiesce(); /* before the line: /readyz says "stopping" once it is logged */
    log_info("stopping: no new connections; running jobs get %u s", cfg.shutdown_grace_s);
    plugins_watch_stop();
    rc = 0;
out_workers: {
    plugins_watch_stop();
    size_t busy = workers_stop(cfg.shutdown_grace_s);
    http_stop();
    if (busy) {
        /* Plugin code is still running on those threads: unloading it now
         * would pull the code from under them. Exit without unloading. */
        log_warn("%zu plugin jobs never returned; exiting without unloading plugins", busy);
        plugins_loaded = false;
    }
}
out_webhooks:
    webhooks_stop(cfg.webhook_flush_s * 1000u);
    {
        struct webhooks_stats ws;
        webhooks_get_stats(&ws);
        log_info("webhooks: %llu delivered, %llu retried, %llu given up",
                 (unsigned long long)ws.delivered, (unsigned long long)ws.retried,
                 (unsigned long long)ws.given_up);
    }
    /* After webhooks: their last outcomes are written too. */
    cluster_stop();
    store_close();
    store_pg_close();
    if (plugins_loaded) {
        plugins_unload();
    } else if (rc == 0) {
        /* Plugin code still runs on detached threads and may call the host
         * (tasks, log, store) at any moment: freeing what it reaches would
         * crash the process on its way out. What had to be written is. */
        log_info("stopped (without tearing down under the jobs that never returned)");
        _exit(0);
    }
out:
    cluster_stop();
    store_close();
    store_pg_close();
    sign_unload();
    tasks_shutdown();
    hu_shutdown();
    rpc_shutdown();
    auth_shutdown();
    curl_global_cleanup();
    config_free(&cfg);
    if (rc == 0) log_info("stopped");
    return rc;
}
