/* store_core - what both durable stores share. See store_core.h. */
#include "store/store_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "agents/plugins.h"
#include "agents/runner.h"
#include "agents/workers.h"
#include "delivery/webhooks.h"

/* Given-up webhooks recorded on one task at most (the count goes on). */
#define GIVEN_UP_KEPT 20

struct store_queue store_q = {.lock = PTHREAD_MUTEX_INITIALIZER,
                              .wake = PTHREAD_COND_INITIALIZER,
                              .settled = PTHREAD_COND_INITIALIZER,
                              .wake_watch = PTHREAD_COND_INITIALIZER};

/* The back end in use (store_core_start); NULL before. */
static const struct store_backend *be;
static atomic_bool running;

/* log throttling (writer thread) */
static uint64_t last_fail_log_ms;
static unsigned fails_unlogged;

static _Thread_local char last_error[256];
/* Outbox rows of the event this thread is emitting (see store.h). */
static _Thread_local struct op *staged_head, *staged_tail;

const char *store_core_last_error(void) { return last_error; }

void store_core_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

/* ---- ops ------------------------------------------------------------ */

void store_core_ticket_release(struct ticket *t) {
    if (t && atomic_fetch_sub(&t->refs, 1) == 1) free(t);
}

static void gate_release(struct gate *g) {
    if (g && atomic_fetch_sub(&g->refs, 1) == 1) free(g);
}

void store_core_op_free(struct op *o) {
    store_core_ticket_release(o->ticket);
    gate_release(o->gate);
    free(o->id);
    free(o->agent);
    free(o->state);
    free(o->doc);
    free(o->ext);
    free(o->task_id);
    free(o->order_key);
    free(o->url);
    free(o->headers);
    free(o->body);
    free(o);
}

void store_core_op_list_free(struct op *o) {
    while (o) {
        struct op *next = o->next;
        store_core_op_free(o);
        o = next;
    }
}

/* Append a chain (first..last) in one step. `admission`: a new task, which
 * is refused when the queue is at its bound; everything else is always
 * taken, since it belongs to work already acknowledged. */
a2ad_status store_core_append(struct op *first, struct op *last, size_t n, bool admission) {
    if (admission && be->admit && !be->admit()) return A2AD_ERR_IO;
    pthread_mutex_lock(&store_q.lock);
    if (store_q.stopping || (admission && store_q.len >= be->write_queue)) {
        bool stopping = store_q.stopping;
        pthread_mutex_unlock(&store_q.lock);
        if (stopping)
            store_core_set_error("the task store is closing");
        else
            store_core_set_error("%s%s cannot keep up: %u writes are waiting "
                                 "([tasks] write_queue); retry later",
                                 be->db_word, be->path, be->write_queue);
        return A2AD_ERR_IO;
    }
    if (store_q.tail)
        store_q.tail->next = first;
    else
        store_q.head = first;
    store_q.tail = last;
    store_q.len += n;
    pthread_cond_signal(&store_q.wake);
    pthread_mutex_unlock(&store_q.lock);
    return A2AD_OK;
}

/* ---- the slot ----------------------------------------------------------- */

void store_core_slot_free(void *data) {
    struct store_slot *s = data;
    store_core_ticket_release(s->created);
    free(s->agent_name);
    free(s);
}

static const struct task_ext_ops slot_ops = {.name = "store", .free = store_core_slot_free};

struct store_slot *store_core_slot(struct task *t) {
    struct store_slot *s = task_ext(t, TASK_EXT_STORE);
    if (!s && (s = calloc(1, sizeof *s))) task_ext_set(t, TASK_EXT_STORE, s);
    return s;
}

/* ---- task rows ------------------------------------------------------ */

static const char *agent_name_of(struct task *t) {
    const struct agent *a = task_agent(t);
    if (a) return a->desc.name;
    struct store_slot *s = task_ext(t, TASK_EXT_STORE);
    return s && s->agent_name ? s->agent_name : "";
}

