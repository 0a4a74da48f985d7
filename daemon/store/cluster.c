/* cluster - every read and control from every node. See cluster.h.
 *
 * Threads. HTTP threads read rows and send controls through the pool
 * (pool_get/pool_put: at most [tasks] cluster_connections, a request that
 * finds none free waits at most cluster_timeout_ms), and wait for a
 * control's outcome on `replies` (woken by the LISTEN thread, and polling
 * the row every REPLY_POLL_MS in case a notification was missed). The
 * LISTEN thread owns one connection: it runs the controls sent to this
 * node, reads the events of the tasks this node streams from others, and
 * deletes old rows. The observer (any thread that emits an event, task
 * locked) queues the events of watched tasks into the writer's batch.
 *
 * Control rows: the holder claims a pending row by setting done (so an
 * asker that gave up, which also sets done, and the holder never both act
 * on it), runs it, then writes status and result; status NULL with done =
 * claimed but not finished, -1 = the asker gave up.
 */
#include "store/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "front/a2a_v1.h"
#include "front/metrics.h"
#include "log.h"
#include "agents/plugins.h"
#include "delivery/push.h"
#include "front/replay.h"
#include "core/rpc_int.h"
#include "store/share.h"
#include "store/store.h"
#include "store/store_core.h"
#include "store/store_pg.h"
#include "front/streams.h"
#include "util.h"
#include "agents/workers.h"

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000
#define REPLY_POLL_MS 200
#define CONTROLS_PER_PASS 64
#define EVENTS_PER_READ 256
/* Done controls and streamed events are deleted this long after they
 * were written: a streaming node reads events within milliseconds. */
#define KEEP_ROWS_MS 60000
#define CLEAN_EVERY_MS 10000
/* Tasks this node streams from other nodes at once, at most. */
#define MAX_FOLLOWED 4096
#define MAX_ATTEMPTS 3
/* Events a stream resumed with Last-Event-ID gets from a2ad_events, at
 * most (their bytes are bounded by [server] stream_replay_bytes too). */
#define MAX_RESUMED 4096

#define DB_NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"

/* A task of another node that this node streams (LISTEN thread only,
 * once taken from `incoming`). */
struct follow {
    struct follow *next;
    struct task *t; /* detached, held */
    uint64_t last;  /* the last event seq pushed */
    bool dirty;     /* a notification named it: read its events */
    char holder[64]; /* the node asked to write its events ("" = not known) */
    long long started; /* its a2ad_nodes.started_ms (0 = not known): a restart changes it */
    char ctl[24];    /* the watch sent to a new holder, until its outcome is read */
    bool over;       /* its end came from its row (check_holders) */
};

static struct {
    atomic_bool on;
    const char *node, *path;
    char chan[64];
    unsigned timeout_ms;
    size_t max_list;
    unsigned lease_ms; /* this node's [tasks] lease_s, for the nodes' lease age */

    /* the pool */
    pthread_mutex_t plock;
    pthread_cond_t pfree;
    PGconn **idle;
    size_t n_idle, n_open, max;
    uint64_t retry_at;   /* no new connection before (backoff after a failure) */
    unsigned fail_delay; /* the backoff */
    char down_why[200];

    /* control outcomes: bumped and broadcast by the LISTEN thread */
    pthread_mutex_t rlock;
    pthread_cond_t replies;
    uint64_t reply_gen;

    /* the LISTEN thread */
    pthread_t thread;
    bool started;
    atomic_bool stopping;
    int wake[2];
    PGconn *lconn;
    bool pending; /* run the controls sent to this node */
    struct follow *follows;
    pthread_mutex_t flock; /* guards incoming and n_follows */
    struct follow *incoming;
    size_t n_follows;

    /* tasks held here that another node streams (observer) */
    pthread_mutex_t wlock;
    struct hmap *watched;
    atomic_uint n_watched;

    atomic_size_t live_nodes; /* leases held now, this node's included (LISTEN thread) */
} cl = {.plock = PTHREAD_MUTEX_INITIALIZER,
        .pfree = PTHREAD_COND_INITIALIZER,
        .rlock = PTHREAD_MUTEX_INITIALIZER,
        .replies = PTHREAD_COND_INITIALIZER,
        .flock = PTHREAD_MUTEX_INITIALIZER,
        .wlock = PTHREAD_MUTEX_INITIALIZER,
        .wake = {-1, -1}};

static _Thread_local char last_err[400];
static _Thread_local bool last_timed_out; /* the holder did not answer in time */

static void set_err(const char *fmt, ...) A2AD_PRINTF(1, 2);
static void set_err(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_err, sizeof last_err, fmt, ap);
    va_end(ap);
}

const char *cluster_last_error(void) { return last_err; }
bool cluster_active(void) { return atomic_load(&cl.on); }


/* A node's notification channel. Node names are at most 63 bytes and so
 * are channel names: a long name is cut and keeps a hash of the whole. */
static void channel_of(const char *node, char out[64]) {
    size_t n = strlen(node);
    if (n <= 53) {
        snprintf(out, 64, "a2ad_node_%s", node);
        return;
    }
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = node; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    snprintf(out, 64, "a2ad_node_%.36s_%016llx", node, (unsigned long long)h);
}

