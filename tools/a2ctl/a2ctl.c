/* a2ctl - a command-line client of a2ad.
 *
 * Speaks only what any client may: the public A2A protocol (JSON-RPC 2.0,
 * A2A 0.3 method names; message/stream as Server-Sent Events for --follow)
 * and a2ad's admin API (/admin/v1/, with an admin token) for what A2A has
 * no word for: listing tasks of every agent and their webhook events.
 *
 * Exit codes: 0 completed (or done), 1 failed, 2 usage or connection error
 * (or an error answer), 3 canceled, 4 rejected. See docs/man/a2ctl.1.scd.
 */
#include <cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define A2CTL_VERSION "0.1.0"

enum { EXIT_COMPLETED = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_CANCELED = 3, EXIT_REJECTED = 4 };

static struct {
    const char *url;   /* base, without a trailing slash */
    const char *token; /* NULL = none */
    bool json;
    bool tty;          /* stdout is a terminal: draw the progress bar */
} opt;

static const char usage_text[] =
    "usage: a2ctl [--url URL] [--token T] [--json] COMMAND ...\n"
    "\n"
    "  send AGENT TEXT [--webhook URL] [--wait|--follow]\n"
    "                       start a job; --wait blocks until it ends, --follow\n"
    "                       shows its progress live (message/stream)\n"
    "  get ID               a task: state, progress, answer, artifacts\n"
    "  list [--agent A] [--state S] [--limit N]\n"
    "                       tasks of every agent (admin API)\n"
    "  cancel ID            cancel a task\n"
    "  card [AGENT]         an agent's card (the default agent's without AGENT)\n"
    "  webhooks ID [list|purge|replay]\n"
    "                       a task's pending webhook events (admin API)\n"
    "\n"
    "  --url URL     a2ad's address (default $A2CTL_URL, else http://127.0.0.1:8080)\n"
    "  --token T     bearer token, sent with every request (default $A2CTL_TOKEN);\n"
    "                the admin API needs one of [server] admin_tokens\n"
    "  --json        print the JSON answers as they come\n"
    "\n"
    "exit status: 0 completed, 1 failed, 2 usage or connection error, 3 canceled,\n"
    "4 rejected\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("a2ctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(a2ctl --help for usage)\n", stderr);
    return EXIT_USAGE;
}

/* ---- HTTP ------------------------------------------------------------------ */

struct buf {
    char *data;
    size_t len, cap;
};

static bool buf_add(struct buf *b, const char *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *d = realloc(b->data, cap);
        if (!d) return false;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

static size_t collect(char *p, size_t size, size_t n, void *ud) {
    return buf_add(ud, p, size * n) ? size * n : 0;
}

/* One request; the body of the answer in *out (malloc'd). Returns the HTTP
 * status, or -1 after printing why the request failed. */
static long http(const char *method, const char *path, const char *body, char **out) {
    CURL *e = curl_easy_init();
    if (!e) return -1;
    char url[2048];
    snprintf(url, sizeof url, "%s%s", opt.url, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[600];
    if (opt.token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", opt.token);
        h = curl_slist_append(h, auth);
    }
    struct buf b = {0};
    char err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    else if (strcmp(method, "POST") == 0) curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "a2ctl/" A2CTL_VERSION);
    CURLcode rc = curl_easy_perform(e);
    long status = -1;
    if (rc != CURLE_OK)
        fprintf(stderr, "a2ctl: %s %s: %s\n", method, url, *err ? err : curl_easy_strerror(rc));
    else
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    if (status < 0) {
        free(b.data);
        return -1;
    }
    *out = b.data ? b.data : strdup("");
    return status;
}

/* GET/POST of the admin API: the parsed answer, or NULL after saying why. */
static cJSON *admin(const char *method, const char *path) {
    char *body = NULL;
    long st = http(method, path, NULL, &body);
    if (st < 0) return NULL;
    cJSON *j = cJSON_Parse(body);
    if (st != 200) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        fprintf(stderr, "a2ctl: %s %s: HTTP %ld: %s\n", method, path, st,
                cJSON_IsString(e) ? e->valuestring : body);
        if (st == 401 && !opt.token)
            fprintf(stderr, "a2ctl: give an admin token with --token or A2CTL_TOKEN\n");
        cJSON_Delete(j);
        j = NULL;
    } else if (!j) {
        fprintf(stderr, "a2ctl: %s %s: the answer is not JSON\n", method, path);
    }
    free(body);
    return j;
}

