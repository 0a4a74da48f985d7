/* bad_name - an agent name with a space and a '!': it would need quoting in
 * URLs and config section names, so the loader must refuse it. */
#include <a2ad/agent.h>

static a2ad_status bad_name_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    return a2ad_result(ctx, query);
}

static const struct a2ad_agent bad_name_agent = {
    A2AD_AGENT_HEADER,
    .name = "bad name!",
    .version = "1.0.0",
    .run_background = bad_name_run,
};

A2AD_AGENT_ENTRY(bad_name_agent)
