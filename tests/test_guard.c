/* Tests of the webhook guards: the SSRF guard (every address form, at
 * registration and at connect time, against the real binary), Standard
 * Webhooks signatures checked by an independent receiver (the Python
 * snippet of the README, run as is), and per-destination fairness (a
 * black-hole receiver does not delay another client's webhook).
 *
 * Only these tests run the daemon without [webhooks] allow_networks
 * (daemon_opts.guard_default); the receivers are all on 127.0.0.1.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "delivery/guard.h"
#include "support/daemon.h"
#include "support/json.h"
#include "support/receiver.h"
#include "util.h"
#include "delivery/webhooks.h"

Suite *guard_suite(void);

/* ---- unit: classification ---------------------------------------------- */

static enum guard_class class_of(const char *text) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
    } else {
        ck_assert_msg(inet_pton(AF_INET6, text, &in6->sin6_addr) == 1, "bad test address %s", text);
        in6->sin6_family = AF_INET6;
    }
    return guard_classify((struct sockaddr *)&ss);
}

START_TEST(every_address_form_is_classified) {
    static const struct {
        const char *addr;
        enum guard_class want;
    } cases[] = {
        {"127.0.0.1", GUARD_LOOPBACK},       {"127.255.1.2", GUARD_LOOPBACK},
        {"10.0.0.1", GUARD_PRIVATE},         {"172.16.0.1", GUARD_PRIVATE},
        {"172.31.255.255", GUARD_PRIVATE},   {"192.168.1.1", GUARD_PRIVATE},
        {"169.254.169.254", GUARD_LINK_LOCAL}, {"100.64.0.1", GUARD_CGNAT},
        {"100.127.255.255", GUARD_CGNAT},    {"224.0.0.1", GUARD_MULTICAST},
        {"239.255.255.250", GUARD_MULTICAST}, {"0.0.0.0", GUARD_UNSPECIFIED},
        {"0.1.2.3", GUARD_UNSPECIFIED},      {"255.255.255.255", GUARD_BROADCAST},
        {"240.0.0.1", GUARD_RESERVED},       {"::1", GUARD_LOOPBACK},
        {"::", GUARD_UNSPECIFIED},           {"fe80::1", GUARD_LINK_LOCAL},
        {"febf::1", GUARD_LINK_LOCAL},       {"fc00::1", GUARD_UNIQUE_LOCAL},
        {"fd12:3456::1", GUARD_UNIQUE_LOCAL}, {"ff02::1", GUARD_MULTICAST},
        /* IPv4-mapped, -translated, -compatible, NAT64 and 6to4 forms */
        {"::ffff:127.0.0.1", GUARD_LOOPBACK}, {"::ffff:169.254.169.254", GUARD_LINK_LOCAL},
        {"::ffff:10.1.2.3", GUARD_PRIVATE},  {"::ffff:0.0.0.0", GUARD_UNSPECIFIED},
        {"::ffff:0:127.0.0.1", GUARD_LOOPBACK}, {"::127.0.0.1", GUARD_LOOPBACK},
        {"::192.168.0.1", GUARD_PRIVATE},    {"64:ff9b::a9fe:a9fe", GUARD_LINK_LOCAL},
        {"2002:7f00:1::1", GUARD_LOOPBACK},  {"2002:c0a8:101::", GUARD_PRIVATE},
        /* public */
        {"8.8.8.8", GUARD_PUBLIC},           {"1.1.1.1", GUARD_PUBLIC},
        {"100.63.255.255", GUARD_PUBLIC},    {"100.128.0.0", GUARD_PUBLIC},
        {"172.32.0.1", GUARD_PUBLIC},        {"169.253.255.255", GUARD_PUBLIC},
        {"2606:4700:4700::1111", GUARD_PUBLIC}, {"::ffff:8.8.8.8", GUARD_PUBLIC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(class_of(cases[i].addr) == cases[i].want, "%s: class %s, expected %s",
                      cases[i].addr, guard_class_name(class_of(cases[i].addr)),
                      guard_class_name(cases[i].want));
}
END_TEST

static void unit_setup(void) { ck_assert_int_eq(guard_set_allow(""), A2AD_OK); }

/* Every spelling of an internal address in a URL is refused at
 * registration, with the rule named. */
START_TEST(url_literal_forms_are_refused_with_the_rule) {
    static const struct {
        const char *url, *shown, *rule;
    } cases[] = {
        {"http://127.0.0.1:8080/hook", "127.0.0.1", "loopback"},
        {"http://2130706433/", "127.0.0.1", "loopback"},      /* decimal */
        {"http://0x7f000001/", "127.0.0.1", "loopback"},      /* hex */
        {"http://0177.0.0.1/", "127.0.0.1", "loopback"},      /* octal */
        {"http://0x7f.1/", "127.0.0.1", "loopback"},          /* mixed, short */
        {"http://127.1/", "127.0.0.1", "loopback"},           /* short */
        {"http://[::1]:9/", "::1", "loopback"},
        {"http://[::ffff:127.0.0.1]/", "127.0.0.1", "loopback"},
        {"http://[::ffff:7f00:1]/", "127.0.0.1", "loopback"},
        {"http://0.0.0.0/", "0.0.0.0", "unspecified"},
        {"http://0/", "0.0.0.0", "unspecified"},
        {"http://[::]/", "::", "unspecified"},
        {"http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"},
        {"http://2852039166/", "169.254.169.254", "link-local"},
        {"http://[fe80::1%25eth0]/", "fe80::1", "link-local"},
        {"https://10.0.0.5/", "10.0.0.5", "private"},
        {"https://192.168.1.1:8443/x", "192.168.1.1", "private"},
        {"http://100.64.1.1/", "100.64.1.1", "CGNAT"},
        {"http://[fd00::1]/", "fd00::1", "unique-local"},
        {"http://224.0.0.251/", "224.0.0.251", "multicast"},
        {"http://255.255.255.255/", "255.255.255.255", "broadcast"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        ck_assert_msg(!guard_check_url(cases[i].url, "pushNotificationConfig.url", err, sizeof err),
                      "%s accepted", cases[i].url);
        ck_assert_msg(strncmp(err, "pushNotificationConfig.url: ", 28) == 0, "%s: %s", cases[i].url, err);
        ck_assert_msg(strstr(err, cases[i].shown) && strstr(err, cases[i].rule) &&
                          strstr(err, "refused (see [webhooks] allow_networks)"),
                      "%s: %s", cases[i].url, err);
    }
    char err[512];
    ck_assert(!guard_check_url("http://169.254.169.254/", "pushNotificationConfig.url", err, sizeof err));
    ck_assert_str_eq(err, "pushNotificationConfig.url: 169.254.169.254 is link-local; refused "
                          "(see [webhooks] allow_networks)");
}
END_TEST

START_TEST(a_name_resolving_to_loopback_is_refused) {
    char err[512];
    ck_assert(!guard_check_url("http://localhost:8080/hook", "x.url", err, sizeof err));
    ck_assert_msg(strstr(err, "x.url: localhost resolves to ") && strstr(err, "is loopback"), "%s", err);
    ck_assert(!guard_check_url("http://LocalHost:1/hook", "x.url", err, sizeof err));
    /* public literals, and names that do not resolve now, pass (delivery checks again) */
    ck_assert(guard_check_url("https://8.8.8.8/hook", "x.url", err, sizeof err));
    ck_assert(guard_check_url("http://[2606:4700:4700::1111]/", "x.url", err, sizeof err));
    ck_assert(guard_check_url("https://no-such-host.invalid/hook", "x.url", err, sizeof err));
    ck_assert(!guard_check_url("http://", "x.url", err, sizeof err));
    ck_assert_str_eq(err, "x.url is not a valid http:// or https:// URL");
}
END_TEST

START_TEST(the_allowlist_admits_only_its_networks) {
    char err[512];
    ck_assert_int_eq(guard_set_allow("127.0.0.0/8, 10.1.0.0/16"), A2AD_OK);
    ck_assert(guard_check_url("http://127.0.0.1:1/", "u", err, sizeof err));
    ck_assert(guard_check_url("http://2130706433/", "u", err, sizeof err));
    ck_assert(guard_check_url("http://[::ffff:127.0.0.1]/", "u", err, sizeof err));
    ck_assert(guard_check_url("http://10.1.200.3/", "u", err, sizeof err));
    ck_assert(!guard_check_url("http://10.2.0.1/", "u", err, sizeof err));
    ck_assert(!guard_check_url("http://[::1]/", "u", err, sizeof err));
    ck_assert(!guard_check_url("http://169.254.169.254/", "u", err, sizeof err));
    ck_assert_int_eq(guard_set_allow("::1/128"), A2AD_OK);
    ck_assert(guard_check_url("http://[::1]/", "u", err, sizeof err));
    ck_assert(!guard_check_url("http://127.0.0.1/", "u", err, sizeof err));
    ck_assert_int_eq(guard_set_allow(""), A2AD_OK);
    ck_assert(!guard_check_url("http://[::1]/", "u", err, sizeof err));
}
END_TEST

START_TEST(bad_allowlists_are_config_errors) {
    ck_assert_ptr_null(guard_networks_check(""));
    ck_assert_ptr_null(guard_networks_check("127.0.0.0/8, ::1/128"));
    ck_assert_ptr_null(guard_networks_check("10.0.0.1 fd00::/8"));
    static const char *const bad[] = {"127.0.0.0/33", "localhost", "1.2.3.4/x", "::1/129",
                                      "1.2.3.4/", "10.0.0.0/8,foo"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(guard_networks_check(bad[i]) != NULL, "%s accepted", bad[i]);
    /* through the real binary: a2ad -t names the key */
    struct daemon_proc d;
    memset(&d, 0, sizeof d);
    struct daemon_opts o = {.plugins = "echo", .guard_default = true,
                            .webhooks_extra = "allow_networks = 127.0.0.0/40"};
    ck_assert(daemon_prepare(&d, &o));
    ck_assert_int_ne(daemon_run_args(&d, "-t", 10000), 0);
    char *log = daemon_log(&d);
    ck_assert_msg(strstr(log, "allow_networks"), "%s", log);
    free(log);
    daemon_cleanup(&d);
}
END_TEST

/* In the delivery module itself: the address connected is checked, so a
 * name that passes (or was never checked) cannot reach loopback. */
START_TEST(the_connected_address_is_checked) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct receiver *r = receiver_start();
    ck_assert_ptr_nonnull(r);
    struct webhooks_options o = {.timeout_ms = 2000, .connect_timeout_ms = 1000, .max_attempts = 3,
                                 .backoff_initial_ms = 10, .backoff_max_ms = 20,
                                 .max_in_flight = 4, .max_pending = 100};
    ck_assert_int_eq(webhooks_start(&o), A2AD_OK);
    char url[128];
    snprintf(url, sizeof url, "http://localhost:%u/hook", receiver_port(r));
    ck_assert_int_eq(webhooks_enqueue("k", url, NULL, strdup("{}"), 2, false), A2AD_OK);
    snprintf(url, sizeof url, "http://2130706433:%u/hook", receiver_port(r));
    ck_assert_int_eq(webhooks_enqueue("k2", url, NULL, strdup("{}"), 2, false), A2AD_OK);
    struct webhooks_stats s = {0};
    for (int i = 0; i < 500; i++) {
        webhooks_get_stats(&s);
        if (s.given_up == 2) break;
        test_nap_ms(10);
    }
    ck_assert_uint_eq(s.given_up, 2);
    ck_assert_uint_eq(s.refused, 2);
    ck_assert_uint_eq(s.retried, 0); /* refused once and for all */
    ck_assert_uint_eq(receiver_attempts(r), 0);
    webhooks_stop(0);
    /* allowed: the same goes through */
    ck_assert_int_eq(guard_set_allow("127.0.0.0/8, ::1/128"), A2AD_OK);
    ck_assert_int_eq(webhooks_start(&o), A2AD_OK);
    ck_assert_int_eq(webhooks_enqueue("k", url, NULL, strdup("{}"), 2, false), A2AD_OK);
    ck_assert(receiver_wait(r, 1, 5000));
    webhooks_stop(1000);
    guard_set_allow("");
    receiver_stop(r);
    curl_global_cleanup();
}
END_TEST

/* ---- integration: the real binary ---------------------------------------- */

static struct daemon_proc dp;
static struct receiver *rcv;

static void int_setup(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(&dp, 0, sizeof dp);
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
}

static void int_teardown(void) {
    if (dp.pid > 0) daemon_stop(&dp, 15000);
    daemon_cleanup(&dp);
    receiver_stop(rcv);
    curl_global_cleanup();
}

static void start_or_fail(const struct daemon_opts *o) {
    if (!daemon_start(&dp, o)) {
        char *log = daemon_log(&dp);
        ck_abort_msg("daemon did not start:\n%s", log ? log : "(no log)");
    }
}

/* message/send to echo with an inline 0.3 push config; the answer. */
static cJSON *send_with_push(const char *url, long *status) {
    char body[1024];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
             "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":"
             "\"text\",\"text\":\"hi\"}]},\"configuration\":{\"blocking\":false,"
             "\"pushNotificationConfig\":{\"url\":\"%s\"}}}}",
             url);
    return rpc_call(dp.port, "/agents/echo", body, status);
}

static void assert_refused(cJSON *r, const char *want1, const char *want2) {
    ck_assert_int_eq(json_int(r, "error.code"), -32602);
    const char *m = json_str(r, "error.message");
    ck_assert_msg(strstr(m, want1) && strstr(m, want2) && strstr(m, "allow_networks"), "%s", m);
}

START_TEST(binary_refuses_internal_webhooks_at_registration) {
    struct daemon_opts o = {.plugins = "echo", .guard_default = true};
    start_or_fail(&o);
    long st;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", receiver_port(rcv));
    cJSON *r = send_with_push(url, &st);
    assert_refused(r, "pushNotificationConfig.url: 127.0.0.1 is loopback", "refused");
    cJSON_Delete(r);
    static const char *const forms[] = {"http://169.254.169.254/latest", "http://0x7f000001:9/",
                                        "http://[::ffff:127.0.0.1]:9/", "http://[::1]:9/",
                                        "http://0.0.0.0:9/", "http://017700000001/"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        r = send_with_push(forms[i], &st);
        ck_assert_msg(json_int(r, "error.code") == -32602, "%s: %s", forms[i],
                      json_str(r, "error.message"));
        cJSON_Delete(r);
    }
    snprintf(url, sizeof url, "http://localhost:%u/hook", receiver_port(rcv));
    r = send_with_push(url, &st);
    assert_refused(r, "localhost resolves to", "loopback");
    cJSON_Delete(r);

    /* pushNotificationConfig/set on an existing task */
    r = send_with_push("https://8.8.8.8/hook", &st);
    const char *tid = json_str(r, "result.id");
    ck_assert_msg(strcmp(tid, "(absent)") != 0, "send failed");
    char body[1024];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tasks/pushNotificationConfig/set\","
             "\"params\":{\"taskId\":\"%s\",\"pushNotificationConfig\":{\"url\":"
             "\"http://169.254.169.254/\"}}}", tid);
    cJSON_Delete(r);
    r = rpc_call(dp.port, "/agents/echo", body, &st);
    assert_refused(r, "169.254.169.254 is link-local", "refused");
    cJSON_Delete(r);

    /* the Health Universe URLs */
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"message/send\",\"params\":{\"message\":"
             "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":"
             "\"text\",\"text\":\"hi\"}]},\"metadata\":{\"https://healthuniverse.com/ext/"
             "background_job/v1\":{\"job_id\":\"j\",\"api_key\":\"k\"},"
             "\"job_status_update_url\":\"http://10.0.0.7/s\"}}}");
    r = rpc_call(dp.port, "/agents/echo", body, &st);
    assert_refused(r, "job_status_update_url: 10.0.0.7 is private", "refused");
    cJSON_Delete(r);
    ck_assert_uint_eq(receiver_attempts(rcv), 0);
}
END_TEST

