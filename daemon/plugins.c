/* plugins - find, load, check and initialise agent plugins (*.so).
 *
 * The loader is deliberately suspicious: a plugin is a file someone built
 * somewhere, possibly against another a2ad. Everything that can be checked
 * without running plugin code beyond its entry function (file type, dlopen,
 * the entry symbol, ABI major, descriptor size, name, required members) is
 * checked before init() runs, and
 * every refusal is ONE error line naming the file and the fix, because that
 * line is all an operator sees in the journal when start-up fails.
 */
#include "plugins.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "runner.h"
#include "workers.h"

/* A descriptor must reach at least to run_background, the last required
 * member; everything after it is optional and may be missing in plugins
 * built against an older header. */
#define DESC_MIN_SIZE                                                                    \
    (offsetof(struct a2ad_agent, run_background) +                                      \
     sizeof(((struct a2ad_agent *)0)->run_background))

/* True when a descriptor of struct_size bytes holds all of member. */
#define DESC_COVERS(size, member)                                                        \
    ((size) >= offsetof(struct a2ad_agent, member) +                                    \
                   sizeof(((struct a2ad_agent *)0)->member))

#define NAME_MAX_LEN 63
#define ERR_LEN 1024

/* The registry. Pointers, not an array of structs, so the struct agent *
 * handed out by plugins_at/plugins_find stays put while the array grows. */
static struct agent **registry;
static size_t n_registry;
static const struct agent *default_agent;

/* ---- refusal texts -------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...) A2AD_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A printable copy of a name that failed the check (it may hold anything, a
 * newline included, and must not break the one-line log rule). */
