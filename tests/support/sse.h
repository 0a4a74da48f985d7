/* sse - a small Server-Sent Events client for tests, on a raw socket.
 *
 * One stream is one TCP connection to 127.0.0.1 with a POSTed JSON-RPC
 * request; no thread is used, so a test can hold hundreds of streams.
 * Chunked and plain (read-to-close) bodies are both understood. Every
 * wait is bounded by the caller's timeout.
 */
#ifndef A2AD_TEST_SSE_H
#define A2AD_TEST_SSE_H

#include <stdbool.h>
#include <stddef.h>

struct sse;

/* Connect and send the request (headers: "Name: value", NULL-terminated,
 * may be NULL). NULL if the connection fails. */
struct sse *sse_open(unsigned port, const char *path, const char *body, const char *const *headers);

/* Wait for the status line and headers; the HTTP status, or -1. */
int sse_status(struct sse *s, unsigned timeout_ms);
/* The response headers as received (after sse_status). */
const char *sse_headers(const struct sse *s);

/* The next event's data (its data: lines joined by "\n"), malloc'd:
 * returns 1. 0 = the stream ended cleanly (last chunk, or the server
 * closed after a complete event); -1 = timeout, error or a torn frame. */
int sse_next(struct sse *s, char **data, unsigned timeout_ms);

/* The id: of the last event sse_next returned ("" = it had none). */
const char *sse_last_id(const struct sse *s);

/* Comment lines (": ...") seen so far. */
unsigned sse_comments(const struct sse *s);
/* Every body byte received so far (after dechunking), NUL-terminated. */
const char *sse_body(const struct sse *s);
/* For a non-SSE answer: read the whole body (bounded); returns it. */
const char *sse_read_all(struct sse *s, unsigned timeout_ms);

/* Close the connection (abruptly when the stream is still open). */
void sse_close(struct sse *s);

#endif
