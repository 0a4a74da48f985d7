/* Tests of what an operator meets, against the real binary: GET /metrics
 * and its values as jobs run, /livez and /readyz (a locked database, a
 * stop in progress), the job-end log line in text and JSON, `a2ad -t`
 * refusing each bad configuration with its cause, --help and --version. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/daemon.h"
#include "support/json.h"

Suite *ops_suite(void);

static struct daemon_proc d;

static void teardown(void) {
    if (d.pid > 0) daemon_stop(&d, 15000);
    daemon_cleanup(&d);
}

static void start_or_fail(const struct daemon_opts *o) {
    ck_assert_msg(daemon_start(&d, o), "the daemon did not start");
}

/* A blocking message/send; returns the task's final state (malloc'd). */
static char *run_job(const char *agent, const char *text) {
    char path[100], body[400];
    snprintf(path, sizeof path, "/agents/%s", agent);
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
             "{\"role\":\"user\",\"messageId\":\"m-%s\",\"parts\":[{\"kind\":\"text\","
             "\"text\":\"%s\"}]}}}",
             text, text);
    long status = 0;
    cJSON *r = rpc_call(d.port, path, body, &status);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(status, 200);
    char *state = strdup(json_str(r, "result.status.state"));
    cJSON_Delete(r);
    return state;
}

static char *get_body(const char *path, long *status) {
    struct http_resp resp = {0};
    ck_assert(http_call(d.port, "GET", path, NULL, &resp));
    *status = resp.status;
    char *b = resp.body ? strdup(resp.body) : strdup("");
    http_resp_free(&resp);
    return b;
}

/* The value of the sample whose line starts with series ("name{labels}"),
 * or -1 when there is none. */
static double sample(const char *page, const char *series) {
    size_t n = strlen(series);
    for (const char *p = page; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    }
    return -1;
}

static char *metrics(void) {
    long status = 0;
    char *page = get_body("/metrics", &status);
    ck_assert_int_eq(status, 200);
    return page;
}

START_TEST(metrics_move_as_jobs_run) {
    struct daemon_opts o = {.plugins = "echo,failing"};
    start_or_fail(&o);
    char *page = metrics();
    static const char *const families[] = {
        "a2ad_jobs_total counter",          "a2ad_jobs_queued gauge",
        "a2ad_jobs_running gauge",          "a2ad_job_duration_seconds histogram",
        "a2ad_ack_latency_seconds histogram", "a2ad_webhook_deliveries_total counter",
        "a2ad_webhook_retries_total counter", "a2ad_webhook_given_up_total counter",
        "a2ad_outbox_backlog gauge",        "a2ad_outbox_oldest_age_seconds gauge",
        "a2ad_store_commit_seconds histogram", "a2ad_sse_streams gauge",
        "a2ad_http_requests_total counter",
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char line[120];
        snprintf(line, sizeof line, "# TYPE %s\n", families[i]);
        ck_assert_msg(strstr(page, line), "no \"%s\" in /metrics", line);
    }
    ck_assert(sample(page, "a2ad_jobs_total{agent=\"echo\",outcome=\"accepted\"}") == 0);
    ck_assert(sample(page, "a2ad_job_duration_seconds_count{agent=\"echo\"}") == 0);
    free(page);

    char *s = run_job("echo", "one");
    ck_assert_str_eq(s, "completed");
    free(s);
    s = run_job("echo", "two");
    free(s);
    s = run_job("failing", "three");
    ck_assert_str_eq(s, "failed");
    free(s);

    page = metrics();
    ck_assert(sample(page, "a2ad_jobs_total{agent=\"echo\",outcome=\"accepted\"}") == 2);
    ck_assert(sample(page, "a2ad_jobs_total{agent=\"echo\",outcome=\"completed\"}") == 2);
    ck_assert(sample(page, "a2ad_jobs_total{agent=\"echo\",outcome=\"failed\"}") == 0);
    ck_assert(sample(page, "a2ad_jobs_total{agent=\"failing\",outcome=\"accepted\"}") == 1);
    ck_assert(sample(page, "a2ad_jobs_total{agent=\"failing\",outcome=\"failed\"}") == 1);
    ck_assert(sample(page, "a2ad_job_duration_seconds_count{agent=\"echo\"}") == 2);
    ck_assert(sample(page, "a2ad_job_duration_seconds_bucket{agent=\"echo\",le=\"+Inf\"}") == 2);
    ck_assert(sample(page, "a2ad_ack_latency_seconds_count{agent=\"failing\"}") == 1);
    ck_assert(sample(page, "a2ad_jobs_running{agent=\"echo\"}") == 0);
    ck_assert(sample(page, "a2ad_jobs_queued{agent=\"echo\"}") == 0);
    ck_assert(sample(page, "a2ad_store_commit_seconds_count") >= 3);
    ck_assert(sample(page, "a2ad_http_requests_total{method=\"POST\",code=\"200\"}") == 3);
    ck_assert(sample(page, "a2ad_http_requests_total{method=\"GET\",code=\"200\"}") >= 1);
    free(page);

    /* The job-end line, one per job, with its fields. */
    char *log = daemon_log(&d);
    const char *line = strstr(log, "job: ended agent=failing task=");
    ck_assert_msg(line, "no job-end line for the failed job in:\n%s", log);
    char one[600];
    snprintf(one, sizeof one, "%.*s", (int)strcspn(line, "\n"), line);
    ck_assert_msg(strstr(one, " state=failed ") && strstr(one, " duration_ms=") &&
                      strstr(one, " attempt=1") && strstr(one, " reason=\"simulated failure"),
                  "job-end line lacks fields: %s", one);
    size_t ends = 0;
    for (const char *p = log; (p = strstr(p, "job: ended agent=")); p++) ends++;
    ck_assert_uint_eq(ends, 3);
    free(log);
}
END_TEST

