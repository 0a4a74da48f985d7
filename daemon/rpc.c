/* rpc - the A2A JSON-RPC 2.0 surface (protocol 0.3) and agent cards.
 *
 * Batches: a JSON array is refused with -32600 on purpose. No A2A SDK sends
 * batches, and a batch mixing a blocking message/send with other calls has
 * no sensible reply timing. Requests without an id (notifications) are
 * refused too: every A2A method returns a result the client needs.
 */
#include "rpc.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "hu.h"
#include "log.h"
#include "plugins.h"
#include "push.h"
#include "store.h"
#include "tasks.h"
#include "workers.h"

/* A failed request: code, message, and the HTTP status to send it with. */
struct rpc_fail {
    int code;
    int http_status;
    unsigned retry_after_s;
    char message[512];
};

static bool fail(struct rpc_fail *f, int code, const char *fmt, ...) A2AD_PRINTF(3, 4);
static bool fail(struct rpc_fail *f, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
    f->code = code;
    if (!f->http_status) f->http_status = 200; /* JSON-RPC errors travel with 200 */
    return false;
}

static char *print_and_free(cJSON *o) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

static char *error_body(const cJSON *id, int code, const char *message) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "jsonrpc", "2.0");
    cJSON_AddItemToObject(o, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddNumberToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    return print_and_free(o);
}

char *rpc_error_body(int code, const char *message) { return error_body(NULL, code, message); }

static char *result_body(const cJSON *id, cJSON *result /* taken */) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "jsonrpc", "2.0");
    cJSON_AddItemToObject(o, "id", cJSON_Duplicate(id, 1));
    cJSON_AddItemToObject(o, "result", result ? result : cJSON_CreateNull());
    return print_and_free(o);
}

/* ---- parameter checks ------------------------------------------------ */

/* historyLength: absent = all (-1), else a non-negative integer. */
static bool get_history_length(const cJSON *obj, const char *where, int *out,
                               struct rpc_fail *f) {
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

static bool check_part(const cJSON *part, int i, struct rpc_fail *f) {
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
        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(part, "data")))
            return fail(f, RPC_INVALID_PARAMS, "params.message.parts[%d].data must be an object",
                        i);
    } else {
        return fail(f, RPC_INVALID_PARAMS,
                    "params.message.parts[%d].kind \"%.40s\" is not \"text\", \"file\" or \"data\"",
                    i, kind->valuestring);
    }
    return true;
}

static bool check_message(const cJSON *m, struct rpc_fail *f) {
    if (!cJSON_IsObject(m)) return fail(f, RPC_INVALID_PARAMS, "params.message is required (an object)");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(m, "kind");
    if (kind && !(cJSON_IsString(kind) && strcmp(kind->valuestring, "message") == 0))
        return fail(f, RPC_INVALID_PARAMS, "params.message.kind must be \"message\"");
    const cJSON *mid = cJSON_GetObjectItemCaseSensitive(m, "messageId");
    if (!cJSON_IsString(mid) || !*mid->valuestring)
        return fail(f, RPC_INVALID_PARAMS, "params.message.messageId is required (a string)");
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (!cJSON_IsString(role) ||
        (strcmp(role->valuestring, "user") != 0 && strcmp(role->valuestring, "agent") != 0))
        return fail(f, RPC_INVALID_PARAMS, "params.message.role must be \"user\" or \"agent\"");
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(m, "parts");
    if (!cJSON_IsArray(parts) || cJSON_GetArraySize(parts) == 0)
        return fail(f, RPC_INVALID_PARAMS, "params.message.parts must be a non-empty array");
    int i = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, parts) if (!check_part(part, i++, f)) return false;
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(m, "contextId");
    if (ctx && !cJSON_IsString(ctx))
        return fail(f, RPC_INVALID_PARAMS, "params.message.contextId must be a string");
    if (ctx && strlen(ctx->valuestring) >= 37)
        return fail(f, RPC_INVALID_PARAMS, "params.message.contextId is longer than 36 characters");
    return true;
}

