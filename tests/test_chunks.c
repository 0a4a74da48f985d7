/* chunks: artifacts streamed in pieces (a2ad_add_artifact_chunk) against
 * the real daemon. The chunker plugin sends "story.txt" in N chunks: SSE
 * clients (0.3 and 1.0) and a webhook receiver see N artifact-update events
 * in order with A2A's append/lastChunk flags; tasks/get, ListTasks and the
 * stored task after a restart show one assembled artifact; misuse and the
 * size bound are refused; under isolation = process the events are the
 * same, and a Python exec agent (add_artifact_chunk) streams them too.
 * Plus the ABI: a plugin built against this header on an older host
 * (a shorter host table) gets A2AD_ERR_ABI, and an old plugin still loads. */
#include <check.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <limits.h>

#include <a2ad/agent.h>
#include <a2ad/mock.h>

#include "support/daemon.h"
#include "support/json.h"
#include "support/receiver.h"
#include "support/sse.h"

static struct daemon_proc dp, dp2;
static struct receiver *rcv;

static void setup(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(&dp2, 0, sizeof dp2);
    rcv = receiver_start();
    ck_assert_ptr_nonnull(rcv);
}

static void teardown(void) {
    if (dp2.dir[0]) daemon_cleanup(&dp2);
    daemon_cleanup(&dp);
    receiver_stop(rcv);
    curl_global_cleanup();
}

static void start_or_fail(struct daemon_proc *d, const char *workers_extra, const char *db_path) {
    struct daemon_opts o = {.plugins = "chunker,old_struct", .default_agent = "chunker", .threads = 2,
                            .workers_extra = workers_extra, .db_path = db_path};
    if (!daemon_start(d, &o)) {
        char *log = daemon_log(d);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

static cJSON *call(unsigned port, bool v1, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static cJSON *call(unsigned port, bool v1, const char *fmt, ...) {
    char body[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    static const char *const h1[] = {"A2A-Version: 1.0", NULL};
    cJSON *o = rpc_call_headers(port, "/", body, v1 ? h1 : NULL, NULL);
    ck_assert_msg(o != NULL, "no JSON answer to %s", body);
    return o;
}

static const char *const h1[] = {"A2A-Version: 1.0", NULL};

/* One artifact-update as "TEXT" + a (append) or - + L (lastChunk) or -; the
 * artifact id in aid (all chunks must share it). */
static void note_chunk(const cJSON *a, const cJSON *append, const cJSON *last, char *out, size_t n,
                       char *aid, size_t aidn) {
    ck_assert_msg(cJSON_IsBool(append) && cJSON_IsBool(last), "append/lastChunk missing");
    const char *id = json_str(a, "artifactId");
    if (!aid[0]) snprintf(aid, aidn, "%s", id);
    ck_assert_str_eq(id, aid);
    ck_assert_str_eq(json_str(a, "name"), "story.txt");
    size_t o = strlen(out);
    snprintf(out + o, n - o, "%s%s%c%c", o ? " " : "", json_str(a, "parts.0.text"),
             cJSON_IsTrue(append) ? 'a' : '-', cJSON_IsTrue(last) ? 'L' : '-');
}

/* Stream `query` to path and return the chunks seen (note_chunk form); the task id in tid. */
static void stream_query(unsigned port, const char *path, const char *query, bool v1, char *out,
                         size_t outn, char *tid, size_t tidn) {
    char body[600];
    if (v1)
        snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendStreamingMessage\",\"params\":{\"message\":"
                 "{\"messageId\":\"m\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"%s\"}]}}}", query);
    else
        snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/stream\",\"params\":{\"message\":"
                 "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]}}}", query);
    struct sse *s = sse_open(port, path, body, v1 ? h1 : NULL);
    ck_assert_ptr_nonnull(s);
    out[0] = '\0';
    tid[0] = '\0';
    char aid[64] = "", *data = NULL;
    int r;
    bool completed = false;
    while ((r = sse_next(s, &data, 15000)) == 1) {
        cJSON *e = cJSON_Parse(data);
        free(data);
        ck_assert_ptr_nonnull(e);
        if (v1) {
            if (json_at(e, "result.task")) snprintf(tid, tidn, "%s", json_str(e, "result.task.id"));
            const cJSON *u = json_at(e, "result.artifactUpdate");
            if (u) note_chunk(json_at(u, "artifact"), json_at(u, "append"), json_at(u, "lastChunk"),
                              out, outn, aid, sizeof aid);
            if (strcmp(json_str(e, "result.statusUpdate.status.state"), "TASK_STATE_COMPLETED") == 0)
                completed = true;
        } else {
            const char *kind = json_str(e, "result.kind");
            if (strcmp(kind, "task") == 0) snprintf(tid, tidn, "%s", json_str(e, "result.id"));
            if (strcmp(kind, "artifact-update") == 0)
                note_chunk(json_at(e, "result.artifact"), json_at(e, "result.append"),
                           json_at(e, "result.lastChunk"), out, outn, aid, sizeof aid);
            if (strcmp(json_str(e, "result.status.state"), "completed") == 0) completed = true;
        }
        cJSON_Delete(e);
    }
    ck_assert_msg(r == 0, "stream broke after \"%s\"", out);
    ck_assert_msg(completed, "the stream did not end with completed: %s", out);
    sse_close(s);
}

/* Stream "text N" to the default agent (chunker). */
static void stream_chunks(unsigned port, bool v1, int n, char *out, size_t outn, char *tid, size_t tidn) {
    char q[32];
    snprintf(q, sizeof q, "text %d", n);
    stream_query(port, "/", q, v1, out, outn, tid, tidn);
}

/* tasks/get (0.3) of t: its one artifact, assembled. */
static void assert_assembled(unsigned port, const char *t, const char *text) {
    cJSON *r = call(port, false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", t);
    ck_assert_msg(json_at(r, "result") != NULL, "%s", cJSON_PrintUnformatted(r));
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "result.artifacts")), 1);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "result.artifacts.0.parts")), 1);
    ck_assert_str_eq(json_str(r, "result.artifacts.0.name"), "story.txt");
    ck_assert_str_eq(json_str(r, "result.artifacts.0.parts.0.kind"), "text");
    ck_assert_str_eq(json_str(r, "result.artifacts.0.parts.0.text"), text);
    cJSON_Delete(r);
    /* 1.0 GetTask the same */
    r = call(port, true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTask\",\"params\":{\"id\":\"%s\"}}", t);
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "result.artifacts")), 1);
    ck_assert_str_eq(json_str(r, "result.artifacts.0.parts.0.text"), text);
    cJSON_Delete(r);
}

