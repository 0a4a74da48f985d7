/* libFuzzer: what the store saves must load back and save the same.
 *
 * The input is JSON. As a task document (what the task row holds), it is
 * restored, rendered (saved) as A, A is restored again and rendered as B:
 * A and B must be equal. As a slot's saved value (push configs, Health
 * Universe parameters), it is loaded, saved as A, loaded and saved as B:
 * equal too. A document the daemon saved but could not read back would
 * lose a task (or its webhooks) at the next start. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "config.h"
#include "delivery/hu.h"
#include "log.h"
#include "delivery/push.h"
#include "core/tasks.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    log_set_level(A2AD_LOG_ERROR);
    struct config cfg;
    config_defaults(&cfg);
    tasks_init(0, 100);
    push_init(10);
    hu_init(&cfg);
    config_free(&cfg);
    return 0;
}

/* Restore doc (taken) under state; the rendered text, or NULL if refused. */
static char *restore_render(cJSON *doc, enum task_state state) {
    struct task_restore r = {.doc = doc, .state = state, .seq = 1};
    struct task *t = NULL;
    if (tasks_restore(&r, &t) != A2AD_OK) return NULL;
    cJSON *out = task_render(t, -1);
    char *text = out ? cJSON_PrintUnformatted(out) : NULL;
    cJSON_Delete(out);
    tasks_discard(t);
    task_release(t);
    return text;
}

static void roundtrip_task(const cJSON *in, enum task_state state) {
    char *a = restore_render(cJSON_Duplicate(in, 1), state);
    if (!a) return;
    cJSON *again = cJSON_Parse(a);
    if (!again) {
        fprintf(stderr, "saved task document does not parse back:\n%.2000s\n", a);
        abort();
    }
    char *b = restore_render(again, state);
    if (!b || strcmp(a, b) != 0) {
        fprintf(stderr, "task round trip differs:\nA %.2000s\nB %.2000s\n", a, b ? b : "(refused)");
        abort();
    }
    free(a);
    free(b);
}

static void roundtrip_slot(enum task_ext_slot slot, const cJSON *in) {
    const struct task_ext_ops *ops = tasks_ext_ops(slot);
    if (!ops || !ops->load || !ops->save) return;
    void *d1 = ops->load(in);
    if (!d1) return;
    cJSON *s1 = ops->save(d1);
    char *a = s1 ? cJSON_PrintUnformatted(s1) : NULL;
    cJSON *p = a ? cJSON_Parse(a) : NULL;
    if (a && !p) {
        fprintf(stderr, "saved %s slot does not parse back:\n%.2000s\n", ops->name, a);
        abort();
    }
    void *d2 = p ? ops->load(p) : NULL;
    cJSON *s2 = d2 ? ops->save(d2) : NULL;
    char *b = s2 ? cJSON_PrintUnformatted(s2) : NULL;
    if (a && (!b || strcmp(a, b) != 0)) {
        fprintf(stderr, "%s slot round trip differs:\nA %.2000s\nB %.2000s\n", ops->name, a,
                b ? b : "(not loaded)");
        abort();
    }
    free(a);
    free(b);
    cJSON_Delete(s1);
    cJSON_Delete(s2);
    cJSON_Delete(p);
    ops->free(d1);
    if (d2) ops->free(d2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    cJSON *in = cJSON_ParseWithLength((const char *)data + 1, size - 1);
    if (!in) return 0;
    switch (data[0] % 4) {
    case 0: roundtrip_task(in, TASK_SUBMITTED); break;
    case 1: roundtrip_task(in, TASK_COMPLETED); break;
    case 2: roundtrip_slot(TASK_EXT_PUSH, in); break;
    default: roundtrip_slot(TASK_EXT_HU, in); break;
    }
    cJSON_Delete(in);
    return 0;
}
