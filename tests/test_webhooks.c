/* Tests of webhooks against a real receiver on 127.0.0.1.
 *
 * webhooks has module-global state, so every test starts and stops it; the
 * checked teardown stops it again so that a failed test cannot leak a running
 * module into the next one when Check does not fork (CK_FORK=no).
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "delivery/guard.h"
#include "support/receiver.h"
#include "util.h"
#include "delivery/webhooks.h"

Suite *webhooks_suite(void);

static struct receiver *R;

/* The receivers are on 127.0.0.1, refused by the SSRF guard by default
 * (test_guard covers that). */
static void global_setup(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    guard_set_allow("127.0.0.0/8, ::1/128");
}
static void global_teardown(void) { curl_global_cleanup(); }

static void setup(void) {
    R = receiver_start();
    ck_assert_ptr_nonnull(R);
}

static void teardown(void) {
    webhooks_stop(0);
    receiver_stop(R);
    R = NULL;
}

/* Short timings so retries happen within a test's patience. */
static struct webhooks_options fast_opts(void) {
    struct webhooks_options o = {
        .timeout_ms = 2000,
        .connect_timeout_ms = 1000,
        .max_attempts = 5,
        .backoff_initial_ms = 20,
        .backoff_max_ms = 100,
        .max_in_flight = 8,
        .max_pending = 1000,
    };
    return o;
}

static void start(const struct webhooks_options *o) { ck_assert_int_eq(webhooks_start(o), A2AD_OK); }

static const char *url_of(struct receiver *r, const char *path) {
    static char buf[128];
    snprintf(buf, sizeof buf, "http://127.0.0.1:%u%s", receiver_port(r), path);
    return buf;
}

