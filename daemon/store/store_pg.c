/* store_pg - the durable task store on PostgreSQL. See store_pg.h.
 *
 * Everything above the writer (tickets, gates, the queue, the slot, task
 * rows, the outbox hooks, settling a batch) is store_core.c, shared with
 * the SQLite store so both give the same guarantees; the writer, the
 * schema, open, recover and close are PostgreSQL's own.
 *
 * Round trips. The writer drains its queue and writes the batch as one
 * explicit transaction sent in a libpq pipeline: BEGIN, every statement,
 * COMMIT, with a Sync every PIPE_CHUNK statements (a Sync does not end an
 * explicit transaction; it only bounds what is in flight, so neither side
 * blocks on a full socket). A batch of up to PIPE_CHUNK statements is one
 * round trip; a task's several events in one batch are written once
 * (coalesce_task_rows). The writer counts round trips and logs them at close.
 *
 * Connection loss. A failed batch whose connection is gone (or whose error
 * is one a retry fixes: SQLSTATE classes 08, 53, 57P, 40001, 40P01) is not
 * dropped: its submissions are refused (their tickets fail; tasks.c
 * discards them), and every other op goes back to the head of the queue.
 * The writer reconnects with backoff (RECONNECT_MIN_MS doubling to
 * RECONNECT_MAX_MS) and writes them, in their order, once it is back.
 * Meanwhile new submissions are refused at once (st.down). Gates of
 * retained outbox rows stay closed: their webhooks wait in memory.
 *
 * Nodes. Every row has the node that holds it; a node writes, recovers and
 * unparks only its own rows, and its writer renews its lease in a2ad_nodes
 * (on the database's clock). renew_lease, take_over and take_node (writer
 * thread, from the maintenance tick) move the rows of a node whose lease
 * expired to this one, then restore its tasks here with the restart rules.
 *
 * Work sharing (share.h). The writer also runs, after each batch, the round
 * of offers and claim checks share.c collected (one statement), and on its
 * maintenance tick forgets the offered jobs another node took and claims
 * offered jobs for the agents with free workers here (share_work).
 */
#include "store/store_pg.h"

#include <errno.h>
#include <pthread.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "front/metrics.h"
#include "store/store.h"
#include "store/store_core.h"
#include "agents/plugins.h"
#include "store/share.h"
#include "core/tasks.h"
#include "util.h"
#include "delivery/webhooks.h"
#include "agents/workers.h"

/* How often the writer deletes expired rows. */
#define MAINTENANCE_MS 250
/* Rows deleted per transaction, and the time one pass may take: a long
 * backlog goes away over several passes rather than in one long stall. */
#define EXPIRE_BATCH 500
#define EXPIRE_PASS_MS 50
/* Parked webhook rows handed back to memory per read, at most. */
#define UNPARK_BATCH 256

/* Set by store_pg_open, read-only afterwards; the connection belongs to
 * the writer thread once it runs. */
static struct {
    bool open;
    PGconn *conn;
    /* How to connect: libpq keywords and values (the dsn, and the password
     * of password_file when there is one); the values are ours. */
    const char *keys[3];
    char *vals[3];
    char *path; /* "PostgreSQL HOST:PORT/DB" for messages: never the password */
    char *node; /* [server] node_name, or the host name */
    unsigned lease_ms;
    uint64_t next_renew_ms, next_takeover_ms; /* writer thread */
    unsigned write_queue;
    unsigned retention_s;
    pthread_t writer;
    /* Unreachable: submissions are refused at once with down_why; the
     * writer keeps the rest queued and reconnects with backoff. */
    atomic_bool down;
    pthread_mutex_t down_lock;
    char down_why[200];
    /* parking (writer thread): on once store_pg_recover counted the rows */
    atomic_bool unpark_on;
    int64_t unpark_after;
    /* counted by the writer, logged at close: what one job costs */
    uint64_t round_trips, transactions, statements, created;
} st = {.down_lock = PTHREAD_MUTEX_INITIALIZER};

const char *store_pg_last_error(void) { return store_core_last_error(); }

/* New tasks are refused at once while PostgreSQL is unreachable. */
static bool admit(void) {
    if (!atomic_load(&st.down)) return true;
    pthread_mutex_lock(&st.down_lock);
    store_core_set_error("%s is unreachable (%s); retry later", st.path, st.down_why);
    pthread_mutex_unlock(&st.down_lock);
    return false;
}

/* Readiness: false while PostgreSQL is unreachable, so a load balancer
 * sends submissions to a node whose database answers. */
static bool writable(char *why, size_t n) {
    if (!atomic_load(&st.down)) return true;
    pthread_mutex_lock(&st.down_lock);
    snprintf(why, n, "%s is unreachable (%s)", st.path, st.down_why);
    pthread_mutex_unlock(&st.down_lock);
    return false;
}

/* The crash rules at recovery and takeover: a rerun_safe job that kills
 * every node running it is given up after [workers] max_attempts, instead
 * of being passed from node to node until none is left. (An agent is
 * disabled only by its own node's crash file, which the PostgreSQL store
 * has not: crashloop.c keeps it next to the SQLite file.) */
static struct store_backend backend = {.db_word = "",
                                       .ticket_err_max = 200,
                                       .admit = admit,
                                       .writable = writable,
                                       .crash_rules = true};

/* ---- recovery of one task ---------------------------------------------- */

static bool parse_state(const char *name, enum task_state *out) {
    for (int s = TASK_SUBMITTED; s <= TASK_REJECTED; s++)
        if (strcmp(task_state_name((enum task_state)s), name) == 0) {
            *out = (enum task_state)s;
            return true;
        }
    return false;
}

/* ---- PostgreSQL ----------------------------------------------------------- */

struct recovery_counts;
static void recover_row(const PGresult *r, int row, int64_t now, struct recovery_counts *c,
                        size_t *bad, const char *lost);
static a2ad_status register_node(char *why, size_t n);
static bool run(PGconn *c, const char *sql, char *why, size_t n);
static void share_work(bool maintenance);
static void share_reset(void);
static void share_leave(void);

/* Statements in flight before a Sync (see the top). */
#define PIPE_CHUNK 256
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000

enum stmt {
    S_UPSERT,
    S_DEL_TASK,
    S_ADD_OUTBOX,
    S_DEL_OUTBOX,
    S_EXPIRE,
    S_PARKED,
    S_RENEW,
    S_DEAD,
    S_DEL_OUTBOX_MANY,
    S_EVENT,
    S_COUNT
};

static const char *const stmt_name[S_COUNT] = {
    "a2ad_upsert", "a2ad_del_task", "a2ad_add_outbox", "a2ad_del_outbox",
    "a2ad_expire", "a2ad_parked",   "a2ad_renew",      "a2ad_dead", "a2ad_del_outbox_many",
    "a2ad_event"};

/* The database's clock, in ms: leases are compared on one clock only. */
#define DB_NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"

static const char *const stmt_sql[S_COUNT] = {
    /* A row another node took over (this one's lease expired) is not
     * written by this one any more. */
    [S_UPSERT] = "INSERT INTO a2ad_tasks (id, agent, state, seq, ended_ms, doc, ext, node)"
                 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET"
                 " agent = excluded.agent, state = excluded.state, seq = excluded.seq,"
                 " ended_ms = excluded.ended_ms, doc = excluded.doc, ext = excluded.ext"
                 " WHERE excluded.seq >= a2ad_tasks.seq AND a2ad_tasks.node = excluded.node",
    [S_DEL_TASK] = "DELETE FROM a2ad_tasks WHERE id = $1",
    /* A row written again takes a new n, as SQLite's INSERT OR REPLACE. */
    [S_ADD_OUTBOX] = "INSERT INTO a2ad_outbox (event_id, task_id, order_key, url, headers, body,"
                     " essential, created_ms, parked, node)"
                     " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                     " ON CONFLICT (event_id) DO UPDATE SET"
                     " n = nextval(pg_get_serial_sequence('a2ad_outbox', 'n')),"
                     " task_id = excluded.task_id, order_key = excluded.order_key,"
                     " url = excluded.url, headers = excluded.headers, body = excluded.body,"
                     " essential = excluded.essential, created_ms = excluded.created_ms,"
                     " parked = excluded.parked, node = excluded.node",
    [S_DEL_OUTBOX] = "DELETE FROM a2ad_outbox WHERE event_id = $1",
    /* Nodes expiring at once skip each other's rows instead of waiting. */
    [S_EXPIRE] = "DELETE FROM a2ad_tasks WHERE id IN (SELECT id FROM a2ad_tasks"
                 " WHERE ended_ms < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
    [S_PARKED] = "SELECT n, event_id, task_id, order_key, url, headers, body, created_ms"
                 " FROM a2ad_outbox WHERE parked = 1 AND n > $1 AND node = $3 ORDER BY n LIMIT $2",
    [S_RENEW] = "UPDATE a2ad_nodes SET lease_until_ms = " DB_NOW_MS " + $2 WHERE name = $1",
    [S_DEAD] = "SELECT name FROM a2ad_nodes WHERE name <> $1 AND lease_until_ms < " DB_NOW_MS,
    [S_DEL_OUTBOX_MANY] = "DELETE FROM a2ad_outbox WHERE event_id = ANY ($1::text[])",
    /* cluster.c: the event and its notification commit with the batch
     * (a notification is delivered at commit), so a streaming node that
     * hears it finds the row. */
    [S_EVENT] = "WITH e AS (INSERT INTO a2ad_events (task_id, seq, event, created_ms)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING)"
                " SELECT pg_notify('a2ad_events', $1)",
};


