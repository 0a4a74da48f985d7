/* metrics - Prometheus exposition of the daemon's counters. See metrics.h. */
#include "front/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "agents/plugins.h"
#include "store/cluster.h"
#include "store/share.h"
#include "front/streams.h"
#include "front/tls.h"
#include "core/tasks.h"
#include "util.h"
#include "delivery/webhooks.h"
#include "agents/workers.h"

/* Bucket bounds in microseconds; the last bucket is +Inf. */
static const uint64_t fast_bounds_us[] = {250,    500,    1000,   2500,    5000,    10000,  25000,
                                          50000,  100000, 250000, 500000,  1000000, 2500000,
                                          5000000};
#define N_FAST (sizeof fast_bounds_us / sizeof fast_bounds_us[0])
static const uint64_t job_bounds_us[] = {
    10000,    50000,     100000,    250000,    500000,     1000000,    2500000,    5000000,
    10000000, 30000000,  60000000,  120000000, 300000000,  900000000,  1800000000, 3600000000};
#define N_JOB (sizeof job_bounds_us / sizeof job_bounds_us[0])
#define MAX_BOUNDS 16

/* Buckets are not cumulative here (one add per observation); the count is
 * their sum, computed when rendered. */
struct hist {
    _Atomic uint64_t bucket[MAX_BOUNDS + 1];
    _Atomic uint64_t sum_us;
};

static void hist_observe(struct hist *h, const uint64_t *bounds, size_t n, uint64_t us) {
    size_t i = 0;
    while (i < n && us > bounds[i]) i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

/* Per agent name, not per loaded version: agents come and go with the live
 * plugin directory, and an agent's series go on across its versions. */
struct agent_metrics {
    _Atomic(const char *) name; /* set once under slots_lock, then read-only */
    _Atomic uint64_t jobs[METRICS_OUTCOMES];
    _Atomic int64_t queued, running;
    struct hist duration, ack;
};

static const char *const outcome_names[METRICS_OUTCOMES] = {
    [METRICS_ACCEPTED] = "accepted",   [METRICS_REFUSED] = "refused",
    [METRICS_COMPLETED] = "completed", [METRICS_FAILED] = "failed",
    [METRICS_CANCELED] = "canceled",   [METRICS_REJECTED] = "rejected",
    [METRICS_INTERRUPTED] = "interrupted",
};

/* HTTP responses: by method and by the statuses a2ad answers with. */
enum { M_GET, M_HEAD, M_POST, M_OTHER, N_METHODS };
static const char *const method_names[N_METHODS] = {"GET", "HEAD", "POST", "other"};
static const unsigned codes[] = {200, 400, 401, 404, 405, 413, 500, 503};
#define N_CODES (sizeof codes / sizeof codes[0])

/* Controls between nodes (cluster.c), by kind; any other kind counts as
 * the last. */
static const char *const control_kinds[] = {"cancel", "push-set", "push-delete", "message",
                                            "watch", "other"};
#define N_KINDS (sizeof control_kinds / sizeof control_kinds[0])
static const char *const control_outcomes[METRICS_CTL_OUTCOMES] = {
    [METRICS_CTL_DONE] = "done",       [METRICS_CTL_REFUSED] = "refused",
    [METRICS_CTL_FAILED] = "failed",   [METRICS_CTL_TIMEOUT] = "timeout",
    [METRICS_CTL_ERROR] = "error",     [METRICS_CTL_NOT_FOUND] = "not_found",
    [METRICS_CTL_LOCAL] = "local",
};

/* Agent names ever seen; beyond that, an agent's jobs are not counted
 * (logged once). Open addressing: a slot, once named, keeps its name. */
#define METRICS_MAX_AGENTS 256
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
    struct agent_metrics agents[METRICS_MAX_AGENTS];
    _Atomic size_t n_agents; /* named slots, for the render order below */
    _Atomic(struct agent_metrics *) order[METRICS_MAX_AGENTS];
    _Atomic uint64_t http[N_METHODS][N_CODES + 1];
    struct hist commit;
    _Atomic uint64_t commits_failed;
    _Atomic uint64_t last_commit_failed_ms, last_commit_ok_ms;
    _Atomic uint64_t webhook_oldest_ms;
    _Atomic uint64_t controls[N_KINDS][METRICS_CTL_OUTCOMES], served[N_KINDS];
    struct hist control_rtt[N_KINDS];
} m;

/* The request this HTTP thread is answering. */
static _Thread_local int cur_method = M_OTHER;
static _Thread_local uint64_t cur_arrived_us;

uint64_t metrics_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void metrics_init(void) {}

void metrics_shutdown(void) {}

