/* rpc - the A2A JSON-RPC 2.0 surface (protocols 0.3 and 1.0) and agent
 * cards.
 *
 * Batches: a JSON array is refused with -32600 on purpose. No A2A SDK sends
 * batches, and a batch mixing a blocking message/send with other calls has
 * no sensible reply timing.
 *
 * A request without "id" is, in JSON-RPC 2.0, a notification that gets no
 * reply. Every A2A method returns a result the client needs, and the
 * official Python SDK answers such a request like one with "id": null; so
 * does a2ad (unknown method -32601, bad params -32602, or the result),
 * with "id": null in the reply.
 *
 * A streaming method (message/stream, tasks/resubscribe and their 1.0
 * names) asked with Accept: text/event-stream gets its error as one SSE
 * event, then the end of the stream, as the 0.3 specification describes a
 * streaming response; other clients get the plain JSON error.
 *
 * Both dialects share one implementation per method: a 1.0 request is
 * turned into the 0.3 shapes on the way in (a2a_v1.c) and its answer into
 * the 1.0 shapes on the way out.
 */
#include "core/rpc.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#include "core/auth.h"
#include "store/cluster.h"
#include "delivery/guard.h"
#include "delivery/hu.h"
#include "jsonlimit.h"
#include "log.h"
#include "core/modes.h"
#include "front/metrics.h"
#include "agents/plugins.h"
#include "delivery/push.h"
#include "front/replay.h"
#include "core/rpc_int.h"
#include "store/share.h"
#include "store/store.h"
#include "front/streams.h"
#include "core/tasks.h"
#include "util.h"
#include "core/tenant.h"
#include "delivery/webhooks.h"
#include "agents/workers.h"

static struct {
    bool push_enabled;
} settings = {.push_enabled = true};

bool rpc_fail(struct rpc_fail *f, int code, const char *fmt, ...) {
    char raw[sizeof f->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* Whatever a message echoes, it goes out as valid UTF-8. */
    util_echo(f->message, sizeof f->message, raw, sizeof f->message - 1);
    f->code = code;
    if (!f->http_status) f->http_status = 200; /* JSON-RPC errors travel with 200 */
    return false;
}
#define fail rpc_fail

static char *print_and_free(cJSON *o) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

static char *error_body(const cJSON *id, int code, const char *message, enum a2a_dialect d) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "jsonrpc", "2.0");
    cJSON_AddItemToObject(o, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddNumberToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    cJSON *data = d == A2A_V10 ? v1_error_data(code) : NULL;
    if (data) cJSON_AddItemToObject(e, "data", data);
    return print_and_free(o);
}

char *rpc_error_body(int code, const char *message) {
    return error_body(NULL, code, message, A2A_V03);
}

char *rpc_result_body(const cJSON *id, cJSON *result /* taken */) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "jsonrpc", "2.0");
    cJSON_AddItemToObject(o, "id", cJSON_Duplicate(id, 1));
    cJSON_AddItemToObject(o, "result", result ? result : cJSON_CreateNull());
    return print_and_free(o);
}

/* ---- settings ---------------------------------------------------------- */

void rpc_init(const struct rpc_settings *s) {
    rpc_shutdown();
    settings.push_enabled = s->push_enabled;
}

void rpc_shutdown(void) { settings.push_enabled = true; }

bool rpc_push_allowed(struct call *c) {
    if (settings.push_enabled) return true;
    return fail(c->f, RPC_PUSH_NOT_SUPPORTED,
                "Push Notification is not supported: this a2ad has [webhooks] enabled = no");
}

/* ---- parameter checks ------------------------------------------------ */

bool rpc_history_length(const cJSON *obj, const char *where, int *out, struct rpc_fail *f) {
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(obj, "historyLength");
    *out = -1;
    if (!h || cJSON_IsNull(h)) return true;
    if (!cJSON_IsNumber(h) || h->valuedouble < 0 || h->valuedouble > 1000000 ||
        h->valuedouble != (double)(int)h->valuedouble)
        return fail(f, RPC_INVALID_PARAMS, "%s.historyLength must be an integer from 0 to 1000000",
                    where);
    *out = h->valueint;
    return true;
}

static bool check_part(const cJSON *part, int i, enum a2a_dialect d, struct rpc_fail *f) {
    if (!cJSON_IsObject(part))
        return fail(f, RPC_INVALID_PARAMS, "params.message.parts[%d] must be an object", i);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(part, "kind");
    if (!cJSON_IsString(kind))
        return fail(f, RPC_INVALID_PARAMS,
                    "params.message.parts[%d].kind must be \"text\", \"file\" or \"data\"", i);
    if (strcmp(kind->valuestring, "text") == 0) {
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(part, "text")))
            return fail(f, RPC_INVALID_PARAMS, "params.message.parts[%d].text must be a string",
                        i);
    } else if (strcmp(kind->valuestring, "file") == 0) {
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(part, "file");
        if (!cJSON_IsObject(file) || (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(file, "bytes")) &&
                                      !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(file, "uri"))))
            return fail(f, RPC_INVALID_PARAMS,
                        "params.message.parts[%d].file must be an object with \"bytes\" or \"uri\"",
                        i);
    } else if (strcmp(kind->valuestring, "data") == 0) {
        /* 0.3: an object; 1.0: any JSON value */
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(part, "data");
        if (d == A2A_V03 ? !cJSON_IsObject(data) : !data)
            return fail(f, RPC_INVALID_PARAMS, "params.message.parts[%d].data must be %s", i,
                        d == A2A_V03 ? "an object" : "present");
    } else {
        char e[UTIL_ECHO_BUF];
        return fail(f, RPC_INVALID_PARAMS,
                    "params.message.parts[%d].kind \"%s\" is not \"text\", \"file\" or \"data\"",
                    i, util_echo(e, sizeof e, kind->valuestring, 40));
    }
    return true;
}

/* A 0.3 Message (1.0 ones are converted first); `d` only picks the
 * spelling of the error texts. */