PGconn *store_pg_connect(char *why, size_t n) {
    PGconn *c = PQconnectdbParams(st.keys, (const char *const *)st.vals, 1);
    if (!c) {
        snprintf(why, n, "out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        util_one_line(why, n, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Prepare the writer's statements on a new connection. */
static bool prepare_all(PGconn *c, char *why, size_t n) {
    for (int i = 0; i < S_COUNT; i++) {
        PGresult *r = PQprepare(c, stmt_name[i], stmt_sql[i], 0, NULL);
        st.round_trips++;
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) util_one_line(why, n, PQresultErrorMessage(r));
        PQclear(r);
        if (!ok) return false;
    }
    return true;
}

/* The parameters of one op's statement; numbers are written into nums. */
struct params {
    const char *v[10];
    int len[10];
    int fmt[10];
    char nums[3][24];
    int n;
};

static enum stmt op_params(const struct op *o, struct params *p) {
    memset(p, 0, sizeof *p);
    switch (o->kind) {
    case OP_TASK:
        p->n = 8;
        p->v[0] = o->id;
        p->v[1] = o->agent;
        p->v[2] = o->state;
        snprintf(p->nums[0], sizeof p->nums[0], "%llu", (unsigned long long)o->seq);
        p->v[3] = p->nums[0];
        if (o->ended_ms >= 0) {
            snprintf(p->nums[1], sizeof p->nums[1], "%lld", (long long)o->ended_ms);
            p->v[4] = p->nums[1];
        }
        /* bytea, sent as is: no encoding check can refuse a task's text */
        p->v[5] = o->doc;
        p->len[5] = (int)strlen(o->doc);
        p->fmt[5] = 1;
        p->v[6] = o->ext;
        p->len[6] = (int)strlen(o->ext);
        p->fmt[6] = 1;
        p->v[7] = st.node;
        return S_UPSERT;
    case OP_OUTBOX_ADD:
        p->n = 10;
        p->v[9] = st.node;
        p->v[0] = o->id;
        p->v[1] = o->task_id;
        p->v[2] = o->order_key;
        p->v[3] = o->url;
        p->v[4] = o->headers;
        p->len[4] = (int)strlen(o->headers);
        p->fmt[4] = 1;
        p->v[5] = o->body;
        p->len[5] = (int)o->len;
        p->fmt[5] = 1;
        p->v[6] = o->essential ? "1" : "0";
        snprintf(p->nums[0], sizeof p->nums[0], "%llu", (unsigned long long)o->created_ms);
        p->v[7] = p->nums[0];
        p->v[8] = o->parked ? "1" : "0";
        return S_ADD_OUTBOX;
    case OP_OUTBOX_DEL:
        p->n = 1;
        p->v[0] = o->id;
        return S_DEL_OUTBOX;
    case OP_EVENT:
        p->n = 4;
        p->v[0] = o->id;
        snprintf(p->nums[0], sizeof p->nums[0], "%llu", (unsigned long long)o->seq);
        p->v[1] = p->nums[0];
        p->v[2] = o->body;
        p->len[2] = (int)o->len;
        p->fmt[2] = 1;
        snprintf(p->nums[1], sizeof p->nums[1], "%llu", (unsigned long long)o->created_ms);
        p->v[3] = p->nums[1];
        return S_EVENT;
    case OP_TASK_DEL:
    default:
        p->n = 1;
        p->v[0] = o->id;
        return S_DEL_TASK;
    }
}

/* What went wrong in a batch. */
struct failure {
    bool failed;
    char why[200];
    char sqlstate[6];
};

static void fail_with(struct failure *f, const char *why, const char *sqlstate) {
    if (f->failed) return; /* the first error is the cause */
    f->failed = true;
    util_one_line(f->why, sizeof f->why, why);
    snprintf(f->sqlstate, sizeof f->sqlstate, "%s", sqlstate ? sqlstate : "");
}

/* Sync and read the results of the `inflight` statements sent since the
 * last Sync. False when the connection broke (then its state is unknown). */
static bool pipe_collect(int inflight, struct failure *f) {
    if (PQpipelineSync(st.conn) != 1) {
        fail_with(f, PQerrorMessage(st.conn), NULL);
        return false;
    }
    st.round_trips++;
    int nulls = 0;
    for (;;) {
        PGresult *r = PQgetResult(st.conn);
        if (!r) {
            /* Each statement's results end with one NULL; two in a row, or
             * a broken connection, mean nothing more is coming. */
            if (++nulls > 1 || PQstatus(st.conn) == CONNECTION_BAD) {
                fail_with(f, PQerrorMessage(st.conn), "08000");
                return false;
            }
            continue;
        }
        nulls = 0;
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            return true;
        }
        if (s == PGRES_FATAL_ERROR || s == PGRES_NONFATAL_ERROR || s == PGRES_BAD_RESPONSE)
            fail_with(f, PQresultErrorMessage(r), PQresultErrorField(r, PG_DIAG_SQLSTATE));
        inflight--;
        PQclear(r);
    }
}

/* Delivered events' rows, deleted by one statement per batch (an array of
 * ids) rather than one each: a third of the statements of a job. An add of
 * an id waiting here sends the deletes first, so the order stays. */
struct dels {
    struct share_ids arr; /* the text[] literal being built */
    struct hmap *ids;
};

static bool dels_add(struct dels *d, const char *id) {
    if (!d->ids && !(d->ids = hmap_new(64))) return false;
    if (!share_ids_add(&d->arr, id)) return false;
    hmap_put(d->ids, id, d);
    return true;
}

/* Send the collected deletes (if any) as one statement; false when libpq
 * could not queue it. */
static bool dels_send(struct dels *d, int *inflight) {
    if (!d->arr.n) return true;
    const char *v[1] = {share_ids_text(&d->arr)};
    bool ok = v[0] && PQsendQueryPrepared(st.conn, stmt_name[S_DEL_OUTBOX_MANY], 1, v, NULL, NULL, 0) == 1;
    if (ok) {
        (*inflight)++;
        st.statements++;
    }
    d->arr.len = d->arr.n = 0; /* the buffer is kept for the next ones */
    hmap_free(d->ids);
    d->ids = NULL;
    return ok;
}

static bool send_text(const char *sql) {
    return PQsendQueryParams(st.conn, sql, 0, NULL, NULL, NULL, NULL, 0) == 1;
}

/* Write a chain as one transaction (see the top). */
static void write_batch(struct op *list, struct failure *f) {
    memset(f, 0, sizeof *f);
    store_core_coalesce(list);
    bool any = false;
    for (const struct op *o = list; o && !any; o = o->next) any = !o->moot;
    if (!any) return; /* share.c's wake-ups only: nothing to write */
    if (!st.conn) {
        fail_with(f, "not connected", "08000");
        return;
    }
    if (PQenterPipelineMode(st.conn) != 1) {
        fail_with(f, PQerrorMessage(st.conn), "08000");
        return;
    }
    bool alive = true;
    int inflight = 0;
    if (send_text("BEGIN"))
        inflight++;
    else
        fail_with(f, PQerrorMessage(st.conn), "08000");
    struct dels dels = {0};
    for (const struct op *o = list; !f->failed && o; o = o->next) {
        if (o->moot) continue;
        if (o->kind == OP_OUTBOX_DEL && dels_add(&dels, o->id)) continue;
        if (o->kind == OP_OUTBOX_ADD && dels.ids && hmap_get(dels.ids, o->id) &&
            !dels_send(&dels, &inflight)) {
            fail_with(f, PQerrorMessage(st.conn), "08000");
            break;
        }
        struct params p;
        enum stmt s = op_params(o, &p);
        if (PQsendQueryPrepared(st.conn, stmt_name[s], p.n, p.v, p.len, p.fmt, 0) != 1) {
            fail_with(f, PQerrorMessage(st.conn), "08000");
            break;
        }
        st.statements++;
        if (++inflight >= PIPE_CHUNK) {
            alive = pipe_collect(inflight, f);
            inflight = 0;
            if (!alive) break;
        }
    }
    if (alive && !f->failed && !dels_send(&dels, &inflight))
        fail_with(f, PQerrorMessage(st.conn), "08000");
    share_ids_free(&dels.arr);
    hmap_free(dels.ids);
    if (alive && !f->failed) {
        if (send_text("COMMIT"))
            inflight++;
        else
            fail_with(f, PQerrorMessage(st.conn), "08000");
    }
    if (alive && inflight) alive = pipe_collect(inflight, f);
    if (alive && PQexitPipelineMode(st.conn) != 1) alive = false;
    if (alive && PQtransactionStatus(st.conn) != PQTRANS_IDLE) {
        /* An error left the transaction open (aborted): end it. */
        PGresult *r = PQexec(st.conn, "ROLLBACK");
        st.round_trips++;
        PQclear(r);
    }
    if (!alive || PQstatus(st.conn) == CONNECTION_BAD) {
        fail_with(f, PQerrorMessage(st.conn), "08000");
        PQfinish(st.conn);
        st.conn = NULL;
    }
    if (!f->failed) st.transactions++;
}

/* An error that another try, on a connection that works, can fix. */
static bool retryable(const struct failure *f) {
    const char *s = f->sqlstate;
    /* 08P01 (protocol violation) is a2ad's own bug: a retry would loop. */
    return !st.conn || (strncmp(s, "08", 2) == 0 && strcmp(s, "08P01") != 0) ||
           strncmp(s, "53", 2) == 0 ||
           strncmp(s, "57P", 3) == 0 || strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0;
}

/* Settle what waited on a batch (store_core_settle), counting the tasks
 * committed (logged at close). */
static void settle(struct op *list, const char *why) {
    st.created += store_core_settle(list, why);
}

/* Take the submissions (ticket ops) out of a chain, with the other rows
 * of their tasks' CREATED events: they are refused, not retried. */
static struct op *take_submissions(struct op **list, size_t *taken) {
    struct op *out = NULL, **out_tail = &out;
    struct hmap *ids = NULL;
    for (struct op *o = *list; o; o = o->next)
        if (o->ticket) {
            if (!ids) ids = hmap_new(16);
            if (ids) hmap_put(ids, o->id, o);
        }
    if (!ids) return NULL;
    struct op **pp = list;
    while (*pp) {
        struct op *o = *pp;
        const char *tid = o->kind == OP_OUTBOX_ADD ? o->task_id : o->id;
        bool take = o->ticket || (o->kind == OP_OUTBOX_ADD && o->gate && tid &&
                                  hmap_get(ids, tid) && !o->parked);
        if (take) {
            *pp = o->next;
            o->next = NULL;
            *out_tail = o;
            out_tail = &o->next;
            (*taken)++;
        } else {
            pp = &o->next;
        }
    }
    hmap_free(ids);
    return out;
}

/* PostgreSQL is gone: refuse new submissions, refuse those waiting (in
 * `failed` and in the queue), and put the rest of `failed` back at the
 * head of the queue, in order, for when it is back. */
static void go_down(struct op *failed, const char *why) {
    pthread_mutex_lock(&st.down_lock);
    snprintf(st.down_why, sizeof st.down_why, "%s", why);
    pthread_mutex_unlock(&st.down_lock);
    if (!atomic_exchange(&st.down, true))
        log_error("store: %s is unreachable (%s): new jobs are refused; what running jobs write "
                  "waits in memory until it is back", st.path, why);
    size_t n = 0;
    struct op *refused = take_submissions(&failed, &n);
    pthread_mutex_lock(&store_q.lock);
    store_q.inflight = NULL; /* failed: back in the queue, or refused below */
    size_t queued_taken = 0;
    struct op *more = take_submissions(&store_q.head, &queued_taken);
    store_q.len -= queued_taken;
    size_t back = 0;
    struct op *last = NULL;
    for (struct op *o = failed; o; o = o->next) {
        back++;
        last = o;
    }
    if (last) {
        last->next = store_q.head;
        store_q.head = failed;
    }
    store_q.tail = NULL;
    for (struct op *o = store_q.head; o; o = o->next) store_q.tail = o;
    store_q.len += back;
    pthread_mutex_unlock(&store_q.lock);
    char reason[260];
    snprintf(reason, sizeof reason, "unreachable (%s)", why);
    if (refused) settle(refused, reason);
    if (more) settle(more, reason);
    store_core_op_list_free(refused);
    store_core_op_list_free(more);
}

/* Delete finished tasks past retention (see store.c's expire_rows). */
static void expire_rows(void) {
    int64_t cutoff = (int64_t)util_wall_ms() - (int64_t)st.retention_s * 1000;
    uint64_t until = util_now_ms() + EXPIRE_PASS_MS;
    long total = 0;
    char c[24], b[24];
    snprintf(c, sizeof c, "%lld", (long long)cutoff);
    snprintf(b, sizeof b, "%d", EXPIRE_BATCH);
    const char *v[2] = {c, b};
    for (;;) {
        PGresult *r = PQexecPrepared(st.conn, stmt_name[S_EXPIRE], 2, v, NULL, NULL, 0);
        st.round_trips++;
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            char why[200];
            util_one_line(why, sizeof why, PQresultErrorMessage(r));
            log_warn("store: cannot delete expired tasks from %s: %s", st.path, why);
            PQclear(r);
            break;
        }
        long n = atol(PQcmdTuples(r));
        PQclear(r);
        total += n;
        if (n < EXPIRE_BATCH || util_now_ms() >= until) break;
    }
    if (total) log_debug("store: deleted %ld expired tasks", total);
}