static size_t name_hash(const char *n) {
    size_t h = 1469598103934665603ull;
    for (; *n; n++) h = (h ^ (unsigned char)*n) * 1099511628211ull;
    return h;
}

/* The series of a's name, made on first use. Lock-free when it exists. */
static struct agent_metrics *of(const struct agent *a) {
    if (!a || !a->desc.name) return NULL;
    const char *want = a->desc.name;
    size_t h = name_hash(want);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < METRICS_MAX_AGENTS; k++) {
            struct agent_metrics *am = &m.agents[(h + k) % METRICS_MAX_AGENTS];
            const char *n = atomic_load_explicit(&am->name, memory_order_acquire);
            if (!n) {
                if (pass == 0) break; /* not there: name it under the lock */
                n = strdup(want);
                if (!n) return NULL;
                atomic_store_explicit(&am->name, n, memory_order_release);
                size_t i = atomic_load(&m.n_agents);
                atomic_store(&m.order[i], am);
                atomic_store(&m.n_agents, i + 1);
                pthread_mutex_unlock(&slots_lock);
                return am;
            }
            if (strcmp(n, want) == 0) {
                if (pass == 1) pthread_mutex_unlock(&slots_lock);
                return am;
            }
        }
        if (pass == 0) pthread_mutex_lock(&slots_lock);
    }
    pthread_mutex_unlock(&slots_lock);
    return NULL; /* every slot taken by other names */
}

void metrics_job(const struct agent *agent, enum metrics_outcome outcome) {
    struct agent_metrics *am = of(agent);
    if (am && (unsigned)outcome < METRICS_OUTCOMES)
        atomic_fetch_add_explicit(&am->jobs[outcome], 1, memory_order_relaxed);
}

void metrics_job_accepted(const struct agent *agent) {
    struct agent_metrics *am = of(agent);
    if (!am) return;
    atomic_fetch_add_explicit(&am->jobs[METRICS_ACCEPTED], 1, memory_order_relaxed);
    if (cur_arrived_us)
        hist_observe(&am->ack, fast_bounds_us, N_FAST, metrics_now_us() - cur_arrived_us);
}

void metrics_queued(const struct agent *agent, int delta) {
    struct agent_metrics *am = of(agent);
    if (am) atomic_fetch_add_explicit(&am->queued, delta, memory_order_relaxed);
}

void metrics_running(const struct agent *agent, int delta) {
    struct agent_metrics *am = of(agent);
    if (am) atomic_fetch_add_explicit(&am->running, delta, memory_order_relaxed);
}

void metrics_task_ended(const struct agent *agent, const struct metrics_end *e) {
    enum task_state s = (enum task_state)e->state;
    enum metrics_outcome o = s == TASK_COMPLETED  ? METRICS_COMPLETED
                             : s == TASK_CANCELED ? METRICS_CANCELED
                             : s == TASK_REJECTED ? METRICS_REJECTED
                                                  : METRICS_FAILED;
    if (o == METRICS_FAILED && e->reason && strncmp(e->reason, "interrupted", 11) == 0)
        o = METRICS_INTERRUPTED;
    struct agent_metrics *am = of(agent);
    if (am) {
        atomic_fetch_add_explicit(&am->jobs[o], 1, memory_order_relaxed);
        if (e->run_us || s != TASK_REJECTED)
            hist_observe(&am->duration, job_bounds_us, N_JOB, e->run_us);
    }
    if (log_get_level() < A2AD_LOG_INFO) return;
    struct log_field f[] = {
        {.key = "agent", .text = agent ? agent->desc.name : "?"},
        {.key = "task", .text = e->task_id},
        {.key = "state", .text = task_state_name(s)},
        {.key = "duration_ms", .num = (long long)(e->run_us / 1000u), .is_num = true},
        {.key = "queued_ms", .num = (long long)(e->queued_us / 1000u), .is_num = true},
        {.key = "attempt", .num = (long long)e->attempt, .is_num = true},
        {.key = "reason", .text = s == TASK_COMPLETED ? NULL : e->reason},
    };
    log_fields(A2AD_LOG_INFO, "job", "ended", f, sizeof f / sizeof f[0]);
}

void metrics_http_begin(const char *method, uint64_t arrived_us) {
    cur_method = strcmp(method, "GET") == 0    ? M_GET
                 : strcmp(method, "POST") == 0 ? M_POST
                 : strcmp(method, "HEAD") == 0 ? M_HEAD
                                               : M_OTHER;
    cur_arrived_us = arrived_us;
}

