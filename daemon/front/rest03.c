/* rest03 - A2A 0.3's HTTP+JSON binding (/v1/...) as a translation to
 * JSON-RPC 0.3. See rest03.h. */
#include "front/rest03.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

char *rest03_error_body(int code, const char *message) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "code", code);
    cJSON_AddStringToObject(o, "message", message);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* ---- 0.3 proto JSON -> 0.3 JSON-RPC ------------------------------------ */

static const cJSON *member(const cJSON *o, const char *camel, const char *snake) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, camel);
    return v || !snake ? v : cJSON_GetObjectItemCaseSensitive(o, snake);
}

static void copy_member(cJSON *to, const char *key, const cJSON *from, const char *camel,
                        const char *snake) {
    const cJSON *v = member(from, camel, snake);
    if (v) cJSON_AddItemToObject(to, key, cJSON_Duplicate(v, 1));
}

/* A proto Part {text}|{file:{fileWithUri|fileWithBytes,mimeType}}|{data:{data}}
 * as a 0.3 Part; NULL with err when it is none of them. */
static cJSON *part_in(const cJSON *p, char *err, size_t errlen, int i) {
    cJSON *o = cJSON_CreateObject();
    const cJSON *text = member(p, "text", NULL), *file = member(p, "file", NULL),
                *data = member(p, "data", NULL);
    if (cJSON_IsString(text)) {
        cJSON_AddStringToObject(o, "kind", "text");
        cJSON_AddStringToObject(o, "text", text->valuestring);
    } else if (cJSON_IsObject(file)) {
        cJSON_AddStringToObject(o, "kind", "file");
        cJSON *f = cJSON_AddObjectToObject(o, "file");
        copy_member(f, "uri", file, "fileWithUri", "file_with_uri");
        copy_member(f, "bytes", file, "fileWithBytes", "file_with_bytes");
        copy_member(f, "mimeType", file, "mimeType", "mime_type");
    } else if (cJSON_IsObject(data)) {
        cJSON_AddStringToObject(o, "kind", "data");
        const cJSON *d = member(data, "data", NULL);
        cJSON_AddItemToObject(o, "data", d ? cJSON_Duplicate(d, 1) : cJSON_CreateObject());
    } else {
        snprintf(err, errlen, "message.content[%d] must have text, file or data", i);
        cJSON_Delete(o);
        return NULL;
    }
    copy_member(o, "metadata", p, "metadata", NULL);
    return o;
}

