/* Tests of daemon/config.c: defaults, the shipped file, every key, errors
 * with their FILE:LINE, agent sections, config_dump round trips. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

Suite *config_suite(void);

static char tmpdir[64];

/* Unchecked fixtures run in the runner process, so the directory is removed
 * even when a test fails or crashes in its forked child. */
static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/a2ad-config-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        abort();
    }
}

static void teardown(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(tmpdir);
}

/* Path of tmpdir/name, in a buffer that stays valid for the test. */
static const char *tmp_path(const char *name) {
    static char paths[8][512];
    static unsigned next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", tmpdir, name);
    return p;
}

static const char *write_conf(const char *name, const char *text) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* Load text over the defaults; the caller frees cfg. */
static a2ad_status load_text(struct config *cfg, const char *text, char *err, size_t errlen,
                             const char **path_out) {
    const char *path = write_conf("test.conf", text);
    if (path_out) *path_out = path;
    config_defaults(cfg);
    return config_load(cfg, path, err, errlen);
}

static void load_ok(struct config *cfg, const char *text) {
    char err[1024];
    a2ad_status st = load_text(cfg, text, err, sizeof err, NULL);
    ck_assert_msg(st == A2AD_OK, "status %d: %s\n--- file:\n%s", (int)st, err, text);
}

/* text must fail with A2AD_ERR_CONFIG, "FILE:LINE: " and needle in the message. */
static void expect_error_at(const char *text, unsigned line, const char *needle) {
    struct config cfg;
    char err[1024];
    const char *path;
    a2ad_status st = load_text(&cfg, text, err, sizeof err, &path);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s:%u: ", path, line);
    ck_assert_msg(st == A2AD_ERR_CONFIG, "status %d (%s) for:\n%s", (int)st, err, text);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "want prefix \"%s\", got \"%s\"",
                  prefix, err);
    ck_assert_msg(strstr(err, needle) != NULL, "want \"%s\" in \"%s\"", needle, err);
    config_free(&cfg);
}

/* Cross-field errors carry "FILE: " without a line. */
static void expect_file_error(const char *text, const char *needle) {
    struct config cfg;
    char err[1024];
    const char *path;
    a2ad_status st = load_text(&cfg, text, err, sizeof err, &path);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s: ", path);
    ck_assert_msg(st == A2AD_ERR_CONFIG, "status %d (%s)", (int)st, err);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "want prefix \"%s\", got \"%s\"",
                  prefix, err);
    ck_assert_msg(strstr(err, needle) != NULL, "want \"%s\" in \"%s\"", needle, err);
    config_free(&cfg);
}

