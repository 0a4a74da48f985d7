/* jsonlimit - the nesting bound of JSON values that are stored.
 *
 * A request's values (a message, metadata, a push config) are written into
 * the task's row inside a few levels of their own; cJSON reads back at most
 * 1000 levels (CJSON_NESTING_LIMIT). A value accepted at 997 levels was
 * stored, then unreadable after a restart: its task lost its webhooks. So
 * params deeper than [tasks] max_json_depth are refused when they arrive.
 */
#ifndef A2AD_JSONLIMIT_H
#define A2AD_JSONLIMIT_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* Set the bound (default 64). Thread: main, before requests. */
void jsonlimit_set_depth(unsigned depth);
unsigned jsonlimit_depth(void);

/* Levels of v: a scalar 1, {} or [] 1, {"a": 1} 2. */
unsigned jsonlimit_depth_of(const cJSON *v);

/* true when params (named `name`, e.g. "params") is within the bound;
 * else false and a message naming the deepest field in why. */
bool jsonlimit_check(const cJSON *params, const char *name, char *why, size_t n);

#endif
