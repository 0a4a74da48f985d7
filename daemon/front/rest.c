/* rest - the HTTP+JSON binding of A2A 1.0 as a translation to JSON-RPC
 * 1.0. See rest.h. */
#include "front/rest.h"
#include "front/rest03.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

static bool copy_segment(char *out, size_t n, const char *s, size_t len) {
    if (len == 0 || len >= n) return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

/* The JSON-RPC method behind each resource of one protocol version's
 * binding; NULL: that version has no such resource (the path is not
 * REST). The two bindings differ only in these names and the card's path. */
struct rest_names {
    const char *card_path;
    const char *send, *stream, *card, *list, *get, *cancel, *subscribe;
    const char *config_set, *config_list, *config_get, *config_delete;
};

static const struct rest_names names_v10 = {
    "/extendedAgentCard", "SendMessage", "SendStreamingMessage", "GetExtendedAgentCard",
    "ListTasks", "GetTask", "CancelTask", "SubscribeToTask",
    "CreateTaskPushNotificationConfig", "ListTaskPushNotificationConfigs",
    "GetTaskPushNotificationConfig", "DeleteTaskPushNotificationConfig",
};

/* 0.3's paths are under /v1/ (stripped before matching); it has no list. */
static const struct rest_names names_v03 = {
    "/card", "message/send", "message/stream", "agent/getAuthenticatedExtendedCard",
    NULL, "tasks/get", "tasks/cancel", "tasks/resubscribe",
    "tasks/pushNotificationConfig/set", "tasks/pushNotificationConfig/list",
    "tasks/pushNotificationConfig/get", "tasks/pushNotificationConfig/delete",
};

static bool match_plain(const char *m, const char *path, const struct rest_names *n,
                        struct rest_target *t, bool *bad_method) {
    memset(t, 0, sizeof *t);
    *bad_method = false;
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0, post = strcmp(m, "POST") == 0,
         del = strcmp(m, "DELETE") == 0;
    const char *method = NULL;
    if (strcmp(path, "/message:send") == 0) {
        method = post ? n->send : NULL;
    } else if (strcmp(path, "/message:stream") == 0) {
        method = post ? n->stream : NULL;
    } else if (strcmp(path, n->card_path) == 0) {
        method = get ? n->card : NULL;
    } else if (n->list && strcmp(path, "/tasks") == 0) {
        method = get ? n->list : NULL;
    } else if (strncmp(path, "/tasks/", 7) == 0) {
        const char *id = path + 7;
        size_t idn = strcspn(id, "/");
        const char *rest = id + idn;
        if (*rest == '\0') {
            const char *colon = memchr(id, ':', idn);
            size_t bare = colon ? (size_t)(colon - id) : idn;
            if (!copy_segment(t->task_id, sizeof t->task_id, id, bare)) return false;
            if (!colon)
                method = get ? n->get : NULL;
            else if (strcmp(colon, ":cancel") == 0)
                method = post ? n->cancel : NULL;
            else if (strcmp(colon, ":subscribe") == 0)
                method = get || post ? n->subscribe : NULL;
            else
                return false;
        } else {
            static const char configs[] = "/pushNotificationConfigs";
            size_t cn = sizeof configs - 1;
            if (strncmp(rest, configs, cn) != 0 || !copy_segment(t->task_id, sizeof t->task_id, id, idn))
                return false;
            rest += cn;
            if (*rest == '\0') {
                method = post ? n->config_set : get ? n->config_list : NULL;
            } else if (*rest == '/' && !strchr(rest + 1, '/')) {
                if (!copy_segment(t->config_id, sizeof t->config_id, rest + 1, strlen(rest + 1)))
                    return false;
                method = get ? n->config_get : del ? n->config_delete : NULL;
                t->empty_result = del;
            } else {
                return false;
            }
        }
    } else {
        return false;
    }
    t->method = method;
    t->v03 = n == &names_v03;
    *bad_method = method == NULL;
    return true;
}

char *rest_jsonrpc_text(const char *method, cJSON *params) {
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "jsonrpc", "2.0");
    cJSON_AddNumberToObject(req, "id", 0);
    cJSON_AddStringToObject(req, "method", method);
    cJSON_AddItemToObject(req, "params", params);
    char *text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    return text;
}

