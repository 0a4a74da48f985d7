/* rpc - the A2A JSON-RPC 2.0 surface (protocols 0.3 and 1.0 on the same
 * endpoint) and agent cards.
 *
 * Knows nothing of HTTP: it takes a request body for one agent and gives a
 * reply body, or asks the caller to wait for a task to end (blocking
 * message/send) and then render the reply with rpc_reply_waited, or hands
 * it a stream to send as Server-Sent Events (message/stream and friends).
 * The method name chooses the dialect: slash names are 0.3, PascalCase
 * names 1.0, as the official SDKs do; the A2A-Version header is checked
 * (absent or empty = 0.3; 0.3 and 1.0 are spoken, anything else -32009).
 */
#ifndef A2AD_RPC_H
#define A2AD_RPC_H

#include <stdbool.h>
#include <stddef.h>

#include "front/a2a_v1.h"
#include "a2ad/agent.h"

struct agent;
struct task;
struct stream;
struct rpc_resume;
struct auth_principal;

enum rpc_error {
    RPC_PARSE_ERROR = -32700,
    RPC_INVALID_REQUEST = -32600,
    RPC_METHOD_NOT_FOUND = -32601,
    RPC_INVALID_PARAMS = -32602,
    RPC_INTERNAL_ERROR = -32603,
    RPC_TASK_NOT_FOUND = -32001,
    RPC_TASK_NOT_CANCELABLE = -32002,
    RPC_PUSH_NOT_SUPPORTED = -32003,
    RPC_UNSUPPORTED_OPERATION = -32004,
    RPC_CONTENT_TYPE_NOT_SUPPORTED = -32005,
    RPC_EXTENDED_CARD_NOT_CONFIGURED = -32007,
    RPC_EXTENSION_REQUIRED = -32008,
    RPC_VERSION_NOT_SUPPORTED = -32009
};

/* Daemon-wide settings of the JSON-RPC surface. */
struct rpc_settings {
    /* [webhooks] enabled: false = the cards say pushNotifications: false
     * and every push config request gets -32003. */
    bool push_enabled;
};

/* Copy the settings. Thread: main, before the HTTP server starts. */
void rpc_init(const struct rpc_settings *s);
/* Free what rpc_init copied. Thread: main, after the HTTP server stopped. */
void rpc_shutdown(void);

struct rpc_reply {
    int http_status;     /* 200, or 503 for a full queue, 413 oversize... */
    char *body;          /* malloc'd JSON text, NULL while waiting */
    unsigned retry_after_s; /* > 0: send Retry-After */
    /* Blocking wait: the caller waits until `wait_task` is terminal, then
     * calls rpc_reply_waited. The reply holds a task reference. */
    struct task *wait_task;
    char *wait_id;       /* the request's JSON id, serialised */
    int wait_history;    /* historyLength to render */
    enum a2a_dialect wait_dialect; /* how to render it */
    /* SSE: send the frames of this stream (text/event-stream) and close it
     * with stream_close when the connection ends (rpc_reply_clear does). */
    struct stream *stream;
    bool auth_challenge; /* 401: send WWW-Authenticate: Bearer */
    /* body is one SSE event (an error of a streaming method asked with
     * Accept: text/event-stream): send it as text/event-stream and end. */
    bool sse_body;
    /* Durable store (rpc_request.can_defer): the new task's CREATED row is
     * being written. The caller waits without blocking a thread, e.g. with
     * tasks_on_durable(durable_task, ...), then calls rpc_resume, which
     * fills in the real reply (body, wait_task or stream). Nothing has
     * been acknowledged yet. The reply holds a task reference. */
    struct task *durable_task;
    struct rpc_resume *resume; /* what rpc_resume needs; opaque */
};

/* One HTTP request as rpc sees it; everything borrowed for the call. */
struct rpc_request {
    const struct agent *agent; /* NULL when the path names no agent */
    const char *body;
    size_t len;
    /* Request headers, NULL when absent. */
    const char *a2a_version;   /* A2A-Version */
    const char *extensions;    /* A2A-Extensions, else X-A2A-Extensions */
    const char *authorization; /* Authorization */
    /* The authenticated caller (auth_identify, done by the binding before
     * rpc_handle; NULL = authentication is off). Methods show it only its
     * own tasks, of the agents it may use. */
    const struct auth_principal *principal;
    /* The URL of this endpoint, for the extended card; NULL = unknown. */
    const char *base_url;
    /* The caller can wait for the durable store without blocking (see
     * rpc_reply.durable_task); false = rpc_handle blocks until the write. */
    bool can_defer;
    /* Accept names text/event-stream: an error of a streaming method is
     * answered as one SSE event (see rpc_reply.sse_body). */
    bool accept_sse;
    /* Last-Event-ID (a client reconnecting to tasks/resubscribe or
     * SubscribeToTask): replay what it missed (streams.h); NULL = none. */
    const char *last_event_id;
    /* The HTTP+JSON binding (rest.c): SSE frames carry the bare
     * StreamResponse, not a JSON-RPC response. */
    bool bare_stream;
};

/* Handle one JSON-RPC request. Fills out. Thread: any HTTP thread. */
void rpc_handle(const struct rpc_request *req, struct rpc_reply *out);

/* A JSON-RPC error reply with id null (for errors found before parsing,
 * such as an oversize body). Returns malloc'd JSON text. */
char *rpc_error_body(int code, const char *message);

/* Render the reply of a finished wait into out->body and drop the wait
 * fields (releases the task reference). */
void rpc_reply_waited(struct rpc_reply *out);

/* Finish a reply that had durable_task: the row is settled (else this
 * blocks until it is). Acknowledges the job (or answers the store's
 * refusal, 503) and fills out like rpc_handle; durable_task is cleared.
 * Thread: any HTTP thread. */
void rpc_resume(struct rpc_reply *out);

/* Free what a reply holds (body, task reference). A reply still waiting
 * for its durable row discards the task: it was never acknowledged. */
void rpc_reply_clear(struct rpc_reply *out);

/* The agent card of agent served at base_url (e.g.
 * "http://127.0.0.1:8080/agents/echo"), as malloc'd JSON text. A2A_V03
 * gives the card both versions read: the 0.3 fields (protocolVersion, url,
 * preferredTransport, additionalInterfaces) plus the 1.0 ones
 * (supportedInterfaces, capabilities.extendedAgentCard); A2A_V10 (a client
 * that sent A2A-Version: 1.0) gives the pure 1.0 card. */
char *rpc_agent_card(const struct agent *agent, const char *base_url, enum a2a_dialect d);

#endif