static void deadline_ts(struct timespec *ts, uint64_t ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- the pool ------------------------------------------------------------ */

/* A connection, waiting until `until` (monotonic ms) for a free one. NULL
 * (cluster_last_error set) when none came or the database is unreachable. */
static PGconn *pool_get(uint64_t until) {
    pthread_mutex_lock(&cl.plock);
    for (;;) {
        if (!atomic_load(&cl.on)) {
            pthread_mutex_unlock(&cl.plock);
            set_err("a2ad is stopping");
            return NULL;
        }
        if (cl.n_idle) {
            PGconn *c = cl.idle[--cl.n_idle];
            pthread_mutex_unlock(&cl.plock);
            return c;
        }
        if (cl.n_open < cl.max) break;
        uint64_t now = util_now_ms();
        if (now >= until) {
            pthread_mutex_unlock(&cl.plock);
            set_err("all %zu connections for other nodes' tasks are busy ([tasks] "
                    "cluster_connections); retry later", cl.max);
            return NULL;
        }
        struct timespec ts;
        deadline_ts(&ts, until - now);
        pthread_cond_timedwait(&cl.pfree, &cl.plock, &ts);
    }
    uint64_t now = util_now_ms();
    if (now < cl.retry_at) { /* failed a moment ago: answer at once */
        set_err("%s is unreachable (%s); retry later", cl.path, cl.down_why);
        pthread_mutex_unlock(&cl.plock);
        return NULL;
    }
    cl.n_open++;
    pthread_mutex_unlock(&cl.plock);
    char why[200];
    PGconn *c = store_pg_connect(why, sizeof why);
    pthread_mutex_lock(&cl.plock);
    if (!c) {
        cl.n_open--;
        cl.fail_delay = cl.fail_delay ? cl.fail_delay * 2 : RECONNECT_MIN_MS;
        if (cl.fail_delay > RECONNECT_MAX_MS) cl.fail_delay = RECONNECT_MAX_MS;
        cl.retry_at = util_now_ms() + cl.fail_delay;
        snprintf(cl.down_why, sizeof cl.down_why, "%s", why);
        pthread_cond_signal(&cl.pfree);
        pthread_mutex_unlock(&cl.plock);
        set_err("%s is unreachable (%s); retry later", cl.path, why);
        return NULL;
    }
    cl.fail_delay = 0;
    cl.retry_at = 0;
    pthread_mutex_unlock(&cl.plock);
    return c;
}

static void pool_put(PGconn *c) {
    if (!c) return;
    bool keep = PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE;
    pthread_mutex_lock(&cl.plock);
    if (keep && atomic_load(&cl.on)) {
        cl.idle[cl.n_idle++] = c;
        c = NULL;
    } else {
        cl.n_open--;
    }
    pthread_cond_signal(&cl.pfree);
    pthread_mutex_unlock(&cl.plock);
    if (c) PQfinish(c); /* no lock held across I/O */
}

/* A query failed: say why, and drop a broken connection. */
static void query_failed(PGconn *c, const PGresult *r) {
    char why[200];
    util_one_line(why, sizeof why, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    set_err("%s: %s; retry later", cl.path, why);
}

/* A read on a pooled connection; one that broke meanwhile (the database
 * restarted) is replaced once. NULL (cluster_last_error set, *c NULL) when
 * no connection came. */
static PGresult *pool_read(PGconn **c, uint64_t until, const char *sql, int n,
                           const char *const *v) {
    PGresult *r = PQexecParams(*c, sql, n, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK || PQstatus(*c) != CONNECTION_BAD) return r;
    PQclear(r);
    pool_put(*c);
    if (!(*c = pool_get(until))) return NULL;
    return PQexecParams(*c, sql, n, NULL, v, NULL, NULL, 0);
}

/* ---- rows as detached tasks --------------------------------------------- */

static char *column_bytes(const PGresult *r, int row, int col) {
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &len);
    char *copy = raw ? malloc(len + 1) : NULL;
    if (copy) {
        memcpy(copy, raw, len);
        copy[len] = '\0';
    }
    PQfreemem(raw);
    return copy;
}

static bool parse_state(const char *name, enum task_state *out) {
    for (int s = TASK_SUBMITTED; s <= TASK_AUTH_REQUIRED; s++)
        if (strcmp(task_state_name((enum task_state)s), name) == 0) {
            *out = (enum task_state)s;
            return true;
        }
    return false;
}

#define ROW_COLUMNS "id, agent, state, seq, ended_ms, doc, ext, node"

/* Row `row` of a ROW_COLUMNS query as a detached task, or NULL. */
static struct task *detach_row(const PGresult *r, int row) {
    enum task_state state;
    if (!parse_state(PQgetvalue(r, row, 2), &state)) return NULL;
    char *doc = column_bytes(r, row, 5);
    char *ext_text = column_bytes(r, row, 6);
    struct task_restore in = {
        .doc = doc ? cJSON_Parse(doc) : NULL,
        .agent = plugins_find(PQgetvalue(r, row, 1)),
        .state = state,
        .seq = strtoull(PQgetvalue(r, row, 3), NULL, 10),
    };
    cJSON *ext = ext_text ? cJSON_Parse(ext_text) : NULL;
    free(doc);
    free(ext_text);
    for (int i = 0; i < TASK_EXT_MAX; i++) {
        const struct task_ext_ops *ops = tasks_ext_ops((enum task_ext_slot)i);
        /* the store's own slot is the holder's bookkeeping */
        if (i == TASK_EXT_STORE || !ops || !ops->name || !ops->load) continue;
        const cJSON *saved = cJSON_GetObjectItemCaseSensitive(ext, ops->name);
        if (saved) in.ext[i] = ops->load(saved);
    }
    cJSON_Delete(ext);
    struct task *t = NULL;
    if (!in.doc) {
        for (int i = 0; i < TASK_EXT_MAX; i++) {
            const struct task_ext_ops *ops = tasks_ext_ops((enum task_ext_slot)i);
            if (in.ext[i] && ops && ops->free) ops->free(in.ext[i]);
        }
        return NULL;
    }
    if (tasks_detached(&in, &t) != A2AD_OK) return NULL;
    /* the row's holder, which the doc may not say yet (a takeover) */
    task_lock(t);
    task_annotate_locked(t, "node", cJSON_CreateString(PQgetvalue(r, row, 7)));
    task_unlock(t);
    return t;
}

a2ad_status cluster_read(const char *id, struct task **out, char *holder, size_t hn) {
    *out = NULL;
    uint64_t until = util_now_ms() + cl.timeout_ms;
    PGconn *c = pool_get(until);
    if (!c) return A2AD_ERR_IO;
    const char *v[1] = {id};
    PGresult *r = pool_read(&c, until, "SELECT " ROW_COLUMNS " FROM a2ad_tasks WHERE id = $1", 1, v);
    if (!r) return A2AD_ERR_IO;
    a2ad_status st = A2AD_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        query_failed(c, r);
        st = A2AD_ERR_IO;
    } else if (PQntuples(r) == 0) {
        st = A2AD_ERR_NOT_FOUND;
    } else {
        if (holder) snprintf(holder, hn, "%s", PQgetvalue(r, 0, 7));
        if (!(*out = detach_row(r, 0))) {
            log_warn("cluster: task %s's row cannot be read", id);
            st = A2AD_ERR_NOT_FOUND;
        }
    }
    PQclear(r);
    pool_put(c);
    return st;
}

a2ad_status cluster_list(size_t max, struct task ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!max || max > cl.max_list) max = cl.max_list;
    uint64_t until = util_now_ms() + cl.timeout_ms;
    PGconn *c = pool_get(until);
    if (!c) return A2AD_ERR_IO;
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", max);
    const char *v[2] = {cl.node, lim};
    PGresult *r = pool_read(&c, until,
                            "SELECT " ROW_COLUMNS " FROM a2ad_tasks WHERE node <> $1"
                            " ORDER BY n DESC LIMIT $2",
                            2, v);
    if (!r) return A2AD_ERR_IO;
    a2ad_status st = A2AD_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        query_failed(c, r);
        st = A2AD_ERR_IO;
    } else {
        int rows = PQntuples(r);
        struct task **a = malloc(((size_t)rows + 1) * sizeof *a);
        if (!a) st = A2AD_ERR_NOMEM;
        for (int i = 0; a && i < rows; i++) {
            /* a stale row of a task this node took meanwhile: its own copy wins */
            struct task *mine = tasks_get(PQgetvalue(r, i, 0));
            if (mine) {
                task_release(mine);
                continue;
            }
            struct task *t = detach_row(r, i);
            if (t) a[(*n)++] = t;
        }
        *out = a;
    }
    PQclear(r);
    pool_put(c);
    return st;
}

/* ---- blocking sends to other nodes' tasks (asker) ----------------------- */

/* A blocking send through this node waiting for the answer to its message
 * on another node's task (LISTEN thread only, once taken from incoming). */
struct await {
    struct await *next;
    struct task *t; /* detached, held; the HTTP request waits on it */
    uint64_t after; /* the row's seq before the message */
    bool dirty;     /* read its row at the next pass */
};

/* Blocking sends this node waits for at once, at most. */
#define MAX_AWAITED 4096

static struct {
    pthread_mutex_t lock; /* guards incoming and n */
    struct await *incoming;
    size_t n;
    struct await *list;
} aw = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void poke(void);

a2ad_status cluster_await(struct task *t, uint64_t after) {
    struct await *w = calloc(1, sizeof *w);
    if (!w) {
        set_err("out of memory");
        return A2AD_ERR_NOMEM;
    }
    pthread_mutex_lock(&aw.lock);
    bool room = aw.n < MAX_AWAITED;
    if (room) {
        task_retain(t);
        w->t = t;
        w->after = after;
        w->dirty = true; /* the answer may have come already */
        w->next = aw.incoming;
        aw.incoming = w;
        aw.n++;
    }
    pthread_mutex_unlock(&aw.lock);
    if (!room) {
        free(w);
        set_err("this node waits for the answers of %d tasks of other nodes already; retry "
                "later", MAX_AWAITED);
        return A2AD_ERR_FULL;
    }
    poke();
    return A2AD_OK;
}

static void await_free(struct await *w) {
    task_release(w->t);
    free(w);
    pthread_mutex_lock(&aw.lock);
    aw.n--;
    pthread_mutex_unlock(&aw.lock);
}

static void await_mark(const char *tid) {
    for (struct await *w = aw.list; w; w = w->next)
        if (strcmp(task_id(w->t), tid) == 0) w->dirty = true;
}

/* The ids of the waits to read (all, or those an event named) into ids:
 * false when there are none (or no memory). */
static bool await_ids(bool all, struct share_ids *ids) {
    for (struct await *w = aw.list; w; w = w->next)
        if ((all || w->dirty) && !share_ids_add(ids, task_id(w->t))) return false;
    return ids->n > 0;
}

/* Read the rows of the waits (all, or those an event named) and end those
 * whose task answered: a terminal state, or an interrupted one written
 * after the message; a row gone ends its wait too (the reply says so). */
