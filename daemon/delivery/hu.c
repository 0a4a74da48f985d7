/* hu - the Health Universe background_job/v1 extension. See hu.h.
 *
 * The bodies follow the SDK's update_client.py key for key and in its key
 * order (cJSON keeps insertion order); keys the SDK sends only when set are
 * left out the same way. */
#include "delivery/hu.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "delivery/guard.h"
#include "log.h"
#include "agents/plugins.h"
#include "core/tasks.h"
#include "util.h"
#include "delivery/webhooks.h"

/* Bounds on what the platform sends: generous for ids and keys, small
 * enough that one request cannot make a header or log line absurd. */
#define JOB_ID_MAX 1024
#define API_KEY_MAX 4096

static const char *const importance_names[] = {"error", "notice", "info", "debug"};

struct hu_job {
    char *job_id;
    char *api_key;
    char *status_url;     /* job_status_update_url, NULL = none */
    char *results_url;    /* job_results_url, NULL = none */
    int min_importance;   /* a2ad_importance: progress above it is not POSTed */
    char *key_header;     /* "X-API-Key: ..." */
    char *order_key;      /* "TASKID|hu", made at the first event */
};

/* [agent.NAME] hu_min_importance, copied at start-up; read-only afterwards. */
static struct level {
    char *agent;
    int importance;
} *levels;
static size_t n_levels;

void hu_job_free(void *data) {
    struct hu_job *j = data;
    if (!j) return;
    free(j->job_id);
    free(j->api_key);
    free(j->status_url);
    free(j->results_url);
    free(j->key_header);
    free(j->order_key);
    free(j);
}

static struct hu_job *job_new(const char *job_id, const char *api_key, const char *status_url,
                              const char *results_url, int min_importance) {
    struct hu_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->job_id = strdup(job_id);
    j->api_key = strdup(api_key);
    j->status_url = util_strdup(status_url);
    j->results_url = util_strdup(results_url);
    j->min_importance = min_importance;
    static const char name[] = "X-API-Key: ";
    size_t n = sizeof name + strlen(api_key);
    if ((j->key_header = malloc(n))) snprintf(j->key_header, n, "%s%s", name, api_key);
    if (!j->job_id || !j->api_key || !j->key_header || (status_url && !j->status_url) ||
        (results_url && !j->results_url)) {
        hu_job_free(j);
        return NULL;
    }
    return j;
}

/* ---- the request -------------------------------------------------------- */

static bool fail_msg(char *err, size_t errlen, const char *fmt, ...) A2AD_PRINTF(3, 4);
static bool fail_msg(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return false;
}

static bool has_members(const cJSON *o) { return cJSON_IsObject(o) && o->child != NULL; }

/* Does a comma-separated header value list the URI? Blanks around items
 * are allowed, as in any HTTP list. */
static bool header_lists_uri(const char *h) {
    static const size_t ulen = sizeof HU_BACKGROUND_JOB_URI - 1;
    while (h && *h) {
        while (*h == ' ' || *h == '\t' || *h == ',') h++;
        const char *end = h;
        while (*end && *end != ',') end++;
        const char *last = end;
        while (last > h && (last[-1] == ' ' || last[-1] == '\t')) last--;
        if ((size_t)(last - h) == ulen && memcmp(h, HU_BACKGROUND_JOB_URI, ulen) == 0) return true;
        h = end;
    }
    return false;
}

static bool array_lists_uri(const cJSON *a) {
    const cJSON *e;
    cJSON_ArrayForEach(e, a) if (cJSON_IsString(e) && strcmp(e->valuestring, HU_BACKGROUND_JOB_URI) == 0)
        return true;
    return false;
}

/* A required string of the extension object: non-empty, bounded, no
 * control characters (api_key goes into a header, job_id into logs). */
static bool get_field(const cJSON *ext, const char *where, const char *name, size_t max,
                      const char **out, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ext, name);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return fail_msg(err, errlen, "%s[\"%s\"].%s is required (a non-empty string)", where,
                        HU_BACKGROUND_JOB_URI, name);
    if (strlen(v->valuestring) > max)
        return fail_msg(err, errlen, "%s[\"%s\"].%s is longer than %zu bytes", where,
                        HU_BACKGROUND_JOB_URI, name, max);
    for (const unsigned char *c = (const unsigned char *)v->valuestring; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return fail_msg(err, errlen, "%s[\"%s\"].%s must not contain control characters",
                            where, HU_BACKGROUND_JOB_URI, name);
    *out = v->valuestring;
    return true;
}

/* An optional URL at the top level of the metadata. Absent, null or ""
 * means none, as for the SDK (which then skips those POSTs). */