static void printable_name(const char *name, char *out, size_t outlen) {
    size_t n = 0;
    for (size_t i = 0; name[i] && n + 4 < outlen; i++) {
        unsigned char c = (unsigned char)name[i];
        out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
        if (i == NAME_MAX_LEN) { /* long enough to recognise it */
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
    }
    out[n] = '\0';
}

/* [A-Za-z0-9_-]{1,63}: the name appears in URLs, config section names and
 * log lines, so it must need no quoting in any of them. */
static bool name_valid(const char *name) {
    size_t i = 0;
    for (; name[i]; i++) {
        char c = name[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok || i >= NAME_MAX_LEN) return false;
    }
    return i > 0;
}

/* ---- one file --------------------------------------------------------------- */

/* Open path and check everything that needs no plugin code but the entry
 * function. On success *dl_out is the open handle and *desc a zero-extended
 * copy of the descriptor; on failure nothing stays open and err holds the
 * one-line refusal. Statuses: NOT_FOUND/IO (the file), INVALID (not a
 * regular file), ABI (anything about the plugin itself). */
static a2ad_status open_plugin(const char *path, void **dl_out, struct a2ad_agent *desc,
                               char *err, size_t errlen) {
    struct stat st;
    /* lstat, not stat: a symbolic link in the plugin directory is a classic
     * way to load something other than what the operator reviewed. */
    if (lstat(path, &st) != 0) {
        int e = errno;
        set_err(err, errlen,
                "plugin %s refused: %s; check the plugin directory, and that the load list "
                "names plugins without \".so\"",
                path, strerror(e));
        return e == ENOENT || e == ENOTDIR ? A2AD_ERR_NOT_FOUND : A2AD_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen,
                "plugin %s refused: not a regular file (symbolic links and directories are "
                "not followed); put the .so file itself there",
                path);
        return A2AD_ERR_INVALID;
    }

    /* RTLD_NOW: an unresolved symbol fails here, at start-up, with dlerror's
     * text, instead of killing a worker in the middle of a job. RTLD_LOCAL:
     * two plugins defining the same helper must not interpose each other. */
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *why = dlerror();
        set_err(err, errlen, "plugin %s refused: dlopen failed: %s; check its dependencies with ldd",
                path, why ? why : "unknown error");
        return A2AD_ERR_ABI;
    }

    /* ISO C forbids converting void * to a function pointer; POSIX requires
     * it to work, and copying the bytes says exactly that without a warning. */
    void *sym = dlsym(dl, A2AD_AGENT_ENTRY_SYMBOL);
    if (!sym) {
        set_err(err, errlen,
                "plugin %s refused: it exports no %s symbol; export it with "
                "A2AD_AGENT_ENTRY(descriptor)",
                path, A2AD_AGENT_ENTRY_SYMBOL);
        dlclose(dl);
        return A2AD_ERR_ABI;
    }
    a2ad_agent_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);

    const struct a2ad_agent *d = entry();
    if (!d) {
        set_err(err, errlen,
                "plugin %s refused: %s() returned NULL; return the address of a static "
                "descriptor (A2AD_AGENT_ENTRY(descriptor))",
                path, A2AD_AGENT_ENTRY_SYMBOL);
        dlclose(dl);
        return A2AD_ERR_ABI;
    }

    /* abi_major and struct_size are the first 8 bytes of every version of
     * the descriptor, so reading them is safe whatever the plugin's header. */
    if (d->abi_major != A2AD_ABI_MAJOR) {
        set_err(err, errlen,
                "plugin %s refused: built for plugin ABI %u, this a2ad has ABI %u; rebuild it "
                "against this a2ad's include/a2ad/agent.h",
                path, (unsigned)d->abi_major, (unsigned)A2AD_ABI_MAJOR);
        dlclose(dl);
        return A2AD_ERR_ABI;
    }
    if (d->struct_size < DESC_MIN_SIZE) {
        set_err(err, errlen,
                "plugin %s refused: its descriptor has struct_size %u, the minimum is %zu; start "
                "it with A2AD_AGENT_HEADER and rebuild it against this a2ad's "
                "include/a2ad/agent.h",
                path, (unsigned)d->struct_size, (size_t)DESC_MIN_SIZE);
        dlclose(dl);
        return A2AD_ERR_ABI;
    }

    /* A newer plugin's extra members are ignored; an older plugin's missing
     * ones read as zero = absent. Never read past the plugin's struct_size. */
    size_t n = d->struct_size < sizeof *desc ? d->struct_size : sizeof *desc;
    memset(desc, 0, sizeof *desc);
    memcpy(desc, d, n);
    /* A struct_size that ends inside an optional member (no real header
     * produces one) must not leave half of that member's bytes behind. */
    if (!DESC_COVERS(n, max_duration_s)) desc->max_duration_s = 0;
    if (!DESC_COVERS(n, estimated_duration_s)) desc->estimated_duration_s = 0;
    if (!DESC_COVERS(n, rerun_safe)) desc->rerun_safe = 0;
    if (!DESC_COVERS(n, on_message)) desc->on_message = NULL;

    if (!desc->name || !desc->name[0]) {
        set_err(err, errlen,
                "plugin %s refused: its descriptor has no name; set .name to 1-%d characters "
                "from A-Z a-z 0-9 _ -",
                path, NAME_MAX_LEN);
        dlclose(dl);
        return A2AD_ERR_ABI;
    }
    if (!name_valid(desc->name)) {
        char shown[NAME_MAX_LEN + 8];
        printable_name(desc->name, shown, sizeof shown);
        set_err(err, errlen,
                "plugin %s refused: agent name \"%s\" is invalid; use 1-%d characters from "
                "A-Z a-z 0-9 _ -",
                path, shown, NAME_MAX_LEN);
        dlclose(dl);
        return A2AD_ERR_ABI;
    }
    if (!desc->run_background) {
        set_err(err, errlen,
                "plugin %s refused: agent \"%s\" has no run_background; set .run_background "
                "in its descriptor",
                path, desc->name);
        dlclose(dl);
        return A2AD_ERR_ABI;
    }
    /* The agent card walks the skills; catch a table that would crash it. */
    if (desc->n_skills > 0 && !desc->skills) {
        set_err(err, errlen,
                "plugin %s refused: agent \"%s\" has n_skills %zu but skills is NULL; set "
                ".skills or make n_skills 0",
                path, desc->name, desc->n_skills);
        dlclose(dl);
        return A2AD_ERR_ABI;
    }
    for (size_t i = 0; i < desc->n_skills; i++) {
        if (!desc->skills[i].id || !desc->skills[i].id[0] || !desc->skills[i].name ||
            !desc->skills[i].name[0]) {
            set_err(err, errlen,
                    "plugin %s refused: skill %zu of agent \"%s\" lacks an id or a name; set "
                    "both (they appear on the agent card)",
                    path, i, desc->name);
            dlclose(dl);
            return A2AD_ERR_ABI;
        }
    }

    *dl_out = dl;
    return A2AD_OK;
}