static cJSON *message_in(const cJSON *m, char *err, size_t errlen) {
    if (!cJSON_IsObject(m)) {
        snprintf(err, errlen, "message must be an object (the 0.3 proto Message)");
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", "message");
    copy_member(o, "messageId", m, "messageId", "message_id");
    copy_member(o, "contextId", m, "contextId", "context_id");
    copy_member(o, "taskId", m, "taskId", "task_id");
    const cJSON *role = member(m, "role", NULL);
    if (cJSON_IsString(role))
        cJSON_AddStringToObject(o, "role", strcmp(role->valuestring, "ROLE_AGENT") == 0 ? "agent"
                                           : strcmp(role->valuestring, "ROLE_USER") == 0 ? "user"
                                                                                        : role->valuestring);
    else if (role)
        cJSON_AddItemToObject(o, "role", cJSON_Duplicate(role, 1));
    const cJSON *content = member(m, "content", NULL);
    if (!content) content = member(m, "parts", NULL);
    if (cJSON_IsArray(content)) {
        cJSON *parts = cJSON_AddArrayToObject(o, "parts");
        const cJSON *p;
        int i = 0;
        cJSON_ArrayForEach(p, content) {
            cJSON *q = part_in(p, err, errlen, i++);
            if (!q) {
                cJSON_Delete(o);
                return NULL;
            }
            cJSON_AddItemToArray(parts, q);
        }
    } else if (content) {
        copy_member(o, "parts", m, "content", NULL); /* the method names what is wrong */
    }
    copy_member(o, "metadata", m, "metadata", NULL);
    copy_member(o, "extensions", m, "extensions", NULL);
    copy_member(o, "referenceTaskIds", m, "referenceTaskIds", "reference_task_ids");
    return o;
}

static cJSON *send_params(const cJSON *body, char *err, size_t errlen) {
    const cJSON *m = member(body, "message", NULL);
    if (!m) m = member(body, "request", NULL);
    cJSON *p = cJSON_CreateObject();
    if (m) {
        cJSON *msg = message_in(m, err, errlen);
        if (!msg) {
            cJSON_Delete(p);
            return NULL;
        }
        cJSON_AddItemToObject(p, "message", msg);
    }
    const cJSON *conf = member(body, "configuration", NULL);
    if (cJSON_IsObject(conf)) {
        cJSON *c = cJSON_AddObjectToObject(p, "configuration");
        copy_member(c, "acceptedOutputModes", conf, "acceptedOutputModes", "accepted_output_modes");
        copy_member(c, "pushNotificationConfig", conf, "pushNotification", "push_notification");
        copy_member(c, "historyLength", conf, "historyLength", "history_length");
        /* proto3: an absent bool is false, so a configuration without
         * blocking asks for a non-blocking send (as the official 0.3 servers
         * read it); without a configuration the JSON-RPC default stands. */
        const cJSON *blocking = member(conf, "blocking", NULL);
        if (blocking) cJSON_AddItemToObject(c, "blocking", cJSON_Duplicate(blocking, 1));
        else cJSON_AddFalseToObject(c, "blocking");
    } else if (conf) {
        copy_member(p, "configuration", body, "configuration", NULL);
    }
    copy_member(p, "metadata", body, "metadata", NULL);
    return p;
}

char *rest03_request(const struct rest_target *t, const char *body, size_t len,
                     const char *(*query)(void *, const char *), void *arg, int *status, char **err) {
    *err = NULL;
    *status = 200;
    const char *m = t->method;
    bool send = strncmp(m, "message/", 8) == 0, set = strcmp(m, "tasks/pushNotificationConfig/set") == 0;
    cJSON *in = NULL;
    size_t skip = 0;
    while (skip < len && strchr(" \n\r\t", body[skip])) skip++;
    if ((send || set) && skip < len) {
        in = cJSON_ParseWithLength(body, len);
        if (!cJSON_IsObject(in)) {
            *status = 400;
            *err = rest03_error_body(in ? -32600 : -32700, in ? "the request body must be a JSON object"
                                                               : "the request body is not valid JSON");
            cJSON_Delete(in);
            return NULL;
        }
    }
    char msg[300] = "";
    cJSON *params = NULL;
    if (send) {
        params = send_params(in ? in : &(cJSON){0}, msg, sizeof msg);
        if (!params) {
            cJSON_Delete(in);
            *status = 400;
            *err = rest03_error_body(-32602, msg);
            return NULL;
        }
    } else {
        params = cJSON_CreateObject();
        if (set) {
            const cJSON *pc = member(in, "pushNotificationConfig", "push_notification_config");
            if (pc) cJSON_AddItemToObject(params, "pushNotificationConfig", cJSON_Duplicate(pc, 1));
            /* 0.3's name "tasks/{id}/pushNotificationConfigs/{cid}" must be this task's */
            const cJSON *name = member(in, "name", NULL);
            char want[300];
            snprintf(want, sizeof want, "tasks/%s/", t->task_id);
            if (cJSON_IsString(name) && *name->valuestring &&
                strncmp(name->valuestring, want, strlen(want)) != 0) {
                cJSON_Delete(params);
                cJSON_Delete(in);
                *status = 400;
                *err = rest03_error_body(-32602, "name in the body does not name the task of the path");
                return NULL;
            }
        }
        cJSON_AddStringToObject(params, set ? "taskId" : "id", t->task_id);
        if (t->config_id[0]) cJSON_AddStringToObject(params, "pushNotificationConfigId", t->config_id);
        if (strcmp(m, "tasks/get") == 0) {
            const char *h = query(arg, "historyLength");
            if (!h) h = query(arg, "history_length");
            char *end;
            long n = h && *h ? strtol(h, &end, 10) : -1;
            if (h && (!*h || *end || n < 0 || n > 100000000)) {
                cJSON_Delete(params);
                cJSON_Delete(in);
                *status = 400;
                *err = rest03_error_body(-32602, "historyLength must be a non-negative integer");
                return NULL;
            }
            if (h) cJSON_AddNumberToObject(params, "historyLength", (double)n);
        }
    }
    cJSON_Delete(in);
    return rest_jsonrpc_text(m, params);
}

/* ---- 0.3 JSON-RPC -> 0.3 proto JSON ------------------------------------ */

static cJSON *part_out(const cJSON *p) {
    cJSON *o = cJSON_CreateObject();
    const cJSON *kind = member(p, "kind", NULL);
    const char *k = cJSON_IsString(kind) ? kind->valuestring : "";
    if (strcmp(k, "text") == 0) {
        copy_member(o, "text", p, "text", NULL);
    } else if (strcmp(k, "file") == 0) {
        const cJSON *f = member(p, "file", NULL);
        cJSON *x = cJSON_AddObjectToObject(o, "file");
        copy_member(x, "fileWithUri", f, "uri", NULL);
        copy_member(x, "fileWithBytes", f, "bytes", NULL);
        copy_member(x, "mimeType", f, "mimeType", NULL);
    } else if (strcmp(k, "data") == 0) {
        cJSON *x = cJSON_AddObjectToObject(o, "data");
        copy_member(x, "data", p, "data", NULL);
    }
    return o;
}

static cJSON *parts_out(const cJSON *parts) {
    cJSON *a = cJSON_CreateArray();
    const cJSON *p;
    cJSON_ArrayForEach(p, parts) cJSON_AddItemToArray(a, part_out(p));
    return a;
}

static cJSON *message_out(const cJSON *m) {
    cJSON *o = cJSON_CreateObject();
    copy_member(o, "messageId", m, "messageId", NULL);
    copy_member(o, "contextId", m, "contextId", NULL);
    copy_member(o, "taskId", m, "taskId", NULL);
    const cJSON *role = member(m, "role", NULL);
    if (cJSON_IsString(role))
        cJSON_AddStringToObject(o, "role", strcmp(role->valuestring, "agent") == 0 ? "ROLE_AGENT" : "ROLE_USER");
    cJSON_AddItemToObject(o, "content", parts_out(member(m, "parts", NULL)));
    copy_member(o, "metadata", m, "metadata", NULL);
    copy_member(o, "extensions", m, "extensions", NULL);
    return o;
}

/* "input-required" -> "TASK_STATE_INPUT_REQUIRED"; 0.3's proto spells
 * canceled "CANCELLED"; "unknown" has no proto value. */
static cJSON *state_out(const char *s) {
    if (strcmp(s, "canceled") == 0) return cJSON_CreateString("TASK_STATE_CANCELLED");
    if (strcmp(s, "unknown") == 0) return cJSON_CreateString("TASK_STATE_UNSPECIFIED");
    char b[64] = "TASK_STATE_";
    size_t n = strlen(b);
    for (; *s && n < sizeof b - 1; s++) b[n++] = *s == '-' ? '_' : (char)toupper((unsigned char)*s);
    b[n] = '\0';
    return cJSON_CreateString(b);
}

static cJSON *status_out(const cJSON *s) {
    cJSON *o = cJSON_CreateObject();
    const cJSON *state = member(s, "state", NULL);
    if (cJSON_IsString(state)) cJSON_AddItemToObject(o, "state", state_out(state->valuestring));
    const cJSON *m = member(s, "message", NULL);
    if (cJSON_IsObject(m)) cJSON_AddItemToObject(o, "message", message_out(m));
    copy_member(o, "timestamp", s, "timestamp", NULL);
    return o;
}

static cJSON *artifact_out(const cJSON *a) {
    cJSON *o = cJSON_CreateObject();
    copy_member(o, "artifactId", a, "artifactId", NULL);
    copy_member(o, "name", a, "name", NULL);
    copy_member(o, "description", a, "description", NULL);
    cJSON_AddItemToObject(o, "parts", parts_out(member(a, "parts", NULL)));
    copy_member(o, "metadata", a, "metadata", NULL);
    copy_member(o, "extensions", a, "extensions", NULL);
    return o;
}

static cJSON *task_out(const cJSON *t) {
    cJSON *o = cJSON_CreateObject();
    copy_member(o, "id", t, "id", NULL);
    copy_member(o, "contextId", t, "contextId", NULL);
    cJSON_AddItemToObject(o, "status", status_out(member(t, "status", NULL)));
    const cJSON *x;
    const cJSON *arts = member(t, "artifacts", NULL), *hist = member(t, "history", NULL);
    if (cJSON_IsArray(arts)) {
        cJSON *a = cJSON_AddArrayToObject(o, "artifacts");
        cJSON_ArrayForEach(x, arts) cJSON_AddItemToArray(a, artifact_out(x));
    }
    if (cJSON_IsArray(hist)) {
        cJSON *a = cJSON_AddArrayToObject(o, "history");
        cJSON_ArrayForEach(x, hist) cJSON_AddItemToArray(a, message_out(x));
    }
    copy_member(o, "metadata", t, "metadata", NULL);
    return o;
}

/* A 0.3 result or stream event (by its kind) as the proto StreamResponse /
 * SendMessageResponse member: {"task"}, {"message"}, {"statusUpdate"},
 * {"artifactUpdate"}. */
static cJSON *event_out(const cJSON *e) {
    const cJSON *kind = member(e, "kind", NULL);
    const char *k = cJSON_IsString(kind) ? kind->valuestring : "";
    cJSON *o = cJSON_CreateObject();
    if (strcmp(k, "task") == 0) {
        cJSON_AddItemToObject(o, "task", task_out(e));
    } else if (strcmp(k, "message") == 0) {
        cJSON_AddItemToObject(o, "message", message_out(e));
    } else if (strcmp(k, "status-update") == 0) {
        cJSON *u = cJSON_AddObjectToObject(o, "statusUpdate");
        copy_member(u, "taskId", e, "taskId", NULL);
        copy_member(u, "contextId", e, "contextId", NULL);
        cJSON_AddItemToObject(u, "status", status_out(member(e, "status", NULL)));
        copy_member(u, "final", e, "final", NULL);
        copy_member(u, "metadata", e, "metadata", NULL);
    } else if (strcmp(k, "artifact-update") == 0) {
        cJSON *u = cJSON_AddObjectToObject(o, "artifactUpdate");
        copy_member(u, "taskId", e, "taskId", NULL);
        copy_member(u, "contextId", e, "contextId", NULL);
        const cJSON *a = member(e, "artifact", NULL);
        if (a) cJSON_AddItemToObject(u, "artifact", artifact_out(a));
        copy_member(u, "append", e, "append", NULL);
        copy_member(u, "lastChunk", e, "lastChunk", NULL);
        copy_member(u, "metadata", e, "metadata", NULL);
    } else {
        cJSON_Delete(o);
        return cJSON_Duplicate(e, 1);
    }
    return o;
}

/* {taskId, pushNotificationConfig} -> {name, pushNotificationConfig} */
static cJSON *config_out(const cJSON *c) {
    cJSON *o = cJSON_CreateObject();
    const cJSON *tid = member(c, "taskId", NULL), *pc = member(c, "pushNotificationConfig", NULL);
    const cJSON *cid = member(pc, "id", NULL);
    char name[700];
    snprintf(name, sizeof name, "tasks/%.300s/pushNotificationConfigs/%.300s",
             cJSON_IsString(tid) ? tid->valuestring : "", cJSON_IsString(cid) ? cid->valuestring : "");
    cJSON_AddStringToObject(o, "name", name);
    if (pc) cJSON_AddItemToObject(o, "pushNotificationConfig", cJSON_Duplicate(pc, 1));
    return o;
}

/* A 0.3 card in 0.3's proto: the members the proto has (the JSON-RPC card
 * adds 1.0's), security schemes as {httpAuthSecurityScheme: ...} and
 * requirements as {schemes: {NAME: {list: [...]}}}. */
static cJSON *card_out(const cJSON *c) {
    static const char *const keys[] = {
        "protocolVersion", "name", "description", "url", "preferredTransport",
        "additionalInterfaces", "provider", "version", "documentationUrl", "defaultInputModes",
        "defaultOutputModes", "skills", "supportsAuthenticatedExtendedCard", "signatures", "iconUrl"};
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) copy_member(o, keys[i], c, keys[i], NULL);
    const cJSON *caps = member(c, "capabilities", NULL);
    cJSON *k = cJSON_AddObjectToObject(o, "capabilities");
    copy_member(k, "streaming", caps, "streaming", NULL);
    copy_member(k, "pushNotifications", caps, "pushNotifications", NULL);
    copy_member(k, "extensions", caps, "extensions", NULL);
    const cJSON *schemes = member(c, "securitySchemes", NULL), *x;
    if (cJSON_IsObject(schemes)) {
        static const struct {
            const char *type, *member;
        } kinds[] = {{"http", "httpAuthSecurityScheme"}, {"apiKey", "apiKeySecurityScheme"},
                     {"oauth2", "oauth2SecurityScheme"}, {"openIdConnect", "openIdConnectSecurityScheme"},
                     {"mutualTLS", "mtlsSecurityScheme"}};
        cJSON *ss = cJSON_AddObjectToObject(o, "securitySchemes");
        cJSON_ArrayForEach(x, schemes) {
            const cJSON *type = member(x, "type", NULL);
            const char *m = NULL;
            for (size_t i = 0; cJSON_IsString(type) && i < sizeof kinds / sizeof kinds[0]; i++)
                if (strcmp(type->valuestring, kinds[i].type) == 0) m = kinds[i].member;
            if (!m) continue;
            cJSON *v = cJSON_Duplicate(x, 1);
            cJSON_DeleteItemFromObjectCaseSensitive(v, "type");
            cJSON *in = cJSON_DetachItemFromObjectCaseSensitive(v, "in");
            if (in) cJSON_AddItemToObject(v, "location", in);
            cJSON *w = cJSON_CreateObject();
            cJSON_AddItemToObject(w, m, v);
            cJSON_AddItemToObject(ss, x->string, w);
        }
    }
    const cJSON *sec = member(c, "security", NULL);
    if (cJSON_IsArray(sec)) {
        cJSON *a = cJSON_AddArrayToObject(o, "security");
        cJSON_ArrayForEach(x, sec) {
            cJSON *req = cJSON_CreateObject(), *names = cJSON_AddObjectToObject(req, "schemes");
            const cJSON *y;
            cJSON_ArrayForEach(y, x) {
                cJSON *l = cJSON_CreateObject();
                cJSON_AddItemToObject(l, "list", cJSON_Duplicate(y, 1));
                cJSON_AddItemToObject(names, y->string, l);
            }
            cJSON_AddItemToArray(a, req);
        }
    }
    return o;
}

