/* modes - media types of parts against input modes. See modes.h. */
#include "core/modes.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *modes_part_type(const cJSON *part) {
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(part, "kind");
    const char *k = cJSON_IsString(kind) ? kind->valuestring : "";
    if (strcmp(k, "text") == 0) return "text/plain";
    if (strcmp(k, "data") == 0) return "application/json";
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(part, "file"), "mimeType");
    return cJSON_IsString(mt) && *mt->valuestring ? mt->valuestring : "application/octet-stream";
}

/* Length of the bare type: up to ';' or a blank. */
static size_t bare_len(const char *s) { return strcspn(s, "; \t"); }

bool modes_accepts(const char *const *modes, const char *type) {
    if (!modes) return true;
    size_t tn = bare_len(type);
    const char *slash = memchr(type, '/', tn);
    size_t major = slash ? (size_t)(slash - type) : tn;
    for (size_t i = 0; modes[i]; i++) {
        const char *m = modes[i];
        size_t mn = bare_len(m);
        if (mn == 3 && strncmp(m, "*/*", 3) == 0) return true;
        if (mn == tn && strncasecmp(m, type, tn) == 0) return true;
        /* "image/ *": the same major type */
        if (mn >= 2 && strncmp(m + mn - 2, "/*", 2) == 0 && mn - 2 == major &&
            strncasecmp(m, type, major) == 0)
            return true;
    }
    return false;
}

int modes_refused_part(const char *const *modes, const cJSON *message) {
    if (!modes) return -1;
    int i = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(message, "parts")) {
        if (!modes_accepts(modes, modes_part_type(part))) return i;
        i++;
    }
    return -1;
}

void modes_join(const char *const *modes, char *buf, size_t n) {
    size_t o = 0;
    if (n) buf[0] = '\0';
    for (size_t i = 0; modes && modes[i] && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? ", " : "", modes[i]);
}
