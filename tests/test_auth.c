/* auth: inbound credentials, owner-scoped tasks, write-only webhook
 * secrets, the listening rule and escaped error echoes, against the real
 * daemon. The tokens file is made with the daemon's own --hash-token. */
#include <check.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <time.h>

#include "util.h"
#include "support/daemon.h"
#include "support/json.h"
#include "support/receiver.h"

#define ALICE "alice-token-0123456789abcdef"
#define BOB "bob-token-0123456789abcdef00"
#define ADMIN "admin-token-0123456789abcdef"
#define CAROL "carol-token-0123456789abcdef" /* agents=echo */
#define AUDITOR "auditor-token-0123456789abcd" /* admin, agents=echo */

static struct daemon_proc dp;
static struct receiver *rcv;
static char tmp[64];
static char tokens_path[128];
static char server_lines[512];

/* `printf TOKEN | a2ad --hash-token NAME`: its output line (malloc'd) and
 * exit status. */
static char *hash_line(const char *token, const char *name, int *status) {
    char bin[300], cmd[800];
    build_path("a2ad", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "printf '%%s\\n' '%s' | '%s' --hash-token %s 2>/dev/null", token, bin,
             name ? name : "");
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char line[256] = "";
    if (!fgets(line, sizeof line, p)) line[0] = '\0';
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return strdup(line);
}

static void add_credential(FILE *f, const char *token, const char *name, const char *opts) {
    int st;
    char *line = hash_line(token, name, &st);
    ck_assert_int_eq(st, 0);
    line[strcspn(line, "\n")] = '\0';
    fprintf(f, "%s%s%s\n", line, opts ? " " : "", opts ? opts : "");
    free(line);
}

static void setup(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
    snprintf(tmp, sizeof tmp, "/tmp/a2ad-auth-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    snprintf(tokens_path, sizeof tokens_path, "%s/tokens", tmp);
    FILE *f = fopen(tokens_path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "# credentials of the auth suite\n\n");
    add_credential(f, ALICE, "alice", NULL);
    add_credential(f, BOB, "bob", NULL);
    add_credential(f, ADMIN, "root", "admin");
    add_credential(f, CAROL, "carol", "agents=echo");
    add_credential(f, AUDITOR, "auditor", "admin agents=echo");
    fclose(f);
    snprintf(server_lines, sizeof server_lines, "auth_tokens_file = %s", tokens_path);
}

static void teardown(void) {
    daemon_cleanup(&dp);
    memset(&dp, 0, sizeof dp);
    receiver_stop(rcv);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmp);
    curl_global_cleanup();
}

