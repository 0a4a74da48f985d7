/* burst - the query is a number N: N progress updates, then a result.
 * For bench/runners.py (jobs/s and progress events/s per isolation mode);
 * bench/burst_agent.py is the same agent in Python. */
#include <stdio.h>
#include <stdlib.h>

#include "a2ad/agent.h"

static a2ad_status run_background(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    long n = strtol(query, NULL, 10);
    for (long i = 0; i < n && !a2ad_cancelled(ctx); i++)
        a2ad_update_progress(ctx, "tick", (double)(i + 1) / (double)n, A2AD_DEBUG);
    return a2ad_result(ctx, "done");
}

static const struct a2ad_agent agent = {
    A2AD_AGENT_HEADER,
    .name = "burst",
    .description = "N progress updates, then done (bench)",
    .version = "1.0.0",
    .run_background = run_background,
};

A2AD_AGENT_ENTRY(agent)
