/* streams: SSE against the real daemon, read with a raw-socket client
 * (support/sse.c) so that the bytes on the wire are what is checked:
 * framing, order, the end of a stream, resubscription, many streams at
 * once, clients that vanish, keepalives and slow readers. */
#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/sse.h"

static struct daemon_proc dp;

static void setup(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
static void teardown(void) {
    daemon_cleanup(&dp);
    curl_global_cleanup();
}

static void start_or_fail(const struct daemon_opts *o) {
    if (!daemon_start(&dp, o)) {
        char *log = daemon_log(&dp);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

static char *stream_body(const char *method, const char *id, const char *text) {
    char *b = malloc(600);
    snprintf(b, 600,
             "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"%s\",\"params\":{\"message\":{"
             "\"kind\":\"message\",\"messageId\":\"m1\",\"role\":\"user\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]}}}",
             id, method, text);
    return b;
}

/* Next frame as JSON; fails the test when none comes in time. */
static cJSON *next_frame(struct sse *s) {
    char *data = NULL;
    int r = sse_next(s, &data, 15000);
    ck_assert_msg(r == 1, "no SSE frame (sse_next = %d); body so far:\n%.2000s", r, sse_body(s));
    cJSON *o = cJSON_Parse(data);
    ck_assert_msg(o != NULL, "frame is not JSON: %s", data);
    free(data);
    return o;
}

static unsigned health_streams(void) {
    cJSON *h = NULL;
    struct http_resp r;
    http_call(dp.port, NULL, "/healthz", NULL, &r);
    h = cJSON_Parse(r.body);
    http_resp_free(&r);
    const cJSON *n = cJSON_GetObjectItem(h, "streams");
    unsigned v = cJSON_IsNumber(n) ? (unsigned)n->valueint : 99999;
    cJSON_Delete(h);
    return v;
}

static bool wait_streams(unsigned want, unsigned max_ms) {
    for (unsigned waited = 0; waited <= max_ms; waited += 50) {
        if (health_streams() == want) return true;
        test_nap_ms(50);
    }
    return false;
}

/* A convo task started without waiting; returns its id (malloc'd). */
static char *start_convo(const char *path, const char *context_id) {
    char body[600];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":{"
             "\"messageId\":\"m1\",\"role\":\"user\",%s%s%s\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}]},"
             "\"configuration\":{\"blocking\":false}}}",
             context_id ? "\"contextId\":\"" : "", context_id ? context_id : "", context_id ? "\"," : "");
    cJSON *o = rpc_call(dp.port, path, body, NULL);
    ck_assert_msg(strlen(json_str(o, "result.id")) == 36, "no task: %s", cJSON_PrintUnformatted(o));
    char *id = strdup(json_str(o, "result.id"));
    cJSON_Delete(o);
    /* Wait (bounded) until the job listens, so that a stream opened now
     * sees no event until the test says something. */
    char get[200];
    snprintf(get, sizeof get, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    bool listening = false;
    for (int i = 0; i < 400 && !listening; i++) {
        cJSON *t = rpc_call(dp.port, path, get, NULL);
        listening = strcmp(json_str(t, "result.status.message.parts.0.text"), "listening") == 0;
        cJSON_Delete(t);
        if (!listening) test_nap_ms(25);
    }
    ck_assert_msg(listening, "task %s never started listening", id);
    return id;
}

static void say(const char *task, const char *text) {
    char body[600];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"message/send\",\"params\":{\"message\":{"
             "\"messageId\":\"m2\",\"role\":\"user\",\"taskId\":\"%s\",\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]},"
             "\"configuration\":{\"blocking\":false}}}",
             task, text);
    cJSON *o = rpc_call(dp.port, "/", body, NULL);
    ck_assert_msg(strcmp(json_str(o, "result.id"), task) == 0, "say: %s", cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
}

static char *resubscribe_body(const char *method, const char *task) {
    char *b = malloc(300);
    snprintf(b, 300, "{\"jsonrpc\":\"2.0\",\"id\":\"r-%s\",\"method\":\"%s\",\"params\":{\"id\":\"%s\"}}",
             task, method, task);
    return b;
}

/* ---- tests ---------------------------------------------------------- */

START_TEST(message_stream_framing_order_and_end) {
    struct daemon_opts o = {.plugins = "processor", .extra = "[agent.processor]\nstep_ms = 5\n"};
    start_or_fail(&o);
    char *body = stream_body("message/stream", "\"s-1\"", "data");
    struct sse *s = sse_open(dp.port, "/", body, NULL);
    free(body);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(sse_status(s, 10000), 200);
    ck_assert_ptr_nonnull(strcasestr(sse_headers(s), "Content-Type: text/event-stream"));
    /* 1 Task, 1 working, 10 progress, 1 artifact, 1 final status */
    const char *kinds[14];
    int finals = 0, n = 0;
    char task[40] = "";
    for (; n < 14; n++) {
        cJSON *f = next_frame(s);
        ck_assert_str_eq(json_str(f, "jsonrpc"), "2.0");
        ck_assert_str_eq(json_str(f, "id"), "s-1");
        const char *kind = json_str(f, "result.kind");
        kinds[n] = strcmp(kind, "task") == 0 ? "task" : strcmp(kind, "status-update") == 0 ? "status"
                                                       : strcmp(kind, "artifact-update") == 0 ? "artifact" : "?";
        if (n == 0) snprintf(task, sizeof task, "%s", json_str(f, "result.id"));
        else ck_assert_str_eq(json_str(f, "result.taskId"), task);
        if (cJSON_IsTrue(json_at(f, "result.final"))) finals++;
        if (n == 13) {
            ck_assert(cJSON_IsTrue(json_at(f, "result.final")));
            ck_assert_str_eq(json_str(f, "result.status.state"), "completed");
        }
        cJSON_Delete(f);
    }
    ck_assert_str_eq(kinds[0], "task");
    ck_assert_str_eq(kinds[12], "artifact");
    ck_assert_int_eq(finals, 1);
    char *more = NULL;
    ck_assert_int_eq(sse_next(s, &more, 5000), 0); /* the stream ends after the final event */
    /* Framing: every event is an "id: TASK.SEQ" line (SEQ counting up by
     * one), exactly one "data: JSON" line and a blank line. */
    const char *p = sse_body(s);
    unsigned long long prev = 0;
    for (int i = 0; i < 14; i++) {
        ck_assert_msg(strncmp(p, "id: ", 4) == 0 && strncmp(p + 4, task, 36) == 0 && p[40] == '.',
                      "frame %d starts with %.50s", i, p);
        unsigned long long seq = strtoull(p + 41, NULL, 10);
        if (i) ck_assert_uint_eq(seq, prev + 1);
        prev = seq;
        p = strchr(p, '\n') + 1;
        ck_assert_msg(strncmp(p, "data: {", 7) == 0, "frame %d: data line starts with %.20s", i, p);
        const char *nl = strchr(p, '\n');
        ck_assert_ptr_nonnull(nl);
        ck_assert_int_eq(nl[1], '\n');
        p = nl + 2;
    }
    ck_assert_str_eq(p, "");
    sse_close(s);
    ck_assert(wait_streams(0, 5000));
}
END_TEST

START_TEST(v1_stream_uses_stream_responses_and_closes) {
    struct daemon_opts o = {.plugins = "processor", .extra = "[agent.processor]\nstep_ms = 5\n"};
    start_or_fail(&o);
    static const char body[] =
        "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"SendStreamingMessage\",\"params\":{\"message\":{"
        "\"messageId\":\"m1\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"data\"}]}}}";
    static const char *const hdr[] = {"A2A-Version: 1.0", NULL};
    struct sse *s = sse_open(dp.port, "/", body, hdr);
    ck_assert_ptr_nonnull(s);
    cJSON *f = next_frame(s);
    ck_assert_str_eq(json_str(f, "result.task.status.state"), "TASK_STATE_SUBMITTED");
    ck_assert_str_eq(json_str(f, "result.task.history.0.role"), "ROLE_USER");
    ck_assert_ptr_null(json_at(f, "result.task.kind"));
    cJSON_Delete(f);
    int status = 0, artifacts = 0;
    for (;;) {
        char *data = NULL;
        int r = sse_next(s, &data, 15000);
        ck_assert_int_ne(r, -1);
        if (r == 0) break;
        f = cJSON_Parse(data);
        free(data);
        ck_assert_int_eq(json_at(f, "id")->valueint, 9);
        ck_assert_ptr_null(json_at(f, "result.statusUpdate.final")); /* no "final" in 1.0 */
        if (json_at(f, "result.statusUpdate")) status++;
        if (json_at(f, "result.artifactUpdate")) {
            artifacts++;
            ck_assert_str_eq(json_str(f, "result.artifactUpdate.artifact.name"), "results.json");
            ck_assert_int_eq(json_int(f, "result.artifactUpdate.artifact.parts.0.data.steps"), 10);
        }
        if (status == 12) ck_assert_str_eq(json_str(f, "result.statusUpdate.status.state"), "TASK_STATE_COMPLETED");
        cJSON_Delete(f);
    }
    ck_assert_int_eq(status, 12); /* working, 10 progress, completed; then closed */
    ck_assert_int_eq(artifacts, 1);
    sse_close(s);
}
END_TEST

START_TEST(resubscribe_gives_current_task_then_live_events) {
    struct daemon_opts o = {.plugins = "convo"};
    start_or_fail(&o);
    char *task = start_convo("/", NULL);
    /* Two subscribers of one task, one per dialect. */
    char *b1 = resubscribe_body("tasks/resubscribe", task);
    char *b2 = resubscribe_body("SubscribeToTask", task);
    struct sse *s1 = sse_open(dp.port, "/", b1, NULL);
    struct sse *s2 = sse_open(dp.port, "/", b2, NULL);
    free(b1);
    free(b2);
    cJSON *f1 = next_frame(s1), *f2 = next_frame(s2);
    ck_assert_str_eq(json_str(f1, "result.kind"), "task");
    ck_assert_str_eq(json_str(f1, "result.id"), task);
    ck_assert_str_eq(json_str(f2, "result.task.id"), task);
    cJSON_Delete(f1);
    cJSON_Delete(f2);
    ck_assert(wait_streams(2, 5000));
    say(task, "one");
    f1 = next_frame(s1);
    f2 = next_frame(s2);
    /* "listening" may or may not have been in the snapshot: skip to "heard". */
    while (strcmp(json_str(f1, "result.status.message.parts.0.text"), "heard: one") != 0) {
        cJSON_Delete(f1);
        f1 = next_frame(s1);
    }
    while (strcmp(json_str(f2, "result.statusUpdate.status.message.parts.0.text"), "heard: one") != 0) {
        cJSON_Delete(f2);
        f2 = next_frame(s2);
    }
    cJSON_Delete(f1);
    cJSON_Delete(f2);
    /* A subscriber that joins late gets the task as it is now. */
    char *b3 = resubscribe_body("tasks/resubscribe", task);
    struct sse *s3 = sse_open(dp.port, "/", b3, NULL);
    free(b3);
    cJSON *f3 = next_frame(s3);
    ck_assert_str_eq(json_str(f3, "result.status.message.parts.0.text"), "heard: one");
    ck_assert_int_eq(cJSON_GetArraySize(json_at(f3, "result.history")), 2); /* both user messages */
    cJSON_Delete(f3);
    say(task, "bye");
    struct sse *all[3] = {s1, s2, s3};
    for (int i = 0; i < 3; i++) {
        char *data = NULL;
        int r, frames = 0;
        const char *last_state = "";
        cJSON *last = NULL;
        while ((r = sse_next(all[i], &data, 15000)) == 1) {
            cJSON_Delete(last);
            last = cJSON_Parse(data);
            free(data);
            frames++;
        }
        ck_assert_msg(r == 0, "stream %d did not end cleanly", i);
        last_state = i == 1 ? json_str(last, "result.statusUpdate.status.state") : json_str(last, "result.status.state");
        ck_assert_str_eq(last_state, i == 1 ? "TASK_STATE_COMPLETED" : "completed");
        cJSON_Delete(last);
        sse_close(all[i]);
    }
    ck_assert(wait_streams(0, 5000));
    free(task);
}
END_TEST

START_TEST(resubscribe_to_a_finished_task) {
    struct daemon_opts o = {.plugins = "echo"};
    start_or_fail(&o);
    cJSON *done = rpc_call(dp.port, "/",
                           "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                           "{\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}}",
                           NULL);
    ck_assert_str_eq(json_str(done, "result.status.state"), "completed");
    char *b = resubscribe_body("tasks/resubscribe", json_str(done, "result.id"));
    struct sse *s = sse_open(dp.port, "/", b, NULL);
    free(b);
    cJSON *f = next_frame(s);
    ck_assert_str_eq(json_str(f, "result.status.state"), "completed");
    cJSON_Delete(f);
    char *data = NULL;
    ck_assert_int_eq(sse_next(s, &data, 5000), 0); /* 0.3: the final Task, then the end */
    sse_close(s);
    /* 1.0: a terminal task gets UnsupportedOperationError, as plain JSON. */
    b = resubscribe_body("SubscribeToTask", json_str(done, "result.id"));
    long status = 0;
    cJSON *e = rpc_call(dp.port, "/", b, &status);
    free(b);
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(json_at(e, "error.code")->valueint, -32004);
    ck_assert_str_eq(json_str(e, "error.data.0.reason"), "UNSUPPORTED_OPERATION");
    cJSON_Delete(e);
    /* unknown task */
    e = rpc_call(dp.port, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/resubscribe\",\"params\":{\"id\":\"nope\"}}", NULL);
    ck_assert_int_eq(json_at(e, "error.code")->valueint, -32001);
    cJSON_Delete(e);
    cJSON_Delete(done);
}
END_TEST

static long daemon_rss_kb(void) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)dp.pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

enum { MANY = 256, JOBS = 8 };

START_TEST(many_streams_at_once_then_all_end) {
    struct daemon_opts o = {.plugins = "convo", .threads = JOBS};
    start_or_fail(&o);
    long rss_before = daemon_rss_kb();
    char *tasks[JOBS];
    for (int j = 0; j < JOBS; j++) tasks[j] = start_convo("/", NULL);
    struct sse *s[MANY];
    for (int i = 0; i < MANY; i++) {
        char *b = resubscribe_body(i % 2 ? "SubscribeToTask" : "tasks/resubscribe", tasks[i % JOBS]);
        s[i] = sse_open(dp.port, "/", b, NULL);
        free(b);
        ck_assert_ptr_nonnull(s[i]);
    }
    for (int i = 0; i < MANY; i++) cJSON_Delete(next_frame(s[i])); /* the snapshots */
    ck_assert(wait_streams(MANY, 10000));
    long rss = daemon_rss_kb();
    printf("streams: %d concurrent SSE streams on %d tasks; daemon RSS %ld kB (%ld kB before the "
           "streams)\n", MANY, JOBS, rss, rss_before);
    fflush(stdout);
    for (int j = 0; j < JOBS; j++) say(tasks[j], "bye");
    for (int i = 0; i < MANY; i++) {
        char *data = NULL;
        int r;
        while ((r = sse_next(s[i], &data, 15000)) == 1) free(data);
        ck_assert_msg(r == 0, "stream %d did not end", i);
        sse_close(s[i]);
    }
    ck_assert(wait_streams(0, 5000));
    for (int j = 0; j < JOBS; j++) free(tasks[j]);
}
END_TEST

START_TEST(vanished_clients_are_freed) {
    /* keepalives every second find clients that left while nothing happens */
    struct daemon_opts o = {.plugins = "convo", .server_extra = "stream_keepalive_s = 1"};
    start_or_fail(&o);
    char *task = start_convo("/", NULL);
    struct sse *s[20];
    for (int i = 0; i < 20; i++) {
        char *b = resubscribe_body("tasks/resubscribe", task);
        s[i] = sse_open(dp.port, "/", b, NULL);
        free(b);
        cJSON_Delete(next_frame(s[i]));
    }
    ck_assert(wait_streams(20, 5000));
    /* a quiet stream gets keepalive comments */
    char *data = NULL;
    ck_assert_int_eq(sse_next(s[0], &data, 2500), -1); /* no event... */
    ck_assert_uint_ge(sse_comments(s[0]), 1);           /* ...but a keepalive */
    for (int i = 1; i < 20; i++) sse_close(s[i]);
    ck_assert_msg(wait_streams(1, 10000), "streams left: %u", health_streams());
    /* the one that stayed still gets the live events */
    say(task, "still there?");
    cJSON *f = next_frame(s[0]);
    while (strcmp(json_str(f, "result.status.message.parts.0.text"), "heard: still there?") != 0) {
        cJSON_Delete(f);
        f = next_frame(s[0]);
    }
    cJSON_Delete(f);
    sse_close(s[0]);
    say(task, "bye");
    ck_assert(wait_streams(0, 10000));
    free(task);
}
END_TEST

START_TEST(slow_reader_is_cut_off_with_a_log_line) {
    struct daemon_opts o = {.plugins = "convo",
                            .server_extra = "stream_buffer_bytes = 64k\nconnection_timeout_s = 2\n"
                                            "stream_keepalive_s = 0"};
    start_or_fail(&o);
    char *task = start_convo("/", NULL);
    char *b = resubscribe_body("tasks/resubscribe", task);
    struct sse *s = sse_open(dp.port, "/", b, NULL);
    free(b);
    cJSON_Delete(next_frame(s));
    ck_assert(wait_streams(1, 5000));
    /* ~20 MB of events that this client never reads: far more than the
     * socket buffers and the 64k stream buffer hold. */
    say(task, "flood 20000");
    bool logged = false;
    for (int i = 0; i < 300 && !logged; i++) {
        char *log = daemon_log(&dp);
        logged = strstr(log, "SSE stream closed: the client reads too slowly") != NULL;
        free(log);
        if (!logged) test_nap_ms(50);
    }
    ck_assert(logged);
    /* the cut stream is freed once its connection goes */
    ck_assert_msg(wait_streams(0, 15000), "streams left: %u", health_streams());
    sse_close(s);
    say(task, "bye");
    free(task);
}
END_TEST

Suite *streams_suite(void);
Suite *streams_suite(void) {
    Suite *s = suite_create("streams");
    TCase *tc = tcase_create("sse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, message_stream_framing_order_and_end);
    tcase_add_test(tc, v1_stream_uses_stream_responses_and_closes);
    tcase_add_test(tc, resubscribe_gives_current_task_then_live_events);
    tcase_add_test(tc, resubscribe_to_a_finished_task);
    tcase_add_test(tc, many_streams_at_once_then_all_end);
    tcase_add_test(tc, vanished_clients_are_freed);
    tcase_add_test(tc, slow_reader_is_cut_off_with_a_log_line);
    suite_add_tcase(s, tc);
    return s;
}