/* A JSON-RPC call at path: its result (detached), or NULL after printing
 * the error. *code gets the JSON-RPC error code (0 = none). */
static cJSON *rpc(const char *path, const char *method, cJSON *params /* taken */, int *code) {
    *code = 0;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "jsonrpc", "2.0");
    cJSON_AddNumberToObject(req, "id", 1);
    cJSON_AddStringToObject(req, "method", method);
    cJSON_AddItemToObject(req, "params", params);
    char *text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    char *body = NULL;
    long st = http("POST", path, text, &body);
    free(text);
    if (st < 0) return NULL;
    cJSON *j = cJSON_Parse(body);
    cJSON *result = cJSON_DetachItemFromObjectCaseSensitive(j, "result");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (!result) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(err, "code");
        *code = cJSON_IsNumber(c) ? c->valueint : -1;
        if (*code != -32001) /* task not found: the caller may look elsewhere */
            fprintf(stderr, "a2ctl: %s: %s\n", method,
                    cJSON_IsString(msg) ? msg->valuestring : (st != 200 ? body : "no result"));
    }
    cJSON_Delete(j);
    free(body);
    return result;
}

static void print_json(const cJSON *j) {
    char *s = cJSON_Print(j);
    if (s) puts(s);
    free(s);
}

/* ---- tasks as people read them ----------------------------------------------- */

static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int exit_for_state(const char *state) {
    if (!state) return EXIT_USAGE;
    if (strcmp(state, "failed") == 0) return EXIT_FAILED;
    if (strcmp(state, "canceled") == 0) return EXIT_CANCELED;
    if (strcmp(state, "rejected") == 0) return EXIT_REJECTED;
    return EXIT_COMPLETED;
}

/* The first text part of a message, or NULL. */
static const char *message_text(const cJSON *msg) {
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(msg, "parts")) {
        const char *t = str(p, "text");
        if (t && *t) return t;
    }
    return NULL;
}

static double message_progress(const cJSON *msg) {
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(msg, "metadata");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(md, "progress");
    return cJSON_IsNumber(p) ? p->valuedouble : -1;
}

static void print_artifact(const cJSON *a) {
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(a, "metadata");
    const char *mime = str(md, "mimeType");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(md, "size");
    printf("artifact  %s", str(a, "name") ? str(a, "name") : str(a, "artifactId"));
    if (mime) printf(" (%s", mime);
    if (cJSON_IsNumber(size)) printf("%s%.0f bytes", mime ? ", " : " (", size->valuedouble);
    if (mime || cJSON_IsNumber(size)) putchar(')');
    putchar('\n');
}

static void print_task(const cJSON *task, const char *agent) {
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(task, "status");
    const char *state = str(status, "state");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(status, "message");
    printf("task      %s\n", str(task, "id") ? str(task, "id") : "?");
    if (agent) printf("agent     %s\n", agent);
    printf("context   %s\n", str(task, "contextId") ? str(task, "contextId") : "?");
    printf("state     %s\n", state ? state : "?");
    printf("updated   %s\n", str(status, "timestamp") ? str(status, "timestamp") : "?");
    double p = message_progress(msg);
    if (p >= 0 && state && strcmp(state, "working") == 0) printf("progress  %.0f%%\n", p * 100);
    const char *text = message_text(msg);
    if (text) printf("message   %s\n", text);
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(task, "artifacts")) print_artifact(a);
}

/* ---- send ------------------------------------------------------------------ */

struct follow {
    struct buf in;      /* SSE bytes not yet parsed */
    const char *final_state;
    char state[32];
    double progress;
    char step[256];
    bool drawn;         /* a bar is on the line */
    int code;           /* JSON-RPC error code in the stream */
};