void metrics_http_response(unsigned status) {
    size_t i = 0;
    while (i < N_CODES && codes[i] != status) i++;
    atomic_fetch_add_explicit(&m.http[cur_method][i], 1, memory_order_relaxed);
}

void metrics_store_commit(bool ok, uint64_t us) {
    hist_observe(&m.commit, fast_bounds_us, N_FAST, us);
    uint64_t now = util_now_ms();
    if (ok) {
        atomic_store_explicit(&m.last_commit_ok_ms, now, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&m.commits_failed, 1, memory_order_relaxed);
        atomic_store_explicit(&m.last_commit_failed_ms, now, memory_order_relaxed);
    }
}

void metrics_store_last(uint64_t *failed_ms, uint64_t *ok_ms) {
    *failed_ms = atomic_load_explicit(&m.last_commit_failed_ms, memory_order_relaxed);
    *ok_ms = atomic_load_explicit(&m.last_commit_ok_ms, memory_order_relaxed);
}

void metrics_webhook_oldest(uint64_t created_wall_ms) {
    atomic_store_explicit(&m.webhook_oldest_ms, created_wall_ms, memory_order_relaxed);
}

static size_t kind_index(const char *kind) {
    size_t k = 0;
    while (k + 1 < N_KINDS && strcmp(control_kinds[k], kind) != 0) k++;
    return k;
}

void metrics_cluster_control(const char *kind, enum metrics_control outcome, uint64_t us) {
    size_t k = kind_index(kind);
    atomic_fetch_add_explicit(&m.controls[k][outcome], 1, memory_order_relaxed);
    if (outcome <= METRICS_CTL_FAILED) hist_observe(&m.control_rtt[k], fast_bounds_us, N_FAST, us);
}

void metrics_cluster_served(const char *kind) {
    atomic_fetch_add_explicit(&m.served[kind_index(kind)], 1, memory_order_relaxed);
}

/* ---- the page --------------------------------------------------------- */

struct out {
    char *buf;
    size_t len, cap;
    bool failed;
};

static void add(struct out *o, const char *fmt, ...) A2AD_PRINTF(2, 3);
static void add(struct out *o, const char *fmt, ...) {
    if (o->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t ncap = (o->cap + (size_t)n + 1) * 2;
        char *nb = realloc(o->buf, ncap);
        if (!nb) {
            o->failed = true;
            return;
        }
        o->buf = nb;
        o->cap = ncap;
    }
}

