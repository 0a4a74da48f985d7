/* admin - the operators' JSON API (/admin/v1/) and the dashboard (/ui/).
 * See admin.h for the routes.
 *
 * Listing walks every task held (tasks_list), so it costs O(tasks) per
 * call: fine for an operator and a dashboard polling every second or so,
 * and nothing on the job path. With several nodes on one PostgreSQL
 * (cluster.h) it also reads the rows the other nodes hold, and a task of
 * another node is read from its row and canceled through its holder, as
 * the A2A methods do (rpc_remote.c). Webhook events are read and acted on by the
 * delivery thread itself (webhooks_act).
 */
#include "front/admin.h"
#include "core/auth.h"

#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "agents/plugins.h"
#include "store/cluster.h"
#include "store/share.h"
#include "core/tasks.h"
#include "front/ui_files.h"
#include "util.h"
#include "delivery/webhooks.h"

#define PREFIX "/admin/v1"
#define DEFAULT_LIMIT 50
#define MAX_LIMIT 1000
#define MAX_EVENTS_SHOWN 1000

static struct {
    char **tokens;
    size_t n_tokens;
    bool ui;
} adm;

void admin_shutdown(void) {
    for (size_t i = 0; i < adm.n_tokens; i++) free(adm.tokens[i]);
    free(adm.tokens);
    adm.tokens = NULL;
    adm.n_tokens = 0;
}

void admin_init(const struct config *cfg) {
    admin_shutdown();
    adm.ui = cfg->ui_enabled;
    for (const char *p = cfg->admin_tokens; p && *p;) {
        p += strspn(p, ", \t");
        size_t n = strcspn(p, ", \t");
        if (!n) break;
        char **nt = realloc(adm.tokens, (adm.n_tokens + 1) * sizeof *nt);
        if (!nt) break;
        adm.tokens = nt;
        if (!(nt[adm.n_tokens] = strndup(p, n))) break;
        adm.n_tokens++;
        p += n;
    }
}

bool admin_owns(const char *url) {
    return strncmp(url, "/admin/", 7) == 0 || strcmp(url, "/admin") == 0 ||
           strcmp(url, "/ui") == 0 || strncmp(url, "/ui/", 4) == 0;
}

/* ---- answers ------------------------------------------------------------ */

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, const char *type,
                                 const void *data, size_t len, enum MHD_ResponseMemoryMode mode,
                                 bool auth_challenge) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE) free((void *)data);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (auth_challenge)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"a2ad-admin\"");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *o /* taken */) {
    char *body = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!body) return MHD_NO;
    return send_body(c, status, "application/json", body, strlen(body), MHD_RESPMEM_MUST_FREE,
                     false);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    if (status != MHD_HTTP_UNAUTHORIZED) return send_json(c, status, o);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!body) return MHD_NO;
    return send_body(c, status, "application/json", body, strlen(body), MHD_RESPMEM_MUST_FREE,
                     true);
}

/* ---- who may: the one place that decides ------------------------------- */

/* Compare without an early exit, so the time taken does not tell how much
 * of a guessed token was right. */
static bool token_equal(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = na != nb;
    for (size_t i = 0; i < na; i++) diff |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
    return diff == 0;
}

/* Whether the request may use the admin API; if not, answers it (401 or
 * 403) into *ret. Every admin route goes through here and nowhere else. */
