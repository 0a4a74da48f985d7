/* push - A2A push notifications. See push.h. */
#include "delivery/push.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "core/tasks.h"
#include "util.h"
#include "delivery/webhooks.h"

struct push_entry {
    char *id, *url, *token; /* token NULL = none */
    cJSON *auth;            /* the authentication object as given, or NULL */
    enum a2a_dialect dialect;
    char *order_key;        /* "TASKID|ID", made at the first event */
    char *token_header;     /* "X-A2A-Notification-Token: ...", or NULL */
    char *auth_header;      /* "Authorization: SCHEME CREDENTIALS", or NULL */
    bool task_named;        /* id still to become the task's id (inline config) */
    struct push_entry *next;
};

struct push_configs {
    struct push_entry *head;
};

static unsigned max_per_task = 10;

static void entry_free(struct push_entry *e) {
    free(e->id);
    free(e->url);
    free(e->token);
    cJSON_Delete(e->auth);
    free(e->order_key);
    free(e->token_header);
    free(e->auth_header);
    free(e);
}

static void configs_free(void *data) {
    struct push_configs *pc = data;
    for (struct push_entry *e = pc->head, *n; e; e = n) {
        n = e->next;
        entry_free(e);
    }
    free(pc);
}

static char *header_line(const char *name, const char *a, const char *b) {
    size_t n = strlen(name) + strlen(a) + (b ? strlen(b) + 1 : 0) + 1;
    char *h = malloc(n);
    if (h) snprintf(h, n, "%s%s%s%s", name, a, b ? " " : "", b ? b : "");
    return h;
}

static const char *string_member(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The scheme to put in Authorization: 1.0 "scheme", 0.3 the first of
 * "schemes". */
static const char *auth_scheme(const cJSON *auth, enum a2a_dialect d) {
    if (d == A2A_V10) return string_member(auth, "scheme");
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(auth, "schemes"), 0);
    return cJSON_IsString(first) ? first->valuestring : NULL;
}

static bool header_safe(const char *s) { return !s || (!strpbrk(s, "\r\n") && strlen(s) <= 4096); }

const char *push_check_auth(const cJSON *auth, enum a2a_dialect d) {
    if (!cJSON_IsObject(auth)) return "must be an object";
    const cJSON *cred = cJSON_GetObjectItemCaseSensitive(auth, "credentials");
    if (cred && !cJSON_IsNull(cred) && !cJSON_IsString(cred))
        return "must have \"credentials\" as a string";
    if (d == A2A_V10) {
        const char *s = string_member(auth, "scheme");
        if (!s || !*s) return "must have \"scheme\" (a non-empty string such as \"Bearer\")";
    } else {
        const cJSON *schemes = cJSON_GetObjectItemCaseSensitive(auth, "schemes");
        if (!cJSON_IsArray(schemes)) return "must have \"schemes\" (an array of strings)";
        const cJSON *x;
        cJSON_ArrayForEach(x, schemes) if (!cJSON_IsString(x) || !*x->valuestring) return "must have \"schemes\" (an array of strings)";
    }
    const char *scheme = auth_scheme(auth, d);
    if (!header_safe(scheme) || !header_safe(string_member(auth, "credentials")) ||
        (scheme && strpbrk(scheme, " \t")))
        return "must not contain line breaks, blanks in the scheme, or more than 4096 bytes";
    return NULL;
}

static struct push_entry *entry_new(const struct push_config *c) {
    struct push_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    char pid[UUID_STR_LEN];
    if (!c->id) util_uuid(pid);
    e->id = strdup(c->id ? c->id : pid);
    e->url = strdup(c->url);
    e->token = util_strdup(c->token);
    e->dialect = c->dialect;
    bool ok = e->id && e->url && (!c->token || e->token);
    if (ok && c->token)
        ok = (e->token_header = header_line("X-A2A-Notification-Token: ", c->token, NULL)) != NULL;
    if (ok && c->authentication) {
        ok = (e->auth = cJSON_Duplicate(c->authentication, 1)) != NULL;
        const char *scheme = auth_scheme(c->authentication, c->dialect);
        const char *cred = string_member(c->authentication, "credentials");
        /* The spec's 1.0 webhook header: "Authorization: {scheme} {credentials}". */
        if (ok && scheme && cred)
            ok = (e->auth_header = header_line("Authorization: ", scheme, cred)) != NULL;
    }
    if (!ok) {
        entry_free(e);
        return NULL;
    }
    return e;
}