static const char *const FOUR = "part1;-- part2;a- part3;a- part4;aL";

START_TEST(sse_clients_see_the_chunks_in_order_and_tasks_get_the_whole) {
    start_or_fail(&dp, NULL, NULL);
    for (int v = 0; v < 2; v++) {
        char got[400], t[64];
        stream_chunks(dp.port, v == 1, 4, got, sizeof got, t, sizeof t);
        ck_assert_str_eq(got, FOUR);
        assert_assembled(dp.port, t, "part1;part2;part3;part4;");
    }
    /* a single chunk is first and last at once */
    char got[400], t[64];
    stream_chunks(dp.port, false, 1, got, sizeof got, t, sizeof t);
    ck_assert_str_eq(got, "part1;-L");
    /* ListTasks shows the assembled artifact too */
    cJSON *r = call(dp.port, true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ListTasks\",\"params\":{\"includeArtifacts\":true}}");
    bool found = false;
    const cJSON *x;
    cJSON_ArrayForEach(x, json_at(r, "result.tasks")) {
        if (strcmp(json_str(x, "artifacts.0.parts.0.text"), "part1;part2;part3;part4;") == 0) {
            ck_assert_int_eq(cJSON_GetArraySize(json_at(x, "artifacts")), 1);
            found = true;
        }
    }
    ck_assert_msg(found, "ListTasks: no task with the assembled artifact: %s", cJSON_PrintUnformatted(r));
    cJSON_Delete(r);
}
END_TEST

START_TEST(bytes_in_chunks_assemble_to_one_file_part) {
    start_or_fail(&dp, NULL, NULL);
    cJSON *r = call(dp.port, false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                    "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"bytes\"}]}}}");
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "result.artifacts")), 1);
    ck_assert_str_eq(json_str(r, "result.artifacts.0.parts.0.file.mimeType"), "application/octet-stream");
    ck_assert_int_eq(json_int(r, "result.artifacts.0.metadata.size"), 256);
    /* base64 of bytes 0..255 starts AAECAwQF and has 344 characters */
    const char *b = json_str(r, "result.artifacts.0.parts.0.file.bytes");
    ck_assert_uint_eq(strlen(b), 344);
    ck_assert(strncmp(b, "AAECAwQF", 8) == 0);
    cJSON_Delete(r);
}
END_TEST

