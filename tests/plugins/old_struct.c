/* old_struct - a plugin built against an OLDER header that ended at
 * run_background (no max_duration_s yet): struct_size is the minimum. The
 * loader must accept it and treat the missing member as absent, even though
 * the bytes after struct_size happen to hold 999 here. */
#include <a2ad/agent.h>

static a2ad_status old_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    return a2ad_result(ctx, query);
}

static a2ad_status never_run_job(void *state, const struct a2ad_job *job, a2ad_ctx ctx) {
    (void)state;
    (void)job;
    return a2ad_fail(ctx, "run_job of an old plugin was called");
}

static const struct a2ad_agent old_agent = {
    .abi_major = A2AD_ABI_MAJOR,
    .struct_size = offsetof(struct a2ad_agent, run_background) +
                   sizeof(((struct a2ad_agent *)0)->run_background),
    .name = "old",
    .version = "0.9.0",
    .run_background = old_run,
    .max_duration_s = 999, /* outside struct_size: must not be read */
    .estimated_duration_s = 999, /* likewise */
    .run_job = never_run_job,    /* likewise: run_background must be called */
};

A2AD_AGENT_ENTRY(old_agent)
