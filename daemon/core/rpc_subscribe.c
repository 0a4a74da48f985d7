/* rpc_subscribe - a stream of another node's unfinished task
 * (tasks/resubscribe, SubscribeToTask and their HTTP+JSON forms): the
 * task as its row has it, then its events as the holder writes them into
 * a2ad_events (cluster_watch_from, cluster_follow); a client back with
 * Last-Event-ID gets exactly the events it missed instead, as on the
 * holder (replay.c), from a2ad_events (cluster_resume), or the task as it
 * is now when some are no longer there. See rpc_int.h. */
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
static bool subscribe_failed(struct call *c, a2ad_status st, const char *id) {
    if (st == A2AD_ERR_NOT_FOUND) return fail(c->f, RPC_TASK_NOT_FOUND, "task %s not found", id);
    c->f->http_status = 503;
    c->f->retry_after_s = st == A2AD_ERR_STATE ? 1 : 5;
    if (st == A2AD_ERR_STATE)
        return fail(c->f, RPC_INTERNAL_ERROR,
                    "task %s moved to this node meanwhile; subscribe again", id);
    if (st == A2AD_ERR_FULL) c->f->retry_after_s = 1;
    return fail(c->f, RPC_INTERNAL_ERROR, "%s", cluster_last_error());
}

/* Watch t (without Last-Event-ID) from its row's seq. The holder writes
 * the events after it from its replay log; when it no longer has them
 * all, the row the stream starts from is read again once the holder
 * committed it (a second, synchronous watch), so that no event falls
 * between the row and the ones it writes. *start: the task to start from
 * (a reference). */
static a2ad_status watch_row(struct task *t, struct task **start) {
    *start = NULL;
    task_lock(t);
    uint64_t seq = task_seq_locked(t);
    task_unlock(t);
    bool complete;
    uint64_t now;
    a2ad_status st = cluster_watch_from(t, seq, false, &complete, &now);
    if (st != A2AD_OK) return st;
    if (complete || !now) {
        task_retain(t);
        *start = t;
        return A2AD_OK;
    }
    if ((st = cluster_watch_from(t, now, true, &complete, &now)) != A2AD_OK) return st;
    return cluster_read(task_id(t), start, NULL, 0);
}

bool rpc_remote_subscribe(struct call *c, struct task *t, const uint64_t *after, int history) {
    enum task_state s = task_get_state(t);
    uint64_t now = 0;
    cJSON *missed = NULL;
    struct task *start = NULL;
    a2ad_status st = A2AD_OK;
    if (after) {
        st = cluster_resume(t, *after, replay_max_bytes(), &missed, &now);
        /* The row the holder committed before it answered: its events
         * after it are all written from now on (the watch), while the ones
         * before may be nowhere. */
        if (st == A2AD_OK && !missed) st = cluster_read(task_id(t), &start, NULL, 0);
    } else if (task_state_interrupted(s)) { /* one frame, the end */
        task_retain(t);
        start = t;
    } else {
        st = watch_row(t, &start);
    }
    if (st != A2AD_OK) {
        subscribe_failed(c, st, task_id(t));
        cJSON_Delete(missed);
        task_release(t);
        return false;
    }
    char *idj = c->bare ? NULL : cJSON_PrintUnformatted(c->id);
    if (idj || c->bare) {
        if (missed) {
            /* No event missed of a task waiting for input: nothing to
             * send, the stream ends, as on its holder. */
            bool ended = !cJSON_GetArraySize(missed) &&
                         (task_state_terminal(s) || task_state_interrupted(s));
            c->out->stream = stream_open_events(t, c->d, idj, missed, ended);
            if (c->out->stream && !ended) cluster_follow(t, now);
        } else {
            c->out->stream = stream_open(start, c->d, idj, history);
            if (c->out->stream) rpc_remote_follow(start);
        }
    }
    free(idj);
    cJSON_Delete(missed);
    if (start) task_release(start);
    task_release(t);
    if (!c->out->stream) {
        c->f->http_status = 500;
        return fail(c->f, RPC_INTERNAL_ERROR, "out of memory");
    }
    return true;
}