static void start_or_fail(const struct daemon_opts *o) {
    if (!daemon_start(&dp, o)) {
        char *log = daemon_log(&dp);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

static void start_auth(const char *db_path) {
    struct daemon_opts o = {.plugins = "echo,convo", .threads = 2, .default_agent = "convo",
                            .server_extra = server_lines, .db_path = db_path};
    start_or_fail(&o);
}

/* POST body to path as the holder of token (NULL = none); api_key: send it
 * as X-API-Key instead of a bearer token; v1 adds A2A-Version: 1.0. */
static void post_as(const char *token, bool api_key, bool v1, const char *path, const char *body,
                    struct http_resp *out) {
    char cred[4200];
    const char *h[3] = {NULL, NULL, NULL};
    size_t n = 0;
    if (token) {
        snprintf(cred, sizeof cred, "%s: %s%s", api_key ? "X-API-Key" : "Authorization",
                 api_key ? "" : "Bearer ", token);
        h[n++] = cred;
    }
    if (v1) h[n++] = "A2A-Version: 1.0";
    ck_assert(http_call_headers(dp.port, NULL, path, body, h, out));
}

static cJSON *rpc_as(const char *token, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static cJSON *rpc_as(const char *token, const char *path, const char *fmt, ...) {
    char body[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    const char *m = strstr(body, "\"method\":\"");
    bool v1 = m && m[10] >= 'A' && m[10] <= 'Z';
    struct http_resp h;
    post_as(token, false, v1, path, body, &h);
    cJSON *o = cJSON_Parse(h.body);
    ck_assert_msg(o != NULL, "no JSON answer (HTTP %ld) to %s: %s", h.status, body, h.body);
    http_resp_free(&h);
    return o;
}

static void expect_not_found(cJSON *o, const char *id, const char *what) {
    char *txt = cJSON_PrintUnformatted(o);
    char want[120];
    snprintf(want, sizeof want, "task %s not found", id);
    ck_assert_msg(json_int(o, "error.code") == -32001, "%s: want -32001, got %s", what, txt);
    ck_assert_msg(strcmp(json_str(o, "error.message"), want) == 0, "%s: want \"%s\", got %s", what,
                  want, txt);
    free(txt);
    cJSON_Delete(o);
}

#define MSG03(text) "{\"kind\":\"message\",\"messageId\":\"m1\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"" text "\"}]}"

/* A running convo task of the holder of token, with a webhook whose token
 * and credentials are the given secrets; returns its id (malloc'd). */
static char *running_convo_of(const char *token, const char *hook_token, const char *cred) {
    cJSON *o = rpc_as(token, "/agents/convo",
                      "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":" MSG03("hi")
                      ",\"configuration\":{\"blocking\":false,\"pushNotificationConfig\":{\"id\":\"h1\","
                      "\"url\":\"http://127.0.0.1:%u/hook\",\"token\":\"%s\",\"authentication\":"
                      "{\"schemes\":[\"Bearer\"],\"credentials\":\"%s\"}}}}}",
                      receiver_port(rcv), hook_token, cred);
    char *id = strdup(json_str(o, "result.id"));
    ck_assert_msg(strlen(id) == 36, "no task: %s", cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    bool listening = false;
    for (int i = 0; i < 400 && !listening; i++) {
        cJSON *t = rpc_as(token, "/agents/convo",
                          "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
        listening = strcmp(json_str(t, "result.status.message.parts.0.text"), "listening") == 0;
        cJSON_Delete(t);
        if (!listening) test_nap_ms(25);
    }
    ck_assert_msg(listening, "task %s never started listening", id);
    return id;
}

static bool list_has(cJSON *o, const char *id) {
    const cJSON *t;
    cJSON_ArrayForEach(t, json_at(o, "result.tasks")) if (strcmp(json_str(t, "id"), id) == 0) return true;
    return false;
}

/* ---- 401 on every method --------------------------------------------------- */

static const char *const methods[] = {
    "message/send", "message/stream", "tasks/get", "tasks/cancel", "tasks/resubscribe",
    "tasks/pushNotificationConfig/set", "tasks/pushNotificationConfig/get",
    "tasks/pushNotificationConfig/list", "tasks/pushNotificationConfig/delete",
    "agent/getAuthenticatedExtendedCard", "SendMessage", "SendStreamingMessage", "GetTask",
    "ListTasks", "CancelTask", "SubscribeToTask", "CreateTaskPushNotificationConfig",
    "GetTaskPushNotificationConfig", "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig", "GetExtendedAgentCard", "no/such/method",
};

static long json_int_of_body(const char *body, const char *path) {
    cJSON *o = cJSON_Parse(body);
    long v = json_int(o, path);
    cJSON_Delete(o);
    return v;
}

static void expect_401(const struct http_resp *h, const char *what, const char *secret) {
    ck_assert_msg(h->status == 401, "%s: HTTP %ld: %s", what, h->status, h->body);
    ck_assert_msg(strcasestr(h->headers, "WWW-Authenticate: Bearer") != NULL, "%s: no challenge", what);
    cJSON *o = cJSON_Parse(h->body);
    ck_assert_msg(o != NULL, "%s: not JSON: %s", what, h->body);
    /* the extended card gets the code its clients map for "not for you" */
    bool card = strstr(what, "ExtendedCard") || strstr(what, "ExtendedAgentCard");
    ck_assert_msg(json_int(o, "error.code") == (card ? -32007 : -32600), "%s: %s", what, h->body);
    ck_assert_str_eq(json_str(o, "jsonrpc"), "2.0");
    /* the request's own id (its small body is read), or null */
    ck_assert_msg(cJSON_IsNull(json_at(o, "id")) || cJSON_IsNumber(json_at(o, "id")), "%s: %s", what, h->body);
    ck_assert_msg(strstr(json_str(o, "error.message"), "authentication required"), "%s: %s", what, h->body);
    if (secret) ck_assert_msg(!strstr(h->body, secret), "%s: the token is echoed: %s", what, h->body);
    cJSON_Delete(o);
}

START_TEST(no_credentials_401_on_every_method) {
    start_auth(NULL);
    static const char *const paths[] = {"/", "/agents/echo", "/agents/convo"};
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
        bool v1 = methods[m][0] >= 'A' && methods[m][0] <= 'Z';
        char body[400], what[200];
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"%s\",\"params\":{\"id\":\"x\",\"taskId\":\"x\","
                 "\"message\":" MSG03("hi") "}}", methods[m]);
        for (size_t p = 0; p < 3; p++) {
            struct http_resp h;
            snprintf(what, sizeof what, "%s at %s, no credentials", methods[m], paths[p]);
            post_as(NULL, false, v1, paths[p], body, &h);
            expect_401(&h, what, NULL);
            ck_assert_int_eq(json_int_of_body(h.body, "id"), 7);
            http_resp_free(&h);
            snprintf(what, sizeof what, "%s at %s, a wrong bearer token", methods[m], paths[p]);
            post_as("wrong-token-0123456789abcdef", false, v1, paths[p], body, &h);
            expect_401(&h, what, "wrong-token-0123456789abcdef");
            http_resp_free(&h);
        }
        struct http_resp h;
        snprintf(what, sizeof what, "%s, a wrong API key", methods[m]);
        post_as("wrong-key-0123456789abcdef", true, v1, "/", body, &h);
        expect_401(&h, what, "wrong-key-0123456789abcdef");
        http_resp_free(&h);
        /* a right token under another scheme is not a credential */
        const char *basic[] = {"Authorization: Basic " ALICE, NULL};
        ck_assert(http_call_headers(dp.port, NULL, "/", body, basic, &h));
        snprintf(what, sizeof what, "%s, Basic scheme", methods[m]);
        expect_401(&h, what, ALICE);
        http_resp_free(&h);
    }
    /* the cards stay public */
    struct http_resp h;
    ck_assert(http_call(dp.port, NULL, "/.well-known/agent-card.json", NULL, &h));
    ck_assert_int_eq(h.status, 200);
    http_resp_free(&h);
    ck_assert(http_call(dp.port, NULL, "/agents/echo/.well-known/agent-card.json", NULL, &h));
    ck_assert_int_eq(h.status, 200);
    http_resp_free(&h);
    /* the right credential, as a bearer token or as an API key */
    static const char send[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":" MSG03("ok") "}}";
    post_as(ALICE, false, false, "/agents/echo", send, &h);
    ck_assert_msg(h.status == 200 && strstr(h.body, "\"completed\""), "%ld %s", h.status, h.body);
    http_resp_free(&h);
    post_as(ALICE, true, false, "/agents/echo", send, &h);
    ck_assert_msg(h.status == 200 && strstr(h.body, "\"completed\""), "%ld %s", h.status, h.body);
    http_resp_free(&h);
    /* the extended card, to an authenticated caller */
    cJSON *o = rpc_as(BOB, "/agents/echo", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetExtendedAgentCard\"}");
    ck_assert_str_eq(json_str(o, "result.name"), "echo");
    cJSON_Delete(o);
    char *log = daemon_log(&dp);
    ck_assert_ptr_null(strstr(log, "wrong-token-0123456789abcdef"));
    ck_assert_ptr_null(strstr(log, ALICE));
    free(log);
}
END_TEST

/* ---- owner-scoped tasks --------------------------------------------------- */

START_TEST(second_client_sees_not_found) {
    start_auth(NULL);
    char *id = running_convo_of(ALICE, "hook-secret-A1", "cred-secret-A1");
    static const char *const P = "/agents/convo";
    /* bob: every method answers as for an unknown task */
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id), id, "tasks/get");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTask\",\"params\":{\"id\":\"%s\"}}", id), id, "GetTask");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"%s\"}}", id), id, "tasks/cancel");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"CancelTask\",\"params\":{\"id\":\"%s\"}}", id), id, "CancelTask");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/resubscribe\",\"params\":{\"id\":\"%s\"}}", id), id, "tasks/resubscribe");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SubscribeToTask\",\"params\":{\"id\":\"%s\"}}", id), id, "SubscribeToTask");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/set\",\"params\":{\"taskId\":\"%s\","
                                    "\"pushNotificationConfig\":{\"id\":\"h1\",\"url\":\"http://127.0.0.1:9/evil\"}}}", id), id, "push set 0.3");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"CreateTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\","
                                    "\"id\":\"h1\",\"url\":\"http://127.0.0.1:9/evil\"}}", id), id, "push create 1.0");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/get\",\"params\":{\"id\":\"%s\",\"pushNotificationConfigId\":\"h1\"}}", id), id, "push get 0.3");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\",\"id\":\"h1\"}}", id), id, "push get 1.0");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/list\",\"params\":{\"id\":\"%s\"}}", id), id, "push list 0.3");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTaskPushNotificationConfigs\",\"params\":{\"taskId\":\"%s\"}}", id), id, "push list 1.0");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/delete\",\"params\":{\"id\":\"%s\",\"pushNotificationConfigId\":\"h1\"}}", id), id, "push delete 0.3");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"DeleteTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\",\"id\":\"h1\"}}", id), id, "push delete 1.0");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":{\"kind\":\"message\","
                                    "\"messageId\":\"b1\",\"role\":\"user\",\"taskId\":\"%s\",\"parts\":[{\"kind\":\"text\",\"text\":\"hijack\"}]},"
                                    "\"configuration\":{\"blocking\":false}}}", id), id, "continue 0.3");
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendMessage\",\"params\":{\"message\":{"
                                    "\"messageId\":\"b2\",\"role\":\"ROLE_USER\",\"taskId\":\"%s\",\"parts\":[{\"text\":\"hijack\"}]},"
                                    "\"configuration\":{\"returnImmediately\":true}}}", id), id, "continue 1.0");
    /* the same answer as for a task that does not exist */
    expect_not_found(rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}",
                            "00000000-0000-4000-8000-000000000000"), "00000000-0000-4000-8000-000000000000", "unknown");
    /* bob's list is empty, at the agent and at the root */
    cJSON *o = rpc_as(BOB, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{}}");
    ck_assert_int_eq(json_int(o, "result.totalSize"), 0);
    cJSON_Delete(o);
    o = rpc_as(BOB, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{}}");
    ck_assert(!list_has(o, id));
    cJSON_Delete(o);
    /* nothing bob did reached the task: alice's view, still running, one webhook */
    o = rpc_as(ALICE, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    ck_assert_str_eq(json_str(o, "result.status.state"), "working");
    char *txt = cJSON_PrintUnformatted(o);
    ck_assert_ptr_null(strstr(txt, "hijack"));
    free(txt);
    cJSON_Delete(o);
    o = rpc_as(ALICE, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/list\",\"params\":{\"id\":\"%s\"}}", id);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(o, "result")), 1);
    ck_assert_ptr_nonnull(strstr(json_str(o, "result.0.pushNotificationConfig.url"), "/hook"));
    cJSON_Delete(o);
    o = rpc_as(ALICE, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{}}");
    ck_assert(list_has(o, id));
    cJSON_Delete(o);
    /* the admin sees it, in the list and by id, and may cancel it */
    o = rpc_as(ADMIN, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{}}");
    ck_assert(list_has(o, id));
    cJSON_Delete(o);
    o = rpc_as(ADMIN, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTask\",\"params\":{\"id\":\"%s\"}}", id);
    ck_assert_str_eq(json_str(o, "result.status.state"), "TASK_STATE_WORKING");
    cJSON_Delete(o);
    o = rpc_as(ADMIN, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"%s\"}}", id);
    ck_assert_str_eq(json_str(o, "result.status.state"), "canceled");
    cJSON_Delete(o);
    free(id);
}
END_TEST

