/* tasks: the state machine, what tasks/get renders, waiters, and the store's
 * bounds (retention, max_tasks). No webhook is configured here. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/push.h"
#include "core/tasks.h"
#include "util.h"

static struct task *new_task(const char *text) {
    char json[256];
    snprintf(json, sizeof json,
             "{\"kind\":\"message\",\"messageId\":\"m1\",\"role\":\"user\",\"parts\":["
             "{\"kind\":\"text\",\"text\":\"%s\"},{\"kind\":\"text\",\"text\":\"second\"}]}",
             text);
    struct task_create tc = {.message = cJSON_Parse(json)};
    struct task *t = NULL;
    ck_assert_int_eq(tasks_create(&tc, &t), A2AD_OK);
    return t;
}

static const char *str_at(const cJSON *o, const char *path) {
    /* dotted path of object members, e.g. "status.state" */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && cur; k = strtok_r(NULL, ".", &save))
        cur = cJSON_GetObjectItemCaseSensitive(cur, k);
    return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

static void setup(void) { tasks_init(3600, 1000); }
static void teardown(void) { tasks_shutdown(); }

START_TEST(created_task_is_submitted_with_query_and_history) {
    struct task *t = new_task("hello");
    ck_assert_str_eq(task_query(t), "hello\nsecond");
    cJSON *o = task_render(t, -1);
    ck_assert_str_eq(str_at(o, "kind"), "task");
    ck_assert_str_eq(str_at(o, "id"), task_id(t));
    ck_assert_str_eq(str_at(o, "status.state"), "submitted");
    cJSON *h = cJSON_GetObjectItem(o, "history");
    ck_assert_int_eq(cJSON_GetArraySize(h), 1);
    ck_assert_str_eq(str_at(cJSON_GetArrayItem(h, 0), "taskId"), task_id(t));
    ck_assert_str_eq(str_at(cJSON_GetArrayItem(h, 0), "contextId"), task_context_id(t));
    cJSON_Delete(o);
    struct task *again = tasks_get(task_id(t));
    ck_assert_ptr_eq(again, t);
    task_release(again);
    task_release(t);
}
END_TEST

START_TEST(progress_moves_to_working_and_clamps) {
    struct task *t = new_task("x");
    ck_assert_int_eq(task_progress(t, "Step 1/10", 0.1, A2AD_INFO), A2AD_OK);
    ck_assert_int_eq(task_get_state(t), TASK_WORKING);
    ck_assert_int_eq(task_progress(t, "over", 1.7, A2AD_NOTICE), A2AD_OK);
    cJSON *o = task_render(t, -1);
    const cJSON *md = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "status"), "message"), "metadata");
    ck_assert_double_eq(cJSON_GetObjectItem(md, "progress")->valuedouble, 1.0);
    ck_assert_str_eq(cJSON_GetObjectItem(md, "importance")->valuestring, "notice");
    cJSON_Delete(o);
    ck_assert_int_eq(task_progress(t, "under", -3, A2AD_DEBUG), A2AD_OK);
    ck_assert_int_eq(task_progress(t, "no figure", NAN, A2AD_ERROR), A2AD_OK);
    o = task_render(t, -1);
    md = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "status"), "message"), "metadata");
    ck_assert_ptr_null(cJSON_GetObjectItem(md, "progress"));
    ck_assert_str_eq(cJSON_GetObjectItem(md, "importance")->valuestring, "error");
    cJSON_Delete(o);
    /* rejected: nothing to say at all, or an unknown importance */
    ck_assert_int_eq(task_progress(t, NULL, NAN, A2AD_INFO), A2AD_ERR_INVALID);
    ck_assert_int_eq(task_progress(t, "", NAN, A2AD_INFO), A2AD_ERR_INVALID);
    ck_assert_int_eq(task_progress(t, "x", 0.5, (a2ad_importance)9), A2AD_ERR_INVALID);
    ck_assert_int_eq(task_progress(t, NULL, 0.5, A2AD_INFO), A2AD_OK);
    task_release(t);
}
END_TEST

