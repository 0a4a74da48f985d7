/* The operators' surface against the real binary: the admin API
 * (/admin/v1/: tokens, task lists and filters, a task, cancel, webhook
 * events listed, replayed and purged), the dashboard's files (/ui/), and
 * the a2ctl client (its output on a terminal and off one, its exit codes). */
#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/receiver.h"
#include "util.h"
#include "delivery/guard.h"
#include "delivery/webhooks.h"
#include <pthread.h>
#include <stdatomic.h>

Suite *admin_suite(void);

#define ADMIN_TOKEN "admin-token-for-tests-0123456789"
#define AUTH "Authorization: Bearer " ADMIN_TOKEN
#define WITH_ADMIN "admin_tokens = " ADMIN_TOKEN "\n"
#define PROCESSOR_SLOW "[agent.processor]\nstep_ms = 300\n"
#define PROCESSOR_FAST "[agent.processor]\nstep_ms = 5\n"

static struct daemon_proc dp;
static struct receiver *rcv;

static void setup(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
}

static void teardown(void) {
    daemon_cleanup(&dp);
    receiver_stop(rcv);
    curl_global_cleanup();
}

static void start_or_fail(const struct daemon_opts *o) {
    if (!daemon_start(&dp, o)) {
        char *log = daemon_log(&dp);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

static void start_admin_with(const char *extra, const char *webhooks_backoff) {
    struct daemon_opts o = {.plugins = "processor,echo,failing",
                            .server_extra = WITH_ADMIN,
                            .webhooks_backoff = webhooks_backoff,
                            .extra = extra ? extra : PROCESSOR_FAST};
    start_or_fail(&o);
}

static void start_admin(const char *extra) { start_admin_with(extra, NULL); }

/* GET or POST (body "" = POST) on the admin API with the token; parsed. */
static cJSON *adm(const char *method, const char *path, long *status) {
    static const char *const h[] = {AUTH, NULL};
    struct http_resp r;
    ck_assert(http_call_headers(dp.port, method, path, strcmp(method, "POST") == 0 ? "" : NULL, h, &r));
    *status = r.status;
    cJSON *o = cJSON_Parse(r.body);
    if (!o) ck_abort_msg("%s %s: not JSON: %s", method, path, r.body);
    http_resp_free(&r);
    return o;
}

static cJSON *adm_ok(const char *method, const char *path) {
    long st;
    cJSON *o = adm(method, path, &st);
    if (st != 200) {
        char *s = cJSON_PrintUnformatted(o);
        ck_abort_msg("%s %s: HTTP %ld: %s", method, path, st, s);
    }
    return o;
}

/* A non-blocking message/send to agent; the new task's id (static buffer
 * per call site is not needed: copied into out). */
static void send_job(const char *agent, const char *text, const char *webhook, char out[64]) {
    char body[2048], path[128];
    snprintf(path, sizeof path, "/agents/%s", agent);
    char push[600] = "";
    if (webhook)
        snprintf(push, sizeof push, ",\"pushNotificationConfig\":{\"url\":\"%s\"}", webhook);
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{"
             "\"message\":{\"kind\":\"message\",\"messageId\":\"m-%s\",\"role\":\"user\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]},"
             "\"configuration\":{\"blocking\":false%s}}}",
             text, text, push);
    long st = 0;
    cJSON *o = rpc_call(dp.port, path, body, &st);
    ck_assert_int_eq(st, 200);
    const char *id = json_str(o, "result.id");
    ck_assert_ptr_nonnull(id);
    snprintf(out, 64, "%s", id);
    cJSON_Delete(o);
}

/* Bounded wait for a task (admin view) to reach state. */
static void wait_state(const char *id, const char *state) {
    char path[160];
    snprintf(path, sizeof path, "/admin/v1/tasks/%s", id);
    const char *now = NULL;
    for (int i = 0; i < 500; i++) {
        cJSON *o = adm_ok("GET", path);
        now = json_str(o, "summary.state");
        bool done = strcmp(now, state) == 0;
        cJSON_Delete(o);
        if (done) return;
        test_nap_ms(20);
    }
    ck_abort_msg("task %s never reached %s", id, state);
}

/* ---- tokens ---------------------------------------------------------------- */

START_TEST(admin_off_without_tokens) {
    struct daemon_opts o = {.plugins = "echo"};
    start_or_fail(&o);
    struct http_resp r;
    ck_assert(http_call(dp.port, "GET", "/admin/v1/tasks", NULL, &r));
    ck_assert_int_eq(r.status, 403);
    ck_assert_ptr_nonnull(strstr(r.body, "admin API disabled: set [server] admin_tokens"));
    http_resp_free(&r);
}
END_TEST

START_TEST(admin_needs_the_token) {
    start_admin(NULL);
    struct http_resp r;
    ck_assert(http_call(dp.port, "GET", "/admin/v1/tasks", NULL, &r));
    ck_assert_int_eq(r.status, 401);
    ck_assert_ptr_nonnull(strcasestr(r.headers, "WWW-Authenticate: Bearer"));
    ck_assert_ptr_nonnull(strstr(r.body, "Authorization: Bearer"));
    http_resp_free(&r);
    static const char *const wrong[] = {"Authorization: Bearer admin-token-for-tests-0123456788", NULL};
    ck_assert(http_call_headers(dp.port, "GET", "/admin/v1/tasks", NULL, wrong, &r));
    ck_assert_int_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.body, "wrong admin token"));
    ck_assert_ptr_null(strstr(r.body, ADMIN_TOKEN)); /* never echoed */
    http_resp_free(&r);
    /* Not even a cancel goes through without it. */
    char id[64];
    send_job("processor", "guarded", NULL, id);
    char path[160];
    snprintf(path, sizeof path, "/admin/v1/tasks/%s/cancel", id);
    ck_assert(http_call(dp.port, "POST", path, "", &r));
    ck_assert_int_eq(r.status, 401);
    http_resp_free(&r);
    cJSON *o = adm_ok("GET", "/admin/v1/tasks");
    ck_assert_int_eq(json_int(o, "total"), 1);
    cJSON_Delete(o);
}
END_TEST

