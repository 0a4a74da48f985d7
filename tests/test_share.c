/* Work sharing between nodes on one PostgreSQL database (daemon/store/share.h):
 * a job its node cannot start at once is offered, and a node with a free
 * worker for its agent claims it and runs it. Against a real PostgreSQL
 * that the suite starts itself (tests/support/pg.h), with real daemons and
 * a real webhook receiver.
 *
 * The runlog agent appends "QUERY PID" to a file shared by both daemons at
 * the start of every run, so a test knows how often each job ran, and where.
 *
 * Without PostgreSQL installed the tests are skipped with a loud message,
 * except under CI=true, where they fail. */
#include <check.h>
#include <signal.h>
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/pgtest.h"
#include "support/receiver.h"
#include "support/tracker.h"
#include "support/sse.h"


static struct daemon_proc d1, d2, d3;
static struct receiver *rcv;
static char runs_file[300];

static void setup(void) {
    memset(&d1, 0, sizeof d1);
    memset(&d2, 0, sizeof d2);
    memset(&d3, 0, sizeof d3);
    rcv = NULL;
    snprintf(runs_file, sizeof runs_file, "/tmp/a2ad-share-runs-%ld", (long)getpid());
    unlink(runs_file);
}

static void teardown(void) {
    if (d3.pid > 0) kill(d3.pid, SIGCONT); /* stopped by a test that failed */
    daemon_cleanup(&d3);
    daemon_cleanup(&d2);
    daemon_cleanup(&d1);
    receiver_stop(rcv);
    unlink(runs_file);
}

static void start_or_fail(struct daemon_proc *d, const struct daemon_opts *o) {
    if (!daemon_start(d, o)) {
        char *log = daemon_log(d);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

/* A fresh database, and the [tasks] lines that use it (plus extra). */
/* The [tasks] lines end with a newline, for the tests to append to. */
static void new_db(const char *name, const char *extra, char *tasks, size_t n) {
    pgtest_new_db(name, extra ? extra : "", tasks, n);
}
static char *sql1(const char *db, const char *sql) { return pgtest_sql1(db, sql); }

/* message/send to runlog, webhook to hook_port: the task id when
 * acknowledged (malloc'd), else NULL. */
static char *submit(unsigned port, const char *text, bool blocking, unsigned hook_port) {
    char body[1024];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{"
             "\"message\":{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]},"
             "\"configuration\":{\"blocking\":%s,\"pushNotificationConfig\":"
             "{\"url\":\"http://127.0.0.1:%u/hook\"}}}}",
             text, blocking ? "true" : "false", hook_port);
    long st = 0;
    cJSON *o = rpc_call(port, "/agents/runlog", body, &st);
    char *id = NULL;
    if (st == 200 && cJSON_IsString(json_at(o, "result.id"))) id = strdup(json_str(o, "result.id"));
    cJSON_Delete(o);
    return id;
}

static cJSON *call(unsigned port, const char *method, const char *id) {
    char body[300];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"%s\",\"params\":{\"id\":\"%s\"}}",
             method, id);
    return rpc_call(port, "/agents/runlog", body, NULL);
}

/* ---- runs and webhooks ---- */

/* How many runs of job `text` the file records, and by which pid. */
static unsigned runs_of(const char *text, long *pid) {
    FILE *f = fopen(runs_file, "r");
    unsigned n = 0;
    char line[300];
    while (f && fgets(line, sizeof line, f)) {
        char *sp = strrchr(line, ' ');
        if (!sp) continue;
        *sp = '\0';
        if (strcmp(line, text) != 0) continue;
        n++;
        if (pid) *pid = strtol(sp + 1, NULL, 10);
    }
    if (f) fclose(f);
    return n;
}


/* Submit jobs PREFIX-0 .. PREFIX-(n-1) to alpha, each tracked in tr. */
static void submit_jobs(struct tracker *tr, const char *prefix, int n) {
    for (int i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof text, "%s-%d", prefix, i);
        char *id = submit(d1.port, text, false, receiver_port(rcv));
        ck_assert_msg(id != NULL, "job %s not acknowledged", text);
        track(tr, id);
        free(id);
    }
}

/* Each of PREFIX-0 .. PREFIX-(n-1) ran exactly once, on alpha or beta (on
 * only_on when it is not 0): how many on beta. */