/* Every slot that can save itself, as {"name": saved, ...}. */
static char *ext_json_locked(struct task *t) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    for (int i = 0; i < TASK_EXT_MAX; i++) {
        const struct task_ext_ops *ops = tasks_ext_ops((enum task_ext_slot)i);
        void *data = task_ext(t, (enum task_ext_slot)i);
        if (!ops || !ops->save || !ops->name || !data) continue;
        cJSON *saved = ops->save(data);
        if (saved) cJSON_AddItemToObject(o, ops->name, saved);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* The task's row as it is now; the task lock is held. */
struct op *store_core_task_op_locked(struct task *t, enum task_state state, uint64_t seq) {
    struct op *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->kind = OP_TASK;
    o->seq = seq;
    o->ended_ms = task_state_terminal(state) ? (int64_t)util_wall_ms() : -1;
    cJSON *doc = task_render_locked(t, -1);
    o->doc = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    o->id = strdup(task_id(t));
    o->agent = strdup(agent_name_of(t));
    o->state = strdup(task_state_name(state));
    o->ext = ext_json_locked(t);
    if (!o->doc || !o->id || !o->agent || !o->state || !o->ext) {
        store_core_op_free(o);
        return NULL;
    }
    return o;
}

/* The last observer of every event: queue the outbox rows its webhooks
 * parked on this thread, then the task row, as one chain. */
static a2ad_status store_observe(struct task *t, const struct task_event *ev) {
    struct op *first = staged_head, *last = staged_tail;
    staged_head = staged_tail = NULL;
    size_t n = 0;
    for (struct op *o = first; o; o = o->next) n++;
    /* The node that holds it, for tasks/get (several nodes, one database). */
    if (be->node && ev->kind == TASK_EVENT_CREATED)
        task_annotate_locked(t, "node", cJSON_CreateString(be->node));
    struct op *row = store_core_task_op_locked(t, ev->state, ev->seq);
    if (!row) {
        store_core_set_error("out of memory writing task %s to the database", task_id(t));
        log_error("store: %s", last_error);
        store_core_op_list_free(first);
        return A2AD_ERR_NOMEM;
    }
    bool created = ev->kind == TASK_EVENT_CREATED;
    if (created) {
        struct store_slot *s = store_core_slot(t);
        struct ticket *tk = s ? calloc(1, sizeof *tk) : NULL;
        if (!tk) {
            store_core_set_error("out of memory writing task %s to the database", task_id(t));
            store_core_op_free(row);
            store_core_op_list_free(first);
            return A2AD_ERR_NOMEM;
        }
        atomic_init(&tk->refs, 2);
        tk->queued_ms = util_now_ms();
        store_core_ticket_release(s->created);
        s->created = tk;
        row->ticket = tk;
    }
    if (last)
        last->next = row;
    else
        first = row;
    a2ad_status rc = store_core_append(first, row, n + 1, created);
    if (rc != A2AD_OK) {
        store_core_op_list_free(first);
        if (!created)
            log_error("store: task %s: event %llu not written: %s", task_id(t),
                      (unsigned long long)ev->seq, last_error);
    }
    return rc;
}

/* The ticket of t's CREATED row with a reference, or NULL. */
static struct ticket *created_ticket(struct task *t) {
    task_lock(t);
    struct store_slot *s = task_ext(t, TASK_EXT_STORE);
    struct ticket *tk = s ? s->created : NULL;
    if (tk) atomic_fetch_add(&tk->refs, 1);
    task_unlock(t);
    return tk;
}

/* tasks_create's wait: until the CREATED row is committed or failed. */
static a2ad_status store_wait_created(struct task *t) {
    struct ticket *tk = created_ticket(t);
    if (!tk) return A2AD_OK; /* nothing was queued (cannot happen) */
    pthread_mutex_lock(&store_q.lock);
    while (!tk->done) pthread_cond_wait(&store_q.settled, &store_q.lock);
    a2ad_status rc = tk->status;
    if (rc != A2AD_OK) store_core_set_error("%s", tk->err);
    pthread_mutex_unlock(&store_q.lock);
    /* Settled: a queued task need not carry its ticket (~250 bytes). */
    task_lock(t);
    struct store_slot *s = task_ext(t, TASK_EXT_STORE);
    if (s && s->created == tk) {
        s->created = NULL;
        store_core_ticket_release(tk);
    }
    task_unlock(t);
    store_core_ticket_release(tk);
    return rc;
}

/* tasks_on_durable: the writer calls cb once the row is settled. */
static a2ad_status store_on_durable(struct task *t, void (*cb)(void *arg), void *arg) {
    struct ticket *tk = created_ticket(t);
    if (!tk) return A2AD_ERR_STATE;
    pthread_mutex_lock(&store_q.lock);
    bool pending = !tk->done && !tk->cb;
    if (pending) {
        tk->cb = cb;
        tk->cb_arg = arg;
    }
    pthread_mutex_unlock(&store_q.lock);
    store_core_ticket_release(tk);
    return pending ? A2AD_OK : A2AD_ERR_STATE;
}

/* tasks_forget_durable: unregister, or wait until the writer's current
 * round of callbacks is over, so the caller may free arg afterwards. */
static bool store_forget_durable(struct task *t, void (*cb)(void *arg), void *arg) {
    struct ticket *tk = created_ticket(t);
    pthread_mutex_lock(&store_q.lock);
    bool removed = tk && tk->cb == cb && tk->cb_arg == arg;
    if (removed) tk->cb = NULL;
    while (store_q.firing) pthread_cond_wait(&store_q.settled, &store_q.lock);
    pthread_mutex_unlock(&store_q.lock);
    store_core_ticket_release(tk);
    return removed;
}

/* A task stored but then not acknowledged (e.g. the job queue filled up in
 * between): its row must go, or the next start would run it. */
static void store_discard(struct task *t) {
    struct op *o = calloc(1, sizeof *o);
    if (o && (o->id = strdup(task_id(t)))) {
        o->kind = OP_TASK_DEL;
        if (store_core_append(o, o, 1, false) == A2AD_OK) return;
    }
    if (o) store_core_op_free(o);
    log_error("store: task %s was refused but its row stays in %s; it would run after a restart",
              task_id(t), be->path);
}

/* ---- the outbox ----------------------------------------------------- */

static char *headers_json(const char *const *headers) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && headers && headers[i]; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(headers[i]));
    char *text = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    return text;
}

