/* log - levelled log lines on stderr (systemd's journal picks them up). */
#ifndef A2AD_LOG_H
#define A2AD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "a2ad/agent.h"

/* Set the most verbose level written; lines above it are dropped.
 * Thread: any (the level is an atomic). */
void log_set_level(a2ad_log_level level);
a2ad_log_level log_get_level(void);

/* Parse "error" | "warning" | "info" | "debug". */
a2ad_status log_level_parse(const char *text, a2ad_log_level *out);

/* Write one line: "<level> <origin>: message". origin may be NULL.
 * Under journald (JOURNAL_STREAM set) lines carry a "<N>" priority prefix
 * instead of a timestamp. Thread: any; one write(2) per line. */
void log_vwrite(a2ad_log_level level, const char *origin, const char *fmt, va_list ap)
    A2AD_PRINTF(3, 0);
void log_write(a2ad_log_level level, const char *origin, const char *fmt, ...)
    A2AD_PRINTF(3, 4);

/* [log] format = json: every line one JSON object {"time", "level",
 * "origin", "msg", fields...} instead of text. Thread: any. */
void log_set_json(bool on);

/* One line with named fields: text mode appends " key=value" (quoted when
 * the value has blanks), JSON mode adds them as members. A field with
 * neither is_num nor text is left out. */
struct log_field {
    const char *key;
    const char *text;
    long long num;
    bool is_num;
};
void log_fields(a2ad_log_level level, const char *origin, const char *msg,
                const struct log_field *f, size_t n);

#define log_error(...) log_write(A2AD_LOG_ERROR, NULL, __VA_ARGS__)
#define log_warn(...) log_write(A2AD_LOG_WARNING, NULL, __VA_ARGS__)
#define log_info(...) log_write(A2AD_LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_write(A2AD_LOG_DEBUG, NULL, __VA_ARGS__)

#endif
