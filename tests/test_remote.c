/* Every read and control from every node ([tasks] store = postgresql,
 * cluster.c): two nodes on one database that the suite starts itself; a
 * task submitted on alpha is read, listed, canceled, given push configs and
 * streamed through beta, and continued through beta (a blocking send waits
 * for the answer, an inline push config is set on alpha first, a holder
 * that dies ends the wait), and a control to a node that does not answer
 * (SIGSTOP) gets a clear error within [tasks] cluster_timeout_ms.
 *
 * Without PostgreSQL installed the tests are skipped with a loud message,
 * except under CI=true, where they fail. */
#include <check.h>
#include <cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/pgtest.h"
#include "support/receiver.h"
#include "support/sse.h"


static struct daemon_proc a, b;
static struct receiver *rcv;
static bool a_stopped;

static void setup(void) {
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    rcv = NULL;
    a_stopped = false;
}

static void teardown(void) {
    if (a_stopped && a.pid > 0) kill(a.pid, SIGCONT);
    daemon_cleanup(&b);
    daemon_cleanup(&a);
    receiver_stop(rcv);
}

static void start_or_fail(struct daemon_proc *d, const struct daemon_opts *o) {
    if (!daemon_start(d, o)) {
        char *log = daemon_log(d);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

/* Two nodes, alpha (a) and beta (b), on a fresh database `name`. */
static void two_nodes(const char *name, const char *tasks_more, unsigned step_ms, unsigned threads) {
    char sql[200];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s; CREATE DATABASE %s;", name, name);
    char *out = pg_sql(&pgtest_srv, "postgres", sql);
    ck_assert_msg(out != NULL, "cannot create database %s", name);
    free(out);
    char dsn[200];
    pg_dsn(&pgtest_srv, name, dsn, sizeof dsn);
    static char tasks[1200], extra[100];
    snprintf(tasks, sizeof tasks, "dsn = %s\npassword_file = %s\n%s", dsn, pgtest_secret_file,
             tasks_more ? tasks_more : "");
    snprintf(extra, sizeof extra, "[agent.processor]\nstep_ms = %u\n", step_ms);
    struct daemon_opts o = {.plugins = "processor,asker,convo,rerun", .store = "postgresql", .tasks_extra = tasks,
                            .threads = threads, .server_extra = "node_name = alpha",
                            .extra = extra};
    start_or_fail(&a, &o);
    o.server_extra = "node_name = beta";
    start_or_fail(&b, &o);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static cJSON *call_agent(unsigned port, const char *agent, const char *method,
                        const char *params, long *status) {
    char body[2000], path[64];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"%s\",\"params\":%s}",
             method, params);
    snprintf(path, sizeof path, "/agents/%s", agent);
    return rpc_call(port, path, body, status);
}

static cJSON *call(unsigned port, const char *method, const char *params, long *status) {
    return call_agent(port, "processor", method, params, status);
}

/* A job on port with a webhook to the receiver; its id (malloc'd). */
static char *submit(unsigned port, const char *text) {
    char params[600];
    snprintf(params, sizeof params,
             "{\"message\":{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]},\"configuration\":{\"blocking\":"
             "false,\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:%u/hook\","
             "\"token\":\"tok-inline-secret\"}}}",
             text, receiver_port(rcv));
    long st = 0;
    cJSON *o = call(port, "message/send", params, &st);
    ck_assert_msg(st == 200 && cJSON_IsString(json_at(o, "result.id")), "submit: %ld", st);
    char *id = strdup(json_str(o, "result.id"));
    cJSON_Delete(o);
    return id;
}

static cJSON *get03(unsigned port, const char *id) {
    char p[200];
    snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
    return call(port, "tasks/get", p, NULL);
}

/* Wait (bounded) until the task, read on port, is in state. */
static bool wait_state(unsigned port, const char *id, const char *state) {
    for (int i = 0; i < 500; i++) {
        cJSON *t = get03(port, id);
        bool ok = !strcmp(json_str(t, "result.status.state"), state);
        cJSON_Delete(t);
        if (ok) return true;
        test_nap_ms(20);
    }
    return false;
}

/* Both nodes stop cleanly: in sanitizer builds, no leak and no report. */
static void stop_both(void) { pgtest_stop_nodes(&a, &b); }

/* ---- reads -------------------------------------------------------------- */

START_TEST(remote_reads_answer_from_every_node) {
    REQUIRE_PG();
    rcv = receiver_start();
    two_nodes("r_reads", NULL, 1000, 2);
    char *id = submit(a.port, "read me");
    ck_assert(wait_state(a.port, id, "working"));
    /* tasks/get on beta: the row alpha wrote, with alpha named as its node */
    cJSON *t = get03(b.port, id);
    ck_assert_msg(json_at(t, "result") != NULL, "tasks/get on beta: %s", cJSON_PrintUnformatted(t));
    ck_assert_str_eq(json_str(t, "result.id"), id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "working");
    ck_assert_str_eq(json_str(t, "result.metadata.a2ad.node"), "alpha");
    ck_assert_str_eq(json_str(t, "result.history.0.parts.0.text"), "read me");
    cJSON_Delete(t);
    /* GetTask (A2A 1.0) on beta */
    char p[200];
    snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
    t = call(b.port, "GetTask", p, NULL);
    ck_assert_str_eq(json_str(t, "result.id"), id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "TASK_STATE_WORKING");
    cJSON_Delete(t);
    /* ListTasks on beta lists alpha's task, and its own */
    char *mine = submit(b.port, "beta's own");
    t = call(b.port, "ListTasks", "{}", NULL);
    ck_assert_int_eq(json_int(t, "result.totalSize"), 2);
    bool seen_a = false, seen_b = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, json_at(t, "result.tasks")) {
        const char *tid = json_str(e, "id");
        seen_a |= !strcmp(tid, id);
        seen_b |= !strcmp(tid, mine);
    }
    ck_assert(seen_a && seen_b);
    cJSON_Delete(t);
    /* the HTTP+JSON bindings on beta: A2A 1.0 and 0.3 */
    char path[200];
    struct http_resp h;
    snprintf(path, sizeof path, "/agents/processor/tasks/%s", id);
    ck_assert(http_call(b.port, NULL, path, NULL, &h));
    ck_assert_int_eq(h.status, 200);
    t = cJSON_Parse(h.body);
    ck_assert_str_eq(json_str(t, "id"), id);
    ck_assert_str_eq(json_str(t, "status.state"), "TASK_STATE_WORKING");
    cJSON_Delete(t);
    http_resp_free(&h);
    snprintf(path, sizeof path, "/agents/processor/v1/tasks/%s", id);
    ck_assert(http_call(b.port, NULL, path, NULL, &h));
    ck_assert_int_eq(h.status, 200);
    t = cJSON_Parse(h.body);
    ck_assert_str_eq(json_str(t, "id"), id);
    cJSON_Delete(t);
    http_resp_free(&h);
    /* printed, not asserted: what a read through another node costs */
    double ms[2];
    unsigned ports[2] = {a.port, b.port};
    for (int n = 0; n < 2; n++) {
        double t0 = now_ms();
        for (int i = 0; i < 50; i++) cJSON_Delete(get03(ports[n], id));
        ms[n] = (now_ms() - t0) / 50;
    }
    printf("remote: tasks/get of alpha's task: %.2f ms on alpha (memory), %.2f ms on beta (its "
           "row), mean of 50\n", ms[0], ms[1]);
    /* An id no node holds is still not found */
    long st = 0;
    t = call(b.port, "tasks/get", "{\"id\":\"no-such-task\"}", &st);
    ck_assert_int_eq(json_int(t, "error.code"), -32001);
    cJSON_Delete(t);
    free(id);
    free(mine);
    stop_both();
}
END_TEST

/* ---- cancel ------------------------------------------------------------- */

START_TEST(remote_cancel_reaches_the_job_on_its_node) {
    REQUIRE_PG();
    rcv = receiver_start();
    /* one worker, long steps: a second job starts only once the first job
     * has seen its cancel and returned */
    two_nodes("r_cancel", NULL, 2000, 1);
    char *id = submit(a.port, "cancel me");
    char *next = submit(a.port, "after it");
    ck_assert(wait_state(a.port, id, "working"));
    char p[200];
    snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
    long st = 0;
    double t0 = now_ms();
    cJSON *t = call(b.port, "tasks/cancel", p, &st);
    printf("remote: tasks/cancel through beta answered in %.1f ms (the job canceled on alpha, its "
           "row committed)\n", now_ms() - t0);
    ck_assert_msg(st == 200, "cancel on beta: %ld %s", st, cJSON_PrintUnformatted(t));
    ck_assert_str_eq(json_str(t, "result.status.state"), "canceled");
    cJSON_Delete(t);
    /* on alpha, the task is canceled and the job gave its worker back */
    t = get03(a.port, id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "canceled");
    cJSON_Delete(t);
    ck_assert_msg(wait_state(a.port, next, "working"),
                  "the job behind the canceled one never started: the job did not see the cancel");
    /* the webhook says so: a terminal canceled event for the task */
    bool canceled = false;
    for (int i = 0; i < 500 && !canceled; i++) {
        for (size_t k = 0; k < receiver_count(rcv) && !canceled; k++) {
            const struct received *r = receiver_get(rcv, k);
            char *eid = received_header(r, "X-A2A-Event-Id");
            cJSON *o = cJSON_Parse(r->body);
            canceled = eid && !strncmp(eid, id, strlen(id)) &&
                       !strcmp(json_str(o, "status.state"), "canceled");
            free(eid);
            cJSON_Delete(o);
        }
        if (!canceled) test_nap_ms(20);
    }
    ck_assert_msg(canceled, "no webhook said canceled");
    /* a second cancel of the finished task: 0.3 says it cannot be canceled */
    t = call(b.port, "tasks/cancel", p, &st);
    ck_assert_int_eq(json_int(t, "error.code"), -32002);
    ck_assert_ptr_nonnull(strstr(json_str(t, "error.message"), "canceled"));
    cJSON_Delete(t);
    /* 1.0 CancelTask is idempotent: the canceled task, read through beta */
    t = call(b.port, "CancelTask", p, &st);
    ck_assert_str_eq(json_str(t, "result.status.state"), "TASK_STATE_CANCELED");
    cJSON_Delete(t);
    free(id);
    free(next);
    stop_both();
}
END_TEST

/* ---- push configs -------------------------------------------------------- */

START_TEST(remote_push_configs_set_get_list_delete) {
    REQUIRE_PG();
    rcv = receiver_start();
    two_nodes("r_push", NULL, 1000, 2);
    char *id = submit(a.port, "configs");
    char p[600];
    snprintf(p, sizeof p,
             "{\"taskId\":\"%s\",\"pushNotificationConfig\":{\"id\":\"h2\",\"url\":"
             "\"http://127.0.0.1:%u/second\",\"token\":\"tok-second-secret\"}}",
             id, receiver_port(rcv));
    long st = 0;
    cJSON *t = call(b.port, "tasks/pushNotificationConfig/set", p, &st);
    char *text = cJSON_PrintUnformatted(t);
    ck_assert_msg(st == 200 && json_at(t, "result.pushNotificationConfig"), "set on beta: %ld %s", st, text);
    ck_assert_str_eq(json_str(t, "result.pushNotificationConfig.id"), "h2");
    ck_assert_ptr_null(strstr(text, "tok-second-secret"));
    free(text);
    cJSON_Delete(t);
    unsigned ports[2] = {a.port, b.port};
    for (int n = 0; n < 2; n++) {
        snprintf(p, sizeof p, "{\"id\":\"%s\",\"pushNotificationConfigId\":\"h2\"}", id);
        t = call(ports[n], "tasks/pushNotificationConfig/get", p, NULL);
        text = cJSON_PrintUnformatted(t);
        ck_assert_msg(json_at(t, "result") != NULL, "get on node %d: %s", n, text);
        ck_assert_ptr_nonnull(strstr(json_str(t, "result.pushNotificationConfig.url"), "/second"));
        ck_assert_ptr_null(strstr(text, "secret"));
        free(text);
        cJSON_Delete(t);
        snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
        t = call(ports[n], "tasks/pushNotificationConfig/list", p, NULL);
        text = cJSON_PrintUnformatted(t);
        ck_assert_msg(cJSON_GetArraySize(json_at(t, "result")) == 2, "list on node %d: %s", n,
                      text);
        ck_assert_ptr_null(strstr(text, "secret"));
        free(text);
        cJSON_Delete(t);
    }
    /* 1.0 list on beta */
    snprintf(p, sizeof p, "{\"taskId\":\"%s\"}", id);
    t = call(b.port, "ListTaskPushNotificationConfigs", p, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(t, "result.configs")), 2);
    cJSON_Delete(t);
    /* delete on beta: gone on alpha (the holder) and beta */
    snprintf(p, sizeof p, "{\"id\":\"%s\",\"pushNotificationConfigId\":\"h2\"}", id);
    t = call(b.port, "tasks/pushNotificationConfig/delete", p, &st);
    ck_assert_msg(st == 200 && json_at(t, "error") == NULL, "delete on beta: %s",
                  cJSON_PrintUnformatted(t));
    cJSON_Delete(t);
    for (int n = 0; n < 2; n++) {
        snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
        t = call(ports[n], "tasks/pushNotificationConfig/list", p, NULL);
        ck_assert_int_eq(cJSON_GetArraySize(json_at(t, "result")), 1);
        cJSON_Delete(t);
    }
    free(id);
    stop_both();
}
END_TEST