START_TEST(artifacts_text_and_binary) {
    struct task *t = new_task("x");
    ck_assert_int_eq(task_artifact(t, "results.json", "application/json", "{\"a\":1}", 7), A2AD_OK);
    const unsigned char bin[] = {0, 1, 2, 255, 254};
    ck_assert_int_eq(task_artifact(t, "blob.bin", NULL, bin, sizeof bin), A2AD_OK);
    /* text type but invalid UTF-8 falls back to bytes */
    ck_assert_int_eq(task_artifact(t, "odd.txt", "text/plain", "\xff\xfe", 2), A2AD_OK);
    ck_assert_int_eq(task_artifact(t, NULL, "text/plain", "a", 1), A2AD_ERR_INVALID);
    ck_assert_int_eq(task_artifact(t, "", "text/plain", "a", 1), A2AD_ERR_INVALID);
    ck_assert_int_eq(task_artifact(t, "n", "text/plain", NULL, 3), A2AD_ERR_INVALID);
    ck_assert_int_eq(task_artifact(t, "empty", "text/plain", NULL, 0), A2AD_OK);

    cJSON *o = task_render(t, -1);
    cJSON *arts = cJSON_GetObjectItem(o, "artifacts");
    ck_assert_int_eq(cJSON_GetArraySize(arts), 4);
    cJSON *p0 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(arts, 0), "parts"), 0);
    /* JSON is an A2A data part. */
    ck_assert_str_eq(str_at(p0, "kind"), "data");
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(p0, "data"), "a")->valueint, 1);
    cJSON *a1 = cJSON_GetArrayItem(arts, 1);
    ck_assert_str_eq(str_at(a1, "name"), "blob.bin");
    cJSON *p1 = cJSON_GetArrayItem(cJSON_GetObjectItem(a1, "parts"), 0);
    ck_assert_str_eq(str_at(p1, "kind"), "file");
    ck_assert_str_eq(str_at(p1, "file.mimeType"), "application/octet-stream");
    size_t n = 0;
    unsigned char *dec = util_base64_decode(str_at(p1, "file.bytes"), &n);
    ck_assert_uint_eq(n, sizeof bin);
    ck_assert_mem_eq(dec, bin, sizeof bin);
    free(dec);
    cJSON *p2 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(arts, 2), "parts"), 0);
    ck_assert_str_eq(str_at(p2, "kind"), "file");
    cJSON_Delete(o);
    task_release(t);
}
END_TEST

static int fired;
static void count_fire(void *arg) { (*(int *)arg)++; }

START_TEST(finish_is_final_and_wakes_waiters_once) {
    struct task *t = new_task("x");
    fired = 0;
    ck_assert_int_eq(task_on_terminal(t, count_fire, &fired), A2AD_OK);
    int other = 0;
    ck_assert_int_eq(task_on_terminal(t, count_fire, &other), A2AD_OK);
    ck_assert_int_eq(task_forget_waiter(t, count_fire, &other), A2AD_OK);
    ck_assert_int_eq(task_finish(t, TASK_COMPLETED, "all done"), A2AD_OK);
    ck_assert_int_eq(fired, 1);
    ck_assert_int_eq(other, 0);
    ck_assert_int_eq(task_forget_waiter(t, count_fire, &fired), A2AD_ERR_NOT_FOUND);
    ck_assert_int_eq(task_on_terminal(t, count_fire, &fired), A2AD_ERR_STATE);
    /* nothing moves a finished task */
    ck_assert_int_eq(task_finish(t, TASK_FAILED, "late"), A2AD_ERR_STATE);
    ck_assert_int_eq(task_cancel(t), A2AD_ERR_STATE);
    ck_assert_int_eq(task_progress(t, "late", 0.5, A2AD_INFO), A2AD_ERR_STATE);
    ck_assert_int_eq(task_artifact(t, "late", NULL, "x", 1), A2AD_ERR_STATE);
    ck_assert_int_eq(task_start(t), A2AD_ERR_STATE);
    ck_assert_int_eq(fired, 1);

    cJSON *o = task_render(t, -1);
    ck_assert_str_eq(str_at(o, "status.state"), "completed");
    cJSON *msg = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "status"), "message");
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(msg, "parts"), 0)->child->next->valuestring, "all done");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "history")), 2);
    cJSON_Delete(o);
    ck_assert_int_eq(task_finish(t, TASK_WORKING, "x"), A2AD_ERR_INVALID);
    task_release(t);
}
END_TEST

