/* a2a_v1 - A2A 0.3 <-> 1.0 shapes. See a2a_v1.h. */
#include "front/a2a_v1.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const v1_states[] = {
    [TASK_SUBMITTED] = "TASK_STATE_SUBMITTED", [TASK_WORKING] = "TASK_STATE_WORKING",
    [TASK_COMPLETED] = "TASK_STATE_COMPLETED", [TASK_FAILED] = "TASK_STATE_FAILED",
    [TASK_CANCELED] = "TASK_STATE_CANCELED",   [TASK_REJECTED] = "TASK_STATE_REJECTED",
    [TASK_INPUT_REQUIRED] = "TASK_STATE_INPUT_REQUIRED", [TASK_AUTH_REQUIRED] = "TASK_STATE_AUTH_REQUIRED",
};

const char *v1_state_name(enum task_state s) {
    return (unsigned)s < sizeof v1_states / sizeof v1_states[0] ? v1_states[s]
                                                                : "TASK_STATE_UNSPECIFIED";
}

/* The 0.3 state names a2ad renders, mapped to 1.0 (also the ones a2ad never
 * uses, so a stored object from elsewhere converts too). */
static const char *v1_state_of(const char *s03) {
    static const char *const map[][2] = {
        {"submitted", "TASK_STATE_SUBMITTED"},   {"working", "TASK_STATE_WORKING"},
        {"completed", "TASK_STATE_COMPLETED"},   {"failed", "TASK_STATE_FAILED"},
        {"canceled", "TASK_STATE_CANCELED"},     {"rejected", "TASK_STATE_REJECTED"},
        {"input-required", "TASK_STATE_INPUT_REQUIRED"}, {"auth-required", "TASK_STATE_AUTH_REQUIRED"},
        {"input-required", "TASK_STATE_INPUT_REQUIRED"},
        {"auth-required", "TASK_STATE_AUTH_REQUIRED"},
    };
    for (size_t i = 0; s03 && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i][0], s03) == 0) return map[i][1];
    return "TASK_STATE_UNSPECIFIED";
}

static void copy_member(cJSON *to, const cJSON *from, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, key);
    if (v) cJSON_AddItemToObject(to, key, cJSON_Duplicate(v, 1));
}

static void copy_renamed(cJSON *to, const char *to_key, const cJSON *from, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, key);
    if (v) cJSON_AddItemToObject(to, to_key, cJSON_Duplicate(v, 1));
}

static cJSON *v1_part(const cJSON *p) {
    cJSON *o = cJSON_CreateObject();
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(p, "kind");
    const char *k = cJSON_IsString(kind) ? kind->valuestring : "";
    if (strcmp(k, "file") == 0) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(p, "file");
        if (cJSON_GetObjectItemCaseSensitive(f, "bytes"))
            copy_renamed(o, "raw", f, "bytes");
        else
            copy_renamed(o, "url", f, "uri");
        copy_renamed(o, "filename", f, "name");
        copy_renamed(o, "mediaType", f, "mimeType");
    } else if (strcmp(k, "data") == 0) {
        copy_member(o, p, "data");
    } else {
        copy_member(o, p, "text");
    }
    copy_member(o, p, "metadata");
    return o;
}

static cJSON *v1_parts(const cJSON *parts) {
    cJSON *a = cJSON_CreateArray();
    const cJSON *p;
    cJSON_ArrayForEach(p, parts) cJSON_AddItemToArray(a, v1_part(p));
    return a;
}

cJSON *v1_message(const cJSON *m) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    copy_member(o, m, "messageId");
    copy_member(o, m, "contextId");
    copy_member(o, m, "taskId");
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    cJSON_AddStringToObject(o, "role",
                            cJSON_IsString(role) && strcmp(role->valuestring, "agent") == 0
                                ? "ROLE_AGENT"
                                : "ROLE_USER");
    cJSON_AddItemToObject(o, "parts", v1_parts(cJSON_GetObjectItemCaseSensitive(m, "parts")));
    copy_member(o, m, "metadata");
    copy_member(o, m, "extensions");
    copy_member(o, m, "referenceTaskIds");
    return o;
}

cJSON *v1_artifact(const cJSON *a) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    copy_member(o, a, "artifactId");
    copy_member(o, a, "name");
    copy_member(o, a, "description");
    cJSON_AddItemToObject(o, "parts", v1_parts(cJSON_GetObjectItemCaseSensitive(a, "parts")));
    copy_member(o, a, "metadata");
    copy_member(o, a, "extensions");
    return o;
}

static cJSON *v1_status(const cJSON *st) {
    cJSON *o = cJSON_CreateObject();
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(st, "state");
    cJSON_AddStringToObject(o, "state", v1_state_of(cJSON_IsString(state) ? state->valuestring : NULL));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(st, "message");
    if (m) cJSON_AddItemToObject(o, "message", v1_message(m));
    copy_member(o, st, "timestamp");
    return o;
}

