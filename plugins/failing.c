/* failing - an agent whose every job fails, to see what failure looks like.
 *
 * It follows the seed's importance example: a critical update first
 * (UpdateImportance.ERROR, at 50%), then the job fails with a reason. A
 * client watching the webhook sees both: the ERROR-level progress event and
 * the final failed state carrying the reason.
 */
#include <a2ad/agent.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static a2ad_status failing_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    a2ad_update_progress(ctx, "Something went wrong", 0.5, A2AD_ERROR);

    if (!query[0]) return a2ad_fail(ctx, "simulated failure");
    /* Quoting the query makes the failure traceable to the request that
     * caused it. The host copies the reason, so a heap copy is fine. */
    size_t size = sizeof "simulated failure: " + strlen(query);
    char *reason = malloc(size);
    if (!reason) return a2ad_fail(ctx, "simulated failure");
    snprintf(reason, size, "simulated failure: %s", query);
    a2ad_status s = a2ad_fail(ctx, reason);
    free(reason);
    return s;
}

static const char *const failing_tags[] = {"example", "failure", "test", NULL};
static const char *const failing_examples[] = {"anything", NULL};

static const struct a2ad_skill failing_skills[] = {
    {
        .id = "fail",
        .name = "Fail",
        .description = "Reports an error-level update, then fails the job on purpose",
        .tags = failing_tags,
        .examples = failing_examples,
    },
};

static const struct a2ad_agent failing_agent = {
    A2AD_AGENT_HEADER,
    .name = "failing",
    .description = "Fails every job with a simulated failure, to show how failures look",
    .version = "1.0.0",
    .skills = failing_skills,
    .n_skills = sizeof failing_skills / sizeof failing_skills[0],
    .run_background = failing_run,
};

A2AD_AGENT_ENTRY(failing_agent)
