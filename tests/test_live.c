/* Live plugin directory, SIGHUP reload and per-agent capacity, against the
 * real binary: plugins are installed, overwritten and removed in the
 * daemon's plugin folder while jobs run, the config file is rewritten and
 * SIGHUP sent, and one agent is flooded while another must still be
 * served. Every wait is a bounded poll; nothing asserts on wall-clock time. */
#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/daemon.h"
#include "support/json.h"

static struct daemon_proc dp;

static void setup(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static void teardown(void) {
    daemon_cleanup(&dp);
    memset(&dp, 0, sizeof dp);
    curl_global_cleanup();
}

static void start_or_fail(const struct daemon_opts *o) {
    if (!daemon_start(&dp, o)) {
        char *log = daemon_log(&dp);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

/* ---- files ------------------------------------------------------------ */

static void read_file(const char *path, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(*data, 1, (size_t)n, f), (size_t)n);
    *len = (size_t)n;
    fclose(f);
}

/* Write bytes into path in place, like cp over an existing file:
 * O_TRUNC on the same inode, no rename. */
static void write_in_place(const char *path, const char *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off > 4096 ? 4096 : len - off);
        ck_assert_int_gt(w, 0);
        off += (size_t)w;
    }
    close(fd);
}

/* The built plugin `name` (tests/plugins/NAME.so). */
static void built_plugin(const char *name, char **data, size_t *len) {
    char rel[128], path[1024];
    snprintf(rel, sizeof rel, "tests/plugins/%s.so", name);
    read_file(build_path(rel, path, sizeof path), data, len);
}

static void plugin_path(const char *file, char *out, size_t n) {
    snprintf(out, n, "%s/plugins/%s", dp.dir, file);
}

/* The documented atomic install: write a hidden temporary file in the
 * directory, then rename it into place. */
static void install_plugin(const char *built, const char *as) {
    char *data;
    size_t len;
    built_plugin(built, &data, &len);
    char tmp[1024], dst[1024], hidden[300];
    snprintf(hidden, sizeof hidden, ".%s.tmp", as);
    plugin_path(hidden, tmp, sizeof tmp);
    plugin_path(as, dst, sizeof dst);
    write_in_place(tmp, data, len);
    ck_assert_int_eq(rename(tmp, dst), 0);
    free(data);
}

/* ---- HTTP ------------------------------------------------------------- */

/* message/send; blocking or not. Returns the answer (caller frees). */
static cJSON *send_text(const char *path, const char *text, bool blocking, long *status) {
    char body[2048];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{"
             "\"message\":{\"kind\":\"message\",\"messageId\":\"m1\",\"role\":\"user\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]},"
             "\"configuration\":{\"blocking\":%s}}}",
             text, blocking ? "true" : "false");
    long st = 0;
    cJSON *o = rpc_call(dp.port, path, body, &st);
    if (status) *status = st;
    return o;
}

/* A non-blocking send that must be accepted: the new task's id (malloc'd). */
static char *submit(const char *path, const char *text) {
    long st = 0;
    cJSON *o = send_text(path, text, false, &st);
    ck_assert_msg(st == 200 && o && json_at(o, "result.id"), "send to %s refused: %ld", path, st);
    char *id = strdup(json_str(o, "result.id"));
    cJSON_Delete(o);
    return id;
}

static cJSON *get_task(const char *id) {
    char body[300];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    return rpc_call(dp.port, "/", body, NULL);
}

/* Wait (bounded) until the task's state is `state`; returns the task. */
static cJSON *wait_state(const char *id, const char *state) {
    for (int i = 0;; i++) {
        cJSON *t = get_task(id);
        if (strcmp(json_str(t, "result.status.state"), state) == 0) return t;
        ck_assert_msg(i < 1500, "task %s never reached %s (is %s)", id, state,
                      json_str(t, "result.status.state"));
        cJSON_Delete(t);
        test_nap_ms(10);
    }
}

static bool task_terminal(const char *id, char *state, size_t n) {
    cJSON *t = get_task(id);
    snprintf(state, n, "%s", json_str(t, "result.status.state"));
    cJSON_Delete(t);
    return strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "canceled") == 0 || strcmp(state, "rejected") == 0;
}

