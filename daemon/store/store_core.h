/* store_core - what the SQLite store (store.c) and the PostgreSQL store
 * (store_pg.c) share: everything above the database, so both keep the same
 * promises (store.h) by the same code.
 *
 * Here: the ops a writer turns into rows (task rows, outbox rows, deletes),
 * the bounded write queue, the tickets a submission waits on (tasks_create's
 * wait, tasks_on_durable / tasks_forget_durable, tasks_discard), the gates
 * of webhook deliveries with the outbox hooks given to webhooks.c (add,
 * park, room, done, given up), the store observer that turns task events
 * into ops, settling a written batch, handing parked deliveries back, and
 * batch coalescing. A back end keeps its connection, its writer thread (it
 * calls store_core_take and store_core_done), its schema, open, recover
 * and close. Only one back end is in use at a time.
 */
#ifndef A2AD_STORE_CORE_H
#define A2AD_STORE_CORE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "a2ad/agent.h"
#include "core/tasks.h"
#include "util.h"

/* What a submission waits for: its CREATED row. */
struct ticket {
    atomic_int refs;
    bool done;          /* under store_q.lock */
    a2ad_status status; /* under store_q.lock, once done */
    char err[300];
    uint64_t queued_ms; /* for [tasks] write_timeout_ms */
    /* tasks_on_durable: called by the writer once done (under store_q.lock) */
    void (*cb)(void *arg);
    void *cb_arg;
};

/* What a webhook delivery waits for: its outbox row. */
struct gate {
    atomic_int refs;
    atomic_bool settled; /* committed, or the write failed (then sent anyway) */
};

/* OP_SHARE (share.c) only wakes the writer for offers and claim checks; it
 * is queued moot, so no batch writes anything for it. OP_EVENT: a stream
 * event of a watched task (cluster.c): id = task id, seq, body/len = the
 * A2A 0.3 event, created_ms. */
enum op_kind { OP_TASK, OP_TASK_DEL, OP_OUTBOX_ADD, OP_OUTBOX_DEL, OP_SHARE, OP_EVENT };

struct op {
    struct op *next;
    enum op_kind kind;
    struct ticket *ticket; /* OP_TASK of a CREATED event */
    void (*cb)(void *arg); /* the ticket's callback, taken by the writer */
    void *cb_arg;
    struct gate *gate;     /* OP_OUTBOX_ADD */
    char *id;              /* task id (task ops), event id (outbox ops) */
    /* OP_TASK */
    char *agent, *state, *doc, *ext;
    uint64_t seq;
    int64_t ended_ms; /* wall clock; -1 = not ended */
    /* OP_OUTBOX_ADD */
    char *task_id, *order_key, *url, *headers;
    char *body;
    size_t len;
    bool essential;
    bool parked; /* OP_OUTBOX_ADD: kept in the outbox only (see store.h) */
    uint64_t created_ms;
    bool moot; /* OP_TASK: a later op of the batch decides the row (coalesce) */
};

/* Per-task bookkeeping in TASK_EXT_STORE. */
struct store_slot {
    struct ticket *created; /* until its row is settled and waited for */
    char *agent_name;       /* restored task whose agent is gone, else NULL */
    unsigned char share;    /* share.c: SHARE_HERE, SHARE_OFFERED (task lock) */
};

/* The write queue: every thread appends (store_core_append), the back
 * end's writer takes it whole (store_core_take). */
struct store_queue {
    pthread_mutex_t lock;
    pthread_cond_t wake;       /* the writer: work, or stop */
    pthread_cond_t settled;    /* submitters: a batch was written */
    pthread_cond_t wake_watch; /* the SQLite store's watch thread: stop */
    struct op *head, *tail;
    size_t len;
    bool stopping;
    /* Threads calling tasks_on_durable callbacks (with the lock released):
     * the writer for a batch, the SQLite watch thread for timed-out tickets;
     * store_forget_durable waits until none is. */
    unsigned firing;
    /* The batch the writer is running (its tickets may time out). */
    struct op *inflight;
    bool unpark; /* the delivery thread has room for parked rows */
    uint64_t taken, written; /* batches the writer took / finished (store_sync) */
};
extern struct store_queue store_q;

/* What the back end tells the core (store_core_start). */
struct store_backend {
    const char *path;    /* for messages: the file, or "PostgreSQL HOST:PORT/DB" */
    const char *db_word; /* said before path where it names the database: "the database " or "" */
    unsigned write_queue; /* [tasks] write_queue: the bound for new tasks */
    const char *node;    /* annotated on every new task as metadata.a2ad.node; NULL: not */
    size_t ticket_err_max; /* a failed ticket's message is cut to this (<= sizeof err) */
    size_t why_max;        /* the write error quoted in it is cut to this */
    /* Called before a new task is queued: false (after store_core_set_error)
     * refuses it. NULL: always admitted while the queue has room. */
    bool (*admit)(void);
    /* Recovery applies crashloop.c's rules: a disabled agent's jobs fail,
     * and a rerun_safe job is not run again past [workers] max_attempts. */
    bool crash_rules;
    /* store_writable for this back end (readiness); NULL: the core's own
     * checks only (the queue's bound). */
    bool (*writable)(char *why, size_t n);
};

