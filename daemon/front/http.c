/* http - the libmicrohttpd server. See http.h for the routes.
 *
 * Request state lives in *req_cls and is freed only in the completion
 * callback. A blocking message/send suspends its connection (no thread is
 * held) and registers a task waiter that resumes it; exactly one side
 * resumes a connection: whichever removes it from the waiting list.
 *
 * With the durable store, a new message/send is suspended the same way
 * until the writer thread has committed its task (tasks_on_durable), so no
 * thread waits for the disk and one commit carries every concurrent send;
 * the resumed request is then answered (rpc_resume), which may in turn
 * start a blocking wait or a stream.
 *
 * A stream (SSE) is a callback response: the reader copies what the
 * stream has buffered, and when nothing is buffered it suspends the
 * connection from inside the callback (the stream's park) and returns 0;
 * the next frame resumes it (the stream's wake). No thread waits.
 *
 * Per-client limits: libmicrohttpd counts connections per address; admission.c
 * adds the rate limit (checked at each request's first call) and the time
 * limit for receiving a request (each connection's deadline, stopped once
 * the request is in, restarted when it completes).
 */
#include "front/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/auth.h"
#include "front/a2a_v1.h"
#include "front/admin.h"
#include "jsonlimit.h"
#include "front/admission.h"
#include "log.h"
#include "logclient.h"
#include "front/metrics.h"
#include "agents/plugins.h"
#include "front/rest.h"
#include "front/rest03.h"
#include "front/readiness.h"
#include "core/rpc.h"
#include "store/store.h"
#include "front/streams.h"
#include "front/tls.h"
#include "core/tasks.h"
#include "util.h"
#include "delivery/webhooks.h"
#include "agents/workers.h"

struct request {
    struct MHD_Connection *conn;
    const struct agent *agent; /* route target of a POST, pinned */
    const struct auth_principal *principal; /* the caller; NULL = authentication off */
    bool is_rpc;
    char *body;
    size_t len, cap;
    bool too_big;
    const char *unauth;        /* static reason: refused with 401 once the (small) body is read */
    struct rpc_reply reply;
    struct rest_target *rest;  /* an HTTP+JSON request (rest.h), else NULL */
    struct rest03_sse *sse03;  /* its 0.3 stream filter (rest03.h), else NULL */
    bool at_root;              /* POST / rather than /agents/NAME */
    bool suspended;            /* waiting for its task, or for its row */
    struct request *prev, *next; /* in the waiting list while suspended */
    /* MHD's (dropped in completed) and a tasks_on_durable callback's: the
     * store's writer may call back after MHD ended the connection at
     * shutdown. */
    atomic_int refs;
    uint64_t arrived_us; /* for the ack latency */
};

static struct {
    struct MHD_Daemon *daemon;
    size_t max_body;
    char base_url[300];
    unsigned port;
    pthread_mutex_t lock; /* guards the waiting list */
    struct request *waiting;
    size_t n_waiting;
    bool stopping; /* http_stop took the waiting list: no new waits */
} srv = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Set when the graceful stop begins: /readyz answers 503 from then on. */
static atomic_bool http_stopping;

/* Every response goes through here, so that it is counted. */
static enum MHD_Result queue_response(struct MHD_Connection *c, unsigned status,
                                      struct MHD_Response *r) {
    metrics_http_response(status);
    return MHD_queue_response(c, status, r);
}

