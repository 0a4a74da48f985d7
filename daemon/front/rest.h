/* rest - the HTTP+JSON (REST) binding of A2A 1.0, on the same port and
 * task store as JSON-RPC.
 *
 * It holds no A2A logic of its own. A REST request is translated into the
 * JSON-RPC 1.0 request the JSON-RPC front end would get (method name and
 * params object: path segments and query arguments become params), handed
 * to rpc_handle, and its answer rendered back: the result object as the
 * body, an error as {"error": {"code": HTTP, "status": "NOT_FOUND", ...,
 * "message", "details": [ErrorInfo]}} with the HTTP status of A2A 1.0.1
 * (TaskNotFound 404, invalid params 400, the other A2A errors 400
 * FAILED_PRECONDITION or INVALID_ARGUMENT, InvalidAgentResponse 500), and
 * streams as SSE whose data is the bare StreamResponse.
 *
 * Routes (after /agents/NAME for one agent, or at the root for the
 * default agent):
 *   POST /message:send               SendMessage
 *   POST /message:stream             SendStreamingMessage (SSE)
 *   GET  /tasks/{id}                 GetTask (?historyLength=)
 *   GET  /tasks                      ListTasks (query: contextId, status, pageSize,
 *                                    pageToken, historyLength, statusTimestampAfter,
 *                                    includeArtifacts)
 *   POST /tasks/{id}:cancel          CancelTask
 *   GET|POST /tasks/{id}:subscribe   SubscribeToTask (SSE)
 *   POST /tasks/{id}/pushNotificationConfigs          CreateTaskPushNotificationConfig
 *   GET  /tasks/{id}/pushNotificationConfigs          ListTaskPushNotificationConfigs
 *   GET  /tasks/{id}/pushNotificationConfigs/{cid}    GetTaskPushNotificationConfig
 *   DELETE /tasks/{id}/pushNotificationConfigs/{cid}  DeleteTaskPushNotificationConfig
 *   GET  /extendedAgentCard          GetExtendedAgentCard
 * each also as /{tenant}/... (A2A 1.0 multi-tenancy: params.tenant).
 *
 * Pure functions on their arguments; safe from any thread.
 */
#ifndef A2AD_REST_H
#define A2AD_REST_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "core/rpc.h"

struct rest_target {
    const char *method;     /* the JSON-RPC 1.0 method */
    bool empty_result;      /* Delete: the body is {} */
    bool v03;               /* A2A 0.3's binding (/v1/..., rest03.h): a JSON-RPC 0.3 method */
    char task_id[256];      /* from the path, "" = none */
    char config_id[260];    /* from the path, "" = none */
    char tenant[260];       /* the path prefix /{tenant}/..., "" = none */
};

/* Whether an HTTP method and path (after any /agents/NAME) name a REST
 * resource; fills t. A known path with the wrong HTTP method is *bad_method
 * (405). */
bool rest_match(const char *http_method, const char *path, struct rest_target *t,
                bool *bad_method);

/* The JSON-RPC 1.0 request text for t (malloc'd): body is the request
 * body (may be empty), query(arg, key) reads a query argument (NULL when
 * absent). NULL with *err set (a REST error body, malloc'd) and *status
 * when the body is not a JSON object. */
/* The JSON-RPC request text {"jsonrpc","id":0,"method","params"} that a
 * REST request of either version becomes; params is TAKEN. */
char *rest_jsonrpc_text(const char *method, cJSON *params);

char *rest_request(const struct rest_target *t, const char *body, size_t len,
                   const char *(*query)(void *arg, const char *key), void *arg, int *status,
                   char **err);

/* Rewrite a finished reply of rpc_handle (out->body set, no stream) as
 * the REST answer: out->body and out->http_status replaced. */
void rest_reply(const struct rest_target *t, struct rpc_reply *out);

/* A REST error body (malloc'd) for an HTTP status and message. */
char *rest_error_body(int http_status, const char *message);

#endif