static void assert_same(const struct config *a, const struct config *b) {
    ck_assert_str_eq(a->listen, b->listen);
    ck_assert_uint_eq(a->port, b->port);
    ck_assert_uint_eq(a->http_threads, b->http_threads);
    ck_assert_uint_eq(a->max_connections, b->max_connections);
    ck_assert_uint_eq(a->max_body_bytes, b->max_body_bytes);
    ck_assert_uint_eq(a->connection_timeout_s, b->connection_timeout_s);
    ck_assert_str_eq(a->public_url, b->public_url);
    ck_assert_str_eq(a->default_agent, b->default_agent);
    ck_assert_uint_eq(a->worker_threads, b->worker_threads);
    ck_assert_uint_eq(a->queue_length, b->queue_length);
    ck_assert_uint_eq(a->max_duration_s, b->max_duration_s);
    ck_assert_uint_eq(a->shutdown_grace_s, b->shutdown_grace_s);
    ck_assert_str_eq(a->plugin_dir, b->plugin_dir);
    ck_assert_str_eq(a->plugin_load, b->plugin_load);
    ck_assert_int_eq(a->plugin_errors_fatal, b->plugin_errors_fatal);
    ck_assert_str_eq(a->store, b->store);
    ck_assert_str_eq(a->db_path, b->db_path);
    ck_assert_str_eq(a->db_sync, b->db_sync);
    ck_assert_uint_eq(a->write_queue, b->write_queue);
    ck_assert_uint_eq(a->lock_timeout_ms, b->lock_timeout_ms);
    ck_assert_uint_eq(a->cache_kib, b->cache_kib);
    ck_assert_uint_eq(a->webhook_max_age_s, b->webhook_max_age_s);
    ck_assert_uint_eq(a->retention_s, b->retention_s);
    ck_assert_uint_eq(a->max_tasks, b->max_tasks);
    ck_assert_uint_eq(a->webhook_timeout_ms, b->webhook_timeout_ms);
    ck_assert_uint_eq(a->webhook_connect_timeout_ms, b->webhook_connect_timeout_ms);
    ck_assert_uint_eq(a->webhook_max_attempts, b->webhook_max_attempts);
    ck_assert_uint_eq(a->webhook_backoff_initial_ms, b->webhook_backoff_initial_ms);
    ck_assert_uint_eq(a->webhook_backoff_max_ms, b->webhook_backoff_max_ms);
    ck_assert_uint_eq(a->webhook_max_in_flight, b->webhook_max_in_flight);
    ck_assert_uint_eq(a->webhook_max_pending, b->webhook_max_pending);
    ck_assert_uint_eq(a->webhook_flush_s, b->webhook_flush_s);
    ck_assert_int_eq(a->log_level, b->log_level);
    const struct agent_config *x = a->agents, *y = b->agents;
    for (; x && y; x = x->next, y = y->next) {
        ck_assert_str_eq(x->name, y->name);
        ck_assert_uint_eq(x->max_duration_s, y->max_duration_s);
        ck_assert_int_eq(x->hu_min_importance, y->hu_min_importance);
        ck_assert_uint_eq(x->n_opts, y->n_opts);
        for (size_t i = 0; i < x->n_opts; i++) {
            ck_assert_str_eq(x->opts[i].key, y->opts[i].key);
            ck_assert_str_eq(x->opts[i].value, y->opts[i].value);
        }
    }
    ck_assert_ptr_eq(x, NULL);
    ck_assert_ptr_eq(y, NULL);
}

/* A file setting every key to something other than its default. */
static const char every_key[] =
    "[server]\n"
    "listen = ::1\n"
    "port = 0\n"
    "http_threads = 8\n"
    "max_connections = 50\n"
    "max_body_bytes = 2M\n"
    "connection_timeout_s = 90\n"
    "public_url = https://agents.example.com/a2a\n"
    "default_agent = echo\n"
    "\n"
    "[workers]\n"
    "threads = 3\n"
    "queue_length = 77\n"
    "max_duration_s = 120\n"
    "shutdown_grace_s = 0\n"
    "\n"
    "[plugins]\n"
    "dir = /opt/a2ad/plugins\n"
    "load = echo, processor\n"
    "errors = skip\n"
    "\n"
    "[tasks]\n"
    "store = memory\n"
    "path = /srv/a2ad/tasks.db\n"
    "sync = normal\n"
    "write_queue = 50\n"
    "lock_timeout_ms = 250\n"
    "cache_kib = 4096\n"
    "retention_s = 0\n"
    "max_tasks = 5\n"
    "\n"
    "[webhooks]\n"
    "timeout_ms = 20000\n"
    "connect_timeout_ms = 1500\n"
    "max_attempts = 1\n"
    "backoff_initial_ms = 100\n"
    "backoff_max_ms = 200\n"
    "max_in_flight = 2\n"
    "max_pending = 10\n"
    "flush_s = 0\n"
    "max_age_s = 600\n"
    "\n"
    "[log]\n"
    "level = debug\n"
    "\n"
    "[agent.processor]\n"
    "step_ms = 300\n"
    "max_duration_s = 60\n"
    "mode = fast\n"
    "\n"
    "[agent.threaded]\n"
    "threads = 4\n";

