/* rest03 - A2A 0.3's HTTP+JSON binding, next to 1.0's (rest.h), as a
 * translation to JSON-RPC 0.3.
 *
 * 0.3's binding lives under /v1 and speaks the JSON of 0.3's proto, which
 * is neither 0.3 JSON-RPC's shapes nor 1.0's: Message.content (not
 * parts), Part {text}|{file:{fileWithUri|fileWithBytes, mimeType}}|
 * {data:{data}}, ROLE_USER, TASK_STATE_* (with CANCELLED), send and stream
 * answers {"task"}|{"message"}|{"statusUpdate"(with final)}|
 * {"artifactUpdate"}, push configs {name: "tasks/T/pushNotificationConfigs/C",
 * pushNotificationConfig}. A request is turned into the JSON-RPC 0.3
 * request (message/send, tasks/get, ...) and goes through rpc_handle; the
 * 0.3 result is rendered back. Errors are the JSON-RPC error object itself,
 * {code, message, data}, with the HTTP statuses of the official 0.3 server
 * (@a2a-js/sdk 0.3): -32001 404, -32002 409, invalid params and the other
 * client errors 400, the rest 500.
 *
 * Routes (after /agents/NAME, or at the root):
 *   POST /v1/message:send            message/send
 *   POST /v1/message:stream          message/stream (SSE)
 *   GET  /v1/tasks/{id}              tasks/get (?historyLength=)
 *   POST /v1/tasks/{id}:cancel       tasks/cancel
 *   GET|POST /v1/tasks/{id}:subscribe                   tasks/resubscribe (SSE)
 *   POST /v1/tasks/{id}/pushNotificationConfigs         .../set
 *   GET  /v1/tasks/{id}/pushNotificationConfigs         .../list
 *   GET  /v1/tasks/{id}/pushNotificationConfigs/{cid}   .../get
 *   DELETE /v1/tasks/{id}/pushNotificationConfigs/{cid} .../delete ({})
 *   GET  /v1/card                    agent/getAuthenticatedExtendedCard
 *
 * Pure functions, except the stream filter (one per connection).
 */
#ifndef A2AD_REST03_H
#define A2AD_REST03_H

#include <stdbool.h>
#include <stddef.h>

#include "front/rest.h"

/* As rest_request: the JSON-RPC 0.3 request text for t. */
char *rest03_request(const struct rest_target *t, const char *body, size_t len,
                     const char *(*query)(void *arg, const char *key), void *arg, int *status,
                     char **err);

/* As rest_reply, in 0.3's shapes. */
void rest03_reply(const struct rest_target *t, struct rpc_reply *out);

/* A 0.3 REST error body {code, message} (malloc'd). */
char *rest03_error_body(int code, const char *message);

/* The SSE filter of one 0.3 REST stream: frames of the bare 0.3 events go
 * in (any split), frames of the proto StreamResponse come out; a JSON-RPC
 * error frame becomes `event: error` with the error object. */
struct rest03_sse;
struct rest03_sse *rest03_sse_new(void);
void rest03_sse_free(struct rest03_sse *x);
bool rest03_sse_feed(struct rest03_sse *x, const char *buf, size_t n);
size_t rest03_sse_take(struct rest03_sse *x, char *buf, size_t max);

#endif