static bool check_message(const cJSON *m, enum a2a_dialect d, struct rpc_fail *f) {
    if (!cJSON_IsObject(m)) return fail(f, RPC_INVALID_PARAMS, "params.message is required (an object)");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(m, "kind");
    if (kind && !(cJSON_IsString(kind) && strcmp(kind->valuestring, "message") == 0))
        return fail(f, RPC_INVALID_PARAMS, "params.message.kind must be \"message\"");
    const cJSON *mid = cJSON_GetObjectItemCaseSensitive(m, "messageId");
    if (!cJSON_IsString(mid) || !*mid->valuestring)
        return fail(f, RPC_INVALID_PARAMS, "params.message.messageId is required (a string)");
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (cJSON_IsString(role) && strcmp(role->valuestring, "agent") == 0)
        /* Agent messages are the agent's: a client must not write them
         * into a task's history. */
        return fail(f, RPC_INVALID_PARAMS,
                    d == A2A_V10 ? "params.message.role must be \"ROLE_USER\": clients cannot "
                                   "send ROLE_AGENT messages"
                                 : "params.message.role must be \"user\": clients cannot send "
                                   "\"agent\" messages");
    if (!cJSON_IsString(role) || strcmp(role->valuestring, "user") != 0)
        return fail(f, RPC_INVALID_PARAMS,
                    d == A2A_V10 ? "params.message.role must be \"ROLE_USER\""
                                 : "params.message.role must be \"user\"");
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(m, "parts");
    if (!cJSON_IsArray(parts) || cJSON_GetArraySize(parts) == 0)
        return fail(f, RPC_INVALID_PARAMS, "params.message.parts must be a non-empty array");
    int i = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, parts) if (!check_part(part, i++, d, f)) return false;
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(m, "contextId");
    if (ctx && !cJSON_IsNull(ctx) && !cJSON_IsString(ctx))
        return fail(f, RPC_INVALID_PARAMS, "params.message.contextId must be a string");
    if (cJSON_IsString(ctx) && strlen(ctx->valuestring) >= 37)
        return fail(f, RPC_INVALID_PARAMS, "params.message.contextId is longer than 36 characters");
    const cJSON *tid = cJSON_GetObjectItemCaseSensitive(m, "taskId");
    if (tid && !cJSON_IsNull(tid) && !cJSON_IsString(tid))
        return fail(f, RPC_INVALID_PARAMS, "params.message.taskId must be a string");
    return true;
}

bool rpc_parse_push(const cJSON *p, enum a2a_dialect d, const char *where,
                    struct push_config *push, struct rpc_fail *f) {
    if (!cJSON_IsObject(p)) return fail(f, RPC_INVALID_PARAMS, "%s must be an object", where);
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(p, "url");
    if (!cJSON_IsString(url) || (strncmp(url->valuestring, "http://", 7) != 0 &&
                                 strncmp(url->valuestring, "https://", 8) != 0))
        return fail(f, RPC_INVALID_PARAMS, "%s.url must be an http:// or https:// URL", where);
    char what[160], why[512];
    snprintf(what, sizeof what, "%s.url", where);
    if (!guard_check_url(url->valuestring, what, why, sizeof why)) /* SSRF */
        return fail(f, RPC_INVALID_PARAMS, "%s", why);
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(p, "token");
    if (token && !cJSON_IsNull(token) && !cJSON_IsString(token))
        return fail(f, RPC_INVALID_PARAMS, "%s.token must be a string", where);
    if (cJSON_IsString(token) && strlen(token->valuestring) > 4096)
        return fail(f, RPC_INVALID_PARAMS, "%s.token is longer than 4096 bytes", where);
    if (cJSON_IsString(token) && strpbrk(token->valuestring, "\r\n"))
        return fail(f, RPC_INVALID_PARAMS, "%s.token must not contain line breaks", where);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(p, "id");
    if (id && !cJSON_IsNull(id) && !cJSON_IsString(id))
        return fail(f, RPC_INVALID_PARAMS, "%s.id must be a string", where);
    if (cJSON_IsString(id) && (!*id->valuestring || strlen(id->valuestring) > PUSH_ID_MAX))
        return fail(f, RPC_INVALID_PARAMS, "%s.id must be 1 to %d bytes", where, PUSH_ID_MAX);
    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(p, "authentication");
    if (cJSON_IsNull(auth)) auth = NULL;
    const char *bad = auth ? push_check_auth(auth, d) : NULL;
    if (bad) return fail(f, RPC_INVALID_PARAMS, "%s.authentication %s", where, bad);
    push->url = url->valuestring;
    push->token = cJSON_IsString(token) ? token->valuestring : NULL;
    push->id = cJSON_IsString(id) ? id->valuestring : NULL;
    push->authentication = auth;
    push->dialect = d;
    return true;
}

/* By name: a task accepted by an earlier version of the agent is still
 * the agent's. A task whose agent was removed has no endpoint left; every
 * endpoint may read (and cancel) it, so its client can learn why it failed. */
static bool agent_owns(const struct agent *agent, struct task *t) {
    const struct agent *ta = task_agent(t);
    return !agent || ta == agent || (ta && strcmp(ta->desc.name, agent->desc.name) == 0) ||
           (ta && !plugins_find(ta->desc.name));
}

/* The authenticated caller (NULL when authentication is off, or for a
 * call without a request, which then sees nothing when it is on). */
static const struct auth_principal *caller(const struct call *c) {
    return c->rq ? c->rq->principal : NULL;
}

struct task *rpc_lookup_task(struct call *c, const char *key) {
    const cJSON *tid = cJSON_GetObjectItemCaseSensitive(c->params, key);
    if (!cJSON_IsString(tid)) {
        fail(c->f, RPC_INVALID_PARAMS, "params.%s is required (the task id, a string)", key);
        return NULL;
    }
    struct task *t = tasks_get(tid->valuestring);
    if (!t && cluster_active() && !rpc_remote_read(c, tid->valuestring, &t)) return NULL;
    if (t && (!agent_owns(c->agent, t) || !auth_may_see(caller(c), t) || !tenant_matches(t, c->tenant))) {
        task_release(t);
        t = NULL;
    }
    char e[UTIL_ECHO_BUF];
    if (!t)
        fail(c->f, RPC_TASK_NOT_FOUND, "task %s not found",
             util_echo(e, sizeof e, tid->valuestring, 64));
    return t;
}

/* ---- message/send, message/stream (SendMessage, SendStreamingMessage) -- */

/* 503 + Retry-After for a job the worker queue cannot take (st from
 * workers_has_room or workers_submit). */
