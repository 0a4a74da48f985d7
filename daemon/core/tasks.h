/* tasks - the task model, its state machine, its events, and the task store.
 *
 * A task goes submitted -> working -> completed | failed | canceled, or
 * submitted -> rejected/canceled/failed. Every change is an event: it updates
 * the stored task, then every observer (tasks_add_observer) sees it, with the
 * task locked, in event order: the push module queues webhooks, other
 * modules persist or stream it. Terminal events also wake the waiters
 * registered with task_on_terminal (blocking message/send).
 *
 * Modules keep their own per-task data in extension slots (task_ext), so
 * this module knows nothing of webhooks, dialects or storage.
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
    TASK_REJECTED,
    /* interrupted: the agent waits for the client (request_input); not
     * final, but a blocking send answers and streams end there */
    TASK_INPUT_REQUIRED,
    TASK_AUTH_REQUIRED
};

/* "submitted", "working", ... as A2A 0.3 spells them. */
const char *task_state_name(enum task_state s);
bool task_state_terminal(enum task_state s);
/* input-required or auth-required. */
bool task_state_interrupted(enum task_state s);

/* Per-task data of other modules. A slot's data is set when the task is
 * created (task_create.ext) or later with task_ext_set, and freed with the
 * task through its ops. */
enum task_ext_slot {
    TASK_EXT_PUSH,    /* push.c: the task's webhook configs */
    TASK_EXT_HU,      /* hu.c: Health Universe background_job parameters */
    TASK_EXT_STREAMS, /* streams.c: open SSE subscribers */
    TASK_EXT_STORE,   /* store.c: persistence bookkeeping */
    TASK_EXT_OWNER,   /* auth.c: the credential name that created it (persisted) */
    TASK_EXT_REPLAY,  /* replay.c: recent stream events, for Last-Event-ID */
    TASK_EXT_TENANT,  /* tenant.c: the A2A 1.0 tenant the task belongs to */
    TASK_EXT_MAX
};

struct task_ext_ops {
    const char *name;                  /* key when persisted */
    void (*free)(void *data);          /* required */
    cJSON *(*save)(const void *data);  /* optional: JSON to persist, new object */
    void *(*load)(const cJSON *saved); /* optional: the inverse of save */
};

/* Register the ops of a slot. Thread: main, before any task exists. */
void tasks_register_ext(enum task_ext_slot slot, const struct task_ext_ops *ops);
const struct task_ext_ops *tasks_ext_ops(enum task_ext_slot slot);

struct task_create {
    const struct agent *agent;
    cJSON *message;               /* TAKEN: the user's Message object */
    const char *context_id;       /* NULL = a new one */
    cJSON *metadata;              /* TAKEN: params.metadata, or NULL */
    void *ext[TASK_EXT_MAX];      /* TAKEN: initial slot data, NULL = none */
    /* true: return before the durable store has committed the CREATED row;
     * the caller must then call tasks_wait_durable (after tasks_on_durable
     * fired, so it does not block) before acknowledging anything. */
    bool defer_durable;
};

enum task_event_kind {
    TASK_EVENT_CREATED,  /* the task exists (state submitted), not yet acknowledged */
    TASK_EVENT_STATUS,   /* a state change or a progress update */
    TASK_EVENT_ARTIFACT  /* an artifact was added */
};

/* One event, as observers see it. Everything is borrowed for the call. */
struct task_event {
    enum task_event_kind kind;
    enum task_state state;    /* after the event */
    bool terminal;            /* the task's last event */
    bool interrupted;         /* the task now waits for the client (input/auth-required) */
    uint64_t seq;             /* 1, 2, ... per task, in event order */
    const char *timestamp;    /* of the status, ISO 8601 UTC */
    const cJSON *message;     /* STATUS: the agent message now in the status, or NULL */
    const char *text;         /* STATUS: that message's text, or NULL */
    double progress;          /* STATUS from update_progress: 0..1, else NAN */
    int importance;           /* STATUS from update_progress: a2ad_importance, else -1 */
    const cJSON *artifact;    /* ARTIFACT: the A2A Artifact object */
    const char *artifact_name, *artifact_mime; /* ARTIFACT: as the agent gave them */
    const void *data;         /* ARTIFACT: the raw bytes */
    size_t len;
    bool append;              /* ARTIFACT: this chunk continues the artifact */
    bool last_chunk;          /* ARTIFACT: the artifact is complete (always, unchunked) */
    const cJSON *whole;       /* ARTIFACT: the assembled artifact so far, as tasks/get shows it */
    const void *whole_data;   /* ARTIFACT: its bytes so far */
    size_t whole_len;
};

