/* conformance: each A2A method and error path of both protocol versions,
 * from the spec text, against the real daemon. Streams are in the streams
 * suite; the envelope basics in the integration suite. */
#include <check.h>
#include <stdarg.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/receiver.h"

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

/* POST a request built with printf; V1 headers when v1. */
static cJSON *rpcf(bool v1, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cJSON *rpcf(bool v1, const char *fmt, ...) {
    char body[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    long status = 0;
    cJSON *o = rpc_call_headers(dp.port, "/", body, v1 ? V1 : NULL, &status);
    ck_assert_msg(o != NULL, "no JSON answer to %s", body);
    return o;
}

#define MSG03(text) "{\"kind\":\"message\",\"messageId\":\"m1\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"" text "\"}]}"
#define MSG10(text) "{\"messageId\":\"m1\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"" text "\"}]}"

static void expect_error(cJSON *o, int code, const char *part) {
    char *txt = cJSON_PrintUnformatted(o);
    ck_assert_msg(json_int(o, "error.code") == code, "want %d, got %s", code, txt);
    if (part) ck_assert_msg(strstr(json_str(o, "error.message"), part), "message lacks \"%s\": %s", part, txt);
    free(txt);
    cJSON_Delete(o);
}

/* A finished echo task; returns its id (malloc'd). */
static char *finished_task(void) {
    cJSON *o = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":" MSG03("done") "}}");
    ck_assert_str_eq(json_str(o, "result.status.state"), "completed");
    char *id = strdup(json_str(o, "result.id"));
    cJSON_Delete(o);
    return id;
}

/* A running convo task (at /agents/convo); returns its id. */
static char *running_convo(const char *context) {
    char ctx[80] = "";
    if (context) snprintf(ctx, sizeof ctx, "\"contextId\":\"%s\",", context);
    char body[600];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":{"
             "\"messageId\":\"c1\",\"role\":\"user\",%s\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}]},"
             "\"configuration\":{\"blocking\":false}}}", ctx);
    cJSON *o = rpc_call(dp.port, "/agents/convo", body, NULL);
    char *id = strdup(json_str(o, "result.id"));
    ck_assert_uint_eq(strlen(id), 36);
    cJSON_Delete(o);
    /* Wait (bounded) until the job listens: from then on it makes events
     * only when spoken to, so what webhooks receive is known. */
    char get[200];
    snprintf(get, sizeof get, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    bool listening = false;
    for (int i = 0; i < 400 && !listening; i++) {
        cJSON *t = rpc_call(dp.port, "/agents/convo", get, NULL);
        listening = strcmp(json_str(t, "result.status.message.parts.0.text"), "listening") == 0;
        cJSON_Delete(t);
        if (!listening) test_nap_ms(25);
    }
    ck_assert_msg(listening, "task %s never started listening", id);
    return id;
}

/* ---- message/send and SendMessage ------------------------------------- */

START_TEST(send_params_required_fields_and_types) {
    struct daemon_opts o = {.plugins = "echo"};
    start_or_fail(&o);
    static const struct {
        bool v1;
        const char *params;
        const char *field;
    } cases[] = {
        {false, "{}", "params.message"},
        {false, "{\"message\":{\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}", "messageId"},
        {false, "{\"message\":{\"messageId\":7,\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}", "messageId"},
        {false, "{\"message\":{\"messageId\":\"m\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}", "role"},
        {false, "{\"message\":{\"messageId\":\"m\",\"role\":\"user\",\"parts\":{}}}", "parts"},
        {false, "{\"message\":{\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":1}]}}", "parts[0].text"},
        {false, "{\"message\":{\"messageId\":\"m\",\"role\":\"user\",\"taskId\":5,\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}", "taskId"},
        {false, "{\"message\":" MSG03("x") ",\"configuration\":{\"blocking\":\"no\"}}", "blocking"},
        {false, "{\"message\":" MSG03("x") ",\"configuration\":{\"historyLength\":\"2\"}}", "historyLength"},
        {false, "{\"message\":" MSG03("x") ",\"configuration\":[]}", "configuration"},
        {false, "{\"message\":" MSG03("x") ",\"metadata\":3}", "metadata"},
        {false, "{\"message\":" MSG03("x") ",\"configuration\":{\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:1/h\",\"authentication\":{\"credentials\":\"c\"}}}}", "schemes"},
        {true, "{}", "params.message"},
        {true, "{\"message\":{\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"text\":\"x\"}]}}", "ROLE_USER"},
        {true, "{\"message\":{\"messageId\":\"m\",\"role\":\"ROLE_USER\",\"parts\":[{\"blob\":1}]}}", "parts[0]"},
        {true, "{\"message\":" MSG10("x") ",\"configuration\":{\"returnImmediately\":1}}", "returnImmediately"},
        {true, "{\"message\":" MSG10("x") ",\"configuration\":{\"taskPushNotificationConfig\":{\"url\":\"http://127.0.0.1:1/h\",\"authentication\":{\"schemes\":[\"Bearer\"]}}}}", "scheme"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *r = rpcf(cases[i].v1, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}",
                        cases[i].v1 ? "SendMessage" : "message/send", cases[i].params);
        ck_assert_msg(json_int(r, "error.code") == -32602, "case %zu: %s", i, cJSON_PrintUnformatted(r));
        ck_assert_msg(strstr(json_str(r, "error.message"), cases[i].field), "case %zu: %s", i,
                      json_str(r, "error.message"));
        cJSON_Delete(r);
    }
    /* "params" that is not an object */
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":\"x\"}"), -32602, "params");
}
END_TEST

