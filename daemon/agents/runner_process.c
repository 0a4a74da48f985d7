/* runner_process - one job in a supervised child process speaking the
 * agent protocol (docs/agent-protocol.md): a2ad-agent-host loading the
 * agent's .so (isolation = process) or the agent's own program (exec).
 *
 * One child per job: a crash can only take its own job along, the next job
 * starts clean (the child is "replaced" by construction), and the CPU and
 * memory limits count that job alone. The worker thread that runs the job
 * supervises it: one poll loop reads the child's lines (stdout = the
 * protocol, stderr = log lines), writes the job, cancel and conversation
 * messages, watches the job's cancellation and memory, and reaps the child.
 */
#include "agents/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "agents/plugins.h"
#include "util.h"

#define TICK_MS 20
#define MAX_ARGS 32
/* Conversation messages waiting for a child that does not read, at most. */
#define OUT_MAX (8u << 20)

struct child {
    pid_t pid;
    int fd;  /* the protocol socket */
    int err; /* the child's stderr */
    a2ad_ctx ctx;
    pthread_mutex_t lock; /* out */
    char *out;
    size_t out_len, out_cap;
    struct child *next; /* in the active list */
};

/* Running children, so an HTTP thread can find the one of a ctx. */
static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static struct child *active;

/* Queue a line for the child; false when it would pass OUT_MAX. */
static bool out_append_locked(struct child *c, const char *line) {
    size_t n = strlen(line);
    if (c->out_len + n + 1 > OUT_MAX) return false;
    if (c->out_len + n + 1 > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n + 1) cap *= 2;
        char *grown = realloc(c->out, cap);
        if (!grown) return false;
        c->out = grown;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, line, n);
    c->out_len += n;
    c->out[c->out_len++] = '\n';
    return true;
}

static bool send_json(struct child *c, cJSON *msg) {
    char *line = msg ? cJSON_PrintUnformatted(msg) : NULL;
    cJSON_Delete(msg);
    if (!line) return false;
    pthread_mutex_lock(&c->lock);
    bool ok = out_append_locked(c, line);
    pthread_mutex_unlock(&c->lock);
    free(line);
    return ok;
}

void runner_process_message(a2ad_ctx ctx, const char *text, const cJSON *message) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "type", "message");
    cJSON_AddStringToObject(m, "text", text ? text : "");
    if (message) cJSON_AddItemToObject(m, "message", cJSON_Duplicate(message, 1));
    char *line = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    if (!line) return;
    pthread_mutex_lock(&active_lock);
    struct child *c = active;
    while (c && (c->ctx.handle != ctx.handle || c->ctx.host != ctx.host)) c = c->next;
    bool ok = false;
    if (c) {
        pthread_mutex_lock(&c->lock);
        ok = out_append_locked(c, line);
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&active_lock);
    if (c && !ok)
        a2ad_log(ctx, A2AD_LOG_WARNING, "conversation message dropped: the agent does not read "
                                        "its input (%u bytes waiting)", OUT_MAX);
    free(line);
}

/* ---- starting the child ------------------------------------------------ */

/* Blank-separated words of a command line (no quoting: a wrapper script
 * is the answer to anything fancier). */
static size_t split_words(char *s, char **argv, size_t max) {
    size_t n = 0;
    char *save = NULL;
    for (char *w = strtok_r(s, " \t", &save); w && n + 1 < max; w = strtok_r(NULL, " \t", &save))
        argv[n++] = w;
    argv[n] = NULL;
    return n;
}

static void set_limit(int resource, rlim_t soft, rlim_t hard) {
    struct rlimit rl = {soft, hard};
    setrlimit(resource, &rl);
}