/* ---- write-only webhook secrets ---------------------------------------------- */

static void assert_no_secret(const char *token, const char *path, const char *body,
                             const char *const *secrets, const char *what) {
    struct http_resp h;
    const char *m = strstr(body, "\"method\":\"");
    post_as(token, false, m && m[10] >= 'A' && m[10] <= 'Z', path, body, &h);
    ck_assert_msg(h.status == 200 && !strstr(h.body, "\"error\""), "%s: %ld %s", what, h.status, h.body);
    for (size_t i = 0; secrets[i]; i++)
        ck_assert_msg(!strstr(h.body, secrets[i]), "%s returns %s: %s", what, secrets[i], h.body);
    http_resp_free(&h);
}

START_TEST(push_config_secrets_are_write_only) {
    start_auth(NULL);
    char *id = running_convo_of(ALICE, "hook-secret-B2", "cred-secret-B2");
    static const char *const P = "/agents/convo";
    const char *const secrets[] = {"hook-secret", "cred-secret", NULL};
    char body[600];
    /* a second config through 1.0, its answer already without secrets */
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"CreateTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\","
             "\"id\":\"h2\",\"url\":\"http://127.0.0.1:%u/hook2\",\"token\":\"hook-secret-C3\","
             "\"authentication\":{\"scheme\":\"Bearer\",\"credentials\":\"cred-secret-C3\"}}}", id, receiver_port(rcv));
    assert_no_secret(ALICE, P, body, secrets, "CreateTaskPushNotificationConfig");
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/get\",\"params\":{\"id\":\"%s\",\"pushNotificationConfigId\":\"h1\"}}", id);
    assert_no_secret(ALICE, P, body, secrets, "push get 0.3");
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/pushNotificationConfig/list\",\"params\":{\"id\":\"%s\"}}", id);
    assert_no_secret(ALICE, P, body, secrets, "push list 0.3");
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\",\"id\":\"h2\"}}", id);
    assert_no_secret(ALICE, P, body, secrets, "push get 1.0");
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTaskPushNotificationConfigs\",\"params\":{\"taskId\":\"%s\"}}", id);
    assert_no_secret(ALICE, P, body, secrets, "push list 1.0");
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    assert_no_secret(ALICE, P, body, secrets, "tasks/get");
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"includeArtifacts\":true}}");
    assert_no_secret(ADMIN, "/", body, secrets, "ListTasks");
    /* the schemes stay visible: the client can tell what it registered */
    cJSON *o = rpc_as(ALICE, P, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTaskPushNotificationConfig\",\"params\":{\"taskId\":\"%s\",\"id\":\"h2\"}}", id);
    ck_assert_str_eq(json_str(o, "result.authentication.scheme"), "Bearer");
    ck_assert_ptr_nonnull(strstr(json_str(o, "result.url"), "/hook2"));
    cJSON_Delete(o);
    /* the receivers still get them, in headers only */
    size_t before = receiver_count(rcv);
    o = rpc_as(ALICE, P, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"message/send\",\"params\":{\"message\":{\"kind\":\"message\","
                         "\"messageId\":\"a2\",\"role\":\"user\",\"taskId\":\"%s\",\"parts\":[{\"kind\":\"text\",\"text\":\"bye\"}]},"
                         "\"configuration\":{\"blocking\":false}}}", id);
    cJSON_Delete(o);
    ck_assert(receiver_wait(rcv, before + 2, 10000));
    bool saw_token = false, saw_cred = false;
    for (size_t i = 0; i < receiver_count(rcv); i++) {
        const struct received *rq = receiver_get(rcv, i);
        char *tok = received_header(rq, "X-A2A-Notification-Token");
        char *auth = received_header(rq, "Authorization");
        for (size_t k = 0; secrets[k]; k++)
            ck_assert_msg(!strstr(rq->body, secrets[k]), "a webhook body shows %s", secrets[k]);
        saw_token |= tok && strstr(tok, "hook-secret-") != NULL;
        saw_cred |= auth && strstr(auth, "cred-secret-") != NULL;
        free(tok);
        free(auth);
    }
    ck_assert(saw_token);
    ck_assert(saw_cred);
    /* and the log never shows them */
    char *log = daemon_log(&dp);
    for (size_t i = 0; secrets[i]; i++) ck_assert_msg(!strstr(log, secrets[i]), "the log shows %s", secrets[i]);
    free(log);
    free(id);
}
END_TEST

/* ---- role agent ---------------------------------------------------------------- */

START_TEST(client_cannot_send_agent_messages) {
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo"}; /* open: the rule holds anyway */
    start_or_fail(&o);
    cJSON *r = rpc_call(dp.port, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                                      "{\"kind\":\"message\",\"messageId\":\"m1\",\"role\":\"agent\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}}", NULL);
    ck_assert_int_eq(json_int(r, "error.code"), -32602);
    ck_assert_ptr_nonnull(strstr(json_str(r, "error.message"), "params.message.role"));
    cJSON_Delete(r);
    const char *v1[] = {"A2A-Version: 1.0", NULL};
    r = rpc_call_headers(dp.port, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendMessage\",\"params\":{\"message\":"
                                       "{\"messageId\":\"m1\",\"role\":\"ROLE_AGENT\",\"parts\":[{\"text\":\"x\"}]}}}", v1, NULL);
    ck_assert_int_eq(json_int(r, "error.code"), -32602);
    ck_assert_ptr_nonnull(strstr(json_str(r, "error.message"), "params.message.role"));
    cJSON_Delete(r);
    /* nothing was created */
    r = rpc_call_headers(dp.port, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{}}", v1, NULL);
    ck_assert_int_eq(json_int(r, "result.totalSize"), 0);
    cJSON_Delete(r);
}
END_TEST

/* ---- per-agent access lists --------------------------------------------------------- */