START_TEST(v1_send_get_cancel_shapes) {
    struct daemon_opts o = {.plugins = "echo,convo", .default_agent = "echo", .threads = 2};
    start_or_fail(&o);
    /* blocking by default (returnImmediately unset): the terminal task */
    cJSON *r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"SendMessage\",\"params\":{\"message\":"
                          "{\"messageId\":\"m1\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"hello\"},"
                          "{\"data\":[1,2]},{\"url\":\"https://x.example/f\",\"mediaType\":\"text/plain\"}]}}}");
    ck_assert_str_eq(json_str(r, "result.task.status.state"), "TASK_STATE_COMPLETED");
    ck_assert_str_eq(json_str(r, "result.task.status.message.role"), "ROLE_AGENT");
    ck_assert_str_eq(json_str(r, "result.task.status.message.parts.0.text"), "hello");
    ck_assert_ptr_null(json_at(r, "result.task.kind"));
    ck_assert_ptr_null(json_at(r, "result.task.status.message.kind"));
    ck_assert_int_eq(json_int(r, "result.task.history.0.parts.1.data.1"), 2);
    ck_assert_str_eq(json_str(r, "result.task.history.0.parts.2.url"), "https://x.example/f");
    ck_assert_str_eq(json_str(r, "result.task.history.0.parts.2.mediaType"), "text/plain");
    char *id = strdup(json_str(r, "result.task.id"));
    cJSON_Delete(r);
    /* GetTask with snake_case keys; historyLength 0 omits history */
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"GetTask\",\"params\":{\"id\":\"%s\",\"history_length\":0}}", id);
    ck_assert_str_eq(json_str(r, "result.id"), id);
    ck_assert_ptr_null(json_at(r, "result.history"));
    ck_assert_ptr_null(json_at(r, "result.task")); /* GetTask answers the Task itself */
    cJSON_Delete(r);
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"GetTask\",\"params\":{\"id\":\"%s\",\"historyLength\":1}}", id);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "result.history")), 1);
    ck_assert_str_eq(json_str(r, "result.history.0.role"), "ROLE_AGENT"); /* the newest */
    cJSON_Delete(r);
    /* CancelTask of a completed task: TaskNotCancelable with ErrorInfo */
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"CancelTask\",\"params\":{\"id\":\"%s\"}}", id);
    ck_assert_int_eq(json_int(r, "error.code"), -32002);
    ck_assert_str_eq(json_str(r, "error.data.0.reason"), "TASK_NOT_CANCELABLE");
    ck_assert_str_eq(json_str(r, "error.data.0.domain"), "a2a-protocol.org");
    ck_assert_str_eq(json_str(r, "error.data.0.@type"), "type.googleapis.com/google.rpc.ErrorInfo");
    cJSON_Delete(r);
    /* unknown task */
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"GetTask\",\"params\":{\"id\":\"nope\"}}");
    ck_assert_int_eq(json_int(r, "error.code"), -32001);
    ck_assert_str_eq(json_str(r, "error.data.0.reason"), "TASK_NOT_FOUND");
    cJSON_Delete(r);
    /* returnImmediately: the task at once; cancel is idempotent in 1.0 */
    char body[600];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"SendMessage\",\"params\":{\"message\":"
             MSG10("hi") ",\"configuration\":{\"returnImmediately\":true}}}");
    r = rpc_call_headers(dp.port, "/agents/convo", body, V1, NULL);
    const char *st = json_str(r, "result.task.status.state");
    ck_assert_msg(strcmp(st, "TASK_STATE_SUBMITTED") == 0 || strcmp(st, "TASK_STATE_WORKING") == 0, "%s", st);
    char *cid = strdup(json_str(r, "result.task.id"));
    cJSON_Delete(r);
    for (int i = 0; i < 2; i++) {
        snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"CancelTask\",\"params\":{\"id\":\"%s\"}}", cid);
        r = rpc_call_headers(dp.port, "/agents/convo", body, V1, NULL);
        ck_assert_str_eq(json_str(r, "result.status.state"), "TASK_STATE_CANCELED");
        cJSON_Delete(r);
    }
    /* ...while 0.3 answers a second cancel with -32002 */
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"%s\"}}", cid);
    r = rpc_call(dp.port, "/agents/convo", body, NULL);
    expect_error(r, -32002, "canceled");
    free(cid);
    free(id);
}
END_TEST