static bool admin_authorized(struct MHD_Connection *c, enum MHD_Result *ret) {
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    /* An admin credential of the tokens file (auth.c) is enough; so is one
     * of [server] admin_tokens, the operators' tokens without client rights. */
    const struct auth_principal *p = NULL;
    const char *why = NULL;
    if (auth_enabled() &&
        auth_identify(h, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key"), &p, &why) ==
            A2AD_OK &&
        p) {
        bool admin = p->admin;
        auth_principal_release(p);
        if (admin) return true;
    }
    if (adm.n_tokens == 0 && !auth_enabled()) {
        *ret = send_error(c, MHD_HTTP_FORBIDDEN,
                          "admin API disabled: set [server] admin_tokens or give a credential "
                          "the admin flag in [server] auth_tokens_file");
        return false;
    }
    bool ok = false;
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        const char *tok = h + 7;
        while (*tok == ' ') tok++;
        for (size_t i = 0; i < adm.n_tokens; i++) ok |= token_equal(tok, adm.tokens[i]);
    }
    if (!ok)
        *ret = send_error(c, MHD_HTTP_UNAUTHORIZED,
                          h ? "wrong admin token: send Authorization: Bearer TOKEN with one of "
                              "[server] admin_tokens or an admin credential"
                            : "the admin API needs Authorization: Bearer TOKEN with one of "
                              "[server] admin_tokens or an admin credential");
    return ok;
}

/* Copies of the loaded agents' names (plugins_each runs its callback under
 * the registry lock, so only copy there). */
struct agent_snap {
    struct {
        char name[64], description[256], version[64];
    } a[128];
    size_t n;
};

static void snap_add(const struct agent *a, void *arg) {
    struct agent_snap *s = arg;
    if (s->n >= sizeof s->a / sizeof s->a[0]) return;
    snprintf(s->a[s->n].name, sizeof s->a[0].name, "%s", a->desc.name);
    snprintf(s->a[s->n].description, sizeof s->a[0].description, "%s",
             a->desc.description ? a->desc.description : "");
    snprintf(s->a[s->n].version, sizeof s->a[0].version, "%s", a->desc.version ? a->desc.version : "");
    s->n++;
}

/* ---- tasks -------------------------------------------------------------- */

static bool parse_state(const char *s, enum task_state *out) {
    for (int i = TASK_SUBMITTED; i <= TASK_REJECTED; i++)
        if (strcmp(s, task_state_name((enum task_state)i)) == 0) {
            *out = (enum task_state)i;
            return true;
        }
    return false;
}

/* What a list shows of a task (and the dashboard draws), from its
 * rendered 0.3 Task doc (taken). */
static cJSON *doc_summary(cJSON *doc, const char *agent) {
    if (!doc) return NULL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(doc, "contextId");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", cJSON_IsString(id) ? id->valuestring : "");
    cJSON_AddStringToObject(o, "contextId", cJSON_IsString(ctx) ? ctx->valuestring : "");
    if (agent)
        cJSON_AddStringToObject(o, "agent", agent);
    else
        cJSON_AddNullToObject(o, "agent");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(doc, "status");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(status, "state");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(status, "timestamp");
    cJSON_AddStringToObject(o, "state", cJSON_IsString(state) ? state->valuestring : "unknown");
    cJSON_AddStringToObject(o, "timestamp", cJSON_IsString(ts) ? ts->valuestring : "");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(status, "message");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(msg, "metadata");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(md, "progress");
    double progress = cJSON_IsNumber(pr) ? pr->valuedouble : NAN;
    if (cJSON_IsString(state) && strcmp(state->valuestring, "completed") == 0) progress = 1;
    if (isnan(progress))
        cJSON_AddNullToObject(o, "progress");
    else
        cJSON_AddNumberToObject(o, "progress", progress);
    /* The status message's text: the step an agent is at, or its answer. */
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(msg, "parts"), *p;
    cJSON_ArrayForEach(p, parts) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (cJSON_IsString(text) && *text->valuestring) {
            cJSON_AddStringToObject(o, "message", text->valuestring);
            break;
        }
    }
    const cJSON *arts = cJSON_GetObjectItemCaseSensitive(doc, "artifacts");
    cJSON_AddNumberToObject(o, "artifacts", cJSON_GetArraySize(arts));
    /* the node holding it (several nodes: the store notes it, cluster.c
     * the row's holder for another node's task) */
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "metadata"), "a2ad"),
        "node");
    if (cJSON_IsString(node)) cJSON_AddStringToObject(o, "node", node->valuestring);
    cJSON_Delete(doc);
    return o;
}

static cJSON *task_summary(struct task *t) {
    const struct agent *a = task_agent(t);
    return doc_summary(task_render(t, 0), a ? a->desc.name : NULL);
}