START_TEST(agent_access_list) {
    start_auth(NULL);
    static const char send[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":" MSG03("hi") "}}";
    struct http_resp denied, unknown;
    post_as(CAROL, false, false, "/agents/convo", send, &denied);
    post_as(CAROL, false, false, "/agents/nosuch", send, &unknown);
    ck_assert_int_eq(denied.status, 404);
    ck_assert_int_eq(denied.status, unknown.status);
    cJSON *d = cJSON_Parse(denied.body), *u = cJSON_Parse(unknown.body);
    ck_assert_int_eq(json_int(d, "error.code"), json_int(u, "error.code"));
    /* the same text but the path; the list names only what carol may use */
    ck_assert_str_eq(json_str(d, "error.message"), "unknown agent in /agents/convo; loaded agents: echo");
    ck_assert_str_eq(json_str(u, "error.message"), "unknown agent in /agents/nosuch; loaded agents: echo");
    cJSON_Delete(d);
    cJSON_Delete(u);
    http_resp_free(&denied);
    http_resp_free(&unknown);
    /* the default agent (convo) is none for her */
    cJSON *r = rpc_as(CAROL, "/", "%s", send);
    ck_assert_int_eq(json_int(r, "error.code"), -32600);
    ck_assert_ptr_nonnull(strstr(json_str(r, "error.message"), "no default agent here"));
    cJSON_Delete(r);
    r = rpc_as(CAROL, "/agents/echo", "%s", send);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    char *echo_id = strdup(json_str(r, "result.id"));
    cJSON_Delete(r);
    /* the auditor (admin of echo only) sees carol's echo task but not
     * alice's convo task */
    char *convo_id = running_convo_of(ALICE, "hook-secret-D4", "cred-secret-D4");
    r = rpc_as(AUDITOR, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", echo_id);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    cJSON_Delete(r);
    expect_not_found(rpc_as(AUDITOR, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", convo_id),
                     convo_id, "auditor on convo");
    r = rpc_as(AUDITOR, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{}}");
    ck_assert(list_has(r, echo_id));
    ck_assert(!list_has(r, convo_id));
    cJSON_Delete(r);
    r = rpc_as(ALICE, "/agents/convo", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"%s\"}}", convo_id);
    ck_assert_str_eq(json_str(r, "result.status.state"), "canceled");
    cJSON_Delete(r);
    free(echo_id);
    free(convo_id);
}
END_TEST

/* ---- the listening rule and the tokens file ------------------------------------------- */

/* Rewrite the prepared config's listen line. */
static void set_listen(const char *addr) {
    FILE *f = fopen(dp.conf, "r");
    ck_assert_ptr_nonnull(f);
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *at = strstr(text, "listen = 127.0.0.1\n");
    ck_assert_ptr_nonnull(at);
    f = fopen(dp.conf, "w");
    fprintf(f, "%.*slisten = %s\n%s", (int)(at - text), text, addr, at + strlen("listen = 127.0.0.1\n"));
    fclose(f);
}

static int check_config(const char *listen, const char *server_extra, char **log) {
    daemon_cleanup(&dp);
    memset(&dp, 0, sizeof dp);
    struct daemon_opts o = {.plugins = "echo", .server_extra = server_extra};
    ck_assert(daemon_prepare(&dp, &o));
    set_listen(listen);
    int rc = daemon_run_args(&dp, "-t", 10000);
    *log = daemon_log(&dp);
    return rc;
}

START_TEST(non_loopback_without_credentials_refused) {
    char *log;
    static const char *const open_addrs[] = {"0.0.0.0", "::", "192.0.2.10"};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_ne(check_config(open_addrs[i], NULL, &log), 0);
        ck_assert_msg(strstr(log, "allow_unauthenticated") && strstr(log, "not a loopback address"), "%s", log);
        free(log);
        ck_assert_int_eq(check_config(open_addrs[i], "allow_unauthenticated = yes", &log), 0);
        free(log);
        ck_assert_int_eq(check_config(open_addrs[i], server_lines, &log), 0);
        free(log);
    }
    /* loopback may stay open (make run) */
    ck_assert_int_eq(check_config("127.0.0.1", NULL, &log), 0);
    free(log);
    ck_assert_int_eq(check_config("::1", NULL, &log), 0);
    free(log);
}
END_TEST

START_TEST(tokens_file_errors_name_the_line) {
    char *log, extra[300];
    char bad[160];
    snprintf(bad, sizeof bad, "%s/bad", tmp);
    static const struct {
        const char *content, *want;
    } cases[] = {
        {"# ok\nalice " ALICE "\n", ":2: the second field must be sha256:"},
        {"alice sha256:00\n", ":1: the second field must be sha256:"},
        {"alice\n", ":1: expected NAME sha256:HEX"},
        {"a/b sha256:0000000000000000000000000000000000000000000000000000000000000000\n", ":1: NAME must be"},
        {"a sha256:0000000000000000000000000000000000000000000000000000000000000000 root\n", ":1: unknown option"},
        {"a sha256:0000000000000000000000000000000000000000000000000000000000000000\n"
         "a sha256:1111111111111111111111111111111111111111111111111111111111111111\n", ":2: the name is already used"},
        {"a sha256:0000000000000000000000000000000000000000000000000000000000000000 agents=\n", ":1: agents= needs"},
        {"\n# nothing\n", "has no credential"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(bad, "w");
        fputs(cases[i].content, f);
        fclose(f);
        snprintf(extra, sizeof extra, "auth_tokens_file = %s", bad);
        ck_assert_int_ne(check_config("127.0.0.1", extra, &log), 0);
        ck_assert_msg(strstr(log, cases[i].want), "case %zu: want \"%s\" in:\n%s", i, cases[i].want, log);
        /* a plaintext token given by mistake is not echoed */
        ck_assert_msg(!strstr(log, ALICE), "case %zu echoes the token", i);
        free(log);
    }
    snprintf(extra, sizeof extra, "auth_tokens_file = %s/missing", tmp);
    ck_assert_int_ne(check_config("127.0.0.1", extra, &log), 0);
    ck_assert_ptr_nonnull(strstr(log, "cannot open"));
    free(log);
}
END_TEST

START_TEST(hash_token_cli) {
    int st;
    char *line = hash_line(ALICE, "alice", &st);
    ck_assert_int_eq(st, 0);
    unsigned char h[32];
    unsigned int n = 0;
    ck_assert(EVP_Digest(ALICE, strlen(ALICE), h, &n, EVP_sha256(), NULL) == 1);
    char want[200];
    int o = snprintf(want, sizeof want, "alice sha256:");
    for (unsigned i = 0; i < n; i++) o += snprintf(want + o, sizeof want - (size_t)o, "%02x", h[i]);
    snprintf(want + o, sizeof want - (size_t)o, "\n");
    ck_assert_str_eq(line, want);
    free(line);
    line = hash_line("short", "alice", &st);
    ck_assert_int_eq(st, 1);
    ck_assert_str_eq(line, "");
    free(line);
    line = hash_line(ALICE, "bad/name", &st);
    ck_assert_int_eq(st, 2);
    free(line);
}
END_TEST

/* ---- cards ------------------------------------------------------------------------------ */

static cJSON *card(bool v1) {
    const char *h[] = {v1 ? "A2A-Version: 1.0" : NULL, NULL};
    struct http_resp r;
    ck_assert(http_call_headers(dp.port, NULL, "/agents/echo/.well-known/agent-card.json", NULL, h, &r));
    ck_assert_int_eq(r.status, 200);
    cJSON *c = cJSON_Parse(r.body);
    http_resp_free(&r);
    ck_assert_ptr_nonnull(c);
    return c;
}

START_TEST(card_security_matches_config) {
    struct daemon_opts o = {.plugins = "echo"};
    start_or_fail(&o);
    cJSON *c = card(false);
    ck_assert_ptr_null(json_at(c, "securitySchemes"));
    ck_assert_ptr_null(json_at(c, "security"));
    ck_assert(cJSON_IsFalse(json_at(c, "capabilities.extendedAgentCard")));
    cJSON_Delete(c);
    c = card(true);
    ck_assert_ptr_null(json_at(c, "securitySchemes"));
    ck_assert_ptr_null(json_at(c, "securityRequirements"));
    cJSON_Delete(c);
    daemon_cleanup(&dp);
    memset(&dp, 0, sizeof dp);

    start_auth(NULL);
    c = card(false);
    ck_assert_str_eq(json_str(c, "securitySchemes.bearer.type"), "http");
    ck_assert_str_eq(json_str(c, "securitySchemes.bearer.scheme"), "bearer");
    ck_assert_str_eq(json_str(c, "securitySchemes.apiKey.type"), "apiKey");
    ck_assert_str_eq(json_str(c, "securitySchemes.apiKey.in"), "header");
    ck_assert_str_eq(json_str(c, "securitySchemes.apiKey.name"), "X-API-Key");
    ck_assert_int_eq(cJSON_GetArraySize(json_at(c, "securitySchemes")), 2);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(c, "security")), 2);
    ck_assert(cJSON_IsArray(json_at(c, "security.0.bearer")));
    ck_assert(cJSON_IsArray(json_at(c, "security.1.apiKey")));
    ck_assert(cJSON_IsTrue(json_at(c, "capabilities.extendedAgentCard")));
    cJSON_Delete(c);
    c = card(true);
    ck_assert_str_eq(json_str(c, "securitySchemes.bearer.httpAuthSecurityScheme.scheme"), "Bearer");
    ck_assert_str_eq(json_str(c, "securitySchemes.apiKey.apiKeySecurityScheme.location"), "header");
    ck_assert_str_eq(json_str(c, "securitySchemes.apiKey.apiKeySecurityScheme.name"), "X-API-Key");
    ck_assert(cJSON_IsArray(json_at(c, "securityRequirements.0.schemes.bearer.list")));
    ck_assert(cJSON_IsArray(json_at(c, "securityRequirements.1.schemes.apiKey.list")));
    ck_assert_ptr_null(json_at(c, "security"));
    cJSON_Delete(c);
}
END_TEST

/* ---- owners survive a restart ------------------------------------------------------------- */

START_TEST(owner_survives_restart) {
    char db[160];
    snprintf(db, sizeof db, "%s/owners.db", tmp);
    start_auth(db);
    cJSON *r = rpc_as(ALICE, "/agents/echo", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":" MSG03("keep") "}}");
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    char *id = strdup(json_str(r, "result.id"));
    cJSON_Delete(r);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
    daemon_cleanup(&dp);
    memset(&dp, 0, sizeof dp);

    start_auth(db);
    char *log = daemon_log(&dp);
    ck_assert_msg(strstr(log, "recovered 1 finished"), "%s", log);
    free(log);
    expect_not_found(rpc_as(BOB, "/agents/echo", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id), id, "bob after restart");
    r = rpc_as(BOB, "/agents/echo", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{}}");
    ck_assert(!list_has(r, id));
    cJSON_Delete(r);
    r = rpc_as(ALICE, "/agents/echo", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    cJSON_Delete(r);
    r = rpc_as(ALICE, "/agents/echo", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{}}");
    ck_assert(list_has(r, id));
    cJSON_Delete(r);
    r = rpc_as(ADMIN, "/agents/echo", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    cJSON_Delete(r);
    free(id);
}
END_TEST

/* ---- escaped echoes ------------------------------------------------------------------------ */

START_TEST(invalid_utf8_in_method_name_is_escaped) {
    struct daemon_opts o = {.plugins = "echo"};
    start_or_fail(&o);
    char body[1200];
    int n = snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\xc3\x28 %s\"}",
                     "\xe2\x82\xac" /* a valid euro sign */);
    ck_assert_int_gt(n, 0);
    struct http_resp h;
    ck_assert(http_call(dp.port, NULL, "/", body, &h));
    ck_assert_int_eq(h.status, 200);
    ck_assert_msg(util_utf8_valid(h.body, strlen(h.body)), "invalid UTF-8 in %s", h.body);
    cJSON *r = cJSON_Parse(h.body);
    const char *msg = json_str(r, "error.message");
    ck_assert_int_eq(json_int(r, "error.code"), -32601);
    ck_assert_msg(strstr(msg, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd( \xe2\x82\xac"), "%s", msg);
    cJSON_Delete(r);
    http_resp_free(&h);
    /* a long name is cut, with an ellipsis, at a character boundary */
    char name[700];
    for (int i = 0; i < 200; i++) memcpy(name + 3 * i, "\xc3\xa9z", 3);
    name[600] = '\0';
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\"}", name);
    ck_assert(http_call(dp.port, NULL, "/", body, &h));
    ck_assert(util_utf8_valid(h.body, strlen(h.body)));
    r = cJSON_Parse(h.body);
    msg = json_str(r, "error.message");
    ck_assert_msg(strlen(msg) < 120, "not bounded: %zu bytes", strlen(msg));
    ck_assert_msg(strstr(msg, "\xe2\x80\xa6\" not found"), "%s", msg);
    cJSON_Delete(r);
    http_resp_free(&h);
}
END_TEST

/* ---- the installed configuration ---------------------------------------------------------- */

/* The admin API opens to an admin credential of the tokens file, and to
 * no client credential: a client's token gets 401 there. */
START_TEST(admin_api_takes_admin_credentials) {
    start_auth(NULL);
    static const char *const admin_h[] = {"Authorization: Bearer " ADMIN, NULL};
    static const char *const alice_h[] = {"Authorization: Bearer " ALICE, NULL};
    struct http_resp h;
    ck_assert(http_call_headers(dp.port, NULL, "/admin/v1/agents", NULL, admin_h, &h));
    ck_assert_int_eq(h.status, 200);
    http_resp_free(&h);
    ck_assert(http_call_headers(dp.port, NULL, "/admin/v1/agents", NULL, alice_h, &h));
    ck_assert_int_eq(h.status, 401);
    ck_assert_ptr_null(strstr(h.body, ALICE));
    http_resp_free(&h);
    ck_assert(http_call_headers(dp.port, NULL, "/admin/v1/agents", NULL, NULL, &h));
    ck_assert_int_eq(h.status, 401);
    http_resp_free(&h);
}
END_TEST

/* The HTTP+JSON binding asks for the same credentials and scopes tasks the
 * same way: 401 without one, another client's task is not found (404). */
START_TEST(rest_binding_needs_credentials_and_scopes_tasks) {
    start_auth(NULL);
    struct http_resp h;
    ck_assert(http_call(dp.port, NULL, "/tasks", NULL, &h));
    ck_assert_int_eq(h.status, 401);
    ck_assert_ptr_nonnull(strcasestr(h.headers, "WWW-Authenticate: Bearer"));
    ck_assert_ptr_nonnull(strstr(h.body, "UNAUTHENTICATED"));
    http_resp_free(&h);
    static const char *const alice_h[] = {"Authorization: Bearer " ALICE, "Content-Type: application/json", NULL};
    static const char *const bob_h[] = {"Authorization: Bearer " BOB, NULL};
    ck_assert(http_call_headers(dp.port, NULL, "/agents/echo/message:send",
                                "{\"message\":{\"role\":\"ROLE_USER\",\"messageId\":\"m-rest-1\","
                                "\"parts\":[{\"text\":\"hi\"}]},\"configuration\":{\"blocking\":true}}",
                                alice_h, &h));
    ck_assert_msg(h.status == 200, "%ld %s", h.status, h.body);
    cJSON *o = cJSON_Parse(h.body);
    char id[64];
    snprintf(id, sizeof id, "%s", json_str(o, "task.id"));
    cJSON_Delete(o);
    http_resp_free(&h);
    ck_assert_uint_eq(strlen(id), 36);
    char path[120];
    snprintf(path, sizeof path, "/agents/echo/tasks/%s", id);
    ck_assert(http_call_headers(dp.port, NULL, path, NULL, alice_h, &h));
    ck_assert_msg(h.status == 200, "%ld %s", h.status, h.body);
    http_resp_free(&h);
    ck_assert(http_call_headers(dp.port, NULL, path, NULL, bob_h, &h));
    ck_assert_msg(h.status == 404, "%ld %s", h.status, h.body);
    http_resp_free(&h);
}
END_TEST

/* Waits (bounded) until the daemon's log holds what; true when it does. */
static bool log_waits_for(const char *what, int count) {
    for (int i = 0; i < 500; i++) {
        char *log = daemon_log(&dp);
        int n = 0;
        for (const char *p = log; (p = strstr(p, what)); p++) n++;
        free(log);
        if (n >= count) return true;
        test_nap_ms(10);
    }
    return false;
}

static long status_as(const char *token) {
    static const char send[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":" MSG03("ok") "}}";
    struct http_resp h;
    post_as(token, false, false, "/agents/echo", send, &h);
    long st = h.status;
    http_resp_free(&h);
    return st;
}

/* SIGHUP reads the tokens file again: a revoked credential is refused at
 * once, a new one works, and a broken file is refused as a whole. */
START_TEST(tokens_file_reloads_on_sighup) {
    start_auth(NULL);
    ck_assert_int_eq(status_as(ALICE), 200);
    FILE *f = fopen(tokens_path, "w");
    ck_assert_ptr_nonnull(f);
    add_credential(f, BOB, "bob", NULL);
    add_credential(f, "dave-token-0123456789abcdef00", "dave", NULL);
    fclose(f);
    kill(dp.pid, SIGHUP);
    ck_assert(log_waits_for("reload: ", 1) && log_waits_for(" applied (credentials", 1));
    ck_assert_int_eq(status_as(ALICE), 401);
    ck_assert_int_eq(status_as("dave-token-0123456789abcdef00"), 200);
    ck_assert_int_eq(status_as(BOB), 200);
    f = fopen(tokens_path, "w");
    fprintf(f, "dave not-a-hash\n");
    fclose(f);
    kill(dp.pid, SIGHUP);
    ck_assert(log_waits_for("reload refused", 1));
    ck_assert_int_eq(status_as("dave-token-0123456789abcdef00"), 200);
    char *log = daemon_log(&dp);
    ck_assert_ptr_nonnull(strstr(log, ":1: the second field must be sha256:"));
    ck_assert_ptr_null(strstr(log, "dave-token-0123456789abcdef00"));
    free(log);
}
END_TEST

static size_t sink_body(char *p, size_t sz, size_t n, void *arg) {
    (void)p;
    *(size_t *)arg += sz * n;
    return sz * n;
}

/* GET url with libcurl, verifying the server against ca (NULL = no TLS):
 * the HTTP status, or -1 when the transfer failed (refused handshake). */
static long get_status(const char *url, const char *ca) {
    CURL *c = curl_easy_init();
    size_t got = 0;
    long code = -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    if (ca) curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

/* TLS on the listener: HTTPS with the configured certificate (verified by
 * the client against it), plain HTTP refused, the card's URL https, and a
 * half-configured pair refused by a2ad -t. */
START_TEST(tls_listener_serves_https) {
    char cmd[900], cert[160], key[160], lines[1000];
    snprintf(cert, sizeof cert, "%s/cert.pem", tmp);
    snprintf(key, sizeof key, "%s/key.pem", tmp);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' -out '%s' -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -days 1 >/dev/null 2>&1",
             key, cert);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(lines, sizeof lines, "%s\ntls_cert_file = %s\ntls_key_file = %s", server_lines, cert, key);
    struct daemon_opts o = {.plugins = "echo", .default_agent = "echo", .server_extra = lines};
    start_or_fail(&o);
    char url[120];
    snprintf(url, sizeof url, "https://127.0.0.1:%u/healthz", dp.port);
    ck_assert_int_eq(get_status(url, cert), 200);
    ck_assert_int_eq(get_status(url, NULL), -1); /* not trusted without the CA */
    snprintf(url, sizeof url, "http://127.0.0.1:%u/healthz", dp.port);
    ck_assert_int_eq(get_status(url, NULL), -1); /* no plain HTTP on that port */
    char *log = daemon_log(&dp);
    ck_assert_ptr_nonnull(strstr(log, "listening on https://127.0.0.1:"));
    ck_assert_ptr_null(strstr(log, "PRIVATE KEY"));
    free(log);
    daemon_stop(&dp, 10000);
    /* one of the two alone is a configuration error */
    snprintf(lines, sizeof lines, "tls_cert_file = %s", cert);
    char *out;
    ck_assert_int_ne(check_config("127.0.0.1", lines, &out), 0);
    ck_assert_msg(strstr(out, "tls_cert_file and tls_key_file go together"), "%s", out);
    free(out);
}
END_TEST

static char *read_text(const char *path) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    char *text = calloc(1, 65536);
    size_t n = fread(text, 1, 65535, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* `a2ad -t` on conf/production.conf with its tokens file at tokens. */
static int check_production(const char *tokens, char **log) {
    char *text = read_text("conf/production.conf");
    char *at = strstr(text, "\nauth_tokens_file = /etc/a2ad/tokens\n");
    ck_assert_ptr_nonnull(at);
    at += strlen("\nauth_tokens_file = ");
    char conf[128];
    snprintf(conf, sizeof conf, "%s/production.conf", tmp);
    FILE *f = fopen(conf, "w");
    /* a2ad -t also checks the plugin directory and the database path: the
     * installed ones do not exist here, so those two lines point into the
     * build and the test's folder. */
    char plugins[300];
    build_path("plugins", plugins, sizeof plugins);
    char *rest = at + strlen("/etc/a2ad/tokens\n");
    fprintf(f, "%.*s%s\n", (int)(at - text), text, tokens);
    for (char *line = strtok(rest, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "dir = ", 6) == 0)
            fprintf(f, "dir = %s\n", plugins);
        else if (strncmp(line, "path = ", 7) == 0)
            fprintf(f, "path = %s/production.db\n", tmp);
        else
            fprintf(f, "%s\n", line);
    }
    fclose(f);
    free(text);
    char bin[300], cmd[800], out[128];
    build_path("a2ad", bin, sizeof bin);
    snprintf(out, sizeof out, "%s/production.out", tmp);
    snprintf(cmd, sizeof cmd, "'%s' -t -c '%s' >'%s' 2>&1", bin, conf, out);
    int st = system(cmd);
    *log = read_text(out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(installed_config_requires_credentials) {
    char *text = read_text("conf/production.conf");
    ck_assert_ptr_null(strstr(text, "build/"));
    ck_assert_ptr_null(strstr(text, "[agent."));
    ck_assert_ptr_null(strstr(text, "\nload = "));
    ck_assert_ptr_nonnull(strstr(text, "\nauth_tokens_file = /etc/a2ad/tokens\n"));
    free(text);
    char *log, missing[128], empty[128];
    ck_assert_int_eq(check_production(tokens_path, &log), 0);
    free(log);
    snprintf(missing, sizeof missing, "%s/none", tmp);
    ck_assert_int_ne(check_production(missing, &log), 0);
    ck_assert_msg(strstr(log, "cannot open"), "%s", log);
    free(log);
    snprintf(empty, sizeof empty, "%s/empty", tmp);
    FILE *f = fopen(empty, "w");
    fputs("# a2ad credentials\n", f);
    fclose(f);
    ck_assert_int_ne(check_production(empty, &log), 0);
    ck_assert_msg(strstr(log, "has no credential"), "%s", log);
    free(log);
    /* the demo stays open, on loopback only, and says so */
    text = read_text("conf/a2ad.conf");
    ck_assert_ptr_nonnull(strstr(text, "\nlisten = 127.0.0.1\n"));
    ck_assert_ptr_null(strstr(text, "\nauth_tokens_file = /"));
    ck_assert_ptr_nonnull(strstr(text, "THIS FILE IS THE `make run` DEMO"));
    free(text);
}
END_TEST

/* ---- inline hashes and the older plaintext key ------------------------------------------------ */

START_TEST(inline_hashes_and_plaintext_tokens) {
    int st;
    char *line = hash_line(ALICE, "alice", &st); /* "alice sha256:HEX\n" */
    ck_assert_int_eq(st, 0);
    line[strcspn(line, "\n")] = '\0';
    char extra[400];
    snprintf(extra, sizeof extra, "auth_token_hashes = alice:%s\nauth_bearer_tokens = %s",
             strchr(line, ' ') + 1, BOB);
    free(line);
    struct daemon_opts o = {.plugins = "echo", .server_extra = extra};
    start_or_fail(&o);
    char *log = daemon_log(&dp);
    ck_assert_ptr_nonnull(strstr(log, "plaintext tokens")); /* told to move them */
    ck_assert_ptr_null(strstr(log, BOB));
    free(log);
    cJSON *r = rpc_as(ALICE, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":" MSG03("mine") "}}");
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    char *id = strdup(json_str(r, "result.id"));
    cJSON_Delete(r);
    /* the plaintext token is a credential too, and a client like any other */
    expect_not_found(rpc_as(BOB, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id), id, "plaintext bob");
    r = rpc_as(ALICE, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    ck_assert_str_eq(json_str(r, "result.id"), id);
    cJSON_Delete(r);
    struct http_resp h;
    post_as(ADMIN, false, false, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{}}", &h);
    expect_401(&h, "a token not configured here", ADMIN);
    http_resp_free(&h);
    free(id);
}
END_TEST

/* ---- JWT bearer tokens ------------------------------------------------------------------------ */

#define HS_SECRET "0123456789abcdef0123456789abcdef-hs256-secret"

static EVP_PKEY *rsa_key;
static char *rsa_priv_pem, *rsa_pub_pem;

static char *pem_of(EVP_PKEY *k, bool priv) {
    BIO *b = BIO_new(BIO_s_mem());
    ck_assert(priv ? PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)
                   : PEM_write_bio_PUBKEY(b, k));
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = strndup(data, (size_t)n);
    BIO_free(b);
    return s;
}

static char *b64url(const void *data, size_t len) {
    char *s = util_base64_encode(data, len);
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '=') continue;
        s[o++] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
    }
    s[o] = '\0';
    return s;
}

static char *bn_b64url(EVP_PKEY *k, const char *name) {
    BIGNUM *bn = NULL;
    ck_assert(EVP_PKEY_get_bn_param(k, name, &bn) == 1);
    unsigned char buf[1024];
    int n = BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64url(buf, (size_t)n);
}

/* A JWKS file with rsa_key as kid "k1"; a second, unrelated key "k2". */
static void write_jwks(const char *path, EVP_PKEY *other) {
    char *n1 = bn_b64url(rsa_key, "n"), *e1 = bn_b64url(rsa_key, "e");
    char *n2 = bn_b64url(other, "n"), *e2 = bn_b64url(other, "e");
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"skipped\"},"
               "{\"kty\":\"RSA\",\"kid\":\"k1\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"%s\"},"
               "{\"kty\":\"RSA\",\"kid\":\"k2\",\"n\":\"%s\",\"e\":\"%s\"}]}", n1, e1, n2, e2);
    fclose(f);
    free(n1), free(e1), free(n2), free(e2);
}

struct claims {
    const char *sub, *iss, *aud, *agents_json;
    long exp_in; /* seconds from now; 0 = no exp */
    bool admin;
};

/* A token signed with alg and key (for RS256 a private PEM; for HS256 any
 * bytes), with header kid when given. */
static char *make_jwt(jwt_alg_t alg, const char *key, const char *kid, const struct claims *c) {
    jwt_t *j = NULL;
    ck_assert_int_eq(jwt_new(&j), 0);
    if (c->sub) jwt_add_grant(j, "sub", c->sub);
    if (c->iss) jwt_add_grant(j, "iss", c->iss);
    if (c->aud) jwt_add_grant(j, "aud", c->aud);
    if (c->exp_in) jwt_add_grant_int(j, "exp", (long)time(NULL) + c->exp_in);
    if (c->admin) jwt_add_grant_bool(j, "a2ad_admin", 1);
    if (c->agents_json) {
        char g[200];
        snprintf(g, sizeof g, "{\"a2ad_agents\":%s}", c->agents_json);
        ck_assert_int_eq(jwt_add_grants_json(j, g), 0);
    }
    if (kid) jwt_add_header(j, "kid", kid);
    ck_assert_int_eq(jwt_set_alg(j, alg, (const unsigned char *)key, (int)strlen(key)), 0);
    char *s = jwt_encode_str(j);
    jwt_free(j);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* header.payload. with alg none. */
static char *unsigned_jwt(const char *payload) {
    char *h = b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}", 27), *p = b64url(payload, strlen(payload));
    char *s = malloc(strlen(h) + strlen(p) + 3);
    sprintf(s, "%s.%s.", h, p);
    free(h), free(p);
    return s;
}

static char jwt_lines[600];

static void jwt_setup(void) {
    setup();
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ck_assert_ptr_nonnull(rsa_key);
    rsa_priv_pem = pem_of(rsa_key, true);
    rsa_pub_pem = pem_of(rsa_key, false);
}

static void jwt_teardown(void) {
    EVP_PKEY_free(rsa_key);
    free(rsa_priv_pem);
    free(rsa_pub_pem);
    teardown();
}

static void start_jwt(bool hs256, bool jwks) {
    char secret[128], keys[128];
    snprintf(secret, sizeof secret, "%s/hs256.secret", tmp);
    snprintf(keys, sizeof keys, "%s/jwks.json", tmp);
    FILE *f = fopen(secret, "w");
    fputs(HS_SECRET "\n", f);
    fclose(f);
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    write_jwks(keys, other);
    EVP_PKEY_free(other);
    snprintf(jwt_lines, sizeof jwt_lines, "%s%s%s%s\nauth_jwt_issuer = https://issuer.example\nauth_jwt_audience = a2ad",
             hs256 ? "auth_jwt_hs256_secret_file = " : "", hs256 ? secret : "",
             jwks ? "\nauth_jwt_jwks_file = " : "", jwks ? keys : "");
    struct daemon_opts o = {.plugins = "echo,convo", .default_agent = "echo", .server_extra = jwt_lines};
    start_or_fail(&o);
}

static void expect_jwt_refused(const char *tok, const char *want, const char *what) {
    struct http_resp h;
    post_as(tok, false, false, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":" MSG03("x") "}}", &h);
    expect_401(&h, what, tok);
    ck_assert_msg(strstr(h.body, want), "%s: want \"%s\" in %s", what, want, h.body);
    http_resp_free(&h);
}

START_TEST(jwt_bearer_tokens) {
    start_jwt(true, true);
    const struct claims dave = {.sub = "dave", .iss = "https://issuer.example", .aud = "a2ad", .exp_in = 300};
    char *hs = make_jwt(JWT_ALG_HS256, HS_SECRET, NULL, &dave);
    cJSON *r = rpc_as(hs, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":" MSG03("by jwt") "}}");
    ck_assert_msg(strcmp(json_str(r, "result.status.state"), "completed") == 0, "%s", cJSON_PrintUnformatted(r));
    char *id = strdup(json_str(r, "result.id"));
    cJSON_Delete(r);
    /* the same subject through an RS256 token of the JWKS is the same caller */
    char *rs = make_jwt(JWT_ALG_RS256, rsa_priv_pem, "k1", &dave);
    r = rpc_as(rs, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    ck_assert_str_eq(json_str(r, "result.id"), id);
    cJSON_Delete(r);
    /* without a kid, every key is tried */
    char *rs_nokid = make_jwt(JWT_ALG_RS256, rsa_priv_pem, NULL, &dave);
    r = rpc_as(rs_nokid, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    ck_assert_str_eq(json_str(r, "result.id"), id);
    cJSON_Delete(r);
    /* another subject does not see it; an admin claim does */
    struct claims erin = dave;
    erin.sub = "erin";
    char *e = make_jwt(JWT_ALG_HS256, HS_SECRET, NULL, &erin);
    expect_not_found(rpc_as(e, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id), id, "erin");
    erin.admin = true;
    char *ea = make_jwt(JWT_ALG_HS256, HS_SECRET, NULL, &erin);
    r = rpc_as(ea, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    ck_assert_str_eq(json_str(r, "result.id"), id);
    cJSON_Delete(r);
    /* an access list claim */
    struct claims limited = dave;
    limited.agents_json = "[\"echo\"]";
    char *lim = make_jwt(JWT_ALG_HS256, HS_SECRET, NULL, &limited);
    struct http_resp h;
    post_as(lim, false, false, "/agents/convo", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"x\"}}", &h);
    ck_assert_int_eq(h.status, 404);
    ck_assert_ptr_nonnull(strstr(h.body, "unknown agent in /agents/convo"));
    http_resp_free(&h);

    /* refused: each names why, none echoes the token */
    struct claims bad = dave;
    bad.exp_in = -3600;
    char *t1 = make_jwt(JWT_ALG_HS256, HS_SECRET, NULL, &bad);
    expect_jwt_refused(t1, "expired", "expired");
    bad = dave;
    bad.exp_in = 0;
    char *t2 = make_jwt(JWT_ALG_HS256, HS_SECRET, NULL, &bad);
    expect_jwt_refused(t2, "no exp claim", "no exp");
    bad = dave;
    bad.iss = "https://evil.example";
    char *t3 = make_jwt(JWT_ALG_HS256, HS_SECRET, NULL, &bad);
    expect_jwt_refused(t3, "issuer", "wrong iss");
    bad = dave;
    bad.aud = "someone-else";
    char *t4 = make_jwt(JWT_ALG_HS256, HS_SECRET, NULL, &bad);
    expect_jwt_refused(t4, "audience", "wrong aud");
    char *t5 = make_jwt(JWT_ALG_HS256, "another-secret-of-enough-length-000000", NULL, &dave);
    expect_jwt_refused(t5, "not valid", "wrong HS256 secret");
    EVP_PKEY *stranger = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    char *spem = pem_of(stranger, true);
    char *t6 = make_jwt(JWT_ALG_RS256, spem, "k1", &dave);
    expect_jwt_refused(t6, "not valid", "RS256 by an unknown key");
    free(spem);
    EVP_PKEY_free(stranger);
    char *t7 = unsigned_jwt("{\"sub\":\"dave\",\"iss\":\"https://issuer.example\",\"aud\":\"a2ad\",\"exp\":9999999999}");
    expect_jwt_refused(t7, "not valid", "alg none");
    /* a payload changed after signing */
    char *t8 = strdup(hs);
    char *dot = strchr(t8, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    expect_jwt_refused(t8, "not valid", "tampered");
    bad = dave;
    bad.sub = "has space";
    char *t9 = make_jwt(JWT_ALG_HS256, HS_SECRET, NULL, &bad);
    expect_jwt_refused(t9, "sub claim", "bad sub");
    /* a JWT is a bearer token, not an API key */
    post_as(hs, true, false, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{}}", &h);
    expect_401(&h, "JWT as X-API-Key", hs);
    http_resp_free(&h);
    /* the card: a bearer scheme for JWTs, no apiKey scheme */
    cJSON *c = card(false);
    ck_assert_str_eq(json_str(c, "securitySchemes.bearer.bearerFormat"), "JWT");
    ck_assert_ptr_null(json_at(c, "securitySchemes.apiKey"));
    ck_assert_int_eq(cJSON_GetArraySize(json_at(c, "security")), 1);
    cJSON_Delete(c);
    char *log = daemon_log(&dp);
    ck_assert_ptr_null(strstr(log, hs));
    ck_assert_ptr_null(strstr(log, HS_SECRET));
    free(log);
    char *all[] = {hs, rs, rs_nokid, e, ea, lim, t1, t2, t3, t4, t5, t6, t7, t8, t9, id};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}
END_TEST

/* An HS256 token signed with the RSA public key (which anyone can have)
 * must not pass where only RS256 keys are configured. */
START_TEST(jwt_algorithm_confusion_refused) {
    start_jwt(false, true);
    const struct claims dave = {.sub = "dave", .iss = "https://issuer.example", .aud = "a2ad", .exp_in = 300};
    char *forged = make_jwt(JWT_ALG_HS256, rsa_pub_pem, "k1", &dave);
    expect_jwt_refused(forged, "not valid", "HS256 with the public key");
    free(forged);
    char *good = make_jwt(JWT_ALG_RS256, rsa_priv_pem, "k1", &dave);
    cJSON *r = rpc_as(good, "/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{}}");
    ck_assert_int_eq(json_int(r, "result.totalSize"), 0);
    cJSON_Delete(r);
    /* kid k2 names the other key: this token's signature does not match it */
    char *wrong_kid = make_jwt(JWT_ALG_RS256, rsa_priv_pem, "k2", &dave);
    expect_jwt_refused(wrong_kid, "not valid", "kid of another key");
    free(wrong_kid);
    free(good);
}
END_TEST

START_TEST(jwt_config_errors) {
    char *log, extra[300], path[160];
    snprintf(path, sizeof path, "%s/short.secret", tmp);
    FILE *f = fopen(path, "w");
    fputs("too-short\n", f);
    fclose(f);
    snprintf(extra, sizeof extra, "auth_jwt_hs256_secret_file = %s", path);
    ck_assert_int_ne(check_config("127.0.0.1", extra, &log), 0);
    ck_assert_msg(strstr(log, "at least 32 bytes") && !strstr(log, "too-short"), "%s", log);
    free(log);
    snprintf(path, sizeof path, "%s/bad.jwks", tmp);
    f = fopen(path, "w");
    fputs("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", f);
    fclose(f);
    snprintf(extra, sizeof extra, "auth_jwt_jwks_file = %s", path);
    ck_assert_int_ne(check_config("127.0.0.1", extra, &log), 0);
    ck_assert_msg(strstr(log, "shorter than 2048 bits"), "%s", log);
    free(log);
    f = fopen(path, "w");
    fputs("[]", f);
    fclose(f);
    ck_assert_int_ne(check_config("127.0.0.1", extra, &log), 0);
    ck_assert_msg(strstr(log, "must be a JWKS"), "%s", log);
    free(log);
    /* JWT keys count as credentials for the listening rule */
    write_jwks(path, rsa_key);
    ck_assert_int_eq(check_config("0.0.0.0", extra, &log), 0);
    free(log);
}
END_TEST

Suite *auth_suite(void);
Suite *auth_suite(void) {
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, no_credentials_401_on_every_method);
    tcase_add_test(tc, second_client_sees_not_found);
    tcase_add_test(tc, push_config_secrets_are_write_only);
    tcase_add_test(tc, client_cannot_send_agent_messages);
    tcase_add_test(tc, agent_access_list);
    tcase_add_test(tc, non_loopback_without_credentials_refused);
    tcase_add_test(tc, tokens_file_errors_name_the_line);
    tcase_add_test(tc, hash_token_cli);
    tcase_add_test(tc, card_security_matches_config);
    tcase_add_test(tc, owner_survives_restart);
    tcase_add_test(tc, invalid_utf8_in_method_name_is_escaped);
    tcase_add_test(tc, installed_config_requires_credentials);
    tcase_add_test(tc, inline_hashes_and_plaintext_tokens);
    suite_add_tcase(s, tc);
    TCase *tj = tcase_create("jwt");
    tcase_add_checked_fixture(tj, jwt_setup, jwt_teardown);
    tcase_set_timeout(tj, 120);
    tcase_add_test(tj, jwt_bearer_tokens);
    tcase_add_test(tj, admin_api_takes_admin_credentials);
    tcase_add_test(tj, rest_binding_needs_credentials_and_scopes_tasks);
    tcase_add_test(tj, tokens_file_reloads_on_sighup);
    tcase_add_test(tj, tls_listener_serves_https);
    tcase_add_test(tj, jwt_algorithm_confusion_refused);
    tcase_add_test(tj, jwt_config_errors);
    suite_add_tcase(s, tj);
    return s;
}