START_TEST(version_header_and_method_names) {
    struct daemon_opts o = {.plugins = "echo"};
    start_or_fail(&o);
    static const char *const ok_versions[] = {"A2A-Version: 1.0", "A2A-Version: 0.3", "A2A-Version: 1.0.1",
                                              "A2A-Version:", "X-Other: 1"};
    for (size_t i = 0; i < 5; i++) {
        const char *h[] = {ok_versions[i], NULL};
        cJSON *r = rpc_call_headers(dp.port, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\"}", h, NULL);
        ck_assert_msg(json_at(r, "result.tasks") != NULL, "%s: %s", ok_versions[i], cJSON_PrintUnformatted(r));
        cJSON_Delete(r);
    }
    static const char *const bad_versions[] = {"A2A-Version: 2.0", "A2A-Version: 0.2", "A2A-Version: banana"};
    for (size_t i = 0; i < 3; i++) {
        const char *h[] = {bad_versions[i], NULL};
        cJSON *r = rpc_call_headers(dp.port, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTask\",\"params\":{\"id\":\"x\"}}", h, NULL);
        ck_assert_int_eq(json_int(r, "error.code"), -32009);
        ck_assert_str_eq(json_str(r, "error.data.0.reason"), "VERSION_NOT_SUPPORTED");
        cJSON_Delete(r);
    }
    /* 0.3 has no tasks/list over JSON-RPC; unknown names are -32601 */
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/list\"}"), -32601, "tasks/list");
    expect_error(rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"sendMessage\"}"), -32601, NULL);
    /* extension headers are accepted (a2ad declares no extension) */
    const char *ext[] = {"A2A-Extensions: https://example.com/ext/v1", "X-A2A-Extensions: https://example.com/x", NULL};
    cJSON *r = rpc_call_headers(dp.port, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":" MSG03("e") "}}", ext, NULL);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    cJSON_Delete(r);
}
END_TEST

/* ---- tasks/get, tasks/cancel (0.3) ------------------------------------ */

START_TEST(get_and_cancel_error_paths) {
    struct daemon_opts o = {.plugins = "echo"};
    start_or_fail(&o);
    char *id = finished_task();
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":7}}"), -32602, "params.id");
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\",\"historyLength\":-1}}", id), -32602, "historyLength");
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"unknown\"}}"), -32001, "unknown");
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{}}"), -32602, "params.id");
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"%s\"}}", id), -32002, "completed");
    cJSON *r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\",\"historyLength\":0}}", id);
    ck_assert_str_eq(json_str(r, "result.kind"), "task");
    ck_assert_ptr_null(json_at(r, "result.history"));
    cJSON_Delete(r);
    /* 0.3 errors carry no 1.0 ErrorInfo */
    r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"unknown\"}}");
    ck_assert_ptr_null(json_at(r, "error.data"));
    cJSON_Delete(r);
    free(id);
}
END_TEST

/* ---- ListTasks ---------------------------------------------------------- */

