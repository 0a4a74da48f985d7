/* Integration: the real daemon binary, the example plugins, a real webhook
 * receiver, and HTTP from a real client. Each test starts its own daemon on
 * a free 127.0.0.1 port and asserts what a user would observe. */
#include <check.h>
#include <curl/curl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/receiver.h"
#include "util.h"

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

#define PROCESSOR_FAST "[agent.processor]\nstep_ms = 5\n"

static void start_or_fail(const struct daemon_opts *o) {
    if (!daemon_start(&dp, o)) {
        char *log = daemon_log(&dp);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

/* A non-blocking message/send with a webhook; returns the parsed answer. */
static cJSON *send_job(const char *path, const char *text, const char *token) {
    char body[8192];
    int n = snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"method\":\"message/send\",\"params\":{"
             "\"message\":{\"kind\":\"message\",\"messageId\":\"m1\",\"role\":\"user\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]},"
             "\"configuration\":{\"blocking\":false,\"pushNotificationConfig\":"
             "{\"url\":\"http://127.0.0.1:%u/hook\"%s%s%s}}}}",
             text, receiver_port(rcv), token ? ",\"token\":\"" : "", token ? token : "",
             token ? "\"" : "");
    ck_assert_int_lt(n, (int)sizeof body);
    long status = 0;
    cJSON *o = rpc_call(dp.port, path, body, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_ptr_nonnull(o);
    return o;
}

static cJSON *call(const char *path, const char *json) { return rpc_call(dp.port, path, json, NULL); }

static cJSON *get_task(const char *id, int history_length) {
    char body[300];
    if (history_length >= 0)
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\",\"historyLength\":%d}}",
                 id, history_length);
    else
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    return call("/", body);
}

static cJSON *received_json(size_t i) {
    const struct received *r = receiver_get(rcv, i);
    ck_assert_ptr_nonnull(r);
    cJSON *o = cJSON_Parse(r->body);
    ck_assert_msg(o != NULL, "webhook body %zu is not JSON: %s", i, r->body);
    return o;
}

/* Wait (bounded) until a task reaches `state`. */
static cJSON *wait_task_state(const char *id, const char *state, int max_ms) {
    for (int waited = 0;; waited += 20) {
        cJSON *t = get_task(id, -1);
        if (strcmp(json_str(t, "result.status.state"), state) == 0 || waited >= max_ms) return t;
        cJSON_Delete(t);
        test_nap_ms(20);
    }
}

START_TEST(cards_and_health) {
    struct daemon_opts o = {.plugins = "echo,processor", .default_agent = "processor", .extra = PROCESSOR_FAST};
    start_or_fail(&o);
    struct http_resp r;
    http_call(dp.port, NULL, "/.well-known/agent-card.json", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    cJSON *card = cJSON_Parse(r.body);
    ck_assert_str_eq(json_str(card, "name"), "processor");
    ck_assert_str_eq(json_str(card, "protocolVersion"), "0.3.0");
    ck_assert_str_eq(json_str(card, "preferredTransport"), "JSONRPC");
    ck_assert(cJSON_IsTrue(json_at(card, "capabilities.pushNotifications")));
    ck_assert_str_eq(json_str(card, "skills.0.id"), "process");
    char url[100];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", dp.port);
    ck_assert_str_eq(json_str(card, "url"), url);
    cJSON_Delete(card);
    http_resp_free(&r);

    http_call(dp.port, NULL, "/.well-known/agent.json", NULL, &r); /* legacy path */
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);

    http_call(dp.port, NULL, "/agents/echo/.well-known/agent-card.json", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    card = cJSON_Parse(r.body);
    ck_assert_str_eq(json_str(card, "name"), "echo");
    snprintf(url, sizeof url, "http://127.0.0.1:%u/agents/echo", dp.port);
    ck_assert_str_eq(json_str(card, "url"), url);
    cJSON_Delete(card);
    http_resp_free(&r);

    http_call(dp.port, NULL, "/agents/nope/.well-known/agent-card.json", NULL, &r);
    ck_assert_int_eq(r.status, 404);
    ck_assert_ptr_nonnull(strstr(r.body, "echo, processor"));
    http_resp_free(&r);

    http_call(dp.port, NULL, "/healthz", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    cJSON *h = cJSON_Parse(r.body);
    ck_assert_str_eq(json_str(h, "status"), "ok");
    ck_assert_int_eq(cJSON_GetArraySize(json_at(h, "agents")), 2);
    cJSON_Delete(h);
    http_resp_free(&r);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(processor_job_delivers_every_event_in_order) {
    struct daemon_opts o = {.plugins = "echo,processor", .extra = PROCESSOR_FAST};
    start_or_fail(&o);
    cJSON *ack = send_job("/agents/processor", "crunch these numbers", "secret");
    ck_assert_str_eq(json_str(ack, "id"), "req-1");
    const char *state = json_str(ack, "result.status.state");
    ck_assert(strcmp(state, "submitted") == 0 || strcmp(state, "working") == 0);
    char id[64];
    snprintf(id, sizeof id, "%s", json_str(ack, "result.id"));
    ck_assert_uint_eq(strlen(id), 36);
    cJSON_Delete(ack);

    /* working + 10 progress + 1 artifact + completed = 13 POSTs */
    ck_assert_msg(receiver_wait(rcv, 13, 15000), "got %zu webhooks", receiver_count(rcv));
    test_nap_ms(200);
    ck_assert_uint_eq(receiver_count(rcv), 13);
    for (size_t i = 0; i < 13; i++) {
        const struct received *req = receiver_get(rcv, i);
        ck_assert_str_eq(req->path, "/hook");
        char *tok = received_header(req, "X-A2A-Notification-Token");
        ck_assert_ptr_nonnull(tok);
        ck_assert_str_eq(tok, "secret");
        free(tok);
        char *ct = received_header(req, "Content-Type");
        ck_assert_str_eq(ct, "application/json");
        free(ct);
        cJSON *t = received_json(i);
        ck_assert_str_eq(json_str(t, "kind"), "task");
        ck_assert_str_eq(json_str(t, "id"), id);
        if (i == 0) ck_assert_str_eq(json_str(t, "status.state"), "working");
        if (i >= 1 && i <= 10) {
            char want[32];
            snprintf(want, sizeof want, "Step %zu/10", i);
            ck_assert_str_eq(json_str(t, "status.state"), "working");
            ck_assert_str_eq(json_str(t, "status.message.parts.0.text"), want);
            ck_assert_str_eq(json_str(t, "status.message.metadata.importance"), "info");
            double p = json_at(t, "status.message.metadata.progress")->valuedouble;
            ck_assert_double_eq_tol(p, (double)i / 10.0, 1e-9);
        }
        if (i == 11) {
            ck_assert_str_eq(json_str(t, "artifacts.0.name"), "results.json");
            /* application/json: an A2A data part */
            ck_assert_str_eq(json_str(t, "artifacts.0.parts.0.kind"), "data");
            ck_assert_str_eq(json_str(t, "artifacts.0.parts.0.data.query"), "crunch these numbers");
        }
        if (i == 12) {
            ck_assert_str_eq(json_str(t, "status.state"), "completed");
            ck_assert_str_eq(json_str(t, "status.message.parts.0.text"), "Processing complete!");
        }
        cJSON_Delete(t);
    }

    /* tasks/get shows the same final state; historyLength trims history */
    cJSON *t = get_task(id, -1);
    ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
    ck_assert_int_eq(cJSON_GetArraySize(json_at(t, "result.history")), 2);
    ck_assert_str_eq(json_str(t, "result.history.0.parts.0.text"), "crunch these numbers");
    ck_assert_str_eq(json_str(t, "result.artifacts.0.name"), "results.json");
    cJSON_Delete(t);
    t = get_task(id, 0);
    ck_assert_ptr_null(json_at(t, "result.history"));
    cJSON_Delete(t);
    t = get_task(id, 1);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(t, "result.history")), 1);
    ck_assert_str_eq(json_str(t, "result.history.0.role"), "agent");
    cJSON_Delete(t);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(blocking_send_answers_with_the_finished_task) {
    struct daemon_opts o = {.plugins = "echo,processor", .extra = PROCESSOR_FAST};
    start_or_fail(&o);
    /* no configuration: blocking, as both official SDKs default */
    cJSON *r = call("/agents/echo",
                    "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"message/send\",\"params\":{\"message\":"
                    "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"ping\"}]}}}");
    ck_assert_int_eq(json_int(r, "id"), 42);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    ck_assert_str_eq(json_str(r, "result.status.message.parts.0.text"), "ping");
    cJSON_Delete(r);
    /* a blocking processor job waits through all ten steps */
    r = call("/agents/processor",
             "{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"method\":\"message/send\",\"params\":{\"message\":"
             "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"go\"}]},"
             "\"configuration\":{\"blocking\":true,\"historyLength\":0}}}");
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    ck_assert_ptr_null(json_at(r, "result.history"));
    ck_assert_str_eq(json_str(r, "result.artifacts.0.name"), "results.json");
    cJSON_Delete(r);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(failing_agent_reports_error_then_fails) {
    struct daemon_opts o = {.plugins = "failing"};
    start_or_fail(&o);
    cJSON *ack = send_job("/", "bad input", NULL); /* the only agent serves / */
    char id[64];
    snprintf(id, sizeof id, "%s", json_str(ack, "result.id"));
    cJSON_Delete(ack);
    ck_assert(receiver_wait(rcv, 3, 10000));
    cJSON *err = received_json(1);
    ck_assert_str_eq(json_str(err, "status.message.metadata.importance"), "error");
    ck_assert_str_eq(json_str(err, "status.message.parts.0.text"), "Something went wrong");
    cJSON_Delete(err);
    cJSON *fin = received_json(2);
    ck_assert_str_eq(json_str(fin, "status.state"), "failed");
    ck_assert_str_eq(json_str(fin, "status.message.parts.0.text"), "simulated failure: bad input");
    cJSON_Delete(fin);
    /* no token configured: no token header */
    ck_assert_ptr_null(received_header(receiver_get(rcv, 0), "X-A2A-Notification-Token"));
    cJSON *t = get_task(id, -1);
    ck_assert_str_eq(json_str(t, "result.status.state"), "failed");
    cJSON_Delete(t);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(long_token_arrives_intact) {
    struct daemon_opts o = {.plugins = "echo"};
    start_or_fail(&o);
    char token[1501];
    for (int i = 0; i < 1500; i++) token[i] = (char)('a' + i % 26);
    token[1500] = '\0';
    cJSON *ack = send_job("/", "hi", token);
    cJSON_Delete(ack);
    ck_assert(receiver_wait(rcv, 2, 5000));
    char *got = received_header(receiver_get(rcv, 1), "X-A2A-Notification-Token");
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, token);
    free(got);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(threaded_agent_sends_binary_artifact_and_progress_from_threads) {
    struct daemon_opts o = {.plugins = "threaded", .extra = "[agent.threaded]\nthreads = 3\n"};
    start_or_fail(&o);
    cJSON *r = call("/",
                    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                    "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"100000\"}]}}}");
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    ck_assert_str_eq(json_str(r, "result.status.message.parts.0.text"), "primes below 100000: 9592");
    ck_assert_str_eq(json_str(r, "result.artifacts.0.name"), "partials.bin");
    ck_assert_str_eq(json_str(r, "result.artifacts.0.parts.0.kind"), "file");
    ck_assert_str_eq(json_str(r, "result.artifacts.0.parts.0.file.mimeType"), "application/octet-stream");
    size_t n = 0;
    unsigned char *bytes = util_base64_decode(json_str(r, "result.artifacts.0.parts.0.file.bytes"), &n);
    ck_assert_uint_eq(n, 3 * 8);
    uint64_t sum = 0;
    for (int k = 0; k < 3; k++) {
        uint64_t v = 0;
        for (int b = 7; b >= 0; b--) v = v << 8 | bytes[k * 8 + b];
        sum += v;
    }
    ck_assert_uint_eq(sum, 9592);
    free(bytes);
    cJSON_Delete(r);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(webhook_retried_after_503_keeps_order) {
    struct daemon_opts o = {.plugins = "processor", .extra = PROCESSOR_FAST};
    start_or_fail(&o);
    receiver_fail_next(rcv, 2, 503);
    cJSON *ack = send_job("/", "retry me", "t");
    cJSON_Delete(ack);
    ck_assert_msg(receiver_wait(rcv, 13, 15000), "got %zu", receiver_count(rcv));
    ck_assert_uint_eq(receiver_attempts(rcv), 15);
    /* still in order despite the failed first attempts */
    cJSON *first = received_json(0);
    ck_assert_str_eq(json_str(first, "status.state"), "working");
    ck_assert_ptr_null(json_at(first, "status.message"));
    cJSON_Delete(first);
    for (size_t i = 1; i <= 10; i++) {
        cJSON *t = received_json(i);
        ck_assert_double_eq_tol(json_at(t, "status.message.metadata.progress")->valuedouble, i / 10.0, 1e-9);
        cJSON_Delete(t);
    }
    cJSON *last = received_json(12);
    ck_assert_str_eq(json_str(last, "status.state"), "completed");
    cJSON_Delete(last);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(cancel_stops_a_running_job) {
    struct daemon_opts o = {.plugins = "processor", .extra = "[agent.processor]\nstep_ms = 300\n"};
    start_or_fail(&o);
    cJSON *ack = send_job("/", "slow", NULL);
    char id[64], body[300];
    snprintf(id, sizeof id, "%s", json_str(ack, "result.id"));
    cJSON_Delete(ack);
    ck_assert(receiver_wait(rcv, 2, 10000)); /* working + Step 1/10 */
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"%s\"}}", id);
    cJSON *r = call("/", body);
    ck_assert_str_eq(json_str(r, "result.status.state"), "canceled");
    cJSON_Delete(r);
    /* the terminal webhook says canceled, and nothing follows it */
    size_t n = 0;
    for (int i = 0; i < 100; i++) {
        n = receiver_count(rcv);
        cJSON *t = received_json(n - 1);
        bool done = strcmp(json_str(t, "status.state"), "canceled") == 0;
        cJSON_Delete(t);
        if (done) break;
        test_nap_ms(20);
    }
    test_nap_ms(700); /* longer than two steps: a still-running job would post again */
    ck_assert_uint_eq(receiver_count(rcv), n);
    ck_assert_uint_lt(n, 13);
    cJSON *t = received_json(n - 1);
    ck_assert_str_eq(json_str(t, "status.state"), "canceled");
    cJSON_Delete(t);
    /* canceling again: not cancelable */
    r = call("/", body);
    ck_assert_int_eq(json_int(r, "error.code"), -32002);
    cJSON_Delete(r);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(max_duration_fails_a_job_that_overruns) {
    struct daemon_opts o = {.plugins = "stubborn",
                            .extra = "[agent.stubborn]\nmax_duration_s = 1\nsleep_ms = 2500\n"};
    start_or_fail(&o);
    cJSON *ack = send_job("/", "forever", NULL);
    char id[64];
    snprintf(id, sizeof id, "%s", json_str(ack, "result.id"));
    cJSON_Delete(ack);
    cJSON *t = wait_task_state(id, "failed", 5000);
    ck_assert_str_eq(json_str(t, "result.status.state"), "failed");
    ck_assert_str_eq(json_str(t, "result.status.message.parts.0.text"),
                     "Task exceeded maximum duration of 1 seconds (0 minutes)");
    cJSON_Delete(t);
    ck_assert(receiver_wait(rcv, 2, 5000));
    cJSON *fin = received_json(1);
    ck_assert_str_eq(json_str(fin, "status.state"), "failed");
    cJSON_Delete(fin);
    /* the plugin's late result does not change the outcome */
    test_nap_ms(2000);
    t = get_task(id, -1);
    ck_assert_str_eq(json_str(t, "result.status.state"), "failed");
    cJSON_Delete(t);
    ck_assert_uint_eq(receiver_count(rcv), 2);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(validation_rejects_a_job) {
    struct daemon_opts o = {.plugins = "processor", .extra = PROCESSOR_FAST};
    start_or_fail(&o);
    cJSON *ack = send_job("/", "   ", NULL);
    ck_assert_str_eq(json_str(ack, "result.status.state"), "rejected");
    ck_assert_str_eq(json_str(ack, "result.status.message.parts.0.text"), "Validation failed: the query is empty");
    cJSON_Delete(ack);
    ck_assert(receiver_wait(rcv, 1, 5000));
    cJSON *t = received_json(0);
    ck_assert_str_eq(json_str(t, "status.state"), "rejected");
    cJSON_Delete(t);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

struct error_case {
    const char *path;
    const char *body;
    long http_status;
    int code;
    const char *message_part;
};

START_TEST(every_error_code) {
    struct daemon_opts o = {.plugins = "echo,processor", .default_agent = "echo",
                            .server_extra = "max_body_bytes = 4k", .extra = PROCESSOR_FAST};
    start_or_fail(&o);
    /* a finished task for the not-cancelable case */
    cJSON *done = call("/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                            "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}}");
    ck_assert_str_eq(json_str(done, "result.status.state"), "completed");
    char cancel_done[300];
    snprintf(cancel_done, sizeof cancel_done,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"%s\"}}",
             json_str(done, "result.id"));
    cJSON_Delete(done);
    const char *msg = "\"message\":{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}";
    char with_msg[512];
    snprintf(with_msg, sizeof with_msg,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/stream\",\"params\":{\"message\":"
             "{\"messageId\":\"m\",\"role\":\"user\",\"taskId\":\"no-such-task\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}}");
    char bad_hist[512];
    snprintf(bad_hist, sizeof bad_hist,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{%s,\"configuration\":{\"historyLength\":-2}}}", msg);
    char bad_hook[512];
    snprintf(bad_hook, sizeof bad_hook,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{%s,\"configuration\":{\"pushNotificationConfig\":{\"url\":\"ftp://x\"}}}}", msg);
    char huge_hist[512];
    snprintf(huge_hist, sizeof huge_hist,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"x\",\"historyLength\":1e10}}");
    char big[6000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":{\"pad\":\"";
    memcpy(big, head, sizeof head - 1);
    memcpy(big + sizeof big - 4, "\"}}", 3);
    struct error_case cases[] = {
        {"/", "{not json", 200, -32700, "not valid JSON"},
        {"/", "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\"}]", 200, -32600, "batch"},
        {"/", "\"just a string\"", 200, -32600, "must be an object"},
        {"/", "{\"id\":1,\"method\":\"tasks/get\",\"params\":{}}", 200, -32600, "jsonrpc"},
        /* no id: answered like "id": null (as the Python SDK does) */
        {"/", "{\"jsonrpc\":\"2.0\",\"method\":\"tasks/get\",\"params\":{}}", 200, -32602, "params.id"},
        {"/", "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"tasks/get\"}", 200, -32600, "\"id\" must be"},
        {"/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/nope\",\"params\":{}}", 200, -32601, "tasks/nope"},
        {"/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":[1]}", 200, -32602, "params"},
        {"/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{}}", 200, -32602, "params.message"},
        {"/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":{\"messageId\":\"m\",\"role\":\"user\",\"parts\":[]}}}", 200, -32602, "parts"},
        {"/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":{\"messageId\":\"m\",\"role\":\"robot\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}}", 200, -32602, "role"},
        {"/", bad_hist, 200, -32602, "historyLength"},
        {"/", bad_hook, 200, -32602, "url"},
        {"/", huge_hist, 200, -32602, "historyLength"},
        {"/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{}}", 200, -32602, "params.id"},
        {"/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"no-such-task\"}}", 200, -32001, "no-such-task"},
        {"/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"no-such-task\"}}", 200, -32001, "not found"},
        {"/", cancel_done, 200, -32002, "completed"},
        {"/", with_msg, 200, -32001, "no-such-task"},
        {"/agents/ghost", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{}}", 404, -32600, "echo, processor"},
        {"/", big, 413, -32600, "max_body_bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long status = 0;
        cJSON *r = rpc_call(dp.port, cases[i].path, cases[i].body, &status);
        ck_assert_msg(r != NULL, "case %zu: no JSON answer", i);
        ck_assert_msg(status == cases[i].http_status, "case %zu: HTTP %ld", i, status);
        ck_assert_msg(json_int(r, "error.code") == cases[i].code, "case %zu: code %d", i, json_int(r, "error.code"));
        ck_assert_msg(strstr(json_str(r, "error.message"), cases[i].message_part) != NULL,
                      "case %zu: message \"%s\" lacks \"%s\"", i, json_str(r, "error.message"), cases[i].message_part);
        ck_assert_str_eq(json_str(r, "jsonrpc"), "2.0");
        cJSON_Delete(r);
    }
    /* plain HTTP errors */
    struct http_resp h;
    http_call(dp.port, NULL, "/", NULL, &h);
    ck_assert_int_eq(h.status, 405);
    http_resp_free(&h);
    http_call(dp.port, NULL, "/no/such/path", NULL, &h);
    ck_assert_int_eq(h.status, 404);
    http_resp_free(&h);
    http_call(dp.port, "DELETE", "/", NULL, &h);
    ck_assert_int_eq(h.status, 405);
    http_resp_free(&h);
    /* and the daemon is still healthy */
    http_call(dp.port, NULL, "/healthz", NULL, &h);
    ck_assert_int_eq(h.status, 200);
    http_resp_free(&h);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(full_queue_answers_503_and_keeps_accepted_jobs) {
    struct daemon_opts o = {.plugins = "processor", .threads = 1, .queue_length = 1,
                            .extra = "[agent.processor]\nstep_ms = 100\n"};
    start_or_fail(&o);
    cJSON *a = send_job("/", "one", NULL);
    ck_assert(receiver_wait(rcv, 1, 5000)); /* the first is running */
    cJSON *b = send_job("/", "two", NULL);  /* queued */
    char body[600];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"message/send\",\"params\":{\"message\":"
             "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"three\"}]},"
             "\"configuration\":{\"blocking\":false}}}");
    struct http_resp h;
    http_call(dp.port, NULL, "/", body, &h);
    ck_assert_int_eq(h.status, 503);
    ck_assert_ptr_nonnull(strstr(h.headers, "Retry-After: 1"));
    cJSON *r = cJSON_Parse(h.body);
    ck_assert_int_eq(json_int(r, "error.code"), -32603);
    ck_assert_ptr_nonnull(strstr(json_str(r, "error.message"), "queue is full"));
    cJSON_Delete(r);
    http_resp_free(&h);
    /* both accepted jobs still complete */
    cJSON *ta = wait_task_state(json_str(a, "result.id"), "completed", 10000);
    cJSON *tb = wait_task_state(json_str(b, "result.id"), "completed", 10000);
    ck_assert_str_eq(json_str(ta, "result.status.state"), "completed");
    ck_assert_str_eq(json_str(tb, "result.status.state"), "completed");
    cJSON_Delete(ta);
    cJSON_Delete(tb);
    cJSON_Delete(a);
    cJSON_Delete(b);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(slow_webhooks_push_back_on_submissions_without_losing_events) {
    /* One POST at a time to a receiver taking 20 ms each: the backlog passes
     * the high-water mark (max_pending / 2), workers stop starting jobs, the
     * queue fills, and later submissions get 503 instead of events being
     * dropped or piling up in memory. */
    receiver_set_delay(rcv, 20);
    struct daemon_opts o = {.plugins = "processor", .threads = 1, .queue_length = 2,
                            .webhooks_extra = "max_pending = 60\nmax_in_flight = 1",
                            .extra = "[agent.processor]\nstep_ms = 0\n"};
    start_or_fail(&o);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 12; i++) {
        char body[600];
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"message/send\",\"params\":{\"message\":"
                 "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"j%d\"}]},"
                 "\"configuration\":{\"blocking\":false,\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:%u/hook\"}}}}",
                 i, i, receiver_port(rcv));
        long status = 0;
        cJSON *r = rpc_call(dp.port, "/", body, &status);
        if (status == 200 && json_at(r, "result")) accepted++;
        if (status == 503) refused++;
        cJSON_Delete(r);
        test_nap_ms(10);
    }
    ck_assert_int_eq(accepted + refused, 12);
    ck_assert_int_gt(refused, 0);
    ck_assert_int_gt(accepted, 0);
    /* every accepted job's 13 events arrive: none was dropped for room */
    ck_assert_msg(receiver_wait(rcv, (size_t)accepted * 13, 30000), "got %zu of %d",
                  receiver_count(rcv), accepted * 13);
    test_nap_ms(300);
    ck_assert_uint_eq(receiver_count(rcv), (size_t)accepted * 13);
    char *log = daemon_log(&dp);
    ck_assert_ptr_nonnull(strstr(log, "new jobs wait for the receivers"));
    ck_assert_ptr_null(strstr(log, "not queued"));
    free(log);
    ck_assert_int_eq(daemon_stop(&dp, 20000), 0);
}
END_TEST

START_TEST(bad_plugins_stop_startup_when_fatal) {
    static const char *const bad[] = {"bad_abi", "no_entry", "short_struct", "no_run", "failing_init", "bad_name"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char list[64];
        snprintf(list, sizeof list, "echo,%s", bad[i]);
        struct daemon_opts o = {.plugins = list};
        ck_assert(daemon_prepare(&dp, &o));
        ck_assert_int_eq(daemon_run_args(&dp, NULL, 10000), 1);
        char *log = daemon_log(&dp);
        char want[64];
        snprintf(want, sizeof want, "%s.so refused", bad[i]);
        ck_assert_msg(strstr(log, want) != NULL, "log lacks \"%s\":\n%s", want, log);
        ck_assert_ptr_nonnull(strstr(log, "start-up stopped"));
        free(log);
        daemon_cleanup(&dp);
        memset(&dp, 0, sizeof dp);
    }
}
END_TEST

START_TEST(bad_plugins_skipped_when_configured) {
    struct daemon_opts o = {.plugins = "echo,bad_abi,no_entry,dup_echo", .errors = "skip"};
    start_or_fail(&o);
    struct http_resp h;
    http_call(dp.port, NULL, "/healthz", NULL, &h);
    cJSON *r = cJSON_Parse(h.body);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "agents")), 1);
    ck_assert_str_eq(json_str(r, "agents.0"), "echo");
    cJSON_Delete(r);
    http_resp_free(&h);
    char *log = daemon_log(&dp);
    ck_assert_ptr_nonnull(strstr(log, "bad_abi.so refused"));
    ck_assert_ptr_nonnull(strstr(log, "rebuild it against"));
    ck_assert_ptr_nonnull(strstr(log, "no_entry.so refused"));
    ck_assert_ptr_nonnull(strstr(log, "already used by"));
    free(log);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(sigterm_lets_running_jobs_finish_and_flushes_webhooks) {
    /* The memory store fails queued jobs at stop (test_durable has sqlite's). */
    struct daemon_opts o = {.plugins = "processor", .threads = 1, .store = "memory",
                            .extra = "[agent.processor]\nstep_ms = 60\n"};
    start_or_fail(&o);
    cJSON *a = send_job("/", "finish me", NULL);
    cJSON *b = send_job("/", "never started", NULL);
    cJSON_Delete(a);
    cJSON_Delete(b);
    ck_assert(receiver_wait(rcv, 2, 5000)); /* the first job is running */
    ck_assert_int_eq(daemon_stop(&dp, 15000), 0);
    /* everything was delivered before the process exited */
    size_t n = receiver_count(rcv);
    int completed = 0, interrupted = 0;
    for (size_t i = 0; i < n; i++) {
        cJSON *t = received_json(i);
        if (strcmp(json_str(t, "status.state"), "completed") == 0) completed++;
        if (strcmp(json_str(t, "status.state"), "failed") == 0 &&
            strstr(json_str(t, "status.message.parts.0.text"), "interrupted: a2ad shut down before the job started"))
            interrupted++;
        cJSON_Delete(t);
    }
    ck_assert_int_eq(completed, 1);
    ck_assert_int_eq(interrupted, 1);
    char *log = daemon_log(&dp);
    ck_assert_ptr_nonnull(strstr(log, "stopped"));
    free(log);
}
END_TEST

START_TEST(config_check_mode) {
    struct daemon_opts o = {.plugins = "echo", .extra = "[agent.echo]\n"};
    ck_assert(daemon_prepare(&dp, &o));
    ck_assert_int_eq(daemon_run_args(&dp, "-t", 10000), 0);
    char *log = daemon_log(&dp);
    ck_assert_ptr_nonnull(strstr(log, "configuration ok"));
    free(log);
    /* A bad value in the helper's [tasks] section (a section may appear once). */
    o.tasks_extra = "retention_s = soon";
    char dir[sizeof dp.dir];
    memcpy(dir, dp.dir, sizeof dir);
    ck_assert(daemon_prepare(&dp, &o));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(daemon_run_args(&dp, "-t", 10000), 1);
    log = daemon_log(&dp);
    char want[400];
    snprintf(want, sizeof want, "%s:", dp.conf);
    ck_assert_ptr_nonnull(strstr(log, want));
    ck_assert_ptr_nonnull(strstr(log, "retention_s = soon"));
    free(log);
}
END_TEST

Suite *integration_suite(void);
Suite *integration_suite(void) {
    Suite *s = suite_create("integration");
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, cards_and_health);
    tcase_add_test(tc, processor_job_delivers_every_event_in_order);
    tcase_add_test(tc, blocking_send_answers_with_the_finished_task);
    tcase_add_test(tc, failing_agent_reports_error_then_fails);
    tcase_add_test(tc, threaded_agent_sends_binary_artifact_and_progress_from_threads);
    tcase_add_test(tc, long_token_arrives_intact);
    tcase_add_test(tc, webhook_retried_after_503_keeps_order);
    tcase_add_test(tc, cancel_stops_a_running_job);
    tcase_add_test(tc, max_duration_fails_a_job_that_overruns);
    tcase_add_test(tc, validation_rejects_a_job);
    tcase_add_test(tc, every_error_code);
    tcase_add_test(tc, full_queue_answers_503_and_keeps_accepted_jobs);
    tcase_add_test(tc, slow_webhooks_push_back_on_submissions_without_losing_events);
    tcase_add_test(tc, bad_plugins_stop_startup_when_fatal);
    tcase_add_test(tc, bad_plugins_skipped_when_configured);
    tcase_add_test(tc, sigterm_lets_running_jobs_finish_and_flushes_webhooks);
    tcase_add_test(tc, config_check_mode);
    suite_add_tcase(s, tc);
    return s;
}
