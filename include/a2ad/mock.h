/* a2ad/mock.h - the mock host of the plugin SDK: a fake struct a2ad_host
 * that records every call a plugin makes, so an agent can be unit-tested
 * without the daemon (the idea of collectd's plugin_mock.c). Link with
 * liba2ad-mock.a: `pkg-config --cflags --libs a2ad-mock`.
 *
 * It checks arguments the way the real host does (NaN with no message, bad
 * importance, empty artifact name -> A2AD_ERR_INVALID; artifacts sent in
 * chunks are assembled into one record, with the host's A2AD_ERR_STATE
 * rules) and copies everything it is given, as the ABI's ownership rule
 * requires. Every call is
 * thread-safe: plugins may call it from threads they start themselves.
 *
 * Usage:
 *     struct mock_host *m = mock_host_new();
 *     a2ad_status s = desc->run_background(state, "query", mock_host_ctx(m));
 *     ... mock_host_progress_count(m), mock_host_progress_at(m, i) ...
 *     mock_host_free(m);
 */
#ifndef A2AD_MOCK_H
#define A2AD_MOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"

struct mock_host;

struct mock_progress {
    char *message; /* NULL when the plugin passed NULL */
    double progress;
    a2ad_importance importance;
    pthread_t thread; /* the thread that called */
};

struct mock_artifact {
    char *name;
    char *mime_type; /* as passed; NULL stays NULL */
    unsigned char *data;
    size_t len;
};

struct mock_log {
    a2ad_log_level level;
    uint64_t handle; /* the ctx handle it came through */
    char *text;
};

struct mock_host *mock_host_new(void);
void mock_host_free(struct mock_host *m);

/* The host table (pass it to init or plugins_load) and a job ctx on it. */
const struct a2ad_host *mock_host_table(struct mock_host *m);
a2ad_ctx mock_host_ctx(struct mock_host *m);

/* a2ad_cancelled answers nonzero once on is set... */
void mock_host_set_cancelled(struct mock_host *m, bool on);
/* ...or once n progress updates were recorded (n = 0 turns this off). */
void mock_host_cancel_after(struct mock_host *m, size_t n);
/* From now on every job call answers A2AD_ERR_ENDED and records nothing
 * (a job that ended under a straggling plugin thread). Logging still works. */
void mock_host_end(struct mock_host *m);

/* What was recorded. Entries are copies; their strings and bytes stay valid
 * until mock_host_free. Index out of range -> an all-zero entry. */
size_t mock_host_progress_count(struct mock_host *m);
struct mock_progress mock_host_progress_at(struct mock_host *m, size_t i);
/* How many different threads reported progress. */
size_t mock_host_progress_threads(struct mock_host *m);

size_t mock_host_artifact_count(struct mock_host *m);
struct mock_artifact mock_host_artifact_at(struct mock_host *m, size_t i);

size_t mock_host_log_count(struct mock_host *m);
struct mock_log mock_host_log_at(struct mock_host *m, size_t i);
/* True when a logged line contains needle. */
bool mock_host_logged(struct mock_host *m, const char *needle);

/* The last result()/fail() text (NULL if never called, or called with NULL)
 * and how often each was called. */
const char *mock_host_result(struct mock_host *m);
const char *mock_host_fail_reason(struct mock_host *m);
unsigned mock_host_result_calls(struct mock_host *m);
unsigned mock_host_fail_calls(struct mock_host *m);
/* How often cancelled() was asked (a plugin that never asks cannot stop). */
unsigned mock_host_cancel_checks(struct mock_host *m);

#endif
