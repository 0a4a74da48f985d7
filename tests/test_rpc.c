/* rpc: JSON-RPC handling without HTTP — envelope checks, dispatch, agent
 * cards. The end-to-end paths (jobs, waits) are in the integration suite. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/plugins.h"
#include "core/rpc.h"
#include "core/tasks.h"

static cJSON *handle(const struct agent *agent, const char *body, int *http_status) {
    struct rpc_reply r;
    struct rpc_request rq = {.agent = agent, .body = body, .len = strlen(body)};
    rpc_handle(&rq, &r);
    if (http_status) *http_status = r.http_status;
    ck_assert_ptr_null(r.wait_task);
    cJSON *o = cJSON_Parse(r.body);
    ck_assert_ptr_nonnull(o);
    rpc_reply_clear(&r);
    return o;
}

static int error_code(const cJSON *o) {
    const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "code");
    return cJSON_IsNumber(c) ? c->valueint : 0;
}

static void setup(void) { tasks_init(60, 100); }
static void teardown(void) { tasks_shutdown(); }

START_TEST(envelope_errors_keep_the_request_id) {
    cJSON *o = handle(NULL, "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"nope\"}", NULL);
    ck_assert_int_eq(error_code(o), RPC_METHOD_NOT_FOUND);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "id")->valuestring, "abc");
    cJSON_Delete(o);
    o = handle(NULL, "{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"tasks/get\"}", NULL);
    ck_assert_int_eq(error_code(o), RPC_INVALID_REQUEST);
    ck_assert_int_eq(cJSON_GetObjectItem(o, "id")->valueint, 5);
    cJSON_Delete(o);
    o = handle(NULL, "", NULL); /* empty body */
    ck_assert_int_eq(error_code(o), RPC_PARSE_ERROR);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "id")));
    cJSON_Delete(o);
    o = handle(NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", NULL);
    ck_assert_int_eq(error_code(o), RPC_INVALID_REQUEST);
    cJSON_Delete(o);
}
END_TEST

START_TEST(send_without_agent_and_methods_without_ids) {
    int http = 0;
    cJSON *o = handle(NULL,
                      "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                      "{\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]}}}",
                      &http);
    ck_assert_int_eq(http, 200);
    ck_assert_int_eq(error_code(o), RPC_INVALID_REQUEST);
    ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "message")->valuestring,
                                 "/agents/<name>"));
    cJSON_Delete(o);
    /* The task methods name the missing task id (once -32004 "not yet"). */
    static const char *const need_id[] = {"tasks/resubscribe", "tasks/pushNotificationConfig/set",
                                          "tasks/pushNotificationConfig/list", "GetTask",
                                          "SubscribeToTask"};
    for (size_t i = 0; i < sizeof need_id / sizeof need_id[0]; i++) {
        char body[200];
        snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":{}}", need_id[i]);
        o = handle(NULL, body, NULL);
        ck_assert_msg(error_code(o) == RPC_INVALID_PARAMS, "%s: %d", need_id[i], error_code(o));
        cJSON_Delete(o);
    }
    /* No inbound authentication configured: 0.3 says -32007; the 1.0 card
     * declares extendedAgentCard false, so 1.0 says -32004. */
    o = handle(NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"agent/getAuthenticatedExtendedCard\"}", NULL);
    ck_assert_int_eq(error_code(o), -32007);
    cJSON_Delete(o);
    o = handle(NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetExtendedAgentCard\"}", NULL);
    ck_assert_int_eq(error_code(o), RPC_UNSUPPORTED_OPERATION);
    cJSON_Delete(o);
}
END_TEST

