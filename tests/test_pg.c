/* The PostgreSQL store against a real server that the suite starts itself
 * (tests/support/pg.c), and the schema-version refusal of both stores.
 * The same promises as the SQLite store's (test_durable.c): every job that
 * got an ack ends, once, its webhooks all arrive in order with their stable
 * event ids, across kill -9; a database that goes away refuses new jobs
 * with a clear 503 and loses nothing acknowledged.
 *
 * Without PostgreSQL installed the PostgreSQL tests are skipped with a
 * loud message, except under CI=true, where they fail. */
#include <check.h>
#include <cJSON.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "support/daemon.h"
#include "support/json.h"
#include "support/pgtest.h"
#include "support/receiver.h"
#include "support/tracker.h"


static void new_db(const char *name, char *tasks, size_t n) { pgtest_new_db(name, NULL, tasks, n); }
static char *sql1(const char *db, const char *sql) { return pgtest_sql1(db, sql); }

/* ---- the daemon, jobs, webhooks (as test_durable.c) ---- */

static struct daemon_proc d1, d2;
static struct receiver *rcv;

static void setup(void) {
    memset(&d1, 0, sizeof d1);
    memset(&d2, 0, sizeof d2);
    rcv = NULL;
}

static void teardown(void) {
    daemon_cleanup(&d2);
    daemon_cleanup(&d1);
    receiver_stop(rcv);
}

