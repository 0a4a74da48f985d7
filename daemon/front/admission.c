/* admission - per-client rate limit and total request time. See admission.h. */
#include "front/admission.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "logclient.h"
#include "util.h"

/* Rate buckets: GUARD_SETS sets of GUARD_WAYS; a new client takes the
 * least recently seen entry of its set. */
#define GUARD_WAYS 4
#define GUARD_SETS 2048
/* How often the timing thread looks at the open connections. */
#define SWEEP_MS 200

struct bucket {
    unsigned char addr[16];
    bool used;
    double tokens;
    uint64_t last_ms;
};

struct conn {
    struct conn *prev, *next;
    int fd;
    uint64_t deadline_ms; /* for the request being received; 0 = received */
    bool cut;
    char who[INET6_ADDRSTRLEN];
};

static struct {
    unsigned rate, burst, timeout_s;
    uint64_t idle_ms; /* [server] connection_timeout_s: a keep-alive wait */
    pthread_mutex_t lock; /* buckets */
    struct bucket *buckets;
    pthread_mutex_t conn_lock; /* conns; held while a socket is shut down */
    struct conn *conns;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stopping, running;
    pthread_t thread;
    atomic_ulong cut;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .conn_lock = PTHREAD_MUTEX_INITIALIZER,
       .stop_lock = PTHREAD_MUTEX_INITIALIZER,
       .stop_cond = PTHREAD_COND_INITIALIZER};

unsigned admission_rate_per_s(void) { return g.rate; }
unsigned admission_rate_burst(void) { return g.burst; }
unsigned long admission_cut_count(void) { return atomic_load(&g.cut); }

/* The bucket key of an address: IPv4 mapped into IPv6, an IPv6 address's
 * /64; false if neither. */
static bool addr_key(const struct sockaddr *sa, unsigned char out[16]) {
    if (!sa) return false;
    if (sa->sa_family == AF_INET) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        /* One IPv6 client usually has a whole /64: one bucket for it. */
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(out, mapped, 12) != 0) memset(out + 8, 0, 8);
        return true;
    }
    return false;
}

static void addr_text(const struct sockaddr *sa, char *out, size_t n) {
    out[0] = '\0';
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)n);
    if (!out[0]) snprintf(out, n, "?");
}

/* FNV-1a over the address. */
static size_t set_of(const unsigned char a[16]) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++) h = (h ^ a[i]) * 16777619u;
    return h % GUARD_SETS;
}

bool admission_admit(const struct sockaddr *client, unsigned *retry_after_s) {
    unsigned char key[16];
    if (!g.rate || !g.buckets || !addr_key(client, key)) return true;
    uint64_t now = util_now_ms();
    pthread_mutex_lock(&g.lock);
    struct bucket *set = g.buckets + set_of(key) * GUARD_WAYS, *b = NULL, *oldest = set;
    for (int i = 0; i < GUARD_WAYS && !b; i++) {
        if (set[i].used && memcmp(set[i].addr, key, 16) == 0) b = &set[i];
        else if (!set[i].used || (oldest->used && set[i].last_ms < oldest->last_ms)) oldest = &set[i];
    }
    if (!b) {
        b = oldest;
        memcpy(b->addr, key, 16);
        b->used = true;
        b->tokens = g.burst;
        b->last_ms = now;
    }
    b->tokens += (double)(now - b->last_ms) * g.rate / 1000.0;
    if (b->tokens > g.burst) b->tokens = g.burst;
    b->last_ms = now;
    bool ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    else {
        double wait_s = (1.0 - b->tokens) / g.rate;
        unsigned s = (unsigned)wait_s;
        *retry_after_s = s < wait_s ? s + 1 : s;
        if (*retry_after_s < 1) *retry_after_s = 1;
    }
    pthread_mutex_unlock(&g.lock);
    return ok;
}

/* ---- connections -------------------------------------------------- */

void admission_conn_started(int fd, const struct sockaddr *client, void **ctx) {
    *ctx = NULL;
    if (!g.timeout_s) return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) return; /* untimed: only the idle timeout applies to it */
    c->fd = fd;
    c->deadline_ms = util_now_ms() + (uint64_t)g.timeout_s * 1000;
    addr_text(client, c->who, sizeof c->who);
    pthread_mutex_lock(&g.conn_lock);
    c->next = g.conns;
    if (g.conns) g.conns->prev = c;
    g.conns = c;
    pthread_mutex_unlock(&g.conn_lock);
    *ctx = c;
}

