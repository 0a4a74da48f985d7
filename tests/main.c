/* The test runner: every suite of the project in one Check run.
 * Suites are weak so a suite file under construction does not break the build. */
#include <check.h>
#include <stdlib.h>

#define SUITES(X) X(util) X(config) X(tasks) X(webhooks) X(plugins) X(workers) X(rpc) X(hu) X(integration) X(streams) X(conformance) X(conformance2) X(replay) X(rest) X(rest03) X(multiturn) X(durable) X(auth) X(admin) X(ops) X(live) X(isolation) X(guard) X(hardening) X(pg) X(chunks) X(cluster) X(share) X(remote) X(clops) X(tls) X(rstream)
#define DECLARE(name) Suite *name##_suite(void) __attribute__((weak));
SUITES(DECLARE)

int main(void) {
    SRunner *sr = srunner_create(NULL);
#define ADD(name) if (name##_suite) srunner_add_suite(sr, name##_suite());
    SUITES(ADD)
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
