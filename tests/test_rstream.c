/* Streams of another node's task that resume exactly and survive the
 * holder's death ([tasks] store = postgresql, cluster.c, rpc_resume.c):
 *
 * - a client back with Last-Event-ID through another node than the holder
 *   gets exactly the events it missed (ids consecutive, none twice, no Task
 *   frame first), whether it first streamed from the holder (its replay
 *   log) or from that node (a2ad_events); when they are no longer kept, the
 *   task as it is now;
 * - a stream on beta of a job held by alpha, alpha SIGKILLed (lease_s = 2):
 *   the stream gets the task's end ("interrupted: node alpha lost") for an
 *   agent that is not rerun_safe, or the re-run's events and its completion
 *   for a rerun_safe one, whichever node takes the job over (also alpha
 *   itself, started again within its lease), and ends.
 *
 * The time from the kill to the stream's last frame is printed, not
 * asserted. Without PostgreSQL installed the tests are skipped with a loud
 * message, except under CI=true, where they fail. */
#include <check.h>
#include <cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/pgtest.h"
#include "support/sse.h"

#define NODES 3

static struct daemon_proc node[NODES];
static const char *const names[NODES] = {"alpha", "beta", "gamma"};
static const char *const V1[] = {"A2A-Version: 1.0", NULL};

static void setup(void) { memset(node, 0, sizeof node); }

static void teardown(void) {
    for (int k = NODES - 1; k >= 0; k--) daemon_cleanup(&node[k]);
}

/* Node k on database db: [server] lines more (NULL = none), [tasks]
 * lease_s, the agents and their [agent.*] lines. */
static void start_node(int k, const char *db, const char *plugins, const char *extra,
                       unsigned lease_s, const char *server_more) {
    static char server[NODES][200], tasks[NODES][600];
    char dsn[200];
    pg_dsn(&pgtest_srv, db, dsn, sizeof dsn);
    snprintf(tasks[k], sizeof tasks[k], "dsn = %s\npassword_file = %s\nlease_s = %u", dsn,
             pgtest_secret_file, lease_s);
    snprintf(server[k], sizeof server[k], "node_name = %s%s%s", names[k], server_more ? "\n" : "",
             server_more ? server_more : "");
    struct daemon_opts o = {.plugins = plugins, .store = "postgresql", .tasks_extra = tasks[k],
                            .server_extra = server[k], .extra = extra};
    if (!daemon_start(&node[k], &o)) {
        char *log = daemon_log(&node[k]);
        ck_abort_msg("node %s did not start; log:\n%s", names[k], log);
    }
}

static void new_db(const char *db) {
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s; CREATE DATABASE %s;", db, db);
    char *out = pg_sql(&pgtest_srv, "postgres", sql);
    ck_assert_msg(out != NULL, "cannot create database %s", db);
    free(out);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A non-blocking job of agent on node k; its id (malloc'd). */
static char *submit(int k, const char *agent, const char *text) {
    char body[600], path[64];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
             "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":"
             "\"text\",\"text\":\"%s\"}]},\"configuration\":{\"blocking\":false}}}",
             text);
    snprintf(path, sizeof path, "/agents/%s", agent);
    long st = 0;
    cJSON *o = rpc_call(node[k].port, path, body, &st);
    ck_assert_msg(st == 200 && cJSON_IsString(json_at(o, "result.id")), "submit: %ld", st);
    char *id = strdup(json_str(o, "result.id"));
    cJSON_Delete(o);
    return id;
}

/* tasks/get of id on node k. */
static cJSON *get(int k, const char *agent, const char *id) {
    char body[200], path[64];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    snprintf(path, sizeof path, "/agents/%s", agent);
    return rpc_call(node[k].port, path, body, NULL);
}

/* Wait (bounded) until id, read on node k, is in state. */
static bool wait_state(int k, const char *agent, const char *id, const char *state) {
    for (int i = 0; i < 500; i++) {
        cJSON *t = get(k, agent, id);
        bool ok = !strcmp(json_str(t, "result.status.state"), state);
        cJSON_Delete(t);
        if (ok) return true;
        test_nap_ms(20);
    }
    return false;
}

/* A stream of task id on node k: tasks/resubscribe (v1: SubscribeToTask),
 * with Last-Event-ID last_id when not NULL; rest: the A2A 1.0 HTTP+JSON
 * binding (POST .../tasks/ID:subscribe) instead of JSON-RPC. */
static struct sse *subscribe(int k, const char *agent, const char *id, bool v1, bool rest,
                             const char *last_id) {
    char body[300], path[160], hdr[200];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"%s\",\"params\":{\"id\":\"%s\"}}",
             v1 ? "SubscribeToTask" : "tasks/resubscribe", id);
    if (rest) snprintf(path, sizeof path, "/agents/%s/tasks/%s:subscribe", agent, id);
    else snprintf(path, sizeof path, "/agents/%s", agent);
    const char *h[3] = {NULL, NULL, NULL};
    int nh = 0;
    if (last_id) {
        snprintf(hdr, sizeof hdr, "Last-Event-ID: %s", last_id);
        h[nh++] = hdr;
    }
    if (v1) h[nh++] = V1[0];
    struct sse *s = sse_open(node[k].port, path, rest ? "" : body, h);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(sse_status(s, 10000), 200);
    return s;
}