static void await_pass(bool all) {
    pthread_mutex_lock(&aw.lock);
    struct await *in = aw.incoming;
    aw.incoming = NULL;
    pthread_mutex_unlock(&aw.lock);
    while (in) {
        struct await *n = in->next;
        in->next = aw.list;
        aw.list = in;
        in = n;
    }
    if (!cl.lconn) return;
    struct share_ids ids = {0};
    const char *v[1] = {await_ids(all, &ids) ? share_ids_text(&ids) : NULL};
    if (!v[0]) {
        share_ids_free(&ids);
        return;
    }
    PGresult *r = PQexecParams(cl.lconn,
                               "SELECT id, state, seq FROM a2ad_tasks WHERE id = ANY($1::text[])",
                               1, NULL, v, NULL, NULL, 0);
    share_ids_free(&ids);
    struct hmap *rows = PQresultStatus(r) == PGRES_TUPLES_OK ? hmap_new(64) : NULL;
    bool ok = rows != NULL;
    for (int i = 0; ok && i < PQntuples(r); i++)
        ok = hmap_put(rows, PQgetvalue(r, i, 0), (void *)(uintptr_t)(i + 1)) == A2AD_OK;
    if (!ok) { /* the connection check after the pass deals with it; or polled again */
        hmap_free(rows);
        PQclear(r);
        return;
    }
    for (struct await **pp = &aw.list; *pp;) {
        struct await *w = *pp;
        if (!all && !w->dirty) {
            pp = &w->next;
            continue;
        }
        w->dirty = false;
        uintptr_t row = (uintptr_t)hmap_get(rows, task_id(w->t));
        enum task_state s = TASK_FAILED; /* no row left */
        bool answered = row == 0;
        if (row && parse_state(PQgetvalue(r, (int)row - 1, 1), &s)) {
            uint64_t seq = strtoull(PQgetvalue(r, (int)row - 1, 2), NULL, 10);
            answered = task_state_terminal(s) || (task_state_interrupted(s) && seq > w->after);
        }
        if (!answered) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        task_detached_set_state(w->t, s); /* its waiter resumes the request */
        await_free(w);
    }
    hmap_free(rows);
    PQclear(r);
}

static void await_free_all(void) {
    pthread_mutex_lock(&aw.lock);
    struct await *in = aw.incoming;
    aw.incoming = NULL;
    pthread_mutex_unlock(&aw.lock);
    while (in) {
        struct await *n = in->next;
        await_free(in);
        in = n;
    }
    while (aw.list) {
        struct await *n = aw.list->next;
        await_free(aw.list);
        aw.list = n;
    }
}

/* ---- controls: the asker ------------------------------------------------ */

/* Wait until the LISTEN thread saw a reply after generation gen, or ms. */
static void wait_reply(uint64_t gen, uint64_t ms) {
    struct timespec ts;
    deadline_ts(&ts, ms);
    pthread_mutex_lock(&cl.rlock);
    while (cl.reply_gen == gen && atomic_load(&cl.on))
        if (pthread_cond_timedwait(&cl.replies, &cl.rlock, &ts) == ETIMEDOUT) break;
    pthread_mutex_unlock(&cl.rlock);
}

static uint64_t reply_gen(void) {
    pthread_mutex_lock(&cl.rlock);
    uint64_t g = cl.reply_gen;
    pthread_mutex_unlock(&cl.rlock);
    return g;
}

/* One try: -1 = a2ad_status in *st; else the outcome. */
static int control_once(const char *id, const char *kind, const char *body, uint64_t until,
                        char *holder, size_t hn, cJSON **result, a2ad_status *st) {
    PGconn *c = pool_get(until);
    if (!c) {
        *st = A2AD_ERR_IO;
        return -1;
    }
    const char *v1[1] = {id};
    PGresult *r = pool_read(&c, until,
                            "SELECT t.node, coalesce(n.lease_until_ms >= " DB_NOW_MS
                            ", false) FROM a2ad_tasks t LEFT JOIN a2ad_nodes n ON"
                            " n.name = t.node WHERE t.id = $1",
                            1, v1);
    if (!r) {
        *st = A2AD_ERR_IO;
        return -1;
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) == 0) {
        *st = PQresultStatus(r) == PGRES_TUPLES_OK ? A2AD_ERR_NOT_FOUND : A2AD_ERR_IO;
        if (*st == A2AD_ERR_IO) query_failed(c, r);
        PQclear(r);
        pool_put(c);
        return -1;
    }
    snprintf(holder, hn, "%s", PQgetvalue(r, 0, 0));
    bool alive = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    PQclear(r);
    if (strcmp(holder, cl.node) == 0) {
        pool_put(c);
        *st = A2AD_ERR_STATE;
        return -1;
    }
    if (!alive) {
        pool_put(c);
        set_err("task %s is held by node %s, which does not answer (its lease expired): another "
                "node takes its tasks over; retry later", id, holder);
        *st = A2AD_ERR_IO;
        return -1;
    }
    char chan[64], now[24];
    channel_of(holder, chan);
    snprintf(now, sizeof now, "%llu", (unsigned long long)util_wall_ms());
    const char *v[7] = {id, cl.node, holder, kind, body, now, chan};
    int len[7] = {0, 0, 0, 0, (int)strlen(body), 0, 0};
    int fmt[7] = {0, 0, 0, 0, 1, 0, 0};
    r = PQexecParams(c,
                     "WITH i AS (INSERT INTO a2ad_controls (task_id, from_node, to_node, kind,"
                     " body, created_ms) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id)"
                     " SELECT id, pg_notify($7, 'c' || id) FROM i",
                     7, NULL, v, len, fmt, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        query_failed(c, r);
        PQclear(r);
        pool_put(c);
        *st = A2AD_ERR_IO;
        return -1;
    }
    char cid[24];
    snprintf(cid, sizeof cid, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    pool_put(c);
    /* The outcome: woken by the LISTEN thread, or polled. */
    bool gave_up = false;
    for (;;) {
        uint64_t gen = reply_gen();
        uint64_t left = until > util_now_ms() ? until - util_now_ms() : 0;
        /* a last read after the bound, to find an outcome that just came */
        c = pool_get(util_now_ms() + (left ? left : REPLY_POLL_MS));
        if (!c) {
            *st = A2AD_ERR_IO;
            return -1;
        }
        const char *cv[1] = {cid};
        r = PQexecParams(c, "SELECT done, status, result FROM a2ad_controls WHERE id = $1", 1,
                         NULL, cv, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            query_failed(c, r);
            PQclear(r);
            pool_put(c);
            *st = A2AD_ERR_IO;
            return -1;
        }
        bool done = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        bool answered = done && !PQgetisnull(r, 0, 1) && atoi(PQgetvalue(r, 0, 1)) >= 0;
        if (answered) {
            int outcome = atoi(PQgetvalue(r, 0, 1));
            if (!PQgetisnull(r, 0, 2)) {
                char *text = column_bytes(r, 0, 2);
                *result = text ? cJSON_Parse(text) : NULL;
                free(text);
            }
            PQclear(r);
            pool_put(c);
            return outcome;
        }
        PQclear(r);
        if (gave_up || left == 0) {
            /* Give up: a control nobody claimed is withdrawn, so it is not
             * done later behind the caller's back. */
            r = PQexecParams(c, "UPDATE a2ad_controls SET done = true, status = -1"
                                " WHERE id = $1 AND NOT done", 1, NULL, cv, NULL, NULL, 0);
            bool withdrawn = PQresultStatus(r) == PGRES_COMMAND_OK &&
                             strcmp(PQcmdTuples(r), "1") == 0;
            PQclear(r);
            pool_put(c);
            if (!withdrawn && !gave_up) { /* claimed meanwhile: read its outcome once more */
                gave_up = true;
                continue;
            }
            last_timed_out = true;
            set_err("node %s, which holds task %s, did not answer within %u ms ([tasks] "
                    "cluster_timeout_ms): %s; retry later",
                    holder, id, cl.timeout_ms,
                    withdrawn ? "nothing was done" : "it took the request but did not finish it");
            *st = A2AD_ERR_IO;
            return -1;
        }
        pool_put(c);
        left = until > util_now_ms() ? until - util_now_ms() : 0;
        wait_reply(gen, left < REPLY_POLL_MS ? left : REPLY_POLL_MS);
    }
}

