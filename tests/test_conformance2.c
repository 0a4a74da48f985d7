/* conformance2: the edge cases of issue 15 in both protocol versions,
 * against the real daemon: requests without an id, errors of streaming
 * methods as SSE, push-config ids, RFC 3339 filters, push configs on ended
 * tasks, the extended card's 401 body, and input modes (-32005). */
#include <check.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/receiver.h"
#include "support/sse.h"

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

static const char *const V1[] = {"A2A-Version: 1.0", NULL};

static cJSON *rpcf_at(const char *path, bool v1, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static cJSON *rpcf_at(const char *path, bool v1, const char *fmt, ...) {
    char body[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    long status = 0;
    cJSON *o = rpc_call_headers(dp.port, path, body, v1 ? V1 : NULL, &status);
    ck_assert_msg(o != NULL, "no JSON answer to %s", body);
    return o;
}
#define rpcf(v1, ...) rpcf_at("/", v1, __VA_ARGS__)

#define MSG03(text) "{\"kind\":\"message\",\"messageId\":\"m1\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"" text "\"}]}"
#define MSG10(text) "{\"messageId\":\"m1\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"" text "\"}]}"

static void expect_error(cJSON *o, int code, const char *part) {
    char *txt = cJSON_PrintUnformatted(o);
    ck_assert_msg(json_int(o, "error.code") == code, "want %d, got %s", code, txt);
    if (part)
        ck_assert_msg(strstr(json_str(o, "error.message"), part), "message lacks \"%s\": %s", part, txt);
    free(txt);
    cJSON_Delete(o);
}

/* A finished echo task (blocking send); its id, malloc'd. */
static char *finished_task(bool v1) {
    cJSON *o = v1 ? rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendMessage\",\"params\":{\"message\":" MSG10("done") "}}")
                  : rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":" MSG03("done") "}}");
    const char *id = json_str(o, v1 ? "result.task.id" : "result.id");
    ck_assert_uint_eq(strlen(id), 36);
    char *copy = strdup(id);
    cJSON_Delete(o);
    return copy;
}

/* ---- 1. requests without "id" ------------------------------------------- */

START_TEST(request_without_id_is_answered_with_null_id) {
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo"};
    start_or_fail(&o);
    /* the example: an unknown method is -32601, not -32600 */
    cJSON *r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"method\":\"message/ssend\",\"params\":{}}");
    ck_assert(cJSON_IsNull(json_at(r, "id")));
    expect_error(r, -32601, "message/ssend");
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"method\":\"SendMesage\",\"params\":{}}");
    ck_assert(cJSON_IsNull(json_at(r, "id")));
    expect_error(r, -32601, "SendMesage");
    /* bad params: -32602, in each version's shape */
    r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"method\":\"tasks/get\",\"params\":{}}");
    ck_assert(cJSON_IsNull(json_at(r, "id")));
    expect_error(r, -32602, "params.id");
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"method\":\"GetTask\",\"params\":{\"id\":\"nope\"}}");
    ck_assert(cJSON_IsNull(json_at(r, "id")));
    ck_assert_str_eq(json_str(r, "error.data.0.reason"), "TASK_NOT_FOUND");
    expect_error(r, -32001, NULL);
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"method\":\"SendMessage\",\"params\":{\"message\":7}}");
    expect_error(r, -32602, "params.message");
    /* a well-formed one is served like "id": null */
    r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"method\":\"message/send\",\"params\":{\"message\":" MSG03("no id") "}}");
    ck_assert(cJSON_IsNull(json_at(r, "id")));
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    cJSON_Delete(r);
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"method\":\"SendMessage\",\"params\":{\"message\":" MSG10("no id") "}}");
    ck_assert(cJSON_IsNull(json_at(r, "id")));
    ck_assert_str_eq(json_str(r, "result.task.status.state"), "TASK_STATE_COMPLETED");
    cJSON_Delete(r);
    /* an id of the wrong type is still an invalid request */
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"tasks/get\"}"), -32600, "\"id\"");
}
END_TEST

