/* The durable store against the real daemon: crashes (kill -9), restarts,
 * a receiver that fails or is down, a database that is locked or full.
 * What is checked is what a user of a2ad relies on: every job that got an
 * ack ends, its webhooks all arrive, in order per task, and a refused job is
 * refused with a clear error. */
#include <arpa/inet.h>
#include <check.h>
#include <cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/receiver.h"
#include "support/tracker.h"

/* A port nothing listens on (yet): connections to it are refused. */
static unsigned free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* message/send without blocking, webhook to hook_port. Returns the task id
 * (malloc'd) when acknowledged, else NULL with *status / *error filled. */
static char *submit(unsigned port, const char *agent, const char *text, unsigned hook_port,
                    long *status, char **error) {
    char body[1024], path[64];
    snprintf(path, sizeof path, "/agents/%s", agent);
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{"
             "\"message\":{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]},"
             "\"configuration\":{\"blocking\":false,\"pushNotificationConfig\":"
             "{\"url\":\"http://127.0.0.1:%u/hook\"}}}}",
             text, hook_port);
    long st = 0;
    cJSON *o = rpc_call(port, path, body, &st);
    if (status) *status = st;
    char *id = NULL;
    if (st == 200 && cJSON_IsString(json_at(o, "result.id"))) id = strdup(json_str(o, "result.id"));
    if (error) *error = strdup(json_str(o, "error.message"));
    cJSON_Delete(o);
    return id;
}

static cJSON *get_task(unsigned port, const char *agent, const char *id) {
    char body[200], path[64];
    snprintf(path, sizeof path, "/agents/%s", agent);
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    return rpc_call(port, path, body, NULL);
}

/* n processor jobs (text "x") with their webhook at hook, all tracked. */
static void submit_tracked(struct tracker *tr, unsigned port, unsigned hook, int n) {
    for (int i = 0; i < n; i++) {
        char *id = submit(port, "processor", "x", hook, NULL, NULL);
        ck_assert_msg(id != NULL, "job %d not acknowledged", i);
        track(tr, id);
        free(id);
    }
}

static struct daemon_proc d1, d2;
static struct receiver *rcv;
static char db_path[300];

static void setup(void) {
    memset(&d1, 0, sizeof d1);
    memset(&d2, 0, sizeof d2);
    rcv = NULL;
    db_path[0] = '\0';
}

static void teardown(void) {
    daemon_cleanup(&d2);
    daemon_cleanup(&d1); /* the database lives in d1's folder */
    receiver_stop(rcv);
}

static void start_or_fail(struct daemon_proc *d, const struct daemon_opts *o) {
    if (!daemon_start(d, o)) {
        char *log = daemon_log(d);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

/* The first daemon's database, for the second to reuse. */
static void remember_db(void) { snprintf(db_path, sizeof db_path, "%s/a2ad.db", d1.dir); }

/* (a) kill -9 in the middle of a few hundred jobs, restart on the same
 * database: every acknowledged job ends, exactly one outcome each. */
START_TEST(kill9_mid_run_loses_no_acknowledged_job) {
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    const char *agents_extra = "[agent.processor]\nstep_ms = 2\n";
    struct daemon_opts o = {.plugins = "echo,processor", .extra = agents_extra};
    start_or_fail(&d1, &o);
    remember_db();
    struct tracker tr = {0};
    enum { JOBS = 300 };
    for (int i = 0; i < JOBS; i++) {
        char text[32];
        snprintf(text, sizeof text, "job %d", i);
        char *id = submit(d1.port, i % 5 == 0 ? "processor" : "echo", text, receiver_port(rcv),
                          NULL, NULL);
        ck_assert_msg(id != NULL, "job %d not acknowledged", i);
        track(&tr, id);
        free(id);
    }
    /* Mid-run: some webhooks are out, most jobs are not done. */
    receiver_wait(rcv, 50, 10000);
    daemon_kill9(&d1);
    tracker_scan(&tr, rcv);
    size_t ended_before = tracker_ended(&tr);

    o.db_path = db_path;
    start_or_fail(&d2, &o);
    ck_assert_msg(tracker_wait_all(&tr, rcv, 90000), "only %zu of %d jobs ended",
                  tracker_ended(&tr), JOBS);
    tracker_assert_complete(&tr);
    ck_assert_uint_lt(ended_before, JOBS); /* the kill did land mid-run */
    char *log = daemon_log(&d2);
    ck_assert_ptr_nonnull(strstr(log, "store: recovered"));
    free(log);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
    tracker_free(&tr);
}
END_TEST

/* (b) the receiver first refuses connections, then answers 503, then
 * recovers: every event arrives, in order per task. */
START_TEST(receiver_down_then_503_gets_everything_in_order) {
    unsigned hook = free_port();
    struct daemon_opts o = {.plugins = "processor", .extra = "[agent.processor]\nstep_ms = 5\n",
                            .webhooks_extra = "connect_timeout_ms = 200"};
    start_or_fail(&d1, &o);
    struct tracker tr = {0};
    submit_tracked(&tr, d1.port, hook, 6);
    /* Down: wait until the daemon has retried a good number of times. */
    for (int i = 0; i < 200; i++) {
        struct http_resp h;
        http_call(d1.port, NULL, "/healthz", NULL, &h);
        cJSON *o2 = cJSON_Parse(h.body);
        http_resp_free(&h);
        const cJSON *wh = cJSON_GetObjectItemCaseSensitive(o2, "webhooks");
        double retried = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(wh, "retried"));
        cJSON_Delete(o2);
        if (retried >= 30) break;
        test_nap_ms(50);
    }
    /* Back, but answering 503 for a while. */
    rcv = receiver_start_on(hook);
    ck_assert_ptr_nonnull(rcv);
    receiver_fail_next(rcv, 40, 503);
    ck_assert(tracker_wait_all(&tr, rcv, 60000));
    tracker_assert_complete(&tr);
    ck_assert_uint_ge(receiver_attempts(rcv), receiver_count(rcv) + 40);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
    tracker_free(&tr);
}
END_TEST

/* (c) events still undelivered at a stop are delivered after the restart,
 * and jobs still queued at the stop run then. */
START_TEST(undelivered_events_and_queued_jobs_survive_a_restart) {
    unsigned hook = free_port();
    struct daemon_opts o = {.plugins = "processor", .threads = 1,
                            .extra = "[agent.processor]\nstep_ms = 50\n",
                            .webhooks_extra = "connect_timeout_ms = 200"};
    start_or_fail(&d1, &o);
    remember_db();
    /* d1 gets a short flush: nothing listens, the events must wait on disk. */
    struct tracker tr = {0};
    char *first = submit(d1.port, "processor", "one", hook, NULL, NULL);
    ck_assert_ptr_nonnull(first);
    track(&tr, first);
    for (int i = 0; i < 5; i++) {
        char *id = submit(d1.port, "processor", "more", hook, NULL, NULL);
        ck_assert_ptr_nonnull(id);
        track(&tr, id);
        free(id);
    }
    /* The first job finishes while the receiver is down. */
    for (int i = 0; i < 250; i++) {
        cJSON *t = get_task(d1.port, "processor", first);
        bool done = !strcmp(json_str(t, "result.status.state"), "completed");
        cJSON_Delete(t);
        if (done) break;
        test_nap_ms(20);
    }
    ck_assert_int_eq(daemon_stop(&d1, 20000), 0);
    char *log = daemon_log(&d1);
    ck_assert_ptr_nonnull(strstr(log, "left queued for the next start"));
    free(log);

    rcv = receiver_start_on(hook);
    ck_assert_ptr_nonnull(rcv);
    o.db_path = db_path;
    start_or_fail(&d2, &o);
    ck_assert(tracker_wait_all(&tr, rcv, 60000));
    tracker_assert_complete(&tr);
    for (size_t i = 0; i < tr.n; i++) ck_assert_str_eq(tr.t[i].terminal, "completed");
    /* The finished task is still there after the restart. */
    cJSON *t = get_task(d2.port, "processor", first);
    ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
    ck_assert_str_eq(json_str(t, "result.history.0.parts.0.text"), "one");
    cJSON_Delete(t);
    free(first);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
    tracker_free(&tr);
}
END_TEST

/* A job that was running at a crash: failed with a clear reason, unless
 * its agent is rerun_safe, which runs it again and counts the attempt. */
START_TEST(running_jobs_after_a_crash_fail_or_run_again) {
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts o = {.plugins = "processor,rerun",
                            .extra = "[agent.processor]\nstep_ms = 300\n"};
    start_or_fail(&d1, &o);
    remember_db();
    char *p = submit(d1.port, "processor", "long", receiver_port(rcv), NULL, NULL);
    char *r = submit(d1.port, "rerun", "again", receiver_port(rcv), NULL, NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(r);
    /* Both are running once each sent its first progress event. */
    struct tracker tr = {0};
    track(&tr, p);
    track(&tr, r);
    for (int i = 0; i < 500 && (tr.t[0].max_seq < 3 || tr.t[1].max_seq < 3); i++) {
        test_nap_ms(20);
        tracker_scan(&tr, rcv);
    }
    ck_assert(tr.t[0].max_seq >= 3 && tr.t[1].max_seq >= 3);
    ck_assert_uint_eq(tracker_ended(&tr), 0);
    tracker_free(&tr);
    daemon_kill9(&d1);

    o.db_path = db_path;
    start_or_fail(&d2, &o);
    cJSON *t = NULL;
    for (int i = 0; i < 300; i++) {
        cJSON_Delete(t);
        t = get_task(d2.port, "processor", p);
        if (!strcmp(json_str(t, "result.status.state"), "failed")) break;
        test_nap_ms(20);
    }
    ck_assert_str_eq(json_str(t, "result.status.state"), "failed");
    ck_assert_str_eq(json_str(t, "result.status.message.parts.0.text"), "interrupted: a2ad restarted");
    for (int i = 0; i < 300; i++) {
        cJSON_Delete(t);
        t = get_task(d2.port, "rerun", r);
        if (!strcmp(json_str(t, "result.status.state"), "completed")) break;
        test_nap_ms(20);
    }
    ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
    ck_assert_str_eq(json_str(t, "result.status.message.parts.0.text"), "done: again");
    const cJSON *attempt = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "result"),
                                             "metadata"),
            "a2ad"),
        "attempt");
    ck_assert(cJSON_IsNumber(attempt));
    ck_assert_int_eq((int)attempt->valuedouble, 2);
    cJSON_Delete(t);
    free(p);
    free(r);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
}
END_TEST

