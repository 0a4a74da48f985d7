/* store - the durable task store. See store.h for what it promises.
 *
 * This file is the SQLite back end: the connection, the schema, the writer
 * thread, the watch thread, open, recover and close. What the PostgreSQL
 * store (store_pg.c) does the same way (ops, the queue, tickets, gates,
 * the outbox hooks, the store observer, settling a batch) is store_core.c.
 *
 * Threads. Producers (HTTP threads creating tasks, workers emitting events,
 * the webhook thread reporting deliveries) only build an `op` in memory and
 * append it to the queue under store_q.lock. The writer thread alone
 * touches the database: it takes the whole queue, runs it in one
 * transaction, then settles what waited on it (submissions, webhook gates)
 * and, with store_q.lock released, calls the tasks_on_durable callbacks
 * (they resume suspended HTTP connections). No lock is held while SQLite does I/O.
 *
 * Within one event, the push observer's webhooks reach outbox_add before the
 * store observer runs (it is called last by tasks.c); outbox_add parks their
 * rows in a thread-local list and the store observer queues them together
 * with the task row, so they share a transaction.
 *
 * Parking. A delivery that does not fit in the webhook queue (max_pending),
 * or whose order key already has parked ones, is written as an outbox row
 * with parked = 1 and kept nowhere else (outbox_park). The writer thread
 * hands parked rows back to webhooks_post, oldest first (by n), in batches
 * no larger than webhooks_unpark_room, whenever the delivery thread says
 * there is room (outbox_room) and on every maintenance tick. `unpark_after`
 * is the n of the last row handed back: rows are numbered by the writer
 * itself as it inserts them, so a later parked row always has a larger n.
 * Handed-back rows keep parked = 1 in the file (nothing rewrites them); at
 * the next start every row is parked again anyway (store_open).
 */
#include "store/store.h"
#include "store/store_core.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agents/crashloop.h"
#include "log.h"
#include "front/metrics.h"
#include "agents/plugins.h"
#include "agents/runner.h"
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
/* How often the watch thread checks the file and the write timeout. */
#define WATCH_MS 100

/* Set by store_open, read-only afterwards; the connection and statements
 * belong to the writer thread once it runs. */
static struct {
    bool open;
    sqlite3 *db;
    char *path;
    unsigned write_queue;
    unsigned retention_s;
    pthread_t writer;
    sqlite3_stmt *upsert_task, *del_task, *add_outbox, *del_outbox, *expire_tasks;
    sqlite3_stmt *parked_rows;
    /* parking (writer thread): on once store_recover counted the rows */
    atomic_bool unpark_on;
    int64_t unpark_after;
    /* The file as opened: a path that stops naming it (deleted, replaced)
     * means every later commit would go to a file nobody will read. */
    dev_t dev;
    ino_t ino;
    unsigned write_timeout_ms;
    atomic_ullong batch_started_ms; /* the writer's current batch; 0 = idle */
    pthread_t watcher;
    bool watching;
} st;

/* Set once, never cleared while running: the store cannot be trusted. */
static atomic_bool broken;
static char broken_why[300]; /* written once, before broken is set */
static pthread_mutex_t broken_lock = PTHREAD_MUTEX_INITIALIZER;

/* Readiness (store_writable): the last probe's answer and the last failed
 * write's reason. The lock is never held across I/O. */
static struct {
    pthread_mutex_t lock;
    atomic_bool probing;
    uint64_t at_ms; /* monotonic; 0 = never probed */
    bool ok;
    char why[200];
    char last_fail[160];
} probe = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Whichever store is in use set it (the other leaves its own empty). */
const char *store_last_error(void) { return store_core_last_error(); }

/* ---- the file's health ---------------------------------------------- */

static void mark_broken(const char *fmt, ...) A2AD_PRINTF(1, 2);
static void mark_broken(const char *fmt, ...) {
    pthread_mutex_lock(&broken_lock);
    bool first = !atomic_load(&broken);
    if (first) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(broken_why, sizeof broken_why, fmt, ap);
        va_end(ap);
        atomic_store(&broken, true);
    }
    pthread_mutex_unlock(&broken_lock);
    if (first)
        log_error("store: %s; nothing is accepted from now on (HTTP 503); restart a2ad", broken_why);
}

