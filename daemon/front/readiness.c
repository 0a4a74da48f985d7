/* readiness - the checks behind GET /readyz. See readiness.h. */
#include "front/readiness.h"

#include <stdio.h>

#include "store/store.h"
#include "agents/workers.h"

bool readiness_check(bool stopping, char *why, size_t n) {
    if (stopping) {
        snprintf(why, n, "a2ad is stopping");
        return false;
    }
    a2ad_status room = workers_has_room();
    if (room == A2AD_ERR_FULL) {
        snprintf(why, n, "the job queue is full (workers.queue_length)");
        return false;
    }
    if (room != A2AD_OK) {
        snprintf(why, n, "the workers are not running");
        return false;
    }
    return store_writable(why, n);
}
