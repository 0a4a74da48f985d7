/* rpc_more - the push-config methods (tasks/pushNotificationConfig/set,
 * get, list, delete and their 1.0 names) and ListTasks. See rpc_int.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/auth.h"
#include "store/cluster.h"
#include "agents/plugins.h"
#include "core/rpc_int.h"
#include "store/store.h"
#include "core/tasks.h"
#include "core/tenant.h"
#include "util.h"

#define fail rpc_fail

/* ---- push configs ------------------------------------------------------ */

/* The authentication object of a stored config in dialect d: 0.3
 * {"schemes": [..]} and 1.0 {"scheme"} (1.0 keeps only the first scheme).
 * "credentials" is write-only: never given back (it is optional in both
 * shapes, so it is simply left out). */
static cJSON *auth_in(const cJSON *auth, const char *stored_dialect, enum a2a_dialect d) {
    bool stored_v10 = strcmp(stored_dialect, "1.0") == 0;
    if (stored_v10 == (d == A2A_V10)) {
        cJSON *o = cJSON_Duplicate(auth, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(o, "credentials");
        return o;
    }
    cJSON *o = cJSON_CreateObject();
    if (d == A2A_V10) {
        const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(auth, "schemes"), 0);
        if (cJSON_IsString(first)) cJSON_AddStringToObject(o, "scheme", first->valuestring);
    } else {
        const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(auth, "scheme");
        cJSON *a = cJSON_AddArrayToObject(o, "schemes");
        if (cJSON_IsString(scheme)) cJSON_AddItemToArray(a, cJSON_CreateString(scheme->valuestring));
    }
    return o;
}

/* One stored config (as push_configs_of gives it) as the dialect's
 * TaskPushNotificationConfig. The token, like the credentials, is
 * write-only: the receiver checks it, so whoever could read it back could
 * forge webhooks; it is optional in both shapes and left out. */
static cJSON *config_out(const char *task, const cJSON *e, enum a2a_dialect d) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "taskId", task);
    cJSON *cfg = d == A2A_V10 ? o : cJSON_AddObjectToObject(o, "pushNotificationConfig");
    static const char *const keys[] = {"id", "url"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, keys[i]);
        if (cJSON_IsString(v)) cJSON_AddStringToObject(cfg, keys[i], v->valuestring);
    }
    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(e, "authentication");
    const cJSON *dialect = cJSON_GetObjectItemCaseSensitive(e, "dialect");
    if (auth && cJSON_IsString(dialect))
        cJSON_AddItemToObject(cfg, "authentication", auth_in(auth, dialect->valuestring, d));
    return o;
}

/* The task key: 0.3 set uses "taskId", 0.3 get/list/delete "id"; 1.0
 * always "taskId". */
static const char *task_key(const struct call *c, bool is_set) {
    return c->d == A2A_V10 || is_set ? "taskId" : "id";
}

/* The config id key of get/delete. */
static const char *config_key(const struct call *c) {
    return c->d == A2A_V10 ? "id" : "pushNotificationConfigId";
}

bool rpc_push_set(struct call *c) {
    if (!rpc_push_allowed(c)) return false;
    struct task *t = rpc_lookup_task(c, "taskId");
    if (!t) return false;
    /* 0.3 nests the config; 1.0.1 flattens it into params (1.0.0 nested
     * it as "config": both are read). */
    const cJSON *p = c->params;
    const char *where = "params";
    if (c->d == A2A_V03) {
        p = cJSON_GetObjectItemCaseSensitive(c->params, "pushNotificationConfig");
        where = "params.pushNotificationConfig";
    } else if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(c->params, "config"))) {
        p = cJSON_GetObjectItemCaseSensitive(c->params, "config");
        where = "params.config";
    }
    struct push_config pc;
    if (!rpc_parse_push(p, c->d, where, &pc, c->f)) {
        task_release(t);
        return false;
    }
    if (rpc_remote(t) && !(t = rpc_remote_push_set(c, t, p))) return c->out->body != NULL;
    /* A task that has ended: the config is stored and answered like any
     * other (as the official Python SDK does). The specification forbids
     * nothing here ("MUST persist until task completion or explicit
     * deletion"), and a client may register a receiver late and then read
     * the config back; it is never called, since the task has no events
     * left, and is kept in memory only (no event writes it to the store). */
    char id[PUSH_ID_MAX + 1];
    a2ad_status st = push_config_set(t, &pc, id);
    if (st != A2AD_OK) {
        fail(c->f, st == A2AD_ERR_FULL ? RPC_INVALID_PARAMS : RPC_INTERNAL_ERROR,
             st == A2AD_ERR_FULL
                 ? "task %s has the most push notification configs allowed "
                   "([webhooks] max_configs_per_task); delete one first"
                 : "task %s: cannot store the push notification config",
             task_id(t));
        task_release(t);
        return false;
    }
    /* Acknowledged only once on disk: a config that is not would vanish
     * at a crash before the task's next event. The HTTP layer waits for the
     * commit without a thread, as for a new task (tasks_on_durable). */
    bool defer = c->rq && c->rq->can_defer && tasks_durable();
    if (defer && (st = store_persist_begin(t)) == A2AD_OK) {
        cJSON *saved = push_configs_of(t, id);
        cJSON *one = cJSON_GetArrayItem(saved, 0);
        char *body = rpc_result_body(c->id, one ? config_out(task_id(t), one, c->d) : NULL);
        cJSON_Delete(saved);
        return rpc_defer_push(c, t, body, id);
    }
    if (!defer) st = store_persist(t);
    if (st != A2AD_OK) {
        push_config_delete(t, id);
        c->f->http_status = 503;
        c->f->retry_after_s = 5;
        fail(c->f, RPC_INTERNAL_ERROR, "task %s: the push notification config was not stored: %s",
             task_id(t), store_last_error());
        task_release(t);
        return false;
    }
    cJSON *stored = push_configs_of(t, id);
    cJSON *e = cJSON_GetArrayItem(stored, 0);
    c->out->body = rpc_result_body(c->id, e ? config_out(task_id(t), e, c->d) : NULL);
    cJSON_Delete(stored);
    task_release(t);
    return true;
}