/* ---- 2. errors of streaming methods as one SSE event ------------------- */

/* Open a stream request; check it answers one SSE event with error code,
 * then ends. */
static void expect_sse_error(const char *body, const char *const *headers, int code) {
    struct sse *s = sse_open(dp.port, "/", body, headers);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(sse_status(s, 10000), 200);
    ck_assert_msg(strcasestr(sse_headers(s), "Content-Type: text/event-stream"), "%s", sse_headers(s));
    char *data = NULL;
    ck_assert_int_eq(sse_next(s, &data, 10000), 1);
    cJSON *o = cJSON_Parse(data);
    free(data);
    ck_assert_msg(json_int(o, "error.code") == code, "want %d: %s", code, sse_body(s));
    ck_assert_int_eq(json_int(o, "id"), 9);
    cJSON_Delete(o);
    ck_assert_int_eq(sse_next(s, &data, 10000), 0); /* and the stream ends */
    sse_close(s);
}

START_TEST(stream_errors_are_one_sse_event_when_asked_for_sse) {
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo"};
    start_or_fail(&o);
    expect_sse_error("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tasks/resubscribe\",\"params\":{\"id\":\"nope\"}}",
                     NULL, -32001);
    expect_sse_error("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"SubscribeToTask\",\"params\":{\"id\":\"nope\"}}",
                     V1, -32001);
    char *t = finished_task(true);
    char body[300];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"SubscribeToTask\",\"params\":{\"id\":\"%s\"}}", t);
    expect_sse_error(body, V1, -32004); /* 1.0: an ended task */
    expect_sse_error("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"message/stream\",\"params\":{\"message\":{}}}",
                     NULL, -32602);
    /* without Accept: text/event-stream: plain JSON */
    struct http_resp h;
    ck_assert(http_call(dp.port, NULL, "/", body, &h));
    ck_assert_int_eq(h.status, 200);
    ck_assert_ptr_nonnull(strcasestr(h.headers, "Content-Type: application/json"));
    cJSON *r = cJSON_Parse(h.body);
    expect_error(r, -32004, NULL);
    http_resp_free(&h);
    /* a non-streaming method keeps plain JSON even when SSE is accepted */
    struct sse *s = sse_open(dp.port, "/", "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tasks/get\",\"params\":{\"id\":\"nope\"}}", NULL);
    ck_assert_int_eq(sse_status(s, 10000), 200);
    ck_assert_ptr_nonnull(strcasestr(sse_headers(s), "Content-Type: application/json"));
    sse_close(s);
    free(t);
}
END_TEST

/* ---- 3. and 5. push-config ids; configs on ended tasks ------------------ */

