/* webhooks - POST deliveries with retries, on one libcurl-multi thread.
 *
 * Two worlds meet here. Callers (any thread) only touch `wh`: under its lock
 * they append a delivery to the inbox and poke the thread with
 * curl_multi_wakeup. Everything else - the channels, the backoff heap, the
 * transfers - belongs to the delivery thread alone (`dt`) and needs no lock.
 *
 * A channel holds the queue of one order key and exists only while that queue
 * is non-empty. At any moment a channel is in exactly one place: the ready
 * list (its head may be sent as soon as a transfer slot is free), a transfer
 * slot (its head is on the wire), or the backoff heap (its head failed and
 * waits for its retry time). Only the head of a channel is ever sent, which
 * is all the ordering there is; a channel in backoff sits in the heap and so
 * never holds up anybody else. A ready channel whose host (host:port of its
 * head) is at its per-host limit or has its breaker open moves to that
 * host's wait list instead of a slot, and comes back to the ready list when
 * the host has room again.
 */
#include "delivery/webhooks.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "delivery/guard.h"
#include "log.h"
#include "front/metrics.h"
#include "delivery/sign.h"
#include "util.h"

/* Without any event the thread still looks around this often; a cheap safety
 * net, since every state change that matters also wakes it. */
#define IDLE_POLL_MS 1000
/* What a delivery costs beyond its body, URL and headers (the structures,
 * the ids): counted so that many tiny deliveries are bounded too. */
#define WEBHOOKS_BYTES_OVERHEAD 256

/* "host:port" of a URL, lower-case: the unit of per-destination limits.
 * The URL itself when it does not parse (it will fail on its own). */