START_TEST(list_tasks_filters_and_pages) {
    struct daemon_opts o = {.plugins = "echo,convo", .default_agent = "echo", .threads = 3};
    start_or_fail(&o);
    char *done[3];
    for (int i = 0; i < 3; i++) {
        done[i] = finished_task();
        test_nap_ms(5); /* distinct millisecond timestamps, so "newest first" is defined */
    }
    char *running = running_convo("ctx-conv-1");
    /* at / only echo's tasks, newest first */
    cJSON *r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"pageSize\":2}}");
    ck_assert_int_eq(json_int(r, "result.totalSize"), 3);
    ck_assert_int_eq(json_int(r, "result.pageSize"), 2);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "result.tasks")), 2);
    ck_assert_str_eq(json_str(r, "result.tasks.0.id"), done[2]);
    ck_assert_str_eq(json_str(r, "result.tasks.1.id"), done[1]);
    ck_assert_ptr_null(json_at(r, "result.tasks.0.artifacts"));
    char token[40];
    snprintf(token, sizeof token, "%s", json_str(r, "result.nextPageToken"));
    ck_assert_str_ne(token, "");
    cJSON_Delete(r);
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"pageSize\":2,\"pageToken\":\"%s\"}}", token);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "result.tasks")), 1);
    ck_assert_str_eq(json_str(r, "result.tasks.0.id"), done[0]);
    ck_assert_str_eq(json_str(r, "result.nextPageToken"), ""); /* the last page */
    cJSON_Delete(r);
    /* filters at /agents/convo: contextId and status */
    char body[600];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"contextId\":\"ctx-conv-1\",\"status\":\"TASK_STATE_WORKING\"}}");
    for (int tries = 0; tries < 100; tries++) { /* the job starts on a worker */
        r = rpc_call_headers(dp.port, "/agents/convo", body, V1, NULL);
        if (json_int(r, "result.totalSize") == 1) break;
        cJSON_Delete(r);
        r = NULL;
        test_nap_ms(50);
    }
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(json_str(r, "result.tasks.0.id"), running);
    cJSON_Delete(r);
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"contextId\":\"other\"}}");
    r = rpc_call_headers(dp.port, "/agents/convo", body, V1, NULL);
    ck_assert_int_eq(json_int(r, "result.totalSize"), 0);
    ck_assert_str_eq(json_str(r, "result.nextPageToken"), "");
    cJSON_Delete(r);
    /* statusTimestampAfter in the future: nothing */
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"statusTimestampAfter\":\"2999-01-01T00:00:00Z\"}}");
    ck_assert_int_eq(json_int(r, "result.totalSize"), 0);
    cJSON_Delete(r);
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"statusTimestampAfter\":\"2000-01-01T00:00:00.5Z\",\"includeArtifacts\":true,\"historyLength\":0}}");
    ck_assert_int_eq(json_int(r, "result.totalSize"), 3);
    ck_assert_ptr_null(json_at(r, "result.tasks.0.history"));
    cJSON_Delete(r);
    /* bad arguments */
    expect_error(rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"pageSize\":0}}"), -32602, "pageSize");
    expect_error(rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"pageSize\":101}}"), -32602, "pageSize");
    expect_error(rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"pageToken\":\"zz\"}}"), -32602, "pageToken");
    expect_error(rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"status\":\"working\"}}"), -32602, "status");
    expect_error(rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"statusTimestampAfter\":\"yesterday\"}}"), -32602, "statusTimestampAfter");
    for (int i = 0; i < 3; i++) free(done[i]);
    /* end the conversation so the daemon stops promptly */
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"%s\"}}", running);
    cJSON_Delete(rpc_call(dp.port, "/agents/convo", body, NULL));
    free(running);
}
END_TEST

/* ---- push configs ------------------------------------------------------ */