/* ---- streams ------------------------------------------------------------- */

START_TEST(remote_resubscribe_streams_events_in_order) {
    REQUIRE_PG();
    rcv = receiver_start();
    two_nodes("r_stream", NULL, 150, 2);
    char *id = submit(a.port, "stream me");
    ck_assert(wait_state(a.port, id, "working"));
    char body[300];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":\"rs\",\"method\":\"tasks/resubscribe\",\"params\":"
             "{\"id\":\"%s\"}}", id);
    struct sse *s = sse_open(b.port, "/agents/processor", body, NULL);
    ck_assert_ptr_nonnull(s);
    /* and an A2A 1.0 subscriber at the same time */
    char body2[300];
    snprintf(body2, sizeof body2,
             "{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"SubscribeToTask\",\"params\":"
             "{\"id\":\"%s\"}}", id);
    struct sse *s2 = sse_open(b.port, "/agents/processor", body2, NULL);
    ck_assert_int_eq(sse_status(s, 10000), 200);
    unsigned long last_seq = 0;
    int frames = 0, progress = 0, artifacts = 0, finals = 0;
    bool last_final = false;
    char *data = NULL;
    while (frames < 40) {
        int r = sse_next(s, &data, 10000);
        if (r == 0) break;
        ck_assert_msg(r == 1, "the stream broke after %d frames:\n%s", frames, sse_body(s));
        frames++;
        const char *eid = sse_last_id(s);
        const char *dot = strrchr(eid, '.');
        ck_assert_ptr_nonnull(dot);
        unsigned long seq = strtoul(dot + 1, NULL, 10);
        ck_assert_msg(frames == 1 || seq > last_seq, "event %lu after %lu", seq, last_seq);
        last_seq = seq;
        cJSON *f = cJSON_Parse(data);
        free(data);
        data = NULL;
        ck_assert_str_eq(json_str(f, "id"), "rs");
        const char *kind = json_str(f, "result.kind");
        last_final = cJSON_IsTrue(json_at(f, "result.final"));
        if (!strcmp(kind, "status-update")) {
            if (cJSON_IsTrue(json_at(f, "result.final"))) {
                finals++;
                ck_assert_str_eq(json_str(f, "result.status.state"), "completed");
            } else if (json_at(f, "result.status.message")) {
                progress++;
            }
        } else if (!strcmp(kind, "artifact-update")) {
            artifacts++;
        }
        cJSON_Delete(f);
    }
    sse_close(s);
    ck_assert_msg(s2 != NULL && sse_status(s2, 10000) == 200, "SubscribeToTask on beta");
    int frames2 = 0;
    for (; frames2 < 40; frames2++) {
        int r = sse_next(s2, &data, 10000);
        if (r == 0) break;
        ck_assert_msg(r == 1, "the 1.0 stream broke after %d frames:\n%s", frames2, sse_body(s2));
        free(data);
        data = NULL;
    }
    ck_assert_ptr_nonnull(strstr(sse_body(s2), "TASK_STATE_COMPLETED"));
    ck_assert_ptr_nonnull(strstr(sse_body(s2), "statusUpdate"));
    sse_close(s2);
    ck_assert_int_eq(finals, 1);
    ck_assert_int_eq(artifacts, 1);
    /* the progress after the task was first read (it already had some) */
    ck_assert_msg(progress >= 5, "only %d progress events came through beta", progress);
    ck_assert_msg(last_final, "the final event was not the last frame");
    free(id);
    stop_both();
}
END_TEST

