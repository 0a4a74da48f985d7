/* rest: the HTTP+JSON binding of A2A 1.0 against the real daemon, the
 * parts the official client's cases (tests/interop/sdkrest.test.mjs) do
 * not reach: the HTTP status and google.rpc status of each error, wrong
 * methods and paths, query arguments, bodies, bare SSE frames, per-agent
 * paths. */
#include <check.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/sse.h"

static struct daemon_proc dp, dp2;
static long last_status; /* of the last rest() call */

static void setup(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
static void teardown(void) {
    daemon_cleanup(&dp2);
    daemon_cleanup(&dp);
    curl_global_cleanup();
}

static void start_or_fail(const struct daemon_opts *o) {
    if (!daemon_start(&dp, o)) {
        char *log = daemon_log(&dp);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

/* One REST call; the parsed body (NULL if not JSON) and the status. */
static cJSON *rest(const char *method, const char *body, long *status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static cJSON *rest(const char *method, const char *body, long *status, const char *fmt, ...) {
    char path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    struct http_resp h;
    ck_assert_msg(http_call(dp.port, method, path, body, &h), "no answer to %s %s", method, path);
    *status = last_status = h.status;
    if (h.status != 405 && h.status != 413)
        ck_assert_msg(strcasestr(h.headers, "Content-Type: application/a2a+json") ||
                          strcasestr(h.headers, "Content-Type: text/event-stream"),
                      "%s %s: %s", method, path, h.headers);
    cJSON *o = cJSON_Parse(h.body);
    http_resp_free(&h);
    return o;
}

static void expect_rest_error(cJSON *o, long unused, long want_status, const char *name,
                              const char *reason, const char *part) {
    (void)unused; /* the argument order is unspecified: read last_status */
    long status = last_status;
    char *txt = cJSON_PrintUnformatted(o);
    ck_assert_msg(status == want_status, "HTTP %ld, want %ld: %s", status, want_status, txt);
    ck_assert_msg(json_int(o, "error.code") == want_status, "%s", txt);
    ck_assert_str_eq(json_str(o, "error.status"), name);
    if (reason) ck_assert_str_eq(json_str(o, "error.details.0.reason"), reason);
    if (part) ck_assert_msg(strstr(json_str(o, "error.message"), part), "lacks %s: %s", part, txt);
    free(txt);
    cJSON_Delete(o);
}

#define MSG10(text) "{\"message\":{\"messageId\":\"m1\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"" text "\"}]}"

START_TEST(rest_resources_statuses_and_bodies) {
    struct daemon_opts o = {.plugins = "echo,modes", .default_agent = "echo"};
    start_or_fail(&o);
    long st = 0;
    /* send, at the root (default agent) and per agent */
    cJSON *r = rest("POST", MSG10("hi") ",\"configuration\":{\"taskPushNotificationConfig\":{\"url\":\"http://127.0.0.1:1/h\"}}}", &st, "/message:send");
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "task.status.state"), "TASK_STATE_COMPLETED");
    char t[40];
    snprintf(t, sizeof t, "%s", json_str(r, "task.id"));
    cJSON_Delete(r);
    r = rest("POST", MSG10("hi") "}", &st, "/agents/echo/message:send");
    ck_assert_str_eq(json_str(r, "task.status.message.parts.0.text"), "hi");
    cJSON_Delete(r);
    /* get with a query argument; a bad one is 400 INVALID_ARGUMENT */
    r = rest(NULL, NULL, &st, "/tasks/%s?historyLength=0", t);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "id"), t);
    ck_assert_ptr_null(json_at(r, "history"));
    cJSON_Delete(r);
    expect_rest_error(rest(NULL, NULL, &st, "/tasks/%s?historyLength=-3", t), st, 400, "INVALID_ARGUMENT", NULL, "historyLength");
    expect_rest_error(rest(NULL, NULL, &st, "/tasks/nope"), st, 404, "NOT_FOUND", "TASK_NOT_FOUND", "nope");
    /* a task of another agent is not found under this agent */
    expect_rest_error(rest(NULL, NULL, &st, "/agents/modes/tasks/%s", t), st, 404, "NOT_FOUND", "TASK_NOT_FOUND", NULL);
    /* list with filters (snake_case too); a bad page size */
    r = rest(NULL, NULL, &st, "/tasks?status=TASK_STATE_COMPLETED&page_size=1&includeArtifacts=true");
    ck_assert_int_eq(st, 200);
    ck_assert_int_eq(json_int(r, "pageSize"), 1);
    ck_assert_int_eq(json_int(r, "totalSize"), 2);
    ck_assert_str_eq(json_str(r, "nextPageToken"), "1");
    cJSON_Delete(r);
    expect_rest_error(rest(NULL, NULL, &st, "/tasks?pageSize=0"), st, 400, "INVALID_ARGUMENT", NULL, "pageSize");
    expect_rest_error(rest(NULL, NULL, &st, "/tasks?includeArtifacts=maybe"), st, 400, "INVALID_ARGUMENT", NULL, "includeArtifacts");
    /* cancel of a finished task: 400 FAILED_PRECONDITION, TASK_NOT_CANCELABLE */
    expect_rest_error(rest("POST", NULL, &st, "/tasks/%s:cancel", t), st, 400, "FAILED_PRECONDITION", "TASK_NOT_CANCELABLE", NULL);
    /* subscribe to a finished task (1.0): UNSUPPORTED_OPERATION */
    expect_rest_error(rest("POST", NULL, &st, "/tasks/%s:subscribe", t), st, 400, "FAILED_PRECONDITION", "UNSUPPORTED_OPERATION", NULL);
    /* push configs: the inline one is named after the task; create, get, list, delete ({}) */
    r = rest(NULL, NULL, &st, "/tasks/%s/pushNotificationConfigs/%s", t, t);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "url"), "http://127.0.0.1:1/h");
    cJSON_Delete(r);
    r = rest("POST", "{\"id\":\"c:2\",\"url\":\"http://127.0.0.1:1/x\",\"token\":\"tk\"}", &st, "/tasks/%s/pushNotificationConfigs", t);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "id"), "c:2");
    ck_assert_str_eq(json_str(r, "taskId"), t);
    cJSON_Delete(r);
    r = rest(NULL, NULL, &st, "/tasks/%s/pushNotificationConfigs", t);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "configs")), 2);
    cJSON_Delete(r);
    r = rest("DELETE", NULL, &st, "/tasks/%s/pushNotificationConfigs/c:2", t);
    ck_assert_int_eq(st, 200);
    ck_assert(cJSON_IsObject(r) && cJSON_GetArraySize(r) == 0);
    cJSON_Delete(r);
    expect_rest_error(rest(NULL, NULL, &st, "/tasks/%s/pushNotificationConfigs/c:2", t), st, 404, "NOT_FOUND", NULL, NULL);
    /* a body whose taskId is not the path's */
    expect_rest_error(rest("POST", "{\"taskId\":\"other\",\"url\":\"http://127.0.0.1:1/x\"}", &st, "/tasks/%s/pushNotificationConfigs", t),
                      st, 400, "INVALID_ARGUMENT", NULL, "does not match");
    /* bodies: not JSON, not an object, bad params */
    expect_rest_error(rest("POST", "nope", &st, "/message:send"), st, 400, "INVALID_ARGUMENT", NULL, "not valid JSON");
    expect_rest_error(rest("POST", "[1]", &st, "/message:send"), st, 400, "INVALID_ARGUMENT", NULL, "JSON object");
    expect_rest_error(rest("POST", "{}", &st, "/message:send"), st, 400, "INVALID_ARGUMENT", NULL, "params.message");
    /* input modes: CONTENT_TYPE_NOT_SUPPORTED is INVALID_ARGUMENT */
    expect_rest_error(rest("POST", "{\"message\":{\"messageId\":\"m\",\"role\":\"ROLE_USER\",\"parts\":[{\"raw\":\"aGk=\",\"mediaType\":\"application/pdf\"}]}}", &st,
                           "/agents/modes/message:send"), st, 400, "INVALID_ARGUMENT", "CONTENT_TYPE_NOT_SUPPORTED", NULL);
    /* no extended card configured: UNSUPPORTED_OPERATION */
    expect_rest_error(rest(NULL, NULL, &st, "/extendedAgentCard"), st, 400, "FAILED_PRECONDITION", "UNSUPPORTED_OPERATION", NULL);
    /* wrong method; unknown agent */
    expect_rest_error(rest("PUT", NULL, &st, "/tasks"), st, 405, "UNIMPLEMENTED", NULL, "PUT");
    expect_rest_error(rest(NULL, NULL, &st, "/message:send"), st, 405, "UNIMPLEMENTED", NULL, NULL);
    expect_rest_error(rest(NULL, NULL, &st, "/agents/ghost/tasks"), st, 404, "NOT_FOUND", NULL, "echo, modes");
    /* the card lists the binding */
    struct http_resp h;
    http_call(dp.port, NULL, "/agents/modes/.well-known/agent-card.json", NULL, &h);
    cJSON *card = cJSON_Parse(h.body);
    http_resp_free(&h);
    ck_assert_str_eq(json_str(card, "supportedInterfaces.2.protocolBinding"), "HTTP+JSON");
    ck_assert_str_eq(json_str(card, "supportedInterfaces.2.protocolVersion"), "1.0");
    ck_assert_ptr_nonnull(strstr(json_str(card, "supportedInterfaces.2.url"), "/agents/modes"));
    ck_assert_int_eq(cJSON_GetArraySize(json_at(card, "additionalInterfaces")), 2); /* 0.3: JSON-RPC, HTTP+JSON (/v1) */
    cJSON_Delete(card);
}
END_TEST

