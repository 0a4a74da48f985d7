/* plugins - find, load, check and initialise agent plugins (*.so).
 *
 * Every loaded agent keeps a full-size copy of its descriptor (members a
 * plugin built against an older header did not have are zero), its state
 * from init(), and its effective maximum job duration.
 */
#ifndef A2AD_PLUGINS_H
#define A2AD_PLUGINS_H

#include <stddef.h>
#include <stdint.h>

#include "a2ad/agent.h"
#include "config.h"

struct agent {
    struct a2ad_agent desc;   /* copy, zero-extended to the host's size */
    void *state;              /* from init() */
    void *dl;                 /* dlopen handle */
    char *path;               /* the .so it came from */
    uint32_t max_duration_s;  /* effective: config > descriptor > default */
    unsigned index;           /* position in the registry */
};

/* Load the agents the config names (plugin_load), or every *.so in
 * plugin_dir (sorted by file name). Each refusal is one log line naming the
 * file and the fix. With plugin_errors_fatal a refusal makes this return
 * A2AD_ERR_CONFIG after unloading what was loaded; otherwise the plugin is
 * skipped. Also A2AD_ERR_CONFIG when no agent at all could be loaded, or
 * when default_agent names none of them. host is the table handed to
 * init(). Thread: main, before any other thread uses the registry. */
a2ad_status plugins_load(const struct config *cfg, const struct a2ad_host *host);

/* Check one file without keeping it (dlopen, entry, ABI, required
 * members); for tests and `a2ad -t`. Writes the refusal text into err. */
a2ad_status plugins_check_file(const char *path, char *err, size_t errlen);

/* The registry, read-only after plugins_load. Thread: any. */
size_t plugins_count(void);
const struct agent *plugins_at(size_t index);
const struct agent *plugins_find(const char *name);
/* The agent served at "/": default_agent, or the only one, else NULL. */
const struct agent *plugins_default(void);

/* Add an agent that is not a .so (an exec agent, runner.c): takes a on
 * success; A2AD_ERR_CONFIG (err set) when the name is taken. Thread: main,
 * inside plugins_load. */
a2ad_status plugins_add(struct agent *a, char *err, size_t errlen);

/* Call every destroy() and dlclose. Thread: main, after workers stopped. */
void plugins_unload(void);

#endif
