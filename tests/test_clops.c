/* Operators see the whole cluster ([tasks] store = postgresql, several
 * nodes): through beta, the admin API lists alpha's tasks with their node,
 * reads one and cancels alpha's running job; /admin/v1/nodes lists both
 * nodes; /metrics counts the controls beta sent and alpha ran, the streams
 * beta follows and the live nodes; a2ctl list shows the node column. A
 * node alone (SQLite) has none of it.
 *
 * Without PostgreSQL installed the PostgreSQL tests are skipped with a loud
 * message, except under CI=true, where they fail. */
#include <check.h>
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/pgtest.h"
#include "support/sse.h"

Suite *clops_suite(void);

#define ADMIN_TOKEN "clops-admin-token-0123456789abcdef"
#define AUTH "Authorization: Bearer " ADMIN_TOKEN

static struct daemon_proc a, b;

static void setup(void) {
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
}

static void teardown(void) {
    daemon_cleanup(&b);
    daemon_cleanup(&a);
}

static void start_or_fail(struct daemon_proc *d, const struct daemon_opts *o) {
    if (!daemon_start(d, o)) {
        char *log = daemon_log(d);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

/* Two nodes, alpha (a) and beta (b), with an admin token, on a fresh
 * database `name`. */
static void two_nodes(const char *name, unsigned step_ms, unsigned threads) {
    static char tasks[1200], extra[100];
    pgtest_new_db(name, "lease_s = 2\n", tasks, sizeof tasks);
    snprintf(extra, sizeof extra, "[agent.processor]\nstep_ms = %u\n", step_ms);
    struct daemon_opts o = {.plugins = "processor", .store = "postgresql", .tasks_extra = tasks,
                            .threads = threads,
                            .server_extra = "node_name = alpha\nadmin_tokens = " ADMIN_TOKEN "\n",
                            .extra = extra};
    start_or_fail(&a, &o);
    o.server_extra = "node_name = beta\nadmin_tokens = " ADMIN_TOKEN "\n";
    start_or_fail(&b, &o);
}

static void stop_both(void) { pgtest_stop_nodes(&a, &b); }

/* A job on port; its id (malloc'd). */
static char *submit(unsigned port, const char *text) {
    char body[600];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
             "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":"
             "\"text\",\"text\":\"%s\"}]},\"configuration\":{\"blocking\":false}}}",
             text);
    long st = 0;
    cJSON *o = rpc_call(port, "/agents/processor", body, &st);
    ck_assert_msg(st == 200 && cJSON_IsString(json_at(o, "result.id")), "submit: %ld", st);
    char *id = strdup(json_str(o, "result.id"));
    cJSON_Delete(o);
    return id;
}

static bool wait_state(unsigned port, const char *id, const char *state) {
    char body[300];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}",
             id);
    for (int i = 0; i < 500; i++) {
        cJSON *t = rpc_call(port, "/agents/processor", body, NULL);
        bool ok = !strcmp(json_str(t, "result.status.state"), state);
        cJSON_Delete(t);
        if (ok) return true;
        test_nap_ms(20);
    }
    return false;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* An admin call: the parsed answer (NULL if not JSON), its status. */
static cJSON *admin(unsigned port, const char *method, const char *path, long *status) {
    static const char *const h[] = {AUTH, NULL};
    struct http_resp r;
    ck_assert(http_call_headers(port, method, path, strcmp(method, "POST") ? NULL : "", h, &r));
    *status = r.status;
    cJSON *o = cJSON_Parse(r.body);
    http_resp_free(&r);
    return o;
}

/* The entry of tasks[] with id, or NULL. */
static const cJSON *task_in(const cJSON *list, const char *id) {
    const cJSON *e;
    cJSON_ArrayForEach(e, json_at(list, "tasks")) if (!strcmp(json_str(e, "id"), id)) return e;
    return NULL;
}

/* The value of the sample `series` (name{labels}) on port's /metrics; -1
 * when there is no such sample. */
static double metric(unsigned port, const char *series) {
    struct http_resp r;
    ck_assert(http_call(port, NULL, "/metrics", NULL, &r));
    ck_assert_int_eq(r.status, 200);
    double v = -1;
    size_t n = strlen(series);
    for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
    http_resp_free(&r);
    return v;
}