bool rpc_push_get(struct call *c) {
    if (!rpc_push_allowed(c)) return false;
    const cJSON *cid = cJSON_GetObjectItemCaseSensitive(c->params, config_key(c));
    if (cid && !cJSON_IsNull(cid) && !cJSON_IsString(cid))
        return fail(c->f, RPC_INVALID_PARAMS, "params.%s must be a string", config_key(c));
    struct task *t = rpc_lookup_task(c, task_key(c, false));
    if (!t) return false;
    /* Without a config id (0.3's deprecated form; 1.0 too, as the Python
     * SDK): the config named after the task (the inline one of the send,
     * see push.h), else the first. */
    cJSON *all = push_configs_of(t, cJSON_IsString(cid) ? cid->valuestring : task_id(t));
    if (!cJSON_IsString(cid) && cJSON_GetArraySize(all) == 0) {
        cJSON_Delete(all);
        all = push_configs_of(t, NULL);
    }
    cJSON *e = cJSON_GetArrayItem(all, 0);
    bool ok = e != NULL;
    if (ok) {
        c->out->body = rpc_result_body(c->id, config_out(task_id(t), e, c->d));
    } else {
        char echo[UTIL_ECHO_BUF];
        fail(c->f, RPC_TASK_NOT_FOUND, "task %s has no push notification config%s%s", task_id(t),
             cJSON_IsString(cid) ? " " : "",
             cJSON_IsString(cid) ? util_echo(echo, sizeof echo, cid->valuestring, 40) : "");
    }
    cJSON_Delete(all);
    task_release(t);
    return ok;
}

/* pageToken: "" or absent = the start, else the decimal offset a previous
 * page gave. */
static bool page_args(struct call *c, int def, size_t *size, size_t *offset) {
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(c->params, "pageSize");
    *size = (size_t)def;
    if (ps && !cJSON_IsNull(ps)) {
        if (!cJSON_IsNumber(ps) || ps->valuedouble < 1 || ps->valuedouble > 100 ||
            ps->valuedouble != (double)(int)ps->valuedouble)
            return fail(c->f, RPC_INVALID_PARAMS, "params.pageSize must be an integer from 1 to 100");
        *size = (size_t)ps->valueint;
    }
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(c->params, "pageToken");
    *offset = 0;
    if (pt && !cJSON_IsNull(pt)) {
        char *end = NULL;
        unsigned long long v = cJSON_IsString(pt) && *pt->valuestring
                                   ? strtoull(pt->valuestring, &end, 10) : 0;
        if (!cJSON_IsString(pt) || (*pt->valuestring && (*end || *pt->valuestring == '-')))
            return fail(c->f, RPC_INVALID_PARAMS,
                        "params.pageToken must be \"\" or a nextPageToken from an earlier page");
        *offset = (size_t)v;
    }
    return true;
}

static void add_next_token(cJSON *result, size_t next, size_t total) {
    char tok[32] = "";
    if (next < total) snprintf(tok, sizeof tok, "%zu", next);
    cJSON_AddStringToObject(result, "nextPageToken", tok); /* "" on the last page */
}

