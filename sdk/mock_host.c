/* mock_host - a recording fake of the host table, for plugin unit tests
 * (liba2ad-mock.a of the plugin SDK). See include/a2ad/mock.h. */
#include "a2ad/mock.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOCK_JOB_HANDLE 1u

struct mock_host {
    /* First, so the table pointer a plugin hands back leads to the mock. */
    struct a2ad_host table;
    pthread_mutex_t lock;

    bool cancelled, ended;
    size_t cancel_after; /* 0 = off */
    unsigned cancel_checks;

    struct mock_progress *progress;
    size_t n_progress, cap_progress;
    struct mock_artifact *artifacts;
    size_t n_artifacts, cap_artifacts;
    unsigned char *chunk_open; /* per artifact: streamed in chunks, last one not yet sent */
    size_t cap_chunk_open;
    struct mock_log *logs;
    size_t n_logs, cap_logs;

    char *result, *fail_reason;
    unsigned result_calls, fail_calls;
};

static struct mock_host *from_ctx(a2ad_ctx ctx) {
    return (struct mock_host *)(void *)((char *)(uintptr_t)ctx.host -
                                        offsetof(struct mock_host, table));
}

/* Grow an array by one element; the caller holds the lock. Tests treat an
 * allocation failure as fatal: a half-recorded call would mislead them. */
static void *grow(void *array, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return array;
    *cap = *cap ? *cap * 2 : 16;
    void *p = realloc(array, *cap * elem);
    if (!p) abort();
    return p;
}

static char *copy_or_null(const char *s) {
    if (!s) return NULL;
    char *c = strdup(s);
    if (!c) abort();
    return c;
}

static a2ad_status mock_update_progress(a2ad_ctx ctx, const char *message, double progress,
                                        a2ad_importance importance) {
    struct mock_host *m = from_ctx(ctx);
    bool no_text = !message || !message[0];
    if ((no_text && isnan(progress)) || (int)importance < A2AD_ERROR ||
        (int)importance > A2AD_DEBUG)
        return A2AD_ERR_INVALID;
    /* The host clamps; recording the clamped figure shows what a client gets. */
    if (!isnan(progress)) progress = progress < 0 ? 0 : progress > 1 ? 1 : progress;

    pthread_mutex_lock(&m->lock);
    if (m->ended) {
        pthread_mutex_unlock(&m->lock);
        return A2AD_ERR_ENDED;
    }
    m->progress = grow(m->progress, &m->cap_progress, m->n_progress, sizeof *m->progress);
    m->progress[m->n_progress++] = (struct mock_progress){
        .message = copy_or_null(message),
        .progress = progress,
        .importance = importance,
        .thread = pthread_self(),
    };
    pthread_mutex_unlock(&m->lock);
    return A2AD_OK;
}

/* Record an artifact (bytes taken); open: streamed in chunks, more to come.
 * The caller holds the lock. */
static void artifact_push_locked(struct mock_host *m, const char *name, const char *mime_type,
                                 unsigned char *bytes, size_t len, bool open) {
    size_t cap = m->cap_artifacts;
    m->artifacts = grow(m->artifacts, &m->cap_artifacts, m->n_artifacts, sizeof *m->artifacts);
    if (m->cap_artifacts != cap || !m->chunk_open) {
        unsigned char *flags = realloc(m->chunk_open, m->cap_artifacts);
        if (!flags) abort();
        memset(flags + m->cap_chunk_open, 0, m->cap_artifacts - m->cap_chunk_open);
        m->chunk_open = flags;
        m->cap_chunk_open = m->cap_artifacts;
    }
    m->chunk_open[m->n_artifacts] = open;
    m->artifacts[m->n_artifacts++] = (struct mock_artifact){
        .name = copy_or_null(name),
        .mime_type = copy_or_null(mime_type),
        .data = bytes,
        .len = len,
    };
}

static a2ad_status mock_add_artifact(a2ad_ctx ctx, const char *name, const char *mime_type,
                                     const void *data, size_t len) {
    struct mock_host *m = from_ctx(ctx);
    if (!name || !name[0] || (!data && len > 0)) return A2AD_ERR_INVALID;
    unsigned char *bytes = malloc(len ? len : 1);
    if (!bytes) abort();
    if (len) memcpy(bytes, data, len);

    pthread_mutex_lock(&m->lock);
    if (m->ended) {
        pthread_mutex_unlock(&m->lock);
        free(bytes);
        return A2AD_ERR_ENDED;
    }
    artifact_push_locked(m, name, mime_type, bytes, len, false);
    pthread_mutex_unlock(&m->lock);
    return A2AD_OK;
}