/* The row of a delivery, or NULL without memory. */
static struct op *outbox_op_new(const struct webhook_post *p, const char *event_id) {
    struct op *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->kind = OP_OUTBOX_ADD;
    o->id = strdup(event_id);
    o->task_id = util_strdup(p->task_id);
    o->order_key = strdup(p->order_key);
    o->url = strdup(p->url);
    o->headers = headers_json(p->headers);
    o->body = malloc(p->len ? p->len : 1);
    o->len = p->len;
    o->essential = p->essential;
    o->created_ms = p->created_ms ? p->created_ms : util_wall_ms();
    if (!o->id || (p->task_id && !o->task_id) || !o->order_key || !o->url || !o->headers ||
        !o->body) {
        store_core_op_free(o);
        return NULL;
    }
    if (p->len) memcpy(o->body, p->body, p->len);
    return o;
}

/* Queue a row: with the task row of the event being emitted on this thread
 * (the store observer queues it), else on its own. */
static bool outbox_queue(struct op *o) {
    if (tasks_emitting()) {
        if (staged_tail)
            staged_tail->next = o;
        else
            staged_head = o;
        staged_tail = o;
        return true;
    }
    return store_core_append(o, o, 1, false) == A2AD_OK;
}

static void *outbox_add(const struct webhook_post *p, const char *event_id) {
    struct op *o = outbox_op_new(p, event_id);
    struct gate *g = calloc(1, sizeof *g);
    if (!o || !g) goto nomem;
    atomic_init(&g->refs, 2);
    atomic_init(&g->settled, false);
    o->gate = g;
    if (!outbox_queue(o)) {
        store_core_op_free(o); /* closing: the delivery goes out unrecorded */
        return NULL;
    }
    return g;
nomem:
    log_error("store: out of memory recording webhook event %s; it is sent but not kept",
              event_id);
    if (o) store_core_op_free(o);
    free(g);
    return NULL;
}

/* A delivery that does not fit in memory: its row is all there is until the
 * writer hands it back (unpark_rows). */
static bool outbox_park(const struct webhook_post *p, const char *event_id) {
    struct op *o = outbox_op_new(p, event_id);
    if (!o) {
        log_error("store: out of memory parking webhook event %s", event_id);
        return false;
    }
    o->parked = true;
    if (outbox_queue(o)) return true;
    store_core_op_free(o);
    return false;
}

/* The delivery thread has room for parked rows: wake the writer. */
void store_core_outbox_room(void) {
    pthread_mutex_lock(&store_q.lock);
    if (!store_q.unpark) {
        store_q.unpark = true;
        pthread_cond_signal(&store_q.wake);
    }
    pthread_mutex_unlock(&store_q.lock);
}

static bool outbox_sendable(void *gate) {
    return atomic_load(&((struct gate *)gate)->settled);
}