/* Events older than max_age_s are given up and the task says so. */
START_TEST(given_up_events_are_recorded_on_the_task) {
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    receiver_fail_next(rcv, 100000, 503);
    struct daemon_opts o = {.plugins = "echo", .webhooks_extra = "max_age_s = 1"};
    start_or_fail(&d1, &o);
    char *id = submit(d1.port, "echo", "hi", receiver_port(rcv), NULL, NULL);
    ck_assert_ptr_nonnull(id);
    cJSON *t = NULL;
    const cJSON *list = NULL;
    for (int i = 0; i < 250; i++) {
        cJSON_Delete(t);
        t = get_task(d1.port, "echo", id);
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "result"),
                                             "metadata"),
            "a2ad");
        list = cJSON_GetObjectItemCaseSensitive(md, "webhooksGivenUp");
        if (cJSON_GetArraySize(list) == 2) break; /* working, completed */
        test_nap_ms(20);
    }
    ck_assert_int_eq(cJSON_GetArraySize(list), 2);
    const cJSON *e = cJSON_GetArrayItem(list, 1);
    char want[80];
    snprintf(want, sizeof want, "%s.3.1", id);
    ck_assert_str_eq(json_str(e, "eventId"), want);
    ck_assert_ptr_nonnull(strstr(json_str(e, "reason"), "max_age_s"));
    cJSON_Delete(t);
    free(id);
    char *log = daemon_log(&d1);
    ck_assert_ptr_nonnull(strstr(log, "giving up on POST"));
    free(log);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
}
END_TEST