static bool get_url(const cJSON *md, const char *where, const char *name, const char **out,
                    char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(md, name);
    *out = NULL;
    if (!v || cJSON_IsNull(v) || (cJSON_IsString(v) && !v->valuestring[0])) return true;
    if (!cJSON_IsString(v) || (strncmp(v->valuestring, "http://", 7) != 0 &&
                               strncmp(v->valuestring, "https://", 8) != 0))
        return fail_msg(err, errlen, "%s.%s must be an http:// or https:// URL", where, name);
    /* The platform's URLs get the same SSRF guard as push configs. */
    char what[160];
    snprintf(what, sizeof what, "%s.%s", where, name);
    if (!guard_check_url(v->valuestring, what, err, errlen)) return false;
    *out = v->valuestring;
    return true;
}

static int agent_min_importance(const struct agent *agent) {
    for (size_t i = 0; agent && i < n_levels; i++)
        if (strcmp(levels[i].agent, agent->desc.name) == 0) return levels[i].importance;
    return A2AD_DEBUG; /* like the SDK: every update goes out */
}

a2ad_status hu_parse(const struct agent *agent, cJSON *params, const char *extensions_header,
                     void **job, char *err, size_t errlen) {
    *job = NULL;
    err[0] = '\0';
    cJSON *message = cJSON_GetObjectItemCaseSensitive(params, "message");
    cJSON *md = cJSON_GetObjectItemCaseSensitive(params, "metadata");
    const char *where = "params.metadata";
    if (!has_members(md)) { /* the SDK's `if not metadata: metadata = message.metadata` */
        md = cJSON_GetObjectItemCaseSensitive(message, "metadata");
        where = "params.message.metadata";
        if (!cJSON_IsObject(md)) md = NULL;
    }
    cJSON *ext = cJSON_GetObjectItemCaseSensitive(md, HU_BACKGROUND_JOB_URI);
    if (!ext) {
        /* Activated without its parameters: say what activated it. */
        const char *by;
        if (extensions_header && header_lists_uri(extensions_header))
            by = "the A2A-Extensions (or X-A2A-Extensions) header";
        else if (array_lists_uri(cJSON_GetObjectItemCaseSensitive(message, "extensions")))
            by = "params.message.extensions";
        else
            return A2AD_OK; /* not a Health Universe job */
        fail_msg(err, errlen,
                 "%s lists the extension %s, but params.metadata (or, when that is empty, "
                 "params.message.metadata) has no \"%s\" object: put {\"job_id\":…,\"api_key\":…} "
                 "there",
                 by, HU_BACKGROUND_JOB_URI, HU_BACKGROUND_JOB_URI);
        return A2AD_ERR_INVALID;
    }
    if (!cJSON_IsObject(ext)) {
        fail_msg(err, errlen, "%s[\"%s\"] must be an object with job_id and api_key", where,
                 HU_BACKGROUND_JOB_URI);
        return A2AD_ERR_INVALID;
    }
    const char *job_id, *api_key, *status_url, *results_url;
    if (!get_field(ext, where, "job_id", JOB_ID_MAX, &job_id, err, errlen) ||
        !get_field(ext, where, "api_key", API_KEY_MAX, &api_key, err, errlen) ||
        !get_url(md, where, "job_status_update_url", &status_url, err, errlen) ||
        !get_url(md, where, "job_results_url", &results_url, err, errlen))
        return A2AD_ERR_INVALID;

    struct hu_job *j = job_new(job_id, api_key, status_url, results_url,
                               agent_min_importance(agent));
    if (!j) return A2AD_ERR_NOMEM;
    /* The key is a credential: the task keeps the metadata for tasks/get and
     * push notifications, so it loses the key here (the slot has it). */
    cJSON_DeleteItemFromObjectCaseSensitive(ext, "api_key");
    if (!status_url && !results_url)
        log_warn("Health Universe job %s for agent %s has neither job_status_update_url nor "
                 "job_results_url: it runs, but nothing is POSTed",
                 j->job_id, agent ? agent->desc.name : "?");
    *job = j;
    return A2AD_OK;
}

/* ---- the acknowledgement ------------------------------------------------ */

/* The SDK's wording: minutes when there is at least one, else seconds. */
static void ack_text(char *buf, size_t n, uint32_t estimate_s) {
    char d[64] = "";
    if (estimate_s / 60 > 0)
        snprintf(d, sizeof d, " (estimated: %u min)", (unsigned)(estimate_s / 60));
    else if (estimate_s > 0)
        snprintf(d, sizeof d, " (estimated: %us)", (unsigned)estimate_s);
    snprintf(buf, n, "Job submitted successfully%s. Processing will continue in the background.",
             d);
}

