/* log - levelled log lines on stderr. */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int current_level = A2AD_LOG_INFO;
static atomic_bool json_lines;

void log_set_json(bool on) { atomic_store(&json_lines, on); }

void log_set_level(a2ad_log_level level) { atomic_store(&current_level, (int)level); }

a2ad_log_level log_get_level(void) { return (a2ad_log_level)atomic_load(&current_level); }

static const struct {
    const char *name;
    a2ad_log_level level;
} level_names[] = {
    {"error", A2AD_LOG_ERROR},
    {"warning", A2AD_LOG_WARNING},
    {"info", A2AD_LOG_INFO},
    {"debug", A2AD_LOG_DEBUG},
};

a2ad_status log_level_parse(const char *text, a2ad_log_level *out) {
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (text && strcasecmp(text, level_names[i].name) == 0) {
            *out = level_names[i].level;
            return A2AD_OK;
        }
    }
    return A2AD_ERR_INVALID;
}

static const char *level_word(a2ad_log_level level) {
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (level_names[i].level == level) return level_names[i].name;
    return "log";
}

static size_t put(char *line, size_t size, size_t n, const char *s) {
    size_t k = strlen(s);
    if (n + k >= size) k = n < size - 1 ? size - 1 - n : 0;
    memcpy(line + n, s, k);
    return n + k;
}

/* 1 under journald, 0 not, -1 not looked yet: getenv is not free, and the
 * environment does not change under a running daemon. */
static atomic_int journal = -1;

static bool under_journal(void) {
    int j = atomic_load_explicit(&journal, memory_order_relaxed);
    if (j < 0) {
        j = getenv("JOURNAL_STREAM") != NULL;
        atomic_store_explicit(&journal, j, memory_order_relaxed);
    }
    return j;
}

/* The line's lead: "<N>" under journald (it stamps lines itself and
 * understands priorities), else the time and level in text mode; in JSON
 * mode the time goes into the object. */
static size_t line_lead(char *line, size_t size, a2ad_log_level level, bool json,
                        char *stamp, size_t stamp_size) {
    size_t n = 0;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(stamp, stamp_size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + k, stamp_size - k, ".%03ldZ", ts.tv_nsec / 1000000L);
    if (under_journal())
        n = (size_t)snprintf(line, size, "<%d>", (int)level);
    else if (!json)
        n = (size_t)snprintf(line, size, "%s %s ", stamp, level_word(level));
    return n < size ? n : size - 1;
}

/* Append s to line as JSON string contents (quotes excluded). */
static size_t put_json_text(char *line, size_t size, size_t n, const char *s) {
    for (; s && *s && n + 8 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            line[n++] = '\\';
            line[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(line + n, size - n, "\\u%04x", c);
        } else {
            line[n++] = (char)c;
        }
    }
    return n;
}

/* Terminate and write one line; one write(2) keeps lines from different
 * threads whole. */
static void line_out(char *line, size_t size, size_t n, bool json) {
    if (json) {
        if (n > size - 3) n = size - 3; /* truncated: keep the object closed */
        line[n++] = '}';
    } else if (n >= size - 1) {
        n = size - 2; /* truncated: keep the newline */
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

static size_t json_head(char *line, size_t size, size_t n, const char *stamp,
                        a2ad_log_level level, const char *origin, const char *msg) {
    n = put(line, size, n, "{\"time\":\"");
    n = put(line, size, n, stamp);
    n = put(line, size, n, "\",\"level\":\"");
    n = put(line, size, n, level_word(level));
    n = put(line, size, n, "\"");
    if (origin) {
        n = put(line, size, n, ",\"origin\":\"");
        n = put_json_text(line, size, n, origin);
        n = put(line, size, n, "\"");
    }
    n = put(line, size, n, ",\"msg\":\"");
    n = put_json_text(line, size, n, msg);
    return put(line, size, n, "\"");
}

void log_vwrite(a2ad_log_level level, const char *origin, const char *fmt, va_list ap) {
    if ((int)level > atomic_load(&current_level)) return;
    char line[2048], stamp[40];
    bool json = atomic_load(&json_lines);
    size_t n = line_lead(line, sizeof line, level, json, stamp, sizeof stamp);
    if (json) {
        char msg[1536];
        vsnprintf(msg, sizeof msg, fmt, ap);
        n = json_head(line, sizeof line, n, stamp, level, origin, msg);
        line_out(line, sizeof line, n, true);
        return;
    }
    if (origin && n < sizeof line) n += (size_t)snprintf(line + n, sizeof line - n, "%s: ", origin);
    if (n < sizeof line) n += (size_t)vsnprintf(line + n, sizeof line - n, fmt, ap);
    line_out(line, sizeof line, n, false);
}

void log_fields(a2ad_log_level level, const char *origin, const char *msg,
                const struct log_field *f, size_t nf) {
    if ((int)level > atomic_load(&current_level)) return;
    char line[2048], stamp[40];
    bool json = atomic_load(&json_lines);
    size_t n = line_lead(line, sizeof line, level, json, stamp, sizeof stamp);
    if (json) {
        n = json_head(line, sizeof line, n, stamp, level, origin, msg);
    } else {
        if (origin) {
            n = put(line, sizeof line, n, origin);
            n = put(line, sizeof line, n, ": ");
        }
        n = put(line, sizeof line, n, msg);
    }
    for (size_t i = 0; i < nf; i++) {
        if (!f[i].is_num && !f[i].text) continue;
        char num[32];
        if (f[i].is_num) snprintf(num, sizeof num, "%lld", f[i].num);
        if (json) {
            n = put(line, sizeof line, n, ",\"");
            n = put(line, sizeof line, n, f[i].key);
            n = put(line, sizeof line, n, "\":");
            if (f[i].is_num) {
                n = put(line, sizeof line, n, num);
            } else {
                n = put(line, sizeof line, n, "\"");
                n = put_json_text(line, sizeof line, n, f[i].text);
                n = put(line, sizeof line, n, "\"");
            }
        } else {
            n = put(line, sizeof line, n, " ");
            n = put(line, sizeof line, n, f[i].key);
            n = put(line, sizeof line, n, "=");
            if (f[i].is_num) {
                n = put(line, sizeof line, n, num);
            } else {
                /* Quoted like JSON, so a reason with blanks stays one field. */
                bool plain = *f[i].text && !strpbrk(f[i].text, " \"\\=\t\r\n");
                if (!plain) n = put(line, sizeof line, n, "\"");
                n = plain ? put(line, sizeof line, n, f[i].text)
                          : put_json_text(line, sizeof line, n, f[i].text);
                if (!plain) n = put(line, sizeof line, n, "\"");
            }
        }
    }
    line_out(line, sizeof line, n, json);
}

void log_write(a2ad_log_level level, const char *origin, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, origin, fmt, ap);
    va_end(ap);
}