/* One frame: its result (the event itself for HTTP+JSON), its SEQ (the
 * frame's id must be of task id). 0 at the end of the stream. */
struct frame {
    unsigned long long seq;
    cJSON *ev;
};

static int next_frame(struct sse *s, const char *id, bool rest, unsigned timeout_ms,
                      struct frame *f) {
    char *data = NULL;
    int r = sse_next(s, &data, timeout_ms);
    ck_assert_msg(r >= 0, "the stream broke or stalled; body so far:\n%.4000s", sse_body(s));
    if (r == 0) return 0;
    cJSON *o = cJSON_Parse(data);
    free(data);
    ck_assert_ptr_nonnull(o);
    const char *eid = sse_last_id(s);
    const char *dot = strrchr(eid, '.');
    ck_assert_msg(dot && strncmp(eid, id, 36) == 0, "frame id %s is not of task %s", eid, id);
    f->seq = strtoull(dot + 1, NULL, 10);
    if (rest) {
        f->ev = o;
    } else {
        f->ev = cJSON_DetachItemFromObjectCaseSensitive(o, "result");
        cJSON_Delete(o);
        ck_assert_ptr_nonnull(f->ev);
    }
    return 1;
}

/* Whether a frame is the Task itself (a snapshot), in either version. */
static bool is_task(const cJSON *ev, bool v1) {
    return v1 ? json_at(ev, "task") != NULL : !strcmp(json_str(ev, "kind"), "task");
}

/* The state a frame's status event names ("" for an artifact). */
static const char *frame_state(const cJSON *ev, bool v1) {
    return json_str(ev, v1 ? "statusUpdate.status.state" : "status.state");
}

/* Read n frames after the first, which must be the Task; the last SEQ read. */
static unsigned long long read_some(struct sse *s, const char *id, bool v1, bool rest, int n) {
    struct frame f;
    ck_assert_int_eq(next_frame(s, id, rest, 10000, &f), 1);
    ck_assert_msg(is_task(f.ev, v1), "a stream starts with the Task: %s",
                  cJSON_PrintUnformatted(f.ev));
    unsigned long long last = f.seq;
    cJSON_Delete(f.ev);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(next_frame(s, id, rest, 10000, &f), 1);
        ck_assert_msg(f.seq > last, "event %llu after %llu", f.seq, last);
        last = f.seq;
        cJSON_Delete(f.ev);
    }
    return last;
}

/* Read a resumed stream to its end: its first frame must be event last+1
 * (not the Task), every next one the next SEQ; the last must be the
 * completion. Returns how many frames came. */
static int read_resumed(struct sse *s, const char *id, bool v1, bool rest,
                        unsigned long long last, double *first_ms) {
    struct frame f;
    int n = 0;
    *first_ms = 0;
    const char *done = v1 ? "TASK_STATE_COMPLETED" : "completed";
    bool ended = false;
    while (next_frame(s, id, rest, 15000, &f) == 1) {
        ck_assert_msg(!is_task(f.ev, v1), "a resumed stream starts with the missed events, not the "
                                          "Task: %s", cJSON_PrintUnformatted(f.ev));
        ck_assert_msg(f.seq == last + 1, "after event %llu came %llu (each once, in order)", last,
                      f.seq);
        ck_assert_msg(!ended, "a frame after the final one");
        if (!n) *first_ms = now_ms();
        last = f.seq;
        ended = !strcmp(frame_state(f.ev, v1), done);
        cJSON_Delete(f.ev);
        n++;
    }
    ck_assert_msg(ended, "the resumed stream ended without the completion:\n%.4000s", sse_body(s));
    return n;
}

