/* store - the durable task store: SQLite (WAL), a webhook outbox, recovery.
 *
 * With [tasks] store = sqlite every task event is written to one database
 * file: the task as JSON (status, history, artifacts with their bytes,
 * metadata), each extension slot's data through its ops->save, and every
 * webhook delivery as an outbox row with its event id. Writes go through one
 * writer thread that drains its bounded queue into a single transaction
 * (group commit). The rules that make the promise hold:
 *   - a task is acknowledged only after its CREATED row is committed
 *     (tasks_create waits, with no lock held, in store_wait_created; or,
 *     with defer_durable, the HTTP layer suspends the connection until the
 *     writer calls it back through tasks_on_durable);
 *   - an event's outbox rows and the task row go into the same transaction
 *     (the store observer runs after every other observer and queues both
 *     together), and a delivery is not sent before that commit, so a
 *     receiver never hears of a state the database does not have;
 *   - an outbox row is deleted only after a 2xx, or when given up (older
 *     than [webhooks] max_age_s, or refused with a 4xx), which is recorded
 *     on the task in metadata.a2ad.webhooksGivenUp.
 *   - a delivery that does not fit in the webhook queue (max_pending) is
 *     parked: kept in its outbox row only, and handed back to the queue, in
 *     order, when it has room (nothing is dropped; memory stays bounded).
 * At start-up store_recover parks every undelivered row (they come back
 * in their order, a batch at a time), restores the tasks, runs queued jobs again, and fails
 * the ones that were running ("interrupted: a2ad restarted") unless their
 * agent declares rerun_safe, in which case they are queued again with
 * metadata.a2ad.attempt counting the runs.
 *
 * Finished tasks are deleted retention_s after they ended. A write that
 * fails (disk full, read-only or locked database) is logged; a submission
 * waiting for it gets A2AD_ERR_IO and store_last_error() says why. So does
 * one whose write is not committed within write_timeout_ms (a watch thread
 * settles it: a frozen disk must not hang requests). The database file is
 * created 0600; a path that stops naming the open file (deleted, replaced)
 * is noticed before the next commit and by the watch thread, and from then
 * on nothing is accepted (store_broken).
 */
#ifndef A2AD_STORE_H
#define A2AD_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "a2ad/agent.h"
#include "config.h"

struct task;

/* Open (create) the database, register the store's task hooks, slot ops and
 * webhook outbox, and start the writer thread. Logs and returns A2AD_ERR_IO
 * when the file cannot be opened or set up. Thread: main, after tasks_init
 * and push_init, before webhooks_start and before any task. */
a2ad_status store_open(const struct config *cfg);

/* Re-queue undelivered webhook rows, then restore the tasks and act on the
 * unfinished ones (see above). Thread: main, after webhooks_start,
 * plugins_load and workers_start, before HTTP starts. */
a2ad_status store_recover(void);

/* Block until every write queued so far (by any thread) is committed or
 * failed; at once without a store. Thread: any but the writer. */
void store_sync(void);

/* Write what is queued, stop the writer and close the database. Thread:
 * main, after workers and webhooks stopped. Safe if never opened. */
void store_close(void);

/* Whether a write would go through now: false when the write queue is
 * full ([tasks] write_queue), when the last write failed
 * (within a few seconds, with no success since) or a probe cannot take the
 * database's write lock (locked by another process, read-only file); then
 * why says so. true when no store is open. Thread: any; may wait up to
 * half a second for a lock. */
bool store_writable(char *why, size_t n);

/* Write t's row now and wait until it is committed, failed, or timed out
 * ([tasks] write_timeout_ms): A2AD_OK only once committed (always with the
 * memory store). Thread: any but the store's; no task lock held. */
a2ad_status store_persist(struct task *t);

/* The same without waiting: the row is queued and tasks_on_durable(t, ...)
 * / tasks_wait_durable(t) follow it like a new task's row. A2AD_ERR_STATE
 * with the memory store (nothing to wait for). */
a2ad_status store_persist_begin(struct task *t);

/* true once the database file was deleted or replaced under the running
 * daemon; why gets the problem. Nothing is accepted from then on. */
bool store_broken(char *why, size_t n);

/* Why the last store call that failed on this thread failed ("the database
 * /x/a2ad.db: database is locked"); "" when none did. Thread-local. */
const char *store_last_error(void);

#endif
