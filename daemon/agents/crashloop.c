/* crashloop - see crashloop.h. */
#include "agents/crashloop.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "agents/runner.h"
#include "util.h"

void crashloop_check(const char *db_path) {
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s.crashes", db_path);
    unsigned max, window_s;
    runner_crash_loop(&max, &window_s);

    sqlite3 *db = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        log_warn("store: cannot check for crash loops in %s: %s", db_path,
                 db ? sqlite3_errmsg(db) : "no memory");
        sqlite3_close(db);
        runner_set_crash_file(file);
        return;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS agent_crashes (agent TEXT NOT NULL, at_ms INTEGER NOT NULL)",
                 NULL, NULL, NULL);
    int64_t now = (int64_t)util_wall_ms();
    FILE *f = fopen(file, "re");
    if (f) {
        sqlite3_stmt *ins = NULL;
        sqlite3_prepare_v2(db, "INSERT INTO agent_crashes (agent, at_ms) VALUES (?1, ?2)", -1,
                           &ins, NULL);
        char line[128];
        while (ins && fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = '\0';
            if (!line[0]) continue;
            sqlite3_bind_text(ins, 1, line, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(ins, 2, now);
            sqlite3_step(ins);
            sqlite3_reset(ins);
        }
        sqlite3_finalize(ins);
        fclose(f);
        if (unlink(file) != 0 && errno != ENOENT)
            log_warn("store: cannot remove %s: %s", file, strerror(errno));
    }
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "DELETE FROM agent_crashes WHERE at_ms < ?1", -1, &s, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int64(s, 1, now - (int64_t)window_s * 1000);
        sqlite3_step(s);
    }
    sqlite3_finalize(s);
    s = NULL;
    if (max && sqlite3_prepare_v2(db,
                                  "SELECT agent, count(*) FROM agent_crashes GROUP BY agent"
                                  " HAVING count(*) >= ?1",
                                  -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int(s, 1, (int)max);
        while (sqlite3_step(s) == SQLITE_ROW) {
            const char *agent = (const char *)sqlite3_column_text(s, 0);
            int n = sqlite3_column_int(s, 1);
            char why[400];
            snprintf(why, sizeof why,
                     "agent %s is disabled: it crashed a2ad %d times within %u s ([workers] "
                     "crash_loop_max = %u, crash_loop_window_s = %u); run it with isolation = "
                     "process, or fix it and restart after the window",
                     agent, n, window_s, max, window_s);
            log_error("%s", why);
            runner_disable(agent, why);
        }
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    runner_set_crash_file(file);
}
