/* pg - see pg.h. */
#include "support/pg.h"

#include <arpa/inet.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

bool pg_find(struct pg_server *s, char *why, size_t n) {
    memset(s, 0, sizeof *s);
    const char *env = getenv("PG_BIN");
    if (env && *env) {
        snprintf(s->bin, sizeof s->bin, "%s", env);
    } else {
        glob_t g;
        if (glob("/usr/lib/postgresql/*/bin/pg_ctl", 0, NULL, &g) != 0 || !g.gl_pathc) {
            snprintf(why, n, "no /usr/lib/postgresql/*/bin/pg_ctl (Debian package postgresql)");
            return false;
        }
        /* The newest version: glob sorts, so the last one. */
        snprintf(s->bin, sizeof s->bin, "%s", g.gl_pathv[g.gl_pathc - 1]);
        globfree(&g);
        *strrchr(s->bin, '/') = '\0';
    }
    char path[300];
    snprintf(path, sizeof path, "%s/initdb", s->bin);
    if (access(path, X_OK) != 0) {
        snprintf(why, n, "%s is missing", path);
        return false;
    }
    if (geteuid() == 0 && !getpwnam("postgres")) {
        snprintf(why, n, "running as root, and there is no postgres user to run the server as");
        return false;
    }
    return true;
}

/* Run a shell command line as the server's owner (postgres when root). */
static int as_owner(const char *cmd) {
    char line[4096];
    if (geteuid() == 0)
        snprintf(line, sizeof line, "runuser -u postgres -- sh -c '%s'", cmd);
    else
        snprintf(line, sizeof line, "%s", cmd);
    return system(line);
}

static unsigned free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    unsigned port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

bool pg_start(struct pg_server *s) {
    char cmd[2048];
    /* fsync off: a test server, whose crashes are not tested, only a2ad's. */
    snprintf(cmd, sizeof cmd,
             "%s/pg_ctl -D %s/data -l %s/log -w -t 30 -o \"-p %u -k %s"
             " -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40"
             " -c shared_buffers=16MB\" start >/dev/null",
             s->bin, s->dir, s->dir, s->port, s->dir);
    s->running = as_owner(cmd) == 0;
    return s->running;
}

bool pg_stop(struct pg_server *s) {
    if (!s->running) return true;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s/pg_ctl -D %s/data -m fast -w -t 30 stop >/dev/null", s->bin,
             s->dir);
    bool ok = as_owner(cmd) == 0;
    if (ok) s->running = false;
    return ok;
}

bool pg_server_start(struct pg_server *s) {
    snprintf(s->dir, sizeof s->dir, "/tmp/a2ad-pg-XXXXXX");
    if (!mkdtemp(s->dir)) return false;
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(s->dir, pw->pw_uid, pw->pw_gid) != 0) return false;
    }
    chmod(s->dir, 0700);
    s->port = free_port();
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "echo %s > %s/pw && %s/initdb -D %s/data -U a2ad --pwfile=%s/pw -E UTF8"
             " --auth-local=trust --auth-host=scram-sha-256 --no-sync >%s/initdb.log 2>&1"
             " && rm %s/pw",
             PG_TEST_PASSWORD, s->dir, s->bin, s->dir, s->dir, s->dir, s->dir);
    if (as_owner(cmd) != 0) return false;
    return pg_start(s);
}

void pg_server_destroy(struct pg_server *s) {
    if (!s->dir[0]) return;
    pg_stop(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
    if (system(cmd) != 0) fprintf(stderr, "pg: cannot remove %s\n", s->dir);
    s->dir[0] = '\0';
}

char *pg_sql(const struct pg_server *s, const char *db, const char *sql) {
    char path[] = "/tmp/a2ad-pg-sql-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "w");
    fputs(sql, f);
    fclose(f);
    chmod(path, 0644);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/psql -h %s -p %u -U a2ad -d %s -tAqX -v ON_ERROR_STOP=1 -f %s 2>&1",
             s->bin, s->dir, s->port, db, path);
    FILE *p = popen(cmd, "r");
    char *out = NULL;
    size_t len = 0, cap = 0;
    if (p) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
            if (len + n + 1 > cap) {
                cap = (len + n + 1) * 2;
                out = realloc(out, cap);
            }
            memcpy(out + len, buf, n);
            len += n;
        }
        int rc = pclose(p);
        if (!out) out = calloc(1, 1);
        else out[len] = '\0';
        if (rc != 0) {
            fprintf(stderr, "pg_sql failed: %s\n", out);
            free(out);
            out = NULL;
        }
    }
    unlink(path);
    return out;
}

void pg_dsn(const struct pg_server *s, const char *db, char *out, size_t n) {
    snprintf(out, n, "host=127.0.0.1 port=%u dbname=%s user=a2ad connect_timeout=3", s->port, db);
}