START_TEST(test_defaults) {
    struct config c;
    config_defaults(&c);
    ck_assert_str_eq(c.listen, "127.0.0.1");
    ck_assert_uint_eq(c.port, 8080);
    ck_assert_uint_eq(c.http_threads, 2);
    ck_assert_uint_eq(c.max_connections, 1024);
    ck_assert_uint_eq(c.max_body_bytes, 1024 * 1024);
    ck_assert_uint_eq(c.connection_timeout_s, 30);
    ck_assert_str_eq(c.public_url, "");
    ck_assert_str_eq(c.default_agent, "");
    ck_assert_uint_eq(c.worker_threads, 0);
    ck_assert_uint_eq(c.queue_length, 10000);
    ck_assert_uint_eq(c.max_duration_s, 3600);
    ck_assert_uint_eq(c.shutdown_grace_s, 30);
    ck_assert_str_eq(c.plugin_dir, "plugins");
    ck_assert_str_eq(c.plugin_load, "");
    ck_assert(c.plugin_errors_fatal);
    ck_assert_str_eq(c.store, "sqlite");
    ck_assert_str_eq(c.db_path, "/var/lib/a2ad/a2ad.db");
    ck_assert_str_eq(c.db_sync, "full");
    ck_assert_uint_eq(c.write_queue, 10000);
    ck_assert_uint_eq(c.lock_timeout_ms, 5000);
    ck_assert_uint_eq(c.cache_kib, 128);
    ck_assert_uint_eq(c.webhook_max_age_s, 86400);
    ck_assert_uint_eq(c.retention_s, 3600);
    ck_assert_uint_eq(c.max_tasks, 100000);
    ck_assert_uint_eq(c.webhook_timeout_ms, 10000);
    ck_assert_uint_eq(c.webhook_connect_timeout_ms, 3000);
    ck_assert_uint_eq(c.webhook_max_attempts, 6);
    ck_assert_uint_eq(c.webhook_backoff_initial_ms, 500);
    ck_assert_uint_eq(c.webhook_backoff_max_ms, 30000);
    ck_assert_uint_eq(c.webhook_max_in_flight, 64);
    ck_assert_uint_eq(c.webhook_max_pending, 100000);
    ck_assert_uint_eq(c.webhook_flush_s, 10);
    ck_assert_int_eq(c.log_level, A2AD_LOG_INFO);
    ck_assert_ptr_eq(c.agents, NULL);
    ck_assert_ptr_eq(config_agent(&c, "processor"), NULL);
    config_free(&c);
}
END_TEST

START_TEST(test_empty_file_keeps_defaults) {
    struct config c, d;
    load_ok(&c, "");
    config_defaults(&d);
    assert_same(&c, &d);
    config_free(&c);
    config_free(&d);
}
END_TEST

START_TEST(test_shipped_conf_loads) {
    struct config c;
    char err[1024];
    config_defaults(&c);
    a2ad_status st = config_load(&c, "conf/a2ad.conf", err, sizeof err);
    ck_assert_msg(st == A2AD_OK, "conf/a2ad.conf: %s", err);
    ck_assert_str_eq(c.listen, "127.0.0.1");
    ck_assert_uint_eq(c.port, 8080);
    ck_assert_str_eq(c.plugin_dir, "build/plugins");
    ck_assert_str_eq(c.default_agent, "processor");
    const char *plugins[] = {"echo", "processor", "threaded", "failing"};
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(strstr(c.plugin_load, plugins[i]), "%s not in load = %s", plugins[i],
                      c.plugin_load);
    const struct agent_config *p = config_agent(&c, "processor");
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(p->n_opts, 1);
    ck_assert_str_eq(p->opts[0].key, "step_ms");
    ck_assert_str_eq(p->opts[0].value, "300");
    ck_assert_ptr_eq(config_agent(&c, "threaded"), NULL); /* commented out */
    config_free(&c);
}
END_TEST

/* Every key config_dump knows appears in the shipped file, as "key = " or
 * commented "#key = ", under its section. */
START_TEST(test_shipped_conf_mentions_every_key) {
    struct config c;
    config_defaults(&c);
    const char *dump_path = tmp_path("dump.conf");
    FILE *f = fopen(dump_path, "w");
    ck_assert_ptr_nonnull(f);
    config_dump(&c, f);
    fclose(f);
    config_free(&c);

    FILE *conf = fopen("conf/a2ad.conf", "r");
    ck_assert_ptr_nonnull(conf);
    char known[512][128];
    size_t n_known = 0;
    char section[64] = "", line[512];
    while (fgets(line, sizeof line, conf) && n_known < 512) {
        char name[64];
        if (sscanf(line, "[%63[^]]]", name) == 1) {
            snprintf(section, sizeof section, "%s", name);
        } else if (sscanf(line[0] == '#' ? line + 1 : line, "%63[a-z_] =", name) == 1 &&
                   strstr(line, " =")) {
            snprintf(known[n_known++], sizeof known[0], "%s/%s", section, name);
        }
    }
    fclose(conf);

    f = fopen(dump_path, "r");
    ck_assert_ptr_nonnull(f);
    unsigned checked = 0;
    section[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        char name[64], want[128];
        if (sscanf(line, "[%63[^]]]", name) == 1) {
            snprintf(section, sizeof section, "%s", name);
            continue;
        }
        if (line[0] == '#' || sscanf(line, "%63[a-z_] =", name) != 1) continue;
        snprintf(want, sizeof want, "%s/%s", section, name);
        bool found = false;
        for (size_t i = 0; i < n_known && !found; i++) found = strcmp(known[i], want) == 0;
        ck_assert_msg(found, "conf/a2ad.conf does not mention [%s] %s", section, name);
        checked++;
    }
    fclose(f);
    /* every key the daemon dumps (the table has more than 38) */
    ck_assert_uint_ge(checked, 38);
}
END_TEST

