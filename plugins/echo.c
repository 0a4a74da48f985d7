/* echo - the smallest useful agent: the answer is the question.
 *
 * It shows the minimum a plugin needs: a descriptor with a name and a
 * run_background, exported with A2AD_AGENT_ENTRY. Everything else is static
 * so two plugins can never clash over a symbol name.
 */
#include <a2ad/agent.h>

/* No init, no state: the job needs nothing but its query. A job that has
 * nothing to report along the way goes straight to its result. */
static a2ad_status echo_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    return a2ad_result(ctx, query);
}

static const char *const echo_tags[] = {"echo", "test", NULL};
static const char *const echo_examples[] = {"hello", NULL};

static const struct a2ad_skill echo_skills[] = {
    {
        .id = "echo",
        .name = "Echo",
        .description = "Returns the text of the message it was sent",
        .tags = echo_tags,
        .examples = echo_examples,
    },
};

static const struct a2ad_agent echo_agent = {
    A2AD_AGENT_HEADER,
    .name = "echo",
    .description = "Answers every message with its own text, at once",
    .version = "1.0.0",
    .skills = echo_skills,
    .n_skills = sizeof echo_skills / sizeof echo_skills[0],
    .run_background = echo_run,
};

A2AD_AGENT_ENTRY(echo_agent)