/* Add estimated_duration_seconds (when known) and {URI: {"job_id"}} to a
 * metadata object, keeping what is there. */
static void ack_metadata(cJSON *md, const char *job_id, uint32_t estimate_s) {
    if (estimate_s && !cJSON_HasObjectItem(md, "estimated_duration_seconds"))
        cJSON_AddNumberToObject(md, "estimated_duration_seconds", estimate_s);
    if (!cJSON_HasObjectItem(md, HU_BACKGROUND_JOB_URI)) {
        cJSON *e = cJSON_AddObjectToObject(md, HU_BACKGROUND_JOB_URI);
        if (e) cJSON_AddStringToObject(e, "job_id", job_id);
    }
}

cJSON *hu_ack(struct task *t, int history_length, uint32_t estimate_s) {
    if (!estimate_s) estimate_s = task_agent(t)->desc.estimated_duration_s;
    char text[160];
    ack_text(text, sizeof text, estimate_s);
    char mid[UUID_STR_LEN];
    util_uuid(mid);

    task_lock(t);
    const struct hu_job *j = task_ext(t, TASK_EXT_HU);
    cJSON *o = j ? task_render_locked(t, history_length) : NULL;
    cJSON *m = o ? cJSON_CreateObject() : NULL;
    cJSON *part = m ? cJSON_CreateObject() : NULL;
    if (part) {
        cJSON_AddStringToObject(m, "kind", "message");
        cJSON_AddStringToObject(m, "role", "agent");
        cJSON_AddStringToObject(m, "messageId", mid);
        cJSON_AddStringToObject(m, "taskId", task_id(t));
        cJSON_AddStringToObject(m, "contextId", task_context_id(t));
        cJSON_AddStringToObject(part, "kind", "text");
        cJSON_AddStringToObject(part, "text", text);
        cJSON *parts = cJSON_AddArrayToObject(m, "parts");
        if (parts) cJSON_AddItemToArray(parts, part);
        else cJSON_Delete(part);
        cJSON *md = cJSON_AddObjectToObject(m, "metadata");
        if (md) ack_metadata(md, j->job_id, estimate_s);
        /* As the SDK's ack_background_job_enqueued marks its message. */
        cJSON *exts = cJSON_AddArrayToObject(m, "extensions");
        if (exts) cJSON_AddItemToArray(exts, cJSON_CreateString(HU_BACKGROUND_JOB_URI));

        /* status = {state, message, timestamp}, like any A2A status. */
        cJSON *status = cJSON_GetObjectItemCaseSensitive(o, "status");
        cJSON *ts = cJSON_DetachItemFromObjectCaseSensitive(status, "timestamp");
        cJSON_DeleteItemFromObjectCaseSensitive(status, "message");
        cJSON_AddItemToObject(status, "message", m);
        if (ts) cJSON_AddItemToObject(status, "timestamp", ts);

        cJSON *tmd = cJSON_GetObjectItemCaseSensitive(o, "metadata");
        if (!tmd) tmd = cJSON_AddObjectToObject(o, "metadata");
        if (tmd) ack_metadata(tmd, j->job_id, estimate_s);
    } else {
        cJSON_Delete(m); /* out of memory: no half-built ack */
        cJSON_Delete(o);
        o = NULL;
    }
    task_unlock(t);
    return o;
}

/* ---- the webhooks ------------------------------------------------------- */

/* A number as Python's json prints a float: 1.0 rather than cJSON's 1, so
 * a platform parsing with strict float types sees what the SDK sent. */
static void add_float(cJSON *o, const char *key, double v) {
    if (v == floor(v) && fabs(v) < 1e15) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.1f", v);
        cJSON_AddRawToObject(o, key, buf);
    } else {
        cJSON_AddNumberToObject(o, key, v);
    }
}

/* Queue body (taken) to url under the task's order key; NULL url = the
 * platform gave none, so nothing is sent (as in the SDK). */
static void post(struct task *t, const struct hu_job *j, const char *url, cJSON *body,
                 bool essential) {
    char *text = body && url ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (!url) return;
    if (!text) {
        log_error("task %s: out of memory rendering a Health Universe update", task_id(t));
        return;
    }
    const char *headers[] = {"Content-Type: application/json", j->key_header, NULL};
    /* task_id: a given-up update is recorded on the task (durable store). */
    struct webhook_post p = {.order_key = j->order_key, .url = url, .headers = headers,
                             .body = text, .len = strlen(text), .essential = essential,
                             .task_id = task_id(t)};
    a2ad_status st = webhooks_post(&p);
    /* The URL and key are the platform's secrets: the job id traces it. */
    if (st != A2AD_OK)
        log_warn("task %s: Health Universe update for job %s not queued: %s", task_id(t),
                 j->job_id, a2ad_status_name(st));
}