/* A bytea column as a NUL-terminated copy (len in *n). */
static char *column_bytes(const PGresult *r, int row, int col, size_t *n) {
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &len);
    char *copy = raw ? malloc(len + 1) : NULL;
    if (copy) {
        memcpy(copy, raw, len);
        copy[len] = '\0';
    }
    PQfreemem(raw);
    if (n) *n = len;
    return copy;
}

/* Parked rows oldest first, as many as the webhook queue has room for (see
 * store.c's unpark_rows). */
static void unpark_rows(void) {
    if (!atomic_load(&st.unpark_on)) return;
    size_t room = webhooks_unpark_room();
    if (!room) return;
    if (room > UNPARK_BATCH) room = UNPARK_BATCH;
    char a[24], b[24];
    snprintf(a, sizeof a, "%lld", (long long)st.unpark_after);
    snprintf(b, sizeof b, "%zu", room);
    const char *v[3] = {a, b, st.node};
    PGresult *r = PQexecPrepared(st.conn, stmt_name[S_PARKED], 3, v, NULL, NULL, 0);
    st.round_trips++;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char why[200];
        util_one_line(why, sizeof why, PQresultErrorMessage(r));
        log_warn("store: cannot read parked webhook events from %s: %s", st.path, why);
        PQclear(r);
        return;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *event_id = PQgetvalue(r, i, 1);
        size_t len = 0;
        char *headers = column_bytes(r, i, 5, NULL);
        char *body = column_bytes(r, i, 6, &len);
        a2ad_status ps =
            headers && body
                ? store_core_unpark_post(
                      event_id, PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2),
                      PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), headers, body, len,
                      strtoull(PQgetvalue(r, i, 7), NULL, 10))
                : A2AD_ERR_NOMEM;
        free(headers);
        free(body);
        if (ps != A2AD_OK) {
            if (ps != A2AD_ERR_STATE)
                log_error("store: parked webhook event %s not queued yet: %s", event_id,
                          a2ad_status_name(ps));
            break;
        }
        st.unpark_after = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    }
    PQclear(r);
}