static void head(struct out *o, const char *name, const char *type, const char *help) {
    add(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* An agent name as a label value: \, " and newline escaped. */
static const char *label(const char *s, char *buf, size_t n) {
    size_t j = 0;
    for (; *s && j + 3 < n; s++) {
        if (*s == '\\' || *s == '"') buf[j++] = '\\';
        if (*s == '\n') {
            buf[j++] = '\\';
            buf[j++] = 'n';
            continue;
        }
        buf[j++] = *s;
    }
    buf[j] = '\0';
    return buf;
}

static void hist_render(struct out *o, const char *name, const char *labels, struct hist *h,
                        const uint64_t *bounds, size_t nb) {
    uint64_t cum = 0;
    const char *sep = *labels ? "," : "";
    for (size_t i = 0; i <= nb; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (i < nb)
            add(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, (double)bounds[i] / 1e6,
                (unsigned long long)cum);
        else
            add(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                (unsigned long long)cum);
    }
    double sum = (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6;
    if (*labels) {
        add(o, "%s_sum{%s} %.6f\n", name, labels, sum);
        add(o, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
    } else {
        add(o, "%s_sum %.6f\n", name, sum);
        add(o, "%s_count %llu\n", name, (unsigned long long)cum);
    }
}

static void touch(const struct agent *a, void *arg) {
    (void)arg;
    (void)of(a); /* a loaded agent has its series, at 0, before its first job */
}

char *metrics_render(void) {
    plugins_each(touch, NULL);
    struct out o = {0};
    char name[200], labels[260];

    head(&o, "a2ad_jobs_total", "counter",
         "Jobs by agent and outcome: accepted (acknowledged), refused (503), and how they ended");
    size_t n_agents = atomic_load(&m.n_agents);
    for (size_t a = 0; a < n_agents; a++) {
        const struct agent_metrics *am = atomic_load(&m.order[a]);
        label(atomic_load(&am->name), name, sizeof name);
        for (int k = 0; k < METRICS_OUTCOMES; k++)
            add(&o, "a2ad_jobs_total{agent=\"%s\",outcome=\"%s\"} %llu\n", name, outcome_names[k],
                (unsigned long long)atomic_load_explicit(&am->jobs[k], memory_order_relaxed));
    }
    head(&o, "a2ad_jobs_queued", "gauge", "Jobs waiting for a worker now");
    for (size_t a = 0; a < n_agents; a++) {
        const struct agent_metrics *am = atomic_load(&m.order[a]);
        add(&o, "a2ad_jobs_queued{agent=\"%s\"} %lld\n", label(atomic_load(&am->name), name, sizeof name),
            (long long)atomic_load_explicit(&am->queued, memory_order_relaxed));
    }
    head(&o, "a2ad_jobs_running", "gauge", "Jobs running in a worker now");
    for (size_t a = 0; a < n_agents; a++) {
        const struct agent_metrics *am = atomic_load(&m.order[a]);
        add(&o, "a2ad_jobs_running{agent=\"%s\"} %lld\n", label(atomic_load(&am->name), name, sizeof name),
            (long long)atomic_load_explicit(&am->running, memory_order_relaxed));
    }
    head(&o, "a2ad_job_duration_seconds", "histogram",
         "How long jobs ran, from start to end (jobs that never started count as 0)");
    for (size_t a = 0; a < n_agents; a++) {
        struct agent_metrics *am = atomic_load(&m.order[a]);
        snprintf(labels, sizeof labels, "agent=\"%s\"", label(atomic_load(&am->name), name, sizeof name));
        hist_render(&o, "a2ad_job_duration_seconds", labels, &am->duration, job_bounds_us, N_JOB);
    }
    head(&o, "a2ad_ack_latency_seconds", "histogram",
         "From the arrival of a submission to its acknowledgement (stored and queued)");
    for (size_t a = 0; a < n_agents; a++) {
        struct agent_metrics *am = atomic_load(&m.order[a]);
        snprintf(labels, sizeof labels, "agent=\"%s\"", label(atomic_load(&am->name), name, sizeof name));
        hist_render(&o, "a2ad_ack_latency_seconds", labels, &am->ack, fast_bounds_us, N_FAST);
    }

    struct webhooks_stats ws;
    webhooks_get_stats(&ws);
    head(&o, "a2ad_webhook_deliveries_total", "counter",
         "Webhook deliveries by outcome: delivered (2xx), given_up, refused (queue full)");
    add(&o, "a2ad_webhook_deliveries_total{outcome=\"delivered\"} %llu\n",
        (unsigned long long)ws.delivered);
    add(&o, "a2ad_webhook_deliveries_total{outcome=\"given_up\"} %llu\n",
        (unsigned long long)ws.given_up);
    add(&o, "a2ad_webhook_deliveries_total{outcome=\"refused\"} %llu\n",
        (unsigned long long)ws.rejected);
    head(&o, "a2ad_webhook_retries_total", "counter", "Webhook attempts that failed and were retried");
    add(&o, "a2ad_webhook_retries_total %llu\n", (unsigned long long)ws.retried);
    head(&o, "a2ad_webhook_given_up_total", "counter",
         "Webhook deliveries given up (too old, too many attempts, or a 4xx)");
    add(&o, "a2ad_webhook_given_up_total %llu\n", (unsigned long long)ws.given_up);
    head(&o, "a2ad_webhook_pending", "gauge", "Webhook deliveries queued or in flight in memory");
    add(&o, "a2ad_webhook_pending %llu\n", (unsigned long long)ws.pending);
    head(&o, "a2ad_outbox_backlog", "gauge",
         "Undelivered webhook events: pending in memory plus parked in the outbox only");
    add(&o, "a2ad_outbox_backlog %llu\n", (unsigned long long)(ws.pending + ws.parked));
    uint64_t oldest = atomic_load_explicit(&m.webhook_oldest_ms, memory_order_relaxed);
    uint64_t wall = util_wall_ms();
    head(&o, "a2ad_outbox_oldest_age_seconds", "gauge",
         "Age of the oldest webhook event not yet delivered (0 = none; updated each second)");
    add(&o, "a2ad_outbox_oldest_age_seconds %.3f\n",
        oldest && wall > oldest && ws.pending ? (double)(wall - oldest) / 1e3 : 0.0);

    head(&o, "a2ad_store_commit_seconds", "histogram",
         "Durable store transactions (group commits), from BEGIN to COMMIT");
    hist_render(&o, "a2ad_store_commit_seconds", "", &m.commit, fast_bounds_us, N_FAST);
    head(&o, "a2ad_store_commit_failures_total", "counter", "Store transactions that failed");
    add(&o, "a2ad_store_commit_failures_total %llu\n",
        (unsigned long long)atomic_load_explicit(&m.commits_failed, memory_order_relaxed));

    head(&o, "a2ad_sse_streams", "gauge", "Open Server-Sent Events streams");
    add(&o, "a2ad_sse_streams %zu\n", streams_count());
    head(&o, "a2ad_tasks", "gauge", "Tasks held in memory (running and retained)");
    add(&o, "a2ad_tasks %zu\n", tasks_count());

    if (share_enabled()) { /* PostgreSQL with several nodes (share.h) */
        size_t offered, taken, claimed;
        share_counts(&offered, &taken, &claimed);
        head(&o, "a2ad_shared_jobs_total", "counter",
             "Work sharing: jobs of this node offered to others, of those taken by another node, "
             "and jobs this node claimed from others");
        add(&o, "a2ad_shared_jobs_total{event=\"offered\"} %zu\n", offered);
        add(&o, "a2ad_shared_jobs_total{event=\"taken\"} %zu\n", taken);
        add(&o, "a2ad_shared_jobs_total{event=\"claimed\"} %zu\n", claimed);
    }

    if (cluster_active()) { /* PostgreSQL: answers for other nodes' tasks (cluster.h) */
        head(&o, "a2ad_cluster_controls_total", "counter",
             "Controls this node sent to the node holding a task, by kind and outcome");
        for (size_t k = 0; k < N_KINDS; k++)
            for (int c = 0; c < METRICS_CTL_OUTCOMES; c++) {
                uint64_t v = atomic_load_explicit(&m.controls[k][c], memory_order_relaxed);
                if (v || c == METRICS_CTL_DONE) /* the others appear with their first */
                    add(&o, "a2ad_cluster_controls_total{kind=\"%s\",outcome=\"%s\"} %llu\n",
                        control_kinds[k], control_outcomes[c], (unsigned long long)v);
            }
        head(&o, "a2ad_cluster_controls_served_total", "counter",
             "Controls this node ran for other nodes on the tasks it holds, by kind");
        for (size_t k = 0; k < N_KINDS; k++)
            add(&o, "a2ad_cluster_controls_served_total{kind=\"%s\"} %llu\n", control_kinds[k],
                (unsigned long long)atomic_load_explicit(&m.served[k], memory_order_relaxed));
        head(&o, "a2ad_cluster_control_seconds", "histogram",
             "Controls this node sent, from the request to the holder's answer (answered ones)");
        for (size_t k = 0; k < N_KINDS; k++) {
            snprintf(labels, sizeof labels, "kind=\"%s\"", control_kinds[k]);
            hist_render(&o, "a2ad_cluster_control_seconds", labels, &m.control_rtt[k],
                        fast_bounds_us, N_FAST);
        }
        head(&o, "a2ad_cluster_remote_streams", "gauge",
             "Open streams here of tasks held by another node");
        add(&o, "a2ad_cluster_remote_streams %zu\n", streams_count_remote());
        head(&o, "a2ad_cluster_nodes", "gauge",
             "Nodes holding a lease on the database now, this one included (checked each second)");
        add(&o, "a2ad_cluster_nodes %zu\n", cluster_live_nodes());
    }

    long long not_after;
    unsigned long long reloads_ok, reloads_failed;
    if (tls_metrics(&not_after, &reloads_ok, &reloads_failed)) { /* [server] tls_cert_file set */
        head(&o, "a2ad_tls_certificate_not_after_seconds", "gauge",
             "notAfter of the listener's certificate served to new connections, as a Unix time");
        add(&o, "a2ad_tls_certificate_not_after_seconds %lld\n", not_after);
        head(&o, "a2ad_tls_reloads_total", "counter",
             "SIGHUP re-reads of the TLS pair: ok (served from then on) or failed (previous pair kept)");
        add(&o, "a2ad_tls_reloads_total{result=\"ok\"} %llu\n", reloads_ok);
        add(&o, "a2ad_tls_reloads_total{result=\"failed\"} %llu\n", reloads_failed);
    }

    head(&o, "a2ad_http_requests_total", "counter", "HTTP responses by request method and status");
    for (int k = 0; k < N_METHODS; k++)
        for (size_t c = 0; c <= N_CODES; c++) {
            uint64_t v = atomic_load_explicit(&m.http[k][c], memory_order_relaxed);
            if (!v) continue; /* a series appears with its first response */
            if (c < N_CODES)
                add(&o, "a2ad_http_requests_total{method=\"%s\",code=\"%u\"} %llu\n",
                    method_names[k], codes[c], (unsigned long long)v);
            else
                add(&o, "a2ad_http_requests_total{method=\"%s\",code=\"other\"} %llu\n",
                    method_names[k], (unsigned long long)v);
        }
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    return o.buf ? o.buf : strdup("");
}
