/* workers: the pool runs agents, refuses stale ctx handles, fails jobs past
 * their maximum duration, bounds its queue, and stops gracefully. Agents
 * here are in-process descriptors: no dlopen needed. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agents/plugins.h"
#include "core/tasks.h"
#include "util.h"
#include "agents/workers.h"
#include "support/json.h"

static a2ad_ctx saved_ctx; /* the last job's ctx, read after the job ended */
static pthread_mutex_t saved_lock = PTHREAD_MUTEX_INITIALIZER;

static void save_ctx(a2ad_ctx ctx) {
    pthread_mutex_lock(&saved_lock);
    saved_ctx = ctx;
    pthread_mutex_unlock(&saved_lock);
}

static a2ad_ctx last_ctx(void) {
    pthread_mutex_lock(&saved_lock);
    a2ad_ctx c = saved_ctx;
    pthread_mutex_unlock(&saved_lock);
    return c;
}
static atomic_int gate; /* 1 = let blocking agents return */
static pthread_t late_thread;
static atomic_int late_status = -1;

static a2ad_status run_quick(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    save_ctx(ctx);
    a2ad_update_progress(ctx, "half", 0.5, A2AD_INFO);
    return a2ad_result(ctx, query);
}

static void *late_caller(void *arg) {
    a2ad_ctx ctx = *(a2ad_ctx *)arg;
    while (!atomic_load(&gate)) test_nap_ms(1);
    atomic_store(&late_status, (int)a2ad_update_progress(ctx, "too late", 0.9, A2AD_INFO));
    return NULL;
}

/* Starts a thread that reports after the job has returned. */
static a2ad_status run_leaves_thread(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    (void)query;
    save_ctx(ctx);
    static a2ad_ctx for_thread;
    for_thread = ctx;
    pthread_create(&late_thread, NULL, late_caller, &for_thread);
    return a2ad_result(ctx, "returned");
}

/* Waits for the gate, ignoring cancellation (a stubborn agent). */
static a2ad_status run_blocking(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    (void)query;
    save_ctx(ctx);
    for (int i = 0; i < 5000 && !atomic_load(&gate); i++) test_nap_ms(1);
    return a2ad_result(ctx, "finished");
}

static a2ad_status run_until_cancelled(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    (void)query;
    for (int i = 0; i < 5000 && !a2ad_cancelled(ctx); i++) test_nap_ms(1);
    return a2ad_fail(ctx, "stopped");
}

static a2ad_status run_fails_silently(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    (void)query;
    (void)ctx;
    return A2AD_ERR_IO;
}

static struct agent make_agent(a2ad_status (*run)(void *, const char *, a2ad_ctx), uint32_t max_s) {
    struct agent a;
    memset(&a, 0, sizeof a);
    a.desc.abi_major = A2AD_ABI_MAJOR;
    a.desc.struct_size = sizeof a.desc;
    a.desc.name = "fake";
    a.desc.run_background = run;
    a.max_duration_s = max_s;
    return a;
}

static struct task *submit(const struct agent *a, const char *text) {
    char json[200];
    snprintf(json, sizeof json,
             "{\"kind\":\"message\",\"messageId\":\"m\",\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]}",
             text);
    struct task_create tc = {.agent = a, .message = cJSON_Parse(json)};
    struct task *t = NULL;
    ck_assert_int_eq(tasks_create(&tc, &t), A2AD_OK);
    ck_assert_int_eq(workers_submit(t), A2AD_OK);
    return t;
}

static bool wait_state(struct task *t, enum task_state want, int max_ms) {
    for (int i = 0; i < max_ms; i++) {
        if (task_get_state(t) == want) return true;
        test_nap_ms(1);
    }
    return task_get_state(t) == want;
}

static char *final_text(struct task *t) {
    cJSON *o = task_render(t, -1);
    cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "status"), "message");
    cJSON *text = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "parts"), 0), "text");
    char *s = cJSON_IsString(text) ? strdup(text->valuestring) : NULL;
    cJSON_Delete(o);
    return s;
}