START_TEST(push_config_methods_03) {
    struct daemon_opts o = {.plugins = "convo", .threads = 2, .webhooks_extra = "max_configs_per_task = 3"};
    start_or_fail(&o);
    char *t = running_convo(NULL);
    unsigned port = receiver_port(rcv);
    /* two configs with their own ids, tokens and authentication */
    cJSON *r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{"
                           "\"taskId\":\"%s\",\"pushNotificationConfig\":{\"id\":\"a\",\"url\":\"http://127.0.0.1:%u/a\","
                           "\"token\":\"tok-a\",\"authentication\":{\"schemes\":[\"Bearer\"],\"credentials\":\"cred-a\"}}}}", t, port);
    ck_assert_str_eq(json_str(r, "result.taskId"), t);
    ck_assert_str_eq(json_str(r, "result.pushNotificationConfig.id"), "a");
    ck_assert_str_eq(json_str(r, "result.pushNotificationConfig.authentication.schemes.0"), "Bearer");
    cJSON_Delete(r);
    r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{"
                    "\"taskId\":\"%s\",\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:%u/b\"}}}", t, port);
    char bid[40];
    snprintf(bid, sizeof bid, "%s", json_str(r, "result.pushNotificationConfig.id"));
    ck_assert_uint_eq(strlen(bid), 36); /* generated */
    cJSON_Delete(r);
    r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/list\",\"params\":{\"id\":\"%s\"}}", t);
    ck_assert(cJSON_IsArray(json_at(r, "result")));
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "result")), 2);
    /* the token and credentials are write-only */
    ck_assert_str_eq(json_str(r, "result.0.pushNotificationConfig.token"), "(absent)");
    ck_assert_str_eq(json_str(r, "result.0.pushNotificationConfig.authentication.credentials"), "(absent)");
    ck_assert_str_eq(json_str(r, "result.0.pushNotificationConfig.authentication.schemes.0"), "Bearer");
    cJSON_Delete(r);
    r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/get\",\"params\":{\"id\":\"%s\",\"pushNotificationConfigId\":\"%s\"}}", t, bid);
    ck_assert_ptr_nonnull(strstr(json_str(r, "result.pushNotificationConfig.url"), "/b"));
    cJSON_Delete(r);
    /* a live event reaches both webhooks, each with its own headers */
    char body[600];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"message/send\",\"params\":{\"message\":{"
             "\"messageId\":\"c2\",\"role\":\"user\",\"taskId\":\"%s\",\"parts\":[{\"kind\":\"text\",\"text\":\"ping\"}]},"
             "\"configuration\":{\"blocking\":false}}}", t);
    cJSON_Delete(rpc_call(dp.port, "/", body, NULL));
    ck_assert(receiver_wait(rcv, 2, 10000));
    bool saw_a = false, saw_b = false;
    for (size_t i = 0; i < receiver_count(rcv); i++) {
        const struct received *q = receiver_get(rcv, i);
        char *auth = received_header(q, "Authorization");
        char *tok = received_header(q, "X-A2A-Notification-Token");
        char *type = received_header(q, "Content-Type");
        cJSON *b = cJSON_Parse(q->body);
        ck_assert_str_eq(json_str(b, "kind"), "task"); /* 0.3 configs get the whole Task */
        ck_assert_str_eq(type, "application/json");
        if (strcmp(q->path, "/a") == 0) {
            saw_a = true;
            ck_assert_str_eq(auth, "Bearer cred-a");
            ck_assert_str_eq(tok, "tok-a");
        } else {
            saw_b = true;
            ck_assert_ptr_null(auth);
            ck_assert_ptr_null(tok);
        }
        free(auth);
        free(tok);
        free(type);
        cJSON_Delete(b);
    }
    ck_assert(saw_a && saw_b);
    /* the limit, replacing by id, deleting (idempotent) */
    r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{\"taskId\":\"%s\",\"pushNotificationConfig\":{\"id\":\"c\",\"url\":\"http://127.0.0.1:%u/c\"}}}", t, port);
    cJSON_Delete(r);
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{\"taskId\":\"%s\",\"pushNotificationConfig\":{\"id\":\"d\",\"url\":\"http://127.0.0.1:%u/d\"}}}", t, port), -32602, "max_configs_per_task");
    r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{\"taskId\":\"%s\",\"pushNotificationConfig\":{\"id\":\"c\",\"url\":\"http://127.0.0.1:%u/c2\"}}}", t, port);
    ck_assert_ptr_nonnull(strstr(json_str(r, "result.pushNotificationConfig.url"), "/c2"));
    cJSON_Delete(r);
    for (int i = 0; i < 2; i++) {
        r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/delete\",\"params\":{\"id\":\"%s\",\"pushNotificationConfigId\":\"a\"}}", t);
        ck_assert(cJSON_IsNull(json_at(r, "result")));
        cJSON_Delete(r);
    }
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/get\",\"params\":{\"id\":\"%s\",\"pushNotificationConfigId\":\"a\"}}", t), -32001, NULL);
    r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/list\",\"params\":{\"id\":\"%s\"}}", t);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "result")), 2);
    cJSON_Delete(r);
    /* error paths */
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{\"taskId\":\"nope\",\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:1/x\"}}}"), -32001, NULL);
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{\"taskId\":\"%s\",\"pushNotificationConfig\":{}}}", t), -32602, "url");
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{\"taskId\":\"%s\"}}", t), -32602, "pushNotificationConfig");
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/delete\",\"params\":{\"id\":\"%s\"}}", t), -32602, "pushNotificationConfigId");
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/list\",\"params\":{\"id\":\"nope\"}}"), -32001, NULL);
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"%s\"}}", t);
    cJSON_Delete(rpc_call(dp.port, "/", body, NULL));
    free(t);
}
END_TEST