static unsigned ran_once(const char *prefix, int n, long only_on) {
    unsigned on_beta = 0;
    for (int i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof text, "%s-%d", prefix, i);
        long pid = 0;
        ck_assert_msg(runs_of(text, &pid) == 1, "%s ran %u times", text, runs_of(text, NULL));
        ck_assert(only_on ? pid == only_on : (pid == d1.pid || pid == d2.pid));
        on_beta += pid == d2.pid;
    }
    return on_beta;
}

/* Two nodes, one worker each for runlog: alpha and beta. */
static void two_nodes(const char *db, const char *alpha_tasks_extra, unsigned run_ms) {
    static char ta[1200], tb[1200], agent[600];
    new_db(db, NULL, tb, sizeof tb);
    snprintf(ta, sizeof ta, "%s%s", tb, alpha_tasks_extra ? alpha_tasks_extra : "");
    snprintf(agent, sizeof agent, "[agent.runlog]\nworkers = 1\nfile = %s\nms = %u\n", runs_file,
             run_ms);
    struct daemon_opts a = {.plugins = "runlog", .store = "postgresql", .tasks_extra = ta,
                            .threads = 2, .server_extra = "node_name = alpha", .extra = agent};
    struct daemon_opts b = a;
    b.tasks_extra = tb;
    b.server_extra = "node_name = beta";
    start_or_fail(&d1, &a);
    start_or_fail(&d2, &b);
}

/* ---- tests ---- */

/* Jobs submitted to alpha only, one worker per node: beta, idle, claims
 * the jobs alpha cannot start at once and runs them. Every job runs
 * exactly once, reaches one terminal state, and its webhooks arrive in
 * event-id order although its events came from two nodes' outboxes. */
START_TEST(share_free_node_runs_queued_jobs) {
    REQUIRE_PG();
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    two_nodes("share1", NULL, 150);
    enum { JOBS = 30 };
    struct tracker tr = {0};
    submit_jobs(&tr, "job", JOBS);
    ck_assert_msg(tracker_wait_all(&tr, rcv, 60000), "only %zu of %d jobs ended",
                  tracker_ended(&tr), JOBS);
    tracker_assert_complete(&tr);
    unsigned on_beta = ran_once("job", JOBS, 0);
    for (int i = 0; i < JOBS; i++) ck_assert_str_eq(tr.t[i].terminal, "completed");
    fprintf(stderr, "share: beta ran %u of the %d jobs submitted to alpha\n", on_beta, JOBS);
    ck_assert_msg(on_beta > 0, "beta ran none of alpha's jobs");
    ck_assert_msg(on_beta < JOBS, "alpha ran none of its jobs");
    /* The rows say who holds each job; the beta ones say so in tasks/get. */
    char *n = sql1("share1", "SELECT count(*) FROM a2ad_tasks WHERE node = 'beta'");
    ck_assert_int_eq(atoi(n), (int)on_beta);
    free(n);
    for (int i = 0; i < JOBS; i++) {
        char text[32];
        snprintf(text, sizeof text, "job-%d", i);
        long pid = 0;
        runs_of(text, &pid);
        if (pid != d2.pid) continue;
        cJSON *t = call(d2.port, "tasks/get", tr.t[i].id);
        ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
        ck_assert_str_eq(json_str(t, "result.metadata.a2ad.node"), "beta");
        char ran[40];
        snprintf(ran, sizeof ran, "ran %s", text);
        ck_assert_str_eq(json_str(t, "result.status.message.parts.0.text"), ran);
        cJSON_Delete(t);
        /* alpha forgot its copy: no stale "submitted" answer from there
         * (either not found, or the holder's answer) */
        t = call(d1.port, "tasks/get", tr.t[i].id);
        const cJSON *code = json_at(t, "error.code");
        if (!(cJSON_IsNumber(code) && (int)code->valuedouble == -32001)) {
            ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
            ck_assert_str_eq(json_str(t, "result.metadata.a2ad.node"), "beta");
        }
        cJSON_Delete(t);
        break;
    }
    char *left = sql1("share1", "SELECT count(*) FROM a2ad_tasks WHERE offered");
    ck_assert_str_eq(left, "0");
    free(left);
    /* An operator sees it in /metrics: beta claimed what it ran, alpha
     * had them taken. */
    struct http_resp h;
    char metric[80];
    ck_assert(http_call(d2.port, "GET", "/metrics", NULL, &h));
    snprintf(metric, sizeof metric, "a2ad_shared_jobs_total{event=\"claimed\"} %u\n", on_beta);
    ck_assert_msg(strstr(h.body, metric), "beta's /metrics lacks %s", metric);
    http_resp_free(&h);
    ck_assert(http_call(d1.port, "GET", "/metrics", NULL, &h));
    snprintf(metric, sizeof metric, "a2ad_shared_jobs_total{event=\"taken\"} %u\n", on_beta);
    ck_assert_msg(strstr(h.body, metric), "alpha's /metrics lacks %s", metric);
    http_resp_free(&h);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
    char *log = daemon_log(&d1);
    ck_assert_msg(strstr(log, "work sharing: ") && strstr(log, " jobs offered to other nodes"),
                  "alpha's log:\n%s", log);
    free(log);
    log = daemon_log(&d2);
    char want[80];
    snprintf(want, sizeof want, "%u claimed from them", on_beta);
    ck_assert_msg(strstr(log, want), "beta's log does not say %s:\n%s", want, log);
    free(log);
    tracker_free(&tr);
}
END_TEST