/* status 401 adds the challenge WWW-Authenticate: Bearer. */
static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
                                 char *body /* taken */, unsigned retry_after_s) {
    size_t len = body ? strlen(body) : 0;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE
                                                                            : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (retry_after_s) {
        char v[16];
        snprintf(v, sizeof v, "%u", retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    enum MHD_Result ret = queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, char *body) {
    return send_text(c, status, "application/json", body, 0);
}

/* Plain HTTP errors (not JSON-RPC): {"error": "..."}. */
static enum MHD_Result send_http_error(struct MHD_Connection *c, unsigned status, const char *msg) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return send_json(c, status, body);
}

/* "<lead>echo, processor, ...": every "no such agent" answer lists the
 * agents that are loaded, so the fix is in the message; to an
 * authenticated caller only those it may use. */
struct name_list {
    char *out;
    size_t n, o, count;
    const struct auth_principal *p;
};

static void name_add(const struct agent *a, void *arg) {
    struct name_list *l = arg;
    if (!auth_may_use_agent(l->p, a->desc.name)) return;
    if (l->o < l->n)
        l->o += (size_t)snprintf(l->out + l->o, l->n - l->o, "%s%s", l->count ? ", " : "",
                                 a->desc.name);
    l->count++;
}

static void with_agent_list_for(char *out, size_t n, const char *lead,
                                const struct auth_principal *p) {
    struct name_list l = {out, n, (size_t)snprintf(out, n, "%s", lead), 0, p};
    plugins_each(name_add, &l);
}

static void with_agent_list(char *out, size_t n, const char *lead) {
    with_agent_list_for(out, n, lead, NULL);
}

/* Unauthenticated JSON-RPC bodies are read only up to this size. */
#define UNAUTH_BODY_MAX 4096

static bool is_extended_card_method(const char *m) {
    return m && (strcmp(m, "agent/getAuthenticatedExtendedCard") == 0 ||
                 strcmp(m, "GetExtendedAgentCard") == 0);
}

/* A 401 with WWW-Authenticate: Bearer and a JSON-RPC error: -32600 with the
 * request's id when r holds its (small) body, else id null; the extended
 * card gets -32007, the code 0.3 and 1.0 clients map for a card this caller
 * cannot have. */
static enum MHD_Result send_unauthenticated(struct MHD_Connection *c, const char *why,
                                            const struct request *r) {
    char *body = NULL;
    cJSON *req = r && r->body ? cJSON_ParseWithLength(r->body, r->len) : NULL;
    if (cJSON_IsObject(req)) {
        const cJSON *id = cJSON_GetObjectItem(req, "id");
        const cJSON *m = cJSON_GetObjectItem(req, "method");
        bool card = is_extended_card_method(cJSON_GetStringValue(m));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "jsonrpc", "2.0");
        if (cJSON_IsString(id) || cJSON_IsNumber(id))
            cJSON_AddItemToObject(o, "id", cJSON_Duplicate(id, false));
        else
            cJSON_AddNullToObject(o, "id");
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        cJSON_AddNumberToObject(e, "code", card ? RPC_EXTENDED_CARD_NOT_CONFIGURED : RPC_INVALID_REQUEST);
        cJSON_AddStringToObject(e, "message", why ? why : "authentication required");
        if (card && strcmp(cJSON_GetStringValue(m), "GetExtendedAgentCard") == 0) {
            cJSON *data = v1_error_data(RPC_EXTENDED_CARD_NOT_CONFIGURED);
            if (data) cJSON_AddItemToObject(e, "data", data);
        }
        body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    cJSON_Delete(req);
    if (!body) body = auth_unauthenticated_body(why);
    return send_text(c, MHD_HTTP_UNAUTHORIZED, "application/json", body, 0);
}

/* The name route_agent last looked up on this thread, for its 404. */
static _Thread_local char srv_last_name[64];

/* "unknown agent", or why the agent is gone when it was removed lately;
 * the list holds the agents p may use. */
static void unknown_agent_for(char *msg, size_t n, const char *lead,
                              const struct auth_principal *p) {
    char why[300], head[460];
    if (srv_last_name[0] && plugins_removed(srv_last_name, why, sizeof why)) {
        snprintf(head, sizeof head, "agent %s was removed (%s); loaded agents: ", srv_last_name, why);
        lead = head;
    }
    with_agent_list_for(msg, n, lead, p);
}

static void unknown_agent(char *msg, size_t n, const char *lead) {
    unknown_agent_for(msg, n, lead, NULL);
}

/* "/agents/NAME" or "/agents/NAME/<rest>": the agent (pinned: plugins_put
 * it) and the rest. */
static const struct agent *route_agent(const char *url, const char **rest, bool *named) {
    *named = false;
    *rest = url;
    srv_last_name[0] = '\0';
    if (strncmp(url, "/agents/", 8) != 0) return NULL;
    const char *name = url + 8;
    size_t n = strcspn(name, "/");
    char buf[64];
    *named = true;
    *rest = name + n;
    if (n == 0 || n >= sizeof buf) return NULL;
    memcpy(buf, name, n);
    buf[n] = '\0';
    memcpy(srv_last_name, buf, n + 1);
    return plugins_get(buf);
}

static void endpoint_url(char *url, size_t n, const struct agent *a, bool at_root) {
    if (at_root)
        snprintf(url, n, "%s/", srv.base_url);
    else
        snprintf(url, n, "%s/agents/%s", srv.base_url, a->desc.name);
}

/* A client that says A2A-Version: 1.x gets the pure 1.0 card; everyone
 * else the card that carries both versions' fields. */
static enum MHD_Result serve_card(struct MHD_Connection *c, const struct agent *a, bool at_root) {
    char url[400];
    endpoint_url(url, sizeof url, a, at_root);
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "A2A-Version");
    while (v && *v == ' ') v++;
    enum a2a_dialect d = v && strncmp(v, "1.", 2) == 0 ? A2A_V10 : A2A_V03;
    return send_json(c, MHD_HTTP_OK, rpc_agent_card(a, url, d));
}

static void name_json(const struct agent *a, void *arr) {
    cJSON_AddItemToArray(arr, cJSON_CreateString(a->desc.name));
}