/* The host's rules: append = 0 starts an artifact (none of that name may be
 * open), append = 1 adds to the open one, last_chunk closes it; the record
 * holds the bytes so far. */
static a2ad_status mock_add_artifact_chunk(a2ad_ctx ctx, const char *name, const char *mime_type,
                                           const void *data, size_t len, int append,
                                           int last_chunk) {
    struct mock_host *m = from_ctx(ctx);
    if (!name || !name[0] || (!data && len > 0)) return A2AD_ERR_INVALID;
    pthread_mutex_lock(&m->lock);
    a2ad_status st = A2AD_OK;
    size_t open = m->n_artifacts;
    for (size_t i = 0; i < m->n_artifacts; i++)
        if (m->chunk_open[i] && strcmp(m->artifacts[i].name, name) == 0) open = i;
    if (m->ended) {
        st = A2AD_ERR_ENDED;
    } else if (append ? open == m->n_artifacts : open != m->n_artifacts) {
        st = A2AD_ERR_STATE;
    } else if (append) {
        struct mock_artifact *a = &m->artifacts[open];
        unsigned char *grown = realloc(a->data, a->len + len + 1);
        if (!grown) abort();
        if (len) memcpy(grown + a->len, data, len);
        a->data = grown;
        a->len += len;
        m->chunk_open[open] = !last_chunk;
    } else {
        unsigned char *bytes = malloc(len ? len : 1);
        if (!bytes) abort();
        if (len) memcpy(bytes, data, len);
        artifact_push_locked(m, name, mime_type, bytes, len, !last_chunk);
    }
    pthread_mutex_unlock(&m->lock);
    return st;
}

static int mock_cancelled(a2ad_ctx ctx) {
    struct mock_host *m = from_ctx(ctx);
    pthread_mutex_lock(&m->lock);
    m->cancel_checks++;
    int c = m->cancelled || m->ended || (m->cancel_after && m->n_progress >= m->cancel_after);
    pthread_mutex_unlock(&m->lock);
    return c;
}

static void mock_vlog(a2ad_ctx ctx, a2ad_log_level level, const char *fmt, va_list ap)
    A2AD_PRINTF(3, 0);
static void mock_vlog(a2ad_ctx ctx, a2ad_log_level level, const char *fmt, va_list ap) {
    struct mock_host *m = from_ctx(ctx);
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0) abort();
    pthread_mutex_lock(&m->lock);
    m->logs = grow(m->logs, &m->cap_logs, m->n_logs, sizeof *m->logs);
    m->logs[m->n_logs++] = (struct mock_log){.level = level, .handle = ctx.handle, .text = text};
    pthread_mutex_unlock(&m->lock);
}

static a2ad_status mock_set_result(a2ad_ctx ctx, const char *text) {
    struct mock_host *m = from_ctx(ctx);
    char *copy = copy_or_null(text);
    pthread_mutex_lock(&m->lock);
    if (m->ended) {
        pthread_mutex_unlock(&m->lock);
        free(copy);
        return A2AD_ERR_ENDED;
    }
    free(m->result);
    m->result = copy;
    m->result_calls++;
    pthread_mutex_unlock(&m->lock);
    return A2AD_OK;
}

static a2ad_status mock_set_failure(a2ad_ctx ctx, const char *reason) {
    struct mock_host *m = from_ctx(ctx);
    char *copy = copy_or_null(reason);
    pthread_mutex_lock(&m->lock);
    if (m->ended) {
        pthread_mutex_unlock(&m->lock);
        free(copy);
        return A2AD_ERR_ENDED;
    }
    free(m->fail_reason);
    m->fail_reason = copy;
    m->fail_calls++;
    pthread_mutex_unlock(&m->lock);
    /* Like the real host: `return a2ad_fail(...)` fails the job. */
    return A2AD_ERR_FAILED;
}

