/* share - work sharing between nodes: the in-memory side. See share.h. */
#include "store/share.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "store/store_core.h"
#include "core/tasks.h"
#include "agents/plugins.h"
#include "agents/workers.h"

/* store_slot.share bits (the task lock held). */
#define SHARE_HERE 1    /* a client is connected here: never offered */
#define SHARE_OFFERED 2 /* offered; not started, checked or forgotten since */
#define SHARE_WAITING 4 /* queued here, offered once it waited share_after_ms */

/* The other nodes' free workers for one agent, as they last said. */
struct room {
    char agent[64];
    size_t free;
};
#define ROOM_AGENTS 64 /* agents beyond are not offered: they run here */

/* A job that waits here, not offered yet. */
struct waiting {
    struct task *task; /* a reference */
    uint64_t since_ms; /* monotonic */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t answered;
    atomic_bool on;
    char *node;
    struct hmap *offered;        /* id -> task (a reference): offered from here */
    struct hmap *waiting;        /* id -> struct waiting: to offer after after_ms */
    unsigned after_ms;           /* [tasks] share_after_ms */
    atomic_size_t peers;         /* other live nodes (the writer counts them) */
    atomic_size_t peer_room;     /* their free workers, as they last said */
    struct room room[ROOM_AGENTS]; /* the same by agent (sh.lock) */
    size_t n_room;
    struct share_ids to_offer;   /* offers the writer has not run yet */
    struct share_check *checks;  /* checks the writer has not taken yet */
    bool marker;                 /* an OP_SHARE is queued and not yet taken */
    atomic_bool hot;             /* the last claim found jobs: claim again soon */
    atomic_bool claim_soon;
    /* counted for the log line at close */
    atomic_size_t offers, claims, taken;
} sh = {.lock = PTHREAD_MUTEX_INITIALIZER, .answered = PTHREAD_COND_INITIALIZER};

/* ---- text[] literals ------------------------------------------------- */

bool share_ids_add(struct share_ids *a, const char *id) {
    size_t need = a->len + 2 * strlen(id) + 5;
    if (need > a->cap) {
        size_t cap = need * 2 > 1024 ? need * 2 : 1024;
        char *t = realloc(a->text, cap);
        if (!t) return false;
        a->text = t;
        a->cap = cap;
    }
    a->text[a->len++] = a->n ? ',' : '{';
    a->text[a->len++] = '"';
    for (const char *c = id; *c; c++) {
        if (*c == '"' || *c == '\\') a->text[a->len++] = '\\';
        a->text[a->len++] = *c;
    }
    a->text[a->len++] = '"';
    a->n++;
    return true;
}

const char *share_ids_text(struct share_ids *a) {
    if (!a->n) return "{}";
    if (a->len + 2 > a->cap) {
        char *t = realloc(a->text, a->len + 2);
        if (!t) return NULL;
        a->text = t;
        a->cap = a->len + 2;
    }
    a->text[a->len] = '}';
    a->text[a->len + 1] = '\0';
    return a->text;
}

void share_ids_free(struct share_ids *a) {
    free(a->text);
    memset(a, 0, sizeof *a);
}

/* The ids of a literal back, one by one (ids hold no quote or backslash:
 * they are UUIDs or were checked by tasks_restore). */
static void ids_each(const struct share_ids *a, void (*fn)(const char *id, void *arg), void *arg) {
    if (!a->n) return;
    size_t i = 1;
    while (i < a->len) {
        if (a->text[i] != '"') break;
        char id[UUID_STR_LEN];
        size_t k = 0;
        for (i++; i < a->len && a->text[i] != '"'; i++)
            if (k + 1 < sizeof id) id[k++] = a->text[i];
        id[k] = '\0';
        fn(id, arg);
        i += 2; /* the quote and the comma */
    }
}

/* Drop id from the waiting map (its reference released); true when there. */
static bool unwait(const char *id) {
    pthread_mutex_lock(&sh.lock);
    struct waiting *w = sh.waiting ? hmap_remove(sh.waiting, id) : NULL;
    pthread_mutex_unlock(&sh.lock);
    if (w) {
        task_release(w->task);
        free(w);
    }
    return w != NULL;
}

/* ---- the writer's wake-up ------------------------------------------------ */

