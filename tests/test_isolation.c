/* isolation: agents out of process, against the real daemon.
 *   - isolation = process: a plugin that segfaults, aborts, exits, leaks or
 *     spins fails only its job, with a reason naming the signal or limit;
 *     the next job of that agent runs (a new child) and other agents' jobs
 *     complete; the daemon keeps serving. Cancellation and the maximum
 *     duration reach the child; a child ignoring them is killed.
 *   - the richer job (run_job: task and context ids, attempt, the whole
 *     message and metadata) in thread and process mode; JSON artifacts
 *     become A2A data parts.
 *   - exec agents: the Python example end to end (progress from a coroutine
 *     and a thread, a text and a JSON artifact, the job fields, cancel, a
 *     failure), and programs that cannot start or die at once.
 *   - no poison job (thread mode): a plugin that kills the daemon on one
 *     input is re-run at most max_attempts times and then failed; the crash
 *     line names the job; a crash-looping agent is disabled at start.
 */
#include <check.h>
#include <cJSON.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "support/daemon.h"
#include "support/json.h"
#include "support/receiver.h"

static struct daemon_proc d, d2;
static struct receiver *rcv;

static void setup(void) {
    memset(&d, 0, sizeof d);
    memset(&d2, 0, sizeof d2);
    rcv = NULL;
}

static void teardown(void) {
    daemon_cleanup(&d2);
    daemon_cleanup(&d);
    receiver_stop(rcv);
}

static void start(struct daemon_proc *dp, const struct daemon_opts *o) {
    if (!daemon_start(dp, o)) {
        char *log = daemon_log(dp);
        ck_abort_msg("daemon did not start; log:\n%s", log);
    }
}

/* Submit without blocking; the task id (malloc'd). metadata: a JSON object
 * or NULL; hook: a webhook port or 0. */
static char *submit(unsigned port, const char *agent, const char *text, const char *metadata,
                    unsigned hook) {
    char body[2048], path[64], push[128] = "";
    snprintf(path, sizeof path, "/agents/%s", agent);
    if (hook)
        snprintf(push, sizeof push, ",\"pushNotificationConfig\":{\"url\":\"http://127.0.0.1:%u/hook\"}",
                 hook);
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\",\"params\":{"
             "\"message\":{\"kind\":\"message\",\"messageId\":\"m1\",\"role\":\"user\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"},{\"kind\":\"data\",\"data\":{\"n\":7}}],"
             "\"metadata\":{\"mk\":\"mv\"}},"
             "%s%s%s"
             "\"configuration\":{\"blocking\":false%s}}}",
             text, metadata ? "\"metadata\":" : "", metadata ? metadata : "", metadata ? "," : "",
             push);
    long st = 0;
    cJSON *o = rpc_call(port, path, body, &st);
    ck_assert_msg(st == 200 && cJSON_IsString(json_at(o, "result.id")), "submit %s to %s: %ld",
                  text, agent, st);
    char *id = strdup(json_str(o, "result.id"));
    cJSON_Delete(o);
    return id;
}

static cJSON *get_task(unsigned port, const char *agent, const char *id) {
    char body[200], path[64];
    snprintf(path, sizeof path, "/agents/%s", agent);
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tasks/get\",\"params\":{\"id\":\"%s\"}}", id);
    return rpc_call(port, path, body, NULL);
}

static void cancel(unsigned port, const char *agent, const char *id) {
    char body[200], path[64];
    snprintf(path, sizeof path, "/agents/%s", agent);
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tasks/cancel\",\"params\":{\"id\":\"%s\"}}", id);
    cJSON_Delete(rpc_call(port, path, body, NULL));
}

static bool terminal(const char *s) {
    return !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "canceled") ||
           !strcmp(s, "rejected");
}

/* Poll until the task ends (bounded: ~30 s); the tasks/get answer. */
static cJSON *wait_end(unsigned port, const char *agent, const char *id) {
    cJSON *t = NULL;
    for (int i = 0; i < 1500; i++) {
        cJSON_Delete(t);
        t = get_task(port, agent, id);
        if (terminal(json_str(t, "result.status.state"))) break;
        test_nap_ms(20);
    }
    return t;
}

