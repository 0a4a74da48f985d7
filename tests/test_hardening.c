/* Hardening against the real daemon: per-client limits on the listener
 * (slow loris, connections per address, rate limit), stored JSON that can be
 * read back, acknowledgements that wait for the disk, a database file that
 * disappears, a write that hangs, the config reader's line bound and the
 * log's bound on lines clients cause.
 *
 * Loopback has a whole /8: a "second client" connects from 127.0.0.2. */
#include <arpa/inet.h>
#include <check.h>
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/receiver.h"

static const char *const V1[] = {"A2A-Version: 1.0", NULL};

static struct daemon_proc d1, d2;
static struct receiver *rcv;

static void setup(void) {
    memset(&d1, 0, sizeof d1);
    memset(&d2, 0, sizeof d2);
    rcv = NULL;
}

static void teardown(void) {
    daemon_cleanup(&d2);
    daemon_cleanup(&d1);
    receiver_stop(rcv);
}

static void start_or_fail(struct daemon_proc *d, const struct daemon_opts *o) {
    if (!daemon_start(d, o)) {
        char *log = daemon_log(d);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

/* ---- raw sockets ---- */

/* A TCP connection from src (NULL = any) to 127.0.0.1:port; -1 on failure.
 * nonblock: connect without waiting (for thousands of them). */
static int tcp_from(const char *src, unsigned port, bool nonblock) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) return -1;
    if (src) {
        struct sockaddr_in s = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &s.sin_addr);
        if (bind(fd, (struct sockaddr *)&s, sizeof s) != 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One request with Connection: close from src; the status (0 = none) and
 * the whole answer in resp. */
static int raw_request(const char *src, unsigned port, const char *method, const char *path,
                       const char *body, char *resp, size_t n) {
    int fd = tcp_from(src, port, false);
    if (fd < 0) return 0;
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[4096];
    int len = snprintf(req, sizeof req,
                       "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                       method, path, body ? strlen(body) : 0, body ? body : "");
    if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
        close(fd);
        return 0;
    }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < n && (r = recv(fd, resp + got, n - 1 - got, 0)) > 0) got += (size_t)r;
    resp[got] = '\0';
    close(fd);
    int status = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) status = 0;
    return status;
}

/* Has the daemon closed fd (EOF or reset) within timeout_ms? */
static bool closed_by_peer(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0) return false;
    char b[256];
    ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Slow clients: each socket gets one more byte of a never-ending header
 * every period_ms until stop. */
struct trickle {
    int *fds;
    size_t n;
    unsigned period_ms;
    atomic_bool stop;
    pthread_t th;
};

