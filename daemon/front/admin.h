/* admin - the operators' surface: a JSON API under /admin/v1/ and the web
 * dashboard's static files under /ui/.
 *
 * The API (every answer JSON; errors {"error": "..."} with 400 for a bad
 * filter naming it, 401 for a missing or wrong token, 403 while no admin
 * token is configured, 404 for an unknown task or path, 405, 409):
 *   GET  /admin/v1/agents                    agents and their tasks by state
 *   GET  /admin/v1/tasks?agent=&state=&context=&limit=&cursor=
 *                                            tasks of every agent, the most
 *                                            recently changed first
 *   GET  /admin/v1/tasks/ID                  one task: history, artifacts,
 *                                            metadata, its pending webhooks
 *   POST /admin/v1/tasks/ID/cancel
 *   GET  /admin/v1/tasks/ID/webhooks         its pending webhook events
 *   POST /admin/v1/tasks/ID/webhooks/purge   drop them / send them again now
 *   POST /admin/v1/tasks/ID/webhooks/replay
 *   GET  /admin/v1/webhooks?target=URL       pending events of every task
 *   POST /admin/v1/webhooks/purge?target=URL  (target required)
 *   POST /admin/v1/webhooks/replay?target=URL
 *   GET  /admin/v1/nodes                     the nodes on one PostgreSQL
 * With several nodes on one PostgreSQL (cluster.h) the agents' counts and
 * the task list include the other nodes' tasks (each summary names its
 * node), and a task of another node is read and canceled through any node;
 * its webhook events are listed and acted on by its holder's admin API.
 * Every request needs "Authorization: Bearer T" with T one of [server]
 * admin_tokens; the admin API is off while that key is empty.
 *
 * The dashboard (/ui/, [server] ui = yes) is a few static files built into
 * the binary (daemon/front/ui/, see ui_files.h); it reads /healthz and, given an
 * admin token, the API above.
 */
#ifndef A2AD_ADMIN_H
#define A2AD_ADMIN_H

#include <microhttpd.h>
#include <stdbool.h>

#include "config.h"

/* Copy the settings ([server] admin_tokens, ui). Thread: main, before the
 * HTTP server starts. */
void admin_init(const struct config *cfg);
/* Free what admin_init copied. Thread: main, after the HTTP server stopped. */
void admin_shutdown(void);

/* True for the paths answered here (/admin/..., /ui, /ui/...). */
bool admin_owns(const char *url);

/* Answer a request for such a path at once (bodies are not read: no call
 * takes one). Thread: an HTTP thread. */
enum MHD_Result admin_serve(struct MHD_Connection *c, const char *method, const char *url);

#endif