/* ---- the next turn of a conversation --------------------------------------- */

/* A task of agent on alpha, sent text without blocking, once beta reads
 * it in state; its id (malloc'd). */
static char *task_on_alpha(const char *agent, const char *text, const char *state) {
    char p[400];
    snprintf(p, sizeof p,
             "{\"message\":{\"kind\":\"message\",\"messageId\":\"m1\",\"role\":\"user\",\"parts\":"
             "[{\"kind\":\"text\",\"text\":\"%s\"}]},\"configuration\":{\"blocking\":false}}", text);
    long st = 0;
    cJSON *t = call_agent(a.port, agent, "message/send", p, &st);
    ck_assert_msg(st == 200 && cJSON_IsString(json_at(t, "result.id")), "send on alpha: %ld", st);
    char *id = strdup(json_str(t, "result.id"));
    cJSON_Delete(t);
    snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
    bool there = false;
    for (int i = 0; i < 500 && !there; i++) {
        t = call_agent(b.port, agent, "tasks/get", p, NULL);
        there = !strcmp(json_str(t, "result.status.state"), state);
        cJSON_Delete(t);
        if (!there) test_nap_ms(20);
    }
    ck_assert_msg(there, "beta never read alpha's task %s as %s", id, state);
    return id;
}

static char *waiting_on_alpha(const char *agent, const char *text) {
    return task_on_alpha(agent, text, "input-required");
}