static void *trickle_run(void *arg) {
    struct trickle *t = arg;
    while (!atomic_load(&t->stop)) {
        for (size_t i = 0; i < t->n; i++)
            if (t->fds[i] >= 0 && send(t->fds[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
                errno != EAGAIN && errno != ENOTCONN) {
                /* the daemon closed it: stop feeding it */
            }
        test_nap_ms(t->period_ms);
    }
    return NULL;
}

/* n slow-loris sockets from src, each with the start of a request sent. */
static int *slow_open(const char *src, unsigned port, size_t n) {
    int *fds = malloc(n * sizeof *fds);
    for (size_t i = 0; i < n; i++) fds[i] = tcp_from(src, port, true);
    test_nap_ms(300); /* the connects complete */
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) send(fds[i], "POST / HTTP/1.1\r\nX-Slow: ", 25, MSG_NOSIGNAL | MSG_DONTWAIT);
    return fds;
}

/* How many of fds the daemon has closed within timeout_ms (checked together). */
static size_t count_closed(int *fds, size_t n, unsigned timeout_ms) {
    size_t closed = 0;
    unsigned waited = 0;
    bool *done = calloc(n, sizeof *done);
    while (waited <= timeout_ms) {
        closed = 0;
        for (size_t i = 0; i < n; i++) {
            if (!done[i] && (fds[i] < 0 || closed_by_peer(fds[i], 0))) done[i] = true;
            closed += done[i];
        }
        if (closed == n) break;
        test_nap_ms(200);
        waited += 200;
    }
    free(done);
    return closed;
}

static void close_all(int *fds, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
    free(fds);
}

static void raise_nofile(rlim_t want) {
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    ck_assert_uint_ge(rl.rlim_cur, 1200);
}

static const char send_body[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":{"
    "\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\","
    "\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}]},\"configuration\":{\"blocking\":false}}}";

/* ---- the listener ---- */

/* 1,100 slow-loris sockets (1 byte per 500 ms) from one address: the
 * daemon keeps serving everyone else, and cuts the ones it took once
 * request_timeout_s is over, however steadily they trickle. */
START_TEST(slow_loris_1100_sockets_cut_off_while_others_are_served) {
    raise_nofile(4096);
    struct daemon_opts o = {.plugins = "echo",
                            .server_extra = "max_connections_per_ip = 64\nrequest_timeout_s = 2"};
    start_or_fail(&d1, &o);
    struct trickle t = {.n = 1100, .period_ms = 500};
    t.fds = slow_open("127.0.0.1", d1.port, t.n);
    pthread_create(&t.th, NULL, trickle_run, &t);
    char resp[8192];
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(raw_request("127.0.0.2", d1.port, "GET", "/healthz", NULL, resp, sizeof resp), 200);
        ck_assert_int_eq(raw_request("127.0.0.2", d1.port, "POST", "/agents/echo", send_body, resp, sizeof resp), 200);
        ck_assert_ptr_nonnull(strstr(resp, "\"result\""));
    }
    /* Every slow socket ends: refused over the per-address limit, or cut. */
    size_t closed = count_closed(t.fds, t.n, 20000);
    atomic_store(&t.stop, true);
    pthread_join(t.th, NULL);
    ck_assert_uint_eq(closed, t.n);
    ck_assert_int_eq(raw_request("127.0.0.2", d1.port, "GET", "/healthz", NULL, resp, sizeof resp), 200);
    char *body = strstr(resp, "\r\n\r\n");
    cJSON *h = cJSON_Parse(body ? body + 4 : "");
    ck_assert_int_ge(json_int(h, "connectionsCutSlow"), 1);
    cJSON_Delete(h);
    close_all(t.fds, t.n);
    char *log = daemon_log(&d1);
    ck_assert_ptr_nonnull(strstr(log, "([server] request_timeout_s)"));
    free(log);
}
END_TEST

/* Slow sockets hold every connection the daemon allows (no per-address
 * limit): a legitimate request still gets in once they are cut. */
START_TEST(request_time_limit_frees_a_full_listener) {
    struct daemon_opts o = {.plugins = "echo",
                            .server_extra = "max_connections = 20\nmax_connections_per_ip = 0\n"
                                            "request_timeout_s = 2\nconnection_timeout_s = 600"};
    start_or_fail(&d1, &o);
    struct trickle t = {.n = 40, .period_ms = 300};
    t.fds = slow_open("127.0.0.1", d1.port, t.n);
    pthread_create(&t.th, NULL, trickle_run, &t);
    char resp[8192];
    int st = raw_request("127.0.0.2", d1.port, "POST", "/agents/echo", send_body, resp, sizeof resp);
    ck_assert_msg(st == 200 && strstr(resp, "\"result\""), "answer %d: %.2000s", st, resp);
    atomic_store(&t.stop, true);
    pthread_join(t.th, NULL);
    close_all(t.fds, t.n);
}
END_TEST

/* Blocking sends of hour-long jobs from one address take only that
 * address's connections: /healthz from another client is answered. */
START_TEST(blocking_sends_do_not_starve_other_clients) {
    struct daemon_opts o = {.plugins = "processor", .threads = 1,
                            .server_extra = "max_connections_per_ip = 16\nmax_connections = 64",
                            .extra = "[agent.processor]\nstep_ms = 60000"};
    start_or_fail(&d1, &o);
    static const char blocking[] =
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":{"
        "\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\","
        "\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}]}}}";
    char req[1024];
    int len = snprintf(req, sizeof req,
                       "POST /agents/processor HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\n\r\n%s", strlen(blocking), blocking);
    enum { N = 100 };
    int fds[N];
    for (int i = 0; i < N; i++) fds[i] = tcp_from("127.0.0.1", d1.port, false);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0) send(fds[i], req, (size_t)len, MSG_NOSIGNAL);
    test_nap_ms(500);
    char resp[8192];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(raw_request("127.0.0.2", d1.port, "GET", "/healthz", NULL, resp, sizeof resp), 200);
    int open = 0;
    for (int i = 0; i < N; i++) open += fds[i] >= 0 && !closed_by_peer(fds[i], 0);
    ck_assert_int_le(open, 16); /* the rest were refused at once */
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0) close(fds[i]);
}
END_TEST

