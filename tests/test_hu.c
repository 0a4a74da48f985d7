/* hu: the Health Universe background_job/v1 extension.
 *
 * Unit tests read the request parameters, the acknowledgement, the slot's
 * persistence and the card entry without a daemon. The integration tests run
 * the real a2ad with the example plugins against a real receiver standing in
 * for the platform's two URLs, and compare every body, parsed, with the
 * Health Universe SDK's keys, key order and values. */
#include <check.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "delivery/guard.h"
#include "delivery/hu.h"
#include "agents/plugins.h"
#include "core/rpc.h"
#include "support/daemon.h"
#include "support/json.h"
#include "support/receiver.h"
#include "core/tasks.h"
#include "util.h"

#define URI HU_BACKGROUND_JOB_URI

/* Dotted path into JSON; the extension key has dots, so "EXT" in a path
 * stands for it. */
static const cJSON *jget(const cJSON *o, const char *path) { return json_at_key(o, path, "EXT", URI); }

static const char *jstr(const cJSON *o, const char *path) {
    const cJSON *v = jget(o, path);
    return cJSON_IsString(v) ? v->valuestring : "(absent)";
}

static double jnum(const cJSON *o, const char *path) {
    const cJSON *v = jget(o, path);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The member names of an object, in order, joined by ','. */
static void assert_keys(const cJSON *o, const char *expected) {
    char got[512] = "";
    size_t n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, o) n += (size_t)snprintf(got + n, sizeof got - n, "%s%s", n ? "," : "", c->string);
    ck_assert_msg(strcmp(got, expected) == 0, "keys \"%s\", expected \"%s\"", got, expected);
}

/* ---- unit: request parameters ------------------------------------------ */

static struct agent unit_agent;

static void unit_setup(void) {
    memset(&unit_agent, 0, sizeof unit_agent);
    unit_agent.desc.name = "unit";
    unit_agent.max_duration_s = 600;
    tasks_init(60, 100);
    hu_init(NULL);
    /* The URLs below point at 127.0.0.1; test_guard covers refusing them. */
    guard_set_allow("127.0.0.0/8");
}

static void unit_teardown(void) {
    tasks_shutdown();
    hu_shutdown();
}

/* hu_parse on a params object given as JSON text. */
static a2ad_status parse(const char *params_json, const char *header, void **job, cJSON **params,
                         char *err, size_t errlen) {
    *params = cJSON_Parse(params_json);
    ck_assert_msg(*params != NULL, "bad test JSON: %s", params_json);
    return hu_parse(&unit_agent, *params, header, job, err, errlen);
}

#define MSG "\"message\":{\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"q\"}]"
#define EXT_OK "\"" URI "\":{\"job_id\":\"job-1\",\"api_key\":\"key-1\"}"
#define URLS ",\"job_status_update_url\":\"http://127.0.0.1:1/s\",\"job_results_url\":\"https://h.example/r\""

START_TEST(parse_activation_and_fallback) {
    char err[512];
    void *job;
    cJSON *p;
    /* No extension anywhere: not a Health Universe job. */
    ck_assert_int_eq(parse("{" MSG "},\"metadata\":{\"x\":1}}", "other-ext", &job, &p, err, sizeof err), A2AD_OK);
    ck_assert_ptr_null(job);
    cJSON_Delete(p);

    /* In params.metadata: the key leaves the stored copy, job_id stays. */
    ck_assert_int_eq(parse("{" MSG "},\"metadata\":{" EXT_OK URLS "}}", NULL, &job, &p, err, sizeof err), A2AD_OK);
    ck_assert_ptr_nonnull(job);
    ck_assert_str_eq(jstr(p, "metadata.EXT.job_id"), "job-1");
    ck_assert_ptr_null(jget(p, "metadata.EXT.api_key"));
    const struct task_ext_ops *ops = tasks_ext_ops(TASK_EXT_HU);
    cJSON *saved = ops->save(job);
    ck_assert_str_eq(jstr(saved, "api_key"), "key-1"); /* the slot keeps it */
    ck_assert_str_eq(jstr(saved, "job_status_update_url"), "http://127.0.0.1:1/s");
    ck_assert_str_eq(jstr(saved, "job_results_url"), "https://h.example/r");
    cJSON_Delete(saved);
    hu_job_free(job);
    cJSON_Delete(p);

    /* params.metadata empty or absent: params.message.metadata is used. */
    const char *fallbacks[] = {
        "{" MSG ",\"metadata\":{" EXT_OK URLS "}},\"metadata\":{}}",
        "{" MSG ",\"metadata\":{" EXT_OK URLS "}}}",
    };
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(parse(fallbacks[i], NULL, &job, &p, err, sizeof err), A2AD_OK);
        ck_assert_ptr_nonnull(job);
        ck_assert_ptr_null(jget(p, "message.metadata.EXT.api_key"));
        saved = ops->save(job);
        ck_assert_str_eq(jstr(saved, "job_results_url"), "https://h.example/r");
        cJSON_Delete(saved);
        hu_job_free(job);
        cJSON_Delete(p);
    }
    /* Never merged: a non-empty params.metadata hides message.metadata. */
    ck_assert_int_eq(parse("{" MSG ",\"metadata\":{" EXT_OK URLS "}},\"metadata\":{\"other\":1}}", NULL, &job,
                           &p, err, sizeof err),
                     A2AD_OK);
    ck_assert_ptr_null(job);
    cJSON_Delete(p);
    /* ...and URLs are read from the same object as the extension only. */
    ck_assert_int_eq(parse("{" MSG ",\"metadata\":{\"job_results_url\":\"http://x/r\"}},\"metadata\":{" EXT_OK "}}",
                           NULL, &job, &p, err, sizeof err),
                     A2AD_OK);
    saved = ops->save(job);
    ck_assert_ptr_null(jget(saved, "job_results_url"));
    cJSON_Delete(saved);
    hu_job_free(job);
    cJSON_Delete(p);

    /* Activated by the header (a list, blanks allowed) with its parameters. */
    ck_assert_int_eq(parse("{" MSG "},\"metadata\":{" EXT_OK "}}", "urn:a, " URI " ,urn:b", &job, &p, err, sizeof err),
                     A2AD_OK);
    ck_assert_ptr_nonnull(job);
    hu_job_free(job);
    cJSON_Delete(p);
}
END_TEST