/* A job whose client is connected to alpha (a stream, a blocking send)
 * is not moved, even with beta idle: it runs on alpha, after alpha's
 * queue, and its client gets its events from alpha. */
START_TEST(share_job_with_client_here_is_not_moved) {
    REQUIRE_PG();
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    two_nodes("share2", NULL, 300);
    /* alpha's worker busy, so the next jobs wait there */
    char *first = submit(d1.port, "busy", false, receiver_port(rcv));
    ck_assert_ptr_nonnull(first);
    free(first);
    char body[600];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"message/stream\",\"params\":{"
             "\"message\":{\"kind\":\"message\",\"messageId\":\"s\",\"role\":\"user\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"streamed\"}]}}}");
    const char *hdrs[] = {"Content-Type: application/json", "Accept: text/event-stream", NULL};
    struct sse *s = sse_open(d1.port, "/agents/runlog", body, hdrs);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(sse_status(s, 10000), 200);
    /* A blocking send answers when its job ended: it ran on alpha too. */
    char *blocked = submit(d1.port, "blocking", true, receiver_port(rcv));
    ck_assert_ptr_nonnull(blocked);
    cJSON *t = call(d1.port, "tasks/get", blocked);
    ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
    ck_assert_str_eq(json_str(t, "result.metadata.a2ad.node"), "alpha");
    cJSON_Delete(t);
    free(blocked);
    bool completed = false;
    for (int i = 0; i < 100 && !completed; i++) {
        char *data = NULL;
        int r = sse_next(s, &data, 10000);
        if (r != 1) break;
        completed = strstr(data, "\"completed\"") != NULL;
        free(data);
    }
    sse_close(s);
    ck_assert_msg(completed, "the stream did not see its job complete");
    long pid = 0;
    ck_assert_int_eq(runs_of("streamed", &pid), 1);
    ck_assert_int_eq(pid, d1.pid);
    ck_assert_int_eq(runs_of("blocking", &pid), 1);
    ck_assert_int_eq(pid, d1.pid);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
}
END_TEST

/* share_jobs = no: the node keeps its jobs, however long they wait. */
START_TEST(share_jobs_no_keeps_jobs_here) {
    REQUIRE_PG();
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    two_nodes("share3", "share_jobs = no\n", 100);
    enum { JOBS = 8 };
    struct tracker tr = {0};
    submit_jobs(&tr, "kept", JOBS);
    ck_assert(tracker_wait_all(&tr, rcv, 30000));
    tracker_assert_complete(&tr);
    ck_assert_uint_eq(ran_once("kept", JOBS, d1.pid), 0);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
    tracker_free(&tr);
}
END_TEST

/* A cancel on the node that offered a queued job withdraws the offer
 * first: the job is canceled and never runs anywhere. The jobs still
 * queued when alpha stops stay offered, and beta, started later, runs
 * them (alpha's lease has not expired: no takeover). Alpha offers only
 * while another node has free workers: gamma, which has no runlog agent. */