START_TEST(connections_per_address_are_limited) {
    struct daemon_opts o = {.plugins = "echo", .server_extra = "max_connections_per_ip = 4"};
    start_or_fail(&d1, &o);
    int *held = slow_open("127.0.0.1", d1.port, 4);
    test_nap_ms(200);
    int extra = tcp_from("127.0.0.1", d1.port, false);
    ck_assert_int_ge(extra, 0);
    ck_assert_msg(closed_by_peer(extra, 10000), "a 5th connection from one address was kept");
    close(extra);
    for (int i = 0; i < 4; i++) ck_assert(!closed_by_peer(held[i], 0));
    char resp[4096];
    ck_assert_int_eq(raw_request("127.0.0.2", d1.port, "GET", "/healthz", NULL, resp, sizeof resp), 200);
    close_all(held, 4);
    test_nap_ms(300);
    ck_assert_int_eq(raw_request("127.0.0.1", d1.port, "GET", "/healthz", NULL, resp, sizeof resp), 200);
}
END_TEST

START_TEST(rate_limit_answers_429_with_retry_after) {
    struct daemon_opts o = {.plugins = "echo", .server_extra = "rate_limit_per_s = 1\nrate_burst = 3"};
    start_or_fail(&d1, &o);
    char resp[8192];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(raw_request("127.0.0.1", d1.port, "GET", "/healthz", NULL, resp, sizeof resp), 200);
    ck_assert_int_eq(raw_request("127.0.0.1", d1.port, "GET", "/healthz", NULL, resp, sizeof resp), 429);
    ck_assert_ptr_nonnull(strcasestr(resp, "\r\nRetry-After: 1\r\n"));
    ck_assert_ptr_nonnull(strstr(resp, "rate_limit_per_s"));
    ck_assert_int_eq(raw_request("127.0.0.1", d1.port, "POST", "/agents/echo", send_body, resp, sizeof resp), 429);
    char *body = strstr(resp, "\r\n\r\n");
    cJSON *e = cJSON_Parse(body ? body + 4 : "");
    ck_assert_str_eq(json_str(e, "jsonrpc"), "2.0");
    ck_assert_ptr_nonnull(strstr(json_str(e, "error.message"), "rate_limit_per_s"));
    cJSON_Delete(e);
    /* another client has its own bucket */
    ck_assert_int_eq(raw_request("127.0.0.2", d1.port, "POST", "/agents/echo", send_body, resp, sizeof resp), 200);
    /* and the limited one is served again after Retry-After */
    test_nap_ms(1100);
    ck_assert_int_eq(raw_request("127.0.0.1", d1.port, "GET", "/healthz", NULL, resp, sizeof resp), 200);
}
END_TEST

/* ---- stored JSON that can be read back ---- */

/* "[[[ ... ]]]" levels deep (malloc'd). */
static char *nested(int levels) {
    char *s = malloc((size_t)levels * 2 + 8);
    size_t o = 0;
    for (int i = 0; i < levels; i++) s[o++] = '[';
    s[o++] = '1';
    for (int i = 0; i < levels; i++) s[o++] = ']';
    s[o] = '\0';
    return s;
}