START_TEST(test_every_key_takes_effect) {
    struct config c;
    load_ok(&c, every_key);
    ck_assert_str_eq(c.listen, "::1");
    ck_assert_uint_eq(c.port, 0);
    ck_assert_uint_eq(c.http_threads, 8);
    ck_assert_uint_eq(c.max_connections, 50);
    ck_assert_uint_eq(c.max_body_bytes, 2 * 1024 * 1024);
    ck_assert_uint_eq(c.connection_timeout_s, 90);
    ck_assert_str_eq(c.public_url, "https://agents.example.com/a2a");
    ck_assert_str_eq(c.default_agent, "echo");
    ck_assert_uint_eq(c.worker_threads, 3);
    ck_assert_uint_eq(c.queue_length, 77);
    ck_assert_uint_eq(c.max_duration_s, 120);
    ck_assert_uint_eq(c.shutdown_grace_s, 0);
    ck_assert_str_eq(c.plugin_dir, "/opt/a2ad/plugins");
    ck_assert_str_eq(c.plugin_load, "echo, processor");
    ck_assert(!c.plugin_errors_fatal);
    ck_assert_str_eq(c.store, "memory");
    ck_assert_str_eq(c.db_path, "/srv/a2ad/tasks.db");
    ck_assert_str_eq(c.db_sync, "normal");
    ck_assert_uint_eq(c.write_queue, 50);
    ck_assert_uint_eq(c.lock_timeout_ms, 250);
    ck_assert_uint_eq(c.cache_kib, 4096);
    ck_assert_uint_eq(c.webhook_max_age_s, 600);
    ck_assert_uint_eq(c.retention_s, 0);
    ck_assert_uint_eq(c.max_tasks, 5);
    ck_assert_uint_eq(c.webhook_timeout_ms, 20000);
    ck_assert_uint_eq(c.webhook_connect_timeout_ms, 1500);
    ck_assert_uint_eq(c.webhook_max_attempts, 1);
    ck_assert_uint_eq(c.webhook_backoff_initial_ms, 100);
    ck_assert_uint_eq(c.webhook_backoff_max_ms, 200);
    ck_assert_uint_eq(c.webhook_max_in_flight, 2);
    ck_assert_uint_eq(c.webhook_max_pending, 10);
    ck_assert_uint_eq(c.webhook_flush_s, 0);
    ck_assert_int_eq(c.log_level, A2AD_LOG_DEBUG);
    config_free(&c);
}
END_TEST

START_TEST(test_sizes) {
    static const struct {
        const char *text;
        size_t bytes;
    } good[] = {
        {"1024", 1024},        {"1k", 1024},          {"3K", 3 * 1024},
        {"1m", 1024 * 1024},   {"64M", 64u << 20},    {"0002k", 2048},
        {"65536", 65536},      {"12M", 12u << 20},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[server]\nmax_body_bytes = %s\n", good[i].text);
        struct config c;
        load_ok(&c, text);
        ck_assert_msg(c.max_body_bytes == good[i].bytes, "%s -> %zu", good[i].text,
                      c.max_body_bytes);
        config_free(&c);
    }
    /* g/G is accepted as a suffix; 1G is just above this key's range. */
    static const char *const bad[] = {"1G", "1g", "65M", "1023", "0", "0.5M", "1KB", "k",
                                      "",   "-1k", "1 k", "0x400", "+2k", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[server]\nmax_body_bytes = %s\n", bad[i]);
        expect_error_at(text, 2, "[server] max_body_bytes");
        expect_error_at(text, 2, "must be a size from 1k to 64M");
    }
}
END_TEST