static void outbox_forget(const char *event_id) {
    struct op *o = calloc(1, sizeof *o);
    if (o && (o->id = strdup(event_id))) {
        o->kind = OP_OUTBOX_DEL;
        if (store_core_append(o, o, 1, false) == A2AD_OK) return;
    }
    if (o) store_core_op_free(o);
    log_warn("store: webhook event %s delivered but its outbox row stays (%s); it may be "
             "sent again after a restart", event_id, o ? "store closing" : "out of memory");
}

/* Record a given-up event on its task, where tasks/get shows it. */
static void note_given_up(const char *task_id, const char *event_id, const char *why) {
    struct task *t = task_id ? tasks_get(task_id) : NULL;
    if (!t) return; /* already expired: the log line is all there is */
    char ts[TIMESTAMP_LEN];
    util_timestamp(ts);
    task_lock(t);
    const cJSON *old = task_annotation_locked(t, "webhooksGivenUp");
    cJSON *list = cJSON_IsArray(old) ? cJSON_Duplicate(old, 1) : cJSON_CreateArray();
    cJSON *e = cJSON_CreateObject();
    if (list && e) {
        cJSON_AddStringToObject(e, "eventId", event_id);
        cJSON_AddStringToObject(e, "reason", why ? why : "");
        cJSON_AddStringToObject(e, "at", ts);
        cJSON_AddItemToArray(list, e);
        e = NULL;
        while (cJSON_GetArraySize(list) > GIVEN_UP_KEPT) cJSON_DeleteItemFromArray(list, 0);
        const cJSON *n = task_annotation_locked(t, "webhooksGivenUpCount");
        double count = (cJSON_IsNumber(n) ? n->valuedouble : 0) + 1;
        task_annotate_locked(t, "webhooksGivenUp", list);
        task_annotate_locked(t, "webhooksGivenUpCount", cJSON_CreateNumber(count));
        list = NULL;
        enum task_state s = task_get_state_locked(t);
        struct op *row = store_core_task_op_locked(t, s, task_seq_locked(t));
        if (row && store_core_append(row, row, 1, false) != A2AD_OK) store_core_op_free(row);
    }
    cJSON_Delete(list);
    cJSON_Delete(e);
    task_unlock(t);
    task_release(t);
}

static void outbox_done(void *gate, const char *event_id, const char *task_id, bool delivered,
                        const char *why) {
    gate_release(gate);
    outbox_forget(event_id);
    if (!delivered) note_given_up(task_id, event_id, why);
}

static void outbox_dropped(void *gate) { gate_release(gate); }

static const struct webhooks_outbox outbox_ops = {.add = outbox_add,
                                                  .sendable = outbox_sendable,
                                                  .done = outbox_done,
                                                  .dropped = outbox_dropped,
                                                  .park = outbox_park,
                                                  .room = store_core_outbox_room};

/* Mark the OP_TASK rows of a batch that another op of the same batch makes
 * moot, so that a task with many events in one transaction is written once.
 * Running the batch with them skipped leaves the same rows as running all:
 * the upsert writes a row only when its seq is >= the stored one, so of
 * several upserts the last one with the highest seq is what stays (ops of
 * one task are queued under its lock, so that is the last one anyway), and
 * an OP_TASK_DEL removes the row whatever was upserted before it (the DEL
 * itself is always run). Outbox ops are left alone: their rows are separate
 * and their order relative to task rows does not matter inside one
 * transaction. Tickets and gates are untouched: they are settled with the
 * transaction's outcome whether or not their row was written. Without
 * memory for the map, nothing is marked (every row is written). */
void store_core_coalesce(struct op *list) {
    size_t tasks = 0;
    for (const struct op *o = list; o; o = o->next) tasks += o->kind == OP_TASK;
    if (tasks < 2) return;
    struct hmap *last = hmap_new(tasks); /* task id -> its winning OP_TASK so far */
    if (!last) return;
    for (struct op *o = list; o; o = o->next) {
        if (o->kind == OP_TASK_DEL) {
            struct op *prev = hmap_remove(last, o->id);
            if (prev) prev->moot = true;
            continue;
        }
        if (o->kind != OP_TASK) continue;
        struct op *prev = hmap_get(last, o->id);
        if (prev && prev->seq > o->seq) {
            o->moot = true; /* the upsert would not overwrite prev's row */
            continue;
        }
        if (hmap_put(last, o->id, o) != A2AD_OK) break; /* rest written as they are */
        if (prev) prev->moot = true;
    }
    hmap_free(last);
}