/* Poll until the task's state is want (bounded). */
static bool wait_state(unsigned port, const char *agent, const char *id, const char *want) {
    for (int i = 0; i < 1500; i++) {
        cJSON *t = get_task(port, agent, id);
        bool ok = !strcmp(json_str(t, "result.status.state"), want);
        cJSON_Delete(t);
        if (ok) return true;
        test_nap_ms(20);
    }
    return false;
}

/* Run one job to its end; its final state and text into the buffers. */
static void run(unsigned port, const char *agent, const char *text, char *state, size_t slen,
                char *final_text, size_t tlen) {
    char *id = submit(port, agent, text, NULL, 0);
    cJSON *t = wait_end(port, agent, id);
    snprintf(state, slen, "%s", json_str(t, "result.status.state"));
    snprintf(final_text, tlen, "%s", json_str(t, "result.status.message.parts.0.text"));
    cJSON_Delete(t);
    free(id);
}

static bool alive(const struct daemon_proc *dp) { return dp->pid > 0 && kill(dp->pid, 0) == 0; }

static bool log_has(const struct daemon_proc *dp, const char *needle) {
    for (int i = 0; i < 250; i++) {
        char *log = daemon_log(dp);
        bool has = strstr(log, needle) != NULL;
        free(log);
        if (has) return true;
        test_nap_ms(20);
    }
    return false;
}

#define PROCESS_HAZARD                                                                   \
    "[agent.hazard]\nisolation = process\nmemory_max = 64M\ncpu_max_s = 1\n"             \
    "open_files_max = 64\ncancel_grace_ms = 300\n"

/* ---- isolation = process ------------------------------------------------------- */