START_TEST(push_config_methods_10_send_stream_responses) {
    struct daemon_opts o = {.plugins = "convo", .threads = 2};
    start_or_fail(&o);
    char *t = running_convo(NULL);
    unsigned port = receiver_port(rcv);
    cJSON *r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"CreateTaskPushNotificationConfig\",\"params\":{"
                          "\"taskId\":\"%s\",\"url\":\"http://127.0.0.1:%u/v1\",\"token\":\"t1\","
                          "\"authentication\":{\"scheme\":\"Bearer\",\"credentials\":\"secret-1\"}}}", t, port);
    ck_assert_str_eq(json_str(r, "result.taskId"), t);
    ck_assert_str_eq(json_str(r, "result.authentication.scheme"), "Bearer");
    char id[40];
    snprintf(id, sizeof id, "%s", json_str(r, "result.id"));
    ck_assert_uint_eq(strlen(id), 36);
    cJSON_Delete(r);
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\",\"id\":\"%s\"}}", t, id);
    ck_assert_str_eq(json_str(r, "result.token"), "(absent)"); /* write-only */
    ck_assert_str_eq(json_str(r, "result.authentication.credentials"), "(absent)");
    ck_assert_str_eq(json_str(r, "result.authentication.scheme"), "Bearer");
    cJSON_Delete(r);
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTaskPushNotificationConfigs\",\"params\":{\"taskId\":\"%s\"}}", t);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "result.configs")), 1);
    ck_assert_str_eq(json_str(r, "result.nextPageToken"), "");
    cJSON_Delete(r);
    /* the same config read through 0.3 speaks 0.3 */
    r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/get\",\"params\":{\"id\":\"%s\",\"pushNotificationConfigId\":\"%s\"}}", t, id);
    ck_assert_str_eq(json_str(r, "result.pushNotificationConfig.authentication.schemes.0"), "Bearer");
    cJSON_Delete(r);
    /* an event: the 1.0 webhook gets a StreamResponse, a2a+json, Authorization */
    char body[600];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"SendMessage\",\"params\":{\"message\":{"
             "\"messageId\":\"c2\",\"role\":\"ROLE_USER\",\"taskId\":\"%s\",\"parts\":[{\"text\":\"ping\"}]},"
             "\"configuration\":{\"returnImmediately\":true}}}", t);
    r = rpc_call_headers(dp.port, "/", body, V1, NULL);
    ck_assert_str_eq(json_str(r, "result.task.id"), t);
    cJSON_Delete(r);
    ck_assert(receiver_wait(rcv, 1, 10000));
    const struct received *q = receiver_get(rcv, 0);
    char *auth = received_header(q, "Authorization");
    char *type = received_header(q, "Content-Type");
    ck_assert_str_eq(auth, "Bearer secret-1");
    ck_assert_str_eq(type, "application/a2a+json");
    free(auth);
    free(type);
    cJSON *b = cJSON_Parse(q->body);
    ck_assert_str_eq(json_str(b, "statusUpdate.taskId"), t);
    ck_assert_str_eq(json_str(b, "statusUpdate.status.message.parts.0.text"), "heard: ping");
    ck_assert_ptr_null(json_at(b, "kind"));
    cJSON_Delete(b);
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"DeleteTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\",\"id\":\"%s\"}}", t, id);
    ck_assert(cJSON_IsNull(json_at(r, "result")));
    cJSON_Delete(r);
    r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\",\"id\":\"%s\"}}", t, id);
    ck_assert_int_eq(json_int(r, "error.code"), -32001);
    cJSON_Delete(r);
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"%s\"}}", t);
    cJSON_Delete(rpc_call(dp.port, "/", body, NULL));
    free(t);
}
END_TEST