static bool queue_refusal(struct rpc_fail *f, a2ad_status st, const char *agent) {
    f->http_status = 503;
    f->retry_after_s = 1;
    if (st == A2AD_ERR_FULL && workers_has_room() == A2AD_ERR_FULL)
        return fail(f, RPC_INTERNAL_ERROR, "the job queue is full (workers.queue_length); retry later");
    if (st == A2AD_ERR_FULL)
        return fail(f, RPC_INTERNAL_ERROR,
                    "the job queue of agent %s is full ([agent.%s] queue_length); retry later",
                    agent, agent);
    if (st == A2AD_ERR_NOT_FOUND)
        return fail(f, RPC_INTERNAL_ERROR, "agent %s was removed meanwhile; the job was not accepted",
                    agent);
    if (st == A2AD_ERR_STATE)
        return fail(f, RPC_INTERNAL_ERROR, "a2ad is shutting down; retry on another instance");
    return fail(f, RPC_INTERNAL_ERROR, "cannot queue the job: %s", a2ad_status_name(st));
}

/* The send options, read from params.configuration in either dialect. */
struct send_opts {
    bool blocking;
    int history;
    bool has_after; /* resubscribe with Last-Event-ID: replay after `after` */
    uint64_t after;
    bool has_push;
    struct push_config push;
};

static bool get_send_opts(struct call *c, struct send_opts *o) {
    o->blocking = true; /* 0.3: both official SDKs block when it is absent; 1.0: the spec */
    o->history = -1;
    o->has_after = false;
    o->after = 0;
    o->has_push = false;
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(c->params, "configuration");
    if (!cfg || cJSON_IsNull(cfg)) return true;
    if (!cJSON_IsObject(cfg))
        return fail(c->f, RPC_INVALID_PARAMS, "params.configuration must be an object");
    const char *bkey = c->d == A2A_V10 ? "returnImmediately" : "blocking";
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(cfg, bkey);
    if (b && !cJSON_IsNull(b)) {
        if (!cJSON_IsBool(b))
            return fail(c->f, RPC_INVALID_PARAMS, "params.configuration.%s must be a boolean", bkey);
        o->blocking = c->d == A2A_V10 ? !cJSON_IsTrue(b) : cJSON_IsTrue(b);
    }
    if (!rpc_history_length(cfg, "params.configuration", &o->history, c->f)) return false;
    const char *pkey = c->d == A2A_V10 ? "taskPushNotificationConfig" : "pushNotificationConfig";
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(cfg, pkey);
    if (!p || cJSON_IsNull(p)) return true;
    char where[80];
    snprintf(where, sizeof where, "params.configuration.%s", pkey);
    if (!rpc_push_allowed(c) || !rpc_parse_push(p, c->d, where, &o->push, c->f)) return false;
    o->has_push = true;
    return true;
}

/* The answer to a send, once the task exists: a stream, a wait, or the
 * task now. Takes the caller's reference to t. */
static bool send_answer(struct call *c, struct task *t, bool stream, const struct send_opts *o) {
    if (stream) {
        char *idj = c->bare ? NULL : cJSON_PrintUnformatted(c->id);
        c->out->stream = idj || c->bare ? stream_open_after(t, c->d, idj, o->history,
                                                            o->has_after ? &o->after : NULL)
                                        : NULL;
        free(idj);
        task_release(t);
        if (!c->out->stream) {
            c->f->http_status = 500;
            return fail(c->f, RPC_INTERNAL_ERROR, "out of memory");
        }
        return true;
    }
    if (o->blocking) {
        c->out->wait_task = t;
        c->out->wait_id = cJSON_PrintUnformatted(c->id);
        c->out->wait_history = o->history;
        c->out->wait_dialect = c->d;
        return true;
    }
    c->out->body = rpc_result_body(c->id, a2a_task_result(task_render(t, o->history), c->d));
    task_release(t);
    return true;
}

/* A message naming an existing task: the next turn of that conversation. */
static bool continue_task(struct call *c, cJSON *message, const cJSON *task_ref, bool stream,
                          const struct send_opts *o) {
    struct task *t = tasks_get(task_ref->valuestring);
    if (t && !share_hold(t)) { /* another node claimed the queued job */
        task_release(t);
        t = NULL;
    }
    if (!t && cluster_active() && !rpc_remote_read(c, task_ref->valuestring, &t)) return false;
    if (t && (!agent_owns(c->agent, t) || !auth_may_see(caller(c), t) || !tenant_matches(t, c->tenant))) {
        task_release(t);
        t = NULL;
    }
    char e[UTIL_ECHO_BUF];
    if (!t)
        return fail(c->f, RPC_TASK_NOT_FOUND, "task %s not found",
                    util_echo(e, sizeof e, task_ref->valuestring, 64));
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(message, "contextId");
    if (cJSON_IsString(ctx) && strcmp(ctx->valuestring, task_context_id(t)) != 0) {
        fail(c->f, RPC_INVALID_PARAMS,
             "params.message.contextId %s does not match the contextId %s of task %s",
             util_echo(e, sizeof e, ctx->valuestring, 40), task_context_id(t), task_id(t));
        task_release(t);
        return false;
    }
    if (task_state_terminal(task_get_state(t))) {
        /* 0.3: "can't be restarted ... will result in an error" (the SDKs
         * use -32600); 1.0 names UnsupportedOperationError. */
        fail(c->f, c->d == A2A_V10 ? RPC_UNSUPPORTED_OPERATION : RPC_INVALID_REQUEST,
             "task %s is %s: a task in a terminal state cannot be continued; send a new message "
             "without taskId (with contextId %s to stay in the conversation)",
             task_id(t), task_state_name(task_get_state(t)), task_context_id(t));
        task_release(t);
        return false;
    }
    if (rpc_remote(t))
        return rpc_remote_continue(c, message, t, stream, o->history, o->blocking, o->has_push);
    if (o->has_push) {
        char pid[PUSH_ID_MAX + 1];
        struct push_config inline_cfg = o->push;
        if (!inline_cfg.id) inline_cfg.id = task_id(t); /* see push.h */
        a2ad_status st = push_config_set(t, &inline_cfg, pid);
        if (st != A2AD_OK) {
            task_release(t);
            return fail(c->f, st == A2AD_ERR_FULL ? RPC_INVALID_PARAMS : RPC_INTERNAL_ERROR,
                        "cannot add the push notification config: %s", a2ad_status_name(st));
        }
    }
    cJSON_DetachItemViaPointer(c->params, message);
    cJSON *copy = cJSON_Duplicate(message, 1);
    if (task_add_message(t, message) != A2AD_OK) {
        cJSON_Delete(copy);
        fail(c->f, c->d == A2A_V10 ? RPC_UNSUPPORTED_OPERATION : RPC_INVALID_REQUEST,
             "task %s ended meanwhile and cannot be continued", task_id(t));
        task_release(t);
        return false;
    }
    if (!stream) {
        workers_deliver_message(t, copy);
        cJSON_Delete(copy);
        return send_answer(c, t, false, o);
    }
    /* A stream subscribes before the job hears the message, so it misses
     * none of the events the answer causes. */
    task_retain(t);
    bool ok = send_answer(c, t, true, o);
    workers_deliver_message(t, copy);
    cJSON_Delete(copy);
    task_release(t);
    return ok;
}

