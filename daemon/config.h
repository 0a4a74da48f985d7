/* config - the daemon's settings: defaults, the key = value file, checks.
 *
 * The file is INI-shaped (parsed with libinih): sections [server], [workers],
 * [plugins], [tasks], [webhooks], [log], and one [agent.NAME] section per
 * agent that needs settings. Every daemon key lives in one static table with
 * its type, range and default; an unknown key or a bad value is an error
 * naming file:line. Keys in [agent.NAME] other than the host's own
 * (max_duration_s, hu_min_importance) are handed to that agent's init() as
 * options.
 */
#ifndef A2AD_CONFIG_H
#define A2AD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "a2ad/agent.h"

struct agent_config {
    char *name;                /* from [agent.NAME] */
    uint32_t max_duration_s;   /* 0 = not set here */
    int hu_min_importance;     /* a2ad_importance: least important Health Universe
                                  progress update POSTed; -1 = not set (all) */
    struct a2ad_option *opts;  /* other keys, in file order; strings owned here */
    size_t n_opts;
    struct agent_config *next;
};

struct config {
    /* [server] */
    char *listen;                  /* "127.0.0.1" */
    uint16_t port;                 /* 8080 */
    unsigned http_threads;         /* 2 */
    unsigned max_connections;      /* 1024 */
    size_t max_body_bytes;         /* 1 MiB */
    unsigned connection_timeout_s; /* 30 */
    char *public_url;              /* "" = http://listen:port */
    char *default_agent;           /* "" = the only agent, else none */
    char *node_name;               /* "" = the host name (store = postgresql) */
    char *auth_bearer_tokens;      /* "" = none; plaintext, hashed at start-up (legacy) */
    char *auth_tokens_file;        /* "" = none: NAME sha256:HEX [admin] [agents=a,b] lines */
    char *auth_token_hashes;       /* "" = none: NAME:sha256:HEX entries */
    bool allow_unauthenticated;    /* false: no credentials only on a loopback listen */
    char *auth_jwt_hs256_secret_file; /* "" = no HS256 JWTs */
    char *auth_jwt_jwks_file;      /* "" = no RS256 JWTs */
    char *auth_jwt_issuer;         /* "" = iss not checked */
    char *auth_jwt_audience;       /* "" = aud not checked */
    size_t stream_buffer_bytes;    /* 1 MiB: unread SSE bytes per stream */
    unsigned stream_keepalive_s;   /* 15: SSE comment after idle seconds; 0 = none */
    size_t stream_replay_bytes;    /* 64 KiB: recent events kept per task for Last-Event-ID */
    char *admin_tokens;            /* "" = the admin API (/admin/v1/) is off */
    bool ui_enabled;               /* true: the dashboard at /ui/ */

    /* [workers] */
    unsigned worker_threads;       /* 0 = number of cores */
    unsigned queue_length;         /* 10000 */
    unsigned max_duration_s;       /* 3600: default per-job limit */
    unsigned shutdown_grace_s;     /* 30: how long running jobs may finish at stop */

    /* [plugins] */
    char *plugin_dir;              /* "plugins" */
    char *plugin_load;             /* "" = every *.so in plugin_dir; else "a,b,c" */
    bool plugin_errors_fatal;      /* true: a bad plugin stops start-up */

    /* [tasks] */
    char *store;                   /* "sqlite", "postgresql" or "memory" */
    char *db_path;                 /* sqlite: the database file */
    char *db_sync;                 /* sqlite: "full" (fsync each commit) or "normal" */
    char *pg_dsn;                  /* postgresql: libpq connection string or URI */
    char *pg_password_file;        /* postgresql: a file holding the password, or "" */
    unsigned lease_s;              /* postgresql: a node's jobs go to another after this */
    unsigned write_queue;          /* 10000: writes waiting for the disk at most */
    unsigned lock_timeout_ms;      /* 5000: how long a write waits for a locked database */
    unsigned cache_kib;            /* 128: SQLite page cache of the writer (KiB) */
    unsigned retention_s;          /* 3600: finished tasks kept this long */
    unsigned max_tasks;            /* 100000: tasks held at once */

    /* [webhooks] */
    unsigned webhook_timeout_ms;          /* 10000 */
    unsigned webhook_connect_timeout_ms;  /* 3000 */
    unsigned webhook_max_attempts;        /* 6 (1 try + 5 retries) */
    unsigned webhook_backoff_initial_ms;  /* 500 */
    unsigned webhook_backoff_max_ms;      /* 30000 */
    unsigned webhook_max_in_flight;       /* 64 concurrent POSTs */
    unsigned webhook_max_pending;         /* 100000 queued deliveries */
    unsigned webhook_flush_s;             /* 10: how long pending POSTs may drain at stop */
    unsigned webhook_max_age_s;           /* 86400: retry until an event is this old; 0 = max_attempts */
    bool webhooks_enabled;                /* true: push notifications offered */
    unsigned webhook_max_configs;         /* 10 push configs per task */

    /* [log] */
    a2ad_log_level log_level;      /* info */

    struct agent_config *agents;   /* [agent.NAME] sections, file order */
};

/* Fill every field with its default. Strings are malloc'd. */
void config_defaults(struct config *cfg);

/* Read path over the defaults already in cfg. On error returns
 * A2AD_ERR_CONFIG (or A2AD_ERR_IO when unreadable) and writes a one-line
 * message "FILE:LINE: problem" into err. Ownership: cfg owns everything it
 * points to; release with config_free. Thread: main only. */
a2ad_status config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* The [agent.NAME] section of name, or NULL. */
const struct agent_config *config_agent(const struct config *cfg, const char *name);

void config_free(struct config *cfg);

/* Print every key with its current value as a config file (for `a2ad -t -v`). */
void config_dump(const struct config *cfg, void *file /* FILE* */);
/* dsn with its password replaced by "***" (into out, n bytes); returns out. */
const char *config_dsn_masked(const char *dsn, char *out, size_t n);

#endif