START_TEST(misuse_and_the_size_bound_are_refused) {
    start_or_fail(&dp, "max_artifact_bytes = 64", NULL);
    cJSON *r = call(dp.port, false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                    "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"misuse\"}]}}}");
    ck_assert_str_eq(json_str(r, "result.status.message.parts.0.text"),
                     "none=not allowed in this state first=ok late=not allowed in this state start=ok "
                     "over=full");
    /* "x" whole; "big" holds only what fit */
    ck_assert_int_eq(cJSON_GetArraySize(json_at(r, "result.artifacts")), 2);
    ck_assert_str_eq(json_str(r, "result.artifacts.0.parts.0.text"), "a");
    ck_assert_int_eq(json_int(r, "result.artifacts.1.metadata.size"), 40);
    cJSON_Delete(r);
}
END_TEST

START_TEST(a_webhook_receives_the_chunks_in_order) {
    start_or_fail(&dp, NULL, NULL);
    cJSON *r = call(dp.port, true, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendMessage\",\"params\":{\"message\":"
                    "{\"messageId\":\"m\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"text 3\"}]},"
                    "\"configuration\":{\"taskPushNotificationConfig\":{\"url\":\"http://127.0.0.1:%u/w\"}}}}",
                    receiver_port(rcv));
    ck_assert_msg(json_at(r, "result.task") != NULL, "%s", cJSON_PrintUnformatted(r));
    cJSON_Delete(r);
    /* status working, 3 chunks, completed (at least) */
    bool done = false;
    char got[400] = "", aid[64] = "";
    for (int i = 0; i < 400 && !done; i++) {
        got[0] = '\0';
        aid[0] = '\0';
        for (size_t k = 0; k < receiver_count(rcv); k++) {
            cJSON *b = cJSON_Parse(receiver_get(rcv, k)->body);
            const cJSON *u = json_at(b, "artifactUpdate");
            if (u) note_chunk(json_at(u, "artifact"), json_at(u, "append"), json_at(u, "lastChunk"),
                              got, sizeof got, aid, sizeof aid);
            if (strcmp(json_str(b, "statusUpdate.status.state"), "TASK_STATE_COMPLETED") == 0) done = true;
            cJSON_Delete(b);
        }
        if (!done) test_nap_ms(25);
    }
    ck_assert_msg(done, "no completed webhook; got \"%s\"", got);
    ck_assert_str_eq(got, "part1;-- part2;a- part3;aL");
}
END_TEST

START_TEST(the_assembled_artifact_survives_a_restart) {
    start_or_fail(&dp, NULL, NULL);
    char got[400], t[64];
    stream_chunks(dp.port, true, 5, got, sizeof got, t, sizeof t);
    ck_assert_int_eq(daemon_stop(&dp, 15000), 0);
    char db[300];
    snprintf(db, sizeof db, "%s/a2ad.db", dp.dir);
    start_or_fail(&dp2, NULL, db);
    assert_assembled(dp2.port, t, "part1;part2;part3;part4;part5;");
    ck_assert_int_eq(daemon_stop(&dp2, 15000), 0);
}
END_TEST

START_TEST(process_isolation_gives_the_same_events) {
    start_or_fail(&dp, "isolation = process", NULL);
    for (int v = 0; v < 2; v++) {
        char got[400], t[64];
        stream_chunks(dp.port, v == 1, 4, got, sizeof got, t, sizeof t);
        ck_assert_str_eq(got, FOUR);
        assert_assembled(dp.port, t, "part1;part2;part3;part4;");
    }
    /* a refused chunk fails the job, with the reason */
    cJSON *r = call(dp.port, false, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                    "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"misuse\"}]}}}");
    ck_assert_str_eq(json_str(r, "result.status.state"), "failed");
    ck_assert_msg(strstr(json_str(r, "result.status.message.parts.0.text"),
                         "artifact chunk refused: not allowed in this state") != NULL,
                  "%s", cJSON_PrintUnformatted(r));
    cJSON_Delete(r);
}
END_TEST