static cJSON *rpc_fmt(unsigned port, bool v1, long *status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static cJSON *rpc_fmt(unsigned port, bool v1, long *status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *body = NULL;
    ck_assert_int_ge(vasprintf(&body, fmt, ap), 0);
    va_end(ap);
    long st = 0;
    cJSON *o = rpc_call_headers(port, "/agents/echo", body, v1 ? V1 : NULL, &st);
    free(body);
    if (status) *status = st;
    return o;
}

/* A task that stays working (a processor job with one-minute steps). */
static char *working_task(unsigned port) {
    long st = 0;
    cJSON *o = rpc_call(port, "/agents/processor", send_body, &st);
    ck_assert_int_eq(st, 200);
    char *id = strdup(json_str(o, "result.id"));
    cJSON_Delete(o);
    return id;
}

static cJSON *rpc_on(unsigned port, const char *agent, bool v1, long *status, const char *body) {
    char path[64];
    snprintf(path, sizeof path, "/agents/%s", agent);
    return rpc_call_headers(port, path, body, v1 ? V1 : NULL, status);
}

START_TEST(deep_push_config_is_refused_in_both_versions) {
    struct daemon_opts o = {.plugins = "processor", .extra = "[agent.processor]\nstep_ms = 60000"};
    start_or_fail(&d1, &o);
    char *t = working_task(d1.port);
    char *deep = nested(997);
    char *body = NULL;
    long st = 0;
    ck_assert_int_ge(asprintf(&body,
                              "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\","
                              "\"params\":{\"taskId\":\"%s\",\"pushNotificationConfig\":{\"url\":"
                              "\"http://127.0.0.1:9/h\",\"x\":%s}}}", t, deep), 0);
    cJSON *r = rpc_on(d1.port, "processor", false, &st, body);
    free(body);
    ck_assert_int_eq(json_int(r, "error.code"), -32602);
    const char *msg = json_str(r, "error.message");
    ck_assert_msg(strstr(msg, "params.pushNotificationConfig.x") && strstr(msg, "max_json_depth"),
                  "unclear: %s", msg);
    cJSON_Delete(r);
    ck_assert_int_ge(asprintf(&body,
                              "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"CreateTaskPushNotificationConfig\","
                              "\"params\":{\"taskId\":\"%s\",\"config\":{\"url\":"
                              "\"http://127.0.0.1:9/h\",\"x\":%s}}}", t, deep), 0);
    r = rpc_on(d1.port, "processor", true, &st, body);
    free(body);
    ck_assert_int_eq(json_int(r, "error.code"), -32602);
    msg = json_str(r, "error.message");
    ck_assert_msg(strstr(msg, "params.config.x") && strstr(msg, "nests 1000 levels"), "unclear: %s", msg);
    cJSON_Delete(r);
    /* metadata of a message too */
    free(deep);
    deep = nested(300);
    ck_assert_int_ge(asprintf(&body,
                              "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{"
                              "\"message\":{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\","
                              "\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}],\"metadata\":{\"d\":%s}}}}",
                              deep), 0);
    r = rpc_on(d1.port, "processor", false, &st, body);
    free(body);
    ck_assert_int_eq(json_int(r, "error.code"), -32602);
    ck_assert_ptr_nonnull(strstr(json_str(r, "error.message"), "params.message.metadata.d"));
    cJSON_Delete(r);
    free(deep);
    free(t);
}
END_TEST

/* Depth of a parsed value, as jsonlimit counts it. */
static int depth_of(const cJSON *v) {
    int d = 0;
    for (const cJSON *c = v ? v->child : NULL; c; c = c->next) {
        int x = depth_of(c);
        if (x > d) d = x;
    }
    return v ? d + 1 : 0;
}

START_TEST(deep_but_allowed_values_survive_a_restart) {
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts o = {.plugins = "echo"};
    start_or_fail(&d1, &o);
    char *deep = nested(55);
    long st = 0;
    cJSON *r = rpc_fmt(d1.port, false, &st,
                       "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{"
                       "\"message\":{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\","
                       "\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}],\"metadata\":{\"d\":%s}},"
                       "\"configuration\":{\"blocking\":true,\"pushNotificationConfig\":{\"url\":"
                       "\"http://127.0.0.1:%u/deep\"}}}}",
                       deep, receiver_port(rcv));
    free(deep);
    ck_assert_int_eq(st, 200);
    char id[64];
    snprintf(id, sizeof id, "%s", json_str(r, "result.id"));
    cJSON_Delete(r);
    daemon_kill9(&d1);
    struct daemon_opts o2 = {.plugins = "echo", .db_path = NULL};
    char db[320];
    snprintf(db, sizeof db, "%s/a2ad.db", d1.dir);
    o2.db_path = db;
    start_or_fail(&d2, &o2);
    r = rpc_fmt(d2.port, false, &st,
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    ck_assert_str_eq(json_str(r, "result.id"), id);
    ck_assert_int_eq(depth_of(json_at(r, "result.history.0.metadata.d")), 56);
    cJSON_Delete(r);
    r = rpc_fmt(d2.port, false, &st,
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/list\","
                "\"params\":{\"id\":\"%s\"}}", id);
    ck_assert_ptr_nonnull(strstr(json_str(r, "result.0.pushNotificationConfig.url"), "/deep"));
    cJSON_Delete(r);
}
END_TEST

/* ---- acknowledgements wait for the disk ---- */

/* kill -9 right after a push config set (both versions) was answered: the
 * configs are there after the restart, and the task's end reaches them. */
START_TEST(push_config_set_is_acknowledged_only_once_committed) {
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    struct daemon_opts o = {.plugins = "processor", .extra = "[agent.processor]\nstep_ms = 60000"};
    start_or_fail(&d1, &o);
    char *t = working_task(d1.port);
    test_nap_ms(300); /* its `working` event is written: no event comes after */
    long st = 0;
    char body[600];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{"
             "\"taskId\":\"%s\",\"pushNotificationConfig\":{\"id\":\"v03\",\"url\":"
             "\"http://127.0.0.1:%u/v03\"}}}", t, receiver_port(rcv));
    cJSON *r = rpc_on(d1.port, "processor", false, &st, body);
    ck_assert_str_eq(json_str(r, "result.pushNotificationConfig.id"), "v03");
    cJSON_Delete(r);
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"CreateTaskPushNotificationConfig\",\"params\":{"
             "\"taskId\":\"%s\",\"id\":\"v10\",\"url\":\"http://127.0.0.1:%u/v10\"}}", t,
             receiver_port(rcv));
    r = rpc_on(d1.port, "processor", true, &st, body);
    ck_assert_int_eq(st, 200);
    ck_assert_ptr_null(json_at(r, "error"));
    cJSON_Delete(r);
    daemon_kill9(&d1);

    char db[320];
    snprintf(db, sizeof db, "%s/a2ad.db", d1.dir);
    struct daemon_opts o2 = {.plugins = "processor", .db_path = db,
                             .extra = "[agent.processor]\nstep_ms = 60000"};
    start_or_fail(&d2, &o2);
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/list\","
             "\"params\":{\"id\":\"%s\"}}", t);
    r = rpc_on(d2.port, "processor", false, &st, body);
    ck_assert_msg(cJSON_GetArraySize(json_at(r, "result")) == 2, "configs after restart: %s",
                  cJSON_PrintUnformatted(r));
    cJSON_Delete(r);
    /* the task was interrupted by the crash: its end goes to both */
    ck_assert(receiver_wait(rcv, 2, 15000));
    bool a = false, b = false;
    for (size_t i = 0; i < receiver_count(rcv); i++) {
        const struct received *x = receiver_get(rcv, i);
        a = a || strcmp(x->path, "/v03") == 0;
        b = b || strcmp(x->path, "/v10") == 0;
    }
    ck_assert(a && b);
    free(t);
}
END_TEST