/* The tasks held here and, with several nodes, the rows the others hold
 * (*all malloc'd, each task released by the caller). false when the other
 * nodes' rows cannot be read (answered into *ret). */
static bool every_task(struct MHD_Connection *c, struct task ***all, size_t *n,
                       enum MHD_Result *ret) {
    if (tasks_list(all, n) != A2AD_OK) {
        *ret = send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory listing tasks");
        return false;
    }
    if (!cluster_active()) return true;
    struct task **more = NULL, **grown;
    size_t m = 0;
    if (cluster_list(0, &more, &m) != A2AD_OK) {
        for (size_t i = 0; i < *n; i++) task_release((*all)[i]);
        free(*all);
        *ret = send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the other nodes' tasks: %s",
                          cluster_last_error());
        return false;
    }
    if (m && (grown = realloc(*all, (*n + m) * sizeof **all))) {
        *all = grown;
        memcpy(*all + *n, more, m * sizeof *more);
        *n += m;
    } else {
        for (size_t i = 0; i < m; i++) task_release(more[i]);
    }
    free(more);
    return true;
}

struct filters {
    const char *agent, *state_name, *context, *limit, *cursor, *task, *target;
    const char *unknown; /* the first argument no route takes */
    const char *const *allowed;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
    (void)kind;
    struct filters *f = cls;
    const char **slot = NULL;
    if (strcmp(key, "agent") == 0) slot = &f->agent;
    else if (strcmp(key, "state") == 0) slot = &f->state_name;
    else if (strcmp(key, "context") == 0) slot = &f->context;
    else if (strcmp(key, "limit") == 0) slot = &f->limit;
    else if (strcmp(key, "cursor") == 0) slot = &f->cursor;
    else if (strcmp(key, "task") == 0) slot = &f->task;
    else if (strcmp(key, "target") == 0) slot = &f->target;
    bool allowed = false;
    for (size_t i = 0; slot && f->allowed[i]; i++)
        if (strcmp(f->allowed[i], key) == 0) allowed = true;
    if (!allowed) {
        if (!f->unknown) f->unknown = key;
        return MHD_YES;
    }
    *slot = value ? value : "";
    return MHD_YES;
}

/* The query arguments of c; false (answered into *ret) for one that the
 * route does not take. */
static bool read_filters(struct MHD_Connection *c, struct filters *f, const char *const *allowed,
                         enum MHD_Result *ret) {
    memset(f, 0, sizeof *f);
    f->allowed = allowed;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, f);
    if (!f->unknown) return true;
    char list[200] = "";
    size_t o = 0;
    for (size_t i = 0; allowed[i] && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", allowed[i]);
    *ret = send_error(c, MHD_HTTP_BAD_REQUEST, "unknown filter '%.64s': this path takes %s",
                      f->unknown, *list ? list : "none");
    return false;
}

/* Newest change first; ties by id, so a cursor (timestamp and id of the
 * last one shown) is a total order. */
struct row {
    struct task *t;
    char ts[TIMESTAMP_LEN];
    enum task_state state;
};

static int row_cmp(const void *a, const void *b) {
    const struct row *x = a, *y = b;
    int c = strcmp(y->ts, x->ts);
    return c ? c : strcmp(task_id(x->t), task_id(y->t));
}

static bool after_cursor(const struct row *r, const char *cur_ts, const char *cur_id) {
    int c = strcmp(cur_ts, r->ts);
    return c > 0 || (c == 0 && strcmp(task_id(r->t), cur_id) > 0);
}