/* A task of alpha waits for input; the answer is sent through beta as a
 * stream: alpha's job hears it and the stream on beta carries its answer
 * to the end. */
START_TEST(remote_message_continues_a_task_of_another_node) {
    REQUIRE_PG();
    rcv = receiver_start();
    two_nodes("r_turns", NULL, 100, 2);
    char *id = waiting_on_alpha("asker", "hi");
    char p[600];
    snprintf(p, sizeof p,
             "{\"message\":{\"kind\":\"message\",\"messageId\":\"m2\",\"role\":\"user\","
             "\"taskId\":\"%s\",\"parts\":[{\"kind\":\"text\",\"text\":\"Ada\"}]}}", id);
    /* a stream through beta */
    char body[800];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":\"ms\",\"method\":\"message/stream\",\"params\":%s}", p);
    struct sse *s = sse_open(b.port, "/agents/asker", body, NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(sse_status(s, 10000), 200);
    char *data = NULL;
    int frames = 0;
    for (; frames < 20; frames++) {
        int r = sse_next(s, &data, 10000);
        if (r == 0) break;
        ck_assert_msg(r == 1, "the stream broke after %d frames:\n%s", frames, sse_body(s));
        free(data);
        data = NULL;
    }
    ck_assert_msg(strstr(sse_body(s), "Hello, Ada") && strstr(sse_body(s), "\"completed\""),
                  "stream: %s", sse_body(s));
    sse_close(s);
    /* on alpha, the job heard the answer */
    snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
    cJSON *t = call_agent(a.port, "asker", "tasks/get", p, NULL);
    ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
    cJSON_Delete(t);
    free(id);
    stop_both();
}
END_TEST

static const char *const v10[] = {"A2A-Version: 1.0", NULL};

/* A blocking send through beta continuing a task of alpha waits for the
 * answer, as it would on alpha: the task in its next state (input-required
 * again, then completed) with the agent's reply, historyLength honoured;
 * A2A 0.3, 1.0 and both HTTP+JSON bindings. */