/* ---- nodes: leases and takeover (writer thread) ------------------------- */

/* Renew this node's lease, every third of it. A lease found gone means
 * another node took this one's jobs over (it was cut off longer than the
 * lease): say so, and hold a lease again for what comes next. */
static void renew_lease(void) {
    uint64_t now = util_now_ms();
    if (now < st.next_renew_ms) return;
    st.next_renew_ms = now + st.lease_ms / 3;
    char lease[24];
    snprintf(lease, sizeof lease, "%u", st.lease_ms);
    const char *v[2] = {st.node, lease};
    PGresult *r = PQexecPrepared(st.conn, stmt_name[S_RENEW], 2, v, NULL, NULL, 0);
    st.round_trips++;
    char why[200];
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        util_one_line(why, sizeof why, PQresultErrorMessage(r));
        log_warn("store: cannot renew node %s's lease in %s: %s", st.node, st.path, why);
    } else if (!strcmp(PQcmdTuples(r), "0")) {
        log_error("store: node %s's lease in %s had expired and another node took its jobs "
                  "over; what this node still runs of them is no longer written",
                  st.node, st.path);
        if (register_node(why, sizeof why) != A2AD_OK)
            log_warn("store: cannot register node %s again: %s", st.node, why);
    }
    PQclear(r);
}

/* The rows of a takeover in the order recovery wants: unfinished first in
 * creation order, then finished ones oldest first. */
static const PGresult *sort_rows;
static int row_order(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    bool ei = !PQgetisnull(sort_rows, i, 4), ej = !PQgetisnull(sort_rows, j, 4);
    if (ei != ej) return ei - ej;
    long long x = ei ? strtoll(PQgetvalue(sort_rows, i, 4), NULL, 10) : 0;
    long long y = ej ? strtoll(PQgetvalue(sort_rows, j, 4), NULL, 10) : 0;
    if (x != y) return x < y ? -1 : 1;
    x = strtoll(PQgetvalue(sort_rows, i, 7), NULL, 10);
    y = strtoll(PQgetvalue(sort_rows, j, 7), NULL, 10);
    return (x > y) - (x < y);
}

static PGresult *exec2(const char *sql, const char *a, const char *b) {
    const char *v[2] = {a, b};
    st.round_trips++;
    return PQexecParams(st.conn, sql, b ? 2 : 1, NULL, v, NULL, NULL, 0);
}

/* Take over the jobs and undelivered webhooks of `dead`, whose lease
 * expired. The node row is claimed with FOR UPDATE SKIP LOCKED (another
 * live node at the same work skips it), its task rows likewise; then, once
 * committed, its tasks are restored here and its unfinished jobs re-run
 * (rerun_safe) or failed ("interrupted: node NAME lost"), and its
 * webhooks are sent from here, in their order, behind nothing new. */
static void take_node(const char *dead) {
    char why[200] = "";
    PGresult *tasks = NULL, *outbox = NULL, *r = NULL;
    if (!run(st.conn, "BEGIN", why, sizeof why)) goto fail;
    r = exec2("SELECT name FROM a2ad_nodes WHERE name = $1 AND lease_until_ms < " DB_NOW_MS
              " FOR UPDATE SKIP LOCKED",
              dead, NULL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) goto fail_r;
    if (PQntuples(r) == 0) { /* back in time, or another node is at it */
        PQclear(r);
        run(st.conn, "ROLLBACK", why, sizeof why);
        return;
    }
    PQclear(r);
    tasks = exec2("WITH c AS (SELECT id FROM a2ad_tasks WHERE node = $1 FOR UPDATE SKIP LOCKED)"
                  " UPDATE a2ad_tasks t SET node = $2, offered = false FROM c WHERE t.id = c.id"
                  " RETURNING t.id, t.agent, t.state, t.seq, t.ended_ms, t.doc, t.ext, t.n",
                  dead, st.node);
    if (PQresultStatus(tasks) != PGRES_TUPLES_OK) {
        r = tasks;
        tasks = NULL;
        goto fail_r;
    }
    /* New numbers after every row of this node, in the old order: the
     * unpark cursor (unpark_after) reaches them, oldest first. */
    outbox = exec2("UPDATE a2ad_outbox o SET node = $2, parked = 1, n = s.m FROM"
                   " (SELECT old, nextval(pg_get_serial_sequence('a2ad_outbox', 'n')) AS m FROM"
                   " (SELECT n AS old FROM a2ad_outbox WHERE node = $1 ORDER BY n FOR UPDATE) x) s"
                   " WHERE o.n = s.old RETURNING o.order_key",
                   dead, st.node);
    if (PQresultStatus(outbox) != PGRES_TUPLES_OK) {
        r = outbox;
        outbox = NULL;
        goto fail_r;
    }
    r = exec2("DELETE FROM a2ad_nodes WHERE name = $1", dead, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) goto fail_r;
    PQclear(r);
    r = NULL;
    if (!run(st.conn, "COMMIT", why, sizeof why)) goto fail;

    for (int i = 0; i < PQntuples(outbox); i++) webhooks_park_existing(PQgetvalue(outbox, i, 0), 1);
    int n = PQntuples(tasks);
    int *order = calloc((size_t)n + 1, sizeof *order);
    struct recovery_counts c = {0};
    size_t bad = 0;
    if (order) {
        for (int i = 0; i < n; i++) order[i] = i;
        sort_rows = tasks;
        qsort(order, (size_t)n, sizeof *order, row_order);
        int64_t now = (int64_t)util_wall_ms();
        for (int i = 0; i < n; i++) recover_row(tasks, order[i], now, &c, &bad, dead);
        free(order);
    }
    log_warn("store: node %s lost (its lease expired): node %s took over %d tasks (%zu finished, "
             "%zu queued again, %zu re-run (rerun_safe), %zu interrupted, %zu of agents not "
             "loaded here failed, %zu unreadable) and %d undelivered webhooks",
             dead, st.node, n, c.finished, c.requeued, c.rerun, c.interrupted, c.orphaned, bad,
             PQntuples(outbox));
    PQclear(tasks);
    PQclear(outbox);
    store_core_outbox_room();
    return;
fail_r:
    util_one_line(why, sizeof why, PQresultErrorMessage(r));
    PQclear(r);
fail:
    PQclear(tasks);
    PQclear(outbox);
    log_warn("store: cannot take over node %s's jobs: %s", dead, why);
    if (PQstatus(st.conn) == CONNECTION_OK && PQtransactionStatus(st.conn) != PQTRANS_IDLE) {
        PGresult *rb = PQexec(st.conn, "ROLLBACK");
        PQclear(rb);
    }
}

/* Look for nodes whose lease expired, twice a lease. */
static void take_over(void) {
    uint64_t now = util_now_ms();
    if (now < st.next_takeover_ms) return;
    st.next_takeover_ms = now + (st.lease_ms / 2 > 500 ? st.lease_ms / 2 : 500);
    const char *v[1] = {st.node};
    PGresult *r = PQexecPrepared(st.conn, stmt_name[S_DEAD], 1, v, NULL, NULL, 0);
    st.round_trips++;
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        for (int i = 0; i < PQntuples(r); i++) {
            char *dead = strdup(PQgetvalue(r, i, 0));
            if (dead) take_node(dead);
            free(dead);
        }
    PQclear(r);
}

/* Wait on store_q.wake for up to ms, or until stopping. Returns stopping. */
static bool nap(unsigned ms) {
    pthread_mutex_lock(&store_q.lock);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (!store_q.stopping) pthread_cond_timedwait(&store_q.wake, &store_q.lock, &ts);
    bool stopping = store_q.stopping;
    pthread_mutex_unlock(&store_q.lock);
    return stopping;
}

