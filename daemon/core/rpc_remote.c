/* rpc_remote - the task methods on a task held by another node (cluster.h):
 * the lookup fallback to its row, and cancel, push-config set/delete,
 * resubscribe and the next message (blocking or not, with an inline push
 * config or not) as controls sent to its holder. See rpc_int.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/cluster.h"
#include "log.h"
#include "core/rpc_int.h"
#include "front/streams.h"
#include "core/tasks.h"
#include "util.h"

#define fail rpc_fail

bool rpc_remote(struct task *t) { return cluster_active() && task_is_detached(t); }

/* A control or a read that did not work. */
static bool remote_failure(struct call *c, a2ad_status st, const char *id) {
    if (st == A2AD_ERR_NOT_FOUND) {
        char e[UTIL_ECHO_BUF];
        return fail(c->f, RPC_TASK_NOT_FOUND, "task %s not found", util_echo(e, sizeof e, id, 64));
    }
    c->f->http_status = 503;
    c->f->retry_after_s = 5;
    return fail(c->f, RPC_INTERNAL_ERROR, "%s", cluster_last_error());
}

bool rpc_remote_read(struct call *c, const char *id, struct task **out) {
    *out = NULL;
    a2ad_status st = cluster_read(id, out, NULL, 0);
    if (st == A2AD_OK || st == A2AD_ERR_NOT_FOUND) return true;
    remote_failure(c, st, id);
    return false;
}

/* status.state of a rendered (0.3) Task. */
static const char *json_state(const cJSON *doc) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "status"), "state");
    return cJSON_IsString(s) ? s->valuestring : "unknown";
}

/* The holder's outcome CLUSTER_FAILED: its message. */
static bool holder_failed(struct call *c, const cJSON *res) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(res, "message");
    const char *msg = cJSON_IsString(m) ? m->valuestring : "the holding node could not do it";
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "full")))
        return fail(c->f, RPC_INVALID_PARAMS, "%s", msg);
    c->f->http_status = 503;
    c->f->retry_after_s = 5;
    return fail(c->f, RPC_INTERNAL_ERROR, "%s", msg);
}

/* Send kind to the holder of t (reference taken). NULL when answered or
 * failed; the task held here when it moved here meanwhile. *res and *o are
 * set for an answer (status in *ok). */
static struct task *control(struct call *c, struct task *t, const char *kind, const cJSON *body,
                            enum cluster_outcome *o, cJSON **res, char id[UUID_STR_LEN],
                            bool *ok) {
    snprintf(id, UUID_STR_LEN, "%s", task_id(t));
    task_release(t);
    *ok = false;
    a2ad_status st = cluster_control(id, kind, body, o, res);
    if (st == A2AD_ERR_STATE) { /* held here now: done locally */
        struct task *local = tasks_get(id);
        if (local) return local;
        st = A2AD_ERR_NOT_FOUND;
    }
    if (st != A2AD_OK) {
        remote_failure(c, st, id);
        return NULL;
    }
    if (*o == CLUSTER_FAILED) {
        holder_failed(c, *res);
        return NULL;
    }
    *ok = true;
    return NULL;
}

struct task *rpc_remote_cancel(struct call *c, struct task *t) {
    char id[UUID_STR_LEN];
    enum cluster_outcome o = CLUSTER_FAILED;
    cJSON *res = NULL;
    bool ok;
    struct task *local = control(c, t, "cancel", NULL, &o, &res, id, &ok);
    if (!ok) {
        cJSON_Delete(res);
        return local;
    }
    /* The task as its holder has it now (the row may lag while the
     * database is away), else the row. */
    cJSON *doc = cJSON_DetachItemFromObjectCaseSensitive(res, "task");
    cJSON_Delete(res);
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        struct task *now = NULL;
        a2ad_status st = cluster_read(id, &now, NULL, 0);
        if (st != A2AD_OK) return remote_failure(c, st, id), NULL;
        doc = task_render(now, -1);
        task_release(now);
    }
    const char *state = json_state(doc);
    if (o == CLUSTER_REFUSED && !(c->d == A2A_V10 && !strcmp(state, "canceled"))) {
        fail(c->f, RPC_TASK_NOT_CANCELABLE, "task %s is %s and cannot be canceled", id, state);
        cJSON_Delete(doc);
    } else {
        c->out->body = rpc_result_body(c->id, a2a_task_in(doc, c->d));
    }
    return NULL;
}