static int count_rows(const char *path, const char *table) {
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    char sql[100];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/* Finished tasks leave the database after retention_s; delivered events
 * leave the outbox at once. */
START_TEST(retention_deletes_finished_tasks_and_delivered_events) {
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts o = {.plugins = "echo", .tasks_extra = "retention_s = 1"};
    start_or_fail(&d1, &o);
    remember_db();
    for (int i = 0; i < 20; i++) {
        char *id = submit(d1.port, "echo", "x", receiver_port(rcv), NULL, NULL);
        ck_assert_ptr_nonnull(id);
        free(id);
    }
    ck_assert(receiver_wait(rcv, 40, 10000));
    int tasks = -1, outbox = -1;
    for (int i = 0; i < 100 && (tasks || outbox); i++) {
        test_nap_ms(100);
        tasks = count_rows(db_path, "tasks");
        outbox = count_rows(db_path, "outbox");
    }
    ck_assert_int_eq(tasks, 0);
    ck_assert_int_eq(outbox, 0);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
}
END_TEST

/* The daemon's webhook counters from /healthz. */
struct hook_counts {
    double pending, parked, given_up;
};

static struct hook_counts hook_counts(unsigned port) {
    struct hook_counts c = {-1, -1, -1};
    struct http_resp h;
    if (!http_call(port, NULL, "/healthz", NULL, &h)) return c;
    cJSON *o = cJSON_Parse(h.body);
    http_resp_free(&h);
    const cJSON *wh = cJSON_GetObjectItemCaseSensitive(o, "webhooks");
    c.pending = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(wh, "pending"));
    c.parked = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(wh, "parked"));
    c.given_up = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(wh, "givenUp"));
    cJSON_Delete(o);
    return c;
}

