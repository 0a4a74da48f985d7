/* test_greeter - unit tests of the greeter plugin on the SDK's mock host
 * (<a2ad/mock.h>, liba2ad-mock.a): no daemon, no network. Exit 0 = pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <a2ad/agent.h>
#include <a2ad/mock.h>

const struct a2ad_agent *a2ad_agent_entry(void);

static int failures;
#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

int main(void) {
    const struct a2ad_agent *a = a2ad_agent_entry();
    CHECK(a->abi_major == A2AD_ABI_MAJOR && strcmp(a->name, "greeter") == 0);

    /* an option: init takes it */
    struct mock_host *m = mock_host_new();
    struct a2ad_option opt = {.key = "greeting", .value = "Good morning"};
    void *state = NULL;
    CHECK(a->init(mock_host_table(m), mock_host_ctx(m), &opt, 1, &state) == A2AD_OK);
    CHECK(a->run_background(state, "Ada", mock_host_ctx(m)) == A2AD_OK);
    CHECK(mock_host_result(m) && strcmp(mock_host_result(m), "Good morning, Ada!") == 0);
    CHECK(mock_host_progress_count(m) == 1);
    CHECK(mock_host_progress_at(m, 0).progress == 0.5);
    mock_host_free(m);

    /* an empty query fails with a reason */
    m = mock_host_new();
    CHECK(a->run_background(state, "", mock_host_ctx(m)) != A2AD_OK);
    CHECK(mock_host_fail_reason(m) && strstr(mock_host_fail_reason(m), "nobody to greet"));
    mock_host_free(m);
    a->destroy(state);

    /* a misspelt option: init refuses and logs why */
    m = mock_host_new();
    struct a2ad_option typo = {.key = "greting", .value = "Hi"};
    state = NULL;
    CHECK(a->init(mock_host_table(m), mock_host_ctx(m), &typo, 1, &state) == A2AD_ERR_CONFIG);
    CHECK(mock_host_logged(m, "greting"));
    mock_host_free(m);

    if (failures) {
        fprintf(stderr, "test_greeter: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_greeter: all checks passed\n");
    return 0;
}