struct task *rpc_remote_push_set(struct call *c, struct task *t, const cJSON *config) {
    char id[UUID_STR_LEN];
    enum cluster_outcome o = CLUSTER_FAILED;
    cJSON *res = NULL;
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "dialect", c->d == A2A_V10 ? "1.0" : "0.3");
    cJSON_AddItemToObject(body, "config", cJSON_Duplicate(config, 1));
    bool ok;
    struct task *local = control(c, t, "push-set", body, &o, &res, id, &ok);
    cJSON_Delete(body);
    if (!ok) {
        cJSON_Delete(res);
        return local;
    }
    const cJSON *cid = cJSON_GetObjectItemCaseSensitive(res, "id");
    struct task *now = NULL;
    a2ad_status st = cluster_read(id, &now, NULL, 0);
    if (st != A2AD_OK) {
        remote_failure(c, st, id);
    } else {
        cJSON *saved = push_configs_of(now, cJSON_IsString(cid) ? cid->valuestring : NULL);
        cJSON *one = cJSON_GetArrayItem(saved, 0);
        c->out->body = rpc_result_body(c->id, one ? rpc_config_out(id, one, c->d) : NULL);
        cJSON_Delete(saved);
        task_release(now);
    }
    cJSON_Delete(res);
    return NULL;
}

struct task *rpc_remote_push_delete(struct call *c, struct task *t, const char *config_id) {
    char id[UUID_STR_LEN];
    enum cluster_outcome o = CLUSTER_FAILED;
    cJSON *res = NULL;
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "id", config_id);
    bool ok;
    struct task *local = control(c, t, "push-delete", body, &o, &res, id, &ok);
    cJSON_Delete(body);
    cJSON_Delete(res);
    if (ok) c->out->body = rpc_result_body(c->id, NULL);
    return local;
}

/* The seq of the row t was read from. */
static uint64_t row_seq(struct task *t) {
    task_lock(t);
    uint64_t seq = task_seq_locked(t);
    task_unlock(t);
    return seq;
}

/* Ask the holder to write t's events from its row's seq on; resuming:
 * the task waits for input and the caller's message resumes it (a stream
 * of an interrupted task otherwise ends at its first frame). */
static bool watch(struct call *c, struct task *t, bool resuming) {
    enum task_state s = task_get_state(t);
    if (task_state_terminal(s) || (task_state_interrupted(s) && !resuming))
        return true; /* one frame, the end */
    a2ad_status st = cluster_watch(t, row_seq(t));
    if (st == A2AD_ERR_STATE) {
        c->f->http_status = 503;
        c->f->retry_after_s = 1;
        return fail(c->f, RPC_INTERNAL_ERROR,
                    "task %s moved to this node meanwhile; subscribe again", task_id(t));
    }
    return st == A2AD_OK || remote_failure(c, st, task_id(t));
}

bool rpc_remote_watch(struct call *c, struct task *t) { return watch(c, t, false); }

void rpc_remote_follow(struct task *t) {
    enum task_state s = task_get_state(t);
    if (!task_state_terminal(s) && !task_state_interrupted(s)) cluster_follow(t, row_seq(t));
}

/* The task moved to this node while it was asked: rare; the client sends
 * again (and this node answers as the holder). */
static bool moved_here(struct call *c, const char *id) {
    c->f->http_status = 503;
    c->f->retry_after_s = 1;
    return fail(c->f, RPC_INTERNAL_ERROR, "task %s moved to this node meanwhile; send again", id);
}

/* A push config inline in the message: set on the holder first (a
 * push-set control), so the webhooks of the answer go to it as well. As an
 * inline config on the holder, one without an id is named after its task
 * (push.h). False after recording a failure. */
static bool push_first(struct call *c, struct task *t) {
    const char *pkey = c->d == A2A_V10 ? "taskPushNotificationConfig" : "pushNotificationConfig";
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(c->params, "configuration"), pkey);
    cJSON *config = cJSON_Duplicate(p, 1);
    cJSON *body = cJSON_CreateObject();
    if (config && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(config, "id"))) {
        cJSON_DeleteItemFromObjectCaseSensitive(config, "id");
        cJSON_AddStringToObject(config, "id", task_id(t));
    }
    if (!config || !body ||
        !cJSON_AddStringToObject(body, "dialect", c->d == A2A_V10 ? "1.0" : "0.3")) {
        cJSON_Delete(config);
        cJSON_Delete(body);
        c->f->http_status = 500;
        return fail(c->f, RPC_INTERNAL_ERROR, "out of memory");
    }
    cJSON_AddItemToObject(body, "config", config);
    enum cluster_outcome o = CLUSTER_FAILED;
    cJSON *res = NULL;
    a2ad_status st = cluster_control(task_id(t), "push-set", body, &o, &res);
    cJSON_Delete(body);
    bool ok = false;
    if (st == A2AD_ERR_STATE) moved_here(c, task_id(t));
    else if (st != A2AD_OK) remote_failure(c, st, task_id(t));
    else if (o == CLUSTER_FAILED) holder_failed(c, res);
    else ok = true;
    cJSON_Delete(res);
    return ok;
}

