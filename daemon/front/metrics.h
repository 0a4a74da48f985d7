/* metrics - Prometheus counters, gauges and histograms (GET /metrics), and
 * the one log line per job end.
 *
 * Every counter is a relaxed atomic: a hot path pays one atomic add (a
 * histogram two: its bucket and its sum), never a lock. Per-agent counters
 * live in an array indexed by the agent's registry index, sized by
 * metrics_init once the plugins are loaded; calls for an agent beyond it
 * (or before it) count nothing, so modules used without the daemon (unit
 * tests) need no set-up. Gauges that other modules already keep (the
 * webhook queue, open streams) are read when the page is rendered.
 */
#ifndef A2AD_METRICS_H
#define A2AD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "a2ad/agent.h"

struct agent;
struct task;

/* The outcome label of a2ad_jobs_total. */
enum metrics_outcome {
    METRICS_ACCEPTED,    /* acknowledged to the client */
    METRICS_REFUSED,     /* 503: queue or store full, store unwritable, stopping */
    METRICS_COMPLETED,
    METRICS_FAILED,
    METRICS_CANCELED,
    METRICS_REJECTED,    /* the agent's validate refused it */
    METRICS_INTERRUPTED, /* failed by a shutdown or restart ("interrupted: ...") */
    METRICS_OUTCOMES
};

/* Size the per-agent counters for the agents loaded now. Thread: main,
 * after plugins_load, before workers and HTTP start. */
void metrics_init(void);
void metrics_shutdown(void);

/* One job of agent with this outcome. Thread: any. */
void metrics_job(const struct agent *agent, enum metrics_outcome outcome);
/* A job acknowledged: counts it and its ack latency (since the HTTP request
 * that carries it arrived on this thread, see metrics_http_begin). */
void metrics_job_accepted(const struct agent *agent);
/* Jobs of agent waiting in the queue / running now change by delta. */
void metrics_queued(const struct agent *agent, int delta);
void metrics_running(const struct agent *agent, int delta);

/* A task reached its terminal state (task_finish, after the task lock is
 * released): counts the outcome, observes the job duration, and writes the
 * job-end log line. run_us: from start to end (0 if never started);
 * queued_us: from creation to start (or to end). attempt: 1, 2, ... */
struct metrics_end {
    const char *task_id;
    int state;          /* enum task_state */
    const char *reason; /* the final text of a failed, canceled or rejected task, or NULL */
    uint64_t run_us, queued_us;
    unsigned attempt;
};
void metrics_task_ended(const struct agent *agent, const struct metrics_end *end);

/* HTTP: the request this thread handles now (method, when it arrived, from
 * util_now_us), then its response status. Thread: an HTTP thread. */
void metrics_http_begin(const char *method, uint64_t arrived_us);
void metrics_http_response(unsigned status);

/* A store transaction ended (ok or not) after us microseconds. */
void metrics_store_commit(bool ok, uint64_t us);
/* Monotonic ms of the last failed / last good commit (0 = none). */
void metrics_store_last(uint64_t *failed_ms, uint64_t *ok_ms);

/* The oldest webhook delivery waiting, wall-clock ms of its event (0 = none),
 * as the delivery thread last saw it. */
void metrics_webhook_oldest(uint64_t created_wall_ms);

/* Several nodes on one PostgreSQL (cluster.c). How a control this node sent
 * ended: the holder's outcome (done, refused, failed), or no answer within
 * cluster_timeout_ms (timeout), the database or a dead holder (error), no
 * such task (not_found), the task held here meanwhile (local). */
enum metrics_control {
    METRICS_CTL_DONE,
    METRICS_CTL_REFUSED,
    METRICS_CTL_FAILED,
    METRICS_CTL_TIMEOUT,
    METRICS_CTL_ERROR,
    METRICS_CTL_NOT_FOUND,
    METRICS_CTL_LOCAL,
    METRICS_CTL_OUTCOMES
};
/* A control of kind ("cancel", "push-set", ...) sent by this node ended;
 * us: from the call to its outcome (observed when the holder answered). */
void metrics_cluster_control(const char *kind, enum metrics_control outcome, uint64_t us);
/* This node ran a control of kind for another node. */
void metrics_cluster_served(const char *kind);

/* Microseconds on the monotonic clock. */
uint64_t metrics_now_us(void);

/* The page, text exposition format 0.0.4 (malloc'd; NULL when out of
 * memory). Thread: any. */
char *metrics_render(void);

#endif
