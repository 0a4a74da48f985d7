/* rpc_remote - the task methods on a task held by another node (cluster.h):
 * the lookup fallback to its row, and cancel, push-config set/delete and
 * resubscribe as controls sent to its holder. See rpc_int.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/cluster.h"
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

bool rpc_remote_continue(struct call *c, const cJSON *message, struct task *t, bool stream,
                         int history, bool blocking, bool has_push) {
    if (has_push || (!stream && blocking)) {
        fail(c->f, has_push ? RPC_INVALID_PARAMS : RPC_UNSUPPORTED_OPERATION,
             has_push ? "task %s is held by another node: set its push notification config with "
                        "tasks/pushNotificationConfig/set, not in the message"
                      : "task %s is held by another node: continue it with "
                        "configuration.blocking = false, or with a stream (only the node that "
                        "holds it can wait for its answer)",
             task_id(t));
        task_release(t);
        return false;
    }
    /* A stream watches before the job hears the message, so it misses none
     * of the events the answer causes. */
    if (stream && !watch(c, t, true)) {
        task_release(t);
        return false;
    }
    char id[UUID_STR_LEN];
    enum cluster_outcome o = CLUSTER_FAILED;
    cJSON *res = NULL;
    cJSON *body = cJSON_CreateObject();
    cJSON_AddItemToObject(body, "message", cJSON_Duplicate(message, 1));
    cJSON_AddNumberToObject(body, "history", history);
    bool ok;
    struct task *local = control(c, t, "message", body, &o, &res, id, &ok);
    cJSON_Delete(body);
    if (local) { /* moved here meanwhile: rare; the client sends it again */
        task_release(local);
        cJSON_Delete(res);
        c->f->http_status = 503;
        c->f->retry_after_s = 1;
        return fail(c->f, RPC_INTERNAL_ERROR, "task %s moved to this node meanwhile; send again",
                    id);
    }
    if (!ok) {
        cJSON_Delete(res);
        return false;
    }
    if (o == CLUSTER_REFUSED) {
        cJSON_Delete(res);
        return fail(c->f, c->d == A2A_V10 ? RPC_UNSUPPORTED_OPERATION : RPC_INVALID_REQUEST,
                    "task %s ended meanwhile and cannot be continued", id);
    }
    if (!stream) {
        cJSON *doc = cJSON_DetachItemFromObjectCaseSensitive(res, "task");
        cJSON_Delete(res);
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
