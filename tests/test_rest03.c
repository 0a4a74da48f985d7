/* rest03: A2A 0.3's HTTP+JSON binding (/v1/...) against the real daemon:
 * the 0.3 proto's JSON shapes in and out, the error bodies ({code,
 * message}) and their HTTP statuses, streams as proto StreamResponses,
 * push-config resources, per-agent paths and authentication. The official
 * 0.3 client's REST transport runs the same scenarios in
 * tests/interop/sdkrest03.test.mjs. */
#include <check.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/sse.h"

static struct daemon_proc dp;
static long last_status;
static const char *const *auth_headers;

static void setup(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
static void teardown(void) {
    daemon_cleanup(&dp);
    curl_global_cleanup();
    auth_headers = NULL;
}

static void start_or_fail(const struct daemon_opts *o) {
    if (!daemon_start(&dp, o)) {
        char *log = daemon_log(&dp);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

static cJSON *rest(const char *method, const char *body, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static cJSON *rest(const char *method, const char *body, const char *fmt, ...) {
    char path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    struct http_resp h;
    ck_assert_msg(http_call_headers(dp.port, method, path, body, auth_headers, &h), "no answer to %s", path);
    last_status = h.status;
    ck_assert_msg(strcasestr(h.headers, "Content-Type: application/json") ||
                      strcasestr(h.headers, "Content-Type: text/event-stream"),
                  "%s %s: %s", method ? method : "GET", path, h.headers);
    cJSON *o = cJSON_Parse(h.body);
    http_resp_free(&h);
    return o;
}

/* A 0.3 REST error: {code, message} at the top, with this HTTP status. */
static void expect_error(cJSON *o, long want_status, int code, const char *part) {
    char *txt = cJSON_PrintUnformatted(o);
    ck_assert_msg(last_status == want_status, "HTTP %ld, want %ld: %s", last_status, want_status, txt);
    ck_assert_msg(json_int(o, "code") == code, "code, want %d: %s", code, txt);
    ck_assert_ptr_null(json_at(o, "error"));
    if (part) ck_assert_msg(strstr(json_str(o, "message"), part), "lacks %s: %s", part, txt);
    free(txt);
    cJSON_Delete(o);
}

#define MSG03(text) "{\"message\":{\"messageId\":\"m1\",\"role\":\"ROLE_USER\",\"content\":[{\"text\":\"" text "\"}]}"

START_TEST(rest03_resources_shapes_and_statuses) {
    struct daemon_opts o = {.plugins = "echo,modes", .default_agent = "echo"};
    start_or_fail(&o);
    /* send at the root, with an inline push config: the 0.3 proto shapes */
    cJSON *r = rest("POST", MSG03("hi") ",\"configuration\":{\"blocking\":true,\"pushNotification\":"
                                        "{\"url\":\"http://127.0.0.1:1/h\"}}}", "/v1/message:send");
    ck_assert_int_eq(last_status, 200);
    ck_assert_str_eq(json_str(r, "task.status.state"), "TASK_STATE_COMPLETED");
    ck_assert_str_eq(json_str(r, "task.status.message.role"), "ROLE_AGENT");
    ck_assert_str_eq(json_str(r, "task.status.message.content.0.text"), "hi");
    ck_assert_ptr_null(json_at(r, "task.kind"));
    ck_assert_ptr_null(json_at(r, "task.status.message.parts"));
    char t[40];
    snprintf(t, sizeof t, "%s", json_str(r, "task.id"));
    ck_assert_uint_eq(strlen(t), 36);
    cJSON_Delete(r);
    /* per agent; a data part and a file part reach the agent */
    r = rest("POST", "{\"message\":{\"messageId\":\"m2\",\"role\":\"ROLE_USER\",\"content\":[{\"text\":\"x\"},"
                     "{\"data\":{\"data\":{\"k\":1}}},{\"file\":{\"fileWithUri\":\"http://e/f\",\"mimeType\":\"text/plain\"}}]}}",
             "/agents/echo/v1/message:send");
    ck_assert_int_eq(last_status, 200);
    ck_assert_str_eq(json_str(r, "task.history.0.content.0.text"), "x");
    ck_assert_int_eq(json_int(r, "task.history.0.content.1.data.data.k"), 1);
    ck_assert_str_eq(json_str(r, "task.history.0.content.2.file.fileWithUri"), "http://e/f");
    ck_assert_str_eq(json_str(r, "task.history.0.role"), "ROLE_USER");
    cJSON_Delete(r);
    /* get, with historyLength; unknown task: 404 and -32001 */
    r = rest(NULL, NULL, "/v1/tasks/%s?historyLength=0", t);
    ck_assert_int_eq(last_status, 200);
    ck_assert_str_eq(json_str(r, "id"), t);
    ck_assert_ptr_null(json_at(r, "history.0"));
    ck_assert_str_eq(json_str(r, "status.state"), "TASK_STATE_COMPLETED");
    cJSON_Delete(r);
    expect_error(rest(NULL, NULL, "/v1/tasks/%s?historyLength=-1", t), 400, -32602, "historyLength");
    expect_error(rest(NULL, NULL, "/v1/tasks/nope"), 404, -32001, NULL);
    expect_error(rest(NULL, NULL, "/agents/modes/v1/tasks/%s", t), 404, -32001, NULL);
    /* cancel of a finished task: 409, -32002 */
    expect_error(rest("POST", NULL, "/v1/tasks/%s:cancel", t), 409, -32002, NULL);
    /* push configs: the inline one, set, list, get, delete */
    r = rest(NULL, NULL, "/v1/tasks/%s/pushNotificationConfigs", t);
    ck_assert_int_eq(last_status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "configs")), 1);
    ck_assert_str_eq(json_str(r, "configs.0.pushNotificationConfig.url"), "http://127.0.0.1:1/h");
    char inline_id[300];
    snprintf(inline_id, sizeof inline_id, "%s", json_str(r, "configs.0.pushNotificationConfig.id"));
    cJSON_Delete(r);
    r = rest(NULL, NULL, "/v1/tasks/%s/pushNotificationConfigs/%s", t, inline_id);
    ck_assert_int_eq(last_status, 200);
    ck_assert_str_eq(json_str(r, "pushNotificationConfig.url"), "http://127.0.0.1:1/h");
    cJSON_Delete(r);
    char body[400], name[200];
    snprintf(name, sizeof name, "tasks/%s/pushNotificationConfigs/c2", t);
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"pushNotificationConfig\":{\"id\":\"c2\",\"url\":\"http://127.0.0.1:1/x\","
                                "\"token\":\"tk\",\"authentication\":{\"schemes\":[\"Bearer\"]}}}", name);
    r = rest("POST", body, "/v1/tasks/%s/pushNotificationConfigs", t);
    ck_assert_int_eq(last_status, 200);
    ck_assert_str_eq(json_str(r, "name"), name);
    ck_assert_str_eq(json_str(r, "pushNotificationConfig.id"), "c2");
    ck_assert_str_eq(json_str(r, "pushNotificationConfig.authentication.schemes.0"), "Bearer");
    cJSON_Delete(r);
    r = rest(NULL, NULL, "/v1/tasks/%s/pushNotificationConfigs/c2", t);
    ck_assert_str_eq(json_str(r, "name"), name);
    ck_assert_str_eq(json_str(r, "pushNotificationConfig.url"), "http://127.0.0.1:1/x");
    cJSON_Delete(r);
    r = rest(NULL, NULL, "/v1/tasks/%s/pushNotificationConfigs", t);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "configs")), 2);
    cJSON_Delete(r);
    r = rest("DELETE", NULL, "/v1/tasks/%s/pushNotificationConfigs/c2", t);
    ck_assert_int_eq(last_status, 200);
    ck_assert(cJSON_IsObject(r) && cJSON_GetArraySize(r) == 0);
    cJSON_Delete(r);
    r = rest(NULL, NULL, "/v1/tasks/%s/pushNotificationConfigs/c2", t);
    ck_assert_int_ge(last_status, 400);
    ck_assert(json_int(r, "code") < 0);
    cJSON_Delete(r);
    expect_error(rest("POST", "{\"name\":\"tasks/other/pushNotificationConfigs/c\",\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:1/x\"}}",
                      "/v1/tasks/%s/pushNotificationConfigs", t), 400, -32602, "name");
    /* bodies: not JSON, not an object, no message, a part of no kind */
    expect_error(rest("POST", "nope", "/v1/message:send"), 400, -32700, "not valid JSON");
    expect_error(rest("POST", "[1]", "/v1/message:send"), 400, -32600, "JSON object");
    expect_error(rest("POST", "{}", "/v1/message:send"), 400, -32602, "message");
    expect_error(rest("POST", "{\"message\":{\"messageId\":\"m\",\"role\":\"ROLE_USER\",\"content\":[{\"x\":1}]}}",
                      "/v1/message:send"), 400, -32602, "content[0]");
    /* input modes: ContentTypeNotSupported */
    expect_error(rest("POST", "{\"message\":{\"messageId\":\"m\",\"role\":\"ROLE_USER\",\"content\":[{\"file\":{\"fileWithBytes\":\"aGk=\",\"mimeType\":\"application/pdf\"}}]}}",
                      "/agents/modes/v1/message:send"), 400, -32005, NULL);
    /* the extended card, not configured: -32007 */
    expect_error(rest(NULL, NULL, "/v1/card"), 404, -32007, NULL);
    /* wrong HTTP method; unknown agent; unknown /v1 path is not a resource */
    expect_error(rest("PUT", NULL, "/v1/tasks/%s", t), 405, -32601, "PUT");
    expect_error(rest(NULL, NULL, "/v1/message:send"), 405, -32601, NULL);
    expect_error(rest(NULL, NULL, "/agents/ghost/v1/tasks/x"), 404, -32600, "echo, modes");
    /* no ListTasks in 0.3's binding (and /v1 is not a 1.0 tenant) */
    struct http_resp h;
    ck_assert(http_call(dp.port, NULL, "/v1/tasks", NULL, &h));
    ck_assert_int_eq(h.status, 404);
    http_resp_free(&h);
    /* the 0.3 card lists the binding in additionalInterfaces */
    http_call(dp.port, NULL, "/agents/modes/.well-known/agent-card.json", NULL, &h);
    cJSON *card = cJSON_Parse(h.body);
    http_resp_free(&h);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(card, "additionalInterfaces")), 2);
    ck_assert_str_eq(json_str(card, "additionalInterfaces.1.transport"), "HTTP+JSON");
    ck_assert_str_eq(json_str(card, "additionalInterfaces.1.url"), json_str(card, "url"));
    cJSON_Delete(card);
}
END_TEST

