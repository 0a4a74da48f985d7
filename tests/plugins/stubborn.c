/* stubborn - an agent that ignores cancellation: it sleeps sleep_ms in one
 * go and then succeeds. It is what the host's maximum duration, cancel and
 * shutdown paths must cope with (a plugin that does not cooperate).
 *
 * Options: sleep_ms = 3000
 */
/* nanosleep is POSIX, not ISO C: ask for it, so the file also builds with a
 * plain `cc -std=c11`. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <a2ad/agent.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct stubborn {
    unsigned long sleep_ms;
};

static a2ad_status stubborn_init(const struct a2ad_host *host, a2ad_ctx log_ctx,
                                 const struct a2ad_option *opts, size_t n_opts, void **state) {
    (void)host;
    unsigned long sleep_ms = 3000;
    for (size_t i = 0; i < n_opts; i++) {
        if (strcmp(opts[i].key, "sleep_ms") != 0) {
            a2ad_log(log_ctx, A2AD_LOG_ERROR, "unknown option \"%s\" (known: sleep_ms)",
                     opts[i].key);
            return A2AD_ERR_CONFIG;
        }
        const char *v = opts[i].value ? opts[i].value : "";
        char *end = NULL;
        errno = 0;
        sleep_ms = strtoul(v, &end, 10);
        if (*v < '0' || *v > '9' || errno || *end) {
            a2ad_log(log_ctx, A2AD_LOG_ERROR, "sleep_ms = \"%s\" is not a number", v);
            return A2AD_ERR_CONFIG;
        }
    }
    struct stubborn *s = malloc(sizeof *s);
    if (!s) return A2AD_ERR_NOMEM;
    s->sleep_ms = sleep_ms;
    *state = s;
    return A2AD_OK;
}

static void stubborn_destroy(void *state) { free(state); }

static a2ad_status stubborn_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)query;
    const struct stubborn *s = state;
    /* One sleep, never looking at a2ad_cancelled: that is the point. */
    struct timespec ts = {.tv_sec = (time_t)(s->sleep_ms / 1000),
                          .tv_nsec = (long)(s->sleep_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return a2ad_result(ctx, "done anyway");
}

static const struct a2ad_agent stubborn_agent = {
    A2AD_AGENT_HEADER,
    .name = "stubborn",
    .description = "Ignores cancellation (test plugin)",
    .version = "1.0.0",
    .init = stubborn_init,
    .destroy = stubborn_destroy,
    .run_background = stubborn_run,
};

A2AD_AGENT_ENTRY(stubborn_agent)
