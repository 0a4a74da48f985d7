/* multiturn: A2A's interrupted states against the real daemon, in both
 * protocol versions. The asker plugin asks for input (a2ad_request_input):
 * a blocking send returns at input-required, streams end there, webhooks
 * get it, and the client's next message with that taskId resumes the job
 * through the conversation path until it completes. */
#include <check.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void start_or_fail(void) {
    struct daemon_opts o = {.plugins = "asker", .default_agent = "asker", .threads = 2};
    if (!daemon_start(&dp, &o)) {
        char *log = daemon_log(&dp);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

static cJSON *call(bool v1, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cJSON *call(bool v1, const char *fmt, ...) {
    char body[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    static const char *const h1[] = {"A2A-Version: 1.0", NULL};
    cJSON *o = rpc_call_headers(dp.port, "/", body, v1 ? h1 : NULL, NULL);
    ck_assert_msg(o != NULL, "no JSON answer to %s", body);
    return o;
}

/* A blocking send of text (continuing task when not NULL); the result. */
static cJSON *send_text(bool v1, const char *text, const char *task) {
    char tid[80] = "";
    if (task) snprintf(tid, sizeof tid, "\"taskId\":\"%s\",", task);
    return v1 ? call(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendMessage\",\"params\":{\"message\":"
                           "{\"messageId\":\"m-%s\",%s\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"%s\"}]}}}", text, tid, text)
              : call(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                            "{\"kind\":\"message\",\"messageId\":\"m-%s\",%s\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]}}}",
                     text, tid, text);
}

START_TEST(blocking_send_returns_at_input_required_and_the_next_message_completes_it) {
    start_or_fail();
    for (int v = 0; v < 2; v++) {
        bool v1 = v == 1;
        const char *P = v1 ? "result.task." : "result.";
        char path[80];
#define AT(x) (snprintf(path, sizeof path, "%s%s", P, x), path)
        cJSON *r = send_text(v1, "hi", NULL);
        ck_assert_msg(json_at(r, "result") != NULL, "%s", cJSON_PrintUnformatted(r));
        ck_assert_str_eq(json_str(r, AT("status.state")), v1 ? "TASK_STATE_INPUT_REQUIRED" : "input-required");
        ck_assert_str_eq(json_str(r, AT("status.message.parts.0.text")), "What is your name?");
        ck_assert_str_eq(json_str(r, AT("history.1.parts.0.text")), "What is your name?");
        char t[40];
        snprintf(t, sizeof t, "%s", json_str(r, AT("id")));
        cJSON_Delete(r);
        /* the state as GetTask and ListTasks see it */
        r = call(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"status\":\"TASK_STATE_INPUT_REQUIRED\"}}");
        ck_assert_int_eq(json_int(r, "result.totalSize"), 1);
        ck_assert_str_eq(json_str(r, "result.tasks.0.id"), t);
        cJSON_Delete(r);
        /* the answer resumes the job; the blocking send returns when it ends */
        r = send_text(v1, "Ada", t);
        ck_assert_msg(json_at(r, "result") != NULL, "%s", cJSON_PrintUnformatted(r));
        ck_assert_str_eq(json_str(r, AT("id")), t);
        ck_assert_str_eq(json_str(r, AT("status.state")), v1 ? "TASK_STATE_COMPLETED" : "completed");
        ck_assert_str_eq(json_str(r, AT("status.message.parts.0.text")), "Hello, Ada");
        ck_assert_str_eq(json_str(r, AT("history.0.parts.0.text")), "hi");
        ck_assert_str_eq(json_str(r, AT("history.1.parts.0.text")), "What is your name?");
        ck_assert_str_eq(json_str(r, AT("history.2.parts.0.text")), "Ada");
        ck_assert_str_eq(json_str(r, AT("history.3.parts.0.text")), "Hello, Ada");
        cJSON_Delete(r);
#undef AT
    }
    /* auth-required the same way */
    cJSON *r = send_text(true, "auth", NULL);
    ck_assert_str_eq(json_str(r, "result.task.status.state"), "TASK_STATE_AUTH_REQUIRED");
    char t[40];
    snprintf(t, sizeof t, "%s", json_str(r, "result.task.id"));
    cJSON_Delete(r);
    r = send_text(false, "Grace", t);
    ck_assert_str_eq(json_str(r, "result.status.message.parts.0.text"), "Hello, Grace");
    cJSON_Delete(r);
    /* a task waiting for input can be canceled */
    r = send_text(false, "hi", NULL);
    snprintf(t, sizeof t, "%s", json_str(r, "result.id"));
    cJSON_Delete(r);
    r = call(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"%s\"}}", t);
    ck_assert_str_eq(json_str(r, "result.status.state"), "canceled");
    cJSON_Delete(r);
}
END_TEST

/* Read a stream to its end; returns the states of its events, joined. */
static void read_states(struct sse *s, bool v1, char *out, size_t n) {
    out[0] = '\0';
    char *data = NULL;
    int r;
    size_t o = 0;
    while ((r = sse_next(s, &data, 15000)) == 1) {
        cJSON *e = cJSON_Parse(data);
        free(data);
        const char *st = v1 ? (json_at(e, "result.task") ? json_str(e, "result.task.status.state")
                                                         : json_str(e, "result.statusUpdate.status.state"))
                            : json_str(e, "result.status.state");
        bool final = !v1 && cJSON_IsTrue(json_at(e, "result.final"));
        o += (size_t)snprintf(out + o, n - o, "%s%s%s", o ? " " : "", final ? "!" : "", st);
        cJSON_Delete(e);
    }
    if (r != 0) {
        char *log = daemon_log(&dp);
        ck_abort_msg("stream broke (HTTP %d) after \"%s\": %s\ndaemon log:\n%s", sse_status(s, 1000), out,
                     sse_body(s), log);
    }
}

START_TEST(streams_end_at_input_required_and_the_continuation_streams_the_rest) {
    start_or_fail();
    static const char *const open03 =
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/stream\",\"params\":{\"message\":"
        "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}]}}}";
    static const char *const open10 =
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendStreamingMessage\",\"params\":{\"message\":"
        "{\"messageId\":\"m\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"hi\"}]}}}";
    static const char *const h1[] = {"A2A-Version: 1.0", NULL};
    for (int v = 0; v < 2; v++) {
        bool v1 = v == 1;
        struct sse *s = sse_open(dp.port, "/", v1 ? open10 : open03, v1 ? h1 : NULL);
        char states[400];
        read_states(s, v1, states, sizeof states);
        sse_close(s);
        ck_assert_str_eq(states, v1 ? "TASK_STATE_SUBMITTED TASK_STATE_WORKING TASK_STATE_INPUT_REQUIRED"
                                    : "submitted working !input-required");
        /* the task id, from the last task listed */
        cJSON *r = call(true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"status\":\"TASK_STATE_INPUT_REQUIRED\"}}");
        char t[40];
        snprintf(t, sizeof t, "%s", json_str(r, "result.tasks.0.id"));
        ck_assert_uint_eq(strlen(t), 36);
        cJSON_Delete(r);
        char body[600];
        if (v1)
            snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"SendStreamingMessage\",\"params\":{\"message\":"
                     "{\"messageId\":\"m2\",\"taskId\":\"%s\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"Bob\"}]}}}", t);
        else
            snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"message/stream\",\"params\":{\"message\":"
                     "{\"kind\":\"message\",\"messageId\":\"m2\",\"taskId\":\"%s\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"Bob\"}]}}}", t);
        s = sse_open(dp.port, "/", body, v1 ? h1 : NULL);
        read_states(s, v1, states, sizeof states);
        sse_close(s);
        ck_assert_str_eq(states, v1 ? "TASK_STATE_WORKING TASK_STATE_COMPLETED" : "working !completed");
    }
}
END_TEST

START_TEST(webhooks_get_the_interrupted_state) {
    start_or_fail();
    cJSON *r = call(false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                           "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}]},"
                           "\"configuration\":{\"blocking\":false,\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:%u/w\"}}}}",
                    receiver_port(rcv));
    char t[40];
    snprintf(t, sizeof t, "%s", json_str(r, "result.id"));
    cJSON_Delete(r);
    bool seen = false;
    for (int i = 0; i < 200 && !seen; i++) {
        for (size_t k = 0; k < receiver_count(rcv) && !seen; k++) {
            cJSON *b = cJSON_Parse(receiver_get(rcv, k)->body);
            seen = strcmp(json_str(b, "status.state"), "input-required") == 0 &&
                   strcmp(json_str(b, "status.message.parts.0.text"), "What is your name?") == 0;
            cJSON_Delete(b);
        }
        if (!seen) test_nap_ms(25);
    }
    ck_assert_msg(seen, "no webhook with the input-required Task");
    cJSON_Delete(send_text(false, "Eve", t));
    ck_assert(receiver_wait(rcv, 4, 10000));
}
END_TEST

Suite *multiturn_suite(void);
Suite *multiturn_suite(void) {
    Suite *s = suite_create("multiturn");
    TCase *tc = tcase_create("interrupted states");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, blocking_send_returns_at_input_required_and_the_next_message_completes_it);
    tcase_add_test(tc, streams_end_at_input_required_and_the_continuation_streams_the_rest);
    tcase_add_test(tc, webhooks_get_the_interrupted_state);
    suite_add_tcase(s, tc);
    return s;
}
