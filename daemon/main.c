/* main - a2ad: command line, start-up, the signal-driven main loop, and the
 * graceful stop. Signal handlers only set flags; this loop acts on them. */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "http.h"
#include "hu.h"
#include "log.h"
#include "plugins.h"
#include "push.h"
#include "store.h"
#include "store_pg.h"
#include "rpc.h"
#include "replay.h"
#include "streams.h"
#include "tasks.h"
#include "util.h"
#include "webhooks.h"
#include "workers.h"

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
            "  -c FILE  configuration file (default /etc/a2ad/a2ad.conf)\n"
            "  -t       check the configuration and the plugins it names, then exit\n"
            "  -v       with -t: print the effective configuration\n"
            "  -V       print the version and exit\n"
            "  --hash-token [NAME]  read a token on stdin, print its line for\n"
            "           [server] auth_tokens_file (NAME defaults to client)\n");
}

/* -t: parse the config and check each plugin file without running it. */
static int check_only(const struct config *cfg, const char *path, int verbose) {
    int bad = 0;
    if (verbose) config_dump(cfg, stdout);
    if (cfg->plugin_load && *cfg->plugin_load) {
        char *list = strdup(cfg->plugin_load);
        for (char *save = NULL, *name = strtok_r(list, ", ", &save); name;
             name = strtok_r(NULL, ", ", &save)) {
            char file[4096], err[512];
            snprintf(file, sizeof file, "%s/%s.so", cfg->plugin_dir, name);
            if (plugins_check_file(file, err, sizeof err) != A2AD_OK) {
                fprintf(stderr, "%s\n", err);
                bad++;
            }
        }
        free(list);
    }
    if (bad) {
        fprintf(stderr, "%s: %d plugin(s) would be refused\n", path, bad);
        return 1;
    }
    printf("%s: configuration ok\n", path);
    return 0;
}

static void reload(const char *path, struct config *cfg) {
    struct config fresh;
    char err[512];
    config_defaults(&fresh);
    sd_notify_text("RELOADING=1");
    if (config_load(&fresh, path, err, sizeof err) != A2AD_OK) {
        log_error("reload: %s; keeping the running configuration", err);
    } else {
        cfg->log_level = fresh.log_level;
        log_set_level(fresh.log_level);
        log_write(A2AD_LOG_INFO, NULL,
                  "reload: log level applied; other settings take effect at the next restart");
    }
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
    while ((opt = getopt(argc, argv, "c:tvVh")) != -1) {
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
    /* Credentials are hashed now; the plaintext of the older key goes. */
    st = auth_init(&cfg, err, sizeof err);
    if (st != A2AD_OK) {
        fprintf(stderr, "a2ad: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    if (test_only) {
        int rc = check_only(&cfg, path, verbose);
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
    tasks_init(cfg.retention_s, cfg.max_tasks);
    push_init(cfg.webhook_max_configs);
    auth_register_owner_slot();
    log_info("auth: %s", auth_enabled() ? "credentials required on every JSON-RPC method"
                                         : "no credentials configured: open to every caller");
    streams_init(cfg.stream_buffer_bytes, cfg.stream_keepalive_s);
    replay_init(cfg.stream_replay_bytes);
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
    struct webhooks_options wo = {
        .timeout_ms = cfg.webhook_timeout_ms,
        .connect_timeout_ms = cfg.webhook_connect_timeout_ms,
        .max_attempts = cfg.webhook_max_attempts,
        .backoff_initial_ms = cfg.webhook_backoff_initial_ms,
        .backoff_max_ms = cfg.webhook_backoff_max_ms,
        .max_in_flight = cfg.webhook_max_in_flight,
        .max_pending = cfg.webhook_max_pending,
        .max_age_s = cfg.webhook_max_age_s,
    };
    int rc = 1;
    bool plugins_loaded = false;
    if (webhooks_start(&wo) != A2AD_OK) {
        log_error("cannot start the webhook thread");
        goto out;
    }
    if (plugins_load(&cfg, workers_host()) != A2AD_OK) {
        log_error("start-up stopped: fix the plugin problems above (or set [plugins] errors = skip)");
        goto out_webhooks;
    }
    plugins_loaded = true;
    /* Half the webhook queue: the other half absorbs what running jobs
     * still emit while new ones wait. */
    workers_set_webhook_high_water(cfg.webhook_max_pending > 1 ? cfg.webhook_max_pending / 2 : 1);
    if (workers_start(cfg.worker_threads, cfg.queue_length) != A2AD_OK) goto out_webhooks;
    workers_keep_queued_at_stop(durable);
    if (durable && (pg ? store_pg_recover() : store_recover()) != A2AD_OK) goto out_workers;
    if (http_start(&cfg) != A2AD_OK) goto out_workers;

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

    log_info("stopping: no new connections; running jobs get %u s", cfg.shutdown_grace_s);
    sd_notify_text("STOPPING=1");
    http_quiesce();
    rc = 0;
out_workers: {
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
    store_close();
    store_pg_close();
    if (plugins_loaded) plugins_unload();
out:
    store_close();
    store_pg_close();
    tasks_shutdown();
    hu_shutdown();
    rpc_shutdown();
    auth_shutdown();
    curl_global_cleanup();
    config_free(&cfg);
    if (rc == 0) log_info("stopped");
    return rc;
}
