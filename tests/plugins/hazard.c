/* hazard - a test agent that misbehaves on request (the query's first word):
 *   segv      writes to address 16         abort   calls abort()
 *   segv-later the same after 300 ms (the client has its ack when the daemon dies)
 *   exit3     calls exit(3)                leak    allocates and touches memory for ever
 *   spin      burns CPU, ignoring cancel   sleep   waits (checking cancel) for up to 60 s
 *   files     opens files until it cannot, reports how many
 *   thread    reports progress from a thread of its own
 *   job       reports the whole job (struct a2ad_job) as a JSON artifact and result
 *   anything else: completes with "ok: <query>"
 * It implements run_job (and run_background for older hosts), and is
 * rerun_safe, so the poison-job test can watch a crash being retried.
 */
#include <fcntl.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "a2ad/agent.h"

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *progress_thread(void *arg) {
    a2ad_ctx *ctx = arg;
    a2ad_update_progress(*ctx, "from the plugin's own thread", 0.5, A2AD_INFO);
    return NULL;
}

/* Escape s as a JSON string into out (bounded). */
static size_t json_str(char *out, size_t cap, const char *s) {
    size_t n = 0;
    if (n + 1 < cap) out[n++] = '"';
    for (; s && *s && n + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    if (n + 1 < cap) out[n++] = '"';
    out[n] = '\0';
    return n;
}

static a2ad_status hazard(const struct a2ad_job *job, const char *query, a2ad_ctx ctx) {
    if (strncmp(query, "segv", 4) == 0) {
        /* "segv-later": after the client got its acknowledgement (thread mode). */
        if (strcmp(query, "segv-later") == 0) nap_ms(300);
        /* Not NULL: UBSan would report a null store and exit instead. */
        volatile uintptr_t bad = 16;
        *(volatile int *)bad = 1;
    }
    if (strncmp(query, "abort", 5) == 0) abort();
    if (strncmp(query, "exit3", 5) == 0) exit(3);
    if (strncmp(query, "leak", 4) == 0) {
        for (;;) {
            char *p = malloc(1 << 20); /* unchecked, like most code: NULL crashes */
            memset(p, 1, 1 << 20);
        }
    }
    if (strncmp(query, "spin", 4) == 0) {
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    if (strncmp(query, "sleep", 5) == 0) {
        for (int i = 0; i < 6000 && !a2ad_cancelled(ctx); i++) nap_ms(10);
        return a2ad_cancelled(ctx) ? a2ad_fail(ctx, "stopped: cancelled")
                                   : a2ad_result(ctx, "slept");
    }
    if (strncmp(query, "files", 5) == 0) {
        int n = 0;
        while (n < 100000 && open("/dev/null", O_RDONLY) >= 0) n++;
        char text[64];
        snprintf(text, sizeof text, "opened %d files", n);
        return a2ad_result(ctx, text);
    }
    if (strncmp(query, "thread", 6) == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, progress_thread, &ctx) != 0) return a2ad_fail(ctx, "thread");
        pthread_join(t, NULL);
        return a2ad_result(ctx, "threaded");
    }
    if (strncmp(query, "job", 3) == 0) {
        if (!job) return a2ad_fail(ctx, "no job fields (run_background)");
        static char buf[65536];
        size_t n = 0;
        n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"taskId\":");
        n += json_str(buf + n, sizeof buf - n, job->task_id);
        n += (size_t)snprintf(buf + n, sizeof buf - n, ",\"contextId\":");
        n += json_str(buf + n, sizeof buf - n, job->context_id);
        n += (size_t)snprintf(buf + n, sizeof buf - n, ",\"agent\":");
        n += json_str(buf + n, sizeof buf - n, job->agent);
        n += (size_t)snprintf(buf + n, sizeof buf - n, ",\"attempt\":%u,\"message\":%s,\"metadata\":%s}",
                              (unsigned)job->attempt, job->message_json, job->metadata_json);
        a2ad_add_artifact(ctx, "job.json", "application/json", buf, n);
        return a2ad_result(ctx, buf);
    }
    char text[256];
    snprintf(text, sizeof text, "ok: %.200s", query);
    return a2ad_result(ctx, text);
}

static a2ad_status run_job(void *state, const struct a2ad_job *job, a2ad_ctx ctx) {
    (void)state;
    return hazard(job, job->query, ctx);
}

static a2ad_status run_background(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    return hazard(NULL, query, ctx);
}

static const struct a2ad_agent agent = {
    A2AD_AGENT_HEADER,
    .name = "hazard",
    .description = "misbehaves on request (tests)",
    .version = "1.0.0",
    .run_background = run_background,
    .run_job = run_job,
    .rerun_safe = 1,
};

A2AD_AGENT_ENTRY(agent)
