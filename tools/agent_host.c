/* a2ad-agent-host - runs ONE job of an a2ad plugin (.so) in its own
 * process, for [agent.NAME] isolation = process.
 *
 *   a2ad-agent-host /path/to/plugin.so   (stdin/stdout: docs/agent-protocol.md)
 *
 * It reads the `job` line, dlopens the plugin, calls init, then run_job (or
 * run_background) with a host table whose every call becomes a protocol
 * line; `cancel` and `message` lines arrive on a reader thread. The plugin
 * cannot tell it from the daemon: same ABI, same table, calls from its own
 * threads work. When the job returns, the answer (`result` or `failed`) is
 * the last line and the process ends with _exit, so a straggling plugin
 * thread cannot keep it alive. A crash simply ends the process: the daemon
 * fails the job with the signal's name.
 */
#include <cJSON.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "a2ad/agent.h"

/* In sanitizer builds the plugin's crash must stay a crash: the daemon
 * reports the signal; a sanitizer's handler would turn it into exit(1). */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
    return "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:handle_abort=0";
}

const char *__tsan_default_options(void);
const char *__tsan_default_options(void) {
    return "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:handle_abort=0";
}

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool cancelled, ended;
static pthread_mutex_t answer_lock = PTHREAD_MUTEX_INITIALIZER;
static char *result_text, *failure_text;
static const struct a2ad_agent *desc;
static void *state;
static uint64_t job_handle = 1;

/* One protocol line, whole, in one go. */
static void emit(cJSON *m) {
    char *line = m ? cJSON_PrintUnformatted(m) : NULL;
    cJSON_Delete(m);
    if (!line) return;
    size_t n = strlen(line);
    line[n] = '\n'; /* overwrites the NUL; length is known */
    pthread_mutex_lock(&out_lock);
    for (size_t off = 0; off < n + 1;) {
        ssize_t w = write(1, line + off, n + 1 - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    pthread_mutex_unlock(&out_lock);
    free(line);
}

static cJSON *msg(const char *type) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "type", type);
    return m;
}

static bool job_ctx(a2ad_ctx ctx) { return ctx.handle == job_handle && !atomic_load(&ended); }

static a2ad_status h_progress(a2ad_ctx ctx, const char *message, double progress,
                              a2ad_importance importance) {
    static const char *const names[] = {"error", "notice", "info", "debug"};
    if (!job_ctx(ctx)) return A2AD_ERR_ENDED;
    bool has_text = message && *message;
    if ((unsigned)importance > A2AD_DEBUG || (!has_text && isnan(progress)))
        return A2AD_ERR_INVALID;
    if (atomic_load(&cancelled)) return A2AD_ERR_ENDED;
    cJSON *m = msg("progress");
    if (has_text) cJSON_AddStringToObject(m, "message", message);
    if (!isnan(progress))
        cJSON_AddNumberToObject(m, "progress", progress < 0 ? 0 : progress > 1 ? 1 : progress);
    cJSON_AddStringToObject(m, "importance", names[importance]);
    emit(m);
    return A2AD_OK;
}

static bool utf8_text(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n || (c < 0x20 && c != '\n' && c != '\r' && c != '\t')) return false;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return false;
        i += k;
    }
    return true;
}

static char *b64(const unsigned char *d, size_t n) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(4 * ((n + 2) / 3) + 1), *p = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0) |
                     (i + 2 < n ? d[i + 2] : 0);
        *p++ = t[v >> 18 & 63];
        *p++ = t[v >> 12 & 63];
        *p++ = i + 1 < n ? t[v >> 6 & 63] : '=';
        *p++ = i + 2 < n ? t[v & 63] : '=';
    }
    *p = '\0';
    return o;
}

/* chunk < 0: a whole artifact; else bit 0 = append, bit 1 = last chunk. The
 * daemon checks the chunk's order and size (a refusal fails the job). */
