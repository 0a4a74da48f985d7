/* replay: a client that loses its SSE stream mid-job and comes back with
 * Last-Event-ID gets every event exactly once, in both protocol versions,
 * from the durable store (also across a restart); what happens when the
 * missed events are no longer kept. */
#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/sse.h"

static struct daemon_proc d1, d2;

static void setup(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(&d1, 0, sizeof d1);
    memset(&d2, 0, sizeof d2);
}

static void teardown(void) {
    daemon_cleanup(&d2);
    daemon_cleanup(&d1);
    curl_global_cleanup();
}

static void start_or_fail(struct daemon_proc *d, const struct daemon_opts *o) {
    if (!daemon_start(d, o)) {
        char *log = daemon_log(d);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

static const char *const V1_SSE[] = {"A2A-Version: 1.0", NULL};

/* One event read: its id's SEQ and the JSON-RPC result. */
struct got {
    unsigned long long seq;
    cJSON *result;
};

/* Next event of s (fails the test when none comes); 0 at the end. */
static int next_event(struct sse *s, const char *task, struct got *g) {
    char *data = NULL;
    int r = sse_next(s, &data, 15000);
    ck_assert_msg(r >= 0, "stream broke; body so far:\n%.3000s", sse_body(s));
    if (r == 0) return 0;
    cJSON *o = cJSON_Parse(data);
    ck_assert_msg(o && json_at(o, "result"), "not a result: %s", data);
    free(data);
    const char *id = sse_last_id(s);
    const char *dot = strrchr(id, '.');
    ck_assert_msg(dot != NULL, "event without id: %s", id);
    if (task) ck_assert_msg(strncmp(id, task, 36) == 0, "id %s is not of task %s", id, task);
    g->seq = strtoull(dot + 1, NULL, 10);
    g->result = cJSON_DetachItemFromObject(o, "result");
    cJSON_Delete(o);
    return 1;
}

static bool is_terminal_event(const cJSON *r, bool v1) {
    if (v1) {
        const char *st = json_str(r, "statusUpdate.status.state");
        return !strcmp(st, "TASK_STATE_COMPLETED") || !strcmp(st, "TASK_STATE_FAILED");
    }
    return cJSON_IsTrue(json_at(r, "final"));
}

/* Start a processor job on a stream, read `keep` events after the Task,
 * drop the connection; reconnect with Last-Event-ID (optionally after a
 * restart on the same database) and read to the end. Every SEQ from the
 * first frame's to the last must come exactly once, in order. */
static void drop_and_resume(bool v1, bool restart) {
    struct daemon_opts o = {.plugins = "processor", .default_agent = "processor",
                            .extra = "[agent.processor]\nstep_ms = 150\n"};
    start_or_fail(&d1, &o);
    const char *body03 = "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"message/stream\",\"params\":{\"message\":"
                         "{\"kind\":\"message\",\"messageId\":\"m1\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"go\"}]}}}";
    const char *body10 = "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"SendStreamingMessage\",\"params\":{\"message\":"
                         "{\"messageId\":\"m1\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"go\"}]}}}";
    struct sse *s = sse_open(d1.port, "/", v1 ? body10 : body03, v1 ? V1_SSE : NULL);
    ck_assert_int_eq(sse_status(s, 10000), 200);
    struct got g;
    ck_assert_int_eq(next_event(s, NULL, &g), 1);
    char task[40];
    snprintf(task, sizeof task, "%s", json_str(g.result, v1 ? "task.id" : "id"));
    ck_assert_uint_eq(strlen(task), 36);
    cJSON_Delete(g.result);
    unsigned long long expect = g.seq + 1, last = g.seq;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(next_event(s, task, &g), 1);
        ck_assert_uint_eq(g.seq, expect);
        expect++;
        last = g.seq;
        cJSON_Delete(g.result);
    }
    char last_id[300];
    snprintf(last_id, sizeof last_id, "%s", sse_last_id(s));
    sse_close(s); /* the connection drops mid-job */

    struct daemon_proc *dp = &d1;
    char db[320];
    if (restart) {
        /* wait (bounded) for the job to end, then restart on its database */
        char get[200];
        snprintf(get, sizeof get, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", task);
        bool done = false;
        for (int i = 0; i < 300 && !done; i++) {
            cJSON *t = rpc_call(d1.port, "/", get, NULL);
            done = strcmp(json_str(t, "result.status.state"), "completed") == 0;
            cJSON_Delete(t);
            if (!done) test_nap_ms(50);
        }
        ck_assert(done);
        ck_assert_int_eq(daemon_stop(&d1, 20000), 0);
        snprintf(db, sizeof db, "%s/a2ad.db", d1.dir);
        o.db_path = db;
        start_or_fail(&d2, &o);
        dp = &d2;
    } else {
        test_nap_ms(400); /* a few events pass while the client is away */
    }
    char body[300];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"%s\",\"params\":{\"id\":\"%s\"}}",
             v1 ? "SubscribeToTask" : "tasks/resubscribe", task);
    char hdr[340];
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %s", last_id);
    const char *h[] = {hdr, v1 ? "A2A-Version: 1.0" : NULL, NULL};
    s = sse_open(dp->port, "/", body, h);
    ck_assert_int_eq(sse_status(s, 10000), 200);
    bool ended = false;
    unsigned n = 0;
    while (next_event(s, task, &g) == 1) {
        ck_assert_msg(g.seq == last + 1, "after %llu came %llu (exactly once, in order)", last, g.seq);
        ck_assert_msg(v1 ? json_at(g.result, "task") == NULL
                         : strcmp(json_str(g.result, "kind"), "task") != 0,
                      "a replay starts with the missed events, not the Task");
        last = g.seq;
        ended = is_terminal_event(g.result, v1);
        cJSON_Delete(g.result);
        n++;
    }
    sse_close(s);
    ck_assert_msg(ended, "the stream ended without the final event (%u events after reconnecting)", n);
    ck_assert_uint_ge(n, 2);
    /* the processor's events: working, 10 steps, the artifact, completed;
     * from the first frame on, all of them arrived */
    ck_assert_uint_ge(last, 13);
}

START_TEST(drop_mid_job_resume_with_last_event_id_03) { drop_and_resume(false, false); }
END_TEST
START_TEST(drop_mid_job_resume_with_last_event_id_10) { drop_and_resume(true, false); }
END_TEST
START_TEST(resume_after_a_restart_comes_from_the_store) { drop_and_resume(true, true); }
END_TEST

/* With nothing kept, the reconnecting client gets the Task as it is now;
 * a Last-Event-ID of another task or not a number: -32602. */
START_TEST(missed_events_not_kept_start_from_the_task) {
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo",
                            .server_extra = "stream_replay_bytes = 0"};
    start_or_fail(&d1, &o);
    cJSON *r = rpc_call(d1.port, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                        "{\"kind\":\"message\",\"messageId\":\"m1\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}}", NULL);
    char task[40];
    snprintf(task, sizeof task, "%s", json_str(r, "result.id"));
    cJSON_Delete(r);
    for (int v = 0; v < 2; v++) {
        char body[300], hdr[100];
        snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"%s\",\"params\":{\"id\":\"%s\"}}",
                 v ? "SubscribeToTask" : "tasks/resubscribe", task);
        snprintf(hdr, sizeof hdr, "Last-Event-ID: %s.2", task);
        const char *h[] = {hdr, v ? "A2A-Version: 1.0" : NULL, NULL};
        struct sse *s = sse_open(d1.port, "/", body, h);
        struct got g;
        ck_assert_int_eq(next_event(s, task, &g), 1);
        ck_assert_str_eq(json_str(g.result, v ? "task.status.state" : "status.state"),
                         v ? "TASK_STATE_COMPLETED" : "completed");
        cJSON_Delete(g.result);
        ck_assert_int_eq(next_event(s, task, &g), 0);
        sse_close(s);
        /* bad ids */
        static const char *const bad[] = {"Last-Event-ID: x", "Last-Event-ID: 0b6f1c2e-0000-0000-0000-000000000000.3"};
        for (int i = 0; i < 2; i++) {
            const char *hb[] = {bad[i], v ? "A2A-Version: 1.0" : NULL, NULL};
            long st = 0;
            r = rpc_call_headers(d1.port, "/", body, hb, &st);
            ck_assert_msg(json_int(r, "error.code") == -32602, "%s", cJSON_PrintUnformatted(r));
            ck_assert_ptr_nonnull(strstr(json_str(r, "error.message"), "Last-Event-ID"));
            cJSON_Delete(r);
        }
    }
}
END_TEST

Suite *replay_suite(void);
Suite *replay_suite(void) {
    Suite *s = suite_create("replay");
    TCase *tc = tcase_create("last-event-id");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, drop_mid_job_resume_with_last_event_id_03);
    tcase_add_test(tc, drop_mid_job_resume_with_last_event_id_10);
    tcase_add_test(tc, resume_after_a_restart_comes_from_the_store);
    tcase_add_test(tc, missed_events_not_kept_start_from_the_task);
    suite_add_tcase(s, tc);
    return s;
}