bool store_broken(char *why, size_t n) {
    if (!atomic_load(&broken)) return false;
    if (why && n) snprintf(why, n, "%s", broken_why);
    return true;
}

/* Does the path still name the file we write? (A deleted file keeps
 * taking commits through its open descriptor, and is gone at the next
 * start with every job acknowledged meanwhile.) */
static bool file_still_ours(void) {
    if (atomic_load(&broken)) return false;
    struct stat sb;
    if (stat(st.path, &sb) != 0) {
        if (errno == ENOENT)
            mark_broken("the database file %s was deleted while a2ad ran", st.path);
        else
            return true; /* cannot tell (EACCES, EIO...): the write will say */
        return false;
    }
    if (sb.st_dev != st.dev || sb.st_ino != st.ino) {
        mark_broken("the database file %s was replaced by another file while a2ad ran", st.path);
        return false;
    }
    return true;
}

/* ---- the queue ---------------------------------------------------- */

/* New tasks are refused once the file is gone, or while a write hangs. */
static bool admit(void) {
    if (atomic_load(&broken)) {
        store_core_set_error("%s; restart a2ad", broken_why);
        return false;
    }
    uint64_t started = atomic_load(&st.batch_started_ms);
    if (started && st.write_timeout_ms && util_now_ms() - started > st.write_timeout_ms) {
        store_core_set_error("the database %s has not finished a write for %llu ms ([tasks] "
                             "write_timeout_ms = %u): is its disk frozen or stuck?",
                             st.path, (unsigned long long)(util_now_ms() - started),
                             st.write_timeout_ms);
        return false;
    }
    return true;
}

static struct store_backend backend = {.db_word = "the database ", .why_max = 120,
                                       .admit = admit, .crash_rules = true};

void store_sync(void) {
    if (!store_core_running()) return;
    pthread_mutex_lock(&store_q.lock);
    /* What is queued now goes out in the batch after the one being written. */
    uint64_t target = store_q.taken + (store_q.head ? 1 : 0);
    while (store_q.written < target && !store_q.stopping)
        pthread_cond_wait(&store_q.settled, &store_q.lock);
    pthread_mutex_unlock(&store_q.lock);
}

/* ---- the writer ----------------------------------------------------- */