/* A task that could not be created (or stored): nothing was accepted. */
static bool create_refusal(struct rpc_fail *f, a2ad_status st) {
    if (st == A2AD_ERR_FULL) {
        f->http_status = 503;
        f->retry_after_s = 1;
        return fail(f, RPC_INTERNAL_ERROR, "the task store is full (tasks.max_tasks); retry later");
    }
    if (st == A2AD_ERR_IO) { /* the durable store could not write it */
        f->http_status = 503;
        f->retry_after_s = 5;
        return fail(f, RPC_INTERNAL_ERROR, "%s; the job was not accepted", store_last_error());
    }
    f->http_status = 500;
    return fail(f, RPC_INTERNAL_ERROR, "cannot create the task: %s", a2ad_status_name(st));
}

/* What rpc_resume needs of a send whose CREATED row is being written. */
struct rpc_resume {
    char *id_json; /* the request id, serialised */
    const struct agent *agent;
    enum a2a_dialect d;
    bool stream, hu, bare;
    struct send_opts o;
    /* a push config set waiting for its task's row (rpc_defer_push) */
    bool push;
    char *push_body;   /* the answer once committed */
    char push_id[40];  /* the config, removed again if the write fails */
};

bool rpc_defer_push(struct call *c, struct task *t, char *body, const char *config_id) {
    struct rpc_resume *p = calloc(1, sizeof *p);
    if (p) p->id_json = cJSON_PrintUnformatted(c->id);
    if (!p || !p->id_json || !body) {
        if (p) free(p->id_json);
        free(p);
        free(body);
        push_config_delete(t, config_id);
        task_release(t);
        c->f->http_status = 500;
        return fail(c->f, RPC_INTERNAL_ERROR, "out of memory");
    }
    p->d = c->d;
    p->push = true;
    p->push_body = body;
    snprintf(p->push_id, sizeof p->push_id, "%s", config_id);
    c->out->durable_task = t;
    c->out->resume = p;
    return true;
}

/* A deferred push config set: its row is settled. */
static void resume_push(struct rpc_reply *out, struct task *t, struct rpc_resume *p) {
    a2ad_status st = tasks_wait_durable(t);
    if (st == A2AD_OK) {
        out->body = p->push_body;
        p->push_body = NULL;
    } else {
        push_config_delete(t, p->push_id);
        char msg[600];
        snprintf(msg, sizeof msg, "task %s: the push notification config was not stored: %s",
                 task_id(t), store_last_error());
        cJSON *id = cJSON_Parse(p->id_json);
        out->http_status = 503;
        out->retry_after_s = 5;
        out->body = error_body(id, RPC_INTERNAL_ERROR, msg, p->d);
        cJSON_Delete(id);
    }
    task_release(t);
    free(p->push_body);
    free(p->id_json);
    free(p);
}

static bool created_answer(struct call *c, struct task *t, bool stream, const struct send_opts *o,
                           bool hu);