cJSON *v1_task(const cJSON *t) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    copy_member(o, t, "id");
    copy_member(o, t, "contextId");
    cJSON_AddItemToObject(o, "status", v1_status(cJSON_GetObjectItemCaseSensitive(t, "status")));
    const cJSON *arts = cJSON_GetObjectItemCaseSensitive(t, "artifacts");
    if (arts) {
        cJSON *a = cJSON_AddArrayToObject(o, "artifacts");
        const cJSON *x;
        cJSON_ArrayForEach(x, arts) cJSON_AddItemToArray(a, v1_artifact(x));
    }
    const cJSON *hist = cJSON_GetObjectItemCaseSensitive(t, "history");
    if (hist) {
        cJSON *h = cJSON_AddArrayToObject(o, "history");
        const cJSON *x;
        cJSON_ArrayForEach(x, hist) cJSON_AddItemToArray(h, v1_message(x));
    }
    copy_member(o, t, "metadata");
    return o;
}

cJSON *a2a_task_in(cJSON *task03, enum a2a_dialect d) {
    if (d == A2A_V03 || !task03) return task03;
    cJSON *o = v1_task(task03);
    cJSON_Delete(task03);
    return o;
}

cJSON *a2a_task_result(cJSON *task03, enum a2a_dialect d) {
    cJSON *task = a2a_task_in(task03, d);
    if (d == A2A_V03 || !task) return task;
    cJSON *w = cJSON_CreateObject();
    if (!w) {
        cJSON_Delete(task);
        return NULL;
    }
    cJSON_AddItemToObject(w, "task", task);
    return w;
}

/* ---- 1.0 -> 0.3 -------------------------------------------------------- */

static void set_member(cJSON *o, const char *key, cJSON *v) {
    if (cJSON_HasObjectItem(o, key))
        cJSON_ReplaceItemInObjectCaseSensitive(o, key, v);
    else
        cJSON_AddItemToObject(o, key, v);
}

/* Move member `from` of src (if any) into dst as `to`. */
static void move_member(cJSON *dst, const char *to, cJSON *src, const char *from) {
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(src, from);
    if (v) cJSON_AddItemToObject(dst, to, v);
}

bool v1_message_to_v03(cJSON *m, const char *where, char *err, size_t errlen) {
    if (!cJSON_IsObject(m)) return true; /* the 0.3 checks name the problem */
    cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (cJSON_IsString(role)) {
        if (strcmp(role->valuestring, "ROLE_USER") == 0)
            set_member(m, "role", cJSON_CreateString("user"));
        else if (strcmp(role->valuestring, "ROLE_AGENT") == 0)
            set_member(m, "role", cJSON_CreateString("agent"));
        else {
            snprintf(err, errlen, "%s.role must be \"ROLE_USER\" or \"ROLE_AGENT\"", where);
            return false;
        }
    }
    cJSON *parts = cJSON_GetObjectItemCaseSensitive(m, "parts");
    int i = 0;
    cJSON *p;
    cJSON_ArrayForEach(p, parts) {
        if (!cJSON_IsObject(p) || cJSON_HasObjectItem(p, "kind")) {
            i++;
            continue; /* the 0.3 checks report it */
        }
        if (cJSON_HasObjectItem(p, "text")) {
            cJSON_AddStringToObject(p, "kind", "text");
        } else if (cJSON_HasObjectItem(p, "raw") || cJSON_HasObjectItem(p, "url")) {
            cJSON *f = cJSON_CreateObject();
            move_member(f, "bytes", p, "raw");
            move_member(f, "uri", p, "url");
            move_member(f, "name", p, "filename");
            move_member(f, "mimeType", p, "mediaType");
            cJSON_AddStringToObject(p, "kind", "file");
            cJSON_AddItemToObject(p, "file", f);
        } else if (cJSON_HasObjectItem(p, "data")) {
            cJSON_AddStringToObject(p, "kind", "data");
        } else {
            snprintf(err, errlen, "%s.parts[%d] must have one of \"text\", \"raw\", \"url\", \"data\"",
                     where, i);
            return false;
        }
        i++;
    }
    return true;
}

void v1_camel_keys(cJSON *o) {
    cJSON *c;
    cJSON_ArrayForEach(c, o) {
        if (cJSON_IsObject(o) && c->string && strchr(c->string, '_')) {
            /* task_id -> taskId, in place: the camel form is never longer. */
            char *s = c->string, *w = s;
            for (const char *r = s; *r; r++) {
                if (*r == '_' && r[1] && r != s) {
                    r++;
                    *w++ = (char)toupper((unsigned char)*r);
                } else {
                    *w++ = *r;
                }
            }
            *w = '\0';
        }
        if (c->string && (strcmp(c->string, "metadata") == 0 || strcmp(c->string, "data") == 0 ||
                          strcmp(c->string, "params") == 0))
            continue;
        if (cJSON_IsObject(c) || cJSON_IsArray(c)) v1_camel_keys(c);
    }
}