static void stop_all(void) {
    for (int k = NODES - 1; k >= 0; k--) {
        if (node[k].pid <= 0) continue;
        int rc = daemon_stop(&node[k], 15000);
        if (rc != 0) {
            char *log = daemon_log(&node[k]);
            fprintf(stderr, "---- node %s's log ----\n%s\n----\n", names[k], log);
            free(log);
            ck_abort_msg("node %s stopped with %d (its log is on stderr)", names[k], rc);
        }
    }
}

/* ---- Last-Event-ID ----------------------------------------------------------- */

/* A processor job of ten steps held by alpha: a client streams it, drops the
 * connection after a few events, and comes back through beta with
 * Last-Event-ID. Its first stream was on alpha (the missed events come
 * from alpha's replay log), on beta in 1.0 (from a2ad_events), or beta's
 * HTTP+JSON binding; and, to compare, back on alpha after a stream on beta. */
START_TEST(rstream_last_event_id_through_another_node_gets_exactly_the_missed_events) {
    REQUIRE_PG();
    new_db("rs_resume");
    const char *extra = "[agent.processor]\nstep_ms = 150\n";
    start_node(0, "rs_resume", "processor", extra, 30, NULL);
    start_node(1, "rs_resume", "processor", extra, 30, NULL);
    static const struct {
        int first, back; /* the nodes of the first stream and of the resumed one */
        bool v1, rest;   /* of both streams */
    } cases[] = {{0, 1, false, false}, {1, 1, true, false}, {1, 1, true, true},
                 {1, 0, false, false} /* on the holder: to compare */};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bool v1 = cases[c].v1, rest = cases[c].rest;
        char *id = submit(0, "processor", "resume me");
        ck_assert(wait_state(1, "processor", id, "working"));
        struct sse *s = subscribe(cases[c].first, "processor", id, v1, rest, NULL);
        unsigned long long last = read_some(s, id, v1, rest, 3);
        char last_id[100];
        snprintf(last_id, sizeof last_id, "%s", sse_last_id(s));
        sse_close(s); /* the connection drops mid-job */
        test_nap_ms(400); /* a few events pass while the client is away */
        double t0 = now_ms();
        s = subscribe(cases[c].back, "processor", id, v1, rest, last_id);
        double first;
        int n = read_resumed(s, id, v1, rest, last, &first);
        sse_close(s);
        fprintf(stderr, "rstream: %s%s resumed on %s after event %llu (first stream on %s): %d "
                        "events, the first %.1f ms after the request\n",
                v1 ? "1.0" : "0.3", rest ? " HTTP+JSON" : "", names[cases[c].back], last,
                names[cases[c].first], n, first - t0);
        /* working, ten steps, the artifact, completed: some were missed */
        ck_assert_int_ge(n, 3);
        free(id);
    }
    stop_all();
}
END_TEST

/* alpha keeps no events for replay ([server] stream_replay_bytes = 0) and
 * no node streamed the task before: the events the client missed are
 * nowhere, and beta starts it from the task as it is now, then goes on
 * with its events to the end, as alpha itself would; a stream without
 * Last-Event-ID misses no event either (the row read before the watch may
 * be older than what alpha writes from then on). */