static bool send_common(struct call *c, bool stream) {
    if (!c->agent)
        return fail(c->f, RPC_INVALID_REQUEST,
                    "no default agent here: POST to /agents/<name> (see GET /healthz for the list)");
    cJSON *message = cJSON_GetObjectItemCaseSensitive(c->params, "message");
    char why[200];
    if (c->d == A2A_V10 && !v1_message_to_v03(message, "params.message", why, sizeof why))
        return fail(c->f, RPC_INVALID_PARAMS, "%s", why);
    if (!check_message(message, c->d, c->f)) return false;
    int refused = modes_refused_part(c->agent->desc.input_modes, message);
    if (refused >= 0) {
        char modes[300];
        modes_join(c->agent->desc.input_modes, modes, sizeof modes);
        return fail(c->f, RPC_CONTENT_TYPE_NOT_SUPPORTED,
                    "Incompatible content types: params.message.parts[%d] is %.80s; agent %s "
                    "takes %s (its defaultInputModes)",
                    refused, modes_part_type(cJSON_GetArrayItem(
                                 cJSON_GetObjectItemCaseSensitive(message, "parts"), refused)),
                    c->agent->desc.name, modes);
    }
    struct send_opts o;
    if (!get_send_opts(c, &o)) return false;
    cJSON *metadata = cJSON_GetObjectItemCaseSensitive(c->params, "metadata");
    if (metadata && !cJSON_IsNull(metadata) && !cJSON_IsObject(metadata))
        return fail(c->f, RPC_INVALID_PARAMS, "params.metadata must be an object");

    const cJSON *task_ref = cJSON_GetObjectItemCaseSensitive(message, "taskId");
    if (cJSON_IsString(task_ref)) return continue_task(c, message, task_ref, stream, &o);

    const cJSON *ctx_id = cJSON_GetObjectItemCaseSensitive(message, "contextId");
    /* Health Universe background_job/v1: refused here, before anything is
     * acknowledged, when activated with bad parameters; always answered at
     * once, as its SDK does. */
    void *hu = NULL;
    char why_hu[sizeof c->f->message];
    a2ad_status hs = hu_parse(c->agent, c->params, c->rq->extensions, &hu, why_hu, sizeof why_hu);
    if (hs == A2AD_ERR_INVALID) return fail(c->f, RPC_INVALID_PARAMS, "%s", why_hu);
    if (hs != A2AD_OK) {
        c->f->http_status = 500;
        return fail(c->f, RPC_INTERNAL_ERROR, "out of memory");
    }
    if (hu) o.blocking = false;

    /* Refuse before building anything when the queue has no room: under
     * overload most requests are refused, and a refusal should cost little. */
    a2ad_status room = workers_agent_has_room(c->agent->desc.name);
    if (room != A2AD_OK) {
        hu_job_free(hu);
        metrics_job(c->agent, METRICS_REFUSED);
        return queue_refusal(c->f, room, c->agent->desc.name);
    }
    /* A job that will POST webhooks while the undelivered ones are at
     * [webhooks] max_outbox_bytes: refused now, rather than its progress
     * being dropped later. */
    if ((hu || o.has_push) && !webhooks_accepting()) {
        hu_job_free(hu);
        c->f->http_status = 503;
        c->f->retry_after_s = 5;
        return fail(c->f, RPC_INTERNAL_ERROR,
                    "the webhook backlog is full ([webhooks] max_outbox_bytes); retry later");
    }

    /* The task takes the message and metadata; push strings are copied. */
    cJSON_DetachItemViaPointer(c->params, message);
    if (metadata && cJSON_IsObject(metadata))
        cJSON_DetachItemViaPointer(c->params, metadata);
    else
        metadata = NULL;
    bool oom = false;
    struct task_create tc = {
        .agent = c->agent,
        .message = message,
        .context_id = cJSON_IsString(ctx_id) ? ctx_id->valuestring : NULL,
        .metadata = metadata,
        .ext[TASK_EXT_HU] = hu,
        .ext[TASK_EXT_TENANT] = tenant_slot_new(c->tenant, &oom),
    };
    if (oom || (o.has_push && !(tc.ext[TASK_EXT_PUSH] = push_configs_new(&o.push)))) {
        free(tc.ext[TASK_EXT_TENANT]);
        cJSON_Delete(message);
        cJSON_Delete(metadata);
        hu_job_free(hu);
        c->f->http_status = 500;
        return fail(c->f, RPC_INTERNAL_ERROR, "out of memory");
    }
    tc.ext[TASK_EXT_OWNER] = auth_owner_new(caller(c));
    /* contextId lives inside message, which tasks_create keeps: read it first. */
    char ctx_copy[37] = "";
    if (tc.context_id) {
        snprintf(ctx_copy, sizeof ctx_copy, "%s", tc.context_id);
        tc.context_id = ctx_copy;
    }
    /* With a durable store the HTTP layer waits for the commit without a
     * thread (rpc_resume), so one commit carries every concurrent send. */
    tc.defer_durable = c->rq->can_defer && tasks_durable();
    struct task *t = NULL;
    a2ad_status st = tasks_create(&tc, &t);
    if (st != A2AD_OK) {
        metrics_job(c->agent, METRICS_REFUSED);
        return create_refusal(c->f, st);
    }
    if (tc.defer_durable) {
        struct rpc_resume *p = calloc(1, sizeof *p);
        if (p) p->id_json = cJSON_PrintUnformatted(c->id);
        if (!p || !p->id_json) {
            free(p);
            tasks_discard(t);
            task_release(t);
            c->f->http_status = 500;
            return fail(c->f, RPC_INTERNAL_ERROR, "out of memory");
        }
        p->agent = c->agent;
        p->d = c->d;
        p->stream = stream;
        p->bare = c->bare;
        p->hu = hu != NULL;
        p->o = o;
        /* its push strings point into params, which are gone by then */
        p->o.has_push = false;
        memset(&p->o.push, 0, sizeof p->o.push);
        c->out->durable_task = t;
        c->out->resume = p;
        return true;
    }
    return created_answer(c, t, stream, &o, hu != NULL);
}

/* The rest of a send once the task is stored: subscribe a stream, ask the
 * agent to validate, queue the job, and answer. Takes the reference to t. */
static bool created_answer(struct call *c, struct task *t, bool stream, const struct send_opts *o_in,
                           bool hu) {
    struct send_opts o = *o_in;
    a2ad_status st;
    /* A stream subscribes before the job can produce anything. */
    struct stream *s = NULL;
    if (stream) {
        char *idj = c->bare ? NULL : cJSON_PrintUnformatted(c->id);
        s = idj || c->bare ? stream_open(t, c->d, idj, o.history) : NULL;
        free(idj);
        if (!s) {
            tasks_discard(t);
            task_release(t);
            c->f->http_status = 500;
            return fail(c->f, RPC_INTERNAL_ERROR, "out of memory");
        }
    }

    bool blocking = o.blocking;
    bool rejected = false;
    const struct agent *agent = c->agent;
    cJSON *ack = NULL; /* the Health Universe answer */
    struct a2ad_validation v;
    memset(&v, 0, sizeof v);
    if (agent->desc.validate) {
        a2ad_status vs = agent->desc.validate(agent->state, task_query(t), &v);
        if (vs != A2AD_OK) {
            char text[320];
            v.reason[sizeof v.reason - 1] = '\0';
            snprintf(text, sizeof text, "Validation failed: %s",
                     v.reason[0] ? v.reason : a2ad_status_name(vs));
            task_finish(t, TASK_REJECTED, text);
            rejected = true; /* answered at once with the rejected task */
            blocking = false;
        }
    }
    if (!rejected) {
        /* while still submitted; a stream is its own answer */
        if (hu && !s) ack = hu_ack(t, o.history, v.estimated_duration_s);
        if (s || blocking) share_hold(t); /* its client waits here: not offered */
        st = workers_submit(t);
        if (st != A2AD_OK) {
            cJSON_Delete(ack);
            stream_close(s);
            tasks_discard(t);
            task_release(t);
            metrics_job(agent, METRICS_REFUSED);
            return queue_refusal(c->f, st, agent->desc.name);
        }
        metrics_job_accepted(agent);
    }
    if (s) {
        c->out->stream = s;
        task_release(t);
        return true;
    }
    if (ack) { /* the Health Universe acknowledgement (its SDK speaks 0.3) */
        c->out->body = rpc_result_body(c->id, a2a_task_result(ack, c->d));
        task_release(t);
        return true;
    }
    o.blocking = blocking;
    return send_answer(c, t, false, &o);
}

static bool m_send(struct call *c) { return send_common(c, false); }
static bool m_stream(struct call *c) { return send_common(c, true); }

/* ---- tasks/get, tasks/cancel, tasks/resubscribe ----------------------- */