/* The push config of message/send, borrowed from the request JSON. */
static bool get_push(const cJSON *cfg, struct push_config *push, bool *has, struct rpc_fail *f) {
    *has = false;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(cfg, "pushNotificationConfig");
    if (!p || cJSON_IsNull(p)) return true;
    if (!cJSON_IsObject(p))
        return fail(f, RPC_INVALID_PARAMS, "params.configuration.pushNotificationConfig must be an object");
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(p, "url");
    if (!cJSON_IsString(url) || (strncmp(url->valuestring, "http://", 7) != 0 &&
                                 strncmp(url->valuestring, "https://", 8) != 0))
        return fail(f, RPC_INVALID_PARAMS,
                    "params.configuration.pushNotificationConfig.url must be an http:// or https:// URL");
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(p, "token");
    if (token && !cJSON_IsNull(token) && !cJSON_IsString(token))
        return fail(f, RPC_INVALID_PARAMS, "params.configuration.pushNotificationConfig.token must be a string");
    if (cJSON_IsString(token) && strlen(token->valuestring) > 4096)
        return fail(f, RPC_INVALID_PARAMS,
                    "params.configuration.pushNotificationConfig.token is longer than 4096 bytes");
    if (cJSON_IsString(token) && strpbrk(token->valuestring, "\r\n"))
        return fail(f, RPC_INVALID_PARAMS,
                    "params.configuration.pushNotificationConfig.token must not contain line breaks");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(p, "id");
    if (id && !cJSON_IsNull(id) && !cJSON_IsString(id))
        return fail(f, RPC_INVALID_PARAMS, "params.configuration.pushNotificationConfig.id must be a string");
    push->url = url->valuestring;
    push->token = cJSON_IsString(token) ? token->valuestring : NULL;
    push->id = cJSON_IsString(id) ? id->valuestring : NULL;
    *has = true;
    return true;
}

static bool agent_owns(const struct agent *agent, struct task *t) {
    return !agent || task_agent(t) == agent;
}

/* ---- methods ---------------------------------------------------------- */

/* 503 + Retry-After for a job the worker queue cannot take (st from
 * workers_has_room or workers_submit). */
static bool queue_refusal(struct rpc_fail *f, a2ad_status st) {
    f->http_status = 503;
    f->retry_after_s = 1;
    if (st == A2AD_ERR_FULL)
        return fail(f, RPC_INTERNAL_ERROR, "the job queue is full (workers.queue_length); retry later");
    if (st == A2AD_ERR_STATE)
        return fail(f, RPC_INTERNAL_ERROR, "a2ad is shutting down; retry on another instance");
    return fail(f, RPC_INTERNAL_ERROR, "cannot queue the job: %s", a2ad_status_name(st));
}