START_TEST(rest03_streams_are_proto_stream_responses) {
    struct daemon_opts o = {.plugins = "processor,slow", .default_agent = "processor",
                            .extra = "[agent.processor]\nstep_ms = 20\n"};
    start_or_fail(&o);
    struct sse *s = sse_open(dp.port, "/v1/message:stream", MSG03("go") "}", NULL);
    ck_assert_int_eq(sse_status(s, 10000), 200);
    char *data = NULL;
    unsigned n = 0, finals = 0;
    char task[40] = "", last_state[64] = "";
    while (sse_next(s, &data, 15000) == 1) {
        cJSON *e = cJSON_Parse(data);
        ck_assert_msg(e, "not JSON: %s", data);
        free(data);
        ck_assert_ptr_null(json_at(e, "jsonrpc"));
        ck_assert_ptr_null(json_at(e, "kind"));
        if (n == 0) {
            snprintf(task, sizeof task, "%s", json_str(e, "task.id"));
        } else if (json_at(e, "statusUpdate")) {
            snprintf(last_state, sizeof last_state, "%s", json_str(e, "statusUpdate.status.state"));
            if (cJSON_IsTrue(json_at(e, "statusUpdate.final"))) finals++;
        } else {
            ck_assert_ptr_nonnull(json_at(e, "artifactUpdate.artifact.parts.0"));
        }
        ck_assert_int_eq(strncmp(sse_last_id(s), task, 36), 0);
        cJSON_Delete(e);
        n++;
    }
    sse_close(s);
    ck_assert_uint_eq(strlen(task), 36);
    ck_assert_uint_eq(n, 14);
    ck_assert_uint_eq(finals, 1);
    ck_assert_str_eq(last_state, "TASK_STATE_COMPLETED");
    /* :subscribe with Last-Event-ID replays the rest */
    char path[120], hdr[120];
    snprintf(path, sizeof path, "/v1/tasks/%s:subscribe", task);
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %s.12", task);
    const char *hh[] = {hdr, NULL};
    s = sse_open(dp.port, path, "", hh);
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
    /* :subscribe (GET too) to the ended task, without Last-Event-ID */
    struct http_resp h;
    snprintf(path, sizeof path, "/v1/tasks/%s:subscribe", task);
    ck_assert(http_call(dp.port, NULL, path, NULL, &h));
    ck_assert_int_eq(h.status, 200);
    ck_assert_ptr_nonnull(strcasestr(h.headers, "Content-Type: text/event-stream"));
    ck_assert_msg(strstr(h.body, "data: {\"task\":{\"id\"") && strstr(h.body, "TASK_STATE_COMPLETED"), "%s", h.body);
    http_resp_free(&h);
    cJSON *r;
    /* a running task: subscribe, cancel, the stream ends CANCELLED */
    /* a configuration without blocking is non-blocking (proto3: absent = false) */
    r = rest("POST", MSG03("x") ",\"configuration\":{\"acceptedOutputModes\":[\"text/plain\"]}}", "/agents/slow/v1/message:send");
    ck_assert_int_eq(last_status, 200);
    snprintf(task, sizeof task, "%s", json_str(r, "task.id"));
    ck_assert_str_ne(json_str(r, "task.status.state"), "TASK_STATE_CANCELLED");
    ck_assert_str_ne(json_str(r, "task.status.state"), "TASK_STATE_COMPLETED");
    cJSON_Delete(r);
    snprintf(path, sizeof path, "/agents/slow/v1/tasks/%s:subscribe", task);
    s = sse_open(dp.port, path, "", NULL);
    ck_assert_int_eq(sse_status(s, 10000), 200);
    ck_assert_int_eq(sse_next(s, &data, 15000), 1);
    r = cJSON_Parse(data);
    free(data);
    ck_assert_str_eq(json_str(r, "task.id"), task);
    cJSON_Delete(r);
    r = rest("POST", NULL, "/agents/slow/v1/tasks/%s:cancel", task);
    ck_assert_int_eq(last_status, 200);
    ck_assert_str_eq(json_str(r, "id"), task);
    cJSON_Delete(r);
    last_state[0] = '\0';
    while (sse_next(s, &data, 15000) == 1) {
        cJSON *e = cJSON_Parse(data);
        free(data);
        if (json_at(e, "statusUpdate"))
            snprintf(last_state, sizeof last_state, "%s", json_str(e, "statusUpdate.status.state"));
        cJSON_Delete(e);
    }
    sse_close(s);
    ck_assert_str_eq(last_state, "TASK_STATE_CANCELLED");
    r = rest(NULL, NULL, "/agents/slow/v1/tasks/%s", task);
    ck_assert_str_eq(json_str(r, "status.state"), "TASK_STATE_CANCELLED");
    cJSON_Delete(r);
}
END_TEST