a2ad_status plugins_check_file(const char *path, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!path || !path[0]) {
        set_err(err, errlen, "no plugin file given");
        return A2AD_ERR_INVALID;
    }
    void *dl = NULL;
    struct a2ad_agent desc;
    a2ad_status s = open_plugin(path, &dl, &desc, err, errlen);
    if (s == A2AD_OK) dlclose(dl);
    return s;
}

/* ---- the registry ------------------------------------------------------------- */

size_t plugins_count(void) { return n_registry; }

const struct agent *plugins_at(size_t index) {
    return index < n_registry ? registry[index] : NULL;
}

const struct agent *plugins_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < n_registry; i++)
        if (strcmp(registry[i]->desc.name, name) == 0) return registry[i];
    return NULL;
}

const struct agent *plugins_default(void) { return default_agent; }

void plugins_unload(void) {
    /* Reverse order, like unwinding: an agent loaded later never outlives
     * one loaded before it. An agent leaves the registry only after its
     * destroy(), so a2ad_log from destroy is still attributed to it. */
    while (n_registry > 0) {
        struct agent *a = registry[n_registry - 1];
        log_debug("unloading agent %s (%s)", a->desc.name, a->path);
        if (a->desc.destroy) a->desc.destroy(a->state);
        n_registry--;
        if (a->dl) dlclose(a->dl); /* exec agents have none */
        free(a->path);
        free(a);
    }
    free(registry);
    registry = NULL;
    default_agent = NULL;
    runner_unload();
}

a2ad_status plugins_add(struct agent *a, char *err, size_t errlen) {
    const struct agent *other = plugins_find(a->desc.name);
    if (other) {
        set_err(err, errlen, "agent %s (%s) refused: the name is already used by %s",
                a->desc.name, a->path, other->path);
        return A2AD_ERR_CONFIG;
    }
    struct agent **grown = realloc(registry, (n_registry + 1) * sizeof *registry);
    if (!grown) {
        set_err(err, errlen, "agent %s: out of memory while loading it", a->desc.name);
        return A2AD_ERR_NOMEM;
    }
    registry = grown;
    a->index = (unsigned)n_registry;
    registry[n_registry++] = a;
    return A2AD_OK;
}

/* "echo, processor" for log lines that must say what IS loaded. */
static void loaded_names(char *out, size_t outlen) {
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n_registry && n < outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, "%s%s", i ? ", " : "", registry[i]->desc.name);
    if (n_registry == 0) snprintf(out, outlen, "none");
}

/* Load, check and init one file and add it to the registry. A refusal
 * returns A2AD_ERR_CONFIG with the one-line text in err (the caller logs it
 * and decides whether it is fatal); A2AD_ERR_NOMEM is the host's own problem
 * and always stops the load. */
