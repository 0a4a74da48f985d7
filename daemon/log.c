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

void log_vwrite(a2ad_log_level level, const char *origin, const char *fmt, va_list ap) {
    if ((int)level > atomic_load(&current_level)) return;
    char line[2048];
    size_t n = 0;
    /* journald stamps lines itself and understands "<N>" priorities. */
    if (getenv("JOURNAL_STREAM")) {
        n = (size_t)snprintf(line, sizeof line, "<%d>", (int)level);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %s ", ts.tv_nsec / 1000000L,
                              level_word(level));
    }
    if (origin && n < sizeof line) n += (size_t)snprintf(line + n, sizeof line - n, "%s: ", origin);
    if (n < sizeof line) n += (size_t)vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (n >= sizeof line - 1) n = sizeof line - 2; /* truncated: keep the newline */
    line[n++] = '\n';
    /* One write(2) keeps lines from different threads whole. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void log_write(a2ad_log_level level, const char *origin, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, origin, fmt, ap);
    va_end(ap);
}