START_TEST(remote_blocking_send_answers_with_the_next_state) {
    REQUIRE_PG();
    two_nodes("r_block", NULL, 100, 2);
    char *id = waiting_on_alpha("asker", "twice");
    /* 0.3, blocking by default: the next question */
    char p[800];
    snprintf(p, sizeof p,
             "{\"message\":{\"kind\":\"message\",\"messageId\":\"m2\",\"role\":\"user\",\"taskId\":"
             "\"%s\",\"parts\":[{\"kind\":\"text\",\"text\":\"Ada\"}]},\"configuration\":"
             "{\"historyLength\":2}}", id);
    long st = 0;
    double t0 = now_ms();
    cJSON *t = call_agent(b.port, "asker", "message/send", p, &st);
    double ms = now_ms() - t0;
    char *text = cJSON_PrintUnformatted(t);
    ck_assert_msg(st == 200 && json_at(t, "result"), "blocking send on beta: %ld %s", st, text);
    ck_assert_str_eq(json_str(t, "result.id"), id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "input-required");
    ck_assert_str_eq(json_str(t, "result.status.message.parts.0.text"), "And your surname?");
    ck_assert_msg(cJSON_GetArraySize(json_at(t, "result.history")) == 2, "history: %s", text);
    ck_assert_str_eq(json_str(t, "result.history.0.parts.0.text"), "Ada");
    ck_assert_str_eq(json_str(t, "result.history.1.parts.0.text"), "And your surname?");
    free(text);
    cJSON_Delete(t);
    printf("remote: a blocking message/send through beta answered in %.1f ms (the message "
           "delivered on alpha, the agent's next question in its row)\n", ms);
    /* 1.0 SendMessage (returnImmediately absent: it blocks): the end */
    char body[800];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"SendMessage\",\"params\":{\"message\":"
             "{\"messageId\":\"m3\",\"role\":\"ROLE_USER\",\"taskId\":\"%s\",\"parts\":[{\"text\":"
             "\"Lovelace\"}]}}}", id);
    t = rpc_call_headers(b.port, "/agents/asker", body, v10, &st);
    text = cJSON_PrintUnformatted(t);
    ck_assert_msg(st == 200 && json_at(t, "result.task"), "SendMessage on beta: %ld %s", st, text);
    ck_assert_str_eq(json_str(t, "result.task.status.state"), "TASK_STATE_COMPLETED");
    ck_assert_str_eq(json_str(t, "result.task.status.message.parts.0.text"), "Hello, Ada Lovelace");
    ck_assert_msg(cJSON_GetArraySize(json_at(t, "result.task.history")) == 6, "history: %s", text);
    ck_assert_str_eq(json_str(t, "result.task.history.4.parts.0.text"), "Lovelace");
    ck_assert_str_eq(json_str(t, "result.task.history.5.parts.0.text"), "Hello, Ada Lovelace");
    free(text);
    cJSON_Delete(t);
    /* alpha agrees */
    snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
    t = call_agent(a.port, "asker", "tasks/get", p, NULL);
    ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
    cJSON_Delete(t);
    free(id);
    /* the HTTP+JSON binding (1.0) through beta */
    id = waiting_on_alpha("asker", "hi");
    snprintf(body, sizeof body,
             "{\"message\":{\"messageId\":\"m4\",\"role\":\"ROLE_USER\",\"taskId\":\"%s\",\"parts\""
             ":[{\"text\":\"Grace\"}]}}", id);
    struct http_resp h;
    ck_assert(http_call(b.port, "POST", "/agents/asker/message:send", body, &h));
    t = cJSON_Parse(h.body);
    ck_assert_msg(h.status == 200 && json_at(t, "task"), "message:send on beta: %ld %s", h.status,
                  h.body);
    ck_assert_str_eq(json_str(t, "task.id"), id);
    ck_assert_str_eq(json_str(t, "task.status.state"), "TASK_STATE_COMPLETED");
    ck_assert_str_eq(json_str(t, "task.status.message.parts.0.text"), "Hello, Grace");
    cJSON_Delete(t);
    http_resp_free(&h);
    free(id);
    /* and the 0.3 one (it blocks when asked to) */
    id = waiting_on_alpha("asker", "hi");
    snprintf(body, sizeof body,
             "{\"message\":{\"messageId\":\"m5\",\"role\":\"ROLE_USER\",\"taskId\":\"%s\",\"content\""
             ":[{\"text\":\"Alan\"}]},\"configuration\":{\"blocking\":true}}", id);
    ck_assert(http_call(b.port, "POST", "/agents/asker/v1/message:send", body, &h));
    t = cJSON_Parse(h.body);
    ck_assert_msg(h.status == 200 && json_at(t, "task"), "v1/message:send on beta: %ld %s",
                  h.status, h.body);
    ck_assert_str_eq(json_str(t, "task.status.state"), "TASK_STATE_COMPLETED");
    ck_assert_str_eq(json_str(t, "task.status.message.content.0.text"), "Hello, Alan");
    cJSON_Delete(t);
    http_resp_free(&h);
    free(id);
    stop_both();
}
END_TEST

/* Whether the receiver got, at path with token, an event of task id whose
 * body names state (waits, bounded). */
static bool hook_seen(const char *path, const char *token, const char *id, const char *state) {
    for (int i = 0; i < 500; i++) {
        for (size_t k = 0; k < receiver_count(rcv); k++) {
            const struct received *r = receiver_get(rcv, k);
            char *tok = received_header(r, "X-A2A-Notification-Token");
            bool hit = !strcmp(r->path, path) && tok && !strcmp(tok, token) &&
                       strstr(r->body, id) && strstr(r->body, state);
            free(tok);
            if (hit) return true;
        }
        test_nap_ms(20);
    }
    return false;
}

/* A push config inline in a message through beta continuing a task of
 * alpha is set on alpha before the message: the webhooks of the answer go
 * to it. 0.3 non-blocking (no id: the config is named after its task), then
 * 1.0 blocking with an id. */
