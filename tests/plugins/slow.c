/* slow - an agent whose jobs run until they are cancelled (or the daemon
 * stops): the flooded, slow neighbour in the per-agent capacity tests. It
 * cooperates: it checks a2ad_cancelled every few milliseconds.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <a2ad/agent.h>

#include <time.h>

static a2ad_status slow_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    (void)query;
    a2ad_update_progress(ctx, "busy", 0.0, A2AD_INFO);
    while (!a2ad_cancelled(ctx)) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return a2ad_fail(ctx, "cancelled");
}

static const struct a2ad_agent slow_agent = {
    A2AD_AGENT_HEADER,
    .name = "slow",
    .version = "1.0.0",
    .description = "Runs until cancelled (capacity tests).",
    .run_background = slow_run,
};

A2AD_AGENT_ENTRY(slow_agent)