/* tasks/get of tid on echo, polled until metadata.a2ad.webhooksGivenUp
 * has an entry; the task (caller frees). */
static cJSON *wait_given_up(const char *tid) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", tid);
    cJSON *t = NULL;
    for (int i = 0; i < 500; i++) {
        cJSON_Delete(t);
        long st;
        t = rpc_call(dp.port, "/agents/echo", body, &st);
        if (json_at(t, "result.metadata.a2ad.webhooksGivenUp.0")) return t;
        test_nap_ms(20);
    }
    return t;
}

START_TEST(binary_delivers_with_allowlist_and_hides_the_receiver_status) {
    struct daemon_opts o = {.plugins = "echo"}; /* allow_networks = loopback */
    start_or_fail(&o);
    char url[128];
    snprintf(url, sizeof url, "http://localhost:%u/hook", receiver_port(rcv));
    long st;
    cJSON *r = send_with_push(url, &st);
    ck_assert_msg(json_at(r, "result.id"), "%s", json_str(r, "error.message"));
    cJSON_Delete(r);
    ck_assert(receiver_wait(rcv, 1, 10000));

    /* a receiver answering 404: clients see "delivery failed", the log the status */
    receiver_fail_next(rcv, 1000, 404);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/missing", receiver_port(rcv));
    r = send_with_push(url, &st);
    char tid[64];
    snprintf(tid, sizeof tid, "%s", json_str(r, "result.id"));
    cJSON_Delete(r);
    cJSON *t = wait_given_up(tid);
    const char *reason = json_str(t, "result.metadata.a2ad.webhooksGivenUp.0.reason");
    ck_assert_str_eq(reason, "delivery failed");
    char *text = cJSON_PrintUnformatted(t);
    /* (ids are random hex, so look for the status as the log words it) */
    ck_assert_msg(!strstr(text, "HTTP") && !strstr(text, " 404"), "%s", text);
    free(text);
    cJSON_Delete(t);
    char *log = daemon_log(&dp);
    ck_assert_ptr_nonnull(strstr(log, "HTTP 404"));
    free(log);
}
END_TEST