bool rest_match(const char *m, const char *path, struct rest_target *t, bool *bad_method) {
    /* /v1/ is 0.3's binding, never the 1.0 tenant "v1" */
    if (strncmp(path, "/v1/", 4) == 0) return match_plain(m, path + 3, &names_v03, t, bad_method);
    if (match_plain(m, path, &names_v10, t, bad_method)) return true;
    /* /{tenant}/<route> */
    if (path[0] != '/') return false;
    size_t n = strcspn(path + 1, "/");
    char tenant[sizeof t->tenant];
    if (!path[1 + n] || !copy_segment(tenant, sizeof tenant, path + 1, n) ||
        !match_plain(m, path + 1 + n, &names_v10, t, bad_method))
        return false;
    memcpy(t->tenant, tenant, sizeof tenant);
    return true;
}

char *rest_error_body(int http_status, const char *message) {
    static const struct {
        int http;
        const char *name;
    } names[] = {{400, "INVALID_ARGUMENT"}, {401, "UNAUTHENTICATED"}, {403, "PERMISSION_DENIED"},
                 {404, "NOT_FOUND"},        {405, "UNIMPLEMENTED"},   {409, "ABORTED"},
                 {413, "OUT_OF_RANGE"},     {500, "INTERNAL"},        {501, "UNIMPLEMENTED"},
                 {503, "UNAVAILABLE"}};
    const char *name = "UNKNOWN";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].http == http_status) name = names[i].name;
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddNumberToObject(e, "code", http_status);
    cJSON_AddStringToObject(e, "status", name);
    cJSON_AddStringToObject(e, "message", message);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* A query argument as a JSON value: integers and true/false as such for
 * the keys that are numbers or booleans in the 1.0 request, anything
 * else as a string (the method then says what is wrong with it). */
static void add_query(cJSON *params, const char *key, const char *snake, bool numeric,
                      bool boolean, const char *(*query)(void *, const char *), void *arg) {
    const char *v = query(arg, key);
    if (!v && snake) v = query(arg, snake);
    if (!v) return;
    if (numeric && *v) {
        char *end;
        long n = strtol(v, &end, 10);
        if (!*end && n >= 0 && n <= 100000000) {
            cJSON_AddNumberToObject(params, key, (double)n);
            return;
        }
    }
    if (boolean && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)) {
        cJSON_AddBoolToObject(params, key, v[0] == 't');
        return;
    }
    cJSON_AddStringToObject(params, key, v);
}

char *rest_request(const struct rest_target *t, const char *body, size_t len,
                   const char *(*query)(void *, const char *), void *arg, int *status, char **err) {
    if (t->v03) return rest03_request(t, body, len, query, arg, status, err);
    *err = NULL;
    *status = 200;
    bool wants_body = strcmp(t->method, "SendMessage") == 0 ||
                      strcmp(t->method, "SendStreamingMessage") == 0 ||
                      strcmp(t->method, "CreateTaskPushNotificationConfig") == 0 ||
                      strcmp(t->method, "CancelTask") == 0;
    cJSON *params = NULL;
    size_t skip = 0;
    while (skip < len && (body[skip] == ' ' || body[skip] == '\n' || body[skip] == '\r' || body[skip] == '\t'))
        skip++;
    if (wants_body && skip < len) {
        params = cJSON_ParseWithLength(body, len);
        if (!cJSON_IsObject(params)) {
            cJSON_Delete(params);
            *status = 400;
            *err = rest_error_body(400, params ? "the request body must be a JSON object"
                                               : "the request body is not valid JSON");
            return NULL;
        }
    }
    if (!params) params = cJSON_CreateObject();
    if (!params) return NULL;
    const char *m = t->method;
    if (t->task_id[0]) {
        bool config_method = strstr(m, "PushNotificationConfig") != NULL;
        const char *key = config_method ? "taskId" : "id";
        const cJSON *given = cJSON_GetObjectItemCaseSensitive(params, key);
        if (!given && config_method) given = cJSON_GetObjectItemCaseSensitive(params, "task_id");
        if (cJSON_IsString(given) && *given->valuestring && strcmp(given->valuestring, t->task_id) != 0) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s %.256s in the body does not match the task %s of the path",
                     key, given->valuestring, t->task_id); /* given lives in params */
            cJSON_Delete(params);
            *status = 400;
            *err = rest_error_body(400, msg);
            return NULL;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(params, key);
        cJSON_AddStringToObject(params, key, t->task_id);
    }
    if (t->tenant[0]) {
        const cJSON *given = cJSON_GetObjectItemCaseSensitive(params, "tenant");
        if (cJSON_IsString(given) && *given->valuestring && strcmp(given->valuestring, t->tenant) != 0) {
            cJSON_Delete(params);
            *status = 400;
            *err = rest_error_body(400, "tenant in the body does not match the tenant of the path");
            return NULL;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(params, "tenant");
        cJSON_AddStringToObject(params, "tenant", t->tenant);
    }
    if (t->config_id[0]) {
        cJSON_DeleteItemFromObjectCaseSensitive(params, "id");
        cJSON_AddStringToObject(params, "id", t->config_id);
    }
    if (strcmp(m, "GetTask") == 0) {
        add_query(params, "historyLength", "history_length", true, false, query, arg);
    } else if (strcmp(m, "ListTasks") == 0) {
        add_query(params, "contextId", "context_id", false, false, query, arg);
        add_query(params, "status", NULL, false, false, query, arg);
        add_query(params, "pageSize", "page_size", true, false, query, arg);
        add_query(params, "pageToken", "page_token", false, false, query, arg);
        add_query(params, "historyLength", "history_length", true, false, query, arg);
        add_query(params, "statusTimestampAfter", "status_timestamp_after", false, false, query, arg);
        add_query(params, "includeArtifacts", "include_artifacts", false, true, query, arg);
    } else if (strcmp(m, "ListTaskPushNotificationConfigs") == 0) {
        add_query(params, "pageSize", "page_size", true, false, query, arg);
        add_query(params, "pageToken", "page_token", false, false, query, arg);
    }
    return rest_jsonrpc_text(m, params);
}