static cJSON *result_out(const struct rest_target *t, const cJSON *r) {
    const char *m = t->method;
    if (t->empty_result || cJSON_IsNull(r)) return cJSON_CreateObject(); /* google.protobuf.Empty */
    if (strcmp(m, "message/send") == 0) return event_out(r);
    if (strcmp(m, "tasks/get") == 0 || strcmp(m, "tasks/cancel") == 0) return task_out(r);
    if (strcmp(m, "tasks/pushNotificationConfig/list") == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON *a = cJSON_AddArrayToObject(o, "configs");
        const cJSON *x;
        cJSON_ArrayForEach(x, r) cJSON_AddItemToArray(a, config_out(x));
        return o;
    }
    if (strncmp(m, "tasks/pushNotificationConfig/", 29) == 0) return config_out(r);
    return card_out(r);
}

/* HTTP status of a JSON-RPC error code, as the official 0.3 server
 * (@a2a-js/sdk 0.3) maps them; it has no status for -32007 (500 there). */
static int status_of(int code) {
    switch (code) {
    case -32700:
    case -32600:
    case -32602:
    case -32003: /* PushNotificationNotSupported */
    case -32004: /* UnsupportedOperation */
    case -32005: /* ContentTypeNotSupported */
        return 400;
    case -32601:
    case -32001: return 404; /* TaskNotFound */
    case -32002: return 409; /* TaskNotCancelable */
    case -32007: return 404; /* no extended card: the resource is not there */
    default: return 500;
    }
}