static int term_width(void) {
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int n = c ? atoi(c) : 0;
    return n >= 20 ? n : 80;
}

/* "[#########-----------]  45%  working  Step 4/10", redrawn in place. */
static void draw_bar(struct follow *f) {
    int width = term_width();
    int bar = width >= 70 ? 30 : 20;
    double p = f->progress < 0 ? 0 : f->progress;
    int full = (int)(p * bar + 0.5);
    char line[512];
    int o = snprintf(line, sizeof line, "\r[");
    for (int i = 0; i < bar; i++) line[o++] = i < full ? '#' : '-';
    o += snprintf(line + o, sizeof line - (size_t)o, "] %3.0f%%  %-9s %s", p * 100, f->state,
                  f->step);
    /* Never wrap: a wrapped line cannot be redrawn with \r. */
    if (o > width) o = width;
    line[o] = '\0';
    fputs(line, stdout);
    fputs("\033[K", stdout);
    fflush(stdout);
    f->drawn = true;
}

static void on_event(struct follow *f, const cJSON *result) {
    const char *kind = str(result, "kind");
    if (!kind) return;
    if (strcmp(kind, "artifact-update") == 0) {
        if (f->drawn && opt.tty) fputs("\r\033[K", stdout);
        print_artifact(cJSON_GetObjectItemCaseSensitive(result, "artifact"));
        if (opt.tty) draw_bar(f);
        return;
    }
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(result, "status");
    const char *state = str(status, "state");
    if (!state) return;
    if (strcmp(kind, "task") == 0 && !opt.tty) printf("task %s\n", str(result, "id"));
    snprintf(f->state, sizeof f->state, "%s", state);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(status, "message");
    double p = message_progress(msg);
    if (p >= 0) f->progress = p;
    if (strcmp(state, "completed") == 0) f->progress = 1;
    const char *text = message_text(msg);
    bool terminal = strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0 ||
                    strcmp(state, "canceled") == 0 || strcmp(state, "rejected") == 0;
    if (text && !terminal) snprintf(f->step, sizeof f->step, "%s", text);
    if (opt.tty) {
        draw_bar(f);
    } else if (!terminal) {
        if (f->progress >= 0) printf("%s %.0f%%", state, f->progress * 100);
        else fputs(state, stdout);
        printf("%s%s\n", text ? " " : "", text ? text : "");
        fflush(stdout);
    }
    if (terminal) {
        if (opt.tty) putchar('\n');
        printf("%s%s%s\n", state, text ? ": " : "", text ? text : "");
        f->final_state = strcmp(state, "completed") == 0  ? "completed"
                         : strcmp(state, "failed") == 0   ? "failed"
                         : strcmp(state, "canceled") == 0 ? "canceled"
                                                          : "rejected";
    }
}

/* Parse what SSE frames are complete: "data: {...}" lines, blank line ends. */
static void sse_parse(struct follow *f) {
    char *start = f->in.data;
    char *end;
    while (start && (end = strstr(start, "\n\n"))) {
        *end = '\0';
        for (char *line = start; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = '\0';
            if (strncmp(line, "data:", 5) == 0) {
                cJSON *j = cJSON_Parse(line + 5);
                if (opt.json && j) {
                    char *s = cJSON_PrintUnformatted(j);
                    if (s) puts(s);
                    free(s);
                    fflush(stdout);
                }
                const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
                if (err) {
                    const cJSON *c = cJSON_GetObjectItemCaseSensitive(err, "code");
                    f->code = cJSON_IsNumber(c) ? c->valueint : -1;
                    fprintf(stderr, "a2ctl: message/stream: %s\n",
                            str(err, "message") ? str(err, "message") : "error");
                }
                const cJSON *result = cJSON_GetObjectItemCaseSensitive(j, "result");
                if (result && !opt.json) on_event(f, result);
                if (result && opt.json) {
                    const char *st = str(cJSON_GetObjectItemCaseSensitive(result, "status"), "state");
                    if (st && (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
                               strcmp(st, "canceled") == 0 || strcmp(st, "rejected") == 0))
                        f->final_state = strcmp(st, "completed") == 0 ? "completed"
                                         : strcmp(st, "failed") == 0  ? "failed"
                                         : strcmp(st, "canceled") == 0 ? "canceled"
                                                                       : "rejected";
                }
                cJSON_Delete(j);
            }
            line = nl ? nl + 1 : NULL;
        }
        start = end + 2;
    }
    size_t used = start ? (size_t)(start - f->in.data) : 0;
    memmove(f->in.data, f->in.data + used, f->in.len - used + 1);
    f->in.len -= used;
}

