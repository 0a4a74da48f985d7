/* no_run - a descriptor without run_background, the one required callback.
 * The loader must refuse it before init, so init must never run. */
#include <a2ad/agent.h>

static a2ad_status no_run_init(const struct a2ad_host *host, a2ad_ctx log_ctx,
                               const struct a2ad_option *opts, size_t n_opts, void **state) {
    (void)host;
    (void)opts;
    (void)n_opts;
    (void)state;
    a2ad_log(log_ctx, A2AD_LOG_ERROR, "no_run: init must not be called");
    return A2AD_ERR_STATE;
}

static const struct a2ad_agent no_run_agent = {
    A2AD_AGENT_HEADER,
    .name = "no_run",
    .version = "1.0.0",
    .init = no_run_init,
};

A2AD_AGENT_ENTRY(no_run_agent)