static bool message_send(const struct agent *agent, const cJSON *id, cJSON *params,
                         const char *extensions, struct rpc_reply *out, struct rpc_fail *f) {
    if (!agent)
        return fail(f, RPC_INVALID_REQUEST,
                    "no default agent here: POST to /agents/<name> (see GET /healthz for the list)");
    cJSON *message = cJSON_GetObjectItemCaseSensitive(params, "message");
    if (!check_message(message, f)) return false;

    const cJSON *task_ref = cJSON_GetObjectItemCaseSensitive(message, "taskId");
    if (task_ref && !cJSON_IsNull(task_ref)) {
        struct task *old = cJSON_IsString(task_ref) ? tasks_get(task_ref->valuestring) : NULL;
        if (!old || !agent_owns(agent, old)) {
            if (old) task_release(old);
            return fail(f, RPC_TASK_NOT_FOUND, "task %.64s not found",
                        cJSON_IsString(task_ref) ? task_ref->valuestring : "(not a string)");
        }
        bool ended = task_state_terminal(task_get_state(old));
        task_release(old);
        if (ended)
            return fail(f, RPC_INVALID_REQUEST,
                        "task %.64s is in a terminal state and cannot be continued",
                        task_ref->valuestring);
        return fail(f, RPC_UNSUPPORTED_OPERATION,
                    "continuing a running task with a new message is not supported yet");
    }

    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(params, "configuration");
    if (cfg && !cJSON_IsNull(cfg) && !cJSON_IsObject(cfg))
        return fail(f, RPC_INVALID_PARAMS, "params.configuration must be an object");
    bool blocking = true; /* both official SDKs block when it is absent */
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(cfg, "blocking");
    if (b && !cJSON_IsNull(b)) {
        if (!cJSON_IsBool(b))
            return fail(f, RPC_INVALID_PARAMS, "params.configuration.blocking must be a boolean");
        blocking = cJSON_IsTrue(b);
    }
    int history = -1;
    if (cfg && !get_history_length(cfg, "params.configuration", &history, f)) return false;
    struct push_config push = {0};
    bool has_push = false;
    if (cfg && !get_push(cfg, &push, &has_push, f)) return false;
    cJSON *metadata = cJSON_GetObjectItemCaseSensitive(params, "metadata");
    if (metadata && !cJSON_IsNull(metadata) && !cJSON_IsObject(metadata))
        return fail(f, RPC_INVALID_PARAMS, "params.metadata must be an object");
    const cJSON *ctx_id = cJSON_GetObjectItemCaseSensitive(message, "contextId");
    /* Health Universe background_job/v1: refused here, before anything is
     * acknowledged, when activated with bad parameters; always answered at
     * once, as its SDK does. */
    void *hu = NULL;
    char why[sizeof f->message];
    a2ad_status hs = hu_parse(agent, params, extensions, &hu, why, sizeof why);
    if (hs == A2AD_ERR_INVALID) return fail(f, RPC_INVALID_PARAMS, "%s", why);
    if (hs != A2AD_OK) {
        f->http_status = 500;
        return fail(f, RPC_INTERNAL_ERROR, "out of memory");
    }
    if (hu) blocking = false;

    /* Refuse before building anything when the queue has no room: under
     * overload most requests are refused, and a refusal should cost little. */
    a2ad_status room = workers_has_room();
    if (room != A2AD_OK) {
        hu_job_free(hu);
        return queue_refusal(f, room);
    }

    /* The task takes the message and metadata; push strings are copied. */
    cJSON_DetachItemViaPointer(params, message);
    if (metadata && cJSON_IsObject(metadata))
        cJSON_DetachItemViaPointer(params, metadata);
    else
        metadata = NULL;
    struct task_create tc = {
        .agent = agent,
        .message = message,
        .context_id = cJSON_IsString(ctx_id) ? ctx_id->valuestring : NULL,
        .metadata = metadata,
        .ext[TASK_EXT_HU] = hu,
    };
    if (has_push && !(tc.ext[TASK_EXT_PUSH] = push_configs_new(&push))) {
        cJSON_Delete(message);
        cJSON_Delete(metadata);
        hu_job_free(hu);
        f->http_status = 500;
        return fail(f, RPC_INTERNAL_ERROR, "out of memory");
    }
    /* contextId lives inside message, which tasks_create keeps: read it first. */
    char ctx_copy[37] = "";
    if (tc.context_id) {
        snprintf(ctx_copy, sizeof ctx_copy, "%s", tc.context_id);
        tc.context_id = ctx_copy;
    }
    struct task *t = NULL;
    a2ad_status st = tasks_create(&tc, &t);
    if (st == A2AD_ERR_FULL) {
        f->http_status = 503;
        f->retry_after_s = 1;
        return fail(f, RPC_INTERNAL_ERROR, "the task store is full (tasks.max_tasks); retry later");
    }
    if (st == A2AD_ERR_IO) { /* the durable store could not write it: nothing was accepted */
        f->http_status = 503;
        f->retry_after_s = 5;
        return fail(f, RPC_INTERNAL_ERROR, "%s; the job was not accepted", store_last_error());
    }
    if (st != A2AD_OK) {
        f->http_status = 500;
        return fail(f, RPC_INTERNAL_ERROR, "cannot create the task: %s", a2ad_status_name(st));
    }

    bool rejected = false;
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
        if (hu) ack = hu_ack(t, history, v.estimated_duration_s); /* while still submitted */
        st = workers_submit(t);
        if (st != A2AD_OK) {
            cJSON_Delete(ack);
            tasks_discard(t);
            task_release(t);
            return queue_refusal(f, st);
        }
    }
    if (blocking) {
        out->wait_task = t;
        out->wait_id = cJSON_PrintUnformatted(id);
        out->wait_history = history;
        return true;
    }
    out->body = result_body(id, ack ? ack : task_render(t, history));
    task_release(t);
    return true;
}