/* Reconnect with backoff; true once connected (false: stopping). */
static bool reconnect(void) {
    unsigned delay = RECONNECT_MIN_MS;
    for (;;) {
        char why[200];
        PGconn *c = store_pg_connect(why, sizeof why);
        if (c && prepare_all(c, why, sizeof why)) {
            st.conn = c;
            atomic_store(&st.down, false);
            /* Every node's lease ran out while the database was away:
             * renew ours now, and give the others time to renew theirs
             * (their reconnect backoff included) before taking any over. */
            st.next_renew_ms = 0;
            st.next_takeover_ms = util_now_ms() + st.lease_ms + RECONNECT_MAX_MS;
            log_info("store: %s is reachable again: writing what waited, accepting jobs", st.path);
            return true;
        }
        if (c) PQfinish(c);
        pthread_mutex_lock(&st.down_lock);
        snprintf(st.down_why, sizeof st.down_why, "%s", why);
        pthread_mutex_unlock(&st.down_lock);
        atomic_store(&st.down, true);
        if (nap(delay)) return false;
        delay = delay * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : delay * 2;
    }
}

static void *writer_thread(void *arg) {
    (void)arg;
    uint64_t next_maintenance = util_now_ms() + MAINTENANCE_MS;
    for (;;) {
        if (!st.conn && !reconnect()) break;
        size_t n;
        bool stopping, unpark;
        struct op *list = store_core_take(next_maintenance, &n, &stopping, &unpark);
        if (list) {
            struct failure f;
            uint64_t t0 = metrics_now_us();
            write_batch(list, &f);
            metrics_store_commit(!f.failed, metrics_now_us() - t0);
            if (f.failed && retryable(&f)) {
                go_down(list, f.why);
                if (!st.conn) continue; /* reconnect, then write them again */
                /* A transient error on a live connection: try again soon. */
                nap(RECONNECT_MIN_MS);
                atomic_store(&st.down, false);
                continue;
            }
            st.created += store_core_done(list, n, f.failed ? f.why : NULL);
        } else if (stopping) {
            break;
        }
        if (!st.conn) continue;
        bool maintenance = util_now_ms() >= next_maintenance;
        if (maintenance) {
            expire_rows();
            renew_lease();
            /* Not before this node's own recovery is over, and not once
             * its workers stop (the taken jobs could not run here). */
            if (atomic_load(&st.unpark_on) && workers_has_room() != A2AD_ERR_STATE) take_over();
            next_maintenance = util_now_ms() + MAINTENANCE_MS;
        }
        share_work(maintenance);
        if (unpark || maintenance) unpark_rows();
        if (PQstatus(st.conn) == CONNECTION_BAD) {
            char why[200];
            util_one_line(why, sizeof why, PQerrorMessage(st.conn));
            PQfinish(st.conn);
            st.conn = NULL;
            go_down(NULL, why);
        }
    }
    return NULL;
}

/* ---- part "share": offers, claim checks and claims (writer thread) ------ */

/* Offers and claim checks of one round, as one statement after the batch
 * (so after the commit of the rows they name). A check withdraws this
 * node's offer and says who holds the row: when a claimer holds the row
 * locked, the UPDATE waits for its commit and then sees its node. */
static const char share_round_sql[] =
    "WITH c AS (UPDATE a2ad_tasks SET offered = (offered AND node <> $1)"
    " WHERE id = ANY ($3::text[]) RETURNING id, node),"
    " o AS (UPDATE a2ad_tasks SET offered = true WHERE id = ANY ($2::text[]) AND node = $1"
    " AND state = 'submitted' AND NOT offered RETURNING id)"
    " SELECT id, node FROM c";

/* Offered jobs of other nodes for the agents with free workers here, oldest
 * first, as many as each has free workers; only jobs whose outbox is empty
 * (the old holder's webhooks of the task are all delivered, so the new
 * holder's come after them), never this node's own offers back. Nodes
 * claiming at once skip each other's rows. */
static const char share_claim_sql[] =
    "UPDATE a2ad_tasks t SET node = $1, offered = false FROM"
    " (SELECT y.id FROM unnest($2::text[], $3::int[]) AS f(agent, free)"
    " CROSS JOIN LATERAL (SELECT x.id FROM a2ad_tasks x WHERE x.offered"
    " AND x.state = 'submitted' AND x.agent = f.agent AND x.node <> $1"
    " AND NOT (x.id = ANY ($4::text[]))"
    " AND NOT EXISTS (SELECT 1 FROM a2ad_outbox o WHERE o.task_id = x.id)"
    " ORDER BY x.n LIMIT f.free FOR UPDATE SKIP LOCKED) y) c"
    " WHERE t.id = c.id RETURNING t.id, t.agent, t.seq, t.doc, t.ext";

static uint64_t share_logged_ms;

static void share_warn(const char *what, const PGresult *r) {
    uint64_t now = util_now_ms();
    if (share_logged_ms && now - share_logged_ms < 10000) return;
    share_logged_ms = now;
    char why[200];
    util_one_line(why, sizeof why, r ? PQresultErrorMessage(r) : PQerrorMessage(st.conn));
    log_warn("store: %s on %s failed: %s (tried again; logged at most every 10 s)", what,
             st.path, why);
}

/* This node's rows are not offered when it starts: it runs them itself
 * (recovery), and no check guards them. */
static void share_reset(void) {
    const char *v[1] = {st.node};
    PGresult *r = PQexecParams(st.conn, "UPDATE a2ad_tasks SET offered = false WHERE node = $1"
                               " AND offered", 1, NULL, v, NULL, NULL, 0);
    st.round_trips++;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) share_warn("withdrawing old offers", r);
    PQclear(r);
}

static void share_round(void) {
    if (!share_round_pending()) return;
    struct share_ids offers, checks;
    struct share_check *taken;
    if (!share_round_take(&offers, &checks, &taken)) return;
    const char *o = share_ids_text(&offers), *c = share_ids_text(&checks);
    PGresult *r = NULL;
    if (o && c) {
        const char *v[3] = {st.node, o, c};
        r = PQexecParams(st.conn, share_round_sql, 3, NULL, v, NULL, NULL, 0);
        st.round_trips++;
    }
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(r); i++)
            share_round_answer(taken, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
        share_round_done(taken);
    } else {
        share_warn("offering jobs and checking claims", r);
        share_round_failed(&offers, taken);
    }
    PQclear(r);
    share_ids_free(&offers);
    share_ids_free(&checks);
}

/* Forget this node's offered jobs that another node took. */
static void share_forget(struct share_ids *mine) {
    const char *v[2] = {share_ids_text(mine), st.node};
    if (!v[0]) return;
    PGresult *r = PQexecParams(st.conn, "SELECT id FROM a2ad_tasks WHERE id = ANY ($1::text[])"
                               " AND node <> $2", 2, NULL, v, NULL, NULL, 0);
    st.round_trips++;
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        for (int i = 0; i < PQntuples(r); i++) share_taken(PQgetvalue(r, i, 0));
    else
        share_warn("looking up offered jobs", r);
    PQclear(r);
}

/* One claimed row back in memory here, queued as recovery queues a job. */
static void share_restore(const PGresult *r, int row, int64_t now) {
    const char *id = PQgetvalue(r, row, 0), *agent = PQgetvalue(r, row, 1);
    uint64_t seq = strtoull(PQgetvalue(r, row, 2), NULL, 10);
    char *doc = column_bytes(r, row, 3, NULL), *ext = column_bytes(r, row, 4, NULL);
    struct task *t = store_core_restore(id, agent, TASK_SUBMITTED, seq, -1, doc, ext, now);
    if (!t) {
        /* A stale copy here (this node's lease had expired and the job went
         * elsewhere before it came back): the row is what counts. */
        struct task *old = tasks_get(id);
        if (old) {
            workers_withdraw(old);
            tasks_forget(old);
            task_release(old);
            t = store_core_restore(id, agent, TASK_SUBMITTED, seq, -1, doc, ext, now);
        }
    }
    free(doc);
    free(ext);
    if (!t) {
        log_error("store: claimed job %s (agent %s) cannot be restored here; offered again", id,
                  agent);
        const char *v[1] = {id};
        PGresult *u = PQexecParams(st.conn, "UPDATE a2ad_tasks SET offered = true WHERE id = $1",
                                   1, NULL, v, NULL, NULL, 0);
        st.round_trips++;
        PQclear(u);
        return;
    }
    task_lock(t);
    task_annotate_locked(t, "node", cJSON_CreateString(st.node));
    task_unlock(t);
    struct recovery_counts c = {0};
    store_core_recover_task(t, TASK_SUBMITTED, agent, &c, NULL);
    task_release(t);
}

