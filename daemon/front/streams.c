/* streams - SSE subscribers of tasks. See streams.h.
 *
 * Lock order: task lock, then the all-streams list lock, then a stream's
 * own lock. wake() (MHD_resume_connection) runs with at most the task lock
 * or the list lock held, never the stream's.
 */
#include "front/streams.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "front/replay.h"
#include "logclient.h"
#include "util.h"

struct stream {
    atomic_int refs;          /* the task's list and the reader */
    struct task *task;        /* held reference */
    enum a2a_dialect dialect;
    char *prefix;             /* data: {"jsonrpc":"2.0","id":ID,"result": (or data: ) */
    size_t prefix_len;
    bool bare;                /* HTTP+JSON: the event itself, no JSON-RPC envelope */

    struct stream *next;      /* in the task's list; guarded by the task lock */
    bool linked;              /* guarded by the task lock */
    struct stream *all_prev, *all_next; /* guarded by all.lock */

    pthread_mutex_t lock;     /* guards what follows */
    char *buf;
    size_t off, len, cap;     /* unread bytes are buf[off..len) */
    bool ended;               /* no frame will be added */
    bool cut;                 /* ended abnormally: close the connection */
    bool parked;
    uint64_t last_ms;         /* last frame or keepalive added */
    void (*park)(void *arg), (*wake)(void *arg);
    void *arg;
};

/* A task's subscribers: the TASK_EXT_STREAMS slot data. */
struct stream_list {
    struct stream *head;
};

static struct {
    pthread_mutex_t lock;
    struct stream *head;
    size_t count;
    size_t max_buffer;
    unsigned keepalive_s;
    bool stopping; /* streams_end_all ran: new streams end after their first frame */
} all = {.lock = PTHREAD_MUTEX_INITIALIZER, .max_buffer = 1u << 20, .keepalive_s = 15};

static void list_free(void *data) { free(data); }

static const struct task_ext_ops stream_ops = {.name = "streams", .free = list_free};

static void stream_unref(struct stream *s) {
    if (atomic_fetch_sub(&s->refs, 1) != 1) return;
    task_release(s->task);
    pthread_mutex_destroy(&s->lock);
    free(s->prefix);
    free(s->buf);
    free(s);
}

/* Append bytes as one unit; false (nothing appended) if over the limit or
 * out of memory. Stream lock held. */
static bool buf_append(struct stream *s, const char *a, size_t an, const char *b, size_t bn,
                       const char *c, size_t cn) {
    size_t n = an + bn + cn;
    if (s->len - s->off + n > all.max_buffer) return false;
    if (s->off && s->off == s->len) s->off = s->len = 0;
    if (s->len + n > s->cap) {
        if (s->off) { /* reuse the consumed front before growing */
            memmove(s->buf, s->buf + s->off, s->len - s->off);
            s->len -= s->off;
            s->off = 0;
        }
        if (s->len + n > s->cap) {
            size_t ncap = s->cap ? s->cap : 1024;
            while (ncap < s->len + n) ncap *= 2;
            char *nb = realloc(s->buf, ncap);
            if (!nb) return false;
            s->buf = nb;
            s->cap = ncap;
        }
    }
    memcpy(s->buf + s->len, a, an);
    memcpy(s->buf + s->len + an, b, bn);
    memcpy(s->buf + s->len + an + bn, c, cn);
    s->len += n;
    s->last_ms = util_now_ms();
    return true;
}

/* Add one frame (result text) with the event id TASKID.SEQ; final ends the
 * stream. Returns whether the reader must be woken (after the stream's lock
 * is dropped). */
static bool push_frame(struct stream *s, uint64_t seq, const char *result, bool final) {
    static const char tail[] = "}\n\n";
    const char *t = s->bare ? tail + 1 : tail;
    size_t tn = s->bare ? sizeof tail - 2 : sizeof tail - 1;
    char idline[UUID_STR_LEN + 48];
    int idn = snprintf(idline, sizeof idline, "id: %s.%llu\n", task_id(s->task),
                       (unsigned long long)seq);
    pthread_mutex_lock(&s->lock);
    bool wake = false;
    if (!s->ended) {
        size_t before = s->len - s->off;
        bool ok = buf_append(s, idline, (size_t)idn, "", 0, "", 0);
        if (ok && !buf_append(s, s->prefix, s->prefix_len, result, strlen(result), t, tn)) {
            s->len = s->off + before; /* not half a frame */
            ok = false;
        }
        if (!ok) {
            s->cut = true;
            s->ended = true;
            s->off = s->len = 0; /* what is unread is lost anyway: free it now */
            free(s->buf);
            s->buf = NULL;
            s->cap = 0;
            log_client("sse-slow-reader", A2AD_LOG_WARNING, NULL,
                       "task %s: SSE stream closed: the client reads too slowly (more than "
                       "server.stream_buffer_bytes = %zu bytes unread)",
                       task_id(s->task), all.max_buffer);
        }
        if (final) s->ended = true;
        wake = s->parked;
        s->parked = false;
    }
    pthread_mutex_unlock(&s->lock);
    return wake;
}

