/* jsonlimit - the nesting bound of stored JSON values. See jsonlimit.h. */
#include "jsonlimit.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static atomic_uint max_depth = 64;

void jsonlimit_set_depth(unsigned depth) { atomic_store(&max_depth, depth ? depth : 64); }
unsigned jsonlimit_depth(void) { return atomic_load(&max_depth); }

/* cJSON itself stops parsing at 1000 levels, so the recursion is bounded. */
unsigned jsonlimit_depth_of(const cJSON *v) {
    if (!v) return 0;
    unsigned deepest = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        unsigned d = jsonlimit_depth_of(c);
        if (d > deepest) deepest = d;
    }
    return deepest + 1;
}

bool jsonlimit_check(const cJSON *params, const char *name, char *why, size_t n) {
    unsigned limit = jsonlimit_depth(), depth = jsonlimit_depth_of(params);
    if (depth <= limit) return true;
    /* Name the path down the deepest branch, a few fields of it. */
    char path[160];
    size_t o = (size_t)snprintf(path, sizeof path, "%s", name);
    const cJSON *v = params;
    for (int step = 0; v && step < 4 && o < sizeof path; step++) {
        const cJSON *deepest = NULL;
        unsigned dd = 0;
        int i = 0, at = 0;
        for (const cJSON *c = v->child; c; c = c->next, i++) {
            unsigned d = jsonlimit_depth_of(c);
            if (d > dd) {
                dd = d;
                deepest = c;
                at = i;
            }
        }
        if (!deepest) break;
        if (cJSON_IsArray(v))
            o += (size_t)snprintf(path + o, sizeof path - o, "[%d]", at);
        else if (deepest->string)
            o += (size_t)snprintf(path + o, sizeof path - o, ".%.40s", deepest->string);
        v = deepest;
    }
    snprintf(why, n,
             "%s nests %u levels deep at %s%s; at most %u are accepted ([tasks] "
             "max_json_depth), so that it can be stored and read back",
             name, depth, path, v && v->child ? "..." : "", limit);
    return false;
}