START_TEST(remote_send_with_a_push_config_sets_it_on_the_holder) {
    REQUIRE_PG();
    rcv = receiver_start();
    two_nodes("r_push_msg", NULL, 100, 2);
    char *id = waiting_on_alpha("asker", "twice");
    char p[900];
    snprintf(p, sizeof p,
             "{\"message\":{\"kind\":\"message\",\"messageId\":\"m2\",\"role\":\"user\",\"taskId\":"
             "\"%s\",\"parts\":[{\"kind\":\"text\",\"text\":\"Ada\"}]},\"configuration\":"
             "{\"blocking\":false,\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:%u/turn\","
             "\"token\":\"tok-turn-secret\"}}}", id, receiver_port(rcv));
    long st = 0;
    cJSON *t = call_agent(b.port, "asker", "message/send", p, &st);
    char *text = cJSON_PrintUnformatted(t);
    ck_assert_msg(st == 200 && json_at(t, "result.id"), "send on beta: %ld %s", st, text);
    ck_assert_ptr_null(strstr(text, "tok-turn-secret"));
    free(text);
    cJSON_Delete(t);
    ck_assert_msg(hook_seen("/turn", "tok-turn-secret", id, "input-required"),
                  "no webhook with the new config's token for the answer (input-required)");
    /* 1.0, blocking, a named config */
    char body[1000];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"SendMessage\",\"params\":{\"message\":"
             "{\"messageId\":\"m3\",\"role\":\"ROLE_USER\",\"taskId\":\"%s\",\"parts\":[{\"text\":"
             "\"Lovelace\"}]},\"configuration\":{\"taskPushNotificationConfig\":{\"id\":\"second\","
             "\"url\":\"http://127.0.0.1:%u/turn2\",\"token\":\"tok-second-secret\"}}}}",
             id, receiver_port(rcv));
    bool waiting = false; /* the answer to the first message came */
    for (int i = 0; i < 500 && !waiting; i++) {
        snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
        t = call_agent(b.port, "asker", "tasks/get", p, NULL);
        waiting = !strcmp(json_str(t, "result.status.state"), "input-required") &&
                  cJSON_GetArraySize(json_at(t, "result.history")) == 4;
        cJSON_Delete(t);
        if (!waiting) test_nap_ms(20);
    }
    ck_assert(waiting);
    t = rpc_call_headers(b.port, "/agents/asker", body, v10, &st);
    text = cJSON_PrintUnformatted(t);
    ck_assert_msg(st == 200 && json_at(t, "result.task"), "SendMessage on beta: %ld %s", st, text);
    ck_assert_str_eq(json_str(t, "result.task.status.state"), "TASK_STATE_COMPLETED");
    free(text);
    cJSON_Delete(t);
    ck_assert_msg(hook_seen("/turn2", "tok-second-secret", id, "TASK_STATE_COMPLETED"),
                  "no 1.0 webhook with the second config's token for the completion");
    ck_assert_msg(hook_seen("/turn", "tok-turn-secret", id, "completed"),
                  "the first config did not hear the completion");
    /* on the holder: the config named after its task, and "second" */
    snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
    t = call_agent(a.port, "asker", "tasks/pushNotificationConfig/list", p, NULL);
    text = cJSON_PrintUnformatted(t);
    ck_assert_msg(cJSON_GetArraySize(json_at(t, "result")) == 2, "configs on alpha: %s", text);
    ck_assert_ptr_nonnull(strstr(text, "\"second\""));
    char named[80];
    snprintf(named, sizeof named, "\"id\":\"%s\"", id);
    ck_assert_msg(strstr(text, named), "no config named after the task: %s", text);
    ck_assert_ptr_null(strstr(text, "secret"));
    free(text);
    cJSON_Delete(t);
    free(id);
    stop_both();
}
END_TEST

/* A request run on its own thread (a blocking send that waits). */
struct bg_call {
    unsigned port;
    const char *path, *body;
    long status;
    cJSON *out;
    double done_ms;
    atomic_bool done;
    pthread_t th;
};

static void *bg_call_main(void *arg) {
    struct bg_call *c = arg;
    c->out = rpc_call(c->port, c->path, c->body, &c->status);
    c->done_ms = now_ms();
    atomic_store(&c->done, true);
    return NULL;
}

/* A convo task on alpha, working (read through beta); its id (malloc'd). */
static char *convo_on_alpha(void) { return task_on_alpha("convo", "hi", "working"); }

/* A blocking send of text through beta to the task id of agent, on its
 * own thread (body: its buffer); returns once alpha has the message (the
 * row shows `seen`) and the send still waits. */
static void block_through_beta(struct bg_call *bg, const char *agent, const char *id,
                               const char *text, const char *seen, char *body, size_t n) {
    snprintf(body, n,
             "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"message/send\",\"params\":{\"message\":"
             "{\"kind\":\"message\",\"messageId\":\"m2\",\"role\":\"user\",\"taskId\":\"%s\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]}}}", id, text);
    static char path[64];
    snprintf(path, sizeof path, "/agents/%s", agent);
    memset(bg, 0, sizeof *bg);
    bg->port = b.port;
    bg->path = path;
    bg->body = body;
    atomic_init(&bg->done, false);
    ck_assert_int_eq(pthread_create(&bg->th, NULL, bg_call_main, bg), 0);
    char p[200];
    snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
    bool heard = false;
    for (int i = 0; i < 500 && !heard; i++) {
        cJSON *t = call_agent(b.port, agent, "tasks/get", p, NULL);
        char *all = cJSON_PrintUnformatted(t);
        heard = strstr(all, seen) != NULL;
        free(all);
        cJSON_Delete(t);
        if (!heard) test_nap_ms(20);
    }
    test_nap_ms(200);
    bool waits = !atomic_load(&bg->done);
    if (!heard || !waits) {
        pthread_join(bg->th, NULL);
        ck_abort_msg("%s: %s", heard ? "the blocking send did not wait" : "alpha never had it",
                     cJSON_PrintUnformatted(bg->out));
    }
}