/* One event for the stream at *pp (text NULL: it could not be rendered,
 * and the stream is cut): wake its reader, and unlink it once it ended.
 * Returns where the next stream of the list is. The task lock is held. */
static struct stream **deliver(struct stream **pp, struct task *t, uint64_t seq,
                               const char *text, bool final) {
    struct stream *s = *pp;
    bool wake = false;
    if (text) {
        wake = push_frame(s, seq, text, final);
    } else {
        pthread_mutex_lock(&s->lock);
        log_error("task %s: out of memory rendering a stream event; stream closed", task_id(t));
        s->cut = s->ended = true;
        wake = s->parked;
        s->parked = false;
        pthread_mutex_unlock(&s->lock);
    }
    if (wake && s->wake) s->wake(s->arg);
    pthread_mutex_lock(&s->lock);
    bool ended = s->ended;
    pthread_mutex_unlock(&s->lock);
    if (!ended) return &s->next;
    /* nothing more goes to it: drop the list's reference */
    *pp = s->next;
    s->linked = false;
    stream_unref(s); /* the reader still holds one: never the last */
    return pp;
}

static a2ad_status streams_observe(struct task *t, const struct task_event *ev) {
    struct stream_list *l = task_ext(t, TASK_EXT_STREAMS);
    if (!l || !l->head || ev->kind == TASK_EVENT_CREATED) return A2AD_OK;
    char *text[2] = {NULL, NULL}; /* rendered once per dialect */
    for (struct stream **pp = &l->head; *pp;) {
        struct stream *s = *pp;
        if (!text[s->dialect]) {
            cJSON *e = a2a_event(t, ev, s->dialect);
            text[s->dialect] = e ? cJSON_PrintUnformatted(e) : NULL;
            cJSON_Delete(e);
        }
        /* 1.0: a stream "MUST close when the task reaches a terminal
         * or interrupted state"; 0.3 marks that event final */
        pp = deliver(pp, t, ev->seq, text[s->dialect], ev->terminal || ev->interrupted);
    }
    free(text[0]);
    free(text[1]);
    return A2AD_OK;
}

void streams_init(size_t max_buffer, unsigned keepalive_s) {
    all.max_buffer = max_buffer ? max_buffer : 1;
    all.keepalive_s = keepalive_s;
    tasks_register_ext(TASK_EXT_STREAMS, &stream_ops);
    tasks_add_observer(streams_observe);
}

/* Whether a rendered (0.3) Task is in a final or interrupted state: a
 * stream opened on it ends after its first frame. */
static bool snapshot_terminal(const cJSON *task03) {
    static const char *const finals[] = {"completed", "failed",         "canceled",
                                         "rejected",  "input-required", "auth-required"};
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(task03, "status"), "state");
    for (size_t i = 0; cJSON_IsString(st) && i < sizeof finals / sizeof finals[0]; i++)
        if (strcmp(st->valuestring, finals[i]) == 0) return true;
    return false;
}

struct stream *stream_open(struct task *t, enum a2a_dialect d, const char *id_json,
                           int history_length) {
    return stream_open_after(t, d, id_json, history_length, NULL);
}

/* The kept events after `after` as frames; false when some are no longer
 * kept (then nothing was added). Task locked. */
static bool replay_frames(struct stream *s, struct task *t, uint64_t after) {
    bool complete;
    cJSON *evs = replay_after_locked(t, after, &complete);
    if (!evs || !complete) {
        cJSON_Delete(evs);
        return false;
    }
    const cJSON *x;
    cJSON_ArrayForEach(x, evs) {
        cJSON *e = a2a_event_in(cJSON_GetObjectItemCaseSensitive(x, "event"), s->dialect);
        char *text = e ? cJSON_PrintUnformatted(e) : NULL;
        cJSON_Delete(e);
        if (text)
            push_frame(s, (uint64_t)cJSON_GetObjectItemCaseSensitive(x, "seq")->valuedouble, text,
                       false);
        free(text);
    }
    cJSON_Delete(evs);
    return true;
}

/* A stream of t with no frame yet, not linked anywhere; NULL when out of
 * memory. */
