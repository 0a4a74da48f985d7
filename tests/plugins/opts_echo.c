/* opts_echo - agent "opts": its init keeps a copy of the options it was
 * given, and every job answers them as "k1=v1,k2=v2" (file order), to prove
 * that [agent.opts] keys reach init end to end. */
#include <a2ad/agent.h>

#include <stdlib.h>
#include <string.h>

/* The options are borrowed for the duration of init only, so init builds
 * the answer once and keeps that. */
static a2ad_status opts_init(const struct a2ad_host *host, a2ad_ctx log_ctx,
                             const struct a2ad_option *opts, size_t n_opts, void **state) {
    (void)host;
    (void)log_ctx;
    size_t len = 1;
    for (size_t i = 0; i < n_opts; i++) len += strlen(opts[i].key) + strlen(opts[i].value) + 2;
    char *text = malloc(len);
    if (!text) return A2AD_ERR_NOMEM;
    text[0] = '\0';
    for (size_t i = 0; i < n_opts; i++) {
        if (i) strcat(text, ",");
        strcat(text, opts[i].key);
        strcat(text, "=");
        strcat(text, opts[i].value);
    }
    *state = text;
    return A2AD_OK;
}

static void opts_destroy(void *state) { free(state); }

static a2ad_status opts_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)query;
    return a2ad_result(ctx, state);
}

static const struct a2ad_agent opts_agent = {
    A2AD_AGENT_HEADER,
    .name = "opts",
    .description = "Answers the options its init was given (test plugin)",
    .version = "1.0.0",
    .init = opts_init,
    .destroy = opts_destroy,
    .run_background = opts_run,
};

A2AD_AGENT_ENTRY(opts_agent)