enum { SPILL_MAX_PENDING = 8, SPILL_JOBS = 10 };

/* Wait (bounded) until the outbox has at least n rows: a parked event is
 * counted before its row is committed. Returns the last count. */
static int wait_outbox_rows(int n) {
    int rows = 0;
    for (int i = 0; i < 100 && (rows = count_rows(db_path, "outbox")) < n; i++) test_nap_ms(50);
    return rows;
}

/* In memory: at most max_pending, plus one final event per task (those
 * are queued whatever the room when their key has nothing parked). */
static void assert_memory_bounded(const struct hook_counts *c) {
    ck_assert_msg(c->pending >= 0 && c->pending <= SPILL_MAX_PENDING + SPILL_JOBS,
                  "%.0f webhook deliveries in memory with max_pending = %d", c->pending,
                  SPILL_MAX_PENDING);
}

/* Receiver down, tiny max_pending: wait (bounded) until some events are
 * parked in the outbox, checking the memory bound all along. */
static struct hook_counts wait_parked(unsigned port, double at_least) {
    struct hook_counts c = {0};
    for (int i = 0; i < 400; i++) {
        c = hook_counts(port);
        assert_memory_bounded(&c);
        if (c.parked >= at_least) break;
        test_nap_ms(50);
    }
    return c;
}

static const struct daemon_opts spill_opts = {
    .plugins = "processor",
    .extra = "[agent.processor]\nstep_ms = 2\n",
    .webhooks_extra = "connect_timeout_ms = 200\nmax_pending = 8\nmax_age_s = 3600"};

/* Events beyond max_pending wait in the outbox (not in memory, not
 * dropped) while the receiver is down, then all arrive, in order per
 * task, once it is back. */
START_TEST(events_beyond_max_pending_wait_in_the_outbox_and_arrive_in_order) {
    unsigned hook = free_port();
    start_or_fail(&d1, &spill_opts);
    remember_db();
    struct tracker tr = {0};
    submit_tracked(&tr, d1.port, hook, SPILL_JOBS);
    struct hook_counts c = wait_parked(d1.port, 10);
    ck_assert_msg(c.parked >= 10, "only %.0f events parked", c.parked);
    /* They are rows of the outbox. */
    ck_assert_int_ge(wait_outbox_rows((int)c.parked), (int)c.parked);

    rcv = receiver_start_on(hook);
    ck_assert_ptr_nonnull(rcv);
    bool all = false;
    for (unsigned waited = 0; !all && waited < 90000; waited += 100) {
        tracker_scan(&tr, rcv);
        all = tracker_ended(&tr) == tr.n;
        c = hook_counts(d1.port);
        assert_memory_bounded(&c);
        if (!all) test_nap_ms(100);
    }
    ck_assert_msg(all, "only %zu of %d jobs had their final webhook", tracker_ended(&tr),
                  SPILL_JOBS);
    tracker_assert_complete(&tr);
    for (size_t i = 0; i < tr.n; i++) ck_assert_str_eq(tr.t[i].terminal, "completed");
    ck_assert_double_eq(c.given_up, 0);
    for (int i = 0; i < 100 && (c.parked || c.pending); i++) {
        test_nap_ms(50);
        c = hook_counts(d1.port);
    }
    ck_assert_double_eq(c.parked, 0);
    ck_assert_double_eq(c.pending, 0);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
    ck_assert_int_eq(count_rows(db_path, "outbox"), 0);
    tracker_free(&tr);
}
END_TEST