static long ready_status(char **reason) {
    long status = 0;
    char *b = get_body("/readyz", &status);
    if (reason) *reason = b;
    else free(b);
    return status;
}

/* Readiness follows what a submission would meet; /livez does not. */
START_TEST(readiness_flips_with_a_locked_database) {
    struct daemon_opts o = {.plugins = "echo", .tasks_extra = "lock_timeout_ms = 100"};
    start_or_fail(&o);
    char *body = NULL;
    ck_assert_int_eq(ready_status(&body), 200);
    ck_assert_ptr_nonnull(strstr(body, "\"ready\""));
    free(body);
    body = NULL;

    char db_path[300];
    snprintf(db_path, sizeof db_path, "%s/a2ad.db", d.dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    long st = 0;
    for (int i = 0; i < 40 && st != 503; i++) { /* a probe's answer is kept 0.5 s */
        free(body);
        body = NULL;
        st = ready_status(&body);
        if (st != 503) test_nap_ms(100);
    }
    ck_assert_int_eq(st, 503);
    cJSON *j = cJSON_Parse(body);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_str(j, "status"), "not ready");
    ck_assert_msg(strstr(json_str(j, "reason"), "locked") && strstr(json_str(j, "reason"), db_path),
                  "reason does not name the cause: %s", body);
    cJSON_Delete(j);
    free(body);
    long live = 0;
    free(get_body("/livez", &live));
    ck_assert_int_eq(live, 200);

    ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    st = 0;
    for (int i = 0; i < 40 && st != 200; i++) {
        st = ready_status(NULL);
        if (st != 200) test_nap_ms(100);
    }
    ck_assert_int_eq(st, 200);
}
END_TEST

/* One request on an open connection; returns the status line's code and
 * the body in out. */
static int keepalive_get(int fd, const char *path, char *out, size_t n) {
    char req[200];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)len) != len) return -1;
    size_t got = 0;
    out[0] = '\0';
    while (got + 1 < n) {
        ssize_t r = read(fd, out + got, n - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        out[got] = '\0';
        const char *hdr_end = strstr(out, "\r\n\r\n");
        const char *cl = strcasestr(out, "Content-Length:");
        if (hdr_end && cl && got >= (size_t)(hdr_end + 4 - out) + strtoul(cl + 15, NULL, 10))
            break;
    }
    return strncmp(out, "HTTP/1.1 ", 9) == 0 ? atoi(out + 9) : -1;
}

