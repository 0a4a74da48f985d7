/* tasks - the task model, its state machine, its events, and the in-memory
 * task store. See tasks.h for the contract. */
#include "core/tasks.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "front/metrics.h"
#include "agents/plugins.h"
#include "util.h"

struct waiter {
    void (*cb)(void *arg);
    void *arg;
    struct waiter *next;
};

struct task {
    /* immutable after tasks_create */
    char id[UUID_STR_LEN];
    char context_id[UUID_STR_LEN];
    const struct agent *agent;
    char *query;

    atomic_int refs;

    /* guarded by lock */
    pthread_mutex_t lock;
    enum task_state state;
    char timestamp[TIMESTAMP_LEN];
    cJSON *status_message; /* latest agent message, or NULL */
    cJSON *history;        /* array of messages */
    cJSON *artifacts;      /* array, or NULL before the first */
    cJSON *metadata;       /* params.metadata, or NULL */
    struct chunked *chunked; /* artifacts streamed in chunks, by name */
    struct waiter *waiters;
    uint64_t seq;          /* events so far */
    void *ext[TASK_EXT_MAX];

    /* set once when the task ends, before it joins the finished FIFO */
    uint64_t ended_ms;
    uint64_t created_us, started_us; /* monotonic; for the metrics and the job-end line */
    struct task *finished_next; /* guarded by store.lock */
};

/* An artifact streamed in chunks: its bytes so far, so the task's copy can
 * be rebuilt whole (text stays text, bytes one base64 file part). The bytes
 * are dropped at the last chunk; the entry stays so a late chunk is refused. */
struct chunked {
    struct chunked *next;
    char *name, *mime;
    char aid[UUID_STR_LEN];
    unsigned char *buf;
    size_t len, cap;
    bool closed;
};

/* [workers] max_artifact_bytes; set at start-up. */
static size_t max_artifact_bytes = (size_t)64 << 20;

void tasks_set_max_artifact_bytes(size_t n) { max_artifact_bytes = n; }

static struct {
    pthread_mutex_t lock;
    struct hmap *by_id;
    struct task *finished_head, *finished_tail; /* in end order */
    unsigned retention_s;
    unsigned max_tasks;
} store = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Set at start-up, before any task: read without locks afterwards. */
enum { MAX_OBSERVERS = 8 };
static task_observer observers[MAX_OBSERVERS];
static size_t n_observers;
static const struct task_ext_ops *ext_ops[TASK_EXT_MAX];
static task_observer store_observer;
static a2ad_status (*create_wait)(struct task *t);

/* The task whose event this thread is handing to observers, if any. */
static _Thread_local struct task *emitting;

void tasks_set_store_hooks(task_observer last, a2ad_status (*wait)(struct task *t)) {
    store_observer = last;
    create_wait = wait;
}

struct task *tasks_emitting(void) { return emitting; }

static a2ad_status (*durable_on)(struct task *t, void (*cb)(void *arg), void *arg);
static bool (*durable_forget)(struct task *t, void (*cb)(void *arg), void *arg);

void tasks_set_store_notify(a2ad_status (*on)(struct task *t, void (*cb)(void *arg), void *arg),
                            bool (*forget)(struct task *t, void (*cb)(void *arg), void *arg)) {
    durable_on = on;
    durable_forget = forget;
}

bool tasks_durable(void) { return create_wait != NULL; }

a2ad_status tasks_on_durable(struct task *t, void (*cb)(void *arg), void *arg) {
    return durable_on ? durable_on(t, cb, arg) : A2AD_ERR_STATE;
}

bool tasks_forget_durable(struct task *t, void (*cb)(void *arg), void *arg) {
    return durable_forget && durable_forget(t, cb, arg);
}

a2ad_status tasks_wait_durable(struct task *t) { return create_wait ? create_wait(t) : A2AD_OK; }

static void (*store_discard)(struct task *t);

void tasks_set_store_discard(void (*discard)(struct task *t)) { store_discard = discard; }

void tasks_add_observer(task_observer fn) {
    if (n_observers < MAX_OBSERVERS)
        observers[n_observers++] = fn;
    else
        log_error("tasks: more than %d observers; one ignored", MAX_OBSERVERS);
}

void tasks_register_ext(enum task_ext_slot slot, const struct task_ext_ops *ops) {
    if ((unsigned)slot < TASK_EXT_MAX) ext_ops[slot] = ops;
}

const struct task_ext_ops *tasks_ext_ops(enum task_ext_slot slot) {
    return (unsigned)slot < TASK_EXT_MAX ? ext_ops[slot] : NULL;
}

static void ext_free(enum task_ext_slot slot, void *data) {
    if (data && ext_ops[slot] && ext_ops[slot]->free) ext_ops[slot]->free(data);
}

/* Hand the event just applied to every observer; task locked, so two
 * threads' events reach them in the order they were applied. */
static a2ad_status emit_locked(struct task *t, struct task_event *ev) {
    ev->seq = ++t->seq;
    ev->timestamp = t->timestamp;
    a2ad_status st = A2AD_OK;
    emitting = t;
    for (size_t i = 0; i < n_observers; i++) {
        st = observers[i](t, ev);
        if (st != A2AD_OK && ev->kind == TASK_EVENT_CREATED) break;
        st = A2AD_OK;
    }
    /* Last, so it sees whatever the others queued for this event. */
    if (st == A2AD_OK && store_observer) {
        st = store_observer(t, ev);
        if (ev->kind != TASK_EVENT_CREATED) st = A2AD_OK;
    }
    emitting = NULL;
    return st;
}

