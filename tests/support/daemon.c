/* daemon - start the real a2ad binary for integration tests. */
#include "support/daemon.h"
#include "support/json.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *build_path(const char *rel, char *buf, size_t n) {
    const char *b = getenv("A2AD_BUILD");
    snprintf(buf, n, "%s/%s", b && *b ? b : "build", rel);
    return buf;
}

static bool copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (!in) return false;
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return false;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in);
    return fclose(out) == 0;
}

bool daemon_prepare(struct daemon_proc *d, const struct daemon_opts *o) {
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/a2ad-test-XXXXXX");
    if (!mkdtemp(d->dir)) return false;
    char pdir[320];
    snprintf(pdir, sizeof pdir, "%s/plugins", d->dir);
    mkdir(pdir, 0700);
    char *list = strdup(o->plugins ? o->plugins : "");
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        char rel[200], from[400], to[400];
        snprintf(rel, sizeof rel, "plugins/%s.so", name);
        build_path(rel, from, sizeof from);
        if (access(from, R_OK) != 0) {
            snprintf(rel, sizeof rel, "tests/plugins/%s.so", name);
            build_path(rel, from, sizeof from);
        }
        snprintf(to, sizeof to, "%s/%s.so", pdir, name);
        if (!copy_file(from, to)) {
            fprintf(stderr, "daemon_prepare: cannot copy %s\n", from);
            free(list);
            return false;
        }
    }
    free(list);
    snprintf(d->conf, sizeof d->conf, "%s/a2ad.conf", d->dir);
    snprintf(d->log, sizeof d->log, "%s/a2ad.log", d->dir);
    FILE *f = fopen(d->conf, "w");
    if (!f) return false;
    fprintf(f, "[server]\nlisten = 127.0.0.1\nport = 0\n");
    if (o->default_agent) fprintf(f, "default_agent = %s\n", o->default_agent);
    if (o->server_extra) fprintf(f, "%s\n", o->server_extra);
    /* The suites drive a2ad hard from one address; the per-client limits
     * are tested where a test asks for them (test_hardening). */
    const char *se = o->server_extra ? o->server_extra : "";
    if (!strstr(se, "rate_limit_per_s")) fprintf(f, "rate_limit_per_s = 0\n");
    if (!strstr(se, "max_connections_per_ip")) fprintf(f, "max_connections_per_ip = 0\n");
    fprintf(f, "[workers]\nthreads = %u\nshutdown_grace_s = 5\n", o->threads ? o->threads : 2);
    if (o->queue_length) fprintf(f, "queue_length = %u\n", o->queue_length);
    if (o->workers_extra) fprintf(f, "%s\n", o->workers_extra);
    fprintf(f, "[plugins]\ndir = %s\nerrors = %s\n", pdir, o->errors ? o->errors : "fatal");
    /* short backoffs keep retry tests fast */
    fprintf(f, "[webhooks]\n%stimeout_ms = %u\nflush_s = 5\n",
            o->webhooks_backoff ? o->webhooks_backoff
                                : "backoff_initial_ms = 20\nbackoff_max_ms = 200\nmax_attempts = 5\n",
            o->webhook_timeout_ms ? o->webhook_timeout_ms : 3000);
    /* The test receivers listen on 127.0.0.1, which the SSRF guard refuses
     * by default. */
    if (!o->guard_default) fprintf(f, "allow_networks = 127.0.0.0/8, ::1/128\n");
    /* A short circuit-breaker cool-down, like the short backoffs. */
    if (!o->webhooks_extra || !strstr(o->webhooks_extra, "breaker_cooldown_ms"))
        fprintf(f, "breaker_cooldown_ms = 200\n");
    if (o->webhooks_extra) fprintf(f, "%s\n", o->webhooks_extra);
    /* Each daemon its own database, removed with its folder. */
    fprintf(f, "[tasks]\n");
    if (o->store) fprintf(f, "store = %s\n", o->store);
    if (o->db_path)
        fprintf(f, "path = %s\n", o->db_path);
    else
        fprintf(f, "path = %s/a2ad.db\n", d->dir);
    if (o->tasks_extra) fprintf(f, "%s\n", o->tasks_extra);
    fprintf(f, "[log]\nlevel = debug\n");
    if (o->extra) fprintf(f, "%s\n", o->extra);
    return fclose(f) == 0;
}