START_TEST(history_length_limits_rendering) {
    struct task *t = new_task("x");
    task_finish(t, TASK_COMPLETED, "answer");
    cJSON *o = task_render(t, 0);
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "history"));
    cJSON_Delete(o);
    o = task_render(t, 1);
    cJSON *h = cJSON_GetObjectItem(o, "history");
    ck_assert_int_eq(cJSON_GetArraySize(h), 1);
    ck_assert_str_eq(str_at(cJSON_GetArrayItem(h, 0), "role"), "agent");
    cJSON_Delete(o);
    o = task_render(t, 50);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "history")), 2);
    cJSON_Delete(o);
    task_release(t);
}
END_TEST

/* Webhook bodies are printed straight from the task (task_print_locked):
 * they must be the very bytes the rendered copy prints, for every history
 * length, and printing must leave the task as it was. */
START_TEST(printed_task_matches_rendered_task) {
    struct task *t = new_task("say \\\"hi\\\"");
    ck_assert_int_eq(task_progress(t, "Step 1/2", 0.5, A2AD_INFO), A2AD_OK);
    ck_assert_int_eq(task_artifact(t, "r.json", "application/json", "{\"a\":1}", 7), A2AD_OK);
    ck_assert_int_eq(task_progress(t, "Step 2/2", 1.0, A2AD_INFO), A2AD_OK);
    for (int round = 0; round < 2; round++) {
        const int lengths[] = {-1, 0, 1, 2, 3, 50};
        for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
            task_lock(t);
            cJSON *o = task_render_locked(t, lengths[i]);
            char *want = cJSON_PrintUnformatted(o);
            char *got = task_print_locked(t, lengths[i]);
            task_unlock(t);
            ck_assert_ptr_nonnull(got);
            ck_assert_str_eq(got, want);
            free(got);
            free(want);
            cJSON_Delete(o);
        }
        task_finish(t, TASK_COMPLETED, "answer"); /* the second round: ended, final message */
    }
    cJSON *o = task_render(t, -1);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "artifacts")), 1);
    ck_assert_str_eq(str_at(o, "status.state"), "completed");
    cJSON_Delete(o);
    task_release(t);
}
END_TEST

START_TEST(cancel_ends_a_running_task) {
    struct task *t = new_task("x");
    task_start(t);
    ck_assert_int_eq(task_cancel(t), A2AD_OK);
    ck_assert_int_eq(task_get_state(t), TASK_CANCELED);
    ck_assert_int_eq(task_cancel(t), A2AD_ERR_STATE);
    task_release(t);
}
END_TEST

START_TEST(finished_tasks_expire_after_retention) {
    tasks_init(0, 1000); /* retention 0: expire as soon as finished */
    struct task *done = new_task("done");
    struct task *live = new_task("live");
    char id[64];
    snprintf(id, sizeof id, "%s", task_id(done));
    task_finish(done, TASK_COMPLETED, NULL);
    task_release(done);
    ck_assert_uint_eq(tasks_expire(), 1);
    ck_assert_ptr_null(tasks_get(id));
    struct task *still = tasks_get(task_id(live));
    ck_assert_ptr_eq(still, live); /* unfinished tasks never expire */
    task_release(still);
    task_release(live);
}
END_TEST

START_TEST(max_tasks_bounds_the_store) {
    tasks_init(3600, 2);
    struct task *a = new_task("a"), *b = new_task("b");
    struct task_create tc = {.message = cJSON_Parse("{\"parts\":[]}")};
    struct task *c = NULL;
    ck_assert_int_eq(tasks_create(&tc, &c), A2AD_ERR_FULL);
    ck_assert_ptr_null(c);
    /* a finished task gives way before its retention ends */
    task_finish(a, TASK_COMPLETED, NULL);
    struct task *d = new_task("d");
    ck_assert_uint_eq(tasks_count(), 2);
    ck_assert_ptr_null(tasks_get(task_id(a)));
    task_release(a);
    task_release(b);
    task_release(d);
}
END_TEST

/* What an observer saw, in order. */
static char seen[512];
static a2ad_status refuse_created;

static a2ad_status record_event(struct task *t, const struct task_event *ev) {
    (void)t;
    char one[64];
    snprintf(one, sizeof one, "%llu:%s%s%s%s;", (unsigned long long)ev->seq,
             ev->kind == TASK_EVENT_CREATED ? "created" :
             ev->kind == TASK_EVENT_ARTIFACT ? "artifact " : "status ",
             ev->kind == TASK_EVENT_ARTIFACT ? ev->artifact_name : "",
             ev->kind == TASK_EVENT_STATUS ? task_state_name(ev->state) : "",
             ev->terminal ? "!" : "");
    strncat(seen, one, sizeof seen - strlen(seen) - 1);
    return ev->kind == TASK_EVENT_CREATED ? refuse_created : A2AD_OK;
}