/* ---- lists and filters ------------------------------------------------------- */

START_TEST(admin_lists_tasks_of_every_agent_with_filters) {
    start_admin(NULL);
    char ids[5][64];
    send_job("echo", "one", NULL, ids[0]);
    send_job("echo", "two", NULL, ids[1]);
    send_job("processor", "three", NULL, ids[2]);
    send_job("failing", "four", NULL, ids[3]);
    send_job("processor", "five", NULL, ids[4]);
    for (int i = 0; i < 5; i++) wait_state(ids[i], i == 3 ? "failed" : "completed");

    cJSON *o = adm_ok("GET", "/admin/v1/tasks");
    ck_assert_int_eq(json_int(o, "total"), 5);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(o, "tasks")), 5);
    ck_assert(cJSON_IsNull(json_at(o, "nextCursor")));
    cJSON_Delete(o);

    o = adm_ok("GET", "/admin/v1/tasks?agent=echo");
    ck_assert_int_eq(json_int(o, "total"), 2);
    const cJSON *t;
    cJSON_ArrayForEach(t, json_at(o, "tasks")) ck_assert_str_eq(json_str(t, "agent"), "echo");
    cJSON_Delete(o);

    o = adm_ok("GET", "/admin/v1/tasks?state=failed");
    ck_assert_int_eq(json_int(o, "total"), 1);
    ck_assert_str_eq(json_str(o, "tasks.0.id"), ids[3]);
    ck_assert_str_eq(json_str(o, "tasks.0.agent"), "failing");
    cJSON_Delete(o);

    o = adm_ok("GET", "/admin/v1/tasks?agent=processor&state=completed");
    ck_assert_int_eq(json_int(o, "total"), 2);
    ck_assert_int_eq(json_int(o, "tasks.0.progress"), 1);
    cJSON_Delete(o);

    /* The context filter: one task's context has only that task. */
    char path[256];
    o = adm_ok("GET", "/admin/v1/tasks?limit=1");
    snprintf(path, sizeof path, "/admin/v1/tasks?context=%s", json_str(o, "tasks.0.contextId"));
    cJSON_Delete(o);
    o = adm_ok("GET", path);
    ck_assert_int_eq(json_int(o, "total"), 1);
    cJSON_Delete(o);

    /* Pages of two, by cursor, give every task exactly once. */
    char seen[5][64] = {{0}};
    int n_seen = 0;
    char cursor[200] = "";
    for (int page = 0; page < 5; page++) {
        snprintf(path, sizeof path, "/admin/v1/tasks?limit=2%s%s", *cursor ? "&cursor=" : "", cursor);
        o = adm_ok("GET", path);
        cJSON_ArrayForEach(t, json_at(o, "tasks")) {
            for (int k = 0; k < n_seen; k++) ck_assert_str_ne(seen[k], json_str(t, "id"));
            ck_assert_int_lt(n_seen, 5);
            snprintf(seen[n_seen++], 64, "%s", json_str(t, "id"));
        }
        const cJSON *next = json_at(o, "nextCursor");
        snprintf(cursor, sizeof cursor, "%s", cJSON_IsString(next) ? next->valuestring : "");
        cJSON_Delete(o);
        if (!*cursor) break;
    }
    ck_assert_int_eq(n_seen, 5);
}
END_TEST

