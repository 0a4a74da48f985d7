/* http - the libmicrohttpd server: routes, body limits, blocking waits.
 *
 * Routes: POST / and POST /agents/NAME (JSON-RPC), GET
 * /.well-known/agent-card.json (and the legacy agent.json), GET
 * /agents/NAME/.well-known/agent-card.json, GET /healthz.
 */
#ifndef A2AD_HTTP_H
#define A2AD_HTTP_H

#include "a2ad/agent.h"
#include "config.h"

/* Listen and serve on internal threads (epoll). Thread: main. */
a2ad_status http_start(const struct config *cfg);

/* Stop taking connections (a new one is closed as soon as it is accepted;
 * the listening socket closes in http_stop) but keep serving the open ones.
 * Thread: main. */
void http_quiesce(void);

/* Answer every blocked message/send with the task's current state, then
 * stop the server. Thread: main. */
void http_stop(void);

/* The port actually bound (useful with port 0). */
unsigned http_port(void);

#endif
