/* processor - the seed's background agent, in C.
 *
 *     for i in range(10):
 *         await some_work()
 *         await context.update_progress(message=f"Step {i + 1}/10",
 *                                       progress=(i + 1) / 10)
 *     return "Processing complete!"
 *
 * A job is ten steps of simulated work, one progress update per step, one
 * results.json artifact, then the result: 10 updates + 1 artifact + final.
 *
 * Options ([agent.processor] in the config):
 *   step_ms = 200    how long one step "works", in milliseconds (0 = no wait)
 */
/* nanosleep is POSIX, not ISO C: ask for it, so the file also builds with a
 * plain `cc -std=c11`. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <a2ad/agent.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STEPS 10
#define DEFAULT_STEP_MS 200u
#define MAX_STEP_MS 3600000u /* an hour per step is already absurd */
/* Sleep in slices this long so a cancel is noticed within one slice, not
 * after a whole step. */
#define SLICE_MS 20u

struct processor {
    unsigned step_ms;
};

/* Strict unsigned parse: "12" yes; "", "-1", "12ms", "1e3" no. A typo in
 * an option must stop start-up, not become 0. */
static int parse_unsigned(const char *text, unsigned max, unsigned *out) {
    if (!text || *text < '0' || *text > '9') return -1;
    errno = 0;
    char *end;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || *end || v > max) return -1;
    *out = (unsigned)v;
    return 0;
}

static a2ad_status processor_init(const struct a2ad_host *host, a2ad_ctx log_ctx,
                                  const struct a2ad_option *opts, size_t n_opts, void **state) {
    (void)host;
    struct processor cfg = {.step_ms = DEFAULT_STEP_MS};
    for (size_t i = 0; i < n_opts; i++) {
        if (strcmp(opts[i].key, "step_ms") == 0) {
            if (parse_unsigned(opts[i].value, MAX_STEP_MS, &cfg.step_ms) != 0) {
                a2ad_log(log_ctx, A2AD_LOG_ERROR,
                         "step_ms = \"%s\" is not a number of milliseconds (0..%u)",
                         opts[i].value ? opts[i].value : "", MAX_STEP_MS);
                return A2AD_ERR_CONFIG;
            }
        } else {
            a2ad_log(log_ctx, A2AD_LOG_ERROR, "unknown option \"%s\" (known: step_ms)",
                     opts[i].key);
            return A2AD_ERR_CONFIG;
        }
    }
    /* Jobs run on several workers at once and only read this, so one
     * immutable copy per loaded agent needs no lock. */
    struct processor *p = malloc(sizeof *p);
    if (!p) return A2AD_ERR_NOMEM;
    *p = cfg;
    *state = p;
    return A2AD_OK;
}

static void processor_destroy(void *state) { free(state); }

/* validate runs on an HTTP thread: decide from the text alone, quickly. */
static a2ad_status processor_validate(void *state, const char *query,
                                      struct a2ad_validation *out) {
    const struct processor *p = state;
    const char *c = query;
    while (*c == ' ' || *c == '\t' || *c == '\n' || *c == '\r' || *c == '\v' || *c == '\f') c++;
    if (*c == '\0') {
        snprintf(out->reason, sizeof out->reason, "the query is empty");
        return A2AD_ERR_REJECTED;
    }
    /* Round up: a client told "0 s" for a 1.5 s job would poll too early. */
    out->estimated_duration_s = (uint32_t)(((unsigned long long)STEPS * p->step_ms + 999) / 1000);
    return A2AD_OK;
}

/* The seed's some_work(): wait step_ms, but look at the cancel flag every
 * slice so a cancelled job gives its worker back promptly. */
static void some_work(a2ad_ctx ctx, unsigned step_ms) {
    while (step_ms > 0 && !a2ad_cancelled(ctx)) {
        unsigned ms = step_ms < SLICE_MS ? step_ms : SLICE_MS;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        step_ms -= ms;
    }
}

/* JSON string body for text: the artifact must stay valid JSON whatever
 * the user typed. Bytes >= 0x80 pass through (the query is UTF-8). */
static char *json_escape(const char *text) {
    size_t len = strlen(text);
    char *out = malloc(len * 6 + 1); /* worst case: every byte becomes \u00XX */
    if (!out) return NULL;
    char *o = out;
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        switch (*c) {
        case '"': *o++ = '\\'; *o++ = '"'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        case '\b': *o++ = '\\'; *o++ = 'b'; break;
        case '\f': *o++ = '\\'; *o++ = 'f'; break;
        default:
            if (*c < 0x20)
                o += sprintf(o, "\\u%04x", *c);
            else
                *o++ = (char)*c;
        }
    }
    *o = '\0';
    return out;
}

static a2ad_status processor_run(void *state, const char *query, a2ad_ctx ctx) {
    const struct processor *p = state;

    for (int i = 1; i <= STEPS; i++) {
        some_work(ctx, p->step_ms);
        if (a2ad_cancelled(ctx)) return a2ad_fail(ctx, "cancelled");
        char message[32];
        snprintf(message, sizeof message, "Step %d/%d", i, STEPS);
        a2ad_update_progress(ctx, message, (double)i / STEPS, A2AD_INFO);
    }

    /* The seed's json.dumps(result_data).encode(), by hand: plugins stay
     * free of dependencies, so they load wherever a2ad runs. */
    char *escaped = json_escape(query);
    size_t size = escaped ? strlen(escaped) + 32 : 0; /* + the fixed JSON around it */
    char *json = escaped ? malloc(size) : NULL;
    if (!json) {
        free(escaped);
        return a2ad_fail(ctx, "out of memory");
    }
    snprintf(json, size, "{\"query\":\"%s\",\"steps\":%d}", escaped, STEPS);
    free(escaped);
    /* The host copies the bytes before returning, so json is ours to free. */
    a2ad_status s = a2ad_add_artifact(ctx, "results.json", "application/json", json, strlen(json));
    free(json);
    if (s != A2AD_OK) return s; /* e.g. the job ended meanwhile: its status says why */

    return a2ad_result(ctx, "Processing complete!");
}

static const char *const processor_tags[] = {"example", "background", "progress", NULL};
static const char *const processor_examples[] = {"process my data", NULL};

static const struct a2ad_skill processor_skills[] = {
    {
        .id = "process",
        .name = "Process data",
        .description = "Works through ten steps in the background, reporting progress after "
                       "each, and returns a results.json artifact",
        .tags = processor_tags,
        .examples = processor_examples,
    },
};

static const struct a2ad_agent processor_agent = {
    A2AD_AGENT_HEADER,
    .name = "processor",
    .description = "Processes data in the background",
    .version = "1.0.0",
    .skills = processor_skills,
    .n_skills = sizeof processor_skills / sizeof processor_skills[0],
    .init = processor_init,
    .destroy = processor_destroy,
    .validate = processor_validate,
    .run_background = processor_run,
};

A2AD_AGENT_ENTRY(processor_agent)
