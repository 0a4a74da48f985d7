/* rpc_resume - a stream of another node's task resumed with Last-Event-ID
 * (tasks/resubscribe, SubscribeToTask and their HTTP+JSON forms): the client
 * gets exactly the events it missed, as on the task's holder (replay.c),
 * from the rows the holder writes into a2ad_events (cluster_resume), then
 * the task's events as they come; when some are no longer there, the task
 * as it is now, as the holder does when its replay log lost some. See
 * rpc_int.h. */
#include <stdio.h>
#include <stdlib.h>

#include "core/rpc_int.h"
#include "core/tasks.h"
#include "front/replay.h"
#include "front/streams.h"
#include "store/cluster.h"
#include "util.h"

#define fail rpc_fail

/* A watch or a read that did not work: recorded, as rpc_remote.c answers. */
static bool resume_failed(struct call *c, a2ad_status st, const char *id) {
    if (st == A2AD_ERR_NOT_FOUND) return fail(c->f, RPC_TASK_NOT_FOUND, "task %s not found", id);
    c->f->http_status = 503;
    c->f->retry_after_s = st == A2AD_ERR_STATE ? 1 : 5;
    if (st == A2AD_ERR_STATE)
        return fail(c->f, RPC_INTERNAL_ERROR,
                    "task %s moved to this node meanwhile; subscribe again", id);
    return fail(c->f, RPC_INTERNAL_ERROR, "%s", cluster_last_error());
}

bool rpc_remote_resume(struct call *c, struct task *t, uint64_t after, int history) {
    uint64_t now = 0;
    cJSON *missed = NULL;
    a2ad_status st = cluster_resume(t, after, replay_max_bytes(), &missed, &now);
    if (st != A2AD_OK) {
        resume_failed(c, st, task_id(t));
        task_release(t);
        return false;
    }
    enum task_state s = task_get_state(t);
    /* No event missed of a task waiting for input: nothing to send, the
     * stream ends, as on its holder. */
    bool ended = missed && !cJSON_GetArraySize(missed) &&
                 (task_state_terminal(s) || task_state_interrupted(s));
    char *idj = c->bare ? NULL : cJSON_PrintUnformatted(c->id);
    if (idj || c->bare) {
        if (missed) {
            c->out->stream = stream_open_events(t, c->d, idj, missed, ended);
            if (c->out->stream && !ended) cluster_follow(t, now);
        } else {
            /* The row the holder committed before it answered: its events
             * after it are all written from now on (the watch), while the
             * ones before may be nowhere. */
            struct task *fresh = NULL;
            st = cluster_read(task_id(t), &fresh, NULL, 0);
            if (st == A2AD_OK) {
                c->out->stream = stream_open(fresh, c->d, idj, history);
                if (c->out->stream) rpc_remote_follow(fresh);
                task_release(fresh);
            }
        }
    }
    free(idj);
    cJSON_Delete(missed);
    if (st != A2AD_OK) {
        resume_failed(c, st, task_id(t));
        task_release(t);
        return false;
    }
    task_release(t);
    if (!c->out->stream) {
        c->f->http_status = 500;
        return fail(c->f, RPC_INTERNAL_ERROR, "out of memory");
    }
    return true;
}