static int bind_text(sqlite3_stmt *s, int i, const char *v) {
    return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

static int run_op(const struct op *o) {
    sqlite3_stmt *s;
    switch (o->kind) {
    case OP_TASK:
        s = st.upsert_task;
        bind_text(s, 1, o->id);
        bind_text(s, 2, o->agent);
        bind_text(s, 3, o->state);
        sqlite3_bind_int64(s, 4, (sqlite3_int64)o->seq);
        if (o->ended_ms >= 0)
            sqlite3_bind_int64(s, 5, o->ended_ms);
        else
            sqlite3_bind_null(s, 5);
        bind_text(s, 6, o->doc);
        bind_text(s, 7, o->ext);
        break;
    case OP_OUTBOX_ADD:
        s = st.add_outbox;
        bind_text(s, 1, o->id);
        bind_text(s, 2, o->task_id);
        bind_text(s, 3, o->order_key);
        bind_text(s, 4, o->url);
        bind_text(s, 5, o->headers);
        sqlite3_bind_blob64(s, 6, o->body, o->len, SQLITE_STATIC);
        sqlite3_bind_int(s, 7, o->essential);
        sqlite3_bind_int64(s, 8, (sqlite3_int64)o->created_ms);
        sqlite3_bind_int(s, 9, o->parked);
        break;
    case OP_OUTBOX_DEL:
        s = st.del_outbox;
        bind_text(s, 1, o->id);
        break;
    case OP_TASK_DEL:
        s = st.del_task;
        bind_text(s, 1, o->id);
        break;
    default:
        return SQLITE_MISUSE;
    }
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int exec(const char *sql) { return sqlite3_exec(st.db, sql, NULL, NULL, NULL); }

/* Run a chain in one transaction; returns an SQLite code, and the system's
 * errno of a failure in *sys (the rollback would clear it). */
static int write_batch(struct op *list, int *sys) {
    store_core_coalesce(list);
    if (!file_still_ours()) {
        *sys = 0;
        return SQLITE_NOTFOUND;
    }
    int rc = exec("BEGIN IMMEDIATE");
    for (const struct op *o = list; rc == SQLITE_OK && o; o = o->next)
        if (!o->moot) rc = run_op(o);
    if (rc == SQLITE_OK) rc = exec("COMMIT");
    *sys = rc != SQLITE_OK ? sqlite3_system_errno(st.db) : 0;
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(st.db)) exec("ROLLBACK");
    return rc;
}

/* Delete finished tasks past retention, a batch per transaction, until
 * none is left or the pass has taken EXPIRE_PASS_MS (new writes wait
 * meanwhile); a steady load that ends more tasks a second than one pass
 * deletes is caught up over the next passes. */
static void expire_rows(void) {
    if (!st.expire_tasks) return;
    int64_t cutoff = (int64_t)util_wall_ms() - (int64_t)st.retention_s * 1000;
    uint64_t until = util_now_ms() + EXPIRE_PASS_MS;
    long total = 0;
    for (;;) {
        sqlite3_bind_int64(st.expire_tasks, 1, cutoff);
        sqlite3_bind_int(st.expire_tasks, 2, EXPIRE_BATCH);
        int rc = sqlite3_step(st.expire_tasks);
        sqlite3_reset(st.expire_tasks);
        if (rc != SQLITE_DONE) {
            log_warn("store: cannot delete expired tasks from %s: %s", st.path,
                     sqlite3_errmsg(st.db));
            break;
        }
        int n = sqlite3_changes(st.db);
        total += n;
        if (n < EXPIRE_BATCH || util_now_ms() >= until) break;
    }
    if (total) log_debug("store: deleted %ld expired tasks", total);
}

/* ---- parked rows back to the webhook queue (writer thread) ----------- */

/* Parked rows oldest first, as many as the webhook queue has room for (at
 * most UNPARK_BATCH). A row that cannot be handed back (no memory) stops
 * the batch and is tried again next time. */
static void unpark_rows(void) {
    if (!atomic_load(&st.unpark_on)) return;
    size_t room = webhooks_unpark_room();
    if (!room) return;
    if (room > UNPARK_BATCH) room = UNPARK_BATCH;
    sqlite3_stmt *s = st.parked_rows;
    sqlite3_bind_int64(s, 1, st.unpark_after);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)room);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *event_id = (const char *)sqlite3_column_text(s, 1);
        a2ad_status ps = store_core_unpark_post(
            event_id, (const char *)sqlite3_column_text(s, 2),
            (const char *)sqlite3_column_text(s, 3), (const char *)sqlite3_column_text(s, 4),
            (const char *)sqlite3_column_text(s, 5), sqlite3_column_blob(s, 6),
            (size_t)sqlite3_column_bytes(s, 6), (uint64_t)sqlite3_column_int64(s, 7));
        if (ps != A2AD_OK) {
            if (ps != A2AD_ERR_STATE) /* stopping: it stays for the next start */
                log_error("store: parked webhook event %s not queued yet: %s", event_id,
                          a2ad_status_name(ps));
            break;
        }
        st.unpark_after = sqlite3_column_int64(s, 0);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        log_warn("store: cannot read parked webhook events from %s: %s", st.path,
                 sqlite3_errmsg(st.db));
    sqlite3_reset(s);
}

