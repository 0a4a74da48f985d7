/* workers - the worker pool, the max-duration watchdog, and the host
 * function table plugins call. See workers.h for the contract. */
#include "agents/workers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "front/metrics.h"
#include "agents/plugins.h"
#include "agents/runner.h"
#include "core/tasks.h"
#include "util.h"
#include "delivery/webhooks.h"

/* A job handle is (generation << SLOT_BITS) | slot. The generation changes
 * when a job starts and again when it ends, so a handle kept past its job
 * never matches again. Agent handles (init/destroy) set the top bit. */
#define SLOT_BITS 16
#define SLOT_MASK ((UINT64_C(1) << SLOT_BITS) - 1)
#define AGENT_BIT (UINT64_C(1) << 63)

struct slot {
    pthread_mutex_t lock;
    uint64_t gen;          /* guarded by lock */
    struct task *task;     /* running job, or NULL */
    char *result;          /* a2ad_result text */
    char *fail_reason;     /* a2ad_fail text */
    uint64_t deadline_ms;  /* max duration, monotonic */
    bool timed_out;
    unsigned delivering;   /* on_message calls in progress */
    pthread_cond_t quiet;  /* delivering dropped to 0 */
    pthread_t thread;
    unsigned index;
};

/* One FIFO per agent name (all versions of an agent share it), so a
 * flooded agent's backlog sits in its own queue; workers take the next job
 * round-robin over the lanes that have one and a free slot of their own. */
struct lane {
    char name[64];
    struct task **ring;
    size_t cap, head, count;
    unsigned workers;      /* [agent.NAME] workers; 0 = default (lane_cap) */
    size_t queue_length;   /* [agent.NAME] queue_length; 0 = only the pool's limit */
    unsigned running;
    bool live;             /* configured by plugins and not removed since */
    bool removed;          /* its agent was removed: refuse jobs */
    struct lane *next;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work;  /* a lane became runnable, or stopping */
    pthread_cond_t idle;  /* a job ended (workers_stop waits on it) */
    pthread_cond_t tick;  /* wakes the watchdog at stop */
    struct lane *lanes;
    struct lane *rr;      /* the lane served last */
    unsigned n_live;
    size_t limit, count;  /* daemon-wide: queued jobs of every lane */
    size_t running;
    bool started, stopping;
    unsigned n_slots;
    struct slot *slots;
    pthread_t watchdog;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .work = PTHREAD_COND_INITIALIZER,
          .idle = PTHREAD_COND_INITIALIZER,
          .tick = PTHREAD_COND_INITIALIZER};