static a2ad_status send_artifact(a2ad_ctx ctx, const char *name, const char *mime_type,
                                 const void *data, size_t len, int chunk) {
    if (!job_ctx(ctx)) return A2AD_ERR_ENDED;
    if (!name || !*name || (!data && len)) return A2AD_ERR_INVALID;
    if (atomic_load(&cancelled)) return A2AD_ERR_ENDED;
    cJSON *m = msg("artifact");
    cJSON_AddStringToObject(m, "name", name);
    if (chunk >= 0) {
        cJSON_AddBoolToObject(m, "append", chunk & 1);
        cJSON_AddBoolToObject(m, "lastChunk", (chunk & 2) != 0);
    }
    cJSON_AddStringToObject(m, "mimeType",
                            mime_type && *mime_type ? mime_type : "application/octet-stream");
    /* Bytes travel as base64 unless they are plain UTF-8 text. */
    if (utf8_text(data, len) && !memchr(data, 0, len)) {
        char *text = malloc(len + 1);
        if (!text) {
            cJSON_Delete(m);
            return A2AD_ERR_NOMEM;
        }
        if (len) memcpy(text, data, len);
        text[len] = '\0';
        cJSON_AddStringToObject(m, "text", text);
        free(text);
    } else {
        char *enc = b64(data, len);
        if (!enc) {
            cJSON_Delete(m);
            return A2AD_ERR_NOMEM;
        }
        cJSON_AddStringToObject(m, "base64", enc);
        free(enc);
    }
    emit(m);
    return A2AD_OK;
}

static a2ad_status h_artifact(a2ad_ctx ctx, const char *name, const char *mime_type,
                              const void *data, size_t len) {
    return send_artifact(ctx, name, mime_type, data, len, -1);
}

static a2ad_status h_artifact_chunk(a2ad_ctx ctx, const char *name, const char *mime_type,
                                    const void *data, size_t len, int append, int last_chunk) {
    return send_artifact(ctx, name, mime_type, data, len, (append ? 1 : 0) | (last_chunk ? 2 : 0));
}

static int h_cancelled(a2ad_ctx ctx) {
    return !job_ctx(ctx) || atomic_load(&cancelled);
}

static void h_vlog(a2ad_ctx ctx, a2ad_log_level level, const char *fmt, va_list ap) {
    (void)ctx;
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
    cJSON *m = msg("log");
    cJSON_AddStringToObject(m, "level", level <= A2AD_LOG_ERROR     ? "error"
                                        : level == A2AD_LOG_WARNING ? "warning"
                                        : level >= A2AD_LOG_DEBUG   ? "debug"
                                                                    : "info");
    cJSON_AddStringToObject(m, "message", buf);
    emit(m);
}

static a2ad_status set_text(a2ad_ctx ctx, const char *text, char **field) {
    if (!job_ctx(ctx)) return A2AD_ERR_ENDED;
    char *copy = text ? strdup(text) : NULL;
    if (text && !copy) return A2AD_ERR_NOMEM;
    pthread_mutex_lock(&answer_lock);
    free(*field);
    *field = copy;
    pthread_mutex_unlock(&answer_lock);
    return A2AD_OK;
}

static a2ad_status h_result(a2ad_ctx ctx, const char *text) {
    return set_text(ctx, text, &result_text);
}

static a2ad_status h_fail(a2ad_ctx ctx, const char *reason) {
    a2ad_status s = set_text(ctx, reason, &failure_text);
    return s == A2AD_OK ? A2AD_ERR_FAILED : s;
}

static const struct a2ad_host host_table = {
    .abi_major = A2AD_ABI_MAJOR,
    .struct_size = sizeof(struct a2ad_host),
    .update_progress = h_progress,
    .add_artifact = h_artifact,
    .add_artifact_chunk = h_artifact_chunk,
    .cancelled = h_cancelled,
    .vlog = h_vlog,
    .set_result = h_result,
    .set_failure = h_fail,
};

static void fail_and_exit(const char *reason) {
    cJSON *m = msg("failed");
    cJSON_AddStringToObject(m, "reason", reason);
    emit(m);
    _exit(0);
}

/* One line from stdin (malloc'd, no newline), or NULL at end of input. */
static char *read_line(void) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) return NULL;
        if (len + 1 == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) {
                free(buf);
                return NULL;
            }
            buf = grown;
        }
        char c;
        ssize_t n = read(0, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (len) break;
            free(buf);
            return NULL;
        }
        if (c == '\n') break;
        buf[len++] = c;
    }
    buf[len] = '\0';
    return buf;
}