static const char *const state_names[] = {
    [TASK_SUBMITTED] = "submitted", [TASK_WORKING] = "working",   [TASK_COMPLETED] = "completed",
    [TASK_FAILED] = "failed",       [TASK_CANCELED] = "canceled", [TASK_REJECTED] = "rejected",
    [TASK_INPUT_REQUIRED] = "input-required", [TASK_AUTH_REQUIRED] = "auth-required",
};

const char *task_state_name(enum task_state s) {
    return (unsigned)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "unknown";
}

bool task_state_terminal(enum task_state s) {
    return s == TASK_COMPLETED || s == TASK_FAILED || s == TASK_CANCELED || s == TASK_REJECTED;
}

bool task_state_interrupted(enum task_state s) {
    return s == TASK_INPUT_REQUIRED || s == TASK_AUTH_REQUIRED;
}

static const char *importance_name(a2ad_importance i) {
    static const char *const names[] = {"error", "notice", "info", "debug"};
    return (unsigned)i < 4 ? names[i] : "info";
}

/* ---- store ---------------------------------------------------------- */

void tasks_init(unsigned retention_s, unsigned max_tasks) {
    pthread_mutex_lock(&store.lock);
    if (!store.by_id) store.by_id = hmap_new(1024);
    store.retention_s = retention_s;
    store.max_tasks = max_tasks ? max_tasks : 1;
    pthread_mutex_unlock(&store.lock);
}

static void task_free(struct task *t) {
    pthread_mutex_destroy(&t->lock);
    cJSON_Delete(t->status_message);
    cJSON_Delete(t->history);
    cJSON_Delete(t->artifacts);
    cJSON_Delete(t->metadata);
    for (struct chunked *c = t->chunked, *n; c; c = n) {
        n = c->next;
        free(c->name);
        free(c->mime);
        free(c->buf);
        free(c);
    }
    for (struct waiter *w = t->waiters, *n; w; w = n) {
        n = w->next;
        free(w);
    }
    for (int i = 0; i < TASK_EXT_MAX; i++) ext_free((enum task_ext_slot)i, t->ext[i]);
    free(t->query);
    plugins_drop(t->agent);
    free(t);
}

void task_retain(struct task *t) { atomic_fetch_add(&t->refs, 1); }

void task_release(struct task *t) {
    if (t && atomic_fetch_sub(&t->refs, 1) == 1) task_free(t);
}

/* Pop up to at_most finished tasks that ended at or before older_than_ms
 * from the FIFO head; store.lock held. The store's reference of each popped
 * task is handed back through `drop`, to be released outside the lock. */
static size_t store_evict_locked(uint64_t older_than_ms, size_t at_most, struct task **drop) {
    size_t n = 0;
    while (store.finished_head && n < at_most && store.finished_head->ended_ms <= older_than_ms) {
        struct task *t = store.finished_head;
        store.finished_head = t->finished_next;
        if (!store.finished_head) store.finished_tail = NULL;
        hmap_remove(store.by_id, t->id);
        t->finished_next = *drop;
        *drop = t;
        n++;
    }
    return n;
}

/* Put a task that ended at the tail of the expiry FIFO; store.lock held. */
static void finished_append_locked(struct task *t) {
    if (store.finished_tail)
        store.finished_tail->finished_next = t;
    else
        store.finished_head = t;
    store.finished_tail = t;
}

static void release_list(struct task *list) {
    while (list) {
        struct task *next = list->finished_next;
        task_release(list);
        list = next;
    }
}

size_t tasks_expire(void) {
    uint64_t now = util_now_ms();
    uint64_t keep_ms = (uint64_t)store.retention_s * 1000u;
    struct task *drop = NULL;
    pthread_mutex_lock(&store.lock);
    size_t n = now >= keep_ms ? store_evict_locked(now - keep_ms, SIZE_MAX, &drop) : 0;
    pthread_mutex_unlock(&store.lock);
    release_list(drop); /* freeing outside the lock keeps lookups fast */
    return n;
}

size_t tasks_count(void) {
    pthread_mutex_lock(&store.lock);
    size_t n = store.by_id ? hmap_count(store.by_id) : 0;
    pthread_mutex_unlock(&store.lock);
    return n;
}

struct list_acc {
    struct task **v;
    size_t n;
};

static void list_entry(const char *key, void *value, void *arg) {
    (void)key;
    struct list_acc *acc = arg;
    task_retain(value);
    acc->v[acc->n++] = value;
}

a2ad_status tasks_list(struct task ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&store.lock);
    size_t count = store.by_id ? hmap_count(store.by_id) : 0;
    struct list_acc acc = {.v = malloc((count ? count : 1) * sizeof *acc.v)};
    if (acc.v && count) hmap_each(store.by_id, list_entry, &acc);
    pthread_mutex_unlock(&store.lock);
    if (!acc.v) return A2AD_ERR_NOMEM;
    *out = acc.v;
    *n = acc.n;
    return A2AD_OK;
}

static void release_entry(const char *key, void *value, void *arg) {
    (void)key;
    (void)arg;
    task_release(value);
}