static enum MHD_Result list_tasks(struct MHD_Connection *c) {
    static const char *const allowed[] = {"agent", "state", "context", "limit", "cursor", NULL};
    struct filters f;
    enum MHD_Result ret;
    if (!read_filters(c, &f, allowed, &ret)) return ret;
    enum task_state want = TASK_SUBMITTED;
    if (f.state_name && !parse_state(f.state_name, &want))
        return send_error(c, MHD_HTTP_BAD_REQUEST,
                          "bad filter state=%.64s: must be one of submitted, working, completed, "
                          "failed, canceled, rejected",
                          f.state_name);
    const struct agent *fa = f.agent ? plugins_get(f.agent) : NULL;
    plugins_put(fa);
    if (f.agent && !fa) {
        struct agent_snap snap = {0};
        plugins_each(snap_add, &snap);
        char names[400] = "";
        size_t o = 0;
        for (size_t i = 0; i < snap.n && o < sizeof names; i++)
            o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", snap.a[i].name);
        return send_error(c, MHD_HTTP_BAD_REQUEST, "bad filter agent=%.64s: loaded agents are %s",
                          f.agent, names);
    }
    long limit = DEFAULT_LIMIT;
    if (f.limit) {
        char *end;
        limit = strtol(f.limit, &end, 10);
        if (!*f.limit || *end || limit < 1 || limit > MAX_LIMIT)
            return send_error(c, MHD_HTTP_BAD_REQUEST,
                              "bad filter limit=%.32s: must be a number from 1 to %d", f.limit,
                              MAX_LIMIT);
    }
    char cur_ts[TIMESTAMP_LEN] = "", cur_id[UUID_STR_LEN] = "";
    if (f.cursor) {
        const char *bar = strchr(f.cursor, '_');
        size_t n = bar ? (size_t)(bar - f.cursor) : 0;
        if (!bar || n == 0 || n >= sizeof cur_ts || strlen(bar + 1) >= sizeof cur_id ||
            !bar[1])
            return send_error(c, MHD_HTTP_BAD_REQUEST,
                              "bad filter cursor=%.64s: pass the nextCursor of the previous page",
                              f.cursor);
        memcpy(cur_ts, f.cursor, n);
        cur_ts[n] = '\0';
        strcpy(cur_id, bar + 1);
    }

    struct task **all = NULL;
    size_t n_all = 0;
    if (!every_task(c, &all, &n_all, &ret)) return ret;
    struct row *rows = calloc(n_all ? n_all : 1, sizeof *rows);
    size_t n = 0;
    for (size_t i = 0; i < n_all; i++) {
        struct task *t = all[i];
        const struct agent *a = task_agent(t);
        bool keep = rows != NULL;
        if (keep && f.agent) keep = a && strcmp(a->desc.name, f.agent) == 0;
        if (keep && f.context) keep = strcmp(task_context_id(t), f.context) == 0;
        enum task_state s = TASK_SUBMITTED;
        char ts[TIMESTAMP_LEN];
        if (keep) s = task_get_status(t, ts);
        if (keep && f.state_name) keep = s == want;
        if (!keep) {
            task_release(t);
            continue;
        }
        rows[n].t = t;
        rows[n].state = s;
        memcpy(rows[n].ts, ts, sizeof ts);
        n++;
    }
    free(all);
    if (!rows) return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory listing tasks");
    qsort(rows, n, sizeof *rows, row_cmp);

    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "tasks");
    size_t shown = 0, last = 0;
    bool more = false;
    for (size_t i = 0; i < n; i++) {
        if (*cur_ts && !after_cursor(&rows[i], cur_ts, cur_id)) continue;
        if (shown == (size_t)limit) {
            more = true;
            break;
        }
        cJSON *s = task_summary(rows[i].t);
        if (s) cJSON_AddItemToArray(arr, s);
        shown++;
        last = i;
    }
    cJSON_AddNumberToObject(o, "total", (double)n);
    /* live nodes: the dashboard and a2ctl show the node column when > 1 */
    if (cluster_active()) cJSON_AddNumberToObject(o, "nodes", (double)cluster_live_nodes());
    if (more) {
        char next[TIMESTAMP_LEN + UUID_STR_LEN + 1];
        snprintf(next, sizeof next, "%s_%s", rows[last].ts, task_id(rows[last].t));
        cJSON_AddStringToObject(o, "nextCursor", next);
    } else {
        cJSON_AddNullToObject(o, "nextCursor");
    }
    for (size_t i = 0; i < n; i++) task_release(rows[i].t);
    free(rows);
    return send_json(c, MHD_HTTP_OK, o);
}

