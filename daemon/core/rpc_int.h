/* rpc_int - what the rpc*.c files share (not a public interface).
 *
 * rpc.c holds the envelope, dispatch, messages, tasks and cards;
 * rpc_more.c the push-config methods and ListTasks.
 */
#ifndef A2AD_RPC_INT_H
#define A2AD_RPC_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>

#include "front/a2a_v1.h"
#include "delivery/push.h"
#include "core/rpc.h"

struct agent;
struct task;

/* A failed request: code, message, and the HTTP status to send it with. */
struct rpc_fail {
    int code;
    int http_status;
    unsigned retry_after_s;
    char message[512];
};

/* One method call: everything a method needs. */
struct call {
    const struct agent *agent;   /* the endpoint's agent, NULL = none */
    const cJSON *id;             /* the request id */
    cJSON *params;               /* an object (empty when absent); 1.0 keys camelCased */
    enum a2a_dialect d;          /* from the method name */
    const struct rpc_request *rq;
    struct rpc_reply *out;
    struct rpc_fail *f;
    bool bare;                   /* streams without the JSON-RPC envelope (HTTP+JSON) */
    const char *tenant;          /* 1.0 params.tenant, "" = none (tenant.h) */
};

/* Record a failure; returns false so `return rpc_fail(...)` ends a method. */
bool rpc_fail(struct rpc_fail *f, int code, const char *fmt, ...) A2AD_PRINTF(3, 4);

/* {"jsonrpc":"2.0","id":ID,"result":RESULT} (result TAKEN; NULL = null). */
char *rpc_result_body(const cJSON *id, cJSON *result);
/* Answer a push config set with body (taken) once t's row, queued by
 * store_persist_begin, is committed; else 503 and config_id is removed.
 * Takes the reference to t. */
bool rpc_defer_push(struct call *c, struct task *t, char *body, const char *config_id);

/* The task named by params[key] (a string) at this endpoint, with a
 * reference; NULL after recording -32602 (missing) or -32001 (unknown). */
struct task *rpc_lookup_task(struct call *c, const char *key);

/* historyLength of obj: absent = -1 (all), else 0..1000000. */
bool rpc_history_length(const cJSON *obj, const char *where, int *out, struct rpc_fail *f);

/* Read a push config object (0.3 PushNotificationConfig, 1.0 flattened
 * TaskPushNotificationConfig) into out; strings borrowed from p. */
bool rpc_parse_push(const cJSON *p, enum a2a_dialect d, const char *where,
                    struct push_config *out, struct rpc_fail *f);

/* -32003 (recorded) when push notifications are off. */
bool rpc_push_allowed(struct call *c);

/* rpc_more.c */
bool rpc_push_set(struct call *c);
bool rpc_push_get(struct call *c);
bool rpc_push_list(struct call *c);
bool rpc_push_delete(struct call *c);
bool rpc_list_tasks(struct call *c);
/* A stored config as the dialect's TaskPushNotificationConfig (no token). */
cJSON *rpc_config_out(const char *task, const cJSON *e, enum a2a_dialect d);

/* rpc_subscribe.c: tasks/resubscribe (SubscribeToTask) of a detached,
 * unfinished t (reference taken): the task as it is, or with Last-Event-ID
 * (*after, else NULL) the events the client missed, then its events as
 * they come. False after recording a failure. */
bool rpc_remote_subscribe(struct call *c, struct task *t, const uint64_t *after, int history);

/* rpc_remote.c: a task held by another node ([tasks] store = postgresql,
 * cluster.h). */
/* rpc_lookup_task's fallback: *out = the row as a detached task, or NULL
 * (not found); false after recording a 503 (the database unreachable). */
bool rpc_remote_read(struct call *c, const char *id, struct task **out);
/* t is another node's task (a detached copy). */
bool rpc_remote(struct task *t);
/* Cancel, push config set (config: the parsed object) and delete, on a
 * detached t (reference taken), as a control to its holder. NULL when
 * answered (c->out->body set) or failed (recorded); else the task this
 * node holds now (it moved here meanwhile), to go on with locally. */
struct task *rpc_remote_cancel(struct call *c, struct task *t);
struct task *rpc_remote_push_set(struct call *c, struct task *t, const cJSON *config);
struct task *rpc_remote_push_delete(struct call *c, struct task *t, const char *config_id);
/* Before a stream opens on a detached t: the holder starts writing its
 * events; false after recording the failure. After it opened:
 * rpc_remote_follow pushes them to it. */
bool rpc_remote_watch(struct call *c, struct task *t);
void rpc_remote_follow(struct task *t);
/* message/send or a stream naming a detached t (reference taken): the
 * message is delivered by its holder (a control), after the push config
 * inline in it (has_push) is set there; a blocking send waits
 * (c->out->wait_task, cluster_await) until the row shows the answer. False
 * after recording a failure. */
bool rpc_remote_continue(struct call *c, const cJSON *message, struct task *t, bool stream,
                         int history, bool blocking, bool has_push);
/* The answer to such a blocking send once its wait ended: the task's row
 * rendered (history_length as task_render), or NULL after recording why it
 * cannot be read. */
cJSON *rpc_remote_waited(struct task *t, int history_length, struct rpc_fail *f);

#endif