/* The absolute time ms from now, for pthread_cond_timedwait (realtime clock). */
static struct timespec time_in_ms(long ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* ---- the host table ------------------------------------------------- */

/* Lock the slot a job handle names and return it if the handle is current;
 * NULL (nothing locked) for a stale or malformed handle. */
static struct slot *slot_acquire(a2ad_ctx ctx) {
    if (ctx.handle & AGENT_BIT) return NULL;
    uint64_t idx = ctx.handle & SLOT_MASK;
    if (!pool.slots || idx >= pool.n_slots) return NULL;
    struct slot *s = &pool.slots[idx];
    pthread_mutex_lock(&s->lock);
    if (s->task && s->gen == ctx.handle >> SLOT_BITS) return s;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void slot_release(struct slot *s) { pthread_mutex_unlock(&s->lock); }

static a2ad_status ended_if_state(a2ad_status st) {
    return st == A2AD_ERR_STATE ? A2AD_ERR_ENDED : st;
}

static a2ad_status host_update_progress(a2ad_ctx ctx, const char *message, double progress,
                                        a2ad_importance importance) {
    struct slot *s = slot_acquire(ctx);
    if (!s) return A2AD_ERR_ENDED;
    a2ad_status st = ended_if_state(task_progress(s->task, message, progress, importance));
    slot_release(s);
    return st;
}

static a2ad_status host_add_artifact(a2ad_ctx ctx, const char *name, const char *mime_type,
                                     const void *data, size_t len) {
    struct slot *s = slot_acquire(ctx);
    if (!s) return A2AD_ERR_ENDED;
    a2ad_status st = ended_if_state(task_artifact(s->task, name, mime_type, data, len));
    slot_release(s);
    return st;
}

static a2ad_status host_add_artifact_chunk(a2ad_ctx ctx, const char *name,
                                           const char *mime_type, const void *data, size_t len,
                                           int append, int last_chunk) {
    struct slot *s = slot_acquire(ctx);
    if (!s) return A2AD_ERR_ENDED;
    a2ad_status st =
        task_artifact_chunk(s->task, name, mime_type, data, len, append != 0, last_chunk != 0);
    slot_release(s);
    return st;
}

static int host_cancelled(a2ad_ctx ctx) {
    struct slot *s = slot_acquire(ctx);
    if (!s) return 1;
    /* Cancel, timeout and shutdown all end the task first, so the task's
     * state is the one flag to read. */
    int c = s->timed_out || task_state_terminal(task_get_state(s->task));
    slot_release(s);
    return c;
}

static a2ad_status host_set_text(a2ad_ctx ctx, const char *text, bool failure) {
    struct slot *s = slot_acquire(ctx);
    if (!s) return A2AD_ERR_ENDED;
    char **field = failure ? &s->fail_reason : &s->result;
    free(*field);
    *field = util_strdup(text);
    a2ad_status st = text && !*field ? A2AD_ERR_NOMEM : A2AD_OK;
    slot_release(s);
    return st;
}

static a2ad_status host_result(a2ad_ctx ctx, const char *text) {
    return host_set_text(ctx, text, false);
}

static a2ad_status host_fail(a2ad_ctx ctx, const char *reason) {
    a2ad_status st = host_set_text(ctx, reason, true);
    return st == A2AD_OK ? A2AD_ERR_FAILED : st;
}

static a2ad_status host_request_input(a2ad_ctx ctx, const char *message, uint32_t kind) {
    if (kind != A2AD_INPUT_REQUIRED && kind != A2AD_AUTH_REQUIRED) return A2AD_ERR_INVALID;
    struct slot *s = slot_acquire(ctx);
    if (!s) return A2AD_ERR_ENDED;
    a2ad_status st = ended_if_state(task_interrupt(
        s->task, kind == A2AD_AUTH_REQUIRED ? TASK_AUTH_REQUIRED : TASK_INPUT_REQUIRED, message));
    slot_release(s);
    return st;
}

static void host_vlog(a2ad_ctx ctx, a2ad_log_level level, const char *fmt, va_list ap) {
    char origin[160];
    if (ctx.handle & AGENT_BIT) {
        char name[64];
        if (!plugins_agent_name((unsigned)(ctx.handle & ~AGENT_BIT), name, sizeof name))
            snprintf(name, sizeof name, "?");
        snprintf(origin, sizeof origin, "agent %s", name);
    } else {
        struct slot *s = slot_acquire(ctx);
        if (s) {
            const struct agent *a = task_agent(s->task);
            snprintf(origin, sizeof origin, "agent %s task %s", a ? a->desc.name : "?",
                     task_id(s->task));
            slot_release(s);
        } else {
            snprintf(origin, sizeof origin, "agent (ended job)");
        }
    }
    /* Plugins cannot raise emergency/alert/critical journald priorities. */
    if ((int)level < (int)A2AD_LOG_ERROR) level = A2AD_LOG_ERROR;
    if ((int)level > (int)A2AD_LOG_DEBUG) level = A2AD_LOG_DEBUG;
    log_vwrite(level, origin, fmt, ap);
}

static const struct a2ad_host host_table = {
    .abi_major = A2AD_ABI_MAJOR,
    .struct_size = sizeof(struct a2ad_host),
    .update_progress = host_update_progress,
    .add_artifact = host_add_artifact,
    .add_artifact_chunk = host_add_artifact_chunk,
    .cancelled = host_cancelled,
    .vlog = host_vlog,
    .set_result = host_result,
    .set_failure = host_fail,
    .request_input = host_request_input,
};

const struct a2ad_host *workers_host(void) { return &host_table; }

/* ---- the queues and the workers -------------------------------------- */

static struct lane *lane_find_locked(const char *name) {
    for (struct lane *l = pool.lanes; l; l = l->next)
        if (strcmp(l->name, name) == 0) return l;
    return NULL;
}

static struct lane *lane_get_locked(const char *name) {
    struct lane *l = lane_find_locked(name);
    if (l || strlen(name) >= sizeof l->name) return l;
    if (!(l = calloc(1, sizeof *l))) return NULL;
    strcpy(l->name, name);
    l->next = pool.lanes;
    pool.lanes = l;
    return l;
}

/* How many jobs of the lane may run at once. By default an agent may use
 * every thread but one when several agents are loaded, so a slow agent
 * alone never occupies the whole pool. */
static unsigned lane_cap(const struct lane *l) {
    if (l->workers) return l->workers;
    unsigned n = pool.n_slots ? pool.n_slots : 1;
    return pool.n_live > 1 && n > 1 ? n - 1 : n;
}

/* The next lane to serve: round-robin from the one served last. */
static struct lane *lane_next_locked(void) {
    struct lane *start = pool.rr && pool.rr->next ? pool.rr->next : pool.lanes;
    struct lane *l = start;
    do {
        if (!l) l = pool.lanes;
        if (!l) return NULL;
        if (l->count && l->running < lane_cap(l)) {
            pool.rr = l;
            return l;
        }
        l = l->next ? l->next : pool.lanes;
    } while (l != start);
    return NULL;
}

static struct task *lane_pop_locked(struct lane *l) {
    struct task *t = l->ring[l->head];
    l->head = (l->head + 1) % l->cap;
    l->count--;
    pool.count--;
    return t;
}

/* Grow a ring by doubling so a large queue_length costs memory only when
 * the queue really gets long. */
static bool lane_grow_locked(struct lane *l) {
    size_t ncap = l->cap ? l->cap * 2 : 64;
    struct task **r = malloc(ncap * sizeof *r);
    if (!r) return false;
    for (size_t i = 0; i < l->count; i++) r[i] = l->ring[(l->head + i) % l->cap];
    free(l->ring);
    l->ring = r;
    l->cap = ncap;
    l->head = 0;
    return true;
}

static bool lane_full_locked(const struct lane *l) {
    return l && l->queue_length && l->count >= l->queue_length;
}

/* Work sharing (workers_set_share); NULL = off. Set before jobs run. */
static const struct workers_share *share;

static const char *task_agent_name(struct task *task) {
    const struct agent *a = task_agent(task);
    return a && a->desc.name ? a->desc.name : "";
}

a2ad_status workers_submit(struct task *task) {
    pthread_mutex_lock(&pool.lock);
    a2ad_status st = A2AD_OK;
    struct lane *l = NULL;
    if (!pool.started || pool.stopping)
        st = A2AD_ERR_STATE;
    else if (pool.count >= pool.limit)
        st = A2AD_ERR_FULL;
    else if (!(l = lane_get_locked(task_agent_name(task))))
        st = A2AD_ERR_NOMEM;
    else if (l->removed)
        st = A2AD_ERR_NOT_FOUND;
    else if (lane_full_locked(l))
        st = A2AD_ERR_FULL;
    else if (l->count == l->cap && !lane_grow_locked(l))
        st = A2AD_ERR_NOMEM;
    bool waits = false;
    if (st == A2AD_OK) {
        task_retain(task);
        plugins_pin(task_agent(task)); /* its code stays until the job ended */
        l->ring[(l->head + l->count) % l->cap] = task;
        l->count++;
        pool.count++;
        pthread_cond_signal(&pool.work);
        /* No free slot of its own, or no free thread: it waits here. */
        waits = share && (l->running + l->count > lane_cap(l) ||
                          pool.running + pool.count > pool.n_slots);
    }
    pthread_mutex_unlock(&pool.lock);
    if (st == A2AD_OK) metrics_queued(task_agent(task), 1);
    if (waits) share->queued(task);
    return st;
}

a2ad_status workers_has_room(void) {
    pthread_mutex_lock(&pool.lock);
    a2ad_status st = !pool.started || pool.stopping ? A2AD_ERR_STATE
                     : pool.count >= pool.limit    ? A2AD_ERR_FULL
                                                   : A2AD_OK;
    pthread_mutex_unlock(&pool.lock);
    return st;
}

a2ad_status workers_agent_has_room(const char *agent) {
    a2ad_status st = workers_has_room();
    if (st != A2AD_OK || !agent) return st;
    pthread_mutex_lock(&pool.lock);
    struct lane *l = lane_find_locked(agent);
    if (l && l->removed) st = A2AD_ERR_NOT_FOUND;
    else if (lane_full_locked(l)) st = A2AD_ERR_FULL;
    pthread_mutex_unlock(&pool.lock);
    return st;
}

void workers_agent_load(const char *agent, size_t *queued, size_t *running) {
    pthread_mutex_lock(&pool.lock);
    const struct lane *l = lane_find_locked(agent);
    *queued = l ? l->count : 0;
    *running = l ? l->running : 0;
    pthread_mutex_unlock(&pool.lock);
}

void workers_agent_config(const char *agent, unsigned workers, unsigned queue_length) {
    pthread_mutex_lock(&pool.lock);
    struct lane *l = lane_get_locked(agent);
    if (l) {
        if (!l->live) pool.n_live++;
        l->live = true;
        l->removed = false;
        l->workers = workers;
        l->queue_length = queue_length;
        pthread_cond_broadcast(&pool.work); /* limits may have grown */
    }
    pthread_mutex_unlock(&pool.lock);
}

void workers_agent_removed(const char *agent, const char *why) {
    pthread_mutex_lock(&pool.lock);
    struct lane *l = lane_find_locked(agent);
    size_t n = l ? l->count : 0;
    struct task **queued = n ? malloc(n * sizeof *queued) : NULL;
    if (l) {
        if (l->live) pool.n_live--;
        l->live = false;
        l->removed = true;
        for (size_t i = 0; queued && i < n; i++) queued[i] = lane_pop_locked(l);
    }
    pthread_mutex_unlock(&pool.lock);
    if (n && !queued) {
        log_error("workers: out of memory: %zu queued jobs of the removed agent %s stay queued",
                  n, agent);
        return;
    }
    char reason[700];
    snprintf(reason, sizeof reason, "agent %s was removed before the job started: %s", agent,
             why);
    for (size_t i = 0; i < n; i++) {
        const struct agent *a = task_agent(queued[i]);
        metrics_queued(a, -1);
        /* An offered job another node claimed is not ended here. */
        if (!share || share->before_start(queued[i]))
            task_finish(queued[i], TASK_FAILED, reason);
        task_release(queued[i]);
        plugins_put(a);
    }
    if (n) log_info("workers: %zu queued jobs of the removed agent %s failed", n, agent);
    free(queued);
}

void workers_deliver_message(struct task *task, const cJSON *message) {
    const struct agent *agent = task_agent(task);
    if (!pool.slots) return;
    char *text = NULL;
    for (unsigned i = 0; i < pool.n_slots; i++) {
        struct slot *s = &pool.slots[i];
        pthread_mutex_lock(&s->lock);
        /* Only a running job pins its agent's code; read nothing before. */
        if (s->task != task || !runner_takes_messages(agent)) {
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        if (!text && !(text = tasks_message_text(message))) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        a2ad_ctx ctx = {.host = &host_table, .handle = s->gen << SLOT_BITS | s->index};
        s->delivering++;
        pthread_mutex_unlock(&s->lock);
        /* Without the slot lock: the plugin may call back through ctx. */
        runner_message(agent, ctx, text, message);
        pthread_mutex_lock(&s->lock);
        if (--s->delivering == 0) pthread_cond_broadcast(&s->quiet);
        pthread_mutex_unlock(&s->lock);
        break;
    }
    free(text);
}

void workers_load(size_t *queued, size_t *running) {
    pthread_mutex_lock(&pool.lock);
    if (queued) *queued = pool.count;
    if (running) *running = pool.running;
    pthread_mutex_unlock(&pool.lock);
}

static atomic_size_t webhook_high_water;
static _Atomic uint64_t backpressure_logged_ms; /* last warning, to log once a minute */

void workers_set_webhook_high_water(size_t high_water) {
    atomic_store(&webhook_high_water, high_water);
}

static bool pool_stopping(void) {
    pthread_mutex_lock(&pool.lock);
    bool s = pool.stopping;
    pthread_mutex_unlock(&pool.lock);
    return s;
}

/* Hold off starting jobs while the webhook backlog is above the mark: every
 * job adds a dozen deliveries, so a receiver slower than the agents would
 * otherwise pile them up in memory. */
static void wait_for_webhook_room(void) {
    size_t hw = atomic_load(&webhook_high_water);
    if (!hw) return;
    for (;;) {
        struct webhooks_stats ws;
        webhooks_get_stats(&ws);
        if (ws.pending <= hw || pool_stopping()) return;
        uint64_t now = util_now_ms(), last = atomic_load(&backpressure_logged_ms);
        if ((last == 0 || now - last >= 60000) &&
            atomic_compare_exchange_strong(&backpressure_logged_ms, &last, now))
            log_warn("workers: %llu webhook deliveries pending (> %zu): new jobs wait for the "
                     "receivers to catch up (logged at most once a minute)",
                     (unsigned long long)ws.pending, hw);
        struct timespec ts = {0, 2 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void run_job(struct slot *s, struct task *task) {
    const struct agent *agent = task_agent(task);
    /* An offered job may have been claimed by another node meanwhile. */
    if (share && !share->before_start(task)) return;
    if (task_start(task) != A2AD_OK) return; /* canceled while queued */

    pthread_mutex_lock(&s->lock);
    s->gen++;
    s->task = task;
    s->timed_out = false;
    s->deadline_ms = util_now_ms() + (uint64_t)agent->max_duration_s * 1000u;
    a2ad_ctx ctx = {.host = &host_table, .handle = s->gen << SLOT_BITS | s->index};
    pthread_mutex_unlock(&s->lock);

    /* The one place a job enters agent code (runner.h). The job pins agent
     * (this version's code) from workers_submit until after this returns. */
    a2ad_status st = runner_run(agent, task, ctx);

    pthread_mutex_lock(&s->lock);
    /* A message being handed to the job finishes first: on_message may use
     * the job's state, which the plugin frees once it returned. */
    while (s->delivering) pthread_cond_wait(&s->quiet, &s->lock);
    s->gen++; /* from here on the plugin's ctx is stale */
    s->task = NULL;
    char *result = s->result, *reason = s->fail_reason;
    s->result = s->fail_reason = NULL;
    /* The watchdog sets timed_out, then ends the task: a plugin that saw
     * a2ad_cancelled() and returned at once must not beat it to the end
     * with its own "cancelled". */
    bool timed_out = s->timed_out;
    pthread_mutex_unlock(&s->lock);

    a2ad_status fin;
    if (timed_out) {
        fin = A2AD_OK; /* the watchdog's task_finish gives the outcome */
    } else if (st == A2AD_OK) {
        fin = task_finish(task, TASK_COMPLETED, result);
    } else {
        char generic[96];
        if (!reason) snprintf(generic, sizeof generic, "agent returned %s", a2ad_status_name(st));
        fin = task_finish(task, TASK_FAILED, reason ? reason : generic);
    }
    if (fin != A2AD_OK)
        log_debug("task %s: agent %s returned after the task ended (%s); outcome ignored",
                  task_id(task), agent->desc.name, task_state_name(task_get_state(task)));
    free(result);
    free(reason);
}

static void *worker_main(void *arg) {
    struct slot *s = arg;
    char name[16];
    snprintf(name, sizeof name, "worker#%u", s->index);
    pthread_setname_np(pthread_self(), name);
    for (;;) {
        wait_for_webhook_room();
        pthread_mutex_lock(&pool.lock);
        struct lane *l = NULL;
        while (!pool.stopping && !(l = lane_next_locked()))
            pthread_cond_wait(&pool.work, &pool.lock);
        if (pool.stopping) {
            pthread_mutex_unlock(&pool.lock);
            break;
        }
        struct task *task = lane_pop_locked(l);
        l->running++;
        pool.running++;
        pthread_mutex_unlock(&pool.lock);

        const struct agent *agent = task_agent(task);
        metrics_queued(agent, -1);
        metrics_running(agent, 1);
        run_job(s, task);
        metrics_running(agent, -1);
        task_release(task);
        plugins_put(agent); /* the last job of a replaced version unloads it */

        pthread_mutex_lock(&pool.lock);
        l->running--;
        pool.running--;
        bool idle = l->count == 0;
        pthread_cond_broadcast(&pool.idle);
        pthread_cond_signal(&pool.work); /* the lane may be runnable again */
        pthread_mutex_unlock(&pool.lock);
        if (idle && share) share->idle();
    }
    return NULL;
}

/* Fails jobs past their agent's maximum duration. The plugin cannot be
 * stopped by force; the task ends now and the worker stays busy until
 * run_background returns (a2ad_cancelled() tells it to). */
static void *watchdog_main(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "watchdog");
    pthread_mutex_lock(&pool.lock);
    while (!pool.stopping) {
        struct timespec ts = time_in_ms(100); /* plenty for limits in seconds */
        pthread_cond_timedwait(&pool.tick, &pool.lock, &ts);
        if (pool.stopping) break;
        pthread_mutex_unlock(&pool.lock);

        uint64_t now = util_now_ms();
        for (unsigned i = 0; i < pool.n_slots; i++) {
            struct slot *s = &pool.slots[i];
            struct task *overdue = NULL;
            pthread_mutex_lock(&s->lock);
            if (s->task && !s->timed_out && now >= s->deadline_ms) {
                s->timed_out = true;
                overdue = s->task;
                task_retain(overdue);
            }
            pthread_mutex_unlock(&s->lock);
            if (!overdue) continue;
            const struct agent *a = task_agent(overdue);
            char text[160];
            /* Same wording as the Health Universe SDK, which platforms match on. */
            snprintf(text, sizeof text,
                     "Task exceeded maximum duration of %u seconds (%u minutes)",
                     a->max_duration_s, a->max_duration_s / 60);
            if (task_finish(overdue, TASK_FAILED, text) == A2AD_OK)
                log_warn("agent %s task %s: exceeded max_duration_s = %u; task failed, worker "
                         "busy until the plugin returns",
                         a->desc.name, task_id(overdue), a->max_duration_s);
            task_release(overdue);
        }
        pthread_mutex_lock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

a2ad_status workers_start(unsigned threads, unsigned queue_length) {
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    if (threads > SLOT_MASK) threads = (unsigned)SLOT_MASK;
    pool.slots = calloc(threads, sizeof *pool.slots);
    if (!pool.slots) return A2AD_ERR_NOMEM;
    pool.limit = queue_length ? queue_length : 1;
    pool.n_slots = threads;
    pool.stopping = false;
    pool.started = true;
    for (unsigned i = 0; i < threads; i++) {
        struct slot *s = &pool.slots[i];
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->quiet, NULL);
        s->index = i;
        s->gen = 1;
        if (pthread_create(&s->thread, NULL, worker_main, s) != 0) {
            log_error("workers: cannot start thread %u", i);
            pool.n_slots = i;
            workers_stop(0);
            return A2AD_ERR_IO;
        }
    }
    if (pthread_create(&pool.watchdog, NULL, watchdog_main, NULL) != 0) {
        workers_stop(0);
        return A2AD_ERR_IO;
    }
    log_info("workers: %u threads, queue of %zu jobs", threads, pool.limit);
    return A2AD_OK;
}

void workers_set_queue_length(unsigned queue_length) {
    pthread_mutex_lock(&pool.lock);
    pool.limit = queue_length ? queue_length : 1;
    pthread_mutex_unlock(&pool.lock);
}

static void fail_running(const char *reason) {
    for (unsigned i = 0; i < pool.n_slots; i++) {
        struct slot *s = &pool.slots[i];
        pthread_mutex_lock(&s->lock);
        struct task *t = s->task;
        if (t) task_retain(t);
        pthread_mutex_unlock(&s->lock);
        if (t) {
            task_finish(t, TASK_FAILED, reason);
            task_release(t);
        }
    }
}

/* Wait until no job runs or the monotonic deadline passes; returns how many
 * jobs still run. */
static size_t wait_idle(uint64_t deadline_ms) {
    pthread_mutex_lock(&pool.lock);
    while (pool.running > 0 && util_now_ms() < deadline_ms) {
        struct timespec ts = time_in_ms(20);
        pthread_cond_timedwait(&pool.idle, &pool.lock, &ts);
    }
    size_t running = pool.running;
    pthread_mutex_unlock(&pool.lock);
    return running;
}

/* Set before workers_stop; read by it on the main thread only. */
static bool keep_queued_at_stop;

void workers_keep_queued_at_stop(bool keep) { keep_queued_at_stop = keep; }

size_t workers_stop(unsigned grace_s) {
    pthread_mutex_lock(&pool.lock);
    if (!pool.started) {
        pthread_mutex_unlock(&pool.lock);
        return 0;
    }
    bool watchdog_running = !pool.stopping && pool.slots;
    pool.stopping = true;
    pthread_cond_broadcast(&pool.work);
    pthread_cond_broadcast(&pool.tick);
    size_t n_queued = pool.count;
    struct task **queued = n_queued ? malloc(n_queued * sizeof *queued) : NULL;
    size_t i_queued = 0;
    for (struct lane *l = pool.lanes; l; l = l->next)
        while (l->count) {
            struct task *t = lane_pop_locked(l);
            if (queued) {
                queued[i_queued++] = t;
            } else { /* out of memory at shutdown: the task stays as it was */
                plugins_put(task_agent(t));
                task_release(t);
            }
        }
    pthread_mutex_unlock(&pool.lock);

    if (watchdog_running) pthread_join(pool.watchdog, NULL);
    for (size_t i = 0; queued && i < n_queued; i++) {
        const struct agent *a = task_agent(queued[i]);
        metrics_queued(a, -1);
        if (!keep_queued_at_stop)
            task_finish(queued[i], TASK_FAILED, "interrupted: a2ad shut down before the job started");
        task_release(queued[i]);
        plugins_put(a);
    }
    free(queued);
    if (n_queued)
        log_info("workers: %zu queued jobs %s at shutdown", n_queued,
                 keep_queued_at_stop ? "left queued for the next start" : "failed");

    /* Give running jobs the grace period to return on their own. */
    size_t busy = wait_idle(util_now_ms() + (uint64_t)grace_s * 1000u);
    if (busy) {
        log_warn("workers: %zu jobs still running after %u s grace; failing them", busy, grace_s);
        fail_running("interrupted: a2ad shut down");
        /* Their a2ad_cancelled() now says stop: give cooperative agents a
         * moment to return so they can be joined and unloaded cleanly. */
        wait_idle(util_now_ms() + 1000);
    }
    /* Join the workers that are out of plugin code; leave the others
     * detached (the process is about to exit). */
    size_t still_busy = 0;
    for (unsigned i = 0; i < pool.n_slots; i++) {
        struct slot *s = &pool.slots[i];
        pthread_mutex_lock(&s->lock);
        bool in_job = s->task != NULL;
        pthread_mutex_unlock(&s->lock);
        if (in_job) {
            pthread_detach(s->thread);
            still_busy++;
        } else {
            pthread_join(s->thread, NULL);
        }
    }
    if (!still_busy) {
        for (unsigned i = 0; i < pool.n_slots; i++) {
            pthread_mutex_destroy(&pool.slots[i].lock);
            pthread_cond_destroy(&pool.slots[i].quiet);
        }
        free(pool.slots);
        pool.slots = NULL;
        pool.n_slots = 0;
        /* the PostgreSQL writer still asks workers_has_room */
        pthread_mutex_lock(&pool.lock);
        while (pool.lanes) {
            struct lane *next = pool.lanes->next;
            free(pool.lanes->ring);
            free(pool.lanes);
            pool.lanes = next;
        }
        pool.rr = NULL;
        pool.n_live = 0;
        pool.count = 0;
        pool.started = false;
        pthread_mutex_unlock(&pool.lock);
    }
    return still_busy;
}

/* ---- work sharing ------------------------------------------------------ */

void workers_set_share(const struct workers_share *s) { share = s; }

size_t workers_idle(struct workers_free *out, size_t max) {
    size_t hw = atomic_load(&webhook_high_water), n = 0;
    if (hw) {
        struct webhooks_stats ws;
        webhooks_get_stats(&ws);
        if (ws.pending > hw) return 0; /* jobs wait for the receivers here */
    }
    pthread_mutex_lock(&pool.lock);
    size_t threads = pool.n_slots > pool.running + pool.count
                         ? pool.n_slots - pool.running - pool.count
                         : 0;
    for (struct lane *l = pool.lanes; l && n < max && threads && !pool.stopping; l = l->next) {
        unsigned cap = lane_cap(l);
        if (!l->live || l->removed || l->count || l->running >= cap) continue;
        size_t free_slots = cap - l->running;
        out[n].count = free_slots < threads ? free_slots : threads;
        snprintf(out[n].agent, sizeof out[n].agent, "%s", l->name);
        n++;
    }
    pthread_mutex_unlock(&pool.lock);
    return n;
}

bool workers_withdraw(struct task *task) {
    pthread_mutex_lock(&pool.lock);
    struct lane *l = lane_find_locked(task_agent_name(task));
    bool found = false;
    for (size_t i = 0; l && i < l->count; i++) {
        if (l->ring[(l->head + i) % l->cap] != task) continue;
        for (size_t j = i; j + 1 < l->count; j++)
            l->ring[(l->head + j) % l->cap] = l->ring[(l->head + j + 1) % l->cap];
        l->count--;
        pool.count--;
        found = true;
        break;
    }
    pthread_mutex_unlock(&pool.lock);
    if (!found) return false;
    const struct agent *a = task_agent(task);
    metrics_queued(a, -1);
    task_release(task);
    plugins_put(a);
    return true;
}
