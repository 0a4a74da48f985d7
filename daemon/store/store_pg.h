/* store_pg - the durable task store on PostgreSQL ([tasks] store = postgresql).
 *
 * The same promises as the SQLite store (store.h), for one node: a task is
 * acknowledged only after its CREATED row is committed; an event's outbox
 * rows and its task row share a transaction; an outbox row goes after a
 * 2xx (or when given up); at start, undelivered rows are sent again in
 * order, queued jobs run again and running ones fail ("interrupted: a2ad
 * restarted") unless rerun_safe; finished tasks go retention_s after they
 * ended. One writer thread owns one connection and writes each batch of
 * events as one transaction in a libpq pipeline (one round trip per batch
 * of up to PIPE_CHUNK statements, see store_pg.c).
 *
 * When PostgreSQL cannot be reached (stopped, network cut), new
 * submissions are refused at once (A2AD_ERR_IO, store_last_error() names
 * the cause: the HTTP layer answers 503 with Retry-After); everything that
 * belongs to acknowledged work stays queued in memory and is written once
 * the writer has reconnected (with backoff). Start-up fails when the
 * database cannot be reached, or holds a schema from a newer a2ad.
 *
 * Several nodes may share one database, for failover: rows carry the node
 * that holds them ([server] node_name), each node renews a lease
 * ([tasks] lease_s), and a node whose lease expired has its jobs and
 * undelivered webhooks taken over by another (claimed with SELECT ... FOR
 * UPDATE SKIP LOCKED; re-run when rerun_safe, else failed "interrupted:
 * node NAME lost"). Live nodes share queued jobs ([tasks] share_jobs,
 * share.h) and answer for each other's tasks through cluster.c
 * (a2ad_controls, a2ad_events, LISTEN/NOTIFY; see docs/postgresql.md).
 */
#ifndef A2AD_STORE_PG_H
#define A2AD_STORE_PG_H

#include "a2ad/agent.h"
#include "config.h"

/* As store_open/store_recover/store_close, for the PostgreSQL store. */
a2ad_status store_pg_open(const struct config *cfg);
a2ad_status store_pg_recover(void);
void store_pg_close(void);
/* Why the last PostgreSQL store call on this thread failed; "" if none. */
const char *store_pg_last_error(void);
/* A new connection to the store's database, as the writer's (cluster.c
 * opens its own with it); NULL with why (libpq's message, on one line).
 * Thread: any, once store_pg_open succeeded. */
struct pg_conn *store_pg_connect(char *why, size_t n);
/* This node's name, and the database as messages name it ("PostgreSQL
 * HOST:PORT/DB"). */
const char *store_pg_node(void);
const char *store_pg_path(void);
/* The schema version this a2ad writes (and the newest it reads). */
#define STORE_PG_SCHEMA 4

#endif