static size_t sse_collect(char *p, size_t size, size_t n, void *ud) {
    struct follow *f = ud;
    /* Frames may end in CRLF pairs; fold them so one search finds both. */
    for (size_t i = 0; i < size * n; i++)
        if (p[i] != '\r' && !buf_add(&f->in, &p[i], 1)) return 0;
    sse_parse(f);
    return size * n;
}

static int follow_stream(const char *path, cJSON *params /* taken */) {
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "jsonrpc", "2.0");
    cJSON_AddNumberToObject(req, "id", 1);
    cJSON_AddStringToObject(req, "method", "message/stream");
    cJSON_AddItemToObject(req, "params", params);
    char *text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    CURL *e = curl_easy_init();
    char url[2048], auth[600], err[CURL_ERROR_SIZE] = "";
    snprintf(url, sizeof url, "%s%s", opt.url, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: text/event-stream");
    if (opt.token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", opt.token);
        h = curl_slist_append(h, auth);
    }
    struct follow f = {.progress = -1};
    snprintf(f.state, sizeof f.state, "submitted");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sse_collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &f);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "a2ctl/" A2CTL_VERSION);
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    free(text);
    if (f.drawn && opt.tty && !f.final_state) putchar('\n');
    int ret;
    if (f.final_state) {
        ret = exit_for_state(f.final_state);
    } else if (rc != CURLE_OK) {
        fprintf(stderr, "a2ctl: POST %s: %s\n", url, *err ? err : curl_easy_strerror(rc));
        ret = EXIT_USAGE;
    } else {
        if (!f.code)
            fprintf(stderr, "a2ctl: the stream ended before the task did (HTTP %ld%s%s)\n", status,
                    f.in.len ? ": " : "", f.in.len ? f.in.data : "");
        ret = EXIT_USAGE;
    }
    free(f.in.data);
    return ret;
}

static int cmd_send(int argc, char **argv) {
    const char *agent = NULL, *text = NULL, *webhook = NULL;
    bool wait = false, follow = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--webhook") == 0 && i + 1 < argc) webhook = argv[++i];
        else if (strcmp(argv[i], "--wait") == 0) wait = true;
        else if (strcmp(argv[i], "--follow") == 0) follow = true;
        else if (argv[i][0] == '-' && argv[i][1]) return usage_error("send: unknown option %s", argv[i]);
        else if (!agent) agent = argv[i];
        else if (!text) text = argv[i];
        else return usage_error("send: one TEXT only (quote it): %s", argv[i]);
    }
    if (!agent || !text) return usage_error("send needs AGENT and TEXT");
    if (wait && follow) return usage_error("send: --wait or --follow, not both");
    char path[300];
    snprintf(path, sizeof path, "/agents/%s", agent);
    cJSON *params = cJSON_CreateObject();
    cJSON *m = cJSON_AddObjectToObject(params, "message");
    cJSON_AddStringToObject(m, "kind", "message");
    cJSON_AddStringToObject(m, "role", "user");
    char mid[64];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(mid, sizeof mid, "a2ctl-%ld-%ld-%d", (long)ts.tv_sec, ts.tv_nsec, (int)getpid());
    cJSON_AddStringToObject(m, "messageId", mid);
    cJSON *part = cJSON_CreateObject();
    cJSON_AddStringToObject(part, "kind", "text");
    cJSON_AddStringToObject(part, "text", text);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(m, "parts"), part);
    cJSON *conf = cJSON_AddObjectToObject(params, "configuration");
    cJSON_AddBoolToObject(conf, "blocking", wait);
    if (webhook) {
        cJSON *pn = cJSON_AddObjectToObject(conf, "pushNotificationConfig");
        cJSON_AddStringToObject(pn, "url", webhook);
    }
    if (follow) return follow_stream(path, params);
    int code;
    cJSON *task = rpc(path, "message/send", params, &code);
    if (!task) return EXIT_USAGE;
    const char *state = str(cJSON_GetObjectItemCaseSensitive(task, "status"), "state");
    if (opt.json) print_json(task);
    else if (wait) print_task(task, agent);
    else printf("%s %s\n", str(task, "id") ? str(task, "id") : "?", state ? state : "?");
    int ret = wait ? exit_for_state(state) : (state && strcmp(state, "rejected") == 0 ? EXIT_REJECTED : 0);
    cJSON_Delete(task);
    return ret;
}