static struct stream *stream_new(struct task *t, enum a2a_dialect d, const char *id_json) {
    struct stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    static const char head[] = "data: {\"jsonrpc\":\"2.0\",\"id\":";
    static const char mid[] = ",\"result\":";
    s->bare = id_json == NULL;
    if (s->bare) id_json = "";
    s->prefix_len = s->bare ? 6 : sizeof head - 1 + strlen(id_json) + sizeof mid - 1;
    s->prefix = malloc(s->prefix_len + 1);
    if (!s->prefix) {
        free(s);
        return NULL;
    }
    if (s->bare) memcpy(s->prefix, "data: ", 7);
    else snprintf(s->prefix, s->prefix_len + 1, "%s%s%s", head, id_json, mid);
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->refs, 1);
    s->dialect = d;
    task_retain(t);
    s->task = t;
    return s;
}

/* Into the all-streams list (counted, kept alive, ended at shutdown). */
static void stream_register(struct stream *s) {
    pthread_mutex_lock(&all.lock);
    s->all_next = all.head;
    if (all.head) all.head->all_prev = s;
    all.head = s;
    all.count++;
    pthread_mutex_unlock(&all.lock);
}

struct stream *stream_open_after(struct task *t, enum a2a_dialect d, const char *id_json,
                                 int history_length, const uint64_t *after) {
    struct stream *s = stream_new(t, d, id_json);
    if (!s) return NULL;

    /* The snapshot and the subscription happen under one task lock, so the
     * stream sees every event after the snapshot and none twice. */
    pthread_mutex_lock(&all.lock);
    bool stopping = all.stopping;
    pthread_mutex_unlock(&all.lock);
    task_lock(t);
    cJSON *snap = task_render_locked(t, history_length);
    bool ended = snap && (stopping || snapshot_terminal(snap));
    /* A client back with Last-Event-ID: the events it missed, if they are
     * all kept, instead of the task as it is now. */
    bool replayed = after && snap && replay_frames(s, t, *after);
    char *text = NULL;
    if (!replayed) {
        snap = a2a_task_result(snap, d);
        text = snap ? cJSON_PrintUnformatted(snap) : NULL;
    }
    cJSON_Delete(snap);
    struct stream_list *l = task_ext(t, TASK_EXT_STREAMS);
    if (!l && !ended && (l = calloc(1, sizeof *l))) task_ext_set(t, TASK_EXT_STREAMS, l);
    bool ok = (text || replayed) && (ended || l);
    if (ok) {
        if (text) push_frame(s, task_seq_locked(t), text, ended);
        else if (ended) { /* everything replayed: the stream ends after it */
            pthread_mutex_lock(&s->lock);
            s->ended = true;
            pthread_mutex_unlock(&s->lock);
        }
        if (!ended) {
            s->next = l->head;
            l->head = s;
            s->linked = true;
            atomic_fetch_add(&s->refs, 1);
        }
    }
    task_unlock(t);
    free(text);
    if (!ok) {
        stream_unref(s);
        return NULL;
    }
    stream_register(s);
    return s;
}

struct stream *stream_open_events(struct task *t, enum a2a_dialect d, const char *id_json,
                                  const cJSON *events, bool ended) {
    struct stream *s = stream_new(t, d, id_json);
    if (!s) return NULL;
    pthread_mutex_lock(&all.lock);
    ended |= all.stopping;
    pthread_mutex_unlock(&all.lock);
    task_lock(t);
    const cJSON *x;
    bool ok = true;
    cJSON_ArrayForEach(x, events) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(x, "seq");
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(x, "event");
        ended |= cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ev, "final"));
        cJSON *e = cJSON_IsNumber(seq) ? a2a_event_in(ev, d) : NULL;
        char *text = e ? cJSON_PrintUnformatted(e) : NULL;
        cJSON_Delete(e);
        if (text) push_frame(s, (uint64_t)seq->valuedouble, text, false);
        else ok = false;
        free(text);
    }
    struct stream_list *l = task_ext(t, TASK_EXT_STREAMS);
    if (!l && !ended && (l = calloc(1, sizeof *l))) task_ext_set(t, TASK_EXT_STREAMS, l);
    ok = ok && (ended || l);
    if (ok) {
        pthread_mutex_lock(&s->lock);
        s->ended |= ended;
        pthread_mutex_unlock(&s->lock);
        if (!ended) {
            s->next = l->head;
            l->head = s;
            s->linked = true;
            atomic_fetch_add(&s->refs, 1);
        }
    }
    task_unlock(t);
    if (!ok) {
        stream_unref(s);
        return NULL;
    }
    stream_register(s);
    return s;
}

void stream_attach(struct stream *s, void (*park)(void *arg), void (*wake)(void *arg), void *arg) {
    pthread_mutex_lock(&s->lock);
    s->park = park;
    s->wake = wake;
    s->arg = arg;
    pthread_mutex_unlock(&s->lock);
}