static void dest_of(const char *url, char *out, size_t n) {
    char *host = NULL, *port = NULL;
    CURLU *u = curl_url();
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        snprintf(out, n, "%s:%s", host, port);
        for (char *c = out; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    } else {
        snprintf(out, n, "%s", url);
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

/* The reason recorded for deliveries an operator purged. */
#define PURGED_WHY "purged by an operator (admin API)"

struct request;

struct delivery {
    struct delivery *next;
    struct curl_slist *headers; /* in this allocation, after text */
    char *body;
    size_t len;
    size_t bytes;        /* what it counts for in max_pending_bytes */
    /* With signing: the webhook-timestamp and webhook-signature header
     * strings (in this allocation), rewritten before every attempt. */
    char *ts_header, *sig_header;
    unsigned attempts;
    bool purged;         /* an operator dropped it (webhooks_act): never sent again */
    char *last_error;    /* why the last attempt failed, or NULL (for webhooks_act) */
    uint64_t created_ms; /* wall clock, for max_age_s */
    void *gate;          /* the outbox's, or NULL */
    const char *url;      /* points into text, after the key */
    const char *event_id; /* points into text, after the url */
    const char *task_id;  /* points into text, after the event id; NULL = none */
    const char *dest;     /* "host:port", points into text, last */
    char text[];          /* key NUL url NUL event-id NUL [task-id NUL] dest NUL */
};

struct channel {
    struct delivery *head, *tail;
    uint64_t retry_at; /* while in the backoff heap */
    struct channel *next_ready; /* ready, held, or waiting for its host */
    /* Every live channel is also on this list, so stop can find them all
     * (the map has no iteration). */
    struct channel *prev_all, *next_all;
    unsigned char where; /* scratch of requests_serve: a `where` value */
    char key[];
};

struct xfer {
    /* Created and set up on first use, then reused as it is: per POST only
     * the URL (when it differs from last_url), the body and the header list
     * change. curl_easy_reset would make curl redo all the set-up. */
    CURL *easy;
    char *last_url; /* the URL the handle holds, or NULL */
    struct channel *ch; /* NULL when the slot is free */
    struct host *host;  /* of the delivery on the wire */
    char errbuf[CURL_ERROR_SIZE];
    char refused[INET6_ADDRSTRLEN + 96]; /* the guard refused this address; "" = no */
};

/* One destination (host:port): its transfers, its circuit breaker, and the
 * channels waiting for it. A channel whose host is at max_in_flight_per_host
 * or whose breaker is open waits here, off the ready list and out of the
 * transfer slots, so a dead host holds up only its own deliveries. */
struct host {
    unsigned in_flight;
    unsigned failures;    /* failed attempts in a row */
    uint64_t open_until;  /* breaker open until then (monotonic ms); 0 = closed */
    bool probing;         /* half-open: one attempt decides */
    uint64_t last_fail;   /* monotonic ms, for forgetting idle hosts */
    struct channel *wait_head, *wait_tail;
    struct host *next_open; /* on dt.open_hosts while the breaker is open */
    char key[];
};

enum wh_state { WH_IDLE, WH_RUNNING, WH_STOPPING };

/* Shared with callers; everything under `lock`. */
static struct {
    pthread_mutex_t lock;
    enum wh_state state;
    struct delivery *inbox_head, *inbox_tail;
    uint64_t deadline; /* when stopping: give up on what is left at this time */
    struct webhooks_stats stats;
    uint64_t max_pending;
    uint64_t max_pending_bytes, max_outbox_bytes; /* 0 = no limit */
    CURLM *multi; /* read by callers only for curl_multi_wakeup */
    /* Order key -> number of its deliveries parked in the outbox (as a
     * uintptr_t; absent = none). While a key has some, its new deliveries
     * are parked too, so none overtakes them. */
    struct hmap *parked;
    /* Operators' requests (webhooks_act) for the thread, answered through
     * `answered`. */
    struct request *requests;
    pthread_cond_t answered;
} wh = {.lock = PTHREAD_MUTEX_INITIALIZER, .answered = PTHREAD_COND_INITIALIZER};

/* Set before the thread starts, read-only afterwards. */
static const struct webhooks_outbox *outbox;

/* Owned by the delivery thread while it runs; by main before and after. */
static struct {
    struct webhooks_options opts;
    pthread_t thread;
    struct hmap *channels;
    struct channel *all;
    struct channel *ready_head, *ready_tail;
    /* Channels whose head the outbox holds back (not on disk yet); looked
     * at again on every wake. Linked through next_ready. */
    struct channel *held_head, *held_tail;
    struct channel **heap; /* min-heap on retry_at */
    size_t heap_len, heap_cap;
    struct xfer *xfers;
    unsigned *free_slots; /* stack of indices into xfers */
    unsigned n_free;
    unsigned in_flight;
    size_t held; /* deliveries in channels */
    uint64_t rng;
    struct hmap *hosts;        /* "host:port" -> struct host */
    struct host *open_hosts;   /* breakers open, linked through next_open */
    uint64_t last_sweep;
} dt;

/* ---- deliveries ---- */

static void delivery_free(struct delivery *d) {
    if (!d) return;
    free(d->last_error);
    free(d->body);
    free(d);
}

static bool header_has_name(const char *h, const char *name) {
    size_t n = strlen(name);
    return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

/* A CR or LF in a header would let whoever chose it (a client's push token)
 * write extra headers or a second request. */
static bool headers_valid(const char *const *headers) {
    for (size_t i = 0; headers && headers[i]; i++)
        if (strpbrk(headers[i], "\r\n")) return false;
    return true;
}

/* The header list of a delivery lives in the delivery's own allocation, after
 * its text: one malloc per POST instead of one per header (curl_slist_append
 * copies each string into two mallocs of its own). curl only reads the list,
 * and it outlives the transfer, since the delivery is freed after it. */
struct headers_plan {
    size_t count, bytes; /* nodes, and string bytes with their NULs */
    bool has_type;
    bool sign;
};

static const char default_type[] = "Content-Type: application/json";
/* An empty Expect: stops curl from waiting for "100 Continue" on larger
 * bodies, a round trip most webhook receivers never answer. */
static const char no_expect[] = "Expect:";

/* Standard Webhooks headers; the timestamp and signature are written into
 * fixed room before every attempt. */
static const char id_name[] = "webhook-id: ";
static const char ts_name[] = "webhook-timestamp: ";
static const char sig_name[] = "webhook-signature: ";
#define TS_DIGITS 20

static struct headers_plan headers_plan(const char *const *headers, const char *event_id) {
    struct headers_plan hp = {.count = 2, /* event id, Expect: */
                              .bytes = sizeof WEBHOOKS_EVENT_ID_HEADER + 2 + strlen(event_id) +
                                       sizeof no_expect,
                              .sign = sign_enabled()};
    if (hp.sign) {
        hp.count += 3;
        hp.bytes += sizeof id_name + strlen(event_id) + sizeof ts_name + TS_DIGITS +
                    sizeof sig_name + SIGN_VALUE_MAX;
    }
    for (size_t i = 0; headers && headers[i]; i++) {
        if (header_has_name(headers[i], "Content-Type")) hp.has_type = true;
        hp.count++;
        hp.bytes += strlen(headers[i]) + 1;
    }
    /* curl would otherwise label the POST as a form; our payloads are JSON. */
    if (!hp.has_type) {
        hp.count++;
        hp.bytes += sizeof default_type;
    }
    return hp;
}

/* Fills nodes[0..count) and the strings at text; returns the list. */
static struct curl_slist *headers_fill(struct delivery *d, struct curl_slist *nodes, char *text,
                                       const char *const *headers, const char *event_id,
                                       const struct headers_plan *hp) {
    size_t n = 0;
    int w = sprintf(text, "%s: %s", WEBHOOKS_EVENT_ID_HEADER, event_id);
    nodes[n++].data = text;
    text += w + 1;
    d->ts_header = d->sig_header = NULL;
    if (hp->sign) {
        w = sprintf(text, "%s%s", id_name, event_id);
        nodes[n++].data = text;
        text += w + 1;
        d->ts_header = nodes[n++].data = strcpy(text, ts_name);
        text += sizeof ts_name + TS_DIGITS;
        d->sig_header = nodes[n++].data = strcpy(text, sig_name);
        text += sizeof sig_name + SIGN_VALUE_MAX;
    }
    for (size_t i = 0; headers && headers[i]; i++) {
        size_t len = strlen(headers[i]) + 1;
        nodes[n++].data = memcpy(text, headers[i], len);
        text += len;
    }
    if (!hp->has_type) {
        nodes[n++].data = memcpy(text, default_type, sizeof default_type);
        text += sizeof default_type;
    }
    nodes[n++].data = memcpy(text, no_expect, sizeof no_expect);
    for (size_t i = 0; i < n; i++) nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
    return nodes;
}

/* ---- statistics (the delivery thread's side) ---- */

static bool unpark_wanted_locked(void);

static void stats_finish(uint64_t *counter, size_t n, size_t bytes) {
    pthread_mutex_lock(&wh.lock);
    if (counter) *counter += n;
    wh.stats.pending -= n;
    wh.stats.pending_bytes -= wh.stats.pending_bytes < bytes ? wh.stats.pending_bytes : bytes;
    bool room = unpark_wanted_locked();
    pthread_mutex_unlock(&wh.lock);
    if (room && outbox && outbox->room) outbox->room();
}

static void stats_retried(void) {
    pthread_mutex_lock(&wh.lock);
    wh.stats.retried++;
    pthread_mutex_unlock(&wh.lock);
}

/* ---- the delivery thread's containers ---- */

/* Append to a FIFO of channels linked through next_ready. */
static void channel_fifo_push(struct channel **head, struct channel **tail, struct channel *ch) {
    ch->next_ready = NULL;
    if (*tail)
        (*tail)->next_ready = ch;
    else
        *head = ch;
    *tail = ch;
}

static void ready_push(struct channel *ch) { channel_fifo_push(&dt.ready_head, &dt.ready_tail, ch); }
static void held_push(struct channel *ch) { channel_fifo_push(&dt.held_head, &dt.held_tail, ch); }

/* Gates may have opened: everything held goes back to the ready list, in
 * the order it was held; xfers_start_ready holds again what is still shut. */
static void held_release(void) {
    struct channel *ch = dt.held_head;
    dt.held_head = dt.held_tail = NULL;
    while (ch) {
        struct channel *next = ch->next_ready;
        ready_push(ch);
        ch = next;
    }
}

static struct channel *ready_pop(void) {
    struct channel *ch = dt.ready_head;
    if (ch) {
        dt.ready_head = ch->next_ready;
        if (!dt.ready_head) dt.ready_tail = NULL;
        ch->next_ready = NULL;
    }
    return ch;
}

static bool heap_push(struct channel *ch) {
    if (dt.heap_len == dt.heap_cap) {
        size_t cap = dt.heap_cap ? dt.heap_cap * 2 : 16;
        struct channel **h = realloc(dt.heap, cap * sizeof *h);
        if (!h) return false;
        dt.heap = h;
        dt.heap_cap = cap;
    }
    size_t i = dt.heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (dt.heap[parent]->retry_at <= ch->retry_at) break;
        dt.heap[i] = dt.heap[parent];
        i = parent;
    }
    dt.heap[i] = ch;
    return true;
}

static struct channel *heap_pop(void) {
    if (dt.heap_len == 0) return NULL;
    struct channel *top = dt.heap[0];
    struct channel *last = dt.heap[--dt.heap_len];
    size_t i = 0, n = dt.heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && dt.heap[c + 1]->retry_at < dt.heap[c]->retry_at) c++;
        if (last->retry_at <= dt.heap[c]->retry_at) break;
        dt.heap[i] = dt.heap[c];
        i = c;
    }
    if (n > 0) dt.heap[i] = last;
    return top;
}

static void channel_free(struct channel *ch) {
    hmap_remove(dt.channels, ch->key);
    if (ch->prev_all)
        ch->prev_all->next_all = ch->next_all;
    else
        dt.all = ch->next_all;
    if (ch->next_all) ch->next_all->prev_all = ch->prev_all;
    free(ch);
}

/* The URL without what tends to carry secrets (user and password, query,
 * fragment); curl_free it. NULL when it does not parse. */
static char *url_shown(const char *url) {
    char *shown = NULL;
    CURLU *u = curl_url();
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
        curl_url_set(u, CURLUPART_USER, NULL, 0);
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        curl_url_set(u, CURLUPART_QUERY, NULL, 0);
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
        curl_url_get(u, CURLUPART_URL, &shown, 0);
    }
    curl_url_cleanup(u);
    return shown;
}

/* The first failed attempt at a target (scheme, host and port) is logged
 * at warning, then at most one line a minute per target: a dead receiver
 * shows at once, not only at the give-up hours later. Delivery thread. */
#define TARGET_SLOTS 64
#define TARGET_QUIET_MS 60000
static struct {
    char key[160];
    uint64_t logged_ms;
    unsigned quiet; /* failures not logged since */
} targets[TARGET_SLOTS];