/* After fork, before exec: only async-signal-safe calls. */
static void child_exec(char **argv, int sock, int err, const struct runner_agent *ra,
                       const char *fail_line, size_t fail_len) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the daemon */
    setpgid(0, 0);                    /* a kill reaches the agent's own children too */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGXFSZ, SIG_DFL);
    if (dup2(sock, 0) < 0 || dup2(sock, 1) < 0 || dup2(err, 2) < 0) _exit(127);
    close_range(3, ~0u, 0);
    if (ra->cpu_max_s) set_limit(RLIMIT_CPU, ra->cpu_max_s, ra->cpu_max_s + 1);
    if (ra->open_files_max) set_limit(RLIMIT_NOFILE, ra->open_files_max, ra->open_files_max);
    /* Sanitizer runtimes reserve terabytes of address space up front, so
     * the host built with them cannot live under RLIMIT_DATA; the daemon's
     * RSS watch (below) still enforces memory_max there. */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    if (ra->memory_max) set_limit(RLIMIT_DATA, ra->memory_max, ra->memory_max);
#endif
    execv(argv[0], argv);
    ssize_t w = write(1, fail_line, fail_len);
    (void)w;
    _exit(127);
}

static uint64_t now_ms(void) { return util_now_ms(); }

/* The child and its process group (its own children). Both, because the
 * child may not have reached its setpgid yet. Only before it is reaped. */
static void kill_child(pid_t pid) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
}

/* Resident bytes of pid (0 when unknown). */
static size_t rss_of(pid_t pid) {
    char path[64], buf[128];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    unsigned long size = 0, resident = 0;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2) return 0;
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static void size_text(size_t v, char *buf, size_t len) {
    if (v % (1u << 30) == 0)
        snprintf(buf, len, "%zuG", v >> 30);
    else if (v % (1u << 20) == 0)
        snprintf(buf, len, "%zuM", v >> 20);
    else if (v % 1024 == 0)
        snprintf(buf, len, "%zuk", v >> 10);
    else
        snprintf(buf, len, "%zu", v);
}

/* ---- the protocol, daemon side -------------------------------------------- */

struct run {
    const struct runner_agent *ra;
    a2ad_ctx ctx;
    char *result;  /* a `result` line's text */
    char *failure; /* a `failed` line's reason */
    bool done;     /* result or failed seen */
    char *protocol_error;
    char *rejected; /* a `rejected` line's reason */
};

static a2ad_importance importance_of(const cJSON *v) {
    static const char *const names[] = {"error", "notice", "info", "debug"};
    if (cJSON_IsString(v))
        for (int i = 0; i < 4; i++)
            if (strcmp(v->valuestring, names[i]) == 0) return (a2ad_importance)i;
    return A2AD_INFO;
}

static a2ad_log_level level_of(const cJSON *v) {
    const char *s = cJSON_IsString(v) ? v->valuestring : "info";
    if (strcmp(s, "error") == 0) return A2AD_LOG_ERROR;
    if (strcmp(s, "warning") == 0) return A2AD_LOG_WARNING;
    if (strcmp(s, "debug") == 0) return A2AD_LOG_DEBUG;
    return A2AD_LOG_INFO;
}

static void protocol_error(struct run *r, const char *what, const char *detail) {
    if (r->protocol_error) return;
    char buf[300];
    snprintf(buf, sizeof buf, "agent protocol error: %s%.60s", what, detail);
    r->protocol_error = strdup(buf);
}