/* ---- get, cancel: A2A, at every agent until one has the task ---------------- */

/* The agents a2ad serves (from /healthz). */
static cJSON *agent_names(void) {
    char *body = NULL;
    long st = http("GET", "/healthz", NULL, &body);
    if (st < 0) return NULL;
    cJSON *j = cJSON_Parse(body);
    free(body);
    cJSON *a = cJSON_DetachItemFromObjectCaseSensitive(j, "agents");
    cJSON_Delete(j);
    if (!cJSON_IsArray(a)) {
        fprintf(stderr, "a2ctl: GET /healthz: no agent list (HTTP %ld)\n", st);
        cJSON_Delete(a);
        return NULL;
    }
    return a;
}

/* tasks/get or tasks/cancel of id at the agent that has it. */
static cJSON *task_call(const char *method, const char *id, const char **agent_out, int *err) {
    cJSON *names = agent_names();
    *err = EXIT_USAGE;
    if (!names) return NULL;
    const cJSON *n;
    cJSON *result = NULL;
    cJSON_ArrayForEach(n, names) {
        if (!cJSON_IsString(n)) continue;
        char path[300];
        snprintf(path, sizeof path, "/agents/%s", n->valuestring);
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "id", id);
        int code;
        result = rpc(path, method, params, &code);
        if (result) {
            static char agent[128];
            snprintf(agent, sizeof agent, "%s", n->valuestring);
            *agent_out = agent;
            break;
        }
        if (code != -32001) break; /* an answer other than "not here" */
        if (!n->next) fprintf(stderr, "a2ctl: no agent has task %s (unknown, or expired)\n", id);
    }
    cJSON_Delete(names);
    return result;
}

static int cmd_get(int argc, char **argv) {
    if (argc != 1) return usage_error("get needs one task ID");
    const char *agent = NULL;
    int err;
    cJSON *task = task_call("tasks/get", argv[0], &agent, &err);
    if (!task) return err;
    if (opt.json) print_json(task);
    else print_task(task, agent);
    int ret = exit_for_state(str(cJSON_GetObjectItemCaseSensitive(task, "status"), "state"));
    cJSON_Delete(task);
    return ret;
}

static int cmd_cancel(int argc, char **argv) {
    if (argc != 1) return usage_error("cancel needs one task ID");
    const char *agent = NULL;
    int err;
    cJSON *task = task_call("tasks/cancel", argv[0], &agent, &err);
    if (!task) return err;
    const char *state = str(cJSON_GetObjectItemCaseSensitive(task, "status"), "state");
    if (opt.json) print_json(task);
    else printf("%s %s\n", argv[0], state ? state : "?");
    int ret = exit_for_state(state);
    cJSON_Delete(task);
    return ret;
}

/* ---- list, webhooks: the admin API ----------------------------------------- */

static void url_arg(char *out, size_t n, const char *key, const char *value, bool *first) {
    if (!value) return;
    char *esc = curl_easy_escape(NULL, value, 0);
    size_t o = strlen(out);
    snprintf(out + o, n - o, "%c%s=%s", *first ? '?' : '&', key, esc ? esc : "");
    *first = false;
    curl_free(esc);
}