static void warn_target_failure(const struct delivery *d, const char *why) {
    char *shown = url_shown(d->url);
    char key[160];
    const char *slash = shown ? strstr(shown, "://") : NULL;
    size_t klen = shown ? strlen(shown) : 0;
    if (slash) klen = (size_t)(slash + 3 - shown) + strcspn(slash + 3, "/");
    snprintf(key, sizeof key, "%.*s", (int)klen, shown ? shown : "(unparsable URL)");
    uint64_t h = 1469598103934665603ull;
    for (const char *p = key; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    size_t i = (size_t)(h % TARGET_SLOTS);
    uint64_t now = util_now_ms();
    bool same = strcmp(targets[i].key, key) == 0;
    if (same && now - targets[i].logged_ms < TARGET_QUIET_MS) {
        targets[i].quiet++;
    } else {
        char since[80] = "";
        if (same && targets[i].quiet)
            snprintf(since, sizeof since, "; %u more failures since the last line",
                     targets[i].quiet);
        log_warn("webhooks: POST to %s failed (%s); will retry (event %s, attempt %u)%s; "
                 "further failures of %s are logged at most once a minute",
                 shown ? shown : "(unparsable URL)", why, d->event_id, d->attempts, since, key);
        snprintf(targets[i].key, sizeof targets[i].key, "%s", key);
        targets[i].logged_ms = now;
        targets[i].quiet = 0;
    }
    curl_free(shown);
}

/* The one log line of a delivery that will not be sent again. An operator's
 * purge is logged once by whoever asked, not per delivery. */
static void log_give_up(const struct delivery *d, const char *why) {
    if (d->purged) return;
    /* The query and a password are where URLs tend to carry secrets. */
    char *shown = url_shown(d->url);
    log_warn("webhooks: giving up on POST to %s (order key %s, event %s) after %u attempt%s: %s",
             shown ? shown : "(unparsable URL)", d->text, d->event_id, d->attempts,
             d->attempts == 1 ? "" : "s", why);
    curl_free(shown);
}

/* Tell the outbox how the delivery ended; it releases the gate. */
static void outbox_done(struct delivery *d, bool delivered, const char *why) {
    if (outbox && outbox->done) outbox->done(d->gate, d->event_id, d->task_id, delivered, why);
    d->gate = NULL;
}

static void outbox_dropped(struct delivery *d) {
    if (outbox && outbox->dropped && d->gate) outbox->dropped(d->gate);
    d->gate = NULL;
}

/* The head of ch is done with (delivered or given up): the next one in line
 * becomes sendable, or the channel goes away with its last delivery. */
static void channel_advance(struct channel *ch) {
    struct delivery *d = ch->head;
    ch->head = d->next;
    if (!ch->head) ch->tail = NULL;
    delivery_free(d);
    dt.held--;
    if (ch->head)
        ready_push(ch);
    else
        channel_free(ch);
}

static uint64_t rng_next(void) {
    /* xorshift64*: only for jitter, so quality hardly matters. */
    dt.rng ^= dt.rng >> 12;
    dt.rng ^= dt.rng << 25;
    dt.rng ^= dt.rng >> 27;
    return dt.rng * 2685821657736338717ull;
}

/* initial * 2^(failures-1), capped, then drawn from [delay/2, delay] so that
 * many keys failing together (a receiver restart) do not retry in lockstep. */
static uint64_t backoff_delay(unsigned failures) {
    uint64_t d = dt.opts.backoff_initial_ms;
    for (unsigned i = 1; i < failures && d < dt.opts.backoff_max_ms; i++) d *= 2;
    if (d > dt.opts.backoff_max_ms) d = dt.opts.backoff_max_ms;
    if (d < 2) return d;
    return d / 2 + rng_next() % (d - d / 2 + 1);
}

/* Transfer errors that no retry can fix. */
static bool curl_error_permanent(CURLcode rc) {
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
        return true;
    default:
        return false;
    }
}

static bool too_old(const struct delivery *d) {
    return dt.opts.max_age_s &&
           util_wall_ms() >= d->created_ms + (uint64_t)dt.opts.max_age_s * 1000u;
}

/* The head of ch will not be sent again. The log gets why; the task's
 * metadata (which any client reading the task sees) only `shown`, which
 * never carries what the receiver answered: a webhook that reports "HTTP
 * 404" or "connection refused" would let clients scan ports. */
static void give_up(struct channel *ch, const char *why, const char *shown) {
    struct delivery *d = ch->head;
    log_give_up(d, why);
    outbox_done(d, false, shown);
    stats_finish(&wh.stats.given_up, 1, d->bytes);
    channel_advance(ch);
}

/* ---- hosts: per-destination limits and circuit breakers ---- */

static struct host *host_get(const char *key) {
    struct host *h = hmap_get(dt.hosts, key);
    if (h) return h;
    size_t n = strlen(key) + 1;
    h = calloc(1, sizeof *h + n);
    if (!h) return NULL;
    memcpy(h->key, key, n);
    if (hmap_put(dt.hosts, h->key, h) != A2AD_OK) {
        free(h);
        return NULL;
    }
    return h;
}

static bool host_open(const struct host *h) { return h->open_until != 0; }

/* Whether h may take one more transfer now. */
static bool host_has_room(const struct host *h) {
    if (host_open(h)) return false;
    if (h->probing) return h->in_flight == 0;
    return !dt.opts.max_in_flight_per_host || h->in_flight < dt.opts.max_in_flight_per_host;
}

/* Channels waiting for h go back to the ready list, as many as h has room
 * for (they are checked again there). */
static void host_release(struct host *h) {
    unsigned room;
    if (host_open(h))
        room = 0;
    else if (h->probing)
        room = h->in_flight == 0 ? 1 : 0;
    else if (!dt.opts.max_in_flight_per_host)
        room = ~0u;
    else
        room = h->in_flight < dt.opts.max_in_flight_per_host
                   ? dt.opts.max_in_flight_per_host - h->in_flight
                   : 0;
    while (room-- && h->wait_head) {
        struct channel *ch = h->wait_head;
        h->wait_head = ch->next_ready;
        if (!h->wait_head) h->wait_tail = NULL;
        ready_push(ch);
    }
}

static void host_wait(struct host *h, struct channel *ch) {
    channel_fifo_push(&h->wait_head, &h->wait_tail, ch);
}

/* An attempt to h ended. Only failures that say the host is unwell count
 * (no answer, 5xx, 408, 429); any answer at all closes a half-open breaker
 * whose probe got one. */
static void host_attempt_done(struct host *h, bool unwell) {
    uint64_t now = util_now_ms();
    if (!unwell) {
        if (h->probing) log_info("webhooks: %s answers again; its circuit breaker is closed", h->key);
        h->failures = 0;
        h->probing = false;
        return;
    }
    h->failures++;
    h->last_fail = now;
    /* Attempts that were on the wire when the breaker opened end later;
     * they do not open it again (it is on open_hosts once). */
    if (host_open(h) || !dt.opts.breaker_failures ||
        (h->failures < dt.opts.breaker_failures && !h->probing))
        return;
    h->probing = false;
    h->open_until = now + dt.opts.breaker_cooldown_ms;
    h->next_open = dt.open_hosts;
    dt.open_hosts = h;
    pthread_mutex_lock(&wh.lock);
    wh.stats.breaker_opened++;
    pthread_mutex_unlock(&wh.lock);
    log_warn("webhooks: %u failed attempts in a row to %s; its deliveries wait %u ms (circuit "
             "breaker, [webhooks] breaker_failures / breaker_cooldown_ms)",
             h->failures, h->key, dt.opts.breaker_cooldown_ms);
}