static void *writer_thread(void *arg) {
    (void)arg;
    uint64_t next_maintenance = util_now_ms() + MAINTENANCE_MS;
    for (;;) {
        size_t n;
        bool stopping, unpark;
        struct op *list = store_core_take(next_maintenance, &n, &stopping, &unpark);
        if (list) {
            int sys = 0;
            uint64_t t0 = metrics_now_us();
            atomic_store(&st.batch_started_ms, util_now_ms());
            int rc = write_batch(list, &sys);
            atomic_store(&st.batch_started_ms, 0);
            metrics_store_commit(rc == SQLITE_OK, metrics_now_us() - t0);
            char why[320] = "";
            if (rc != SQLITE_OK) {
                /* "disk I/O error" alone does not say which: add the system's word. */
                if (rc == SQLITE_NOTFOUND) /* write_batch: the file is gone */
                    snprintf(why, sizeof why, "%s", broken_why);
                else if (sys && (rc == SQLITE_IOERR || rc == SQLITE_FULL || rc == SQLITE_CANTOPEN))
                    snprintf(why, sizeof why, "%s (%s)", sqlite3_errstr(rc), strerror(sys));
                else
                    snprintf(why, sizeof why, "%s", sqlite3_errstr(rc));
                pthread_mutex_lock(&probe.lock);
                snprintf(probe.last_fail, sizeof probe.last_fail, "%.*s",
                         (int)sizeof probe.last_fail - 1, why);
                pthread_mutex_unlock(&probe.lock);
            }
            store_core_done(list, n, rc == SQLITE_OK ? NULL : why);
        } else if (stopping) {
            break;
        }
        bool maintenance = util_now_ms() >= next_maintenance;
        if (maintenance) {
            expire_rows();
            next_maintenance = util_now_ms() + MAINTENANCE_MS;
        }
        if (unpark || maintenance) unpark_rows();
    }
    return NULL;
}

/* ---- the watch thread: a deleted file, a write that hangs --------------- */

/* Time out the tickets of list (store_q.lock held); their callbacks go to cbs. */
static size_t expire_tickets_locked(struct op *list, uint64_t now, void (**cbs)(void *),
                                    void **args, size_t room) {
    size_t n = 0;
    for (struct op *o = list; o; o = o->next) {
        struct ticket *tk = o->ticket;
        if (!tk || tk->done || now - tk->queued_ms < st.write_timeout_ms) continue;
        if (tk->cb && n == room) continue; /* the next round takes it */
        tk->done = true;
        tk->status = A2AD_ERR_IO;
        snprintf(tk->err, sizeof tk->err,
                 "the database %s did not commit the write within %u ms ([tasks] "
                 "write_timeout_ms): is its disk frozen or stuck?",
                 st.path, st.write_timeout_ms);
        if (tk->cb) {
            cbs[n] = tk->cb;
            args[n++] = tk->cb_arg;
            tk->cb = NULL;
        }
    }
    return n;
}

static void *watch_thread(void *arg) {
    (void)arg;
    enum { ROOM = 256 };
    void (*cbs[ROOM])(void *);
    void *args[ROOM];
    uint64_t last_file_check = 0;
    pthread_mutex_lock(&store_q.lock);
    while (!store_q.stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WATCH_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&store_q.wake_watch, &store_q.lock, &ts);
        if (store_q.stopping) break;
        uint64_t now = util_now_ms();
        size_t n = 0;
        if (st.write_timeout_ms) {
            n = expire_tickets_locked(store_q.inflight, now, cbs, args, ROOM);
            n += expire_tickets_locked(store_q.head, now, cbs + n, args + n, ROOM - n);
            if (n) store_q.firing++;
            pthread_cond_broadcast(&store_q.settled);
        }
        pthread_mutex_unlock(&store_q.lock);
        for (size_t i = 0; i < n; i++) cbs[i](args[i]);
        if (now - last_file_check >= 500) {
            file_still_ours();
            last_file_check = now;
        }
        pthread_mutex_lock(&store_q.lock);
        if (n) {
            store_q.firing--;
            pthread_cond_broadcast(&store_q.settled);
        }
    }
    pthread_mutex_unlock(&store_q.lock);
    return NULL;
}

/* Queue t's row with a ticket in the slot's `created` place, so that
 * tasks_on_durable / tasks_wait_durable wait for this row as they do for a
 * new task's: the HTTP layer suspends the connection until it is settled. */
a2ad_status store_persist_begin(struct task *t) {
    if (!store_core_running()) return A2AD_ERR_STATE;
    task_lock(t);
    struct op *row = store_core_task_op_locked(t, task_get_state_locked(t), task_seq_locked(t));
    struct store_slot *s = row ? store_core_slot(t) : NULL;
    struct ticket *tk = s ? calloc(1, sizeof *tk) : NULL;
    if (!tk) {
        task_unlock(t);
        if (row) store_core_op_free(row);
        store_core_set_error("out of memory writing task %s to the database", task_id(t));
        return A2AD_ERR_NOMEM;
    }
    atomic_init(&tk->refs, 2);
    tk->queued_ms = util_now_ms();
    row->ticket = tk;
    a2ad_status rc = store_core_append(row, row, 1, true);
    if (rc == A2AD_OK) {
        store_core_ticket_release(s->created);
        s->created = tk;
    }
    task_unlock(t);
    if (rc != A2AD_OK) {
        store_core_op_free(row);
        store_core_ticket_release(tk);
    }
    return rc;
}