START_TEST(test_words) {
    struct config c;
    load_ok(&c, "[plugins]\nerrors = skip\n[log]\nlevel = WARNING\n[tasks]\nstore = Memory\n");
    ck_assert(!c.plugin_errors_fatal);
    ck_assert_int_eq(c.log_level, A2AD_LOG_WARNING);
    ck_assert_str_eq(c.store, "memory"); /* canonical spelling */
    config_free(&c);

    load_ok(&c, "[plugins]\nerrors = FATAL\n[log]\nlevel = error\n");
    ck_assert(c.plugin_errors_fatal);
    ck_assert_int_eq(c.log_level, A2AD_LOG_ERROR);
    config_free(&c);

    expect_error_at("[plugins]\nerrors = maybe\n", 2, "[plugins] errors = maybe: must be fatal or skip");
    expect_error_at("[log]\nlevel = verbose\n", 2,
                    "[log] level = verbose: must be error, warning, info or debug");
    expect_error_at("[tasks]\nstore = redis\n", 2, "[tasks] store = redis: must be sqlite, postgresql or memory");
}
END_TEST

START_TEST(test_strings_checked) {
    struct config c;
    load_ok(&c, "[server]\nlisten = 0.0.0.0\npublic_url = http://h:1/\ndefault_agent = a-b_9\n"
                "[plugins]\nload = echo ,processor,  failing\n");
    ck_assert_str_eq(c.listen, "0.0.0.0");
    ck_assert_str_eq(c.plugin_load, "echo ,processor,  failing");
    config_free(&c);

    expect_error_at("[server]\nlisten = localhost\n", 2, "[server] listen = localhost: must be");
    expect_error_at("[server]\nlisten =\n", 2, "[server] listen");
    expect_error_at("[server]\npublic_url = ftp://x\n", 2, "[server] public_url");
    expect_error_at("[server]\npublic_url = http://\n", 2, "[server] public_url");
    expect_error_at("[server]\ndefault_agent = a.b\n", 2, "[server] default_agent");
    expect_error_at("[plugins]\ndir =\n", 2, "[plugins] dir");
    expect_error_at("[plugins]\nload = echo,,processor\n", 2, "[plugins] load");
    expect_error_at("[plugins]\nload = echo,\n", 2, "[plugins] load");
    expect_error_at("[plugins]\nload = ../evil\n", 2, "not paths");
    expect_error_at("[plugins]\nload = echo processor\n", 2, "[plugins] load");
}
END_TEST

START_TEST(test_unknown_key) {
    expect_error_at("[server]\nport = 1\nprot = 2\n", 3, "[server] prot: unknown key");
    expect_error_at("[server]\nport = 1\nprot = 2\n", 3, "listen, port");
    /* A daemon key in the wrong section is unknown there. */
    expect_error_at("[workers]\nlisten = ::1\n", 2, "[workers] listen: unknown key");
}
END_TEST

START_TEST(test_unknown_section) {
    expect_error_at("[server]\nport = 1\n\n[srever]\nport = 2\n", 4, "[srever]: unknown section");
    /* Sections without keys never reach libinih's handler; still caught. */
    expect_error_at("[server]\n[bogus]\n", 2, "[bogus]: unknown section");
    expect_error_at("[Server]\nport = 1\n", 1, "[Server]");
    expect_error_at("[server] extra\n", 1, "[server]: unexpected text after ']'");
}
END_TEST

START_TEST(test_bad_number) {
    expect_error_at("[server]\nport = 80a\n", 2, "[server] port = 80a: must be an integer from 0 to 65535");
    expect_error_at("[server]\nport = -1\n", 2, "[server] port");
    expect_error_at("[server]\nport =\n", 2, "[server] port");
    expect_error_at("[server]\nport = 0x50\n", 2, "[server] port");
    expect_error_at("[workers]\nthreads = 1.5\n", 2, "[workers] threads");
    expect_error_at("[tasks]\nmax_tasks = 18446744073709551616\n", 2, "[tasks] max_tasks");
}
END_TEST