static cJSON *body_start(const struct hu_job *j) {
    cJSON *o = cJSON_CreateObject();
    if (o) cJSON_AddStringToObject(o, "job_id", j->job_id);
    return o;
}

/* update_progress: job_id, update_type, importance, progress?, task_status,
 * status_message? (progress only when given; the text only when non-empty). */
static cJSON *progress_body(const struct hu_job *j, const struct task_event *ev) {
    cJSON *o = body_start(j);
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "update_type", "progress");
    cJSON_AddStringToObject(o, "importance", importance_names[ev->importance]);
    if (!isnan(ev->progress)) add_float(o, "progress", ev->progress);
    cJSON_AddStringToObject(o, "task_status", "working");
    if (ev->text && ev->text[0]) cJSON_AddStringToObject(o, "status_message", ev->text);
    return o;
}

/* add_artifact: artifact_data {name, content, data_type, description}. The
 * SDK can only send text; bytes that are not (the A2A artifact holds them
 * as a base64 file part) go as base64 with "encoding": "base64" added. */
static cJSON *artifact_body(const struct hu_job *j, const struct task_event *ev) {
    const cJSON *part = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ev->artifact, "parts"), 0);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(part, "file"), "bytes");
    cJSON *o = body_start(j);
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "update_type", "artifact");
    cJSON_AddStringToObject(o, "importance", "notice"); /* the SDK's default for artifacts */
    cJSON *a = cJSON_AddObjectToObject(o, "artifact_data");
    if (!a) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddStringToObject(a, "name", ev->artifact_name);
    /* A JSON artifact is a data part in A2A; the SDK sends its JSON text. */
    char *json = cJSON_GetObjectItemCaseSensitive(part, "data") && ev->data
                     ? strndup(ev->data, ev->len)
                     : NULL;
    bool binary = !cJSON_IsString(text) && !json;
    cJSON_AddStringToObject(a, "content", json                   ? json
                                          : !binary              ? text->valuestring
                                          : cJSON_IsString(bytes) ? bytes->valuestring
                                                                 : "");
    free(json);
    cJSON_AddStringToObject(a, "data_type", ev->artifact_mime);
    cJSON_AddStringToObject(a, "description", "");
    if (binary) cJSON_AddStringToObject(a, "encoding", "base64");
    return o;
}

/* post_completion / post_failure. To the status URL: job_id, task_status,
 * progress 1.0, status_message, is_terminal. To the results URL: the same
 * without is_terminal, progress after the text, and no progress at all on
 * failure. */
static cJSON *terminal_body(const struct hu_job *j, const struct task_event *ev, bool to_status,
                            const char *message) {
    bool ok = ev->state == TASK_COMPLETED;
    cJSON *o = body_start(j);
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "task_status", ok ? "completed" : "failed");
    if (to_status) add_float(o, "progress", 1.0);
    cJSON_AddStringToObject(o, "status_message", message);
    if (to_status)
        cJSON_AddBoolToObject(o, "is_terminal", 1);
    else if (ok)
        add_float(o, "progress", 1.0);
    return o;
}

static a2ad_status hu_observe(struct task *t, const struct task_event *ev) {
    struct hu_job *j = task_ext(t, TASK_EXT_HU);
    if (!j || ev->kind == TASK_EVENT_CREATED) return A2AD_OK;
    if (!j->order_key) {
        size_t n = strlen(task_id(t)) + sizeof "|hu";
        if (!(j->order_key = malloc(n))) {
            log_error("task %s: out of memory; Health Universe update dropped", task_id(t));
            return A2AD_ERR_NOMEM;
        }
        snprintf(j->order_key, n, "%s|hu", task_id(t));
    }
    if (ev->kind == TASK_EVENT_ARTIFACT) {
        /* The SDK has no chunks: a chunked artifact is posted once, whole,
         * at its last chunk. */
        if (!ev->last_chunk) return A2AD_OK;
        struct task_event whole = *ev;
        whole.artifact = ev->whole;
        whole.data = ev->whole_data;
        whole.len = ev->whole_len;
        post(t, j, j->status_url, artifact_body(j, &whole), false);
    } else if (!ev->terminal) {
        /* Only update_progress events carry an importance; the start of the
         * job is not an update the SDK would send. */
        if (ev->importance >= A2AD_ERROR && ev->importance <= j->min_importance)
            post(t, j, j->status_url, progress_body(j, ev), false);
    } else if (ev->state != TASK_REJECTED) {
        /* A rejection is answered in the acknowledgement itself, as the SDK
         * does; every other end is completed or failed, the only terminal
         * statuses the platform knows (it maps canceled to failed). */
        char *msg = NULL;
        const char *text = ev->text ? ev->text : "";
        if (ev->state != TASK_COMPLETED) {
            size_t n = sizeof "Task failed: " + strlen(ev->text ? ev->text : "unknown error");
            if ((msg = malloc(n)))
                snprintf(msg, n, "Task failed: %s", ev->text ? ev->text : "unknown error");
            text = msg ? msg : "Task failed";
        }
        post(t, j, j->status_url, terminal_body(j, ev, true, text), true);
        post(t, j, j->results_url, terminal_body(j, ev, false, text), true);
        free(msg);
    }
    return A2AD_OK;
}