/* Claim offered jobs for the agents with free workers here. */
static void share_claim(struct share_ids *mine) {
    struct workers_free idle[16];
    size_t n = workers_idle(idle, sizeof idle / sizeof idle[0]);
    if (!n) return;
    struct share_ids agents = {0};
    char counts[16 * 24] = "{";
    size_t want = 0, used = 1;
    for (size_t i = 0; i < n; i++) {
        if (!share_ids_add(&agents, idle[i].agent)) {
            share_ids_free(&agents);
            return;
        }
        used += (size_t)snprintf(counts + used, sizeof counts - used, "%s%zu", i ? "," : "",
                                 idle[i].count);
        want += idle[i].count;
    }
    snprintf(counts + used, sizeof counts - used, "}");
    const char *v[4] = {st.node, share_ids_text(&agents), counts, share_ids_text(mine)};
    if (!v[1] || !v[3]) {
        share_ids_free(&agents);
        return;
    }
    PGresult *r = PQexecParams(st.conn, share_claim_sql, 4, NULL, v, NULL, NULL, 0);
    st.round_trips++;
    share_ids_free(&agents);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        share_warn("claiming offered jobs", r);
        PQclear(r);
        return;
    }
    int64_t now = (int64_t)util_wall_ms();
    for (int i = 0; i < PQntuples(r); i++) share_restore(r, i, now);
    if (PQntuples(r))
        log_debug("store: claimed %d offered jobs from other nodes", PQntuples(r));
    share_claimed((size_t)PQntuples(r), want);
    PQclear(r);
}

/* At stop (the writer joined, the workers stopped): this node's queued jobs
 * go on offer, so that the nodes still running run them now rather than
 * after this one's restart (which withdraws what is left: share_reset). */
static void share_leave(void) {
    if (!share_enabled() || !st.conn || atomic_load(&st.down)) return;
    const char *v[1] = {st.node};
    PGresult *r = PQexecParams(st.conn, "UPDATE a2ad_tasks SET offered = true WHERE node = $1"
                               " AND state = 'submitted' AND NOT offered", 1, NULL, v, NULL,
                               NULL, 0);
    st.round_trips++;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        share_warn("offering the queued jobs at stop", r);
    else if (atoi(PQcmdTuples(r)) > 0)
        log_info("store: %s queued jobs offered to the other nodes at stop", PQcmdTuples(r));
    PQclear(r);
}

/* How many other nodes hold a lease, once a second: alone, a node offers
 * nothing and claims nothing (one statement a second is all sharing costs). */
static size_t share_peers(void) {
    static uint64_t next_ms;
    static size_t peers;
    uint64_t now = util_now_ms();
    if (now < next_ms) return peers;
    next_ms = now + 1000;
    /* This node's free workers go out with the same round trip: a node
     * offers its waiting jobs only while another one has room for them
     * (offers nobody can take would only cost claim checks). */
    struct workers_free idle[16];
    size_t n_idle = workers_idle(idle, sizeof idle / sizeof idle[0]), free_here = 0;
    cJSON *by_agent = cJSON_CreateObject();
    for (size_t i = 0; i < n_idle; i++) {
        free_here += idle[i].count;
        cJSON_AddNumberToObject(by_agent, idle[i].agent, (double)idle[i].count);
    }
    char *by_agent_text = by_agent ? cJSON_PrintUnformatted(by_agent) : NULL;
    cJSON_Delete(by_agent);
    char free_text[24];
    snprintf(free_text, sizeof free_text, "%zu", free_here);
    const char *v[3] = {st.node, free_text, by_agent_text ? by_agent_text : "{}"};
    PGresult *r = PQexecParams(
        st.conn,
        "WITH me AS (UPDATE a2ad_nodes SET free_workers = $2, free_by_agent = $3::jsonb"
        " WHERE name = $1),"
        " live AS (SELECT free_by_agent FROM a2ad_nodes"
        " WHERE name <> $1 AND lease_until_ms >= " DB_NOW_MS ")"
        " SELECT (SELECT count(*) FROM live), coalesce((SELECT jsonb_object_agg(k, f)::text FROM"
        " (SELECT e.key AS k, sum(e.value::bigint) AS f FROM live, jsonb_each_text(live.free_by_agent) e"
        " GROUP BY e.key) x), '{}')",
        3, NULL, v, NULL, NULL, 0);
    free(by_agent_text);
    st.round_trips++;
    const char *room = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        peers = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        room = PQgetvalue(r, 0, 1);
    } else {
        share_warn("counting the other nodes", r);
    }
    share_set_peers(peers, room);
    PQclear(r);
    return peers;
}

/* After every batch: the round of offers and checks; on the maintenance
 * tick (or when a worker went idle while jobs were on offer): offer the
 * jobs that waited long enough, forget the offered jobs taken, then
 * claim. Not before this node's own recovery is over (its jobs first), nor
 * while its workers stop. */
static void share_work(bool maintenance) {
    if (!share_enabled()) return;
    if (maintenance && share_peers()) share_promote();
    share_round();
    if (!atomic_load(&st.unpark_on) || !share_claim_due(maintenance)) return;
    struct share_ids mine;
    if (!share_offered_ids(&mine)) return;
    if (maintenance && mine.n) share_forget(&mine);
    if (share_peers()) share_claim(&mine);
    share_ids_free(&mine);
}

/* ---- open, recover, close ----------------------------------------------- */

/* Version 1. Text that a task or a webhook carries goes in bytea: the
 * database's encoding cannot refuse it. n orders unfinished tasks as they
 * were created (recovery runs them in that order). */