/* Queue one OP_SHARE unless one is waiting; sh.lock held. */
static struct op *marker_locked(void) {
    if (sh.marker) return NULL;
    struct op *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->kind = OP_SHARE;
    o->moot = true;
    sh.marker = true;
    return o;
}

static void marker_send(struct op *o) {
    if (o && store_core_append(o, o, 1, false) != A2AD_OK) {
        store_core_op_free(o); /* closing: share_stop answers what waits */
        pthread_mutex_lock(&sh.lock);
        sh.marker = false;
        pthread_mutex_unlock(&sh.lock);
    }
}

/* ---- the workers' hooks -------------------------------------------------- */

/* Offer t now (the task lock and sh.lock held); false without memory. */
static bool offer_locked(struct task *t, struct store_slot *s) {
    size_t len = sh.to_offer.len, n = sh.to_offer.n;
    if (!sh.offered || hmap_get(sh.offered, task_id(t)) ||
        !share_ids_add(&sh.to_offer, task_id(t)))
        return false;
    if (hmap_put(sh.offered, task_id(t), t) != A2AD_OK) {
        sh.to_offer.len = len; /* not offered after all */
        sh.to_offer.n = n;
        return false;
    }
    task_retain(t);
    s->share |= SHARE_OFFERED;
    atomic_fetch_add(&sh.offers, 1);
    return true;
}

/* Another node's free workers for t's agent (sh.lock held): offers only
 * go where a node can take them, since an offer nobody claims costs its
 * job a claim check before it starts here. */
static size_t room_for_locked(const struct task *t) {
    const struct agent *a = task_agent(t);
    if (!a || !a->name) return 0;
    for (size_t i = 0; i < sh.n_room; i++)
        if (strcmp(sh.room[i].agent, a->name) == 0) return sh.room[i].free;
    return 0;
}

/* A job that waits here: offered now (share_after_ms = 0, and another
 * node has free workers), or put aside, to be offered if it still waits
 * after share_after_ms while another node has free workers (a backlog from
 * before a node joined, or while all were busy, is offered too). Never when a client is connected to it here. */
static void on_queued(struct task *t) {
    if (!atomic_load(&sh.on)) return;
    /* Under the task lock, so that a check (share_hold) sees the flag only
     * once the offer waits for the writer: the round then withdraws it. */
    task_lock(t);
    struct store_slot *s = store_core_slot(t);
    bool offer = s && !(s->share & (SHARE_HERE | SHARE_OFFERED | SHARE_WAITING)) &&
                 !task_ext(t, TASK_EXT_STREAMS) && task_get_state_locked(t) == TASK_SUBMITTED;
    struct op *m = NULL;
    if (offer) {
        pthread_mutex_lock(&sh.lock);
        if (sh.after_ms || !room_for_locked(t)) {
            struct waiting *w = malloc(sizeof *w);
            offer = w && sh.waiting && !hmap_get(sh.waiting, task_id(t)) &&
                    hmap_put(sh.waiting, task_id(t), w) == A2AD_OK;
            if (offer) {
                w->task = t;
                w->since_ms = util_now_ms();
                task_retain(t);
                s->share |= SHARE_WAITING;
            } else {
                free(w);
            }
        } else if (offer_locked(t, s)) {
            m = marker_locked();
        }
        pthread_mutex_unlock(&sh.lock);
    }
    task_unlock(t);
    marker_send(m);
}

/* A worker is about to start t. It is marked as started here first, under
 * the task lock, so that an offer racing with the start (on_queued runs
 * after the job is queued, share_promote any time) sees it and stays off:
 * an offer is made, or the start sees it and checks, never both unseen. */
static bool on_start(struct task *t) {
    if (!atomic_load(&sh.on)) return true;
    task_lock(t);
    struct store_slot *s = store_core_slot(t);
    unsigned char was = s ? s->share : 0;
    if (s && !(was & SHARE_OFFERED)) s->share = SHARE_HERE;
    task_unlock(t);
    if (was & SHARE_OFFERED) return share_hold(t);
    if (was & SHARE_WAITING) unwait(task_id(t)); /* started in time: never offered */
    return true;
}

