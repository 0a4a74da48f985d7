/* no_entry - a shared object that loads fine but exports no a2ad_agent_entry
 * (someone forgot A2AD_AGENT_ENTRY). The loader must refuse it and say how
 * to export the entry. */
#include <a2ad/agent.h>

/* Something exported, so the library is not empty and dlopen succeeds. */
A2AD_EXPORT int a2ad_test_no_entry_dummy(void);
A2AD_EXPORT int a2ad_test_no_entry_dummy(void) { return 42; }