/* Called for every event of every task, with the task locked, in event
 * order. It must not block on I/O nor call task functions other than
 * task_ext, task_ext_set, task_render_locked and task_print_locked (and the immutable
 * accessors). For TASK_EVENT_CREATED a non-OK return refuses the task:
 * tasks_create fails with that status and nothing is acknowledged. For the
 * other events the return is ignored. */
typedef a2ad_status (*task_observer)(struct task *t, const struct task_event *ev);

/* Add an observer; they run in the order added. At most 8. Thread: main,
 * before any task exists. */
void tasks_add_observer(task_observer fn);

/* The durable store's hooks (store.c). `last` is an observer that runs
 * after all the others, so it sees what they queued for the event (the
 * webhooks of its outbox); `wait`, when set, runs in tasks_create after the
 * CREATED event with no lock held, and blocks until the task is on disk: a
 * non-OK return refuses the task like an observer's. Either may be NULL.
 * Thread: main, before any task exists. */
void tasks_set_store_hooks(task_observer last, a2ad_status (*wait)(struct task *t));
/* The durable store's asynchronous form of `wait` (store.c): `on` calls
 * cb(arg) once the CREATED row of t is settled (committed or failed) and
 * returns A2AD_OK, or returns A2AD_ERR_STATE without registering when it
 * already is; `forget` removes a registration that has not fired (true) and,
 * once it returns, the callback is not running and never will. Thread: main,
 * before any task exists. */
void tasks_set_store_notify(a2ad_status (*on)(struct task *t, void (*cb)(void *arg), void *arg),
                            bool (*forget)(struct task *t, void (*cb)(void *arg), void *arg));
/* Called by tasks_discard (no lock held) so the store forgets a task that
 * was stored but never acknowledged. NULL = none. Thread: main, before any
 * task exists. */
void tasks_set_store_discard(void (*discard)(struct task *t));

/* The task whose event this thread is handing to observers right now, or
 * NULL (outside an observer). */
struct task *tasks_emitting(void);

/* A task read back from the durable store at start-up. */
struct task_restore {
    cJSON *doc;                /* TAKEN: the Task as task_render gave it (all history) */
    const struct agent *agent; /* NULL when its agent is no longer loaded */
    enum task_state state;     /* the state to restore it in (may differ from doc's) */
    uint64_t seq;              /* events it had */
    uint64_t ended_ago_ms;     /* terminal state: how long ago it ended */
    void *ext[TASK_EXT_MAX];   /* TAKEN: slot data */
};

/* Put a stored task back in memory, without any event. Terminal tasks join
 * the expiry order in the order restored (restore them oldest first). *out
 * holds a reference for the caller. A2AD_ERR_PARSE for a doc without id,
 * contextId, status.timestamp or history; A2AD_ERR_STATE when the id is
 * already held. Thread: main, before workers and HTTP start. */
a2ad_status tasks_restore(const struct task_restore *in, struct task **out);

/* Set metadata.a2ad.KEY to value (TAKEN): daemon notes that tasks/get shows
 * (attempts, webhooks given up). The task lock must be held; no event. */
void task_annotate_locked(struct task *t, const char *key, cJSON *value);
/* metadata.a2ad.KEY, or NULL; borrowed while the lock is held. */
const cJSON *task_annotation_locked(struct task *t, const char *key);
/* Events so far. The task lock must be held. */
uint64_t task_seq_locked(struct task *t);