/* libmicrohttpd closes the socket after this returns: once c is unlisted,
 * the timing thread cannot touch its (soon reused) number. */
void admission_conn_closed(void *ctx) {
    struct conn *c = ctx;
    if (!c) return;
    pthread_mutex_lock(&g.conn_lock);
    if (c->prev) c->prev->next = c->next;
    else g.conns = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&g.conn_lock);
    free(c);
}

void admission_request_received(void *ctx) {
    struct conn *c = ctx;
    if (!c) return;
    pthread_mutex_lock(&g.conn_lock);
    c->deadline_ms = 0;
    pthread_mutex_unlock(&g.conn_lock);
}

void admission_request_ended(void *ctx) {
    struct conn *c = ctx;
    if (!c) return;
    /* A keep-alive client may wait up to the idle timeout before its next
     * request (libmicrohttpd closes it if nothing comes); a trickler is
     * cut request_timeout_s after that. */
    pthread_mutex_lock(&g.conn_lock);
    c->deadline_ms = util_now_ms() + g.idle_ms + (uint64_t)g.timeout_s * 1000;
    pthread_mutex_unlock(&g.conn_lock);
}

static void sweep(void) {
    uint64_t now = util_now_ms();
    char who[8][INET6_ADDRSTRLEN];
    size_t n = 0;
    pthread_mutex_lock(&g.conn_lock);
    for (struct conn *c = g.conns; c; c = c->next) {
        if (c->cut || !c->deadline_ms || now < c->deadline_ms) continue;
        /* The number is still this connection's (see admission_conn_closed):
         * shutdown ends the stream, and libmicrohttpd closes it. */
        shutdown(c->fd, SHUT_RDWR);
        c->cut = true;
        atomic_fetch_add(&g.cut, 1);
        if (n < sizeof who / sizeof who[0]) memcpy(who[n], c->who, sizeof who[n]);
        n++;
    }
    pthread_mutex_unlock(&g.conn_lock);
    for (size_t i = 0; i < n; i++)
        log_client("request-timeout", A2AD_LOG_WARNING, "http",
                   "closed a connection from %s: its request was not received within %u s "
                   "([server] request_timeout_s)",
                   i < sizeof who / sizeof who[0] ? who[i] : "another client", g.timeout_s);
}

static void *cutoff_thread(void *arg) {
    (void)arg;
    pthread_mutex_lock(&g.stop_lock);
    while (!g.stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += SWEEP_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g.stop_cond, &g.stop_lock, &ts);
        if (g.stopping) break;
        pthread_mutex_unlock(&g.stop_lock);
        sweep();
        log_client_flush();
        pthread_mutex_lock(&g.stop_lock);
    }
    pthread_mutex_unlock(&g.stop_lock);
    return NULL;
}

a2ad_status admission_start(const struct config *cfg) {
    g.rate = cfg->rate_limit_per_s;
    g.burst = cfg->rate_burst;
    g.timeout_s = cfg->request_timeout_s;
    g.idle_ms = (uint64_t)cfg->connection_timeout_s * 1000;
    atomic_store(&g.cut, 0);
    if (g.rate && !g.buckets) {
        g.buckets = calloc((size_t)GUARD_SETS * GUARD_WAYS, sizeof *g.buckets);
        if (!g.buckets) return A2AD_ERR_NOMEM;
    }
    g.stopping = false;
    int err = pthread_create(&g.thread, NULL, cutoff_thread, NULL);
    if (err) {
        log_error("http: cannot start the request timer thread: %s", strerror(err));
        return A2AD_ERR_IO;
    }
    g.running = true;
    return A2AD_OK;
}

void admission_stop(void) {
    if (g.running) {
        pthread_mutex_lock(&g.stop_lock);
        g.stopping = true;
        pthread_cond_signal(&g.stop_cond);
        pthread_mutex_unlock(&g.stop_lock);
        pthread_join(g.thread, NULL);
        g.running = false;
    }
    log_client_flush();
    free(g.buckets);
    g.buckets = NULL;
}