a2ad_status cluster_control(const char *id, const char *kind, const cJSON *body,
                            enum cluster_outcome *outcome, cJSON **result) {
    *result = NULL;
    if (!atomic_load(&cl.on)) {
        set_err("a2ad is stopping");
        return A2AD_ERR_IO;
    }
    char *text = body ? cJSON_PrintUnformatted(body) : strdup("{}");
    if (!text) {
        set_err("out of memory");
        return A2AD_ERR_NOMEM;
    }
    uint64_t until = util_now_ms() + cl.timeout_ms;
    uint64_t t0 = metrics_now_us();
    last_timed_out = false;
    char holder[256] = "";
    a2ad_status st = A2AD_OK;
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        int o = control_once(id, kind, text, until, holder, sizeof holder, result, &st);
        if (o < 0) break;
        if (o == CLUSTER_MOVED) { /* claimed or taken over meanwhile: read the row again */
            cJSON_Delete(*result);
            *result = NULL;
            st = A2AD_ERR_IO;
            set_err("task %s moved between nodes while it was asked (last held by %s); retry",
                    id, holder);
            continue;
        }
        *outcome = (enum cluster_outcome)o;
        st = A2AD_OK;
        break;
    }
    free(text);
    enum metrics_control mo = st == A2AD_ERR_NOT_FOUND ? METRICS_CTL_NOT_FOUND
                              : st == A2AD_ERR_STATE   ? METRICS_CTL_LOCAL
                              : st != A2AD_OK          ? (last_timed_out ? METRICS_CTL_TIMEOUT
                                                                         : METRICS_CTL_ERROR)
                              : *outcome == CLUSTER_DONE    ? METRICS_CTL_DONE
                              : *outcome == CLUSTER_REFUSED ? METRICS_CTL_REFUSED
                                                            : METRICS_CTL_FAILED;
    metrics_cluster_control(kind, mo, metrics_now_us() - t0);
    return st;
}

/* ---- controls: the holder (LISTEN thread) -------------------------------- */

static cJSON *message_result(const char *fmt, ...) A2AD_PRINTF(1, 2);
static cJSON *message_result(const char *fmt, ...) {
    char m[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", m);
    return o;
}

/* Queue one stream event of a watched task into the writer's batch. */
static void queue_event(const char *tid, uint64_t seq, char *text) {
    struct op *o = text ? calloc(1, sizeof *o) : NULL;
    if (o) o->id = strdup(tid);
    if (!o || !o->id) {
        free(text);
        if (o) free(o);
        log_error("cluster: task %s: out of memory writing stream event %llu", tid,
                  (unsigned long long)seq);
        return;
    }
    o->kind = OP_EVENT;
    o->seq = seq;
    o->body = text;
    o->len = strlen(text);
    o->ended_ms = -1;
    o->created_ms = util_wall_ms();
    if (store_core_append(o, o, 1, false) != A2AD_OK) store_core_op_free(o);
}

static int do_watch(struct task *t, const cJSON *body, cJSON **result) {
    const cJSON *after = cJSON_GetObjectItemCaseSensitive(body, "after");
    uint64_t from = cJSON_IsNumber(after) && after->valuedouble > 0 ? (uint64_t)after->valuedouble : 0;
    task_lock(t);
    bool complete = true;
    cJSON *evs = replay_after_locked(t, from, &complete);
    const cJSON *x;
    cJSON_ArrayForEach(x, evs) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(x, "seq");
        char *text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(x, "event"));
        if (cJSON_IsNumber(seq)) queue_event(task_id(t), (uint64_t)seq->valuedouble, text);
        else free(text);
    }
    cJSON_Delete(evs);
    uint64_t now = task_seq_locked(t);
    /* From now on, under the same lock, every event goes out too. */
    if (!task_state_terminal(task_get_state_locked(t))) {
        pthread_mutex_lock(&cl.wlock);
        if (!cl.watched) cl.watched = hmap_new(64);
        if (cl.watched && !hmap_get(cl.watched, task_id(t)) &&
            hmap_put(cl.watched, task_id(t), &cl) == A2AD_OK)
            atomic_fetch_add(&cl.n_watched, 1);
        pthread_mutex_unlock(&cl.wlock);
    }
    task_unlock(t);
    /* A stream resumed with Last-Event-ID reads them back at once, or else
     * starts from the row: answer once both are committed (the writer keeps
     * its order), the row at `now` at least. */
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "sync")) && store_persist(t) != A2AD_OK)
        log_warn("cluster: task %s: the events of a resumed stream are not written yet: %s",
                 task_id(t), store_last_error());
    *result = complete ? cJSON_CreateObject() : message_result("some events were no longer kept");
    cJSON_AddNumberToObject(*result, "seq", (double)now); /* the last one written */
    return CLUSTER_DONE;
}

/* Run one control on the task held here. */
static int do_control(const char *tid, const char *kind, const cJSON *body, cJSON **result) {
    struct task *t = tasks_get(tid);
    if (t && !share_hold(t)) { /* an offered job another node claimed: ask it */
        task_release(t);
        t = NULL;
    }
    if (!t) return CLUSTER_MOVED;
    int out = CLUSTER_DONE;
    if (strcmp(kind, "cancel") == 0) {
        if (task_cancel(t) == A2AD_OK) {
            /* answered once the canceled row is committed, if it can be */
            if (store_persist(t) != A2AD_OK)
                log_warn("cluster: task %s canceled, its row not written yet: %s", tid,
                         store_last_error());
        } else {
            out = CLUSTER_REFUSED; /* the asker says why (1.0: idempotent) */
        }
        /* the task as it is here: the row may lag while the database is away */
        *result = cJSON_CreateObject();
        cJSON_AddItemToObject(*result, "task", task_render(t, -1));
    } else if (strcmp(kind, "push-set") == 0) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(body, "dialect");
        enum a2a_dialect dialect =
            cJSON_IsString(d) && strcmp(d->valuestring, "1.0") == 0 ? A2A_V10 : A2A_V03;
        struct push_config pc;
        struct rpc_fail f = {0};
        char id[PUSH_ID_MAX + 1];
        a2ad_status st;
        if (!rpc_parse_push(cJSON_GetObjectItemCaseSensitive(body, "config"), dialect, "params",
                            &pc, &f)) {
            out = CLUSTER_FAILED;
            *result = message_result("%s", f.message);
        } else if ((st = push_config_set(t, &pc, id)) != A2AD_OK) {
            out = CLUSTER_FAILED;
            *result = message_result(
                st == A2AD_ERR_FULL ? "task %s has the most push notification configs allowed "
                                      "([webhooks] max_configs_per_task); delete one first"
                                    : "task %s: cannot store the push notification config",
                tid);
            if (st == A2AD_ERR_FULL) cJSON_AddBoolToObject(*result, "full", true);
        } else if ((st = store_persist(t)) != A2AD_OK) {
            push_config_delete(t, id);
            out = CLUSTER_FAILED;
            *result = message_result("task %s: the push notification config was not stored: %s",
                                     tid, store_last_error());
        } else {
            *result = cJSON_CreateObject();
            cJSON_AddStringToObject(*result, "id", id);
        }
    } else if (strcmp(kind, "push-delete") == 0) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "id");
        if (cJSON_IsString(id) && push_config_delete(t, id->valuestring) == A2AD_OK &&
            store_persist(t) != A2AD_OK)
            log_warn("cluster: task %s: a deleted push config not written yet: %s", tid,
                     store_last_error());
    } else if (strcmp(kind, "watch") == 0) {
        out = do_watch(t, body, result);
    } else if (strcmp(kind, "message") == 0) { /* the next turn of the conversation */
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "message");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(body, "history");
        cJSON *msg = cJSON_IsObject(m) ? cJSON_Duplicate(m, 1) : NULL;
        cJSON *copy = msg ? cJSON_Duplicate(m, 1) : NULL;
        if (!copy || task_add_message(t, msg) != A2AD_OK) { /* msg taken either way */
            if (!copy) cJSON_Delete(msg);
            out = CLUSTER_REFUSED;
        } else {
            workers_deliver_message(t, copy);
            if (store_persist(t) != A2AD_OK) /* the asker reads the row it wrote */
                log_warn("cluster: task %s: the message is not written yet: %s", tid,
                         store_last_error());
        }
        cJSON_Delete(copy);
        *result = cJSON_CreateObject();
        cJSON_AddItemToObject(*result, "task",
                              task_render(t, cJSON_IsNumber(h) ? h->valueint : -1));
    } else {
        out = CLUSTER_FAILED;
        *result = message_result("unknown control %s", kind);
    }
    task_release(t);
    return out;
}