void tasks_shutdown(void) {
    /* Finished tasks leave through the FIFO; the map then holds only the
     * unfinished ones. */
    struct task *drop = NULL;
    pthread_mutex_lock(&store.lock);
    store_evict_locked(UINT64_MAX, SIZE_MAX, &drop);
    struct hmap *m = store.by_id;
    store.by_id = NULL;
    pthread_mutex_unlock(&store.lock);
    release_list(drop);
    /* Unfinished tasks (none after a clean stop) are not in the FIFO. */
    if (m) hmap_each(m, release_entry, NULL);
    hmap_free(m);
    n_observers = 0;
    memset(ext_ops, 0, sizeof ext_ops);
    store_observer = NULL;
    create_wait = NULL;
    store_discard = NULL;
    durable_on = NULL;
    durable_forget = NULL;
}

void tasks_discard(struct task *t) {
    pthread_mutex_lock(&store.lock);
    bool held = store.by_id && hmap_get(store.by_id, t->id) == t;
    if (held) hmap_remove(store.by_id, t->id);
    /* An ended task is also in the expiry FIFO, which holds no reference
     * of its own (found by fuzz/fuzz_roundtrip): unlink it (rare, so a walk).
     * Only then: a walk for every discarded submission (each 503) held the
     * store lock across up to max_tasks entries and stalled the workers. */
    bool in_fifo = held && (t->finished_next || store.finished_tail == t);
    for (struct task **p = &store.finished_head, *prev = NULL; in_fifo && *p;
         prev = *p, p = &(*p)->finished_next)
        if (*p == t) {
            *p = t->finished_next;
            if (store.finished_tail == t) store.finished_tail = prev;
            t->finished_next = NULL;
            break;
        }
    pthread_mutex_unlock(&store.lock);
    if (held && store_discard) store_discard(t);
    if (held) task_release(t);
}

struct task *tasks_get(const char *id) {
    if (!id) return NULL;
    pthread_mutex_lock(&store.lock);
    struct task *t = store.by_id ? hmap_get(store.by_id, id) : NULL;
    if (t) task_retain(t);
    pthread_mutex_unlock(&store.lock);
    return t;
}

/* Text parts joined by "\n": the query an agent receives. */
char *tasks_message_text(const cJSON *message) {
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(message, "parts");
    size_t len = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, parts) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(text)) len += strlen(text->valuestring) + 1;
    }
    char *q = malloc(len + 1);
    if (!q) return NULL;
    size_t o = 0;
    cJSON_ArrayForEach(part, parts) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(text)) continue;
        if (o) q[o++] = '\n';
        size_t n = strlen(text->valuestring);
        memcpy(q + o, text->valuestring, n);
        o += n;
    }
    q[o] = '\0';
    return q;
}