static void log_write_failure(size_t n, const char *why) {
    /* Disk full comes in bursts: one line a second, with a count. */
    uint64_t now = util_now_ms();
    if (now - last_fail_log_ms < 1000 && last_fail_log_ms) {
        fails_unlogged++;
        return;
    }
    log_error("store: cannot write %zu change%s to %s: %s (new jobs are refused until it "
              "works again)%s",
              n, n == 1 ? "" : "s", be->path, why, fails_unlogged ? "; earlier failures too" : "");
    last_fail_log_ms = now;
    fails_unlogged = 0;
}


/* Hand one parked delivery back to webhooks_post. */
a2ad_status store_core_unpark_post(const char *event_id, const char *task_id,
                                   const char *order_key, const char *url, const char *headers,
                                   const void *body, size_t len, uint64_t created_ms) {
    cJSON *hj = cJSON_Parse(headers ? headers : "[]");
    int nh = cJSON_GetArraySize(hj);
    const char **list = calloc((size_t)nh + 1, sizeof *list);
    for (int i = 0; list && i < nh; i++) {
        const cJSON *h = cJSON_GetArrayItem(hj, i);
        list[i] = cJSON_IsString(h) ? h->valuestring : "X-A2A-Bad-Header: 1";
    }
    char *copy = malloc(len ? len : 1);
    if (copy && len) memcpy(copy, body, len);
    struct webhook_post p = {.event_id = event_id, .task_id = task_id, .order_key = order_key,
                             .url = url, .headers = list, .body = copy, .len = len,
                             .essential = true, .created_ms = created_ms, .restored = true,
                             .unparked = true};
    a2ad_status rc = list && copy ? webhooks_post(&p) : (free(copy), A2AD_ERR_NOMEM);
    free(list);
    cJSON_Delete(hj);
    return rc;
}

/* A batch with parked rows failed to commit: those deliveries exist nowhere
 * else, so they go to memory now (they may overtake parked ones of their
 * key; the disk is failing anyway). */
static void unpark_unwritten(const struct op *list) {
    for (const struct op *o = list; o; o = o->next)
        if (o->kind == OP_OUTBOX_ADD && o->parked &&
            store_core_unpark_post(o->id, o->task_id, o->order_key, o->url, o->headers, o->body,
                                   o->len, o->created_ms) != A2AD_OK)
            log_error("store: webhook event %s lost: neither written nor queued", o->id);
}

/* Persist a restored task whose row must change without an event. */
void store_core_persist(struct task *t) {
    task_lock(t);
    struct op *row = store_core_task_op_locked(t, task_get_state_locked(t), task_seq_locked(t));
    task_unlock(t);
    if (row && store_core_append(row, row, 1, false) != A2AD_OK) store_core_op_free(row);
}

/* ---- start, stop ----------------------------------------------------- */

a2ad_status store_core_start(const struct store_backend *backend, pthread_t *writer,
                             void *(*writer_main)(void *)) {
    be = backend;
    last_fail_log_ms = 0;
    fails_unlogged = 0;
    tasks_register_ext(TASK_EXT_STORE, &slot_ops);
    tasks_set_store_hooks(store_observe, store_wait_created);
    tasks_set_store_notify(store_on_durable, store_forget_durable);
    tasks_set_store_discard(store_discard);
    webhooks_set_outbox(&outbox_ops);
    store_q.stopping = false;
    int err = pthread_create(writer, NULL, writer_main, NULL);
    if (err == 0) {
        atomic_store(&running, true);
        return A2AD_OK;
    }
    log_error("store: cannot start the writer thread: %s", strerror(err));
    tasks_set_store_hooks(NULL, NULL);
    tasks_set_store_notify(NULL, NULL);
    tasks_set_store_discard(NULL);
    webhooks_set_outbox(NULL);
    return A2AD_ERR_IO;
}

void store_core_stop(void) {
    pthread_mutex_lock(&store_q.lock);
    store_q.stopping = true;
    pthread_cond_signal(&store_q.wake);
    pthread_cond_signal(&store_q.wake_watch);
    pthread_mutex_unlock(&store_q.lock);
}

bool store_core_running(void) { return atomic_load(&running); }

