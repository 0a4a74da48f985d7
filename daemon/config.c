/* config - one table of daemon keys, libinih for the INI syntax.
 *
 * libinih as Debian 12 builds it (r55) behaves in ways, found by experiment,
 * that would otherwise let a mistake through silently:
 *   - it goes on after a bad line and only returns the first bad line's number;
 *   - an indented line after a key is glued to that key's value (multi-line
 *     support), so "  port = 1" becomes part of the line above;
 *   - a section without keys never reaches the handler, so an empty
 *     duplicate [agent.x] would go unseen;
 *   - a line longer than 199 bytes is cut and its tail parsed as a new line;
 *   - section names are cut to 49 bytes;
 *   - only " ;" starts a comment after a value: " # x" stays in the value.
 * So the file reaches inih through our own line reader (ini_parse_stream):
 * it counts lines, refuses long and indented lines, and validates every
 * [section] header itself. The handler therefore never needs inih's optional
 * line-number argument, whose presence differs between builds.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "delivery/guard.h"
#include "log.h"

/* inih keeps this many bytes of a section name, NUL included (MAX_SECTION). */
#define INI_SECTION_MAX 50

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

/* The longest job limit accepted anywhere: a week. */
#define MAX_JOB_S 604800ull

enum key_type {
    KT_STRING, /* char *; optionally restricted to words[] or checked by check() */
    KT_U16,    /* uint16_t in min..max */
    KT_UINT,   /* unsigned in min..max */
    KT_SIZE,   /* size_t in min..max bytes, k/M/G suffixes (powers of 1024) */
    KT_LEVEL,  /* a2ad_log_level */
    KT_FLAG    /* bool: words[0] sets true, words[1] false */
};

/* Returns NULL when value is acceptable, else what is accepted ("must be ..."). */
typedef const char *(*string_check)(const char *value);

struct key_def {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset;
    unsigned long long min, max;
    const char *const *words;
    string_check check;
    const char *def; /* the default, spelled as in a file */
    bool secret;     /* never printed by the -v dump */
};

/* The offset of a field, refused at compile time unless the field has type
 * T, so a row cannot write a size_t through an unsigned. */
#define FIELD(f, T) _Generic(((struct config *)0)->f, T: offsetof(struct config, f))

#define K_STR(s, n, f, chk, d) {s, n, KT_STRING, FIELD(f, char *), 0, 0, NULL, chk, d, false}
#define K_SECRET(s, n, f, chk, d) {s, n, KT_STRING, FIELD(f, char *), 0, 0, NULL, chk, d, true}
#define K_WORD(s, n, f, w, d) {s, n, KT_STRING, FIELD(f, char *), 0, 0, w, NULL, d, false}
#define K_U16(s, n, f, lo, hi, d) {s, n, KT_U16, FIELD(f, uint16_t), lo, hi, NULL, NULL, d, false}
#define K_UINT(s, n, f, lo, hi, d) {s, n, KT_UINT, FIELD(f, unsigned), lo, hi, NULL, NULL, d, false}
#define K_SIZE(s, n, f, lo, hi, d) {s, n, KT_SIZE, FIELD(f, size_t), lo, hi, NULL, NULL, d, false}
#define K_LEVEL(s, n, f, d) {s, n, KT_LEVEL, FIELD(f, a2ad_log_level), 0, 0, level_words, NULL, d, false}
#define K_FLAG(s, n, f, w, d) {s, n, KT_FLAG, FIELD(f, bool), 0, 0, w, NULL, d, false}

static const char *check_address(const char *v);
static const char *check_url(const char *v);
static const char *check_agent_or_empty(const char *v);
static const char *check_dir(const char *v);
static const char *check_load_list(const char *v);
static const char *check_db_path(const char *v);
static const char *check_node_name(const char *v);
static const char *check_tokens(const char *v);
static const char *check_program_or_empty(const char *v);
static const char *check_proxy(const char *v);

static const char *const level_words[] = {"error", "warning", "info", "debug", NULL};
/* Indexed by a2ad_importance. */
static const char *const importance_words[] = {"error", "notice", "info", "debug", NULL};
static const char *const errors_words[] = {"fatal", "skip", NULL};
static const char *const store_words[] = {"sqlite", "postgresql", "memory", NULL};
static const char *const sync_words[] = {"full", "normal", NULL};
static const char *const yes_no_words[] = {"yes", "no", NULL};
static const char *const log_format_words[] = {"text", "json", NULL};
static const char *const isolation_words[] = {"thread", "process", NULL};

static const char *const sections[] = {"server", "workers", "plugins", "tasks", "webhooks", "log"};
#define N_SECTIONS (sizeof sections / sizeof sections[0])

