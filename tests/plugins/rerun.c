/* rerun - an agent that declares rerun_safe: a job interrupted by a crash
 * is run again at the next start. It reports "started", then works for
 * about two seconds in short naps (watching for cancellation), then
 * returns "done: QUERY". */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <a2ad/agent.h>

#include <time.h>

static a2ad_status rerun_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    a2ad_update_progress(ctx, "started", 0.0, A2AD_INFO);
    for (int i = 0; i < 40 && !a2ad_cancelled(ctx); i++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    char text[256] = "done: ";
    size_t n = 6;
    for (const char *q = query; *q && n < sizeof text - 1; q++) text[n++] = *q;
    text[n] = '\0';
    return a2ad_result(ctx, text);
}

static const struct a2ad_agent rerun_agent = {
    A2AD_AGENT_HEADER,
    .name = "rerun",
    .description = "Safe to run again after a crash",
    .version = "1.0.0",
    .run_background = rerun_run,
    .rerun_safe = 1,
};

A2AD_AGENT_ENTRY(rerun_agent)
