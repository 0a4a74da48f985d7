/* workers - the worker pool that runs agents' run_background, and the
 * host function table plugins call (struct a2ad_host).
 *
 * One bounded FIFO per agent feeds N threads, round-robin over the agents
 * with a queued job and a free slot of their own ([agent.NAME] workers),
 * under a daemon-wide bound on queued jobs. A job is a task reference and
 * a pin on the agent version it runs on. A watchdog
 * fails jobs that pass their agent's maximum duration. The ctx handed to a
 * plugin is a value handle (slot + generation), so a call through a ctx
 * whose job ended is refused with A2AD_ERR_ENDED, never a crash.
 */
#ifndef A2AD_WORKERS_H
#define A2AD_WORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "a2ad/agent.h"

struct task;
struct agent;

/* The table given to plugins (static, valid for the process lifetime). */
const struct a2ad_host *workers_host(void);

/* The handle of an agent-level ctx (init/destroy logging, no job): the top
 * bit set, the agent's registry index below. Job handles never set it. */
#define WORKERS_AGENT_HANDLE(index) ((UINT64_C(1) << 63) | (uint64_t)(index))

/* Start threads (0 = number of cores) with a queue of queue_length jobs.
 * Thread: main. */
a2ad_status workers_start(unsigned threads, unsigned queue_length);

/* Flow control: while more than high_water webhook deliveries are pending,
 * workers start no new job (running ones go on). The job queue then fills
 * and submissions get "queue full" (503) instead of the backlog growing
 * without bound or events being dropped. 0 = off. Thread: any. */
void workers_set_webhook_high_water(size_t high_water);

/* Queue a job for task (takes its own reference, and pins its agent's
 * version). A2AD_ERR_FULL when the daemon-wide or the agent's queue is
 * full; A2AD_ERR_NOT_FOUND when the agent was removed; A2AD_ERR_STATE once
 * stopping.
 * Thread: any; never blocks. */
a2ad_status workers_submit(struct task *task);

/* Whether workers_submit would take a job now: A2AD_OK, A2AD_ERR_FULL or
 * A2AD_ERR_STATE (stopping). Only a hint (another thread may fill the queue
 * first), so that a refusal can be given before any work. Thread: any. */
a2ad_status workers_has_room(void);

/* The daemon-wide bound on queued jobs, live (SIGHUP); jobs already
 * queued stay. Thread: any. */
void workers_set_queue_length(unsigned queue_length);

/* Whether agent's own queue has room too: A2AD_OK, A2AD_ERR_FULL (the
 * daemon-wide or the agent's queue), A2AD_ERR_NOT_FOUND (the agent was
 * removed), A2AD_ERR_STATE. A hint, like workers_has_room. Thread: any. */
a2ad_status workers_agent_has_room(const char *agent);

/* One agent's jobs queued and running now. Thread: any. */
void workers_agent_load(const char *agent, size_t *queued, size_t *running);

/* Set an agent's concurrency (0 = every thread, but one when several
 * agents are loaded) and queue bound (0 = only the daemon-wide one); also
 * marks it loaded. Live: applies to the next job started. Thread: any. */
void workers_agent_config(const char *agent, unsigned workers, unsigned queue_length);

/* The agent was removed: its queued jobs fail now with a reason naming it
 * and why (running ones finish), and jobs for it are refused until it is
 * configured again. Thread: any. */
void workers_agent_removed(const char *agent, const char *why);

/* With a durable store, queued jobs are not failed at stop: they stay
 * submitted in the database and run at the next start. Thread: main,
 * before workers_stop. */
void workers_keep_queued_at_stop(bool keep);
/* Hand a further message of the conversation (a 0.3 Message, borrowed)
 * to the running job of task, through its agent's on_message; nothing
 * when the job is not running or the agent has no on_message. The job
 * does not return before the call is over. Thread: any (an HTTP thread). */
void workers_deliver_message(struct task *task, const cJSON *message);

/* Jobs queued (not yet running) and running now. Thread: any. */
void workers_load(size_t *queued, size_t *running);

/* Graceful stop: refuse new jobs; fail queued jobs ("interrupted: a2ad shut
 * down before the job started"); give running jobs grace_s to return, then
 * fail them ("interrupted: a2ad shut down") and mark them cancelled; join
 * the threads whose jobs returned. Thread: main. Returns how many workers
 * were still inside a plugin at the end (they are detached, not joined). */
size_t workers_stop(unsigned grace_s);

/* Work sharing between nodes (share.c). `queued`: a job just queued
 * that cannot start at once (no free slot of its agent, or no free thread);
 * `before_start`: a worker is about to start a job: false = do not run it
 * (another node took it; the task is forgotten here); `idle`: an agent's
 * queue went empty when a job ended. Called with no lock held. NULL = off.
 * Thread: main, before jobs run. */
struct workers_share {
    void (*queued)(struct task *task);
    bool (*before_start)(struct task *task);
    void (*idle)(void);
};
void workers_set_share(const struct workers_share *share);

/* An agent with free workers and nothing queued here. */
struct workers_free {
    char agent[64];
    size_t count; /* jobs it could start now */
};
/* Fill out with up to max such agents; returns how many. None while
 * stopping or while webhooks hold jobs back. Thread: any. */
size_t workers_idle(struct workers_free *out, size_t max);

/* Take a queued job out of its queue (another node runs it): true when it
 * was still queued; its queue reference and pin are dropped. Thread: any. */
bool workers_withdraw(struct task *task);

#endif
