/* tls - the listener's certificate replaced by SIGHUP, against the real
 * binary: a renewed pair (same CA, new subject and serial) is served to new
 * connections at once, an open keep-alive connection keeps working, a broken
 * replacement leaves the previous pair in service with one error line, and
 * handshakes running while the pair changes all complete. What operators see:
 * `a2ad -t` checks the pair as start-up does, an expired certificate is
 * warned about, /metrics shows the served notAfter and the re-reads. The
 * certificates are made with the openssl command in the test's own folder.
 */
#include <check.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/daemon.h"
#include "support/json.h"

static struct daemon_proc dp;
static char tmp[64];
static char ca[128], cert[128], key[128]; /* the CA the clients trust; the files a2ad reads */

/* Run a shell command in the test's folder; it must succeed. */
static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...) {
    char cmd[1200], full[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "cd '%s' && (%s) >/dev/null 2>&1", tmp, cmd);
    ck_assert_msg(system(full) == 0, "failed: %s", cmd);
}

/* leaf-N.pem / leaf-N.key (subject CN=leaf-N, a serial of its own), signed
 * by the suite's CA, valid for days from now (negative: expired). */
static void make_leaf_days(const char *n, int days) {
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout leaf-%s.key "
       "-out leaf-%s.csr -subj /CN=leaf-%s && "
       "openssl x509 -req -in leaf-%s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days %d "
       "-extfile san.ext -out leaf-%s.pem",
       n, n, n, n, days, n);
}

static void make_leaf(const char *n) { make_leaf_days(n, 2); }

static void setup(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(tmp, sizeof tmp, "/tmp/a2ad-tls-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key "
       "-out ca.pem -subj /CN=a2ad-test-ca -days 2 && printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext");
    make_leaf("a");
    make_leaf("b");
    snprintf(ca, sizeof ca, "%s/ca.pem", tmp);
    snprintf(cert, sizeof cert, "%s/cert.pem", tmp);
    snprintf(key, sizeof key, "%s/key.pem", tmp);
}

static void teardown(void) {
    daemon_cleanup(&dp);
    memset(&dp, 0, sizeof dp);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmp);
    curl_global_cleanup();
}

/* Put leaf CERT_NAME's certificate and leaf KEY_NAME's key where a2ad reads
 * them, each by rename as deploy hooks do. */
static void install(const char *cert_name, const char *key_name) {
    sh("cp leaf-%s.pem cert.new && mv cert.new cert.pem && cp leaf-%s.key key.new && mv key.new key.pem",
       cert_name, key_name);
}

static size_t sink(char *p, size_t sz, size_t n, void *arg) {
    (void)p, (void)arg;
    return sz * n;
}

/* GET /healthz on c (trusting only the suite's CA): the HTTP status, or -1
 * when the transfer failed. subject: the served certificate's Subject line
 * when this transfer made a handshake, else "". */
