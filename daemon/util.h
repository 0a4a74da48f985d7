/* util - small helpers shared by the daemon's modules. */
#ifndef A2AD_UTIL_H
#define A2AD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "a2ad/agent.h"

#define UUID_STR_LEN 37 /* 36 characters + NUL */

/* Write a random (version 4) UUID into out. Thread: any. */
void util_uuid(char out[UUID_STR_LEN]);

/* Milliseconds on the monotonic clock, for deadlines. */
uint64_t util_now_ms(void);
/* Wall-clock milliseconds since the Unix epoch (for ages that must survive a
 * restart; can jump with the clock). */
uint64_t util_wall_ms(void);

/* ISO-8601 UTC timestamp with milliseconds and 'Z' ("2026-11-24T08:00:00.000Z"). */
#define TIMESTAMP_LEN 25
void util_timestamp(char out[TIMESTAMP_LEN]);

/* Base64 (RFC 4648, padded). Returns a malloc'd NUL-terminated string, or NULL. */
char *util_base64_encode(const void *data, size_t len);
/* Decode; returns malloc'd bytes and sets *out_len, or NULL on bad input. */
void *util_base64_decode(const char *text, size_t *out_len);

/* True when data[0..len) is valid UTF-8 without NUL bytes. */
bool util_utf8_valid(const void *data, size_t len);

/* Client text fit to echo in an error message or a log line: valid UTF-8
 * (each invalid byte becomes U+FFFD), control characters as '?', and at
 * most max bytes (out holds outsz bytes with the NUL; max is cut to fit):
 * when cut, it ends at a character boundary with an ellipsis (U+2026).
 * NULL in = "". Returns out. Thread: any. */
#define UTIL_ECHO_MAX 200
#define UTIL_ECHO_BUF (UTIL_ECHO_MAX + 1)
char *util_echo(char *out, size_t outsz, const char *in, size_t max);

/* strdup that returns NULL for NULL. */
char *util_strdup(const char *s);

/* A string-keyed hash map of borrowed void* values. Not thread-safe: the
 * owner locks. Keys are copied. */
struct hmap;
struct hmap *hmap_new(size_t initial_buckets);
void hmap_free(struct hmap *m);
a2ad_status hmap_put(struct hmap *m, const char *key, void *value); /* replaces */
void *hmap_get(const struct hmap *m, const char *key);
void *hmap_remove(struct hmap *m, const char *key);
size_t hmap_count(const struct hmap *m);
/* Call fn for every entry; fn must not modify the map. */
void hmap_each(const struct hmap *m, void (*fn)(const char *key, void *value, void *arg),
               void *arg);

/* A library's error message (libpq's end with a newline, some span
 * lines) on one line: whitespace runs become one space, the end trimmed;
 * "unknown error" when msg is NULL or empty. Cut to n bytes. */
void util_one_line(char *out, size_t n, const char *msg);

#endif