/* Store settings; call once before anything else. Thread: main. */
void tasks_init(unsigned retention_s, unsigned max_tasks);
/* Drop every task (after workers and HTTP stopped), and forget the
 * observers and slot ops. Thread: main. */
void tasks_shutdown(void);

/* Create a task in state submitted; *out holds a reference for the caller.
 * A2AD_ERR_FULL when max_tasks tasks are held and none can be expired. */
a2ad_status tasks_create(const struct task_create *in, struct task **out);

/* True when a durable store is set: tasks created with defer_durable then
 * need tasks_wait_durable before their ack. Thread: any. */
bool tasks_durable(void);
/* Call cb(arg) once, on the store's writer thread with no lock held, when
 * the CREATED row of t (made with defer_durable) is committed or failed.
 * cb must only signal (resume a connection). Returns A2AD_ERR_STATE, not
 * registering, when it already is settled or there is no durable store:
 * the caller goes on at once. Thread: any. */
a2ad_status tasks_on_durable(struct task *t, void (*cb)(void *arg), void *arg);
/* Undo tasks_on_durable if cb has not fired; when it returns, cb is not
 * running and will not run. True when it removed the registration (cb
 * never ran), false when cb already ran or none was made. Thread: any. */
bool tasks_forget_durable(struct task *t, void (*cb)(void *arg), void *arg);
/* The outcome of the CREATED row of a task made with defer_durable:
 * blocks (no lock held) until it is settled, which after tasks_on_durable
 * fired is at once. A2AD_OK = on disk; otherwise the task was not stored
 * (store_last_error says why, on this thread) and the caller must
 * tasks_discard it and acknowledge nothing. A2AD_OK without a store. */
a2ad_status tasks_wait_durable(struct task *t);

/* Remove a task that was never acknowledged (e.g. the queue was full):
 * no event is sent. Releases the store's reference, not the caller's. */
void tasks_discard(struct task *t);

/* The text parts of an A2A message joined by "\n" (the query an agent
 * gets); malloc'd, caller frees; NULL when out of memory. Thread: any. */
char *tasks_message_text(const cJSON *message);

/* Look up by id; returns a new reference, or NULL. Thread: any. */
struct task *tasks_get(const char *id);

/* Drop finished tasks older than retention; returns how many. Thread: any. */
size_t tasks_expire(void);

/* Tasks held now. */
size_t tasks_count(void);

/* Every task held now, each with a new reference, in *out (malloc'd; the
 * caller releases each task and frees the array). Thread: any. */
a2ad_status tasks_list(struct task ***out, size_t *n);

void task_retain(struct task *t);
void task_release(struct task *t);

/* Immutable after creation: safe without locks. */
const char *task_id(const struct task *t);
const char *task_context_id(const struct task *t);
const struct agent *task_agent(const struct task *t);
const char *task_query(const struct task *t); /* text parts joined by "\n" */

enum task_state task_get_state(struct task *t);
/* The same, the task lock held. */
enum task_state task_get_state_locked(struct task *t);
/* The state and its timestamp (ISO 8601 UTC, TIMESTAMP_LEN bytes with the
 * NUL) read together. */
enum task_state task_get_status(struct task *t, char *timestamp);

/* A further message of the conversation (a message/send naming this task):
 * appended to the history with taskId and contextId set; no event, except
 * that a task waiting for input (interrupted) goes back to working with a
 * STATUS event. TAKEN.
 * A2AD_ERR_STATE (message freed) when the task already ended. */
a2ad_status task_add_message(struct task *t, cJSON *message);

/* The Task as A2A 0.3 JSON (new object, caller frees). history_length < 0:
 * all history; 0: no "history" member; n: the last n messages. */
cJSON *task_render(struct task *t, int history_length);
/* The same, for an observer (the task is already locked). */
cJSON *task_render_locked(struct task *t, int history_length);
/* The same Task printed as compact JSON (new string, caller frees; NULL when
 * out of memory), byte for byte what printing task_render_locked gives, but
 * without copying the history and artifacts first. Task locked (observers). */
char *task_print_locked(struct task *t, int history_length);