/* Parked events survive kill -9: after the restart they are loaded back a
 * few at a time (memory stays bounded) and arrive in order, before the
 * final events of the interrupted jobs. */
START_TEST(parked_events_survive_a_crash_and_arrive_in_order) {
    unsigned hook = free_port();
    start_or_fail(&d1, &spill_opts);
    remember_db();
    struct tracker tr = {0};
    submit_tracked(&tr, d1.port, hook, SPILL_JOBS);
    struct hook_counts c = wait_parked(d1.port, 10);
    ck_assert_msg(c.parked >= 10, "only %.0f events parked", c.parked);
    ck_assert_int_ge(wait_outbox_rows((int)c.parked), (int)c.parked);
    daemon_kill9(&d1);
    int rows = count_rows(db_path, "outbox");
    ck_assert_int_ge(rows, 10);

    rcv = receiver_start_on(hook);
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts o = spill_opts;
    o.db_path = db_path;
    start_or_fail(&d2, &o);
    bool all = false;
    for (unsigned waited = 0; !all && waited < 90000; waited += 100) {
        tracker_scan(&tr, rcv);
        all = tracker_ended(&tr) == tr.n;
        c = hook_counts(d2.port);
        assert_memory_bounded(&c);
        if (!all) test_nap_ms(100);
    }
    ck_assert_msg(all, "only %zu of %d jobs had their final webhook", tracker_ended(&tr),
                  SPILL_JOBS);
    tracker_assert_complete(&tr);
    ck_assert_uint_ge(receiver_count(rcv), (size_t)rows);
    char *log = daemon_log(&d2);
    char want[64];
    snprintf(want, sizeof want, "; %d webhooks to deliver", rows);
    ck_assert_msg(strstr(log, want) != NULL, "no \"%s\" in the log", want);
    free(log);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
    tracker_free(&tr);
}
END_TEST

/* (d) a locked database, then a full disk: the submission gets a clear
 * error and no ack, the daemon keeps running, and works again after. */
START_TEST(locked_or_full_database_refuses_submissions_clearly) {
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts o = {.plugins = "echo", .tasks_extra = "lock_timeout_ms = 100"};
    start_or_fail(&d1, &o);
    remember_db();
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    long status = 0;
    char *err = NULL;
    char *id = submit(d1.port, "echo", "x", receiver_port(rcv), &status, &err);
    ck_assert_ptr_null(id);
    ck_assert_int_eq(status, 503);
    ck_assert_msg(strstr(err, "database is locked") && strstr(err, "not accepted") &&
                      strstr(err, db_path),
                  "unclear error: %s", err);
    free(err);
    ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    id = submit(d1.port, "echo", "x", receiver_port(rcv), &status, NULL);
    ck_assert_ptr_nonnull(id);
    free(id);
    ck_assert_int_eq(count_rows(db_path, "tasks"), 1); /* only the acknowledged one */
    char *log = daemon_log(&d1);
    ck_assert_ptr_nonnull(strstr(log, "database is locked"));
    free(log);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);

    /* A disk that fills up: the daemon may write 200 KiB per file. */
    struct daemon_opts full = {.plugins = "echo", .fsize_limit = 200 * 1024,
                               .tasks_extra = "sync = normal"};
    start_or_fail(&d2, &full);
    size_t acked = 0;
    err = NULL;
    for (int i = 0; i < 3000 && !err; i++) {
        char text[64];
        snprintf(text, sizeof text, "filling the disk with job %d", i);
        char *e = NULL;
        id = submit(d2.port, "echo", text, receiver_port(rcv), &status, &e);
        if (id) {
            acked++;
            free(id);
            free(e);
        } else {
            ck_assert_int_eq(status, 503);
            err = e;
        }
    }
    /* A write the kernel cut short: SQLite calls it a disk I/O error. */
    ck_assert_msg(err && strstr(err, "disk I/O error") && strstr(err, "a2ad.db") &&
                      strstr(err, "not accepted"),
                  "no disk-full error after %zu jobs: %s", acked, err ? err : "(none)");
    ck_assert_uint_gt(acked, 0);
    free(err);
    struct http_resp h;
    ck_assert(http_call(d2.port, NULL, "/healthz", NULL, &h)); /* still alive */
    ck_assert_int_eq(h.status, 200);
    http_resp_free(&h);
    log = daemon_log(&d2);
    ck_assert_ptr_nonnull(strstr(log, "disk I/O error (new jobs are refused"));
    free(log);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
}
END_TEST