/* The controls sent to this node: claim, run, answer. */
static void run_controls(void) {
    const char *v[1] = {cl.node};
    PGresult *r = PQexecParams(cl.lconn,
                               "UPDATE a2ad_controls SET done = true WHERE id IN (SELECT id FROM"
                               " a2ad_controls WHERE to_node = $1 AND NOT done ORDER BY id LIMIT "
                               "64 FOR UPDATE SKIP LOCKED) RETURNING id, task_id, from_node, kind,"
                               " body",
                               1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        char why[200];
        util_one_line(why, sizeof why, PQresultErrorMessage(r));
        log_warn("cluster: cannot read the requests of other nodes from %s: %s", cl.path, why);
        PQclear(r);
        return;
    }
    int n = PQntuples(r);
    if (n >= CONTROLS_PER_PASS) cl.pending = true;
    for (int i = 0; i < n; i++) {
        char *btext = column_bytes(r, i, 4);
        cJSON *body = btext ? cJSON_Parse(btext) : NULL;
        free(btext);
        cJSON *result = NULL;
        int outcome = do_control(PQgetvalue(r, i, 1), PQgetvalue(r, i, 3), body, &result);
        if (outcome != CLUSTER_MOVED) metrics_cluster_served(PQgetvalue(r, i, 3));
        cJSON_Delete(body);
        char *rtext = result ? cJSON_PrintUnformatted(result) : NULL;
        cJSON_Delete(result);
        char chan[64], status[8];
        channel_of(PQgetvalue(r, i, 2), chan);
        snprintf(status, sizeof status, "%d", outcome);
        const char *w[4] = {PQgetvalue(r, i, 0), status, rtext, chan};
        int len[4] = {0, 0, rtext ? (int)strlen(rtext) : 0, 0};
        int fmt[4] = {0, 0, 1, 0};
        PGresult *u = PQexecParams(cl.lconn,
                                   "WITH u AS (UPDATE a2ad_controls SET status = $2, result = $3"
                                   " WHERE id = $1 RETURNING id) SELECT pg_notify($4, 'r' || id)"
                                   " FROM u",
                                   4, NULL, w, len, fmt, 0);
        if (PQresultStatus(u) != PGRES_TUPLES_OK) {
            char why[200];
            util_one_line(why, sizeof why, PQresultErrorMessage(u));
            log_warn("cluster: cannot answer node %s's request on task %s: %s",
                     PQgetvalue(r, i, 2), PQgetvalue(r, i, 1), why);
        }
        PQclear(u);
        free(rtext);
    }
    PQclear(r);
}

/* ---- the observer: watched tasks' events into the batch ------------------ */

static a2ad_status cluster_observe(struct task *t, const struct task_event *ev) {
    if (!atomic_load(&cl.n_watched) || ev->kind == TASK_EVENT_CREATED) return A2AD_OK;
    pthread_mutex_lock(&cl.wlock);
    bool watched = cl.watched && hmap_get(cl.watched, task_id(t));
    if (watched && ev->terminal) {
        hmap_remove(cl.watched, task_id(t));
        atomic_fetch_sub(&cl.n_watched, 1);
    }
    pthread_mutex_unlock(&cl.wlock);
    if (!watched) return A2AD_OK;
    cJSON *e = a2a_event(t, ev, A2A_V03); /* as replay.c keeps it */
    char *text = e ? cJSON_PrintUnformatted(e) : NULL;
    cJSON_Delete(e);
    queue_event(task_id(t), ev->seq, text);
    return A2AD_OK;
}

void cluster_init(void) { tasks_add_observer(cluster_observe); }

/* ---- streams of other nodes' tasks (asker) ------------------------------ */

static void poke(void) {
    if (cl.wake[1] >= 0) {
        ssize_t w = write(cl.wake[1], "x", 1);
        (void)w;
    }
}

/* The watch control; *res: the holder's answer (new, or NULL). */
static a2ad_status watch_control(struct task *t, uint64_t after, bool sync, cJSON **res) {
    pthread_mutex_lock(&cl.flock);
    bool room = cl.n_follows < MAX_FOLLOWED;
    pthread_mutex_unlock(&cl.flock);
    if (!room) {
        set_err("this node streams %d tasks of other nodes already; retry later", MAX_FOLLOWED);
        return A2AD_ERR_FULL;
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddNumberToObject(body, "after", (double)after);
    if (sync) cJSON_AddBoolToObject(body, "sync", true);
    enum cluster_outcome o = CLUSTER_FAILED;
    a2ad_status st = cluster_control(task_id(t), "watch", body, &o, res);
    cJSON_Delete(body);
    if (st == A2AD_OK && o != CLUSTER_DONE) {
        set_err("node holding task %s refused to stream it", task_id(t));
        st = A2AD_ERR_IO;
    }
    return st;
}

a2ad_status cluster_watch(struct task *t, uint64_t after) {
    cJSON *res = NULL;
    a2ad_status st = watch_control(t, after, false, &res);
    cJSON_Delete(res);
    return st;
}

a2ad_status cluster_watch_from(struct task *t, uint64_t after, bool sync, bool *complete,
                               uint64_t *now) {
    *complete = false;
    *now = 0;
    cJSON *res = NULL;
    a2ad_status st = watch_control(t, after, sync, &res);
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(res, "seq");
    if (st == A2AD_OK && cJSON_IsNumber(seq)) {
        *now = (uint64_t)seq->valuedouble;
        *complete = !cJSON_HasObjectItem(res, "message");
    }
    cJSON_Delete(res);
    return st;
}

a2ad_status cluster_resume(struct task *t, uint64_t after, size_t max_bytes, cJSON **missed,
                           uint64_t *now) {
    *missed = NULL;
    bool complete;
    a2ad_status st = cluster_watch_from(t, after, true, &complete, now);
    if (st != A2AD_OK || !*now) return st; /* (a holder that does not say: the task as it is) */
    /* Events 2.. are the ones streams see (1 is CREATED), as replay.c. */
    uint64_t want = after + 1 < 2 ? 2 : after + 1;
    if (want > *now) {
        *missed = cJSON_CreateArray();
        return *missed ? A2AD_OK : A2AD_ERR_NOMEM;
    }
    if (*now - want >= MAX_RESUMED || !max_bytes) return A2AD_OK;
    uint64_t until = util_now_ms() + cl.timeout_ms;
    PGconn *c = pool_get(until);
    if (!c) return A2AD_ERR_IO;
    char lo[24], hi[24];
    snprintf(lo, sizeof lo, "%llu", (unsigned long long)want);
    snprintf(hi, sizeof hi, "%llu", (unsigned long long)*now);
    const char *v[3] = {task_id(t), lo, hi};
    PGresult *r = pool_read(&c, until,
                            "SELECT seq, event FROM a2ad_events WHERE task_id = $1 AND seq >= $2"
                            " AND seq <= $3 ORDER BY seq",
                            3, v);
    if (!r) return A2AD_ERR_IO;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        query_failed(c, r);
        PQclear(r);
        pool_put(c);
        return A2AD_ERR_IO;
    }
    /* All of them, contiguous, within the bound a local replay has; else
     * the caller starts from the task as it is now. */
    cJSON *list = cJSON_CreateArray();
    uint64_t next = want;
    size_t bytes = 0;
    for (int i = 0; list && i < PQntuples(r); i++) {
        uint64_t s = strtoull(PQgetvalue(r, i, 0), NULL, 10);
        char *text = column_bytes(r, i, 1);
        bytes += text ? strlen(text) : 0;
        cJSON *ev = text && s == next && bytes <= max_bytes ? cJSON_Parse(text) : NULL;
        free(text);
        cJSON *x = ev ? cJSON_CreateObject() : NULL;
        if (!x) {
            cJSON_Delete(ev);
            cJSON_Delete(list);
            list = NULL;
            break;
        }
        cJSON_AddNumberToObject(x, "seq", (double)s);
        cJSON_AddItemToObject(x, "event", ev);
        cJSON_AddItemToArray(list, x);
        next = s + 1;
    }
    PQclear(r);
    pool_put(c);
    if (list && next != *now + 1) {
        cJSON_Delete(list);
        list = NULL;
    }
    *missed = list;
    return A2AD_OK;
}