static void handle_line(struct run *r, const char *line, size_t len) {
    cJSON *m = cJSON_ParseWithLength(line, len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
    if (!cJSON_IsString(type)) {
        cJSON_Delete(m);
        protocol_error(r, "a line that is not a JSON object with a string \"type\"", "");
        return;
    }
    const char *t = type->valuestring;
    a2ad_ctx ctx = r->ctx;
    if (strcmp(t, "progress") == 0) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(m, "message");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "progress");
        ctx.host->update_progress(ctx, cJSON_IsString(msg) ? msg->valuestring : NULL,
                                  cJSON_IsNumber(p) ? p->valuedouble : NAN,
                                  importance_of(cJSON_GetObjectItemCaseSensitive(m, "importance")));
    } else if (strcmp(t, "artifact") == 0) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
        const cJSON *mime = cJSON_GetObjectItemCaseSensitive(m, "mimeType");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(m, "text");
        const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(m, "base64");
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(m, "data");
        const cJSON *append = cJSON_GetObjectItemCaseSensitive(m, "append");
        const cJSON *last = cJSON_GetObjectItemCaseSensitive(m, "lastChunk");
        const char *nm = cJSON_IsString(name) ? name->valuestring : NULL;
        const char *mt = cJSON_IsString(mime) ? mime->valuestring : NULL;
        /* With append or lastChunk present it is one chunk of an artifact. */
        bool chunk = append || last;
        char *json = NULL;
        unsigned char *bytes = NULL;
        const void *p = NULL;
        size_t n = 0;
        if (cJSON_IsString(text)) {
            p = text->valuestring;
            n = strlen(text->valuestring);
            if (!mt) mt = "text/plain";
        } else if (cJSON_IsString(b64)) {
            if (!(bytes = util_base64_decode(b64->valuestring, &n)))
                protocol_error(r, "bad base64 in artifact ", nm ? nm : "");
            p = bytes;
        } else if (data) {
            if ((json = cJSON_PrintUnformatted(data))) n = strlen(json);
            p = json;
            if (!mt) mt = "application/json";
        } else {
            protocol_error(r, "no text, base64 or data in artifact ", nm ? nm : "");
        }
        if (p && !chunk) {
            ctx.host->add_artifact(ctx, nm, mt, p, n);
        } else if (p) {
            /* The child cannot get the answer back: a refused chunk fails the job. */
            a2ad_status st = ctx.host->add_artifact_chunk(ctx, nm, mt, p, n, cJSON_IsTrue(append),
                                                          cJSON_IsTrue(last));
            if (st != A2AD_OK && st != A2AD_ERR_ENDED)
                protocol_error(r, "artifact chunk refused: ", a2ad_status_name(st));
        }
        free(json);
        free(bytes);
    } else if (strcmp(t, "result") == 0 || strcmp(t, "done") == 0) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(m, "text");
        if (!r->done && cJSON_IsString(text)) r->result = strdup(text->valuestring);
        r->done = true;
    } else if (strcmp(t, "failed") == 0) {
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(m, "reason");
        if (!r->done)
            r->failure = strdup(cJSON_IsString(reason) && reason->valuestring[0]
                                    ? reason->valuestring
                                    : "the agent failed the job");
        r->done = true;
    } else if (strcmp(t, "rejected") == 0) {
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(m, "reason");
        if (!r->done)
            r->rejected = strdup(cJSON_IsString(reason) && reason->valuestring[0]
                                     ? reason->valuestring
                                     : "the agent refused the job");
        r->done = true;
    } else if (strcmp(t, "log") == 0) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(m, "message");
        a2ad_log(ctx, level_of(cJSON_GetObjectItemCaseSensitive(m, "level")), "%s",
                 cJSON_IsString(msg) ? msg->valuestring : "");
    } else {
        protocol_error(r, "unknown message type ", t);
    }
    cJSON_Delete(m);
}

/* A growing line buffer bounded by the protocol's line limit. */
struct lines {
    char *buf;
    size_t len, cap;
    bool eof, too_long;
};

/* Read what fd has; call fn for each complete line. */
static void read_lines(int fd, struct lines *l, size_t max,
                       void (*fn)(void *arg, const char *line, size_t len), void *arg) {
    for (;;) {
        if (l->cap - l->len < 4096) {
            size_t cap = l->cap ? l->cap * 2 : 65536;
            if (cap > max + 4096) cap = max + 4096;
            if (cap <= l->cap) {
                l->too_long = true;
                return;
            }
            char *grown = realloc(l->buf, cap);
            if (!grown) {
                l->too_long = true;
                return;
            }
            l->buf = grown;
            l->cap = cap;
        }
        ssize_t n = read(fd, l->buf + l->len, l->cap - l->len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0 || errno != EAGAIN) l->eof = true;
            return;
        }
        l->len += (size_t)n;
        size_t start = 0;
        for (size_t i = l->len - (size_t)n; i < l->len; i++) {
            if (l->buf[i] != '\n') continue;
            if (i > start) fn(arg, l->buf + start, i - start);
            start = i + 1;
        }
        memmove(l->buf, l->buf + start, l->len - start);
        l->len -= start;
        if (l->len > max) {
            l->too_long = true;
            return;
        }
    }
}