bool rpc_push_list(struct call *c) {
    if (!rpc_push_allowed(c)) return false;
    size_t size = 100, offset = 0;
    if (c->d == A2A_V10 && !page_args(c, 100, &size, &offset)) return false;
    struct task *t = rpc_lookup_task(c, task_key(c, false));
    if (!t) return false;
    cJSON *all = push_configs_of(t, NULL);
    cJSON *list = cJSON_CreateArray();
    size_t total = (size_t)cJSON_GetArraySize(all), i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, all) {
        if (i >= offset && i < offset + size) cJSON_AddItemToArray(list, config_out(task_id(t), e, c->d));
        i++;
    }
    cJSON_Delete(all);
    if (c->d == A2A_V10) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddItemToObject(r, "configs", list);
        add_next_token(r, offset + size, total);
        list = r;
    }
    c->out->body = rpc_result_body(c->id, list);
    task_release(t);
    return true;
}

bool rpc_push_delete(struct call *c) {
    if (!rpc_push_allowed(c)) return false;
    const cJSON *cid = cJSON_GetObjectItemCaseSensitive(c->params, config_key(c));
    if (!cJSON_IsString(cid))
        return fail(c->f, RPC_INVALID_PARAMS, "params.%s is required (the config id, a string)",
                    config_key(c));
    struct task *t = rpc_lookup_task(c, task_key(c, false));
    if (!t) return false;
    if (rpc_remote(t) && !(t = rpc_remote_push_delete(c, t, cid->valuestring)))
        return c->out->body != NULL;
    /* Idempotent: deleting a config that is not there is not an error. */
    push_config_delete(t, cid->valuestring);
    c->out->body = rpc_result_body(c->id, NULL);
    task_release(t);
    return true;
}

/* ---- ListTasks -------------------------------------------------------- */

struct listed {
    struct task *t;
    char ts[TIMESTAMP_LEN];
};

/* Newest status first; ties by id so pages are stable. */
static int by_time_desc(const void *a, const void *b) {
    const struct listed *x = a, *y = b;
    int c = strcmp(y->ts, x->ts);
    return c ? c : strcmp(task_id(x->t), task_id(y->t));
}

/* Two digits at p into *v; false unless both are digits. */
static bool two_digits(const char *p, int *v) {
    if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9') return false;
    *v = (p[0] - '0') * 10 + (p[1] - '0');
    return true;
}

/* An RFC 3339 time (date-time: "T" or "t" or a blank between date and
 * time, any number of fraction digits, "Z"/"z" or an offset "+hh:mm" /
 * "-hh:mm") as UTC in a2ad's own fixed-width spelling, so that strcmp
 * orders it against task timestamps. Fraction digits beyond milliseconds
 * are cut (a2ad's timestamps have milliseconds). */
static bool normalise_time(const char *in, char out[TIMESTAMP_LEN]) {
    int y = 0, mo, d, h, mi, s;
    const char *p = in;
    for (int i = 0; i < 4; i++, p++) {
        if (*p < '0' || *p > '9') return false;
        y = y * 10 + (*p - '0');
    }
    if (*p++ != '-' || !two_digits(p, &mo) || p[2] != '-' || !two_digits(p + 3, &d)) return false;
    p += 5;
    if (*p != 'T' && *p != 't' && *p != ' ') return false;
    p++;
    if (!two_digits(p, &h) || p[2] != ':' || !two_digits(p + 3, &mi) || p[5] != ':' ||
        !two_digits(p + 6, &s))
        return false;
    p += 8;
    int ms = 0, digits = 0;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3) ms = ms * 10 + (*p - '0');
        if (!digits) return false;
        for (int k = digits; k < 3; k++) ms *= 10;
    }
    long offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!two_digits(p + 1, &oh) || p[3] != ':' || !two_digits(p + 4, &om) || oh > 23 || om > 59)
            return false;
        offset_s = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return false;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return false;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = s};
    time_t t = timegm(&tm) - offset_s; /* local time minus its offset = UTC */
    struct tm u;
    if (!gmtime_r(&t, &u) || u.tm_year + 1900 < 0 || u.tm_year + 1900 > 9999) return false;
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", u.tm_year + 1900,
             u.tm_mon + 1, u.tm_mday, u.tm_hour, u.tm_min, u.tm_sec, ms);
    memcpy(out, tmp, TIMESTAMP_LEN - 1);
    out[TIMESTAMP_LEN - 1] = '\0';
    return true;
}

static bool state_of_v1(const char *name, enum task_state *out) {
    for (int s = TASK_SUBMITTED; s <= TASK_AUTH_REQUIRED; s++)
        if (strcmp(name, v1_state_name((enum task_state)s)) == 0) {
            *out = (enum task_state)s;
            return true;
        }
    return false;
}