static enum MHD_Result list_agents(struct MHD_Connection *c) {
    struct agent_snap snap = {0};
    plugins_each(snap_add, &snap);
    size_t na = snap.n;
    size_t(*counts)[TASK_REJECTED + 1] = calloc(na ? na : 1, sizeof *counts);
    struct task **all = NULL;
    size_t n_all = 0;
    enum MHD_Result ret;
    if (!counts) return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory counting tasks");
    if (!every_task(c, &all, &n_all, &ret)) {
        free(counts);
        return ret;
    }
    for (size_t i = 0; i < n_all; i++) {
        const struct agent *a = task_agent(all[i]);
        for (size_t k = 0; a && k < na; k++)
            if (strcmp(snap.a[k].name, a->desc.name) == 0) counts[k][task_get_state(all[i])]++;
        task_release(all[i]);
    }
    free(all);
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "agents");
    for (size_t k = 0; k < na; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", snap.a[k].name);
        cJSON_AddStringToObject(e, "description", snap.a[k].description);
        cJSON_AddStringToObject(e, "version", snap.a[k].version);
        cJSON *t = cJSON_AddObjectToObject(e, "tasks");
        for (int s = TASK_SUBMITTED; s <= TASK_REJECTED; s++)
            cJSON_AddNumberToObject(t, task_state_name((enum task_state)s), (double)counts[k][s]);
        cJSON_AddItemToArray(arr, e);
    }
    free(counts);
    return send_json(c, MHD_HTTP_OK, o);
}

/* The nodes on the database (several nodes: cluster.h). */
static enum MHD_Result list_nodes(struct MHD_Connection *c) {
    if (!cluster_active())
        return send_error(c, MHD_HTTP_NOT_FOUND,
                          "no other nodes: this node keeps its tasks alone ([tasks] store = "
                          "postgresql lets several nodes share one database)");
    cJSON *nodes = NULL;
    if (cluster_nodes(&nodes) != A2AD_OK)
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", cluster_last_error());
    size_t live = 0;
    const cJSON *n;
    cJSON_ArrayForEach(n, nodes) live += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "live"));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "nodes", nodes);
    cJSON_AddNumberToObject(o, "live", (double)live);
    return send_json(c, MHD_HTTP_OK, o);
}

/* ---- webhook events ------------------------------------------------------ */

static void add_ms_time(cJSON *o, const char *key, uint64_t wall_ms) {
    if (!wall_ms) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    time_t s = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char buf[96];
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(wall_ms % 1000));
    cJSON_AddStringToObject(o, key, buf);
}

static cJSON *events_json(const struct webhooks_pending *p, size_t n) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "eventId", p[i].event_id);
        cJSON_AddStringToObject(e, "taskId", p[i].task_id);
        cJSON_AddStringToObject(e, "target", p[i].target ? p[i].target : "");
        cJSON_AddStringToObject(e, "state", p[i].state);
        cJSON_AddNumberToObject(e, "attempts", p[i].attempts);
        add_ms_time(e, "created", p[i].created_ms);
        add_ms_time(e, "nextAttempt", p[i].next_attempt_ms);
        if (p[i].last_error)
            cJSON_AddStringToObject(e, "lastError", p[i].last_error);
        else
            cJSON_AddNullToObject(e, "lastError");
        cJSON_AddItemToArray(arr, e);
    }
    return arr;
}

static const char *const action_words[] = {[WEBHOOKS_LIST] = "pending",
                                           [WEBHOOKS_PURGE] = "purged",
                                           [WEBHOOKS_REPLAY] = "replayed"};