/* Wait (bounded) until the sample has value want. */
static bool wait_metric(unsigned port, const char *series, double want) {
    for (int i = 0; i < 150; i++) {
        if (metric(port, series) == want) return true;
        test_nap_ms(50);
    }
    return false;
}

static int a2ctl(unsigned port, const char *args, char **out) {
    char bin[512], cmd[2048];
    build_path("a2ctl", bin, sizeof bin);
    snprintf(cmd, sizeof cmd,
             "env -u A2CTL_TOKEN timeout 60 %s --url http://127.0.0.1:%u --token %s %s "
             "</dev/null 2>&1",
             bin, port, ADMIN_TOKEN, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (len + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(clops_admin_lists_and_reads_the_tasks_of_every_node) {
    REQUIRE_PG();
    two_nodes("clops_list", 1000, 2);
    char *id = submit(a.port, "list me");
    char *mine = submit(b.port, "beta's own");
    ck_assert(wait_state(a.port, id, "working"));
    ck_assert(wait_state(b.port, mine, "working"));
    /* the live nodes are counted once a second */
    long st = 0;
    cJSON *l = NULL;
    for (int i = 0; i < 100; i++) {
        cJSON_Delete(l);
        l = admin(b.port, "GET", "/admin/v1/tasks", &st);
        ck_assert_int_eq(st, 200);
        if (json_int(l, "nodes") == 2) break;
        test_nap_ms(50);
    }
    ck_assert_msg(json_int(l, "nodes") == 2, "nodes: %s", cJSON_PrintUnformatted(l));
    ck_assert_int_eq(json_int(l, "total"), 2);
    const cJSON *e = task_in(l, id);
    ck_assert_msg(e != NULL, "alpha's task is not in beta's list: %s", cJSON_PrintUnformatted(l));
    ck_assert_str_eq(json_str(e, "node"), "alpha");
    ck_assert_str_eq(json_str(e, "agent"), "processor");
    ck_assert_str_eq(json_str(e, "state"), "working");
    e = task_in(l, mine);
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(json_str(e, "node"), "beta");
    cJSON_Delete(l);
    /* the filters apply to the other node's tasks too */
    l = admin(b.port, "GET", "/admin/v1/tasks?state=working&agent=processor&limit=1", &st);
    ck_assert_int_eq(st, 200);
    ck_assert_int_eq(json_int(l, "total"), 2);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(l, "tasks")), 1);
    cJSON_Delete(l);
    l = admin(b.port, "GET", "/admin/v1/tasks?state=completed", &st);
    ck_assert_int_eq(json_int(l, "total"), 0);
    cJSON_Delete(l);
    /* the agents' counts are the cluster's */
    l = admin(b.port, "GET", "/admin/v1/agents", &st);
    ck_assert_int_eq(st, 200);
    ck_assert_int_eq(json_int(l, "agents.0.tasks.working"), 2);
    cJSON_Delete(l);

    /* one task of alpha, read through beta: from its row */
    char path[200];
    snprintf(path, sizeof path, "/admin/v1/tasks/%s", id);
    cJSON *t = admin(b.port, "GET", path, &st);
    ck_assert_msg(st == 200, "%ld %s", st, cJSON_PrintUnformatted(t));
    ck_assert_str_eq(json_str(t, "summary.id"), id);
    ck_assert_str_eq(json_str(t, "summary.node"), "alpha");
    ck_assert_str_eq(json_str(t, "task.id"), id);
    ck_assert_str_eq(json_str(t, "task.history.0.parts.0.text"), "list me");
    ck_assert(cJSON_IsNull(json_at(t, "webhooks"))); /* they are alpha's */
    cJSON_Delete(t);
    /* its webhook events are alpha's to list: the error says where */
    snprintf(path, sizeof path, "/admin/v1/tasks/%s/webhooks", id);
    t = admin(b.port, "GET", path, &st);
    ck_assert_int_eq(st, 409);
    ck_assert_msg(strstr(json_str(t, "error"), "held by node alpha"), "%s", json_str(t, "error"));
    cJSON_Delete(t);
    t = admin(b.port, "GET", "/admin/v1/tasks/no-such-task", &st);
    ck_assert_int_eq(st, 404);
    cJSON_Delete(t);

    /* the nodes */
    cJSON *n = admin(b.port, "GET", "/admin/v1/nodes", &st);
    ck_assert_msg(st == 200, "%ld %s", st, cJSON_PrintUnformatted(n));
    ck_assert_int_eq(cJSON_GetArraySize(json_at(n, "nodes")), 2);
    ck_assert_int_eq(json_int(n, "live"), 2);
    ck_assert_str_eq(json_str(n, "nodes.0.name"), "alpha");
    ck_assert_str_eq(json_str(n, "nodes.1.name"), "beta");
    ck_assert(cJSON_IsFalse(json_at(n, "nodes.0.self")));
    ck_assert(cJSON_IsTrue(json_at(n, "nodes.1.self")));
    for (int i = 0; i < 2; i++) {
        char k[40];
        snprintf(k, sizeof k, "nodes.%d.live", i);
        ck_assert(cJSON_IsTrue(json_at(n, k)));
        snprintf(k, sizeof k, "nodes.%d.tasks", i);
        ck_assert_int_eq(json_int(n, k), 1);
        snprintf(k, sizeof k, "nodes.%d.activeTasks", i);
        ck_assert_int_eq(json_int(n, k), 1);
        snprintf(k, sizeof k, "nodes.%d.leaseLeftMs", i);
        ck_assert_msg(json_int(n, k) > 0 && json_int(n, k) <= 2000, "%s", cJSON_PrintUnformatted(n));
        snprintf(k, sizeof k, "nodes.%d.leaseAgeMs", i);
        ck_assert(json_int(n, k) >= 0 && json_int(n, k) < 2000);
        snprintf(k, sizeof k, "nodes.%d.freeWorkers", i);
        ck_assert(cJSON_IsNumber(json_at(n, k)));
        snprintf(k, sizeof k, "nodes.%d.freeWorkersByAgent", i);
        ck_assert(cJSON_IsObject(json_at(n, k)));
    }
    cJSON_Delete(n);

    /* printed, not asserted: what the admin API costs across nodes */
    const char *what[3] = {path, "/admin/v1/tasks", "/admin/v1/nodes"};
    snprintf(path, sizeof path, "/admin/v1/tasks/%s", id);
    for (int w = 0; w < 3; w++) {
        double ms[2];
        unsigned ports[2] = {a.port, b.port};
        for (int k = 0; k < 2; k++) {
            double t0 = now_ms();
            for (int i = 0; i < 50; i++) cJSON_Delete(admin(ports[k], "GET", what[w], &st));
            ms[k] = (now_ms() - t0) / 50;
        }
        printf("clops: GET %s: %.2f ms on alpha, %.2f ms on beta, mean of 50\n",
               w ? what[w] : "/admin/v1/tasks/ID (alpha's)", ms[0], ms[1]);
    }

    /* a2ctl list through beta: a NODE column */
    char *out;
    ck_assert_int_eq(a2ctl(b.port, "list", &out), 0);
    ck_assert_msg(strstr(out, "NODE"), "%s", out);
    char *line = strstr(out, id);
    ck_assert_ptr_nonnull(line);
    ck_assert_msg(!strncmp(line + 36, "  processor   alpha", 19), "%s", out);
    free(out);
    free(id);
    free(mine);
    stop_both();
}
END_TEST

START_TEST(clops_admin_cancels_through_another_node_and_metrics_count_it) {
    REQUIRE_PG();
    /* one worker, long steps: the job runs until it sees the cancel */
    two_nodes("clops_cancel", 2000, 1);
    char *id = submit(a.port, "cancel me");
    ck_assert(wait_state(a.port, id, "working"));
    ck_assert(wait_metric(b.port, "a2ad_cluster_controls_total{kind=\"cancel\",outcome=\"done\"}", 0));
    char path[200];
    snprintf(path, sizeof path, "/admin/v1/tasks/%s/cancel", id);
    long st = 0;
    double t0 = now_ms();
    cJSON *t = admin(b.port, "POST", path, &st);
    printf("clops: admin cancel of alpha's job through beta answered in %.1f ms\n", now_ms() - t0);
    ck_assert_msg(st == 200, "%ld %s", st, cJSON_PrintUnformatted(t));
    ck_assert_str_eq(json_str(t, "summary.id"), id);
    ck_assert_str_eq(json_str(t, "summary.state"), "canceled");
    ck_assert_str_eq(json_str(t, "summary.node"), "alpha");
    ck_assert_str_eq(json_str(t, "summary.agent"), "processor");
    cJSON_Delete(t);
    /* on alpha, which runs it, the task is canceled */
    ck_assert(wait_state(a.port, id, "canceled"));
    /* again: 409, it ended */
    t = admin(b.port, "POST", path, &st);
    ck_assert_int_eq(st, 409);
    ck_assert_msg(strstr(json_str(t, "error"), "is canceled and cannot be canceled"), "%s",
                  json_str(t, "error"));
    cJSON_Delete(t);
    /* GET is not a cancel */
    t = admin(b.port, "GET", path, &st);
    ck_assert_int_eq(st, 405);
    cJSON_Delete(t);

    /* beta sent two cancels (done, refused), alpha ran them */
    ck_assert_int_eq((int)metric(b.port, "a2ad_cluster_controls_total{kind=\"cancel\",outcome=\"done\"}"), 1);
    ck_assert_int_eq((int)metric(b.port, "a2ad_cluster_controls_total{kind=\"cancel\",outcome=\"refused\"}"), 1);
    ck_assert_int_eq((int)metric(b.port, "a2ad_cluster_control_seconds_count{kind=\"cancel\"}"), 2);
    ck_assert_int_eq((int)metric(a.port, "a2ad_cluster_controls_served_total{kind=\"cancel\"}"), 2);
    ck_assert_int_eq((int)metric(b.port, "a2ad_cluster_controls_served_total{kind=\"cancel\"}"), 0);
    ck_assert_int_eq((int)metric(a.port, "a2ad_cluster_controls_total{kind=\"cancel\",outcome=\"done\"}"), 0);
    ck_assert(wait_metric(a.port, "a2ad_cluster_nodes", 2));
    ck_assert(wait_metric(b.port, "a2ad_cluster_nodes", 2));

    /* a stream on beta of a job of alpha: a watch sent, a remote stream open */
    char *next = submit(a.port, "stream me");
    ck_assert(wait_state(a.port, next, "working"));
    char body[300];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":\"rs\",\"method\":\"tasks/resubscribe\",\"params\":"
             "{\"id\":\"%s\"}}", next);
    struct sse *s = sse_open(b.port, "/agents/processor", body, NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(sse_status(s, 10000), 200);
    char *data = NULL;
    ck_assert_int_eq(sse_next(s, &data, 10000), 1);
    free(data);
    ck_assert_int_eq((int)metric(b.port, "a2ad_cluster_remote_streams"), 1);
    ck_assert_int_eq((int)metric(a.port, "a2ad_cluster_remote_streams"), 0);
    ck_assert_int_eq((int)metric(b.port, "a2ad_cluster_controls_total{kind=\"watch\",outcome=\"done\"}"), 1);
    ck_assert_int_eq((int)metric(a.port, "a2ad_cluster_controls_served_total{kind=\"watch\"}"), 1);
    sse_close(s);
    ck_assert(wait_metric(b.port, "a2ad_cluster_remote_streams", 0));
    free(next);
    free(id);
    stop_both();
}
END_TEST

/* alpha dies (SIGKILL) with a job running: once beta took it over (lease_s
 * = 2), beta's admin API shows the task failed and held by beta, alpha is
 * gone from the nodes, and the live nodes gauge says 1. */
START_TEST(clops_a_dead_nodes_tasks_show_their_new_holder) {
    REQUIRE_PG();
    two_nodes("clops_dead", 1000, 1);
    char *id = submit(a.port, "orphan me");
    ck_assert(wait_state(a.port, id, "working"));
    ck_assert(wait_metric(b.port, "a2ad_cluster_nodes", 2));
    daemon_kill9(&a);
    char path[200];
    snprintf(path, sizeof path, "/admin/v1/tasks/%s", id);
    long st = 0;
    cJSON *t = NULL;
    for (int i = 0; i < 300; i++) { /* the lease (2 s), then the takeover's half lease */
        cJSON_Delete(t);
        t = admin(b.port, "GET", path, &st);
        ck_assert_int_eq(st, 200);
        if (!strcmp(json_str(t, "summary.node"), "beta")) break;
        test_nap_ms(50);
    }
    ck_assert_msg(!strcmp(json_str(t, "summary.node"), "beta"), "not taken over: %s",
                  cJSON_PrintUnformatted(t));
    ck_assert_str_eq(json_str(t, "summary.state"), "failed");
    ck_assert_str_eq(json_str(t, "summary.message"), "interrupted: node alpha lost");
    ck_assert(cJSON_IsObject(json_at(t, "webhooks"))); /* beta's own now */
    cJSON_Delete(t);
    cJSON *l = admin(b.port, "GET", "/admin/v1/tasks", &st);
    const cJSON *e = task_in(l, id);
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(json_str(e, "node"), "beta");
    cJSON_Delete(l);
    cJSON *n = admin(b.port, "GET", "/admin/v1/nodes", &st);
    ck_assert_int_eq(st, 200);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(n, "nodes")), 1);
    ck_assert_str_eq(json_str(n, "nodes.0.name"), "beta");
    ck_assert_int_eq(json_int(n, "nodes.0.tasks"), 1);
    ck_assert_int_eq(json_int(n, "nodes.0.activeTasks"), 0);
    cJSON_Delete(n);
    ck_assert(wait_metric(b.port, "a2ad_cluster_nodes", 1));
    free(id);
    ck_assert_int_eq(daemon_stop(&b, 15000), 0);
}
END_TEST