/* Set or replace a string member. */
static void json_set_string(cJSON *obj, const char *key, const char *value) {
    cJSON *s = cJSON_CreateString(value);
    if (!s) return;
    if (cJSON_HasObjectItem(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, s);
    else
        cJSON_AddItemToObject(obj, key, s);
}

a2ad_status tasks_create(const struct task_create *in, struct task **out) {
    *out = NULL;
    struct task *t = calloc(1, sizeof *t);
    if (!t) goto nomem;
    memcpy(t->ext, in->ext, sizeof t->ext); /* taken now, whatever happens */
    pthread_mutex_init(&t->lock, NULL);
    atomic_init(&t->refs, 2); /* the store's and the caller's */
    util_uuid(t->id);
    if (in->context_id && strlen(in->context_id) < sizeof t->context_id)
        strcpy(t->context_id, in->context_id);
    else
        util_uuid(t->context_id);
    t->agent = in->agent;
    t->created_us = metrics_now_us();
    plugins_hold(t->agent); /* the record: a finished task still names its agent */
    t->state = TASK_SUBMITTED;
    util_timestamp(t->timestamp);
    t->metadata = in->metadata;
    t->history = cJSON_CreateArray();
    t->query = tasks_message_text(in->message);
    if (!t->history || !t->query) goto nomem_owned;
    /* The stored user message names its task, as the SDKs record it. */
    json_set_string(in->message, "kind", "message");
    json_set_string(in->message, "taskId", t->id);
    json_set_string(in->message, "contextId", t->context_id);
    cJSON_AddItemToArray(t->history, in->message);

    pthread_mutex_lock(&store.lock);
    if (!store.by_id) store.by_id = hmap_new(1024);
    struct task *drop = NULL;
    if (hmap_count(store.by_id) >= store.max_tasks) {
        /* Over the cap: finished tasks go before their retention runs out,
         * oldest first, rather than refusing new work. */
        size_t freed = store_evict_locked(UINT64_MAX, 64, &drop);
        if (freed)
            log_warn("task store full (max_tasks = %u): dropped %zu finished tasks early",
                     store.max_tasks, freed);
    }
    a2ad_status st = hmap_count(store.by_id) >= store.max_tasks ? A2AD_ERR_FULL
                                                                : hmap_put(store.by_id, t->id, t);
    pthread_mutex_unlock(&store.lock);
    release_list(drop);
    if (st != A2AD_OK) {
        task_free(t);
        return st;
    }
    /* Observers may refuse the task (e.g. it could not be stored). */
    struct task_event ev = {.kind = TASK_EVENT_CREATED, .state = TASK_SUBMITTED,
                            .progress = NAN, .importance = -1};
    pthread_mutex_lock(&t->lock);
    st = emit_locked(t, &ev);
    pthread_mutex_unlock(&t->lock);
    /* The ack waits until the task is on disk, with no lock held. */
    if (st == A2AD_OK && create_wait && !in->defer_durable) st = create_wait(t);
    if (st != A2AD_OK) {
        tasks_discard(t);
        task_release(t);
        return st;
    }
    *out = t;
    return A2AD_OK;

nomem:
    cJSON_Delete(in->message);
    cJSON_Delete(in->metadata);
    for (int i = 0; i < TASK_EXT_MAX; i++) ext_free((enum task_ext_slot)i, in->ext[i]);
    return A2AD_ERR_NOMEM;
nomem_owned:
    cJSON_Delete(in->message);
    task_free(t);
    return A2AD_ERR_NOMEM;
}

/* A task built from a stored row (tasks_restore, tasks_detached), holding
 * refs references and entered nowhere yet. in's doc and slot data are
 * taken, also on failure. */
static a2ad_status task_from_doc(const struct task_restore *in, int refs, struct task **out) {
    *out = NULL;
    cJSON *doc = in->doc;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(doc, "contextId");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(doc, "status");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(status, "timestamp");
    cJSON *history = cJSON_DetachItemFromObjectCaseSensitive(doc, "history");
    struct task *t = calloc(1, sizeof *t);
    a2ad_status st = A2AD_ERR_PARSE;
    if (!t) {
        for (int i = 0; i < TASK_EXT_MAX; i++) ext_free((enum task_ext_slot)i, in->ext[i]);
        cJSON_Delete(history);
        cJSON_Delete(doc);
        return A2AD_ERR_NOMEM;
    }
    memcpy(t->ext, in->ext, sizeof t->ext);
    pthread_mutex_init(&t->lock, NULL);
    atomic_init(&t->refs, refs);
    if (!cJSON_IsString(id) || strlen(id->valuestring) >= sizeof t->id || !cJSON_IsString(ctx) ||
        strlen(ctx->valuestring) >= sizeof t->context_id || !cJSON_IsArray(history) ||
        !cJSON_IsString(ts) || strlen(ts->valuestring) >= sizeof t->timestamp)
        goto fail;
    strcpy(t->id, id->valuestring);
    strcpy(t->context_id, ctx->valuestring);
    strcpy(t->timestamp, ts->valuestring);
    t->agent = in->agent;
    plugins_hold(t->agent);
    t->state = in->state;
    t->seq = in->seq;
    t->history = history;
    history = NULL;
    t->status_message = cJSON_DetachItemFromObjectCaseSensitive((cJSON *)status, "message");
    t->artifacts = cJSON_DetachItemFromObjectCaseSensitive(doc, "artifacts");
    t->metadata = cJSON_DetachItemFromObjectCaseSensitive(doc, "metadata");
    /* The query is the first message's text, as at creation. */
    st = A2AD_ERR_NOMEM;
    if (!(t->query = tasks_message_text(cJSON_GetArrayItem(t->history, 0)))) goto fail;
    if (task_state_terminal(t->state)) {
        uint64_t now = util_now_ms();
        t->ended_ms = now > in->ended_ago_ms ? now - in->ended_ago_ms : 0;
    }
    cJSON_Delete(doc);
    *out = t;
    return A2AD_OK;
fail:
    cJSON_Delete(history);
    cJSON_Delete(doc);
    task_free(t);
    return st;
}

a2ad_status tasks_restore(const struct task_restore *in, struct task **out) {
    struct task *t;
    a2ad_status st = task_from_doc(in, 2, &t);
    if (st != A2AD_OK) return st;
    pthread_mutex_lock(&store.lock);
    if (!store.by_id) store.by_id = hmap_new(1024);
    st = hmap_get(store.by_id, t->id) ? A2AD_ERR_STATE : hmap_put(store.by_id, t->id, t);
    if (st == A2AD_OK && task_state_terminal(t->state)) finished_append_locked(t);
    pthread_mutex_unlock(&store.lock);
    if (st != A2AD_OK) {
        task_free(t);
        return st;
    }
    *out = t;
    return A2AD_OK;
}

void task_annotate_locked(struct task *t, const char *key, cJSON *value) {
    if (!value) return;
    if (!t->metadata && !(t->metadata = cJSON_CreateObject())) goto drop;
    cJSON *mine = cJSON_GetObjectItemCaseSensitive(t->metadata, "a2ad");
    if (!cJSON_IsObject(mine)) {
        cJSON_DeleteItemFromObjectCaseSensitive(t->metadata, "a2ad");
        if (!(mine = cJSON_AddObjectToObject(t->metadata, "a2ad"))) goto drop;
    }
    if (cJSON_HasObjectItem(mine, key))
        cJSON_ReplaceItemInObjectCaseSensitive(mine, key, value);
    else
        cJSON_AddItemToObject(mine, key, value);
    return;
drop:
    cJSON_Delete(value);
}

const cJSON *task_annotation_locked(struct task *t, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(t->metadata, "a2ad"), key);
}

uint64_t task_seq_locked(struct task *t) { return t->seq; }

/* ---- accessors ------------------------------------------------------ */

const char *task_id(const struct task *t) { return t->id; }
const char *task_context_id(const struct task *t) { return t->context_id; }
const struct agent *task_agent(const struct task *t) { return t->agent; }
const char *task_query(const struct task *t) { return t->query; }

enum task_state task_get_state_locked(struct task *t) { return t->state; }

enum task_state task_get_state(struct task *t) {
    pthread_mutex_lock(&t->lock);
    enum task_state s = t->state;
    pthread_mutex_unlock(&t->lock);
    return s;
}

enum task_state task_get_status(struct task *t, char *timestamp) {
    pthread_mutex_lock(&t->lock);
    enum task_state s = t->state;
    memcpy(timestamp, t->timestamp, TIMESTAMP_LEN);
    pthread_mutex_unlock(&t->lock);
    return s;
}