/* ---- acknowledgements wait for the commit, not for a thread ---- */

struct sender {
    unsigned port, hook_port;
    int n;
    char *id;      /* acknowledged task id */
    long status;
    char *error;
    atomic_bool done;
};

static void *sender_run(void *arg) {
    struct sender *s = arg;
    char text[32];
    snprintf(text, sizeof text, "concurrent job %d", s->n);
    s->id = submit(s->port, "echo", text, s->hook_port, &s->status, &s->error);
    atomic_store(&s->done, true);
    return NULL;
}

/* "tasks" of /healthz: tasks held in memory, acknowledged or not; -1 if
 * the request failed. */
static long health_tasks(unsigned port) {
    struct http_resp h;
    if (!http_call(port, NULL, "/healthz", NULL, &h)) return -1;
    cJSON *o = h.status == 200 ? cJSON_Parse(h.body) : NULL;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "tasks");
    long v = cJSON_IsNumber(n) ? (long)n->valuedouble : -1;
    cJSON_Delete(o);
    http_resp_free(&h);
    return v;
}

/* 64 sends on 64 connections at once, one HTTP thread: every one is
 * acknowledged, and every acknowledged id is in the database (tasks/get
 * finds it after kill -9 and a restart). */
START_TEST(concurrent_sends_are_all_acknowledged_and_stored) {
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts o = {.plugins = "echo", .server_extra = "http_threads = 1\n"
                                                               "max_connections = 200\n"};
    start_or_fail(&d1, &o);
    remember_db();
    enum { N = 64 };
    static struct sender s[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        memset(&s[i], 0, sizeof s[i]);
        s[i].port = d1.port;
        s[i].hook_port = receiver_port(rcv);
        s[i].n = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, sender_run, &s[i]), 0);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++)
        ck_assert_msg(s[i].id, "send %d not acknowledged: HTTP %ld %s", i, s[i].status,
                      s[i].error ? s[i].error : "");
    daemon_kill9(&d1); /* right after the last ack */
    o.db_path = db_path;
    start_or_fail(&d2, &o);
    for (int i = 0; i < N; i++) {
        cJSON *t = get_task(d2.port, "echo", s[i].id);
        ck_assert_msg(strcmp(json_str(t, "result.id"), s[i].id) == 0,
                      "acknowledged task %s is not in the database after kill -9", s[i].id);
        cJSON_Delete(t);
        free(s[i].id);
        free(s[i].error);
    }
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
}
END_TEST

/* A send whose row cannot be written (the database is locked) holds no
 * HTTP thread while it waits: with a single HTTP thread, /healthz answers
 * and shows the unacknowledged task meanwhile. Once the lock timeout runs
 * out the send still gets the store's 503, and the task is gone. */
