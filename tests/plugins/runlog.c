/* runlog - an agent that records every run it starts: one line "QUERY PID"
 * appended to the file of option `file` (O_APPEND: nodes sharing the file
 * do not tear each other's lines), then works for `ms` milliseconds in
 * short naps (watching for cancellation) and returns "ran QUERY". The work
 * sharing tests count the runs of each job, and which daemon ran it.
 *
 * Options ([agent.runlog]): file = PATH (required), ms = 100.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <a2ad/agent.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct runlog {
    char file[512];
    unsigned ms;
};

static a2ad_status runlog_init(const struct a2ad_host *host, a2ad_ctx log_ctx,
                               const struct a2ad_option *opts, size_t n_opts, void **state) {
    (void)host;
    struct runlog *r = calloc(1, sizeof *r);
    if (!r) return A2AD_ERR_NOMEM;
    r->ms = 100;
    for (size_t i = 0; i < n_opts; i++) {
        if (!strcmp(opts[i].key, "file"))
            snprintf(r->file, sizeof r->file, "%s", opts[i].value);
        else if (!strcmp(opts[i].key, "ms"))
            r->ms = (unsigned)strtoul(opts[i].value, NULL, 10);
    }
    if (!r->file[0]) {
        a2ad_log(log_ctx, A2AD_LOG_ERROR, "option file is required");
        free(r);
        return A2AD_ERR_CONFIG;
    }
    *state = r;
    return A2AD_OK;
}

static void runlog_destroy(void *state) { free(state); }

static a2ad_status runlog_run(void *state, const char *query, a2ad_ctx ctx) {
    const struct runlog *r = state;
    char line[300];
    int n = snprintf(line, sizeof line, "%.200s %ld\n", query, (long)getpid());
    int fd = open(r->file, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0 || write(fd, line, (size_t)n) != n) {
        if (fd >= 0) close(fd);
        return a2ad_fail(ctx, "cannot record the run");
    }
    close(fd);
    a2ad_update_progress(ctx, "running", 0.0, A2AD_INFO);
    for (unsigned waited = 0; waited < r->ms && !a2ad_cancelled(ctx); waited += 10) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    snprintf(line, sizeof line, "ran %.200s", query);
    return a2ad_result(ctx, line);
}

static const struct a2ad_agent runlog_agent = {
    A2AD_AGENT_HEADER,
    .name = "runlog",
    .version = "1.0.0",
    .description = "Records every run in a file (work sharing tests).",
    .init = runlog_init,
    .destroy = runlog_destroy,
    .run_background = runlog_run,
};

A2AD_AGENT_ENTRY(runlog_agent)