static void set_status_locked(struct task *t, enum task_state s, cJSON *message);
static void emit_status_locked(struct task *t, const char *text, double progress, int importance);

a2ad_status task_add_message(struct task *t, cJSON *message) {
    json_set_string(message, "kind", "message");
    json_set_string(message, "taskId", t->id);
    json_set_string(message, "contextId", t->context_id);
    pthread_mutex_lock(&t->lock);
    bool ended = task_state_terminal(t->state);
    if (!ended) cJSON_AddItemToArray(t->history, message);
    if (!ended && task_state_interrupted(t->state)) { /* the answer: back to work */
        cJSON_Delete(t->status_message);
        t->status_message = NULL;
        set_status_locked(t, TASK_WORKING, NULL);
        emit_status_locked(t, NULL, NAN, -1);
    }
    pthread_mutex_unlock(&t->lock);
    if (ended) cJSON_Delete(message);
    return ended ? A2AD_ERR_STATE : A2AD_OK;
}

/* A copy of item for a rendered Task, or, when shared, a node that points at
 * the task's own children: printing one costs no copy, and cJSON_Delete of a
 * reference leaves what it points at alone. */
static cJSON *render_part(const cJSON *item, bool shared) {
    if (shared && cJSON_IsObject(item)) return cJSON_CreateObjectReference(item->child);
    if (shared && cJSON_IsArray(item)) return cJSON_CreateArrayReference(item->child);
    return cJSON_Duplicate(item, 1);
}

static cJSON *render_string(const char *s, bool shared) {
    return shared ? cJSON_CreateStringReference(s) : cJSON_CreateString(s);
}

/* The Task tree; shared: a tree that borrows the task's parts, only good
 * while the lock is held and never to be edited (task_print_locked). */
static cJSON *render_locked(struct task *t, int history_length, bool shared) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddItemToObject(o, "kind", render_string("task", shared));
    cJSON_AddItemToObject(o, "id", render_string(t->id, shared));
    cJSON_AddItemToObject(o, "contextId", render_string(t->context_id, shared));
    cJSON *status = cJSON_AddObjectToObject(o, "status");
    if (status) {
        cJSON_AddItemToObject(status, "state", render_string(task_state_name(t->state), shared));
        if (t->status_message)
            cJSON_AddItemToObject(status, "message", render_part(t->status_message, shared));
        cJSON_AddItemToObject(status, "timestamp", render_string(t->timestamp, shared));
    }
    if (history_length != 0) {
        int n = cJSON_GetArraySize(t->history);
        int from = history_length < 0 || history_length >= n ? 0 : n - history_length;
        cJSON *h = cJSON_AddArrayToObject(o, "history");
        /* Walked, not indexed: cJSON_GetArrayItem is a walk of its own. */
        cJSON *m = t->history ? t->history->child : NULL;
        for (int i = 0; m && i < from; i++) m = m->next;
        for (; h && m; m = m->next) cJSON_AddItemToArray(h, render_part(m, shared));
    }
    if (t->artifacts) cJSON_AddItemToObject(o, "artifacts", render_part(t->artifacts, shared));
    if (t->metadata) cJSON_AddItemToObject(o, "metadata", render_part(t->metadata, shared));
    return o;
}

cJSON *task_render_locked(struct task *t, int history_length) {
    return render_locked(t, history_length, false);
}

char *task_print_locked(struct task *t, int history_length) {
    cJSON *o = render_locked(t, history_length, true);
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

cJSON *task_render(struct task *t, int history_length) {
    pthread_mutex_lock(&t->lock);
    cJSON *o = task_render_locked(t, history_length);
    pthread_mutex_unlock(&t->lock);
    return o;
}

/* ---- events --------------------------------------------------------- */

static cJSON *agent_message(struct task *t, const char *text) {
    char mid[UUID_STR_LEN];
    util_uuid(mid);
    cJSON *m = cJSON_CreateObject();
    if (!m) return NULL;
    cJSON_AddStringToObject(m, "kind", "message");
    cJSON_AddStringToObject(m, "role", "agent");
    cJSON_AddStringToObject(m, "messageId", mid);
    cJSON_AddStringToObject(m, "taskId", t->id);
    cJSON_AddStringToObject(m, "contextId", t->context_id);
    cJSON *parts = cJSON_AddArrayToObject(m, "parts");
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "kind", "text");
    cJSON_AddStringToObject(p, "text", text ? text : "");
    cJSON_AddItemToArray(parts, p);
    return m;
}

static void set_status_locked(struct task *t, enum task_state s, cJSON *message) {
    t->state = s;
    util_timestamp(t->timestamp);
    if (message) {
        cJSON_Delete(t->status_message);
        t->status_message = message;
    }
}

/* A STATUS event for the state the task is now in. */
static void emit_status_locked(struct task *t, const char *text, double progress, int importance) {
    struct task_event ev = {
        .kind = TASK_EVENT_STATUS, .state = t->state, .terminal = task_state_terminal(t->state),
        .interrupted = task_state_interrupted(t->state),
        .message = t->status_message, .text = text, .progress = progress, .importance = importance,
    };
    emit_locked(t, &ev);
}

a2ad_status task_start(struct task *t) {
    pthread_mutex_lock(&t->lock);
    a2ad_status st = A2AD_ERR_STATE;
    if (t->state == TASK_SUBMITTED) {
        set_status_locked(t, TASK_WORKING, NULL);
        t->started_us = metrics_now_us();
        emit_status_locked(t, NULL, NAN, -1);
        st = A2AD_OK;
    }
    pthread_mutex_unlock(&t->lock);
    return st;
}