static const struct key_def keys[] = {
    K_STR("server", "listen", listen, check_address, "127.0.0.1"),
    K_U16("server", "port", port, 0, 65535, "8080"),
    K_UINT("server", "http_threads", http_threads, 1, 64, "2"),
    K_UINT("server", "max_connections", max_connections, 1, 100000, "1024"),
    K_SIZE("server", "max_body_bytes", max_body_bytes, KIB, 64 * MIB, "1M"),
    K_UINT("server", "connection_timeout_s", connection_timeout_s, 1, 3600, "30"),
    K_STR("server", "public_url", public_url, check_url, ""),
    K_STR("server", "default_agent", default_agent, check_agent_or_empty, ""),
    K_STR("server", "node_name", node_name, check_node_name, ""),
    K_SECRET("server", "auth_bearer_tokens", auth_bearer_tokens, check_tokens, ""),
    K_STR("server", "auth_tokens_file", auth_tokens_file, NULL, ""),
    K_STR("server", "auth_token_hashes", auth_token_hashes, NULL, ""),
    K_FLAG("server", "allow_unauthenticated", allow_unauthenticated, yes_no_words, "no"),
    K_STR("server", "auth_jwt_hs256_secret_file", auth_jwt_hs256_secret_file, NULL, ""),
    K_STR("server", "auth_jwt_jwks_file", auth_jwt_jwks_file, NULL, ""),
    K_STR("server", "auth_jwt_issuer", auth_jwt_issuer, NULL, ""),
    K_STR("server", "auth_jwt_audience", auth_jwt_audience, NULL, ""),
    K_STR("server", "tls_cert_file", tls_cert_file, NULL, ""),
    K_STR("server", "tls_key_file", tls_key_file, NULL, ""),
    K_SIZE("server", "stream_buffer_bytes", stream_buffer_bytes, 4 * KIB, 256 * MIB, "1M"),
    K_UINT("server", "stream_keepalive_s", stream_keepalive_s, 0, 3600, "15"),
    K_SIZE("server", "stream_replay_bytes", stream_replay_bytes, 0, 64 * MIB, "64K"),
    K_SECRET("server", "admin_tokens", admin_tokens, check_tokens, ""),
    K_FLAG("server", "ui", ui_enabled, yes_no_words, "yes"),
    K_UINT("server", "max_connections_per_ip", max_connections_per_ip, 0, 100000, "64"),
    K_UINT("server", "request_timeout_s", request_timeout_s, 0, 3600, "10"),
    K_UINT("server", "rate_limit_per_s", rate_limit_per_s, 0, 1000000, "100"),
    K_UINT("server", "rate_burst", rate_burst, 1, 1000000, "200"),

    K_UINT("workers", "threads", worker_threads, 0, 1024, "0"),
    K_UINT("workers", "queue_length", queue_length, 1, 10000000, "10000"),
    K_UINT("workers", "max_duration_s", max_duration_s, 1, MAX_JOB_S, "3600"),
    K_UINT("workers", "shutdown_grace_s", shutdown_grace_s, 0, 3600, "30"),
    K_WORD("workers", "isolation", isolation, isolation_words, "thread"),
    K_STR("workers", "agent_host", agent_host, check_program_or_empty, ""),
    K_SIZE("workers", "protocol_line_max", protocol_line_max, 4 * KIB, 256 * MIB, "4M"),
    K_UINT("workers", "cancel_grace_ms", cancel_grace_ms, 0, 600000, "5000"),
    K_SIZE("workers", "max_artifact_bytes", max_artifact_bytes, 1, 1024 * MIB, "64M"),
    K_UINT("workers", "max_attempts", max_attempts, 1, 100, "3"),
    K_UINT("workers", "crash_loop_max", crash_loop_max, 0, 1000, "5"),
    K_UINT("workers", "crash_loop_window_s", crash_loop_window_s, 1, 31536000, "3600"),

    K_STR("plugins", "dir", plugin_dir, check_dir, "plugins"),
    K_STR("plugins", "load", plugin_load, check_load_list, ""),
    K_FLAG("plugins", "errors", plugin_errors_fatal, errors_words, "fatal"),

    K_WORD("tasks", "store", store, store_words, "sqlite"),
    K_STR("tasks", "path", db_path, check_db_path, "/var/lib/a2ad/a2ad.db"),
    K_WORD("tasks", "sync", db_sync, sync_words, "full"),
    K_STR("tasks", "dsn", pg_dsn, NULL, ""),
    K_STR("tasks", "password_file", pg_password_file, NULL, ""),
    K_UINT("tasks", "lease_s", lease_s, 2, 3600, "30"),
    K_UINT("tasks", "cluster_connections", cluster_connections, 1, 64, "4"),
    K_UINT("tasks", "cluster_timeout_ms", cluster_timeout_ms, 100, 600000, "5000"),
    K_FLAG("tasks", "share_jobs", share_jobs, yes_no_words, "yes"),
    K_UINT("tasks", "share_after_ms", share_after_ms, 0, 3600000, "100"),
    K_UINT("tasks", "write_queue", write_queue, 1, 10000000, "10000"),
    K_UINT("tasks", "lock_timeout_ms", lock_timeout_ms, 0, 600000, "5000"),
    K_UINT("tasks", "cache_kib", cache_kib, 64, 1048576, "128"),
    K_UINT("tasks", "retention_s", retention_s, 0, 31536000, "3600"),
    K_UINT("tasks", "max_tasks", max_tasks, 1, 100000000, "100000"),
    K_UINT("tasks", "max_json_depth", max_json_depth, 4, 500, "64"),
    K_UINT("tasks", "write_timeout_ms", write_timeout_ms, 0, 3600000, "10000"),

    K_UINT("webhooks", "timeout_ms", webhook_timeout_ms, 100, 600000, "10000"),
    K_UINT("webhooks", "connect_timeout_ms", webhook_connect_timeout_ms, 100, 600000, "3000"),
    K_UINT("webhooks", "max_attempts", webhook_max_attempts, 1, 100, "6"),
    K_UINT("webhooks", "backoff_initial_ms", webhook_backoff_initial_ms, 1, 3600000, "500"),
    K_UINT("webhooks", "backoff_max_ms", webhook_backoff_max_ms, 1, 3600000, "30000"),
    K_UINT("webhooks", "max_in_flight", webhook_max_in_flight, 1, 10000, "64"),
    K_UINT("webhooks", "max_pending", webhook_max_pending, 1, 100000000, "100000"),
    K_UINT("webhooks", "flush_s", webhook_flush_s, 0, 3600, "10"),
    K_UINT("webhooks", "max_age_s", webhook_max_age_s, 0, 31536000, "86400"),
    K_FLAG("webhooks", "enabled", webhooks_enabled, yes_no_words, "yes"),
    K_UINT("webhooks", "max_configs_per_task", webhook_max_configs, 1, 1000, "10"),
    K_STR("webhooks", "allow_networks", webhook_allow_networks, guard_networks_check, ""),
    K_SECRET("webhooks", "proxy", webhook_proxy, check_proxy, ""),
    K_STR("webhooks", "ca_file", webhook_ca_file, NULL, ""),
    K_STR("webhooks", "ca_path", webhook_ca_path, NULL, ""),
    K_STR("webhooks", "signing_secret_file", webhook_signing_secret_file, NULL, ""),
    K_UINT("webhooks", "max_in_flight_per_host", webhook_max_in_flight_per_host, 1, 10000, "8"),
    K_UINT("webhooks", "breaker_failures", webhook_breaker_failures, 0, 1000, "5"),
    K_UINT("webhooks", "breaker_cooldown_ms", webhook_breaker_cooldown_ms, 100, 3600000, "30000"),
    K_SIZE("webhooks", "max_pending_bytes", webhook_max_pending_bytes, 64 * KIB, 64 * GIB, "64M"),
    K_SIZE("webhooks", "max_outbox_bytes", webhook_max_outbox_bytes, MIB, 1024 * GIB, "1G"),

    K_LEVEL("log", "level", log_level, "info"),
    K_WORD("log", "format", log_format, log_format_words, "text"),
    K_UINT("log", "client_lines_per_s", log_client_lines_per_s, 1, 1000000, "20"),
};
#define N_KEYS (sizeof keys / sizeof keys[0])

