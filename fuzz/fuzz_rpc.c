/* libFuzzer: the JSON-RPC request path without HTTP (rpc_handle), both
 * versions. The first byte picks the A2A-Version header and whether the
 * request goes to an agent; the rest is the raw body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "delivery/hu.h"
#include "log.h"
#include "agents/plugins.h"
#include "delivery/push.h"
#include "core/rpc.h"
#include "front/streams.h"
#include "core/tasks.h"
#include "core/tenant.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct agent unit;
static unsigned long runs;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    log_set_level(A2AD_LOG_ERROR);
    struct config cfg;
    config_defaults(&cfg);
    tasks_init(0, 2000);
    push_init(10);
    streams_init(64 * 1024, 0);
    tenant_init();
    struct rpc_settings rs = {.push_enabled = true};
    rpc_init(&rs);
    hu_init(&cfg);
    config_free(&cfg);
    unit.desc.name = "unit";
    unit.max_duration_s = 60;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *const versions[] = {NULL, "1.0", "0.3", "2.0"};
    uint8_t sel = data[0];
    /* A copy of exactly the body: reads past its end are caught. */
    char *body = malloc(size - 1 ? size - 1 : 1);
    memcpy(body, data + 1, size - 1);
    struct rpc_request rq = {
        .agent = sel & 4 ? NULL : &unit,
        .body = body,
        .len = size - 1,
        .a2a_version = versions[sel & 3],
        .extensions = sel & 8 ? "https://healthuniverse.com/ext/background_job/v1" : NULL,
        .base_url = "http://127.0.0.1:9/agents/unit",
        .can_defer = false,
    };
    struct rpc_reply out;
    rpc_handle(&rq, &out);
    if (out.wait_task) rpc_reply_waited(&out);
    rpc_reply_clear(&out);
    free(body);
    if (++runs % 256 == 0) tasks_expire();
    return 0;
}