/* Write t's row now and wait until it is committed (or the write failed or
 * timed out): what a client is told is stored must be. */
a2ad_status store_persist(struct task *t) {
    if (!store_core_running()) return A2AD_OK; /* the memory store promises nothing more */
    task_lock(t);
    struct op *row = store_core_task_op_locked(t, task_get_state_locked(t), task_seq_locked(t));
    task_unlock(t);
    struct ticket *tk = row ? calloc(1, sizeof *tk) : NULL;
    if (!tk) {
        if (row) store_core_op_free(row);
        store_core_set_error("out of memory writing task %s to the database", task_id(t));
        return A2AD_ERR_NOMEM;
    }
    atomic_init(&tk->refs, 2);
    tk->queued_ms = util_now_ms();
    row->ticket = tk;
    if (store_core_append(row, row, 1, true) != A2AD_OK) {
        store_core_op_free(row); /* releases the op's reference */
        store_core_ticket_release(tk);
        return A2AD_ERR_IO;
    }
    pthread_mutex_lock(&store_q.lock);
    while (!tk->done) pthread_cond_wait(&store_q.settled, &store_q.lock);
    a2ad_status rc = tk->status;
    if (rc != A2AD_OK) store_core_set_error("%s", tk->err);
    pthread_mutex_unlock(&store_q.lock);
    store_core_ticket_release(tk);
    return rc;
}

/* ---- open, recover, close ----------------------------------------------- */

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS tasks ("
    " id TEXT PRIMARY KEY, agent TEXT NOT NULL, state TEXT NOT NULL, seq INTEGER NOT NULL,"
    " ended_ms INTEGER, doc TEXT NOT NULL, ext TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS tasks_ended ON tasks(ended_ms) WHERE ended_ms IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS outbox ("
    " n INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, task_id TEXT,"
    " order_key TEXT NOT NULL, url TEXT NOT NULL, headers TEXT NOT NULL, body BLOB NOT NULL,"
    " essential INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " parked INTEGER NOT NULL DEFAULT 0);";

/* Version 1 files had no parked column; version 3 added the schema_version
 * table (the version is kept there and in user_version). */