/* The HTTP status and google.rpc status name of a JSON-RPC error code, as
 * A2A 1.0.1 maps them. */
static int status_of(int code, const char **name) {
    switch (code) {
    case -32001: *name = "NOT_FOUND"; return 404;
    case -32002: /* TaskNotCancelable */
    case -32003: /* PushNotificationNotSupported */
    case -32004: /* UnsupportedOperation */
    case -32007: /* ExtendedAgentCardNotConfigured */
    case -32008: /* ExtensionSupportRequired */
    case -32009: /* VersionNotSupported */
        *name = "FAILED_PRECONDITION";
        return 400;
    case -32005: *name = "INVALID_ARGUMENT"; return 400; /* ContentTypeNotSupported */
    case -32006: *name = "INTERNAL"; return 500;         /* InvalidAgentResponse */
    case -32700:
    case -32600:
    case -32602: *name = "INVALID_ARGUMENT"; return 400;
    case -32601: *name = "UNIMPLEMENTED"; return 501;
    default: *name = "INTERNAL"; return 500;
    }
}

void rest_reply(const struct rest_target *t, struct rpc_reply *out) {
    if (t->v03) {
        rest03_reply(t, out);
        return;
    }
    cJSON *o = out->body ? cJSON_Parse(out->body) : NULL;
    free(out->body);
    out->body = NULL;
    cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    if (!o || (!err && !cJSON_HasObjectItem(o, "result"))) {
        out->http_status = 500;
        out->body = rest_error_body(500, "internal error: no answer");
        cJSON_Delete(o);
        return;
    }
    if (!err) {
        cJSON *result = cJSON_DetachItemFromObjectCaseSensitive(o, "result");
        if (t->empty_result || cJSON_IsNull(result)) {
            cJSON_Delete(result);
            result = cJSON_CreateObject(); /* google.protobuf.Empty */
        }
        out->body = cJSON_PrintUnformatted(result);
        out->http_status = 200;
        cJSON_Delete(result);
        cJSON_Delete(o);
        return;
    }
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    const char *name;
    int status = status_of(cJSON_IsNumber(code) ? code->valueint : -32603, &name);
    /* The transport's own statuses stand: 401 (credentials), 413, 503. */
    if (out->http_status == 401) status = 401, name = "UNAUTHENTICATED";
    else if (out->http_status == 413) status = 413, name = "OUT_OF_RANGE";
    else if (out->http_status == 503) status = 503, name = "UNAVAILABLE";
    cJSON *r = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(r, "error");
    cJSON_AddNumberToObject(e, "code", status);
    cJSON_AddStringToObject(e, "status", name);
    cJSON_AddStringToObject(e, "message", cJSON_IsString(msg) ? msg->valuestring : "error");
    cJSON *details = cJSON_DetachItemFromObjectCaseSensitive(err, "data");
    if (cJSON_IsArray(details)) cJSON_AddItemToObject(e, "details", details);
    else cJSON_Delete(details);
    out->body = cJSON_PrintUnformatted(r);
    out->http_status = status;
    cJSON_Delete(r);
    cJSON_Delete(o);
}
