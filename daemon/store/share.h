/* share - any node accepts, any free node runs: work sharing between nodes
 * on one PostgreSQL database ([tasks] store = postgresql, share_jobs = yes).
 *
 * Every task has one holder (a2ad_tasks.node), which alone runs its job and
 * produces its events. A queued job its holder cannot start at once (no free
 * worker of its agent here) is **offered**: its row gets offered = true. A
 * node with a free worker for that agent and nothing queued for it **claims**
 * offered jobs of other nodes (store_pg.c: FOR UPDATE SKIP LOCKED, only jobs
 * whose outbox is empty, so the old holder's webhooks of the task are all
 * delivered before the new holder's first one) and runs them.
 *
 * The old holder never starts a claimed job: before an offered job starts
 * (or is cancelled or streamed here) this node asks the writer for a **claim
 * check**, one statement after its batch that withdraws the offer if the row
 * is still held here; a row held by another node means taken, and the task is
 * forgotten here without any event (tasks_forget). The writer also forgets,
 * on its maintenance tick, the offered jobs still queued here that another
 * node took.
 *
 * Jobs that are never offered cost nothing more: no check, no statement.
 * Jobs with a client connected here (a stream, a blocking message/send) are
 * never offered (share_hold).
 *
 * This file keeps the in-memory side (which tasks are offered, the pending
 * offers and checks, the waiting threads); store_pg.c runs the statements on
 * its writer thread.
 */
#ifndef A2AD_SHARE_H
#define A2AD_SHARE_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct task;

/* Turn sharing on for node `node` (copied): registers the workers' hooks.
 * A job is offered once it waited after_ms here ([tasks] share_after_ms;
 * 0 = as soon as it cannot start). Thread: main, at the store's open,
 * before jobs run. */
void share_start(const char *node, unsigned after_ms);
/* After the writer stopped: checks still waiting are answered "not here"
 * (their jobs are not started), offered tasks are let go; the counts are
 * logged. Thread: main, at the store's close. */
void share_stop(void);
bool share_enabled(void);
/* Since the start: jobs of this node offered, of those the ones another
 * node took, and jobs this node claimed from others (GET /metrics). */
void share_counts(size_t *offered, size_t *taken, size_t *claimed);

/* This node needs the task to stay here (a client is connected to it, or
 * is about to change it): a task not offered is never offered from now on
 * (true); an offered one is checked (blocks for one writer round): true when
 * it is still held here (the offer is withdrawn), false when another node
 * took it (then it is forgotten here: look it up again). Thread: any but the
 * store's writer; no lock held. */
bool share_hold(struct task *t);

/* ---- the writer's side (store_pg.c) ---- */

/* A check waiting for the writer. */
struct share_check {
    struct share_check *next;
    char id[UUID_STR_LEN];
    int result; /* 0 = waiting, SHARE_OURS, SHARE_TAKEN, SHARE_UNKNOWN */
    int answer; /* the writer's, until the round is done */
};
enum { SHARE_OURS = 1, SHARE_TAKEN = 2, SHARE_UNKNOWN = 3 };

/* A text[] literal of ids being built ({"a","b"}). */
struct share_ids {
    char *text;
    size_t len, cap, n;
};
bool share_ids_add(struct share_ids *a, const char *id);
/* The literal, NUL-terminated ("{}" when empty); NULL without memory. */
const char *share_ids_text(struct share_ids *a);
void share_ids_free(struct share_ids *a);

/* Whether offers or checks wait for the writer. */
bool share_round_pending(void);
/* Take the waiting offers and checks: the ids to offer (a job checked in the
 * same round is not offered), the ids to check, and the checks themselves.
 * False when there is nothing (or no memory: left for the next round). */
bool share_round_take(struct share_ids *offers, struct share_ids *checks,
                      struct share_check **taken);
/* The round failed: keep what it took for the next one. */
void share_round_failed(const struct share_ids *offers, struct share_check *taken);
/* Answer every check of the round (node: the holder the row named, NULL =
 * no row) and wake the waiting threads. */
void share_round_answer(struct share_check *taken, const char *id, const char *node);
void share_round_done(struct share_check *taken);

/* Whether a claim should run now: the maintenance tick, or a worker went
 * idle while other nodes had jobs to give. Clears the early request. */
bool share_claim_due(bool maintenance);
/* The ids of jobs offered from here and still queued here (to forget the
 * taken ones, and never to claim our own back). False without memory. */
bool share_offered_ids(struct share_ids *out);
/* Another node holds the job offered from here: forget it unless a worker
 * already took it (its check decides then). */
void share_taken(const char *id);
/* A claim round took n jobs (asked for `want`). */
void share_claimed(size_t n, size_t want);
/* How many other live nodes there are, and their free workers by agent as
 * they last said (once a second; room_json {"agent": count, ...}, or NULL):
 * a job is offered only while another node has room for its agent. */
void share_set_peers(size_t peers, const char *room_json);
/* Offer the jobs that waited share_after_ms here and still wait. */
void share_promote(void);

#endif