a2ad_status task_progress(struct task *t, const char *message, double progress,
                          a2ad_importance importance) {
    bool has_text = message && *message;
    if ((unsigned)importance > A2AD_DEBUG || (!has_text && isnan(progress)))
        return A2AD_ERR_INVALID;
    if (!isnan(progress)) progress = progress < 0 ? 0 : progress > 1 ? 1 : progress;

    cJSON *m = agent_message(t, has_text ? message : "");
    cJSON *md = m ? cJSON_AddObjectToObject(m, "metadata") : NULL;
    if (!md) {
        cJSON_Delete(m);
        return A2AD_ERR_NOMEM;
    }
    if (!isnan(progress)) cJSON_AddNumberToObject(md, "progress", progress);
    cJSON_AddStringToObject(md, "importance", importance_name(importance));

    pthread_mutex_lock(&t->lock);
    a2ad_status st = A2AD_ERR_STATE;
    if (!task_state_terminal(t->state)) {
        set_status_locked(t, TASK_WORKING, m);
        m = NULL;
        emit_status_locked(t, has_text ? message : NULL, progress, (int)importance);
        st = A2AD_OK;
    }
    pthread_mutex_unlock(&t->lock);
    cJSON_Delete(m);
    return st;
}

/* Text-like types that are valid UTF-8 travel as a text part (readable in
 * tasks/get); everything else as a file part with base64 bytes. */
static bool mime_is_text(const char *mime) {
    size_t n = strlen(mime);
    return strncmp(mime, "text/", 5) == 0 || strcmp(mime, "application/json") == 0 ||
           strcmp(mime, "application/xml") == 0 ||
           (n > 5 && (strcmp(mime + n - 5, "+json") == 0 || strcmp(mime + n - 4, "+xml") == 0));
}

/* The A2A Artifact for these bytes. A chunked artifact never becomes a data
 * part: its chunks are not JSON objects on their own, and the assembled text
 * must be the concatenation of the chunks' texts. */