void cluster_follow(struct task *t, uint64_t after) {
    struct follow *f = calloc(1, sizeof *f);
    if (!f) return;
    task_retain(t);
    f->t = t;
    f->last = after;
    f->dirty = true;
    task_lock(t); /* the holder its row named: the one watch went to */
    const cJSON *holder = task_annotation_locked(t, "node");
    if (cJSON_IsString(holder)) snprintf(f->holder, sizeof f->holder, "%s", holder->valuestring);
    task_unlock(t);
    pthread_mutex_lock(&cl.flock);
    f->next = cl.incoming;
    cl.incoming = f;
    cl.n_follows++;
    pthread_mutex_unlock(&cl.flock);
    poke();
}

static void follow_free(struct follow *f) {
    task_release(f->t);
    free(f);
    pthread_mutex_lock(&cl.flock);
    cl.n_follows--;
    pthread_mutex_unlock(&cl.flock);
}

/* New events of one followed task; false when it is over (final event,
 * or no stream left). */
static bool read_events(struct follow *f) {
    if (!streams_linked(f->t)) return false;
    char last[24], lim[8];
    snprintf(last, sizeof last, "%llu", (unsigned long long)f->last);
    snprintf(lim, sizeof lim, "%d", EVENTS_PER_READ);
    const char *v[3] = {task_id(f->t), last, lim};
    PGresult *r = PQexecParams(cl.lconn,
                               "SELECT seq, event FROM a2ad_events WHERE task_id = $1 AND seq > $2"
                               " ORDER BY seq LIMIT $3",
                               3, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return true; /* the connection check after the pass deals with it */
    }
    int n = PQntuples(r);
    bool more = true;
    for (int i = 0; i < n && more; i++) {
        uint64_t seq = strtoull(PQgetvalue(r, i, 0), NULL, 10);
        char *text = column_bytes(r, i, 1);
        if (text && seq > f->last) more = !streams_push_event(f->t, seq, text);
        free(text);
        f->last = seq;
    }
    f->dirty = n >= EVENTS_PER_READ;
    PQclear(r);
    return more;
}

/* ---- streams that outlive their holder (LISTEN thread) ------------------ */

/* The task's row says it ended after its holder changed: its streams get
 * the events they miss from the row's replay log (replay.c saves it with
 * a task's last event), else its final status, and end. */
static void end_from_row(struct follow *f) {
    const char *v[1] = {task_id(f->t)};
    PGresult *r = PQexecParams(cl.lconn, "SELECT " ROW_COLUMNS " FROM a2ad_tasks WHERE id = $1",
                               1, NULL, v, NULL, NULL, 0);
    struct task *nt = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                          ? detach_row(r, 0)
                          : NULL;
    PQclear(r);
    if (!nt) return; /* the next pass tries again */
    bool final = false;
    task_lock(nt);
    bool complete;
    cJSON *evs = replay_after_locked(nt, f->last, &complete);
    uint64_t seq = task_seq_locked(nt);
    task_unlock(nt);
    const cJSON *x;
    if (!complete) { /* some lost: only the end */
        cJSON_Delete(evs);
        evs = NULL;
    }
    cJSON_ArrayForEach(x, evs) {
        char *text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(x, "event"));
        uint64_t s = (uint64_t)cJSON_GetObjectItemCaseSensitive(x, "seq")->valuedouble;
        if (text && !final) final = streams_push_event(f->t, s, text);
        free(text);
        f->last = s;
    }
    cJSON_Delete(evs);
    if (!final) { /* events lost with the holder: the task's end as its row has it */
        cJSON *doc = task_render(nt, 0);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "kind", "status-update");
        cJSON_AddStringToObject(e, "taskId", task_id(nt));
        cJSON_AddStringToObject(e, "contextId", task_context_id(nt));
        cJSON_AddItemToObject(e, "status", cJSON_DetachItemFromObjectCaseSensitive(doc, "status"));
        cJSON_AddBoolToObject(e, "final", true);
        char *text = cJSON_PrintUnformatted(e);
        if (text) streams_push_event(f->t, seq, text);
        free(text);
        cJSON_Delete(e);
        cJSON_Delete(doc);
        f->last = seq;
    }
    task_release(nt);
    f->over = true;
}

/* Ask node (not this one) to write f's task's events above f->last, without
 * waiting: the LISTEN thread waits for nobody; check_holders reads the
 * outcome on a later pass. */
static void send_watch(struct follow *f, const char *node) {
    char chan[64], now[24], body[48];
    channel_of(node, chan);
    snprintf(now, sizeof now, "%llu", (unsigned long long)util_wall_ms());
    snprintf(body, sizeof body, "{\"after\":%llu}", (unsigned long long)f->last);
    const char *v[7] = {task_id(f->t), cl.node, node, "watch", body, now, chan};
    int len[7] = {0, 0, 0, 0, (int)strlen(body), 0, 0};
    int fmt[7] = {0, 0, 0, 0, 1, 0, 0};
    PGresult *r = PQexecParams(cl.lconn,
                               "WITH i AS (INSERT INTO a2ad_controls (task_id, from_node, to_node,"
                               " kind, body, created_ms) VALUES ($1, $2, $3, $4, $5, $6)"
                               " RETURNING id) SELECT id, pg_notify($7, 'c' || id) FROM i",
                               7, NULL, v, len, fmt, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        snprintf(f->ctl, sizeof f->ctl, "%s", PQgetvalue(r, 0, 0));
        snprintf(f->holder, sizeof f->holder, "%s", node);
    }
    PQclear(r);
}

/* The outcome of f's pending watch: done, or asked again on the next pass
 * (the new holder had not restored the task yet). */
static void watch_outcome(struct follow *f) {
    const char *v[1] = {f->ctl};
    PGresult *r = PQexecParams(cl.lconn,
                               "SELECT status FROM a2ad_controls WHERE id = $1 AND done AND"
                               " status IS NOT NULL",
                               1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        if (atoi(PQgetvalue(r, 0, 0)) != CLUSTER_DONE) f->holder[0] = '\0';
        f->ctl[0] = '\0';
    }
    PQclear(r);
}

/* A followed task whose row names another holder than the one watched
 * (its holder died and a node took it over, or a node claimed it), or
 * whose holder restarted (and recovered it) since it was watched. */
static void follow_moved(struct follow *f, const char *node, const char *state,
                         long long started) {
    enum task_state s;
    if (!parse_state(state, &s)) return;
    const char *then = task_state_terminal(s) ? "get its end from its row" : "follow it there";
    if (strcmp(node, f->holder) == 0)
        log_info("cluster: node %s restarted: the streams here of its task %s %s", node,
                 task_id(f->t), then);
    else if (f->holder[0]) /* not again for a watch asked again */
        log_info("cluster: task %s moved from node %s to node %s: its streams here %s",
                 task_id(f->t), f->holder, node, then);
    f->started = started;
    if (task_state_terminal(s)) {
        end_from_row(f);
    } else if (strcmp(node, cl.node) == 0) { /* taken over by this node */
        cJSON *body = cJSON_CreateObject(), *res = NULL;
        cJSON_AddNumberToObject(body, "after", (double)f->last);
        if (do_control(task_id(f->t), "watch", body, &res) == CLUSTER_DONE)
            snprintf(f->holder, sizeof f->holder, "%s", node);
        cJSON_Delete(body);
        cJSON_Delete(res);
    } else {
        send_watch(f, node);
    }
}