/* List, purge or replay the events of a task and/or a target. */
static enum MHD_Result act_events(struct MHD_Connection *c, enum webhooks_action action,
                                  const char *task, const char *target) {
    struct webhooks_select sel = {.task_id = task, .target = target, .max = MAX_EVENTS_SHOWN};
    struct webhooks_pending *p;
    size_t n, matched;
    if (webhooks_act(action, &sel, &p, &n, &matched) != A2AD_OK)
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "the webhook thread is not running (a2ad is stopping)");
    if (action != WEBHOOKS_LIST && matched)
        log_info("admin: %s %zu webhook event%s of %s %s", action_words[action], matched,
                 matched == 1 ? "" : "s", task ? "task" : "target",
                 task ? task : n ? p[0].target : "?");
    cJSON *o = cJSON_CreateObject();
    if (task) cJSON_AddStringToObject(o, "taskId", task);
    if (target && n) cJSON_AddStringToObject(o, "target", p[0].target); /* without secrets */
    cJSON_AddNumberToObject(o, action == WEBHOOKS_LIST ? "count" : action_words[action],
                            (double)matched);
    cJSON_AddItemToObject(o, "events", events_json(p, n));
    struct webhooks_stats ws;
    webhooks_get_stats(&ws);
    /* Parked events live in the outbox only and are not in the list. */
    cJSON_AddNumberToObject(o, "parkedInStore", (double)ws.parked);
    webhooks_pending_free(p, n);
    return send_json(c, MHD_HTTP_OK, o);
}

static enum MHD_Result webhooks_route(struct MHD_Connection *c, const char *method,
                                      const char *rest) {
    static const char *const list_args[] = {"target", "task", NULL};
    static const char *const act_args[] = {"target", NULL};
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    struct filters f;
    enum MHD_Result ret;
    if (*rest == '\0') {
        if (!get) return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        if (!read_filters(c, &f, list_args, &ret)) return ret;
        return act_events(c, WEBHOOKS_LIST, f.task, f.target);
    }
    enum webhooks_action action;
    if (strcmp(rest, "/purge") == 0) action = WEBHOOKS_PURGE;
    else if (strcmp(rest, "/replay") == 0) action = WEBHOOKS_REPLAY;
    else return send_error(c, MHD_HTTP_NOT_FOUND, "no such admin path");
    if (strcmp(method, "POST") != 0) return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST");
    if (!read_filters(c, &f, act_args, &ret)) return ret;
    if (!f.target || !*f.target)
        return send_error(c, MHD_HTTP_BAD_REQUEST,
                          "missing filter target: give the webhook URL (?target=URL), as "
                          "GET " PREFIX "/webhooks lists it");
    return act_events(c, action, NULL, f.target);
}

/* Cancel t (reference taken), held here. */
static enum MHD_Result cancel_here(struct MHD_Connection *c, struct task *t, const char *id) {
    if (!share_hold(t)) {
        task_release(t);
        return send_error(c, MHD_HTTP_NOT_FOUND, "task %s was claimed by another node", id);
    }
    if (task_cancel(t) != A2AD_OK) {
        enum task_state s = task_get_state(t);
        task_release(t);
        return send_error(c, MHD_HTTP_CONFLICT, "task %s is %s and cannot be canceled", id,
                          task_state_name(s));
    }
    log_info("admin: canceled task %s", id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "summary", task_summary(t));
    task_release(t);
    return send_json(c, MHD_HTTP_OK, o);
}

/* Cancel id, held by another node, through its holder (a cancel control,
 * as tasks/cancel does: the job sees it at once). agent: its agent. */
