/* webhooks - POST deliveries with retries, on one libcurl-multi thread.
 *
 * Deliveries that share an order key (one task's events to one webhook) go
 * out strictly one after the other in enqueue order: the next is not sent
 * until the previous got a 2xx or was given up. Different keys go out in
 * parallel (up to max_in_flight), over reused connections. A failed attempt
 * (connect error, timeout, 408, 429, 5xx) is retried after an exponential
 * backoff with jitter, up to max_attempts; any other 4xx is given up at once.
 * No lock is held across network I/O: callers only append to an in-memory
 * queue and wake the thread.
 */
#ifndef A2AD_WEBHOOKS_H
#define A2AD_WEBHOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "a2ad/agent.h"

struct webhooks_options {
    unsigned timeout_ms;         /* whole request */
    unsigned connect_timeout_ms;
    unsigned max_attempts;       /* >= 1 */
    unsigned backoff_initial_ms; /* first retry delay; doubles each time */
    unsigned backoff_max_ms;     /* cap of one delay */
    unsigned max_in_flight;      /* concurrent requests */
    unsigned max_pending;        /* queued deliveries, all keys together */
};

/* Start the delivery thread. curl_global_init must have run (main does it
 * before any thread). Thread: main. */
a2ad_status webhooks_start(const struct webhooks_options *opts);

/* Queue one POST. order_key groups deliveries that must keep their order
 * (copied); url is copied; headers is a NULL-terminated array of
 * "Name: value" strings (copied; may be NULL); body is TAKEN (malloc'd,
 * freed by the module) and len its length. When max_pending deliveries are
 * already queued the call returns A2AD_ERR_FULL and frees body, unless
 * `essential` is set (terminal events), which is always queued so a task's
 * outcome is never dropped for lack of room. Returns A2AD_ERR_STATE after
 * webhooks_stop began. Thread: any; never blocks on I/O. */
a2ad_status webhooks_enqueue(const char *order_key, const char *url,
                             const char *const *headers, char *body, size_t len,
                             bool essential);

/* Stop: deliver what is queued for at most flush_ms (retries included), then
 * drop the rest with a log line counting it, and join the thread.
 * Thread: main. */
void webhooks_stop(unsigned flush_ms);

struct webhooks_stats {
    uint64_t delivered; /* got a 2xx */
    uint64_t retried;   /* attempts that failed and were scheduled again */
    uint64_t given_up;  /* dropped after max_attempts or a non-retryable 4xx */
    uint64_t rejected;  /* refused at enqueue (queue full) */
    uint64_t pending;   /* queued or in flight now */
};

/* A consistent snapshot of the counters. Thread: any. */
void webhooks_get_stats(struct webhooks_stats *out);

#endif