START_TEST(test_out_of_range) {
    /* The exact text, as the brief's example spells it. */
    struct config c;
    char err[1024];
    const char *path;
    ck_assert_int_eq(load_text(&c, "# web\n[server]\nport = 70000\n", err, sizeof err, &path),
                     A2AD_ERR_CONFIG);
    char want[700];
    snprintf(want, sizeof want, "%s:3: [server] port = 70000: must be an integer from 0 to 65535",
             path);
    ck_assert_str_eq(err, want);
    config_free(&c);

    expect_error_at("[server]\nhttp_threads = 0\n", 2, "[server] http_threads = 0: must be an integer from 1 to 64");
    expect_error_at("[server]\nhttp_threads = 65\n", 2, "[server] http_threads");
    expect_error_at("[server]\nmax_connections = 100001\n", 2, "[server] max_connections");
    expect_error_at("[server]\nconnection_timeout_s = 0\n", 2, "[server] connection_timeout_s");
    expect_error_at("[workers]\nthreads = 1025\n", 2, "[workers] threads");
    expect_error_at("[workers]\nqueue_length = 0\n", 2, "[workers] queue_length");
    expect_error_at("[workers]\nmax_duration_s = 604801\n", 2, "[workers] max_duration_s");
    expect_error_at("[tasks]\nretention_s = 31536001\n", 2, "[tasks] retention_s");
    expect_error_at("[webhooks]\nmax_attempts = 101\n", 2, "[webhooks] max_attempts");
    expect_error_at("[webhooks]\nmax_in_flight = 0\n", 2, "[webhooks] max_in_flight");
    expect_error_at("[webhooks]\nflush_s = 3601\n", 2, "[webhooks] flush_s");
}
END_TEST

START_TEST(test_duplicate_key) {
    expect_error_at("[server]\nport = 1\nlisten = ::1\nport = 2\n", 4,
                    "[server] port: given twice in this section (first on line 2)");
    expect_error_at("[agent.x]\na = 1\nb = 2\na = 3\n", 4,
                    "[agent.x] a: given twice in this section (first on line 2)");
    expect_error_at("[agent.x]\nmax_duration_s = 1\nmax_duration_s = 2\n", 3,
                    "[agent.x] max_duration_s: given twice");
}
END_TEST

START_TEST(test_duplicate_section) {
    expect_error_at("[server]\nport = 1\n[log]\nlevel = info\n[server]\nlisten = ::1\n", 5,
                    "[server]: section given twice (first on line 1)");
    expect_error_at("[agent.a]\nx = 1\n[agent.b]\n[agent.a]\ny = 2\n", 4,
                    "[agent.a]: section given twice (first on line 1)");
    /* Both empty: invisible to libinih's handler, seen by our reader. */
    expect_error_at("[agent.a]\n[agent.a]\n", 2, "[agent.a]: section given twice");
}
END_TEST

START_TEST(test_bad_agent_section) {
    expect_error_at("[server]\nport = 1\n[agent.foo bar]\nk = v\n", 3,
                    "[agent.foo bar]: bad agent name");
    expect_error_at("[agent.]\n", 1, "bad agent name");
    expect_error_at("[agent.a/b]\n", 1, "[agent.a/b]");
    expect_error_at("[agent.a.b]\n", 1, "[agent.a.b]");
    expect_error_at("[agent.x]\nbad key = 1\n", 2, "[agent.x] bad key: bad option name");
    expect_error_at("[agent.x]\nmax_duration_s = soon\n", 2, "[agent.x] max_duration_s = soon");
    expect_error_at("[agent.x]\nhu_min_importance = loud\n", 2,
                    "[agent.x] hu_min_importance = loud: must be one of error, notice, info, debug");
    expect_error_at("[agent.x]\nhu_min_importance = info\nhu_min_importance = debug\n", 3,
                    "[agent.x] hu_min_importance: given twice");
    expect_error_at("[agent.x]\nmax_duration_s = 604801\n", 2, "[agent.x] max_duration_s");
    /* inih would cut longer section names to 49 bytes. */
    expect_error_at("[agent.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n", 1,
                    "longer than 49");
}
END_TEST