static struct task *lookup_task(const struct agent *agent, const cJSON *params, struct rpc_fail *f) {
    const cJSON *tid = cJSON_GetObjectItemCaseSensitive(params, "id");
    if (!cJSON_IsString(tid)) {
        fail(f, RPC_INVALID_PARAMS, "params.id is required (the task id, a string)");
        return NULL;
    }
    struct task *t = tasks_get(tid->valuestring);
    if (t && !agent_owns(agent, t)) {
        task_release(t);
        t = NULL;
    }
    if (!t) fail(f, RPC_TASK_NOT_FOUND, "task %.64s not found", tid->valuestring);
    return t;
}

static bool tasks_get_method(const struct agent *agent, const cJSON *id, const cJSON *params,
                             struct rpc_reply *out, struct rpc_fail *f) {
    int history;
    if (!get_history_length(params, "params", &history, f)) return false;
    struct task *t = lookup_task(agent, params, f);
    if (!t) return false;
    out->body = result_body(id, task_render(t, history));
    task_release(t);
    return true;
}

static bool tasks_cancel_method(const struct agent *agent, const cJSON *id, const cJSON *params,
                                struct rpc_reply *out, struct rpc_fail *f) {
    struct task *t = lookup_task(agent, params, f);
    if (!t) return false;
    if (task_cancel(t) != A2AD_OK) {
        enum task_state s = task_get_state(t);
        task_release(t);
        return fail(f, RPC_TASK_NOT_CANCELABLE, "task %s is %s and cannot be canceled",
                    cJSON_GetObjectItemCaseSensitive(params, "id")->valuestring,
                    task_state_name(s));
    }
    out->body = result_body(id, task_render(t, -1));
    task_release(t);
    return true;
}

/* Methods of A2A 0.3 that a2ad knows but does not offer yet: a clear
 * "unsupported" rather than "method not found". */
static const char *const later_methods[] = {
    "message/stream", "tasks/resubscribe", "tasks/pushNotificationConfig/set",
    "tasks/pushNotificationConfig/get", "tasks/pushNotificationConfig/list",
    "tasks/pushNotificationConfig/delete",
};

static bool dispatch(const struct rpc_request *rq, const cJSON *id, const char *method,
                     cJSON *params, struct rpc_reply *out, struct rpc_fail *f) {
    const struct agent *agent = rq->agent;
    if (strcmp(method, "message/send") == 0)
        return message_send(agent, id, params, rq->extensions, out, f);
    if (strcmp(method, "tasks/get") == 0) return tasks_get_method(agent, id, params, out, f);
    if (strcmp(method, "tasks/cancel") == 0) return tasks_cancel_method(agent, id, params, out, f);
    if (strcmp(method, "agent/getAuthenticatedExtendedCard") == 0)
        return fail(f, RPC_EXTENDED_CARD_NOT_CONFIGURED,
                    "Authenticated Extended Card is not configured");
    for (size_t i = 0; i < sizeof later_methods / sizeof later_methods[0]; i++)
        if (strcmp(method, later_methods[i]) == 0)
            return fail(f, RPC_UNSUPPORTED_OPERATION, "%s is not supported by this a2ad yet", method);
    return fail(f, RPC_METHOD_NOT_FOUND, "method \"%.80s\" not found", method);
}