static cJSON *artifact_build(const char *aid, const char *name, const char *mime_type,
                             const void *data, size_t len, bool allow_data) {
    cJSON *a = cJSON_CreateObject();
    cJSON *parts = a ? cJSON_AddArrayToObject(a, "parts") : NULL;
    cJSON *part = cJSON_CreateObject();
    if (!parts || !part) {
        cJSON_Delete(a);
        cJSON_Delete(part);
        return NULL;
    }
    cJSON_AddStringToObject(a, "artifactId", aid);
    cJSON_AddStringToObject(a, "name", name);
    cJSON_AddItemToArray(parts, part);
    /* JSON is data, not text: A2A carries it as a data part, so clients get
     * the object instead of a string to parse again. */
    cJSON *json = allow_data && strcasecmp(mime_type, "application/json") == 0 && len
                      ? cJSON_ParseWithLength(data, len)
                      : NULL;
    if (json && !cJSON_IsObject(json)) { /* A2A's DataPart.data is an object */
        cJSON_Delete(json);
        json = NULL;
    }
    if (json) {
        cJSON_AddStringToObject(part, "kind", "data");
        cJSON_AddItemToObject(part, "data", json);
    } else if (mime_is_text(mime_type) && util_utf8_valid(data, len)) {
        char *text = malloc(len + 1);
        if (!text) {
            cJSON_Delete(a);
            return NULL;
        }
        if (len) memcpy(text, data, len);
        text[len] = '\0';
        cJSON_AddStringToObject(part, "kind", "text");
        cJSON_AddStringToObject(part, "text", text);
        free(text);
    } else {
        char *b64 = util_base64_encode(data, len);
        cJSON *file = cJSON_CreateObject();
        if (!b64 || !file) {
            free(b64);
            cJSON_Delete(file);
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddStringToObject(part, "kind", "file");
        cJSON_AddStringToObject(file, "name", name);
        cJSON_AddStringToObject(file, "mimeType", mime_type);
        cJSON_AddStringToObject(file, "bytes", b64);
        cJSON_AddItemToObject(part, "file", file);
        free(b64);
    }
    cJSON *md = cJSON_AddObjectToObject(a, "metadata");
    if (md) {
        cJSON_AddStringToObject(md, "mimeType", mime_type);
        cJSON_AddNumberToObject(md, "size", (double)len);
    }
    return a;
}

a2ad_status task_artifact(struct task *t, const char *name, const char *mime_type,
                          const void *data, size_t len) {
    if (!name || !*name || (!data && len)) return A2AD_ERR_INVALID;
    if (!mime_type || !*mime_type) mime_type = "application/octet-stream";

    char aid[UUID_STR_LEN];
    util_uuid(aid);
    cJSON *a = artifact_build(aid, name, mime_type, data, len, true);
    if (!a) return A2AD_ERR_NOMEM;

    pthread_mutex_lock(&t->lock);
    a2ad_status st = A2AD_ERR_STATE;
    if (!task_state_terminal(t->state)) {
        if (!t->artifacts) t->artifacts = cJSON_CreateArray();
        if (t->artifacts) {
            cJSON_AddItemToArray(t->artifacts, a);
            if (t->state == TASK_SUBMITTED) set_status_locked(t, TASK_WORKING, NULL);
            struct task_event ev = {
                .kind = TASK_EVENT_ARTIFACT, .state = t->state, .artifact = a,
                .artifact_name = name, .artifact_mime = mime_type, .data = data, .len = len,
                .last_chunk = true, .whole = a, .whole_data = data, .whole_len = len,
                .progress = NAN, .importance = -1,
            };
            a = NULL;
            emit_locked(t, &ev);
            st = A2AD_OK;
        } else {
            st = A2AD_ERR_NOMEM;
        }
    }
    pthread_mutex_unlock(&t->lock);
    cJSON_Delete(a);
    return st;
}

static struct chunked *chunked_find(struct task *t, const char *name) {
    for (struct chunked *c = t->chunked; c; c = c->next)
        if (strcmp(c->name, name) == 0) return c;
    return NULL;
}

a2ad_status task_artifact_chunk(struct task *t, const char *name, const char *mime_type,
                                const void *data, size_t len, bool append, bool last_chunk) {
    if (!name || !*name || (!data && len)) return A2AD_ERR_INVALID;
    if (!mime_type || !*mime_type) mime_type = "application/octet-stream";

    pthread_mutex_lock(&t->lock);
    a2ad_status st = A2AD_OK;
    cJSON *chunk = NULL, *whole = NULL;
    struct chunked *c = NULL;
    if (task_state_terminal(t->state)) {
        st = A2AD_ERR_ENDED;
        goto out;
    }
    c = chunked_find(t, name);
    /* append continues the open artifact of that name; a new one (append
     * false) may not start while one of that name is still open. */
    if (append ? !c || c->closed : c && !c->closed) {
        st = A2AD_ERR_STATE;
        goto out;
    }
    if (!c) {
        if (!(c = calloc(1, sizeof *c)) || !(c->name = strdup(name))) {
            free(c);
            st = A2AD_ERR_NOMEM;
            goto out;
        }
        c->next = t->chunked;
        t->chunked = c;
    }
    if (!append) { /* a new artifact (again, if this name was used before) */
        char *mime = strdup(mime_type);
        if (!mime) {
            st = A2AD_ERR_NOMEM;
            goto out;
        }
        free(c->mime);
        c->mime = mime;
        util_uuid(c->aid);
        c->len = 0;
        c->closed = false;
    }
    if (len > max_artifact_bytes || c->len > max_artifact_bytes - len) {
        st = A2AD_ERR_FULL;
        goto out;
    }
    if (c->len + len > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + len) cap = cap > SIZE_MAX / 2 ? c->len + len : cap * 2;
        unsigned char *b = realloc(c->buf, cap);
        if (!b) {
            st = A2AD_ERR_NOMEM;
            goto out;
        }
        c->buf = b;
        c->cap = cap;
    }
    if (len) memcpy(c->buf + c->len, data, len);
    c->len += len;
    /* The assembled copy is rebuilt from all the bytes: a UTF-8 character
     * split between chunks is whole again, and tasks/get shows one part. */
    chunk = artifact_build(c->aid, name, c->mime, data, len, false);
    whole = artifact_build(c->aid, name, c->mime, c->buf, c->len, false);
    if (!t->artifacts) t->artifacts = cJSON_CreateArray();
    if (!chunk || !whole || !t->artifacts) {
        c->len -= len;
        st = A2AD_ERR_NOMEM;
        goto out;
    }
    cJSON *old = NULL, *x;
    cJSON_ArrayForEach(x, t->artifacts) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "artifactId");
        if (cJSON_IsString(id) && strcmp(id->valuestring, c->aid) == 0) old = x;
    }
    if (old) cJSON_ReplaceItemViaPointer(t->artifacts, old, whole);
    else cJSON_AddItemToArray(t->artifacts, whole);
    if (t->state == TASK_SUBMITTED) set_status_locked(t, TASK_WORKING, NULL);
    struct task_event ev = {
        .kind = TASK_EVENT_ARTIFACT, .state = t->state, .artifact = chunk,
        .artifact_name = name, .artifact_mime = c->mime, .data = data, .len = len,
        .append = append, .last_chunk = last_chunk, .whole = whole,
        .whole_data = c->buf, .whole_len = c->len, .progress = NAN, .importance = -1,
    };
    whole = NULL;
    emit_locked(t, &ev);
    if (last_chunk) {
        c->closed = true;
        free(c->buf);
        c->buf = NULL;
        c->len = c->cap = 0;
    }
out:
    pthread_mutex_unlock(&t->lock);
    cJSON_Delete(chunk);
    cJSON_Delete(whole);
    return st;
}

a2ad_status task_finish(struct task *t, enum task_state final_state, const char *text) {
    if (!task_state_terminal(final_state)) return A2AD_ERR_INVALID;
    cJSON *m = text ? agent_message(t, text) : NULL;
    cJSON *hist = m ? cJSON_Duplicate(m, 1) : NULL;

    pthread_mutex_lock(&t->lock);
    if (task_state_terminal(t->state)) {
        pthread_mutex_unlock(&t->lock);
        cJSON_Delete(m);
        cJSON_Delete(hist);
        return A2AD_ERR_STATE;
    }
    if (!m) { /* the final status carries no stale progress message */
        cJSON_Delete(t->status_message);
        t->status_message = NULL;
    }
    set_status_locked(t, final_state, m);
    if (hist) cJSON_AddItemToArray(t->history, hist);
    emit_status_locked(t, text, NAN, -1);
    t->ended_ms = util_now_ms();
    const cJSON *attempt = task_annotation_locked(t, "attempt");
    uint64_t now_us = metrics_now_us(), began = t->started_us ? t->started_us : now_us;
    struct metrics_end end = {
        .task_id = t->id,
        .state = (int)final_state,
        .reason = text,
        .run_us = t->started_us ? now_us - t->started_us : 0,
        .queued_us = t->created_us && began > t->created_us ? began - t->created_us : 0,
        .attempt = cJSON_IsNumber(attempt) && attempt->valuedouble >= 1 ? (unsigned)attempt->valuedouble : 1,
    };
    struct waiter *w = t->waiters;
    t->waiters = NULL;
    for (; w; ) {
        struct waiter *next = w->next;
        w->cb(w->arg);
        free(w);
        w = next;
    }
    /* Join the expiry FIFO; task lock before store lock is the only order. */
    pthread_mutex_lock(&store.lock);
    if (store.by_id && hmap_get(store.by_id, t->id) == t) finished_append_locked(t);
    pthread_mutex_unlock(&store.lock);
    pthread_mutex_unlock(&t->lock);
    metrics_task_ended(t->agent, &end); /* logs: no lock held */
    return A2AD_OK;
}