static bool m_get(struct call *c) {
    int history;
    if (!rpc_history_length(c->params, "params", &history, c->f)) return false;
    struct task *t = rpc_lookup_task(c, "id");
    if (!t) return false;
    c->out->body = rpc_result_body(c->id, a2a_task_in(task_render(t, history), c->d));
    task_release(t);
    return true;
}

static bool m_cancel(struct call *c) {
    struct task *t = rpc_lookup_task(c, "id");
    if (!t) return false;
    if (!share_hold(t)) { /* another node claimed the queued job: ask again */
        task_release(t);
        if (!(t = rpc_lookup_task(c, "id"))) return false;
    }
    if (rpc_remote(t) && !(t = rpc_remote_cancel(c, t))) return c->out->body != NULL;
    if (task_cancel(t) != A2AD_OK) {
        enum task_state s = task_get_state(t);
        /* 1.0: "Cancel Task operations are idempotent": a canceled task
         * answers itself; 0.3 clients get -32002 as the SDKs give it. */
        if (!(c->d == A2A_V10 && s == TASK_CANCELED)) {
            fail(c->f, RPC_TASK_NOT_CANCELABLE, "task %s is %s and cannot be canceled",
                 task_id(t), task_state_name(s));
            task_release(t);
            return false;
        }
    }
    c->out->body = rpc_result_body(c->id, a2a_task_in(task_render(t, -1), c->d));
    task_release(t);
    return true;
}

static bool m_subscribe(struct call *c) {
    struct task *t = rpc_lookup_task(c, "id");
    if (!t) return false;
    if (!share_hold(t)) { /* another node claimed the queued job: ask again */
        task_release(t);
        if (!(t = rpc_lookup_task(c, "id"))) return false;
    }
    struct send_opts o = {.history = -1};
    if (c->rq && c->rq->last_event_id) {
        if (!replay_parse_id(c->rq->last_event_id, task_id(t), &o.after)) {
            fail(c->f, RPC_INVALID_PARAMS,
                 "Last-Event-ID %.60s is not an event id of task %s (TASKID.SEQ, as the stream "
                 "sent it)", c->rq->last_event_id, task_id(t));
            task_release(t);
            return false;
        }
        o.has_after = true;
    }
    /* 1.0: a terminal task gets UnsupportedOperationError. 0.3 leaves it
     * open; a2ad then sends the final Task and ends the stream. A client
     * back with Last-Event-ID gets the events it missed, even the last. */
    if (c->d == A2A_V10 && !o.has_after && task_state_terminal(task_get_state(t))) {
        fail(c->f, RPC_UNSUPPORTED_OPERATION, "task %s is %s: a finished task has no events left",
             task_id(t), task_state_name(task_get_state(t)));
        task_release(t);
        return false;
    }
    if (!rpc_remote(t)) return send_answer(c, t, true, &o);
    if (!task_state_terminal(task_get_state(t)))
        return rpc_remote_subscribe(c, t, o.has_after ? &o.after : NULL, o.history);
    if (!rpc_remote_watch(c, t)) {
        task_release(t);
        return false;
    }
    task_retain(t);
    bool ok = send_answer(c, t, true, &o);
    if (ok && c->out->stream) rpc_remote_follow(t);
    task_release(t);
    return ok;
}

/* ---- extended card ------------------------------------------------------ */

static bool m_extended_card(struct call *c) {
    if (!auth_enabled()) {
        if (c->d == A2A_V10) /* the card declares capabilities.extendedAgentCard: false */
            return fail(c->f, RPC_UNSUPPORTED_OPERATION,
                        "this agent has no extended agent card (no credentials configured)");
        return fail(c->f, RPC_EXTENDED_CARD_NOT_CONFIGURED,
                    "Authenticated Extended Card is not configured");
    }
    if (!caller(c)) { /* the binding did not authenticate: never served */
        c->f->http_status = 401;
        c->out->auth_challenge = true;
        /* -32007 (the extended card is not available to this caller) is an
         * A2A error every 0.3 and 1.0 client maps; -32600 would say the
         * request itself was malformed. */
        return fail(c->f, RPC_EXTENDED_CARD_NOT_CONFIGURED,
                    "authentication required: send \"Authorization: Bearer TOKEN\" or "
                    "\"X-API-Key: TOKEN\"");
    }
    if (!c->agent)
        return fail(c->f, RPC_INVALID_REQUEST,
                    "no default agent here: POST to /agents/<name>");
    char *card = rpc_agent_card(c->agent, c->rq->base_url ? c->rq->base_url : "", c->d);
    c->out->body = rpc_result_body(c->id, card ? cJSON_Parse(card) : NULL);
    free(card);
    return true;
}

/* ---- dispatch ------------------------------------------------------------ */

static const struct method {
    const char *name;
    enum a2a_dialect d;
    bool (*fn)(struct call *c);
} methods[] = {
    {"message/send", A2A_V03, m_send},
    {"message/stream", A2A_V03, m_stream},
    {"tasks/get", A2A_V03, m_get},
    {"tasks/cancel", A2A_V03, m_cancel},
    {"tasks/resubscribe", A2A_V03, m_subscribe},
    {"tasks/pushNotificationConfig/set", A2A_V03, rpc_push_set},
    {"tasks/pushNotificationConfig/get", A2A_V03, rpc_push_get},
    {"tasks/pushNotificationConfig/list", A2A_V03, rpc_push_list},
    {"tasks/pushNotificationConfig/delete", A2A_V03, rpc_push_delete},
    {"agent/getAuthenticatedExtendedCard", A2A_V03, m_extended_card},
    {"SendMessage", A2A_V10, m_send},
    {"SendStreamingMessage", A2A_V10, m_stream},
    {"GetTask", A2A_V10, m_get},
    {"ListTasks", A2A_V10, rpc_list_tasks},
    {"CancelTask", A2A_V10, m_cancel},
    {"SubscribeToTask", A2A_V10, m_subscribe},
    {"CreateTaskPushNotificationConfig", A2A_V10, rpc_push_set},
    {"GetTaskPushNotificationConfig", A2A_V10, rpc_push_get},
    {"ListTaskPushNotificationConfigs", A2A_V10, rpc_push_list},
    {"DeleteTaskPushNotificationConfig", A2A_V10, rpc_push_delete},
    {"GetExtendedAgentCard", A2A_V10, m_extended_card},
};