/* ---- events ------------------------------------------------------------ */

static cJSON *status_03(const struct task_event *ev) {
    cJSON *st = cJSON_CreateObject();
    cJSON_AddStringToObject(st, "state", task_state_name(ev->state));
    if (ev->message) cJSON_AddItemToObject(st, "message", cJSON_Duplicate(ev->message, 1));
    cJSON_AddStringToObject(st, "timestamp", ev->timestamp);
    return st;
}

cJSON *a2a_event(struct task *t, const struct task_event *ev, enum a2a_dialect d) {
    if (ev->kind == TASK_EVENT_CREATED) return NULL;
    cJSON *e = cJSON_CreateObject();
    if (!e) return NULL;
    if (d == A2A_V03)
        cJSON_AddStringToObject(e, "kind",
                                ev->kind == TASK_EVENT_STATUS ? "status-update" : "artifact-update");
    cJSON_AddStringToObject(e, "taskId", task_id(t));
    cJSON_AddStringToObject(e, "contextId", task_context_id(t));
    if (ev->kind == TASK_EVENT_STATUS) {
        cJSON *st = status_03(ev);
        if (d == A2A_V10) {
            cJSON *s1 = v1_status(st);
            cJSON_Delete(st);
            st = s1;
        }
        cJSON_AddItemToObject(e, "status", st);
        /* 0.3: an interrupted state ends the stream too (final), as the SDKs do */
        if (d == A2A_V03) cJSON_AddBoolToObject(e, "final", ev->terminal || ev->interrupted);
    } else {
        cJSON_AddItemToObject(e, "artifact", d == A2A_V10 ? v1_artifact(ev->artifact)
                                                          : cJSON_Duplicate(ev->artifact, 1));
        /* add_artifact: one event, whole; add_artifact_chunk: one per chunk */
        cJSON_AddBoolToObject(e, "append", ev->append);
        cJSON_AddBoolToObject(e, "lastChunk", ev->last_chunk);
    }
    if (d == A2A_V03) return e;
    cJSON *w = cJSON_CreateObject();
    cJSON_AddItemToObject(w, ev->kind == TASK_EVENT_STATUS ? "statusUpdate" : "artifactUpdate", e);
    return w;
}

cJSON *a2a_event_in(const cJSON *ev03, enum a2a_dialect d) {
    if (d == A2A_V03) return cJSON_Duplicate(ev03, 1);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(ev03, "kind");
    bool status = cJSON_IsString(kind) && strcmp(kind->valuestring, "status-update") == 0;
    if (!status && !(cJSON_IsString(kind) && strcmp(kind->valuestring, "artifact-update") == 0))
        return NULL;
    cJSON *e = cJSON_CreateObject();
    copy_member(e, ev03, "taskId");
    copy_member(e, ev03, "contextId");
    if (status) {
        cJSON_AddItemToObject(e, "status", v1_status(cJSON_GetObjectItemCaseSensitive(ev03, "status")));
    } else {
        cJSON_AddItemToObject(e, "artifact",
                              v1_artifact(cJSON_GetObjectItemCaseSensitive(ev03, "artifact")));
        copy_member(e, ev03, "append");
        copy_member(e, ev03, "lastChunk");
    }
    copy_member(e, ev03, "metadata");
    cJSON *w = cJSON_CreateObject();
    cJSON_AddItemToObject(w, status ? "statusUpdate" : "artifactUpdate", e);
    return w;
}

cJSON *v1_error_data(int code) {
    static const char *const reasons[] = {
        "TASK_NOT_FOUND",          "TASK_NOT_CANCELABLE",
        "PUSH_NOTIFICATION_NOT_SUPPORTED", "UNSUPPORTED_OPERATION",
        "CONTENT_TYPE_NOT_SUPPORTED",      "INVALID_AGENT_RESPONSE",
        "EXTENDED_AGENT_CARD_NOT_CONFIGURED", "EXTENSION_SUPPORT_REQUIRED",
        "VERSION_NOT_SUPPORTED",
    };
    int i = -32001 - code; /* -32001 -> 0 ... -32009 -> 8 */
    if (i < 0 || i >= (int)(sizeof reasons / sizeof reasons[0])) return NULL;
    cJSON *a = cJSON_CreateArray();
    cJSON *info = cJSON_CreateObject();
    cJSON_AddStringToObject(info, "@type", "type.googleapis.com/google.rpc.ErrorInfo");
    cJSON_AddStringToObject(info, "reason", reasons[i]);
    cJSON_AddStringToObject(info, "domain", "a2a-protocol.org");
    cJSON_AddItemToArray(a, info);
    return a;
}
