/* sink - the webhook receiver of `make bench`.
 *
 *   sink PORT
 *
 * Answers every POST with 200 and counts it. A POST whose body carries a
 * terminal task state ("state":"completed", "failed", "canceled" or
 * "rejected") also counts as a terminal notification.
 *
 *   GET /stats   "posts bytes terminal first_ms last_ms last_terminal_ms\n"
 *                (times: CLOCK_REALTIME in ms, 0 before the first POST)
 *   GET /reset   zero everything, answers "ok"
 *
 * Loopback only: it binds 127.0.0.1.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_llong posts, bytes, terminal, first_ms, last_ms, last_terminal_ms;

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct body {
    size_t len, cap;
    char *buf;
};

static int is_terminal(const char *b) {
    static const char *const states[] = {"\"state\":\"completed\"", "\"state\":\"failed\"",
                                         "\"state\":\"canceled\"", "\"state\":\"rejected\""};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
        if (strstr(b, states[i])) return 1;
    return 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, const char *text) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **req) {
    (void)cls;
    (void)version;
    if (strcmp(method, "POST") != 0) {
        char text[200];
        if (strcmp(url, "/reset") == 0) {
            posts = bytes = terminal = first_ms = last_ms = last_terminal_ms = 0;
            return reply(c, "ok\n");
        }
        snprintf(text, sizeof text, "%lld %lld %lld %lld %lld %lld\n", (long long)posts,
                 (long long)bytes, (long long)terminal, (long long)first_ms, (long long)last_ms,
                 (long long)last_terminal_ms);
        return reply(c, text);
    }
    struct body *b = *req;
    if (!b) { /* headers only so far */
        *req = b = calloc(1, sizeof *b);
        return b ? MHD_YES : MHD_NO;
    }
    if (*size) {
        if (b->len + *size + 1 > b->cap) {
            size_t cap = (b->len + *size + 1) * 2;
            char *n = realloc(b->buf, cap);
            if (!n) return MHD_NO;
            b->buf = n;
            b->cap = cap;
        }
        memcpy(b->buf + b->len, data, *size);
        b->len += *size;
        b->buf[b->len] = '\0';
        *size = 0;
        return MHD_YES;
    }
    long long t = now_ms();
    long long zero = 0;
    atomic_compare_exchange_strong(&first_ms, &zero, t);
    atomic_fetch_add(&posts, 1);
    atomic_fetch_add(&bytes, (long long)b->len);
    atomic_store(&last_ms, t);
    if (b->buf && is_terminal(b->buf)) {
        atomic_fetch_add(&terminal, 1);
        atomic_store(&last_terminal_ms, t);
    }
    free(b->buf);
    free(b);
    *req = NULL;
    return reply(c, "ok");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: sink PORT\n");
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Blocked before MHD starts its threads, so only sigwait sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, handle, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, 2u,
        MHD_OPTION_CONNECTION_LIMIT, 4000u, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "sink: cannot listen on 127.0.0.1:%s\n", argv[1]);
        return 1;
    }
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