static void on_idle(void) {
    if (!atomic_load(&sh.hot) || !atomic_load(&sh.on)) return;
    atomic_store(&sh.claim_soon, true);
    pthread_mutex_lock(&sh.lock);
    struct op *m = marker_locked();
    pthread_mutex_unlock(&sh.lock);
    marker_send(m);
}

static const struct workers_share hooks = {
    .queued = on_queued, .before_start = on_start, .idle = on_idle};

/* Drop id from the offered map; true when it was there. */
static bool unoffer(const char *id) {
    pthread_mutex_lock(&sh.lock);
    struct task *t = sh.offered ? hmap_remove(sh.offered, id) : NULL;
    pthread_mutex_unlock(&sh.lock);
    if (t) task_release(t);
    return t != NULL;
}

bool share_hold(struct task *t) {
    if (!atomic_load(&sh.on)) return true;
    task_lock(t);
    struct store_slot *s = store_core_slot(t);
    bool offered = s && (s->share & SHARE_OFFERED);
    bool waiting = s && (s->share & SHARE_WAITING);
    if (s && !offered) s->share = SHARE_HERE; /* a waiting one is not offered now */
    task_unlock(t);
    if (waiting && !offered) unwait(task_id(t));
    if (!offered) return true;

    struct share_check c = {0};
    snprintf(c.id, sizeof c.id, "%s", task_id(t));
    pthread_mutex_lock(&sh.lock);
    c.next = sh.checks;
    sh.checks = &c;
    struct op *m = marker_locked();
    pthread_mutex_unlock(&sh.lock);
    marker_send(m);
    pthread_mutex_lock(&sh.lock);
    while (!c.result) pthread_cond_wait(&sh.answered, &sh.lock);
    pthread_mutex_unlock(&sh.lock);

    if (c.result == SHARE_UNKNOWN) return false; /* stopping: leave the row as it is */
    task_lock(t);
    s->share = c.result == SHARE_OURS ? SHARE_HERE : 0;
    task_unlock(t);
    unoffer(c.id);
    if (c.result == SHARE_OURS) return true;
    log_debug("share: job %s was claimed by another node; forgotten here", c.id);
    atomic_fetch_add(&sh.taken, 1);
    workers_withdraw(t); /* when it is still queued (a cancel, a stream) */
    tasks_forget(t);
    return false;
}

/* ---- start, stop ------------------------------------------------------- */

void share_start(const char *node, unsigned after_ms) {
    pthread_mutex_lock(&sh.lock);
    free(sh.node);
    sh.node = strdup(node);
    sh.after_ms = after_ms;
    if (!sh.offered) sh.offered = hmap_new(256);
    if (!sh.waiting) sh.waiting = hmap_new(256);
    sh.marker = false;
    pthread_mutex_unlock(&sh.lock);
    atomic_store(&sh.offers, 0);
    atomic_store(&sh.claims, 0);
    atomic_store(&sh.taken, 0);
    if (!sh.node || !sh.offered || !sh.waiting) {
        log_error("share: out of memory: jobs are not shared with other nodes");
        return;
    }
    atomic_store(&sh.on, true);
    workers_set_share(&hooks);
}

bool share_enabled(void) { return atomic_load(&sh.on); }

void share_counts(size_t *offered, size_t *taken, size_t *claimed) {
    *offered = atomic_load(&sh.offers);
    *taken = atomic_load(&sh.taken);
    *claimed = atomic_load(&sh.claims);
}

static void release_offered(const char *key, void *value, void *arg) {
    (void)key;
    (void)arg;
    task_release(value);
}

static void release_waiting(const char *key, void *value, void *arg) {
    (void)key;
    (void)arg;
    struct waiting *w = value;
    task_release(w->task);
    free(w);
}

void share_stop(void) {
    if (!atomic_exchange(&sh.on, false)) return;
    pthread_mutex_lock(&sh.lock);
    for (struct share_check *c = sh.checks; c; c = c->next) c->result = SHARE_UNKNOWN;
    sh.checks = NULL;
    pthread_cond_broadcast(&sh.answered);
    struct hmap *m = sh.offered, *w = sh.waiting;
    sh.offered = sh.waiting = NULL;
    share_ids_free(&sh.to_offer);
    pthread_mutex_unlock(&sh.lock);
    if (m) hmap_each(m, release_offered, NULL);
    hmap_free(m);
    if (w) hmap_each(w, release_waiting, NULL);
    hmap_free(w);
    log_info("store: work sharing: %zu jobs offered to other nodes, %zu taken by them, %zu "
             "claimed from them",
             atomic_load(&sh.offers), atomic_load(&sh.taken), atomic_load(&sh.claims));
}