START_TEST(test_agent_options) {
    struct config c;
    load_ok(&c, "[agent.alpha]\n"
                "z = last-letter\n"
                "max_duration_s = 42\n"
                "a = 1\n"
                "empty =\n"
                "path = /x/y ; a comment\n"
                "with.dot = spaces  inside  kept\n"
                "[agent.beta]\n"
                "[agent.gamma]\n"
                "max_duration_s = 0\n"
                "hu_min_importance = Notice\n");
    const struct agent_config *a = config_agent(&c, "alpha");
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(a->name, "alpha");
    ck_assert_uint_eq(a->max_duration_s, 42);
    ck_assert_uint_eq(a->n_opts, 5);
    static const char *const want[][2] = {{"z", "last-letter"},
                                          {"a", "1"},
                                          {"empty", ""},
                                          {"path", "/x/y"},
                                          {"with.dot", "spaces  inside  kept"}};
    for (size_t i = 0; i < 5; i++) {
        ck_assert_str_eq(a->opts[i].key, want[i][0]);
        ck_assert_str_eq(a->opts[i].value, want[i][1]);
    }
    const struct agent_config *b = config_agent(&c, "beta");
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(b->n_opts, 0);
    ck_assert_uint_eq(b->max_duration_s, 0);
    ck_assert_int_eq(b->hu_min_importance, -1); /* not set: every update */
    const struct agent_config *g = config_agent(&c, "gamma");
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(g->n_opts, 0); /* hu_min_importance is the host's, not an option */
    ck_assert_int_eq(g->hu_min_importance, A2AD_NOTICE);
    /* File order. */
    ck_assert_ptr_eq(c.agents, a);
    ck_assert_ptr_eq(a->next, b);
    ck_assert_ptr_eq(b->next, g);
    ck_assert_ptr_eq(config_agent(&c, "delta"), NULL);
    ck_assert_ptr_eq(config_agent(&c, NULL), NULL);
    config_free(&c);
}
END_TEST

START_TEST(test_syntax_errors) {
    expect_error_at("[server]\nport\n", 2, "syntax error");
    expect_error_at("[server\nport = 1\n", 1, "syntax error");
    expect_error_at("port = 1\n", 1, "port = 1: key outside any section");
    expect_error_at("[server]\n= 5\n", 2, "key name missing");
    /* The first problem is the one reported, whatever its kind. */
    expect_error_at("[server]\nnoequals\nport = x\n", 2, "syntax error");
    expect_error_at("[server]\nport = x\nnoequals\n", 2, "[server] port = x");
    /* libinih would glue an indented line to the value above. */
    expect_error_at("[server]\nport = 1\n  listen = ::1\n", 3, "indented line");
}
END_TEST

START_TEST(test_comments_and_encoding) {
    struct config c;
    load_ok(&c, "\xEF\xBB\xBF# hash\r\n; semicolon\r\n  ; indented comment\r\n[server] ; web\r\n"
                "port = 9000 ; inline\r\nlisten = ::\r\n");
    ck_assert_uint_eq(c.port, 9000);
    ck_assert_str_eq(c.listen, "::");
    config_free(&c);
    /* " #" is not a comment after a value in libinih: refused, not kept. */
    expect_error_at("[server]\nlisten = 127.0.0.1 # loopback\n", 2, "'#' starts a comment");
    expect_error_at("[plugins]\ndir = plugins\t# here\n", 2, "[plugins] dir");
}
END_TEST

START_TEST(test_long_line) {
    char text[600];
    int n = snprintf(text, sizeof text, "[server]\npublic_url = http://example.com/");
    memset(text + n, 'a', 300);
    strcpy(text + n + 300, "\n");
    expect_error_at(text, 2, "line longer than");
}
END_TEST

START_TEST(test_cross_field) {
    expect_file_error("[webhooks]\nbackoff_initial_ms = 60000\n",
                      "[webhooks] backoff_initial_ms = 60000 is above backoff_max_ms = 30000");
    expect_file_error("[webhooks]\nconnect_timeout_ms = 5000\ntimeout_ms = 4000\n",
                      "connect_timeout_ms = 5000 is above timeout_ms = 4000");
    expect_file_error("[server]\nhttp_threads = 8\nmax_connections = 4\n",
                      "http_threads = 8 is above max_connections = 4");
    /* Equal is fine. */
    struct config c;
    load_ok(&c, "[webhooks]\nbackoff_initial_ms = 700\nbackoff_max_ms = 700\n");
    config_free(&c);
}
END_TEST