static int cmd_list(int argc, char **argv) {
    const char *agent = NULL, *state = NULL, *limit = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--agent") == 0 && i + 1 < argc) agent = argv[++i];
        else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc) state = argv[++i];
        else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) limit = argv[++i];
        else return usage_error("list: unknown argument %s", argv[i]);
    }
    char path[1024] = "/admin/v1/tasks";
    bool first = true;
    url_arg(path, sizeof path, "agent", agent, &first);
    url_arg(path, sizeof path, "state", state, &first);
    url_arg(path, sizeof path, "limit", limit, &first);
    cJSON *j = admin("GET", path);
    if (!j) return EXIT_USAGE;
    if (opt.json) {
        print_json(j);
        cJSON_Delete(j);
        return 0;
    }
    /* several nodes on one database: which one holds each task */
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(j, "nodes");
    bool multi = cJSON_IsNumber(nodes) && nodes->valuedouble > 1;
    printf("%-36s  %-10s  ", "TASK", "AGENT");
    if (multi) printf("%-10s  ", "NODE");
    printf("%-9s  %4s  %-24s  %s\n", "STATE", "DONE", "UPDATED", "MESSAGE");
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(j, "tasks")) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(t, "progress");
        char pr[8] = "-";
        if (cJSON_IsNumber(p)) snprintf(pr, sizeof pr, "%.0f%%", p->valuedouble * 100);
        printf("%-36s  %-10s  ", str(t, "id"), str(t, "agent") ? str(t, "agent") : "-");
        if (multi) printf("%-10s  ", str(t, "node") ? str(t, "node") : "-");
        printf("%-9s  %4s  %-24s  %s\n", str(t, "state"), pr, str(t, "timestamp"),
               str(t, "message") ? str(t, "message") : "");
    }
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(j, "total");
    if (str(j, "nextCursor"))
        fprintf(stderr, "(%d of %d shown; raise --limit for more)\n",
                cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "tasks")),
                cJSON_IsNumber(total) ? total->valueint : 0);
    cJSON_Delete(j);
    return 0;
}

static int cmd_webhooks(int argc, char **argv) {
    if (argc < 1 || argc > 2) return usage_error("webhooks needs a task ID and list, purge or replay");
    const char *what = argc == 2 ? argv[1] : "list";
    char *id = curl_easy_escape(NULL, argv[0], 0);
    char path[600];
    bool list = strcmp(what, "list") == 0;
    if (!list && strcmp(what, "purge") != 0 && strcmp(what, "replay") != 0) {
        curl_free(id);
        return usage_error("webhooks: %s is not list, purge or replay", what);
    }
    snprintf(path, sizeof path, "/admin/v1/tasks/%s/webhooks%s%s", id ? id : "", list ? "" : "/",
             list ? "" : what);
    curl_free(id);
    cJSON *j = admin(list ? "GET" : "POST", path);
    if (!j) return EXIT_USAGE;
    if (opt.json) {
        print_json(j);
        cJSON_Delete(j);
        return 0;
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, list ? "count" : strcmp(what, "purge") == 0 ? "purged" : "replayed");
    int count = cJSON_IsNumber(n) ? n->valueint : 0;
    if (!list) printf("%s %d webhook event%s of task %s\n", strcmp(what, "purge") == 0 ? "purged" : "replayed",
                      count, count == 1 ? "" : "s", argv[0]);
    else if (count == 0) printf("no pending webhook events for task %s\n", argv[0]);
    if (list && count) {
        printf("%-44s  %-22s  %8s  %-24s  %s\n", "EVENT", "STATE", "ATTEMPTS", "NEXT ATTEMPT",
               "TARGET");
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "events")) {
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "attempts");
            printf("%-44s  %-22s  %8d  %-24s  %s\n", str(e, "eventId"), str(e, "state"),
                   cJSON_IsNumber(a) ? a->valueint : 0,
                   str(e, "nextAttempt") ? str(e, "nextAttempt") : "-", str(e, "target"));
            if (str(e, "lastError")) printf("  last error: %s\n", str(e, "lastError"));
        }
    }
    cJSON_Delete(j);
    return 0;
}

/* ---- card ------------------------------------------------------------------ */

