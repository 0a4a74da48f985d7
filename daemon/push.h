/* push - A2A push notifications: each task's webhook configs, and the body
 * posted to them on every event of the task.
 *
 * The configs of a task live in its TASK_EXT_PUSH slot. On every event the
 * push observer renders the whole Task (A2A 0.3 style) once and queues it on
 * the webhooks module for each config, with the config's token in
 * X-A2A-Notification-Token. Deliveries of one task to one config keep their
 * order (order key "TASKID|CONFIGID"). Each carries the event id
 * "TASKID.SEQ.N" (SEQ the event's number, N the config's place, from 1) in
 * X-A2A-Event-Id.
 */
#ifndef A2AD_PUSH_H
#define A2AD_PUSH_H

#include "a2ad/agent.h"

struct push_config {
    const char *id;    /* NULL = generated */
    const char *url;   /* required */
    const char *token; /* NULL = none; sent as X-A2A-Notification-Token */
};

/* Register the slot ops and the observer. Thread: main, before any task. */
void push_init(void);

/* Slot data holding one config (strings copied), for task_create.ext
 * [TASK_EXT_PUSH]. NULL when out of memory. */
void *push_configs_new(const struct push_config *first);

#endif