START_TEST(rest_streams_are_bare_stream_responses_with_ids) {
    struct daemon_opts o = {.plugins = "processor", .default_agent = "processor",
                            .extra = "[agent.processor]\nstep_ms = 20\n"};
    start_or_fail(&o);
    struct sse *s = sse_open(dp.port, "/message:stream", MSG10("go") "}", NULL);
    ck_assert_int_eq(sse_status(s, 10000), 200);
    char *data = NULL;
    unsigned n = 0;
    char task[40] = "", last_state[64] = "";
    while (sse_next(s, &data, 15000) == 1) {
        cJSON *e = cJSON_Parse(data);
        free(data);
        ck_assert_ptr_null(json_at(e, "jsonrpc")); /* no JSON-RPC envelope */
        if (n == 0) snprintf(task, sizeof task, "%s", json_str(e, "task.id"));
        else if (json_at(e, "statusUpdate"))
            snprintf(last_state, sizeof last_state, "%s", json_str(e, "statusUpdate.status.state"));
        ck_assert_int_eq(strncmp(sse_last_id(s), task, 36), 0);
        cJSON_Delete(e);
        n++;
    }
    sse_close(s);
    ck_assert_uint_eq(strlen(task), 36);
    ck_assert_uint_eq(n, 14);
    ck_assert_str_eq(last_state, "TASK_STATE_COMPLETED");
    /* :subscribe with Last-Event-ID replays the rest, bare too */
    char path[120], hdr[120];
    snprintf(path, sizeof path, "/tasks/%s:subscribe", task);
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %s.12", task);
    const char *h[] = {hdr, NULL};
    s = sse_open(dp.port, path, "", h);
    n = 0;
    while (sse_next(s, &data, 15000) == 1) {
        cJSON *e = cJSON_Parse(data);
        free(data);
        ck_assert_ptr_nonnull(json_at(e, n == 0 ? "artifactUpdate" : "statusUpdate"));
        cJSON_Delete(e);
        n++;
    }
    sse_close(s);
    ck_assert_uint_eq(n, 2);
}
END_TEST

