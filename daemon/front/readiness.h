/* readiness - would a2ad accept a job now? (GET /readyz)
 *
 * Ready means: not stopping, the job queue has room, and the durable store
 * can write (the last write did not just fail, and a probe can take the
 * database's write lock). A load balancer or Kubernetes sends traffic only
 * to a ready instance; /livez only says the process serves HTTP.
 */
#ifndef A2AD_READINESS_H
#define A2AD_READINESS_H

#include <stdbool.h>
#include <stddef.h>

/* true when ready; else false with the reason in why. stopping: the
 * graceful stop has begun. Thread: any HTTP thread. */
bool readiness_check(bool stopping, char *why, size_t n);

#endif
