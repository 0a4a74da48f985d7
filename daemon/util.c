/* util - small helpers shared by the daemon's modules. */
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Random bytes for ids come from getrandom in batches: one system call
 * serves RANDOM_BATCH / 16 UUIDs of the calling thread. The bytes are the
 * kernel's CSPRNG output either way; only the call count changes. */
#define RANDOM_BATCH 512
static _Thread_local struct {
    unsigned char bytes[RANDOM_BATCH];
    size_t used; /* == RANDOM_BATCH: empty */
} rnd = {.used = RANDOM_BATCH};

static bool random16(unsigned char out[16]) {
    if (rnd.used + 16 > RANDOM_BATCH) {
        if (getrandom(rnd.bytes, sizeof rnd.bytes, 0) != (ssize_t)sizeof rnd.bytes) return false;
        rnd.used = 0;
    }
    memcpy(out, rnd.bytes + rnd.used, 16);
    /* Handed-out bytes do not stay behind in memory. */
    memset(rnd.bytes + rnd.used, 0, 16);
    rnd.used += 16;
    return true;
}

void util_uuid(char out[UUID_STR_LEN]) {
    unsigned char b[16];
    /* getrandom only fails before the pool is seeded or on EINTR; the
     * fallback keeps ids unique enough for a task store in that case. */
    if (!random16(b)) {
        static _Atomic unsigned long counter;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long c = ++counter;
        memcpy(b, &ts, sizeof ts < 8 ? sizeof ts : 8);
        memcpy(b + 8, &c, sizeof c < 8 ? sizeof c : 8);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    /* 8-4-4-4-12 hex digits; by hand, since snprintf with sixteen %02x
     * cost more than the rest of creating a progress message. */
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

uint64_t util_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t util_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void util_timestamp(char out[TIMESTAMP_LEN]) {
    /* The date and time part changes once a second: format it then, and
     * only the milliseconds on every call. */
    static _Thread_local time_t cached_sec = (time_t)-1;
    static _Thread_local char cached[TIMESTAMP_LEN];
    static _Thread_local size_t cached_len;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        cached_len = strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = ts.tv_sec;
    }
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000L);
    /* Only a year past 9999 makes it longer; cut, as a full buffer would. */
    if (cached_len > TIMESTAMP_LEN - 6) cached_len = TIMESTAMP_LEN - 6;
    memcpy(out, cached, cached_len);
    char *o = out + cached_len;
    *o++ = '.';
    *o++ = (char)('0' + ms / 100);
    *o++ = (char)('0' + ms / 10 % 10);
    *o++ = (char)('0' + ms % 10);
    *o++ = 'Z';
    *o = '\0';
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *util_base64_encode(const void *data, size_t len) {
    const unsigned char *p = data;
    size_t out_len = 4 * ((len + 2) / 3);
    char *out = malloc(out_len + 1);
    if (!out) return NULL;
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = b64[v >> 6 & 63];
        out[o++] = b64[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0u);
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_value(char c) {
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

void *util_base64_decode(const char *text, size_t *out_len) {
    size_t len = text ? strlen(text) : 0;
    if (len % 4 != 0) return NULL;
    unsigned char *out = malloc(len / 4 * 3 + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            char c = text[i + k];
            bool pad_ok = c == '=' && i + 4 == len && k >= 2;
            v[k] = pad_ok ? 0 : b64_value(c);
            if (v[k] < 0 || (k == 2 && text[i + 2] == '=' && text[i + 3] != '=')) {
                free(out);
                return NULL;
            }
        }
        unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        out[o++] = (unsigned char)(w >> 16);
        if (text[i + 2] != '=') out[o++] = (unsigned char)(w >> 8);
        if (text[i + 3] != '=') out[o++] = (unsigned char)w;
    }
    *out_len = o;
    return out;
}

bool util_utf8_valid(const void *data, size_t len) {
    const unsigned char *s = data;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c == 0) return false;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; }
        else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
        else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; }
        else return false;
        if (i + n >= len) return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        /* overlong forms, surrogates and values past U+10FFFF are invalid */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        i += n + 1;
    }
    return true;
}