/* A2A 1.0 tenants, over JSON-RPC (params.tenant) and HTTP+JSON (the path
 * prefix): a task is seen only with its tenant, also after a restart. */
static cJSON *rpc10(unsigned port, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cJSON *rpc10(unsigned port, const char *fmt, ...) {
    char body[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    static const char *const v1[] = {"A2A-Version: 1.0", NULL};
    cJSON *o = rpc_call_headers(port, "/", body, v1, NULL);
    ck_assert_ptr_nonnull(o);
    return o;
}

START_TEST(tenants_scope_tasks_in_both_bindings) {
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo"};
    start_or_fail(&o);
    long st = 0;
    cJSON *r = rpc10(dp.port, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendMessage\",\"params\":{\"tenant\":\"acme\","
                     "\"message\":{\"messageId\":\"m\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"a\"}]}}}");
    char a[40];
    snprintf(a, sizeof a, "%s", json_str(r, "result.task.id"));
    ck_assert_uint_eq(strlen(a), 36);
    cJSON_Delete(r);
    /* JSON-RPC: only with the same tenant */
    r = rpc10(dp.port, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTask\",\"params\":{\"tenant\":\"acme\",\"id\":\"%s\"}}", a);
    ck_assert_str_eq(json_str(r, "result.id"), a);
    cJSON_Delete(r);
    static const char *const others[] = {"", "\"tenant\":\"other\","};
    for (int i = 0; i < 2; i++) {
        r = rpc10(dp.port, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTask\",\"params\":{%s\"id\":\"%s\"}}", others[i], a);
        ck_assert_int_eq(json_int(r, "error.code"), -32001);
        cJSON_Delete(r);
        r = rpc10(dp.port, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"CancelTask\",\"params\":{%s\"id\":\"%s\"}}", others[i], a);
        ck_assert_int_eq(json_int(r, "error.code"), -32001);
        cJSON_Delete(r);
    }
    char body[200];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", a);
    r = rpc_call(dp.port, "/", body, NULL);
    ck_assert_int_eq(json_int(r, "error.code"), -32001); /* 0.3 has no tenant: the default one */
    cJSON_Delete(r);
    /* HTTP+JSON: the path prefix */
    r = rest(NULL, NULL, &st, "/acme/tasks/%s", a);
    ck_assert_int_eq(st, 200);
    cJSON_Delete(r);
    expect_rest_error(rest(NULL, NULL, &st, "/tasks/%s", a), st, 404, "NOT_FOUND", "TASK_NOT_FOUND", NULL);
    expect_rest_error(rest(NULL, NULL, &st, "/other/tasks/%s", a), st, 404, "NOT_FOUND", "TASK_NOT_FOUND", NULL);
    r = rest("POST", MSG10("b") "}", &st, "/agents/echo/acme/message:send");
    ck_assert_int_eq(st, 200);
    cJSON_Delete(r);
    cJSON_Delete(rest("POST", MSG10("c") "}", &st, "/message:send")); /* the default tenant */
    r = rest(NULL, NULL, &st, "/acme/tasks");
    ck_assert_int_eq(json_int(r, "totalSize"), 2);
    cJSON_Delete(r);
    r = rest(NULL, NULL, &st, "/tasks");
    ck_assert_int_eq(json_int(r, "totalSize"), 1);
    cJSON_Delete(r);
    r = rpc10(dp.port, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"tenant\":\"acme\"}}");
    ck_assert_int_eq(json_int(r, "result.totalSize"), 2);
    cJSON_Delete(r);
    expect_rest_error(rest("POST", "{\"tenant\":\"zz\",\"message\":{\"messageId\":\"m1\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"b\"}]}}", &st, "/acme/message:send"), st, 400,
                      "INVALID_ARGUMENT", NULL, "tenant");
    /* bad tenants */
    r = rpc10(dp.port, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"tenant\":5}}");
    ck_assert_int_eq(json_int(r, "error.code"), -32602);
    ck_assert_ptr_nonnull(strstr(json_str(r, "error.message"), "params.tenant"));
    cJSON_Delete(r);
    /* after a restart on the same database the task is still acme's */
    ck_assert_int_eq(daemon_stop(&dp, 15000), 0);
    char db[320];
    snprintf(db, sizeof db, "%s/a2ad.db", dp.dir);
    o.db_path = db;
    if (!daemon_start(&dp2, &o)) ck_abort_msg("no restart");
    unsigned first = dp.port;
    dp.port = dp2.port; /* rest() talks to dp */
    expect_rest_error(rest(NULL, NULL, &st, "/tasks/%s", a), st, 404, "NOT_FOUND", NULL, NULL);
    r = rest(NULL, NULL, &st, "/acme/tasks/%s", a);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "id"), a);
    cJSON_Delete(r);
    dp.port = first;
}
END_TEST

Suite *rest_suite(void);
Suite *rest_suite(void) {
    Suite *s = suite_create("rest");
    TCase *tc = tcase_create("http+json");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rest_resources_statuses_and_bodies);
    tcase_add_test(tc, rest_streams_are_bare_stream_responses_with_ids);
    tcase_add_test(tc, tenants_scope_tasks_in_both_bindings);
    suite_add_tcase(s, tc);
    return s;
}