#define STORE_SQLITE_SCHEMA 3
static int file_version(void) {
    sqlite3_stmt *s = NULL;
    int version = 0;
    if (sqlite3_prepare_v2(st.db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    s = NULL;
    if (sqlite3_prepare_v2(st.db, "SELECT max(version) FROM schema_version", -1, &s, NULL) ==
            SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) > version)
        version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return version;
}

static int migrate(void) {
    int version = file_version();
    if (version == 1 &&
        exec("ALTER TABLE outbox ADD COLUMN parked INTEGER NOT NULL DEFAULT 0") != SQLITE_OK)
        return 1;
    return exec("CREATE INDEX IF NOT EXISTS outbox_parked ON outbox(n) WHERE parked = 1;"
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
                "DELETE FROM schema_version; INSERT INTO schema_version VALUES (3);"
                "PRAGMA user_version = 3;");
}

static a2ad_status open_fail(const char *what) {
    log_error("store: cannot %s the database %s: %s", what, st.path,
              st.db ? sqlite3_errmsg(st.db) : "out of memory");
    sqlite3_close(st.db);
    st.db = NULL;
    free(st.path);
    st.path = NULL;
    return A2AD_ERR_IO;
}

static int prepare(const char *sql, sqlite3_stmt **out) {
    return sqlite3_prepare_v3(st.db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

a2ad_status store_open(const struct config *cfg) {
    if (st.open) return A2AD_ERR_STATE;
    st.path = strdup(cfg->db_path);
    st.write_queue = cfg->write_queue;
    st.retention_s = cfg->retention_s;
    st.write_timeout_ms = cfg->write_timeout_ms;
    if (!st.path) return A2AD_ERR_NOMEM;
    /* Created 0600 here rather than by SQLite (0644 less the umask): it
     * holds the jobs' inputs and webhook credentials. SQLite gives the -wal
     * and -shm files the main file's mode. */
    int fd = open(st.path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        log_error("store: cannot open or create the database %s: %s", st.path, strerror(errno));
        if (fd >= 0) close(fd);
        free(st.path);
        st.path = NULL;
        return A2AD_ERR_IO;
    }
    close(fd);
    st.dev = sb.st_dev;
    st.ino = sb.st_ino;
    atomic_store(&broken, false);
    if (sb.st_mode & 077)
        log_warn("store: the database %s can be read by other users (mode %03o); "
                 "chmod 600 it", st.path, (unsigned)(sb.st_mode & 0777));
    if (sqlite3_open_v2(st.path, &st.db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK)
        return open_fail("open");
    sqlite3_extended_result_codes(st.db, 0);
    sqlite3_busy_timeout(st.db, (int)cfg->lock_timeout_ms);
    /* WAL: readers never block the writer, and a commit is one append. */
    char sql[200];
    snprintf(sql, sizeof sql,
             "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; "
             "PRAGMA journal_size_limit = 67108864; PRAGMA foreign_keys = OFF; "
             "PRAGMA cache_size = -%u;",
             strcmp(cfg->db_sync, "normal") == 0 ? "NORMAL" : "FULL", cfg->cache_kib);
    if (exec(sql) != SQLITE_OK) return open_fail("set up");
    /* A file of a newer a2ad is refused, never rewritten. */
    int newer = file_version();
    if (newer > STORE_SQLITE_SCHEMA) {
        log_error("store: the database %s has schema version %d, written by a newer a2ad (this "
                  "one reads versions up to %d): upgrade a2ad, or point [tasks] path at another "
                  "file",
                  st.path, newer, STORE_SQLITE_SCHEMA);
        sqlite3_close(st.db);
        st.db = NULL;
        free(st.path);
        st.path = NULL;
        return A2AD_ERR_STATE;
    }
    if (exec(schema) != SQLITE_OK) return open_fail("create the tables of");
    if (migrate() != SQLITE_OK) return open_fail("upgrade the tables of");
    if (prepare("INSERT INTO tasks (id, agent, state, seq, ended_ms, doc, ext)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO UPDATE SET"
                " agent = excluded.agent, state = excluded.state, seq = excluded.seq,"
                " ended_ms = excluded.ended_ms, doc = excluded.doc, ext = excluded.ext"
                " WHERE excluded.seq >= tasks.seq",
                &st.upsert_task) != SQLITE_OK ||
        prepare("INSERT OR REPLACE INTO outbox (event_id, task_id, order_key, url, headers,"
                " body, essential, created_ms, parked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                &st.add_outbox) != SQLITE_OK ||
        prepare("SELECT n, event_id, task_id, order_key, url, headers, body, created_ms"
                " FROM outbox WHERE parked = 1 AND n > ?1 ORDER BY n LIMIT ?2",
                &st.parked_rows) != SQLITE_OK ||
        prepare("DELETE FROM outbox WHERE event_id = ?1", &st.del_outbox) != SQLITE_OK ||
        prepare("DELETE FROM tasks WHERE id = ?1", &st.del_task) != SQLITE_OK ||
        prepare("DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE ended_ms < ?1"
                " LIMIT ?2)",
                &st.expire_tasks) != SQLITE_OK)
        return open_fail("prepare statements for");
    /* A file we cannot write must be found now, not at the first job. */
    if (exec("BEGIN IMMEDIATE; COMMIT;") != SQLITE_OK) {
        exec("ROLLBACK");
        log_warn("store: the database %s is not writable now (%s); submissions are refused "
                 "until it is",
                 st.path, sqlite3_errmsg(st.db));
    }

    /* Nothing is in memory yet: every undelivered row comes back through
     * parking, in bounded batches (store_recover counts them). */
    if (exec("UPDATE outbox SET parked = 1 WHERE parked = 0") != SQLITE_OK)
        log_warn("store: cannot mark the outbox of %s for delivery: %s", st.path,
                 sqlite3_errmsg(st.db));
    st.unpark_after = 0;
    atomic_store(&st.unpark_on, false);

    backend.path = st.path;
    backend.write_queue = st.write_queue;
    if (store_core_start(&backend, &st.writer, writer_thread) != A2AD_OK)
        return open_fail("start a writer for");
    st.open = true;
    st.watching = pthread_create(&st.watcher, NULL, watch_thread, NULL) == 0;
    if (!st.watching)
        log_warn("store: no watch thread: a deleted database file and [tasks] write_timeout_ms "
                 "are not checked between writes");
    log_info("store: sqlite %s (synchronous = %s, write queue %u)", st.path, cfg->db_sync,
             st.write_queue);
    return A2AD_OK;
}

/* Undelivered webhook rows (all parked by store_open): tell webhooks how
 * many each order key has, so new deliveries queue behind them, then let
 * the writer hand them back in bounded batches, oldest first. */
static size_t recover_outbox(sqlite3 *db) {
    sqlite3_stmt *s = NULL;
    size_t n = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT order_key, count(*),"
                           " sum(length(body) + length(url) + length(headers) + 256)"
                           " FROM outbox WHERE parked = 1 GROUP BY order_key",
                           -1, &s, NULL) != SQLITE_OK) {
        log_error("store: cannot read the outbox of %s: %s; its events are sent, but may "
                  "overtake each other", st.path, sqlite3_errmsg(db));
        atomic_store(&st.unpark_on, true);
        store_core_outbox_room();
        return 0;
    }
    while (sqlite3_step(s) == SQLITE_ROW) {
        size_t count = (size_t)sqlite3_column_int64(s, 1);
        webhooks_park_existing((const char *)sqlite3_column_text(s, 0), count);
        /* counted toward [webhooks] max_outbox_bytes until delivered */
        webhooks_park_bytes((uint64_t)sqlite3_column_int64(s, 2));
        n += count;
    }
    sqlite3_finalize(s);
    atomic_store(&st.unpark_on, true);
    store_core_outbox_room();
    return n;
}

static bool parse_state(const char *name, enum task_state *out) {
    for (int s = TASK_SUBMITTED; s <= TASK_AUTH_REQUIRED; s++)
        if (strcmp(task_state_name((enum task_state)s), name) == 0) {
            /* a job that waited for the client was running: the same fate */
            *out = task_state_interrupted((enum task_state)s) ? TASK_WORKING : (enum task_state)s;
            return true;
        }
    return false;
}

a2ad_status store_recover(void) {
    if (!st.open) return A2AD_ERR_STATE;
    /* A connection of our own: the writer's belongs to its thread. */
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(st.path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        log_error("store: cannot read %s: %s", st.path, db ? sqlite3_errmsg(db) : "no memory");
        sqlite3_close(db);
        return A2AD_ERR_IO;
    }
    size_t webhooks = recover_outbox(db);
    crashloop_check(st.path);

    sqlite3_stmt *s = NULL;
    int64_t now = (int64_t)util_wall_ms();
    int64_t cutoff = now - (int64_t)st.retention_s * 1000;
    /* Unfinished first in creation order (rowid), then finished ones oldest
     * first, which is the order the expiry list wants. */
    if (sqlite3_prepare_v2(db,
                           "SELECT id, agent, state, seq, ended_ms, doc, ext FROM tasks"
                           " WHERE ended_ms IS NULL OR ended_ms >= ?1"
                           " ORDER BY ended_ms IS NOT NULL, ended_ms, rowid",
                           -1, &s, NULL) != SQLITE_OK) {
        log_error("store: cannot read the tasks of %s: %s", st.path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return A2AD_ERR_IO;
    }
    sqlite3_bind_int64(s, 1, cutoff);
    struct recovery_counts c = {0};
    size_t bad = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(s, 0);
        const char *agent_name = (const char *)sqlite3_column_text(s, 1);
        enum task_state state;
        if (!parse_state((const char *)sqlite3_column_text(s, 2), &state)) {
            log_warn("store: task %s has an unknown state; left out", id);
            bad++;
            continue;
        }
        struct task *t = store_core_restore(
            id, agent_name, state, (uint64_t)sqlite3_column_int64(s, 3),
            sqlite3_column_int64(s, 4), (const char *)sqlite3_column_text(s, 5),
            (const char *)sqlite3_column_text(s, 6), now);
        if (!t) {
            bad++;
            continue;
        }
        if (task_state_terminal(state))
            c.finished++;
        else
            store_core_recover_task(t, state, agent_name, &c, NULL);
        task_release(t);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    log_info("store: recovered %zu finished tasks, %zu queued again, %zu re-run (rerun_safe), "
             "%zu interrupted, %zu of unloaded agents failed, %zu rejected on re-validation, "
             "%zu unreadable; %zu webhooks to deliver",
             c.finished, c.requeued, c.rerun, c.interrupted, c.orphaned, c.rejected, bad, webhooks);
    return A2AD_OK;
}

void store_close(void) {
    if (!st.open) return;
    store_core_stop();
    if (st.watching) pthread_join(st.watcher, NULL);
    pthread_join(st.writer, NULL);
    /* Whatever raced with the stop (nothing after a clean stop). */
    store_core_drop_queue();
    sqlite3_finalize(st.upsert_task);
    sqlite3_finalize(st.add_outbox);
    sqlite3_finalize(st.del_outbox);
    sqlite3_finalize(st.del_task);
    sqlite3_finalize(st.expire_tasks);
    sqlite3_finalize(st.parked_rows);
    if (sqlite3_close(st.db) != SQLITE_OK)
        log_warn("store: closing %s: %s", st.path, sqlite3_errmsg(st.db));
    webhooks_set_outbox(NULL);
    free(st.path);
    memset(&st, 0, sizeof st);
}

/* A probe answer is reused this long, so a busy scraper costs nothing. */
#define PROBE_FRESH_MS 500
/* How long a failed write makes the store "not writable" by itself, unless
 * a later write succeeds: long enough for a probe to see it, short enough
 * that traffic comes back to test the disk again. */
#define FAILED_WRITE_MS 5000

bool store_writable(char *why, size_t n) {
    if (!st.open) return store_core_writable(why, n);
    pthread_mutex_lock(&store_q.lock);
    bool full = store_q.len >= st.write_queue;
    pthread_mutex_unlock(&store_q.lock);
    if (full) {
        snprintf(why, n, "the database %s cannot keep up: %u writes are waiting ([tasks] "
                 "write_queue)", st.path, st.write_queue);
        return false;
    }
    uint64_t now = util_now_ms();
    uint64_t failed_ms, ok_ms;
    metrics_store_last(&failed_ms, &ok_ms);
    if (failed_ms && failed_ms >= ok_ms && now - failed_ms < FAILED_WRITE_MS) {
        pthread_mutex_lock(&probe.lock);
        snprintf(why, n, "the last write to the database %s failed: %s", st.path,
                 probe.last_fail);
        pthread_mutex_unlock(&probe.lock);
        return false;
    }
    pthread_mutex_lock(&probe.lock);
    bool fresh = probe.at_ms && now - probe.at_ms < PROBE_FRESH_MS;
    pthread_mutex_unlock(&probe.lock);
    /* One probe at a time; the others take the last answer. */
    if (!fresh && !atomic_exchange(&probe.probing, true)) {
        /* A connection of its own, so the writer's is not touched from this
         * thread: take the write lock and give it back at once. */
        sqlite3 *db = NULL;
        char msg[200] = "";
        int rc = sqlite3_open_v2(st.path, &db, SQLITE_OPEN_READWRITE, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_busy_timeout(db, 500);
            rc = sqlite3_exec(db, "BEGIN IMMEDIATE; ROLLBACK;", NULL, NULL, NULL);
        }
        if (rc != SQLITE_OK)
            snprintf(msg, sizeof msg, "the database %s is not writable: %s", st.path,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        pthread_mutex_lock(&probe.lock);
        probe.ok = rc == SQLITE_OK;
        snprintf(probe.why, sizeof probe.why, "%s", msg);
        probe.at_ms = util_now_ms();
        pthread_mutex_unlock(&probe.lock);
        atomic_store(&probe.probing, false);
    }
    pthread_mutex_lock(&probe.lock);
    bool ok = probe.ok || !probe.at_ms;
    if (!ok) snprintf(why, n, "%s", probe.why);
    pthread_mutex_unlock(&probe.lock);
    return ok;
}