/* Slot data. The task lock must be held (an observer, or between task_lock
 * and task_unlock). task_ext_set frees the slot's previous data. */
void *task_ext(struct task *t, enum task_ext_slot slot);
void task_ext_set(struct task *t, enum task_ext_slot slot, void *data);
/* For modules that change slot data outside an event. Never across I/O. */
void task_lock(struct task *t);
void task_unlock(struct task *t);

/* ---- events. All return A2AD_ERR_STATE when the task already ended. ---- */

/* submitted -> working (the worker picked it up). */
a2ad_status task_start(struct task *t);
/* A progress update (see a2ad_host.update_progress for the argument rules). */
a2ad_status task_progress(struct task *t, const char *message, double progress,
                          a2ad_importance importance);
/* One chunk of an artifact (bytes copied). append false starts an artifact
 * named `name` (A2AD_ERR_STATE while one of that name is still open);
 * append true continues it (A2AD_ERR_STATE when none is open, i.e. after
 * its last chunk). The task keeps the assembled artifact; observers get the
 * chunk in ev->artifact and the whole in ev->whole. A2AD_ERR_FULL when the
 * assembled size would pass tasks_set_max_artifact_bytes; A2AD_ERR_ENDED
 * once the task has ended. */
a2ad_status task_artifact_chunk(struct task *t, const char *name, const char *mime_type,
                                const void *data, size_t len, bool append, bool last_chunk);

/* [workers] max_artifact_bytes. Thread: main, before any task. */
void tasks_set_max_artifact_bytes(size_t n);

/* An artifact (bytes copied). */
a2ad_status task_artifact(struct task *t, const char *name, const char *mime_type,
                          const void *data, size_t len);
/* The agent asks the client for input: the task goes to s
 * (TASK_INPUT_REQUIRED or TASK_AUTH_REQUIRED) with text (copied) as its
 * status message and in its history; the waiters (task_on_terminal) fire.
 * A2AD_ERR_INVALID for another state or an empty text. */
a2ad_status task_interrupt(struct task *t, enum task_state s, const char *text);

/* End the task in a terminal state with an optional agent text (copied). */
a2ad_status task_finish(struct task *t, enum task_state final_state, const char *text);
/* Ask to cancel: the task ends as canceled at once; a running agent sees
 * a2ad_cancelled() and its later calls are refused. */
a2ad_status task_cancel(struct task *t);

/* Call cb(arg) once when the task reaches a terminal or interrupted state.
 * Returns A2AD_ERR_STATE (and does not register) if it already is in one. cb runs on the
 * thread that ended the task, with the task locked: it must only signal
 * (e.g. resume a connection), never call back into tasks. */
a2ad_status task_on_terminal(struct task *t, void (*cb)(void *arg), void *arg);
/* Remove a registration that has not fired; returns A2AD_ERR_NOT_FOUND if
 * it already fired (or never existed). */
a2ad_status task_forget_waiter(struct task *t, void (*cb)(void *arg), void *arg);

/* A task of another node (cluster.c), built from its stored row like
 * tasks_restore, but entered nowhere (not in the map, not in the expiry
 * order): renderers and access checks work on it as on any task, no event
 * must be emitted on it, and it is freed on its last task_release. *out
 * holds the only reference. Errors as tasks_restore's. Thread: any. */
a2ad_status tasks_detached(const struct task_restore *in, struct task **out);
/* True when t is not the task this node holds under its id (a detached
 * copy, or a task dropped meanwhile). Thread: any. */
bool task_is_detached(struct task *t);
/* Drop an unfinished task from memory without any event: another node
 * holds it now (it claimed the queued job). Its waiters fire (they see the
 * task as it is); the store's reference is released, not the caller's.
 * Nothing when it is not held. Thread: any. */
void tasks_forget(struct task *t);
/* A detached task mirrors its row's state (cluster.c): set it, with no
 * event and nothing stored; a terminal or interrupted state fires its
 * waiters (task_on_terminal), so a blocking send through another node
 * waits on the detached copy as it would on the task. Thread: any. */
void task_detached_set_state(struct task *t, enum task_state s);

#endif