static int freed_ext;
static void count_free(void *data) {
    free(data);
    freed_ext++;
}
static const struct task_ext_ops counting_ops = {.name = "test", .free = count_free};

START_TEST(observers_see_every_event_in_order) {
    seen[0] = '\0';
    refuse_created = A2AD_OK;
    freed_ext = 0;
    tasks_add_observer(record_event);
    tasks_register_ext(TASK_EXT_HU, &counting_ops);
    struct task *t = new_task("x");
    task_start(t);
    task_progress(t, "half", 0.5, A2AD_INFO);
    task_artifact(t, "out.txt", "text/plain", "hi", 2);
    task_finish(t, TASK_COMPLETED, "done");
    ck_assert_int_eq(task_progress(t, "late", 0.9, A2AD_INFO), A2AD_ERR_STATE);
    ck_assert_str_eq(seen, "1:created;2:status working;3:status working;4:artifact out.txt;"
                           "5:status completed!;");
    task_release(t);

    /* An observer that refuses creation: nothing is stored, slot data freed. */
    refuse_created = A2AD_ERR_IO;
    struct task_create tc = {.message = cJSON_Parse("{\"role\":\"user\",\"parts\":[]}")};
    tc.ext[TASK_EXT_HU] = malloc(8);
    size_t before = tasks_count();
    struct task *r = NULL;
    ck_assert_int_eq(tasks_create(&tc, &r), A2AD_ERR_IO);
    ck_assert_ptr_null(r);
    ck_assert_uint_eq(tasks_count(), before);
    ck_assert_int_eq(freed_ext, 1);
}
END_TEST

START_TEST(push_configs_survive_save_and_load) {
    push_init(10);
    const struct task_ext_ops *ops = tasks_ext_ops(TASK_EXT_PUSH);
    ck_assert_ptr_nonnull(ops);
    cJSON *auth = cJSON_Parse("{\"scheme\":\"Bearer\",\"credentials\":\"c1\"}");
    struct push_config c = {.url = "http://127.0.0.1:9/hook", .token = "secret",
                            .authentication = auth, .dialect = A2A_V10};
    void *pc = push_configs_new(&c);
    cJSON_Delete(auth);
    cJSON *saved = ops->save(pc);
    ck_assert_int_eq(cJSON_GetArraySize(saved), 1);
    const cJSON *first = cJSON_GetArrayItem(saved, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(first, "url")->valuestring, c.url);
    ck_assert_str_eq(cJSON_GetObjectItem(first, "token")->valuestring, "secret");
    ck_assert_str_eq(cJSON_GetObjectItem(first, "dialect")->valuestring, "1.0");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(first, "authentication"), "credentials")->valuestring,
                     "c1");
    ck_assert_uint_eq(strlen(cJSON_GetObjectItem(first, "id")->valuestring), 36); /* generated */
    void *back = ops->load(saved);
    cJSON *again = ops->save(back);
    ck_assert(cJSON_Compare(saved, again, 1));
    cJSON_Delete(saved);
    cJSON_Delete(again);
    ops->free(pc);
    ops->free(back);
}
END_TEST

START_TEST(discarded_task_disappears) {
    struct task *t = new_task("x");
    tasks_discard(t);
    ck_assert_ptr_null(tasks_get(task_id(t)));
    task_release(t);
}
END_TEST

Suite *tasks_suite(void);
Suite *tasks_suite(void) {
    Suite *s = suite_create("tasks");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, created_task_is_submitted_with_query_and_history);
    tcase_add_test(tc, progress_moves_to_working_and_clamps);
    tcase_add_test(tc, artifacts_text_and_binary);
    tcase_add_test(tc, finish_is_final_and_wakes_waiters_once);
    tcase_add_test(tc, history_length_limits_rendering);
    tcase_add_test(tc, printed_task_matches_rendered_task);
    tcase_add_test(tc, cancel_ends_a_running_task);
    tcase_add_test(tc, finished_tasks_expire_after_retention);
    tcase_add_test(tc, max_tasks_bounds_the_store);
    tcase_add_test(tc, discarded_task_disappears);
    tcase_add_test(tc, observers_see_every_event_in_order);
    tcase_add_test(tc, push_configs_survive_save_and_load);
    suite_add_tcase(s, tc);
    return s;
}
