/* dup_echo - a valid agent that is also named "echo". Loaded next to
 * plugins/echo.so, one of the two must be refused, naming the other file. */
#include <a2ad/agent.h>

static a2ad_status dup_echo_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    return a2ad_result(ctx, query);
}

static const struct a2ad_agent dup_echo_agent = {
    A2AD_AGENT_HEADER,
    .name = "echo",
    .description = "A second agent named echo (test plugin)",
    .version = "0.0.1",
    .run_background = dup_echo_run,
};

A2AD_AGENT_ENTRY(dup_echo_agent)