/* Every CLUSTER_POLL_MS: whether the followed tasks are still held where
 * they were watched, one query for all of them. A holder that dies is
 * taken over after its lease (at most 1.5 lease_s), so a stream here
 * learns it at most one poll later. fresh_only: the follows that do not
 * know their holder's start yet, read as soon as they begin, milliseconds
 * after the holder answered their watch (a restart takes far longer), so
 * that a holder restarted later is told from the one that was watched. */
static void check_holders(bool fresh_only) {
    struct share_ids ids = {0};
    bool ok = true;
    for (struct follow *f = cl.follows; f; f = f->next) {
        if (fresh_only && f->started) continue;
        if (f->ctl[0]) watch_outcome(f);
        ok = ok && share_ids_add(&ids, task_id(f->t));
    }
    struct hmap *rows = ok && ids.n ? hmap_new(ids.n * 2) : NULL;
    const char *v[1] = {rows ? share_ids_text(&ids) : NULL};
    if (!v[0]) {
        share_ids_free(&ids);
        hmap_free(rows);
        return;
    }
    PGresult *r = PQexecParams(cl.lconn,
                               "SELECT t.id, t.node, t.state, coalesce(n.started_ms, 0) FROM"
                               " a2ad_tasks t LEFT JOIN a2ad_nodes n ON n.name = t.node"
                               " WHERE t.id = ANY ($1::text[])",
                               1, NULL, v, NULL, NULL, 0);
    share_ids_free(&ids);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        for (int i = 0; i < PQntuples(r); i++)
            hmap_put(rows, PQgetvalue(r, i, 0), (void *)(intptr_t)(i + 1));
    for (struct follow *f = cl.follows; f; f = f->next) {
        int i = (int)((intptr_t)hmap_get(rows, task_id(f->t)) - 1);
        if (i < 0 || (fresh_only && f->started)) continue;
        const char *node = PQgetvalue(r, i, 1);
        long long started = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        /* a holder that crashed and started again before its lease ran
         * out recovered the task itself: no other node takes it over */
        bool restarted = f->started && started && started != f->started;
        if (strcmp(node, f->holder) != 0 || restarted)
            follow_moved(f, node, PQgetvalue(r, i, 2), started);
        else if (!f->started)
            f->started = started;
    }
    PQclear(r);
    hmap_free(rows);
}

static void follow_pass(bool all) {
    pthread_mutex_lock(&cl.flock);
    struct follow *in = cl.incoming;
    cl.incoming = NULL;
    pthread_mutex_unlock(&cl.flock);
    /* a new one learns its holder's start at once (see check_holders) */
    bool fresh = in != NULL;
    while (in) {
        struct follow *n = in->next;
        in->next = cl.follows;
        cl.follows = in;
        in = n;
    }
    if ((all || fresh) && cl.lconn && cl.follows) check_holders(!all);
    for (struct follow **pp = &cl.follows; *pp;) {
        struct follow *f = *pp;
        if (f->over || ((all || f->dirty) && cl.lconn && !read_events(f))) {
            *pp = f->next;
            follow_free(f);
        } else {
            pp = &f->next;
        }
    }
}

static void mark_dirty(const char *tid) {
    for (struct follow *f = cl.follows; f; f = f->next)
        if (strcmp(task_id(f->t), tid) == 0) f->dirty = true;
}

/* ---- operators: the nodes (admin.c, metrics.c) -------------------------- */

#define NODES_EVERY_MS 1000

/* Count the live nodes for a2ad_cluster_nodes, once a second (LISTEN
 * thread: a scrape never waits for the database). */
static void count_nodes(uint64_t now) {
    static uint64_t next;
    if (now < next) return;
    next = now + NODES_EVERY_MS;
    PGresult *r = PQexec(cl.lconn, "SELECT count(*) FROM a2ad_nodes WHERE lease_until_ms >= " DB_NOW_MS);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        atomic_store(&cl.live_nodes, (size_t)strtoull(PQgetvalue(r, 0, 0), NULL, 10));
    PQclear(r);
}

size_t cluster_live_nodes(void) { return atomic_load(&cl.live_nodes); }

a2ad_status cluster_nodes(cJSON **out) {
    *out = NULL;
    uint64_t until = util_now_ms() + cl.timeout_ms;
    PGconn *c = pool_get(until);
    if (!c) return A2AD_ERR_IO;
    PGresult *r = pool_read(
        &c, until,
        "SELECT n.name, n.lease_until_ms - " DB_NOW_MS ", " DB_NOW_MS " - n.started_ms,"
        " n.free_workers, coalesce(t.held, 0), coalesce(t.active, 0), n.free_by_agent::text"
        " FROM a2ad_nodes n"
        " LEFT JOIN (SELECT node, count(*) AS held, count(*) FILTER (WHERE ended_ms IS NULL)"
        " AS active FROM a2ad_tasks GROUP BY node) t ON t.node = n.name ORDER BY n.name",
        0, NULL);
    if (!r) return A2AD_ERR_IO;
    a2ad_status st = A2AD_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        query_failed(c, r);
        st = A2AD_ERR_IO;
    } else if (!(*out = cJSON_CreateArray())) {
        st = A2AD_ERR_NOMEM;
    } else {
        for (int i = 0; i < PQntuples(r); i++) {
            cJSON *n = cJSON_CreateObject();
            long long left = strtoll(PQgetvalue(r, i, 1), NULL, 10);
            cJSON_AddStringToObject(n, "name", PQgetvalue(r, i, 0));
            cJSON_AddBoolToObject(n, "self", strcmp(PQgetvalue(r, i, 0), cl.node) == 0);
            cJSON_AddBoolToObject(n, "live", left >= 0);
            cJSON_AddNumberToObject(n, "leaseLeftMs", (double)left);
            /* nodes renew lease_s ahead: since its last renewal, if its
             * lease_s is this node's */
            cJSON_AddNumberToObject(n, "leaseAgeMs",
                                    left < (long long)cl.lease_ms ? (double)(cl.lease_ms - left) : 0);
            cJSON_AddNumberToObject(n, "upMs", strtod(PQgetvalue(r, i, 2), NULL));
            cJSON_AddNumberToObject(n, "freeWorkers", strtod(PQgetvalue(r, i, 3), NULL));
            cJSON *by_agent = cJSON_Parse(PQgetvalue(r, i, 6));
            cJSON_AddItemToObject(n, "freeWorkersByAgent", by_agent ? by_agent : cJSON_CreateObject());
            cJSON_AddNumberToObject(n, "tasks", strtod(PQgetvalue(r, i, 4), NULL));
            cJSON_AddNumberToObject(n, "activeTasks", strtod(PQgetvalue(r, i, 5), NULL));
            cJSON_AddItemToArray(*out, n);
        }
    }
    PQclear(r);
    pool_put(c);
    return st;
}

/* ---- the LISTEN thread --------------------------------------------------- */

static bool listen_connect(char *why, size_t n) {
    PGconn *c = store_pg_connect(why, n);
    if (!c) return false;
    char *ident = PQescapeIdentifier(c, cl.chan, strlen(cl.chan));
    char sql[200];
    snprintf(sql, sizeof sql, "LISTEN %s; LISTEN a2ad_events", ident ? ident : "\"\"");
    PQfreemem(ident);
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) util_one_line(why, n, PQresultErrorMessage(r));
    PQclear(r);
    if (!ok) {
        PQfinish(c);
        return false;
    }
    cl.lconn = c;
    return true;
}