START_TEST(readiness_fails_during_the_graceful_stop) {
    /* A job that outlives the stop's start keeps the daemon up (grace 5 s). */
    struct daemon_opts o = {.plugins = "stubborn", .extra = "[agent.stubborn]\nsleep_ms = 2500"};
    start_or_fail(&o);
    long status = 0;
    char body[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{"
                  "\"configuration\":{\"blocking\":false},\"message\":{\"role\":\"user\","
                  "\"messageId\":\"m1\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}}";
    cJSON *r = rpc_call(d.port, "/agents/stubborn", body, &status);
    ck_assert_int_eq(status, 200);
    cJSON_Delete(r);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d.port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char resp[2048];
    ck_assert_int_eq(keepalive_get(fd, "/readyz", resp, sizeof resp), 200);

    kill(d.pid, SIGTERM);
    bool stopping = false;
    for (int i = 0; i < 200 && !stopping; i++) {
        char *log = daemon_log(&d);
        stopping = strstr(log, "stopping: no new connections") != NULL;
        free(log);
        if (!stopping) test_nap_ms(10);
    }
    ck_assert(stopping);
    int code = keepalive_get(fd, "/readyz", resp, sizeof resp);
    ck_assert_msg(code == 503, "got %d: %s", code, resp);
    ck_assert_msg(strstr(resp, "stopping"), "no reason in: %s", resp);
    close(fd);
    /* A new connection gets no answer: closed at once, or refused. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0) {
        code = keepalive_get(fd, "/readyz", resp, sizeof resp);
        ck_assert_msg(code == -1, "a new connection during the stop got %d: %s", code, resp);
    }
    close(fd);
    /* The stop ends on its own once the job returned (a second TERM would
     * mean "now"). */
    int wst = 0;
    pid_t got = 0;
    for (int i = 0; i < 1500 && got != d.pid; i++) {
        got = waitpid(d.pid, &wst, WNOHANG);
        if (got != d.pid) test_nap_ms(10);
    }
    ck_assert_int_eq(got, d.pid);
    d.pid = 0;
    ck_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
}
END_TEST

START_TEST(json_log_lines_parse) {
    struct daemon_opts o = {.plugins = "failing", .extra = "format = json"};
    start_or_fail(&o);
    char *s = run_job("failing", "boom");
    ck_assert_str_eq(s, "failed");
    free(s);
    ck_assert_int_eq(daemon_stop(&d, 15000), 0);
    char *log = daemon_log(&d);
    size_t lines = 0;
    bool job_end = false;
    for (char *save = NULL, *line = strtok_r(log, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        ck_assert_msg(j, "not JSON: %s", line);
        ck_assert_msg(cJSON_IsString(cJSON_GetObjectItem(j, "time")) &&
                          cJSON_IsString(cJSON_GetObjectItem(j, "level")) &&
                          cJSON_IsString(cJSON_GetObjectItem(j, "msg")),
                      "time, level or msg missing: %s", line);
        if (strcmp(json_str(j, "msg"), "ended") == 0 && strcmp(json_str(j, "origin"), "job") == 0) {
            job_end = true;
            ck_assert_str_eq(json_str(j, "level"), "info");
            ck_assert_str_eq(json_str(j, "agent"), "failing");
            ck_assert_str_eq(json_str(j, "state"), "failed");
            ck_assert_int_eq(strlen(json_str(j, "task")), 36);
            ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "duration_ms")));
            ck_assert_int_eq(json_int(j, "attempt"), 1);
            ck_assert_ptr_nonnull(strstr(json_str(j, "reason"), "simulated failure: boom"));
        }
        cJSON_Delete(j);
        lines++;
    }
    ck_assert_uint_ge(lines, 5);
    ck_assert(job_end);
    free(log);
}
END_TEST

