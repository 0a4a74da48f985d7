/* receiver - a real webhook receiver for tests (libmicrohttpd on 127.0.0.1).
 *
 * One thread per connection, so a delayed answer (receiver_set_delay) holds
 * up only its own connection, as a slow real receiver would. Records are
 * immutable once published under the lock, which is what lets receiver_get
 * hand out borrowed pointers.
 */
#include "support/receiver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Larger bodies are answered 413: a test sending them has a bug. */
#define RECEIVER_MAX_BODY (16u * 1024 * 1024)

struct receiver {
    struct MHD_Daemon *daemon;
    unsigned port;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct received **accepted; /* pointers, so records never move */
    size_t n_accepted, cap_accepted;
    size_t n_attempts;
    unsigned fail_left;
    int fail_status;
    unsigned delay_ms;
};

/* Per request, between MHD's calls of the handler. */
struct pending_req {
    char *headers;
    size_t headers_len;
    char *body;
    size_t len, cap;
    bool too_big;
    bool oom;
};

static uint64_t receiver_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void received_free(struct received *rec) {
    if (!rec) return;
    free(rec->path);
    free(rec->headers);
    free(rec->body);
    free(rec);
}

static void pending_free(struct pending_req *p) {
    if (!p) return;
    free(p->headers);
    free(p->body);
    free(p);
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value) {
    (void)kind;
    struct pending_req *p = cls;
    if (p->oom) return MHD_NO;
    size_t add = strlen(key) + 2 + (value ? strlen(value) : 0) + 1;
    char *h = realloc(p->headers, p->headers_len + add + 1);
    if (!h) {
        p->oom = true;
        return MHD_NO;
    }
    p->headers = h;
    p->headers_len += (size_t)snprintf(h + p->headers_len, add + 1, "%s: %s\n", key,
                                       value ? value : "");
    return MHD_YES;
}

static bool body_append(struct pending_req *p, const char *data, size_t n) {
    if (p->len + n > RECEIVER_MAX_BODY) {
        p->too_big = true;
        return true;
    }
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 1024;
        while (cap < p->len + n + 1) cap *= 2;
        char *b = realloc(p->body, cap);
        if (!b) return false;
        p->body = b;
        p->cap = cap;
    }
    memcpy(p->body + p->len, data, n);
    p->len += n;
    return true;
}

static enum MHD_Result respond(struct MHD_Connection *conn, int status) {
    static const char text[] = "ok\n";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof text - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Decide this POST's answer, record it, and wake waiters. */
static int receiver_record(struct receiver *r, const char *path, struct pending_req *p) {
    struct received *rec = calloc(1, sizeof *rec);
    if (rec) {
        rec->path = strdup(path);
        rec->headers = p->headers ? p->headers : strdup("");
        p->headers = NULL;
        rec->body = p->body ? p->body : strdup("");
        p->body = NULL;
        rec->len = p->len;
        rec->at_ms = receiver_now_ms();
        if (!rec->path || !rec->headers || !rec->body) {
            received_free(rec);
            rec = NULL;
        }
    }
    pthread_mutex_lock(&r->lock);
    int status = 200;
    bool forced = false;
    if (r->fail_left > 0) {
        r->fail_left--;
        status = r->fail_status;
        forced = true;
    }
    if (!rec) status = 500;
    r->n_attempts++;
    if (!forced && rec) {
        if (r->n_accepted == r->cap_accepted) {
            size_t cap = r->cap_accepted ? r->cap_accepted * 2 : 16;
            struct received **a = realloc(r->accepted, cap * sizeof *a);
            if (a) {
                r->accepted = a;
                r->cap_accepted = cap;
            }
        }
        if (r->n_accepted < r->cap_accepted) {
            rec->status = status;
            r->accepted[r->n_accepted++] = rec;
            rec = NULL;
        } else {
            status = 500;
        }
    }
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    received_free(rec); /* forced failures are counted, not kept */
    return status;
}

static enum MHD_Result receiver_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version,
                                       const char *upload_data, size_t *upload_data_size,
                                       void **req_cls) {
    (void)version;
    struct receiver *r = cls;
    if (strcmp(method, "POST") != 0) return respond(conn, 405);

    struct pending_req *p = *req_cls;
    if (!p) {
        /* First call: headers only. Return to get the body. */
        p = calloc(1, sizeof *p);
        if (!p) return MHD_NO;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, p);
        *req_cls = p;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!body_append(p, upload_data, *upload_data_size)) p->oom = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    /* Last call: the whole body is in. */
    if (p->too_big) return respond(conn, 413);
    if (p->oom) return respond(conn, 500);
    if (!p->body && !(p->body = strdup(""))) return respond(conn, 500);
    p->body[p->len] = '\0';

    pthread_mutex_lock(&r->lock);
    unsigned delay = r->delay_ms;
    pthread_mutex_unlock(&r->lock);
    if (delay) sleep_ms(delay);

    return respond(conn, receiver_record(r, url, p));
}