bool store_core_writable(char *why, size_t n) {
    if (!store_core_running()) return true;
    pthread_mutex_lock(&store_q.lock);
    bool full = store_q.len >= be->write_queue;
    pthread_mutex_unlock(&store_q.lock);
    if (full) {
        snprintf(why, n, "%s%s cannot keep up: %u writes are waiting ([tasks] write_queue)",
                 be->db_word, be->path, be->write_queue);
        return false;
    }
    return !be->writable || be->writable(why, n);
}

size_t store_core_drop_queue(void) {
    atomic_store(&running, false);
    size_t n = 0;
    for (const struct op *o = store_q.head; o; o = o->next) n++;
    store_core_op_list_free(store_q.head);
    store_q.head = store_q.tail = NULL;
    store_q.len = 0;
    store_q.inflight = NULL;
    return n;
}

/* ---- the writer's side ---------------------------------------------- */

struct op *store_core_take(uint64_t next_maintenance, size_t *n, bool *stopping, bool *unpark) {
    pthread_mutex_lock(&store_q.lock);
    while (!store_q.head && !store_q.stopping && !store_q.unpark &&
           util_now_ms() < next_maintenance) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&store_q.wake, &store_q.lock, &ts);
    }
    struct op *list = store_q.head;
    *n = store_q.len;
    if (list) store_q.taken++;
    store_q.head = store_q.tail = NULL;
    store_q.len = 0;
    store_q.inflight = list;
    *stopping = store_q.stopping;
    *unpark = store_q.unpark;
    store_q.unpark = false;
    pthread_mutex_unlock(&store_q.lock);
    return list;
}

size_t store_core_settle(struct op *list, const char *why) {
    bool gates = false, fire = false;
    size_t committed = 0;
    size_t err_max = be->ticket_err_max && be->ticket_err_max < sizeof list->ticket->err
                         ? be->ticket_err_max
                         : sizeof list->ticket->err;
    int why_max = be->why_max ? (int)be->why_max : (int)sizeof list->ticket->err;
    pthread_mutex_lock(&store_q.lock);
    if (store_q.inflight == list) store_q.inflight = NULL;
    for (struct op *o = list; o; o = o->next) {
        if (o->ticket && !o->ticket->done) { /* else: timed out (store.c's watch thread) */
            o->ticket->done = true;
            o->ticket->status = why ? A2AD_ERR_IO : A2AD_OK;
            if (why)
                snprintf(o->ticket->err, err_max, "the task could not be stored in %s%s: %.*s",
                         be->db_word, be->path, why_max, why);
            else
                committed++;
            o->cb = o->ticket->cb;
            o->cb_arg = o->ticket->cb_arg;
            o->ticket->cb = NULL;
            if (o->cb) fire = true;
        }
        /* A failed write still lets the webhook go: it is in memory,
         * and holding it forever would help nobody. */
        if (o->gate) {
            atomic_store(&o->gate->settled, true);
            gates = true;
        }
    }
    if (fire) store_q.firing++;
    store_q.written++;
    pthread_cond_broadcast(&store_q.settled);
    pthread_mutex_unlock(&store_q.lock);
    /* Resume the suspended submissions, no lock held. */
    if (fire) {
        for (struct op *o = list; o; o = o->next)
            if (o->cb) o->cb(o->cb_arg);
        pthread_mutex_lock(&store_q.lock);
        store_q.firing--;
        pthread_cond_broadcast(&store_q.settled);
        pthread_mutex_unlock(&store_q.lock);
    }
    if (gates) webhooks_wake();
    return committed;
}

size_t store_core_done(struct op *list, size_t n, const char *why) {
    if (why) log_write_failure(n, why);
    size_t committed = store_core_settle(list, why);
    if (why) unpark_unwritten(list);
    store_core_op_list_free(list);
    return committed;
}

/* ---- recovery of one task ------------------------------------------- */