/* With [webhooks] proxy every POST goes to the proxy, so the address the
 * guard sees at connect time is the proxy's: refused unless allowlisted. */
START_TEST(binary_checks_the_connected_address_through_a_proxy) {
    char extra[128];
    snprintf(extra, sizeof extra, "proxy = http://127.0.0.1:%u", receiver_port(rcv));
    struct daemon_opts o = {.plugins = "echo", .guard_default = true, .webhooks_extra = extra};
    start_or_fail(&o);
    long st;
    /* a public literal passes registration; the socket to the proxy is refused */
    cJSON *r = send_with_push("http://93.184.216.34/hook", &st);
    char tid[64];
    snprintf(tid, sizeof tid, "%s", json_str(r, "result.id"));
    cJSON_Delete(r);
    cJSON *t = wait_given_up(tid);
    const char *reason = json_str(t, "result.metadata.a2ad.webhooksGivenUp.0.reason");
    ck_assert_msg(strncmp(reason, "delivery failed", 15) == 0, "%s", reason);
    cJSON_Delete(t);
    ck_assert_uint_eq(receiver_attempts(rcv), 0);
    char *log = daemon_log(&dp);
    ck_assert_msg(strstr(log, "127.0.0.1 is loopback; refused"), "%s", log);
    free(log);
    ck_assert_int_eq(daemon_stop(&dp, 15000), 0);
    daemon_cleanup(&dp);
    memset(&dp, 0, sizeof dp);

    /* the proxy allowlisted: the POST reaches it, for the original URL */
    char extra2[200];
    snprintf(extra2, sizeof extra2, "%s\nallow_networks = 127.0.0.1/32", extra);
    struct daemon_opts o2 = {.plugins = "echo", .guard_default = true, .webhooks_extra = extra2};
    start_or_fail(&o2);
    r = send_with_push("http://93.184.216.34/hook", &st);
    cJSON_Delete(r);
    ck_assert(receiver_wait(rcv, 1, 10000));
    ck_assert_msg(strstr(receiver_get(rcv, 0)->path, "93.184.216.34"), "%s",
                  receiver_get(rcv, 0)->path);
}
END_TEST

