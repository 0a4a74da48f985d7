/* chunker - streams artifacts in chunks (a2ad_add_artifact_chunk), for the
 * chunks suite.
 *
 * Queries: "text N" - "story.txt" (text/plain) in N chunks "part1;" ..
 * "partN;"; "bytes" - "blob.bin" (application/octet-stream) in 2 chunks of
 * bytes 0..255 (the first ends in the middle of nothing UTF-8 can read);
 * "misuse" - the refusals: append with none open, append after the last
 * chunk, a chunk past [workers] max_artifact_bytes (the test sets 64); the
 * result names the statuses. Anything else: one chunk, first and last.
 */
#include <a2ad/agent.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static a2ad_status chunker_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    if (strncmp(query, "text ", 5) == 0) {
        int n = atoi(query + 5);
        for (int i = 1; i <= n; i++) {
            char part[32];
            snprintf(part, sizeof part, "part%d;", i);
            a2ad_status st =
                a2ad_add_artifact_chunk(ctx, "story.txt", "text/plain", part, strlen(part), i > 1, i == n);
            if (st != A2AD_OK) return a2ad_fail(ctx, a2ad_status_name(st));
        }
        return a2ad_result(ctx, "told");
    }
    if (strcmp(query, "bytes") == 0) {
        unsigned char b[256];
        for (int i = 0; i < 256; i++) b[i] = (unsigned char)i;
        a2ad_status st = a2ad_add_artifact_chunk(ctx, "blob.bin", "application/octet-stream", b,
                                                 100, 0, 0);
        if (st == A2AD_OK)
            st = a2ad_add_artifact_chunk(ctx, "blob.bin", NULL, b + 100, 156, 1, 1);
        return st == A2AD_OK ? a2ad_result(ctx, "sent") : a2ad_fail(ctx, a2ad_status_name(st));
    }
    if (strncmp(query, "fill ", 5) == 0) {
        char *end;
        long n = strtol(query + 5, &end, 10), k = strtol(end, NULL, 10);
        if (n < 1 || k < 1 || k > (1L << 20)) return a2ad_fail(ctx, "fill N K: N >= 1, 1 <= K <= 1M");
        char *buf = malloc((size_t)k);
        if (!buf) return a2ad_fail(ctx, "out of memory");
        memset(buf, 'x', (size_t)k);
        a2ad_status st = A2AD_OK;
        for (long i = 0; i < n && st == A2AD_OK; i++)
            st = a2ad_add_artifact_chunk(ctx, "fill.txt", "text/plain", buf, (size_t)k, i > 0, i == n - 1);
        free(buf);
        return st == A2AD_OK ? a2ad_result(ctx, "filled") : a2ad_fail(ctx, a2ad_status_name(st));
    }
    if (strcmp(query, "misuse") == 0) {
        char out[200];
        a2ad_status none = a2ad_add_artifact_chunk(ctx, "x", "text/plain", "a", 1, 1, 0);
        a2ad_status first = a2ad_add_artifact_chunk(ctx, "x", "text/plain", "a", 1, 0, 1);
        a2ad_status late = a2ad_add_artifact_chunk(ctx, "x", "text/plain", "b", 1, 1, 0);
        char big[80];
        memset(big, 'z', sizeof big);
        a2ad_status start = a2ad_add_artifact_chunk(ctx, "big", "text/plain", big, 40, 0, 0);
        a2ad_status over = a2ad_add_artifact_chunk(ctx, "big", "text/plain", big, 40, 1, 1);
        snprintf(out, sizeof out, "none=%s first=%s late=%s start=%s over=%s", a2ad_status_name(none),
                 a2ad_status_name(first), a2ad_status_name(late), a2ad_status_name(start),
                 a2ad_status_name(over));
        return a2ad_result(ctx, out);
    }
    a2ad_status st = a2ad_add_artifact_chunk(ctx, "one.txt", "text/plain", query, strlen(query), 0, 1);
    return st == A2AD_OK ? a2ad_result(ctx, "one") : a2ad_fail(ctx, a2ad_status_name(st));
}

static const struct a2ad_agent chunker_agent = {
    A2AD_AGENT_HEADER,
    .name = "chunker",
    .version = "1.0.0",
    .description = "Streams artifacts in chunks",
    .run_background = chunker_run,
};

A2AD_AGENT_ENTRY(chunker_agent)