/* cancel and message lines; the end of input means cancel (the daemon went). */
static void *reader_main(void *arg) {
    (void)arg;
    char *line;
    while ((line = read_line()) != NULL) {
        cJSON *m = cJSON_Parse(line);
        free(line);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "cancel") == 0) {
            atomic_store(&cancelled, true);
        } else if (cJSON_IsString(type) && strcmp(type->valuestring, "message") == 0) {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(m, "text");
            size_t size = desc->struct_size;
            bool has = size >= offsetof(struct a2ad_agent, on_message) + sizeof desc->on_message &&
                       desc->on_message;
            if (has && !atomic_load(&ended))
                desc->on_message(state, (a2ad_ctx){&host_table, job_handle},
                                 cJSON_IsString(text) ? text->valuestring : "");
        }
        cJSON_Delete(m);
    }
    atomic_store(&cancelled, true);
    return NULL;
}

static const char *str_of(const cJSON *o, const char *key, const char *dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc != 2) {
        fprintf(stderr, "usage: a2ad-agent-host PLUGIN.so (stdin/stdout: the a2ad agent "
                        "protocol; started by a2ad for isolation = process)\n");
        return 2;
    }
    char *line = read_line();
    cJSON *job = line ? cJSON_Parse(line) : NULL;
    free(line);
    if (!job || strcmp(str_of(job, "type", ""), "job") != 0)
        fail_and_exit("agent protocol error: the first line was not a job");

    void *dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        char why[600];
        snprintf(why, sizeof why, "cannot load %s: %s", argv[1], dlerror());
        fail_and_exit(why);
    }
    void *sym = dlsym(dl, A2AD_AGENT_ENTRY_SYMBOL);
    a2ad_agent_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);
    desc = sym ? entry() : NULL;
    /* The daemon checked the plugin before; a changed file is refused here. */
    if (!desc || desc->abi_major != A2AD_ABI_MAJOR ||
        desc->struct_size < offsetof(struct a2ad_agent, run_background) + sizeof desc->run_background ||
        !desc->run_background)
        fail_and_exit("the plugin file changed since a2ad loaded it; restart a2ad");

    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(job, "options");
    size_t n_opts = (size_t)cJSON_GetArraySize(opts);
    struct a2ad_option *o = n_opts ? calloc(n_opts, sizeof *o) : NULL;
    size_t i = 0;
    for (const cJSON *c = opts ? opts->child : NULL; c && o && i < n_opts; c = c->next)
        if (cJSON_IsString(c)) o[i++] = (struct a2ad_option){c->string, c->valuestring};
    if (desc->init) {
        a2ad_ctx log_ctx = {&host_table, 0};
        a2ad_status s = desc->init(&host_table, log_ctx, o, i, &state);
        if (s != A2AD_OK) {
            char why[160];
            snprintf(why, sizeof why, "init of the agent failed (%s)", a2ad_status_name(s));
            fail_and_exit(why);
        }
    }

    pthread_t reader;
    if (pthread_create(&reader, NULL, reader_main, NULL) != 0)
        fail_and_exit("cannot start the host's reader thread");
    pthread_detach(reader);

    const cJSON *attempt = cJSON_GetObjectItemCaseSensitive(job, "attempt");
    char *message = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(job, "message"));
    char *metadata = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(job, "metadata"));
    struct a2ad_job j = {
        .struct_size = sizeof j,
        .attempt = cJSON_IsNumber(attempt) ? (uint32_t)attempt->valuedouble : 1,
        .task_id = str_of(job, "taskId", ""),
        .context_id = str_of(job, "contextId", ""),
        .agent = str_of(job, "agent", ""),
        .query = str_of(job, "query", ""),
        .message_json = message ? message : "{}",
        .metadata_json = metadata ? metadata : "{}",
    };
    a2ad_ctx ctx = {&host_table, job_handle};
    bool has_run_job = desc->struct_size >= offsetof(struct a2ad_agent, run_job) + sizeof desc->run_job &&
                       desc->run_job;
    a2ad_status st = has_run_job ? desc->run_job(state, &j, ctx)
                                 : desc->run_background(state, j.query, ctx);
    atomic_store(&ended, true);

    pthread_mutex_lock(&answer_lock);
    cJSON *m;
    if (st == A2AD_OK) {
        m = msg("result");
        if (result_text) cJSON_AddStringToObject(m, "text", result_text);
    } else {
        char generic[96];
        snprintf(generic, sizeof generic, "agent returned %s", a2ad_status_name(st));
        m = msg("failed");
        cJSON_AddStringToObject(m, "reason", failure_text ? failure_text : generic);
    }
    pthread_mutex_unlock(&answer_lock);
    emit(m);
    if (desc->destroy) desc->destroy(state);
    _exit(0);
}