static void clean_rows(void) {
    char cutoff[24];
    snprintf(cutoff, sizeof cutoff, "%llu",
             (unsigned long long)(util_wall_ms() - KEEP_ROWS_MS));
    const char *v[2] = {cutoff, cl.node};
    /* each node deletes what it wrote: the controls it asked, the events of
     * tasks it holds */
    PGresult *r = PQexecParams(cl.lconn,
                               "DELETE FROM a2ad_controls WHERE created_ms < $1 AND from_node = $2",
                               2, NULL, v, NULL, NULL, 0);
    PQclear(r);
    r = PQexecParams(cl.lconn,
                     "DELETE FROM a2ad_events e USING a2ad_tasks t WHERE e.created_ms < $1 AND"
                     " t.id = e.task_id AND t.node = $2",
                     2, NULL, v, NULL, NULL, 0);
    PQclear(r);
    /* rows of tasks gone (retention) */
    r = PQexecParams(cl.lconn,
                     "DELETE FROM a2ad_events e WHERE e.created_ms < $1 AND NOT EXISTS"
                     " (SELECT 1 FROM a2ad_tasks t WHERE t.id = e.task_id)",
                     1, NULL, v, NULL, NULL, 0);
    PQclear(r);
}

static void drop_listen(const char *why) {
    log_warn("cluster: lost the connection to %s (%s): reconnecting; requests from other nodes "
             "wait meanwhile", cl.path, why);
    PQfinish(cl.lconn);
    cl.lconn = NULL;
}

static void *listen_main(void *arg) {
    (void)arg;
    unsigned delay = RECONNECT_MIN_MS;
    bool was_down = false;
    uint64_t next_poll = 0, next_clean = util_now_ms() + CLEAN_EVERY_MS;
    while (!atomic_load(&cl.stopping)) {
        if (!cl.lconn) {
            char why[200];
            if (!listen_connect(why, sizeof why)) {
                if (!was_down)
                    log_warn("cluster: cannot listen on %s (%s): retrying with backoff", cl.path,
                             why);
                was_down = true;
                struct pollfd p = {.fd = cl.wake[0], .events = POLLIN};
                poll(&p, 1, (int)delay);
                delay = delay * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : delay * 2;
                continue;
            }
            if (was_down) log_info("cluster: listening on %s again", cl.path);
            was_down = false;
            delay = RECONNECT_MIN_MS;
            next_poll = 0; /* catch up on what was missed */
        }
        uint64_t now = util_now_ms();
        int wait = next_poll > now ? (int)(next_poll - now) : 0;
        struct pollfd p[2] = {{.fd = PQsocket(cl.lconn), .events = POLLIN},
                              {.fd = cl.wake[0], .events = POLLIN}};
        poll(p, 2, wait);
        if (p[1].revents & POLLIN) {
            char buf[64];
            while (read(cl.wake[0], buf, sizeof buf) > 0) {
            }
        }
        if (atomic_load(&cl.stopping)) break;
        if (!PQconsumeInput(cl.lconn)) {
            char why[200];
            util_one_line(why, sizeof why, PQerrorMessage(cl.lconn));
            drop_listen(why);
            continue;
        }
        bool replies = false;
        PGnotify *n;
        while ((n = PQnotifies(cl.lconn))) {
            if (strcmp(n->relname, cl.chan) == 0) {
                if (n->extra[0] == 'c') cl.pending = true;
                else replies = true;
            } else {
                mark_dirty(n->extra);
                await_mark(n->extra);
            }
            PQfreemem(n);
        }
        if (replies) {
            pthread_mutex_lock(&cl.rlock);
            cl.reply_gen++;
            pthread_cond_broadcast(&cl.replies);
            pthread_mutex_unlock(&cl.rlock);
        }
        now = util_now_ms();
        bool poll_all = now >= next_poll;
        if (poll_all) {
            /* a notification missed across a reconnect is caught here */
            cl.pending = true;
            next_poll = now + CLUSTER_POLL_MS;
            pthread_mutex_lock(&cl.rlock);
            cl.reply_gen++;
            pthread_cond_broadcast(&cl.replies);
            pthread_mutex_unlock(&cl.rlock);
        }
        if (cl.pending) {
            cl.pending = false;
            run_controls();
        }
        follow_pass(poll_all);
        if (poll_all) count_nodes(now);
        await_pass(poll_all);
        if (now >= next_clean) {
            clean_rows();
            next_clean = now + CLEAN_EVERY_MS;
        }
        if (PQstatus(cl.lconn) == CONNECTION_BAD) {
            char why[200];
            util_one_line(why, sizeof why, PQerrorMessage(cl.lconn));
            drop_listen(why);
        }
    }
    return NULL;
}

/* ---- start, stop -------------------------------------------------------- */

a2ad_status cluster_start(const struct config *cfg) {
    cl.node = store_pg_node();
    cl.path = store_pg_path();
    if (!cl.node || !cl.path) return A2AD_ERR_STATE;
    channel_of(cl.node, cl.chan);
    cl.timeout_ms = cfg->cluster_timeout_ms ? cfg->cluster_timeout_ms : 5000;
    cl.max = cfg->cluster_connections ? cfg->cluster_connections : 4;
    cl.max_list = cfg->max_tasks ? cfg->max_tasks : 10000;
    cl.lease_ms = (cfg->lease_s ? cfg->lease_s : 30) * 1000u;
    cl.idle = calloc(cl.max, sizeof *cl.idle);
    if (!cl.idle) return A2AD_ERR_NOMEM;
    if (pipe(cl.wake) != 0) {
        log_error("cluster: cannot create a pipe: %s", strerror(errno));
        free(cl.idle);
        cl.idle = NULL;
        return A2AD_ERR_IO;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(cl.wake[i], F_SETFL, fcntl(cl.wake[i], F_GETFL) | O_NONBLOCK);
        fcntl(cl.wake[i], F_SETFD, FD_CLOEXEC);
    }
    char why[200];
    if (!listen_connect(why, sizeof why))
        log_warn("cluster: cannot listen on %s yet (%s): retrying", cl.path, why);
    atomic_store(&cl.stopping, false);
    atomic_store(&cl.on, true);
    if (pthread_create(&cl.thread, NULL, listen_main, NULL) != 0) {
        atomic_store(&cl.on, false);
        log_error("cluster: cannot start the LISTEN thread");
        cluster_stop();
        return A2AD_ERR_IO;
    }
    cl.started = true;
    log_info("cluster: node %s answers for the tasks of other nodes on %s (%zu connections, "
             "controls wait %u ms at most)", cl.node, cl.path, cl.max, cl.timeout_ms);
    return A2AD_OK;
}

void cluster_stop(void) {
    if (!cl.idle) return;
    atomic_store(&cl.on, false);
    atomic_store(&cl.stopping, true);
    poke();
    if (cl.started) pthread_join(cl.thread, NULL);
    cl.started = false;
    pthread_mutex_lock(&cl.rlock);
    pthread_cond_broadcast(&cl.replies);
    pthread_mutex_unlock(&cl.rlock);
    if (cl.lconn) PQfinish(cl.lconn);
    cl.lconn = NULL;
    pthread_mutex_lock(&cl.plock);
    size_t n = cl.n_idle;
    PGconn **idle = cl.idle;
    cl.n_idle = 0;
    cl.n_open -= n;
    pthread_cond_broadcast(&cl.pfree);
    pthread_mutex_unlock(&cl.plock);
    for (size_t i = 0; i < n; i++) PQfinish(idle[i]);
    /* a request still using a connection puts it back and it is closed */
    pthread_mutex_lock(&cl.plock);
    cl.idle = NULL;
    pthread_mutex_unlock(&cl.plock);
    free(idle);
    pthread_mutex_lock(&cl.flock);
    struct follow *in = cl.incoming;
    cl.incoming = NULL;
    pthread_mutex_unlock(&cl.flock);
    while (in) {
        struct follow *nx = in->next;
        follow_free(in);
        in = nx;
    }
    while (cl.follows) {
        struct follow *nx = cl.follows->next;
        follow_free(cl.follows);
        cl.follows = nx;
    }
    await_free_all();
    pthread_mutex_lock(&cl.wlock);
    hmap_free(cl.watched);
    cl.watched = NULL;
    atomic_store(&cl.n_watched, 0);
    pthread_mutex_unlock(&cl.wlock);
    for (int i = 0; i < 2; i++) {
        if (cl.wake[i] >= 0) close(cl.wake[i]);
        cl.wake[i] = -1;
    }
}
