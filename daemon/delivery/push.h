/* push - A2A push notifications: each task's webhook configs, and the body
 * posted to them on every event of the task.
 *
 * The configs of a task live in its TASK_EXT_PUSH slot, guarded by the task
 * lock; a task has at most max_per_task of them, each with its own id. Each
 * config keeps the dialect it was registered in: on every event the push
 * observer queues, for a 0.3 config, the whole Task (A2A 0.3 JSON,
 * application/json), for a 1.0 config the StreamResponse of the event
 * ({"statusUpdate"|"artifactUpdate": ...}, application/a2a+json). Headers:
 * X-A2A-Notification-Token when the config has a token, Authorization
 * "SCHEME CREDENTIALS" when its authentication has credentials.
 * Deliveries of one task to one config keep their order (order key
 * "TASKID|CONFIGID"). Each carries the event id "TASKID.SEQ.N" (SEQ the
 * event's number, N the config's place, from 1) in X-A2A-Event-Id.
 */
#ifndef A2AD_PUSH_H
#define A2AD_PUSH_H

#include <stddef.h>

#include <cJSON.h>

#include "front/a2a_v1.h"
#include "a2ad/agent.h"

struct task;

/* The longest config id a client may give, in bytes (the specification
 * sets none; ids travel in event ids and order keys, so they are bounded). */
#define PUSH_ID_MAX 256

/* Config ids: a client may name a config (1 to PUSH_ID_MAX bytes). A
 * config given inline with message/send (SendMessage) without an id is
 * named after its task: its id is the task id, as in the official SDKs,
 * and tasks/pushNotificationConfig/get (GetTaskPushNotificationConfig)
 * without a config id answers that one. A config set later without an id
 * gets a new UUID. */
struct push_config {
    const char *id;    /* NULL = generated (see above) */
    const char *url;   /* required */
    const char *token; /* NULL = none; sent as X-A2A-Notification-Token */
    /* NULL = none; else, as the dialect spells it, 0.3 {"schemes": [..],
     * "credentials"?} or 1.0 {"scheme", "credentials"?} (checked with
     * push_check_auth; copied) */
    const cJSON *authentication;
    enum a2a_dialect dialect;
};

/* Register the slot ops and the observer. Thread: main, before any task. */
void push_init(unsigned max_per_task);

/* Slot data holding one config (strings copied), for task_create.ext
 * [TASK_EXT_PUSH]; without an id it takes the task's id once the task is
 * created. NULL when out of memory. */
void *push_configs_new(const struct push_config *first);

/* NULL when auth is a valid authentication object of dialect d, else what
 * is wrong, for an error message ("must be ..."). */
const char *push_check_auth(const cJSON *auth, enum a2a_dialect d);

/* Add a config to t, or replace the one with the same id. Its id (given or
 * generated) is written to id_out (at least PUSH_ID_MAX + 1 bytes). A2AD_ERR_FULL when t has max_per_task configs already.
 * Thread: any (takes the task lock). */
a2ad_status push_config_set(struct task *t, const struct push_config *c, char *id_out);

/* t's configs as a new array of {"id","url","token"?,"authentication"?,
 * "dialect":"0.3"|"1.0"}, in registration order; id != NULL: only that one
 * (an empty array if there is none). Thread: any. */
cJSON *push_configs_of(struct task *t, const char *id);

/* Remove the config id of t; A2AD_ERR_NOT_FOUND if there is none. */
a2ad_status push_config_delete(struct task *t, const char *id);

#endif