/* {"NAME": {"version", "queued", "running"}}: which agent a backlog is. */
static void agent_jobs_json(const struct agent *a, void *obj) {
    size_t queued, running;
    workers_agent_load(a->desc.name, &queued, &running);
    cJSON *o = cJSON_AddObjectToObject(obj, a->desc.name);
    cJSON_AddStringToObject(o, "version", a->desc.version ? a->desc.version : "");
    cJSON_AddNumberToObject(o, "queued", (double)queued);
    cJSON_AddNumberToObject(o, "running", (double)running);
}

static enum MHD_Result serve_health(struct MHD_Connection *c) {
    size_t queued = 0, running = 0;
    workers_load(&queued, &running);
    struct webhooks_stats ws;
    webhooks_get_stats(&ws);
    cJSON *o = cJSON_CreateObject();
    char store_problem[300];
    bool broken = store_broken(store_problem, sizeof store_problem);
    cJSON_AddStringToObject(o, "status", broken ? "error" : "ok");
    if (broken) cJSON_AddStringToObject(o, "store", store_problem);
    cJSON *agents = cJSON_AddArrayToObject(o, "agents");
    plugins_each(name_json, agents);
    plugins_each(agent_jobs_json, cJSON_AddObjectToObject(o, "agentJobs"));
    cJSON_AddNumberToObject(o, "jobsQueued", (double)queued);
    cJSON_AddNumberToObject(o, "jobsRunning", (double)running);
    cJSON_AddNumberToObject(o, "tasks", (double)tasks_count());
    cJSON_AddNumberToObject(o, "streams", (double)streams_count());
    cJSON *w = cJSON_AddObjectToObject(o, "webhooks");
    cJSON_AddNumberToObject(w, "pending", (double)ws.pending);
    cJSON_AddNumberToObject(w, "delivered", (double)ws.delivered);
    cJSON_AddNumberToObject(w, "retried", (double)ws.retried);
    cJSON_AddNumberToObject(w, "givenUp", (double)ws.given_up);
    cJSON_AddNumberToObject(w, "parked", (double)ws.parked);
    cJSON_AddNumberToObject(o, "connectionsCutSlow", (double)admission_cut_count());
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return send_json(c, broken ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, body);
}

static bool is_card_path(const char *p) {
    return strcmp(p, "/.well-known/agent-card.json") == 0 ||
           strcmp(p, "/.well-known/agent.json") == 0;
}

/* /metrics: Prometheus text format 0.0.4. */
static enum MHD_Result serve_metrics(struct MHD_Connection *c) {
    char *body = metrics_render();
    if (!body) return send_http_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, 0);
}

/* /readyz: 200 {"status":"ready"} when a job would be accepted now, else
 * 503 {"status":"not ready","reason":"..."}. */
static enum MHD_Result serve_ready(struct MHD_Connection *c) {
    char why[400];
    bool ready = readiness_check(atomic_load(&http_stopping), why, sizeof why);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", ready ? "ready" : "not ready");
    if (!ready) cJSON_AddStringToObject(o, "reason", why);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return send_text(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json",
                     body, ready ? 0 : 1);
}

static enum MHD_Result serve_get(struct MHD_Connection *c, const char *url) {
    if (strcmp(url, "/healthz") == 0) return serve_health(c);
    if (strcmp(url, "/livez") == 0) return send_json(c, MHD_HTTP_OK, strdup("{\"status\":\"ok\"}"));
    if (strcmp(url, "/readyz") == 0) return serve_ready(c);
    if (strcmp(url, "/metrics") == 0) return serve_metrics(c);
    if (is_card_path(url)) {
        const struct agent *a = plugins_get_default();
        if (a) {
            enum MHD_Result ret = serve_card(c, a, true);
            plugins_put(a);
            return ret;
        }
        char msg[700];
        with_agent_list(msg, sizeof msg,
                        "no default agent (set server.default_agent); cards are at "
                        "/agents/<name>/.well-known/agent-card.json for: ");
        return send_http_error(c, MHD_HTTP_NOT_FOUND, msg);
    }
    const char *rest;
    bool named;
    const struct agent *a = route_agent(url, &rest, &named);
    if (named && is_card_path(rest) && a) {
        /* Pinned while the card is built: it reads the plugin's descriptor. */
        enum MHD_Result ret = serve_card(c, a, false);
        plugins_put(a);
        return ret;
    }
    plugins_put(a);
    if (named && !a && (is_card_path(rest) || *rest == '\0')) {
        char msg[700];
        unknown_agent(msg, sizeof msg, "unknown agent; loaded agents: ");
        return send_http_error(c, MHD_HTTP_NOT_FOUND, msg);
    }
    if (strcmp(url, "/") == 0 || (named && *rest == '\0'))
        return send_http_error(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                               "JSON-RPC endpoint: use POST with a JSON-RPC 2.0 request");
    return send_http_error(c, MHD_HTTP_NOT_FOUND, "no such path");
}

/* ---- blocking waits ----------------------------------------------- */

static void waiting_unlink_locked(struct request *r) {
    if (r->prev) r->prev->next = r->next;
    else srv.waiting = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
    srv.n_waiting--;
}