/* ---- signatures: the README's receiver, run as is -------------------------- */

/* The ```python block of README.md that defines verify(). */
static char *readme_snippet(void) {
    char path[512];
    FILE *f = fopen("README.md", "r");
    if (!f) f = fopen(build_path("../README.md", path, sizeof path), "r");
    ck_assert_msg(f != NULL, "README.md not found (run from the repository root)");
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *def = strstr(text, "def verify(secret, headers, body");
    ck_assert_msg(def != NULL, "README.md has no verify() snippet");
    char *start = def;
    while (start > text && strncmp(start, "```python\n", 10) != 0) start--;
    ck_assert(strncmp(start, "```python\n", 10) == 0);
    start += 10;
    char *end = strstr(def, "\n```");
    ck_assert_ptr_nonnull(end);
    return strndup(start, (size_t)(end - start) + 1);
}

/* Run the snippet on one received POST with secret number `which` of the
 * file; true when verify() said yes. `tamper`: flip a byte of the body. */
static bool python_verifies(const char *dir, const struct received *req, const char *secrets,
                            int which, bool tamper) {
    char script[600], hdrs[600], body[600], sec[600];
    snprintf(script, sizeof script, "%s/verify.py", dir);
    snprintf(hdrs, sizeof hdrs, "%s/headers.json", dir);
    snprintf(body, sizeof body, "%s/body", dir);
    snprintf(sec, sizeof sec, "%s", secrets);
    char *snippet = readme_snippet();
    FILE *f = fopen(script, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s\nimport json, sys\n"
               "secret = open(sys.argv[1]).read().split()[int(sys.argv[4])]\n"
               "headers = json.load(open(sys.argv[2]))\n"
               "body = open(sys.argv[3], 'rb').read()\n"
               "sys.exit(0 if verify(secret, headers, body) else 1)\n",
            snippet);
    fclose(f);
    free(snippet);
    cJSON *h = cJSON_CreateObject();
    static const char *const names[] = {"webhook-id", "webhook-timestamp", "webhook-signature"};
    for (int i = 0; i < 3; i++) {
        char *v = received_header(req, names[i]);
        ck_assert_msg(v != NULL, "no %s header", names[i]);
        cJSON_AddStringToObject(h, names[i], v);
        free(v);
    }
    char *htext = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    f = fopen(hdrs, "w");
    fputs(htext, f);
    fclose(f);
    free(htext);
    f = fopen(body, "wb");
    fwrite(req->body, 1, req->len, f);
    if (tamper) fputc(' ', f);
    fclose(f);
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "python3 %s %s %s %s %d", script, sec, hdrs, body, which);
    int rc = system(cmd);
    ck_assert_msg(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) <= 1, "python3 failed: %d", rc);
    return WEXITSTATUS(rc) == 0;
}