/* A blocking send through beta waits on alpha's task; alpha dies (SIGKILL):
 * beta takes the task over after lease_s and fails it (convo is not
 * rerun_safe), and the blocking send ends with that state. */
START_TEST(remote_blocking_send_ends_when_the_holder_dies) {
    REQUIRE_PG();
    two_nodes("r_block_death", "lease_s = 2\n", 100, 2);
    char *id = convo_on_alpha();
    struct bg_call bg;
    char body[800];
    block_through_beta(&bg, "convo", id, "still there?", "heard: still there?", body,
                       sizeof body);
    double kill_ms = now_ms();
    daemon_kill9(&a);
    pthread_join(bg.th, NULL);
    char *text = cJSON_PrintUnformatted(bg.out);
    ck_assert_msg(bg.status == 200 && json_at(bg.out, "result"), "blocking send on beta: %ld %s",
                  bg.status, text);
    ck_assert_str_eq(json_str(bg.out, "result.id"), id);
    ck_assert_str_eq(json_str(bg.out, "result.status.state"), "failed");
    ck_assert_str_eq(json_str(bg.out, "result.status.message.parts.0.text"),
                     "interrupted: node alpha lost");
    printf("remote: a blocking send through beta ended %.0f ms after its holder was killed "
           "(lease_s = 2)\n", bg.done_ms - kill_ms);
    free(text);
    cJSON_Delete(bg.out);
    free(id);
    ck_assert_int_eq(daemon_stop(&b, 15000), 0);
}
END_TEST

/* The same with a rerun_safe agent: the takeover runs the job again on
 * beta, and the blocking send ends with the re-run's completion. */
START_TEST(remote_blocking_send_ends_with_the_rerun_when_the_holder_dies) {
    REQUIRE_PG();
    two_nodes("r_block_rerun", "lease_s = 2\n", 100, 2);
    long st = 0;
    cJSON *t = call_agent(a.port, "rerun", "message/send",
                          "{\"message\":{\"kind\":\"message\",\"messageId\":\"m1\",\"role\":"
                          "\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"job\"}]},"
                          "\"configuration\":{\"blocking\":false}}", &st);
    ck_assert_int_eq(st, 200);
    char *id = strdup(json_str(t, "result.id"));
    cJSON_Delete(t);
    struct bg_call bg;
    char body[800];
    block_through_beta(&bg, "rerun", id, "note", "\"note\"", body, sizeof body);
    double kill_ms = now_ms();
    daemon_kill9(&a);
    pthread_join(bg.th, NULL);
    char *text = cJSON_PrintUnformatted(bg.out);
    ck_assert_msg(bg.status == 200 && json_at(bg.out, "result"), "blocking send on beta: %ld %s",
                  bg.status, text);
    ck_assert_str_eq(json_str(bg.out, "result.status.state"), "completed");
    ck_assert_str_eq(json_str(bg.out, "result.status.message.parts.0.text"), "done: job");
    ck_assert_str_eq(json_str(bg.out, "result.metadata.a2ad.node"), "beta");
    printf("remote: a blocking send through beta ended %.0f ms after its holder was killed, with "
           "the re-run's completion (lease_s = 2, a 2 s job)\n", bg.done_ms - kill_ms);
    free(text);
    cJSON_Delete(bg.out);
    free(id);
    ck_assert_int_eq(daemon_stop(&b, 15000), 0);
}
END_TEST

/* beta stops (SIGTERM) while a blocking send through it waits on alpha's
 * task: the send is answered with the task as its row is (working), as a
 * blocking send on a stopping holder is; beta stops cleanly (sanitizer
 * builds: nothing leaked) and alpha's job goes on. */
START_TEST(remote_blocking_send_answers_when_its_node_stops) {
    REQUIRE_PG();
    two_nodes("r_block_stop", NULL, 100, 2);
    char *id = convo_on_alpha();
    struct bg_call bg;
    char body[800];
    block_through_beta(&bg, "convo", id, "still there?", "heard: still there?", body,
                       sizeof body);
    int rc = daemon_stop(&b, 15000);
    pthread_join(bg.th, NULL);
    char *text = cJSON_PrintUnformatted(bg.out);
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(bg.status == 200 && json_at(bg.out, "result"), "blocking send on beta: %ld %s",
                  bg.status, text);
    ck_assert_str_eq(json_str(bg.out, "result.status.state"), "working");
    ck_assert_str_eq(json_str(bg.out, "result.status.message.parts.0.text"), "heard: still there?");
    free(text);
    cJSON_Delete(bg.out);
    char p[200];
    snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
    cJSON *t = call_agent(a.port, "convo", "tasks/get", p, NULL);
    ck_assert_str_eq(json_str(t, "result.status.state"), "working");
    cJSON_Delete(t);
    free(id);
    ck_assert_int_eq(daemon_stop(&a, 15000), 0);
}
END_TEST

/* ---- the database away ---------------------------------------------------- */

/* While PostgreSQL is stopped, beta answers for alpha's task with 503 and
 * Retry-After naming the cause, and for its own from memory; once it is
 * back, reads come from the row again and a cancel reaches alpha (whose
 * LISTEN connection came back too). */