/* Resume r if it is still waiting (exactly one side does). */
static void resume_waiting(struct request *r) {
    pthread_mutex_lock(&srv.lock);
    bool mine = r->suspended;
    if (mine) {
        r->suspended = false;
        waiting_unlink_locked(r);
    }
    pthread_mutex_unlock(&srv.lock);
    if (mine) MHD_resume_connection(r->conn);
}

/* Runs on the thread that ended the task, with the task locked. */
static void on_task_terminal(void *arg) { resume_waiting(arg); }

static void request_release(struct request *r) {
    if (atomic_fetch_sub(&r->refs, 1) != 1) return;
    rpc_reply_clear(&r->reply);
    auth_principal_release(r->principal);
    free(r->rest);
    rest03_sse_free(r->sse03);
    plugins_put(r->agent);
    free(r->body);
    free(r);
}

/* Runs on the store's writer thread once the task's row is settled, no
 * lock held; holds a reference to r. */
static void on_stored(void *arg) {
    resume_waiting(arg);
    request_release(arg);
}

/* Put r on the waiting list, unless http_stop already took it. */
static bool waiting_add(struct request *r) {
    pthread_mutex_lock(&srv.lock);
    bool ok = !srv.stopping;
    if (ok) {
        r->suspended = true;
        r->next = srv.waiting;
        if (srv.waiting) srv.waiting->prev = r;
        srv.waiting = r;
        srv.n_waiting++;
    }
    pthread_mutex_unlock(&srv.lock);
    return ok;
}

static enum MHD_Result answer(struct request *r);

static enum MHD_Result start_wait(struct request *r) {
    if (!waiting_add(r)) { /* stopping: the task's state as it is now */
        rpc_reply_waited(&r->reply);
        return answer(r);
    }
    /* Suspend before the waiter can fire: resuming a connection that is not
     * yet suspended is undefined. */
    MHD_suspend_connection(r->conn);
    if (task_on_terminal(r->reply.wait_task, on_task_terminal, r) != A2AD_OK)
        on_task_terminal(r); /* already ended (or no memory): answer now */
    return MHD_YES;
}

/* A new task's CREATED row is being written: suspend until it is settled;
 * nothing is acknowledged before. */
static enum MHD_Result start_durable_wait(struct request *r) {
    if (!waiting_add(r)) { /* stopping: wait here, the writer still runs */
        rpc_resume(&r->reply);
        return answer(r);
    }
    MHD_suspend_connection(r->conn); /* before the callback can resume it */
    atomic_fetch_add(&r->refs, 1); /* on_stored's */
    if (tasks_on_durable(r->reply.durable_task, on_stored, r) != A2AD_OK)
        on_stored(r); /* already settled: answer now */
    return MHD_YES;
}

/* ---- streams (SSE) ------------------------------------------------ */

static void sse_park(void *arg) { MHD_suspend_connection(arg); }
static void sse_wake(void *arg) { MHD_resume_connection(arg); }

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    struct request *r = cls;
    if (r->sse03) { /* 0.3 HTTP+JSON: the frames in 0.3's proto shapes */
        size_t k;
        while ((k = rest03_sse_take(r->sse03, buf, max)) == 0) {
            ssize_t n = stream_read(r->reply.stream, buf, max);
            if (n == -1) return MHD_CONTENT_READER_END_OF_STREAM;
            if (n < 0 || !rest03_sse_feed(r->sse03, buf, (size_t)n)) return MHD_CONTENT_READER_END_WITH_ERROR;
            if (n == 0) return 0; /* parked */
        }
        return (ssize_t)k;
    }
    ssize_t n = stream_read(r->reply.stream, buf, max);
    if (n == -1) return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    return n; /* 0: parked (suspended) until the next frame */
}