START_TEST(push_config_ids_long_inline_named_after_task_ended_task_accepted) {
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo"};
    start_or_fail(&o);
    unsigned port = receiver_port(rcv);
    for (int v = 0; v < 2; v++) {
        bool v1 = v == 1;
        /* an inline config without id, on a blocking send */
        cJSON *r = v1 ? rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendMessage\",\"params\":{\"message\":" MSG10("x") ","
                                   "\"configuration\":{\"taskPushNotificationConfig\":{\"url\":\"http://127.0.0.1:%u/in\",\"token\":\"t1\"}}}}", port)
                      : rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":" MSG03("x") ","
                                    "\"configuration\":{\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:%u/in\",\"token\":\"t1\"}}}}", port);
        char t[40];
        snprintf(t, sizeof t, "%s", json_str(r, v1 ? "result.task.id" : "result.id"));
        ck_assert_uint_eq(strlen(t), 36);
        cJSON_Delete(r);
        /* get without a config id: that config, whose id is the task id */
        r = v1 ? rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\"}}", t)
               : rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/get\",\"params\":{\"id\":\"%s\"}}", t);
        ck_assert_str_eq(json_str(r, v1 ? "result.id" : "result.pushNotificationConfig.id"), t);
        /* tokens are write-only (the auth suite covers every method) */
        ck_assert_str_eq(json_str(r, v1 ? "result.token" : "result.pushNotificationConfig.token"), "(absent)");
        cJSON_Delete(r);
        /* and by that id */
        r = v1 ? rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\",\"id\":\"%s\"}}", t, t)
               : rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/get\",\"params\":{\"id\":\"%s\",\"pushNotificationConfigId\":\"%s\"}}", t, t);
        ck_assert_str_eq(json_str(r, v1 ? "result.url" : "result.pushNotificationConfig.url"),
                         v1 ? json_str(r, "result.url") : json_str(r, "result.pushNotificationConfig.url"));
        ck_assert_ptr_nonnull(strstr(json_str(r, v1 ? "result.url" : "result.pushNotificationConfig.url"), "/in"));
        cJSON_Delete(r);
        /* the task has ended: a config set now is accepted and kept */
        char id256[257];
        memset(id256, 'k', 256);
        id256[256] = '\0';
        id256[0] = v1 ? '1' : '0';
        r = v1 ? rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"CreateTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\",\"id\":\"%s\",\"url\":\"http://127.0.0.1:%u/late\"}}", t, id256, port)
               : rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{\"taskId\":\"%s\",\"pushNotificationConfig\":{\"id\":\"%s\",\"url\":\"http://127.0.0.1:%u/late\"}}}", t, id256, port);
        ck_assert_msg(json_at(r, "result") != NULL, "%s", cJSON_PrintUnformatted(r));
        ck_assert_str_eq(json_str(r, v1 ? "result.id" : "result.pushNotificationConfig.id"), id256);
        cJSON_Delete(r);
        r = v1 ? rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTaskPushNotificationConfigs\",\"params\":{\"taskId\":\"%s\"}}", t)
               : rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/list\",\"params\":{\"id\":\"%s\"}}", t);
        ck_assert_int_eq(cJSON_GetArraySize(json_at(r, v1 ? "result.configs" : "result")), 2);
        cJSON_Delete(r);
        /* 257 bytes: refused, naming the bound */
        char id257[258];
        memset(id257, 'k', 257);
        id257[257] = '\0';
        r = v1 ? rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"CreateTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\",\"id\":\"%s\",\"url\":\"http://127.0.0.1:%u/late\"}}", t, id257, port)
               : rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{\"taskId\":\"%s\",\"pushNotificationConfig\":{\"id\":\"%s\",\"url\":\"http://127.0.0.1:%u/late\"}}}", t, id257, port);
        expect_error(r, -32602, "1 to 256 bytes");
        r = rpcf(v1, v1 ? "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"CreateTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\",\"id\":\"\",\"url\":\"http://127.0.0.1:1/x\"}}"
                        : "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{\"taskId\":\"%s\",\"pushNotificationConfig\":{\"id\":\"\",\"url\":\"http://127.0.0.1:1/x\"}}}", t);
        expect_error(r, -32602, "1 to 256 bytes");
    }
    /* the inline configs were called (two tasks: at least one POST each,
     * none for the late configs) */
    ck_assert(receiver_wait(rcv, 2, 10000));
    for (size_t i = 0; i < receiver_count(rcv); i++)
        ck_assert_str_eq(receiver_get(rcv, i)->path, "/in");
}
END_TEST

/* ---- 4. RFC 3339 times in ListTasks ------------------------------------ */

/* t (UTC seconds) + ms as a local time with the given offset (minutes),
 * with `frac` fraction digits. */
