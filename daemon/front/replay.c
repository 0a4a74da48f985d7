/* replay - recent stream events per task. See replay.h. */
#include "front/replay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "front/a2a_v1.h"
#include "log.h"

struct replay_event {
    uint64_t seq;
    char *text; /* the 0.3 event, compact JSON */
    size_t len;
    struct replay_event *next;
};

/* The slot data: a FIFO of events, bounded in bytes. */
struct replay_log {
    struct replay_event *head, *tail;
    size_t bytes;
    uint64_t dropped_upto; /* the highest SEQ no longer kept (0 = none dropped) */
    bool ended;            /* the task's last event is in: save the log (see log_save) */
};

static size_t max_bytes = 64 * 1024;

static void log_free(void *data) {
    struct replay_log *l = data;
    for (struct replay_event *e = l ? l->head : NULL, *n; e; e = n) {
        n = e->next;
        free(e->text);
        free(e);
    }
    free(l);
}

static void drop_oldest(struct replay_log *l) {
    struct replay_event *e = l->head;
    l->head = e->next;
    if (!l->head) l->tail = NULL;
    l->bytes -= e->len;
    if (e->seq > l->dropped_upto) l->dropped_upto = e->seq;
    free(e->text);
    free(e);
}

/* Append (text taken); keeps the log within max_bytes. */
static void log_add(struct replay_log *l, uint64_t seq, char *text) {
    struct replay_event *e = calloc(1, sizeof *e);
    if (!e) {
        free(text);
        if (seq > l->dropped_upto) l->dropped_upto = seq; /* a gap, said as such */
        return;
    }
    e->seq = seq;
    e->text = text;
    e->len = strlen(text);
    if (l->tail) l->tail->next = e;
    else l->head = e;
    l->tail = e;
    l->bytes += e->len;
    while (l->head && l->bytes > max_bytes) drop_oldest(l);
}

static a2ad_status replay_observe(struct task *t, const struct task_event *ev) {
    if (ev->kind == TASK_EVENT_CREATED) return A2AD_OK;
    struct replay_log *l = task_ext(t, TASK_EXT_REPLAY);
    if (!l) {
        if (!(l = calloc(1, sizeof *l))) return A2AD_OK;
        task_ext_set(t, TASK_EXT_REPLAY, l);
    }
    cJSON *e = a2a_event(t, ev, A2A_V03);
    char *text = e ? cJSON_PrintUnformatted(e) : NULL;
    cJSON_Delete(e);
    if (!text) {
        log_error("task %s: out of memory keeping event %llu for replay", task_id(t),
                  (unsigned long long)ev->seq);
        if (ev->seq > l->dropped_upto) l->dropped_upto = ev->seq;
        return A2AD_OK;
    }
    log_add(l, ev->seq, text);
    if (ev->terminal) l->ended = true;
    return A2AD_OK;
}

/* Saved as {"droppedUpTo": N, "events": [{"seq": N, "event": {...}}]},
 * and only with the task's last event: the store writes the whole row on
 * every event, so saving the log each time would cost O(events^2) bytes
 * per task (measured: a 13-event job wrote ten times its row). A job that
 * was running when a2ad died starts again or fails at the next start, so
 * the events it had sent have no use then; the stream of a task that ended
 * is what a reconnecting client may still miss. */
static cJSON *log_save(const void *data) {
    const struct replay_log *l = data;
    if (!l->ended) return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "droppedUpTo", (double)l->dropped_upto);
    cJSON *a = cJSON_AddArrayToObject(o, "events");
    for (const struct replay_event *e = l->head; a && e; e = e->next) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "seq", (double)e->seq);
        cJSON_AddRawToObject(x, "event", e->text);
        cJSON_AddItemToArray(a, x);
    }
    return o;
}

static void *log_load(const cJSON *saved) {
    struct replay_log *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->ended = true; /* only ended tasks' logs are saved */
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(saved, "droppedUpTo");
    if (cJSON_IsNumber(d) && d->valuedouble > 0) l->dropped_upto = (uint64_t)d->valuedouble;
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(saved, "events")) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(x, "seq");
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(x, "event");
        char *text = cJSON_IsNumber(seq) && cJSON_IsObject(ev) ? cJSON_PrintUnformatted(ev) : NULL;
        if (text) log_add(l, (uint64_t)seq->valuedouble, text); /* a smaller bound now applies */
    }
    return l;
}

static const struct task_ext_ops replay_ops = {
    .name = "replay", .free = log_free, .save = log_save, .load = log_load};

void replay_init(size_t max) {
    max_bytes = max;
    tasks_register_ext(TASK_EXT_REPLAY, &replay_ops);
    tasks_add_observer(replay_observe);
}

size_t replay_max_bytes(void) { return max_bytes; }

cJSON *replay_after_locked(struct task *t, uint64_t after, bool *complete) {
    const struct replay_log *l = task_ext(t, TASK_EXT_REPLAY);
    uint64_t now = task_seq_locked(t);
    cJSON *a = cJSON_CreateArray();
    /* Events 2.. are the ones streams see (1 is CREATED); every one in
     * (after, now] must be here. */
    uint64_t want = after + 1 < 2 ? 2 : after + 1;
    *complete = true;
    if (want > now) return a;
    if (l && l->dropped_upto >= want) *complete = false;
    uint64_t next = want;
    for (const struct replay_event *e = l ? l->head : NULL; a && e; e = e->next) {
        if (e->seq < want) continue;
        if (e->seq != next) *complete = false; /* a hole (out of memory once) */
        next = e->seq + 1;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "seq", (double)e->seq);
        cJSON_AddItemToObject(x, "event", cJSON_Parse(e->text));
        cJSON_AddItemToArray(a, x);
    }
    if (next != now + 1) *complete = false;
    return a;
}

bool replay_parse_id(const char *s, const char *task, uint64_t *seq) {
    if (!s) return false;
    while (*s == ' ') s++;
    const char *dot = strrchr(s, '.');
    const char *num = s;
    if (dot) {
        size_t n = (size_t)(dot - s);
        if (n != strlen(task) || strncmp(s, task, n) != 0) return false;
        num = dot + 1;
    }
    if (*num < '0' || *num > '9') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(num, &end, 10);
    while (*end == ' ') end++;
    if (*end || errno) return false;
    *seq = v;
    return true;
}