START_TEST(rstream_last_event_id_not_kept_starts_from_the_task) {
    REQUIRE_PG();
    new_db("rs_lost");
    const char *extra = "[agent.processor]\nstep_ms = 100\n";
    start_node(0, "rs_lost", "processor", extra, 30, "stream_replay_bytes = 0");
    start_node(1, "rs_lost", "processor", extra, 30, NULL);
    char *id = submit(0, "processor", "lost");
    ck_assert(wait_state(1, "processor", id, "working"));
    test_nap_ms(300);
    char last_id[100];
    snprintf(last_id, sizeof last_id, "%s.2", id);
    struct sse *s = subscribe(1, "processor", id, false, false, last_id);
    struct frame f;
    ck_assert_int_eq(next_frame(s, id, false, 10000, &f), 1);
    ck_assert_msg(is_task(f.ev, false), "not the Task: %s", cJSON_PrintUnformatted(f.ev));
    ck_assert_msg(f.seq > 3, "the Task as it is now (event %llu)", f.seq);
    unsigned long long last = f.seq;
    cJSON_Delete(f.ev);
    bool completed = false;
    while (next_frame(s, id, false, 15000, &f) == 1) {
        ck_assert_msg(f.seq == last + 1, "after event %llu came %llu", last, f.seq);
        last = f.seq;
        completed = !strcmp(frame_state(f.ev, false), "completed");
        cJSON_Delete(f.ev);
    }
    sse_close(s);
    ck_assert(completed);
    free(id);
    /* and without Last-Event-ID: the Task, then every later event, each
     * once, although alpha keeps none for the events written meanwhile */
    for (int i = 0; i < 3; i++) {
        id = submit(0, "processor", "plain");
        ck_assert(wait_state(1, "processor", id, "working"));
        s = subscribe(1, "processor", id, i == 1, false, NULL);
        last = read_some(s, id, i == 1, false, 0);
        completed = false;
        while (next_frame(s, id, false, 15000, &f) == 1) {
            ck_assert_msg(f.seq == last + 1, "plain: after event %llu came %llu", last, f.seq);
            last = f.seq;
            completed = !strcmp(frame_state(f.ev, i == 1), i == 1 ? "TASK_STATE_COMPLETED"
                                                                  : "completed");
            cJSON_Delete(f.ev);
        }
        sse_close(s);
        ck_assert(completed);
        free(id);
    }
    stop_all();
}
END_TEST

/* ---- the holder dies --------------------------------------------------------- */

/* A stream of task id open on beta (read up to event last); alpha is
 * SIGKILLed: the stream goes on to its end, with the next events in order
 * (the old holder's last ones, then the new holder's), each once. Returns
 * its frames after the kill, as one array of events; *ms: from the kill to
 * the end. */
static cJSON *kill_alpha_and_read(struct sse *s, const char *id, unsigned long long last,
                                  double *ms, const char *restart_db) {
    double t0 = now_ms();
    daemon_kill9(&node[0]);
    node[0].pid = 0;
    if (restart_db) { /* started again at once, as a supervisor would: it recovers the job */
        struct daemon_proc old = node[0];
        memset(&node[0], 0, sizeof node[0]);
        start_node(0, restart_db, "rerun", NULL, 30, NULL);
        daemon_cleanup(&old);
    }
    cJSON *got = cJSON_CreateArray();
    struct frame f;
    /* a takeover comes within 1.5 lease_s (3 s here) and a poll (0.5 s);
     * 30 s lets a loaded machine be slow without a stream left open for ever */
    while (next_frame(s, id, false, 30000, &f) == 1) {
        ck_assert_msg(f.seq == last + 1, "event %llu after %llu: each once, none lost", f.seq,
                      last);
        last = f.seq;
        cJSON_AddItemToArray(got, f.ev);
    }
    *ms = now_ms() - t0;
    return got;
}

/* A processor job (not rerun_safe) on alpha, streamed on beta; alpha is
 * killed; beta takes the job over and fails it: the stream gets that
 * failure as its final event, and ends. */
START_TEST(rstream_holder_killed_stream_ends_with_the_interruption) {
    REQUIRE_PG();
    new_db("rs_fail");
    const char *extra = "[agent.processor]\nstep_ms = 1000\n";
    start_node(0, "rs_fail", "processor", extra, 2, NULL);
    start_node(1, "rs_fail", "processor", extra, 2, NULL);
    char *id = submit(0, "processor", "die");
    ck_assert(wait_state(1, "processor", id, "working"));
    struct sse *s = subscribe(1, "processor", id, false, false, NULL);
    unsigned long long last = read_some(s, id, false, false, 1);
    double ms;
    cJSON *got = kill_alpha_and_read(s, id, last, &ms, NULL);
    sse_close(s);
    int n = cJSON_GetArraySize(got);
    ck_assert_int_ge(n, 1);
    const cJSON *end = cJSON_GetArrayItem(got, n - 1);
    ck_assert_str_eq(json_str(end, "kind"), "status-update");
    ck_assert_str_eq(json_str(end, "status.state"), "failed");
    ck_assert(cJSON_IsTrue(json_at(end, "final")));
    ck_assert_msg(strstr(json_str(end, "status.message.parts.0.text"),
                         "interrupted: node alpha lost") != NULL,
                  "final event: %s", cJSON_PrintUnformatted(end));
    fprintf(stderr, "rstream: alpha killed: the stream on beta got the failure and ended %.0f ms "
                    "later (lease_s = 2)\n", ms);
    cJSON_Delete(got);
    /* the row (the end event may commit a moment before it) */
    ck_assert(wait_state(1, "processor", id, "failed"));
    cJSON *t = get(1, "processor", id);
    ck_assert_str_eq(json_str(t, "result.metadata.a2ad.node"), "beta");
    cJSON_Delete(t);
    free(id);
    stop_all();
}
END_TEST

