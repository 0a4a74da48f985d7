/* receiver - a real webhook receiver for tests (libmicrohttpd on 127.0.0.1).
 *
 * Records every POST it accepts, in arrival order, and can be told to answer
 * a given status to the next N POSTs (to exercise retries). All functions are
 * thread-safe.
 */
#ifndef A2AD_TEST_RECEIVER_H
#define A2AD_TEST_RECEIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct receiver;

struct received {
    char *path;     /* URL path, e.g. "/hook" */
    char *headers;  /* all request headers, "Name: value\n" each, as received */
    char *body;     /* NUL-terminated copy of the body */
    size_t len;     /* body length */
    int status;     /* the status this request was answered with */
    uint64_t at_ms; /* monotonic arrival time */
};

/* Listen on 127.0.0.1 at an ephemeral port. NULL on failure. */
struct receiver *receiver_start(void);
/* The same on a given port (a receiver that comes back); NULL on failure. */
struct receiver *receiver_start_on(unsigned port);
unsigned receiver_port(const struct receiver *r);

/* The next n POSTs get `status` (e.g. 503) and are recorded as attempts only. */
void receiver_fail_next(struct receiver *r, unsigned n, int status);
/* Delay every answer by delay_ms (a slow webhook). */
void receiver_set_delay(struct receiver *r, unsigned delay_ms);

/* Accepted (2xx) POSTs so far, and all POSTs including failed ones. */
size_t receiver_count(struct receiver *r);
size_t receiver_attempts(struct receiver *r);

/* Wait until at least n POSTs were accepted, up to timeout_ms. */
bool receiver_wait(struct receiver *r, size_t n, unsigned timeout_ms);

/* The i-th accepted POST (0-based); borrowed, valid until receiver_stop. */
const struct received *receiver_get(struct receiver *r, size_t i);

/* Value of header `name` (case-insensitive) in a recorded request, as a
 * malloc'd string, or NULL. */
char *received_header(const struct received *req, const char *name);

void receiver_stop(struct receiver *r);

#endif
