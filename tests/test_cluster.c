/* Three a2ad nodes on one PostgreSQL (a real server the suite starts, as
 * test_pg.c does), one of them killed with SIGKILL while 2,000 jobs run:
 * the promise of issue 14 to an operator who runs several nodes.
 *
 * The agent (tests/plugins/ledger.c) is rerun_safe and writes every run of
 * every job (task, node, pid, attempt, monotonic time) to one ledger file
 * with O_APPEND. Clients submit round-robin over the three nodes from
 * several threads, each job with a webhook to one real receiver; a client
 * whose node is gone sends the job to the next node, as a load balancer
 * would. The kill lands while jobs run; lease_s = 2, so a survivor takes
 * the dead node's jobs over a few seconds later. Then:
 * - every acknowledged job has exactly one terminal state: one terminal
 *   webhook event (repeats of one event id allowed: at-least-once), its
 *   row in a2ad_tasks finished and held by a survivor, and tasks/get on
 *   its holder answering that state;
 * - every task's webhook events arrive in event-id order, none missing;
 * - a job ran twice only if it was running on the killed node at the kill
 *   (started there, its row not finished when the node died), and its
 *   second run began after the kill, on a survivor (attempt 2).
 *
 * The test asks the node that holds a task (the row's node), so it holds
 * whether or not nodes share work or answer for each other's tasks.
 * Without PostgreSQL installed it is skipped loudly, except under CI=true. */
#include <check.h>
#include <cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/pgtest.h"
#include "support/receiver.h"

enum { NODES = 3, VICTIM = 1, JOBS = 2000, CLIENTS = 6, RUN_MS = 30, WORKERS = 4 };


static struct daemon_proc node[NODES];
static struct receiver *rcv;
static char work[64];

static void setup(void) {
    memset(node, 0, sizeof node);
    rcv = NULL;
    work[0] = '\0';
}

static void teardown(void) {
    for (int i = 0; i < NODES; i++) daemon_cleanup(&node[i]);
    receiver_stop(rcv);
    if (work[0] && !getenv("A2AD_KEEP_TEST_DIRS")) {
        char cmd[120];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
        if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", work);
    }
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static char *sql_all(const char *sql) {
    char *out = pg_sql(&pgtest_srv, "cluster", sql);
    ck_assert_msg(out != NULL, "SQL failed: %s", sql);
    return out;
}

/* ---- the jobs: submitted round-robin by several client threads ---- */

struct job {
    char id[48];   /* the task id of the acknowledgement, "" if none */
    int accepted;  /* the node that acknowledged it */
    int tries;
};

static struct job jobs[JOBS];
static atomic_int next_job, acked, not_acked;
static atomic_bool victim_dead;
static unsigned hook_port;

/* message/send without blocking, webhook to the receiver: the task id on
 * an acknowledgement. */
static bool submit(unsigned port, int i, char *id, size_t n) {
    char body[1024];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"message/send\",\"params\":{"
             "\"message\":{\"kind\":\"message\",\"messageId\":\"m%d\",\"role\":\"user\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"job %d\"}]},"
             "\"configuration\":{\"blocking\":false,\"pushNotificationConfig\":"
             "{\"url\":\"http://127.0.0.1:%u/hook\"}}}}",
             i, i, i, hook_port);
    long st = 0;
    cJSON *o = rpc_call(port, "/agents/ledger", body, &st);
    bool ok = st == 200 && cJSON_IsString(json_at(o, "result.id"));
    if (ok) snprintf(id, n, "%s", json_str(o, "result.id"));
    cJSON_Delete(o);
    return ok;
}

/* Job i goes to node i % 3; when that node does not acknowledge it (dead,
 * or 503), to the next one, a bounded number of rounds. */
static void *client_run(void *arg) {
    (void)arg;
    for (;;) {
        int i = atomic_fetch_add(&next_job, 1);
        if (i >= JOBS) return NULL;
        struct job *j = &jobs[i];
        bool ok = false;
        for (int t = 0; t < 5 * NODES && !ok; t++) {
            int k = (i + t) % NODES;
            if (k == VICTIM && atomic_load(&victim_dead)) continue;
            j->tries++;
            ok = submit(node[k].port, i, j->id, sizeof j->id);
            if (ok) j->accepted = k;
            else if (t % NODES == NODES - 1) test_nap_ms(100);
        }
        atomic_fetch_add(ok ? &acked : &not_acked, 1);
    }
}