/* ---- values ---------------------------------------------------------------- */

static bool name_char(char c, bool dot_ok) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || (dot_ok && c == '.');
}

static bool valid_name(const char *s, bool dot_ok) {
    if (!*s) return false;
    for (; *s; s++)
        if (!name_char(*s, dot_ok)) return false;
    return true;
}

static const char *check_address(const char *v) {
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1) return NULL;
    return "must be an IPv4 or IPv6 address (not a host name), e.g. 127.0.0.1, 0.0.0.0 or ::";
}

static const char *check_url(const char *v) {
    if (!*v) return NULL;
    size_t skip = strncasecmp(v, "http://", 7) == 0    ? 7
                  : strncasecmp(v, "https://", 8) == 0 ? 8
                                                       : 0;
    bool ok = skip && v[skip] && v[skip] != '/';
    for (const char *c = v; ok && *c; c++)
        if (isspace((unsigned char)*c)) ok = false;
    return ok ? NULL
              : "must be empty (http://listen:port) or the http:// or https:// URL clients "
                "reach this daemon at";
}

/* A proxy URL as libcurl takes it: SCHEME://HOST[:PORT]. */
static const char *check_proxy(const char *v) {
    const char *sep = strstr(v, "://");
    bool ok = !*v || (sep && sep > v && sep[3] && sep[3] != '/');
    for (const char *c = v; ok && *c; c++)
        if (isspace((unsigned char)*c)) ok = false;
    return ok ? NULL
              : "must be empty (no proxy) or a proxy URL such as http://proxy.internal:3128";
}

static const char *check_agent_or_empty(const char *v) {
    return !*v || valid_name(v, false)
               ? NULL
               : "must be empty or an agent name (letters, digits, '_' and '-')";
}

static const char *check_dir(const char *v) {
    return *v ? NULL
              : "must be a directory (relative to the working directory unless it starts "
                "with '/')";
}

static const char *check_node_name(const char *v) {
    return !*v || (strlen(v) <= 63 && valid_name(v, true))
               ? NULL
               : "must be empty (the host name) or up to 63 letters, digits, '_', '-' and '.'";
}

static const char *check_db_path(const char *v) {
    size_t n = strlen(v);
    return n && v[n - 1] != '/' && !strchr(v, '?')
               ? NULL
               : "must be the database file (relative to the working directory unless it "
                 "starts with '/'), e.g. /var/lib/a2ad/a2ad.db";
}

static const char *check_program_or_empty(const char *v) {
    return !*v || v[0] == '/' ? NULL : "must be empty (next to the a2ad binary) or an absolute path";
}

/* Mirrors how plugins.c reads the list: commas, blanks around names. */
/* Bearer tokens: separated by commas or blanks, each 16 to 200 visible
 * ASCII characters (a short token is guessable). */
static const char *check_tokens(const char *v) {
    for (const char *s = v; *s;) {
        while (*s == ',' || *s == ' ' || *s == '\t') s++;
        size_t n = 0;
        for (; s[n] && s[n] != ',' && s[n] != ' ' && s[n] != '\t'; n++)
            if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e)
                return "must be tokens of visible ASCII characters separated by commas";
        if (n && (n < 16 || n > 200))
            return "must be tokens of 16 to 200 characters each (e.g. from `openssl rand -hex 24`)";
        s += n;
    }
    return NULL;
}

static const char *check_load_list(const char *v) {
    const char *s = v;
    while (*s) {
        while (*s == ' ' || *s == '\t') s++;
        const char *start = s;
        while (*s && *s != ',' && *s != ' ' && *s != '\t') {
            if (*s == '/') return "must list plugin names, not paths: NAME loads dir/NAME.so";
            s++;
        }
        bool named = s > start;
        while (*s == ' ' || *s == '\t') s++;
        if (*s && *s != ',') return "must be plugin names separated by commas, e.g. echo, processor";
        if (!named) return "must be plugin names separated by commas, with no empty entry";
        if (*s == ',') {
            s++;
            if (!*s) return "must be plugin names separated by commas, with no trailing comma";
        }
    }
    return NULL;
}

/* Plain decimal digits only: strtoull alone would also take " 1", "+1",
 * "0x10", and "-1" as a huge number. */
