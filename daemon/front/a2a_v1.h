/* a2a_v1 - the two wire dialects of A2A: 0.3 and 1.0, and the conversions
 * between them.
 *
 * a2ad keeps every object in the 0.3 shape internally (tasks.c renders
 * Tasks, Messages and Artifacts with "kind"). This module turns those into
 * the 1.0 (ProtoJSON) shapes on the way out, turns 1.0 request objects into
 * the 0.3 shape on the way in, and renders task events for streams and
 * webhooks in either dialect. It holds no state; every function is safe
 * from any thread.
 */
#ifndef A2AD_A2A_V1_H
#define A2AD_A2A_V1_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "core/tasks.h"

enum a2a_dialect {
    A2A_V03, /* slash method names, "kind" discriminators, kebab enums */
    A2A_V10  /* PascalCase methods, member-name discriminators, TASK_STATE_* */
};

/* "TASK_STATE_WORKING", ... */
const char *v1_state_name(enum task_state s);

/* 0.3 -> 1.0 (new objects; the input is borrowed and unchanged). */
cJSON *v1_task(const cJSON *task03);
cJSON *v1_message(const cJSON *message03);
cJSON *v1_artifact(const cJSON *artifact03);

/* 1.0 -> 0.3, in place: ROLE_* to user/agent, {"text"}/{"raw"}/{"url"}/
 * {"data"} parts to kind text/file/data. Returns false with err set (naming
 * the field under `where`) when a part has none of the four members. */
bool v1_message_to_v03(cJSON *message, const char *where, char *err, size_t errlen);

/* Rename snake_case member names (task_id, history_length, ...) to
 * camelCase through the whole tree, except inside "metadata", "data" and
 * "params" values, which belong to the client. 1.0 clients may send either
 * spelling (ProtoJSON accepts both). */
void v1_camel_keys(cJSON *o);

/* The stream/webhook rendering of one task event, or NULL for events that
 * have none (CREATED). 0.3: a TaskStatusUpdateEvent (with "final") or a
 * TaskArtifactUpdateEvent. 1.0: a StreamResponse {"statusUpdate": ...} or
 * {"artifactUpdate": ...}. Call with the task locked (an observer). */
cJSON *a2a_event(struct task *t, const struct task_event *ev, enum a2a_dialect d);

/* An event as a2a_event rendered it in 0.3 (borrowed) in dialect d: a
 * copy, or the 1.0 StreamResponse. NULL when out of memory or not an event. */
cJSON *a2a_event_in(const cJSON *ev03, enum a2a_dialect d);

/* A Task (0.3, as task_render gives it; TAKEN) in dialect d: itself, or
 * the 1.0 Task. */
cJSON *a2a_task_in(cJSON *task03, enum a2a_dialect d);

/* A Task (0.3, TAKEN) as the result of a send or the first frame of a
 * stream: the 0.3 Task itself, or the 1.0 {"task": Task}. NULL when
 * task03 is NULL or out of memory. */
cJSON *a2a_task_result(cJSON *task03, enum a2a_dialect d);

/* 1.0 error details: [{"@type": ErrorInfo, "reason", "domain"}] for the A2A
 * codes -32001..-32009, else NULL. */
cJSON *v1_error_data(int code);

#endif