START_TEST(process_crashes_fail_only_their_job) {
    struct daemon_opts o = {.plugins = "hazard,echo", .threads = 2, .extra = PROCESS_HAZARD};
    start(&d, &o);
    static const struct {
        const char *query, *reason;
    } cases[] = {
        {"segv", "agent crashed: SIGSEGV"},
        {"abort", "agent crashed: SIGABRT"},
        {"exit3", "agent exited with status 3"},
        {"leak", "agent killed: memory limit (memory_max = 64M)"},
        {"spin", "agent killed: CPU time limit (cpu_max_s = 1)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char state[32], text[512];
        run(d.port, "hazard", cases[i].query, state, sizeof state, text, sizeof text);
        ck_assert_msg(!strcmp(state, "failed") && !strcmp(text, cases[i].reason),
                      "%s: %s \"%s\", want failed \"%s\"", cases[i].query, state, text,
                      cases[i].reason);
        ck_assert_msg(alive(&d), "the daemon died of %s", cases[i].query);
        /* The agent's next job gets a new child; another agent is untouched. */
        run(d.port, "hazard", "hello", state, sizeof state, text, sizeof text);
        ck_assert_str_eq(state, "completed");
        ck_assert_str_eq(text, "ok: hello");
        run(d.port, "echo", "still here", state, sizeof state, text, sizeof text);
        ck_assert_str_eq(state, "completed");
    }
    /* open_files_max holds inside the child. */
    char state[32], text[512];
    run(d.port, "hazard", "files", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "completed");
    int opened = -1;
    ck_assert_int_eq(sscanf(text, "opened %d files", &opened), 1);
    ck_assert_int_lt(opened, 64);
    ck_assert(log_has(&d, "agent hazard task"));
    ck_assert(log_has(&d, "agent crashed: SIGSEGV (pid"));
}
END_TEST

/* A crash while another job of the same agent runs: only the crashing job fails. */
START_TEST(process_crash_leaves_running_jobs_alone) {
    struct daemon_opts o = {.plugins = "hazard", .threads = 2, .extra = PROCESS_HAZARD};
    start(&d, &o);
    char *slow = submit(d.port, "hazard", "sleep", NULL, 0);
    ck_assert(wait_state(d.port, "hazard", slow, "working"));
    char state[32], text[512];
    run(d.port, "hazard", "segv", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(text, "agent crashed: SIGSEGV");
    cJSON *t = get_task(d.port, "hazard", slow);
    ck_assert_str_eq(json_str(t, "result.status.state"), "working");
    cJSON_Delete(t);
    cancel(d.port, "hazard", slow);
    t = wait_end(d.port, "hazard", slow);
    ck_assert_str_eq(json_str(t, "result.status.state"), "canceled");
    cJSON_Delete(t);
    free(slow);
}
END_TEST

/* A child that ignores the cancel line is killed after cancel_grace_ms; with
 * one worker, the next job running proves the worker is free again. */
START_TEST(process_cancel_kills_a_stubborn_child) {
    struct daemon_opts o = {.plugins = "hazard", .threads = 1,
                            .extra = "[agent.hazard]\nisolation = process\ncancel_grace_ms = 300\n"};
    start(&d, &o);
    char *id = submit(d.port, "hazard", "spin", NULL, 0);
    ck_assert(wait_state(d.port, "hazard", id, "working"));
    cancel(d.port, "hazard", id);
    cJSON *t = wait_end(d.port, "hazard", id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "canceled");
    cJSON_Delete(t);
    char state[32], text[512];
    run(d.port, "hazard", "after", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "completed");
    ck_assert(log_has(&d, "killed: it ignored the cancellation for 300 ms"));
    free(id);
}
END_TEST

START_TEST(process_cancel_reaches_a_cooperative_child) {
    struct daemon_opts o = {.plugins = "hazard", .threads = 1,
                            .extra = "[agent.hazard]\nisolation = process\ncancel_grace_ms = 60000\n"};
    start(&d, &o);
    char *id = submit(d.port, "hazard", "sleep", NULL, 0);
    ck_assert(wait_state(d.port, "hazard", id, "working"));
    cancel(d.port, "hazard", id);
    /* The next job runs long before the 60 s grace: the child saw the cancel. */
    char state[32], text[512];
    run(d.port, "hazard", "after", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "completed");
    ck_assert(!log_has(&d, "ignored the cancellation"));
    free(id);
}
END_TEST

START_TEST(process_watchdog_kills_an_overdue_child) {
    struct daemon_opts o = {.plugins = "hazard", .threads = 1,
                            .extra = "[agent.hazard]\nisolation = process\nmax_duration_s = 1\n"
                                     "cancel_grace_ms = 200\n"};
    start(&d, &o);
    char state[32], text[512];
    run(d.port, "hazard", "spin", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "failed");
    ck_assert_str_eq(text, "Task exceeded maximum duration of 1 seconds (0 minutes)");
    run(d.port, "hazard", "after", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "completed");
}
END_TEST

/* A plugin built for run_background (echo) and calls from a plugin thread
 * work unchanged in a child. */
START_TEST(process_runs_plain_plugins_unchanged) {
    struct daemon_opts o = {.plugins = "hazard,echo,old_struct", .threads = 2,
                            .workers_extra = "isolation = process"};
    start(&d, &o);
    char state[32], text[512];
    /* Built against a header that ended at run_background: the host reads
     * nothing past its struct_size (its run_job bytes are never called). */
    run(d.port, "old", "from the past", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "completed");
    ck_assert_str_eq(text, "from the past");
    run(d.port, "echo", "hi there", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "completed");
    ck_assert_ptr_nonnull(strstr(text, "hi there"));
    run(d.port, "hazard", "thread", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "completed");
    ck_assert_str_eq(text, "threaded");
    /* [workers] isolation = process applied to both: a crash is contained. */
    run(d.port, "hazard", "segv", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(text, "agent crashed: SIGSEGV");
    ck_assert(alive(&d));
}
END_TEST

/* A further message of the conversation reaches the job in its child. */
static void say(unsigned port, const char *id, const char *text) {
    char body[600];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"message/send\",\"params\":{\"message\":{"
             "\"kind\":\"message\",\"messageId\":\"m-%s\",\"role\":\"user\",\"taskId\":\"%s\","
             "\"parts\":[{\"kind\":\"text\",\"text\":\"%s\"}]},\"configuration\":{\"blocking\":false}}}",
             text, id, text);
    long st = 0;
    cJSON_Delete(rpc_call(port, "/agents/convo", body, &st));
    ck_assert_int_eq(st, 200);
}

static bool wait_text(unsigned port, const char *id, const char *want) {
    for (int i = 0; i < 500; i++) {
        cJSON *t = get_task(port, "convo", id);
        bool ok = !strcmp(json_str(t, "result.status.message.parts.0.text"), want);
        cJSON_Delete(t);
        if (ok) return true;
        test_nap_ms(20);
    }
    return false;
}

START_TEST(process_conversation_messages_reach_the_child) {
    struct daemon_opts o = {.plugins = "convo", .threads = 1,
                            .extra = "[agent.convo]\nisolation = process\n"};
    start(&d, &o);
    char *id = submit(d.port, "convo", "hi", NULL, 0);
    ck_assert(wait_text(d.port, id, "listening"));
    say(d.port, id, "hello-there");
    ck_assert(wait_text(d.port, id, "heard: hello-there"));
    say(d.port, id, "bye");
    cJSON *t = wait_end(d.port, "convo", id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
    ck_assert_str_eq(json_str(t, "result.status.message.parts.0.text"),
                     "conversation over after 2 messages");
    cJSON_Delete(t);
    free(id);
}
END_TEST

/* ---- the richer job ---------------------------------------------------------------- */

static void check_job_fields(const char *isolation) {
    char extra[128];
    snprintf(extra, sizeof extra, "[agent.hazard]\nisolation = %s\n", isolation);
    struct daemon_opts o = {.plugins = "hazard", .threads = 1, .extra = extra};
    start(&d, &o);
    char *id = submit(d.port, "hazard", "job", "{\"req\":\"meta\",\"n\":2}", 0);
    cJSON *t = wait_end(d.port, "hazard", id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
    /* The artifact is application/json: an A2A data part, not text. */
    const cJSON *part = json_at(t, "result.artifacts.0.parts.0");
    ck_assert_str_eq(json_str(part, "kind"), "data");
    const cJSON *job = json_at(part, "data");
    ck_assert_str_eq(json_str(job, "taskId"), id);
    ck_assert_str_eq(json_str(job, "contextId"), json_str(t, "result.contextId"));
    ck_assert_str_eq(json_str(job, "agent"), "hazard");
    ck_assert_int_eq(json_int(job, "attempt"), 1);
    ck_assert_str_eq(json_str(job, "message.parts.0.text"), "job");
    ck_assert_int_eq(json_int(job, "message.parts.1.data.n"), 7);
    ck_assert_str_eq(json_str(job, "message.metadata.mk"), "mv");
    ck_assert_str_eq(json_str(job, "metadata.req"), "meta");
    ck_assert_int_eq(json_int(job, "metadata.n"), 2);
    ck_assert_ptr_null(json_at(job, "metadata.a2ad"));
    cJSON_Delete(t);
    free(id);
}

START_TEST(job_fields_reach_a_thread_plugin) { check_job_fields("thread"); }
END_TEST

START_TEST(job_fields_reach_a_process_plugin) { check_job_fields("process"); }
END_TEST

/* ---- exec agents: Python ----------------------------------------------------------------- */

static const char *python_extra(char *buf, size_t len) {
    char cwd[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    snprintf(buf, len,
             "[agent.pydemo]\nexec = /usr/bin/python3 %s/examples/python/demo_agent.py\n"
             "description = Python demo\nversion = 0.1.0\ncancel_grace_ms = 3000\n",
             cwd);
    return buf;
}

START_TEST(python_agent_end_to_end) {
    /* python3 comes with the test dependencies (scripts/deps.sh --test). */
    ck_assert_msg(access("/usr/bin/python3", X_OK) == 0, "no /usr/bin/python3: apt-get install python3");
    char extra[PATH_MAX + 200];
    rcv = receiver_start();
    struct daemon_opts o = {.plugins = "echo", .threads = 2,
                            .extra = python_extra(extra, sizeof extra)};
    start(&d, &o);

    /* The card comes from the config. */
    struct http_resp r;
    ck_assert(http_call(d.port, "GET", "/agents/pydemo/.well-known/agent-card.json", NULL, &r));
    cJSON *card = cJSON_Parse(r.body);
    ck_assert_str_eq(json_str(card, "description"), "Python demo");
    ck_assert_str_eq(json_str(card, "version"), "0.1.0");
    cJSON_Delete(card);
    http_resp_free(&r);

    /* Progress (async and from a thread), two artifacts, a result. */
    char *id = submit(d.port, "pydemo", "hello", "{\"req\":\"py\"}", receiver_port(rcv));
    cJSON *t = wait_end(d.port, "pydemo", id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "completed");
    char want[128];
    snprintf(want, sizeof want, "python done: task %s", id);
    ck_assert_str_eq(json_str(t, "result.status.message.parts.0.text"), want);
    ck_assert_str_eq(json_str(t, "result.artifacts.0.parts.0.text"), "you said: hello");
    ck_assert_str_eq(json_str(t, "result.artifacts.1.parts.0.kind"), "data");
    ck_assert_str_eq(json_str(t, "result.artifacts.1.parts.0.data.taskId"), id);
    ck_assert_str_eq(json_str(t, "result.artifacts.1.parts.0.data.metadata.req"), "py");
    ck_assert_int_eq(json_int(t, "result.artifacts.1.parts.0.data.parts"), 2);
    ck_assert_int_eq(json_int(t, "result.artifacts.1.parts.0.data.attempt"), 1);
    cJSON_Delete(t);
    /* Every progress update reached the webhook receiver. */
    bool thread_seen = false, start_seen = false;
    for (int i = 0; i < 250 && !(thread_seen && start_seen); i++) {
        for (size_t k = 0; k < receiver_count(rcv); k++) {
            const struct received *rec = receiver_get(rcv, k);
            if (strstr(rec->body, "from a thread")) thread_seen = true;
            if (strstr(rec->body, "\"starting\"")) start_seen = true;
        }
        test_nap_ms(20);
    }
    ck_assert(start_seen && thread_seen);
    /* print() went to the log, not into the protocol. */
    ck_assert(log_has(&d, "stderr: this print goes to the daemon's log"));
    free(id);

    /* A failure: the exception's text. */
    char state[32], text[512];
    run(d.port, "pydemo", "fail now", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "failed");
    ck_assert_str_eq(text, "RuntimeError: demo failure as asked");
    run(d.port, "pydemo", "reject this", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "rejected");
    ck_assert_str_eq(text, "Validation failed: demo refuses queries starting with 'reject'");

    /* Cancel: the agent sees is_cancelled() / CancelledError and ends. */
    id = submit(d.port, "pydemo", "slow", NULL, 0);
    bool progressing = false;
    for (int i = 0; i < 500 && !progressing; i++) {
        t = get_task(d.port, "pydemo", id);
        progressing = !strncmp(json_str(t, "result.status.message.parts.0.text"), "step ", 5);
        cJSON_Delete(t);
        if (!progressing) test_nap_ms(20);
    }
    ck_assert(progressing);
    cancel(d.port, "pydemo", id);
    t = wait_end(d.port, "pydemo", id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "canceled");
    cJSON_Delete(t);
    run(d.port, "pydemo", "again", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "completed");
    ck_assert(!log_has(&d, "ignored the cancellation"));
    free(id);
}
END_TEST

START_TEST(exec_agent_that_cannot_run_fails_its_jobs) {
    struct daemon_opts o = {.plugins = "echo", .threads = 1,
                            .extra = "[agent.missing]\nexec = /nonexistent/agent --flag\n"
                                     "[agent.quits]\nexec = /bin/false\n"};
    start(&d, &o);
    char state[32], text[512];
    run(d.port, "missing", "x", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "failed");
    ck_assert_str_eq(text, "cannot start the agent program /nonexistent/agent (exec failed)");
    run(d.port, "quits", "x", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "failed");
    ck_assert_str_eq(text, "agent exited with status 1");
    run(d.port, "echo", "fine", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "completed");
}
END_TEST

/* ---- no poison job (thread mode) ------------------------------------------------------------- */

/* Wait until the daemon process ends (bounded); true when it died of sig. */
static bool died_of(struct daemon_proc *dp, int sig) {
    for (int i = 0; i < 1000 && dp->pid > 0; i++) {
        int st;
        if (waitpid(dp->pid, &st, WNOHANG) == dp->pid) {
            dp->pid = 0;
            return WIFSIGNALED(st) && WTERMSIG(st) == sig;
        }
        test_nap_ms(20);
    }
    return false;
}

/* Start on db; the daemon may die of the recovered job before it is ready. */
static void start_may_crash(struct daemon_proc *dp, struct daemon_opts *o) {
    daemon_cleanup(dp);
    if (daemon_start(dp, o)) return;
    ck_assert_msg(dp->pid == 0, "daemon neither started nor died");
}

START_TEST(poison_job_is_given_up_after_max_attempts) {
    char db[400];
    struct daemon_opts o = {.plugins = "hazard,echo", .threads = 1,
                            .workers_extra = "max_attempts = 3\ncrash_loop_max = 0"};
    start(&d, &o);
    snprintf(db, sizeof db, "%s/a2ad.db", d.dir);
    o.db_path = db;
    char *id = submit(d.port, "hazard", "segv-later", NULL, 0);
    ck_assert(died_of(&d, SIGSEGV));
    char want[200];
    snprintf(want, sizeof want,
             "a2ad: fatal signal SIGSEGV in agent hazard running task %s (attempt 1", id);
    ck_assert_msg(log_has(&d, want), "no crash line naming the job");
    /* Attempts 2 and 3 crash the next starts, then it is given up. */
    for (int attempt = 2; attempt <= 3; attempt++) {
        start_may_crash(&d2, &o);
        ck_assert(d2.pid == 0 || died_of(&d2, SIGSEGV));
        snprintf(want, sizeof want, "running task %s (attempt %d", id, attempt);
        ck_assert_msg(log_has(&d2, want), "attempt %d: no crash line", attempt);
    }
    daemon_cleanup(&d2);
    start(&d2, &o);
    cJSON *t = wait_end(d2.port, "hazard", id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "failed");
    ck_assert_str_eq(json_str(t, "result.status.message.parts.0.text"),
                     "gave up after 3 attempts: the agent crashed");
    cJSON_Delete(t);
    char state[32], text[512];
    run(d2.port, "echo", "serving", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "completed");
    run(d2.port, "hazard", "fine", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "completed");
    ck_assert(alive(&d2));
    free(id);
}
END_TEST

/* `working` is on disk before the plugin runs: a job that is not rerun_safe
 * and killed the daemon ends failed at the next start, instead of being
 * queued as never started and killing the daemon again. */
START_TEST(crashed_job_of_a_plain_agent_fails_at_restart) {
    char db[400];
    struct daemon_opts o = {.plugins = "fragile,echo", .threads = 1};
    start(&d, &o);
    snprintf(db, sizeof db, "%s/a2ad.db", d.dir);
    o.db_path = db;
    /* Queued behind a job that holds the one worker, so the client has its
     * ack long before the crash, which comes the moment the job starts. */
    char *first = submit(d.port, "fragile", "wait", NULL, 0);
    char *id = submit(d.port, "fragile", "segv", NULL, 0);
    free(first);
    ck_assert(died_of(&d, SIGSEGV));
    char want[200];
    snprintf(want, sizeof want, "a2ad: fatal signal SIGSEGV in agent fragile running task %s", id);
    ck_assert(log_has(&d, want));
    start(&d2, &o);
    cJSON *t = wait_end(d2.port, "fragile", id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "failed");
    ck_assert_str_eq(json_str(t, "result.status.message.parts.0.text"), "interrupted: a2ad restarted");
    cJSON_Delete(t);
    char state[32], text[512];
    run(d2.port, "fragile", "ok", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(text, "fine");
    ck_assert(alive(&d2));
    free(id);
}
END_TEST

/* An exec agent that breaks the protocol fails its job with the reason. */
static void write_script(const char *dir, const char *name, const char *body, char *path,
                         size_t len) {
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(body, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, 0755), 0);
}

START_TEST(exec_agent_breaking_the_protocol_fails_its_job) {
    char dir[] = "/tmp/a2ad-isolation-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char longline[300], garbage[300], extra[1200];
    write_script(dir, "long.sh", "#!/bin/sh\nhead -c 100000 /dev/zero | tr '\\0' x\necho\n",
                 longline, sizeof longline);
    write_script(dir, "garbage.sh", "#!/bin/sh\necho 'not json'\nsleep 5\n", garbage,
                 sizeof garbage);
    snprintf(extra, sizeof extra, "[agent.long]\nexec = %s\n[agent.garbage]\nexec = %s\n",
             longline, garbage);
    struct daemon_opts o = {.plugins = "echo", .threads = 1, .extra = extra,
                            .workers_extra = "protocol_line_max = 4k"};
    start(&d, &o);
    char state[32], text[512];
    run(d.port, "long", "x", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "failed");
    ck_assert_str_eq(text, "agent protocol error: a line longer than [workers] protocol_line_max = 4k");
    run(d.port, "garbage", "x", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "failed");
    ck_assert_str_eq(text, "agent protocol error: a line that is not a JSON object with a string \"type\"");
    run(d.port, "echo", "fine", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "completed");
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(crash_looping_agent_is_disabled_at_start) {
    char db[400];
    struct daemon_opts o = {.plugins = "hazard,echo", .threads = 1,
                            .workers_extra = "max_attempts = 10\ncrash_loop_max = 2"};
    start(&d, &o);
    snprintf(db, sizeof db, "%s/a2ad.db", d.dir);
    o.db_path = db;
    char *id = submit(d.port, "hazard", "segv-later", NULL, 0);
    ck_assert(died_of(&d, SIGSEGV));
    start_may_crash(&d2, &o);
    ck_assert(d2.pid == 0 || died_of(&d2, SIGSEGV));
    /* Two crashes recorded: the third start disables the agent. */
    daemon_cleanup(&d2);
    start(&d2, &o);
    ck_assert(log_has(&d2, "agent hazard is disabled: it crashed a2ad 2 times within"));
    cJSON *t = wait_end(d2.port, "hazard", id);
    ck_assert_str_eq(json_str(t, "result.status.state"), "failed");
    ck_assert_ptr_nonnull(strstr(json_str(t, "result.status.message.parts.0.text"),
                                 "agent hazard is disabled"));
    cJSON_Delete(t);
    char state[32], text[512];
    run(d2.port, "hazard", "segv", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "failed");
    ck_assert_ptr_nonnull(strstr(text, "is disabled"));
    run(d2.port, "echo", "serving", state, sizeof state, text, sizeof text);
    ck_assert_str_eq(state, "completed");
    ck_assert(alive(&d2));
    free(id);
}
END_TEST

/* ---- configuration ---------------------------------------------------------------- */

static void expect_config_error(const char *text, const char *want) {
    char path[] = "/tmp/a2ad-isolation-conf-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct config cfg;
    config_defaults(&cfg);
    char err[512] = "";
    ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), A2AD_ERR_CONFIG);
    ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
    config_free(&cfg);
    unlink(path);
}

START_TEST(config_refuses_bad_runner_keys) {
    expect_config_error("[agent.x]\nisolation = container\n",
                        ":2: [agent.x] isolation = container: must be thread or process");
    expect_config_error("[agent.x]\nmemory_max = 12\n", "memory_max = 12: must be a size from 1M");
    expect_config_error("[agent.x]\nexec = agent.py\n", "exec = agent.py: must be an absolute path");
    expect_config_error("[agent.x]\ncpu_max_s = 0\n", "cpu_max_s = 0: must be a positive integer");
    expect_config_error("[agent.x]\nrerun_safe = maybe\n", "rerun_safe = maybe: must be yes or no");
    expect_config_error("[agent.x]\nisolation = thread\nisolation = process\n",
                        "isolation: given twice in this section (first on line 2)");
    expect_config_error("[workers]\nisolation = vm\n", "isolation = vm");
}
END_TEST

Suite *isolation_suite(void);
Suite *isolation_suite(void) {
    Suite *s = suite_create("isolation");
    TCase *tc = tcase_create("process");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, process_crashes_fail_only_their_job);
    tcase_add_test(tc, process_crash_leaves_running_jobs_alone);
    tcase_add_test(tc, process_cancel_kills_a_stubborn_child);
    tcase_add_test(tc, process_cancel_reaches_a_cooperative_child);
    tcase_add_test(tc, process_watchdog_kills_an_overdue_child);
    tcase_add_test(tc, process_runs_plain_plugins_unchanged);
    tcase_add_test(tc, process_conversation_messages_reach_the_child);
    tcase_add_test(tc, job_fields_reach_a_thread_plugin);
    tcase_add_test(tc, job_fields_reach_a_process_plugin);
    tcase_add_test(tc, python_agent_end_to_end);
    tcase_add_test(tc, exec_agent_that_cannot_run_fails_its_jobs);
    tcase_add_test(tc, poison_job_is_given_up_after_max_attempts);
    tcase_add_test(tc, crashed_job_of_a_plain_agent_fails_at_restart);
    tcase_add_test(tc, exec_agent_breaking_the_protocol_fails_its_job);
    tcase_add_test(tc, crash_looping_agent_is_disabled_at_start);
    tcase_add_test(tc, config_refuses_bad_runner_keys);
    suite_add_tcase(s, tc);
    return s;
}