static bool parse_digits(const char *s, unsigned long long *out, const char **rest) {
    unsigned long long v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (~0ull - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    *rest = p;
    return p > s;
}

static bool parse_uint(const char *s, unsigned long long min, unsigned long long max,
                       unsigned long long *out) {
    const char *rest;
    return parse_digits(s, out, &rest) && !*rest && *out >= min && *out <= max;
}

static bool parse_size(const char *s, unsigned long long min, unsigned long long max,
                       unsigned long long *out) {
    const char *rest;
    if (!parse_digits(s, out, &rest)) return false;
    unsigned long long unit = 1;
    if (*rest) {
        switch (*rest++) {
        case 'k': case 'K': unit = KIB; break;
        case 'm': case 'M': unit = MIB; break;
        case 'g': case 'G': unit = GIB; break;
        default: return false;
        }
        if (*rest) return false;
    }
    if (*out > ~0ull / unit) return false;
    *out *= unit;
    return *out >= min && *out <= max;
}

/* The shortest exact spelling: 1048576 -> "1M", 1536 -> "1536". */
static const char *format_size(unsigned long long v, char *buf, size_t len) {
    if (v && v % GIB == 0)
        snprintf(buf, len, "%lluG", v / GIB);
    else if (v && v % MIB == 0)
        snprintf(buf, len, "%lluM", v / MIB);
    else if (v && v % KIB == 0)
        snprintf(buf, len, "%lluk", v / KIB);
    else
        snprintf(buf, len, "%llu", v);
    return buf;
}

/* "a", "a or b", "a, b or c". */
static void join_words(const char *const *words, char *buf, size_t len) {
    size_t n = 0, used = 0;
    while (words[n]) n++;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + used, len - used, "%s%s", sep, words[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

static int find_word(const char *const *words, const char *v) {
    for (int i = 0; words[i]; i++)
        if (strcasecmp(words[i], v) == 0) return i;
    return -1;
}

static void *field(const struct config *cfg, const struct key_def *k) {
    return (char *)cfg + k->offset;
}

enum set_result { SET_OK, SET_BAD, SET_NOMEM };

/* Store value into k's field, or say in why what k accepts. */
static enum set_result set_value(struct config *cfg, const struct key_def *k, const char *v,
                                 char *why, size_t whylen) {
    void *f = field(cfg, k);
    unsigned long long n;
    char lo[32], hi[32], list[128];
    switch (k->type) {
    case KT_STRING: {
        int w = -1;
        const char *problem = NULL;
        if (k->words) {
            w = find_word(k->words, v);
            if (w < 0) {
                join_words(k->words, list, sizeof list);
                snprintf(why, whylen, "must be %s%s", list,
                         k->words[1] ? "" : " (the only value this version accepts)");
                return SET_BAD;
            }
        } else if (k->check && (problem = k->check(v)) != NULL) {
            snprintf(why, whylen, "%s", problem);
            return SET_BAD;
        }
        /* The canonical spelling of a word, so "Memory" reads back as "memory". */
        char *copy = strdup(w >= 0 ? k->words[w] : v);
        if (!copy) return SET_NOMEM;
        free(*(char **)f);
        *(char **)f = copy;
        return SET_OK;
    }
    case KT_U16:
    case KT_UINT:
        if (!parse_uint(v, k->min, k->max, &n)) {
            snprintf(why, whylen, "must be an integer from %llu to %llu", k->min, k->max);
            return SET_BAD;
        }
        if (k->type == KT_U16)
            *(uint16_t *)f = (uint16_t)n;
        else
            *(unsigned *)f = (unsigned)n;
        return SET_OK;
    case KT_SIZE:
        if (!parse_size(v, k->min, k->max, &n)) {
            snprintf(why, whylen,
                     "must be a size from %s to %s (bytes, or with a k, M or G suffix: "
                     "KiB, MiB, GiB)",
                     format_size(k->min, lo, sizeof lo), format_size(k->max, hi, sizeof hi));
            return SET_BAD;
        }
        *(size_t *)f = (size_t)n;
        return SET_OK;
    case KT_LEVEL:
        if (log_level_parse(v, (a2ad_log_level *)f) != A2AD_OK) {
            join_words(k->words, list, sizeof list);
            snprintf(why, whylen, "must be %s", list);
            return SET_BAD;
        }
        return SET_OK;
    case KT_FLAG: {
        int w = find_word(k->words, v);
        if (w < 0) {
            join_words(k->words, list, sizeof list);
            snprintf(why, whylen, "must be %s", list);
            return SET_BAD;
        }
        *(bool *)f = w == 0;
        return SET_OK;
    }
    }
    snprintf(why, whylen, "cannot be set (unknown key type)");
    return SET_BAD;
}

/* The value as a file would spell it; may point into buf. */
static const char *format_value(const struct config *cfg, const struct key_def *k, char *buf,
                                size_t len) {
    const void *f = field(cfg, k);
    switch (k->type) {
    case KT_STRING: return *(char *const *)f ? *(char *const *)f : "";
    case KT_U16: snprintf(buf, len, "%u", (unsigned)*(const uint16_t *)f); return buf;
    case KT_UINT: snprintf(buf, len, "%u", *(const unsigned *)f); return buf;
    case KT_SIZE: return format_size(*(const size_t *)f, buf, len);
    case KT_LEVEL:
        for (size_t i = 0; k->words[i]; i++) {
            a2ad_log_level l;
            if (log_level_parse(k->words[i], &l) == A2AD_OK && l == *(const a2ad_log_level *)f)
                return k->words[i];
        }
        snprintf(buf, len, "%d", (int)*(const a2ad_log_level *)f);
        return buf;
    case KT_FLAG: return k->words[*(const bool *)f ? 0 : 1];
    }
    return "";
}

/* ---- parsing --------------------------------------------------------------- */

struct seen_agent {
    const struct agent_config *agent;
    unsigned line;
};

struct parse {
    struct config *cfg;
    FILE *file;
    unsigned line;
    int io_errno;
    bool nomem;

    /* The section being read, as the reader saw its header. */
    enum { SEC_NONE, SEC_DAEMON, SEC_AGENT } kind;
    char section[INI_SECTION_MAX];
    struct agent_config *agent;
    unsigned agent_duration_line; /* where this agent's max_duration_s was set */
    unsigned agent_hu_line;       /* where this agent's hu_min_importance was set */
    unsigned agent_workers_line, agent_queue_line; /* where workers / queue_length were set */
    unsigned agent_runner_line[9]; /* where each of agent_runner_key's keys was set */
    unsigned *opt_lines;          /* where each of this agent's options was set */
    size_t opt_lines_cap;

    unsigned section_line[N_SECTIONS];
    unsigned key_line[N_KEYS];
    struct seen_agent *seen;
    size_t n_seen;

    unsigned err_line; /* of the first problem; later ones are not reported */
    char msg[768];
};

static int fail(struct parse *p, const char *fmt, ...) A2AD_PRINTF(2, 3);
static int fail(struct parse *p, const char *fmt, ...) {
    if (p->err_line) return 0;
    p->err_line = p->line ? p->line : 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof p->msg, fmt, ap);
    va_end(ap);
    return 0;
}

static int fail_nomem(struct parse *p) {
    p->nomem = true;
    return fail(p, "out of memory");
}

static void section_list(char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_SECTIONS && used < len; i++) {
        int w = snprintf(buf + used, len - used, "[%s], ", sections[i]);
        if (w < 0) return;
        used += (size_t)w;
    }
    if (used < len) snprintf(buf + used, len - used, "or [agent.NAME]");
}

static void begin_agent(struct parse *p, const char *name) {
    if (!valid_name(name, false)) {
        fail(p, "[agent.%s]: bad agent name \"%s\": use letters, digits, '_' and '-'", name,
             name);
        return;
    }
    struct agent_config **tail = &p->cfg->agents;
    for (; *tail; tail = &(*tail)->next) {
        if (strcmp((*tail)->name, name) != 0) continue;
        for (size_t i = 0; i < p->n_seen; i++)
            if (p->seen[i].agent == *tail) {
                fail(p,
                     "[agent.%s]: section given twice (first on line %u); put all of the "
                     "agent's keys in one section",
                     name, p->seen[i].line);
                return;
            }
        fail(p, "[agent.%s]: section given twice", name);
        return;
    }
    struct seen_agent *grown = realloc(p->seen, (p->n_seen + 1) * sizeof *grown);
    if (grown) p->seen = grown;
    struct agent_config *a = calloc(1, sizeof *a);
    if (a) a->name = strdup(name);
    if (a) a->hu_min_importance = -1;
    if (a) a->rerun_safe = -1;
    if (!grown || !a || !a->name) {
        if (a) free(a->name);
        free(a);
        fail_nomem(p);
        return;
    }
    *tail = a;
    p->seen[p->n_seen++] = (struct seen_agent){a, p->line};
    p->kind = SEC_AGENT;
    p->agent = a;
}

static void begin_section(struct parse *p, const char *name, size_t len) {
    p->kind = SEC_NONE;
    p->agent = NULL;
    p->agent_duration_line = 0;
    p->agent_hu_line = 0;
    p->agent_workers_line = p->agent_queue_line = 0;
    memset(p->agent_runner_line, 0, sizeof p->agent_runner_line);
    if (len >= INI_SECTION_MAX) {
        fail(p, "[%.*s]: section name longer than %d characters", (int)len, name,
             INI_SECTION_MAX - 1);
        return;
    }
    memcpy(p->section, name, len);
    p->section[len] = '\0';
    for (size_t i = 0; i < N_SECTIONS; i++) {
        if (strcmp(p->section, sections[i]) != 0) continue;
        if (p->section_line[i]) {
            fail(p,
                 "[%s]: section given twice (first on line %u); put all of its keys in one "
                 "section",
                 p->section, p->section_line[i]);
            return;
        }
        p->section_line[i] = p->line;
        p->kind = SEC_DAEMON;
        return;
    }
    if (strncmp(p->section, "agent.", 6) == 0) {
        begin_agent(p, p->section + 6);
        return;
    }
    char list[128];
    section_list(list, sizeof list);
    fail(p, "[%s]: unknown section; expected %s", p->section, list);
}

/* Sees every line before inih does: the checks inih cannot make. */
static void scan_line(struct parse *p, const char *line) {
    const char *s = line;
    if (p->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3; /* as inih does */
    const char *t = s;
    while (isspace((unsigned char)*t)) t++;
    if (!*t || *t == ';' || *t == '#') return;
    if (t != s) {
        fail(p, "indented line: start keys and [sections] in the first column (an indented "
                "line would be joined to the previous key's value)");
        return;
    }
    if (*s != '[') return;
    /* Find the ']' the way inih does; without one, inih reports the line. */
    const char *e = s + 1;
    bool was_space = false;
    while (*e && *e != ']' && !(was_space && *e == ';')) {
        was_space = isspace((unsigned char)*e);
        e++;
    }
    if (*e != ']') return;
    const char *rest = e + 1;
    while (isspace((unsigned char)*rest)) rest++;
    if (*rest && *rest != ';' && *rest != '#') {
        fail(p, "[%.*s]: unexpected text after ']'", (int)(e - s - 1), s + 1);
        return;
    }
    begin_section(p, s + 1, (size_t)(e - s - 1));
}

static char *read_line(char *str, int num, void *stream) {
    struct parse *p = stream;
    if (p->err_line) return NULL; /* the first problem is the one reported */
    /* At most num - 1 bytes are read, whatever the file holds: a line with
     * no end (a2ad -t -c /dev/zero) is refused rather than grown in memory.
     * inih would cut a long line and parse its tail as another line. */
    errno = 0;
    size_t n = 0;
    int ch = EOF;
    while (n < (size_t)num - 1 && (ch = getc(p->file)) != EOF) {
        str[n++] = (char)ch;
        if (ch == '\n') break;
    }
    if (n == 0) {
        if (ferror(p->file)) p->io_errno = errno ? errno : EIO;
        return NULL;
    }
    str[n] = '\0';
    p->line++;
    if (str[n - 1] != '\n' && n == (size_t)num - 1 && getc(p->file) != EOF) {
        fail(p, "line too long (a line longer than %d characters)", num - 2);
        return NULL;
    }
    if (memchr(str, '\0', n)) {
        fail(p, "NUL byte in line: is this a text file?");
        return NULL;
    }
    scan_line(p, str);
    return p->err_line ? NULL : str;
}

static int daemon_key(struct parse *p, const char *name, const char *value) {
    const struct key_def *k = NULL;
    for (size_t i = 0; i < N_KEYS && !k; i++)
        if (strcmp(keys[i].section, p->section) == 0 && strcmp(keys[i].name, name) == 0)
            k = &keys[i];
    if (!k) {
        char list[256];
        size_t used = 0;
        list[0] = '\0';
        for (size_t i = 0; i < N_KEYS && used < sizeof list; i++) {
            if (strcmp(keys[i].section, p->section) != 0) continue;
            int w = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "",
                             keys[i].name);
            if (w < 0) break;
            used += (size_t)w;
        }
        return fail(p, "[%s] %s: unknown key; [%s] takes %s", p->section, name, p->section,
                    list);
    }
    size_t idx = (size_t)(k - keys);
    if (p->key_line[idx])
        return fail(p, "[%s] %s: given twice in this section (first on line %u)", p->section,
                    name, p->key_line[idx]);
    p->key_line[idx] = p->line;
    if (strstr(value, " #") || strstr(value, "\t#"))
        return fail(p,
                    "[%s] %s = %s: '#' starts a comment only at the start of a line; after a "
                    "value write \" ; comment\"",
                    p->section, name, value);
    char why[256];
    switch (set_value(p->cfg, k, value, why, sizeof why)) {
    case SET_OK: return 1;
    case SET_NOMEM: return fail_nomem(p);
    case SET_BAD: break;
    }
    return fail(p, "[%s] %s = %s: %s", p->section, name, value, why);
}

/* The keys of how an agent's jobs run (runner.h): 1 = taken, 0 = failed
 * (message set), -1 = not one of them (an option for the plugin). */
static int agent_runner_key(struct parse *p, const char *name, const char *value) {
    static const char *const names[] = {"isolation", "exec", "description", "version",
                                        "rerun_safe", "memory_max", "cpu_max_s",
                                        "open_files_max", "cancel_grace_ms"};
    size_t i = 0;
    while (i < sizeof names / sizeof names[0] && strcmp(names[i], name) != 0) i++;
    if (i == sizeof names / sizeof names[0]) return -1;
    struct agent_config *a = p->agent;
    if (p->agent_runner_line[i])
        return fail(p, "[agent.%s] %s: given twice in this section (first on line %u)", a->name,
                    name, p->agent_runner_line[i]);
    p->agent_runner_line[i] = p->line;
    unsigned long long v = 0;
    char **str = i == 0 ? &a->isolation : i == 1 ? &a->exec : i == 2 ? &a->description
                 : i == 3 ? &a->version : NULL;
    switch (i) {
    case 0:
        if (find_word(isolation_words, value) < 0)
            return fail(p, "[agent.%s] %s = %s: must be thread or process", a->name, name, value);
        break;
    case 1:
        if (value[0] != '/')
            return fail(p, "[agent.%s] %s = %s: must be an absolute path to a program (then "
                        "arguments, separated by blanks)", a->name, name, value);
        break;
    case 4:
        if (find_word(yes_no_words, value) < 0)
            return fail(p, "[agent.%s] %s = %s: must be yes or no", a->name, name, value);
        a->rerun_safe = find_word(yes_no_words, value) == 0;
        break;
    case 5:
        if (!parse_size(value, MIB, 1024 * GIB, &v))
            return fail(p, "[agent.%s] %s = %s: must be a size from 1M to 1024G (k/M/G "
                        "suffixes), or leave it out for no limit", a->name, name, value);
        a->memory_max = (size_t)v;
        break;
    case 6: case 7: case 8:
        if (!parse_uint(value, 1, i == 8 ? 600000 : i == 7 ? 1048576 : MAX_JOB_S, &v))
            return fail(p, "[agent.%s] %s = %s: must be a positive integer (at most %llu)",
                        a->name, name, value,
                        i == 8 ? 600000ull : i == 7 ? 1048576ull : MAX_JOB_S);
        if (i == 6) a->cpu_max_s = (unsigned)v;
        if (i == 7) a->open_files_max = (unsigned)v;
        if (i == 8) a->cancel_grace_ms = (unsigned)v;
        break;
    default: break;
    }
    if (str) {
        free(*str);
        if (!(*str = strdup(value))) return fail_nomem(p);
    }
    return 1;
}

static int agent_key(struct parse *p, const char *name, const char *value) {
    struct agent_config *a = p->agent;
    if (strcmp(name, "max_duration_s") == 0) {
        if (p->agent_duration_line)
            return fail(p, "[agent.%s] %s: given twice in this section (first on line %u)",
                        a->name, name, p->agent_duration_line);
        p->agent_duration_line = p->line;
        unsigned long long v;
        if (!parse_uint(value, 0, MAX_JOB_S, &v))
            return fail(p,
                        "[agent.%s] %s = %s: must be an integer from 0 to %llu (0 = the "
                        "agent's own limit, else [workers] max_duration_s)",
                        a->name, name, value, MAX_JOB_S);
        a->max_duration_s = (uint32_t)v;
        return 1;
    }
    if (strcmp(name, "hu_min_importance") == 0) {
        if (p->agent_hu_line)
            return fail(p, "[agent.%s] %s: given twice in this section (first on line %u)",
                        a->name, name, p->agent_hu_line);
        p->agent_hu_line = p->line;
        int w = find_word(importance_words, value);
        if (w < 0)
            return fail(p, "[agent.%s] %s = %s: must be one of error, notice, info, debug",
                        a->name, name, value);
        a->hu_min_importance = w; /* the words are in a2ad_importance order */
        return 1;
    }
    if (strcmp(name, "workers") == 0 || strcmp(name, "queue_length") == 0) {
        bool w = name[0] == 'w';
        unsigned *line = w ? &p->agent_workers_line : &p->agent_queue_line;
        if (*line)
            return fail(p, "[agent.%s] %s: given twice in this section (first on line %u)",
                        a->name, name, *line);
        *line = p->line;
        unsigned long long v;
        if (!parse_uint(value, 0, w ? 1024 : 10000000, &v))
            return fail(p,
                        "[agent.%s] %s = %s: must be an integer from 0 to %u (0 = the default: %s)",
                        a->name, name, value, w ? 1024u : 10000000u,
                        w ? "all worker threads, but one when several agents are loaded"
                          : "only [workers] queue_length bounds it");
        *(w ? &a->workers : &a->queue_length) = (unsigned)v;
        return 1;
    }
    int r = agent_runner_key(p, name, value);
    if (r >= 0) return r;
    if (!valid_name(name, true))
        return fail(p, "[agent.%s] %s: bad option name: use letters, digits, '_', '-' and '.'",
                    a->name, name);
    for (size_t i = 0; i < a->n_opts; i++)
        if (strcmp(a->opts[i].key, name) == 0)
            return fail(p, "[agent.%s] %s: given twice in this section (first on line %u)",
                        a->name, name, p->opt_lines[i]);

    if (a->n_opts == p->opt_lines_cap) {
        size_t cap = p->opt_lines_cap ? 2 * p->opt_lines_cap : 8;
        unsigned *lines = realloc(p->opt_lines, cap * sizeof *lines);
        if (!lines) return fail_nomem(p);
        p->opt_lines = lines;
        p->opt_lines_cap = cap;
    }
    struct a2ad_option *opts = realloc(a->opts, (a->n_opts + 1) * sizeof *opts);
    if (!opts) return fail_nomem(p);
    a->opts = opts;
    char *key = strdup(name), *val = strdup(value);
    if (!key || !val) {
        free(key);
        free(val);
        return fail_nomem(p);
    }
    p->opt_lines[a->n_opts] = p->line;
    a->opts[a->n_opts++] = (struct a2ad_option){key, val};
    return 1;
}

static int on_key(void *user, const char *section, const char *name, const char *value) {
    struct parse *p = user;
    if (p->err_line) return 0;
    if (!value) value = ""; /* only with INI_ALLOW_NO_VALUE builds */
    if (p->kind == SEC_NONE) {
        char list[128];
        section_list(list, sizeof list);
        return fail(p, "%s = %s: key outside any section; put it under %s", name, value, list);
    }
    /* Cannot happen while scan_line mirrors inih; if a future libinih reads
     * headers differently, refuse rather than file the key under the wrong section. */
    if (strcmp(section, p->section) != 0)
        return fail(p, "[%s] %s: libinih placed this key in [%s]; check the section header",
                    p->section, name, section);
    if (!*name) return fail(p, "[%s] = %s: key name missing before '='", p->section, value);
    return p->kind == SEC_AGENT ? agent_key(p, name, value) : daemon_key(p, name, value);
}

/* Rules between keys, checked once the whole file is read. */
static a2ad_status check_fields(const struct config *c, const char *path, char *err,
                                 size_t errlen) {
    if (c->webhook_backoff_initial_ms > c->webhook_backoff_max_ms) {
        snprintf(err, errlen,
                 "%s: [webhooks] backoff_initial_ms = %u is above backoff_max_ms = %u; the "
                 "first retry delay cannot exceed the longest one",
                 path, c->webhook_backoff_initial_ms, c->webhook_backoff_max_ms);
        return A2AD_ERR_CONFIG;
    }
    if (c->webhook_connect_timeout_ms > c->webhook_timeout_ms) {
        snprintf(err, errlen,
                 "%s: [webhooks] connect_timeout_ms = %u is above timeout_ms = %u, which "
                 "already bounds the whole request, connecting included",
                 path, c->webhook_connect_timeout_ms, c->webhook_timeout_ms);
        return A2AD_ERR_CONFIG;
    }
    if (!*c->tls_cert_file != !*c->tls_key_file) {
        snprintf(err, errlen,
                 "%s: [server] tls_cert_file and tls_key_file go together: set both for HTTPS, "
                 "or neither for plain HTTP",
                 path);
        return A2AD_ERR_CONFIG;
    }
    /* libmicrohttpd splits the connection limit among its threads. */
    if (c->http_threads > c->max_connections) {
        snprintf(err, errlen,
                 "%s: [server] http_threads = %u is above max_connections = %u; every HTTP "
                 "thread needs at least one connection",
                 path, c->http_threads, c->max_connections);
        return A2AD_ERR_CONFIG;
    }
    return A2AD_OK;
}

/* ---- interface ------------------------------------------------------------- */

void config_defaults(struct config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_KEYS; i++) {
        char why[256];
        /* Only allocation can fail here (defaults are in range by
         * construction, and a test loads them); strings then stay NULL. */
        (void)set_value(cfg, &keys[i], keys[i].def, why, sizeof why);
    }
}