static void start_or_fail(struct daemon_proc *d, const struct daemon_opts *o) {
    if (!daemon_start(d, o)) {
        char *log = daemon_log(d);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

static const char *send_body(char *body, size_t n, const char *text, unsigned hook_port) {
    snprintf(body, n,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{"
             "\"message\":{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]},"
             "\"configuration\":{\"blocking\":false,\"pushNotificationConfig\":"
             "{\"url\":\"http://127.0.0.1:%u/hook\"}}}}",
             text, hook_port);
    return body;
}

/* message/send without blocking, webhook to hook_port: the task id when
 * acknowledged (malloc'd), else NULL. */
static char *submit(unsigned port, const char *agent, const char *text, unsigned hook_port) {
    char body[1024], path[64];
    snprintf(path, sizeof path, "/agents/%s", agent);
    long st = 0;
    cJSON *o = rpc_call(port, path, send_body(body, sizeof body, text, hook_port), &st);
    char *id = NULL;
    if (st == 200 && cJSON_IsString(json_at(o, "result.id"))) id = strdup(json_str(o, "result.id"));
    cJSON_Delete(o);
    return id;
}

static cJSON *call(unsigned port, const char *agent, const char *method, const char *params) {
    char body[600], path[64];
    snprintf(path, sizeof path, "/agents/%s", agent);
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"%s\",\"params\":%s}",
             method, params);
    return rpc_call(port, path, body, NULL);
}

static cJSON *get_task(unsigned port, const char *agent, const char *id) {
    char params[120];
    snprintf(params, sizeof params, "{\"id\":\"%s\"}", id);
    return call(port, agent, "tasks/get", params);
}


/* ---- tests ---- */

/* kill -9 in the middle of a few hundred jobs, restart on the same
 * database: every acknowledged job ends, exactly one outcome each, every
 * event arrives in order; the clean stop reports the round trips. */
START_TEST(pg_kill9_mid_run_loses_no_acknowledged_job) {
    REQUIRE_PG();
    char tasks[1000];
    new_db("kill9", tasks, sizeof tasks);
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts o = {.plugins = "echo,processor", .store = "postgresql",
                            .tasks_extra = tasks, .extra = "[agent.processor]\nstep_ms = 2\n"};
    start_or_fail(&d1, &o);
    struct tracker tr = {0};
    enum { JOBS = 200 };
    for (int i = 0; i < JOBS; i++) {
        char text[32];
        snprintf(text, sizeof text, "job %d", i);
        char *id = submit(d1.port, i % 5 == 0 ? "processor" : "echo", text, receiver_port(rcv));
        ck_assert_msg(id != NULL, "job %d not acknowledged", i);
        track(&tr, id);
        free(id);
    }
    receiver_wait(rcv, 30, 10000);
    daemon_kill9(&d1);
    tracker_scan(&tr, rcv);
    size_t ended_before = tracker_ended(&tr);
    /* Every acknowledged job has its row. */
    char *rows = sql1("kill9", "SELECT count(*) FROM a2ad_tasks");
    ck_assert_int_eq(atoi(rows), JOBS);
    free(rows);

    start_or_fail(&d2, &o);
    ck_assert_msg(tracker_wait_all(&tr, rcv, 90000), "only %zu of %d jobs ended",
                  tracker_ended(&tr), JOBS);
    tracker_assert_complete(&tr);
    ck_assert_uint_lt(ended_before, JOBS); /* the kill did land mid-run */
    /* tasks/get after the restart: the stored outcome. */
    cJSON *t = get_task(d2.port, "echo", tr.t[1].id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
    cJSON_Delete(t);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
    char *log = daemon_log(&d2);
    ck_assert_ptr_nonnull(strstr(log, "store: recovered"));
    ck_assert_ptr_nonnull(strstr(log, "round trips"));
    free(log);
    /* Delivered events leave the outbox. */
    char *left = sql1("kill9", "SELECT count(*) FROM a2ad_outbox");
    ck_assert_int_eq(atoi(left), 0);
    free(left);
    tracker_free(&tr);
}
END_TEST

/* A running job at a crash: failed ("interrupted: a2ad restarted") unless
 * rerun_safe (run again, attempt 2); its push config survives, and its
 * terminal webhook arrives. */
START_TEST(pg_running_jobs_fail_or_run_again_and_push_configs_survive) {
    REQUIRE_PG();
    char tasks[1000];
    new_db("rerun", tasks, sizeof tasks);
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts o = {.plugins = "processor,rerun", .store = "postgresql",
                            .tasks_extra = tasks, .extra = "[agent.processor]\nstep_ms = 300\n"};
    start_or_fail(&d1, &o);
    char *p = submit(d1.port, "processor", "long", receiver_port(rcv));
    char *r = submit(d1.port, "rerun", "again", receiver_port(rcv));
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(r);
    struct tracker tr = {0};
    track(&tr, p);
    track(&tr, r);
    for (int i = 0; i < 500 && (tr.t[0].max_seq < 3 || tr.t[1].max_seq < 3); i++) {
        test_nap_ms(20);
        tracker_scan(&tr, rcv);
    }
    ck_assert(tr.t[0].max_seq >= 3 && tr.t[1].max_seq >= 3);
    ck_assert_uint_eq(tracker_ended(&tr), 0);
    daemon_kill9(&d1);

    start_or_fail(&d2, &o);
    ck_assert_msg(tracker_wait_all(&tr, rcv, 30000), "terminal webhooks missing");
    tracker_assert_complete(&tr);
    ck_assert_str_eq(tr.t[0].terminal, "failed");
    ck_assert_str_eq(tr.t[1].terminal, "completed");
    cJSON *t = get_task(d2.port, "processor", p);
    ck_assert_str_eq(json_str(t, "result.status.state"), "failed");
    ck_assert_str_eq(json_str(t, "result.status.message.parts.0.text"),
                     "interrupted: a2ad restarted");
    cJSON_Delete(t);
    t = get_task(d2.port, "rerun", r);
    ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
    ck_assert_str_eq(json_str(t, "result.status.message.parts.0.text"), "done: again");
    const cJSON *attempt = json_at(t, "result.metadata.a2ad.attempt");
    ck_assert(cJSON_IsNumber(attempt));
    ck_assert_int_eq((int)attempt->valuedouble, 2);
    cJSON_Delete(t);
    char params[120], url[80];
    snprintf(params, sizeof params, "{\"id\":\"%s\"}", p);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", receiver_port(rcv));
    t = call(d2.port, "processor", "tasks/pushNotificationConfig/list", params);
    char *text = cJSON_PrintUnformatted(t);
    ck_assert_msg(strstr(text, url) != NULL, "push config lost after the restart: %s", text);
    free(text);
    cJSON_Delete(t);
    free(p);
    free(r);
    tracker_free(&tr);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
}
END_TEST

static bool died_of(struct daemon_proc *dp, int sig) {
    for (int i = 0; i < 1500 && dp->pid > 0; i++) {
        int status;
        if (waitpid(dp->pid, &status, WNOHANG) == dp->pid) {
            dp->pid = 0;
            return WIFSIGNALED(status) && WTERMSIG(status) == sig;
        }
        test_nap_ms(20);
    }
    return false;
}

/* A rerun_safe job that kills every node that runs it (isolation =
 * thread) is taken over from node to node only [workers] max_attempts
 * times, then failed: it cannot take the whole cluster down in turn. */
START_TEST(pg_poison_job_is_not_passed_from_node_to_node_for_ever) {
    REQUIRE_PG();
    char tasks[1000], t2[1200];
    new_db("poison", tasks, sizeof tasks);
    snprintf(t2, sizeof t2, "%s\nlease_s = 2", tasks);
    struct daemon_opts a = {.plugins = "hazard,echo", .store = "postgresql", .tasks_extra = t2,
                            .threads = 1, .server_extra = "node_name = alpha",
                            .workers_extra = "max_attempts = 2\ncrash_loop_max = 0"};
    struct daemon_opts b = a;
    b.server_extra = "node_name = beta";
    start_or_fail(&d1, &a);
    start_or_fail(&d2, &b);
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    char *id = submit(d1.port, "hazard", "segv-later", receiver_port(rcv));
    ck_assert_ptr_nonnull(id);
    ck_assert_msg(died_of(&d1, SIGSEGV), "alpha did not die of the job");
    /* beta takes it over once alpha's lease expired: attempt 2 kills it. */
    ck_assert_msg(died_of(&d2, SIGSEGV), "beta did not run (and die of) the job");
    char *log = daemon_log(&d2);
    char want[200];
    snprintf(want, sizeof want, "running task %s (attempt 2", id);
    ck_assert_msg(strstr(log, want), "beta's log:\n%s", log);
    free(log);
    /* alpha again: it takes beta over, and gives the job up. */
    daemon_cleanup(&d1);
    start_or_fail(&d1, &a);
    cJSON *t = NULL;
    for (int i = 0; i < 300; i++) {
        cJSON_Delete(t);
        t = get_task(d1.port, "hazard", id);
        const char *state = json_str(t, "result.status.state");
        if (state && !strcmp(state, "failed")) break;
        test_nap_ms(50);
    }
    ck_assert_str_eq(json_str(t, "result.status.state"), "failed");
    ck_assert_str_eq(json_str(t, "result.status.message.parts.0.text"),
                     "gave up after 2 attempts: the agent crashed");
    cJSON_Delete(t);
    ck_assert_int_eq(kill(d1.pid, 0), 0);
    free(id);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
}
END_TEST

/* Holds the row of a task locked for a while, so that the node's writes
 * of that row wait. */
struct row_lock {
    const char *db;
    char sql[300];
};
static void *hold_row_lock(void *arg) {
    struct row_lock *l = arg;
    free(pg_sql(&pgtest_srv, l->db, l->sql));
    return NULL;
}

/* pushNotificationConfig/set is answered only once the config is committed
 * in PostgreSQL: while the task's row is locked by another session the set
 * waits; killed right after its answer, the node restarts with the config. */
START_TEST(pg_push_config_set_is_committed_before_its_answer) {
    REQUIRE_PG();
    char tasks[1000];
    new_db("pushset", tasks, sizeof tasks);
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts o = {.plugins = "processor", .store = "postgresql", .tasks_extra = tasks,
                            .extra = "[agent.processor]\nstep_ms = 300\n"};
    start_or_fail(&d1, &o);
    char *id = submit(d1.port, "processor", "long", receiver_port(rcv));
    ck_assert_ptr_nonnull(id);
    /* The set's write now waits for this lock (released after 1.5 s). */
    struct row_lock lk = {.db = "pushset"};
    snprintf(lk.sql, sizeof lk.sql,
             "BEGIN; SELECT 1 FROM a2ad_tasks WHERE id = '%s' FOR UPDATE; SELECT pg_sleep(1.5);"
             " COMMIT;", id);
    pthread_t locker;
    ck_assert_int_eq(pthread_create(&locker, NULL, hold_row_lock, &lk), 0);
    bool held = false;
    for (int i = 0; i < 200 && !held; i++) {
        char *w = sql1("pushset", "SELECT count(*) FROM pg_stat_activity WHERE query LIKE"
                                  " '%pg_sleep(1.5)%' AND state = 'active' AND pid <> pg_backend_pid()");
        held = w && strcmp(w, "0") != 0;
        free(w);
        if (!held) test_nap_ms(10);
    }
    ck_assert_msg(held, "the row lock was not taken");
    char params[400];
    snprintf(params, sizeof params,
             "{\"taskId\":\"%s\",\"pushNotificationConfig\":{\"id\":\"second\","
             "\"url\":\"http://127.0.0.1:%u/second\"}}",
             id, receiver_port(rcv));
    cJSON *r = call(d1.port, "processor", "tasks/pushNotificationConfig/set", params);
    ck_assert_msg(json_at(r, "result") != NULL, "set failed");
    cJSON_Delete(r);
    daemon_kill9(&d1);
    pthread_join(locker, NULL);
    char *n = sql1("pushset", "SELECT count(*) FROM a2ad_tasks WHERE position('/second'::bytea in ext) > 0");
    ck_assert_str_eq(n, "1");
    free(n);
    start_or_fail(&d2, &o);
    snprintf(params, sizeof params, "{\"id\":\"%s\"}", id);
    r = call(d2.port, "processor", "tasks/pushNotificationConfig/list", params);
    char *text = cJSON_PrintUnformatted(r);
    ck_assert_msg(strstr(text, "/second") != NULL, "the acknowledged config is gone: %s", text);
    free(text);
    cJSON_Delete(r);
    free(id);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
}
END_TEST

/* PostgreSQL stopped under a2ad: new jobs get 503 with Retry-After and a
 * message naming the cause; jobs already acknowledged finish and nothing
 * of theirs is lost once it is back; then jobs are taken again. */
START_TEST(pg_stopped_refuses_clearly_and_loses_nothing) {
    REQUIRE_PG();
    char tasks[1000];
    new_db("outage", tasks, sizeof tasks);
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts o = {.plugins = "processor", .store = "postgresql", .tasks_extra = tasks,
                            .threads = 4, .extra = "[agent.processor]\nstep_ms = 100\n"};
    start_or_fail(&d1, &o);
    struct tracker tr = {0};
    for (int i = 0; i < 12; i++) {
        char *id = submit(d1.port, "processor", "x", receiver_port(rcv));
        ck_assert_msg(id != NULL, "job %d not acknowledged", i);
        track(&tr, id);
        free(id);
    }
    ck_assert(pg_stop(&pgtest_srv));
    char body[1024];
    send_body(body, sizeof body, "refused", receiver_port(rcv));
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    struct http_resp h;
    ck_assert(http_call_headers(d1.port, "POST", "/agents/processor", body, hdrs, &h));
    ck_assert_int_eq(h.status, 503);
    ck_assert_msg(strcasestr(h.headers, "Retry-After:") != NULL, "no Retry-After: %s", h.headers);
    ck_assert_msg(strstr(h.body, "PostgreSQL") && strstr(h.body, "unreachable"),
                  "the 503 does not name the cause: %s", h.body);
    http_resp_free(&h);
    /* Readiness follows: a load balancer stops sending jobs here. */
    bool unready = false;
    for (int i = 0; i < 100 && !unready; i++) {
        ck_assert(http_call(d1.port, "GET", "/readyz", NULL, &h));
        unready = h.status == 503 && strstr(h.body, "PostgreSQL") && strstr(h.body, "unreachable");
        http_resp_free(&h);
        if (!unready) test_nap_ms(50);
    }
    ck_assert_msg(unready, "/readyz does not say PostgreSQL is unreachable");
    /* Reads still work from memory meanwhile. */
    cJSON *t = get_task(d1.port, "processor", tr.t[0].id);
    ck_assert_ptr_nonnull(json_at(t, "result.status.state"));
    cJSON_Delete(t);
    test_nap_ms(1500); /* the running jobs go on writing events into memory */
    ck_assert(pg_start(&pgtest_srv));
    char *id = NULL;
    for (int i = 0; i < 200 && !id; i++) {
        id = submit(d1.port, "processor", "after", receiver_port(rcv));
        if (!id) test_nap_ms(100);
    }
    ck_assert_msg(id != NULL, "jobs still refused after PostgreSQL came back");
    ck_assert(http_call(d1.port, "GET", "/readyz", NULL, &h));
    ck_assert_msg(h.status == 200, "/readyz after PostgreSQL came back: %ld %s", h.status, h.body);
    http_resp_free(&h);
    track(&tr, id);
    free(id);
    ck_assert_msg(tracker_wait_all(&tr, rcv, 60000), "only %zu of %zu jobs ended",
                  tracker_ended(&tr), tr.n);
    tracker_assert_complete(&tr);
    /* Every acknowledged job is in the database, finished. */
    char want[32];
    snprintf(want, sizeof want, "%zu", tr.n);
    char *n = NULL;
    for (int i = 0; i < 100; i++) {
        free(n);
        n = sql1("outage", "SELECT count(*) FROM a2ad_tasks WHERE ended_ms IS NOT NULL");
        if (!strcmp(n, want)) break;
        test_nap_ms(50);
    }
    ck_assert_str_eq(n, want);
    free(n);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
    char *log = daemon_log(&d1);
    ck_assert_ptr_nonnull(strstr(log, "is reachable again"));
    free(log);
    tracker_free(&tr);
}
END_TEST

/* Two nodes on one database. A node's start does not touch the other's
 * jobs; when alpha dies (kill -9) and its lease expires, beta takes its
 * jobs over: the running one fails ("interrupted: node alpha lost"), the
 * rerun_safe one runs again (attempt 2), the queued ones run on beta, and
 * every webhook arrives in order with its stable event id. */
START_TEST(pg_two_nodes_dead_node_jobs_taken_over) {
    REQUIRE_PG();
    char tasks[1000], ta[1200], tb[1200];
    new_db("nodes", tasks, sizeof tasks);
    /* Short, for the test; long enough that a busy machine (sanitizers)
     * renews it in time. */
    snprintf(ta, sizeof ta, "%s\nlease_s = 3", tasks);
    snprintf(tb, sizeof tb, "%s\nlease_s = 3", tasks);
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts a = {.plugins = "processor,rerun", .store = "postgresql",
                            .tasks_extra = ta, .threads = 2, .server_extra = "node_name = alpha",
                            .extra = "[agent.processor]\nstep_ms = 300\n"};
    struct daemon_opts b = a;
    b.tasks_extra = tb;
    b.server_extra = "node_name = beta";
    start_or_fail(&d1, &a);
    char *p = submit(d1.port, "processor", "long", receiver_port(rcv));
    char *r = submit(d1.port, "rerun", "again", receiver_port(rcv));
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(r);
    cJSON *t = get_task(d1.port, "processor", p);
    ck_assert_str_eq(json_str(t, "result.metadata.a2ad.node"), "alpha");
    cJSON_Delete(t);
    struct tracker tr = {0};
    track(&tr, p);
    track(&tr, r);
    /* Queued behind them on alpha (2 workers). */
    for (int i = 0; i < 3; i++) {
        char *q = submit(d1.port, "processor", "queued", receiver_port(rcv));
        ck_assert_ptr_nonnull(q);
        track(&tr, q);
        free(q);
    }
    for (int i = 0; i < 500 && (tr.t[0].max_seq < 3 || tr.t[1].max_seq < 3); i++) {
        test_nap_ms(20);
        tracker_scan(&tr, rcv);
    }
    ck_assert(tr.t[0].max_seq >= 3 && tr.t[1].max_seq >= 3);
    /* beta starts while alpha runs: it recovers nothing of alpha's. */
    start_or_fail(&d2, &b);
    char *log = daemon_log(&d2);
    ck_assert_msg(strstr(log, "store: recovered 0 finished tasks, 0 queued again, 0 re-run"),
                  "beta touched alpha's jobs at its start:\n%s", log);
    free(log);
    ck_assert_uint_eq(tracker_ended(&tr), 0);
    daemon_kill9(&d1);

    ck_assert_msg(tracker_wait_all(&tr, rcv, 60000), "only %zu of %zu jobs ended after the takeover",
                  tracker_ended(&tr), tr.n);
    tracker_assert_complete(&tr);
    ck_assert_str_eq(tr.t[0].terminal, "failed");
    ck_assert_str_eq(tr.t[1].terminal, "completed");
    for (size_t i = 2; i < tr.n; i++) ck_assert_str_eq(tr.t[i].terminal, "completed");
    t = get_task(d2.port, "processor", p);
    ck_assert_str_eq(json_str(t, "result.status.state"), "failed");
    ck_assert_str_eq(json_str(t, "result.status.message.parts.0.text"),
                     "interrupted: node alpha lost");
    ck_assert_str_eq(json_str(t, "result.metadata.a2ad.node"), "beta");
    cJSON_Delete(t);
    t = get_task(d2.port, "rerun", r);
    ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
    const cJSON *attempt = json_at(t, "result.metadata.a2ad.attempt");
    ck_assert(cJSON_IsNumber(attempt));
    ck_assert_int_eq((int)attempt->valuedouble, 2);
    cJSON_Delete(t);
    char *owners = sql1("nodes", "SELECT string_agg(DISTINCT node, ',') FROM a2ad_tasks");
    ck_assert_str_eq(owners, "beta");
    free(owners);
    char *nodes = sql1("nodes", "SELECT string_agg(name, ',') FROM a2ad_nodes");
    ck_assert_str_eq(nodes, "beta");
    free(nodes);
    log = daemon_log(&d2);
    if (!strstr(log, "node alpha lost (its lease expired): node beta took over "))
        fprintf(stderr, "beta's log:\n%s\n", log);
    ck_assert_msg(strstr(log, "node alpha lost (its lease expired): node beta took over "),
                  "beta's log does not tell the takeover (above)");
    free(log);
    free(p);
    free(r);
    tracker_free(&tr);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
}
END_TEST

/* A database of schema version 1 (before nodes) is upgraded at start and
 * its tasks are the starting node's. */
START_TEST(pg_version_1_database_is_upgraded) {
    REQUIRE_PG();
    char tasks[1000];
    new_db("upgrade", tasks, sizeof tasks);
    struct daemon_opts o = {.plugins = "echo", .store = "postgresql", .tasks_extra = tasks};
    start_or_fail(&d1, &o);
    long st = 0;
    cJSON *r = rpc_call(d1.port, "/agents/echo",
                        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{"
                        "\"message\":{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\","
                        "\"parts\":[{\"kind\":\"text\",\"text\":\"old\"}]}}}",
                        &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    char *id = strdup(json_str(r, "result.id"));
    cJSON_Delete(r);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
    /* Back to version 1's shape. */
    free(sql1("upgrade", "ALTER TABLE a2ad_tasks DROP COLUMN node, DROP COLUMN offered;"
                         " DROP TABLE a2ad_controls, a2ad_events;"
                         " ALTER TABLE a2ad_outbox DROP COLUMN node; DROP TABLE a2ad_nodes;"
                         " UPDATE a2ad_schema_version SET version = 1;"));
    o.server_extra = "node_name = upgraded";
    start_or_fail(&d2, &o);
    char *log = daemon_log(&d2);
    ck_assert_msg(strstr(log, "schema version 4 (upgraded)"), "log:\n%s", log);
    free(log);
    cJSON *t = get_task(d2.port, "echo", id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
    cJSON_Delete(t);
    char *v = sql1("upgrade", "SELECT version FROM a2ad_schema_version");
    ck_assert_str_eq(v, "4");
    free(v);
    char *owner = sql1("upgrade", "SELECT node FROM a2ad_tasks");
    ck_assert_str_eq(owner, "upgraded");
    free(owner);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
    free(id);
}
END_TEST

/* Retention: finished tasks leave the database retention_s after they
 * ended, delivered webhooks right away; unfinished ones stay. */
START_TEST(pg_retention_deletes_finished_tasks) {
    REQUIRE_PG();
    char tasks[1000], t2[1100];
    new_db("retention", tasks, sizeof tasks);
    snprintf(t2, sizeof t2, "%s\nretention_s = 1", tasks);
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts o = {.plugins = "echo,processor", .store = "postgresql", .tasks_extra = t2,
                            .extra = "[agent.processor]\nstep_ms = 3000\n"};
    start_or_fail(&d1, &o);
    struct tracker tr = {0};
    for (int i = 0; i < 5; i++) {
        char *id = submit(d1.port, "echo", "x", receiver_port(rcv));
        ck_assert_ptr_nonnull(id);
        track(&tr, id);
        free(id);
    }
    char *slow = submit(d1.port, "processor", "slow", receiver_port(rcv));
    ck_assert_ptr_nonnull(slow);
    ck_assert(tracker_wait_all(&tr, rcv, 20000));
    char *n = NULL;
    for (int i = 0; i < 100; i++) {
        free(n);
        n = sql1("retention", "SELECT count(*) FROM a2ad_tasks");
        if (!strcmp(n, "1")) break;
        test_nap_ms(50);
    }
    ck_assert_str_eq(n, "1"); /* the running one only */
    free(n);
    char *left = sql1("retention", "SELECT id FROM a2ad_tasks");
    ck_assert_str_eq(left, slow);
    free(left);
    /* The finished jobs' webhooks were all delivered: their rows are gone. */
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM a2ad_outbox WHERE task_id IS DISTINCT FROM '%s'",
             slow);
    left = NULL;
    for (int i = 0; i < 100; i++) {
        free(left);
        left = sql1("retention", sql);
        if (!strcmp(left, "0")) break;
        test_nap_ms(50);
    }
    ck_assert_str_eq(left, "0");
    free(left);
    free(slow);
    tracker_free(&tr);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
}
END_TEST

/* A database whose schema a newer a2ad wrote is refused, and left alone. */
START_TEST(pg_newer_schema_is_refused) {
    REQUIRE_PG();
    char tasks[1000];
    new_db("newer", tasks, sizeof tasks);
    free(sql1("newer", "CREATE TABLE a2ad_schema_version (version integer NOT NULL,"
                       " updated_at timestamptz NOT NULL DEFAULT now());"
                       " INSERT INTO a2ad_schema_version (version) VALUES (99);"));
    struct daemon_opts o = {.plugins = "echo", .store = "postgresql", .tasks_extra = tasks};
    ck_assert(!daemon_start(&d1, &o));
    char *log = daemon_log(&d1);
    ck_assert_msg(strstr(log, "schema version 99, written by a newer a2ad"), "log:\n%s", log);
    free(log);
    char *tables = sql1("newer", "SELECT count(*) FROM pg_tables WHERE tablename = 'a2ad_tasks'");
    ck_assert_str_eq(tables, "0");
    free(tables);
}
END_TEST

/* The password works from password_file and from the dsn, and is never
 * shown: not by a2ad -t -v, not in the log. A wrong one stops start-up
 * with libpq's reason. */
START_TEST(pg_password_is_used_and_never_shown) {
    REQUIRE_PG();
    char tasks[1000];
    new_db("secret", tasks, sizeof tasks);
    char uri[400];
    snprintf(uri, sizeof uri, "dsn = postgresql://a2ad:%s@127.0.0.1:%u/secret?connect_timeout=3",
             PG_TEST_PASSWORD, pgtest_srv.port);
    struct daemon_opts o = {.plugins = "echo", .store = "postgresql", .tasks_extra = uri};
    start_or_fail(&d1, &o);
    ck_assert_int_eq(daemon_run_args(&d1, "-tv", 10000), 0);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
    char *log = daemon_log(&d1);
    ck_assert_msg(strstr(log, PG_TEST_PASSWORD) == NULL, "the password is shown:\n%s", log);
    ck_assert_msg(strstr(log, "dsn = postgresql://a2ad:***@127.0.0.1:"), "log:\n%s", log);
    free(log);

    /* password_file (the other tests use it too) */
    o.tasks_extra = tasks;
    start_or_fail(&d2, &o);
    ck_assert_int_eq(daemon_run_args(&d2, "-tv", 10000), 0);
    ck_assert_int_eq(daemon_stop(&d2, 15000), 0);
    log = daemon_log(&d2);
    ck_assert_msg(strstr(log, PG_TEST_PASSWORD) == NULL, "the password is shown:\n%s", log);
    free(log);
    daemon_cleanup(&d2);
    memset(&d2, 0, sizeof d2);

    snprintf(uri, sizeof uri, "dsn = host=127.0.0.1 port=%u dbname=secret user=a2ad "
             "password=wrong-password-123", pgtest_srv.port);
    o.tasks_extra = uri;
    ck_assert(!daemon_start(&d2, &o));
    log = daemon_log(&d2);
    ck_assert_msg(strstr(log, "cannot connect to PostgreSQL") &&
                      strstr(log, "password authentication failed"),
                  "log:\n%s", log);
    ck_assert(strstr(log, "wrong-password-123") == NULL);
    free(log);
}
END_TEST

/* The dsn as a2ad -t -v shows it: every form of password hidden, the rest
 * kept so the operator sees where it points. */
START_TEST(dsn_password_is_masked_in_every_form) {
    static const char *const cases[][2] = {
        {"host=db port=5432 password=s3cret user=a", "host=db port=5432 password=*** user=a"},
        {"password = 's3 cr\\'et' host=db", "password=*** host=db"},
        {"postgresql://a2ad:s3cret@db:5432/a2ad", "postgresql://a2ad:***@db:5432/a2ad"},
        {"postgres://a2ad@db/a2ad?password=s3cret&sslmode=require",
         "postgres://a2ad@db/a2ad?password=***&sslmode=require"},
        {"postgresql://db/a2ad?user=a&password=s3cret", "postgresql://db/a2ad?user=a&password=***"},
        {"host=db dbname=a2ad", "host=db dbname=a2ad"},
        {"postgresql://db:5432/x@y", "postgresql://db:5432/x@y"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        ck_assert_str_eq(config_dsn_masked(cases[i][0], out, sizeof out), cases[i][1]);
        ck_assert_ptr_null(strstr(out, "s3"));
    }
}
END_TEST

/* The SQLite store: a file a newer a2ad wrote is refused and left alone. */
START_TEST(sqlite_newer_schema_is_refused) {
    struct daemon_opts o = {.plugins = "echo"};
    start_or_fail(&d1, &o);
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
    char path[400];
    snprintf(path, sizeof path, "%s/a2ad.db", d1.dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &s, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(s, 0), 3);
    sqlite3_finalize(s);
    ck_assert_int_eq(sqlite3_exec(db, "UPDATE schema_version SET version = 42", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    o.db_path = path;
    ck_assert(!daemon_start(&d2, &o));
    char *log = daemon_log(&d2);
    ck_assert_msg(strstr(log, "has schema version 42, written by a newer a2ad"), "log:\n%s", log);
    free(log);
}
END_TEST

Suite *pg_suite(void);
Suite *pg_suite(void) {
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("postgresql");
    tcase_add_unchecked_fixture(tc, pgtest_suite_setup, pgtest_suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, pg_kill9_mid_run_loses_no_acknowledged_job);
    tcase_add_test(tc, pg_running_jobs_fail_or_run_again_and_push_configs_survive);
    tcase_add_test(tc, pg_stopped_refuses_clearly_and_loses_nothing);
    tcase_add_test(tc, pg_push_config_set_is_committed_before_its_answer);
    tcase_add_test(tc, pg_poison_job_is_not_passed_from_node_to_node_for_ever);
    tcase_add_test(tc, pg_two_nodes_dead_node_jobs_taken_over);
    tcase_add_test(tc, pg_retention_deletes_finished_tasks);
    tcase_add_test(tc, pg_version_1_database_is_upgraded);
    tcase_add_test(tc, pg_newer_schema_is_refused);
    tcase_add_test(tc, pg_password_is_used_and_never_shown);
    suite_add_tcase(s, tc);
    TCase *sq = tcase_create("offline"); /* no PostgreSQL needed */
    tcase_add_checked_fixture(sq, setup, teardown);
    tcase_set_timeout(sq, 60);
    tcase_add_test(sq, sqlite_newer_schema_is_refused);
    tcase_add_test(sq, dsn_password_is_masked_in_every_form);
    suite_add_tcase(s, sq);
    return s;
}