bool rpc_list_tasks(struct call *c) {
    const cJSON *p = c->params;
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(p, "contextId");
    if (ctx && !cJSON_IsNull(ctx) && !cJSON_IsString(ctx))
        return fail(c->f, RPC_INVALID_PARAMS, "params.contextId must be a string");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(p, "status");
    enum task_state want = TASK_SUBMITTED;
    bool by_state = cJSON_IsString(status) && strcmp(status->valuestring, "TASK_STATE_UNSPECIFIED") != 0;
    if ((status && !cJSON_IsNull(status) && !cJSON_IsString(status)) ||
        (by_state && !state_of_v1(status->valuestring, &want)))
        return fail(c->f, RPC_INVALID_PARAMS,
                    "params.status must be a task state such as \"TASK_STATE_WORKING\"");
    const cJSON *after = cJSON_GetObjectItemCaseSensitive(p, "statusTimestampAfter");
    char after_ts[TIMESTAMP_LEN] = "";
    if (after && !cJSON_IsNull(after) &&
        (!cJSON_IsString(after) || !normalise_time(after->valuestring, after_ts)))
        return fail(c->f, RPC_INVALID_PARAMS,
                    "params.statusTimestampAfter must be an RFC 3339 time such as "
                    "\"2026-11-24T08:00:00.000Z\" or \"2026-11-24T09:00:00+01:00\"");
    const cJSON *arts = cJSON_GetObjectItemCaseSensitive(p, "includeArtifacts");
    if (arts && !cJSON_IsNull(arts) && !cJSON_IsBool(arts))
        return fail(c->f, RPC_INVALID_PARAMS, "params.includeArtifacts must be a boolean");
    int history;
    size_t size, offset;
    if (!rpc_history_length(p, "params", &history, c->f) || !page_args(c, 50, &size, &offset))
        return false;

    struct task **all;
    size_t n;
    if (tasks_list(&all, &n) != A2AD_OK) {
        c->f->http_status = 500;
        return fail(c->f, RPC_INTERNAL_ERROR, "out of memory");
    }
    if (cluster_active()) { /* and the rows held by other nodes */
        struct task **more = NULL, **grown;
        size_t m = 0;
        if (cluster_list(0, &more, &m) != A2AD_OK) {
            for (size_t i = 0; i < n; i++) task_release(all[i]);
            free(all);
            c->f->http_status = 503;
            c->f->retry_after_s = 5;
            return fail(c->f, RPC_INTERNAL_ERROR, "%s", cluster_last_error());
        }
        if (m && (grown = realloc(all, (n + m) * sizeof *all))) {
            all = grown;
            memcpy(all + n, more, m * sizeof *more);
            n += m;
        } else {
            for (size_t i = 0; i < m; i++) task_release(more[i]);
        }
        free(more);
    }
    struct listed *v = malloc((n ? n : 1) * sizeof *v);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        struct task *t = all[i];
        char ts[TIMESTAMP_LEN];
        enum task_state s = task_get_status(t, ts);
        bool keep = v && (!c->agent || task_agent(t) == c->agent ||
                          (task_agent(t) && strcmp(task_agent(t)->desc.name, c->agent->desc.name) == 0)) &&
                    auth_may_see(c->rq->principal, t) && tenant_matches(t, c->tenant) &&
                    (!cJSON_IsString(ctx) || strcmp(ctx->valuestring, task_context_id(t)) == 0) &&
                    (!by_state || s == want) && (!after_ts[0] || strcmp(ts, after_ts) > 0);
        if (keep) {
            v[kept].t = t;
            memcpy(v[kept].ts, ts, TIMESTAMP_LEN);
            kept++;
        } else {
            task_release(t);
        }
    }
    free(all);
    if (!v) {
        c->f->http_status = 500;
        return fail(c->f, RPC_INTERNAL_ERROR, "out of memory");
    }
    qsort(v, kept, sizeof *v, by_time_desc);
    cJSON *r = cJSON_CreateObject();
    cJSON *tasks = cJSON_AddArrayToObject(r, "tasks");
    for (size_t i = 0; i < kept; i++) {
        if (i >= offset && i < offset + size) {
            cJSON *t = a2a_task_in(task_render(v[i].t, history), A2A_V10);
            if (!cJSON_IsTrue(arts)) cJSON_DeleteItemFromObjectCaseSensitive(t, "artifacts");
            cJSON_AddItemToArray(tasks, t);
        }
        task_release(v[i].t);
    }
    free(v);
    add_next_token(r, offset + size, kept);
    cJSON_AddNumberToObject(r, "pageSize", (double)size);
    cJSON_AddNumberToObject(r, "totalSize", (double)kept);
    c->out->body = rpc_result_body(c->id, r);
    return true;
}

cJSON *rpc_config_out(const char *task, const cJSON *e, enum a2a_dialect d) {
    return config_out(task, e, d);
}
