/* libFuzzer: the Health Universe background_job parameters (hu_parse).
 * The first byte picks the extension header; the rest is params JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "config.h"
#include "delivery/hu.h"
#include "log.h"
#include "agents/plugins.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct agent unit;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    log_set_level(A2AD_LOG_ERROR);
    struct config cfg;
    config_defaults(&cfg);
    hu_init(&cfg);
    config_free(&cfg);
    unit.desc.name = "unit";
    unit.max_duration_s = 60;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *const headers[] = {NULL, "https://healthuniverse.com/ext/background_job/v1",
                                          "x, https://healthuniverse.com/ext/background_job/v1 ,y",
                                          ""};
    cJSON *params = cJSON_ParseWithLength((const char *)data + 1, size - 1);
    if (!params) return 0;
    void *job = NULL;
    char err[300];
    hu_parse(&unit, params, headers[data[0] & 3], &job, err, sizeof err);
    if (!memchr(err, '\0', sizeof err)) abort();
    if (job) hu_job_free(job);
    cJSON_Delete(params);
    return 0;
}