static void receiver_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                               enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    pending_free(*req_cls);
    *req_cls = NULL;
}

struct receiver *receiver_start(void) { return receiver_start_on(0); }

struct receiver *receiver_start_on(unsigned port) {
    struct receiver *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->changed, &ca);
    pthread_condattr_destroy(&ca);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                     MHD_USE_POLL | MHD_USE_ERROR_LOG,
                                 0, NULL, NULL, receiver_handle, r, MHD_OPTION_SOCK_ADDR,
                                 (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED,
                                 receiver_completed, r, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)30, MHD_OPTION_END);
    if (!r->daemon) {
        receiver_stop(r);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(r->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || info->port == 0) {
        receiver_stop(r);
        return NULL;
    }
    r->port = info->port;
    return r;
}

unsigned receiver_port(const struct receiver *r) { return r->port; }

void receiver_fail_next(struct receiver *r, unsigned n, int status) {
    pthread_mutex_lock(&r->lock);
    r->fail_left = n;
    r->fail_status = status;
    pthread_mutex_unlock(&r->lock);
}

void receiver_set_delay(struct receiver *r, unsigned delay_ms) {
    pthread_mutex_lock(&r->lock);
    r->delay_ms = delay_ms;
    pthread_mutex_unlock(&r->lock);
}

size_t receiver_count(struct receiver *r) {
    pthread_mutex_lock(&r->lock);
    size_t n = r->n_accepted;
    pthread_mutex_unlock(&r->lock);
    return n;
}

size_t receiver_attempts(struct receiver *r) {
    pthread_mutex_lock(&r->lock);
    size_t n = r->n_attempts;
    pthread_mutex_unlock(&r->lock);
    return n;
}

bool receiver_wait(struct receiver *r, size_t n, unsigned timeout_ms) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(timeout_ms / 1000);
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->lock);
    while (r->n_accepted < n) {
        if (pthread_cond_timedwait(&r->changed, &r->lock, &until) != 0) break;
    }
    bool ok = r->n_accepted >= n;
    pthread_mutex_unlock(&r->lock);
    return ok;
}

const struct received *receiver_get(struct receiver *r, size_t i) {
    pthread_mutex_lock(&r->lock);
    const struct received *rec = i < r->n_accepted ? r->accepted[i] : NULL;
    pthread_mutex_unlock(&r->lock);
    return rec;
}

char *received_header(const struct received *req, const char *name) {
    if (!req || !req->headers || !name) return NULL;
    size_t n = strlen(name);
    for (const char *line = req->headers; *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        if ((size_t)(end - line) > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
            const char *v = line + n + 1;
            while (v < end && (*v == ' ' || *v == '\t')) v++;
            return strndup(v, (size_t)(end - v));
        }
        line = *end ? end + 1 : end;
    }
    return NULL;
}

void receiver_stop(struct receiver *r) {
    if (!r) return;
    /* Joins every connection thread, so nothing touches r afterwards. */
    if (r->daemon) MHD_stop_daemon(r->daemon);
    for (size_t i = 0; i < r->n_accepted; i++) received_free(r->accepted[i]);
    free(r->accepted);
    pthread_cond_destroy(&r->changed);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
