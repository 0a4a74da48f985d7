/* ledger - a rerun_safe agent that writes down every run of every job, for
 * the cluster test (tests/test_cluster.c): which job ran where, how often,
 * and whether a second run began only after the first node died.
 *
 * A job appends "start TASK NODE PID ATTEMPT NS" to the ledger file, reports
 * progress, works run_ms, appends "end TASK NODE PID ATTEMPT NS" and returns
 * "done: QUERY". NS is CLOCK_MONOTONIC in nanoseconds (one clock for every
 * process of the machine). Each line is one write(2) to a file opened with
 * O_APPEND, so lines of several nodes writing at once never mix.
 *
 * Options ([agent.ledger]):
 *   file = PATH      the ledger (required)
 *   node = NAME      the name written on each line (default "-")
 *   run_ms = 30      how long a job works, in milliseconds (0..60000)
 *   crash = TEXT     a job whose text is TEXT kills the whole daemon (SIGKILL)
 *                    right after its start line: a node that dies as a job
 *                    starts (default: none)
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <a2ad/agent.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct ledger {
    int fd;
    unsigned run_ms;
    char node[64];
    char crash[64];
};

static a2ad_status ledger_init(const struct a2ad_host *host, a2ad_ctx log_ctx,
                               const struct a2ad_option *opts, size_t n_opts, void **state) {
    (void)host;
    struct ledger *l = calloc(1, sizeof *l);
    if (!l) return A2AD_ERR_NOMEM;
    l->fd = -1;
    l->run_ms = 30;
    snprintf(l->node, sizeof l->node, "-");
    const char *file = NULL;
    for (size_t i = 0; i < n_opts; i++) {
        const char *v = opts[i].value ? opts[i].value : "";
        if (!strcmp(opts[i].key, "file")) {
            file = v;
        } else if (!strcmp(opts[i].key, "node") && *v && !strpbrk(v, " \n")) {
            snprintf(l->node, sizeof l->node, "%s", v);
        } else if (!strcmp(opts[i].key, "crash") && *v) {
            snprintf(l->crash, sizeof l->crash, "%s", v);
        } else if (!strcmp(opts[i].key, "run_ms") && *v >= '0' && *v <= '9') {
            char *end;
            unsigned long ms = strtoul(v, &end, 10);
            if (*end || ms > 60000) goto bad;
            l->run_ms = (unsigned)ms;
        } else {
            a2ad_log(log_ctx, A2AD_LOG_ERROR, "bad option %s = \"%s\" (known: file, node, run_ms, crash)",
                     opts[i].key, v);
            goto bad;
        }
    }
    if (!file || !*file) {
        a2ad_log(log_ctx, A2AD_LOG_ERROR, "option file (the ledger's path) is required");
        goto bad;
    }
    l->fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (l->fd < 0) {
        a2ad_log(log_ctx, A2AD_LOG_ERROR, "cannot open %s", file);
        goto bad;
    }
    *state = l;
    return A2AD_OK;
bad:
    free(l);
    return A2AD_ERR_CONFIG;
}

static void ledger_destroy(void *state) {
    struct ledger *l = state;
    if (l->fd >= 0) close(l->fd);
    free(l);
}

static void ledger_write(const struct ledger *l, const char *what, const char *task,
                         unsigned attempt) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char line[256];
    int n = snprintf(line, sizeof line, "%s %s %s %ld %u %lld\n", what, task, l->node,
                     (long)getpid(), attempt,
                     (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec);
    if (n > 0 && (size_t)n < sizeof line && write(l->fd, line, (size_t)n) != n) {
        /* the test counts lines: a short write shows up there */
    }
}

static a2ad_status ledger_job(void *state, const struct a2ad_job *job, a2ad_ctx ctx) {
    struct ledger *l = state;
    ledger_write(l, "start", job->task_id, job->attempt);
    if (l->crash[0] && !strcmp(job->query, l->crash)) raise(SIGKILL);
    a2ad_update_progress(ctx, "started", 0.5, A2AD_INFO);
    for (unsigned left = l->run_ms; left > 0 && !a2ad_cancelled(ctx);) {
        unsigned ms = left < 10 ? left : 10;
        struct timespec ts = {0, (long)ms * 1000000L};
        nanosleep(&ts, NULL);
        left -= ms;
    }
    ledger_write(l, "end", job->task_id, job->attempt);
    char text[256];
    snprintf(text, sizeof text, "done: %s", job->query);
    return a2ad_result(ctx, text);
}

/* Hosts that have run_job call it instead; this one cannot name the task. */
static a2ad_status ledger_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    (void)query;
    return a2ad_fail(ctx, "ledger needs a host with run_job");
}

static const struct a2ad_agent ledger_agent = {
    A2AD_AGENT_HEADER,
    .name = "ledger",
    .description = "Writes down every run of every job (cluster test)",
    .version = "1.0.0",
    .init = ledger_init,
    .destroy = ledger_destroy,
    .run_background = ledger_run,
    .run_job = ledger_job,
    .rerun_safe = 1,
};

A2AD_AGENT_ENTRY(ledger_agent)