START_TEST(parse_errors_name_the_field) {
    static const struct {
        const char *params, *header, *expect;
    } cases[] = {
        {"{" MSG "}}", URI, "the A2A-Extensions (or X-A2A-Extensions) header lists the extension"},
        {"{" MSG ",\"extensions\":[\"" URI "\"]}}", NULL, "params.message.extensions lists"},
        {"{" MSG "},\"metadata\":{\"" URI "\":\"job-1\"}}", NULL, "must be an object with job_id and api_key"},
        {"{" MSG "},\"metadata\":{\"" URI "\":{\"api_key\":\"k\"}}}", NULL, "params.metadata[\"" URI "\"].job_id is required"},
        {"{" MSG "},\"metadata\":{\"" URI "\":{\"job_id\":\"j\",\"api_key\":\"\"}}}", NULL, ".api_key is required (a non-empty string)"},
        {"{" MSG "},\"metadata\":{\"" URI "\":{\"job_id\":\"j\",\"api_key\":7}}}", NULL, ".api_key is required"},
        {"{" MSG "},\"metadata\":{\"" URI "\":{\"job_id\":\"j\",\"api_key\":\"k\\r\\nX-Evil: 1\"}}}", NULL,
         ".api_key must not contain control characters"},
        {"{" MSG ",\"metadata\":{\"" URI "\":{\"job_id\":\"j\"}}}}", NULL, "params.message.metadata[\"" URI "\"].api_key"},
        {"{" MSG "},\"metadata\":{" EXT_OK ",\"job_status_update_url\":\"ftp://x/s\"}}", NULL,
         "params.metadata.job_status_update_url must be an http:// or https:// URL"},
        {"{" MSG "},\"metadata\":{" EXT_OK ",\"job_results_url\":3}}", NULL,
         "params.metadata.job_results_url must be an http:// or https:// URL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512];
        void *job = (void *)1;
        cJSON *p;
        ck_assert_int_eq(parse(cases[i].params, cases[i].header, &job, &p, err, sizeof err), A2AD_ERR_INVALID);
        ck_assert_ptr_null(job);
        ck_assert_msg(strstr(err, cases[i].expect) != NULL, "case %zu: \"%s\"", i, err);
        cJSON_Delete(p);
    }
    /* A URI that only starts like ours activates nothing. */
    char err[512];
    void *job;
    cJSON *p;
    ck_assert_int_eq(parse("{" MSG "}}", URI "/x", &job, &p, err, sizeof err), A2AD_OK);
    ck_assert_ptr_null(job);
    cJSON_Delete(p);
}
END_TEST

/* The same refusals through rpc_handle: -32602 and no task. */
START_TEST(rpc_refuses_before_creating_a_task) {
    const char *body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{" MSG
                       "},\"metadata\":{\"" URI "\":{\"api_key\":\"k\"}}}}";
    struct rpc_reply r;
    struct rpc_request rq = {.agent = &unit_agent, .body = body, .len = strlen(body)};
    rpc_handle(&rq, &r);
    cJSON *o = cJSON_Parse(r.body);
    rpc_reply_clear(&r);
    ck_assert_int_eq((int)jnum(o, "error.code"), RPC_INVALID_PARAMS);
    ck_assert_ptr_nonnull(strstr(jstr(o, "error.message"), ".job_id is required"));
    cJSON_Delete(o);
    ck_assert_uint_eq(tasks_count(), 0);
}
END_TEST

/* ---- unit: acknowledgement, persistence, card ---------------------------- */

static struct task *hu_task(void) {
    char err[512];
    void *job;
    cJSON *p;
    ck_assert_int_eq(parse("{" MSG "},\"metadata\":{" EXT_OK URLS "}}", NULL, &job, &p, err, sizeof err), A2AD_OK);
    struct task_create tc = {
        .agent = &unit_agent,
        .message = cJSON_DetachItemFromObject(p, "message"),
        .metadata = cJSON_DetachItemFromObject(p, "metadata"),
        .ext[TASK_EXT_HU] = job,
    };
    cJSON_Delete(p);
    struct task *t;
    ck_assert_int_eq(tasks_create(&tc, &t), A2AD_OK);
    return t;
}

START_TEST(ack_text_estimate_and_job_id) {
    static const struct {
        uint32_t validate_s, descriptor_s;
        const char *text;
        int metadata_s; /* -1: no estimated_duration_seconds */
    } cases[] = {
        {0, 0, "Job submitted successfully. Processing will continue in the background.", -1},
        {59, 0, "Job submitted successfully (estimated: 59s). Processing will continue in the background.", 59},
        {119, 0, "Job submitted successfully (estimated: 1 min). Processing will continue in the background.", 119},
        {120, 900, "Job submitted successfully (estimated: 2 min). Processing will continue in the background.", 120},
        {0, 900, "Job submitted successfully (estimated: 15 min). Processing will continue in the background.", 900},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unit_agent.desc.estimated_duration_s = cases[i].descriptor_s;
        struct task *t = hu_task();
        cJSON *a = hu_ack(t, -1, cases[i].validate_s);
        ck_assert_ptr_nonnull(a);
        ck_assert_str_eq(jstr(a, "status.state"), "submitted");
        assert_keys(jget(a, "status"), "state,message,timestamp");
        ck_assert_str_eq(jstr(a, "status.message.role"), "agent");
        ck_assert_str_eq(jstr(a, "status.message.taskId"), task_id(t));
        ck_assert_str_eq(jstr(a, "status.message.parts.0.text"), cases[i].text);
        ck_assert_str_eq(jstr(a, "status.message.extensions.0"), URI);
        ck_assert_str_eq(jstr(a, "status.message.metadata.EXT.job_id"), "job-1");
        ck_assert_str_eq(jstr(a, "metadata.EXT.job_id"), "job-1");
        if (cases[i].metadata_s < 0) {
            ck_assert_ptr_null(jget(a, "status.message.metadata.estimated_duration_seconds"));
            ck_assert_ptr_null(jget(a, "metadata.estimated_duration_seconds"));
        } else {
            ck_assert_int_eq((int)jnum(a, "status.message.metadata.estimated_duration_seconds"), cases[i].metadata_s);
            ck_assert_int_eq((int)jnum(a, "metadata.estimated_duration_seconds"), cases[i].metadata_s);
        }
        char *text = cJSON_PrintUnformatted(a);
        ck_assert_msg(strstr(text, "key-1") == NULL, "the api_key leaked into the ack: %s", text);
        free(text);
        cJSON_Delete(a);
        /* The ack is an answer, not a change: the task is as it was. */
        cJSON *now = task_render(t, -1);
        ck_assert_ptr_null(jget(now, "status.message"));
        cJSON_Delete(now);
        task_release(t);
    }
}
END_TEST

START_TEST(slot_save_and_load) {
    const struct task_ext_ops *ops = tasks_ext_ops(TASK_EXT_HU);
    ck_assert_ptr_nonnull(ops);
    ck_assert_str_eq(ops->name, "hu");
    ck_assert_ptr_nonnull(ops->load);
    cJSON *in = cJSON_Parse("{\"job_id\":\"j9\",\"api_key\":\"k9\",\"job_results_url\":\"http://h/r\","
                            "\"min_importance\":\"notice\"}");
    void *job = ops->load(in);
    ck_assert_ptr_nonnull(job);
    cJSON *out = ops->save(job);
    assert_keys(out, "job_id,api_key,job_results_url,min_importance");
    ck_assert_str_eq(jstr(out, "job_id"), "j9");
    ck_assert_str_eq(jstr(out, "api_key"), "k9");
    ck_assert_str_eq(jstr(out, "min_importance"), "notice");
    cJSON_Delete(out);
    ops->free(job);
    cJSON_Delete(in);
    in = cJSON_Parse("{\"job_id\":\"j9\"}"); /* no key: nothing to post with */
    ck_assert_ptr_null(ops->load(in));
    cJSON_Delete(in);
}
END_TEST

START_TEST(card_lists_the_extension) {
    unit_agent.desc.estimated_duration_s = 30;
    char *text = rpc_agent_card(&unit_agent, "http://127.0.0.1:9/agents/unit", A2A_V03);
    cJSON *c = cJSON_Parse(text);
    free(text);
    ck_assert_str_eq(jstr(c, "capabilities.extensions.0.uri"), URI);
    ck_assert_ptr_nonnull(strstr(jstr(c, "capabilities.extensions.0.description"), "job_status_update_url"));
    ck_assert(cJSON_IsFalse(jget(c, "capabilities.extensions.0.required")));
    ck_assert_int_eq((int)jnum(c, "capabilities.extensions.0.params.estimated_duration_seconds"), 30);
    ck_assert_int_eq((int)jnum(c, "capabilities.extensions.0.params.max_duration_seconds"), 600);
    cJSON_Delete(c);
}
END_TEST

/* ---- integration --------------------------------------------------------- */

static struct daemon_proc dp;
static struct receiver *rcv;

static void int_setup(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(&dp, 0, sizeof dp);
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
}

static void int_teardown(void) {
    daemon_cleanup(&dp);
    receiver_stop(rcv);
    curl_global_cleanup();
}

static void start_or_fail(const struct daemon_opts *o) {
    if (!daemon_start(&dp, o)) {
        char *log = daemon_log(&dp);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

enum where { IN_PARAMS, IN_MESSAGE };

/* A Health Universe message/send, as the platform sends it: no
 * configuration (so A2A would block), the extension and both URLs in the
 * metadata. Returns the parsed answer. */
static cJSON *hu_send(const char *path, const char *text, const char *job_id, enum where w,
                      const char *const *headers) {
    char md[1024], body[4096];
    snprintf(md, sizeof md,
             "{\"" URI "\":{\"job_id\":\"%s\",\"api_key\":\"key-%s\"},"
             "\"job_status_update_url\":\"http://127.0.0.1:%u/status\","
             "\"job_results_url\":\"http://127.0.0.1:%u/results\"}",
             job_id, job_id, receiver_port(rcv), receiver_port(rcv));
    int n = snprintf(body, sizeof body,
                     "{\"jsonrpc\":\"2.0\",\"id\":\"hu-1\",\"method\":\"message/send\",\"params\":{"
                     "\"message\":{\"kind\":\"message\",\"messageId\":\"m-%s\",\"role\":\"user\","
                     "\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]%s%s}%s%s}}",
                     job_id, text, w == IN_MESSAGE ? ",\"metadata\":" : "", w == IN_MESSAGE ? md : "",
                     w == IN_PARAMS ? ",\"metadata\":" : "", w == IN_PARAMS ? md : "");
    ck_assert_int_lt(n, (int)sizeof body);
    long status = 0;
    cJSON *o = rpc_call_headers(dp.port, path, body, headers, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_ptr_nonnull(o);
    return o;
}

static cJSON *rpc(const char *method, const char *task) {
    char body[300];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"%s\",\"params\":{\"id\":\"%s\"}}",
             method, task);
    return rpc_call(dp.port, "/", body, NULL);
}

/* The i-th accepted POST: its path is checked, its body returned parsed. */
static cJSON *post_at(size_t i, const char *path, const char *api_key) {
    const struct received *r = receiver_get(rcv, i);
    ck_assert_msg(r != NULL, "no POST #%zu", i);
    ck_assert_str_eq(r->path, path);
    char *key = received_header(r, "X-API-Key");
    ck_assert_msg(key && strcmp(key, api_key) == 0, "POST #%zu: X-API-Key %s", i, key ? key : "(none)");
    free(key);
    char *type = received_header(r, "Content-Type");
    ck_assert_str_eq(type ? type : "", "application/json");
    free(type);
    cJSON *o = cJSON_Parse(r->body);
    ck_assert_msg(o != NULL, "POST #%zu is not JSON: %s", i, r->body);
    return o;
}

/* Wait (bounded) for a POST to path; its index, or -1. */
static long wait_path(const char *path, unsigned timeout_ms) {
    for (unsigned waited = 0;; waited += 20) {
        size_t n = receiver_count(rcv);
        for (size_t i = 0; i < n; i++)
            if (strcmp(receiver_get(rcv, i)->path, path) == 0) return (long)i;
        if (waited >= timeout_ms) return -1;
        test_nap_ms(20);
    }
}

static void check_progress(cJSON *b, const char *job, const char *importance, double progress,
                           const char *text) {
    assert_keys(b, "job_id,update_type,importance,progress,task_status,status_message");
    ck_assert_str_eq(jstr(b, "job_id"), job);
    ck_assert_str_eq(jstr(b, "update_type"), "progress");
    ck_assert_str_eq(jstr(b, "importance"), importance);
    ck_assert_double_eq_tol(jnum(b, "progress"), progress, 1e-9);
    ck_assert_str_eq(jstr(b, "task_status"), "working");
    ck_assert_str_eq(jstr(b, "status_message"), text);
}

static void check_terminal(cJSON *status_body, cJSON *results_body, const char *job, bool ok,
                           const char *text) {
    assert_keys(status_body, "job_id,task_status,progress,status_message,is_terminal");
    ck_assert_str_eq(jstr(status_body, "job_id"), job);
    ck_assert_str_eq(jstr(status_body, "task_status"), ok ? "completed" : "failed");
    ck_assert_double_eq(jnum(status_body, "progress"), 1.0);
    ck_assert_str_eq(jstr(status_body, "status_message"), text);
    ck_assert(cJSON_IsTrue(jget(status_body, "is_terminal")));
    assert_keys(results_body, ok ? "job_id,task_status,status_message,progress" : "job_id,task_status,status_message");
    ck_assert_str_eq(jstr(results_body, "job_id"), job);
    ck_assert_str_eq(jstr(results_body, "task_status"), ok ? "completed" : "failed");
    ck_assert_str_eq(jstr(results_body, "status_message"), text);
    if (ok) ck_assert_double_eq(jnum(results_body, "progress"), 1.0);
}

#define PROCESSOR_FAST "[agent.processor]\nstep_ms = 5\n"

START_TEST(processor_job_posts_the_sdk_bodies) {
    struct daemon_opts o = {.plugins = "processor", .extra = PROCESSOR_FAST};
    start_or_fail(&o);
    cJSON *ack = hu_send("/", "Analyse X", "job-123", IN_PARAMS, NULL);
    /* Answered at once though A2A would block: submitted, the SDK's text. */
    ck_assert_str_eq(jstr(ack, "result.status.state"), "submitted");
    ck_assert_str_eq(jstr(ack, "result.status.message.parts.0.text"),
                     "Job submitted successfully (estimated: 1s). Processing will continue in the background.");
    ck_assert_int_eq((int)jnum(ack, "result.status.message.metadata.estimated_duration_seconds"), 1);
    ck_assert_int_eq((int)jnum(ack, "result.metadata.estimated_duration_seconds"), 1);
    ck_assert_str_eq(jstr(ack, "result.status.message.metadata.EXT.job_id"), "job-123");
    ck_assert_str_eq(jstr(ack, "result.metadata.EXT.job_id"), "job-123");
    ck_assert_ptr_null(jget(ack, "result.metadata.EXT.api_key"));
    char id[64];
    snprintf(id, sizeof id, "%s", jstr(ack, "result.id"));
    cJSON_Delete(ack);

    /* 10 progress updates, the artifact, the terminal status, the result. */
    ck_assert_msg(receiver_wait(rcv, 13, 10000), "got %zu POSTs", receiver_count(rcv));
    for (int i = 0; i < 10; i++) {
        char text[32];
        snprintf(text, sizeof text, "Step %d/10", i + 1);
        cJSON *b = post_at((size_t)i, "/status", "key-job-123");
        check_progress(b, "job-123", "info", (i + 1) / 10.0, text);
        cJSON_Delete(b);
    }
    cJSON *b = post_at(10, "/status", "key-job-123");
    assert_keys(b, "job_id,update_type,importance,artifact_data");
    ck_assert_str_eq(jstr(b, "job_id"), "job-123");
    ck_assert_str_eq(jstr(b, "update_type"), "artifact");
    ck_assert_str_eq(jstr(b, "importance"), "notice");
    assert_keys(jget(b, "artifact_data"), "name,content,data_type,description");
    ck_assert_str_eq(jstr(b, "artifact_data.name"), "results.json");
    ck_assert_str_eq(jstr(b, "artifact_data.content"), "{\"query\":\"Analyse X\",\"steps\":10}");
    ck_assert_str_eq(jstr(b, "artifact_data.data_type"), "application/json");
    ck_assert_str_eq(jstr(b, "artifact_data.description"), "");
    cJSON_Delete(b);
    cJSON *st = post_at(11, "/status", "key-job-123"), *res = post_at(12, "/results", "key-job-123");
    check_terminal(st, res, "job-123", true, "Processing complete!");
    /* Floats as the SDK (Python) writes them. */
    ck_assert_ptr_nonnull(strstr(receiver_get(rcv, 11)->body, "\"progress\":1.0,"));
    cJSON_Delete(st);
    cJSON_Delete(res);
    test_nap_ms(300);
    ck_assert_uint_eq(receiver_count(rcv), 13); /* the job start is not an SDK update */

    /* Unlike the SDK (submitted for ever), tasks/get shows the outcome. */
    cJSON *t = rpc("tasks/get", id);
    ck_assert_str_eq(jstr(t, "result.status.state"), "completed");
    ck_assert_str_eq(jstr(t, "result.status.message.parts.0.text"), "Processing complete!");
    ck_assert_str_eq(jstr(t, "result.artifacts.0.name"), "results.json");
    char *text = cJSON_PrintUnformatted(t);
    ck_assert_msg(strstr(text, "key-job-123") == NULL, "api_key visible in tasks/get: %s", text);
    free(text);
    cJSON_Delete(t);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(retries_after_503_keep_the_order) {
    /* The test daemon's backoff is 20..200 ms, 5 attempts. */
    struct daemon_opts o = {.plugins = "processor,echo", .extra = PROCESSOR_FAST};
    start_or_fail(&o);
    receiver_fail_next(rcv, 3, 503);
    cJSON_Delete(hu_send("/agents/processor", "retry me", "job-r", IN_PARAMS, NULL));
    ck_assert_msg(receiver_wait(rcv, 13, 15000), "got %zu POSTs", receiver_count(rcv));
    ck_assert_uint_ge(receiver_attempts(rcv), 16);
    for (int i = 0; i < 10; i++) {
        char text[32];
        snprintf(text, sizeof text, "Step %d/10", i + 1);
        cJSON *b = post_at((size_t)i, "/status", "key-job-r");
        check_progress(b, "job-r", "info", (i + 1) / 10.0, text);
        cJSON_Delete(b);
    }
    cJSON *b = post_at(10, "/status", "key-job-r");
    ck_assert_str_eq(jstr(b, "update_type"), "artifact");
    cJSON_Delete(b);
    cJSON *st = post_at(11, "/status", "key-job-r"), *res = post_at(12, "/results", "key-job-r");
    check_terminal(st, res, "job-r", true, "Processing complete!");
    cJSON_Delete(st);
    cJSON_Delete(res);

    /* echo posts only the outcome: while the status URL fails, the result
     * waits for it (one sequence over both URLs). */
    size_t attempts = receiver_attempts(rcv);
    receiver_fail_next(rcv, 3, 503);
    cJSON_Delete(hu_send("/agents/echo", "hello", "job-e", IN_PARAMS, NULL));
    ck_assert(receiver_wait(rcv, 15, 10000));
    ck_assert_uint_eq(receiver_attempts(rcv), attempts + 5);
    st = post_at(13, "/status", "key-job-e");
    res = post_at(14, "/results", "key-job-e");
    check_terminal(st, res, "job-e", true, "hello");
    cJSON_Delete(st);
    cJSON_Delete(res);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(rejection_is_answered_and_posts_nothing) {
    struct daemon_opts o = {.plugins = "processor", .extra = PROCESSOR_FAST};
    start_or_fail(&o);
    cJSON *ack = hu_send("/", "  ", "job-rej", IN_PARAMS, NULL);
    ck_assert_str_eq(jstr(ack, "result.status.state"), "rejected");
    ck_assert_str_eq(jstr(ack, "result.status.message.parts.0.text"), "Validation failed: the query is empty");
    cJSON_Delete(ack);
    /* A later job's POSTs arrive; none of them is the rejected job's. */
    cJSON_Delete(hu_send("/", "fine", "job-ok", IN_PARAMS, NULL));
    ck_assert(receiver_wait(rcv, 13, 10000));
    test_nap_ms(200);
    ck_assert_uint_eq(receiver_count(rcv), 13);
    for (size_t i = 0; i < 13; i++)
        ck_assert_ptr_null(strstr(receiver_get(rcv, i)->body, "job-rej"));
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(failure_and_max_duration_texts) {
    struct daemon_opts o = {.plugins = "failing,processor",
                            .extra = "[agent.processor]\nstep_ms = 400\nmax_duration_s = 1\n"};
    start_or_fail(&o);
    cJSON_Delete(hu_send("/agents/failing", "boom", "job-f", IN_PARAMS, NULL));
    ck_assert(receiver_wait(rcv, 3, 10000));
    cJSON *b = post_at(0, "/status", "key-job-f");
    check_progress(b, "job-f", "error", 0.5, "Something went wrong");
    cJSON_Delete(b);
    cJSON *st = post_at(1, "/status", "key-job-f"), *res = post_at(2, "/results", "key-job-f");
    check_terminal(st, res, "job-f", false, "Task failed: simulated failure: boom");
    cJSON_Delete(st);
    cJSON_Delete(res);

    /* Past its maximum duration: the SDK's timeout text. */
    cJSON_Delete(hu_send("/agents/processor", "slow", "job-t", IN_PARAMS, NULL));
    long last = -1;
    for (int tries = 0; tries < 500 && last < 0; tries++) { /* the second /results */
        size_t n = receiver_count(rcv);
        for (size_t i = 3; i < n; i++)
            if (strcmp(receiver_get(rcv, i)->path, "/results") == 0) last = (long)i;
        if (last < 0) test_nap_ms(20);
    }
    ck_assert_msg(last > 3, "no result POST for the overrunning job");
    st = post_at((size_t)last - 1, "/status", "key-job-t");
    res = post_at((size_t)last, "/results", "key-job-t");
    check_terminal(st, res, "job-t", false,
                   "Task failed: Task exceeded maximum duration of 1 seconds (0 minutes)");
    cJSON_Delete(st);
    cJSON_Delete(res);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(cancel_stops_the_job_with_a_failed_update) {
    /* Steps of a second: the job is surely still running when cancelled. */
    struct daemon_opts o = {.plugins = "processor", .extra = "[agent.processor]\nstep_ms = 1000\n"};
    start_or_fail(&o);
    cJSON *ack = hu_send("/", "long", "job-c", IN_PARAMS, NULL);
    char id[64];
    snprintf(id, sizeof id, "%s", jstr(ack, "result.id"));
    cJSON_Delete(ack);
    ck_assert(receiver_wait(rcv, 1, 10000));
    /* tasks/get follows the live job: working, with its progress. */
    cJSON *t = rpc("tasks/get", id);
    ck_assert_str_eq(jstr(t, "result.status.state"), "working");
    ck_assert(jnum(t, "result.status.message.metadata.progress") >= 0.1);
    cJSON_Delete(t);

    t = rpc("tasks/cancel", id);
    ck_assert_str_eq(jstr(t, "result.status.state"), "canceled");
    cJSON_Delete(t);
    long res_i = wait_path("/results", 10000);
    ck_assert_int_ge(res_i, 2);
    cJSON *st = post_at((size_t)res_i - 1, "/status", "key-job-c");
    cJSON *res = post_at((size_t)res_i, "/results", "key-job-c");
    check_terminal(st, res, "job-c", false, "Task failed: Task canceled on request");
    cJSON_Delete(st);
    cJSON_Delete(res);
    size_t n = receiver_count(rcv);
    test_nap_ms(1500); /* longer than a step: a job still running would post again */
    ck_assert_uint_eq(receiver_count(rcv), n);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(message_metadata_fallback) {
    struct daemon_opts o = {.plugins = "processor", .extra = PROCESSOR_FAST};
    start_or_fail(&o);
    cJSON *ack = hu_send("/", "from the message", "job-m", IN_MESSAGE, NULL);
    ck_assert_str_eq(jstr(ack, "result.status.state"), "submitted");
    ck_assert_str_eq(jstr(ack, "result.metadata.EXT.job_id"), "job-m");
    /* The stored user message lost the key, kept the job id. */
    ck_assert_str_eq(jstr(ack, "result.history.0.metadata.EXT.job_id"), "job-m");
    ck_assert_ptr_null(jget(ack, "result.history.0.metadata.EXT.api_key"));
    cJSON_Delete(ack);
    ck_assert(receiver_wait(rcv, 13, 10000));
    cJSON *st = post_at(11, "/status", "key-job-m"), *res = post_at(12, "/results", "key-job-m");
    check_terminal(st, res, "job-m", true, "Processing complete!");
    cJSON_Delete(st);
    cJSON_Delete(res);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

/* The SDK has no chunks: a chunked artifact is posted once, assembled, at
 * its last chunk. */
START_TEST(chunked_artifact_is_posted_once_whole) {
    struct daemon_opts o = {.plugins = "chunker"};
    start_or_fail(&o);
    cJSON_Delete(hu_send("/", "text 3", "job-c", IN_PARAMS, NULL));
    long res_i = wait_path("/results", 10000);
    ck_assert_int_ge(res_i, 2);
    int artifacts = 0;
    for (size_t i = 0; i < (size_t)res_i; i++) {
        if (strcmp(receiver_get(rcv, i)->path, "/status") != 0) continue;
        cJSON *b = post_at(i, "/status", "key-job-c");
        if (strcmp(jstr(b, "update_type"), "artifact") == 0) {
            artifacts++;
            ck_assert_str_eq(jstr(b, "artifact_data.name"), "story.txt");
            ck_assert_str_eq(jstr(b, "artifact_data.content"), "part1;part2;part3;");
            ck_assert_str_eq(jstr(b, "artifact_data.data_type"), "text/plain");
        }
        cJSON_Delete(b);
    }
    ck_assert_int_eq(artifacts, 1);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(binary_artifact_goes_as_base64) {
    struct daemon_opts o = {.plugins = "threaded", .extra = "[agent.threaded]\nthreads = 2\n"};
    start_or_fail(&o);
    cJSON *ack = hu_send("/", "1000", "job-b", IN_PARAMS, NULL);
    /* No validate(): the descriptor's estimate is announced. */
    ck_assert_str_eq(jstr(ack, "result.status.message.parts.0.text"),
                     "Job submitted successfully (estimated: 5s). Processing will continue in the background.");
    ck_assert_int_eq((int)jnum(ack, "result.metadata.estimated_duration_seconds"), 5);
    cJSON_Delete(ack);
    long res_i = wait_path("/results", 10000);
    ck_assert_int_ge(res_i, 2);
    cJSON *b = post_at((size_t)res_i - 2, "/status", "key-job-b");
    ck_assert_str_eq(jstr(b, "update_type"), "artifact");
    assert_keys(jget(b, "artifact_data"), "name,content,data_type,description,encoding");
    ck_assert_str_eq(jstr(b, "artifact_data.name"), "partials.bin");
    ck_assert_str_eq(jstr(b, "artifact_data.data_type"), "application/octet-stream");
    ck_assert_str_eq(jstr(b, "artifact_data.encoding"), "base64");
    size_t len = 0;
    unsigned char *bytes = util_base64_decode(jstr(b, "artifact_data.content"), &len);
    ck_assert_ptr_nonnull(bytes);
    ck_assert_uint_eq(len, 16); /* two uint64 counts, little-endian */
    unsigned long long total = 0;
    for (size_t k = 0; k < 2; k++)
        for (unsigned i = 0; i < 8; i++) total += (unsigned long long)bytes[k * 8 + i] << (8 * i);
    free(bytes);
    ck_assert_uint_eq(total, 168); /* primes below 1000 */
    cJSON_Delete(b);
    cJSON *res = post_at((size_t)res_i, "/results", "key-job-b");
    ck_assert_str_eq(jstr(res, "status_message"), "primes below 1000: 168");
    cJSON_Delete(res);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(header_activation_and_refusals) {
    struct daemon_opts o = {.plugins = "processor", .extra = PROCESSOR_FAST};
    start_or_fail(&o);
    /* Activated by the header but without its parameters: refused. */
    static const char *const headers[] = {"X-A2A-Extensions: " URI, NULL};
    const char *plain = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{" MSG "},"
                        "\"configuration\":{\"blocking\":false}}}";
    cJSON *r = rpc_call_headers(dp.port, "/", plain, headers, NULL);
    ck_assert_int_eq((int)jnum(r, "error.code"), -32602);
    ck_assert_ptr_nonnull(strstr(jstr(r, "error.message"), "X-A2A-Extensions) header lists the extension"));
    cJSON_Delete(r);
    /* Parameters present but incomplete: refused, naming the field. */
    const char *no_key = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"message/send\",\"params\":{" MSG "},"
                         "\"metadata\":{\"" URI "\":{\"job_id\":\"j\"}}}}";
    r = rpc_call(dp.port, "/", no_key, NULL);
    ck_assert_int_eq((int)jnum(r, "error.code"), -32602);
    ck_assert_str_eq(jstr(r, "error.message"),
                     "params.metadata[\"" URI "\"].api_key is required (a non-empty string)");
    cJSON_Delete(r);
    /* Neither created a task nor posted anything. */
    struct http_resp h;
    http_call(dp.port, NULL, "/healthz", NULL, &h);
    cJSON *health = cJSON_Parse(h.body);
    http_resp_free(&h);
    ck_assert_int_eq((int)jnum(health, "tasks"), 0);
    cJSON_Delete(health);

    /* With A2A-Extensions and its parameters: a normal job. */
    static const char *const h2[] = {"A2A-Extensions: urn:other, " URI, NULL};
    cJSON *ack = hu_send("/", "via header", "job-h", IN_PARAMS, h2);
    ck_assert_str_eq(jstr(ack, "result.status.state"), "submitted");
    cJSON_Delete(ack);
    ck_assert(receiver_wait(rcv, 13, 10000));
    ck_assert_uint_eq(receiver_attempts(rcv), 13);

    /* A plain A2A request is untouched by the extension. */
    r = rpc_call(dp.port, "/", plain, NULL);
    ck_assert_str_ne(jstr(r, "result.status.state"), "(absent)");
    ck_assert_ptr_null(jget(r, "result.metadata"));
    cJSON_Delete(r);

    /* The card lists the extension. */
    http_call(dp.port, NULL, "/.well-known/agent-card.json", NULL, &h);
    cJSON *card = cJSON_Parse(h.body);
    http_resp_free(&h);
    ck_assert_str_eq(jstr(card, "capabilities.extensions.0.uri"), URI);
    ck_assert_int_eq((int)jnum(card, "capabilities.extensions.0.params.max_duration_seconds"), 3600);
    cJSON_Delete(card);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

START_TEST(min_importance_filters_progress_only) {
    struct daemon_opts o = {.plugins = "processor,failing",
                            .extra = "[agent.processor]\nstep_ms = 5\nhu_min_importance = notice\n"
                                     "[agent.failing]\nhu_min_importance = error\n"};
    start_or_fail(&o);
    /* info progress is held back; the artifact and the outcome are not. */
    cJSON_Delete(hu_send("/agents/processor", "quiet", "job-q", IN_PARAMS, NULL));
    ck_assert(receiver_wait(rcv, 3, 10000));
    cJSON *b = post_at(0, "/status", "key-job-q");
    ck_assert_str_eq(jstr(b, "update_type"), "artifact");
    cJSON_Delete(b);
    cJSON *st = post_at(1, "/status", "key-job-q"), *res = post_at(2, "/results", "key-job-q");
    check_terminal(st, res, "job-q", true, "Processing complete!");
    cJSON_Delete(st);
    cJSON_Delete(res);
    /* error passes even the strictest filter. */
    cJSON_Delete(hu_send("/agents/failing", "x", "job-e", IN_PARAMS, NULL));
    ck_assert(receiver_wait(rcv, 6, 10000));
    b = post_at(3, "/status", "key-job-e");
    check_progress(b, "job-e", "error", 0.5, "Something went wrong");
    cJSON_Delete(b);
    test_nap_ms(200);
    ck_assert_uint_eq(receiver_count(rcv), 6);
    ck_assert_int_eq(daemon_stop(&dp, 10000), 0);
}
END_TEST

Suite *hu_suite(void);
Suite *hu_suite(void) {
    Suite *s = suite_create("hu");
    TCase *u = tcase_create("unit");
    tcase_add_checked_fixture(u, unit_setup, unit_teardown);
    tcase_add_test(u, parse_activation_and_fallback);
    tcase_add_test(u, parse_errors_name_the_field);
    tcase_add_test(u, rpc_refuses_before_creating_a_task);
    tcase_add_test(u, ack_text_estimate_and_job_id);
    tcase_add_test(u, slot_save_and_load);
    tcase_add_test(u, card_lists_the_extension);
    suite_add_tcase(s, u);

    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, int_setup, int_teardown);
    tcase_add_test(tc, processor_job_posts_the_sdk_bodies);
    tcase_add_test(tc, retries_after_503_keep_the_order);
    tcase_add_test(tc, rejection_is_answered_and_posts_nothing);
    tcase_add_test(tc, failure_and_max_duration_texts);
    tcase_add_test(tc, cancel_stops_the_job_with_a_failed_update);
    tcase_add_test(tc, message_metadata_fallback);
    tcase_add_test(tc, binary_artifact_goes_as_base64);
    tcase_add_test(tc, chunked_artifact_is_posted_once_whole);
    tcase_add_test(tc, header_activation_and_refusals);
    tcase_add_test(tc, min_importance_filters_progress_only);
    suite_add_tcase(s, tc);
    return s;
}