static pid_t spawn(struct daemon_proc *d, const char *extra_arg, unsigned long fsize) {
    char bin[300];
    build_path("a2ad", bin, sizeof bin);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Die with the test: a failed assertion must not leave daemons behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        if (fsize) {
            struct rlimit rl = {fsize, fsize};
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        /* The private plugin copies go into the test's folder, so a daemon
         * killed with -9 leaves nothing behind in /tmp. */
        setenv("RUNTIME_DIRECTORY", d->dir, 1);
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
            close(fd);
        }
        if (extra_arg)
            execl(bin, bin, extra_arg, "-c", d->conf, (char *)NULL);
        else
            execl(bin, bin, "-c", d->conf, (char *)NULL);
        _exit(127);
    }
    return pid;
}

char *daemon_log(const struct daemon_proc *d) {
    FILE *f = fopen(d->log, "r");
    if (!f) return strdup("");
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = (len + 4096 + 1) * 2;
            buf = realloc(buf, cap);
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n == 0) break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

bool daemon_start(struct daemon_proc *d, const struct daemon_opts *o) {
    if (!daemon_prepare(d, o)) return false;
    d->pid = spawn(d, NULL, o->fsize_limit);
    if (d->pid < 0) return false;
    for (int i = 0; i < 500; i++) { /* up to ~10 s, ASan builds start slower */
        char *log = daemon_log(d);
        char *at = strstr(log, "listening on http");
        if (at) at = strstr(at, "://127.0.0.1:"); /* http or https */
        bool ready = strstr(log, " ready in ") != NULL;
        if (at) d->port = (unsigned)strtoul(at + strlen("://127.0.0.1:"), NULL, 10);
        free(log);
        if (ready && d->port) return true;
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            return false;
        }
        test_nap_ms(20);
    }
    return false;
}

int daemon_run_args(struct daemon_proc *d, const char *args, unsigned timeout_ms) {
    pid_t pid = spawn(d, args, 0);
    for (unsigned waited = 0; waited < timeout_ms; waited += 10) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        test_nap_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* A daemon killed by a signal while stopping is a crash: its log is removed with the test
 * directory, so the last lines go to the test's output, where CI shows them. */
static void daemon_print_log_tail(const struct daemon_proc *d, int sig) {
    char *log = daemon_log(d);
    if (!log) return;
    size_t len = strlen(log);
    const char *from = len > 4000 ? log + len - 4000 : log;
    fprintf(stderr, "daemon %s died of signal %d while stopping; its log ends:\n%s\n", d->dir, sig, from);
    free(log);
}

int daemon_stop(struct daemon_proc *d, unsigned timeout_ms) {
    if (d->pid <= 0) return -1;
    kill(d->pid, SIGTERM);
    for (unsigned waited = 0; waited < timeout_ms; waited += 10) {
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            if (WIFSIGNALED(st)) daemon_print_log_tail(d, WTERMSIG(st));
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        test_nap_ms(10);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
    return -1;
}

void daemon_kill9(struct daemon_proc *d) {
    if (d->pid <= 0) return;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
}

void daemon_cleanup(struct daemon_proc *d) {
    if (d->pid > 0) daemon_stop(d, 5000);
    if (!d->dir[0]) return;
    if (getenv("A2AD_KEEP_TEST_DIRS")) return;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", d->dir);
}

struct buf {
    char *data;
    size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *arg) {
    struct buf *b = arg;
    size_t add = size * n;
    char *nd = realloc(b->data, b->len + add + 1);
    if (!nd) return 0;
    memcpy(nd + b->len, p, add);
    b->data = nd;
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

bool http_call(unsigned port, const char *method, const char *path, const char *body,
               struct http_resp *out) {
    return http_call_headers(port, method, path, body, NULL, out);
}

bool http_call_headers(unsigned port, const char *method, const char *path, const char *body,
                       const char *const *headers, struct http_resp *out) {
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (!c) return false;
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    struct buf b = {0}, h = {0};
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++) hdr = curl_slist_append(hdr, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (method) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    out->body = b.data ? b.data : strdup("");
    out->headers = h.data ? h.data : strdup("");
    return rc == CURLE_OK;
}

void http_resp_free(struct http_resp *r) {
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

cJSON *rpc_call(unsigned port, const char *path, const char *json, long *http_status) {
    return rpc_call_headers(port, path, json, NULL, http_status);
}

cJSON *rpc_call_headers(unsigned port, const char *path, const char *json,
                        const char *const *headers, long *http_status) {
    struct http_resp r;
    http_call_headers(port, NULL, path, json, headers, &r);
    if (http_status) *http_status = r.status;
    cJSON *o = cJSON_Parse(r.body);
    http_resp_free(&r);
    return o;
}
