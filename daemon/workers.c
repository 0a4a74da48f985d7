/* workers - the worker pool, the max-duration watchdog, and the host
 * function table plugins call. See workers.h for the contract. */
#include "workers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "plugins.h"
#include "tasks.h"
#include "util.h"
#include "webhooks.h"

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

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work;  /* queue non-empty or stopping */
    pthread_cond_t idle;  /* a job ended (workers_stop waits on it) */
    pthread_cond_t tick;  /* wakes the watchdog at stop */
    struct task **ring;
    size_t cap, limit, head, count;
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
        const struct agent *a = plugins_at((size_t)(ctx.handle & ~AGENT_BIT));
        snprintf(origin, sizeof origin, "agent %s", a ? a->desc.name : "?");
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
    .cancelled = host_cancelled,
    .vlog = host_vlog,
    .set_result = host_result,
    .set_failure = host_fail,
    .request_input = host_request_input,
};

const struct a2ad_host *workers_host(void) { return &host_table; }

/* ---- the queue and the workers -------------------------------------- */

static struct task *queue_pop_locked(void) {
    struct task *t = pool.ring[pool.head];
    pool.head = (pool.head + 1) % pool.cap;
    pool.count--;
    return t;
}

/* Grow the ring by doubling so a large queue_length costs memory only
 * when the queue really gets long. */
static bool queue_grow_locked(void) {
    size_t ncap = pool.cap ? pool.cap * 2 : 64;
    if (ncap > pool.limit) ncap = pool.limit;
    struct task **r = malloc(ncap * sizeof *r);
    if (!r) return false;
    for (size_t i = 0; i < pool.count; i++) r[i] = pool.ring[(pool.head + i) % pool.cap];
    free(pool.ring);
    pool.ring = r;
    pool.cap = ncap;
    pool.head = 0;
    return true;
}

a2ad_status workers_submit(struct task *task) {
    pthread_mutex_lock(&pool.lock);
    a2ad_status st = A2AD_OK;
    if (!pool.started || pool.stopping)
        st = A2AD_ERR_STATE;
    else if (pool.count >= pool.limit)
        st = A2AD_ERR_FULL;
    else if (pool.count == pool.cap && !queue_grow_locked())
        st = A2AD_ERR_NOMEM;
    if (st == A2AD_OK) {
        task_retain(task);
        pool.ring[(pool.head + pool.count) % pool.cap] = task;
        pool.count++;
        pthread_cond_signal(&pool.work);
    }
    pthread_mutex_unlock(&pool.lock);
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

void workers_deliver_message(struct task *task, const cJSON *message) {
    const struct agent *agent = task_agent(task);
    if (!agent->desc.on_message || !pool.slots) return;
    char *text = tasks_message_text(message);
    if (!text) return;
    for (unsigned i = 0; i < pool.n_slots; i++) {
        struct slot *s = &pool.slots[i];
        pthread_mutex_lock(&s->lock);
        if (s->task != task) {
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        a2ad_ctx ctx = {.host = &host_table, .handle = s->gen << SLOT_BITS | s->index};
        s->delivering++;
        pthread_mutex_unlock(&s->lock);
        /* Without the slot lock: the plugin may call back through ctx. */
        agent->desc.on_message(agent->state, ctx, text);
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
    if (task_start(task) != A2AD_OK) return; /* canceled while queued */

    pthread_mutex_lock(&s->lock);
    s->gen++;
    s->task = task;
    s->timed_out = false;
    s->deadline_ms = util_now_ms() + (uint64_t)agent->max_duration_s * 1000u;
    a2ad_ctx ctx = {.host = &host_table, .handle = s->gen << SLOT_BITS | s->index};
    pthread_mutex_unlock(&s->lock);

    a2ad_status st = agent->desc.run_background(agent->state, task_query(task), ctx);

    pthread_mutex_lock(&s->lock);
    /* A message being handed to the job finishes first: on_message may use
     * the job's state, which the plugin frees once it returned. */
    while (s->delivering) pthread_cond_wait(&s->quiet, &s->lock);
    s->gen++; /* from here on the plugin's ctx is stale */
    s->task = NULL;
    char *result = s->result, *reason = s->fail_reason;
    s->result = s->fail_reason = NULL;
    pthread_mutex_unlock(&s->lock);

    a2ad_status fin;
    if (st == A2AD_OK) {
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
        while (pool.count == 0 && !pool.stopping) pthread_cond_wait(&pool.work, &pool.lock);
        if (pool.stopping) {
            pthread_mutex_unlock(&pool.lock);
            break;
        }
        struct task *task = queue_pop_locked();
        pool.running++;
        pthread_mutex_unlock(&pool.lock);

        run_job(s, task);
        task_release(task);

        pthread_mutex_lock(&pool.lock);
        pool.running--;
        pthread_cond_broadcast(&pool.idle);
        pthread_mutex_unlock(&pool.lock);
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
    for (size_t i = 0; i < n_queued; i++) {
        struct task *t = queue_pop_locked();
        if (queued)
            queued[i] = t;
        else
            task_release(t); /* out of memory at shutdown: the task stays as it was */
    }
    pthread_mutex_unlock(&pool.lock);

    if (watchdog_running) pthread_join(pool.watchdog, NULL);
    for (size_t i = 0; queued && i < n_queued; i++) {
        if (!keep_queued_at_stop)
            task_finish(queued[i], TASK_FAILED, "interrupted: a2ad shut down before the job started");
        task_release(queued[i]);
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
        free(pool.ring);
        pool.ring = NULL;
        pool.cap = pool.head = pool.count = 0;
        pool.started = false;
    }
    return still_busy;
}