struct mock_host *mock_host_new(void) {
    struct mock_host *m = calloc(1, sizeof *m);
    if (!m) abort();
    m->table = (struct a2ad_host){
        .abi_major = A2AD_ABI_MAJOR,
        .struct_size = sizeof(struct a2ad_host),
        .update_progress = mock_update_progress,
        .add_artifact = mock_add_artifact,
        .cancelled = mock_cancelled,
        .vlog = mock_vlog,
        .set_result = mock_set_result,
        .set_failure = mock_set_failure,
        .add_artifact_chunk = mock_add_artifact_chunk,
    };
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void mock_host_free(struct mock_host *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_progress; i++) free(m->progress[i].message);
    for (size_t i = 0; i < m->n_artifacts; i++) {
        free(m->artifacts[i].name);
        free(m->artifacts[i].mime_type);
        free(m->artifacts[i].data);
    }
    for (size_t i = 0; i < m->n_logs; i++) free(m->logs[i].text);
    free(m->progress);
    free(m->artifacts);
    free(m->chunk_open);
    free(m->logs);
    free(m->result);
    free(m->fail_reason);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

const struct a2ad_host *mock_host_table(struct mock_host *m) { return &m->table; }

a2ad_ctx mock_host_ctx(struct mock_host *m) {
    return (a2ad_ctx){.host = &m->table, .handle = MOCK_JOB_HANDLE};
}

void mock_host_set_cancelled(struct mock_host *m, bool on) {
    pthread_mutex_lock(&m->lock);
    m->cancelled = on;
    pthread_mutex_unlock(&m->lock);
}

void mock_host_cancel_after(struct mock_host *m, size_t n) {
    pthread_mutex_lock(&m->lock);
    m->cancel_after = n;
    pthread_mutex_unlock(&m->lock);
}

void mock_host_end(struct mock_host *m) {
    pthread_mutex_lock(&m->lock);
    m->ended = true;
    pthread_mutex_unlock(&m->lock);
}

size_t mock_host_progress_count(struct mock_host *m) {
    pthread_mutex_lock(&m->lock);
    size_t n = m->n_progress;
    pthread_mutex_unlock(&m->lock);
    return n;
}

struct mock_progress mock_host_progress_at(struct mock_host *m, size_t i) {
    struct mock_progress p = {0};
    pthread_mutex_lock(&m->lock);
    if (i < m->n_progress) p = m->progress[i];
    pthread_mutex_unlock(&m->lock);
    return p;
}

size_t mock_host_progress_threads(struct mock_host *m) {
    pthread_mutex_lock(&m->lock);
    size_t distinct = 0;
    for (size_t i = 0; i < m->n_progress; i++) {
        size_t j = 0;
        while (j < i && !pthread_equal(m->progress[j].thread, m->progress[i].thread)) j++;
        if (j == i) distinct++;
    }
    pthread_mutex_unlock(&m->lock);
    return distinct;
}

size_t mock_host_artifact_count(struct mock_host *m) {
    pthread_mutex_lock(&m->lock);
    size_t n = m->n_artifacts;
    pthread_mutex_unlock(&m->lock);
    return n;
}

struct mock_artifact mock_host_artifact_at(struct mock_host *m, size_t i) {
    struct mock_artifact a = {0};
    pthread_mutex_lock(&m->lock);
    if (i < m->n_artifacts) a = m->artifacts[i];
    pthread_mutex_unlock(&m->lock);
    return a;
}

size_t mock_host_log_count(struct mock_host *m) {
    pthread_mutex_lock(&m->lock);
    size_t n = m->n_logs;
    pthread_mutex_unlock(&m->lock);
    return n;
}

struct mock_log mock_host_log_at(struct mock_host *m, size_t i) {
    struct mock_log l = {0};
    pthread_mutex_lock(&m->lock);
    if (i < m->n_logs) l = m->logs[i];
    pthread_mutex_unlock(&m->lock);
    return l;
}

bool mock_host_logged(struct mock_host *m, const char *needle) {
    pthread_mutex_lock(&m->lock);
    bool found = false;
    for (size_t i = 0; i < m->n_logs && !found; i++) found = strstr(m->logs[i].text, needle);
    pthread_mutex_unlock(&m->lock);
    return found;
}

const char *mock_host_result(struct mock_host *m) {
    pthread_mutex_lock(&m->lock);
    const char *r = m->result;
    pthread_mutex_unlock(&m->lock);
    return r;
}

const char *mock_host_fail_reason(struct mock_host *m) {
    pthread_mutex_lock(&m->lock);
    const char *r = m->fail_reason;
    pthread_mutex_unlock(&m->lock);
    return r;
}

unsigned mock_host_result_calls(struct mock_host *m) {
    pthread_mutex_lock(&m->lock);
    unsigned n = m->result_calls;
    pthread_mutex_unlock(&m->lock);
    return n;
}

unsigned mock_host_fail_calls(struct mock_host *m) {
    pthread_mutex_lock(&m->lock);
    unsigned n = m->fail_calls;
    pthread_mutex_unlock(&m->lock);
    return n;
}

unsigned mock_host_cancel_checks(struct mock_host *m) {
    pthread_mutex_lock(&m->lock);
    unsigned n = m->cancel_checks;
    pthread_mutex_unlock(&m->lock);
    return n;
}