/* true from store_core_start until store_core_drop_queue: a back end is
 * open, so store_sync and store_persist have a writer to wait for. */
bool store_core_running(void);

/* store_writable when the SQLite store is not the one open: true without
 * a back end; else false (with why) while the write queue is at its bound
 * or the back end's writable says so. */
bool store_core_writable(char *why, size_t n);

/* Set the thread's store error (store_last_error). */
void store_core_set_error(const char *fmt, ...) A2AD_PRINTF(1, 2);
const char *store_core_last_error(void);

void store_core_ticket_release(struct ticket *t);
void store_core_op_free(struct op *o);
void store_core_op_list_free(struct op *o);

/* Append a chain (first..last) in one step. `admission`: a new task, which
 * is refused when the queue is at its bound (or by be->admit); everything
 * else is always taken, since it belongs to work already acknowledged. */
a2ad_status store_core_append(struct op *first, struct op *last, size_t n, bool admission);

/* TASK_EXT_STORE's free (a restored task's slot replaces a loaded one). */
void store_core_slot_free(void *data);
/* Wake the writer to hand parked rows back (the delivery thread has room,
 * or recovery counted them). */
void store_core_outbox_room(void);

/* t's slot, created when missing (NULL without memory); t's lock held. */
struct store_slot *store_core_slot(struct task *t);
/* The task's row as it is now; the task lock is held. NULL without memory. */
struct op *store_core_task_op_locked(struct task *t, enum task_state state, uint64_t seq);

/* Register the slot, the task hooks and the webhook outbox for backend
 * (kept by pointer while open), open the queue and start the writer
 * thread; A2AD_ERR_IO (logged, nothing registered) when it cannot start.
 * Thread: main, at open. */
a2ad_status store_core_start(const struct store_backend *backend, pthread_t *writer,
                             void *(*writer_main)(void *));
/* Tell the writer (and a watch thread) to stop; join them afterwards. */
void store_core_stop(void);
/* After the writer stopped: free what is still queued; returns how many. */
size_t store_core_drop_queue(void);

/* Writer: wait until there is work, a stop, room for parked rows, or
 * next_maintenance (monotonic ms); take the whole queue. */
struct op *store_core_take(uint64_t next_maintenance, size_t *n, bool *stopping, bool *unpark);
/* Settle what waited on a batch: tickets with its outcome (why = NULL:
 * committed), gates open; calls the tasks_on_durable callbacks with no
 * lock held. Returns the tickets committed. */
size_t store_core_settle(struct op *list, const char *why);
/* The end of a written batch of n ops: log a failure (throttled), settle,
 * hand a failed batch's parked rows to memory, free it. Returns as settle. */
size_t store_core_done(struct op *list, size_t n, const char *why);

/* Mark the OP_TASK rows of a batch that another op of it makes moot. */
void store_core_coalesce(struct op *list);

/* Hand one parked delivery back to webhooks_post. */
a2ad_status store_core_unpark_post(const char *event_id, const char *task_id,
                                   const char *order_key, const char *url, const char *headers,
                                   const void *body, size_t len, uint64_t created_ms);

/* Queue t's row without waiting (recovery: its new state or attempt). */
void store_core_persist(struct task *t);

/* What recovery did, for its log line. */
struct recovery_counts {
    size_t finished, requeued, rerun, interrupted, orphaned, rejected;
};

/* A stored task row back in memory (tasks_restore), with its slots loaded
 * from ext_text; ended_ms is read only for a finished state. NULL (logged)
 * when it cannot be restored. Reference as tasks_restore's. */
struct task *store_core_restore(const char *id, const char *agent_name, enum task_state state,
                                uint64_t seq, int64_t ended_ms, const char *doc,
                                const char *ext_text, int64_t now);

/* One unfinished task is back in memory (was: its stored state, an
 * interrupted one as TASK_WORKING): run it again, or end it. The restart
 * rules: a queued job runs again; a running one fails "interrupted: a2ad
 * restarted" (or "interrupted: node NAME lost" when lost names the node
 * whose rows were taken over) unless its agent is rerun_safe, then it runs
 * again with metadata.a2ad.attempt counting the runs; a job whose agent is
 * gone fails; validation is asked again. Thread: main (recovery) or the
 * PostgreSQL writer (takeover). */
void store_core_recover_task(struct task *t, enum task_state was, const char *agent_name,
                             struct recovery_counts *c, const char *lost);

#endif