static void random_secret(char *out, size_t n) {
    unsigned char key[32];
    FILE *u = fopen("/dev/urandom", "rb");
    ck_assert_ptr_nonnull(u);
    ck_assert_uint_eq(fread(key, 1, sizeof key, u), sizeof key);
    fclose(u);
    char *b = util_base64_encode(key, sizeof key);
    snprintf(out, n, "whsec_%s", b);
    free(b);
}

START_TEST(signatures_verify_with_the_readme_receiver) {
    /* The secret file lives outside the daemon's folder, which is made at start. */
    char dir[] = "/tmp/a2ad-sign-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char secrets[600], s1[128], s2[128];
    snprintf(secrets, sizeof secrets, "%s/secrets", dir);
    random_secret(s1, sizeof s1);
    random_secret(s2, sizeof s2);
    FILE *f = fopen(secrets, "w");
    fprintf(f, "%s\n%s\n", s1, s2); /* a rotation: both sign */
    fclose(f);
    chmod(secrets, 0600);
    char extra[700];
    snprintf(extra, sizeof extra, "signing_secret_file = %s", secrets);
    struct daemon_opts o = {.plugins = "echo", .webhooks_extra = extra};
    start_or_fail(&o);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", receiver_port(rcv));
    long st;
    cJSON *r = send_with_push(url, &st);
    cJSON_Delete(r);
    ck_assert(receiver_wait(rcv, 1, 10000));
    const struct received *req = receiver_get(rcv, 0);
    char *id = received_header(req, "webhook-id");
    char *eid = received_header(req, "X-A2A-Event-Id");
    ck_assert_str_eq(id, eid); /* the stable event id */
    free(id);
    free(eid);
    char *sig = received_header(req, "webhook-signature");
    ck_assert_msg(strncmp(sig, "v1,", 3) == 0 && strstr(sig, " v1,"), "%s", sig);
    free(sig);
    ck_assert(python_verifies(dir, req, secrets, 0, false));
    ck_assert(python_verifies(dir, req, secrets, 1, false));
    ck_assert(!python_verifies(dir, req, secrets, 0, true));
    /* a secret that is not one of them */
    char other[600];
    snprintf(other, sizeof other, "%s/other", dir);
    random_secret(s1, sizeof s1);
    f = fopen(other, "w");
    fprintf(f, "%s\n", s1);
    fclose(f);
    ck_assert(!python_verifies(dir, req, other, 0, false));
    /* the secret never reaches the log */
    char *log = daemon_log(&dp);
    ck_assert_ptr_null(strstr(log, s2 + 6));
    free(log);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(a_bad_secret_file_stops_startup) {
    struct daemon_opts o = {.plugins = "echo",
                            .webhooks_extra = "signing_secret_file = /nonexistent/secret"};
    ck_assert(daemon_prepare(&dp, &o));
    ck_assert_int_ne(daemon_run_args(&dp, NULL, 10000), 0);
    char *log = daemon_log(&dp);
    ck_assert_msg(strstr(log, "signing_secret_file /nonexistent/secret"), "%s", log);
    free(log);
    ck_assert_int_ne(daemon_run_args(&dp, "-t", 10000), 0); /* a2ad -t says so too */
    daemon_cleanup(&dp);
    memset(&dp, 0, sizeof dp);
    /* a secret too short to be one: refused, and not echoed */
    char dir[] = "/tmp/a2ad-sign-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[300], extra[400];
    snprintf(path, sizeof path, "%s/secret", dir);
    FILE *f = fopen(path, "w");
    fputs("whsec_c2hvcnRzZWNyZXQ=\n", f); /* "shortsecret" */
    fclose(f);
    snprintf(extra, sizeof extra, "signing_secret_file = %s", path);
    struct daemon_opts o2 = {.plugins = "echo", .webhooks_extra = extra};
    ck_assert(daemon_prepare(&dp, &o2));
    ck_assert_int_ne(daemon_run_args(&dp, NULL, 10000), 0);
    log = daemon_log(&dp);
    ck_assert_msg(strstr(log, "not a secret"), "%s", log);
    ck_assert_ptr_null(strstr(log, "c2hvcnRzZWNyZXQ"));
    free(log);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* ---- fairness: a black-hole receiver ------------------------------------- */

/* Accepts connections and never answers, like a host that swallows
 * requests; holds up to 1024 of them. */
struct blackhole {
    int fd;
    unsigned port;
    pthread_t thread;
    int held[1024];
    int n_held;
};

static void *blackhole_run(void *arg) {
    struct blackhole *b = arg;
    for (;;) {
        int c = accept(b->fd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR) continue;
            break; /* the listening socket was shut down */
        }
        if (b->n_held < 1024)
            b->held[b->n_held++] = c;
        else
            close(c);
    }
    return NULL;
}

static void blackhole_start(struct blackhole *b) {
    memset(b, 0, sizeof *b);
    b->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(b->fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(b->fd, 1024), 0);
    socklen_t len = sizeof a;
    getsockname(b->fd, (struct sockaddr *)&a, &len);
    b->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&b->thread, NULL, blackhole_run, b), 0);
}