static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS a2ad_tasks ("
    " n bigserial UNIQUE, id text PRIMARY KEY, agent text NOT NULL, state text NOT NULL,"
    " seq bigint NOT NULL, ended_ms bigint, doc bytea NOT NULL, ext bytea NOT NULL);"
    "CREATE INDEX IF NOT EXISTS a2ad_tasks_ended ON a2ad_tasks (ended_ms)"
    " WHERE ended_ms IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS a2ad_outbox ("
    " n bigserial PRIMARY KEY, event_id text NOT NULL UNIQUE, task_id text,"
    " order_key text NOT NULL, url text NOT NULL, headers bytea NOT NULL, body bytea NOT NULL,"
    " essential smallint NOT NULL, created_ms bigint NOT NULL,"
    " parked smallint NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS a2ad_outbox_parked ON a2ad_outbox (n) WHERE parked = 1;";

/* Version 2: rows belong to a node, and nodes hold leases (see the top).
 * Rows of version 1 (node '') go to the first node that starts. */
static const char schema_v2[] =
    "ALTER TABLE a2ad_tasks ADD COLUMN IF NOT EXISTS node text NOT NULL DEFAULT '';"
    "ALTER TABLE a2ad_outbox ADD COLUMN IF NOT EXISTS node text NOT NULL DEFAULT '';"
    "CREATE INDEX IF NOT EXISTS a2ad_tasks_node ON a2ad_tasks (node);"
    "CREATE INDEX IF NOT EXISTS a2ad_outbox_node ON a2ad_outbox (node, n);"
    "CREATE TABLE IF NOT EXISTS a2ad_nodes (name text PRIMARY KEY,"
    " lease_until_ms bigint NOT NULL, started_ms bigint NOT NULL);";

/* Version 3: nodes share work and answer for each other (cluster.c).
 * offered: a queued job its node cannot start yet, which a node with a
 * free worker may claim; a2ad_controls: a request (cancel, push config,
 * watch) from one node to the node that holds a task, and its answer;
 * a2ad_events: the stream events of watched tasks, read by the nodes that
 * stream them. */
static const char schema_v3[] =
    "ALTER TABLE a2ad_tasks ADD COLUMN IF NOT EXISTS offered boolean NOT NULL DEFAULT false;"
    "CREATE INDEX IF NOT EXISTS a2ad_tasks_offered ON a2ad_tasks (agent, n) WHERE offered;"
    "CREATE TABLE IF NOT EXISTS a2ad_controls (id bigserial PRIMARY KEY, task_id text NOT NULL,"
    " from_node text NOT NULL, to_node text NOT NULL, kind text NOT NULL, body bytea NOT NULL,"
    " done boolean NOT NULL DEFAULT false, status integer, result bytea,"
    " created_ms bigint NOT NULL);"
    "CREATE INDEX IF NOT EXISTS a2ad_controls_pending ON a2ad_controls (to_node, id)"
    " WHERE NOT done;"
    "ALTER TABLE a2ad_nodes ADD COLUMN IF NOT EXISTS free_workers integer NOT NULL DEFAULT 0;"
    "CREATE TABLE IF NOT EXISTS a2ad_events (task_id text NOT NULL, seq bigint NOT NULL,"
    " event bytea NOT NULL, created_ms bigint NOT NULL, PRIMARY KEY (task_id, seq));";

/* Version 4: a node's free workers by agent ({"echo": 2}), so that a job is
 * offered only while another node has room for its agent. */
static const char schema_v4[] =
    "ALTER TABLE a2ad_nodes ADD COLUMN IF NOT EXISTS free_by_agent jsonb NOT NULL"
    " DEFAULT '{}'::jsonb;";

/* Run sql (one or more statements); false with why on failure. */
static bool run(PGconn *c, const char *sql, char *why, size_t n) {
    PGresult *r = PQexec(c, sql);
    st.round_trips++;
    ExecStatusType s = PQresultStatus(r);
    bool ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
    if (!ok) util_one_line(why, n, PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

/* Create or upgrade the schema, under an advisory lock so that nodes
 * starting together do not race; refuse one from a newer a2ad. */
static a2ad_status schema_setup(PGconn *c) {
    char why[200] = "";
    if (!run(c, "BEGIN; SELECT pg_advisory_xact_lock(6873312036012041572);"
                "CREATE TABLE IF NOT EXISTS a2ad_schema_version ("
                " version integer NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())",
             why, sizeof why))
        goto fail;
    PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM a2ad_schema_version");
    st.round_trips++;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        util_one_line(why, sizeof why, PQresultErrorMessage(r));
        PQclear(r);
        goto fail;
    }
    int version = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (version > STORE_PG_SCHEMA) {
        run(c, "ROLLBACK", why, sizeof why);
        log_error("store: %s holds a2ad schema version %d, written by a newer a2ad (this one "
                  "reads versions up to %d): upgrade a2ad, or point [tasks] dsn at another "
                  "database",
                  st.path, version, STORE_PG_SCHEMA);
        return A2AD_ERR_STATE;
    }
    if (version < 1 && !run(c, schema_v1, why, sizeof why)) goto fail;
    if (version < 2 && !run(c, schema_v2, why, sizeof why)) goto fail;
    if (version < 3 && !run(c, schema_v3, why, sizeof why)) goto fail;
    if (version < 4 && !run(c, schema_v4, why, sizeof why)) goto fail;
    /* Later versions migrate here, one step at a time, from `version`. */
    if (version < STORE_PG_SCHEMA) {
        char sql[200];
        snprintf(sql, sizeof sql,
                 "DELETE FROM a2ad_schema_version; INSERT INTO a2ad_schema_version (version)"
                 " VALUES (%d)", STORE_PG_SCHEMA);
        if (!run(c, sql, why, sizeof why)) goto fail;
        log_info("store: %s: schema version %d %s", st.path, STORE_PG_SCHEMA,
                 version ? "(upgraded)" : "(created)");
    }
    if (!run(c, "COMMIT", why, sizeof why)) goto fail;
    return A2AD_OK;
fail:
    log_error("store: cannot create the tables of %s: %s", st.path, why);
    PGresult *rb = PQexec(c, "ROLLBACK");
    PQclear(rb);
    return A2AD_ERR_IO;
}

/* The password of [tasks] password_file: its first line. */
static char *read_password(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        log_error("store: cannot read [tasks] password_file %s: %s", path, strerror(errno));
        return NULL;
    }
    char buf[1024];
    char *line = fgets(buf, sizeof buf, f);
    fclose(f);
    if (!line || !*line || *line == '\n' || *line == '\r') {
        log_error("store: [tasks] password_file %s is empty", path);
        return NULL;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    char *copy = strdup(buf);
    memset(buf, 0, sizeof buf);
    return copy;
}

/* This node's lease row, and the rows of version 1 (no node) made ours.
 * A row of the same name still under lease is this node's previous run
 * (after a crash): node names must be unique among running nodes. */
static a2ad_status register_node(char *why, size_t n) {
    char lease[24];
    snprintf(lease, sizeof lease, "%u", st.lease_ms);
    const char *v[2] = {st.node, lease};
    PGresult *r = PQexecParams(
        st.conn,
        "INSERT INTO a2ad_nodes (name, lease_until_ms, started_ms) VALUES ($1, " DB_NOW_MS
        " + $2, " DB_NOW_MS ") ON CONFLICT (name) DO UPDATE SET lease_until_ms ="
        " excluded.lease_until_ms, started_ms = excluded.started_ms",
        2, NULL, v, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) util_one_line(why, n, PQresultErrorMessage(r));
    PQclear(r);
    if (!ok) return A2AD_ERR_IO;
    r = PQexecParams(st.conn, "UPDATE a2ad_tasks SET node = $1 WHERE node = ''", 1, NULL, v, NULL,
                     NULL, 0);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) util_one_line(why, n, PQresultErrorMessage(r));
    PQclear(r);
    if (!ok) return A2AD_ERR_IO;
    r = PQexecParams(st.conn, "UPDATE a2ad_outbox SET node = $1 WHERE node = ''", 1, NULL, v,
                     NULL, NULL, 0);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) util_one_line(why, n, PQresultErrorMessage(r));
    PQclear(r);
    st.round_trips += 3;
    return ok ? A2AD_OK : A2AD_ERR_IO;
}

static void free_conninfo(void) {
    for (size_t i = 0; i < sizeof st.vals / sizeof st.vals[0]; i++) {
        if (st.vals[i]) memset(st.vals[i], 0, strlen(st.vals[i]));
        free(st.vals[i]);
        st.vals[i] = NULL;
    }
    free(st.path);
    st.path = NULL;
    free(st.node);
    st.node = NULL;
}

static a2ad_status open_fail(a2ad_status rc) {
    if (st.conn) PQfinish(st.conn);
    st.conn = NULL;
    free_conninfo();
    return rc;
}