static enum MHD_Result cancel_remote(struct MHD_Connection *c, const char *id, const char *agent) {
    enum cluster_outcome out = CLUSTER_FAILED;
    cJSON *res = NULL;
    a2ad_status st = cluster_control(id, "cancel", NULL, &out, &res);
    if (st == A2AD_ERR_STATE) { /* it moved here meanwhile */
        struct task *t = tasks_get(id);
        if (t) return cancel_here(c, t, id);
        st = A2AD_ERR_NOT_FOUND;
    }
    if (st == A2AD_ERR_NOT_FOUND)
        return send_error(c, MHD_HTTP_NOT_FOUND, "no task %.128s (unknown, or expired)", id);
    if (st != A2AD_OK)
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", cluster_last_error());
    if (out == CLUSTER_FAILED) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(res, "message");
        enum MHD_Result r = send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "task %s: %s", id,
                                       cJSON_IsString(m) ? m->valuestring
                                                         : "the holding node could not cancel it");
        cJSON_Delete(res);
        return r;
    }
    /* the task as its holder has it after the cancel */
    cJSON *doc = cJSON_DetachItemFromObjectCaseSensitive(res, "task");
    cJSON_Delete(res);
    cJSON *sum = doc_summary(doc, agent);
    if (!sum) return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    if (out == CLUSTER_REFUSED) {
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(sum, "state");
        enum MHD_Result r = send_error(c, MHD_HTTP_CONFLICT, "task %s is %s and cannot be canceled",
                                       id, cJSON_IsString(state) ? state->valuestring : "ended");
        cJSON_Delete(sum);
        return r;
    }
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(sum, "node");
    log_info("admin: canceled task %s on node %s", id,
             cJSON_IsString(node) ? node->valuestring : "?");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "summary", sum);
    return send_json(c, MHD_HTTP_OK, o);
}

/* /admin/v1/tasks/ID[/...] of a task that another node holds. */
static enum MHD_Result remote_task_route(struct MHD_Connection *c, bool get, bool post,
                                         const char *id, const char *sub) {
    struct task *t = NULL;
    char holder[128] = "";
    a2ad_status st = cluster_read(id, &t, holder, sizeof holder);
    if (st == A2AD_ERR_NOT_FOUND)
        return send_error(c, MHD_HTTP_NOT_FOUND, "no task %.128s (unknown, or expired)", id);
    if (st != A2AD_OK)
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", cluster_last_error());
    const struct agent *a = task_agent(t);
    char agent[64] = "";
    if (a) snprintf(agent, sizeof agent, "%s", a->desc.name);
    if (*sub == '\0') {
        if (!get) {
            task_release(t);
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "summary", task_summary(t));
        cJSON_AddItemToObject(o, "task", task_render(t, -1));
        task_release(t);
        /* its webhook deliveries are queued on its holder */
        cJSON_AddNullToObject(o, "webhooks");
        return send_json(c, MHD_HTTP_OK, o);
    }
    task_release(t);
    if (strcmp(sub, "/cancel") == 0) {
        if (!post) return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST");
        return cancel_remote(c, id, *agent ? agent : NULL);
    }
    if (strcmp(sub, "/webhooks") == 0 || strcmp(sub, "/webhooks/purge") == 0 ||
        strcmp(sub, "/webhooks/replay") == 0)
        return send_error(c, MHD_HTTP_CONFLICT,
                          "task %s is held by node %s, which delivers its webhooks: use that "
                          "node's admin API for them",
                          id, holder);
    return send_error(c, MHD_HTTP_NOT_FOUND, "no such admin path");
}

/* /admin/v1/tasks/ID[/...] */
static enum MHD_Result task_route(struct MHD_Connection *c, const char *method, const char *rest) {
    static const char *const none[] = {NULL};
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0;
    size_t n = strcspn(rest, "/");
    char id[128];
    if (n == 0 || n >= sizeof id) return send_error(c, MHD_HTTP_NOT_FOUND, "no such task");
    memcpy(id, rest, n);
    id[n] = '\0';
    const char *sub = rest + n;
    struct filters f;
    enum MHD_Result ret;
    if (!read_filters(c, &f, none, &ret)) return ret;
    struct task *t = tasks_get(id);
    if (!t && cluster_active()) return remote_task_route(c, get, post, id, sub);
    if (!t) return send_error(c, MHD_HTTP_NOT_FOUND, "no task %.128s (unknown, or expired)", id);
    if (*sub == '\0') {
        if (!get) {
            task_release(t);
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "summary", task_summary(t));
        cJSON_AddItemToObject(o, "task", task_render(t, -1));
        task_release(t);
        struct webhooks_select sel = {.task_id = id, .max = MAX_EVENTS_SHOWN};
        struct webhooks_pending *p;
        size_t np, matched;
        if (webhooks_act(WEBHOOKS_LIST, &sel, &p, &np, &matched) == A2AD_OK) {
            cJSON *w = cJSON_AddObjectToObject(o, "webhooks");
            cJSON_AddNumberToObject(w, "count", (double)matched);
            cJSON_AddItemToObject(w, "events", events_json(p, np));
            webhooks_pending_free(p, np);
        }
        return send_json(c, MHD_HTTP_OK, o);
    }
    if (strcmp(sub, "/cancel") == 0) {
        if (!post) {
            task_release(t);
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST");
        }
        return cancel_here(c, t, id);
    }
    task_release(t);
    if (strcmp(sub, "/webhooks") == 0) {
        if (!get) return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        return act_events(c, WEBHOOKS_LIST, id, NULL);
    }
    enum webhooks_action action;
    if (strcmp(sub, "/webhooks/purge") == 0) action = WEBHOOKS_PURGE;
    else if (strcmp(sub, "/webhooks/replay") == 0) action = WEBHOOKS_REPLAY;
    else return send_error(c, MHD_HTTP_NOT_FOUND, "no such admin path");
    if (!post) return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST");
    return act_events(c, action, id, NULL);
}

