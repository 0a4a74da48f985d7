/* configtest - `a2ad -t`: everything that can be checked without serving. See
 * configtest.h. */
#include "configtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "delivery/guard.h"
#include "agents/plugins.h"
#include "delivery/sign.h"
#include "front/tls.h"

/* The directory of the database file must exist and be writable (SQLite
 * writes its -wal and -shm files next to it); an existing file must open
 * read-write and be an SQLite database. Nothing is created. */
static bool check_db_path(const struct config *cfg) {
    if (strcmp(cfg->store, "sqlite") != 0) return true;
    char *copy = strdup(cfg->db_path);
    if (!copy) return false;
    const char *dir = dirname(copy);
    struct stat sb;
    bool ok = true;
    if (stat(dir, &sb) != 0) {
        fprintf(stderr, "a2ad: [tasks] path = %s: its directory %s: %s; create it or fix the "
                        "path\n",
                cfg->db_path, dir, strerror(errno));
        ok = false;
    } else if (!S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "a2ad: [tasks] path = %s: %s is not a directory; fix the path\n",
                cfg->db_path, dir);
        ok = false;
    } else if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "a2ad: [tasks] path = %s: the directory %s is not writable (%s); the "
                        "database and its -wal file are written there\n",
                cfg->db_path, dir, strerror(errno));
        ok = false;
    } else if (stat(cfg->db_path, &sb) == 0) {
        int fd = open(cfg->db_path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "a2ad: [tasks] path = %s: cannot open it for writing: %s\n",
                    cfg->db_path, strerror(errno));
            ok = false;
        } else {
            close(fd);
            sqlite3 *db = NULL;
            int rc = sqlite3_open_v2(cfg->db_path, &db, SQLITE_OPEN_READWRITE, NULL);
            if (rc == SQLITE_OK)
                rc = sqlite3_exec(db, "PRAGMA schema_version", NULL, NULL, NULL);
            if (rc != SQLITE_OK) {
                fprintf(stderr, "a2ad: [tasks] path = %s: %s\n", cfg->db_path,
                        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
                ok = false;
            }
            sqlite3_close(db);
        }
    }
    free(copy);
    return ok;
}

/* A port in use is only a warning: the running a2ad being checked before a
 * restart holds it. */
static void check_port(const struct config *cfg) {
    if (cfg->port == 0) return;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(cfg->port)};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(cfg->port)};
    const struct sockaddr *sa;
    socklen_t len;
    if (inet_pton(AF_INET, cfg->listen, &sin.sin_addr) == 1) {
        sa = (const struct sockaddr *)&sin;
        len = sizeof sin;
    } else if (inet_pton(AF_INET6, cfg->listen, &sin6.sin6_addr) == 1) {
        sa = (const struct sockaddr *)&sin6;
        len = sizeof sin6;
    } else {
        return; /* config.c refused it already */
    }
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0) return;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, sa, len) != 0)
        fprintf(stderr, "a2ad: warning: [server] %s port %u: %s (another a2ad running?)\n",
                cfg->listen, (unsigned)cfg->port, strerror(errno));
    close(fd);
}

/* The pair as start-up and SIGHUP read it (tls.c); an expired certificate
 * is a warning, as there. The subject and notAfter go with -v's details. */
static bool check_tls(const struct config *cfg, bool verbose) {
    if (!cfg->tls_cert_file || !*cfg->tls_cert_file) return true;
    char what[700];
    bool is_expired = false;
    if (tls_check(cfg->tls_cert_file, cfg->tls_key_file, what, sizeof what, &is_expired) != A2AD_OK) {
        fprintf(stderr, "a2ad: %s\n", what);
        return false;
    }
    if (is_expired)
        fprintf(stderr, "a2ad: warning: [server] tls_cert_file = %s: the certificate has expired: %s; "
                        "clients refuse it until it is renewed\n",
                cfg->tls_cert_file, what);
    if (verbose) printf("\n# TLS certificate %s: %s\n", cfg->tls_cert_file, what);
    return true;
}

static bool check_plugin_dir(const struct config *cfg) {
    const char *dir = cfg->plugin_dir && cfg->plugin_dir[0] ? cfg->plugin_dir : ".";
    struct stat sb;
    const char *why = stat(dir, &sb) != 0 ? strerror(errno)
                      : !S_ISDIR(sb.st_mode) ? "not a directory"
                                             : NULL;
    if (why)
        fprintf(stderr, "a2ad: [plugins] dir = %s: %s; create it or point it at the plugins\n",
                dir, why);
    return why == NULL;
}

int check_config(const struct config *cfg, const char *path, bool verbose,
                 const struct a2ad_host *host) {
    if (verbose) config_dump(cfg, stdout);
    int bad = 0;
    if (!check_plugin_dir(cfg)) {
        bad++;
    } else {
        /* As at start-up: each plugin loads and its init() takes its
         * [agent.X] options, the sections and default_agent name loaded
         * agents; the refusals are logged (stderr), naming the cause. Then
         * every destroy() runs. */
        if (plugins_load(cfg, host) != A2AD_OK)
            bad++;
        else
            plugins_unload();
    }
    if (!check_db_path(cfg)) bad++;
    if (!check_tls(cfg, verbose)) bad++;
    char serr[512];
    if (sign_load(cfg->webhook_signing_secret_file, serr, sizeof serr) != A2AD_OK) {
        fprintf(stderr, "%s\n", serr);
        bad++;
    }
    sign_unload();
    if (guard_set_allow(cfg->webhook_allow_networks) != A2AD_OK) bad++;
    check_port(cfg);
    if (bad) {
        fprintf(stderr, "%s: configuration refused (see above)\n", path);
        return 1;
    }
    printf("%s: configuration ok\n", path);
    return 0;
}
