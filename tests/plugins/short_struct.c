/* short_struct - a descriptor claiming to be 8 bytes long: only the header,
 * no name, no run_background. The loader must refuse it without reading
 * anything past those 8 bytes. */
#include <a2ad/agent.h>

static a2ad_status short_struct_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    return a2ad_result(ctx, query);
}

static const struct a2ad_agent short_struct_agent = {
    .abi_major = A2AD_ABI_MAJOR,
    .struct_size = 8,
    /* Present in memory but outside struct_size: must be ignored. */
    .name = "short_struct",
    .run_background = short_struct_run,
};

A2AD_AGENT_ENTRY(short_struct_agent)