static a2ad_status load_one(const struct config *cfg, const struct a2ad_host *host,
                            const char *path, char *err, size_t errlen) {
    void *dl = NULL;
    struct a2ad_agent desc;
    if (open_plugin(path, &dl, &desc, err, errlen) != A2AD_OK) return A2AD_ERR_CONFIG;

    const struct agent *other = plugins_find(desc.name);
    if (other) {
        set_err(err, errlen,
                "plugin %s refused: agent name \"%s\" is already used by %s; rename one of the "
                "agents or load only one of the files",
                path, desc.name, other->path);
        dlclose(dl);
        return A2AD_ERR_CONFIG;
    }

    struct agent *a = calloc(1, sizeof *a);
    struct agent **grown = realloc(registry, (n_registry + 1) * sizeof *registry);
    char *path_copy = strdup(path);
    if (grown) registry = grown;
    if (!a || !grown || !path_copy) {
        free(a);
        free(path_copy);
        dlclose(dl);
        set_err(err, errlen, "plugin %s: out of memory while loading it", path);
        return A2AD_ERR_NOMEM;
    }
    a->desc = desc;
    a->dl = dl;
    a->path = path_copy;
    a->index = (unsigned)n_registry;

    /* The operator's word beats the plugin author's, which beats the
     * daemon-wide default. */
    const struct agent_config *ac = config_agent(cfg, desc.name);
    if (ac && ac->max_duration_s)
        a->max_duration_s = ac->max_duration_s;
    else if (desc.max_duration_s)
        a->max_duration_s = desc.max_duration_s;
    else
        a->max_duration_s = cfg->max_duration_s;

    /* In the registry before init, so the host's vlog can already name the
     * agent behind init's log_ctx (it looks the index up). */
    registry[n_registry++] = a;
    if (desc.init) {
        /* An agent-level ctx: a2ad_log in init() is attributed to the agent
         * even though no job exists. */
        a2ad_ctx log_ctx = {host, WORKERS_AGENT_HANDLE(a->index)};
        const struct a2ad_option *opts = ac && ac->n_opts ? ac->opts : NULL;
        size_t n_opts = ac && ac->n_opts ? ac->n_opts : 0;
        a2ad_status s = desc.init(host, log_ctx, opts, n_opts, &a->state);
        if (s != A2AD_OK) {
            set_err(err, errlen,
                    "plugin %s refused: init of agent \"%s\" failed (%s); see its log lines "
                    "above and fix its [agent.%s] section",
                    path, desc.name, a2ad_status_name(s), desc.name);
            n_registry--;
            free(a->path);
            free(a);
            dlclose(dl);
            return A2AD_ERR_CONFIG;
        }
    }

    log_info("loaded agent %s %s from %s (max duration %u s)", desc.name,
             desc.version && desc.version[0] ? desc.version : "(no version)", path,
             (unsigned)a->max_duration_s);
    return A2AD_OK;
}

/* Handle the outcome of load_one: log a refusal, and say whether loading
 * must stop (errors fatal, or the host itself failed). */
static a2ad_status after_one(const struct config *cfg, a2ad_status s, const char *err) {
    if (s == A2AD_OK) return A2AD_OK;
    log_error("%s", err);
    if (s == A2AD_ERR_NOMEM) return s;
    return cfg->plugin_errors_fatal ? A2AD_ERR_CONFIG : A2AD_OK;
}

static char *path_join(const char *dir, const char *name, const char *suffix) {
    char *p = NULL;
    /* An empty directory means the current one; no leading "/" then. */
    int n = dir && dir[0] ? asprintf(&p, "%s/%s%s", dir, name, suffix)
                          : asprintf(&p, "%s%s", name, suffix);
    return n < 0 ? NULL : p;
}

/* plugin_load: "a, b ,c" -> exactly <dir>/a.so, <dir>/b.so, <dir>/c.so. */
static a2ad_status load_listed(const struct config *cfg, const struct a2ad_host *host) {
    char *list = strdup(cfg->plugin_load);
    if (!list) return A2AD_ERR_NOMEM;
    a2ad_status rc = A2AD_OK;
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok && rc == A2AD_OK;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t') tok++;
        char *end = tok + strlen(tok);
        while (end > tok && (end[-1] == ' ' || end[-1] == '\t')) *--end = '\0';
        if (!*tok) continue; /* "a,,b" or a trailing comma: nothing named */

        char err[ERR_LEN];
        a2ad_status s;
        if (strchr(tok, '/')) {
            /* A path would escape plugin_dir, the one place the operator
             * reviews; names only. */
            snprintf(err, sizeof err,
                     "plugin \"%s\" refused: the load list takes names, not paths; put the file "
                     "into the plugin directory and list its name without \".so\"",
                     tok);
            s = A2AD_ERR_CONFIG;
        } else {
            char *path = path_join(cfg->plugin_dir, tok, ".so");
            if (!path) {
                rc = A2AD_ERR_NOMEM;
                break;
            }
            s = load_one(cfg, host, path, err, sizeof err);
            free(path);
        }
        rc = after_one(cfg, s, err);
    }
    free(list);
    return rc;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.so in plugin_dir, sorted by file name so the load order (and so
 * which of two same-named agents wins) does not depend on the filesystem. */
