/* sse - a small SSE client for tests. See sse.h. */
#include "support/sse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct sse {
    int fd;
    bool eof;          /* the server closed the connection */
    bool have_headers;
    bool chunked;
    bool body_done;    /* the last chunk arrived */
    int status;
    char *headers;
    char *in;          /* received, not yet dechunked */
    size_t in_len;
    char *body;        /* dechunked body, all of it */
    size_t body_len;
    size_t consumed;   /* body bytes already parsed into events */
    size_t chunk_left; /* data bytes left in the current chunk */
    bool chunk_crlf;   /* the CRLF after a chunk's data is pending */
    unsigned comments;
    char last_id[300]; /* id: of the last event returned, "" = none */
};

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void append(char **buf, size_t *len, const char *p, size_t n) {
    char *nb = realloc(*buf, *len + n + 1);
    if (!nb) abort();
    memcpy(nb + *len, p, n);
    *len += n;
    nb[*len] = '\0';
    *buf = nb;
}

struct sse *sse_open(unsigned port, const char *path, const char *body, const char *const *headers) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return NULL;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
        close(fd);
        return NULL;
    }
    char *req = NULL;
    size_t len = 0;
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: application/json\r\n"
                     "Accept: text/event-stream\r\nContent-Length: %zu\r\n",
                     path, port, strlen(body));
    append(&req, &len, head, (size_t)n);
    for (size_t i = 0; headers && headers[i]; i++) {
        append(&req, &len, headers[i], strlen(headers[i]));
        append(&req, &len, "\r\n", 2);
    }
    append(&req, &len, "\r\n", 2);
    append(&req, &len, body, strlen(body));
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            free(req);
            close(fd);
            return NULL;
        }
        off += (size_t)w;
    }
    free(req);
    struct sse *s = calloc(1, sizeof *s);
    s->fd = fd;
    s->body = calloc(1, 1);
    s->headers = calloc(1, 1);
    return s;
}

/* Move what can be dechunked from in to body. */
static void process(struct sse *s) {
    if (!s->have_headers) {
        char *end = s->in ? strstr(s->in, "\r\n\r\n") : NULL;
        if (!end) return;
        size_t hl = (size_t)(end - s->in) + 4;
        free(s->headers);
        s->headers = strndup(s->in, hl);
        s->have_headers = true;
        sscanf(s->headers, "HTTP/1.%*d %d", &s->status);
        for (char *line = s->headers; line; line = strstr(line, "\r\n") ? strstr(line, "\r\n") + 2 : NULL) {
            if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strstr(line, "chunked") &&
                strstr(line, "chunked") < strstr(line, "\r\n"))
                s->chunked = true;
            if (!*line) break;
        }
        memmove(s->in, s->in + hl, s->in_len - hl);
        s->in_len -= hl;
        s->in[s->in_len] = '\0';
    }
    if (!s->chunked) {
        append(&s->body, &s->body_len, s->in ? s->in : "", s->in_len);
        s->in_len = 0;
        return;
    }
    size_t p = 0;
    while (p < s->in_len && !s->body_done) {
        if (s->chunk_left) {
            size_t k = s->in_len - p < s->chunk_left ? s->in_len - p : s->chunk_left;
            append(&s->body, &s->body_len, s->in + p, k);
            p += k;
            s->chunk_left -= k;
            if (!s->chunk_left) s->chunk_crlf = true;
            continue;
        }
        if (s->chunk_crlf) {
            if (s->in_len - p < 2) break;
            p += 2;
            s->chunk_crlf = false;
            continue;
        }
        char *eol = memmem(s->in + p, s->in_len - p, "\r\n", 2);
        if (!eol) break;
        unsigned long size = strtoul(s->in + p, NULL, 16);
        p = (size_t)(eol - s->in) + 2;
        if (size == 0) s->body_done = true;
        s->chunk_left = size;
    }
    memmove(s->in, s->in + p, s->in_len - p);
    s->in_len -= p;
}

/* Read what arrives within the time left; false on timeout or EOF. */
static bool fill(struct sse *s, long long deadline) {
    if (s->eof) return false;
    long long left = deadline - now_ms();
    if (left <= 0) return false;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)left);
    if (r <= 0) return false;
    char buf[16384];
    ssize_t n = recv(s->fd, buf, sizeof buf, 0);
    if (n <= 0) {
        s->eof = true;
        return false;
    }
    append(&s->in, &s->in_len, buf, (size_t)n);
    process(s);
    return true;
}

int sse_status(struct sse *s, unsigned timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    while (!s->have_headers)
        if (!fill(s, deadline)) return -1;
    return s->status;
}

const char *sse_headers(const struct sse *s) { return s->headers; }

int sse_next(struct sse *s, char **data, unsigned timeout_ms) {
    *data = NULL;
    long long deadline = now_ms() + timeout_ms;
    if (sse_status(s, timeout_ms) < 0) return -1;
    for (;;) {
        char *start = s->body + s->consumed;
        char *end = strstr(start, "\n\n");
        if (end) {
            char *ev = strndup(start, (size_t)(end - start));
            s->consumed += (size_t)(end - start) + 2;
            char *joined = NULL;
            size_t jl = 0;
            for (char *save = NULL, *line = strtok_r(ev, "\n", &save); line;
                 line = strtok_r(NULL, "\n", &save)) {
                if (line[0] == ':') {
                    s->comments++;
                } else if (strncmp(line, "id:", 3) == 0) {
                    snprintf(s->last_id, sizeof s->last_id, "%s", line[3] == ' ' ? line + 4 : line + 3);
                } else if (strncmp(line, "data:", 5) == 0) {
                    const char *v = line[5] == ' ' ? line + 6 : line + 5;
                    if (joined) append(&joined, &jl, "\n", 1);
                    append(&joined, &jl, v, strlen(v));
                }
            }
            free(ev);
            if (joined) {
                *data = joined;
                return 1;
            }
            continue;
        }
        if (s->body_done || s->eof) return s->consumed == s->body_len ? 0 : -1;
        if (!fill(s, deadline)) {
            if (s->eof || s->body_done) continue;
            return -1;
        }
    }
}

unsigned sse_comments(const struct sse *s) { return s->comments; }
const char *sse_body(const struct sse *s) { return s->body; }

const char *sse_read_all(struct sse *s, unsigned timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        if (s->have_headers && !s->chunked) {
            const char *cl = strcasestr(s->headers, "\r\nContent-Length:");
            if (cl && s->body_len >= strtoul(cl + 17, NULL, 10)) break;
        }
        if (s->body_done || !fill(s, deadline)) break;
    }
    return s->body;
}

void sse_close(struct sse *s) {
    if (!s) return;
    /* RST rather than FIN: the harshest way a client can vanish. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(s->fd);
    free(s->in);
    free(s->body);
    free(s->headers);
    free(s);
}

const char *sse_last_id(const struct sse *s) { return s->last_id; }