/* A2A-Version: absent or empty = 0.3; only Major.Minor counts. */
static bool version_supported(const char *v, enum a2a_dialect *hint) {
    *hint = A2A_V03;
    if (!v) return true;
    while (*v == ' ' || *v == '\t') v++;
    if (!*v) return true;
    unsigned major, minor;
    int used = 0;
    if (sscanf(v, "%u.%u%n", &major, &minor, &used) != 2) return false;
    const char *rest = v + used;
    if (*rest && *rest != '.' && *rest != ' ') return false;
    if (major == 0 && minor == 3) return true;
    if (major == 1 && minor == 0) {
        *hint = A2A_V10;
        return true;
    }
    return false;
}

void rpc_handle(const struct rpc_request *rq, struct rpc_reply *out) {
    memset(out, 0, sizeof *out);
    out->http_status = 200;
    struct rpc_fail f = {0};
    enum a2a_dialect d = A2A_V03;
    bool version_ok = version_supported(rq->a2a_version, &d);
    cJSON *req = cJSON_ParseWithLength(rq->body, rq->len);
    const cJSON *id = NULL;
    char echo[UTIL_ECHO_BUF];
    cJSON *null_id = NULL; /* the id of a request without one */
    bool streaming = false;
    if (!req) {
        fail(&f, RPC_PARSE_ERROR, "request body is not valid JSON");
    } else if (cJSON_IsArray(req)) {
        fail(&f, RPC_INVALID_REQUEST,
             "batch requests are not supported: send one JSON-RPC request per POST");
    } else if (!cJSON_IsObject(req)) {
        fail(&f, RPC_INVALID_REQUEST, "a JSON-RPC request must be an object");
    } else {
        const cJSON *idv = cJSON_GetObjectItemCaseSensitive(req, "id");
        if (cJSON_IsString(idv) || cJSON_IsNumber(idv) || cJSON_IsNull(idv)) id = idv;
        if (!idv) idv = id = null_id = cJSON_CreateNull(); /* see the top */
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(req, "jsonrpc");
        const cJSON *method = cJSON_GetObjectItemCaseSensitive(req, "method");
        cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "params");
        char deep[300];
        const struct method *m = NULL;
        for (size_t i = 0; cJSON_IsString(method) && i < sizeof methods / sizeof methods[0]; i++)
            if (strcmp(method->valuestring, methods[i].name) == 0) m = &methods[i];
        if (m) d = m->d;
        streaming = m && (m->fn == m_stream || m->fn == m_subscribe);
        if (!cJSON_IsString(ver) || strcmp(ver->valuestring, "2.0") != 0)
            fail(&f, RPC_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"");
        else if (!id)
            fail(&f, RPC_INVALID_REQUEST, "\"id\" must be a string, a number or null");
        else if (!cJSON_IsString(method))
            fail(&f, RPC_INVALID_REQUEST, "\"method\" must be a string");
        else if (!version_ok)
            fail(&f, RPC_VERSION_NOT_SUPPORTED,
                 "A2A-Version %s is not supported: this a2ad speaks 0.3 and 1.0",
                 util_echo(echo, sizeof echo, rq->a2a_version, 20));
        else if (!m)
            fail(&f, RPC_METHOD_NOT_FOUND, "method \"%s\" not found",
                 util_echo(echo, sizeof echo, method->valuestring, 80));
        else if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params))
            fail(&f, RPC_INVALID_PARAMS, "\"params\" must be an object");
        else if (!jsonlimit_check(params, "params", deep, sizeof deep))
            fail(&f, RPC_INVALID_PARAMS, "%s", deep);
        else {
            cJSON *empty = NULL;
            if (!cJSON_IsObject(params)) params = empty = cJSON_CreateObject();
            if (d == A2A_V10) v1_camel_keys(params);
            struct call c = {.agent = rq->agent, .id = id, .params = params, .d = d,
                             .rq = rq, .out = out, .f = &f, .bare = rq->bare_stream,
                             .tenant = ""};
            char why[160];
            bool ok = params && (d != A2A_V10 || tenant_of_params(params, &c.tenant, why, sizeof why) ||
                                 fail(&f, RPC_INVALID_PARAMS, "%s", why)) &&
                      m->fn(&c);
            if (!params) fail(&f, RPC_INTERNAL_ERROR, "out of memory");
            cJSON_Delete(empty);
            if (ok) {
                cJSON_Delete(req);
                cJSON_Delete(null_id);
                if (!out->body && !out->wait_task && !out->stream && !out->durable_task) {
                    out->http_status = 500;
                    out->body = rpc_error_body(RPC_INTERNAL_ERROR, "out of memory");
                }
                return;
            }
        }
    }
    out->http_status = f.http_status ? f.http_status : 200;
    out->retry_after_s = f.retry_after_s;
    out->body = error_body(id, f.code, f.message, d);
    if (streaming && rq->accept_sse && out->http_status == 200 && out->body) {
        size_t n = strlen(out->body) + 9;
        char *ev = malloc(n);
        if (ev) {
            snprintf(ev, n, "data: %s\n\n", out->body);
            free(out->body);
            out->body = ev;
            out->sse_body = true;
        }
    }
    cJSON_Delete(req);
    cJSON_Delete(null_id);
}

void rpc_reply_waited(struct rpc_reply *out) {
    cJSON *id = out->wait_id ? cJSON_Parse(out->wait_id) : NULL;
    struct rpc_fail f = {0};
    /* another node's task: as its row has the answer */
    cJSON *doc = rpc_remote(out->wait_task)
                     ? rpc_remote_waited(out->wait_task, out->wait_history, &f)
                     : task_render(out->wait_task, out->wait_history);
    if (doc || !f.code) {
        out->body = rpc_result_body(id, a2a_task_result(doc, out->wait_dialect));
    } else {
        out->http_status = f.http_status ? f.http_status : 200;
        out->retry_after_s = f.retry_after_s;
        out->body = error_body(id, f.code, f.message, out->wait_dialect);
    }
    cJSON_Delete(id);
    task_release(out->wait_task);
    out->wait_task = NULL;
    free(out->wait_id);
    out->wait_id = NULL;
}

