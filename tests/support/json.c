/* Test helpers: JSON by dotted path, naps. See json.h. */
#include "support/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void test_nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

const cJSON *json_at_key(const cJSON *o, const char *path, const char *alias, const char *key) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && cur; k = strtok_r(NULL, ".", &save)) {
        if (k[0] >= '0' && k[0] <= '9' && cJSON_IsArray(cur))
            cur = cJSON_GetArrayItem(cur, atoi(k));
        else
            cur = cJSON_GetObjectItemCaseSensitive(cur, alias && strcmp(k, alias) == 0 ? key : k);
    }
    return cur;
}

const cJSON *json_at(const cJSON *o, const char *path) { return json_at_key(o, path, NULL, NULL); }

const char *json_str(const cJSON *o, const char *path) {
    const cJSON *v = json_at(o, path);
    return cJSON_IsString(v) ? v->valuestring : "(absent)";
}

int json_int(const cJSON *o, const char *path) {
    const cJSON *v = json_at(o, path);
    return cJSON_IsNumber(v) ? v->valueint : -99999;
}