static void rfc3339(time_t t, int ms, int offset_min, int frac, char *out, size_t n) {
    time_t local = t + offset_min * 60;
    struct tm tm;
    gmtime_r(&local, &tm);
    char f[16] = "";
    if (frac) {
        snprintf(f, sizeof f, ".%03d000000", ms);
        f[frac + 1] = '\0';
    }
    char zone[16];
    if (offset_min == 0)
        snprintf(zone, sizeof zone, "Z");
    else
        snprintf(zone, sizeof zone, "%c%02d:%02d", offset_min < 0 ? '-' : '+', abs(offset_min) / 60,
                 abs(offset_min) % 60);
    /* The length is checked, not assumed: gcc cannot bound the fields. */
    int w = snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d%s%s", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, f, zone);
    ck_assert(w > 0 && (size_t)w < n);
}

START_TEST(list_tasks_accepts_rfc3339_offsets_and_fractions) {
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo"};
    start_or_fail(&o);
    char *id = finished_task(true);
    cJSON *r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTask\",\"params\":{\"id\":\"%s\"}}", id);
    const char *ts = json_str(r, "result.status.timestamp"); /* 2026-11-24T08:40:00.236Z */
    struct tm tm = {0};
    int ms = 0;
    ck_assert(sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) == 7);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    cJSON_Delete(r);
    static const struct {
        int delta_s, offset_min, frac;
        bool listed;
    } cases[] = {
        {-1, -300, 6, true},  /* a second before, at -05:00, microseconds */
        {-1, 0, 0, true},     /* no fraction, Z */
        {-1, 330, 9, true},   /* +05:30, nanoseconds */
        {1, 120, 1, false},   /* a second after, +02:00 */
        {1, -600, 0, false},  /* -10:00 (the day before, local) */
        {0, 60, 3, false},    /* the same instant: not after it */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char after[64];
        rfc3339(t + cases[i].delta_s, ms, cases[i].offset_min, cases[i].frac, after, sizeof after);
        r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"statusTimestampAfter\":\"%s\"}}", after);
        ck_assert_msg(json_at(r, "result.tasks") != NULL, "%s: %s", after, cJSON_PrintUnformatted(r));
        ck_assert_msg(cJSON_GetArraySize(json_at(r, "result.tasks")) == (cases[i].listed ? 1 : 0),
                      "case %zu: after %s (task at %s)", i, after, ts);
        cJSON_Delete(r);
    }
    static const char *const bad[] = {"2026-11-24T08:00:00", "2026-11-24T08:00:00+0100",
                                      "2026-11-24T08:00:00.Z", "2026-11-24", "2026-13-01T00:00:00Z",
                                      "2026-11-24T08:00:00+24:00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error(rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"statusTimestampAfter\":\"%s\"}}", bad[i]),
                     -32602, "RFC 3339");
    /* 0.3 has no tasks/list over JSON-RPC (the spec: N/A): -32601 */
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/list\",\"params\":{}}"), -32601, NULL);
    free(id);
}
END_TEST

/* ---- 6. the extended card without credentials ---------------------------- */

START_TEST(extended_card_401_is_a_jsonrpc_error_with_a_known_code) {
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo",
                            .server_extra = "auth_bearer_tokens = tok-0123456789abcdef"};
    start_or_fail(&o);
    static const char *const req[2] = {
        "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"agent/getAuthenticatedExtendedCard\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"GetExtendedAgentCard\"}"};
    for (int v = 0; v < 2; v++) {
        struct http_resp h;
        ck_assert(http_call_headers(dp.port, NULL, "/", req[v], v ? V1 : NULL, &h));
        ck_assert_int_eq(h.status, 401);
        ck_assert_ptr_nonnull(strcasestr(h.headers, "WWW-Authenticate: Bearer"));
        ck_assert_ptr_nonnull(strcasestr(h.headers, "Content-Type: application/json"));
        cJSON *r = cJSON_Parse(h.body);
        ck_assert_int_eq(json_int(r, "id"), 5);
        if (v) ck_assert_str_eq(json_str(r, "error.data.0.reason"), "EXTENDED_AGENT_CARD_NOT_CONFIGURED");
        expect_error(r, -32007, "authentication required");
        http_resp_free(&h);
    }
}
END_TEST