/* Breakers whose cool-down is over become half-open: one attempt goes. */
static void hosts_cool(uint64_t now) {
    for (struct host **pp = &dt.open_hosts; *pp;) {
        struct host *h = *pp;
        if (h->open_until > now) {
            pp = &h->next_open;
            continue;
        }
        *pp = h->next_open;
        h->next_open = NULL;
        h->open_until = 0;
        h->probing = true;
        host_release(h);
    }
}

static void host_forget(const char *key, void *value, void *arg) {
    (void)key;
    struct host *h = value;
    struct host **list = arg;
    uint64_t keep_ms = (uint64_t)dt.opts.breaker_cooldown_ms + dt.opts.backoff_max_ms;
    if (h->in_flight == 0 && !h->wait_head && !host_open(h) &&
        (h->failures == 0 || util_now_ms() - h->last_fail > keep_ms)) {
        h->next_open = *list; /* borrowed as the list of the forgotten */
        *list = h;
    }
}

/* Idle hosts are forgotten now and then; one that failed lately is kept a
 * while, so a host failing at the pace of backoffs still trips its breaker. */
static void hosts_sweep(uint64_t now) {
    if (now - dt.last_sweep < 10000) return;
    dt.last_sweep = now;
    struct host *gone = NULL;
    hmap_each(dt.hosts, host_forget, &gone);
    while (gone) {
        struct host *next = gone->next_open;
        hmap_remove(dt.hosts, gone->key);
        free(gone);
        gone = next;
    }
}

static void host_free_one(const char *key, void *value, void *arg) {
    (void)key;
    (void)arg;
    free(value);
}

static void hosts_free(void) {
    if (!dt.hosts) return;
    hmap_each(dt.hosts, host_free_one, NULL);
    hmap_free(dt.hosts);
    dt.hosts = hmap_new(64);
    dt.open_hosts = NULL;
}

/* One attempt at the head of ch ended with rc / HTTP code. refused: the
 * guard refused the address (why in it). */
static void attempt_done(struct channel *ch, CURLcode rc, long code, const char *errmsg,
                         const char *refused) {
    struct delivery *d = ch->head;
    d->attempts++;
    if (d->purged && !(code >= 200 && code < 300)) {
        give_up(ch, PURGED_WHY, PURGED_WHY);
        return;
    }
    /* A 2xx means the receiver has it, even if reading its answer failed
     * afterwards: sending again would only duplicate. */
    if (code >= 200 && code < 300) {
        outbox_done(d, true, NULL);
        stats_finish(&wh.stats.delivered, 1, d->bytes);
        channel_advance(ch);
        return;
    }
    if (refused && *refused && rc != CURLE_OK) {
        /* The address will not change its class by waiting. */
        char why[INET6_ADDRSTRLEN + 160];
        snprintf(why, sizeof why, "%s; refused (see [webhooks] allow_networks)", refused);
        pthread_mutex_lock(&wh.lock);
        wh.stats.refused++;
        pthread_mutex_unlock(&wh.lock);
        give_up(ch, why, "delivery failed: the destination address is refused ([webhooks] "
                         "allow_networks)");
        return;
    }
    char why[CURL_ERROR_SIZE + 64];
    bool retryable;
    if (rc != CURLE_OK) {
        snprintf(why, sizeof why, "curl error %d: %s", (int)rc,
                 errmsg && *errmsg ? errmsg : curl_easy_strerror(rc));
        retryable = !curl_error_permanent(rc);
    } else {
        snprintf(why, sizeof why, "HTTP %ld", code);
        retryable = code == 408 || code == 429 || (code >= 500 && code <= 599);
    }
    /* With max_age_s the event's age decides, not the count: a receiver
     * that is down for a while still gets everything once it is back. */
    bool again = dt.opts.max_age_s ? !too_old(d) : d->attempts < dt.opts.max_attempts;
    const char *shown = "delivery failed";
    char aged[96];
    if (retryable && !again && dt.opts.max_age_s) {
        snprintf(why + strlen(why), sizeof why - strlen(why),
                 "; the event is older than [webhooks] max_age_s = %u", dt.opts.max_age_s);
        snprintf(aged, sizeof aged, "delivery failed; the event is older than [webhooks] "
                 "max_age_s = %u", dt.opts.max_age_s);
        shown = aged;
    }
    free(d->last_error);
    d->last_error = strdup(why); /* NULL only loses what an operator sees */
    if (retryable && again) {
        uint64_t delay = backoff_delay(d->attempts);
        ch->retry_at = util_now_ms() + delay;
        if (heap_push(ch)) {
            stats_retried();
            warn_target_failure(d, why);
            log_debug("webhooks: attempt %u for order key %s failed (%s); retry in %llu ms",
                      d->attempts, d->text, why, (unsigned long long)delay);
            return;
        }
        snprintf(why + strlen(why), sizeof why - strlen(why), "; no memory to schedule a retry");
    }
    give_up(ch, why, shown);
}

/* ---- transfers ---- */

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

/* Every socket a webhook opens passes here with the address it is about to
 * connect to - after DNS, so a name that resolved to a public address at
 * registration and to 127.0.0.1 now is caught (DNS rebinding). */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a) {
    struct xfer *x = clientp;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, &a->addr, a->addrlen < sizeof ss ? a->addrlen : sizeof ss);
    enum guard_class c;
    if (purpose != CURLSOCKTYPE_IPCXN || !guard_address_ok((struct sockaddr *)&ss, &c)) {
        if (purpose != CURLSOCKTYPE_IPCXN) c = GUARD_RESERVED;
        guard_describe((struct sockaddr *)&ss, c, x->refused, sizeof x->refused);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* The options that are the same for every POST, set once per handle. */
static CURLcode xfer_setup_once(struct xfer *x) {
    CURL *e = x->easy;
    CURLcode rc;
    /* Webhook URLs come from clients: never let one reach file:// or the
     * like. Redirects stay off (curl's default) for the same reason. */
    if (curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK &&
        (rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http")) != CURLE_OK)
        return rc;
    if ((rc = curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket)) != CURLE_OK ||
        (rc = curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, (void *)x)) != CURLE_OK)
        return rc;
    /* "" turns off the proxy environment variables too: only [webhooks]
     * proxy decides, and then the guard sees the proxy's address. */
    if ((rc = curl_easy_setopt(e, CURLOPT_PROXY, dt.opts.proxy ? dt.opts.proxy : "")) != CURLE_OK)
        return rc;
    /* Peers are verified (libcurl's default, set again so no build or
     * environment can turn it off); only where the CAs come from changes. */
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (dt.opts.ca_file && *dt.opts.ca_file &&
        (rc = curl_easy_setopt(e, CURLOPT_CAINFO, dt.opts.ca_file)) != CURLE_OK)
        return rc;
    if (dt.opts.ca_path && *dt.opts.ca_path &&
        (rc = curl_easy_setopt(e, CURLOPT_CAPATH, dt.opts.ca_path)) != CURLE_OK)
        return rc;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* we are one thread among many */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)dt.opts.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)dt.opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "a2ad");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)x);
    return CURLE_OK;
}