static enum MHD_Result start_stream(struct request *r) {
    if (r->rest && r->rest->v03 && !(r->sse03 = rest03_sse_new())) return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, r, NULL);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    stream_attach(r->reply.stream, sse_park, sse_wake, r->conn);
    enum MHD_Result ret = queue_response(r->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- the HTTP+JSON binding ----------------------------------------- */

static const char *query_arg(void *arg, const char *key) {
    return MHD_lookup_connection_value(arg, MHD_GET_ARGUMENT_KIND, key);
}

/* A first call for an HTTP+JSON resource (rest.h): answer an error now,
 * or set up the request (its body, if any, is read like a JSON-RPC one).
 * False: not a REST path. */
static bool rest_begin(struct MHD_Connection *c, const char *url, const char *method,
                       void **req_cls, enum MHD_Result *ret) {
    const char *rest;
    bool named, bad_method;
    const struct agent *a = route_agent(url, &rest, &named);
    struct rest_target t;
    if (!rest_match(method, named ? rest : url, &t, &bad_method)) {
        plugins_put(a);
        return false;
    }
    char msg[700];
    unsigned status = 0;
    const struct auth_principal *who = NULL;
    const char *why = NULL;
    if (!bad_method &&
        auth_identify(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
                      MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key"), &who,
                      &why) != A2AD_OK) {
        plugins_put(a);
        *ret = send_text(c, MHD_HTTP_UNAUTHORIZED, t.v03 ? "application/json" : "application/a2a+json",
                         t.v03 ? rest03_error_body(strcmp(t.method, "agent/getAuthenticatedExtendedCard") == 0
                                                       ? RPC_EXTENDED_CARD_NOT_CONFIGURED : RPC_INVALID_REQUEST, why)
                               : rest_error_body(MHD_HTTP_UNAUTHORIZED, why), 0);
        return true;
    }
    /* An agent the caller may not use looks unknown to it. */
    if (named && a && !auth_may_use_agent(who, a->desc.name)) {
        plugins_put(a);
        a = NULL;
    }
    if (bad_method) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        snprintf(msg, sizeof msg, "%s is not a method of %.200s in the HTTP+JSON binding", method,
                 named ? rest : url);
    } else if (named && !a) {
        status = MHD_HTTP_NOT_FOUND;
        unknown_agent_for(msg, sizeof msg, "unknown agent; loaded agents: ", who);
    } else {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > srv.max_body) {
            status = MHD_HTTP_CONTENT_TOO_LARGE;
            snprintf(msg, sizeof msg, "request body of %.20s bytes exceeds server.max_body_bytes (%zu)",
                     cl, srv.max_body);
        }
    }
    if (status) {
        plugins_put(a);
        auth_principal_release(who);
        *ret = send_text(c, status, t.v03 ? "application/json" : "application/a2a+json",
                         t.v03 ? rest03_error_body(status == MHD_HTTP_NOT_FOUND ? RPC_INVALID_REQUEST
                                                   : status == MHD_HTTP_METHOD_NOT_ALLOWED ? RPC_METHOD_NOT_FOUND
                                                   : RPC_INVALID_REQUEST, msg)
                               : rest_error_body((int)status, msg), 0);
        return true;
    }
    struct request *r = calloc(1, sizeof *r);
    if (r) r->rest = malloc(sizeof *r->rest);
    if (!r || !r->rest) {
        free(r);
        plugins_put(a);
        auth_principal_release(who);
        *ret = MHD_NO;
        return true;
    }
    r->principal = who;
    *r->rest = t;
    atomic_init(&r->refs, 1);
    r->conn = c;
    r->agent = named ? a : plugins_get_default(); /* pinned until released */
    if (r->agent && !auth_may_use_agent(who, r->agent->desc.name)) {
        plugins_put(r->agent);
        r->agent = NULL; /* as if there were no default agent */
    }
    r->at_root = !named;
    r->is_rpc = true;
    *req_cls = r;
    *ret = MHD_YES;
    return true;
}

/* ---- the access handler ------------------------------------------- */

/* *req_cls of a GET or HEAD between MHD's first call (headers) and its
 * second (request complete): answering on the first makes this MHD close
 * the connection, and probes and scrapers keep theirs open. */
static struct request get_pending;