START_TEST(part_checks_name_the_field) {
    struct agent a;
    memset(&a, 0, sizeof a);
    a.desc.name = "t";
    static const struct {
        const char *parts;
        const char *field;
    } cases[] = {
        {"[{\"kind\":\"text\"}]", "parts[0].text"},
        {"[{\"kind\":\"text\",\"text\":\"a\"},{\"kind\":\"file\",\"file\":{}}]", "parts[1].file"},
        {"[{\"kind\":\"data\",\"data\":3}]", "parts[0].data"},
        {"[{\"kind\":\"video\"}]", "parts[0].kind"},
        {"[7]", "parts[0] must be an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[400];
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                 "{\"messageId\":\"m\",\"role\":\"user\",\"parts\":%s}}}",
                 cases[i].parts);
        cJSON *o = handle(&a, body, NULL);
        ck_assert_int_eq(error_code(o), RPC_INVALID_PARAMS);
        const char *msg = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "message")->valuestring;
        ck_assert_msg(strstr(msg, cases[i].field) != NULL, "case %zu: \"%s\"", i, msg);
        cJSON_Delete(o);
    }
    /* a push token with a line break would forge headers: refused */
    cJSON *o = handle(&a,
                      "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                      "{\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"x\"}]},"
                      "\"configuration\":{\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:1/h\",\"token\":\"a\\r\\nX-Evil: 1\"}}}}",
                      NULL);
    ck_assert_int_eq(error_code(o), RPC_INVALID_PARAMS);
    cJSON_Delete(o);
    ck_assert_uint_eq(tasks_count(), 0); /* nothing was created by refused requests */
}
END_TEST

START_TEST(agent_card_fields) {
    static const char *const tags[] = {"a", "b", NULL};
    static const struct a2ad_skill skills[] = {{.id = "s1", .name = "Skill", .description = "d", .tags = tags}};
    struct agent a;
    memset(&a, 0, sizeof a);
    a.desc.name = "demo";
    a.desc.description = "A demo";
    a.desc.version = "2.1.0";
    a.desc.skills = skills;
    a.desc.n_skills = 1;
    char *text = rpc_agent_card(&a, "http://127.0.0.1:9/agents/demo", A2A_V03);
    cJSON *c = cJSON_Parse(text);
    free(text);
    ck_assert_str_eq(cJSON_GetObjectItem(c, "name")->valuestring, "demo");
    ck_assert_str_eq(cJSON_GetObjectItem(c, "version")->valuestring, "2.1.0");
    ck_assert_str_eq(cJSON_GetObjectItem(c, "url")->valuestring, "http://127.0.0.1:9/agents/demo");
    ck_assert_str_eq(cJSON_GetObjectItem(c, "protocolVersion")->valuestring, "0.3.0");
    cJSON *caps = cJSON_GetObjectItem(c, "capabilities");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(caps, "streaming")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(caps, "extendedAgentCard")));
    /* one endpoint, both versions, 1.0 first (preferred) */
    cJSON *ifs = cJSON_GetObjectItem(c, "supportedInterfaces");
    ck_assert_int_eq(cJSON_GetArraySize(ifs), 3); /* JSON-RPC 1.0, 0.3, then HTTP+JSON 1.0 */
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(ifs, 2), "protocolBinding")->valuestring,
                     "HTTP+JSON");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(ifs, 0), "protocolVersion")->valuestring, "1.0");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(ifs, 1), "protocolVersion")->valuestring, "0.3");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(ifs, 1), "url")->valuestring,
                     "http://127.0.0.1:9/agents/demo");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(caps, "pushNotifications")));
    cJSON *s0 = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "skills"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(s0, "id")->valuestring, "s1");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(s0, "tags")), 2);
    ck_assert_ptr_null(cJSON_GetObjectItem(s0, "examples"));
    cJSON_Delete(c);
}
END_TEST

Suite *rpc_suite(void);
Suite *rpc_suite(void) {
    Suite *s = suite_create("rpc");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, envelope_errors_keep_the_request_id);
    tcase_add_test(tc, send_without_agent_and_methods_without_ids);
    tcase_add_test(tc, part_checks_name_the_field);
    tcase_add_test(tc, agent_card_fields);
    suite_add_tcase(s, tc);
    return s;
}
