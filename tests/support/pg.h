/* pg - a real PostgreSQL server for tests, in a temporary folder.
 *
 * pg_server_start runs Debian's initdb and pg_ctl (found by globbing
 * /usr/lib/postgresql/NN/bin, or PG_BIN) as the unprivileged `postgres`
 * user when the tests run as root, with its data, log and Unix socket in a
 * temporary folder, listening on 127.0.0.1 at a free port. Local (socket)
 * connections are trusted, for pg_sql; TCP connections, the daemon's, need
 * the password PG_TEST_PASSWORD of user a2ad.
 */
#ifndef A2AD_TEST_PG_H
#define A2AD_TEST_PG_H

#include <stdbool.h>
#include <stddef.h>

#define PG_TEST_PASSWORD "pg-test-Secret-7f3a9c"

struct pg_server {
    char bin[256]; /* the folder of initdb, pg_ctl, psql */
    char dir[256]; /* temporary: data/, log, the socket */
    unsigned port;
    bool running;
};

/* Find the binaries; false (why says so) when PostgreSQL is not installed. */
bool pg_find(struct pg_server *s, char *why, size_t n);
/* initdb and start; false on failure (the server log is in dir/log). */
bool pg_server_start(struct pg_server *s);
/* Stop (fast: connections are cut) or start again on the same port. */
bool pg_stop(struct pg_server *s);
bool pg_start(struct pg_server *s);
/* Stop and remove the folder. Safe if never started. */
void pg_server_destroy(struct pg_server *s);
/* Run SQL in database db through the socket; its output (tuples only,
 * unaligned, '|' between columns) malloc'd, or NULL when psql failed. */
char *pg_sql(const struct pg_server *s, const char *db, const char *sql);
/* A libpq connection string to db over TCP, without the password. */
void pg_dsn(const struct pg_server *s, const char *db, char *out, size_t n);

#endif
