/* failing_init - a valid descriptor whose init refuses to start, the way a
 * plugin refuses a bad option: it logs why, then returns A2AD_ERR_CONFIG. */
#include <a2ad/agent.h>

static a2ad_status failing_init_init(const struct a2ad_host *host, a2ad_ctx log_ctx,
                                     const struct a2ad_option *opts, size_t n_opts,
                                     void **state) {
    (void)host;
    (void)opts;
    (void)n_opts;
    (void)state;
    a2ad_log(log_ctx, A2AD_LOG_ERROR, "failing_init: refusing to start (on purpose, for tests)");
    return A2AD_ERR_CONFIG;
}

static a2ad_status failing_init_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    return a2ad_result(ctx, query);
}

static const struct a2ad_agent failing_init_agent = {
    A2AD_AGENT_HEADER,
    .name = "failing_init",
    .version = "1.0.0",
    .init = failing_init_init,
    .run_background = failing_init_run,
};

A2AD_AGENT_ENTRY(failing_init_agent)