/* ---- the database file ---- */

static long submit_status(unsigned port, char *err, size_t n) {
    long st = 0;
    cJSON *r = rpc_call(port, "/agents/echo", send_body, &st);
    if (err) snprintf(err, n, "%s", json_str(r, "error.message"));
    cJSON_Delete(r);
    return st;
}

START_TEST(deleted_database_file_stops_acknowledgements) {
    struct daemon_opts o = {.plugins = "echo"};
    start_or_fail(&d1, &o);
    char err[600];
    ck_assert_int_eq(submit_status(d1.port, err, sizeof err), 200);
    char db[320];
    snprintf(db, sizeof db, "%s/a2ad.db", d1.dir);
    ck_assert_int_eq(unlink(db), 0);
    /* at once: the commit itself checks the file */
    long st = submit_status(d1.port, err, sizeof err);
    ck_assert_int_eq(st, 503);
    ck_assert_msg(strstr(err, "was deleted") && strstr(err, db), "unclear: %s", err);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(submit_status(d1.port, NULL, 0), 503);
    struct http_resp h;
    ck_assert(http_call(d1.port, NULL, "/healthz", NULL, &h));
    ck_assert_int_eq(h.status, 503);
    cJSON *j = cJSON_Parse(h.body);
    ck_assert_str_eq(json_str(j, "status"), "error");
    ck_assert_ptr_nonnull(strstr(json_str(j, "store"), "was deleted"));
    cJSON_Delete(j);
    http_resp_free(&h);
    char *log = daemon_log(&d1);
    ck_assert_ptr_nonnull(strstr(log, "was deleted while a2ad ran"));
    free(log);
    /* nothing was acknowledged into the deleted file: a restart finds a new,
     * empty one, with no task lost that a client was told of but the first */
    ck_assert_int_eq(daemon_stop(&d1, 15000), 0);
}
END_TEST

