/* greeter - an agent built outside the a2ad tree, against the installed
 * plugin SDK (pkg-config a2ad-plugin). It greets whoever the query names,
 * with one progress update on the way, and refuses an empty name.
 *
 * Options ([agent.greeter] in a2ad.conf): greeting = Hello
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <a2ad/agent.h>

struct greeter {
    char greeting[64];
};

static a2ad_status greeter_init(const struct a2ad_host *host, a2ad_ctx log_ctx,
                                const struct a2ad_option *opts, size_t n_opts, void **state) {
    (void)host;
    struct greeter *g = calloc(1, sizeof *g);
    if (!g) return A2AD_ERR_NOMEM;
    snprintf(g->greeting, sizeof g->greeting, "Hello");
    for (size_t i = 0; i < n_opts; i++) {
        if (strcmp(opts[i].key, "greeting") == 0 && strlen(opts[i].value) < sizeof g->greeting) {
            snprintf(g->greeting, sizeof g->greeting, "%s", opts[i].value);
        } else {
            a2ad_log(log_ctx, A2AD_LOG_ERROR, "unknown or too long option \"%s\" (known: greeting)",
                     opts[i].key);
            free(g);
            return A2AD_ERR_CONFIG;
        }
    }
    *state = g;
    return A2AD_OK;
}

static void greeter_destroy(void *state) { free(state); }

static a2ad_status greeter_run(void *state, const char *query, a2ad_ctx ctx) {
    const struct greeter *g = state;
    if (!query[0]) return a2ad_fail(ctx, "nobody to greet: send a name");
    a2ad_update_progress(ctx, "looking up the name", 0.5, A2AD_INFO);
    if (a2ad_cancelled(ctx)) return A2AD_ERR_ENDED; /* the task already ended as canceled */
    char text[256];
    snprintf(text, sizeof text, "%s, %s!", g->greeting, query);
    return a2ad_result(ctx, text);
}

static const struct a2ad_agent greeter_agent = {
    A2AD_AGENT_HEADER,
    .name = "greeter",
    .description = "Greets the name it is sent (an out-of-tree example)",
    .version = "1.0.0",
    .init = greeter_init,
    .destroy = greeter_destroy,
    .run_background = greeter_run,
};

A2AD_AGENT_ENTRY(greeter_agent)