static int cmd_card(int argc, char **argv) {
    if (argc > 1) return usage_error("card takes at most one AGENT");
    char path[300];
    if (argc == 1) snprintf(path, sizeof path, "/agents/%s/.well-known/agent-card.json", argv[0]);
    else snprintf(path, sizeof path, "/.well-known/agent-card.json");
    char *body = NULL;
    long st = http("GET", path, NULL, &body);
    if (st < 0) return EXIT_USAGE;
    cJSON *card = cJSON_Parse(body);
    if (st != 200 || !card) {
        fprintf(stderr, "a2ctl: GET %s: HTTP %ld: %s\n", path, st,
                str(card, "error") ? str(card, "error") : body);
        cJSON_Delete(card);
        free(body);
        return EXIT_USAGE;
    }
    free(body);
    if (opt.json) {
        print_json(card);
        cJSON_Delete(card);
        return 0;
    }
    printf("name         %s\n", str(card, "name") ? str(card, "name") : "?");
    printf("description  %s\n", str(card, "description") ? str(card, "description") : "");
    printf("version      %s\n", str(card, "version") ? str(card, "version") : "?");
    if (str(card, "url")) printf("url          %s\n", str(card, "url"));
    printf("protocol     %s\n", str(card, "protocolVersion") ? str(card, "protocolVersion") : "?");
    const cJSON *caps = cJSON_GetObjectItemCaseSensitive(card, "capabilities");
    printf("streaming    %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(caps, "streaming")) ? "yes" : "no");
    printf("push         %s\n",
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(caps, "pushNotifications")) ? "yes" : "no");
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(card, "skills"))
        printf("skill        %s: %s\n", str(s, "id") ? str(s, "id") : "?",
               str(s, "description") ? str(s, "description") : "");
    cJSON_Delete(card);
    return 0;
}

int main(int argc, char **argv) {
    opt.url = getenv("A2CTL_URL");
    opt.token = getenv("A2CTL_TOKEN");
    if (opt.token && !*opt.token) opt.token = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) opt.url = argv[++i];
        else if (strcmp(argv[i], "--token") == 0 && i + 1 < argc) opt.token = argv[++i];
        else if (strcmp(argv[i], "--json") == 0) opt.json = true;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("a2ctl %s\n", A2CTL_VERSION);
            return 0;
        } else return usage_error("unknown option %s", argv[i]);
    }
    if (i >= argc) return usage_error("no command given");
    static char base[1024];
    snprintf(base, sizeof base, "%s", opt.url && *opt.url ? opt.url : "http://127.0.0.1:8080");
    size_t n = strlen(base);
    while (n && base[n - 1] == '/') base[--n] = '\0';
    opt.url = base;
    opt.tty = isatty(STDOUT_FILENO) && !opt.json;
    const char *cmd = argv[i++];
    int rest = argc - i;
    char **args = argv + i;
    /* Options may also follow the command ("a2ctl list --json"). */
    int kept = 0;
    for (int k = 0; k < rest; k++) {
        if (strcmp(args[k], "--json") == 0) opt.json = true;
        else if (strcmp(args[k], "--url") == 0 && k + 1 < rest) {
            snprintf(base, sizeof base, "%s", args[++k]);
            n = strlen(base);
            while (n && base[n - 1] == '/') base[--n] = '\0';
        } else if (strcmp(args[k], "--token") == 0 && k + 1 < rest) opt.token = args[++k];
        else args[kept++] = args[k];
    }
    rest = kept;
    if (opt.json) opt.tty = false;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return EXIT_USAGE;
    int rc;
    if (strcmp(cmd, "send") == 0) rc = cmd_send(rest, args);
    else if (strcmp(cmd, "get") == 0) rc = cmd_get(rest, args);
    else if (strcmp(cmd, "list") == 0) rc = cmd_list(rest, args);
    else if (strcmp(cmd, "cancel") == 0) rc = cmd_cancel(rest, args);
    else if (strcmp(cmd, "card") == 0) rc = cmd_card(rest, args);
    else if (strcmp(cmd, "webhooks") == 0) rc = cmd_webhooks(rest, args);
    else rc = usage_error("unknown command %s", cmd);
    curl_global_cleanup();
    return rc;
}