/* GET the agent's card: status, and the version when 200 (into version). */
static long card(const char *agent, char *version, size_t n, char *body, size_t bn) {
    char path[200];
    snprintf(path, sizeof path, "/agents/%s/.well-known/agent-card.json", agent);
    struct http_resp h;
    ck_assert(http_call(dp.port, NULL, path, NULL, &h));
    long st = h.status;
    if (version) {
        cJSON *c = cJSON_Parse(h.body);
        snprintf(version, n, "%s", st == 200 ? json_str(c, "version") : "");
        cJSON_Delete(c);
    }
    if (body) snprintf(body, bn, "%s", h.body ? h.body : "");
    http_resp_free(&h);
    return st;
}

/* Poll (bounded) until the agent's card has this version ("" = 404). */
static void wait_card(const char *agent, const char *version) {
    char v[64] = "";
    for (int i = 0;; i++) {
        long st = card(agent, v, sizeof v, NULL, 0);
        if (version[0] ? st == 200 && strcmp(v, version) == 0 : st == 404) return;
        ck_assert_msg(i < 1000, "agent %s: card never showed version \"%s\" (status %ld, %s)",
                      agent, version, st, v);
        test_nap_ms(10);
    }
}

static size_t count_in_log(const char *needle) {
    char *log = daemon_log(&dp);
    size_t n = 0;
    for (const char *p = log; (p = strstr(p, needle)) != NULL; p++) n++;
    free(log);
    return n;
}

static void wait_log(const char *needle) {
    for (int i = 0; count_in_log(needle) == 0; i++) {
        ck_assert_msg(i < 1000, "the log never said \"%s\"", needle);
        test_nap_ms(10);
    }
}

/* ======================================================================= */

START_TEST(drop_in_replace_and_remove) {
    struct daemon_opts o = {.plugins = "echo", .store = "memory", .errors = "skip",
                            .extra = "[agent.vers]\nworkers = 1\n"};
    start_or_fail(&o);
    ck_assert_int_eq(card("vers", NULL, 0, NULL, 0), 404);

    /* Dropped in: served without a restart. */
    install_plugin("vers_v1", "vers.so");
    wait_card("vers", "1");
    wait_log("loaded agent vers 1 from");

    /* A job runs on version 1 while version 2 replaces it. */
    char gate1[400];
    snprintf(gate1, sizeof gate1, "%s/gate1", dp.dir);
    char text[500];
    snprintf(text, sizeof text, "wait %s", gate1);
    char *running = submit("/agents/vers", text);
    cJSON_Delete(wait_state(running, "working"));
    install_plugin("vers_v2", "vers.so");
    wait_card("vers", "2");
    wait_log("replaced agent vers 1");
    ck_assert_uint_eq(count_in_log("unloaded agent vers 1"), 0); /* its job still runs */

    /* New jobs get version 2 (vers has workers = 1: this one waits for the
     * running job's slot, so let that finish first). */
    FILE *g = fopen(gate1, "w");
    ck_assert_ptr_nonnull(g);
    fclose(g);
    cJSON *t = wait_state(running, "completed");
    ck_assert_ptr_nonnull(strstr(json_str(t, "result.status.message.parts.0.text"), "v1 tag=none"));
    cJSON_Delete(t);
    wait_log("unloaded agent vers 1");
    long st = 0;
    cJSON *r = send_text("/agents/vers", "hello", true, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "result.status.message.parts.0.text"), "v2 tag=none: hello");
    cJSON_Delete(r);

    /* Removed: a running job finishes, a queued one fails naming the agent,
     * card and endpoint are gone. */
    char gate2[400];
    snprintf(gate2, sizeof gate2, "%s/gate2", dp.dir);
    snprintf(text, sizeof text, "wait %s", gate2);
    char *run2 = submit("/agents/vers", text);
    cJSON_Delete(wait_state(run2, "working"));
    char *queued = submit("/agents/vers", "queued behind");
    char so[1024];
    plugin_path("vers.so", so, sizeof so);
    ck_assert_int_eq(unlink(so), 0);
    wait_card("vers", "");
    t = wait_state(queued, "failed");
    const char *why = json_str(t, "result.status.message.parts.0.text");
    ck_assert_msg(strstr(why, "agent vers was removed") != NULL, "reason: %s", why);
    cJSON_Delete(t);
    char body[2000];
    ck_assert_int_eq(card("vers", NULL, 0, body, sizeof body), 404);
    ck_assert_msg(strstr(body, "agent vers was removed (its plugin file") != NULL, "%s", body);
    ck_assert_ptr_nonnull(strstr(body, "echo"));
    r = send_text("/agents/vers", "anyone?", true, &st);
    ck_assert_int_eq(st, 404);
    ck_assert_ptr_nonnull(strstr(json_str(r, "error.message"), "agent vers was removed"));
    cJSON_Delete(r);
    wait_log("removed agent vers 2");
    g = fopen(gate2, "w");
    ck_assert_ptr_nonnull(g);
    fclose(g);
    t = wait_state(run2, "completed");
    ck_assert_ptr_nonnull(strstr(json_str(t, "result.status.message.parts.0.text"), "v2"));
    cJSON_Delete(t);
    wait_log("unloaded agent vers 2");

    /* The other agent never noticed. */
    r = send_text("/agents/echo", "still here", true, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    cJSON_Delete(r);
    free(running);
    free(run2);
    free(queued);
    ck_assert_int_eq(daemon_stop(&dp, 30000), 0);
}
END_TEST