static a2ad_status post(const char *key, const char *url, const char *body, bool essential) {
    return webhooks_enqueue(key, url, NULL, strdup(body), strlen(body), essential);
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Bounded wait for the counters to reach at least these values. */
static struct webhooks_stats wait_stats(uint64_t delivered, uint64_t given_up, unsigned timeout_ms) {
    struct webhooks_stats s;
    uint64_t until = util_now_ms() + timeout_ms;
    for (;;) {
        webhooks_get_stats(&s);
        if ((s.delivered >= delivered && s.given_up >= given_up) || util_now_ms() >= until) return s;
        sleep_ms(5);
    }
}

/* A socket on 127.0.0.1; listening ones complete TCP handshakes (in the
 * kernel) but never answer, closed ones give a port nobody listens on. */
static int local_socket(bool listening, unsigned *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (listening) ck_assert_int_eq(listen(fd, 16), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static unsigned free_port(void) {
    unsigned port;
    close(local_socket(false, &port));
    return port;
}

static const struct received *find_path(struct receiver *r, const char *path) {
    for (size_t i = 0; i < receiver_count(r); i++) {
        const struct received *rec = receiver_get(r, i);
        if (strcmp(rec->path, path) == 0) return rec;
    }
    return NULL;
}

static void assert_header(const struct received *rec, const char *name, const char *want) {
    char *v = received_header(rec, name);
    ck_assert_msg(v != NULL, "header %s missing in:\n%s", name, rec->headers);
    ck_assert_str_eq(v, want);
    free(v);
}

static size_t count_substr(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = hay; (p = strcasestr(p, needle)); p += strlen(needle)) n++;
    return n;
}

START_TEST(test_delivers_body_and_headers_exactly) {
    struct webhooks_options o = fast_opts();
    start(&o);
    const char *headers[] = {"X-A2A-Notification-Token: tok-123", "X-Trace: a b  c", NULL};
    const char *json = "{\"id\":\"t1\",\"status\":{\"state\":\"working\"}}";
    ck_assert_int_eq(webhooks_enqueue("t1", url_of(R, "/hook"), headers, strdup(json), strlen(json),
                                      false),
                     A2AD_OK);
    /* Binary body with a NUL inside, and the caller's own Content-Type. */
    char *bin = malloc(5);
    memcpy(bin, "ab\0cd", 5);
    const char *typed[] = {"Content-Type: application/a2a+json", NULL};
    ck_assert_int_eq(webhooks_enqueue("t2", url_of(R, "/other"), typed, bin, 5, false), A2AD_OK);

    ck_assert(receiver_wait(R, 2, 5000));
    const struct received *a = find_path(R, "/hook");
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->len, strlen(json));
    ck_assert_str_eq(a->body, json);
    ck_assert_int_eq(a->status, 200);
    assert_header(a, "x-a2a-notification-token", "tok-123"); /* any case */
    assert_header(a, "X-Trace", "a b  c");
    assert_header(a, "Content-Type", "application/json");
    char *expect = received_header(a, "Expect");
    ck_assert_ptr_null(expect);

    const struct received *b = find_path(R, "/other");
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(b->len, 5);
    ck_assert_mem_eq(b->body, "ab\0cd", 5);
    assert_header(b, "Content-Type", "application/a2a+json");
    ck_assert_uint_eq(count_substr(b->headers, "content-type:"), 1);

    struct webhooks_stats s = wait_stats(2, 0, 5000);
    ck_assert_uint_eq(s.delivered, 2);
    ck_assert_uint_eq(s.retried, 0);
    ck_assert_uint_eq(s.given_up, 0);
    ck_assert_uint_eq(s.pending, 0);
    ck_assert_uint_eq(receiver_attempts(R), 2);
}
END_TEST

START_TEST(test_order_kept_across_503_retries) {
    struct webhooks_options o = fast_opts();
    start(&o);
    receiver_fail_next(R, 2, 503);
    for (int i = 1; i <= 5; i++) {
        char body[32];
        snprintf(body, sizeof body, "%d", i);
        ck_assert_int_eq(post("task-1", url_of(R, "/hook"), body, false), A2AD_OK);
    }
    ck_assert(receiver_wait(R, 5, 5000));
    for (size_t i = 0; i < 5; i++) {
        char want[32];
        snprintf(want, sizeof want, "%zu", i + 1);
        ck_assert_str_eq(receiver_get(R, i)->body, want);
    }
    struct webhooks_stats s = wait_stats(5, 0, 5000);
    ck_assert_uint_eq(receiver_attempts(R), 7);
    ck_assert_uint_eq(receiver_count(R), 5);
    ck_assert_uint_eq(s.delivered, 5);
    ck_assert_uint_eq(s.retried, 2);
    ck_assert_uint_eq(s.given_up, 0);
    ck_assert_uint_eq(s.pending, 0);
}
END_TEST

START_TEST(test_400_given_up_at_once_and_key_moves_on) {
    struct webhooks_options o = fast_opts();
    start(&o);
    receiver_fail_next(R, 1, 400);
    ck_assert_int_eq(post("k", url_of(R, "/hook"), "first", false), A2AD_OK);
    ck_assert_int_eq(post("k", url_of(R, "/hook"), "second", false), A2AD_OK);
    struct webhooks_stats s = wait_stats(1, 1, 5000);
    ck_assert_uint_eq(s.given_up, 1);
    ck_assert_uint_eq(s.delivered, 1);
    ck_assert_uint_eq(s.retried, 0);
    ck_assert_uint_eq(s.pending, 0);
    ck_assert_uint_eq(receiver_attempts(R), 2); /* "first" was sent once only */
    ck_assert_uint_eq(receiver_count(R), 1);
    ck_assert_str_eq(receiver_get(R, 0)->body, "second");
}
END_TEST

START_TEST(test_429_408_and_500_are_retried) {
    struct webhooks_options o = fast_opts();
    start(&o);
    const int codes[] = {429, 408, 500};
    for (int i = 0; i < 3; i++) {
        receiver_fail_next(R, 1, codes[i]);
        ck_assert_int_eq(post("k", url_of(R, "/hook"), "x", false), A2AD_OK);
        ck_assert_msg(receiver_wait(R, (size_t)i + 1, 5000), "HTTP %d was not retried", codes[i]);
    }
    struct webhooks_stats s = wait_stats(3, 0, 5000);
    ck_assert_uint_eq(s.delivered, 3);
    ck_assert_uint_eq(s.retried, 3);
    ck_assert_uint_eq(s.given_up, 0);
    ck_assert_uint_eq(receiver_attempts(R), 6);
}
END_TEST

START_TEST(test_gives_up_after_max_attempts) {
    struct webhooks_options o = fast_opts();
    o.max_attempts = 3;
    start(&o);
    receiver_fail_next(R, 1000, 503);
    ck_assert_int_eq(post("k", url_of(R, "/hook"), "doomed", false), A2AD_OK);
    struct webhooks_stats s = wait_stats(0, 1, 5000);
    ck_assert_uint_eq(s.given_up, 1);
    ck_assert_uint_eq(s.retried, 2);
    ck_assert_uint_eq(s.delivered, 0);
    ck_assert_uint_eq(s.pending, 0);
    sleep_ms(200); /* no further attempt after giving up */
    ck_assert_uint_eq(receiver_attempts(R), 3);

    /* The same key works again afterwards. */
    receiver_fail_next(R, 0, 0);
    ck_assert_int_eq(post("k", url_of(R, "/hook"), "later", false), A2AD_OK);
    ck_assert(receiver_wait(R, 1, 5000));
    ck_assert_str_eq(receiver_get(R, 0)->body, "later");
}
END_TEST

START_TEST(test_connection_refused_retried_then_given_up) {
    struct webhooks_options o = fast_opts();
    o.max_attempts = 3;
    start(&o);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", free_port());
    ck_assert_int_eq(post("k", url, "nobody home", false), A2AD_OK);
    struct webhooks_stats s = wait_stats(0, 1, 10000);
    ck_assert_uint_eq(s.given_up, 1);
    ck_assert_uint_eq(s.retried, 2);
    ck_assert_uint_eq(s.delivered, 0);
    ck_assert_uint_eq(s.pending, 0);
}
END_TEST

START_TEST(test_timeout_retried_then_given_up) {
    struct webhooks_options o = fast_opts();
    o.timeout_ms = 200;
    o.max_attempts = 2;
    start(&o);
    unsigned port;
    int fd = local_socket(true, &port); /* accepts, never answers */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", port);
    ck_assert_int_eq(post("k", url, "into the void", false), A2AD_OK);
    struct webhooks_stats s = wait_stats(0, 1, 10000);
    ck_assert_uint_eq(s.given_up, 1);
    ck_assert_uint_eq(s.retried, 1);
    ck_assert_uint_eq(s.pending, 0);
    close(fd);
}
END_TEST

START_TEST(test_failing_key_does_not_delay_other_keys) {
    struct webhooks_options o = fast_opts();
    o.max_attempts = 1000; /* A keeps retrying for the whole test */
    /* If A's backoff held anybody up, B's five POSTs would need 12 s. */
    o.backoff_initial_ms = o.backoff_max_ms = 3000;
    o.max_in_flight = 1; /* even with one slot, A's backoff must not block B */
    start(&o);
    struct receiver *bad = receiver_start();
    ck_assert_ptr_nonnull(bad);
    receiver_fail_next(bad, 100000, 503);

    ck_assert_int_eq(post("A", url_of(bad, "/a"), "A1", false), A2AD_OK);
    ck_assert_int_eq(post("A", url_of(bad, "/a"), "A2", false), A2AD_OK);
    for (int i = 1; i <= 5; i++) {
        char body[32];
        snprintf(body, sizeof body, "B%d", i);
        ck_assert_int_eq(post("B", url_of(R, "/b"), body, false), A2AD_OK);
    }
    ck_assert(receiver_wait(R, 5, 5000));
    for (size_t i = 0; i < 5; i++) {
        char want[32];
        snprintf(want, sizeof want, "B%zu", i + 1);
        ck_assert_str_eq(receiver_get(R, i)->body, want);
    }
    struct webhooks_stats s = wait_stats(5, 0, 5000);
    ck_assert_uint_eq(s.delivered, 5);
    ck_assert_uint_eq(s.given_up, 0);
    ck_assert_uint_eq(s.pending, 2); /* A1 still retrying, A2 behind it */
    ck_assert_uint_ge(receiver_attempts(bad), 1);
    ck_assert_uint_eq(receiver_count(bad), 0);

    webhooks_stop(0);
    receiver_stop(bad);
}
END_TEST

START_TEST(test_full_queue_rejects_but_accepts_essential) {
    struct webhooks_options o = fast_opts();
    o.max_pending = 2;
    start(&o);
    receiver_set_delay(R, 400); /* keeps the first two pending */
    ck_assert_int_eq(post("k1", url_of(R, "/hook"), "e1", false), A2AD_OK);
    ck_assert_int_eq(post("k2", url_of(R, "/hook"), "e2", false), A2AD_OK);
    ck_assert_int_eq(post("k3", url_of(R, "/hook"), "e3", false), A2AD_ERR_FULL);
    ck_assert_int_eq(post("k3", url_of(R, "/hook"), "e4", true), A2AD_OK);

    struct webhooks_stats s;
    webhooks_get_stats(&s);
    ck_assert_uint_eq(s.rejected, 1);
    ck_assert_uint_eq(s.pending, 3);

    ck_assert(receiver_wait(R, 3, 5000));
    s = wait_stats(3, 0, 5000);
    ck_assert_uint_eq(s.delivered, 3);
    ck_assert_uint_eq(s.pending, 0);
    ck_assert_ptr_nonnull(receiver_get(R, 2));
    bool got_e4 = false;
    for (size_t i = 0; i < 3; i++) {
        ck_assert_str_ne(receiver_get(R, i)->body, "e3");
        if (strcmp(receiver_get(R, i)->body, "e4") == 0) got_e4 = true;
    }
    ck_assert(got_e4);

    /* Room again once drained. */
    receiver_set_delay(R, 0);
    ck_assert_int_eq(post("k4", url_of(R, "/hook"), "e5", false), A2AD_OK);
}
END_TEST

START_TEST(test_stop_flushes_pending_with_retries) {
    struct webhooks_options o = fast_opts();
    o.max_in_flight = 2;
    start(&o);
    receiver_set_delay(R, 20);
    receiver_fail_next(R, 2, 503);
    for (int i = 0; i < 10; i++) {
        char body[32];
        snprintf(body, sizeof body, "%c%d", i % 2 ? 'b' : 'a', i / 2);
        ck_assert_int_eq(post(i % 2 ? "b" : "a", url_of(R, "/hook"), body, false), A2AD_OK);
    }
    webhooks_stop(10000);
    /* Everything arrived by the time stop returned; no waiting here. */
    ck_assert_uint_eq(receiver_count(R), 10);
    ck_assert_uint_eq(receiver_attempts(R), 12);
    int next[2] = {0, 0};
    for (size_t i = 0; i < 10; i++) {
        const char *body = receiver_get(R, i)->body;
        int k = body[0] - 'a';
        ck_assert_int_eq(atoi(body + 1), next[k]++);
    }
    struct webhooks_stats s;
    webhooks_get_stats(&s);
    ck_assert_uint_eq(s.delivered, 10);
    ck_assert_uint_eq(s.pending, 0);
}
END_TEST

START_TEST(test_stop_deadline_drops_what_cannot_be_delivered) {
    struct webhooks_options o = fast_opts();
    o.max_attempts = 1000;
    o.timeout_ms = 30000; /* the hanging request would outlive any test */
    start(&o);
    receiver_fail_next(R, 100000, 503);
    unsigned port;
    int fd = local_socket(true, &port);
    char hang[64];
    snprintf(hang, sizeof hang, "http://127.0.0.1:%u/hook", port);

    ck_assert_int_eq(post("failing", url_of(R, "/hook"), "never", false), A2AD_OK);
    ck_assert_int_eq(post("failing", url_of(R, "/hook"), "behind", false), A2AD_OK);
    ck_assert_int_eq(post("hanging", hang, "in flight", true), A2AD_OK);
    for (int i = 0; i < 200 && receiver_attempts(R) < 2; i++) sleep_ms(10);
    ck_assert_uint_ge(receiver_attempts(R), 2);

    uint64_t t0 = util_now_ms();
    webhooks_stop(300);
    uint64_t took = util_now_ms() - t0;
    ck_assert_msg(took < 10000, "stop took %llu ms", (unsigned long long)took);

    struct webhooks_stats s;
    webhooks_get_stats(&s);
    ck_assert_uint_eq(s.pending, 0);
    ck_assert_uint_eq(s.delivered, 0);
    ck_assert_uint_eq(s.given_up, 0); /* dropped at stop, not given up */
    ck_assert_uint_eq(receiver_count(R), 0);

    ck_assert_int_eq(post("late", url_of(R, "/hook"), "too late", true), A2AD_ERR_STATE);
    close(fd);
}
END_TEST

START_TEST(test_stop_without_start_and_restart) {
    webhooks_stop(1000); /* never started: nothing to do */
    ck_assert_int_eq(post("k", url_of(R, "/hook"), "early", true), A2AD_ERR_STATE);

    struct webhooks_options o = fast_opts();
    start(&o);
    webhooks_stop(1000); /* nothing was ever enqueued */
    webhooks_stop(1000); /* twice is harmless */

    start(&o);
    ck_assert_int_eq(post("k", url_of(R, "/hook"), "again", false), A2AD_OK);
    webhooks_stop(5000);
    ck_assert_uint_eq(receiver_count(R), 1);
    ck_assert_str_eq(receiver_get(R, 0)->body, "again");
}
END_TEST

START_TEST(test_rejects_invalid_arguments) {
    struct webhooks_options o = fast_opts();
    o.max_attempts = 0;
    ck_assert_int_eq(webhooks_start(&o), A2AD_ERR_INVALID);
    ck_assert_int_eq(webhooks_start(NULL), A2AD_ERR_INVALID);
    o = fast_opts();
    start(&o);
    ck_assert_int_eq(webhooks_start(&o), A2AD_ERR_STATE);

    ck_assert_int_eq(post("k", "", "x", false), A2AD_ERR_INVALID);
    ck_assert_int_eq(webhooks_enqueue("k", NULL, NULL, strdup("x"), 1, false), A2AD_ERR_INVALID);
    ck_assert_int_eq(webhooks_enqueue(NULL, url_of(R, "/"), NULL, strdup("x"), 1, false),
                     A2AD_ERR_INVALID);
    /* A header smuggling a second header (a client-chosen token, say). */
    const char *evil[] = {"X-A2A-Notification-Token: t\r\nX-Admin: yes", NULL};
    ck_assert_int_eq(webhooks_enqueue("k", url_of(R, "/"), evil, strdup("x"), 1, false),
                     A2AD_ERR_INVALID);
    /* Only http(s) is spoken, whatever URL a client registered. */
    ck_assert_int_eq(post("k", "file:///etc/passwd", "x", false), A2AD_OK);
    struct webhooks_stats s = wait_stats(0, 1, 5000);
    ck_assert_uint_eq(s.given_up, 1);
    ck_assert_uint_eq(s.retried, 0);
    /* An empty body is a valid POST. */
    ck_assert_int_eq(webhooks_enqueue("k", url_of(R, "/empty"), NULL, NULL, 0, false), A2AD_OK);
    ck_assert(receiver_wait(R, 1, 5000));
    ck_assert_uint_eq(receiver_get(R, 0)->len, 0);
    ck_assert_str_eq(receiver_get(R, 0)->path, "/empty");
}
END_TEST

START_TEST(test_many_keys_keep_their_own_order) {
    enum { KEYS = 100, EVENTS = 3 };
    struct webhooks_options o = fast_opts();
    start(&o);
    receiver_fail_next(R, 10, 503);
    for (int e = 0; e < EVENTS; e++) {
        for (int k = 0; k < KEYS; k++) {
            char key[32], body[32];
            snprintf(key, sizeof key, "task-%03d", k);
            snprintf(body, sizeof body, "%03d-%d", k, e);
            ck_assert_int_eq(post(key, url_of(R, "/hook"), body, false), A2AD_OK);
        }
    }
    ck_assert(receiver_wait(R, KEYS * EVENTS, 20000));
    int next[KEYS] = {0};
    for (size_t i = 0; i < KEYS * EVENTS; i++) {
        const char *body = receiver_get(R, i)->body;
        int k = atoi(body), e = atoi(body + 4);
        ck_assert_msg(e == next[k], "key %d: got event %d, expected %d", k, e, next[k]);
        next[k]++;
    }
    struct webhooks_stats s = wait_stats(KEYS * EVENTS, 0, 5000);
    ck_assert_uint_eq(s.delivered, KEYS * EVENTS);
    ck_assert_uint_eq(s.retried, 10);
    ck_assert_uint_eq(s.pending, 0);
}
END_TEST

Suite *webhooks_suite(void) {
    Suite *s = suite_create("webhooks");
    TCase *tc = tcase_create("delivery");
    tcase_add_unchecked_fixture(tc, global_setup, global_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_delivers_body_and_headers_exactly);
    tcase_add_test(tc, test_order_kept_across_503_retries);
    tcase_add_test(tc, test_400_given_up_at_once_and_key_moves_on);
    tcase_add_test(tc, test_429_408_and_500_are_retried);
    tcase_add_test(tc, test_gives_up_after_max_attempts);
    tcase_add_test(tc, test_connection_refused_retried_then_given_up);
    tcase_add_test(tc, test_timeout_retried_then_given_up);
    tcase_add_test(tc, test_failing_key_does_not_delay_other_keys);
    tcase_add_test(tc, test_full_queue_rejects_but_accepts_essential);
    tcase_add_test(tc, test_stop_flushes_pending_with_retries);
    tcase_add_test(tc, test_stop_deadline_drops_what_cannot_be_delivered);
    tcase_add_test(tc, test_stop_without_start_and_restart);
    tcase_add_test(tc, test_rejects_invalid_arguments);
    tcase_add_test(tc, test_many_keys_keep_their_own_order);
    suite_add_tcase(s, tc);
    return s;
}