START_TEST(admin_bad_filters_are_named) {
    start_admin(NULL);
    static const struct {
        const char *path, *says;
        long status;
    } cases[] = {
        {"/admin/v1/tasks?state=bogus", "bad filter state=bogus", 400},
        {"/admin/v1/tasks?agent=nobody", "bad filter agent=nobody: loaded agents are", 400},
        {"/admin/v1/tasks?limit=0", "bad filter limit=0", 400},
        {"/admin/v1/tasks?limit=ten", "bad filter limit=ten", 400},
        {"/admin/v1/tasks?cursor=junk", "bad filter cursor=junk", 400},
        {"/admin/v1/tasks?colour=red", "unknown filter 'colour'", 400},
        {"/admin/v1/tasks/0000-no-such-task", "no task 0000-no-such-task", 404},
        {"/admin/v1/nothing", "no such admin path", 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long st;
        cJSON *o = adm("GET", cases[i].path, &st);
        ck_assert_msg(st == cases[i].status, "%s: HTTP %ld", cases[i].path, st);
        const char *err = json_str(o, "error");
        ck_assert_msg(err && strstr(err, cases[i].says), "%s: %s", cases[i].path, err ? err : "(none)");
        cJSON_Delete(o);
    }
    long st;
    cJSON *o = adm("POST", "/admin/v1/webhooks/purge", &st);
    ck_assert_int_eq(st, 400);
    ck_assert_ptr_nonnull(strstr(json_str(o, "error"), "missing filter target"));
    cJSON_Delete(o);
    o = adm("POST", "/admin/v1/tasks/x/cancel", &st);
    ck_assert_int_eq(st, 404);
    cJSON_Delete(o);
}
END_TEST

/* ---- a task, cancel ---------------------------------------------------------- */

START_TEST(admin_shows_a_task_and_cancels_it) {
    start_admin(PROCESSOR_SLOW);
    char done[64], slow[64], path[200];
    send_job("echo", "hello admin", NULL, done);
    wait_state(done, "completed");
    snprintf(path, sizeof path, "/admin/v1/tasks/%s", done);
    cJSON *o = adm_ok("GET", path);
    ck_assert_str_eq(json_str(o, "task.id"), done);
    ck_assert_str_eq(json_str(o, "task.history.0.parts.0.text"), "hello admin");
    ck_assert_str_eq(json_str(o, "summary.agent"), "echo");
    ck_assert_int_eq(json_int(o, "webhooks.count"), 0);
    cJSON_Delete(o);

    send_job("processor", "slow one", NULL, slow);
    wait_state(slow, "working");
    snprintf(path, sizeof path, "/admin/v1/tasks/%s/cancel", slow);
    o = adm_ok("POST", path);
    ck_assert_str_eq(json_str(o, "summary.state"), "canceled");
    cJSON_Delete(o);
    /* Everyone sees it: A2A tasks/get too. */
    char body[300];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", slow);
    long st;
    o = rpc_call(dp.port, "/agents/processor", body, &st);
    ck_assert_str_eq(json_str(o, "result.status.state"), "canceled");
    cJSON_Delete(o);
    o = adm("POST", path, &st);
    ck_assert_int_eq(st, 409);
    ck_assert_ptr_nonnull(strstr(json_str(o, "error"), "is canceled and cannot be canceled"));
    cJSON_Delete(o);

    o = adm_ok("GET", "/admin/v1/agents");
    const cJSON *a;
    bool found = false;
    cJSON_ArrayForEach(a, json_at(o, "agents")) {
        if (strcmp(json_str(a, "name"), "processor") != 0) continue;
        found = true;
        ck_assert_int_eq(json_int(a, "tasks.canceled"), 1);
    }
    ck_assert(found);
    cJSON_Delete(o);
}
END_TEST

/* ---- webhook events ---------------------------------------------------------- */

/* A receiver that answers 503 with a long backoff: the events stay pending. */
#define STUCK_WEBHOOKS "backoff_initial_ms = 600000\nbackoff_max_ms = 600000\n"

START_TEST(admin_lists_replays_and_purges_webhook_events) {
    start_admin_with(PROCESSOR_FAST, STUCK_WEBHOOKS);
    receiver_fail_next(rcv, 1000, 503);
    char url[300], id[64], path[300];
    /* Credentials and a query secret in the URL must never be shown. */
    snprintf(url, sizeof url, "http://hookuser:hookpass@127.0.0.1:%u/hook?sig=querysecret",
             receiver_port(rcv));
    send_job("echo", "stuck", url, id);
    wait_state(id, "completed");
    snprintf(path, sizeof path, "/admin/v1/tasks/%s/webhooks", id);
    cJSON *o = NULL;
    for (int i = 0; i < 300; i++) { /* until the first attempt failed */
        cJSON_Delete(o);
        o = adm_ok("GET", path);
        if (json_int(o, "events.0.attempts") >= 1) break;
        test_nap_ms(20);
    }
    int pending = json_int(o, "count");
    ck_assert_int_ge(pending, 2); /* working/ended events of an echo job */
    char *text = cJSON_PrintUnformatted(o);
    ck_assert_ptr_null(strstr(text, "hookpass"));
    ck_assert_ptr_null(strstr(text, "hookuser"));
    ck_assert_ptr_null(strstr(text, "querysecret"));
    free(text);
    char shown[200];
    snprintf(shown, sizeof shown, "http://127.0.0.1:%u/hook", receiver_port(rcv));
    ck_assert_str_eq(json_str(o, "events.0.target"), shown);
    ck_assert_str_eq(json_str(o, "events.0.taskId"), id);
    ck_assert_str_eq(json_str(o, "events.0.state"), "waiting to retry");
    ck_assert_str_eq(json_str(o, "events.0.lastError"), "HTTP 503");
    ck_assert(cJSON_IsString(json_at(o, "events.0.nextAttempt")));
    ck_assert_str_eq(json_str(o, "events.1.state"), "behind an earlier event");
    cJSON_Delete(o);

    /* The receiver is back: a replay sends them now, not in ten minutes. */
    receiver_fail_next(rcv, 0, 503);
    snprintf(path, sizeof path, "/admin/v1/tasks/%s/webhooks/replay", id);
    o = adm_ok("POST", path);
    ck_assert_int_eq(json_int(o, "replayed"), pending);
    cJSON_Delete(o);
    ck_assert(receiver_wait(rcv, (size_t)pending, 10000));
    snprintf(path, sizeof path, "/admin/v1/tasks/%s/webhooks", id);
    for (int i = 0; i < 300; i++) {
        o = adm_ok("GET", path);
        int left = json_int(o, "count");
        cJSON_Delete(o);
        if (left == 0) break;
        ck_assert_int_lt(i, 299);
        test_nap_ms(20);
    }

    /* Down again: a second task's events are purged by task, a third's by target. */
    receiver_fail_next(rcv, 1000, 503);
    char id2[64], id3[64];
    send_job("echo", "purge-by-task", url, id2);
    send_job("echo", "purge-by-target", url, id3);
    wait_state(id2, "completed");
    wait_state(id3, "completed");
    snprintf(path, sizeof path, "/admin/v1/tasks/%s/webhooks/purge", id2);
    o = adm_ok("POST", path);
    ck_assert_int_ge(json_int(o, "purged"), 2);
    cJSON_Delete(o);
    snprintf(path, sizeof path, "/admin/v1/tasks/%s/webhooks", id2);
    o = adm_ok("GET", path);
    ck_assert_int_eq(json_int(o, "count"), 0);
    cJSON_Delete(o);
    /* The task records what was dropped, and why. */
    snprintf(path, sizeof path, "/admin/v1/tasks/%s", id2);
    for (int i = 0; i < 300; i++) {
        o = adm_ok("GET", path);
        bool ok = strstr(json_str(o, "task.metadata.a2ad.webhooksGivenUp.0.reason"),
                         "purged by an operator");
        cJSON_Delete(o);
        if (ok) break;
        ck_assert_int_lt(i, 299);
        test_nap_ms(20);
    }

    char *esc = curl_easy_escape(NULL, shown, 0);
    snprintf(path, sizeof path, "/admin/v1/webhooks?target=%s", esc);
    o = adm_ok("GET", path);
    int by_target = json_int(o, "count");
    ck_assert_int_ge(by_target, 2);
    cJSON_Delete(o);
    snprintf(path, sizeof path, "/admin/v1/webhooks/purge?target=%s", esc);
    curl_free(esc);
    o = adm_ok("POST", path);
    ck_assert_int_eq(json_int(o, "purged"), by_target);
    cJSON_Delete(o);
    o = adm_ok("GET", "/admin/v1/webhooks");
    ck_assert_int_eq(json_int(o, "count"), 0);
    cJSON_Delete(o);
    /* Purged means never sent: the receiver got only the replayed ones. */
    test_nap_ms(200);
    ck_assert_int_eq(receiver_count(rcv), (size_t)pending);
    /* And a stop no longer waits for them (flush_s). */
    ck_assert_int_eq(daemon_stop(&dp, 5000), 0);
    char *log = daemon_log(&dp);
    ck_assert_ptr_nonnull(strstr(log, "admin: purged"));
    ck_assert_ptr_null(strstr(log, "querysecret"));
    ck_assert_ptr_null(strstr(log, "hookpass"));
    free(log);
}
END_TEST

/* ---- the dashboard's files ------------------------------------------------- */

START_TEST(ui_files_are_served_with_a_strict_csp) {
    start_admin(NULL);
    struct http_resp r;
    ck_assert(http_call(dp.port, "GET", "/ui/", NULL, &r));
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strcasestr(r.headers, "Content-Type: text/html"));
    ck_assert_ptr_nonnull(strcasestr(r.headers, "Content-Security-Policy: default-src 'none'; script-src 'self'"));
    ck_assert_ptr_nonnull(strstr(r.body, "<script src=\"app.js\""));
    ck_assert_ptr_null(strstr(r.body, "<script>")); /* no inline script: the CSP forbids it */
    http_resp_free(&r);
    static const struct { const char *path, *type; } files[] = {
        {"/ui/app.js", "text/javascript"}, {"/ui/style.css", "text/css"}, {"/ui/index.html", "text/html"}};
    for (size_t i = 0; i < 3; i++) {
        ck_assert(http_call(dp.port, "GET", files[i].path, NULL, &r));
        ck_assert_int_eq(r.status, 200);
        char want[80];
        snprintf(want, sizeof want, "Content-Type: %s", files[i].type);
        ck_assert_msg(strcasestr(r.headers, want), "%s: %s", files[i].path, r.headers);
        http_resp_free(&r);
    }
    ck_assert(http_call(dp.port, "GET", "/ui", NULL, &r));
    ck_assert_int_eq(r.status, 301);
    ck_assert_ptr_nonnull(strcasestr(r.headers, "Location: /ui/"));
    http_resp_free(&r);
    ck_assert(http_call(dp.port, "GET", "/ui/../a2ad.conf", NULL, &r));
    ck_assert_int_eq(r.status, 404);
    http_resp_free(&r);
    daemon_stop(&dp, 5000);
    daemon_cleanup(&dp);

    struct daemon_opts o = {.plugins = "echo", .server_extra = "ui = no\n"};
    start_or_fail(&o);
    ck_assert(http_call(dp.port, "GET", "/ui/", NULL, &r));
    ck_assert_int_eq(r.status, 404);
    ck_assert_ptr_nonnull(strstr(r.body, "the dashboard is off ([server] ui = no)"));
    http_resp_free(&r);
}
END_TEST