/* ---- webhooks: every task's events, by event id TASKID.SEQ.N ---- */

struct tracked {
    char id[48];
    uint64_t seen;
    unsigned max_seq, terminal_seq, terminals, out_of_order, repeats;
};

static struct tracked tr[JOBS];
static size_t tr_scanned, foreign_posts;

static int by_id(const void *a, const void *b) {
    return strcmp(((const struct tracked *)a)->id, ((const struct tracked *)b)->id);
}

static struct tracked *tracked_find(const char *id) {
    struct tracked key;
    snprintf(key.id, sizeof key.id, "%s", id);
    return bsearch(&key, tr, JOBS, sizeof tr[0], by_id);
}

static bool terminal_state(const char *s) {
    return !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "canceled") ||
           !strcmp(s, "rejected");
}

static void tracker_scan(void) {
    for (;;) {
        const struct received *rec = receiver_get(rcv, tr_scanned);
        if (!rec) break;
        tr_scanned++;
        char *eid = received_header(rec, "X-A2A-Event-Id");
        ck_assert_msg(eid != NULL, "a webhook without X-A2A-Event-Id");
        char *dot = strchr(eid, '.');
        ck_assert_msg(dot != NULL, "event id %s is not TASKID.SEQ.N", eid);
        *dot = '\0';
        unsigned seq = (unsigned)strtoul(dot + 1, NULL, 10);
        struct tracked *t = tracked_find(eid);
        free(eid);
        /* A job a client sent to the victim as it died may have been
         * written there without an answer: it runs, nobody tracks it. */
        if (!t) {
            foreign_posts++;
            continue;
        }
        ck_assert_msg(seq >= 2 && seq < 64, "task %s: event number %u", t->id, seq);
        if (t->seen & (UINT64_C(1) << seq)) { /* a repeat: allowed, at-least-once */
            t->repeats++;
            continue;
        }
        if (seq < t->max_seq) t->out_of_order++;
        if (seq > t->max_seq) t->max_seq = seq;
        t->seen |= UINT64_C(1) << seq;
        cJSON *o = cJSON_Parse(rec->body);
        if (terminal_state(json_str(o, "status.state"))) {
            t->terminals++;
            t->terminal_seq = seq;
        }
        cJSON_Delete(o);
    }
}

static size_t tracker_ended(void) {
    size_t n = 0;
    for (size_t i = 0; i < JOBS; i++) n += tr[i].terminal_seq != 0;
    return n;
}

/* ---- the ledger: every run of every job ---- */

struct run {
    char task[48], node[16];
    long pid;
    unsigned attempt;
    uint64_t start_ns;
    bool ended;
};

struct ledger {
    struct run *r;
    size_t n;
};

static int run_by_task(const void *a, const void *b) {
    const struct run *x = a, *y = b;
    int c = strcmp(x->task, y->task);
    if (c) return c;
    return x->start_ns < y->start_ns ? -1 : x->start_ns > y->start_ns;
}

/* The runs, sorted by task then start; an "end" line marks its run. */
static void ledger_read(const char *path, struct ledger *l) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no ledger at %s", path);
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char what[8], task[48], nd[16];
        long pid;
        unsigned attempt;
        unsigned long long ns;
        ck_assert_msg(sscanf(line, "%7s %47s %15s %ld %u %llu", what, task, nd, &pid, &attempt,
                             &ns) == 6,
                      "ledger line: %s", line);
        if (!strcmp(what, "start")) {
            l->r = realloc(l->r, (l->n + 1) * sizeof *l->r);
            struct run *r = &l->r[l->n++];
            memset(r, 0, sizeof *r);
            snprintf(r->task, sizeof r->task, "%s", task);
            snprintf(r->node, sizeof r->node, "%s", nd);
            r->pid = pid;
            r->attempt = attempt;
            r->start_ns = ns;
        } else {
            ck_assert_str_eq(what, "end");
            bool found = false;
            for (size_t i = l->n; i-- > 0 && !found;)
                if (!strcmp(l->r[i].task, task) && l->r[i].pid == pid &&
                    l->r[i].attempt == attempt && !l->r[i].ended)
                    l->r[i].ended = found = true;
            ck_assert_msg(found, "ledger: an end without a start: %s", line);
        }
    }
    fclose(f);
    qsort(l->r, l->n, sizeof *l->r, run_by_task);
}