START_TEST(clops_a_node_alone_shows_no_cluster) {
    struct daemon_opts o = {.plugins = "processor",
                            .server_extra = "admin_tokens = " ADMIN_TOKEN "\n",
                            .extra = "[agent.processor]\nstep_ms = 5\n"};
    start_or_fail(&a, &o);
    char *id = submit(a.port, "alone");
    long st = 0;
    cJSON *n = admin(a.port, "GET", "/admin/v1/nodes", &st);
    ck_assert_int_eq(st, 404);
    ck_assert_msg(strstr(json_str(n, "error"), "no other nodes"), "%s", json_str(n, "error"));
    cJSON_Delete(n);
    cJSON *l = admin(a.port, "GET", "/admin/v1/tasks", &st);
    ck_assert_int_eq(st, 200);
    ck_assert_ptr_null(json_at(l, "nodes"));
    const cJSON *e = task_in(l, id);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_null(json_at(e, "node"));
    cJSON_Delete(l);
    ck_assert(metric(a.port, "a2ad_cluster_nodes") < 0);
    ck_assert(metric(a.port, "a2ad_tasks") >= 1); /* the parser finds what is there */
    char *out;
    ck_assert_int_eq(a2ctl(a.port, "list", &out), 0);
    ck_assert_ptr_null(strstr(out, "NODE"));
    ck_assert_ptr_nonnull(strstr(out, id));
    free(out);
    free(id);
    ck_assert_int_eq(daemon_stop(&a, 15000), 0);
}
END_TEST

Suite *clops_suite(void) {
    Suite *s = suite_create("clops");
    TCase *tc = tcase_create("operators");
    tcase_add_unchecked_fixture(tc, pgtest_suite_setup, pgtest_suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, clops_admin_lists_and_reads_the_tasks_of_every_node);
    tcase_add_test(tc, clops_admin_cancels_through_another_node_and_metrics_count_it);
    tcase_add_test(tc, clops_a_dead_nodes_tasks_show_their_new_holder);
    tcase_add_test(tc, clops_a_node_alone_shows_no_cluster);
    suite_add_tcase(s, tc);
    return s;
}