void *push_configs_new(const struct push_config *first) {
    struct push_configs *pc = calloc(1, sizeof *pc);
    if (!pc) return NULL;
    if (first && !(pc->head = entry_new(first))) {
        free(pc);
        return NULL;
    }
    if (first && !first->id) pc->head->task_named = true;
    return pc;
}

a2ad_status push_config_set(struct task *t, const struct push_config *c, char *id_out) {
    struct push_entry *e = entry_new(c);
    if (!e) return A2AD_ERR_NOMEM;
    snprintf(id_out, PUSH_ID_MAX + 1, "%s", e->id);
    a2ad_status st = A2AD_OK;
    task_lock(t);
    struct push_configs *pc = task_ext(t, TASK_EXT_PUSH);
    if (!pc && (pc = push_configs_new(NULL))) task_ext_set(t, TASK_EXT_PUSH, pc);
    if (!pc) {
        st = A2AD_ERR_NOMEM;
    } else {
        unsigned n = 0;
        struct push_entry **pp = &pc->head;
        for (; *pp && strcmp((*pp)->id, e->id) != 0; pp = &(*pp)->next) n++;
        if (*pp) { /* same id: replaced in place, keeping its order key */
            e->next = (*pp)->next;
            e->order_key = (*pp)->order_key;
            (*pp)->order_key = NULL;
            entry_free(*pp);
            *pp = e;
        } else if (n >= max_per_task) {
            st = A2AD_ERR_FULL;
        } else {
            *pp = e;
        }
    }
    task_unlock(t);
    if (st != A2AD_OK) entry_free(e);
    return st;
}

static cJSON *entry_json(const struct push_entry *e) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "id", e->id);
    cJSON_AddStringToObject(o, "url", e->url);
    if (e->token) cJSON_AddStringToObject(o, "token", e->token);
    if (e->auth) cJSON_AddItemToObject(o, "authentication", cJSON_Duplicate(e->auth, 1));
    cJSON_AddStringToObject(o, "dialect", e->dialect == A2A_V10 ? "1.0" : "0.3");
    return o;
}

cJSON *push_configs_of(struct task *t, const char *id) {
    cJSON *a = cJSON_CreateArray();
    task_lock(t);
    const struct push_configs *pc = task_ext(t, TASK_EXT_PUSH);
    for (const struct push_entry *e = pc ? pc->head : NULL; a && e; e = e->next)
        if (!id || strcmp(id, e->id) == 0) cJSON_AddItemToArray(a, entry_json(e));
    task_unlock(t);
    return a;
}

a2ad_status push_config_delete(struct task *t, const char *id) {
    a2ad_status st = A2AD_ERR_NOT_FOUND;
    task_lock(t);
    struct push_configs *pc = task_ext(t, TASK_EXT_PUSH);
    for (struct push_entry **pp = pc ? &pc->head : NULL; pp && *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            struct push_entry *e = *pp;
            *pp = e->next;
            entry_free(e);
            st = A2AD_OK;
            break;
        }
    }
    task_unlock(t);
    return st;
}

/* The body for one dialect, rendered at most once per event. */
static char *render_body(struct task *t, const struct task_event *ev, enum a2a_dialect d) {
    /* 0.3 posts the whole Task: printed from the live tree, not a copy. */
    if (d != A2A_V10) return task_print_locked(t, -1);
    cJSON *o = a2a_event(t, ev, A2A_V10);
    char *body = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return body;
}