void rest03_reply(const struct rest_target *t, struct rpc_reply *out) {
    cJSON *o = out->body ? cJSON_Parse(out->body) : NULL;
    free(out->body);
    out->body = NULL;
    cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(o, "result");
    if (!o || (!err && !result)) {
        out->http_status = 500;
        out->body = rest03_error_body(-32603, "internal error: no answer");
        cJSON_Delete(o);
        return;
    }
    if (!err) {
        cJSON *r = result_out(t, result);
        out->body = cJSON_PrintUnformatted(r);
        out->http_status = 200;
        cJSON_Delete(r);
        cJSON_Delete(o);
        return;
    }
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    int status = status_of(cJSON_IsNumber(code) ? code->valueint : -32603);
    /* The transport's own statuses stand: 401 (credentials), 413, 503. */
    if (out->http_status == 401 || out->http_status == 413 || out->http_status == 503)
        status = out->http_status;
    out->body = cJSON_PrintUnformatted(err); /* {code, message, data} */
    out->http_status = status;
    cJSON_Delete(o);
}

/* ---- streams ----------------------------------------------------------- */

struct rest03_sse {
    char *in;
    size_t in_len;
    char *out;
    size_t out_off, out_len;
};

struct rest03_sse *rest03_sse_new(void) { return calloc(1, sizeof(struct rest03_sse)); }