/* What changes from one POST to the next. */
static CURLcode xfer_setup(struct xfer *x, struct delivery *d) {
    CURL *e = x->easy;
    CURLcode rc;
    x->errbuf[0] = '\0';
    x->refused[0] = '\0';
    if (!x->last_url || strcmp(x->last_url, d->url) != 0) {
        free(x->last_url);
        x->last_url = NULL;
        if ((rc = curl_easy_setopt(e, CURLOPT_URL, d->url)) != CURLE_OK) return rc;
        x->last_url = strdup(d->url); /* NULL only means "set it again next time" */
    }
    if (d->ts_header && d->sig_header) {
        /* Signed per attempt: receivers refuse old timestamps (replays). */
        uint64_t now_s = util_wall_ms() / 1000;
        snprintf(d->ts_header + sizeof ts_name - 1, TS_DIGITS + 1, "%llu",
                 (unsigned long long)now_s);
        if (!sign_value(d->event_id, now_s, d->body ? d->body : "", d->len,
                        d->sig_header + sizeof sig_name - 1))
            return CURLE_OUT_OF_MEMORY;
    }
    /* "" rather than NULL: a NULL body would make curl read from stdin. */
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body ? d->body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers);
    return CURLE_OK;
}

static void xfer_release(struct xfer *x) {
    x->ch = NULL;
    x->host = NULL;
    dt.free_slots[dt.n_free++] = (unsigned)(x - dt.xfers);
}

/* Put the head of ch on the wire in a free slot (the caller checked there is
 * one). A failure to even start counts as a failed attempt. */
static void xfer_start(CURLM *multi, struct channel *ch, struct host *h) {
    struct xfer *x = &dt.xfers[dt.free_slots[--dt.n_free]];
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    if (!x->easy && (x->easy = curl_easy_init()) && (rc = xfer_setup_once(x)) != CURLE_OK) {
        curl_easy_cleanup(x->easy); /* set up again at the next use */
        x->easy = NULL;
    }
    if (x->easy && (rc = xfer_setup(x, ch->head)) == CURLE_OK) {
        if (curl_multi_add_handle(multi, x->easy) == CURLM_OK) {
            x->ch = ch;
            x->host = h;
            h->in_flight++;
            dt.in_flight++;
            return;
        }
        rc = CURLE_FAILED_INIT;
    }
    xfer_release(x);
    attempt_done(ch, rc, 0, x->errbuf, NULL);
}

static void xfers_start_ready(CURLM *multi) {
    while (dt.in_flight < dt.opts.max_in_flight && dt.ready_head) {
        struct channel *ch = ready_pop();
        struct delivery *d = ch->head;
        if (d->purged) {
            give_up(ch, PURGED_WHY, PURGED_WHY); /* readies the next one, if any */
            continue;
        }
        if (d->gate && outbox && outbox->sendable && !outbox->sendable(d->gate)) {
            held_push(ch); /* not on disk yet: sending could outrun the store */
            continue;
        }
        if (too_old(d)) {
            char why[96];
            snprintf(why, sizeof why, "delivery failed; the event is older than [webhooks] "
                     "max_age_s = %u", dt.opts.max_age_s);
            give_up(ch, why, why); /* readies the next one, if any */
            continue;
        }
        struct host *h = host_get(d->dest);
        if (!h) {
            give_up(ch, "out of memory", "delivery failed: out of memory");
            continue;
        }
        if (!host_has_room(h)) {
            host_wait(h, ch); /* uses no slot; released when h has room */
            continue;
        }
        xfer_start(multi, ch, h);
    }
}

static void xfers_collect(CURLM *multi) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *e = msg->easy_handle;
        CURLcode rc = msg->data.result; /* msg dies at remove_handle */
        char *priv = NULL;
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        struct xfer *x = (struct xfer *)(void *)priv;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        curl_multi_remove_handle(multi, e);
        struct channel *ch = x->ch;
        struct host *h = x->host;
        xfer_release(x);
        dt.in_flight--;
        if (h) {
            h->in_flight--;
            bool refused = x->refused[0] && rc != CURLE_OK;
            bool unwell = !refused && ((rc != CURLE_OK && !curl_error_permanent(rc)) ||
                                       code == 408 || code == 429 || (code >= 500 && code <= 599));
            host_attempt_done(h, unwell);
        }
        attempt_done(ch, rc, code, x->errbuf, x->refused);
        if (h) host_release(h);
    }
}

/* ---- operators' requests (the admin API) ---- */

/* One webhooks_act call, on its caller's stack while the thread serves it. */
struct request {
    struct request *next;
    enum webhooks_action action;
    const struct webhooks_select *sel;
    struct webhooks_pending *out;
    size_t n_out, matched;
    bool done;
    a2ad_status status;
};

enum where { W_READY, W_WIRE, W_BACKOFF, W_HELD };

static const char *const where_names[] = {
    [W_READY] = "queued", [W_WIRE] = "sending", [W_BACKOFF] = "waiting to retry",
    [W_HELD] = "waiting for the store"};

static bool selected(const struct delivery *d, const struct webhooks_select *sel) {
    if (d->purged) return false;
    if (sel->task_id && (!d->task_id || strcmp(sel->task_id, d->task_id) != 0)) return false;
    if (!sel->target) return true;
    if (strcmp(sel->target, d->url) == 0) return true;
    char *shown = url_shown(d->url);
    bool same = shown && strcmp(shown, sel->target) == 0;
    curl_free(shown);
    return same;
}

static void pending_fill(struct webhooks_pending *p, const struct delivery *d, bool head,
                         const struct channel *ch, uint64_t now, uint64_t wall) {
    memset(p, 0, sizeof *p);
    snprintf(p->event_id, sizeof p->event_id, "%s", d->event_id);
    snprintf(p->task_id, sizeof p->task_id, "%s", d->task_id ? d->task_id : "");
    char *shown = url_shown(d->url);
    p->target = strdup(shown ? shown : "(unparsable URL)");
    curl_free(shown);
    p->last_error = d->last_error ? strdup(d->last_error) : NULL;
    p->attempts = d->attempts;
    p->created_ms = d->created_ms;
    p->state = head ? where_names[ch->where] : "behind an earlier event";
    if (head && ch->where == W_BACKOFF)
        p->next_attempt_ms = wall + (ch->retry_at > now ? ch->retry_at - now : 0);
    else if (head && ch->where == W_READY)
        p->next_attempt_ms = wall;
}

/* Rebuild the heap after retry times changed. */
static void heap_rebuild(void) {
    size_t n = dt.heap_len;
    dt.heap_len = 0;
    for (size_t i = 0; i < n; i++) heap_push(dt.heap[i]); /* in place: cannot grow */
}

static void request_serve(struct request *rq) {
    uint64_t now = util_now_ms(), wall = util_wall_ms();
    const struct webhooks_select *sel = rq->sel;
    size_t cap = sel->max;
    if (cap && !(rq->out = calloc(cap, sizeof *rq->out))) {
        rq->status = A2AD_ERR_NOMEM;
        return;
    }
    for (struct channel *ch = dt.all; ch; ch = ch->next_all) ch->where = W_READY;
    for (size_t i = 0; i < dt.heap_len; i++) dt.heap[i]->where = W_BACKOFF;
    for (struct channel *ch = dt.held_head; ch; ch = ch->next_ready) ch->where = W_HELD;
    for (unsigned i = 0; i < dt.opts.max_in_flight; i++)
        if (dt.xfers[i].ch) dt.xfers[i].ch->where = W_WIRE;
    bool retimed = false;
    for (struct channel *ch = dt.all; ch; ch = ch->next_all) {
        for (struct delivery *d = ch->head; d; d = d->next) {
            if (!selected(d, sel)) continue;
            bool head = d == ch->head;
            if (rq->n_out < cap) pending_fill(&rq->out[rq->n_out++], d, head, ch, now, wall);
            rq->matched++;
            if (rq->action == WEBHOOKS_LIST) continue;
            if (rq->action == WEBHOOKS_PURGE) {
                d->purged = true; /* given up when it reaches the head */
            } else { /* replay: from scratch, now */
                d->attempts = 0;
                d->created_ms = wall;
                free(d->last_error);
                d->last_error = NULL;
            }
            if (head && ch->where == W_BACKOFF) {
                ch->retry_at = now;
                retimed = true;
            }
        }
    }
    if (retimed) heap_rebuild();
    rq->status = A2AD_OK;
}

