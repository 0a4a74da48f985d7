/* admission - per-client limits on the HTTP listener that libmicrohttpd does
 * not give: a token bucket per client address ([server] rate_limit_per_s,
 * rate_burst) and a total time limit for receiving a request's headers and
 * body ([server] request_timeout_s).
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client that
 * trickles one byte a second keeps its connection for ever (slow loris).
 * admission therefore keeps every open connection with a deadline for its
 * current request (request_timeout_s after the connection opened; after a
 * request on a keep-alive connection, the idle timeout plus that) and a
 * thread that shuts down the socket of one still receiving past it;
 * libmicrohttpd then sees the end of the stream and closes the connection
 * itself. A connection whose request is fully received (answered, waiting
 * for its task, streaming) is left alone.
 *
 * Rate buckets live in a bounded table (2048 sets of 4); a client pushed out
 * of it by others comes back with a full bucket, which only errs on the
 * side of serving.
 */
#ifndef A2AD_ADMISSION_H
#define A2AD_ADMISSION_H

#include <stdbool.h>
#include <sys/socket.h>

#include "a2ad/agent.h"

struct config;

/* Read the limits and start the timing thread (when request_timeout_s > 0).
 * Thread: main, before the HTTP server starts. */
a2ad_status admission_start(const struct config *cfg);
/* Stop the thread. Thread: main, after the HTTP server stopped. */
void admission_stop(void);

/* libmicrohttpd's MHD_OPTION_NOTIFY_CONNECTION callback: opaque is the
 * connection, fd its socket; *ctx holds guard's record of it. */
void admission_conn_started(int fd, const struct sockaddr *client, void **ctx);
void admission_conn_closed(void *ctx);
/* The request on this connection is fully received (the timer stops), or
 * ended (the next one's timer starts now). ctx NULL: nothing. */
void admission_request_received(void *ctx);
void admission_request_ended(void *ctx);

/* One request from client: true if its bucket has a token (taken), else
 * false with the seconds until it will in *retry_after_s (>= 1). */
bool admission_admit(const struct sockaddr *client, unsigned *retry_after_s);

/* The configured limits, for messages. */
unsigned admission_rate_per_s(void);
unsigned admission_rate_burst(void);
/* Connections cut for taking longer than request_timeout_s, so far. */
unsigned long admission_cut_count(void);

#endif