START_TEST(replaced_database_file_is_noticed) {
    struct daemon_opts o = {.plugins = "echo"};
    start_or_fail(&d1, &o);
    char db[320], other[340];
    snprintf(db, sizeof db, "%s/a2ad.db", d1.dir);
    snprintf(other, sizeof other, "%s/other.db", d1.dir);
    FILE *f = fopen(other, "w");
    fclose(f);
    ck_assert_int_eq(rename(other, db), 0);
    char err[600];
    ck_assert_int_eq(submit_status(d1.port, err, sizeof err), 503);
    ck_assert_msg(strstr(err, "was replaced"), "unclear: %s", err);
}
END_TEST

START_TEST(database_files_are_private) {
    struct daemon_opts o = {.plugins = "echo"};
    mode_t old = umask(022);
    start_or_fail(&d1, &o);
    umask(old);
    ck_assert_int_eq(submit_status(d1.port, NULL, 0), 200);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[340];
        snprintf(p, sizeof p, "%s/a2ad.db%s", d1.dir, suffix[i]);
        struct stat sb;
        ck_assert_msg(stat(p, &sb) == 0, "%s missing", p);
        ck_assert_msg((sb.st_mode & 0777) == 0600, "%s has mode %03o", p, sb.st_mode & 0777);
    }
}
END_TEST

/* A write that does not finish (here: a lock held for a minute, as a
 * frozen disk would) is answered 503 after write_timeout_ms, not hung. */