START_TEST(refused_write_answers_503_while_others_are_served) {
    struct daemon_opts o = {.plugins = "echo", .server_extra = "http_threads = 1\n",
                            .tasks_extra = "lock_timeout_ms = 8000"};
    start_or_fail(&d1, &o);
    remember_db();
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    static struct sender s;
    memset(&s, 0, sizeof s);
    s.port = d1.port;
    s.hook_port = free_port();
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, sender_run, &s), 0);
    /* The task exists in memory while its row waits for the lock. */
    bool seen_pending = false;
    for (int i = 0; i < 2000 && !atomic_load(&s.done) && !seen_pending; i++) {
        long n = health_tasks(d1.port);
        seen_pending = n == 1 && !atomic_load(&s.done);
        if (!seen_pending) test_nap_ms(10);
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ck_assert_msg(seen_pending, "/healthz was not served while the send waited for the database");
    ck_assert_ptr_null(s.id);
    ck_assert_int_eq(s.status, 503);
    ck_assert_msg(s.error && strstr(s.error, "database is locked") &&
                      strstr(s.error, "not accepted") && strstr(s.error, db_path),
                  "unclear error: %s", s.error ? s.error : "(none)");
    free(s.error);
    ck_assert_int_eq(health_tasks(d1.port), 0); /* the refused task is gone */
    ck_assert_int_eq(count_rows(db_path, "tasks"), 0);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
}
END_TEST

/* Jobs whose events come faster than commits (processor, step_ms = 0: a
 * job's events share transactions, where the store writes one row per
 * task): after kill -9 and a restart, tasks/get shows each finished task
 * as it was before the kill (final state, every artifact, the history),
 * not an earlier row of the same transaction. */
START_TEST(restored_tasks_show_their_latest_state_after_kill9) {
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts o = {.plugins = "processor", .extra = "[agent.processor]\nstep_ms = 0\n"};
    start_or_fail(&d1, &o);
    remember_db();
    enum { JOBS = 30 };
    struct tracker tr = {0};
    for (int i = 0; i < JOBS; i++) {
        char *id = submit(d1.port, "processor", "latest", receiver_port(rcv), NULL, NULL);
        ck_assert_msg(id != NULL, "job %d not acknowledged", i);
        track(&tr, id);
        free(id);
    }
    /* A terminal webhook is sent only once its row (and the task row of
     * the same event) is committed. */
    ck_assert_msg(tracker_wait_all(&tr, rcv, 60000), "only %zu of %d jobs ended",
                  tracker_ended(&tr), JOBS);
    static char *live[JOBS];
    for (int i = 0; i < JOBS; i++) {
        cJSON *t = get_task(d1.port, "processor", tr.t[i].id);
        ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
        ck_assert_int_gt(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                             cJSON_GetObjectItemCaseSensitive(t, "result"), "artifacts")),
                          0);
        live[i] = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(t, "result"));
        cJSON_Delete(t);
    }
    daemon_kill9(&d1);
    o.db_path = db_path;
    start_or_fail(&d2, &o);
    for (int i = 0; i < JOBS; i++) {
        cJSON *t = get_task(d2.port, "processor", tr.t[i].id);
        char *restored = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(t, "result"));
        ck_assert_msg(restored && strcmp(restored, live[i]) == 0,
                      "task %s after the restart:\n%s\nbefore the kill:\n%s", tr.t[i].id,
                      restored ? restored : "(none)", live[i]);
        free(restored);
        free(live[i]);
        cJSON_Delete(t);
    }
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
    tracker_free(&tr);
}
END_TEST

Suite *durable_suite(void);
Suite *durable_suite(void) {
    Suite *s = suite_create("durable");
    TCase *tc = tcase_create("store");
    tcase_set_timeout(tc, 150);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, kill9_mid_run_loses_no_acknowledged_job);
    tcase_add_test(tc, receiver_down_then_503_gets_everything_in_order);
    tcase_add_test(tc, undelivered_events_and_queued_jobs_survive_a_restart);
    tcase_add_test(tc, running_jobs_after_a_crash_fail_or_run_again);
    tcase_add_test(tc, given_up_events_are_recorded_on_the_task);
    tcase_add_test(tc, retention_deletes_finished_tasks_and_delivered_events);
    tcase_add_test(tc, events_beyond_max_pending_wait_in_the_outbox_and_arrive_in_order);
    tcase_add_test(tc, parked_events_survive_a_crash_and_arrive_in_order);
    tcase_add_test(tc, locked_or_full_database_refuses_submissions_clearly);
    tcase_add_test(tc, concurrent_sends_are_all_acknowledged_and_stored);
    tcase_add_test(tc, refused_write_answers_503_while_others_are_served);
    tcase_add_test(tc, restored_tasks_show_their_latest_state_after_kill9);
    suite_add_tcase(s, tc);
    return s;
}