static void on_protocol_line(void *arg, const char *line, size_t len) {
    handle_line(arg, line, len);
}

static void on_stderr_line(void *arg, const char *line, size_t len) {
    struct run *r = arg;
    a2ad_log(r->ctx, A2AD_LOG_WARNING, "stderr: %.*s", (int)(len > 2000 ? 2000 : len), line);
}

static cJSON *job_message(const struct runner_agent *ra, const struct runner_job *rj,
                          unsigned max_duration_s) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "type", "job");
    cJSON_AddStringToObject(m, "taskId", rj->job.task_id);
    cJSON_AddStringToObject(m, "contextId", rj->job.context_id);
    cJSON_AddStringToObject(m, "agent", rj->job.agent);
    cJSON_AddNumberToObject(m, "attempt", rj->job.attempt);
    cJSON_AddStringToObject(m, "query", rj->job.query ? rj->job.query : "");
    cJSON_AddItemToObject(m, "message", cJSON_Parse(rj->message_json));
    cJSON_AddItemToObject(m, "metadata", cJSON_Parse(rj->metadata_json));
    cJSON *opts = cJSON_AddObjectToObject(m, "options");
    for (size_t i = 0; i < ra->n_opts; i++)
        cJSON_AddStringToObject(opts, ra->opts[i].key, ra->opts[i].value);
    cJSON_AddNumberToObject(m, "maxDurationS", max_duration_s);
    return m;
}

/* Why the child ended, as the job's failure reason. */
static void exit_reason(const struct runner_agent *ra, int status, const struct rusage *ru,
                        bool mem_killed, bool cancel_killed, char *why, size_t len) {
    char lim[32];
    if (ra->memory_max) size_text(ra->memory_max, lim, sizeof lim);
    bool near_mem = ra->memory_max && (size_t)ru->ru_maxrss * 1024u >= ra->memory_max / 4 * 3;
    double cpu = (double)ru->ru_utime.tv_sec + (double)ru->ru_stime.tv_sec +
                 (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e6;
    if (mem_killed || (near_mem && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))) {
        snprintf(why, len, "agent killed: memory limit (memory_max = %s)", lim);
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *name = sigabbrev_np(sig);
        if (sig == SIGXCPU || (sig == SIGKILL && ra->cpu_max_s && cpu >= ra->cpu_max_s))
            snprintf(why, len, "agent killed: CPU time limit (cpu_max_s = %u)", ra->cpu_max_s);
        else if (sig == SIGKILL && cancel_killed)
            snprintf(why, len, "agent killed: it ignored the cancellation for %u ms",
                     ra->cancel_grace_ms);
        else if (sig == SIGKILL)
            snprintf(why, len, "agent killed: SIGKILL (from outside a2ad; out of memory?)");
        else
            snprintf(why, len, "agent crashed: SIG%s", name ? name : "?");
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        snprintf(why, len, "agent exited with status %d", WEXITSTATUS(status));
    } else {
        snprintf(why, len, "agent exited without a result");
    }
}

