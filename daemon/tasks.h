/* tasks - the task model, its state machine, its events, and the task store.
 *
 * A task goes submitted -> working -> completed | failed | canceled, or
 * submitted -> rejected/canceled/failed. Every change is an event: it updates
 * the stored task and, when the task has a push config, queues a push
 * notification (the whole Task as JSON, A2A 0.3 style) on the webhooks
 * module, in event order. Terminal events also wake the waiters registered
 * with task_on_terminal (blocking message/send).
 *
 * The store is in memory: a hash map by id, bounded by max_tasks; finished
 * tasks are dropped retention_s after they ended (tasks_expire), oldest
 * first. Tasks are reference counted; every pointer handed out holds a
 * reference the receiver releases with task_release.
 */
#ifndef A2AD_TASKS_H
#define A2AD_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "a2ad/agent.h"

struct agent;
struct task;

enum task_state {
    TASK_SUBMITTED,
    TASK_WORKING,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_CANCELED,
    TASK_REJECTED
};

/* "submitted", "working", ... as A2A 0.3 spells them. */
const char *task_state_name(enum task_state s);
bool task_state_terminal(enum task_state s);

struct push_config {
    const char *id;    /* NULL = generated */
    const char *url;   /* required */
    const char *token; /* NULL = none; sent as X-A2A-Notification-Token */
};

struct task_create {
    const struct agent *agent;
    cJSON *message;               /* TAKEN: the user's Message object */
    const char *context_id;       /* NULL = a new one */
    const struct push_config *push; /* copied; NULL = no webhook */
    cJSON *metadata;              /* TAKEN: params.metadata, or NULL */
};

/* Store settings; call once before anything else. Thread: main. */
void tasks_init(unsigned retention_s, unsigned max_tasks);
/* Drop every task (after workers and HTTP stopped). Thread: main. */
void tasks_shutdown(void);

/* Create a task in state submitted; *out holds a reference for the caller.
 * A2AD_ERR_FULL when max_tasks tasks are held and none can be expired. */
a2ad_status tasks_create(const struct task_create *in, struct task **out);

/* Remove a task that was never acknowledged (e.g. the queue was full):
 * no event is sent. Releases the store's reference, not the caller's. */
void tasks_discard(struct task *t);

/* Look up by id; returns a new reference, or NULL. Thread: any. */
struct task *tasks_get(const char *id);

/* Drop finished tasks older than retention; returns how many. Thread: any. */
size_t tasks_expire(void);

/* Tasks held now. */
size_t tasks_count(void);

void task_retain(struct task *t);
void task_release(struct task *t);

/* Immutable after creation: safe without locks. */
const char *task_id(const struct task *t);
const char *task_context_id(const struct task *t);
const struct agent *task_agent(const struct task *t);
const char *task_query(const struct task *t); /* text parts joined by "\n" */

enum task_state task_get_state(struct task *t);

/* The Task as A2A 0.3 JSON (new object, caller frees). history_length < 0:
 * all history; 0: no "history" member; n: the last n messages. */
cJSON *task_render(struct task *t, int history_length);

/* ---- events. All return A2AD_ERR_STATE when the task already ended. ---- */

/* submitted -> working (the worker picked it up). */
a2ad_status task_start(struct task *t);
/* A progress update (see a2ad_host.update_progress for the argument rules). */
a2ad_status task_progress(struct task *t, const char *message, double progress,
                          a2ad_importance importance);
/* An artifact (bytes copied). */
a2ad_status task_artifact(struct task *t, const char *name, const char *mime_type,
                          const void *data, size_t len);
/* End the task in a terminal state with an optional agent text (copied). */
a2ad_status task_finish(struct task *t, enum task_state final_state, const char *text);
/* Ask to cancel: the task ends as canceled at once; a running agent sees
 * a2ad_cancelled() and its later calls are refused. */
a2ad_status task_cancel(struct task *t);

/* Call cb(arg) once when the task reaches a terminal state. Returns
 * A2AD_ERR_STATE (and does not register) if it already has. cb runs on the
 * thread that ended the task, with the task locked: it must only signal
 * (e.g. resume a connection), never call back into tasks. */
a2ad_status task_on_terminal(struct task *t, void (*cb)(void *arg), void *arg);
/* Remove a registration that has not fired; returns A2AD_ERR_NOT_FOUND if
 * it already fired (or never existed). */
a2ad_status task_forget_waiter(struct task *t, void (*cb)(void *arg), void *arg);

#endif
