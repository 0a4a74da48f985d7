/* cluster - every read and control from every node ([tasks] store =
 * postgresql with several nodes on one database).
 *
 * Every task row has one holder (a2ad_tasks.node): the node that keeps it
 * in memory, runs its job and writes its row. Another node answers for it:
 *
 * - reads (tasks/get, push-config get/list, ListTasks) from the row, as a
 *   detached task (tasks_detached): as fresh as the holder's last commit;
 * - controls (cancel, push-config set/delete, message, watch) as a row in
 *   a2ad_controls and pg_notify('a2ad_node_<holder>'): the holder's LISTEN
 *   thread runs it locally, writes its outcome and notifies the asker,
 *   which waits at most [tasks] cluster_timeout_ms; a holder that answers
 *   "not held here" (the task moved) is asked again after a fresh read;
 * - streams: a `watch` control makes the holder write the task's events
 *   into a2ad_events (the writer's batch, with pg_notify('a2ad_events')),
 *   which the streaming node's LISTEN thread reads and pushes to its
 *   streams (streams_push_event); a stream back with Last-Event-ID gets the
 *   missed events from there; a stream whose holder dies follows the task
 *   to the node that takes it over (cluster_follow).
 * - blocking sends (the next message of a conversation): the message
 *   control, then a wait on the detached task that ends when its row shows
 *   the answer (cluster_await), read at each of its events and polled.
 *
 * LISTEN/NOTIFY because a notification is delivered at the commit of what
 * it announces, on a connection each node keeps anyway; a notification
 * lost across a reconnect is caught by a poll of pending controls and
 * watched tasks every CLUSTER_POLL_MS.
 *
 * This module owns its connections (never the writer's): one LISTEN
 * connection with its thread (reconnecting with backoff), and a pool of
 * [tasks] cluster_connections for HTTP threads.
 */
#ifndef A2AD_CLUSTER_H
#define A2AD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "a2ad/agent.h"
#include "config.h"
#include "core/tasks.h"

#define CLUSTER_POLL_MS 500

/* Register the observer that writes watched tasks' events (before any
 * task exists). Thread: main, after store_pg_open. */
void cluster_init(void);
/* Open the pool and start the LISTEN thread (after store_pg_recover);
 * A2AD_ERR_IO (logged) when the thread cannot start. Thread: main. */
a2ad_status cluster_start(const struct config *cfg);
/* Stop the thread, close the connections (before the store closes). */
void cluster_stop(void);
/* True between cluster_start and cluster_stop. Thread: any. */
bool cluster_active(void);

/* Why the last cluster call on this thread failed (for a 503). */
const char *cluster_last_error(void);

/* The task row id as a detached task (*out, one reference) and its holder
 * (copied into holder, hn bytes). A2AD_ERR_NOT_FOUND: no row;
 * A2AD_ERR_IO: the database cannot be reached (cluster_last_error).
 * Thread: any (an HTTP thread). */
a2ad_status cluster_read(const char *id, struct task **out, char *holder, size_t hn);

/* Detached tasks of the rows held by other nodes (at most max, newest
 * first), that this node does not hold in memory. *out malloc'd; each task
 * released by the caller. Thread: any. */
a2ad_status cluster_list(size_t max, struct task ***out, size_t *n);

/* The outcome of a control. */
enum cluster_outcome {
    CLUSTER_DONE = 0,    /* done by the holder */
    CLUSTER_REFUSED = 1, /* the task's state refuses it (e.g. cancel of a finished task) */
    CLUSTER_MOVED = 2,   /* not held by the asked node (internal: retried) */
    CLUSTER_FAILED = 3,  /* the holder could not do it: result {"message"} */
};

/* Run a control (kind "cancel", "push-set" {"dialect","config"},
 * "push-delete" {"id"}, "message" {"message","history"}, "watch"
 * {"after"}) on the node that holds task id,
 * and wait for its outcome (at most cluster_timeout_ms). A2AD_OK: *outcome
 * and *result (new, or NULL) are set. A2AD_ERR_STATE: this node holds it
 * now (do it locally). A2AD_ERR_NOT_FOUND: no row. A2AD_ERR_IO: the
 * database or the holder did not answer (cluster_last_error names it).
 * Thread: an HTTP thread. */
a2ad_status cluster_control(const char *id, const char *kind, const cJSON *body,
                            enum cluster_outcome *outcome, cJSON **result);

/* Ask the holder of t (detached) to write t's events above `after` into
 * a2ad_events from now on (a `watch` control). A2AD_OK, A2AD_ERR_FULL
 * (too many followed tasks here), or as cluster_control. Thread: an HTTP
 * thread. */
a2ad_status cluster_watch(struct task *t, uint64_t after);
/* Then, once a stream is open on t: push its events above `after` to t's
 * streams (the LISTEN thread), until its final one or until it has no
 * stream left. A task whose holder changes meanwhile (the holder died and
 * another node took it over after its lease, or a node claimed it) is
 * watched at its new holder from the last event pushed; one that ended at
 * the takeover gets the events it misses from its row (or its final
 * status) and its streams end. Thread: any. */
void cluster_follow(struct task *t, uint64_t after);

/* For operators: every row of a2ad_nodes, by name, as a JSON array of
 * {name, self, live, leaseLeftMs (by the database's clock; < 0 expired),
 * leaseAgeMs (since its last renewal, if its lease_s is this node's), upMs, freeWorkers (as the node last published it), tasks (rows held),
 * activeTasks (of those, unfinished)} (*out new). A2AD_ERR_IO as
 * cluster_read. Thread: an HTTP thread. */
a2ad_status cluster_nodes(cJSON **out);
/* Nodes whose lease runs now, this one included, as counted at most a
 * second ago (0 before the first count). Thread: any. */
size_t cluster_live_nodes(void);
/* A blocking send through this node continues t (detached, set to the
 * state the message put it in; its row's seq was `after` before the
 * message): once t's row shows it terminal, or interrupted at a seq above
 * `after`, set t to that state (task_detached_set_state: its waiters fire).
 * The row is read when the holder writes one of t's events (watch it
 * first: cluster_watch) and every CLUSTER_POLL_MS, so a takeover after the
 * holder's death ends the wait too. A2AD_ERR_FULL: too many waits here.
 * Thread: an HTTP thread. */
a2ad_status cluster_await(struct task *t, uint64_t after);
/* cluster_watch, and what the holder said: *now, its last event (0 when
 * it did not say); *complete, whether it still kept every event above
 * `after` (and wrote them). sync: it answers once they and its row are
 * committed. Thread: an HTTP thread. */
a2ad_status cluster_watch_from(struct task *t, uint64_t after, bool sync, bool *complete,
                               uint64_t *now);

/* A stream of t (detached, not ended) resumed with Last-Event-ID `after`:
 * watch t from `after`; the holder answers once its kept events above it
 * and its row are committed; then read the events above `after` from
 * a2ad_events. *now: the holder's last event then (0 if it did not say);
 * *missed: the events in (after, *now], oldest first, as [{"seq": N,
 * "event": <0.3 event>}] (new), when every one is there and they fit in
 * max_bytes: the stream then follows from *now; else NULL: start from the
 * task's row read again (committed at *now at least) and follow from its
 * seq. Status as cluster_watch. Thread: an HTTP thread. */
a2ad_status cluster_resume(struct task *t, uint64_t after, size_t max_bytes, cJSON **missed,
                           uint64_t *now);

#endif