static void *conn_ctx(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* 429 with Retry-After: a JSON-RPC error for a POST, {"error"} otherwise. */
static enum MHD_Result refuse_rate(struct MHD_Connection *c, const char *method, unsigned retry_s) {
    char msg[200];
    snprintf(msg, sizeof msg,
             "rate limit: more than %u requests per second from this client ([server] "
             "rate_limit_per_s, rate_burst %u); retry after %u s",
             admission_rate_per_s(), admission_rate_burst(), retry_s);
    char *body;
    if (strcmp(method, "POST") == 0) {
        body = rpc_error_body(RPC_INTERNAL_ERROR, msg);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", msg);
        body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    return send_text(c, MHD_HTTP_TOO_MANY_REQUESTS, "application/json", body, retry_s);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req_cls) {
    (void)cls;
    (void)version;
    struct request *r = *req_cls;
    metrics_http_begin(method, r ? r->arrived_us : 0);
    if (r == &get_pending) {
        *upload_size = 0; /* a GET body means nothing here */
        admission_request_received(conn_ctx(c));
        return serve_get(c, url);
    }
    if (!r) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        unsigned retry_s = 0;
        if (!admission_admit(ci ? ci->client_addr : NULL, &retry_s)) return refuse_rate(c, method, retry_s);
        if (admin_owns(url)) {
            admission_request_received(conn_ctx(c));
            return admin_serve(c, method, url);
        }
        enum MHD_Result rr;
        if (rest_begin(c, url, method, req_cls, &rr)) return rr;
        if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
            *req_cls = &get_pending;
            return MHD_YES;
        }
        if (strcmp(method, "POST") != 0)
            return send_http_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET or POST");
        const char *rest;
        bool named;
        const struct agent *a = route_agent(url, &rest, &named);
        if (!(strcmp(url, "/") == 0 || (named && *rest == '\0'))) {
            plugins_put(a);
            return send_http_error(c, MHD_HTTP_NOT_FOUND, "no such path; JSON-RPC is at / and /agents/<name>");
        }
        /* Before the body is read: an unauthenticated client costs little. */
        const struct auth_principal *who = NULL;
        const char *why = NULL;
        if (auth_identify(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
                          MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key"), &who,
                          &why) != A2AD_OK) {
            /* Read at most UNAUTH_BODY_MAX bytes of it, only to answer with
             * its id and, for the extended card, the code 0.3 clients map. */
            const char *ucl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            plugins_put(a);
            if (ucl && strtoull(ucl, NULL, 10) > UNAUTH_BODY_MAX) return send_unauthenticated(c, why, NULL);
            r = calloc(1, sizeof *r);
            if (!r) return MHD_NO;
            atomic_init(&r->refs, 1);
            r->conn = c;
            r->unauth = why;
            r->is_rpc = true;
            *req_cls = r;
            return MHD_YES;
        }
        /* An agent the caller may not use looks unknown to it. */
        if (named && a && !auth_may_use_agent(who, a->desc.name)) {
            plugins_put(a);
            a = NULL;
        }
        if (named && !a) {
            char lead[260], msg[700], e[UTIL_ECHO_BUF];
            snprintf(lead, sizeof lead, "unknown agent in %s; loaded agents: ",
                     util_echo(e, sizeof e, url, 150));
            unknown_agent_for(msg, sizeof msg, lead, who);
            auth_principal_release(who);
            return send_json(c, MHD_HTTP_NOT_FOUND, rpc_error_body(RPC_INVALID_REQUEST, msg));
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > srv.max_body) {
            plugins_put(a);
            char msg[160];
            char e[UTIL_ECHO_BUF];
            snprintf(msg, sizeof msg, "request body of %s bytes exceeds server.max_body_bytes (%zu)",
                     util_echo(e, sizeof e, cl, 24), srv.max_body);
            auth_principal_release(who);
            return send_json(c, MHD_HTTP_CONTENT_TOO_LARGE, rpc_error_body(RPC_INVALID_REQUEST, msg));
        }
        char problem[300];
        if (store_broken(problem, sizeof problem))
            return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json",
                             rpc_error_body(RPC_INTERNAL_ERROR, problem), 30);
        r = calloc(1, sizeof *r);
        if (!r) {
            auth_principal_release(who);
            plugins_put(a);
            return MHD_NO;
        }
        atomic_init(&r->refs, 1);
        r->arrived_us = metrics_now_us();
        r->conn = c;
        /* Pinned until the request is released: validate() and the card run
         * its code, and a replacement must not unload it meanwhile. */
        r->agent = named ? a : plugins_get_default();
        if (r->agent && !auth_may_use_agent(who, r->agent->desc.name)) {
            plugins_put(r->agent);
            r->agent = NULL; /* as if there were no default agent */
        }
        r->principal = who;
        r->at_root = !named;
        r->is_rpc = true;
        *req_cls = r;
        return MHD_YES;
    }

    if (*upload_size) {
        /* Chunked bodies have no Content-Length: enforce the limit as data
         * arrives, and keep reading (discarding) so the reply can be sent. */
        if (!r->too_big && r->len + *upload_size > (r->unauth ? UNAUTH_BODY_MAX : srv.max_body)) {
            r->too_big = true;
            free(r->body);
            r->body = NULL;
        }
        if (!r->too_big) {
            if (r->len + *upload_size + 1 > r->cap) {
                size_t ncap = (r->len + *upload_size + 1) * 2;
                if (ncap > srv.max_body + 1) ncap = srv.max_body + 1;
                char *nb = realloc(r->body, ncap);
                if (!nb) return MHD_NO;
                r->body = nb;
                r->cap = ncap;
            }
            memcpy(r->body + r->len, upload, *upload_size);
            r->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    admission_request_received(conn_ctx(c));

    if (r->unauth) return send_unauthenticated(c, r->unauth, r->too_big ? NULL : r);
    if (r->reply.durable_task) { /* resumed: the task's row is settled */
        rpc_resume(&r->reply);
        return answer(r);
    }
    if (r->reply.wait_task) { /* resumed: the task ended, or we are stopping */
        rpc_reply_waited(&r->reply);
        return answer(r);
    }
    if (r->too_big) {
        char msg[120];
        snprintf(msg, sizeof msg, "request body exceeds server.max_body_bytes (%zu)", srv.max_body);
        return send_json(c, MHD_HTTP_CONTENT_TOO_LARGE, rpc_error_body(RPC_INVALID_REQUEST, msg));
    }
    const char *ext = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "A2A-Extensions");
    char base[400];
    endpoint_url(base, sizeof base, r->agent, r->agent == NULL || r->at_root);
    char *rest_body = NULL;
    if (r->rest) { /* HTTP+JSON: the same request as JSON-RPC 1.0 */
        int status;
        char *err;
        rest_body = rest_request(r->rest, r->body ? r->body : "", r->len, query_arg, c, &status, &err);
        if (!rest_body)
            return send_text(c, err ? (unsigned)status : MHD_HTTP_INTERNAL_SERVER_ERROR,
                             r->rest->v03 ? "application/json" : "application/a2a+json", err, 0);
    }
    const char *a2a_version = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "A2A-Version");
    struct rpc_request rq = {
        .base_url = base,
        .agent = r->agent,
        .body = rest_body ? rest_body : r->body ? r->body : "",
        .len = rest_body ? strlen(rest_body) : r->len,
        .a2a_version = r->rest && r->rest->v03 ? "0.3"
                       : r->rest && (!a2a_version || !*a2a_version) ? "1.0" : a2a_version,
        .bare_stream = r->rest != NULL,
        .extensions = ext ? ext : MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-A2A-Extensions"),
        .authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        .principal = r->principal,
        .can_defer = true,
    };
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    rq.accept_sse = !r->rest && accept && strstr(accept, "text/event-stream");
    rq.last_event_id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    rpc_handle(&rq, &r->reply);
    free(rest_body);
    return answer(r);
}

