/* modes - agent "modes": declares input_modes (text, JSON and any image),
 * so a message with another part type is refused with -32005 before a job
 * exists; its jobs answer the query. */
#include <a2ad/agent.h>

static a2ad_status modes_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    return a2ad_result(ctx, query);
}

static const char *const modes_in[] = {"text/plain", "application/json", "image/*", NULL};

static const struct a2ad_agent modes_agent = {
    A2AD_AGENT_HEADER,
    .name = "modes",
    .description = "Takes text, JSON and images only (test plugin)",
    .version = "1.0.0",
    .run_background = modes_run,
    .input_modes = modes_in,
};

A2AD_AGENT_ENTRY(modes_agent)