START_TEST(share_cancelled_offer_never_runs_and_stopped_node_jobs_run_elsewhere) {
    REQUIRE_PG();
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    static char tasks[1200], agent[600];
    new_db("share4", NULL, tasks, sizeof tasks);
    snprintf(agent, sizeof agent, "[agent.runlog]\nworkers = 1\nfile = %s\nms = 400\n",
             runs_file);
    struct daemon_opts a = {.plugins = "runlog", .store = "postgresql", .tasks_extra = tasks,
                            .threads = 2, .server_extra = "node_name = alpha", .extra = agent};
    struct daemon_opts b = a;
    b.server_extra = "node_name = beta";
    /* gamma has a free runlog worker (so alpha offers), then hangs
     * (SIGSTOP, its lease still valid): nobody claims the offers while
     * alpha runs. */
    struct daemon_opts g = a;
    g.server_extra = "node_name = gamma";
    start_or_fail(&d3, &g);
    char *room = NULL;
    for (int i = 0; i < 250; i++) {
        free(room);
        room = sql1("share4", "SELECT coalesce(max((free_by_agent->>'runlog')::int), 0)"
                              " FROM a2ad_nodes WHERE name = 'gamma'");
        if (atoi(room) > 0) break;
        test_nap_ms(20);
    }
    ck_assert_msg(atoi(room) > 0, "gamma never said it has a free runlog worker");
    free(room);
    ck_assert_int_eq(kill(d3.pid, SIGSTOP), 0);
    start_or_fail(&d1, &a);
    long alpha_pid = d1.pid;
    enum { JOBS = 5 };
    struct tracker tr = {0};
    submit_jobs(&tr, "late", JOBS);
    /* Offered (one worker, five jobs), then canceled here. */
    char *offered = NULL;
    for (int i = 0; i < 250; i++) {
        free(offered);
        offered = sql1("share4", "SELECT count(*) FROM a2ad_tasks WHERE offered");
        if (atoi(offered) >= 3) break;
        test_nap_ms(20);
    }
    ck_assert_msg(atoi(offered) >= 3, "only %s jobs offered", offered);
    free(offered);
    cJSON *c = call(d1.port, "tasks/cancel", tr.t[JOBS - 1].id);
    ck_assert_str_eq(json_str(c, "result.status.state"), "canceled");
    cJSON_Delete(c);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
    daemon_kill9(&d3);
    start_or_fail(&d2, &b);
    ck_assert_msg(tracker_wait_all(&tr, rcv, 30000), "only %zu of %d jobs ended",
                  tracker_ended(&tr), JOBS);
    tracker_assert_complete(&tr);
    ck_assert_str_eq(tr.t[JOBS - 1].terminal, "canceled");
    ck_assert_int_eq(runs_of("late-4", NULL), 0);
    unsigned on_beta = 0;
    for (int i = 0; i < JOBS - 1; i++) {
        char text[32];
        snprintf(text, sizeof text, "late-%d", i);
        long pid = 0;
        ck_assert_int_eq(runs_of(text, &pid), 1);
        ck_assert_str_eq(tr.t[i].terminal, "completed");
        ck_assert(pid == alpha_pid || pid == d2.pid);
        on_beta += pid == d2.pid;
    }
    ck_assert_uint_ge(on_beta, 2);
    char *log = daemon_log(&d2);
    ck_assert_msg(!strstr(log, "node alpha lost"), "beta took alpha over:\n%s", log);
    free(log);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
    tracker_free(&tr);
}
END_TEST

/* A backlog built while alpha was alone is shared once beta joins: beta
 * runs part of it (share_after_ms = 0: offered as soon as another node
 * lives), and every job still runs once, in order. */
