/* daemon - start the real a2ad binary for integration tests.
 *
 * Each instance gets its own temporary folder with a config file, a plugin
 * folder holding copies of the named plugins, and a log file. The daemon
 * listens on 127.0.0.1 at a free port (port = 0) read back from its log,
 * and dies with the test process (PR_SET_PDEATHSIG) if a test fails.
 */
#ifndef A2AD_TEST_DAEMON_H
#define A2AD_TEST_DAEMON_H

#include <cJSON.h>
#include <stdbool.h>
#include <sys/types.h>

struct daemon_opts {
    const char *plugins;       /* "echo,processor" (found in plugins/ or tests/plugins/) */
    unsigned threads;          /* workers.threads; 0 = 2 */
    unsigned queue_length;     /* 0 = default */
    const char *default_agent; /* NULL = none set */
    const char *errors;        /* plugins.errors; NULL = fatal */
    const char *server_extra;  /* more [server] lines */
    const char *webhooks_extra; /* more [webhooks] lines */
    const char *webhooks_backoff; /* NULL = short backoffs (20..200 ms), else these lines */
    const char *extra;         /* more sections, appended as is */
    const char *store;         /* tasks.store; NULL = the default (sqlite) */
    const char *db_path;       /* tasks.path; NULL = a2ad.db in the daemon's own folder */
    const char *tasks_extra;   /* more [tasks] lines */
    const char *workers_extra; /* more [workers] lines */
    unsigned long fsize_limit; /* > 0: RLIMIT_FSIZE of the daemon (a disk that fills up) */
    unsigned webhook_timeout_ms; /* [webhooks] timeout_ms; 0 = 3000 */
    bool guard_default;        /* true: no [webhooks] allow_networks (loopback refused, as
                                  installed); false: loopback allowed for the test receivers */
};

struct daemon_proc {
    pid_t pid;
    unsigned port;
    char dir[256];
    char conf[300];
    char log[300];
};

/* Write the config and start the daemon; true once it logged "ready". */
bool daemon_start(struct daemon_proc *d, const struct daemon_opts *o);
/* Write the config only (for -t runs and start-up failures). */
bool daemon_prepare(struct daemon_proc *d, const struct daemon_opts *o);
/* kill -9 and reap: a crash. */
void daemon_kill9(struct daemon_proc *d);
/* Run `a2ad ARGS -c conf` to completion (bounded); returns its exit status. */
int daemon_run_args(struct daemon_proc *d, const char *args, unsigned timeout_ms);
/* SIGTERM and wait (bounded); returns the exit status, or -1 on timeout (then SIGKILL). */
int daemon_stop(struct daemon_proc *d, unsigned timeout_ms);
/* The whole log so far (malloc'd). */
char *daemon_log(const struct daemon_proc *d);
/* Remove the temporary folder. */
void daemon_cleanup(struct daemon_proc *d);

/* Path of a built file under A2AD_BUILD (default "build"). */
const char *build_path(const char *rel, char *buf, size_t n);

struct http_resp {
    long status;
    char *body;
    char *headers;
};
/* One HTTP request to 127.0.0.1:port. body NULL = GET. */
bool http_call(unsigned port, const char *method, const char *path, const char *body,
               struct http_resp *out);
/* The same with extra request headers ("Name: value", NULL-terminated). */
bool http_call_headers(unsigned port, const char *method, const char *path, const char *body,
                       const char *const *headers, struct http_resp *out);
void http_resp_free(struct http_resp *r);
/* POST a JSON-RPC request and parse the answer (NULL if not JSON). */
cJSON *rpc_call(unsigned port, const char *path, const char *json, long *http_status);
cJSON *rpc_call_headers(unsigned port, const char *path, const char *json,
                        const char *const *headers, long *http_status);

#endif