/* Serve what operators asked for. The thread's, no lock held but to take
 * the list and to answer. */
static void requests_serve(void) {
    pthread_mutex_lock(&wh.lock);
    struct request *list = wh.requests;
    wh.requests = NULL;
    pthread_mutex_unlock(&wh.lock);
    if (!list) return;
    for (struct request *rq = list; rq; rq = rq->next) request_serve(rq);
    pthread_mutex_lock(&wh.lock);
    for (struct request *rq = list; rq; rq = rq->next) rq->done = true;
    pthread_cond_broadcast(&wh.answered);
    pthread_mutex_unlock(&wh.lock);
}

void webhooks_pending_free(struct webhooks_pending *p, size_t n) {
    for (size_t i = 0; p && i < n; i++) {
        free(p[i].target);
        free(p[i].last_error);
    }
    free(p);
}

a2ad_status webhooks_act(enum webhooks_action action, const struct webhooks_select *sel,
                         struct webhooks_pending **out, size_t *n_out, size_t *matched) {
    *out = NULL;
    *n_out = *matched = 0;
    struct request rq = {.action = action, .sel = sel, .status = A2AD_ERR_STATE};
    pthread_mutex_lock(&wh.lock);
    if (wh.state != WH_RUNNING) {
        pthread_mutex_unlock(&wh.lock);
        return A2AD_ERR_STATE;
    }
    rq.next = wh.requests;
    wh.requests = &rq;
    curl_multi_wakeup(wh.multi);
    /* The thread serves requests on every turn of its loop, and once more
     * as it ends, so this wait is short and always answered. */
    while (!rq.done) pthread_cond_wait(&wh.answered, &wh.lock);
    pthread_mutex_unlock(&wh.lock);
    if (rq.status != A2AD_OK) {
        webhooks_pending_free(rq.out, rq.n_out);
        return rq.status;
    }
    /* Purged deliveries at the head of a ready channel go now. */
    if (action != WEBHOOKS_LIST && rq.matched) webhooks_wake();
    *out = rq.out;
    *n_out = rq.n_out;
    *matched = rq.matched;
    return A2AD_OK;
}

/* ---- the thread ---- */

/* Move what callers queued into the channels. */
static void inbox_place(struct delivery *d) {
    while (d) {
        struct delivery *next = d->next;
        d->next = NULL;
        struct channel *ch = hmap_get(dt.channels, d->text);
        if (!ch) {
            size_t klen = strlen(d->text) + 1;
            ch = calloc(1, sizeof *ch + klen);
            if (ch) memcpy(ch->key, d->text, klen);
            if (!ch || hmap_put(dt.channels, ch->key, ch) != A2AD_OK) {
                free(ch);
                log_give_up(d, "out of memory");
                outbox_done(d, false, "delivery failed: out of memory");
                stats_finish(&wh.stats.given_up, 1, d->bytes);
                delivery_free(d);
                d = next;
                continue;
            }
            ch->next_all = dt.all;
            if (dt.all) dt.all->prev_all = ch;
            dt.all = ch;
            ready_push(ch);
        }
        if (ch->tail)
            ch->tail->next = d;
        else
            ch->head = d;
        ch->tail = d;
        dt.held++;
        d = next;
    }
}

static void backoffs_expire(uint64_t now) {
    while (dt.heap_len > 0 && dt.heap[0]->retry_at <= now) ready_push(heap_pop());
}

/* Flush time is over: abandon everything, in flight or not. */
static size_t drop_all(CURLM *multi, size_t *bytes) {
    for (unsigned i = 0; i < dt.opts.max_in_flight; i++) {
        if (dt.xfers[i].ch) {
            curl_multi_remove_handle(multi, dt.xfers[i].easy);
            xfer_release(&dt.xfers[i]);
        }
    }
    dt.in_flight = 0;
    size_t n = 0;
    *bytes = 0;
    while (dt.all) {
        struct channel *ch = dt.all;
        while (ch->head) {
            struct delivery *d = ch->head;
            ch->head = d->next;
            outbox_dropped(d); /* the outbox keeps it for the next start */
            *bytes += d->bytes;
            delivery_free(d);
            n++;
        }
        channel_free(ch);
    }
    hosts_free();
    dt.ready_head = dt.ready_tail = NULL;
    dt.held_head = dt.held_tail = NULL;
    dt.heap_len = 0;
    dt.held = 0;
    return n;
}

static int poll_timeout(uint64_t now, bool stopping, uint64_t deadline) {
    if (dt.ready_head && dt.in_flight < dt.opts.max_in_flight) return 0;
    /* Held channels wait for webhooks_wake; the short nap is a safety net. */
    uint64_t t = dt.held_head ? 100 : IDLE_POLL_MS;
    if (dt.heap_len > 0) {
        uint64_t at = dt.heap[0]->retry_at;
        if (at <= now) return 0;
        if (at - now < t) t = at - now;
    }
    for (const struct host *h = dt.open_hosts; h; h = h->next_open) {
        if (h->open_until <= now) return 0;
        if (h->open_until - now < t) t = h->open_until - now;
    }
    if (stopping) {
        if (deadline <= now) return 0;
        if (deadline - now < t) t = deadline - now;
    }
    return (int)t;
}

/* Once a second: the event time of the oldest delivery held (the head of
 * each key's line is its oldest), for the metrics. */
static void oldest_scan(uint64_t now) {
    static uint64_t last;
    if (now - last < 1000) return;
    last = now;
    uint64_t oldest = 0;
    for (const struct channel *ch = dt.all; ch; ch = ch->next_all)
        if (ch->head && (!oldest || ch->head->created_ms < oldest)) oldest = ch->head->created_ms;
    metrics_webhook_oldest(oldest);
}