/* A rerun_safe job on alpha, streamed on beta, alpha killed: the node that
 * takes it over runs it again, and the stream carries the re-run ("started"
 * again) to its completion. taker: 1 = beta itself (two nodes), 2 = gamma
 * (beta's lease is so long that it looks for dead nodes only at its start,
 * so gamma takes alpha over), 0 = alpha itself, started again at once. */
static void rerun_followed(const char *db, int taker) {
    new_db(db);
    /* taker 0: alpha restarts at once, within its lease (30 s) */
    start_node(0, db, "rerun", NULL, taker ? 2 : 30, NULL);
    start_node(1, db, "rerun", NULL, taker == 1 ? 2 : taker == 2 ? 3600 : 30, NULL);
    if (taker == 2) start_node(2, db, "rerun", NULL, 2, NULL);
    char *id = submit(0, "rerun", "again");
    ck_assert(wait_state(1, "rerun", id, "working"));
    struct sse *s = subscribe(1, "rerun", id, false, false, NULL);
    unsigned long long last = read_some(s, id, false, false, 0);
    double ms;
    cJSON *got = kill_alpha_and_read(s, id, last, &ms, taker ? NULL : db);
    sse_close(s);
    int n = cJSON_GetArraySize(got), started = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, got) {
        const char *text = json_str(e, "status.message.parts.0.text");
        started += !strcmp(text, "started");
    }
    ck_assert_msg(n >= 2, "%d events after the kill: %s", n, cJSON_PrintUnformatted(got));
    ck_assert_msg(started >= 1, "the re-run's progress did not come: %s",
                  cJSON_PrintUnformatted(got));
    const cJSON *end = cJSON_GetArrayItem(got, n - 1);
    ck_assert_str_eq(json_str(end, "status.state"), "completed");
    ck_assert(cJSON_IsTrue(json_at(end, "final")));
    fprintf(stderr, "rstream: alpha killed: the stream on beta followed the re-run on %s to its "
                    "completion, %.0f ms later (%d events; the job runs 2 s)\n",
            names[taker], ms, n);
    cJSON_Delete(got);
    ck_assert(wait_state(1, "rerun", id, "completed"));
    cJSON *t = get(1, "rerun", id);
    ck_assert_str_eq(json_str(t, "result.metadata.a2ad.node"), names[taker]);
    ck_assert_int_eq(json_int(t, "result.metadata.a2ad.attempt"), 2);
    cJSON_Delete(t);
    free(id);
    stop_all();
}

START_TEST(rstream_holder_killed_stream_follows_the_rerun_on_another_node) {
    REQUIRE_PG();
    rerun_followed("rs_rerun3", 2);
}
END_TEST

START_TEST(rstream_holder_killed_stream_follows_the_rerun_taken_by_its_node) {
    REQUIRE_PG();
    rerun_followed("rs_rerun2", 1);
}
END_TEST

/* alpha killed and started again at once (before its lease ran out, so no
 * node takes it over): it recovers the job and runs it again itself, and
 * the stream on beta follows that run to its completion. */
START_TEST(rstream_holder_restarted_stream_follows_its_rerun) {
    REQUIRE_PG();
    rerun_followed("rs_restart", 0);
}
END_TEST

Suite *rstream_suite(void);
Suite *rstream_suite(void) {
    Suite *s = suite_create("rstream");
    TCase *tc = tcase_create("remote streams");
    tcase_add_unchecked_fixture(tc, pgtest_suite_setup, pgtest_suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, rstream_last_event_id_through_another_node_gets_exactly_the_missed_events);
    tcase_add_test(tc, rstream_last_event_id_not_kept_starts_from_the_task);
    tcase_add_test(tc, rstream_holder_killed_stream_ends_with_the_interruption);
    tcase_add_test(tc, rstream_holder_killed_stream_follows_the_rerun_on_another_node);
    tcase_add_test(tc, rstream_holder_killed_stream_follows_the_rerun_taken_by_its_node);
    tcase_add_test(tc, rstream_holder_restarted_stream_follows_its_rerun);
    suite_add_tcase(s, tc);
    return s;
}