struct task *store_core_restore(const char *id, const char *agent_name, enum task_state state,
                                uint64_t seq, int64_t ended_ms, const char *doc,
                                const char *ext_text, int64_t now) {
    struct task_restore r = {
        .doc = doc ? cJSON_Parse(doc) : NULL,
        .agent = plugins_find(agent_name),
        .state = state == TASK_WORKING ? TASK_SUBMITTED : state,
        .seq = seq,
    };
    if (task_state_terminal(state))
        r.ended_ago_ms = now > ended_ms ? (uint64_t)(now - ended_ms) : 0;
    /* An agent that is gone cannot run it; its task is failed by
     * store_core_recover_task, from state working so the failure is a
     * normal transition. */
    if (!r.agent && state == TASK_WORKING) r.state = TASK_WORKING;
    cJSON *ext = ext_text ? cJSON_Parse(ext_text) : NULL;
    for (int i = 0; i < TASK_EXT_MAX; i++) {
        const struct task_ext_ops *ops = tasks_ext_ops((enum task_ext_slot)i);
        const cJSON *saved =
            ops && ops->name && ops->load ? cJSON_GetObjectItemCaseSensitive(ext, ops->name) : NULL;
        if (saved) r.ext[i] = ops->load(saved);
    }
    cJSON_Delete(ext);
    struct store_slot *slot = calloc(1, sizeof *slot);
    if (slot && !r.agent) slot->agent_name = strdup(agent_name);
    if (r.ext[TASK_EXT_STORE]) store_core_slot_free(r.ext[TASK_EXT_STORE]);
    r.ext[TASK_EXT_STORE] = slot;
    struct task *t = NULL;
    a2ad_status rc = r.doc ? tasks_restore(&r, &t) : A2AD_ERR_PARSE;
    if (!r.doc)
        for (int i = 0; i < TASK_EXT_MAX; i++) {
            const struct task_ext_ops *ops = tasks_ext_ops((enum task_ext_slot)i);
            if (r.ext[i] && ops && ops->free) ops->free(r.ext[i]);
        }
    if (rc != A2AD_OK) {
        log_warn("store: task %s cannot be restored: %s", id, a2ad_status_name(rc));
        return NULL;
    }
    return t;
}

void store_core_recover_task(struct task *t, enum task_state was, const char *agent_name,
                             struct recovery_counts *c, const char *lost) {
    char cause[160];
    if (lost)
        snprintf(cause, sizeof cause, "interrupted: node %s lost", lost);
    else
        snprintf(cause, sizeof cause, "interrupted: a2ad restarted");
    const struct agent *a = task_agent(t);
    char why[320];
    if (!a) {
        snprintf(why, sizeof why, "%s and agent %s is %s", cause, agent_name,
                 lost ? "not loaded here" : "no longer loaded");
        task_finish(t, TASK_FAILED, why);
        c->orphaned++;
        return;
    }
    const char *disabled = be->crash_rules ? runner_disabled(a->desc.name) : NULL;
    if (disabled) {
        task_finish(t, TASK_FAILED, disabled);
        c->interrupted++;
        return;
    }
    if (was == TASK_WORKING) {
        if (!a->desc.rerun_safe) {
            task_finish(t, TASK_FAILED, cause);
            c->interrupted++;
            return;
        }
        task_lock(t);
        const cJSON *n = task_annotation_locked(t, "attempt");
        double ran = cJSON_IsNumber(n) ? n->valuedouble : 1;
        task_unlock(t);
        /* `working` was committed before each run, so every one of those
         * runs was cut short: a job that kills a2ad is not run for ever. */
        if (be->crash_rules && ran >= runner_max_attempts()) {
            snprintf(why, sizeof why, "gave up after %.0f attempts: the agent crashed", ran);
            log_error("store: task %s of agent %s: %s (or a2ad was killed while it ran)",
                      task_id(t), a->desc.name, why);
            task_finish(t, TASK_FAILED, why);
            c->interrupted++;
            return;
        }
        task_lock(t);
        task_annotate_locked(t, "attempt", cJSON_CreateNumber(ran + 1));
        task_unlock(t);
        store_core_persist(t);
        c->rerun++;
    } else {
        c->requeued++;
    }
    /* The ack may have gone out before a rejection was stored: ask again. */
    if (a->desc.validate) {
        struct a2ad_validation v;
        memset(&v, 0, sizeof v);
        a2ad_status vs = a->desc.validate(a->state, task_query(t), &v);
        if (vs != A2AD_OK) {
            v.reason[sizeof v.reason - 1] = '\0';
            snprintf(why, sizeof why, "Validation failed: %s",
                     v.reason[0] ? v.reason : a2ad_status_name(vs));
            task_finish(t, TASK_REJECTED, why);
            c->rejected++;
            return;
        }
    }
    a2ad_status rc = workers_submit(t);
    if (rc != A2AD_OK) {
        snprintf(why, sizeof why, "%s and could not queue the job again (%s)", cause,
                 a2ad_status_name(rc));
        task_finish(t, TASK_FAILED, why);
    }
}