START_TEST(a_hanging_write_is_answered_503) {
    struct daemon_opts o = {.plugins = "echo,processor",
                            .tasks_extra = "lock_timeout_ms = 60000\nwrite_timeout_ms = 500",
                            .extra = "[agent.processor]\nstep_ms = 60000"};
    start_or_fail(&d1, &o);
    char *t = working_task(d1.port);
    test_nap_ms(300);
    char db[320];
    snprintf(db, sizeof db, "%s/a2ad.db", d1.dir);
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    char err[600];
    ck_assert_int_eq(submit_status(d1.port, err, sizeof err), 503);
    ck_assert_msg(strstr(err, "write_timeout_ms"), "unclear: %s", err);
    long st = 0;
    char body[400];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{"
             "\"taskId\":\"%s\",\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:9/x\"}}}", t);
    cJSON *r = rpc_on(d1.port, "processor", false, &st, body);
    ck_assert_int_eq(st, 503);
    ck_assert_ptr_nonnull(strstr(json_str(r, "error.message"), "write_timeout_ms"));
    cJSON_Delete(r);
    struct http_resp hr;
    ck_assert(http_call(d1.port, NULL, "/healthz", NULL, &hr)); /* still answers */
    ck_assert_int_eq(hr.status, 200);
    http_resp_free(&hr);
    ck_assert_int_eq(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    /* the disk is back: accepted again */
    bool ok = false;
    for (int i = 0; i < 50 && !ok; i++) {
        ok = submit_status(d1.port, NULL, 0) == 200;
        if (!ok) test_nap_ms(200);
    }
    ck_assert(ok);
    free(t);
}
END_TEST

struct pending_set {
    unsigned port;
    char body[400];
    long status;
    atomic_bool done;
};

static void *pending_set_run(void *arg) {
    struct pending_set *p = arg;
    cJSON *r = rpc_on(p->port, "processor", false, &p->status, p->body);
    cJSON_Delete(r);
    atomic_store(&p->done, true);
    return NULL;
}

/* A push config set waiting for the disk holds no HTTP thread: with one
 * HTTP thread, /healthz is answered meanwhile. */
START_TEST(a_push_set_waiting_for_the_disk_holds_no_thread) {
    struct daemon_opts o = {.plugins = "processor", .server_extra = "http_threads = 1",
                            .tasks_extra = "lock_timeout_ms = 60000\nwrite_timeout_ms = 4000",
                            .extra = "[agent.processor]\nstep_ms = 60000"};
    start_or_fail(&d1, &o);
    char *t = working_task(d1.port);
    test_nap_ms(300);
    char db[320];
    snprintf(db, sizeof db, "%s/a2ad.db", d1.dir);
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    static struct pending_set p;
    memset(&p, 0, sizeof p);
    p.port = d1.port;
    snprintf(p.body, sizeof p.body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{"
             "\"taskId\":\"%s\",\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:9/x\"}}}", t);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, pending_set_run, &p), 0);
    test_nap_ms(300);
    bool served_meanwhile = false;
    for (int i = 0; i < 20 && !served_meanwhile; i++) {
        struct http_resp hr;
        bool ok = http_call(d1.port, NULL, "/healthz", NULL, &hr) && hr.status == 200;
        http_resp_free(&hr);
        served_meanwhile = ok && !atomic_load(&p.done);
        if (!served_meanwhile) test_nap_ms(50);
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    ck_assert_msg(served_meanwhile, "/healthz was not served while the push set waited");
    ck_assert_int_eq(p.status, 503);
    free(t);
}
END_TEST

/* ---- config and log ---- */

START_TEST(config_reader_has_a_line_bound) {
    char bin[400], cmd[600];
    build_path("a2ad", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "timeout 20 %s -t -c /dev/zero 2>&1", bin);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char out[1024] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    ck_assert_int_eq(WEXITSTATUS(rc), 1);
    ck_assert_msg(strstr(out, "/dev/zero:1: line too long"), "got: %s", out);
}
END_TEST

static size_t count_in(const char *s, const char *what) {
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

/* 300 refused connections do not write 300 lines. */
START_TEST(client_caused_log_lines_are_rate_limited) {
    /* extra follows the harness's [log] section */
    struct daemon_opts o = {.plugins = "echo", .server_extra = "max_connections_per_ip = 1",
                            .extra = "client_lines_per_s = 5"};
    start_or_fail(&d1, &o);
    int held = tcp_from("127.0.0.1", d1.port, false);
    ck_assert_int_ge(held, 0);
    test_nap_ms(200);
    for (int i = 0; i < 300; i++) {
        int fd = tcp_from("127.0.0.1", d1.port, false);
        if (fd >= 0) {
            closed_by_peer(fd, 2000);
            close(fd);
        }
    }
    close(held);
    test_nap_ms(1500); /* the summary of the last second */
    char *log = daemon_log(&d1);
    /* libmicrohttpd's words for a refusal over the per-address limit */
    size_t lines = count_in(log, "Closing inbound connection.\n"),
           summaries = count_in(log, "similar lines (Server reached connection limit");
    ck_assert_msg(summaries >= 1 && lines >= 1 && lines < 150, "%zu refusal lines, %zu summaries:\n%.3000s", lines,
                  summaries, log);
    free(log);
}
END_TEST

Suite *hardening_suite(void);
Suite *hardening_suite(void) {
    Suite *s = suite_create("hardening");
    TCase *tc = tcase_create("limits");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, slow_loris_1100_sockets_cut_off_while_others_are_served);
    tcase_add_test(tc, request_time_limit_frees_a_full_listener);
    tcase_add_test(tc, blocking_sends_do_not_starve_other_clients);
    tcase_add_test(tc, connections_per_address_are_limited);
    tcase_add_test(tc, rate_limit_answers_429_with_retry_after);
    tcase_add_test(tc, deep_push_config_is_refused_in_both_versions);
    tcase_add_test(tc, deep_but_allowed_values_survive_a_restart);
    tcase_add_test(tc, push_config_set_is_acknowledged_only_once_committed);
    tcase_add_test(tc, deleted_database_file_stops_acknowledgements);
    tcase_add_test(tc, replaced_database_file_is_noticed);
    tcase_add_test(tc, database_files_are_private);
    tcase_add_test(tc, a_hanging_write_is_answered_503);
    tcase_add_test(tc, a_push_set_waiting_for_the_disk_holds_no_thread);
    tcase_add_test(tc, config_reader_has_a_line_bound);
    tcase_add_test(tc, client_caused_log_lines_are_rate_limited);
    suite_add_tcase(s, tc);
    return s;
}