void rpc_resume(struct rpc_reply *out) {
    struct task *t = out->durable_task;
    struct rpc_resume *p = out->resume;
    out->durable_task = NULL;
    out->resume = NULL;
    if (!t || !p) { /* not a deferred send: nothing to finish */
        if (t) tasks_discard(t), task_release(t);
        free(p ? p->id_json : NULL);
        free(p);
        out->http_status = 500;
        out->body = rpc_error_body(RPC_INTERNAL_ERROR, "internal error: no send to resume");
        return;
    }
    if (p->push) {
        resume_push(out, t, p);
        return;
    }
    cJSON *id = cJSON_Parse(p->id_json);
    cJSON *null_id = id ? NULL : cJSON_CreateNull();
    struct rpc_fail f = {0};
    struct call c = {.agent = p->agent, .id = id ? id : null_id, .d = p->d, .out = out, .f = &f,
                     .bare = p->bare};
    bool ok;
    a2ad_status st = tasks_wait_durable(t);
    if (st != A2AD_OK) { /* not stored: it never existed for the client */
        tasks_discard(t);
        task_release(t);
        metrics_job(p->agent, METRICS_REFUSED);
        ok = create_refusal(&f, st);
    } else {
        ok = created_answer(&c, t, p->stream, &p->o, p->hu);
    }
    if (ok && !out->body && !out->wait_task && !out->stream) {
        out->http_status = 500;
        out->body = rpc_error_body(RPC_INTERNAL_ERROR, "out of memory");
    } else if (!ok) {
        out->http_status = f.http_status ? f.http_status : 200;
        out->retry_after_s = f.retry_after_s;
        out->body = error_body(c.id, f.code, f.message, p->d);
    }
    cJSON_Delete(id);
    cJSON_Delete(null_id);
    free(p->id_json);
    free(p);
}

void rpc_reply_clear(struct rpc_reply *out) {
    if (out->durable_task) { /* never acknowledged: a new task goes */
        if (!(out->resume && out->resume->push)) tasks_discard(out->durable_task);
        task_release(out->durable_task);
    }
    if (out->resume) free(out->resume->id_json);
    if (out->resume) free(out->resume->push_body);
    free(out->resume);
    free(out->body);
    free(out->wait_id);
    if (out->wait_task) task_release(out->wait_task);
    if (out->stream) stream_close(out->stream);
    memset(out, 0, sizeof *out);
}

/* ---- agent card ----------------------------------------------------- */

static cJSON *string_array(const char *const *items) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; items && items[i]; i++) cJSON_AddItemToArray(a, cJSON_CreateString(items[i]));
    return a;
}

static cJSON *interface(const char *url, const char *binding, const char *version) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "url", url);
    cJSON_AddStringToObject(o, "protocolBinding", binding);
    cJSON_AddStringToObject(o, "protocolVersion", version);
    return o;
}

char *rpc_agent_card(const struct agent *agent, const char *base_url, enum a2a_dialect dialect) {
    const struct a2ad_agent *d = &agent->desc;
    bool v03 = dialect == A2A_V03, auth = auth_enabled();
    cJSON *c = cJSON_CreateObject();
    if (v03) cJSON_AddStringToObject(c, "protocolVersion", "0.3.0");
    cJSON_AddStringToObject(c, "name", d->name);
    cJSON_AddStringToObject(c, "description", d->description ? d->description : "");
    /* One endpoint speaks both versions; 1.0 first = preferred. */
    cJSON *ifs = cJSON_AddArrayToObject(c, "supportedInterfaces");
    cJSON_AddItemToArray(ifs, interface(base_url, "JSONRPC", "1.0"));
    cJSON_AddItemToArray(ifs, interface(base_url, "JSONRPC", "0.3"));
    /* A2A 1.0's HTTP+JSON binding on the same URL (rest.c); 0.3's own
     * (rest03.c) in 0.3's additionalInterfaces: its clients add /v1/... */
    cJSON_AddItemToArray(ifs, interface(base_url, "HTTP+JSON", "1.0"));
    if (v03) {
        cJSON_AddStringToObject(c, "url", base_url);
        cJSON_AddStringToObject(c, "preferredTransport", "JSONRPC");
        cJSON *add = cJSON_AddArrayToObject(c, "additionalInterfaces");
        cJSON *i = cJSON_CreateObject();
        cJSON_AddStringToObject(i, "url", base_url);
        cJSON_AddStringToObject(i, "transport", "JSONRPC");
        cJSON_AddItemToArray(add, i);
        i = cJSON_CreateObject();
        cJSON_AddStringToObject(i, "url", base_url);
        cJSON_AddStringToObject(i, "transport", "HTTP+JSON");
        cJSON_AddItemToArray(add, i);
    }
    cJSON_AddStringToObject(c, "version", d->version ? d->version : "0.0.0");
    cJSON *caps = cJSON_AddObjectToObject(c, "capabilities");
    cJSON_AddBoolToObject(caps, "streaming", 1);
    cJSON_AddBoolToObject(caps, "pushNotifications", settings.push_enabled);
    if (v03) cJSON_AddBoolToObject(caps, "stateTransitionHistory", 0);
    hu_card_extensions(caps, agent);
    cJSON_AddBoolToObject(caps, "extendedAgentCard", auth);
    if (v03) cJSON_AddBoolToObject(c, "supportsAuthenticatedExtendedCard", auth);
    auth_card_security(c, v03); /* what every method but the public card needs */
    static const char *const in_modes[] = {"text/plain", NULL};
    static const char *const out_modes[] = {"text/plain", "application/json", NULL};
    cJSON_AddItemToObject(c, "defaultInputModes",
                          string_array(d->input_modes ? d->input_modes : in_modes));
    cJSON_AddItemToObject(c, "defaultOutputModes", string_array(out_modes));
    cJSON *skills = cJSON_AddArrayToObject(c, "skills");
    for (size_t i = 0; d->skills && i < d->n_skills; i++) {
        const struct a2ad_skill *s = &d->skills[i];
        if (!s->id) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", s->id);
        cJSON_AddStringToObject(o, "name", s->name ? s->name : s->id);
        cJSON_AddStringToObject(o, "description", s->description ? s->description : "");
        cJSON_AddItemToObject(o, "tags", string_array(s->tags));
        if (s->examples) cJSON_AddItemToObject(o, "examples", string_array(s->examples));
        cJSON_AddItemToArray(skills, o);
    }
    return print_and_free(c);
}