void rpc_handle(const struct rpc_request *rq, struct rpc_reply *out) {
    const char *body = rq->body;
    size_t len = rq->len;
    memset(out, 0, sizeof *out);
    out->http_status = 200;
    struct rpc_fail f = {0};
    cJSON *req = cJSON_ParseWithLength(body, len);
    const cJSON *id = NULL;
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
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(req, "jsonrpc");
        const cJSON *method = cJSON_GetObjectItemCaseSensitive(req, "method");
        cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "params");
        if (!cJSON_IsString(ver) || strcmp(ver->valuestring, "2.0") != 0)
            fail(&f, RPC_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"");
        else if (!idv)
            fail(&f, RPC_INVALID_REQUEST,
                 "\"id\" is required: a2ad does not accept JSON-RPC notifications");
        else if (!id)
            fail(&f, RPC_INVALID_REQUEST, "\"id\" must be a string, a number or null");
        else if (!cJSON_IsString(method))
            fail(&f, RPC_INVALID_REQUEST, "\"method\" must be a string");
        else if (params && !cJSON_IsObject(params))
            fail(&f, RPC_INVALID_PARAMS, "\"params\" must be an object");
        else {
            cJSON *empty = NULL;
            if (!params) params = empty = cJSON_CreateObject();
            bool ok = dispatch(rq, id, method->valuestring, params, out, &f);
            cJSON_Delete(empty);
            if (ok) {
                cJSON_Delete(req);
                if (!out->body && !out->wait_task) {
                    out->http_status = 500;
                    out->body = rpc_error_body(RPC_INTERNAL_ERROR, "out of memory");
                }
                return;
            }
        }
    }
    out->http_status = f.http_status ? f.http_status : 200;
    out->retry_after_s = f.retry_after_s;
    out->body = error_body(id, f.code, f.message);
    cJSON_Delete(req);
}

void rpc_reply_waited(struct rpc_reply *out) {
    cJSON *id = out->wait_id ? cJSON_Parse(out->wait_id) : NULL;
    out->body = result_body(id, task_render(out->wait_task, out->wait_history));
    cJSON_Delete(id);
    task_release(out->wait_task);
    out->wait_task = NULL;
    free(out->wait_id);
    out->wait_id = NULL;
}

void rpc_reply_clear(struct rpc_reply *out) {
    free(out->body);
    free(out->wait_id);
    if (out->wait_task) task_release(out->wait_task);
    memset(out, 0, sizeof *out);
}

/* ---- agent card ----------------------------------------------------- */

static cJSON *string_array(const char *const *items) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; items && items[i]; i++) cJSON_AddItemToArray(a, cJSON_CreateString(items[i]));
    return a;
}

char *rpc_agent_card(const struct agent *agent, const char *base_url) {
    const struct a2ad_agent *d = &agent->desc;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "protocolVersion", "0.3.0");
    cJSON_AddStringToObject(c, "name", d->name);
    cJSON_AddStringToObject(c, "description", d->description ? d->description : "");
    cJSON_AddStringToObject(c, "url", base_url);
    cJSON_AddStringToObject(c, "preferredTransport", "JSONRPC");
    cJSON_AddStringToObject(c, "version", d->version ? d->version : "0.0.0");
    cJSON *caps = cJSON_AddObjectToObject(c, "capabilities");
    cJSON_AddBoolToObject(caps, "streaming", 0);
    cJSON_AddBoolToObject(caps, "pushNotifications", 1);
    cJSON_AddBoolToObject(caps, "stateTransitionHistory", 0);
    hu_card_extensions(caps, agent);
    static const char *const in_modes[] = {"text/plain", NULL};
    static const char *const out_modes[] = {"text/plain", "application/json", NULL};
    cJSON_AddItemToObject(c, "defaultInputModes", string_array(in_modes));
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
