/* plugins - find, load, check and initialise agent plugins (*.so), and keep
 * the registry of agents current while the plugin directory changes.
 *
 * An agent is served by one *version* at a time: one load of one plugin
 * file, with its own private copy of the .so (a2ad never runs code from a
 * file that can change under it), its own dlopen handle and its own init()
 * state. The registry maps a name to the current version under a lock.
 *
 * Two counts keep a version alive:
 * - pins: users of its code. The registry holds one while it is current;
 *   an HTTP request routed to it, and every queued or running job, hold one
 *   more. When the last pin goes (the version was replaced or removed and
 *   its last job ended) destroy() runs and the copy is dlclose()d and
 *   deleted, on the thread that dropped that pin.
 * - refs: users of the record (name, version, limits), which outlives the
 *   code so that a finished task can still name its agent. Tasks hold one.
 */
#ifndef A2AD_PLUGINS_H
#define A2AD_PLUGINS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "a2ad/agent.h"
#include "config.h"

struct agent {
    struct a2ad_agent desc;   /* copy, zero-extended to the host's size; name and
                                 version point at the copies below */
    void *state;              /* from init() */
    void *dl;                 /* dlopen handle of the private copy */
    char *path;               /* the .so in the plugin directory it came from */
    uint32_t max_duration_s;  /* effective: config > descriptor > default */
    unsigned index;           /* unique id of this version (the log ctx of init/destroy) */

    /* Private to plugins.c. */
    char *copy;               /* the private copy that was dlopen()ed */
    char *name, *version;     /* owned: still valid once the code is unloaded */
    char *settings;           /* its [agent.NAME] section flattened, to see a change */
    uint64_t file_id[5];      /* dev, ino, size, mtime, ctime of path when copied */
    atomic_uint pins;
    atomic_uint refs;
    bool owned;               /* made by plugins.c (tests build fake agents) */
    bool fixed;               /* an exec agent: not from the plugin directory */
    struct agent *next_version; /* every record alive, for plugins_agent_name */
};

/* Load the agents the config names (plugin_load), or every *.so in
 * plugin_dir (sorted by file name). Each refusal is one log line naming the
 * file and the fix. With plugin_errors_fatal a refusal makes this return
 * A2AD_ERR_CONFIG after unloading what was loaded; otherwise the plugin is
 * skipped. Also A2AD_ERR_CONFIG when no agent at all could be loaded, or
 * when default_agent names none of them. host is the table handed to
 * init(). Thread: main, at start-up. */
a2ad_status plugins_load(const struct config *cfg, const struct a2ad_host *host);

/* Apply a new configuration (SIGHUP): the directory and load list, default
 * agent and every [agent.NAME] section. A version whose file or section
 * changed is replaced by a new one; an agent whose file went away is
 * removed. Refusals are logged and skipped (errors = fatal is for start-up
 * only). Thread: any; serialised with the directory watcher. */
a2ad_status plugins_reload(const struct config *cfg);

/* Watch the plugin directory (inotify) on a thread of its own: a complete
 * file placed, replaced or removed there is applied within a second.
 * Thread: main, after plugins_load; stop before plugins_unload. */
a2ad_status plugins_watch_start(void);
void plugins_watch_stop(void);

/* Check one file without keeping it (dlopen, entry, ABI, required
 * members); for tests and `a2ad -t`. Writes the refusal text into err. */
a2ad_status plugins_check_file(const char *path, char *err, size_t errlen);

/* The current version of name (or of the default agent), pinned: the caller
 * may call its code until plugins_put. NULL when there is none. Thread: any. */
const struct agent *plugins_get(const char *name);
const struct agent *plugins_get_default(void);
/* One more pin on a version the caller already holds pinned. */
void plugins_pin(const struct agent *a);
/* Drop a pin (NULL is fine). */
void plugins_put(const struct agent *a);
/* Keep / release the record of a version (not its code). NULL is fine. */
void plugins_hold(const struct agent *a);
void plugins_drop(const struct agent *a);

/* Call fn for every current version, in load order, under the registry
 * lock (fn must not call back into plugins). Thread: any. */
void plugins_each(void (*fn)(const struct agent *a, void *arg), void *arg);
/* The name of the version with this index (init/destroy log lines). */
bool plugins_agent_name(unsigned index, char *out, size_t outlen);

/* Whether name was removed lately (and is not loaded again): why, e.g.
 * "its plugin file plugins/x.so was removed". For 404 answers. */
bool plugins_removed(const char *name, char *why, size_t n);

/* Borrowed views of the registry, not pinned: for start-up code (store
 * recovery) and tests, while nothing else changes the registry. */
size_t plugins_count(void);
const struct agent *plugins_at(size_t index);
const struct agent *plugins_find(const char *name);
/* The agent served at "/": default_agent, or the only one, else NULL. */
const struct agent *plugins_default(void);

/* Add an agent that is not a .so (an exec agent, runner.c): takes a on
 * success; A2AD_ERR_CONFIG (err set) when the name is taken. Thread: main,
 * inside plugins_load. */
a2ad_status plugins_add(struct agent *a, char *err, size_t errlen);

/* Remove every agent (destroy() and dlclose once its jobs are gone) and the
 * private copies. Thread: main, after workers and the watcher stopped. */
void plugins_unload(void);

#endif