START_TEST(push_disabled_gets_32003) {
    struct daemon_opts o = {.plugins = "convo", .threads = 2, .webhooks_extra = "enabled = no"};
    start_or_fail(&o);
    struct http_resp h;
    http_call(dp.port, NULL, "/.well-known/agent-card.json", NULL, &h);
    cJSON *card = cJSON_Parse(h.body);
    http_resp_free(&h);
    ck_assert(cJSON_IsFalse(json_at(card, "capabilities.pushNotifications")));
    cJSON_Delete(card);
    char *t = running_convo(NULL);
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{\"taskId\":\"%s\",\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:1/x\"}}}", t), -32003, NULL);
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/list\",\"params\":{\"id\":\"%s\"}}", t), -32003, NULL);
    cJSON *r = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTaskPushNotificationConfigs\",\"params\":{\"taskId\":\"%s\"}}", t);
    ck_assert_str_eq(json_str(r, "error.data.0.reason"), "PUSH_NOTIFICATION_NOT_SUPPORTED");
    expect_error(r, -32003, NULL);
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":" MSG03("x") ",\"configuration\":{\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:1/x\"}}}}"), -32003, NULL);
    char body[300];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"%s\"}}", t);
    cJSON_Delete(rpc_call(dp.port, "/", body, NULL));
    free(t);
}
END_TEST

/* ---- cards -------------------------------------------------------------- */