static enum MHD_Result api(struct MHD_Connection *c, const char *method, const char *url) {
    enum MHD_Result ret;
    if (!admin_authorized(c, &ret)) return ret;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (strncmp(url, PREFIX "/", sizeof PREFIX) != 0)
        return send_error(c, MHD_HTTP_NOT_FOUND, "no such admin path: the API is under " PREFIX "/");
    const char *path = url + sizeof PREFIX - 1;
    if (strcmp(path, "/tasks") == 0) {
        if (!get) return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        return list_tasks(c);
    }
    if (strncmp(path, "/tasks/", 7) == 0) return task_route(c, method, path + 7);
    if (strcmp(path, "/agents") == 0) {
        static const char *const none[] = {NULL};
        struct filters f;
        if (!read_filters(c, &f, none, &ret)) return ret;
        if (!get) return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        return list_agents(c);
    }
    if (strcmp(path, "/nodes") == 0) {
        static const char *const none[] = {NULL};
        struct filters f;
        if (!read_filters(c, &f, none, &ret)) return ret;
        if (!get) return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        return list_nodes(c);
    }
    if (strcmp(path, "/webhooks") == 0 || strncmp(path, "/webhooks/", 10) == 0)
        return webhooks_route(c, method, path + 9);
    return send_error(c, MHD_HTTP_NOT_FOUND, "no such admin path");
}

/* ---- the dashboard ------------------------------------------------------- */

/* Only our own files, scripts and styles; no inline code, no framing. */
#define UI_CSP                                                                              \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "      \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static enum MHD_Result serve_ui(struct MHD_Connection *c, const char *method, const char *url) {
    if (!adm.ui) return send_error(c, MHD_HTTP_NOT_FOUND, "the dashboard is off ([server] ui = no)");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
    if (strcmp(url, "/ui") == 0) { /* relative links need the slash */
        struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, "/ui/");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_MOVED_PERMANENTLY, r);
        MHD_destroy_response(r);
        return ret;
    }
    const char *name = url + 3; /* "/..." */
    if (strcmp(name, "/") == 0) name = "/index.html";
    for (size_t i = 0; i < ui_files_count; i++) {
        if (strcmp(ui_files[i].path, name) != 0) continue;
        struct MHD_Response *r = MHD_create_response_from_buffer(
            ui_files[i].len, (void *)ui_files[i].data, MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ui_files[i].type);
        MHD_add_response_header(r, "Content-Security-Policy", UI_CSP);
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(r, "X-Frame-Options", "DENY");
        MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    return send_error(c, MHD_HTTP_NOT_FOUND, "no such dashboard file");
}

enum MHD_Result admin_serve(struct MHD_Connection *c, const char *method, const char *url) {
    if (strncmp(url, "/ui", 3) == 0) return serve_ui(c, method, url);
    return api(c, method, url);
}
