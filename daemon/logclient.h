/* logclient - log lines that clients cause, rate-limited per kind.
 *
 * A client can make the daemon log (a refused connection, a bad request,
 * a cut-off slow request); 2,000 bad requests must not write 4,000 lines.
 * Each kind may write [log] client_lines_per_s lines a second; further
 * lines of that second are counted and reported in one line, "suppressed K
 * similar lines (KIND)", when the kind logs again or at the next flush.
 */
#ifndef A2AD_LOGCLIENT_H
#define A2AD_LOGCLIENT_H

#include "a2ad/agent.h"

/* Lines per second and kind. Thread: main, before the HTTP server starts. */
void log_client_init(unsigned lines_per_s);

/* Like log_write, counted under kind (a string literal or a format string:
 * the pointer identifies the kind, its text names it). Thread: any. */
void log_client(const char *kind, a2ad_log_level level, const char *origin, const char *fmt, ...)
    A2AD_PRINTF(4, 5);
void log_client_v(const char *kind, a2ad_log_level level, const char *origin, const char *fmt,
                  va_list ap) A2AD_PRINTF(4, 0);

/* Write the pending "suppressed" lines of seconds that are over. Thread: any. */
void log_client_flush(void);

#endif