/* A port nothing listens on, for a receiver that is down. */
static unsigned dead_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t len = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd);
    return ntohs(sin.sin_port);
}

static size_t count_in(const char *text, const char *needle) {
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* A dead receiver shows at warning at its first failure, once (the rest of
 * the retries are rate-limited), and neither the token nor the URL's
 * query or password reaches the log. */
START_TEST(first_webhook_failure_is_a_warning_without_secrets) {
    struct daemon_opts o = {.plugins = "echo", .webhooks_extra = "max_age_s = 0"};
    start_or_fail(&o);
    unsigned port = dead_port();
    char body[900];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{"
             "\"message\":{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}]},"
             "\"configuration\":{\"blocking\":false,\"pushNotificationConfig\":"
             "{\"url\":\"http://user:pa55word@127.0.0.1:%u/hook?key=s3cr3tq\","
             "\"token\":\"t0k3n-very-secret\"}}}}",
             port);
    long status = 0;
    cJSON *r = rpc_call(d.port, "/agents/echo", body, &status);
    ck_assert_int_eq(status, 200);
    cJSON_Delete(r);
    /* 5 attempts per event (the tests' max_attempts), 20-200 ms apart */
    char *log = NULL;
    for (int i = 0; i < 300; i++) {
        free(log);
        log = daemon_log(&d);
        if (strstr(log, "giving up on POST")) break;
        test_nap_ms(20);
    }
    char want[120];
    snprintf(want, sizeof want, "warning webhooks: POST to http://127.0.0.1:%u/hook failed", port);
    ck_assert_msg(count_in(log, want) == 1, "want one \"%s\" in:\n%s", want, log);
    ck_assert_ptr_nonnull(strstr(log, "logged at most once a minute"));
    ck_assert_msg(!strstr(log, "t0k3n") && !strstr(log, "s3cr3tq") && !strstr(log, "pa55word"),
                  "a secret in the log:\n%s", log);
    free(log);
}
END_TEST

/* ---- a2ad -t ---------------------------------------------------------- */

/* Run `a2ad -t` on the prepared config; returns the exit status and the
 * output (stdout and stderr) in *out. */
static int check_config_run(const char *arg, char **out) {
    int rc = daemon_run_args(&d, arg, 20000);
    *out = daemon_log(&d);
    return rc;
}

static void assert_refused(const struct daemon_opts *o, void (*tweak)(void), const char *cause,
                           const char *cause2) {
    ck_assert(daemon_prepare(&d, o));
    if (tweak) tweak();
    char *out = NULL;
    int rc = check_config_run("-t", &out);
    ck_assert_msg(rc == 1, "a2ad -t exited %d; output:\n%s", rc, out);
    ck_assert_msg(strstr(out, cause) && (!cause2 || strstr(out, cause2)),
                  "no \"%s\"%s%s in:\n%s", cause, cause2 ? " / " : "", cause2 ? cause2 : "", out);
    ck_assert_msg(!strstr(out, "configuration ok"), "said ok:\n%s", out);
    free(out);
    daemon_cleanup(&d);
}

START_TEST(test_mode_accepts_a_good_config) {
    struct daemon_opts o = {.plugins = "echo,processor", .default_agent = "echo",
                            .extra = "[agent.processor]\nstep_ms = 5"};
    ck_assert(daemon_prepare(&d, &o));
    char *out = NULL;
    int rc = check_config_run("-t", &out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    ck_assert_ptr_nonnull(strstr(out, "configuration ok"));
    free(out);
}
END_TEST

START_TEST(test_mode_refuses_an_option_init_refuses) {
    struct daemon_opts o = {.plugins = "processor", .extra = "[agent.processor]\nstpe_ms = 5"};
    assert_refused(&o, NULL, "unknown option \"stpe_ms\"", "init of agent \"processor\" failed");
}
END_TEST

START_TEST(test_mode_refuses_a_misspelt_agent_section) {
    struct daemon_opts o = {.plugins = "echo", .extra = "[agent.echoo]\nmax_duration_s = 5"};
    assert_refused(&o, NULL, "[agent.echoo] names no loaded agent", NULL);
}
END_TEST

START_TEST(test_mode_refuses_a_misspelt_default_agent) {
    struct daemon_opts o = {.plugins = "echo,failing", .default_agent = "echoo"};
    assert_refused(&o, NULL, "default_agent \"echoo\" is not a loaded agent", NULL);
}
END_TEST

static void remove_plugin_dir(void) {
    char p[400];
    snprintf(p, sizeof p, "%s/plugins", d.dir);
    ck_assert_int_eq(rmdir(p), 0);
}

START_TEST(test_mode_refuses_a_missing_plugin_dir) {
    struct daemon_opts o = {.plugins = ""};
    assert_refused(&o, remove_plugin_dir, "[plugins] dir = ", "No such file or directory");
}
END_TEST

static void add_junk(void) {
    char p[400];
    snprintf(p, sizeof p, "%s/plugins/junk.so", d.dir);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("this is not a shared object\n", f);
    fclose(f);
}

START_TEST(test_mode_refuses_a_junk_so) {
    struct daemon_opts o = {.plugins = "echo"};
    assert_refused(&o, add_junk, "junk.so", "refused");
}
END_TEST

START_TEST(test_mode_refuses_an_unusable_database_path) {
    /* As root every directory is writable: a missing directory, or a parent
     * that is a file, is what stays unusable for anyone. */
    char bad_db[200];
    snprintf(bad_db, sizeof bad_db, "/tmp/a2ad-no-such-dir-%d/sub/a2ad.db", (int)getpid());
    struct daemon_opts o = {.plugins = "echo", .db_path = bad_db};
    assert_refused(&o, NULL, "[tasks] path = ", "No such file or directory");
    struct daemon_opts o2 = {.plugins = "echo", .db_path = "/etc/passwd/a2ad.db"};
    assert_refused(&o2, NULL, "/etc/passwd is not a directory", NULL);
}
END_TEST

START_TEST(help_version_and_strict_options) {
    struct daemon_opts o = {.plugins = "echo"};
    ck_assert(daemon_prepare(&d, &o));
    char *out = NULL;
    ck_assert_int_eq(check_config_run("--help", &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: a2ad"));
    ck_assert_ptr_nonnull(strstr(out, "--version"));
    free(out);
    truncate(d.log, 0);
    ck_assert_int_eq(check_config_run("--version", &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "a2ad 0."));
    free(out);
    truncate(d.log, 0);
    ck_assert_int_eq(check_config_run("-v", &out), 2);
    ck_assert_msg(strstr(out, "-v only goes with -t") && strstr(out, "usage: a2ad"), "%s", out);
    free(out);
    truncate(d.log, 0);
    ck_assert_int_eq(check_config_run("--no-such-option", &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "usage: a2ad"));
    free(out);
}
END_TEST

Suite *ops_suite(void) {
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, metrics_move_as_jobs_run);
    tcase_add_test(tc, readiness_flips_with_a_locked_database);
    tcase_add_test(tc, readiness_fails_during_the_graceful_stop);
    tcase_add_test(tc, json_log_lines_parse);
    tcase_add_test(tc, first_webhook_failure_is_a_warning_without_secrets);
    tcase_add_test(tc, test_mode_accepts_a_good_config);
    tcase_add_test(tc, test_mode_refuses_an_option_init_refuses);
    tcase_add_test(tc, test_mode_refuses_a_misspelt_agent_section);
    tcase_add_test(tc, test_mode_refuses_a_misspelt_default_agent);
    tcase_add_test(tc, test_mode_refuses_a_missing_plugin_dir);
    tcase_add_test(tc, test_mode_refuses_a_junk_so);
    tcase_add_test(tc, test_mode_refuses_an_unusable_database_path);
    tcase_add_test(tc, help_version_and_strict_options);
    suite_add_tcase(s, tc);
    return s;
}