START_TEST(share_node_that_joins_takes_part_of_the_backlog) {
    REQUIRE_PG();
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    static char tasks[1200], ta[1300], agent[600];
    new_db("share5", NULL, tasks, sizeof tasks);
    snprintf(ta, sizeof ta, "%sshare_after_ms = 0\n", tasks);
    snprintf(agent, sizeof agent, "[agent.runlog]\nworkers = 1\nfile = %s\nms = 150\n",
             runs_file);
    struct daemon_opts a = {.plugins = "runlog", .store = "postgresql", .tasks_extra = ta,
                            .threads = 2, .server_extra = "node_name = alpha", .extra = agent};
    struct daemon_opts b = a;
    b.server_extra = "node_name = beta";
    b.tasks_extra = tasks;
    start_or_fail(&d1, &a);
    enum { JOBS = 20 };
    struct tracker tr = {0};
    submit_jobs(&tr, "backlog", JOBS);
    char *offered = sql1("share5", "SELECT count(*) FROM a2ad_tasks WHERE offered");
    ck_assert_str_eq(offered, "0"); /* alone: nobody to offer to */
    free(offered);
    start_or_fail(&d2, &b);
    ck_assert_msg(tracker_wait_all(&tr, rcv, 60000), "only %zu of %d jobs ended",
                  tracker_ended(&tr), JOBS);
    tracker_assert_complete(&tr);
    unsigned on_beta = ran_once("backlog", JOBS, 0);
    fprintf(stderr, "share: beta, joining late, ran %u of alpha's %d queued jobs\n", on_beta, JOBS);
    ck_assert_uint_gt(on_beta, 0);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
    tracker_free(&tr);
}
END_TEST

/* beta has free workers, but none for runlog: alpha's waiting runlog jobs
 * are not offered to it (an offer nobody can take only delays its job by a
 * claim check), and all of them run on alpha. */
START_TEST(share_offers_only_to_a_node_with_room_for_the_agent) {
    REQUIRE_PG();
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    static char tasks[1200], agent[600];
    new_db("share6", NULL, tasks, sizeof tasks);
    snprintf(agent, sizeof agent, "[agent.runlog]\nworkers = 1\nfile = %s\nms = 200\n",
             runs_file);
    struct daemon_opts a = {.plugins = "runlog", .store = "postgresql", .tasks_extra = tasks,
                            .threads = 2, .server_extra = "node_name = alpha", .extra = agent};
    struct daemon_opts b = a;
    b.server_extra = "node_name = beta";
    b.plugins = "echo";
    b.extra = NULL;
    start_or_fail(&d2, &b);
    start_or_fail(&d1, &a);
    char *room = NULL;
    for (int i = 0; i < 250; i++) {
        free(room);
        room = sql1("share6", "SELECT coalesce(max((free_by_agent->>'echo')::int), 0)"
                              " FROM a2ad_nodes WHERE name = 'beta'");
        if (atoi(room) > 0) break;
        test_nap_ms(20);
    }
    ck_assert_msg(atoi(room) > 0, "beta never said it has free echo workers");
    free(room);
    test_nap_ms(1500); /* alpha reads the other nodes' room once a second */
    enum { JOBS = 6 };
    struct tracker tr = {0};
    submit_jobs(&tr, "mine", JOBS);
    ck_assert(tracker_wait_all(&tr, rcv, 30000));
    tracker_assert_complete(&tr);
    ck_assert_uint_eq(ran_once("mine", JOBS, d1.pid), 0);
    struct http_resp h;
    ck_assert(http_call(d1.port, "GET", "/metrics", NULL, &h));
    const char *offered = strstr(h.body, "a2ad_shared_jobs_total{event=\"offered\"} ");
    ck_assert_ptr_nonnull(offered);
    ck_assert_msg(strncmp(offered + 40, "0\n", 2) == 0, "alpha offered jobs nobody could run: %.50s",
                  offered);
    http_resp_free(&h);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
    tracker_free(&tr);
}
END_TEST

Suite *share_suite(void);
Suite *share_suite(void) {
    Suite *s = suite_create("share");
    TCase *tc = tcase_create("share");
    tcase_add_unchecked_fixture(tc, pgtest_suite_setup, pgtest_suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, share_free_node_runs_queued_jobs);
    tcase_add_test(tc, share_job_with_client_here_is_not_moved);
    tcase_add_test(tc, share_jobs_no_keeps_jobs_here);
    tcase_add_test(tc, share_cancelled_offer_never_runs_and_stopped_node_jobs_run_elsewhere);
    tcase_add_test(tc, share_node_that_joins_takes_part_of_the_backlog);
    tcase_add_test(tc, share_offers_only_to_a_node_with_room_for_the_agent);
    suite_add_tcase(s, tc);
    return s;
}
