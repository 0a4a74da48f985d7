/* tenant - A2A 1.0 multi-tenancy: the `tenant` of a request scopes the
 * tasks it can see.
 *
 * A 1.0 request may name a tenant (params.tenant; over HTTP+JSON the path
 * prefix /{tenant}/...). A task created by a request with a tenant belongs
 * to that tenant (TASK_EXT_TENANT slot, saved with the task); every later
 * request finds it only with the same tenant: GetTask, CancelTask,
 * SubscribeToTask, the push-config methods and a message continuing it
 * answer -32001 (task not found) otherwise, and ListTasks lists only that
 * tenant's tasks. A request without a tenant (every 0.3 request) is the
 * default tenant "", which sees only tasks created without one.
 *
 * Thread: any; tenant_matches takes the task lock.
 */
#ifndef A2AD_TENANT_H
#define A2AD_TENANT_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

struct task;

/* The longest tenant, in bytes. */
#define TENANT_MAX 256

/* Register the slot ops. Thread: main, before any task. */
void tenant_init(void);

/* params.tenant of a 1.0 request: *out = the tenant ("" = none; borrowed
 * from params). False with why set when it is not a string of at most
 * TENANT_MAX bytes without control characters or "/". */
bool tenant_of_params(const cJSON *params, const char **out, char *why, size_t n);

/* Slot data for task_create.ext[TASK_EXT_TENANT]; NULL for "" (none) or
 * out of memory (*oom set). */
void *tenant_slot_new(const char *tenant, bool *oom);

/* Whether t belongs to tenant ("" = the default tenant). Takes the task
 * lock: not for observers. */
bool tenant_matches(struct task *t, const char *tenant);

/* The same with the task lock held. */
bool tenant_matches_locked(struct task *t, const char *tenant);

#endif