/* ---- persistence ---------------------------------------------------------- */

static cJSON *job_save(const void *data) {
    const struct hu_job *j = data;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "job_id", j->job_id);
    cJSON_AddStringToObject(o, "api_key", j->api_key);
    if (j->status_url) cJSON_AddStringToObject(o, "job_status_update_url", j->status_url);
    if (j->results_url) cJSON_AddStringToObject(o, "job_results_url", j->results_url);
    cJSON_AddStringToObject(o, "min_importance", importance_names[j->min_importance]);
    return o;
}

static void *job_load(const cJSON *saved) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(saved, "job_id");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(saved, "api_key");
    const cJSON *su = cJSON_GetObjectItemCaseSensitive(saved, "job_status_update_url");
    const cJSON *ru = cJSON_GetObjectItemCaseSensitive(saved, "job_results_url");
    const cJSON *mi = cJSON_GetObjectItemCaseSensitive(saved, "min_importance");
    if (!cJSON_IsString(id) || !cJSON_IsString(key)) return NULL;
    int level = A2AD_DEBUG;
    for (int i = 0; cJSON_IsString(mi) && i < 4; i++)
        if (strcmp(mi->valuestring, importance_names[i]) == 0) level = i;
    return job_new(id->valuestring, key->valuestring, cJSON_IsString(su) ? su->valuestring : NULL,
                   cJSON_IsString(ru) ? ru->valuestring : NULL, level);
}

static const struct task_ext_ops hu_ops = {
    .name = "hu", .free = hu_job_free, .save = job_save, .load = job_load};

/* ---- start-up, card ------------------------------------------------------- */

void hu_init(const struct config *cfg) {
    tasks_register_ext(TASK_EXT_HU, &hu_ops);
    tasks_add_observer(hu_observe);
    hu_shutdown();
    for (const struct agent_config *a = cfg ? cfg->agents : NULL; a; a = a->next) {
        if (a->hu_min_importance < 0) continue;
        struct level *grown = realloc(levels, (n_levels + 1) * sizeof *levels);
        char *name = strdup(a->name);
        if (grown) levels = grown;
        if (!grown || !name) {
            free(name);
            log_error("out of memory: [agent.%s] hu_min_importance ignored", a->name);
            continue;
        }
        levels[n_levels++] = (struct level){name, a->hu_min_importance};
    }
}

void hu_shutdown(void) {
    for (size_t i = 0; i < n_levels; i++) free(levels[i].agent);
    free(levels);
    levels = NULL;
    n_levels = 0;
}

void hu_card_extensions(cJSON *capabilities, const struct agent *agent) {
    cJSON *list = cJSON_AddArrayToObject(capabilities, "extensions");
    cJSON *e = list ? cJSON_CreateObject() : NULL;
    if (!e) return;
    cJSON_AddStringToObject(e, "uri", HU_BACKGROUND_JOB_URI);
    cJSON_AddStringToObject(
        e, "description",
        "Health Universe background jobs: put {\"job_id\",\"api_key\"} under this URI in "
        "params.metadata, with job_status_update_url and job_results_url beside it; the task is "
        "acknowledged at once as submitted, then progress, artifacts and the result are POSTed "
        "to those URLs with X-API-Key");
    cJSON_AddBoolToObject(e, "required", 0);
    cJSON *p = cJSON_AddObjectToObject(e, "params");
    if (p && agent->desc.estimated_duration_s)
        cJSON_AddNumberToObject(p, "estimated_duration_seconds", agent->desc.estimated_duration_s);
    if (p) cJSON_AddNumberToObject(p, "max_duration_seconds", agent->max_duration_s);
    cJSON_AddItemToArray(list, e);
}
