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
 *
 * Per destination (host:port) at most max_in_flight_per_host are on the
 * wire, and after breaker_failures failed attempts in a row the host's
 * deliveries wait breaker_cooldown_ms (its circuit breaker), without using a
 * transfer slot: a dead or black-hole receiver delays only its own webhooks.
 * Every connection goes through the SSRF guard (guard.h) on the address it
 * is about to connect to; a refused one is given up at once. Deliveries are
 * signed per attempt when sign.h has secrets. What clients can read about a
 * given-up delivery (the outbox's `why`) never carries the receiver's answer
 * ("delivery failed"); the log line does.
 *
 * Every delivery has an event id, sent as X-A2A-Event-Id, the same on every
 * attempt (and, through the durable store's outbox, across restarts), so a
 * receiver can drop duplicates. An outbox (webhooks_set_outbox) sees every
 * delivery accepted, may hold it back until it is on disk, and hears when it
 * was delivered or given up.
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
    unsigned max_age_s;          /* > 0: retry until the event is this old
                                    (max_attempts is then not used); 0: off */
    unsigned max_in_flight_per_host; /* concurrent requests to one host:port; 0 = no limit */
    unsigned breaker_failures;   /* failed attempts in a row that open a host's breaker; 0 = off */
    unsigned breaker_cooldown_ms; /* how long an open breaker holds the host's deliveries */
    size_t max_pending_bytes;    /* queued bytes in memory (bodies, URLs, headers); 0 = no limit */
    size_t max_outbox_bytes;     /* bytes accepted and undelivered, memory and outbox; 0 = no limit */
    const char *proxy;           /* NULL/"" = direct (proxy environment variables ignored) */
    const char *ca_file, *ca_path; /* NULL/"" = libcurl's defaults; peers are always verified */
};

/* The header that carries a delivery's event id (also sent as webhook-id
 * with Standard Webhooks signatures, see sign.h). */
#define WEBHOOKS_EVENT_ID_HEADER "X-A2A-Event-Id"
#define WEBHOOKS_EVENT_ID_MAX 128 /* bytes, NUL excluded */

/* One POST to queue (webhooks_post). Everything borrowed but body. */
struct webhook_post {
    const char *order_key;       /* required; deliveries with one key keep their order */
    const char *url;             /* required */
    const char *const *headers;  /* NULL-terminated "Name: value" strings, or NULL */
    char *body;                  /* TAKEN (malloc'd), even on error */
    size_t len;
    bool essential;              /* queued even when max_pending are queued */
    const char *event_id;        /* NULL = a new UUID; printable ASCII, at most
                                    WEBHOOKS_EVENT_ID_MAX bytes */
    const char *task_id;         /* the task it tells about, or NULL (for the outbox) */
    uint64_t created_ms;         /* wall-clock ms of the event; 0 = now (for max_age_s) */
    bool restored;               /* read back from the outbox: not handed to it again */
    bool unparked;               /* a parked delivery loaded back from the outbox (see
                                    webhooks_unpark_room): taken whatever the room, and
                                    counted off its key's parked deliveries */
};

/* The durable store's side of deliveries. All callbacks must not block on
 * I/O nor call back into this module. */
struct webhooks_outbox {
    /* A delivery was accepted (not a restored one), on the caller's thread,
     * inside webhooks_post. Returns a gate, or NULL when there is nothing to
     * wait for: the delivery is not sent while sendable(gate) is false. */
    void *(*add)(const struct webhook_post *p, const char *event_id);
    bool (*sendable)(void *gate);
    /* The delivery got a 2xx (delivered) or was given up (why says why).
     * Delivery thread. The gate is released (may be NULL). */
    void (*done)(void *gate, const char *event_id, const char *task_id, bool delivered,
                 const char *why);
    /* The delivery was dropped at stop, undelivered. The gate is released. */
    void (*dropped)(void *gate);
    /* Optional (NULL: deliveries beyond max_pending are refused, as without
     * an outbox). Keep the delivery in the outbox only, not in memory: called
     * inside webhooks_post, on the caller's thread, for a delivery that does
     * not fit (max_pending reached) or whose key already has parked ones
     * (which it must not overtake, even when essential). The outbox hands
     * parked deliveries back later, oldest first, through webhooks_post with
     * `unparked` set. Returns false when it cannot keep it (then the
     * delivery is refused, or queued in memory if essential). */
    bool (*park)(const struct webhook_post *p, const char *event_id);
    /* Optional. Room opened for parked deliveries (webhooks_unpark_room
     * became non-zero). Delivery thread, no lock held; must not block. */
    void (*room)(void);
};

/* Install (or remove, NULL) the outbox. Thread: main, before webhooks_start. */
void webhooks_set_outbox(const struct webhooks_outbox *ob);

/* Tell the delivery thread that gates may have opened (the outbox
 * committed). Thread: any; never blocks on I/O. */
void webhooks_wake(void);

/* Start the delivery thread. curl_global_init must have run (main does it
 * before any thread). Thread: main. */
a2ad_status webhooks_start(const struct webhooks_options *opts);

/* Queue one POST. order_key groups deliveries that must keep their order
 * (copied); url is copied; headers is a NULL-terminated array of
 * "Name: value" strings (copied; may be NULL); body is TAKEN (malloc'd,
 * freed by the module) and len its length. When max_pending deliveries are
 * already queued the call returns A2AD_ERR_FULL and frees body, unless
 * `essential` is set (terminal events), which is always queued so a task's
 * outcome is never dropped for lack of room. With an outbox that parks
 * (outbox->park), such a delivery is parked instead and A2AD_OK returned;
 * so is any delivery whose key has parked ones. Returns A2AD_ERR_STATE after
 * webhooks_stop began. Thread: any; never blocks on I/O. */
a2ad_status webhooks_enqueue(const char *order_key, const char *url,
                             const char *const *headers, char *body, size_t len,
                             bool essential);

/* The same with every field (event id, task, age). The outbox's add runs
 * inside, on the caller's thread. Same returns as webhooks_enqueue, and
 * A2AD_ERR_INVALID for a bad event id. */
a2ad_status webhooks_post(const struct webhook_post *p);

/* Stop: deliver what is queued for at most flush_ms (retries included), then
 * drop the rest with a log line counting it, and join the thread.
 * Thread: main. */
void webhooks_stop(unsigned flush_ms);

/* Recovery: n deliveries of order_key are in the outbox, not in memory, and
 * come back through webhooks_post with `unparked` set; until they have, the
 * key's new deliveries are parked behind them. Thread: any, while running. */
void webhooks_park_existing(const char *order_key, size_t n);

/* How many parked deliveries the outbox should hand back now: 0 unless some
 * are parked and the queue is below half of max_pending, then the room up to
 * that mark. Thread: any; never blocks. */
size_t webhooks_unpark_room(void);

struct webhooks_stats {
    uint64_t delivered; /* got a 2xx */
    uint64_t retried;   /* attempts that failed and were scheduled again */
    uint64_t given_up;  /* dropped after max_attempts or a non-retryable 4xx */
    uint64_t rejected;  /* refused at enqueue (queue full) */
    uint64_t pending;   /* queued or in flight now */
    uint64_t parked;    /* kept in the outbox only, waiting for room */
    uint64_t pending_bytes; /* bytes of the pending deliveries */
    uint64_t parked_bytes;  /* bytes of the parked ones */
    uint64_t refused;   /* given up because the SSRF guard refused the address */
    uint64_t breaker_opened; /* times a host's circuit breaker opened */
};

/* Whether new work that will POST webhooks should be taken: false while the
 * undelivered bytes (memory and outbox) are at max_outbox_bytes, or, without
 * an outbox, the queued bytes above half of max_pending_bytes (the other half
 * is for the events of jobs already running). Thread: any. */
bool webhooks_accepting(void);

/* The outbox holds bytes of parked deliveries from before a restart
 * (counted toward max_outbox_bytes until they are delivered). */
void webhooks_park_bytes(uint64_t bytes);

/* The bytes one delivery counts for (body, URL, headers, overhead). */
size_t webhooks_post_bytes(const struct webhook_post *p);

/* A consistent snapshot of the counters. Thread: any. */
void webhooks_get_stats(struct webhooks_stats *out);

/* ---- operators (the admin API) ----
 * What is queued in memory, looked at and acted on by the delivery thread
 * itself (the caller waits one turn of its loop; nothing is added to the
 * sending path). Deliveries parked in the outbox only are not seen until
 * they come back into memory. */

enum webhooks_action {
    WEBHOOKS_LIST,   /* only look */
    WEBHOOKS_PURGE,  /* never send them again; the outbox hears they were given up */
    WEBHOOKS_REPLAY  /* attempts, age and backoff start afresh; sent as soon as
                        their turn comes (in order per task and webhook) */
};

/* Which deliveries: every condition set must hold. */
struct webhooks_select {
    const char *task_id; /* the task they tell about, or NULL */
    const char *target;  /* their URL, as given or as shown in target below, or NULL */
    size_t max;          /* describe at most this many (all are acted on) */
};

struct webhooks_pending {
    char event_id[WEBHOOKS_EVENT_ID_MAX + 1];
    char task_id[64];
    char *target;          /* the URL without password, query and fragment */
    char *last_error;      /* why the last attempt failed, or NULL */
    const char *state;     /* "queued", "sending", "waiting to retry", "waiting for
                              the store", "behind an earlier event" (static) */
    unsigned attempts;
    uint64_t created_ms;   /* wall clock ms */
    uint64_t next_attempt_ms; /* wall clock ms; 0 = not scheduled (in flight, behind) */
};

/* Act on the selected deliveries; *out (free with webhooks_pending_free)
 * describes up to sel->max of them as they were found, *matched counts all.
 * A2AD_ERR_STATE when the thread is not running. Thread: any but the
 * delivery thread; waits for it, never on I/O. */
a2ad_status webhooks_act(enum webhooks_action action, const struct webhooks_select *sel,
                         struct webhooks_pending **out, size_t *n_out, size_t *matched);
void webhooks_pending_free(struct webhooks_pending *p, size_t n);

#endif