/* Send what the reply holds, or start what it waits for. */
static enum MHD_Result answer(struct request *r) {
    struct MHD_Connection *c = r->conn;
    if (r->reply.durable_task) return start_durable_wait(r);
    if (r->reply.wait_task) return start_wait(r);
    if (r->reply.stream) return start_stream(r);
    if (r->rest) rest_reply(r->rest, &r->reply);
    const char *type = r->rest && !r->rest->v03 ? "application/a2a+json" : "application/json";
    char *body = r->reply.body;
    r->reply.body = NULL;
    if (r->reply.auth_challenge) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(
            body ? strlen(body) : 0, body ? body : (char *)"",
            body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp) {
            free(body);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        enum MHD_Result ret = queue_response(c, MHD_HTTP_UNAUTHORIZED, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    if (r->reply.sse_body) { /* one event, then the end of the stream: close */
        struct MHD_Response *resp = MHD_create_response_from_buffer(
            body ? strlen(body) : 0, body ? body : (char *)"",
            body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp) {
            free(body);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
        enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->reply.http_status, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    return send_text(c, (unsigned)r->reply.http_status, type, body, r->reply.retry_after_s);
}

static void completed(void *cls, struct MHD_Connection *c, void **req_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)toe;
    admission_request_ended(conn_ctx(c));
    struct request *r = *req_cls;
    *req_cls = NULL;
    if (!r || r == &get_pending) return;
    /* Ended while suspended (MHD stopping): no longer anyone's to resume. */
    pthread_mutex_lock(&srv.lock);
    if (r->suspended) {
        r->suspended = false;
        waiting_unlink_locked(r);
    }
    pthread_mutex_unlock(&srv.lock);
    request_release(r);
}

/* Most of what libmicrohttpd logs is caused by clients (refused and
 * broken connections): rate-limited, one kind per message format. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    log_client(fmt, A2AD_LOG_WARNING, "http", "%s", line);
}

/* From the start of the graceful stop, a new connection is closed as soon
 * as it is accepted. Not MHD_quiesce_daemon(): with epoll and a thread pool
 * it races the pool threads that take the same listening socket out of
 * their epoll sets, and libmicrohttpd 0.9.75 aborts the process when it
 * loses that race (MHD_PANIC on ENOENT): a stopping daemon died of SIGABRT
 * in CI. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len) {
    (void)cls;
    (void)addr;
    (void)len;
    return atomic_load(&http_stopping) ? MHD_NO : MHD_YES;
}

static void notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode code) {
    (void)cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ca = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (fd) admission_conn_started(fd->connect_fd, ca ? ca->client_addr : NULL, socket_context);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        admission_conn_closed(*socket_context);
        *socket_context = NULL;
        tls_conn_closed(c);
    }
}

a2ad_status http_start(const struct config *cfg) {
    srv.max_body = cfg->max_body_bytes;
    bool tls = cfg->tls_cert_file && *cfg->tls_cert_file;
    const char *scheme = tls ? "https" : "http";
    admin_init(cfg);
    log_client_init(cfg->log_client_lines_per_s);
    jsonlimit_set_depth(cfg->max_json_depth);
    struct sockaddr_in sin = {0};
    struct sockaddr_in6 sin6 = {0};
    const struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (inet_pton(AF_INET, cfg->listen, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons(cfg->port);
        sa = (const struct sockaddr *)&sin;
    } else if (inet_pton(AF_INET6, cfg->listen, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(cfg->port);
        sa = (const struct sockaddr *)&sin6;
        flags |= MHD_USE_IPv6;
    } else {
        log_error("http: server.listen = %s is not an IPv4 or IPv6 address", cfg->listen);
        return A2AD_ERR_CONFIG;
    }
    /* Bind here rather than in MHD so the port (port = 0 picks a free one)
     * and the card URLs are known before any request thread runs. */
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    socklen_t salen = sa->sa_family == AF_INET6 ? sizeof sin6 : sizeof sin;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, sa, salen) != 0 || listen(fd, 1024) != 0) {
        log_error("http: cannot listen on %s port %u: %s", cfg->listen, (unsigned)cfg->port,
                  strerror(errno));
        if (fd >= 0) close(fd);
        return A2AD_ERR_IO;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    srv.port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                 : ((struct sockaddr_in *)&bound)->sin_port);
    if (cfg->public_url && *cfg->public_url) {
        snprintf(srv.base_url, sizeof srv.base_url, "%s", cfg->public_url);
        size_t n = strlen(srv.base_url);
        if (n && srv.base_url[n - 1] == '/') srv.base_url[n - 1] = '\0';
    } else if (sa->sa_family == AF_INET6) {
        snprintf(srv.base_url, sizeof srv.base_url, "%s://[%s]:%u", scheme, cfg->listen, srv.port);
    } else {
        snprintf(srv.base_url, sizeof srv.base_url, "%s://%s:%u", scheme, cfg->listen, srv.port);
    }