/* Fire and drop the waiters; task locked. */
static void fire_waiters_locked(struct task *t) {
    struct waiter *w = t->waiters;
    t->waiters = NULL;
    while (w) {
        struct waiter *next = w->next;
        w->cb(w->arg);
        free(w);
        w = next;
    }
}

a2ad_status task_interrupt(struct task *t, enum task_state s, const char *text) {
    if (!task_state_interrupted(s) || !text || !*text) return A2AD_ERR_INVALID;
    cJSON *m = agent_message(t, text);
    cJSON *hist = m ? cJSON_Duplicate(m, 1) : NULL;
    if (!hist) {
        cJSON_Delete(m);
        return A2AD_ERR_NOMEM;
    }
    pthread_mutex_lock(&t->lock);
    if (task_state_terminal(t->state)) {
        pthread_mutex_unlock(&t->lock);
        cJSON_Delete(m);
        cJSON_Delete(hist);
        return A2AD_ERR_STATE;
    }
    set_status_locked(t, s, m);
    cJSON_AddItemToArray(t->history, hist);
    /* A notice: dialects that only know progress updates (Health Universe)
     * show the question as one. */
    emit_status_locked(t, text, NAN, A2AD_NOTICE);
    fire_waiters_locked(t);
    pthread_mutex_unlock(&t->lock);
    return A2AD_OK;
}

a2ad_status task_cancel(struct task *t) {
    return task_finish(t, TASK_CANCELED, "Task canceled on request");
}

void *task_ext(struct task *t, enum task_ext_slot slot) {
    return (unsigned)slot < TASK_EXT_MAX ? t->ext[slot] : NULL;
}

void task_ext_set(struct task *t, enum task_ext_slot slot, void *data) {
    if ((unsigned)slot >= TASK_EXT_MAX) return;
    if (t->ext[slot] != data) ext_free(slot, t->ext[slot]);
    t->ext[slot] = data;
}

void task_lock(struct task *t) { pthread_mutex_lock(&t->lock); }
void task_unlock(struct task *t) { pthread_mutex_unlock(&t->lock); }

a2ad_status task_on_terminal(struct task *t, void (*cb)(void *arg), void *arg) {
    struct waiter *w = malloc(sizeof *w);
    if (!w) return A2AD_ERR_NOMEM;
    w->cb = cb;
    w->arg = arg;
    pthread_mutex_lock(&t->lock);
    if (task_state_terminal(t->state) || task_state_interrupted(t->state)) {
        pthread_mutex_unlock(&t->lock);
        free(w);
        return A2AD_ERR_STATE;
    }
    w->next = t->waiters;
    t->waiters = w;
    pthread_mutex_unlock(&t->lock);
    return A2AD_OK;
}

a2ad_status task_forget_waiter(struct task *t, void (*cb)(void *arg), void *arg) {
    a2ad_status st = A2AD_ERR_NOT_FOUND;
    pthread_mutex_lock(&t->lock);
    for (struct waiter **pp = &t->waiters; *pp; pp = &(*pp)->next) {
        if ((*pp)->cb == cb && (*pp)->arg == arg) {
            struct waiter *w = *pp;
            *pp = w->next;
            free(w);
            st = A2AD_OK;
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return st;
}

/* ---- detached tasks (cluster.c) ----------------------------------------- */

a2ad_status tasks_detached(const struct task_restore *in, struct task **out) {
    return task_from_doc(in, 1, out); /* the caller's only: no map holds it */
}

bool task_is_detached(struct task *t) {
    pthread_mutex_lock(&store.lock);
    bool held = store.by_id && hmap_get(store.by_id, t->id) == t;
    pthread_mutex_unlock(&store.lock);
    return !held;
}

void tasks_forget(struct task *t) {
    /* Task lock first (the only order): a finished task is in the expiry
     * list, which holds no reference of its own, so it stays. */
    pthread_mutex_lock(&t->lock);
    bool held = false;
    if (!task_state_terminal(t->state)) {
        pthread_mutex_lock(&store.lock);
        held = store.by_id && hmap_get(store.by_id, t->id) == t;
        if (held) hmap_remove(store.by_id, t->id);
        pthread_mutex_unlock(&store.lock);
    }
    /* A waiter must not wait for events that will happen elsewhere. */
    if (held) fire_waiters_locked(t);
    pthread_mutex_unlock(&t->lock);
    if (held) task_release(t);
}

void task_detached_set_state(struct task *t, enum task_state s) {
    pthread_mutex_lock(&t->lock);
    t->state = s;
    if (task_state_terminal(s) || task_state_interrupted(s)) fire_waiters_locked(t);
    pthread_mutex_unlock(&t->lock);
}