a2ad_status store_pg_open(const struct config *cfg) {
    if (st.open) return A2AD_ERR_STATE;
    st.write_queue = cfg->write_queue;
    st.retention_s = cfg->retention_s;
    st.lease_ms = (cfg->lease_s ? cfg->lease_s : 30) * 1000u;
    char name[256] = "a2ad";
    if (cfg->node_name && *cfg->node_name)
        snprintf(name, sizeof name, "%s", cfg->node_name);
    else if (gethostname(name, sizeof name) != 0 || !*name)
        snprintf(name, sizeof name, "a2ad");
    name[sizeof name - 1] = '\0';
    if (!(st.node = strdup(name))) return open_fail(A2AD_ERR_NOMEM);
    /* The dsn (a "key=value" string or a postgresql:// URI) is expanded
     * in place of dbname; password_file's password comes after it and so
     * wins. A password may also come from PGPASSWORD or ~/.pgpass (libpq). */
    st.keys[0] = "dbname";
    st.vals[0] = strdup(cfg->pg_dsn ? cfg->pg_dsn : "");
    if (!st.vals[0]) return open_fail(A2AD_ERR_NOMEM);
    if (cfg->pg_password_file && *cfg->pg_password_file) {
        st.keys[1] = "password";
        if (!(st.vals[1] = read_password(cfg->pg_password_file))) return open_fail(A2AD_ERR_IO);
    }
    st.path = strdup("PostgreSQL");
    char why[200];
    st.conn = store_pg_connect(why, sizeof why);
    if (!st.conn) {
        log_error("store: cannot connect to PostgreSQL ([tasks] dsn): %s", why);
        return open_fail(A2AD_ERR_IO);
    }
    char path[300];
    const char *host = PQhost(st.conn);
    snprintf(path, sizeof path, "PostgreSQL %s%s%s/%s", host && *host ? host : "localhost",
             host && *host == '/' ? " port " : ":", PQport(st.conn), PQdb(st.conn));
    free(st.path);
    if (!(st.path = strdup(path))) return open_fail(A2AD_ERR_NOMEM);
    if (PQserverVersion(st.conn) < 100000) {
        log_error("store: %s is version %d; a2ad needs PostgreSQL 10 or later", st.path,
                  PQserverVersion(st.conn));
        return open_fail(A2AD_ERR_STATE);
    }
    a2ad_status rc = schema_setup(st.conn);
    if (rc != A2AD_OK) return open_fail(rc);
    if (register_node(why, sizeof why) != A2AD_OK) {
        log_error("store: cannot register node %s in %s: %s", st.node, st.path, why);
        return open_fail(A2AD_ERR_IO);
    }
    share_reset();
    /* Nothing is in memory yet: every undelivered row of this node comes
     * back through parking, in bounded batches (store_pg_recover counts them). */
    const char *nv[1] = {st.node};
    PGresult *pr = PQexecParams(st.conn, "UPDATE a2ad_outbox SET parked = 1 WHERE parked = 0 AND node = $1",
                                1, NULL, nv, NULL, NULL, 0);
    if (PQresultStatus(pr) != PGRES_COMMAND_OK) {
        util_one_line(why, sizeof why, PQresultErrorMessage(pr));
        log_warn("store: cannot mark the outbox of %s for delivery: %s", st.path, why);
    }
    PQclear(pr);
    if (!prepare_all(st.conn, why, sizeof why)) {
        log_error("store: cannot prepare statements on %s: %s", st.path, why);
        return open_fail(A2AD_ERR_IO);
    }
    st.unpark_after = 0;
    atomic_store(&st.unpark_on, false);
    atomic_store(&st.down, false);

    if (cfg->share_jobs) share_start(st.node, cfg->share_after_ms);
    backend.path = st.path;
    backend.node = st.node;
    backend.write_queue = st.write_queue;
    if (store_core_start(&backend, &st.writer, writer_thread) != A2AD_OK)
        return open_fail(A2AD_ERR_IO);
    st.open = true;
    log_info("store: %s (server %d, schema version %d, write queue %u), node %s, lease %u s",
             st.path, PQserverVersion(st.conn), STORE_PG_SCHEMA, st.write_queue, st.node,
             st.lease_ms / 1000);
    return A2AD_OK;
}

/* Undelivered webhook rows (see store.c's recover_outbox). */
static size_t recover_outbox(PGconn *c) {
    const char *v[1] = {st.node};
    PGresult *r = PQexecParams(c, "SELECT order_key, count(*) FROM a2ad_outbox WHERE parked = 1"
                                  " AND node = $1 GROUP BY order_key",
                               1, NULL, v, NULL, NULL, 0);
    size_t n = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char why[200];
        util_one_line(why, sizeof why, PQresultErrorMessage(r));
        log_error("store: cannot read the outbox of %s: %s; its events are sent, but may "
                  "overtake each other", st.path, why);
    } else {
        for (int i = 0; i < PQntuples(r); i++) {
            size_t count = strtoull(PQgetvalue(r, i, 1), NULL, 10);
            webhooks_park_existing(PQgetvalue(r, i, 0), count);
            n += count;
        }
    }
    PQclear(r);
    atomic_store(&st.unpark_on, true);
    store_core_outbox_room();
    return n;
}

/* One row of the tasks query back in memory. */
static void recover_row(const PGresult *r, int row, int64_t now, struct recovery_counts *c,
                        size_t *bad, const char *lost) {
    const char *id = PQgetvalue(r, row, 0);
    const char *agent_name = PQgetvalue(r, row, 1);
    enum task_state state;
    if (!parse_state(PQgetvalue(r, row, 2), &state)) {
        log_warn("store: task %s has an unknown state; left out", id);
        (*bad)++;
        return;
    }
    char *doc = column_bytes(r, row, 5, NULL);
    char *ext_text = column_bytes(r, row, 6, NULL);
    struct task *t = store_core_restore(id, agent_name, state,
                                        strtoull(PQgetvalue(r, row, 3), NULL, 10),
                                        strtoll(PQgetvalue(r, row, 4), NULL, 10), doc, ext_text,
                                        now);
    free(doc);
    free(ext_text);
    if (!t) {
        (*bad)++;
        return;
    }
    if (lost) { /* taken over: this node holds it now */
        task_lock(t);
        task_annotate_locked(t, "node", cJSON_CreateString(st.node));
        task_unlock(t);
    }
    if (task_state_terminal(state)) {
        c->finished++;
        if (lost) store_core_persist(t);
    } else {
        store_core_recover_task(t, state, agent_name, c, lost);
    }
    task_release(t);
}

a2ad_status store_pg_recover(void) {
    if (!st.open) return A2AD_ERR_STATE;
    /* A connection of our own: the writer's belongs to its thread. */
    char why[200];
    PGconn *c = store_pg_connect(why, sizeof why);
    if (!c) {
        log_error("store: cannot read %s: %s", st.path, why);
        return A2AD_ERR_IO;
    }
    size_t webhooks = recover_outbox(c);
    int64_t now = (int64_t)util_wall_ms();
    char cutoff[24];
    snprintf(cutoff, sizeof cutoff, "%lld", (long long)(now - (int64_t)st.retention_s * 1000));
    const char *v[2] = {cutoff, st.node};
    /* Unfinished first in creation order, then finished ones oldest first
     * (the order the expiry list wants); one row at a time in memory. */
    if (PQsendQueryParams(c,
                          "SELECT id, agent, state, seq, ended_ms, doc, ext FROM a2ad_tasks"
                          " WHERE node = $2 AND (ended_ms IS NULL OR ended_ms >= $1)"
                          " ORDER BY ended_ms IS NOT NULL, ended_ms, n",
                          2, NULL, v, NULL, NULL, 0) != 1 ||
        PQsetSingleRowMode(c) != 1) {
        util_one_line(why, sizeof why, PQerrorMessage(c));
        log_error("store: cannot read the tasks of %s: %s", st.path, why);
        PQfinish(c);
        return A2AD_ERR_IO;
    }
    struct recovery_counts counts = {0};
    size_t bad = 0;
    bool failed = false;
    PGresult *r;
    while ((r = PQgetResult(c))) {
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_SINGLE_TUPLE) {
            recover_row(r, 0, now, &counts, &bad, NULL);
        } else if (s != PGRES_TUPLES_OK) {
            util_one_line(why, sizeof why, PQresultErrorMessage(r));
            failed = true;
        }
        PQclear(r);
    }
    PQfinish(c);
    if (failed) {
        log_error("store: cannot read the tasks of %s: %s", st.path, why);
        return A2AD_ERR_IO;
    }
    log_info("store: recovered %zu finished tasks, %zu queued again, %zu re-run (rerun_safe), "
             "%zu interrupted, %zu of unloaded agents failed, %zu rejected on re-validation, "
             "%zu unreadable; %zu webhooks to deliver",
             counts.finished, counts.requeued, counts.rerun, counts.interrupted, counts.orphaned,
             counts.rejected, bad, webhooks);
    return A2AD_OK;
}

void store_pg_close(void) {
    if (!st.open) return;
    store_core_stop();
    pthread_join(st.writer, NULL);
    /* What could not be written (PostgreSQL unreachable until the end). */
    share_leave();
    share_stop();
    size_t lost = store_core_drop_queue();
    if (lost)
        log_error("store: %zu changes not written: %s stayed unreachable until the stop", lost,
                  st.path);
    log_info("store: %s: %llu tasks created in %llu transactions, %llu statements, "
             "%llu round trips",
             st.path, (unsigned long long)st.created, (unsigned long long)st.transactions,
             (unsigned long long)st.statements, (unsigned long long)st.round_trips);
    if (st.conn) PQfinish(st.conn);
    st.conn = NULL;
    webhooks_set_outbox(NULL);
    free_conninfo();
    st.open = false;
    st.round_trips = st.transactions = st.statements = st.created = 0;
}

/* ---- for cluster.c ------------------------------------------------------ */

const char *store_pg_node(void) { return st.node; }
const char *store_pg_path(void) { return st.path; }