    if (tls) {
        if (tls_start(cfg->tls_cert_file, cfg->tls_key_file) != A2AD_OK) {
            close(fd);
            return A2AD_ERR_CONFIG;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem opts[12];
    size_t no = 0;
    /* first, so that MHD's own start-up complaints come through it */
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, fd, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, cfg->connection_timeout_s, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify_conn, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_connections_per_ip, NULL};
    if (cfg->http_threads > 1)
        opts[no++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, cfg->http_threads, NULL};
    opts[no] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    if (admission_start(cfg) != A2AD_OK) {
        tls_stop();
        close(fd);
        return A2AD_ERR_IO;
    }
    /* The pair comes from tls.c at each handshake, so SIGHUP can replace it;
     * a function pointer does not fit MHD_OPTION_ARRAY's fields portably. */
    srv.daemon = MHD_start_daemon(flags, 0, accept_policy, NULL, handle, NULL, MHD_OPTION_ARRAY, opts,
                                  tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, tls_retrieve,
                                  MHD_OPTION_END);
    if (!srv.daemon) {
        log_error("http: cannot start the HTTP server on %s", srv.base_url);
        admission_stop();
        tls_stop();
        close(fd);
        return A2AD_ERR_IO;
    }
    log_info("http: listening on %s (%u threads, max %u connections, %u per client address, "
             "body <= %zu bytes, request in <= %u s, %u requests/s per client)",
             srv.base_url, cfg->http_threads, cfg->max_connections, cfg->max_connections_per_ip,
             srv.max_body, cfg->request_timeout_s, cfg->rate_limit_per_s);
    return A2AD_OK;
}

unsigned http_port(void) { return srv.port; }

void http_quiesce(void) { atomic_store(&http_stopping, true); }

void http_stop(void) {
    if (!srv.daemon) return;
    /* Take the whole waiting list: a waiter that fires from now on finds
     * its request unlisted and leaves the resume to us. */
    pthread_mutex_lock(&srv.lock);
    srv.stopping = true;
    struct request *list = srv.waiting;
    for (struct request *r = list; r; r = r->next) r->suspended = false;
    srv.waiting = NULL;
    srv.n_waiting = 0;
    pthread_mutex_unlock(&srv.lock);
    /* Streams end now: their readers drain what is buffered, then close. */
    size_t n_streams = streams_count();
    streams_end_all();
    size_t n = 0;
    for (struct request *r = list, *next; r; r = next) {
        next = r->next;
        if (r->reply.durable_task) {
            /* unregistered: on_stored will not run and drop its reference */
            if (tasks_forget_durable(r->reply.durable_task, on_stored, r)) request_release(r);
        } else
            task_forget_waiter(r->reply.wait_task, on_task_terminal, r);
        r->prev = r->next = NULL;
        MHD_resume_connection(r->conn);
        n++;
    }
    if (n_streams) log_info("http: ended %zu open streams", n_streams);
    if (n || n_streams) {
        if (n) log_info("http: answered %zu blocked requests with their tasks' current state", n);
        /* Let the polling thread send those answers before it stops. */
        for (int i = 0; i < 50; i++) {
            const union MHD_DaemonInfo *info =
                MHD_get_daemon_info(srv.daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
            if (!info || info->num_connections == 0) break;
            usleep(20 * 1000);
        }
    }
    MHD_stop_daemon(srv.daemon);
    srv.daemon = NULL;
    tls_stop();
    admission_stop();
    srv.stopping = false; /* for a later http_start (tests) */
    atomic_store(&http_stopping, false);
    admin_shutdown();
}