static a2ad_status push_observe(struct task *t, const struct task_event *ev) {
    struct push_configs *pc = task_ext(t, TASK_EXT_PUSH);
    if (!pc || !pc->head) return A2AD_OK;
    if (ev->kind == TASK_EVENT_CREATED) {
        /* before the store observer saves the slot: the id is final */
        for (struct push_entry *e = pc->head; e; e = e->next) {
            char *id = e->task_named ? strdup(task_id(t)) : NULL;
            if (id) {
                free(e->id);
                e->id = id;
                e->task_named = false;
            }
        }
        return A2AD_OK;
    }
    char *body[2] = {NULL, NULL};
    unsigned index = 0;
    for (struct push_entry *e = pc->head; e; e = e->next) {
        /* Stable across retries and restarts (the outbox keeps it): the
         * task, the event's number, the config's place. */
        char event_id[UUID_STR_LEN + 48];
        snprintf(event_id, sizeof event_id, "%s.%llu.%u", task_id(t),
                 (unsigned long long)ev->seq, ++index);
        enum a2a_dialect d = e->dialect;
        if (!body[d] && !(body[d] = render_body(t, ev, d))) {
            log_error("task %s: out of memory rendering a push notification", task_id(t));
            continue;
        }
        if (!e->order_key) {
            size_t kn = strlen(task_id(t)) + strlen(e->id) + 2;
            if ((e->order_key = malloc(kn))) snprintf(e->order_key, kn, "%s|%s", task_id(t), e->id);
        }
        size_t len = strlen(body[d]);
        /* The last config of a dialect takes the text itself; earlier ones
         * a copy (webhooks_post takes what it is given). */
        bool later = false;
        for (const struct push_entry *f = e->next; f && !later; f = f->next) later = f->dialect == d;
        char *copy = body[d];
        if (later) {
            if ((copy = malloc(len + 1))) memcpy(copy, body[d], len + 1);
        } else {
            body[d] = NULL;
        }
        const char *headers[4] = {d == A2A_V10 ? "Content-Type: application/a2a+json"
                                               : "Content-Type: application/json",
                                  NULL, NULL, NULL};
        size_t h = 1;
        if (e->token_header) headers[h++] = e->token_header;
        if (e->auth_header) headers[h++] = e->auth_header;
        struct webhook_post p = {.order_key = e->order_key, .url = e->url, .headers = headers,
                                 .body = copy, .len = len,
                                 .essential = ev->terminal || ev->interrupted,
                                 .event_id = event_id, .task_id = task_id(t)};
        a2ad_status st = copy && e->order_key ? webhooks_post(&p) : (free(copy), A2AD_ERR_NOMEM);
        /* The URL may carry credentials: the task id is enough to trace it. */
        if (st != A2AD_OK)
            log_warn("task %s: push notification not queued: %s", task_id(t),
                     a2ad_status_name(st));
    }
    free(body[0]);
    free(body[1]);
    return A2AD_OK;
}

/* Persisted as the array push_configs_of gives, in config order. */
static cJSON *configs_save(const void *data) {
    const struct push_configs *pc = data;
    cJSON *a = cJSON_CreateArray();
    for (const struct push_entry *e = pc->head; a && e; e = e->next)
        cJSON_AddItemToArray(a, entry_json(e));
    return a;
}

static void *configs_load(const cJSON *saved) {
    struct push_configs *pc = push_configs_new(NULL);
    struct push_entry **tail = pc ? &pc->head : NULL;
    const cJSON *o;
    cJSON_ArrayForEach(o, saved) {
        const char *dialect = string_member(o, "dialect");
        struct push_config c = {
            .id = string_member(o, "id"),
            .url = string_member(o, "url"),
            .token = string_member(o, "token"),
            .authentication = cJSON_GetObjectItemCaseSensitive(o, "authentication"),
            .dialect = dialect && strcmp(dialect, "1.0") == 0 ? A2A_V10 : A2A_V03,
        };
        if (!pc || !c.id || !c.url) continue;
        if (c.authentication && push_check_auth(c.authentication, c.dialect)) c.authentication = NULL;
        struct push_entry *e = entry_new(&c);
        if (!e) {
            configs_free(pc);
            return NULL;
        }
        *tail = e;
        tail = &e->next;
    }
    return pc;
}

static const struct task_ext_ops push_ops = {
    .name = "push", .free = configs_free, .save = configs_save, .load = configs_load};

void push_init(unsigned max) {
    max_per_task = max ? max : 1;
    tasks_register_ext(TASK_EXT_PUSH, &push_ops);
    tasks_add_observer(push_observe);
}
