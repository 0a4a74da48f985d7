/* logclient - rate-limited log lines per kind. See logclient.h. */
#include <stdarg.h>

#include "logclient.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* Kinds tracked at once; a further kind shares the last slot. */
#define KINDS 32

struct kind {
    const char *key;
    uint64_t window_ms; /* start of the current second */
    unsigned lines;     /* written in it */
    unsigned long suppressed;
    a2ad_log_level level;
    const char *origin;
};

static struct {
    pthread_mutex_t lock;
    unsigned per_s;
    struct kind kinds[KINDS];
    size_t n;
} lc = {.lock = PTHREAD_MUTEX_INITIALIZER, .per_s = 20};

void log_client_init(unsigned lines_per_s) { lc.per_s = lines_per_s ? lines_per_s : 1; }

/* lc.lock held: the count of k's suppressed lines, now reset. */
static unsigned long take_suppressed(struct kind *k) {
    unsigned long n = k->suppressed;
    k->suppressed = 0;
    return n;
}

static void say_suppressed(const char *key, a2ad_log_level level, const char *origin,
                           unsigned long n) {
    /* Only the first words of a format string: it names the kind. */
    char name[60];
    snprintf(name, sizeof name, "%s", key);
    name[strcspn(name, "%\n")] = '\0';
    log_write(level, origin, "suppressed %lu similar lines (%s) in the last second", n, name);
}

void log_client_v(const char *kind, a2ad_log_level level, const char *origin, const char *fmt,
                  va_list ap) {
    if ((int)level > (int)log_get_level()) return;
    uint64_t now = util_now_ms();
    unsigned long before = 0;
    struct kind evicted = {0};
    bool write;
    pthread_mutex_lock(&lc.lock);
    struct kind *k = NULL;
    for (size_t i = 0; i < lc.n && !k; i++)
        if (lc.kinds[i].key == kind) k = &lc.kinds[i];
    if (!k) {
        k = &lc.kinds[lc.n < KINDS ? lc.n++ : KINDS - 1];
        evicted = *k;
        memset(k, 0, sizeof *k);
        k->key = kind;
    }
    k->level = level;
    k->origin = origin;
    if (now - k->window_ms >= 1000) {
        before = take_suppressed(k);
        k->window_ms = now;
        k->lines = 0;
    }
    write = k->lines < lc.per_s;
    if (write)
        k->lines++;
    else
        k->suppressed++;
    pthread_mutex_unlock(&lc.lock);
    if (evicted.suppressed)
        say_suppressed(evicted.key, evicted.level, evicted.origin, evicted.suppressed);
    if (before) say_suppressed(kind, level, origin, before);
    if (write) log_vwrite(level, origin, fmt, ap);
}

void log_client(const char *kind, a2ad_log_level level, const char *origin, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_client_v(kind, level, origin, fmt, ap);
    va_end(ap);
}

void log_client_flush(void) {
    uint64_t now = util_now_ms();
    struct {
        const char *key, *origin;
        a2ad_log_level level;
        unsigned long n;
    } out[KINDS];
    size_t m = 0;
    pthread_mutex_lock(&lc.lock);
    for (size_t i = 0; i < lc.n; i++) {
        struct kind *k = &lc.kinds[i];
        if (!k->suppressed || now - k->window_ms < 1000) continue;
        out[m].key = k->key;
        out[m].origin = k->origin;
        out[m].level = k->level;
        out[m].n = take_suppressed(k);
        m++;
    }
    pthread_mutex_unlock(&lc.lock);
    for (size_t i = 0; i < m; i++) say_suppressed(out[i].key, out[i].level, out[i].origin, out[i].n);
}