static void setup(void) {
    tasks_init(3600, 1000);
    atomic_store(&gate, 0);
    atomic_store(&late_status, -1);
}
static void teardown(void) {
    atomic_store(&gate, 1);
    workers_stop(5);
    tasks_shutdown();
}

START_TEST(job_runs_and_completes_with_its_result) {
    static struct agent a;
    a = make_agent(run_quick, 60);
    ck_assert_int_eq(workers_start(2, 8), A2AD_OK);
    struct task *t = submit(&a, "hello");
    ck_assert(wait_state(t, TASK_COMPLETED, 5000));
    char *text = final_text(t);
    ck_assert_str_eq(text, "hello");
    free(text);
    /* the ctx died with the job */
    ck_assert_int_eq(a2ad_update_progress(last_ctx(), "late", 0.1, A2AD_INFO), A2AD_ERR_ENDED);
    ck_assert_int_eq(a2ad_add_artifact(last_ctx(), "x", NULL, "x", 1), A2AD_ERR_ENDED);
    ck_assert_int_eq(a2ad_cancelled(last_ctx()), 1);
    task_release(t);
}
END_TEST

START_TEST(call_from_plugin_thread_after_job_ended_is_refused) {
    static struct agent a;
    a = make_agent(run_leaves_thread, 60);
    ck_assert_int_eq(workers_start(1, 8), A2AD_OK);
    struct task *t = submit(&a, "x");
    ck_assert(wait_state(t, TASK_COMPLETED, 5000));
    atomic_store(&gate, 1);
    pthread_join(late_thread, NULL);
    ck_assert_int_eq(atomic_load(&late_status), A2AD_ERR_ENDED);
    /* a forged handle is refused the same way */
    a2ad_ctx forged = {workers_host(), 0xdeadbeefULL};
    ck_assert_int_eq(a2ad_update_progress(forged, "x", 0.1, A2AD_INFO), A2AD_ERR_ENDED);
    task_release(t);
}
END_TEST

START_TEST(failure_without_reason_names_the_status) {
    static struct agent a;
    a = make_agent(run_fails_silently, 60);
    ck_assert_int_eq(workers_start(1, 8), A2AD_OK);
    struct task *t = submit(&a, "x");
    ck_assert(wait_state(t, TASK_FAILED, 5000));
    char *text = final_text(t);
    ck_assert_str_eq(text, "agent returned I/O error");
    free(text);
    task_release(t);
}
END_TEST

START_TEST(max_duration_fails_a_stubborn_job) {
    static struct agent a;
    a = make_agent(run_blocking, 1);
    ck_assert_int_eq(workers_start(1, 8), A2AD_OK);
    struct task *t = submit(&a, "x");
    ck_assert(wait_state(t, TASK_FAILED, 4000));
    char *text = final_text(t);
    ck_assert_str_eq(text, "Task exceeded maximum duration of 1 seconds (0 minutes)");
    free(text);
    ck_assert_int_eq(a2ad_cancelled(last_ctx()), 1); /* the plugin is told to stop */
    atomic_store(&gate, 1);
    task_release(t);
}
END_TEST

START_TEST(cancel_reaches_a_cooperative_agent) {
    static struct agent a;
    a = make_agent(run_until_cancelled, 60);
    ck_assert_int_eq(workers_start(1, 8), A2AD_OK);
    struct task *t = submit(&a, "x");
    ck_assert(wait_state(t, TASK_WORKING, 2000));
    ck_assert_int_eq(task_cancel(t), A2AD_OK);
    /* the worker frees up: the next job runs */
    static struct agent q;
    q = make_agent(run_quick, 60);
    struct task *next = submit(&q, "after");
    ck_assert(wait_state(next, TASK_COMPLETED, 5000));
    ck_assert_int_eq(task_get_state(t), TASK_CANCELED);
    task_release(t);
    task_release(next);
}
END_TEST