a2ad_status config_load(struct config *cfg, const char *path, char *err, size_t errlen) {
    if (!err || !errlen) {
        static char sink[1];
        err = sink;
        errlen = sizeof sink;
    }
    err[0] = '\0';
    if (!cfg || !path) {
        snprintf(err, errlen, "config: no configuration or file given");
        return A2AD_ERR_INVALID;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return A2AD_ERR_IO;
    }
    struct parse *p = calloc(1, sizeof *p);
    if (!p) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return A2AD_ERR_NOMEM;
    }
    p->cfg = cfg;
    p->file = f;
    int rc = ini_parse_stream(read_line, p, on_key, p);
    fclose(f);

    a2ad_status st = A2AD_OK;
    if (p->io_errno) {
        snprintf(err, errlen, "%s: %s", path, strerror(p->io_errno));
        st = A2AD_ERR_IO;
    } else if (p->nomem || rc == -2) {
        snprintf(err, errlen, "%s:%u: out of memory", path, p->err_line ? p->err_line : 0);
        st = A2AD_ERR_NOMEM;
    } else if (rc > 0 && (!p->err_line || (unsigned)rc < p->err_line)) {
        snprintf(err, errlen,
                 "%s:%d: syntax error: expected [section], key = value, or a comment "
                 "starting with ';' or '#'",
                 path, rc);
        st = A2AD_ERR_CONFIG;
    } else if (p->err_line) {
        snprintf(err, errlen, "%s:%u: %s", path, p->err_line, p->msg);
        st = A2AD_ERR_CONFIG;
    } else if (rc != 0) {
        snprintf(err, errlen, "%s: libinih could not parse the file (%d)", path, rc);
        st = A2AD_ERR_CONFIG;
    }
    free(p->opt_lines);
    free(p->seen);
    free(p);
    return st == A2AD_OK ? check_fields(cfg, path, err, errlen) : st;
}

