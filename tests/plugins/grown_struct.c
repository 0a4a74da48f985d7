/* grown_struct - a plugin built against a NEWER header whose descriptor has
 * members this a2ad does not know (struct_size larger than the host's).
 * The loader must accept it and ignore the extra members; its known
 * max_duration_s (42) and estimated_duration_s (7) must be honoured. */
#include <a2ad/agent.h>

static a2ad_status grown_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    return a2ad_result(ctx, query);
}

/* What a future header might look like: today's members, then more. */
struct future_agent {
    struct a2ad_agent today;
    void (*future_callback)(void);
    uint64_t future_flags[4];
};

static const struct future_agent grown_agent = {
    .today =
        {
            .abi_major = A2AD_ABI_MAJOR,
            .struct_size = sizeof(struct future_agent),
            .name = "grown",
            .version = "2.0.0",
            .run_background = grown_run,
            .max_duration_s = 42,
            .estimated_duration_s = 7,
        },
    .future_flags = {1, 2, 3, 4},
};

/* The entry hands out a pointer to the descriptor's first member, exactly
 * what a newer A2AD_AGENT_ENTRY would do. */
A2AD_AGENT_ENTRY(grown_agent.today)