START_TEST(rest03_authentication) {
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo",
                            .server_extra = "auth_bearer_tokens = tok-0123456789abcdef"};
    start_or_fail(&o);
    struct http_resp h;
    ck_assert(http_call(dp.port, "POST", "/v1/message:send", MSG03("a") "}", &h));
    ck_assert_int_eq(h.status, 401);
    ck_assert_ptr_nonnull(strcasestr(h.headers, "WWW-Authenticate: Bearer"));
    cJSON *e = cJSON_Parse(h.body);
    ck_assert_msg(json_int(e, "code") < 0, "%s", h.body);
    cJSON_Delete(e);
    http_resp_free(&h);
    ck_assert(http_call(dp.port, NULL, "/agents/echo/v1/card", NULL, &h));
    ck_assert_int_eq(h.status, 401);
    http_resp_free(&h);
    static const char *const right[] = {"Authorization: Bearer tok-0123456789abcdef", NULL};
    auth_headers = right;
    cJSON *r = rest("POST", MSG03("a") "}", "/agents/echo/v1/message:send");
    ck_assert_int_eq(last_status, 200);
    ck_assert_str_eq(json_str(r, "task.status.state"), "TASK_STATE_COMPLETED");
    cJSON_Delete(r);
    r = rest(NULL, NULL, "/v1/card");
    ck_assert_int_eq(last_status, 200);
    ck_assert_str_eq(json_str(r, "name"), "echo");
    /* the card in 0.3's proto: schemes and requirements in its shapes */
    ck_assert_str_eq(json_str(r, "securitySchemes.bearer.httpAuthSecurityScheme.scheme"), "bearer");
    ck_assert_ptr_null(json_at(r, "securitySchemes.bearer.type"));
    ck_assert(cJSON_IsArray(json_at(r, "security.0.schemes.bearer.list")));
    ck_assert_ptr_null(json_at(r, "supportedInterfaces"));
    cJSON_Delete(r);
}
END_TEST

Suite *rest03_suite(void);
Suite *rest03_suite(void) {
    Suite *s = suite_create("rest03");
    TCase *tc = tcase_create("http+json 0.3");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rest03_resources_shapes_and_statuses);
    tcase_add_test(tc, rest03_streams_are_proto_stream_responses);
    tcase_add_test(tc, rest03_authentication);
    suite_add_tcase(s, tc);
    return s;
}