const struct agent_config *config_agent(const struct config *cfg, const char *name) {
    if (!cfg || !name) return NULL;
    for (const struct agent_config *a = cfg->agents; a; a = a->next)
        if (strcmp(a->name, name) == 0) return a;
    return NULL;
}

void config_agents_free(struct agent_config *a) {
    while (a) {
        struct agent_config *next = a->next;
        for (size_t i = 0; i < a->n_opts; i++) {
            free((char *)a->opts[i].key);
            free((char *)a->opts[i].value);
        }
        free(a->opts);
        free(a->isolation);
        free(a->exec);
        free(a->description);
        free(a->version);
        free(a->name);
        free(a);
        a = next;
    }
}

void config_free(struct config *cfg) {
    if (!cfg) return;
    for (size_t i = 0; i < N_KEYS; i++)
        if (keys[i].type == KT_STRING) free(*(char **)field(cfg, &keys[i]));
    config_agents_free(cfg->agents);
    /* Zeroed, so a second config_free finds nothing to free. */
    memset(cfg, 0, sizeof *cfg);
}

/* A connection string without its password: "password=..." (key=value or
 * a URI's query) and a URI's "user:password@" show "***" instead. */
const char *config_dsn_masked(const char *dsn, char *out, size_t n) {
    size_t o = 0;
    bool uri = strncmp(dsn, "postgresql://", 13) == 0 || strncmp(dsn, "postgres://", 11) == 0;
    const char *at = uri ? strchr(dsn, '@') : NULL;
    const char *slash = uri ? strchr(strstr(dsn, "://") + 3, '/') : NULL;
    if (at && slash && slash < at) at = NULL;
    const char *colon = NULL;
    if (at)
        for (const char *c = strstr(dsn, "://") + 3; c < at; c++)
            if (*c == ':') {
                colon = c;
                break;
            }
    for (const char *s = dsn; *s && o + 4 < n;) {
        if (colon && s == colon + 1) {
            o += (size_t)snprintf(out + o, n - o, "***");
            s = at;
            continue;
        }
        if (strncasecmp(s, "password", 8) == 0 && (s == dsn || !isalnum((unsigned char)s[-1]))) {
            const char *e = s + 8;
            while (*e == ' ' || *e == '\t') e++;
            if (*e == '=') {
                e++;
                while (*e == ' ' || *e == '\t') e++;
                if (*e == '\'') {
                    for (e++; *e && *e != '\''; e++)
                        if (*e == '\\' && e[1]) e++;
                    if (*e) e++;
                } else {
                    while (*e && *e != ' ' && *e != '\t' && *e != '&') e++;
                }
                o += (size_t)snprintf(out + o, n - o, "password=***");
                s = e;
                continue;
            }
        }
        out[o++] = *s++;
    }
    out[o < n ? o : n - 1] = '\0';
    return out;
}