a2ad_status runner_process_run(const struct runner_agent *ra, const struct agent *agent,
                               const struct runner_job *rj, unsigned max_duration_s,
                               a2ad_ctx ctx, char **rejected) {
    /* Everything the child needs is prepared before fork: after it, only
     * async-signal-safe calls. */
    char *cmd = strdup(ra->exec ? ra->exec : runner_host_path());
    char *argv[MAX_ARGS];
    size_t argc = cmd ? split_words(cmd, argv, MAX_ARGS - 1) : 0;
    if (!ra->exec && argc) {
        /* the private copy: never code from a file that can change under us */
        argv[argc++] = agent->copy ? agent->copy : agent->path;
        argv[argc] = NULL;
    }
    cJSON *fail = cJSON_CreateObject();
    char reason[PATH_MAX + 64];
    snprintf(reason, sizeof reason, "cannot start the agent program %s (exec failed)",
             argc ? argv[0] : "(none)");
    cJSON_AddStringToObject(fail, "type", "failed");
    cJSON_AddStringToObject(fail, "reason", reason);
    char *fail_line = cJSON_PrintUnformatted(fail);
    cJSON_Delete(fail);
    char *fail_nl = fail_line ? malloc(strlen(fail_line) + 2) : NULL;
    if (fail_nl) sprintf(fail_nl, "%s\n", fail_line);
    free(fail_line);

    struct child c = {.pid = -1, .fd = -1, .err = -1, .ctx = ctx};
    pthread_mutex_init(&c.lock, NULL);
    struct run r = {.ra = ra, .ctx = ctx};
    int sv[2] = {-1, -1}, ep[2] = {-1, -1};
    a2ad_status st = A2AD_ERR_IO;
    if (!argc || !fail_nl) {
        st = ctx.host->set_failure(ctx, "out of memory starting the agent");
        goto out;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || pipe2(ep, O_CLOEXEC) != 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot start the agent: %s", strerror(errno));
        st = ctx.host->set_failure(ctx, why);
        goto out;
    }
    if (!send_json(&c, job_message(ra, rj, max_duration_s))) {
        st = ctx.host->set_failure(ctx, "out of memory preparing the job for the agent");
        goto out;
    }
    c.pid = fork();
    if (c.pid < 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot start the agent: fork: %s", strerror(errno));
        st = ctx.host->set_failure(ctx, why);
        goto out;
    }
    if (c.pid == 0) child_exec(argv, sv[1], ep[1], ra, fail_nl, strlen(fail_nl));
    setpgid(c.pid, c.pid); /* as the child does: whichever runs first */
    close(sv[1]);
    close(ep[1]);
    sv[1] = ep[1] = -1;
    c.fd = sv[0];
    c.err = ep[0];
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    fcntl(c.err, F_SETFL, fcntl(c.err, F_GETFL) | O_NONBLOCK);
    pthread_mutex_lock(&active_lock);
    c.next = active;
    active = &c;
    pthread_mutex_unlock(&active_lock);

    struct lines out_lines = {0}, err_lines = {0};
    size_t line_max = runner_line_max();
    bool cancel_sent = false, killed = false, mem_killed = false, cancel_killed = false;
    bool stdin_closed = false;
    uint64_t cancel_at = 0, done_at = 0;
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    for (;;) {
        pthread_mutex_lock(&c.lock);
        bool want_out = c.out_len > 0;
        pthread_mutex_unlock(&c.lock);
        struct pollfd pf[2] = {
            {.fd = out_lines.eof ? -1 : c.fd, .events = POLLIN | (want_out && !stdin_closed ? POLLOUT : 0)},
            {.fd = err_lines.eof ? -1 : c.err, .events = POLLIN},
        };
        poll(pf, 2, TICK_MS);
        if (pf[0].revents & POLLOUT) {
            pthread_mutex_lock(&c.lock);
            ssize_t w = send(c.fd, c.out, c.out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) {
                memmove(c.out, c.out + w, c.out_len - (size_t)w);
                c.out_len -= (size_t)w;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                stdin_closed = true; /* the child closed its input; it may still answer */
            }
            pthread_mutex_unlock(&c.lock);
        }
        if (!out_lines.eof && (pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
            read_lines(c.fd, &out_lines, line_max, on_protocol_line, &r);
        if (!err_lines.eof && (pf[1].revents & (POLLIN | POLLHUP | POLLERR)))
            read_lines(c.err, &err_lines, 64 * 1024, on_stderr_line, &r);
        if (err_lines.too_long) { /* stderr is for humans: drop an endless line */
            err_lines.len = 0;
            err_lines.too_long = false;
        }
        uint64_t now = now_ms();
        if (!killed && (out_lines.too_long || r.protocol_error)) {
            if (out_lines.too_long) {
                char lim[32];
                size_text(line_max, lim, sizeof lim);
                char buf[160];
                snprintf(buf, sizeof buf,
                         "agent protocol error: a line longer than [workers] protocol_line_max = %s",
                         lim);
                free(r.protocol_error);
                r.protocol_error = strdup(buf);
            }
            kill_child(c.pid);
            killed = true;
        }
        if (!killed && ra->memory_max && rss_of(c.pid) > ra->memory_max) {
            kill_child(c.pid);
            killed = mem_killed = true;
        }
        if (!cancel_sent && !r.done && ctx.host->cancelled(ctx)) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "type", "cancel");
            send_json(&c, m);
            cancel_sent = true;
            cancel_at = now;
        }
        if (!killed && cancel_sent && now - cancel_at >= ra->cancel_grace_ms) {
            kill_child(c.pid);
            killed = cancel_killed = true;
        }
        /* After its answer the child should leave; close its input to say so. */
        if (r.done && !done_at) {
            done_at = now;
            shutdown(c.fd, SHUT_WR);
            stdin_closed = true;
        }
        if (!killed && done_at && now - done_at >= 2000) {
            kill_child(c.pid);
            killed = true;
        }
        pid_t w = wait4(c.pid, &status, WNOHANG, &ru);
        if (w == c.pid) {
            /* Drain what it wrote before it ended. */
            if (!out_lines.eof) read_lines(c.fd, &out_lines, line_max, on_protocol_line, &r);
            if (!err_lines.eof) read_lines(c.err, &err_lines, 64 * 1024, on_stderr_line, &r);
            break;
        }
        if (out_lines.eof && !killed && !done_at) {
            /* The child closed the protocol without an answer: it is ending. */
            done_at = now;
        }
    }
    kill(-c.pid, SIGKILL); /* anything the agent left behind in its group */
    pthread_mutex_lock(&active_lock);
    for (struct child **p = &active; *p; p = &(*p)->next)
        if (*p == &c) {
            *p = c.next;
            break;
        }
    pthread_mutex_unlock(&active_lock);
    free(out_lines.buf);
    free(err_lines.buf);

    if (r.protocol_error) {
        a2ad_log(ctx, A2AD_LOG_ERROR, "%s; the job failed", r.protocol_error);
        st = ctx.host->set_failure(ctx, r.protocol_error);
    } else if (r.rejected) {
        *rejected = r.rejected;
        r.rejected = NULL;
        st = A2AD_ERR_REJECTED;
    } else if (r.done && r.failure == NULL && !mem_killed) {
        ctx.host->set_result(ctx, r.result);
        st = A2AD_OK;
    } else if (r.failure) {
        /* An agent that saw its allocation fail says so in its own words;
         * add which limit it hit. */
        char why[600];
        if (ra->memory_max && (size_t)ru.ru_maxrss * 1024u >= ra->memory_max / 4 * 3) {
            char lim[32];
            size_text(ra->memory_max, lim, sizeof lim);
            snprintf(why, sizeof why, "%.500s (memory limit reached: memory_max = %s)", r.failure, lim);
        } else {
            snprintf(why, sizeof why, "%.590s", r.failure);
        }
        st = ctx.host->set_failure(ctx, why);
    } else {
        char why[200];
        exit_reason(ra, status, &ru, mem_killed, cancel_killed, why, sizeof why);
        if (cancel_killed)
            a2ad_log(ctx, A2AD_LOG_WARNING, "%s (pid %d)", why, (int)c.pid);
        else if (!cancel_sent)
            a2ad_log(ctx, A2AD_LOG_ERROR, "%s (pid %d, %s); only this job failed, the next one "
                     "gets a new process", why, (int)c.pid, ra->exec ? "exec" : "isolation = process");
        st = ctx.host->set_failure(ctx, why);
    }
out:
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    if (ep[0] >= 0) close(ep[0]);
    if (ep[1] >= 0) close(ep[1]);
    pthread_mutex_destroy(&c.lock);
    free(c.out);
    free(r.result);
    free(r.failure);
    free(r.protocol_error);
    free(r.rejected);
    free(fail_nl);
    free(cmd);
    return st;
}