/* The length of the valid UTF-8 sequence at s (at most avail bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t avail) {
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; }
    else return 0;
    if (n >= avail) return 0;
    for (size_t k = 1; k <= n; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n + 1;
}

char *util_echo(char *out, size_t outsz, const char *in, size_t max) {
    static const char repl[] = "\xef\xbf\xbd", ellipsis[] = "\xe2\x80\xa6";
    if (!outsz) return out;
    if (max > outsz - 1) max = outsz - 1;
    const unsigned char *s = (const unsigned char *)(in ? in : "");
    size_t len = strlen((const char *)s), i = 0, o = 0;
    while (i < len) {
        size_t n = utf8_seq(s + i, len - i);
        const char *piece = (const char *)s + i;
        size_t plen = n;
        if (!n) { /* an invalid byte: U+FFFD, and on with the next byte */
            piece = repl;
            plen = 3;
            n = 1;
        } else if (n == 1 && (s[i] < 0x20 || s[i] == 0x7f)) {
            piece = "?"; /* no control characters (line breaks) in messages and logs */
        }
        /* Room for the piece, and for the ellipsis unless this is the end. */
        size_t need = plen + (i + n < len ? sizeof ellipsis - 1 : 0);
        if (o + need > max) {
            size_t room = max >= sizeof ellipsis - 1 ? max - (sizeof ellipsis - 1) : 0;
            if (o > room) o = room; /* only when max is tiny; o was at a boundary before */
            if (max >= sizeof ellipsis - 1) {
                memcpy(out + o, ellipsis, sizeof ellipsis - 1);
                o += sizeof ellipsis - 1;
            }
            break;
        }
        memcpy(out + o, piece, plen);
        o += plen;
        i += n;
    }
    out[o] = '\0';
    return out;
}

char *util_strdup(const char *s) { return s ? strdup(s) : NULL; }

/* ---- hash map: separate chaining, FNV-1a, doubles at load 1 ----
 * Each entry keeps its hash (chains are walked and rehashed without
 * touching the keys) and its key inline (one allocation per entry). */

struct hentry {
    struct hentry *next;
    void *value;
    size_t hash;
    char key[];
};

struct hmap {
    struct hentry **buckets;
    size_t n_buckets;
    size_t count;
};

static size_t hash_key(const char *key) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

struct hmap *hmap_new(size_t initial_buckets) {
    struct hmap *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->n_buckets = initial_buckets < 16 ? 16 : initial_buckets;
    m->buckets = calloc(m->n_buckets, sizeof *m->buckets);
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    return m;
}

void hmap_free(struct hmap *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_buckets; i++) {
        struct hentry *e = m->buckets[i];
        while (e) {
            struct hentry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

static void hmap_grow(struct hmap *m) {
    size_t n = m->n_buckets * 2;
    struct hentry **b = calloc(n, sizeof *b);
    if (!b) return; /* keep working with longer chains */
    for (size_t i = 0; i < m->n_buckets; i++) {
        struct hentry *e = m->buckets[i];
        while (e) {
            struct hentry *next = e->next;
            size_t k = e->hash % n;
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = n;
}

/* The link that points at key's entry, or at the NULL ending its chain. */
static struct hentry **hmap_find(const struct hmap *m, const char *key, size_t h) {
    struct hentry **pp = &m->buckets[h % m->n_buckets];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0)) pp = &(*pp)->next;
    return pp;
}

a2ad_status hmap_put(struct hmap *m, const char *key, void *value) {
    size_t h = hash_key(key);
    struct hentry **pp = hmap_find(m, key, h);
    if (*pp) {
        (*pp)->value = value;
        return A2AD_OK;
    }
    size_t klen = strlen(key) + 1;
    struct hentry *e = malloc(sizeof *e + klen);
    if (!e) return A2AD_ERR_NOMEM;
    memcpy(e->key, key, klen);
    e->value = value;
    e->hash = h;
    size_t k = h % m->n_buckets;
    e->next = m->buckets[k];
    m->buckets[k] = e;
    if (++m->count > m->n_buckets) hmap_grow(m);
    return A2AD_OK;
}

void *hmap_get(const struct hmap *m, const char *key) {
    struct hentry *e = *hmap_find(m, key, hash_key(key));
    return e ? e->value : NULL;
}

void *hmap_remove(struct hmap *m, const char *key) {
    struct hentry **pp = hmap_find(m, key, hash_key(key));
    struct hentry *e = *pp;
    if (!e) return NULL;
    void *v = e->value;
    *pp = e->next;
    free(e);
    m->count--;
    return v;
}

size_t hmap_count(const struct hmap *m) { return m->count; }

void hmap_each(const struct hmap *m, void (*fn)(const char *key, void *value, void *arg),
               void *arg) {
    for (size_t i = 0; i < m->n_buckets; i++)
        for (struct hentry *e = m->buckets[i]; e; e = e->next) fn(e->key, e->value, arg);
}

void util_one_line(char *out, size_t n, const char *msg) {
    snprintf(out, n, "%s", msg && *msg ? msg : "unknown error");
    char *w = out;
    for (const char *c = out; *c; c++) {
        char ch = *c == '\n' || *c == '\r' || *c == '\t' ? ' ' : *c;
        if (ch == ' ' && w > out && w[-1] == ' ') continue;
        *w++ = ch;
    }
    *w = '\0';
    size_t len = strlen(out);
    while (len && out[len - 1] == ' ') out[--len] = '\0';
}