START_TEST(overwrite_in_place_under_load) {
    struct daemon_opts o = {.plugins = "vers", .store = "memory", .threads = 2};
    start_or_fail(&o);
    char *v1, *v2;
    size_t n1, n2;
    built_plugin("vers_v1", &v1, &n1);
    built_plugin("vers_v2", &v2, &n2);
    char so[1024];
    plugin_path("vers.so", so, sizeof so);

    enum { JOBS = 50 };
    char *ids[JOBS];
    for (int i = 0; i < JOBS; i++) {
        ids[i] = submit("/agents/vers", "sleep 20");
        /* What the README used to say: cp the new build over the old one. */
        if (i % 10 == 9) {
            if ((i / 10) % 2 == 0)
                write_in_place(so, v2, n2);
            else
                write_in_place(so, v1, n1);
        }
    }
    /* No job lost, none failed; the daemon still answers. */
    for (int i = 0; i < JOBS; i++) {
        char state[32];
        for (int k = 0; !task_terminal(ids[i], state, sizeof state); k++) {
            ck_assert_msg(k < 1500, "job %d never ended (%s)", i, state);
            test_nap_ms(10);
        }
        ck_assert_msg(strcmp(state, "completed") == 0, "job %d: %s", i, state);
        free(ids[i]);
    }
    /* The last write (i = 49) was version 2. */
    wait_card("vers", "2");
    wait_log("replaced agent vers");
    long st = 0;
    cJSON *r = send_text("/agents/vers", "after", true, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "result.status.message.parts.0.text"), "v2 tag=none: after");
    cJSON_Delete(r);
    free(v1);
    free(v2);
    ck_assert_int_eq(daemon_stop(&dp, 30000), 0);
}
END_TEST

