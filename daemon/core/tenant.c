/* tenant - A2A 1.0 tenants scope tasks. See tenant.h. */
#include "core/tenant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tasks.h"

static void slot_free(void *data) { free(data); }

static cJSON *slot_save(const void *data) { return cJSON_CreateString(data); }

static void *slot_load(const cJSON *saved) {
    return cJSON_IsString(saved) && *saved->valuestring ? strdup(saved->valuestring) : NULL;
}

static const struct task_ext_ops tenant_ops = {
    .name = "tenant", .free = slot_free, .save = slot_save, .load = slot_load};

void tenant_init(void) { tasks_register_ext(TASK_EXT_TENANT, &tenant_ops); }

bool tenant_of_params(const cJSON *params, const char **out, char *why, size_t n) {
    *out = "";
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(params, "tenant");
    if (!t || cJSON_IsNull(t)) return true;
    bool ok = cJSON_IsString(t) && strlen(t->valuestring) <= TENANT_MAX;
    for (const unsigned char *p = ok ? (const unsigned char *)t->valuestring : NULL; ok && *p; p++)
        ok = *p >= 0x20 && *p != 0x7f && *p != '/';
    if (!ok) {
        snprintf(why, n, "params.tenant must be a string of at most %d bytes without control "
                 "characters or \"/\"", TENANT_MAX);
        return false;
    }
    *out = t->valuestring;
    return true;
}

void *tenant_slot_new(const char *tenant, bool *oom) {
    *oom = false;
    if (!tenant || !*tenant) return NULL;
    char *s = strdup(tenant);
    *oom = s == NULL;
    return s;
}

bool tenant_matches_locked(struct task *t, const char *tenant) {
    const char *mine = task_ext(t, TASK_EXT_TENANT);
    return strcmp(mine ? mine : "", tenant ? tenant : "") == 0;
}

bool tenant_matches(struct task *t, const char *tenant) {
    task_lock(t);
    bool ok = tenant_matches_locked(t, tenant);
    task_unlock(t);
    return ok;
}