static void blackhole_stop(struct blackhole *b) {
    shutdown(b->fd, SHUT_RDWR);
    pthread_join(b->thread, NULL);
    close(b->fd);
    for (int i = 0; i < b->n_held; i++) close(b->held[i]);
}

/* How many black-hole attempts ended (timed out) so far, by the log. */
static int timeouts_logged(void) {
    char *log = daemon_log(&dp);
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, "Operation timed out")); p++) n++;
    for (const char *p = log; p && (p = strstr(p, "Timeout was reached")); p++) n++;
    free(log);
    return n;
}

START_TEST(a_black_hole_does_not_delay_another_clients_webhook) {
    struct blackhole bh;
    blackhole_start(&bh);
    /* A timeout long enough that it cannot fire while the test submits,
     * however slow the build. */
    struct daemon_opts o = {.plugins = "echo", .threads = 4, .webhook_timeout_ms = 60000};
    start_or_fail(&o);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", bh.port);
    long st;
    for (int i = 0; i < 300; i++) {
        cJSON *r = send_with_push(url, &st);
        ck_assert_msg(json_at(r, "result.id"), "send %d: %ld %s", i, st, json_str(r, "error.message"));
        cJSON_Delete(r);
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", receiver_port(rcv));
    cJSON *r = send_with_push(url, &st);
    cJSON_Delete(r);
    /* Without the per-host limit the black hole holds every transfer slot
     * (max_in_flight = 64) until its timeouts fire; with it, the healthy
     * receiver gets its POST while the black hole's requests still hang. */
    ck_assert(receiver_wait(rcv, 1, 45000));
    ck_assert_int_eq(timeouts_logged(), 0);
    ck_assert_int_eq(daemon_stop(&dp, 20000), 0);
    blackhole_stop(&bh);
    /* the black hole got no more connections than its share */
    ck_assert_int_le(bh.n_held, 8);
}
END_TEST

/* After breaker_failures failed attempts in a row a host's deliveries wait
 * for the cool-down instead of being tried. */
START_TEST(a_failing_host_trips_its_breaker) {
    receiver_fail_next(rcv, 100000, 503);
    /* slow answers: several attempts are on the wire when the breaker opens */
    receiver_set_delay(rcv, 300);
    struct daemon_opts o = {.plugins = "echo",
                            .webhooks_extra = "breaker_failures = 3\nbreaker_cooldown_ms = 60000"};
    start_or_fail(&o);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", receiver_port(rcv));
    long st;
    for (int i = 0; i < 6; i++) {
        cJSON *r = send_with_push(url, &st);
        cJSON_Delete(r);
    }
    char *log = NULL;
    for (int i = 0; i < 1000; i++) {
        free(log);
        log = daemon_log(&dp);
        if (strstr(log, "circuit breaker")) break;
        test_nap_ms(20);
    }
    const char *line = strstr(log, "failed attempts in a row");
    ck_assert_msg(strstr(log, "3 failed attempts in a row to 127.0.0.1:"), "breaker line: %.200s",
                  line ? line - 40 : "(none)");
    free(log);
    /* attempts on the wire when it opened land: each takes the receiver's
     * 300 ms, and a retry may have started just before */
    test_nap_ms(1000);
    size_t attempts = receiver_attempts(rcv);
    test_nap_ms(1000); /* retries are due every <= 200 ms; none goes */
    ck_assert_uint_eq(receiver_attempts(rcv), attempts);
    ck_assert_uint_ge(attempts, 3);
    ck_assert_uint_le(attempts, 3 + 8); /* the slots in flight when it opened */
    /* and the daemon still stops: the open breaker is not corrupted by the
     * attempts that ended after it opened */
    ck_assert_int_eq(daemon_stop(&dp, 15000), 0);
}
END_TEST

/* ---- HTTPS webhooks are verified ------------------------------------------ */

static const char tls_server_py[] =
    "import http.server, ssl, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_POST(self):\n"
    "        self.rfile.read(int(self.headers.get('Content-Length', 0)))\n"
    "        with open(sys.argv[3], 'a') as f: f.write('POST\\n')\n"
    "        self.send_response(200)\n"
    "        self.end_headers()\n"
    "    def log_message(self, *a): pass\n"
    "srv = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
    "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "ctx.load_cert_chain(sys.argv[1], sys.argv[2])\n"
    "srv.socket = ctx.wrap_socket(srv.socket, server_side=True)\n"
    "print(srv.server_address[1], flush=True)\n"
    "srv.serve_forever()\n";

static bool file_has(const char *path, const char *what) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, what) != NULL;
}