START_TEST(full_queue_refuses_at_once) {
    static struct agent a;
    a = make_agent(run_blocking, 60);
    ck_assert_int_eq(workers_start(1, 2), A2AD_OK);
    struct task *running = submit(&a, "1");
    ck_assert(wait_state(running, TASK_WORKING, 2000));
    struct task *q1 = submit(&a, "2"), *q2 = submit(&a, "3");
    struct task_create tc = {.agent = &a, .message = cJSON_Parse("{\"parts\":[]}")};
    struct task *over = NULL;
    ck_assert_int_eq(tasks_create(&tc, &over), A2AD_OK);
    ck_assert_int_eq(workers_submit(over), A2AD_ERR_FULL);
    size_t queued, run;
    workers_load(&queued, &run);
    ck_assert_uint_eq(queued, 2);
    ck_assert_uint_eq(run, 1);
    atomic_store(&gate, 1);
    ck_assert(wait_state(q2, TASK_COMPLETED, 5000));
    task_release(running);
    task_release(q1);
    task_release(q2);
    task_release(over);
}
END_TEST

START_TEST(stop_fails_queued_jobs_and_waits_for_running_ones) {
    static struct agent a;
    a = make_agent(run_blocking, 60);
    ck_assert_int_eq(workers_start(1, 8), A2AD_OK);
    struct task *running = submit(&a, "1");
    ck_assert(wait_state(running, TASK_WORKING, 2000));
    struct task *queued = submit(&a, "2");
    atomic_store(&gate, 1); /* the running job returns during the grace period */
    ck_assert_uint_eq(workers_stop(5), 0);
    ck_assert_int_eq(task_get_state(running), TASK_COMPLETED);
    ck_assert_int_eq(task_get_state(queued), TASK_FAILED);
    char *text = final_text(queued);
    ck_assert_str_eq(text, "interrupted: a2ad shut down before the job started");
    free(text);
    ck_assert_int_eq(workers_submit(queued), A2AD_ERR_STATE);
    task_release(running);
    task_release(queued);
}
END_TEST

START_TEST(stop_after_grace_fails_a_job_that_will_not_return) {
    static struct agent a;
    a = make_agent(run_blocking, 60);
    ck_assert_int_eq(workers_start(1, 8), A2AD_OK);
    struct task *running = submit(&a, "1");
    ck_assert(wait_state(running, TASK_WORKING, 2000));
    size_t busy = workers_stop(0);
    ck_assert_int_eq(task_get_state(running), TASK_FAILED);
    char *text = final_text(running);
    ck_assert_str_eq(text, "interrupted: a2ad shut down");
    free(text);
    ck_assert_uint_le(busy, 1);
    atomic_store(&gate, 1);
    for (int i = 0; i < 2000 && busy; i++) test_nap_ms(1); /* let the detached worker leave the agent */
    test_nap_ms(20);
    task_release(running);
}
END_TEST

START_TEST(stop_joins_a_cooperative_job_after_failing_it) {
    static struct agent a;
    a = make_agent(run_until_cancelled, 60);
    ck_assert_int_eq(workers_start(1, 8), A2AD_OK);
    struct task *running = submit(&a, "1");
    ck_assert(wait_state(running, TASK_WORKING, 2000));
    /* no grace: the job is failed, sees a2ad_cancelled() and returns */
    ck_assert_uint_eq(workers_stop(0), 0);
    ck_assert_int_eq(task_get_state(running), TASK_FAILED);
    task_release(running);
}
END_TEST

Suite *workers_suite(void);
Suite *workers_suite(void) {
    Suite *s = suite_create("workers");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 20);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, job_runs_and_completes_with_its_result);
    tcase_add_test(tc, call_from_plugin_thread_after_job_ended_is_refused);
    tcase_add_test(tc, failure_without_reason_names_the_status);
    tcase_add_test(tc, max_duration_fails_a_stubborn_job);
    tcase_add_test(tc, cancel_reaches_a_cooperative_agent);
    tcase_add_test(tc, full_queue_refuses_at_once);
    tcase_add_test(tc, stop_fails_queued_jobs_and_waits_for_running_ones);
    tcase_add_test(tc, stop_after_grace_fails_a_job_that_will_not_return);
    tcase_add_test(tc, stop_joins_a_cooperative_job_after_failing_it);
    suite_add_tcase(s, tc);
    return s;
}