START_TEST(cards_and_extended_card) {
    struct daemon_opts o = {.plugins = "echo",
                            .server_extra = "auth_bearer_tokens = tok-0123456789abcdef, tok-fedcba9876543210"};
    start_or_fail(&o);
    struct http_resp h;
    http_call(dp.port, NULL, "/.well-known/agent-card.json", NULL, &h);
    cJSON *card = cJSON_Parse(h.body);
    http_resp_free(&h);
    ck_assert_str_eq(json_str(card, "protocolVersion"), "0.3.0");
    ck_assert(cJSON_IsTrue(json_at(card, "supportsAuthenticatedExtendedCard")));
    ck_assert(cJSON_IsTrue(json_at(card, "capabilities.extendedAgentCard")));
    ck_assert(cJSON_IsTrue(json_at(card, "capabilities.streaming")));
    ck_assert_str_eq(json_str(card, "securitySchemes.bearer.scheme"), "bearer");
    ck_assert_str_eq(json_str(card, "supportedInterfaces.0.protocolVersion"), "1.0");
    ck_assert_str_eq(json_str(card, "supportedInterfaces.0.url"), json_str(card, "url"));
    cJSON_Delete(card);
    /* a 1.0 client gets the 1.0 card */
    http_call_headers(dp.port, NULL, "/.well-known/agent-card.json", NULL, V1, &h);
    card = cJSON_Parse(h.body);
    http_resp_free(&h);
    ck_assert_ptr_null(json_at(card, "url"));
    ck_assert_ptr_null(json_at(card, "protocolVersion"));
    ck_assert_str_eq(json_str(card, "supportedInterfaces.1.protocolVersion"), "0.3");
    ck_assert_str_eq(json_str(card, "securitySchemes.bearer.httpAuthSecurityScheme.scheme"), "Bearer");
    cJSON_Delete(card);
    /* the extended card: 401 without or with a wrong token */
    static const char req03[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"agent/getAuthenticatedExtendedCard\"}";
    static const char req10[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetExtendedAgentCard\"}";
    http_call(dp.port, NULL, "/", req03, &h);
    ck_assert_int_eq(h.status, 401);
    ck_assert_ptr_nonnull(strcasestr(h.headers, "WWW-Authenticate: Bearer"));
    http_resp_free(&h);
    const char *wrong[] = {"Authorization: Bearer tok-0123456789abcdeX", NULL};
    http_call_headers(dp.port, NULL, "/", req03, wrong, &h);
    ck_assert_int_eq(h.status, 401);
    http_resp_free(&h);
    const char *right[] = {"Authorization: Bearer tok-fedcba9876543210", NULL};
    long status = 0;
    cJSON *r = rpc_call_headers(dp.port, "/", req03, right, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(json_str(r, "result.name"), "echo");
    ck_assert_str_eq(json_str(r, "result.protocolVersion"), "0.3.0");
    cJSON_Delete(r);
    const char *right10[] = {"Authorization: bearer tok-0123456789abcdef", "A2A-Version: 1.0", NULL};
    r = rpc_call_headers(dp.port, "/", req10, right10, &status);
    ck_assert_str_eq(json_str(r, "result.name"), "echo");
    ck_assert_ptr_null(json_at(r, "result.url"));
    cJSON_Delete(r);
}
END_TEST

/* ---- conversations ------------------------------------------------------ */

START_TEST(conversation_continues_a_running_task) {
    struct daemon_opts o = {.plugins = "convo,echo", .default_agent = "convo", .threads = 3};
    start_or_fail(&o);
    char *t = running_convo("conv-42");
    /* the agent hears the next turn (on_message) and the answer is the task */
    cJSON *r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"message/send\",\"params\":{\"message\":{"
                           "\"messageId\":\"c2\",\"role\":\"user\",\"taskId\":\"%s\",\"parts\":[{\"kind\":\"text\",\"text\":\"how are you\"}]},"
                           "\"configuration\":{\"blocking\":false}}}", t);
    ck_assert_str_eq(json_str(r, "result.kind"), "task");
    ck_assert_str_eq(json_str(r, "result.id"), t);
    ck_assert_str_eq(json_str(r, "result.contextId"), "conv-42"); /* inferred from the task */
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "result.history")), 2);
    ck_assert_str_eq(json_str(r, "result.history.1.parts.0.text"), "how are you");
    ck_assert_str_eq(json_str(r, "result.history.1.taskId"), t);
    cJSON_Delete(r);
    bool heard = false;
    for (int i = 0; i < 200 && !heard; i++) {
        r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", t);
        heard = strcmp(json_str(r, "result.status.message.parts.0.text"), "heard: how are you") == 0;
        cJSON_Delete(r);
        if (!heard) test_nap_ms(25);
    }
    ck_assert(heard);
    /* a mismatching contextId is refused */
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"message/send\",\"params\":{\"message\":{"
                             "\"messageId\":\"c3\",\"role\":\"user\",\"taskId\":\"%s\",\"contextId\":\"other\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}}", t),
                 -32602, "contextId");
    /* a blocking turn that ends the conversation answers the final task */
    r = rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"message/send\",\"params\":{\"message\":{"
                    "\"messageId\":\"c4\",\"role\":\"user\",\"taskId\":\"%s\",\"contextId\":\"conv-42\",\"parts\":[{\"kind\":\"text\",\"text\":\"bye\"}]}}}", t);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    ck_assert_str_eq(json_str(r, "result.status.message.parts.0.text"), "conversation over after 2 messages");
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "result.history")), 4); /* 3 user turns + the answer */
    cJSON_Delete(r);
    /* a finished task cannot be continued: 0.3 -32600, 1.0 -32004 */
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"message/send\",\"params\":{\"message\":{"
                             "\"messageId\":\"c5\",\"role\":\"user\",\"taskId\":\"%s\",\"parts\":[{\"kind\":\"text\",\"text\":\"again\"}]}}}", t),
                 -32600, "terminal");
    cJSON *e = rpcf(true, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"SendMessage\",\"params\":{\"message\":{"
                          "\"messageId\":\"c5\",\"role\":\"ROLE_USER\",\"task_id\":\"%s\",\"parts\":[{\"text\":\"again\"}]}}}", t);
    ck_assert_str_eq(json_str(e, "error.data.0.reason"), "UNSUPPORTED_OPERATION");
    expect_error(e, -32004, "terminal");
    /* an unknown task: -32001 (a client cannot choose a new task's id) */
    expect_error(rpcf(false, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"message/send\",\"params\":{\"message\":{"
                             "\"messageId\":\"c6\",\"role\":\"user\",\"taskId\":\"my-own-id\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}}"),
                 -32001, "my-own-id");
    /* the next task of the conversation keeps its contextId, at any agent */
    cJSON *n = rpc_call(dp.port, "/agents/echo",
                        "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"message/send\",\"params\":{\"message\":{"
                        "\"messageId\":\"c7\",\"role\":\"user\",\"contextId\":\"conv-42\",\"parts\":[{\"kind\":\"text\",\"text\":\"next\"}]}}}",
                        NULL);
    ck_assert_str_eq(json_str(n, "result.contextId"), "conv-42");
    ck_assert_str_ne(json_str(n, "result.id"), t);
    cJSON_Delete(n);
    free(t);
}
END_TEST

Suite *conformance_suite(void);
Suite *conformance_suite(void) {
    Suite *s = suite_create("conformance");
    TCase *tc = tcase_create("a2a");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, send_params_required_fields_and_types);
    tcase_add_test(tc, v1_send_get_cancel_shapes);
    tcase_add_test(tc, version_header_and_method_names);
    tcase_add_test(tc, get_and_cancel_error_paths);
    tcase_add_test(tc, list_tasks_filters_and_pages);
    tcase_add_test(tc, push_config_methods_03);
    tcase_add_test(tc, push_config_methods_10_send_stream_responses);
    tcase_add_test(tc, push_disabled_gets_32003);
    tcase_add_test(tc, cards_and_extended_card);
    tcase_add_test(tc, conversation_continues_a_running_task);
    suite_add_tcase(s, tc);
    return s;
}
