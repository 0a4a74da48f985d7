/* runner - how one job's agent code runs, below the worker pool.
 *
 * workers.c decides WHEN a job runs (queues, pools, limits, the watchdog,
 * cancellation); this module decides WHERE:
 *   - thread (the default): run_background/run_job on the worker thread,
 *     fastest; a crash takes the daemon down, but the log line names the
 *     job and agent, and the job is never run into the same crash for ever
 *     (the store's attempt cap, the crash-loop check).
 *   - process: a supervised child, a2ad-agent-host, loads the same .so and
 *     speaks docs/agent-protocol.md with the daemon over a socketpair. A
 *     crash, exit or limit breach fails only that job; the next job gets a
 *     fresh child. Limits per job: memory_max, cpu_max_s, open_files_max.
 *   - exec: [agent.NAME] exec = a program that speaks the same protocol on
 *     stdin/stdout (Python: python/a2ad_agent.py), same limits and
 *     containment.
 * Either way the worker thread blocks for the job's duration, so pool
 * sizes and limits above keep their meaning.
 */
#ifndef A2AD_RUNNER_H
#define A2AD_RUNNER_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "a2ad/agent.h"
#include "config.h"

struct agent;
struct task;

/* Called from plugins_load after the .so agents are in: take the runner
 * settings of cfg, and register every [agent.NAME] with exec = ... through
 * add (plugins.c's registry insert). Thread: main. */
a2ad_status runner_load(const struct config *cfg,
                        a2ad_status (*add)(struct agent *a, char *err, size_t errlen));

/* Run the job of task (already in state working) for agent, and return
 * what run_background would (A2AD_OK after ctx's set_result, else a failure
 * status after set_failure). Thread: a worker. */
a2ad_status runner_run(const struct agent *agent, struct task *task, a2ad_ctx ctx);

/* Whether agent's running jobs take conversation messages (on_message in
 * thread mode; always for children, which decide themselves). */
bool runner_takes_messages(const struct agent *agent);

/* Hand a conversation message to the running job behind ctx: on_message in
 * thread mode, a `message` line to the child otherwise (never blocks).
 * Thread: an HTTP thread. */
void runner_message(const struct agent *agent, a2ad_ctx ctx, const char *text,
                    const cJSON *message);

/* Log a line naming the job and agent when the daemon dies of a fatal
 * signal inside agent code. Thread: main, at start. */
void runner_install_crash_handler(void);

/* Disable an agent for this run of the daemon (a crash loop): its jobs
 * fail at once with why. runner_disabled gives the reason or NULL.
 * Thread: main (disable), any (query). */
void runner_disable(const char *agent, const char *why);
const char *runner_disabled(const char *agent);

/* Where the fatal-signal handler appends the crashing agent's name
 * (crashloop.c reads it at the next start). Thread: main, at start. */
void runner_set_crash_file(const char *path);

/* [workers] max_attempts / crash_loop_* for the store's recovery. */
unsigned runner_max_attempts(void);
void runner_crash_loop(unsigned *max, unsigned *window_s);

/* Forget the settings (after the workers stopped). Thread: main. */
void runner_unload(void);

/* ---- between runner.c and runner_process.c ---- */

/* One agent's runner settings. */
struct runner_agent {
    char *name;
    bool process;         /* isolation = process (a .so in a2ad-agent-host) */
    char *exec;           /* exec agents: the command line */
    char *description, *version;
    int rerun_safe;
    size_t memory_max;
    unsigned cpu_max_s, open_files_max, cancel_grace_ms;
    const struct a2ad_option *opts; /* handed to init / the job's options */
    size_t n_opts;
};

/* The job's fields (struct a2ad_job) as the runner gives them. */
struct runner_job {
    struct a2ad_job job;
    char *message_json, *metadata_json; /* owned */
};

const char *runner_host_path(void);
size_t runner_line_max(void);
/* *rejected: set (malloc'd) when the agent refused the job (a `rejected`
 * line); the caller ends the task rejected. */
a2ad_status runner_process_run(const struct runner_agent *ra, const struct agent *agent,
                               const struct runner_job *job, unsigned max_duration_s,
                               a2ad_ctx ctx, char **rejected);
void runner_process_message(a2ad_ctx ctx, const char *text, const cJSON *message);

#endif