START_TEST(test_missing_file) {
    struct config c;
    char err[1024], want[600];
    const char *path = tmp_path("nope.conf");
    config_defaults(&c);
    ck_assert_int_eq(config_load(&c, path, err, sizeof err), A2AD_ERR_IO);
    snprintf(want, sizeof want, "%s: %s", path, strerror(ENOENT));
    ck_assert_str_eq(err, want);
    /* A directory opens but cannot be read. */
    ck_assert_int_eq(config_load(&c, tmpdir, err, sizeof err), A2AD_ERR_IO);
    snprintf(want, sizeof want, "%s: %s", tmpdir, strerror(EISDIR));
    ck_assert_str_eq(err, want);
    /* The defaults survive a failed load. */
    ck_assert_uint_eq(c.port, 8080);
    config_free(&c);
}
END_TEST

static void round_trip(const struct config *c) {
    const char *path = tmp_path("dumped.conf");
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    config_dump(c, f);
    ck_assert_int_eq(fclose(f), 0);
    struct config again;
    char err[1024];
    config_defaults(&again);
    a2ad_status st = config_load(&again, path, err, sizeof err);
    ck_assert_msg(st == A2AD_OK, "dump does not load: %s", err);
    assert_same(c, &again);
    config_free(&again);
}

START_TEST(test_dump_round_trip) {
    struct config c;
    load_ok(&c, every_key);
    round_trip(&c);
    config_free(&c);

    config_defaults(&c);
    round_trip(&c);
    config_free(&c);

    load_ok(&c, "[server]\nmax_body_bytes = 1536\n[agent.e]\nempty =\n");
    round_trip(&c);
    config_free(&c);
}
END_TEST

START_TEST(test_dump_text) {
    struct config c;
    load_ok(&c, "[server]\nmax_body_bytes = 2048k\nauth_bearer_tokens = s3cret-token-0123456789\n"
                "[plugins]\nerrors = skip\n"
                "[agent.processor]\nmax_duration_s = 9\nhu_min_importance = info\nstep_ms = 300\n");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    config_dump(&c, f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "\n[server]\nlisten = 127.0.0.1\nport = 8080\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nmax_body_bytes = 2M\n"));
    ck_assert_ptr_nonnull(strstr(text, "\npublic_url =\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nerrors = skip\n"));
    ck_assert_ptr_nonnull(strstr(text, "\n[log]\nlevel = info\n"));
    /* A credential is not printed, only said to be set. */
    ck_assert_ptr_null(strstr(text, "s3cret-token-0123456789"));
    ck_assert_ptr_nonnull(strstr(text, "\n# auth_bearer_tokens = (set, not shown)\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "\n[agent.processor]\nmax_duration_s = 9\nhu_min_importance = info\nstep_ms = 300\n"));
    free(text);
    config_free(&c);
}
END_TEST

START_TEST(test_free_is_safe) {
    struct config c;
    config_defaults(&c);
    config_free(&c);
    config_free(&c);
    config_free(NULL);

    /* After a failed load, with an agent half read. */
    char err[512];
    ck_assert_int_eq(load_text(&c, "[agent.a]\nx = 1\ny = 2\n[server]\nport = z\n", err,
                               sizeof err, NULL),
                     A2AD_ERR_CONFIG);
    config_free(&c);
    config_free(&c);
}
END_TEST

Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_empty_file_keeps_defaults);
    tcase_add_test(tc, test_shipped_conf_loads);
    tcase_add_test(tc, test_shipped_conf_mentions_every_key);
    tcase_add_test(tc, test_every_key_takes_effect);
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_words);
    tcase_add_test(tc, test_strings_checked);
    tcase_add_test(tc, test_unknown_key);
    tcase_add_test(tc, test_unknown_section);
    tcase_add_test(tc, test_bad_number);
    tcase_add_test(tc, test_out_of_range);
    tcase_add_test(tc, test_duplicate_key);
    tcase_add_test(tc, test_duplicate_section);
    tcase_add_test(tc, test_bad_agent_section);
    tcase_add_test(tc, test_agent_options);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_comments_and_encoding);
    tcase_add_test(tc, test_long_line);
    tcase_add_test(tc, test_cross_field);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_dump_round_trip);
    tcase_add_test(tc, test_dump_text);
    tcase_add_test(tc, test_free_is_safe);
    suite_add_tcase(s, tc);
    return s;
}
