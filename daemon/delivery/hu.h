/* hu - the Health Universe background_job/v1 extension.
 *
 * The Health Universe platform drives agents written with its A2A SDK: it
 * sends message/send with a job id and an API key under the extension URI,
 * expects an immediate "submitted" answer, and then waits for plain JSON
 * POSTs (not A2A objects) at two URLs it chose: progress, artifacts and the
 * terminal status at job_status_update_url, the result at job_results_url,
 * each with the header X-API-Key. This module makes every agent hosted by
 * a2ad speak that protocol, field for field as the SDK (0.2.0) does, see
 * README "Health Universe platform".
 *
 * Request (hu_parse): the metadata is params.metadata, or, only when that is
 * empty or absent, params.message.metadata (never merged, as in the SDK).
 * It holds {"job_id","api_key"} under HU_BACKGROUND_JOB_URI and the two URLs
 * at its top level. The extension is active when that key is present, or
 * when the A2A-Extensions / X-A2A-Extensions header or message.extensions
 * lists the URI; an active extension with missing or bad parameters is
 * refused before anything is acknowledged.
 *
 * Per task, the parameters live in the TASK_EXT_HU slot. The observer turns
 * the task's events into the SDK's bodies and queues them on the webhooks
 * module under one order key per task, so both URLs share one FIFO: the
 * terminal status update always precedes the results POST, and failed
 * attempts are retried like A2A push notifications.
 */
#ifndef A2AD_HU_H
#define A2AD_HU_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "a2ad/agent.h"

#define HU_BACKGROUND_JOB_URI "https://healthuniverse.com/ext/background_job/v1"

struct agent;
struct config;
struct task;

/* Register the slot ops and the observer, and copy each [agent.NAME]
 * hu_min_importance from cfg (NULL = every agent posts every update).
 * Thread: main, before any task. */
void hu_init(const struct config *cfg);
/* Free what hu_init copied. Thread: main, after the last task. */
void hu_shutdown(void);

/* Read the extension's parameters from a message/send request for agent.
 * params is the request's params object: when the extension is active its
 * api_key is removed from the metadata in place, so the copy the task keeps
 * (and tasks/get, push notifications and the ack show) never holds it.
 * extensions_header is the A2A-Extensions / X-A2A-Extensions value or NULL.
 * Returns A2AD_OK with *job NULL when the extension is not active, A2AD_OK
 * with *job set (slot data for task_create.ext[TASK_EXT_HU], owned by the
 * caller until then; hu_job_free releases it), A2AD_ERR_INVALID with a
 * message naming the field in err (answer -32602), or A2AD_ERR_NOMEM.
 * Thread: any. */
a2ad_status hu_parse(const struct agent *agent, cJSON *params, const char *extensions_header,
                     void **job, char *err, size_t errlen);
void hu_job_free(void *job);

/* The answer to a Health Universe message/send: the task rendered with
 * history_length (as task_render), in state submitted, with the SDK's
 * acknowledgement message ("Job submitted successfully...") and, in the
 * message's and the task's metadata, estimated_duration_seconds (estimate_s
 * from validate, else the descriptor's, left out when both are 0) and
 * {"job_id"} under the extension URI. Call once validate accepted the job
 * and before it is queued, so the rendered state is really submitted.
 * Returns a new object (caller frees), NULL when out of memory.
 * Thread: any. */
cJSON *hu_ack(struct task *t, int history_length, uint32_t estimate_s);

/* Add "extensions" with the background_job/v1 entry (description, and the
 * agent's estimated and maximum durations as params) to an agent card's
 * capabilities object. */
void hu_card_extensions(cJSON *capabilities, const struct agent *agent);

#endif