/* ---- the writer's side ------------------------------------------------- */

bool share_round_pending(void) {
    pthread_mutex_lock(&sh.lock);
    bool p = sh.to_offer.n || sh.checks;
    sh.marker = false; /* the writer is at it: a new offer queues a new marker */
    pthread_mutex_unlock(&sh.lock);
    return p;
}

struct filter {
    struct share_check *checks;
    struct share_ids *out;
    bool ok;
};

static void keep_unchecked(const char *id, void *arg) {
    struct filter *f = arg;
    for (struct share_check *c = f->checks; c; c = c->next)
        if (!strcmp(c->id, id)) return; /* checked in this round: withdrawn */
    if (!share_ids_add(f->out, id)) f->ok = false;
}

bool share_round_take(struct share_ids *offers, struct share_ids *checks,
                      struct share_check **taken) {
    memset(offers, 0, sizeof *offers);
    memset(checks, 0, sizeof *checks);
    *taken = NULL;
    pthread_mutex_lock(&sh.lock);
    struct filter f = {.checks = sh.checks, .out = offers, .ok = true};
    ids_each(&sh.to_offer, keep_unchecked, &f);
    for (struct share_check *c = sh.checks; f.ok && c; c = c->next)
        if (!share_ids_add(checks, c->id)) f.ok = false;
    if (!f.ok) {
        pthread_mutex_unlock(&sh.lock);
        share_ids_free(offers);
        share_ids_free(checks);
        return false;
    }
    share_ids_free(&sh.to_offer);
    *taken = sh.checks;
    sh.checks = NULL;
    pthread_mutex_unlock(&sh.lock);
    return offers->n || checks->n;
}

static void offer_again(const char *id, void *arg) {
    (void)arg;
    share_ids_add(&sh.to_offer, id);
}

void share_round_failed(const struct share_ids *offers, struct share_check *taken) {
    pthread_mutex_lock(&sh.lock);
    ids_each(offers, offer_again, NULL);
    if (taken) {
        struct share_check *last = taken;
        while (last->next) last = last->next;
        last->next = sh.checks;
        sh.checks = taken;
    }
    pthread_mutex_unlock(&sh.lock);
}

void share_round_answer(struct share_check *taken, const char *id, const char *node) {
    for (struct share_check *c = taken; c; c = c->next)
        if (!strcmp(c->id, id))
            c->answer = !node || !strcmp(node, sh.node) ? SHARE_OURS : SHARE_TAKEN;
}

void share_round_done(struct share_check *taken) {
    pthread_mutex_lock(&sh.lock);
    while (taken) {
        struct share_check *next = taken->next;
        /* A row gone (deleted) is not another node's: run it, as without sharing. */
        taken->result = taken->answer ? taken->answer : SHARE_OURS;
        taken = next;
    }
    pthread_cond_broadcast(&sh.answered);
    pthread_mutex_unlock(&sh.lock);
}

bool share_claim_due(bool maintenance) {
    bool soon = atomic_exchange(&sh.claim_soon, false);
    return atomic_load(&sh.on) && (maintenance || soon);
}

struct offered_acc {
    struct task **v;
    size_t n;
};

static void offered_entry(const char *key, void *value, void *arg) {
    (void)key;
    struct offered_acc *a = arg;
    task_retain(value);
    a->v[a->n++] = value;
}

bool share_offered_ids(struct share_ids *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&sh.lock);
    size_t count = sh.offered ? hmap_count(sh.offered) : 0;
    struct offered_acc a = {.v = count ? malloc(count * sizeof *a.v) : NULL};
    if (a.v) hmap_each(sh.offered, offered_entry, &a);
    pthread_mutex_unlock(&sh.lock);
    if (count && !a.v) return false;
    bool ok = true;
    for (size_t i = 0; i < a.n; i++) {
        struct task *t = a.v[i];
        if (task_get_state(t) != TASK_SUBMITTED) /* ended here (an agent removed) */
            unoffer(task_id(t));
        else if (ok && !share_ids_add(out, task_id(t)))
            ok = false;
        task_release(t);
    }
    free(a.v);
    if (!ok) share_ids_free(out);
    return ok;
}