ssize_t stream_read(struct stream *s, char *buf, size_t max) {
    pthread_mutex_lock(&s->lock);
    ssize_t n;
    if (s->off < s->len) {
        size_t k = s->len - s->off < max ? s->len - s->off : max;
        memcpy(buf, s->buf + s->off, k);
        s->off += k;
        n = (ssize_t)k;
        if (s->off == s->len && s->cap > 64 * 1024) {
            /* a burst is over: an idle stream keeps no large buffer */
            free(s->buf);
            s->buf = NULL;
            s->off = s->len = s->cap = 0;
        }
    } else if (s->cut) {
        n = -2;
    } else if (s->ended) {
        n = -1;
    } else {
        /* Park under the lock: a frame added from now on sees `parked`
         * and wakes a reader that is already suspended. */
        s->parked = true;
        if (s->park) s->park(s->arg);
        n = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

void stream_close(struct stream *s) {
    if (!s) return;
    struct task *t = s->task;
    task_lock(t);
    if (s->linked) {
        struct stream_list *l = task_ext(t, TASK_EXT_STREAMS);
        for (struct stream **pp = l ? &l->head : NULL; pp && *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        s->linked = false;
        atomic_fetch_sub(&s->refs, 1); /* the list's; the reader's is below */
    }
    task_unlock(t);
    pthread_mutex_lock(&all.lock);
    if (s->all_prev) s->all_prev->all_next = s->all_next;
    else if (all.head == s) all.head = s->all_next;
    if (s->all_next) s->all_next->all_prev = s->all_prev;
    all.count--;
    pthread_mutex_unlock(&all.lock);
    stream_unref(s);
}

void streams_tick(void) {
    static const char comment[] = ": keepalive\n\n";
    if (!all.keepalive_s) return;
    uint64_t now = util_now_ms();
    pthread_mutex_lock(&all.lock);
    for (struct stream *s = all.head; s; s = s->all_next) {
        pthread_mutex_lock(&s->lock);
        bool wake = false;
        if (!s->ended && now - s->last_ms >= all.keepalive_s * 1000ull &&
            buf_append(s, comment, sizeof comment - 1, "", 0, "", 0)) {
            wake = s->parked;
            s->parked = false;
        }
        pthread_mutex_unlock(&s->lock);
        if (wake && s->wake) s->wake(s->arg);
    }
    pthread_mutex_unlock(&all.lock);
}

void streams_end_all(void) {
    pthread_mutex_lock(&all.lock);
    all.stopping = true;
    for (struct stream *s = all.head; s; s = s->all_next) {
        pthread_mutex_lock(&s->lock);
        s->ended = true;
        bool wake = s->parked;
        s->parked = false;
        pthread_mutex_unlock(&s->lock);
        if (wake && s->wake) s->wake(s->arg);
    }
    pthread_mutex_unlock(&all.lock);
}

size_t streams_count(void) {
    pthread_mutex_lock(&all.lock);
    size_t n = all.count;
    pthread_mutex_unlock(&all.lock);
    return n;
}

size_t streams_count_remote(void) {
    /* task_is_detached takes the tasks' map lock: asked outside all.lock */
    pthread_mutex_lock(&all.lock);
    struct task **v = malloc((all.count ? all.count : 1) * sizeof *v);
    size_t n = 0;
    for (struct stream *s = all.head; v && s; s = s->all_next) {
        task_retain(s->task);
        v[n++] = s->task;
    }
    pthread_mutex_unlock(&all.lock);
    size_t remote = 0;
    for (size_t i = 0; i < n; i++) {
        remote += task_is_detached(v[i]);
        task_release(v[i]);
    }
    free(v);
    return remote;
}

/* ---- streams of another node's task (cluster.c) ------------------------ */

bool streams_push_event(struct task *t, uint64_t seq, const char *event03) {
    cJSON *ev = cJSON_Parse(event03);
    if (!ev) return false;
    const cJSON *fin = cJSON_GetObjectItemCaseSensitive(ev, "final");
    bool final = cJSON_IsTrue(fin);
    char *text[2] = {NULL, NULL};
    task_lock(t);
    struct stream_list *l = task_ext(t, TASK_EXT_STREAMS);
    for (struct stream **pp = l ? &l->head : NULL; pp && *pp;) {
        struct stream *s = *pp;
        if (!text[s->dialect]) {
            cJSON *e = a2a_event_in(ev, s->dialect);
            text[s->dialect] = e ? cJSON_PrintUnformatted(e) : NULL;
            cJSON_Delete(e);
        }
        pp = deliver(pp, t, seq, text[s->dialect], final);
    }
    task_unlock(t);
    free(text[0]);
    free(text[1]);
    cJSON_Delete(ev);
    return final;
}

bool streams_linked(struct task *t) {
    task_lock(t);
    struct stream_list *l = task_ext(t, TASK_EXT_STREAMS);
    bool any = l && l->head;
    task_unlock(t);
    return any;
}