/* An exec agent in Python (python/a2ad_agent.py's add_artifact_chunk). */
START_TEST(a_python_exec_agent_streams_chunks) {
    ck_assert_msg(access("/usr/bin/python3", X_OK) == 0, "no /usr/bin/python3: apt-get install python3");
    char cwd[PATH_MAX], extra[PATH_MAX + 100];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    snprintf(extra, sizeof extra, "[agent.pydemo]\nexec = /usr/bin/python3 %s/examples/python/demo_agent.py\n", cwd);
    struct daemon_opts o = {.plugins = "chunker", .threads = 2, .extra = extra};
    if (!daemon_start(&dp, &o)) {
        char *log = daemon_log(&dp);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
    for (int v = 0; v < 2; v++) {
        char got[400], t[64];
        stream_query(dp.port, "/agents/pydemo", "chunks", v == 1, got, sizeof got, t, sizeof t);
        ck_assert_str_eq(got, "part1;-- part2;a- part3;aL");
        assert_assembled(dp.port, t, "part1;part2;part3;");
    }
}
END_TEST

START_TEST(an_old_plugin_loads_next_to_the_chunker) {
    start_or_fail(&dp, NULL, NULL);
    cJSON *r = rpc_call(dp.port, "/agents/old",
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{\"message\":"
                 "{\"kind\":\"message\",\"messageId\":\"m2\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}]}}}",
                 NULL);
    ck_assert_msg(r != NULL, "no answer from /agents/old");
    ck_assert_str_eq(json_str(r, "result.status.state"), "completed");
    ck_assert_str_eq(json_str(r, "result.status.message.parts.0.text"), "hi");
    cJSON_Delete(r);
}
END_TEST

/* A host built before add_artifact_chunk: its table ends at request_input. */
static a2ad_status never(a2ad_ctx ctx, const char *name, const char *mime, const void *d, size_t n,
                         int append, int last) {
    (void)ctx, (void)name, (void)mime, (void)d, (void)n, (void)append, (void)last;
    return A2AD_OK;
}

START_TEST(on_an_older_host_the_wrapper_answers_abi) {
    struct a2ad_host h = {.abi_major = A2AD_ABI_MAJOR,
                          .struct_size = (uint32_t)offsetof(struct a2ad_host, add_artifact_chunk),
                          .add_artifact_chunk = never};
    a2ad_ctx ctx = {.host = &h, .handle = 1};
    ck_assert(!A2AD_HOST_HAS(&h, add_artifact_chunk));
    ck_assert_int_eq(a2ad_add_artifact_chunk(ctx, "a", "text/plain", "x", 1, 0, 1), A2AD_ERR_ABI);
    h.struct_size = sizeof h;
    ck_assert_int_eq(a2ad_add_artifact_chunk(ctx, "a", "text/plain", "x", 1, 0, 1), A2AD_OK);
}
END_TEST

/* A plugin author's unit test meets the same rules on the SDK's mock host:
 * chunks assemble into one artifact, misuse is refused. */
START_TEST(the_mock_host_assembles_chunks_like_the_daemon) {
    struct mock_host *m = mock_host_new();
    a2ad_ctx ctx = mock_host_ctx(m);
    ck_assert_int_eq(a2ad_add_artifact_chunk(ctx, "out", "text/plain", "ab", 2, 1, 0), A2AD_ERR_STATE);
    ck_assert_int_eq(a2ad_add_artifact_chunk(ctx, "out", "text/plain", "ab", 2, 0, 0), A2AD_OK);
    ck_assert_int_eq(a2ad_add_artifact_chunk(ctx, "out", "text/plain", "cd", 2, 0, 0), A2AD_ERR_STATE);
    ck_assert_int_eq(a2ad_add_artifact_chunk(ctx, "out", "text/plain", "cd", 2, 1, 0), A2AD_OK);
    ck_assert_int_eq(a2ad_add_artifact_chunk(ctx, "out", "text/plain", "e", 1, 1, 1), A2AD_OK);
    ck_assert_int_eq(a2ad_add_artifact_chunk(ctx, "out", "text/plain", "f", 1, 1, 0), A2AD_ERR_STATE);
    ck_assert_uint_eq(mock_host_artifact_count(m), 1);
    struct mock_artifact a = mock_host_artifact_at(m, 0);
    ck_assert_uint_eq(a.len, 5);
    ck_assert(memcmp(a.data, "abcde", 5) == 0);
    ck_assert_str_eq(a.name, "out");
    mock_host_free(m);
}
END_TEST

Suite *chunks_suite(void);
Suite *chunks_suite(void) {
    Suite *s = suite_create("chunks");
    TCase *tc = tcase_create("artifacts in chunks");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sse_clients_see_the_chunks_in_order_and_tasks_get_the_whole);
    tcase_add_test(tc, the_mock_host_assembles_chunks_like_the_daemon);
    tcase_add_test(tc, bytes_in_chunks_assemble_to_one_file_part);
    tcase_add_test(tc, misuse_and_the_size_bound_are_refused);
    tcase_add_test(tc, a_webhook_receives_the_chunks_in_order);
    tcase_add_test(tc, the_assembled_artifact_survives_a_restart);
    tcase_add_test(tc, process_isolation_gives_the_same_events);
    tcase_add_test(tc, a_python_exec_agent_streams_chunks);
    tcase_add_test(tc, an_old_plugin_loads_next_to_the_chunker);
    tcase_add_test(tc, on_an_older_host_the_wrapper_answers_abi);
    suite_add_tcase(s, tc);
    return s;
}
