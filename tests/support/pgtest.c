/* pgtest - the shared part of the PostgreSQL suites. See pgtest.h. */
#include "pgtest.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct pg_server pgtest_srv;
char pgtest_secret_file[280];
static bool usable;
static char why[300];

void pgtest_suite_setup(void) {
    if (!pg_find(&pgtest_srv, why, sizeof why)) {
        fprintf(stderr, "\n*** PostgreSQL tests SKIPPED: %s ***\n\n", why);
        return;
    }
    if (!pg_server_start(&pgtest_srv)) {
        snprintf(why, sizeof why, "the test server did not start (see %s/log)", pgtest_srv.dir);
        fprintf(stderr, "\n*** PostgreSQL tests: %s ***\n\n", why);
        return;
    }
    /* The daemon's password, in a file only its owner reads. */
    snprintf(pgtest_secret_file, sizeof pgtest_secret_file, "%s/a2ad-password", pgtest_srv.dir);
    FILE *f = fopen(pgtest_secret_file, "w");
    if (f) {
        fprintf(f, "%s\n", PG_TEST_PASSWORD);
        fclose(f);
        chmod(pgtest_secret_file, 0600);
        usable = true;
    } else {
        snprintf(why, sizeof why, "cannot write %s", pgtest_secret_file);
    }
}

void pgtest_suite_teardown(void) {
    pg_server_destroy(&pgtest_srv);
    usable = false;
}

bool pgtest_usable(const char *test) {
    if (usable) return true;
    const char *ci = getenv("CI");
    ck_assert_msg(!(ci && !strcmp(ci, "true")), "CI=true and PostgreSQL is unusable: %s", why);
    fprintf(stderr, "*** %s SKIPPED: %s ***\n", test, why);
    return false;
}

void pgtest_new_db(const char *name, const char *extra, char *tasks, size_t n) {
    char sql[200];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s; CREATE DATABASE %s;", name, name);
    char *out = pg_sql(&pgtest_srv, "postgres", sql);
    ck_assert_msg(out != NULL, "cannot create database %s", name);
    free(out);
    char dsn[200];
    pg_dsn(&pgtest_srv, name, dsn, sizeof dsn);
    ck_assert_int_lt(snprintf(tasks, n, "dsn = %s\npassword_file = %s%s%s", dsn,
                              pgtest_secret_file, extra ? "\n" : "", extra ? extra : ""),
                     (int)n);
}

char *pgtest_sql1(const char *db, const char *sql) {
    char *out = pg_sql(&pgtest_srv, db, sql);
    ck_assert_msg(out != NULL, "SQL failed: %s", sql);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

void pgtest_stop_nodes(struct daemon_proc *alpha, struct daemon_proc *beta) {
    struct daemon_proc *d[2] = {beta, alpha};
    for (int i = 0; i < 2; i++) {
        int rc = daemon_stop(d[i], 15000);
        if (rc != 0) {
            char *log = daemon_log(d[i]);
            fprintf(stderr, "---- node %s's log ----\n%s\n----\n", i ? "alpha" : "beta", log);
            free(log);
            ck_abort_msg("node %s stopped with %d (its log is on stderr)", i ? "alpha" : "beta", rc);
        }
    }
}
