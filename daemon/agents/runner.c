/* runner - settings, exec agents, the thread runner and its crash line,
 * and the dispatch to runner_process.c. See runner.h. */
#include "agents/runner.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "agents/plugins.h"
#include "store/store.h"
#include "core/tasks.h"
#include "util.h"

static struct {
    struct runner_agent *agents;
    size_t n;
    bool process_default;
    char host_path[PATH_MAX];
    size_t line_max;
    unsigned cancel_grace_ms, max_attempts, crash_loop_max, crash_loop_window_s;
} rs;

/* Agents disabled for a crash loop; written on the main thread before any
 * job runs, read by workers afterwards. */
static pthread_mutex_t disabled_lock = PTHREAD_MUTEX_INITIALIZER;
static struct disabled {
    char *name, *why;
    struct disabled *next;
} *disabled_list;

const char *runner_host_path(void) { return rs.host_path; }
size_t runner_line_max(void) { return rs.line_max ? rs.line_max : 4u << 20; }
unsigned runner_max_attempts(void) { return rs.max_attempts ? rs.max_attempts : 3; }

void runner_crash_loop(unsigned *max, unsigned *window_s) {
    *max = rs.crash_loop_max;
    *window_s = rs.crash_loop_window_s ? rs.crash_loop_window_s : 3600;
}

static const struct runner_agent *settings_of(const char *name) {
    for (size_t i = 0; i < rs.n; i++)
        if (strcmp(rs.agents[i].name, name) == 0) return &rs.agents[i];
    return NULL;
}

/* Process isolation for name: its own setting, else the daemon's default. */
static bool isolated(const struct runner_agent *ra) {
    return ra ? ra->process || ra->exec : rs.process_default;
}

/* An exec agent's descriptor needs a run_background; the runner never calls it. */
static a2ad_status exec_placeholder(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    (void)query;
    (void)ctx;
    return A2AD_ERR_STATE;
}

static a2ad_status add_exec_agent(const struct config *cfg, const struct agent_config *ac,
                                  a2ad_status (*add)(struct agent *a, char *err, size_t errlen)) {
    struct agent *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(ac->exec))) {
        free(a);
        return A2AD_ERR_NOMEM;
    }
    a->desc.abi_major = A2AD_ABI_MAJOR;
    a->desc.struct_size = sizeof a->desc;
    /* The config owns these strings and outlives the registry. */
    a->desc.name = ac->name;
    a->desc.description = ac->description;
    a->desc.version = ac->version;
    a->desc.rerun_safe = ac->rerun_safe > 0;
    a->desc.run_background = exec_placeholder;
    a->max_duration_s = ac->max_duration_s ? ac->max_duration_s : cfg->max_duration_s;
    char err[512];
    a2ad_status s = add(a, err, sizeof err);
    if (s != A2AD_OK) {
        log_error("%s", err);
        free(a->path);
        free(a);
        return cfg->plugin_errors_fatal || s == A2AD_ERR_NOMEM ? s : A2AD_OK;
    }
    log_info("loaded exec agent %s %s: %s (max duration %u s)", ac->name,
             ac->version ? ac->version : "(no version)", ac->exec, (unsigned)a->max_duration_s);
    return A2AD_OK;
}

