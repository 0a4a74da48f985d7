/* bad_abi - a plugin built for a future, incompatible ABI (major 99). The
 * loader must refuse it before calling anything but the entry. */
#include <a2ad/agent.h>

static a2ad_status bad_abi_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    return a2ad_result(ctx, query);
}

static const struct a2ad_agent bad_abi_agent = {
    .abi_major = 99,
    .struct_size = sizeof(struct a2ad_agent),
    .name = "bad_abi",
    .version = "1.0.0",
    .run_background = bad_abi_run,
};

A2AD_AGENT_ENTRY(bad_abi_agent)
