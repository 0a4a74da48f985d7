/* vers - one agent ("vers") in two builds told apart by -DVERS=1 or 2
 * (vers_v1.so, vers_v2.so; plain vers.so is version 1), for the live
 * plugin directory tests: every result names the build and the tag option,
 * so a test sees which version ran a job and with which options.
 *
 * Queries: "wait PATH" - report progress, then return once PATH exists (or
 * the job is cancelled); "sleep MS" - sleep MS milliseconds; anything else
 * returns at once. Result: "v<VERS> tag=<tag>: <query>".
 * Options: tag = none
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <a2ad/agent.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef VERS
#define VERS 1
#endif
#define STR2(x) #x
#define STR(x) STR2(x)

static a2ad_status vers_init(const struct a2ad_host *host, a2ad_ctx log_ctx,
                             const struct a2ad_option *opts, size_t n_opts, void **state) {
    (void)host;
    const char *tag = "none";
    for (size_t i = 0; i < n_opts; i++) {
        if (strcmp(opts[i].key, "tag") != 0) {
            a2ad_log(log_ctx, A2AD_LOG_ERROR, "unknown option \"%s\" (known: tag)", opts[i].key);
            return A2AD_ERR_CONFIG;
        }
        tag = opts[i].value;
    }
    char *copy = malloc(strlen(tag) + 1);
    if (!copy) return A2AD_ERR_NOMEM;
    strcpy(copy, tag);
    *state = copy;
    a2ad_log(log_ctx, A2AD_LOG_INFO, "vers " STR(VERS) " initialised, tag %s", copy);
    return A2AD_OK;
}

static void vers_destroy(void *state) { free(state); }

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static a2ad_status vers_run(void *state, const char *query, a2ad_ctx ctx) {
    const char *tag = state;
    if (strncmp(query, "wait ", 5) == 0) {
        a2ad_update_progress(ctx, "waiting", 0.5, A2AD_INFO);
        while (access(query + 5, F_OK) != 0 && !a2ad_cancelled(ctx)) nap_ms(5);
    } else if (strncmp(query, "sleep ", 6) == 0) {
        nap_ms(atol(query + 6));
    }
    char text[512];
    snprintf(text, sizeof text, "v" STR(VERS) " tag=%s: %.400s", tag, query);
    return a2ad_result(ctx, text);
}

static const struct a2ad_agent vers_agent = {
    A2AD_AGENT_HEADER,
    .name = "vers",
    .version = STR(VERS),
    .description = "Names its build in every result (live plugin tests).",
    .init = vers_init,
    .destroy = vers_destroy,
    .run_background = vers_run,
};

A2AD_AGENT_ENTRY(vers_agent)