/* ---- a2ctl ------------------------------------------------------------------- */

/* Run a2ctl with args (a shell fragment) against the daemon; its stdout in
 * *out (malloc'd, stderr folded in when err is set); returns its exit code. */
static int a2ctl(const char *env, const char *args, bool err, char **out) {
    char bin[512], cmd[2048];
    build_path("a2ctl", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "env -u A2CTL_TOKEN %s timeout 60 %s --url http://127.0.0.1:%u %s%s </dev/null",
             env ? env : "", bin, dp.port, args, err ? " 2>&1" : " 2>/dev/null");
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (len + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(a2ctl_exit_codes_tell_outcomes_apart) {
    start_admin(PROCESSOR_SLOW);
    char *out;
    ck_assert_int_eq(a2ctl(NULL, "send echo 'hi there' --wait", false, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "state     completed"));
    free(out);
    ck_assert_int_eq(a2ctl(NULL, "send failing boom --wait", false, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "state     failed"));
    free(out);
    ck_assert_int_eq(a2ctl(NULL, "send processor '   ' --wait", false, &out), 4);
    ck_assert_ptr_nonnull(strstr(out, "state     rejected"));
    free(out);

    /* Not waiting: the id and the ack's state. */
    ck_assert_int_eq(a2ctl(NULL, "send processor slow", false, &out), 0);
    char id[64] = "";
    sscanf(out, "%63s", id);
    /* The ack's state: submitted, or working when a worker was quicker. */
    ck_assert_msg(strstr(out, " submitted\n") || strstr(out, " working\n"), "%s", out);
    free(out);
    char args[200];
    snprintf(args, sizeof args, "cancel %s", id);
    ck_assert_int_eq(a2ctl(NULL, args, false, &out), 3);
    ck_assert_ptr_nonnull(strstr(out, "canceled"));
    free(out);
    snprintf(args, sizeof args, "get %s", id);
    ck_assert_int_eq(a2ctl(NULL, args, false, &out), 3);
    ck_assert_ptr_nonnull(strstr(out, "agent     processor"));
    free(out);
    snprintf(args, sizeof args, "--json get %s", id);
    ck_assert_int_eq(a2ctl(NULL, args, false, &out), 3);
    cJSON *j = cJSON_Parse(out);
    ck_assert_str_eq(json_str(j, "status.state"), "canceled");
    cJSON_Delete(j);
    free(out);

    /* Usage and connection errors: 2, with a message. */
    ck_assert_int_eq(a2ctl(NULL, "frobnicate", true, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown command frobnicate"));
    free(out);
    ck_assert_int_eq(a2ctl(NULL, "send echo", true, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "send needs AGENT and TEXT"));
    free(out);
    ck_assert_int_eq(a2ctl(NULL, "get no-such-task", true, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "no agent has task no-such-task"));
    free(out);
    ck_assert_int_eq(a2ctl(NULL, "--url http://127.0.0.1:1 card", true, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "127.0.0.1:1"));
    free(out);

    /* The admin commands: refused without a token, with it a table. */
    ck_assert_int_eq(a2ctl(NULL, "list", true, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "A2CTL_TOKEN"));
    free(out);
    ck_assert_int_eq(a2ctl("A2CTL_TOKEN=" ADMIN_TOKEN, "list --state canceled", false, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, id));
    ck_assert_ptr_null(strstr(out, "failing")); /* filtered out */
    free(out);
    ck_assert_int_eq(a2ctl(NULL, "--token " ADMIN_TOKEN " list --state nonsense", true, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "bad filter state=nonsense"));
    free(out);
    snprintf(args, sizeof args, "--token %s webhooks %s", ADMIN_TOKEN, id);
    ck_assert_int_eq(a2ctl(NULL, args, false, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "no pending webhook events"));
    free(out);
    ck_assert_int_eq(a2ctl(NULL, "card processor", false, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "name         processor"));
    free(out);
}
END_TEST

START_TEST(a2ctl_follow_prints_plain_lines_off_a_terminal) {
    start_admin(PROCESSOR_FAST);
    char *out;
    ck_assert_int_eq(a2ctl(NULL, "send processor 'follow me' --follow", false, &out), 0);
    /* One line per step, no control characters. */
    ck_assert_ptr_nonnull(strstr(out, "\nworking 50% Step 5/10\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nworking 100% Step 10/10\n"));
    ck_assert_ptr_nonnull(strstr(out, "artifact  results.json (application/json"));
    ck_assert_ptr_nonnull(strstr(out, "\ncompleted: Processing complete!\n"));
    ck_assert_ptr_null(strchr(out, '\r'));
    ck_assert_ptr_null(strchr(out, '\033'));
    free(out);
    ck_assert_int_eq(a2ctl(NULL, "send failing oops --follow", false, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "failed: "));
    free(out);
}
END_TEST

START_TEST(a2ctl_follow_draws_a_bar_on_a_terminal) {
    start_admin(PROCESSOR_FAST);
    char bin[512], cmd[1024];
    build_path("a2ctl", bin, sizeof bin);
    /* script(1) gives a2ctl a pseudo-terminal, as a user's shell would. */
    snprintf(cmd, sizeof cmd,
             "COLUMNS=100 timeout 60 script -qec \"%s --url http://127.0.0.1:%u send processor "
             "'on a tty' --follow\" /dev/null </dev/null",
             bin, dp.port);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    static char out[1 << 16];
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = '\0';
    int st = pclose(p);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit %d: %s", st, out);
    /* The line is redrawn in place: \r, the bar, erase to the end of line. */
    size_t redraws = 0;
    for (const char *c = out; (c = strstr(c, "\r[")); c++) redraws++;
    ck_assert_msg(redraws >= 10, "%zu redraws: %s", redraws, out);
    ck_assert_ptr_nonnull(strstr(out, "[###############---------------]  50%  working   Step 5/10\033[K"));
    ck_assert_ptr_nonnull(strstr(out, "[##############################] 100%"));
    ck_assert_ptr_nonnull(strstr(out, "completed: Processing complete!"));
    /* No step gets a line of its own. */
    ck_assert_ptr_null(strstr(out, "\nworking"));
}
END_TEST


/* ---- webhooks_act in process (under the sanitizers with the suite) -------- */

static void wh_teardown(void) {
    webhooks_stop(0); /* before the receiver and curl go */
    teardown();
}

static void post_for(const char *task, const char *url, int i) {
    char key[64], body[64];
    snprintf(key, sizeof key, "%s|cfg", task);
    snprintf(body, sizeof body, "{\"n\":%d}", i);
    struct webhook_post p = {.order_key = key, .url = url, .body = strdup(body),
                             .len = strlen(body), .task_id = task};
    ck_assert_int_eq(webhooks_post(&p), A2AD_OK);
}

static size_t act(enum webhooks_action a, const char *task, const char *target,
                  struct webhooks_pending **out, size_t *n) {
    struct webhooks_select sel = {.task_id = task, .target = target, .max = 100};
    size_t matched = 0;
    ck_assert_int_eq(webhooks_act(a, &sel, out, n, &matched), A2AD_OK);
    return matched;
}

struct lister { atomic_int *stop; size_t calls; };

static void *keep_listing(void *arg) {
    struct lister *l = arg;
    while (!atomic_load(l->stop)) {
        struct webhooks_pending *p;
        size_t n, m;
        struct webhooks_select sel = {.max = 10};
        if (webhooks_act(WEBHOOKS_LIST, &sel, &p, &n, &m) == A2AD_OK) webhooks_pending_free(p, n);
        l->calls++;
    }
    return NULL;
}

START_TEST(webhooks_act_lists_replays_and_purges_in_process) {
    struct webhooks_options o = {.timeout_ms = 2000, .connect_timeout_ms = 1000,
                                 .max_attempts = 100, .backoff_initial_ms = 600000,
                                 .backoff_max_ms = 600000, .max_in_flight = 4,
                                 .max_pending = 1000};
    /* The receiver is on 127.0.0.1, which the SSRF guard refuses by default. */
    ck_assert_int_eq(guard_set_allow("127.0.0.0/8, ::1/128"), A2AD_OK);
    ck_assert_int_eq(webhooks_start(&o), A2AD_OK);
    receiver_fail_next(rcv, 1000, 503);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook?secret=x", receiver_port(rcv));
    for (int i = 0; i < 3; i++) post_for("t1", url, i);
    for (int i = 0; i < 2; i++) post_for("t2", url, i);
    for (int i = 0; i < 300 && receiver_attempts(rcv) < 2; i++) test_nap_ms(10);
    ck_assert_uint_ge(receiver_attempts(rcv), 2); /* both heads tried once, now in backoff */

    /* Others keep asking while we act: the thread answers everyone. */
    atomic_int stop = 0;
    struct lister l[2] = {{&stop, 0}, {&stop, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, keep_listing, &l[i]);

    struct webhooks_pending *p;
    size_t n;
    ck_assert_uint_eq(act(WEBHOOKS_LIST, "t1", NULL, &p, &n), 3);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(p[0].state, "waiting to retry");
    ck_assert_uint_eq(p[0].attempts, 1);
    ck_assert_str_eq(p[0].last_error, "HTTP 503");
    ck_assert_uint_gt(p[0].next_attempt_ms, util_wall_ms() + 60000); /* ten minutes away */
    ck_assert_str_eq(p[1].state, "behind an earlier event");
    ck_assert_ptr_null(strstr(p[0].target, "secret"));
    webhooks_pending_free(p, n);
    char shown[128];
    snprintf(shown, sizeof shown, "http://127.0.0.1:%u/hook", receiver_port(rcv));
    ck_assert_uint_eq(act(WEBHOOKS_LIST, NULL, shown, &p, &n), 5);
    webhooks_pending_free(p, n);

    /* The receiver is back: t1 replayed goes now, in order; t2 waits. */
    receiver_fail_next(rcv, 0, 503);
    ck_assert_uint_eq(act(WEBHOOKS_REPLAY, "t1", NULL, &p, &n), 3);
    webhooks_pending_free(p, n);
    ck_assert(receiver_wait(rcv, 3, 10000));
    for (int i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"n\":%d}", i);
        ck_assert_str_eq(receiver_get(rcv, (size_t)i)->body, want);
    }
    /* t2 purged: never sent, counted as given up, the queue empty. */
    struct webhooks_stats before, after;
    webhooks_get_stats(&before);
    ck_assert_uint_eq(act(WEBHOOKS_PURGE, "t2", NULL, &p, &n), 2);
    webhooks_pending_free(p, n);
    for (int i = 0; i < 300; i++) {
        webhooks_get_stats(&after);
        if (after.pending == 0) break;
        test_nap_ms(10);
    }
    ck_assert_uint_eq(after.pending, 0);
    ck_assert_uint_eq(after.given_up, before.given_up + 2);
    ck_assert_uint_eq(act(WEBHOOKS_LIST, NULL, NULL, &p, &n), 0);
    webhooks_pending_free(p, n);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    ck_assert_uint_gt(l[0].calls + l[1].calls, 0);
    test_nap_ms(100);
    ck_assert_uint_eq(receiver_count(rcv), 3);
    webhooks_stop(0);
    /* Stopped: refused, not hung. */
    struct webhooks_select sel = {.max = 1};
    size_t m;
    ck_assert_int_eq(webhooks_act(WEBHOOKS_LIST, &sel, &p, &n, &m), A2AD_ERR_STATE);
}
END_TEST

Suite *admin_suite(void) {
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("admin");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, admin_off_without_tokens);
    tcase_add_test(tc, admin_needs_the_token);
    tcase_add_test(tc, admin_lists_tasks_of_every_agent_with_filters);
    tcase_add_test(tc, admin_bad_filters_are_named);
    tcase_add_test(tc, admin_shows_a_task_and_cancels_it);
    tcase_add_test(tc, admin_lists_replays_and_purges_webhook_events);
    tcase_add_test(tc, ui_files_are_served_with_a_strict_csp);
    tcase_add_test(tc, a2ctl_exit_codes_tell_outcomes_apart);
    tcase_add_test(tc, a2ctl_follow_prints_plain_lines_off_a_terminal);
    tcase_add_test(tc, a2ctl_follow_draws_a_bar_on_a_terminal);
    suite_add_tcase(s, tc);
    TCase *wh = tcase_create("webhooks_act");
    tcase_add_checked_fixture(wh, setup, wh_teardown);
    tcase_set_timeout(wh, 60);
    tcase_add_test(wh, webhooks_act_lists_replays_and_purges_in_process);
    suite_add_tcase(s, wh);
    return s;
}