static long get(CURL *c, char *subject, size_t n) {
    char url[100];
    snprintf(url, sizeof url, "https://127.0.0.1:%u/healthz", dp.port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_CERTINFO, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long code = -1;
    if (subject) subject[0] = '\0';
    if (curl_easy_perform(c) != CURLE_OK) return -1;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    struct curl_certinfo *ci = NULL;
    if (subject && curl_easy_getinfo(c, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci && ci->num_of_certs > 0)
        for (struct curl_slist *s = ci->certinfo[0]; s; s = s->next)
            if (strncmp(s->data, "Subject:", 8) == 0) snprintf(subject, n, "%s", s->data);
    return code;
}

/* A new connection's status and served subject. */
static long get_new(char *subject, size_t n) {
    CURL *c = curl_easy_init();
    long code = get(c, subject, n);
    curl_easy_cleanup(c);
    return code;
}

/* A new TLS 1.2 connection's status; *chain: certificates served. */
static long get_tls12(char *subject, size_t n, int *chain) {
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
    long code = get(c, subject, n);
    struct curl_certinfo *ci = NULL;
    *chain = curl_easy_getinfo(c, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci ? ci->num_of_certs : -1;
    curl_easy_cleanup(c);
    return code;
}

static int count_in_log(const char *what) {
    char *log = daemon_log(&dp);
    int k = 0;
    for (const char *p = log; (p = strstr(p, what)); p++) k++;
    free(log);
    return k;
}

/* Waits (bounded) until the log holds what count times. */
static bool log_waits_for(const char *what, int count) {
    for (int i = 0; i < 1000; i++) {
        if (count_in_log(what) >= count) return true;
        test_nap_ms(10);
    }
    return false;
}

static void start_with_pair(void) {
    char lines[400];
    snprintf(lines, sizeof lines, "tls_cert_file = %s\ntls_key_file = %s", cert, key);
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo", .server_extra = lines};
    if (!daemon_start(&dp, &o)) {
        char *log = daemon_log(&dp);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

static void hup_and_wait(const char *what, int count) {
    ck_assert_int_eq(kill(dp.pid, SIGHUP), 0);
    ck_assert_msg(log_waits_for(what, count), "no \"%s\" (x%d) in the log", what, count);
}

/* Renewal: new connections get the new pair at once, an open keep-alive
 * connection keeps working; broken replacements are refused with one line
 * naming the file and the problem while the running pair stays. */
START_TEST(sighup_replaces_certificate) {
    char subject[300];
    install("a", "a");
    start_with_pair();
    ck_assert_int_eq(count_in_log("http: TLS certificate"), 1);
    ck_assert_int_eq(count_in_log("CN=leaf-a"), 1);

    CURL *kept = curl_easy_init();
    ck_assert_int_eq(get(kept, subject, sizeof subject), 200);
    ck_assert_msg(strstr(subject, "leaf-a"), "served %s", subject);

    /* the renewed pair */
    install("b", "b");
    hup_and_wait("reload: TLS certificate", 1);
    char *log = daemon_log(&dp);
    ck_assert_msg(strstr(log, "reload: TLS certificate") && strstr(strstr(log, "reload: TLS certificate"), "CN=leaf-b") &&
                      strstr(strstr(log, "reload: TLS certificate"), "notAfter 20"),
                  "%s", log);
    free(log);
    ck_assert_int_eq(get_new(subject, sizeof subject), 200);
    ck_assert_msg(strstr(subject, "leaf-b"), "served %s", subject);
    /* the connection opened before still answers, on the same connection */
    long connects = -1;
    ck_assert_int_eq(get(kept, NULL, 0), 200);
    curl_easy_getinfo(kept, CURLINFO_NUM_CONNECTS, &connects);
    ck_assert_int_eq(connects, 0);
    curl_easy_cleanup(kept);

    /* garbage instead of the certificate */
    sh("printf 'not a certificate\\n' > cert.new && mv cert.new cert.pem");
    hup_and_wait("reload: [server] tls_cert_file = ", 1);
    ck_assert_int_eq(count_in_log("not a PEM file (no -----BEGIN line); new connections keep the previous TLS certificate"), 1);
    ck_assert_int_eq(get_new(subject, sizeof subject), 200);
    ck_assert_msg(strstr(subject, "leaf-b"), "served %s", subject);

    /* a PEM without a certificate in it */
    sh("cp leaf-a.key cert.pem");
    hup_and_wait("reload: [server] tls_cert_file = ", 2);
    ck_assert_int_eq(count_in_log("no readable PEM certificate"), 1);

    /* a certificate whose key is not the one beside it */
    install("a", "b");
    hup_and_wait("the key does not match the certificate in", 1);
    ck_assert_int_eq(get_new(subject, sizeof subject), 200);
    ck_assert_msg(strstr(subject, "leaf-b"), "served %s", subject);
    /* a missing key file */
    sh("rm key.pem");
    hup_and_wait("reload: [server] tls_key_file = ", 2);
    ck_assert_int_eq(count_in_log("key.pem: cannot open: No such file or directory"), 1);
    ck_assert_int_eq(count_in_log("reload: TLS certificate"), 1);

    /* a good pair again: taken */
    install("a", "a");
    hup_and_wait("reload: TLS certificate", 2);
    ck_assert_int_eq(get_new(subject, sizeof subject), 200);
    ck_assert_msg(strstr(subject, "leaf-a"), "served %s", subject);

    /* a full chain (certificate, then its CA) as an ACME client writes it, to a TLS 1.2 client */
    sh("cat leaf-b.pem ca.pem > cert.new && mv cert.new cert.pem && cp leaf-b.key key.pem");
    hup_and_wait("reload: TLS certificate", 3);
    int chain = 0;
    ck_assert_int_eq(get_tls12(subject, sizeof subject, &chain), 200);
    ck_assert_msg(strstr(subject, "leaf-b"), "served %s", subject);
    ck_assert_int_eq(chain, 2);

    /* the rest of the reload still happened each time, and no key reached the log */
    ck_assert_int_eq(count_in_log(" applied (credentials"), 7);
    ck_assert_int_eq(count_in_log("PRIVATE KEY"), 0);
    ck_assert_int_eq(count_in_log("tls_cert_file (TLS on or off)"), 0);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

/* Turning TLS off needs a restart: the reload says so and HTTPS goes on. */
START_TEST(tls_off_needs_restart) {
    char subject[300];
    install("a", "a");
    start_with_pair();
    /* comment the two lines out of the running configuration */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "sed -i 's/^tls_/# tls_/' '%s'", dp.conf);
    ck_assert_int_eq(system(cmd), 0);
    hup_and_wait(" applied (credentials", 1);
    ck_assert_int_eq(count_in_log("reload: [server] tls_cert_file (TLS on or off) changed; it takes effect at the next restart"), 1);
    ck_assert_int_eq(count_in_log("reload: TLS certificate"), 0);
    ck_assert_int_eq(get_new(subject, sizeof subject), 200);
    ck_assert_msg(strstr(subject, "leaf-a"), "served %s", subject);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

/* A pair that does not match refuses the start, naming the file. */
START_TEST(mismatched_pair_refuses_start) {
    install("a", "b");
    char lines[400];
    snprintf(lines, sizeof lines, "tls_cert_file = %s\ntls_key_file = %s", cert, key);
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo", .server_extra = lines};
    ck_assert(!daemon_start(&dp, &o));
    char want[600];
    snprintf(want, sizeof want, "[server] tls_key_file = %s: the key does not match the certificate in %s", key, cert);
    ck_assert_int_eq(count_in_log(want), 1);
    ck_assert_int_eq(count_in_log("PRIVATE KEY"), 0);
}
END_TEST

#define CLIENTS 2
#define HANDSHAKES 25
#define SWAPS 8

struct client {
    pthread_t t;
    int ok, a, b;
};

static void *client_run(void *arg) {
    struct client *cl = arg;
    char subject[300];
    for (int i = 0; i < HANDSHAKES; i++) {
        if (get_new(subject, sizeof subject) != 200) continue;
        cl->ok++;
        if (strstr(subject, "leaf-a")) cl->a++;
        if (strstr(subject, "leaf-b")) cl->b++;
    }
    return NULL;
}

/* Handshakes on the server's threads while SIGHUPs replace the pair: every
 * one completes with one of the two certificates (the sanitizer builds check
 * that no replaced pair is freed while a connection may use it). */
START_TEST(handshakes_during_swaps) {
    install("a", "a");
    start_with_pair();
    struct client cl[CLIENTS] = {0};
    for (int i = 0; i < CLIENTS; i++) ck_assert_int_eq(pthread_create(&cl[i].t, NULL, client_run, &cl[i]), 0);
    for (int i = 1; i <= SWAPS; i++) {
        install(i % 2 ? "b" : "a", i % 2 ? "b" : "a");
        hup_and_wait("reload: TLS certificate", i);
    }
    int ok = 0, seen = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(cl[i].t, NULL);
        ok += cl[i].ok;
        seen += cl[i].a + cl[i].b;
    }
    ck_assert_int_eq(ok, CLIENTS * HANDSHAKES);
    ck_assert_int_eq(seen, CLIENTS * HANDSHAKES);
    ck_assert_int_eq(count_in_log("reload: [server] tls_"), 0);
    ck_assert_int_eq(daemon_stop(&dp, 20000), 0);
}
END_TEST

/* ---- what operators see: a2ad -t and /metrics --------------------------- */

static void write_pair_conf(void) {
    char lines[400];
    snprintf(lines, sizeof lines, "tls_cert_file = %s\ntls_key_file = %s", cert, key);
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo", .server_extra = lines};
    ck_assert(daemon_prepare(&dp, &o));
}

/* `a2ad -t` reads the pair as start-up does: a key of another certificate is
 * refused naming both files, a good pair passes (-v shows its subject and
 * notAfter), an expired certificate passes with a warning. */
START_TEST(check_mode_reads_the_pair) {
    install("a", "b");
    write_pair_conf();
    ck_assert_int_eq(daemon_run_args(&dp, "-t", 10000), 1);
    char want[600];
    snprintf(want, sizeof want, "a2ad: [server] tls_key_file = %s: the key does not match the certificate in %s", key, cert);
    ck_assert_int_eq(count_in_log(want), 1);
    ck_assert_int_eq(count_in_log("configuration refused (see above)"), 1);
    ck_assert_int_eq(count_in_log("PRIVATE KEY"), 0);

    sh("rm cert.pem");
    ck_assert_int_eq(daemon_run_args(&dp, "-t", 10000), 1);
    snprintf(want, sizeof want, "a2ad: [server] tls_cert_file = %s: cannot open: No such file or directory", cert);
    ck_assert_int_eq(count_in_log(want), 1);

    install("a", "a");
    ck_assert_int_eq(daemon_run_args(&dp, "-t", 10000), 0);
    ck_assert_int_eq(count_in_log(": configuration ok"), 1);
    ck_assert_int_eq(count_in_log("CN=leaf-a"), 0); /* details only with -v */
    ck_assert_int_eq(daemon_run_args(&dp, "-tv", 10000), 0);
    ck_assert_int_eq(count_in_log(": configuration ok"), 2);
    snprintf(want, sizeof want, "# TLS certificate %s: subject CN=leaf-a, serial ", cert);
    ck_assert_int_eq(count_in_log(want), 1);
    ck_assert_int_eq(count_in_log(", notAfter 20"), 1);
    ck_assert_int_eq(count_in_log("expired"), 0);

    make_leaf_days("old", -1);
    install("old", "old");
    ck_assert_int_eq(daemon_run_args(&dp, "-t", 10000), 0);
    ck_assert_int_eq(count_in_log(": configuration ok"), 3);
    snprintf(want, sizeof want, "a2ad: warning: [server] tls_cert_file = %s: the certificate has expired: subject CN=leaf-old", cert);
    ck_assert_int_eq(count_in_log(want), 1);
}
END_TEST

/* An expired certificate is served, with a warning at start and at reload. */
START_TEST(expired_certificate_warns) {
    make_leaf_days("old", -1);
    install("old", "old");
    start_with_pair();
    char want[600];
    snprintf(want, sizeof want, "warning http: [server] tls_cert_file = %s: the certificate expired at 20", cert);
    ck_assert_int_eq(count_in_log(want), 1);
    hup_and_wait("reload: TLS certificate", 1);
    snprintf(want, sizeof want, "warning reload: [server] tls_cert_file = %s: the certificate expired at 20", cert);
    ck_assert_msg(log_waits_for(want, 1), "no \"%s\" in the log", want);
    install("a", "a");
    hup_and_wait("reload: TLS certificate", 2);
    ck_assert_int_eq(count_in_log("certificate expired at"), 2);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

static size_t collect(char *p, size_t sz, size_t n, void *arg) {
    char **buf = arg;
    size_t old = *buf ? strlen(*buf) : 0;
    char *nb = realloc(*buf, old + sz * n + 1);
    if (!nb) return 0;
    memcpy(nb + old, p, sz * n);
    nb[old + sz * n] = '\0';
    *buf = nb;
    return sz * n;
}

/* GET /metrics over HTTPS (or HTTP when tls is false); the page (malloc'd). */
static char *metrics_page(bool tls) {
    char url[100];
    snprintf(url, sizeof url, "%s://127.0.0.1:%u/metrics", tls ? "https" : "http", dp.port);
    CURL *c = curl_easy_init();
    char *page = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &page);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long code = -1;
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    ck_assert_int_eq(code, 200);
    ck_assert_ptr_nonnull(page);
    return page;
}

/* The value of the sample line that starts with series (name and labels). */
static long long sample(const char *page, const char *series) {
    char pat[200];
    snprintf(pat, sizeof pat, "\n%s ", series);
    const char *at = strstr(page, pat);
    ck_assert_msg(at, "no %s in:\n%s", series, page);
    return strtoll(at + strlen(pat), NULL, 10);
}

/* leaf-N.pem's notAfter as a Unix time, as openssl reads it. */
static long long not_after_of(const char *n) {
    sh("date -u -d \"$(openssl x509 -enddate -noout -in leaf-%s.pem | cut -d= -f2)\" +%%s > leaf-%s.end", n, n);
    char path[200];
    snprintf(path, sizeof path, "%s/leaf-%s.end", tmp, n);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    long long t = 0;
    ck_assert_int_eq(fscanf(f, "%lld", &t), 1);
    fclose(f);
    ck_assert(t > 1700000000LL);
    return t;
}

#define NOT_AFTER "a2ad_tls_certificate_not_after_seconds"
#define RELOADS_OK "a2ad_tls_reloads_total{result=\"ok\"}"
#define RELOADS_FAILED "a2ad_tls_reloads_total{result=\"failed\"}"

/* /metrics: the served certificate's notAfter, following a renewal with
 * another validity, and the re-reads by outcome. */
START_TEST(metrics_follow_the_certificate) {
    make_leaf_days("long", 30);
    long long a_end = not_after_of("a"), long_end = not_after_of("long");
    ck_assert(long_end - a_end > 20 * 86400LL);
    install("a", "a");
    start_with_pair();
    char *page = metrics_page(true);
    ck_assert_msg(strstr(page, "# TYPE " NOT_AFTER " gauge\n"), "%s", page);
    ck_assert_msg(strstr(page, "# TYPE a2ad_tls_reloads_total counter\n"), "%s", page);
    ck_assert_int_eq(sample(page, NOT_AFTER), a_end);
    ck_assert_int_eq(sample(page, RELOADS_OK), 0);
    ck_assert_int_eq(sample(page, RELOADS_FAILED), 0);
    free(page);

    install("long", "long");
    hup_and_wait("reload: TLS certificate", 1);
    page = metrics_page(true);
    ck_assert_int_eq(sample(page, NOT_AFTER), long_end);
    ck_assert_int_eq(sample(page, RELOADS_OK), 1);
    ck_assert_int_eq(sample(page, RELOADS_FAILED), 0);
    free(page);

    /* a key that does not match: counted as failed, the served pair (and its notAfter) stay */
    install("a", "long");
    hup_and_wait("the key does not match the certificate in", 1);
    page = metrics_page(true);
    ck_assert_int_eq(sample(page, NOT_AFTER), long_end);
    ck_assert_int_eq(sample(page, RELOADS_OK), 1);
    ck_assert_int_eq(sample(page, RELOADS_FAILED), 1);
    free(page);

    install("a", "a");
    hup_and_wait("reload: TLS certificate", 2);
    page = metrics_page(true);
    ck_assert_int_eq(sample(page, NOT_AFTER), a_end);
    ck_assert_int_eq(sample(page, RELOADS_OK), 2);
    ck_assert_int_eq(sample(page, RELOADS_FAILED), 1);
    free(page);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

/* Without TLS the page has no TLS series (an alert on a missing notAfter
 * would otherwise fire for every plain-HTTP daemon). */
START_TEST(metrics_without_tls) {
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo"};
    ck_assert(daemon_start(&dp, &o));
    char *page = metrics_page(false);
    ck_assert_msg(strstr(page, "a2ad_http_requests_total") || strstr(page, "a2ad_tasks "), "%s", page);
    ck_assert_ptr_null(strstr(page, "a2ad_tls_"));
    free(page);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

Suite *tls_suite(void);
Suite *tls_suite(void) {
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("reload");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, sighup_replaces_certificate);
    tcase_add_test(tc, tls_off_needs_restart);
    tcase_add_test(tc, mismatched_pair_refuses_start);
    tcase_add_test(tc, handshakes_during_swaps);
    suite_add_tcase(s, tc);
    tc = tcase_create("operators");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, check_mode_reads_the_pair);
    tcase_add_test(tc, expired_certificate_warns);
    tcase_add_test(tc, metrics_follow_the_certificate);
    tcase_add_test(tc, metrics_without_tls);
    suite_add_tcase(s, tc);
    return s;
}