static a2ad_status load_directory(const struct config *cfg, const struct a2ad_host *host) {
    const char *dir = cfg->plugin_dir && cfg->plugin_dir[0] ? cfg->plugin_dir : ".";
    DIR *d = opendir(dir);
    if (!d) {
        log_error("cannot read the plugin directory %s: %s; create it or point the "
                  "[plugins] directory setting at the built plugins",
                  dir, strerror(errno));
        return A2AD_ERR_CONFIG;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    a2ad_status rc = A2AD_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        /* Like the shell's *.so: hidden files are not candidates. */
        if (e->d_name[0] == '.' || len <= 3 || strcmp(e->d_name + len - 3, ".so") != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) {
                rc = A2AD_ERR_NOMEM;
                break;
            }
            names = grown;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = A2AD_ERR_NOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (n > 1) qsort(names, n, sizeof *names, compare_names);

    for (size_t i = 0; i < n && rc == A2AD_OK; i++) {
        char *path = path_join(cfg->plugin_dir && cfg->plugin_dir[0] ? cfg->plugin_dir : NULL,
                               names[i], "");
        if (!path) {
            rc = A2AD_ERR_NOMEM;
            break;
        }
        char err[ERR_LEN];
        rc = after_one(cfg, load_one(cfg, host, path, err, sizeof err), err);
        free(path);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

/* Checks on the whole set, once every plugin had its chance. */
static a2ad_status check_loaded(const struct config *cfg) {
    char names[ERR_LEN];
    loaded_names(names, sizeof names);

    /* A section for an agent that is not there is almost always a typo, and a
     * typo must not silently drop an agent's settings. */
    for (const struct agent_config *ac = cfg->agents; ac; ac = ac->next) {
        if (ac->name && plugins_find(ac->name)) continue;
        if (cfg->plugin_errors_fatal) {
            log_error("config section [agent.%s] names no loaded agent (loaded: %s); fix the "
                      "section name or load that agent's plugin",
                      ac->name ? ac->name : "", names);
            return A2AD_ERR_CONFIG;
        }
        log_warn("config section [agent.%s] names no loaded agent (loaded: %s); its settings "
                 "are ignored",
                 ac->name ? ac->name : "", names);
    }

    if (n_registry == 0) {
        log_error("no agent loaded from %s; build the plugins (make) or fix the [plugins] "
                  "directory and load settings",
                  cfg->plugin_dir && cfg->plugin_dir[0] ? cfg->plugin_dir : ".");
        return A2AD_ERR_CONFIG;
    }

    if (cfg->default_agent && cfg->default_agent[0]) {
        default_agent = plugins_find(cfg->default_agent);
        if (!default_agent) {
            log_error("default_agent \"%s\" is not a loaded agent (loaded: %s); fix "
                      "default_agent or load that agent's plugin",
                      cfg->default_agent, names);
            return A2AD_ERR_CONFIG;
        }
    } else {
        /* One agent needs no name to be found; with several, "/" would be a
         * guess, so it serves none. */
        default_agent = n_registry == 1 ? registry[0] : NULL;
    }
    return A2AD_OK;
}

a2ad_status plugins_load(const struct config *cfg, const struct a2ad_host *host) {
    if (!cfg) return A2AD_ERR_INVALID;
    if (n_registry > 0) {
        /* Loading over a live registry would leave two inits for one agent. */
        log_error("plugins are already loaded; unload them first");
        return A2AD_ERR_STATE;
    }
    a2ad_status rc = cfg->plugin_load && cfg->plugin_load[0] ? load_listed(cfg, host)
                                                              : load_directory(cfg, host);
    if (rc == A2AD_OK) rc = runner_load(cfg, plugins_add); /* exec agents */
    if (rc == A2AD_OK) rc = check_loaded(cfg);
    if (rc != A2AD_OK) plugins_unload(); /* all or nothing */
    return rc;
}
