/* fragile - segfaults at once on the query "segv", sleeps 0.5 s on "wait",
 * answers "fine". Not
 * rerun_safe: after a crash its job must end failed at the next start, never
 * run into the same crash again. */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "a2ad/agent.h"

static a2ad_status run_background(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    if (strcmp(query, "wait") == 0) { /* keeps the one worker busy */
        struct timespec ts = {0, 500 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (strcmp(query, "segv") == 0) {
        volatile uintptr_t bad = 16; /* not NULL: UBSan would exit instead */
        *(volatile int *)bad = 1;
    }
    return a2ad_result(ctx, "fine");
}

static const struct a2ad_agent agent = {
    A2AD_AGENT_HEADER,
    .name = "fragile",
    .version = "1.0.0",
    .run_background = run_background,
};

A2AD_AGENT_ENTRY(agent)