static void *webhooks_thread(void *arg) {
    CURLM *multi = arg;
    pthread_setname_np(pthread_self(), "webhooks"); /* tells it apart in top and perf */
    for (;;) {
        pthread_mutex_lock(&wh.lock);
        struct delivery *in = wh.inbox_head;
        wh.inbox_head = wh.inbox_tail = NULL;
        bool stopping = wh.state == WH_STOPPING;
        uint64_t deadline = wh.deadline;
        pthread_mutex_unlock(&wh.lock);

        inbox_place(in);
        requests_serve(); /* before held_release: the held list is still known */
        held_release();
        uint64_t now = util_now_ms();
        /* Once stopping is seen the inbox is final: callers are refused. */
        if (stopping && dt.held == 0) break;
        if (stopping && now >= deadline) {
            size_t bytes;
            size_t n = drop_all(multi, &bytes);
            stats_finish(NULL, n, bytes);
            if (outbox)
                log_info("webhooks: stop: flush time over; %zu undelivered POST%s stay in the "
                         "outbox for the next start", n, n == 1 ? "" : "s");
            else
                log_warn("webhooks: stop: flush time over, dropped %zu undelivered POST%s", n,
                         n == 1 ? "" : "s");
            break;
        }
        backoffs_expire(now);
        oldest_scan(now);
        hosts_cool(now);
        hosts_sweep(now);
        xfers_start_ready(multi);
        int running;
        curl_multi_perform(multi, &running);
        xfers_collect(multi);
        /* Attempts that failed to start may have freed slots or readied keys. */
        xfers_start_ready(multi);
        /* The last delivery may just have finished: do not nap before noticing. */
        if (stopping && dt.held == 0) break;

        now = util_now_ms();
        if (curl_multi_poll(multi, NULL, 0, poll_timeout(now, stopping, deadline), NULL) != CURLM_OK) {
            /* Should not happen; do not spin if it does. */
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    requests_serve(); /* those that came in during the last turn */
    return NULL;
}

/* ---- parking: deliveries kept in the outbox only (callers' side) ---- */

/* Parked deliveries come back while the queue is below half of max_pending,
 * which is also where the workers' back-pressure starts. */
static uint64_t low_water_locked(void) { return wh.max_pending / 2 ? wh.max_pending / 2 : 1; }

static bool unpark_wanted_locked(void) {
    return wh.stats.parked && wh.stats.pending < low_water_locked() &&
           (!wh.max_pending_bytes || wh.stats.pending_bytes < wh.max_pending_bytes / 2);
}

static size_t parked_count_locked(const char *key) {
    return wh.parked ? (size_t)(uintptr_t)hmap_get(wh.parked, key) : 0;
}

static void parked_add_locked(const char *key, size_t n) {
    size_t c = parked_count_locked(key) + n;
    wh.stats.parked += n;
    if (!wh.parked || hmap_put(wh.parked, key, (void *)(uintptr_t)c) != A2AD_OK)
        log_error("webhooks: out of memory tracking parked deliveries of order key %s; later "
                  "ones may overtake them", key);
}

/* One parked delivery of key is back in memory. */
static void parked_take_locked(const char *key) {
    size_t c = parked_count_locked(key);
    if (c > 1)
        hmap_put(wh.parked, key, (void *)(uintptr_t)(c - 1)); /* replaces: cannot fail */
    else if (c == 1)
        hmap_remove(wh.parked, key);
    if (wh.stats.parked) wh.stats.parked--;
}

/* Whether one more delivery of `bytes` fits in memory. */
static bool room_locked(size_t bytes) {
    return wh.stats.pending < wh.max_pending &&
           (!wh.max_pending_bytes || wh.stats.pending_bytes + bytes <= wh.max_pending_bytes);
}

/* Whether p goes to the outbox only: it does not fit, or its key has
 * parked deliveries that it must not overtake (essential or not). An
 * essential one that does not fit in bytes is parked too: it is kept on
 * disk, so memory stays bounded and nothing is lost. */
static bool admission_parks_locked(const struct webhook_post *p, size_t bytes) {
    if (!outbox || !outbox->park || p->restored || p->unparked) return false;
    if (parked_count_locked(p->order_key)) return true;
    if (p->essential)
        return wh.max_pending_bytes && wh.stats.pending_bytes + bytes > wh.max_pending_bytes;
    return !room_locked(bytes);
}

bool webhooks_accepting(void) {
    pthread_mutex_lock(&wh.lock);
    bool ok = true;
    if (wh.state == WH_RUNNING) {
        if (outbox && outbox->park)
            ok = !wh.max_outbox_bytes ||
                 wh.stats.pending_bytes + wh.stats.parked_bytes < wh.max_outbox_bytes;
        else /* half, as for the workers: the rest is for jobs already running */
            ok = !wh.max_pending_bytes || wh.stats.pending_bytes < wh.max_pending_bytes / 2;
    }
    pthread_mutex_unlock(&wh.lock);
    return ok;
}

void webhooks_park_bytes(uint64_t bytes) {
    pthread_mutex_lock(&wh.lock);
    if (wh.state == WH_RUNNING) wh.stats.parked_bytes += bytes;
    pthread_mutex_unlock(&wh.lock);
}

size_t webhooks_post_bytes(const struct webhook_post *p) {
    size_t n = WEBHOOKS_BYTES_OVERHEAD + p->len + (p->url ? strlen(p->url) : 0);
    for (size_t i = 0; p->headers && p->headers[i]; i++) n += strlen(p->headers[i]) + 1;
    return n;
}

void webhooks_park_existing(const char *order_key, size_t n) {
    pthread_mutex_lock(&wh.lock);
    if (wh.state == WH_RUNNING && order_key && n) parked_add_locked(order_key, n);
    pthread_mutex_unlock(&wh.lock);
}

size_t webhooks_unpark_room(void) {
    pthread_mutex_lock(&wh.lock);
    size_t room = wh.state == WH_RUNNING && unpark_wanted_locked()
                      ? (size_t)(low_water_locked() - wh.stats.pending)
                      : 0;
    pthread_mutex_unlock(&wh.lock);
    return room;
}

/* ---- the interface ---- */

static void thread_state_free(void) {
    for (unsigned i = 0; dt.xfers && i < dt.opts.max_in_flight; i++)
        if (dt.xfers[i].easy) {
            curl_easy_cleanup(dt.xfers[i].easy);
            free(dt.xfers[i].last_url);
        }
    free(dt.xfers);
    free(dt.free_slots);
    free(dt.heap);
    hmap_free(dt.channels);
    if (dt.hosts) {
        hmap_each(dt.hosts, host_free_one, NULL);
        hmap_free(dt.hosts);
    }
    struct webhooks_options keep = dt.opts;
    memset(&dt, 0, sizeof dt);
    dt.opts = keep;
}

a2ad_status webhooks_start(const struct webhooks_options *opts) {
    if (!opts || opts->max_attempts == 0 || opts->max_in_flight == 0 || opts->max_pending == 0 ||
        opts->timeout_ms == 0 || opts->connect_timeout_ms == 0)
        return A2AD_ERR_INVALID;
    pthread_mutex_lock(&wh.lock);
    enum wh_state state = wh.state;
    pthread_mutex_unlock(&wh.lock);
    if (state != WH_IDLE) return A2AD_ERR_STATE;

    memset(&dt, 0, sizeof dt);
    dt.opts = *opts;
    dt.rng = util_now_ms() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    dt.channels = hmap_new(64);
    dt.hosts = hmap_new(64);
    dt.xfers = calloc(opts->max_in_flight, sizeof *dt.xfers);
    dt.free_slots = calloc(opts->max_in_flight, sizeof *dt.free_slots);
    /* Slot 0 on top: few in flight means few easy handles ever created. */
    for (unsigned i = 0; dt.free_slots && i < opts->max_in_flight; i++)
        dt.free_slots[dt.n_free++] = opts->max_in_flight - 1 - i;
    CURLM *multi = curl_multi_init();
    struct hmap *parked = hmap_new(64);
    if (!dt.channels || !dt.hosts || !dt.xfers || !dt.free_slots || !multi || !parked) {
        curl_multi_cleanup(multi);
        hmap_free(parked);
        thread_state_free();
        return A2AD_ERR_NOMEM;
    }

    pthread_mutex_lock(&wh.lock);
    memset(&wh.stats, 0, sizeof wh.stats);
    wh.max_pending = opts->max_pending;
    wh.max_pending_bytes = opts->max_pending_bytes;
    wh.max_outbox_bytes = opts->max_outbox_bytes;
    wh.parked = parked;
    wh.state = WH_RUNNING;
    wh.multi = multi;
    pthread_mutex_unlock(&wh.lock);

    int err = pthread_create(&dt.thread, NULL, webhooks_thread, multi);
    if (err != 0) {
        log_error("webhooks: cannot start the delivery thread: %s", strerror(err));
        pthread_mutex_lock(&wh.lock);
        wh.state = WH_IDLE;
        wh.multi = NULL;
        wh.parked = NULL;
        pthread_mutex_unlock(&wh.lock);
        hmap_free(parked);
        curl_multi_cleanup(multi);
        thread_state_free();
        return A2AD_ERR_IO;
    }
    return A2AD_OK;
}

void webhooks_set_outbox(const struct webhooks_outbox *ob) { outbox = ob; }

void webhooks_wake(void) {
    pthread_mutex_lock(&wh.lock);
    if (wh.state != WH_IDLE && wh.multi) curl_multi_wakeup(wh.multi);
    pthread_mutex_unlock(&wh.lock);
}

/* Printable ASCII without blanks: it goes into a header as is. */
static bool event_id_valid(const char *id) {
    size_t n = 0;
    for (; id[n]; n++)
        if (id[n] <= ' ' || id[n] > '~' || n >= WEBHOOKS_EVENT_ID_MAX) return false;
    return n > 0;
}

a2ad_status webhooks_post(const struct webhook_post *p) {
    char *body = p->body;
    if (!p->order_key || !*p->order_key || !p->url || !*p->url || (!body && p->len) ||
        !headers_valid(p->headers) || (p->event_id && !event_id_valid(p->event_id))) {
        free(body);
        return A2AD_ERR_INVALID;
    }
    char fresh[UUID_STR_LEN];
    const char *eid = p->event_id;
    if (!eid) {
        util_uuid(fresh);
        eid = fresh;
    }
    /* Built before taking the lock so callers contend only for the append. */
    char dest[300];
    dest_of(p->url, dest, sizeof dest);
    size_t klen = strlen(p->order_key) + 1, ulen = strlen(p->url) + 1, elen = strlen(eid) + 1;
    size_t tlen = p->task_id ? strlen(p->task_id) + 1 : 0, dlen = strlen(dest) + 1;
    struct headers_plan hp = headers_plan(p->headers, eid);
    /* Layout: struct, text, padding, header nodes, header strings. */
    size_t al = _Alignof(struct curl_slist);
    size_t nodes_at =
        (offsetof(struct delivery, text) + klen + ulen + elen + tlen + dlen + al - 1) / al * al;
    size_t strings_at = nodes_at + hp.count * sizeof(struct curl_slist);
    struct delivery *d = malloc(strings_at + hp.bytes);
    if (!d) {
        free(body);
        return A2AD_ERR_NOMEM;
    }
    char *at = d->text;
    memcpy(at, p->order_key, klen);
    d->url = memcpy(at += klen, p->url, ulen);
    d->event_id = memcpy(at += ulen, eid, elen);
    d->task_id = tlen ? memcpy(at + elen, p->task_id, tlen) : NULL;
    d->dest = memcpy(at + elen + tlen, dest, dlen);
    d->next = NULL;
    d->bytes = webhooks_post_bytes(p);
    d->body = body;
    d->len = p->len;
    d->attempts = 0;
    d->purged = false;
    d->last_error = NULL;
    d->gate = NULL;
    d->created_ms = p->created_ms ? p->created_ms : util_wall_ms();
    d->headers = headers_fill(d, (struct curl_slist *)(void *)((char *)d + nodes_at),
                              (char *)d + strings_at, p->headers, eid, &hp);

    pthread_mutex_lock(&wh.lock);
    if (wh.state != WH_RUNNING) {
        pthread_mutex_unlock(&wh.lock);
        delivery_free(d);
        return A2AD_ERR_STATE;
    }
    /* Beyond max_outbox_bytes nothing more is taken, not even into the
     * outbox (what is essential still is: a task's outcome is never lost). */
    bool over_outbox = !p->essential && !p->unparked && !p->restored && wh.max_outbox_bytes &&
                       wh.stats.pending_bytes + wh.stats.parked_bytes + d->bytes >
                           wh.max_outbox_bytes;
    if (!over_outbox && admission_parks_locked(p, d->bytes) && outbox->park(p, eid)) {
        parked_add_locked(p->order_key, 1);
        wh.stats.parked_bytes += d->bytes;
        pthread_mutex_unlock(&wh.lock);
        delivery_free(d);
        return A2AD_OK;
    }
    if (over_outbox || (!p->essential && !p->unparked && !room_locked(d->bytes))) {
        wh.stats.rejected++;
        pthread_mutex_unlock(&wh.lock);
        delivery_free(d);
        return A2AD_ERR_FULL;
    }
    /* Accepted: the outbox records it now, in the order deliveries are
     * accepted (under the lock), which is their order per key. */
    if (outbox && outbox->add && !p->restored && !p->unparked) d->gate = outbox->add(p, eid);
    if (p->unparked) {
        parked_take_locked(p->order_key);
        wh.stats.parked_bytes -= wh.stats.parked_bytes < d->bytes ? wh.stats.parked_bytes : d->bytes;
        /* Bytes counted at recovery are estimates: none parked, none left. */
        if (!wh.stats.parked) wh.stats.parked_bytes = 0;
    }
    wh.stats.pending++;
    wh.stats.pending_bytes += d->bytes;
    bool was_empty = !wh.inbox_head;
    if (wh.inbox_tail)
        wh.inbox_tail->next = d;
    else
        wh.inbox_head = d;
    wh.inbox_tail = d;
    /* Only the first delivery into an empty inbox needs to wake the thread:
     * it drains the whole inbox at once. Done under the lock so stop cannot
     * free the multi handle under our feet; it only writes to a socketpair. */
    if (was_empty) curl_multi_wakeup(wh.multi);
    pthread_mutex_unlock(&wh.lock);
    return A2AD_OK;
}

a2ad_status webhooks_enqueue(const char *order_key, const char *url, const char *const *headers,
                             char *body, size_t len, bool essential) {
    struct webhook_post p = {.order_key = order_key, .url = url, .headers = headers,
                             .body = body, .len = len, .essential = essential};
    return webhooks_post(&p);
}

void webhooks_stop(unsigned flush_ms) {
    pthread_mutex_lock(&wh.lock);
    if (wh.state != WH_RUNNING) {
        pthread_mutex_unlock(&wh.lock);
        return;
    }
    wh.state = WH_STOPPING;
    wh.deadline = util_now_ms() + flush_ms;
    curl_multi_wakeup(wh.multi);
    pthread_mutex_unlock(&wh.lock);

    pthread_join(dt.thread, NULL);

    pthread_mutex_lock(&wh.lock);
    CURLM *multi = wh.multi;
    wh.multi = NULL;
    wh.state = WH_IDLE;
    /* Parked deliveries stay in the outbox for the next start. */
    struct hmap *parked = wh.parked;
    wh.parked = NULL;
    wh.stats.parked = 0;
    pthread_mutex_unlock(&wh.lock);
    hmap_free(parked);
    /* Easy handles first: they were all removed from multi by the thread. */
    thread_state_free();
    curl_multi_cleanup(multi);
}

void webhooks_get_stats(struct webhooks_stats *out) {
    if (!out) return;
    pthread_mutex_lock(&wh.lock);
    *out = wh.stats;
    pthread_mutex_unlock(&wh.lock);
}
