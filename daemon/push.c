/* push - A2A push notifications. See push.h. */
#include "push.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tasks.h"
#include "util.h"
#include "webhooks.h"

struct push_entry {
    char *id, *url, *token; /* token NULL = none */
    char *order_key;        /* "TASKID|ID", made at the first event */
    char *token_header;     /* "X-A2A-Notification-Token: ...", or NULL */
    struct push_entry *next;
};

struct push_configs {
    struct push_entry *head;
};

static void entry_free(struct push_entry *e) {
    free(e->id);
    free(e->url);
    free(e->token);
    free(e->order_key);
    free(e->token_header);
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

static struct push_entry *entry_new(const struct push_config *c) {
    struct push_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    char pid[UUID_STR_LEN];
    if (!c->id) util_uuid(pid);
    e->id = strdup(c->id ? c->id : pid);
    e->url = strdup(c->url);
    e->token = util_strdup(c->token);
    if (c->token) {
        static const char name[] = "X-A2A-Notification-Token: ";
        size_t n = sizeof name + strlen(c->token);
        e->token_header = malloc(n);
        if (e->token_header) snprintf(e->token_header, n, "%s%s", name, c->token);
    }
    if (!e->id || !e->url || (c->token && (!e->token || !e->token_header))) {
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
    return pc;
}

static a2ad_status push_observe(struct task *t, const struct task_event *ev) {
    struct push_configs *pc = task_ext(t, TASK_EXT_PUSH);
    if (!pc || !pc->head || ev->kind == TASK_EVENT_CREATED) return A2AD_OK;
    cJSON *o = task_render_locked(t, -1);
    char *body = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!body) {
        log_error("task %s: out of memory rendering a push notification", task_id(t));
        return A2AD_ERR_NOMEM;
    }
    size_t len = strlen(body);
    unsigned index = 0;
    for (struct push_entry *e = pc->head; e; e = e->next) {
        /* Stable across retries and restarts (the outbox keeps it): the
         * task, the event's number, the config's place. */
        char event_id[UUID_STR_LEN + 48];
        snprintf(event_id, sizeof event_id, "%s.%llu.%u", task_id(t),
                 (unsigned long long)ev->seq, ++index);
        if (!e->order_key) {
            size_t kn = strlen(task_id(t)) + strlen(e->id) + 2;
            if ((e->order_key = malloc(kn))) snprintf(e->order_key, kn, "%s|%s", task_id(t), e->id);
        }
        /* The last config takes the body; the others get a copy. */
        char *copy = e->next ? malloc(len + 1) : body;
        if (copy && copy != body) memcpy(copy, body, len + 1);
        const char *headers[3] = {"Content-Type: application/json", e->token_header, NULL};
        struct webhook_post p = {.order_key = e->order_key, .url = e->url, .headers = headers,
                                 .body = copy, .len = len, .essential = ev->terminal,
                                 .event_id = event_id, .task_id = task_id(t)};
        a2ad_status st = copy && e->order_key ? webhooks_post(&p) : (free(copy), A2AD_ERR_NOMEM);
        if (copy == body) body = NULL;
        /* The URL may carry credentials: the task id is enough to trace it. */
        if (st != A2AD_OK)
            log_warn("task %s: push notification not queued: %s", task_id(t),
                     a2ad_status_name(st));
    }
    free(body);
    return A2AD_OK;
}

/* Persisted as [{"id","url","token"?}, ...] in config order. */
static cJSON *configs_save(const void *data) {
    const struct push_configs *pc = data;
    cJSON *a = cJSON_CreateArray();
    for (const struct push_entry *e = pc->head; a && e; e = e->next) {
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddStringToObject(o, "id", e->id);
        cJSON_AddStringToObject(o, "url", e->url);
        if (e->token) cJSON_AddStringToObject(o, "token", e->token);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static void *configs_load(const cJSON *saved) {
    struct push_configs *pc = push_configs_new(NULL);
    struct push_entry **tail = pc ? &pc->head : NULL;
    const cJSON *o;
    cJSON_ArrayForEach(o, saved) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
        const cJSON *url = cJSON_GetObjectItemCaseSensitive(o, "url");
        const cJSON *token = cJSON_GetObjectItemCaseSensitive(o, "token");
        if (!pc || !cJSON_IsString(id) || !cJSON_IsString(url)) continue;
        struct push_config c = {.id = id->valuestring, .url = url->valuestring,
                                .token = cJSON_IsString(token) ? token->valuestring : NULL};
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

void push_init(void) {
    tasks_register_ext(TASK_EXT_PUSH, &push_ops);
    tasks_add_observer(push_observe);
}
