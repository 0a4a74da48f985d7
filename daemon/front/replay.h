/* replay - each task's recent stream events, so that a client that lost
 * its SSE stream can come back with Last-Event-ID and get what it missed.
 *
 * Every SSE event a2ad sends carries `id: TASKID.SEQ`, SEQ being the task's
 * event number (the same number as in the webhook event ids
 * TASKID.SEQ.N). This module keeps, in the task's TASK_EXT_REPLAY slot, the
 * latest events of the task (their A2A 0.3 rendering, with their SEQ), at
 * most max_bytes of them per task, oldest dropped first. With the durable
 * store the log is saved in the task's row with the task's last event (in
 * that event's transaction), so a client can still catch up on a task that
 * ended, also after a restart; a task that was running when a2ad stopped
 * is run again or failed at the next start, and a client reconnecting to
 * it gets the task as it is (the fallback below).
 *
 * Thread: the observer runs with the task locked; replay_after_locked needs
 * the task lock too (streams.c calls it inside stream_open).
 */
#ifndef A2AD_REPLAY_H
#define A2AD_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "core/tasks.h"

/* Register the slot ops and the observer; max_bytes 0 = keep nothing (a
 * reconnect then gets the task as it is now). Thread: main, before any task. */
void replay_init(size_t max_bytes);

/* The kept events of t with a number above `after`, oldest first, as an
 * array of {"seq": N, "event": <0.3 event>} (new). *complete is false when
 * some event above `after` is no longer kept (the caller must then start
 * from the task as it is now). Task locked. */
cJSON *replay_after_locked(struct task *t, uint64_t after, bool *complete);

/* The bound of replay_init (also that of a stream resumed from another
 * node's events, cluster_resume). */
size_t replay_max_bytes(void);

/* Parse a Last-Event-ID of task task_id: "TASKID.SEQ" or "SEQ". */
bool replay_parse_id(const char *last_event_id, const char *task_id, uint64_t *seq);

#endif