static bool in_list(const char *list, const char *id) {
    size_t n = strlen(id);
    for (const char *p = list; (p = strstr(p, id)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0' || p[n] == '\n'))
            return true;
    return false;
}

/* The value of a /metrics sample (the line starting "series "), -1 if none. */
static double sample(const char *page, const char *series) {
    size_t n = strlen(series);
    for (const char *p = page; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
    return -1;
}

/* ---- the test ---- */

START_TEST(cluster_three_nodes_one_killed_every_job_ends_once) {
    REQUIRE_PG();
    char *out = pg_sql(&pgtest_srv, "postgres",
                       "DROP DATABASE IF EXISTS cluster; CREATE DATABASE cluster;");
    ck_assert_msg(out != NULL, "cannot create database cluster");
    free(out);
    char dsn[200], tasks[600];
    pg_dsn(&pgtest_srv, "cluster", dsn, sizeof dsn);
    snprintf(tasks, sizeof tasks, "dsn = %s\npassword_file = %s\nlease_s = 2", dsn, pgtest_secret_file);
    snprintf(work, sizeof work, "/tmp/a2ad-cluster-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(work));
    char ledger_path[128];
    snprintf(ledger_path, sizeof ledger_path, "%s/ledger", work);
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    hook_port = receiver_port(rcv);

    char server[NODES][64], extra[NODES][300];
    long pid[NODES];
    for (int k = 0; k < NODES; k++) {
        snprintf(server[k], sizeof server[k], "node_name = n%d", k + 1);
        snprintf(extra[k], sizeof extra[k], "[agent.ledger]\nfile = %s\nnode = n%d\nrun_ms = %d\n",
                 ledger_path, k + 1, RUN_MS);
        struct daemon_opts o = {.plugins = "ledger", .store = "postgresql", .tasks_extra = tasks,
                                .threads = WORKERS, .server_extra = server[k], .extra = extra[k]};
        if (!daemon_start(&node[k], &o)) {
            char *log = daemon_log(&node[k]);
            ck_abort_msg("node n%d did not start; log:\n%s", k + 1, log);
        }
        pid[k] = (long)node[k].pid;
    }

    memset(jobs, 0, sizeof jobs);
    atomic_store(&next_job, 0);
    atomic_store(&acked, 0);
    atomic_store(&not_acked, 0);
    atomic_store(&victim_dead, false);
    pthread_t th[CLIENTS];
    for (int c = 0; c < CLIENTS; c++)
        ck_assert_int_eq(pthread_create(&th[c], NULL, client_run, NULL), 0);

    /* Kill n2 once it has work running and waiting: a third of the jobs
     * acknowledged and some of them started there. */
    char victim_name[8];
    snprintf(victim_name, sizeof victim_name, "n%d", VICTIM + 1);
    for (int i = 0; i < 600 && atomic_load(&acked) < JOBS / 3; i++) test_nap_ms(20);
    char q[400];
    snprintf(q, sizeof q, "SELECT count(*) FROM a2ad_tasks WHERE node = '%s' AND state = 'working'",
             victim_name);
    for (int i = 0; i < 300; i++) {
        out = sql_all(q);
        int working = atoi(out);
        free(out);
        if (working > 0) break;
        test_nap_ms(20);
    }
    daemon_kill9(&node[VICTIM]);
    uint64_t kill_ns = mono_ns();
    atomic_store(&victim_dead, true);
    /* What the dead node held, unfinished, as it died: read in one
     * statement, with whether its node row (its lease) was still there:
     * a takeover moves the rows and deletes that row in one transaction. */
    snprintf(q, sizeof q,
             "SELECT (SELECT count(*) FROM a2ad_nodes WHERE name = '%s') || ':' ||"
             " coalesce(string_agg(id, ','), '') FROM a2ad_tasks"
             " WHERE node = '%s' AND ended_ms IS NULL",
             victim_name, victim_name);
    char *pending = sql_all(q);
    pending[strcspn(pending, "\n")] = '\0';
    bool pending_valid = pending[0] == '1';
    ck_assert_msg(strchr(pending, ':') != NULL, "unexpected answer: %s", pending);
    const char *pending_ids = strchr(pending, ':') + 1;
    ck_assert_msg(!pending_valid || *pending_ids,
                  "the kill did not land while %s had unfinished jobs", victim_name);

    for (int c = 0; c < CLIENTS; c++) pthread_join(th[c], NULL);
    ck_assert_msg(atomic_load(&acked) == JOBS,
                  "%d jobs were acknowledged by no node (clients retry on the next node)",
                  atomic_load(&not_acked));
    unsigned on_victim = 0, resent = 0;
    memset(tr, 0, sizeof tr);
    for (int i = 0; i < JOBS; i++) {
        memcpy(tr[i].id, jobs[i].id, sizeof tr[i].id);
        on_victim += jobs[i].accepted == VICTIM;
        resent += jobs[i].tries > 1;
    }
    qsort(tr, JOBS, sizeof tr[0], by_id);
    tr_scanned = foreign_posts = 0;
    for (int i = 1; i < JOBS; i++)
        ck_assert_msg(strcmp(tr[i - 1].id, tr[i].id) != 0, "task id %s acknowledged twice",
                      tr[i].id);

    /* Every terminal webhook arrives (the victim's after the takeover). */
    for (int waited = 0; waited < 120000; waited += 100) {
        tracker_scan();
        if (tracker_ended() == JOBS) break;
        test_nap_ms(100);
    }
    ck_assert_msg(tracker_ended() == JOBS, "only %zu of %d jobs sent their terminal webhook",
                  tracker_ended(), JOBS);
    unsigned repeats = 0;
    for (int i = 0; i < JOBS; i++) {
        const struct tracked *t = &tr[i];
        ck_assert_msg(t->terminals == 1, "task %s: %u different terminal events", t->id,
                      t->terminals);
        ck_assert_msg(t->out_of_order == 0, "task %s: %u events out of event-id order", t->id,
                      t->out_of_order);
        ck_assert_msg(t->max_seq == t->terminal_seq, "task %s: events after the terminal one",
                      t->id);
        uint64_t want = ((UINT64_C(1) << (t->terminal_seq + 1)) - 1) & ~UINT64_C(3);
        ck_assert_msg(t->seen == want, "task %s: events missing (seen %llx, want %llx)", t->id,
                      (unsigned long long)t->seen, (unsigned long long)want);
        repeats += t->repeats;
    }

    /* The rows: the dead node is gone, a survivor holds each task, and
     * every task (also one written on the victim without an answer) ended. */
    out = sql_all("SELECT string_agg(name, ',' ORDER BY name) FROM a2ad_nodes");
    char want_nodes[32];
    snprintf(want_nodes, sizeof want_nodes, "n1,n3\n");
    ck_assert_str_eq(out, want_nodes);
    free(out);
    out = sql_all("SELECT count(*) FROM a2ad_tasks"
                  " WHERE ended_ms IS NULL OR node NOT IN ('n1', 'n3')");
    ck_assert_str_eq(out, "0\n");
    free(out);
    char *rows = sql_all("SELECT id || '|' || node || '|' || state FROM a2ad_tasks ORDER BY id");
    size_t found = 0;
    for (char *save = NULL, *line = strtok_r(rows, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *bar = strchr(line, '|');
        ck_assert_ptr_nonnull(bar);
        *bar = '\0';
        char *holder = bar + 1, *state = strchr(holder, '|');
        ck_assert_ptr_nonnull(state);
        *state++ = '\0';
        if (!tracked_find(line)) continue;
        found++;
        ck_assert_msg(!strcmp(state, "completed"), "task %s: %s in the database", line, state);
        /* Read through the node that holds it. */
        int k = holder[1] - '1';
        ck_assert(k >= 0 && k < NODES && k != VICTIM);
        char params[120];
        snprintf(params, sizeof params,
                 "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tasks/get\","
                 "\"params\":{\"id\":\"%s\"}}",
                 line);
        cJSON *t = rpc_call(node[k].port, "/agents/ledger", params, NULL);
        ck_assert_msg(!strcmp(json_str(t, "result.status.state"), "completed"),
                      "tasks/get of %s on its holder %s: %s", line, holder,
                      json_str(t, "result.status.state"));
        ck_assert_str_eq(json_str(t, "result.metadata.a2ad.node"), holder);
        cJSON_Delete(t);
    }
    free(rows);
    ck_assert_msg(found == JOBS, "%zu of %d acknowledged jobs have a row", found, JOBS);

    /* The ledger: which jobs ran twice, and that they are allowed to. */
    struct ledger l = {0};
    ledger_read(ledger_path, &l);
    unsigned twice = 0, victim_runs = 0, victim_unended = 0;
    size_t i = 0;
    while (i < l.n) {
        size_t j = i;
        while (j < l.n && !strcmp(l.r[j].task, l.r[i].task)) j++;
        for (size_t k = i; k < j; k++)
            if (l.r[k].pid == pid[VICTIM]) {
                victim_runs++;
                victim_unended += !l.r[k].ended;
            }
        if (tracked_find(l.r[i].task)) {
            const struct run *first = &l.r[i], *last = &l.r[j - 1];
            ck_assert_msg(last->ended, "task %s: its last run did not end", first->task);
            ck_assert_msg(j - i <= 2, "task %s ran %zu times", first->task, j - i);
            if (j - i == 2) {
                twice++;
                ck_assert_msg(first->pid == pid[VICTIM] && first->attempt == 1,
                              "task %s ran twice, first on %s (attempt %u), not on the killed "
                              "node",
                              first->task, first->node, first->attempt);
                ck_assert_msg(last->pid != pid[VICTIM] && last->attempt == 2,
                              "task %s ran again on %s (attempt %u)", first->task, last->node,
                              last->attempt);
                ck_assert_msg(last->start_ns > kill_ns,
                              "task %s ran again on %s before the kill", first->task, last->node);
                ck_assert_msg(!pending_valid || in_list(pending_ids, first->task),
                              "task %s ran twice but was not unfinished on %s at the kill",
                              first->task, victim_name);
            }
        }
        i = j;
    }
    size_t pending_n = 0;
    for (const char *p = pending_ids; *p; p++) pending_n += *p == ',';
    pending_n += *pending_ids != '\0';
    fprintf(stderr,
            "cluster: %d jobs (%u acknowledged by %s, %u sent again to the next node), %s "
            "killed with %zu unfinished jobs%s "
            "(%u of its runs never ended); %u jobs ran twice (each first on %s, then on a "
            "survivor after the kill); %u repeated webhook deliveries; %zu webhooks of jobs "
            "written on %s without an acknowledgement\n",
            JOBS, on_victim, victim_name, resent, victim_name, pending_n,
            pending_valid ? "" : " (read after the takeover)", victim_unended, twice, victim_name,
            repeats, foreign_posts, victim_name);
    ck_assert_uint_le(twice, pending_valid ? pending_n : victim_runs);
    free(l.r);
    free(pending);

    /* Every webhook delivered (also those of jobs nobody tracks) leaves
     * the outbox; the takeover was logged; the survivors stop cleanly. */
    for (int w = 0; w < 300; w++) {
        out = sql_all("SELECT count(*) FROM a2ad_outbox");
        bool empty = !strcmp(out, "0\n");
        free(out);
        if (empty) break;
        test_nap_ms(100);
    }
    /* What an operator watches on each survivor: its commits (the
     * PostgreSQL store's group commits count too) and an empty backlog. */
    for (int k = 0; k < NODES; k++) {
        if (k == VICTIM) continue;
        struct http_resp m;
        ck_assert(http_call(node[k].port, "GET", "/metrics", NULL, &m));
        ck_assert_int_eq(m.status, 200);
        ck_assert_msg(sample(m.body, "a2ad_store_commit_seconds_count") > 0,
                      "n%d: no store commits in /metrics", k + 1);
        ck_assert(sample(m.body, "a2ad_store_commit_failures_total") == 0);
        ck_assert(sample(m.body, "a2ad_outbox_backlog") == 0);
        http_resp_free(&m);
    }
    bool told = false;
    char lost[64];
    snprintf(lost, sizeof lost, "node %s lost (its lease expired): node ", victim_name);
    for (int k = 0; k < NODES; k++) {
        if (k == VICTIM) continue;
        ck_assert_int_eq(daemon_stop(&node[k], 20000), 0);
        char *log = daemon_log(&node[k]);
        told = told || strstr(log, lost);
        free(log);
    }
    ck_assert_msg(told, "no survivor logged the takeover of %s", victim_name);
    out = sql_all("SELECT count(*) FROM a2ad_outbox");
    ck_assert_str_eq(out, "0\n");
    free(out);
}
END_TEST

/* ---- two nodes, one job: what a node that dies leaves to the other ---- */

/* A fresh database and node k (n1, n2, ...) on it with the given agents
 * and [agent.*] lines, lease_s = 2. */
static void start_node(int k, const char *db, const char *plugins, const char *extra) {
    static char server[NODES][64], tasks[NODES][600];
    char dsn[200];
    pg_dsn(&pgtest_srv, db, dsn, sizeof dsn);
    snprintf(tasks[k], sizeof tasks[k], "dsn = %s\npassword_file = %s\nlease_s = 2", dsn,
             pgtest_secret_file);
    snprintf(server[k], sizeof server[k], "node_name = n%d", k + 1);
    struct daemon_opts o = {.plugins = plugins, .store = "postgresql", .tasks_extra = tasks[k],
                            .server_extra = server[k], .extra = extra};
    if (!daemon_start(&node[k], &o)) {
        char *log = daemon_log(&node[k]);
        ck_abort_msg("node n%d did not start; log:\n%s", k + 1, log);
    }
}

static void new_db(const char *db) {
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s; CREATE DATABASE %s;", db, db);
    char *out = pg_sql(&pgtest_srv, "postgres", sql);
    ck_assert_msg(out != NULL, "cannot create database %s", db);
    free(out);
}

static cJSON *call(int k, const char *agent, const char *method, const char *params, long *st) {
    char body[800], path[64];
    snprintf(path, sizeof path, "/agents/%s", agent);
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"%s\",\"params\":%s}",
             method, params);
    return rpc_call(node[k].port, path, body, st);
}

/* Until the task's row is held by node k and in state `state` (bounded). */
static bool wait_row(const char *db, const char *id, int k, const char *state) {
    char sql[200], want[64];
    snprintf(sql, sizeof sql, "SELECT node || '|' || state FROM a2ad_tasks WHERE id = '%s'", id);
    snprintf(want, sizeof want, "n%d|%s\n", k + 1, state);
    for (int i = 0; i < 300; i++) {
        char *out = pg_sql(&pgtest_srv, db, sql);
        bool done = out && !strcmp(out, want);
        free(out);
        if (done) return true;
        test_nap_ms(50);
    }
    return false;
}

/* n1 dies (SIGKILL, from inside the agent) the moment a job starts, before
 * the job can write anything: the job's `working` state is committed
 * before agent code runs, so n2 knows it had started and runs it again as
 * attempt 2 (a job not rerun_safe would fail: "interrupted: node n1
 * lost"), never as a fresh queued job. */
START_TEST(cluster_node_dead_as_job_starts_job_runs_again_as_attempt_2) {
    REQUIRE_PG();
    new_db("crashstart");
    snprintf(work, sizeof work, "/tmp/a2ad-cluster-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(work));
    char e1[300], e2[300];
    snprintf(e1, sizeof e1, "[agent.ledger]\nfile = %s/ledger\nnode = n1\ncrash = boom\n", work);
    snprintf(e2, sizeof e2, "[agent.ledger]\nfile = %s/ledger\nnode = n2\n", work);
    start_node(0, "crashstart", "ledger", e1);
    start_node(1, "crashstart", "ledger", e2);
    long st = 0;
    cJSON *r = call(0, "ledger", "message/send",
                    "{\"message\":{\"kind\":\"message\",\"messageId\":\"b\",\"role\":\"user\","
                    "\"parts\":[{\"kind\":\"text\",\"text\":\"boom\"}]},"
                    "\"configuration\":{\"blocking\":false}}",
                    &st);
    cJSON_Delete(r);
    /* The answer may be lost with n1 (the job can start before it is
     * sent); the row was committed before either. */
    char *id = pg_sql(&pgtest_srv, "crashstart", "SELECT id FROM a2ad_tasks");
    ck_assert_msg(id && strlen(id) > 30, "the job has no row (answer %ld)", st);
    id[strcspn(id, "\n")] = '\0';
    int status = 0;
    pid_t gone = 0;
    for (int i = 0; i < 200 && gone == 0; i++) {
        gone = waitpid(node[0].pid, &status, WNOHANG);
        if (gone == 0) test_nap_ms(25);
    }
    ck_assert_msg(gone == node[0].pid && WIFSIGNALED(status), "n1 did not die at the job's start");
    node[0].pid = 0;
    ck_assert_msg(wait_row("crashstart", id, 1, "completed"), "n2 did not take the job over");
    char params[100];
    snprintf(params, sizeof params, "{\"id\":\"%s\"}", id);
    r = call(1, "ledger", "tasks/get", params, NULL);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    ck_assert_str_eq(json_str(r, "result.status.message.parts.0.text"), "done: boom");
    ck_assert_str_eq(json_str(r, "result.metadata.a2ad.node"), "n2");
    ck_assert_int_eq(json_int(r, "result.metadata.a2ad.attempt"), 2);
    cJSON_Delete(r);
    char path[128];
    snprintf(path, sizeof path, "%s/ledger", work);
    struct ledger l = {0};
    ledger_read(path, &l);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.r[0].node, "n1");
    ck_assert_uint_eq(l.r[0].attempt, 1);
    ck_assert(!l.r[0].ended);
    ck_assert_str_eq(l.r[1].node, "n2");
    ck_assert_uint_eq(l.r[1].attempt, 2);
    ck_assert(l.r[1].ended);
    ck_assert_str_eq(l.r[0].task, id);
    free(l.r);
    free(id);
    ck_assert_int_eq(daemon_stop(&node[1], 15000), 0);
}
END_TEST

/* A push config set on a running job is answered once it is stored: the
 * node dies right after the answer, and the node that takes the job over
 * lists the config and sends the job's end to it. */
START_TEST(cluster_push_config_set_then_node_dies_config_kept) {
    REQUIRE_PG();
    new_db("pushcfg");
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    start_node(0, "pushcfg", "slow", NULL);
    start_node(1, "pushcfg", "slow", NULL);
    long st = 0;
    cJSON *r = call(0, "slow", "message/send",
                    "{\"message\":{\"kind\":\"message\",\"messageId\":\"s\",\"role\":\"user\","
                    "\"parts\":[{\"kind\":\"text\",\"text\":\"wait\"}]},"
                    "\"configuration\":{\"blocking\":false}}",
                    &st);
    ck_assert_int_eq(st, 200);
    char id[48];
    snprintf(id, sizeof id, "%s", json_str(r, "result.id"));
    cJSON_Delete(r);
    ck_assert(wait_row("pushcfg", id, 0, "working"));
    char params[300], url[80];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/late", receiver_port(rcv));
    snprintf(params, sizeof params,
             "{\"taskId\":\"%s\",\"pushNotificationConfig\":{\"url\":\"%s\"}}", id, url);
    r = call(0, "slow", "tasks/pushNotificationConfig/set", params, &st);
    char *text = cJSON_PrintUnformatted(r);
    ck_assert_msg(st == 200 && json_at(r, "result") != NULL, "set answered %ld: %s", st, text);
    free(text);
    cJSON_Delete(r);
    daemon_kill9(&node[0]);
    ck_assert_msg(wait_row("pushcfg", id, 1, "failed"), "n2 did not take the job over");
    snprintf(params, sizeof params, "{\"id\":\"%s\"}", id);
    r = call(1, "slow", "tasks/pushNotificationConfig/list", params, NULL);
    text = cJSON_PrintUnformatted(r);
    ck_assert_msg(strstr(text, url) != NULL, "the config is gone after the takeover: %s", text);
    free(text);
    cJSON_Delete(r);
    ck_assert_msg(receiver_wait(rcv, 1, 10000), "no webhook at the late config");
    cJSON *o = cJSON_Parse(receiver_get(rcv, 0)->body);
    ck_assert_str_eq(json_str(o, "status.state"), "failed");
    ck_assert_str_eq(json_str(o, "status.message.parts.0.text"), "interrupted: node n1 lost");
    cJSON_Delete(o);
    ck_assert_int_eq(daemon_stop(&node[1], 15000), 0);
}
END_TEST

Suite *cluster_suite(void);
Suite *cluster_suite(void) {
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("three_nodes");
    tcase_add_unchecked_fixture(tc, pgtest_suite_setup, pgtest_suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 170);
    tcase_add_test(tc, cluster_three_nodes_one_killed_every_job_ends_once);
    tcase_add_test(tc, cluster_node_dead_as_job_starts_job_runs_again_as_attempt_2);
    tcase_add_test(tc, cluster_push_config_set_then_node_dies_config_kept);
    suite_add_tcase(s, tc);
    return s;
}