/* A receiver with a self-signed certificate: refused as unverified without
 * [webhooks] ca_file, delivered with its certificate as ca_file. */
START_TEST(https_webhooks_are_verified_against_ca_file) {
    char dir[] = "/tmp/a2ad-tls-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char cmd[2048], cert[300], key[300], script[300], posts[300], portf[300];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(script, sizeof script, "%s/srv.py", dir);
    snprintf(posts, sizeof posts, "%s/posts", dir);
    snprintf(portf, sizeof portf, "%s/port", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
             ">/dev/null 2>&1", key, cert);
    ck_assert_msg(system(cmd) == 0, "openssl req failed");
    FILE *f = fopen(script, "w");
    fputs(tls_server_py, f);
    fclose(f);
    pid_t py = fork();
    ck_assert_int_ge(py, 0);
    if (py == 0) {
        FILE *out = freopen(portf, "w", stdout);
        (void)out;
        execlp("python3", "python3", script, cert, key, posts, (char *)NULL);
        _exit(127);
    }
    unsigned port = 0;
    for (int i = 0; i < 500 && !port; i++) {
        test_nap_ms(10);
        FILE *pf = fopen(portf, "r");
        if (pf) {
            if (fscanf(pf, "%u", &port) != 1) port = 0;
            fclose(pf);
        }
    }
    ck_assert_uint_gt(port, 0);
    char url[128];
    snprintf(url, sizeof url, "https://localhost:%u/hook", port);

    struct daemon_opts o = {.plugins = "echo"};
    start_or_fail(&o);
    long st;
    cJSON *r = send_with_push(url, &st);
    cJSON_Delete(r);
    char *log = NULL;
    for (int i = 0; i < 500; i++) {
        free(log);
        log = daemon_log(&dp);
        if (strstr(log, "SSL certificate problem")) break;
        test_nap_ms(20);
    }
    ck_assert_msg(strstr(log, "SSL certificate problem"), "%s", log);
    free(log);
    ck_assert(!file_has(posts, "POST"));
    ck_assert_int_eq(daemon_stop(&dp, 15000), 0);
    daemon_cleanup(&dp);
    memset(&dp, 0, sizeof dp);

    char extra[400];
    snprintf(extra, sizeof extra, "ca_file = %s", cert);
    struct daemon_opts o2 = {.plugins = "echo", .webhooks_extra = extra};
    start_or_fail(&o2);
    r = send_with_push(url, &st);
    cJSON_Delete(r);
    bool got = false;
    for (int i = 0; i < 500 && !got; i++) {
        got = file_has(posts, "POST");
        if (!got) test_nap_ms(20);
    }
    kill(py, SIGTERM);
    waitpid(py, NULL, 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_msg(got, "the HTTPS receiver got nothing with ca_file set");
}
END_TEST

/* ---- the backlog in bytes ------------------------------------------------ */

/* In the module, without an outbox: beyond max_pending_bytes progress is
 * refused, a final state is still taken. */
START_TEST(the_memory_backlog_is_bounded_in_bytes) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ck_assert_int_eq(guard_set_allow("127.0.0.0/8"), A2AD_OK);
    struct blackhole bh;
    blackhole_start(&bh);
    struct webhooks_options o = {.timeout_ms = 60000, .connect_timeout_ms = 1000,
                                 .max_attempts = 3, .backoff_initial_ms = 10,
                                 .backoff_max_ms = 20, .max_in_flight = 4, .max_pending = 100000,
                                 .max_pending_bytes = 64 * 1024};
    ck_assert_int_eq(webhooks_start(&o), A2AD_OK);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", bh.port);
    char *body = malloc(4096);
    memset(body, 'x', 4096);
    int accepted = 0;
    a2ad_status st = A2AD_OK;
    for (int i = 0; i < 100 && st == A2AD_OK; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        char *copy = malloc(4096);
        memcpy(copy, body, 4096);
        st = webhooks_enqueue(key, url, NULL, copy, 4096, false);
        if (st == A2AD_OK) accepted++;
    }
    ck_assert_int_eq(st, A2AD_ERR_FULL);
    ck_assert_int_ge(accepted, 10); /* 64 KiB of 4 KiB bodies, with their overhead */
    ck_assert_int_le(accepted, 16);
    struct webhooks_stats s;
    webhooks_get_stats(&s);
    ck_assert_uint_le(s.pending_bytes, 64 * 1024);
    ck_assert_uint_eq(s.rejected, 1);
    ck_assert(!webhooks_accepting());
    /* a final state is never refused */
    char *copy = malloc(4096);
    memcpy(copy, body, 4096);
    ck_assert_int_eq(webhooks_enqueue("final", url, NULL, copy, 4096, true), A2AD_OK);
    free(body);
    webhooks_stop(0);
    blackhole_stop(&bh);
    guard_set_allow("");
    curl_global_cleanup();
}
END_TEST