void rest03_sse_free(struct rest03_sse *x) {
    if (!x) return;
    free(x->in);
    free(x->out);
    free(x);
}

static bool out_add(struct rest03_sse *x, const char *s, size_t n) {
    if (x->out_off == x->out_len) x->out_off = x->out_len = 0;
    char *nb = realloc(x->out, x->out_len + n + 1);
    if (!nb) return false;
    x->out = nb;
    memcpy(x->out + x->out_len, s, n);
    x->out_len += n;
    return true;
}

/* One frame (without its blank line): `data:` lines hold a 0.3 event or a
 * JSON-RPC error; other lines (id:, comments) pass unchanged. */
static bool frame_out(struct rest03_sse *x, const char *f, size_t n) {
    const char *end = f + n;
    while (f < end) {
        const char *nl = memchr(f, '\n', (size_t)(end - f));
        size_t ln = nl ? (size_t)(nl - f) : (size_t)(end - f);
        bool ok = true;
        if (ln >= 6 && strncmp(f, "data: ", 6) == 0) {
            cJSON *e = cJSON_ParseWithLength(f + 6, ln - 6);
            cJSON *err = cJSON_GetObjectItemCaseSensitive(e, "error");
            cJSON *r = err ? NULL : e ? event_out(e) : NULL;
            char *s = err ? cJSON_PrintUnformatted(err) : r ? cJSON_PrintUnformatted(r) : NULL;
            if (err) ok = out_add(x, "event: error\n", 13);
            ok = ok && (s ? out_add(x, "data: ", 6) && out_add(x, s, strlen(s))
                          : out_add(x, f, ln)) && out_add(x, "\n", 1);
            free(s);
            cJSON_Delete(r);
            cJSON_Delete(e);
        } else {
            ok = out_add(x, f, ln) && out_add(x, "\n", 1);
        }
        if (!ok) return false;
        f += ln + (nl ? 1 : 0);
    }
    return out_add(x, "\n", 1);
}

bool rest03_sse_feed(struct rest03_sse *x, const char *b, size_t n) {
    char *nb = realloc(x->in, x->in_len + n + 1);
    if (!nb) return false;
    x->in = nb;
    memcpy(x->in + x->in_len, b, n);
    x->in_len += n;
    size_t start = 0;
    for (size_t i = 0; i + 1 < x->in_len; i++) {
        if (x->in[i] == '\n' && x->in[i + 1] == '\n') {
            if (!frame_out(x, x->in + start, i - start)) return false;
            start = i + 2;
            i++;
        }
    }
    memmove(x->in, x->in + start, x->in_len - start);
    x->in_len -= start;
    return true;
}

size_t rest03_sse_take(struct rest03_sse *x, char *buf, size_t max) {
    size_t k = x->out_len - x->out_off < max ? x->out_len - x->out_off : max;
    if (!k) return 0;
    memcpy(buf, x->out + x->out_off, k);
    x->out_off += k;
    return k;
}