/* ---- 7. defaultInputModes -> -32005 ------------------------------------ */

START_TEST(input_modes_refuse_other_parts_with_32005) {
    struct daemon_opts o = {.plugins = "modes,echo"};
    start_or_fail(&o);
    struct http_resp h;
    http_call(dp.port, NULL, "/agents/modes/.well-known/agent-card.json", NULL, &h);
    cJSON *card = cJSON_Parse(h.body);
    http_resp_free(&h);
    ck_assert_str_eq(json_str(card, "defaultInputModes.0"), "text/plain");
    ck_assert_str_eq(json_str(card, "defaultInputModes.2"), "image/*");
    cJSON_Delete(card);
    /* refused: a PDF, in either version; nothing is created */
    cJSON *r = rpcf_at("/agents/modes", false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":{"
                       "\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"see\"},"
                       "{\"kind\":\"file\",\"file\":{\"bytes\":\"aGk=\",\"mimeType\":\"application/pdf\"}}]}}}");
    expect_error(r, -32005, "parts[1] is application/pdf");
    r = rpcf_at("/agents/modes", true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendMessage\",\"params\":{\"message\":{"
                "\"messageId\":\"m\",\"role\":\"ROLE_USER\",\"parts\":[{\"raw\":\"aGk=\",\"mediaType\":\"application/pdf\"}]}}}");
    ck_assert_str_eq(json_str(r, "error.data.0.reason"), "CONTENT_TYPE_NOT_SUPPORTED");
    expect_error(r, -32005, "parts[0] is application/pdf");
    r = rpcf_at("/agents/modes", true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendStreamingMessage\",\"params\":{\"message\":{"
                "\"messageId\":\"m\",\"role\":\"ROLE_USER\",\"parts\":[{\"url\":\"http://x/y\"}]}}}");
    expect_error(r, -32005, "application/octet-stream");
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{}}");
    ck_assert_int_eq(json_int(r, "result.totalSize"), 0);
    cJSON_Delete(r);
    /* accepted: text, JSON data, an image (any image type) */
    r = rpcf_at("/agents/modes", false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":{"
                "\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"ok\"},"
                "{\"kind\":\"data\",\"data\":{\"a\":1}},{\"kind\":\"file\",\"file\":{\"bytes\":\"aGk=\",\"mimeType\":\"image/PNG\"}}]}}}");
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    cJSON_Delete(r);
    r = rpcf_at("/agents/modes", true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendMessage\",\"params\":{\"message\":{"
                "\"messageId\":\"m\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"ok\"},{\"raw\":\"aGk=\",\"mediaType\":\"image/jpeg\"}]}}}");
    ck_assert_str_eq(json_str(r, "result.task.status.state"), "TASK_STATE_COMPLETED");
    cJSON_Delete(r);
    /* an agent without input_modes takes anything, and its card says text/plain */
    r = rpcf_at("/agents/echo", false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":{"
                "\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"ok\"},"
                "{\"kind\":\"file\",\"file\":{\"bytes\":\"aGk=\",\"mimeType\":\"application/pdf\"}}]}}}");
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    cJSON_Delete(r);
}
END_TEST

Suite *conformance2_suite(void);
Suite *conformance2_suite(void) {
    Suite *s = suite_create("conformance2");
    TCase *tc = tcase_create("edge cases");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, request_without_id_is_answered_with_null_id);
    tcase_add_test(tc, stream_errors_are_one_sse_event_when_asked_for_sse);
    tcase_add_test(tc, push_config_ids_long_inline_named_after_task_ended_task_accepted);
    tcase_add_test(tc, list_tasks_accepts_rfc3339_offsets_and_fractions);
    tcase_add_test(tc, extended_card_401_is_a_jsonrpc_error_with_a_known_code);
    tcase_add_test(tc, input_modes_refuse_other_parts_with_32005);
    suite_add_tcase(s, tc);
    return s;
}
