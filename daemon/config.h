/* config - the daemon's settings: defaults, the key = value file, checks.
 *
 * The file is INI-shaped (parsed with libinih): sections [server], [workers],
 * [plugins], [tasks], [webhooks], [log], and one [agent.NAME] section per
 * agent that needs settings. Every daemon key lives in one static table with
 * its type, range and default; an unknown key or a bad value is an error
 * naming file:line. Keys in [agent.NAME] other than the host's own
 * (max_duration_s, hu_min_importance, workers, queue_length, and runner.h's
 * isolation, exec, description, version, rerun_safe, memory_max, cpu_max_s,
 * open_files_max, cancel_grace_ms) are handed to that agent's init() as
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
    unsigned workers;          /* concurrent jobs of this agent; 0 = default */
    unsigned queue_length;     /* queued jobs of this agent; 0 = only [workers] queue_length */
    /* how its jobs run (runner.h); 0/NULL = not set here */
    char *isolation;           /* "thread" or "process"; NULL = [workers] isolation */
    char *exec;                /* a program speaking docs/agent-protocol.md (an exec agent) */
    char *description, *version; /* exec agents: for the agent card */
    int rerun_safe;            /* exec agents: -1 = not set, 0 or 1 */
    size_t memory_max;         /* process/exec: bytes of data memory per job; 0 = none */
    unsigned cpu_max_s;        /* process/exec: CPU seconds per job; 0 = none */
    unsigned open_files_max;   /* process/exec: RLIMIT_NOFILE per job; 0 = inherited */
    unsigned cancel_grace_ms;  /* process/exec: cancel -> kill; 0 = [workers] cancel_grace_ms */
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
    char *tls_cert_file;           /* "" = plain HTTP; else PEM certificate chain (with tls_key_file) */
    char *tls_key_file;            /* "" = plain HTTP; else PEM private key */
    size_t stream_buffer_bytes;    /* 1 MiB: unread SSE bytes per stream */
    unsigned stream_keepalive_s;   /* 15: SSE comment after idle seconds; 0 = none */
    size_t stream_replay_bytes;    /* 64 KiB: recent events kept per task for Last-Event-ID */
    char *admin_tokens;            /* "" = the admin API (/admin/v1/) is off */
    bool ui_enabled;               /* true: the dashboard at /ui/ */
    unsigned max_connections_per_ip; /* 64: open connections per client address; 0 = no limit */
    unsigned request_timeout_s;    /* 10: whole request (headers and body) in; 0 = no limit */
    unsigned rate_limit_per_s;     /* 100: requests per second per client address; 0 = off */
    unsigned rate_burst;           /* 200: requests a client may send at once */

    /* [workers] */
    unsigned worker_threads;       /* 0 = number of cores */
    unsigned queue_length;         /* 10000 */
    unsigned max_duration_s;       /* 3600: default per-job limit */
    unsigned shutdown_grace_s;     /* 30: how long running jobs may finish at stop */
    char *isolation;               /* "thread": jobs in daemon threads; "process": in children */
    char *agent_host;              /* "" = a2ad-agent-host next to the a2ad binary */
    size_t protocol_line_max;      /* 4M: longest agent-protocol line (bytes) */
    unsigned cancel_grace_ms;      /* 5000: a cancelled child is killed after this */
    size_t max_artifact_bytes;     /* 64M: one artifact assembled from chunks */
    unsigned max_attempts;         /* 3: runs of a rerun_safe job interrupted by a crash */
    unsigned crash_loop_max;       /* 5: restarts with an agent's jobs running that disable it; 0 = off */
    unsigned crash_loop_window_s;  /* 3600: ... counted within this window */

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
    unsigned cluster_connections;  /* postgresql: connections for reads/controls of other nodes' tasks */
    unsigned cluster_timeout_ms;   /* postgresql: how long a control waits for the holding node */
    bool share_jobs;               /* postgresql: offer jobs that wait, claim others' (share.h) */
    unsigned share_after_ms;       /* 100: how long a job waits here before it is offered */
    unsigned write_queue;          /* 10000: writes waiting for the disk at most */
    unsigned lock_timeout_ms;      /* 5000: how long a write waits for a locked database */
    unsigned cache_kib;            /* 128: SQLite page cache of the writer (KiB) */
    unsigned retention_s;          /* 3600: finished tasks kept this long */
    unsigned max_tasks;            /* 100000: tasks held at once */
    unsigned max_json_depth;       /* 64: nesting of a stored JSON value (push config, metadata, message) */
    unsigned write_timeout_ms;     /* 10000: a write not committed by then is answered 503; 0 = none */

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
    char *webhook_allow_networks;         /* "" = every internal address refused (SSRF guard) */
    char *webhook_proxy;                  /* "" = direct; else every POST through this proxy */
    char *webhook_ca_file;                /* "" = the system's CA bundle */
    char *webhook_ca_path;                /* "" = the system's CA directory */
    char *webhook_signing_secret_file;    /* "" = unsigned; else Standard Webhooks signatures */
    unsigned webhook_max_in_flight_per_host; /* 8 concurrent POSTs to one host:port */
    unsigned webhook_breaker_failures;    /* 5 failures in a row open a host's breaker; 0 = off */
    unsigned webhook_breaker_cooldown_ms; /* 30000: how long an open breaker holds deliveries */
    size_t webhook_max_pending_bytes;     /* 64 MiB of queued deliveries in memory */
    size_t webhook_max_outbox_bytes;      /* 1 GiB of undelivered deliveries on disk */

    /* [log] */
    a2ad_log_level log_level;      /* info */
    char *log_format;              /* "text" or "json" (one object per line) */
    unsigned log_client_lines_per_s; /* 20: lines caused by clients, per kind; then one summary */

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
/* Free a list of [agent.NAME] sections and everything they own. */
void config_agents_free(struct agent_config *a);

/* Print every key with its current value as a config file (for `a2ad -t -v`). */
void config_dump(const struct config *cfg, void *file /* FILE* */);
/* dsn with its password replaced by "***" (into out, n bytes); returns out. */
const char *config_dsn_masked(const char *dsn, char *out, size_t n);

#endif