/* The real binary: once the undelivered webhooks reach max_outbox_bytes, a
 * new job that would POST webhooks gets 503; one without webhooks still
 * runs. */
START_TEST(a_full_webhook_backlog_refuses_new_jobs_with_webhooks) {
    struct blackhole bh;
    blackhole_start(&bh);
    struct daemon_opts o = {.plugins = "echo", .webhook_timeout_ms = 60000,
                            .webhooks_extra = "max_outbox_bytes = 1M"};
    start_or_fail(&o);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", bh.port);
    static char body[40000];
    char text[16001];
    memset(text, 'y', 16000);
    text[16000] = '\0';
    long st = 200;
    cJSON *r = NULL;
    int accepted = 0;
    for (int i = 0; i < 200 && st == 200; i++) {
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{"
                 "\"message\":{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\","
                 "\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]},\"configuration\":{"
                 "\"blocking\":true,\"pushNotificationConfig\":{\"url\":\"%s\"}}}}",
                 text, url);
        cJSON_Delete(r);
        r = rpc_call(dp.port, "/agents/echo", body, &st);
        if (st == 200) accepted++;
    }
    ck_assert_int_eq(st, 503);
    ck_assert_msg(strstr(json_str(r, "error.message"), "max_outbox_bytes"), "%s",
                  json_str(r, "error.message"));
    cJSON_Delete(r);
    ck_assert_int_ge(accepted, 3);
    /* a job without webhooks is not held back by other clients' receivers */
    r = rpc_call(dp.port, "/agents/echo",
                 "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"message/send\",\"params\":{"
                 "\"message\":{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\","
                 "\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}]}}}",
                 &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    cJSON_Delete(r);
    ck_assert_int_eq(daemon_stop(&dp, 20000), 0);
    blackhole_stop(&bh);
}
END_TEST

Suite *guard_suite(void) {
    Suite *s = suite_create("guard");
    TCase *u = tcase_create("unit");
    tcase_add_checked_fixture(u, unit_setup, NULL);
    tcase_add_test(u, every_address_form_is_classified);
    tcase_add_test(u, url_literal_forms_are_refused_with_the_rule);
    tcase_add_test(u, a_name_resolving_to_loopback_is_refused);
    tcase_add_test(u, the_allowlist_admits_only_its_networks);
    tcase_add_test(u, bad_allowlists_are_config_errors);
    tcase_add_test(u, the_connected_address_is_checked);
    tcase_add_test(u, the_memory_backlog_is_bounded_in_bytes);
    tcase_set_timeout(u, 30);
    suite_add_tcase(s, u);
    TCase *tc = tcase_create("binary");
    tcase_add_checked_fixture(tc, int_setup, int_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, binary_refuses_internal_webhooks_at_registration);
    tcase_add_test(tc, binary_delivers_with_allowlist_and_hides_the_receiver_status);
    tcase_add_test(tc, binary_checks_the_connected_address_through_a_proxy);
    tcase_add_test(tc, signatures_verify_with_the_readme_receiver);
    tcase_add_test(tc, a_bad_secret_file_stops_startup);
    tcase_add_test(tc, a_black_hole_does_not_delay_another_clients_webhook);
    tcase_add_test(tc, a_failing_host_trips_its_breaker);
    tcase_add_test(tc, a_full_webhook_backlog_refuses_new_jobs_with_webhooks);
    tcase_add_test(tc, https_webhooks_are_verified_against_ca_file);
    suite_add_tcase(s, tc);
    return s;
}