void share_taken(const char *id) {
    pthread_mutex_lock(&sh.lock);
    struct task *t = sh.offered ? hmap_get(sh.offered, id) : NULL;
    if (t) task_retain(t);
    pthread_mutex_unlock(&sh.lock);
    if (!t) return;
    /* A worker that took it already waits for its check, which decides. */
    if (workers_withdraw(t)) {
        task_lock(t);
        struct store_slot *s = task_ext(t, TASK_EXT_STORE);
        if (s) s->share = 0;
        task_unlock(t);
        unoffer(id);
        tasks_forget(t);
        atomic_fetch_add(&sh.taken, 1);
        log_debug("share: job %s was claimed by another node; forgotten here", id);
    }
    task_release(t);
}

void share_claimed(size_t n, size_t want) {
    atomic_fetch_add(&sh.claims, n);
    atomic_store(&sh.hot, n > 0);
    if (!n || n < want) return;
    /* There may be more, and this node may have room for them still. */
    atomic_store(&sh.claim_soon, true);
    pthread_mutex_lock(&sh.lock);
    struct op *m = marker_locked();
    pthread_mutex_unlock(&sh.lock);
    marker_send(m);
}

void share_set_peers(size_t peers, const char *room_json) {
    struct room room[ROOM_AGENTS];
    size_t n = 0, total = 0;
    cJSON *o = peers && room_json ? cJSON_Parse(room_json) : NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, o) {
        if (n == ROOM_AGENTS) break;
        if (!cJSON_IsNumber(e) || e->valuedouble < 1 || strlen(e->string) >= sizeof room[n].agent)
            continue;
        snprintf(room[n].agent, sizeof room[n].agent, "%s", e->string);
        room[n].free = (size_t)e->valuedouble;
        total += room[n++].free;
    }
    cJSON_Delete(o);
    pthread_mutex_lock(&sh.lock);
    memcpy(sh.room, room, n * sizeof room[0]);
    sh.n_room = n;
    pthread_mutex_unlock(&sh.lock);
    atomic_store(&sh.peers, peers);
    atomic_store(&sh.peer_room, total);
}

struct promote_acc {
    struct waiting **v;
    size_t n;
    uint64_t before;
};

/* Runs under sh.lock. A job whose agent no other node has room for waits
 * here for the next tick. */
static void promote_entry(const char *key, void *value, void *arg) {
    (void)key;
    struct promote_acc *a = arg;
    struct waiting *w = value;
    if (w->since_ms <= a->before && room_for_locked(w->task)) a->v[a->n++] = w;
}

void share_promote(void) {
    /* Nobody has room: they wait here, and are offered once someone has. */
    if (!atomic_load(&sh.peer_room)) return;
    uint64_t now = util_now_ms();
    pthread_mutex_lock(&sh.lock);
    size_t count = sh.waiting ? hmap_count(sh.waiting) : 0;
    struct promote_acc a = {.v = count ? malloc(count * sizeof *a.v) : NULL,
                            .before = now > sh.after_ms ? now - sh.after_ms : 0};
    if (a.v) hmap_each(sh.waiting, promote_entry, &a);
    for (size_t i = 0; i < a.n; i++) hmap_remove(sh.waiting, task_id(a.v[i]->task));
    pthread_mutex_unlock(&sh.lock);
    bool peers = atomic_load(&sh.peers) > 0;
    struct op *m = NULL;
    for (size_t i = 0; i < a.n; i++) {
        struct task *t = a.v[i]->task;
        task_lock(t);
        struct store_slot *s = task_ext(t, TASK_EXT_STORE);
        if (s && (s->share & SHARE_WAITING)) {
            s->share &= (unsigned char)~SHARE_WAITING;
            pthread_mutex_lock(&sh.lock);
            if (peers && task_get_state_locked(t) == TASK_SUBMITTED && offer_locked(t, s) && !m)
                m = marker_locked();
            pthread_mutex_unlock(&sh.lock);
        }
        task_unlock(t);
        task_release(t);
        free(a.v[i]);
    }
    free(a.v);
    marker_send(m);
}