/* Next to the a2ad binary: installed and built trees alike keep them together. */
static void find_host(const struct config *cfg) {
    if (cfg->agent_host && cfg->agent_host[0]) {
        snprintf(rs.host_path, sizeof rs.host_path, "%s", cfg->agent_host);
        return;
    }
    char self[PATH_MAX - 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        snprintf(rs.host_path, sizeof rs.host_path, "a2ad-agent-host");
        return;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    snprintf(rs.host_path, sizeof rs.host_path, "%s/a2ad-agent-host", self);
}

a2ad_status runner_load(const struct config *cfg,
                        a2ad_status (*add)(struct agent *a, char *err, size_t errlen)) {
    runner_unload();
    rs.process_default = cfg->isolation && strcmp(cfg->isolation, "process") == 0;
    rs.line_max = cfg->protocol_line_max;
    rs.cancel_grace_ms = cfg->cancel_grace_ms;
    rs.max_attempts = cfg->max_attempts;
    rs.crash_loop_max = cfg->crash_loop_max;
    rs.crash_loop_window_s = cfg->crash_loop_window_s;
    find_host(cfg);
    size_t n = 0;
    for (const struct agent_config *ac = cfg->agents; ac; ac = ac->next) n++;
    rs.agents = n ? calloc(n, sizeof *rs.agents) : NULL;
    if (n && !rs.agents) return A2AD_ERR_NOMEM;
    for (const struct agent_config *ac = cfg->agents; ac; ac = ac->next) {
        struct runner_agent *ra = &rs.agents[rs.n];
        if (!(ra->name = strdup(ac->name))) return A2AD_ERR_NOMEM;
        rs.n++;
        ra->process = ac->isolation ? strcmp(ac->isolation, "process") == 0 : rs.process_default;
        ra->exec = ac->exec ? strdup(ac->exec) : NULL;
        ra->memory_max = ac->memory_max;
        ra->cpu_max_s = ac->cpu_max_s;
        ra->open_files_max = ac->open_files_max;
        ra->cancel_grace_ms = ac->cancel_grace_ms ? ac->cancel_grace_ms : cfg->cancel_grace_ms;
        ra->opts = ac->opts;
        ra->n_opts = ac->n_opts;
        if (ac->exec && !ra->exec) return A2AD_ERR_NOMEM;
        if (ac->exec && add) {
            if (plugins_find(ac->name)) {
                log_error("[agent.%s] exec = %s: a plugin already provides agent %s; remove "
                          "the plugin or the exec line",
                          ac->name, ac->exec, ac->name);
                if (cfg->plugin_errors_fatal) return A2AD_ERR_CONFIG;
                continue;
            }
            a2ad_status s = add_exec_agent(cfg, ac, add);
            if (s != A2AD_OK) return s;
        }
    }
    return A2AD_OK;
}

void runner_unload(void) {
    for (size_t i = 0; i < rs.n; i++) {
        free(rs.agents[i].name);
        free(rs.agents[i].exec);
    }
    free(rs.agents);
    rs.agents = NULL;
    rs.n = 0;
    pthread_mutex_lock(&disabled_lock);
    while (disabled_list) {
        struct disabled *d = disabled_list;
        disabled_list = d->next;
        free(d->name);
        free(d->why);
        free(d);
    }
    pthread_mutex_unlock(&disabled_lock);
}

void runner_disable(const char *agent, const char *why) {
    struct disabled *d = calloc(1, sizeof *d);
    if (!d || !(d->name = strdup(agent)) || !(d->why = strdup(why))) {
        if (d) free(d->name);
        free(d);
        return;
    }
    pthread_mutex_lock(&disabled_lock);
    d->next = disabled_list;
    disabled_list = d;
    pthread_mutex_unlock(&disabled_lock);
}

const char *runner_disabled(const char *agent) {
    const char *why = NULL;
    pthread_mutex_lock(&disabled_lock);
    for (struct disabled *d = disabled_list; d && !why; d = d->next)
        if (strcmp(d->name, agent) == 0) why = d->why;
    pthread_mutex_unlock(&disabled_lock);
    return why; /* entries live until runner_unload, after the last job */
}

/* ---- the job's fields ------------------------------------------------------ */

static bool job_fill(struct runner_job *rj, const struct agent *agent, struct task *task) {
    memset(rj, 0, sizeof *rj);
    rj->job.struct_size = sizeof rj->job;
    rj->job.task_id = task_id(task);
    rj->job.context_id = task_context_id(task);
    rj->job.agent = agent->desc.name;
    rj->job.query = task_query(task);
    rj->job.attempt = 1;
    cJSON *doc = task_render(task, -1);
    if (!doc) return false;
    cJSON *md = cJSON_GetObjectItemCaseSensitive(doc, "metadata");
    const cJSON *mine = cJSON_GetObjectItemCaseSensitive(md, "a2ad");
    const cJSON *attempt = cJSON_GetObjectItemCaseSensitive(mine, "attempt");
    if (cJSON_IsNumber(attempt) && attempt->valuedouble >= 1)
        rj->job.attempt = (uint32_t)attempt->valuedouble;
    /* The daemon's own notes are not part of what the client sent. */
    cJSON_DeleteItemFromObjectCaseSensitive(md, "a2ad");
    const cJSON *history = cJSON_GetObjectItemCaseSensitive(doc, "history");
    const cJSON *first = cJSON_GetArrayItem(history, 0);
    rj->message_json = first ? cJSON_PrintUnformatted(first) : strdup("{}");
    rj->metadata_json = cJSON_IsObject(md) ? cJSON_PrintUnformatted(md) : strdup("{}");
    cJSON_Delete(doc);
    rj->job.message_json = rj->message_json;
    rj->job.metadata_json = rj->metadata_json;
    return rj->message_json && rj->metadata_json;
}

/* ---- thread mode and its crash line --------------------------------------- */

/* What the fatal-signal handler writes after the signal's name: formatted
 * before the plugin is called, because the handler may only write(2). */
static _Thread_local char crash_note[384];
static _Thread_local size_t crash_note_len;
static _Thread_local char crash_agent[80]; /* "name\n" */
static _Thread_local size_t crash_agent_len;
static char crash_file[PATH_MAX];

void runner_set_crash_file(const char *path) {
    snprintf(crash_file, sizeof crash_file, "%s", path);
}

static void append(char *buf, size_t *len, size_t cap, const char *s) {
    while (*s && *len + 1 < cap) buf[(*len)++] = *s++;
}

static void on_fatal_signal(int sig) {
    char line[512];
    size_t n = 0;
    const char *name = sigabbrev_np(sig);
    append(line, &n, sizeof line, "a2ad: fatal signal SIG");
    append(line, &n, sizeof line, name ? name : "?");
    if (crash_note_len)
        append(line, &n, sizeof line, crash_note);
    else
        append(line, &n, sizeof line, " outside any agent job\n");
    ssize_t w = write(STDERR_FILENO, line, n);
    if (crash_note_len && crash_agent_len && crash_file[0]) {
        int fd = open(crash_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) {
            w = write(fd, crash_agent, crash_agent_len);
            close(fd);
        }
    }
    (void)w;
    /* Die of the same signal (SA_RESETHAND restored the default action):
     * the exit status and a core dump tell the truth. */
    raise(sig);
}

void runner_install_crash_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

static a2ad_status run_in_thread(const struct agent *agent, const struct runner_job *rj,
                                 a2ad_ctx ctx) {
    int n = snprintf(crash_note, sizeof crash_note,
                     " in agent %s running task %s (attempt %u, isolation = thread); a "
                     "rerun_safe job is run at most [workers] max_attempts times\n",
                     agent->desc.name, rj->job.task_id, (unsigned)rj->job.attempt);
    crash_note_len = n > 0 ? strlen(crash_note) : 0;
    n = snprintf(crash_agent, sizeof crash_agent, "%s\n", agent->desc.name);
    crash_agent_len = n > 0 && (size_t)n < sizeof crash_agent ? (size_t)n : 0;
    a2ad_status st = agent->desc.run_job
                         ? agent->desc.run_job(agent->state, &rj->job, ctx)
                         : agent->desc.run_background(agent->state, rj->job.query, ctx);
    crash_note_len = 0;
    return st;
}

a2ad_status runner_run(const struct agent *agent, struct task *task, a2ad_ctx ctx) {
    const struct runner_agent *ra = settings_of(agent->desc.name);
    const char *why = runner_disabled(agent->desc.name);
    if (why) return ctx.host->set_failure(ctx, why);
    /* `working` (with its attempt) is on disk before agent code runs: if the
     * agent kills the daemon, recovery knows the job was running. */
    store_sync();
    struct runner_job rj;
    a2ad_status st;
    if (!job_fill(&rj, agent, task)) {
        st = ctx.host->set_failure(ctx, "out of memory preparing the job");
    } else if (isolated(ra)) {
        struct runner_agent dflt = {.name = (char *)agent->desc.name,
                                    .process = true,
                                    .cancel_grace_ms = rs.cancel_grace_ms};
        char *rejected = NULL;
        st = runner_process_run(ra ? ra : &dflt, agent, &rj, agent->max_duration_s, ctx, &rejected);
        if (rejected) {
            /* As when validate() refuses: the Health Universe A2A SDK's words. */
            char text[600];
            snprintf(text, sizeof text, "Validation failed: %.560s", rejected);
            task_finish(task, TASK_REJECTED, text);
            free(rejected);
            st = A2AD_ERR_REJECTED;
        }
    } else {
        st = run_in_thread(agent, &rj, ctx);
    }
    free(rj.message_json);
    free(rj.metadata_json);
    return st;
}

bool runner_takes_messages(const struct agent *agent) {
    return isolated(settings_of(agent->desc.name)) || agent->desc.on_message;
}

void runner_message(const struct agent *agent, a2ad_ctx ctx, const char *text,
                    const cJSON *message) {
    if (isolated(settings_of(agent->desc.name))) {
        runner_process_message(ctx, text, message);
    } else if (agent->desc.on_message) {
        /* An HTTP thread runs plugin code here: a crash names it too. */
        int n = snprintf(crash_note, sizeof crash_note,
                         " in agent %s: on_message of a running job (isolation = thread)\n",
                         agent->desc.name);
        crash_note_len = n > 0 ? strlen(crash_note) : 0;
        agent->desc.on_message(agent->state, ctx, text);
        crash_note_len = 0;
    }
}