/* A blocking send: wait on t (detached, reference taken) until its row
 * shows the answer to the message, without a thread: the HTTP layer
 * suspends the connection on t's waiters (c->out->wait_task), which
 * cluster_await fires. doc: the task as the holder answered the control
 * (taken), the answer when no wait can start. */
static bool wait_answer(struct call *c, struct task *t, uint64_t after, int history, cJSON *doc) {
    /* as the holder's task_add_message did: an interrupted task is back to
     * work, a working one still is */
    task_detached_set_state(t, TASK_WORKING);
    char *idj = cJSON_PrintUnformatted(c->id);
    a2ad_status st = idj ? cluster_await(t, after) : A2AD_ERR_NOMEM;
    if (st == A2AD_OK) {
        c->out->wait_task = t;
        c->out->wait_id = idj;
        c->out->wait_history = history;
        c->out->wait_dialect = c->d;
        cJSON_Delete(doc);
        return true;
    }
    /* The message is delivered: an error would have the client send it
     * again. The task as it is, as a non-blocking send answers. */
    log_warn("task %s: a blocking send answered at once: %s", task_id(t), cluster_last_error());
    free(idj);
    task_release(t);
    c->out->body = rpc_result_body(c->id, a2a_task_result(doc, c->d));
    return true;
}

bool rpc_remote_continue(struct call *c, const cJSON *message, struct task *t, bool stream,
                         int history, bool blocking, bool has_push) {
    bool wait = !stream && blocking;
    /* A stream or a blocking send watches before the job hears the message,
     * so none of the events the answer causes passes unseen. The push config
     * comes before the message, so the answer's webhooks go to it too. */
    if (((stream || wait) && !watch(c, t, true)) || (has_push && !push_first(c, t))) {
        task_release(t);
        return false;
    }
    uint64_t after = row_seq(t);
    if (wait) task_retain(t); /* the wait's: control() takes the caller's */
    char id[UUID_STR_LEN];
    enum cluster_outcome o = CLUSTER_FAILED;
    cJSON *res = NULL;
    cJSON *body = cJSON_CreateObject();
    cJSON_AddItemToObject(body, "message", cJSON_Duplicate(message, 1));
    cJSON_AddNumberToObject(body, "history", history);
    bool ok;
    struct task *local = control(c, t, "message", body, &o, &res, id, &ok);
    cJSON_Delete(body);
    if (local || !ok || o == CLUSTER_REFUSED) {
        if (wait) task_release(t);
        cJSON_Delete(res);
    }
    if (local) {
        task_release(local);
        return moved_here(c, id);
    }
    if (!ok) return false;
    if (o == CLUSTER_REFUSED)
        return fail(c->f, c->d == A2A_V10 ? RPC_UNSUPPORTED_OPERATION : RPC_INVALID_REQUEST,
                    "task %s ended meanwhile and cannot be continued", id);
    if (!stream) {
        cJSON *doc = cJSON_DetachItemFromObjectCaseSensitive(res, "task");
        cJSON_Delete(res);
        if (wait) return wait_answer(c, t, after, history, doc);
        c->out->body = rpc_result_body(c->id, a2a_task_result(doc, c->d));
        return true;
    }
    cJSON_Delete(res);
    /* The stream starts from the row the holder wrote with the message. */
    struct task *now = NULL;
    a2ad_status st = cluster_read(id, &now, NULL, 0);
    if (st != A2AD_OK) return remote_failure(c, st, id);
    char *idj = c->bare ? NULL : cJSON_PrintUnformatted(c->id);
    c->out->stream = idj || c->bare ? stream_open(now, c->d, idj, history) : NULL;
    free(idj);
    if (c->out->stream) rpc_remote_follow(now);
    task_release(now);
    if (!c->out->stream) {
        c->f->http_status = 500;
        return fail(c->f, RPC_INTERNAL_ERROR, "out of memory");
    }
    return true;
}

cJSON *rpc_remote_waited(struct task *t, int history_length, struct rpc_fail *f) {
    struct task *now = NULL;
    a2ad_status st = cluster_read(task_id(t), &now, NULL, 0);
    if (st == A2AD_OK) {
        cJSON *doc = task_render(now, history_length);
        task_release(now);
        return doc;
    }
    if (st == A2AD_ERR_NOT_FOUND)
        return fail(f, RPC_TASK_NOT_FOUND, "task %s is gone: its row was deleted while this "
                    "request waited for the answer", task_id(t)), NULL;
    f->http_status = 503;
    f->retry_after_s = 5;
    fail(f, RPC_INTERNAL_ERROR, "task %s: the message was delivered, but its answer cannot be "
         "read now (%s): read the task with tasks/get", task_id(t), cluster_last_error());
    return NULL;
}