START_TEST(junk_file_refused_daemon_serves) {
    struct daemon_opts o = {.plugins = "echo", .store = "memory"};
    start_or_fail(&o);
    char junk[1024];
    plugin_path(".junk.so.tmp", junk, sizeof junk);
    static const char text[] = "this is not an ELF file\n";
    write_in_place(junk, text, sizeof text - 1);
    char dst[1024];
    plugin_path("junk.so", dst, sizeof dst);
    ck_assert_int_eq(rename(junk, dst), 0);
    wait_log("junk.so refused");
    /* Another change in the directory: the same junk is not refused again. */
    install_plugin("vers_v1", "vers.so");
    wait_card("vers", "1");
    ck_assert_uint_eq(count_in_log("junk.so refused"), 1);
    long st = 0;
    cJSON *r = send_text("/agents/echo", "fine", true, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    cJSON_Delete(r);
    ck_assert_int_eq(daemon_stop(&dp, 30000), 0);
}
END_TEST

/* Replace the first occurrence of from by to in the config file. */
static void edit_conf(const char *from, const char *to) {
    char *data;
    size_t len;
    read_file(dp.conf, &data, &len);
    data[len] = '\0';
    char *at = strstr(data, from);
    ck_assert_msg(at != NULL, "config lacks \"%s\"", from);
    FILE *f = fopen(dp.conf, "w");
    fprintf(f, "%.*s%s%s", (int)(at - data), data, to, at + strlen(from));
    fclose(f);
    free(data);
}

START_TEST(sighup_applies_good_config_refuses_bad) {
    struct daemon_opts o = {.plugins = "vers", .store = "memory", .extra = "[agent.vers]\ntag = a\n"};
    start_or_fail(&o);
    long st = 0;
    cJSON *r = send_text("/agents/vers", "x", true, &st);
    ck_assert_str_eq(json_str(r, "result.status.message.parts.0.text"), "v1 tag=a: x");
    cJSON_Delete(r);

    /* A bad file: refused with FILE:LINE, the running configuration stays. */
    edit_conf("tag = a\n", "tag = b\nbogus key\n");
    ck_assert_int_eq(kill(dp.pid, SIGHUP), 0);
    char want[400];
    snprintf(want, sizeof want, "reload refused: %s:", dp.conf);
    wait_log(want);
    r = send_text("/agents/vers", "y", true, &st);
    ck_assert_str_eq(json_str(r, "result.status.message.parts.0.text"), "v1 tag=a: y");
    cJSON_Delete(r);

    /* A good one: the agent's option change makes a new version, the log
     * level applies at once, a restart-only key is named. */
    edit_conf("bogus key\n", "");
    edit_conf("level = debug", "level = warning");
    edit_conf("[server]\n", "[server]\nhttp_threads = 3\n");
    ck_assert_int_eq(kill(dp.pid, SIGHUP), 0);
    wait_log("[server] http_threads changed; it takes effect at the next restart");
    for (int i = 0;; i++) {
        r = send_text("/agents/vers", "z", true, &st);
        bool done = strcmp(json_str(r, "result.status.message.parts.0.text"), "v1 tag=b: z") == 0;
        cJSON_Delete(r);
        if (done) break;
        ck_assert_msg(i < 500, "the new tag never applied");
        test_nap_ms(10);
    }
    /* Info lines after the level change are not written. */
    ck_assert_uint_eq(count_in_log(" applied (log level"), 0);
    ck_assert_uint_eq(count_in_log("reload refused"), 1);
    ck_assert_int_eq(daemon_stop(&dp, 30000), 0);
}
END_TEST

START_TEST(flooded_agent_does_not_starve_another) {
    struct daemon_opts o = {.plugins = "slow,echo", .store = "memory", .threads = 2,
                            .extra = "[agent.slow]\nqueue_length = 1000\n"};
    start_or_fail(&o);
    /* 1,000 slow jobs queued (and one running), until its own queue is full. */
    int accepted = 0;
    long st = 0;
    cJSON *r = NULL;
    for (int i = 0; i < 1100; i++) {
        r = send_text("/agents/slow", "forever", false, &st);
        if (st != 200) break;
        accepted++;
        cJSON_Delete(r);
        r = NULL;
    }
    ck_assert_int_ge(accepted, 1000);
    ck_assert_int_eq(st, 503);
    ck_assert_ptr_nonnull(r);
    const char *msg = json_str(r, "error.message");
    ck_assert_msg(strstr(msg, "agent slow") != NULL, "message: %s", msg);
    cJSON_Delete(r);

    /* Another agent's job starts at once and completes, while slow's queue
     * is still full. */
    r = send_text("/agents/echo", "me first", true, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    cJSON_Delete(r);
    struct http_resp h;
    ck_assert(http_call(dp.port, NULL, "/healthz", NULL, &h));
    cJSON *health = cJSON_Parse(h.body);
    ck_assert_int_ge(json_int(health, "jobsQueued"), 999);
    ck_assert_int_eq(json_int(health, "agentJobs.slow.queued"), 1000);
    ck_assert_int_eq(json_int(health, "agentJobs.slow.running"), 1);
    ck_assert_int_eq(json_int(health, "agentJobs.echo.queued"), 0);
    cJSON_Delete(health);
    http_resp_free(&h);
    /* Still full for slow only, with a Retry-After. */
    ck_assert(http_call(dp.port, "POST", "/agents/slow",
                        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{"
                        "\"message\":{\"kind\":\"message\",\"messageId\":\"m9\",\"role\":\"user\","
                        "\"parts\":[{\"kind\":\"text\",\"text\":\"one more\"}]},"
                        "\"configuration\":{\"blocking\":false}}}",
                        &h));
    ck_assert_int_eq(h.status, 503);
    ck_assert_ptr_nonnull(strcasestr(h.headers, "Retry-After:"));
    http_resp_free(&h);
    ck_assert_int_eq(daemon_stop(&dp, 60000), 0);
}
END_TEST

START_TEST(agent_workers_limit_applies_and_reloads) {
    struct daemon_opts o = {.plugins = "slow,echo", .store = "memory", .threads = 3,
                            .extra = "[agent.slow]\nworkers = 1\n"};
    start_or_fail(&o);
    char *first = submit("/agents/slow", "a");
    cJSON_Delete(wait_state(first, "working"));
    char *second = submit("/agents/slow", "b");
    /* A free thread exists (echo's job runs on it at once), but slow may
     * use only one. */
    long st = 0;
    cJSON *r = send_text("/agents/echo", "free thread", true, &st);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    cJSON_Delete(r);
    cJSON *t = get_task(second);
    ck_assert_str_eq(json_str(t, "result.status.state"), "submitted");
    cJSON_Delete(t);

    /* workers = 2 by SIGHUP: the queued job starts, no new version. */
    edit_conf("workers = 1", "workers = 2");
    ck_assert_int_eq(kill(dp.pid, SIGHUP), 0);
    cJSON_Delete(wait_state(second, "working"));
    wait_log("a2ad.conf applied (credentials, log level, limits, agents): ");
    ck_assert_uint_eq(count_in_log("slow 1.0.0 ("), 1);
    ck_assert_uint_eq(count_in_log("replaced agent slow"), 0);
    free(first);
    free(second);
    ck_assert_int_eq(daemon_stop(&dp, 60000), 0);
}
END_TEST

START_TEST(refused_new_version_keeps_the_old_one) {
    struct daemon_opts o = {.plugins = "vers", .store = "memory", .extra = "[agent.vers]\ntag = a\n"};
    start_or_fail(&o);
    /* An option the plugin refuses: its init fails, the running version stays. */
    edit_conf("tag = a\n", "tag = a\ncolour = red\n");
    ck_assert_int_eq(kill(dp.pid, SIGHUP), 0);
    wait_log("init of agent \"vers\" failed");
    ck_assert_uint_eq(count_in_log("agent vers 1 from that file stays loaded"), 1);
    long st = 0;
    cJSON *r = send_text("/agents/vers", "still", true, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "result.status.message.parts.0.text"), "v1 tag=a: still");
    cJSON_Delete(r);
    /* The same for a broken build copied over it. */
    char so[1024];
    plugin_path("vers.so", so, sizeof so);
    static const char junk[] = "\x7f" "ELF but not really";
    write_in_place(so, junk, sizeof junk - 1);
    wait_log("vers.so refused: dlopen failed");
    r = send_text("/agents/vers", "again", true, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "result.status.message.parts.0.text"), "v1 tag=a: again");
    cJSON_Delete(r);
    ck_assert_int_eq(daemon_stop(&dp, 30000), 0);
}
END_TEST

START_TEST(agent_capacity_keys_checked) {
    struct daemon_opts o = {.plugins = "slow", .store = "memory",
                            .extra = "[agent.slow]\nworkers = 2\nqueue_length = 5\nworkers = 3\n"};
    ck_assert(daemon_prepare(&dp, &o));
    ck_assert_int_eq(daemon_run_args(&dp, "-t", 10000), 1);
    ck_assert_uint_eq(count_in_log("[agent.slow] workers: given twice in this section (first on line"), 1);
    daemon_cleanup(&dp);
    memset(&dp, 0, sizeof dp);
    o.extra = "[agent.slow]\nworkers = 5000\n";
    ck_assert(daemon_prepare(&dp, &o));
    ck_assert_int_eq(daemon_run_args(&dp, "-tv", 10000), 1);
    char want[400];
    snprintf(want, sizeof want, "%s:", dp.conf);
    ck_assert_uint_eq(count_in_log(want), 1);
    ck_assert_uint_eq(count_in_log("[agent.slow] workers = 5000: must be an integer from 0 to 1024"), 1);
    daemon_cleanup(&dp);
    memset(&dp, 0, sizeof dp);
    o.extra = "[agent.slow]\nworkers = 2\nqueue_length = 5\n";
    ck_assert(daemon_prepare(&dp, &o));
    ck_assert_int_eq(daemon_run_args(&dp, "-tv", 10000), 0);
    ck_assert_uint_eq(count_in_log("workers = 2\nqueue_length = 5\n"), 1);
}
END_TEST

Suite *live_suite(void);
Suite *live_suite(void) {
    Suite *s = suite_create("live");
    TCase *tc = tcase_create("live");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, drop_in_replace_and_remove);
    tcase_add_test(tc, overwrite_in_place_under_load);
    tcase_add_test(tc, junk_file_refused_daemon_serves);
    tcase_add_test(tc, sighup_applies_good_config_refuses_bad);
    tcase_add_test(tc, flooded_agent_does_not_starve_another);
    tcase_add_test(tc, agent_workers_limit_applies_and_reloads);
    tcase_add_test(tc, refused_new_version_keeps_the_old_one);
    tcase_add_test(tc, agent_capacity_keys_checked);
    suite_add_tcase(s, tc);
    return s;
}
