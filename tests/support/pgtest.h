/* pgtest - what every PostgreSQL suite shares (test_pg, test_share,
 * test_remote, test_cluster): one server per suite, started by the suite's
 * unchecked fixture (pgtest_suite_setup / pgtest_suite_teardown), the
 * password file the daemons read (pgtest_secret_file), REQUIRE_PG at the
 * top of every test, a fresh database per test and one-value SQL.
 *
 * Without PostgreSQL installed a test is skipped with a line saying why,
 * except under CI=true, where it fails: CI installs it.
 */
#ifndef A2AD_TEST_PGTEST_H
#define A2AD_TEST_PGTEST_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon.h"
#include "pg.h"

extern struct pg_server pgtest_srv;
extern char pgtest_secret_file[280];

void pgtest_suite_setup(void);
/* Stop beta then alpha; a node that does not stop cleanly (in sanitizer
 * builds: a leak or a report) fails the test, its log on stderr. */
void pgtest_stop_nodes(struct daemon_proc *alpha, struct daemon_proc *beta);
void pgtest_suite_teardown(void);
/* false (after printing why, or failing the test under CI=true) when the
 * suite's server is not usable. */
bool pgtest_usable(const char *test);
#define REQUIRE_PG()                                                                     \
    do {                                                                                 \
        if (!pgtest_usable(__func__)) return;                                            \
    } while (0)

/* A fresh database `name`, and in tasks the [tasks] lines that use it
 * (dsn, password_file), then extra (NULL = none). */
void pgtest_new_db(const char *name, const char *extra, char *tasks, size_t n);
/* The first line of what sql prints in database db (malloc'd); fails the
 * test when psql fails. */
char *pgtest_sql1(const char *db, const char *sql);

#endif