START_TEST(remote_database_away_answers_503_then_recovers) {
    REQUIRE_PG();
    rcv = receiver_start();
    two_nodes("r_away", NULL, 1000, 2);
    char *id = submit(a.port, "far");
    char *mine = submit(b.port, "near");
    ck_assert(wait_state(a.port, id, "working"));
    ck_assert(pg_stop(&pgtest_srv));
    char body[300];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}",
             id);
    struct http_resp h;
    ck_assert(http_call(b.port, "POST", "/agents/processor", body, &h));
    bool ok503 = h.status == 503 && strcasestr(h.headers, "Retry-After:") &&
                 strstr(h.body, "unreachable");
    char *copy = strdup(h.body);
    http_resp_free(&h);
    cJSON *t = get03(b.port, mine);
    const char *state = json_str(t, "result.status.state");
    bool local_ok = !strcmp(state, "working") || !strcmp(state, "submitted");
    cJSON_Delete(t);
    ck_assert(pg_start(&pgtest_srv));
    ck_assert_msg(ok503, "tasks/get on beta with the database away: %s", copy);
    free(copy);
    ck_assert_msg(local_ok, "beta's own task did not answer from memory");
    /* back: the read works again (the pool reconnects, after its backoff) */
    bool back = false;
    for (int i = 0; i < 500 && !back; i++) {
        t = get03(b.port, id);
        back = json_at(t, "result") != NULL;
        cJSON_Delete(t);
        if (!back) test_nap_ms(20);
    }
    ck_assert_msg(back, "beta never read alpha's task again");
    char p[200];
    snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
    long st = 0;
    bool canceled = false;
    char *last = NULL;
    for (int i = 0; i < 50 && !canceled; i++) {
        t = call(b.port, "tasks/cancel", p, &st);
        /* canceled now, or by an earlier try whose answer was lost (a 503) */
        canceled = (st == 200 && !strcmp(json_str(t, "result.status.state"), "canceled")) ||
                   (json_int(t, "error.code") == -32002 &&
                    strstr(json_str(t, "error.message"), "is canceled"));
        free(last);
        last = cJSON_PrintUnformatted(t);
        cJSON_Delete(t);
        if (!canceled) test_nap_ms(200);
    }
    if (!canceled) {
        char *la = daemon_log(&a), *lb = daemon_log(&b);
        fprintf(stderr, "---- alpha ----\n%s\n---- beta ----\n%s\n----\n", la, lb);
        ck_abort_msg("a cancel through beta never reached alpha after the restart: %.300s", last);
    }
    free(last);
    ck_assert(wait_state(a.port, id, "canceled"));
    free(id);
    free(mine);
    stop_both();
}
END_TEST

/* ---- a holder that does not answer --------------------------------------- */

START_TEST(remote_control_to_a_stopped_node_fails_clearly) {
    REQUIRE_PG();
    rcv = receiver_start();
    two_nodes("r_stopped", "cluster_timeout_ms = 1000\n", 1000, 2);
    char *id = submit(a.port, "frozen");
    ck_assert(wait_state(b.port, id, "working")); /* its row says so */
    ck_assert_int_eq(kill(a.pid, SIGSTOP), 0);
    a_stopped = true;
    char p[200];
    snprintf(p, sizeof p, "{\"id\":\"%s\"}", id);
    long st = 0;
    cJSON *t = call(b.port, "tasks/cancel", p, &st);
    ck_assert_int_eq(st, 503);
    ck_assert_int_eq(json_int(t, "error.code"), -32603);
    const char *m = json_str(t, "error.message");
    ck_assert_msg(strstr(m, "node alpha") && strstr(m, "did not answer within 1000 ms") &&
                      strstr(m, "nothing was done"),
                  "message: %s", m);
    cJSON_Delete(t);
    /* reads still answer from the row */
    t = get03(b.port, id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "working");
    cJSON_Delete(t);
    ck_assert_int_eq(kill(a.pid, SIGCONT), 0);
    a_stopped = false;
    /* the withdrawn cancel is not done later behind the caller's back */
    test_nap_ms(700);
    t = get03(a.port, id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "working");
    cJSON_Delete(t);
    free(id);
    stop_both();
}
END_TEST

Suite *remote_suite(void);
Suite *remote_suite(void) {
    Suite *s = suite_create("remote");
    TCase *tc = tcase_create("two nodes");
    tcase_add_unchecked_fixture(tc, pgtest_suite_setup, pgtest_suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, remote_reads_answer_from_every_node);
    tcase_add_test(tc, remote_cancel_reaches_the_job_on_its_node);
    tcase_add_test(tc, remote_push_configs_set_get_list_delete);
    tcase_add_test(tc, remote_resubscribe_streams_events_in_order);
    tcase_add_test(tc, remote_control_to_a_stopped_node_fails_clearly);
    tcase_add_test(tc, remote_database_away_answers_503_then_recovers);
    tcase_add_test(tc, remote_message_continues_a_task_of_another_node);
    tcase_add_test(tc, remote_blocking_send_answers_with_the_next_state);
    tcase_add_test(tc, remote_send_with_a_push_config_sets_it_on_the_holder);
    tcase_add_test(tc, remote_blocking_send_ends_when_the_holder_dies);
    tcase_add_test(tc, remote_blocking_send_ends_with_the_rerun_when_the_holder_dies);
    tcase_add_test(tc, remote_blocking_send_answers_when_its_node_stops);
    suite_add_tcase(s, tc);
    return s;
}