void config_dump(const struct config *cfg, void *file) {
    FILE *out = file;
    fprintf(out, "# a2ad configuration: the values in effect\n");
    const char *section = NULL;
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key_def *k = &keys[i];
        if (!section || strcmp(section, k->section) != 0) {
            fprintf(out, "\n[%s]\n", k->section);
            section = k->section;
        }
        char buf[64];
        const char *v = format_value(cfg, k, buf, sizeof buf);
        /* A credential stays out of terminals and logs: say it is set. */
        char dsn[512];
        if (k->offset == offsetof(struct config, pg_dsn) && *v)
            v = config_dsn_masked(v, dsn, sizeof dsn);
        if (k->secret && *v)
            fprintf(out, "# %s = (set, not shown)\n", k->name);
        else /* "key =" rather than "key = " for an empty value: no trailing blank. */
            fprintf(out, "%s =%s%s\n", k->name, *v ? " " : "", v);
    }
    for (const struct agent_config *a = cfg->agents; a; a = a->next) {
        fprintf(out, "\n[agent.%s]\n", a->name);
        if (a->max_duration_s) fprintf(out, "max_duration_s = %u\n", (unsigned)a->max_duration_s);
        if (a->hu_min_importance >= 0)
            fprintf(out, "hu_min_importance = %s\n", importance_words[a->hu_min_importance]);
        if (a->workers) fprintf(out, "workers = %u\n", a->workers);
        if (a->queue_length) fprintf(out, "queue_length = %u\n", a->queue_length);
        if (a->isolation) fprintf(out, "isolation = %s\n", a->isolation);
        if (a->exec) fprintf(out, "exec = %s\n", a->exec);
        if (a->description) fprintf(out, "description = %s\n", a->description);
        if (a->version) fprintf(out, "version = %s\n", a->version);
        if (a->rerun_safe >= 0) fprintf(out, "rerun_safe = %s\n", a->rerun_safe ? "yes" : "no");
        if (a->memory_max) fprintf(out, "memory_max = %zu\n", a->memory_max);
        if (a->cpu_max_s) fprintf(out, "cpu_max_s = %u\n", a->cpu_max_s);
        if (a->open_files_max) fprintf(out, "open_files_max = %u\n", a->open_files_max);
        if (a->cancel_grace_ms) fprintf(out, "cancel_grace_ms = %u\n", a->cancel_grace_ms);
        for (size_t i = 0; i < a->n_opts; i++)
            fprintf(out, "%s =%s%s\n", a->opts[i].key, *a->opts[i].value ? " " : "",
                    a->opts[i].value);
    }
}
