/* plugins - find, load, check and initialise agent plugins (*.so).
 *
 * The loader is deliberately suspicious: a plugin is a file someone built
 * somewhere, possibly against another a2ad. Everything that can be checked
 * without running plugin code beyond its entry function (file type, dlopen,
 * the entry symbol, ABI major, descriptor size, name, required members) is
 * checked before init() runs, and
 * every refusal is ONE error line naming the file and the fix, because that
 * line is all an operator sees in the journal when start-up fails.
 *
 * Live changes: a load copies the file into a private directory (mode 0700,
 * one file per load) and dlopen()s the copy, so overwriting the original in
 * place never changes code that runs, and two loads of one path get two
 * handles. One function, reconcile(), brings the registry in line with the
 * directory and the settings; start-up, SIGHUP and the inotify watcher all
 * call it, serialised by recon_lock.
 */
#include "agents/plugins.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "agents/runner.h"
#include "agents/workers.h"

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

/* The registry: name -> current version, in load order. Pointers, so a
 * struct agent * stays put while the array changes. Guarded by reg_lock,
 * which is never held while plugin code runs. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct agent **registry;
static size_t n_registry, cap_registry;
static char *default_name;          /* [server] default_agent; "" = the only agent */
static struct agent *all_versions;  /* every record alive, by next_version */
static unsigned next_index;

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
/* The file itself: a regular file, not a link. Statuses: NOT_FOUND/IO (the
 * file), INVALID (not a regular file). */
static a2ad_status check_file_type(const char *path, struct stat *st, char *err, size_t errlen) {
    /* lstat, not stat: a symbolic link in the plugin directory is a classic
     * way to load something other than what the operator reviewed. */
    if (lstat(path, st) != 0) {
        int e = errno;
        set_err(err, errlen,
                "plugin %s refused: %s; check the plugin directory, and that the load list "
                "names plugins without \".so\"",
                path, strerror(e));
        return e == ENOENT || e == ENOTDIR ? A2AD_ERR_NOT_FOUND : A2AD_ERR_IO;
    }
    if (!S_ISREG(st->st_mode)) {
        set_err(err, errlen,
                "plugin %s refused: not a regular file (symbolic links and directories are "
                "not followed); put the .so file itself there",
                path);
        return A2AD_ERR_INVALID;
    }
    return A2AD_OK;
}

/* dlopen dlpath (path itself, or its private copy) and check everything
 * that needs no plugin code but the entry function; refusals name path. On
 * success *dl_out is the open handle and *desc a zero-extended copy of the
 * descriptor; on failure nothing stays open, err holds the one-line refusal
 * and the status is A2AD_ERR_ABI. */
static a2ad_status open_plugin(const char *dlpath, const char *path, void **dl_out,
                               struct a2ad_agent *desc, char *err, size_t errlen) {
    /* RTLD_NOW: an unresolved symbol fails here, at start-up, with dlerror's
     * text, instead of killing a worker in the middle of a job. RTLD_LOCAL:
     * two plugins defining the same helper must not interpose each other. */
    dlerror();
    void *dl = dlopen(dlpath, RTLD_NOW | RTLD_LOCAL);
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
    if (!DESC_COVERS(n, input_modes)) desc->input_modes = NULL;

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
    struct stat st;
    a2ad_status s = check_file_type(path, &st, err, errlen);
    if (s != A2AD_OK) return s;
    void *dl = NULL;
    struct a2ad_agent desc;
    s = open_plugin(path, path, &dl, &desc, err, errlen);
    if (s == A2AD_OK) dlclose(dl);
    return s;
}

/* ---- settings (a private copy of what reconcile needs) -------------------- */

struct psettings {
    char *dir, *load, *default_agent;
    bool fatal;
    unsigned max_duration_s;
    struct agent_config *agents;
};

static void settings_free(struct psettings *s) {
    free(s->dir);
    free(s->load);
    free(s->default_agent);
    config_agents_free(s->agents);
    memset(s, 0, sizeof *s);
}

static a2ad_status settings_copy(struct psettings *s, const struct config *cfg) {
    memset(s, 0, sizeof *s);
    s->dir = strdup(cfg->plugin_dir && cfg->plugin_dir[0] ? cfg->plugin_dir : "");
    s->load = strdup(cfg->plugin_load ? cfg->plugin_load : "");
    s->default_agent = strdup(cfg->default_agent ? cfg->default_agent : "");
    s->fatal = cfg->plugin_errors_fatal;
    s->max_duration_s = cfg->max_duration_s;
    bool ok = s->dir && s->load && s->default_agent;
    struct agent_config **tail = &s->agents;
    for (const struct agent_config *a = cfg->agents; a && ok; a = a->next) {
        struct agent_config *c = calloc(1, sizeof *c);
        if (!c) {
            ok = false;
            break;
        }
        *tail = c;
        tail = &c->next;
        *c = *a;
        c->next = NULL;
        /* Only the name, the options and the numbers are kept here; the
         * runner's strings stay with the configuration they came from. */
        c->isolation = c->exec = c->description = c->version = NULL;
        c->name = strdup(a->name ? a->name : "");
        c->opts = a->n_opts ? calloc(a->n_opts, sizeof *c->opts) : NULL;
        c->n_opts = 0;
        ok = c->name && (!a->n_opts || c->opts);
        for (size_t i = 0; ok && i < a->n_opts; i++) {
            c->opts[i].key = strdup(a->opts[i].key);
            c->opts[i].value = strdup(a->opts[i].value);
            c->n_opts++;
            ok = c->opts[i].key && c->opts[i].value;
        }
    }
    if (!ok) settings_free(s);
    return ok ? A2AD_OK : A2AD_ERR_NOMEM;
}

static const struct agent_config *settings_agent(const struct psettings *s, const char *name) {
    for (const struct agent_config *a = s->agents; a; a = a->next)
        if (strcmp(a->name, name) == 0) return a;
    return NULL;
}

/* The operator's word beats the plugin author's, which beats the
 * daemon-wide default. */
static uint32_t effective_max(const struct psettings *s, const struct agent_config *ac,
                              const struct a2ad_agent *desc) {
    if (ac && ac->max_duration_s) return ac->max_duration_s;
    if (desc->max_duration_s) return desc->max_duration_s;
    return s->max_duration_s;
}

/* What init() and the watchdog see of an agent's section, as one string: a
 * different string means a new version. (workers and queue_length apply
 * live and are not part of it.) */
static char *settings_text(const struct psettings *s, const char *name,
                           const struct a2ad_agent *desc) {
    const struct agent_config *ac = settings_agent(s, name);
    size_t n = 32;
    for (size_t i = 0; ac && i < ac->n_opts; i++)
        n += strlen(ac->opts[i].key) + strlen(ac->opts[i].value) + 2;
    char *t = malloc(n);
    if (!t) return NULL;
    size_t o = (size_t)snprintf(t, n, "max=%u\n", (unsigned)effective_max(s, ac, desc));
    for (size_t i = 0; ac && i < ac->n_opts; i++)
        o += (size_t)snprintf(t + o, n - o, "%s=%s\n", ac->opts[i].key, ac->opts[i].value);
    return t;
}

/* Guarded by recon_lock. */
static pthread_mutex_t recon_lock = PTHREAD_MUTEX_INITIALIZER;
static struct psettings cur;
static const struct a2ad_host *host_tab;
static char *private_dir;
static unsigned copy_seq;
/* Files refused as they are now, so the next event does not log them again. */
static struct refused {
    char *path;
    uint64_t id[5];
} *refused;
static size_t n_refused;

static void refused_clear(void) {
    for (size_t i = 0; i < n_refused; i++) free(refused[i].path);
    free(refused);
    refused = NULL;
    n_refused = 0;
}

static bool refused_before(const char *path, const uint64_t id[5]) {
    for (size_t i = 0; i < n_refused; i++)
        if (strcmp(refused[i].path, path) == 0 && memcmp(refused[i].id, id, 5 * sizeof *id) == 0)
            return true;
    return false;
}

static void refused_note(const char *path, const uint64_t id[5]) {
    for (size_t i = 0; i < n_refused; i++)
        if (strcmp(refused[i].path, path) == 0) {
            memcpy(refused[i].id, id, 5 * sizeof *id);
            return;
        }
    struct refused *g = realloc(refused, (n_refused + 1) * sizeof *g);
    char *p = strdup(path);
    if (!g || !p) {
        free(p);
        if (g) refused = g;
        return;
    }
    refused = g;
    refused[n_refused].path = p;
    memcpy(refused[n_refused].id, id, 5 * sizeof *id);
    n_refused++;
}

static void file_id(const struct stat *st, uint64_t id[5]) {
    id[0] = (uint64_t)st->st_dev;
    id[1] = (uint64_t)st->st_ino;
    id[2] = (uint64_t)st->st_size;
    id[3] = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
    id[4] = (uint64_t)st->st_ctim.tv_sec * 1000000000u + (uint64_t)st->st_ctim.tv_nsec;
}

/* ---- records and pins ----------------------------------------------------------- */

static void record_free(struct agent *a) {
    pthread_mutex_lock(&reg_lock);
    for (struct agent **p = &all_versions; *p; p = &(*p)->next_version)
        if (*p == a) {
            *p = a->next_version;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    free(a->path);
    free(a->copy);
    free(a->name);
    free(a->version);
    free(a->settings);
    free(a);
}

void plugins_hold(const struct agent *a) {
    if (a) atomic_fetch_add(&((struct agent *)a)->refs, 1);
}

void plugins_drop(const struct agent *ca) {
    struct agent *a = (struct agent *)ca;
    if (a && atomic_fetch_sub(&a->refs, 1) == 1 && a->owned) record_free(a);
}

/* The code goes: destroy(), dlclose, the private copy deleted. */
static void unload_code(struct agent *a) {
    if (a->desc.destroy) a->desc.destroy(a->state);
    a->state = NULL;
    if (a->dl) dlclose(a->dl);
    a->dl = NULL;
    if (a->copy) unlink(a->copy);
    /* What pointed into the unloaded code goes; name, version (owned) and
     * the numbers stay for the tasks that still name this version. */
    a->desc.description = NULL;
    a->desc.skills = NULL;
    a->desc.n_skills = 0;
    a->desc.init = NULL;
    a->desc.destroy = NULL;
    a->desc.validate = NULL;
    a->desc.run_background = NULL;
    a->desc.on_message = NULL;
    a->desc.input_modes = NULL;
    a->desc.run_job = NULL;
}

void plugins_pin(const struct agent *a) {
    if (a) atomic_fetch_add(&((struct agent *)a)->pins, 1);
}

void plugins_put(const struct agent *ca) {
    struct agent *a = (struct agent *)ca;
    if (!a || atomic_fetch_sub(&a->pins, 1) != 1 || !a->owned) return;
    log_info("unloaded agent %s %s (file %s)", a->name,
             a->version[0] ? a->version : "(no version)", a->path);
    unload_code(a);
    plugins_drop(a); /* the registry's record reference */
}

bool plugins_agent_name(unsigned index, char *out, size_t outlen) {
    bool found = false;
    pthread_mutex_lock(&reg_lock);
    for (struct agent *a = all_versions; a; a = a->next_version)
        if (a->index == index) {
            snprintf(out, outlen, "%s", a->name);
            found = true;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    return found;
}

/* ---- the registry ------------------------------------------------------------- */

static struct agent *find_locked(const char *name) {
    for (size_t i = 0; i < n_registry; i++)
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    return NULL;
}

static struct agent *default_locked(void) {
    if (default_name && default_name[0]) return find_locked(default_name);
    /* One agent needs no name to be found; with several, "/" would be a
     * guess, so it serves none. */
    return n_registry == 1 ? registry[0] : NULL;
}

size_t plugins_count(void) {
    pthread_mutex_lock(&reg_lock);
    size_t n = n_registry;
    pthread_mutex_unlock(&reg_lock);
    return n;
}

const struct agent *plugins_at(size_t index) {
    pthread_mutex_lock(&reg_lock);
    const struct agent *a = index < n_registry ? registry[index] : NULL;
    pthread_mutex_unlock(&reg_lock);
    return a;
}

const struct agent *plugins_find(const char *name) {
    if (!name) return NULL;
    pthread_mutex_lock(&reg_lock);
    const struct agent *a = find_locked(name);
    pthread_mutex_unlock(&reg_lock);
    return a;
}

const struct agent *plugins_default(void) {
    pthread_mutex_lock(&reg_lock);
    const struct agent *a = default_locked();
    pthread_mutex_unlock(&reg_lock);
    return a;
}

const struct agent *plugins_get(const char *name) {
    if (!name) return NULL;
    pthread_mutex_lock(&reg_lock);
    struct agent *a = find_locked(name);
    if (a) atomic_fetch_add(&a->pins, 1);
    pthread_mutex_unlock(&reg_lock);
    return a;
}

const struct agent *plugins_get_default(void) {
    pthread_mutex_lock(&reg_lock);
    struct agent *a = default_locked();
    if (a) atomic_fetch_add(&a->pins, 1);
    pthread_mutex_unlock(&reg_lock);
    return a;
}

void plugins_each(void (*fn)(const struct agent *a, void *arg), void *arg) {
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < n_registry; i++) fn(registry[i], arg);
    pthread_mutex_unlock(&reg_lock);
}

/* Agents removed lately, so their endpoint can say so instead of just
 * "unknown agent". Bounded: the oldest is forgotten first. */
#define REMOVED_KEPT 32
static struct {
    char name[NAME_MAX_LEN + 1];
    char why[200];
} removed[REMOVED_KEPT];
static unsigned n_removed_total;

static void removed_note(const char *name, const char *why) {
    pthread_mutex_lock(&reg_lock);
    unsigned i = n_removed_total++ % REMOVED_KEPT;
    snprintf(removed[i].name, sizeof removed[i].name, "%s", name);
    snprintf(removed[i].why, sizeof removed[i].why, "%s", why);
    pthread_mutex_unlock(&reg_lock);
}

static void removed_forget_locked(const char *name) {
    for (unsigned i = 0; i < REMOVED_KEPT; i++)
        if (strcmp(removed[i].name, name) == 0) removed[i].name[0] = '\0';
}

bool plugins_removed(const char *name, char *why, size_t n) {
    bool found = false;
    pthread_mutex_lock(&reg_lock);
    for (unsigned k = 0; k < REMOVED_KEPT && !found; k++) {
        unsigned i = (n_removed_total - 1 - k) % REMOVED_KEPT; /* newest first */
        if (removed[i].name[0] && strcmp(removed[i].name, name) == 0) {
            snprintf(why, n, "%s", removed[i].why);
            found = true;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return found;
}

/* Put a into the registry in place of the version named like it (returned,
 * still pinned by the registry: the caller retires it), or at the end. */
static struct agent *install(struct agent *a, bool *nomem) {
    *nomem = false;
    pthread_mutex_lock(&reg_lock);
    struct agent *old = NULL;
    removed_forget_locked(a->name);
    for (size_t i = 0; i < n_registry && !old; i++)
        if (strcmp(registry[i]->name, a->name) == 0) {
            old = registry[i];
            registry[i] = a;
        }
    if (!old) {
        if (n_registry == cap_registry) {
            size_t ncap = cap_registry ? 2 * cap_registry : 8;
            struct agent **g = realloc(registry, ncap * sizeof *g);
            if (!g) {
                *nomem = true;
                pthread_mutex_unlock(&reg_lock);
                return NULL;
            }
            registry = g;
            cap_registry = ncap;
        }
        registry[n_registry++] = a;
    }
    pthread_mutex_unlock(&reg_lock);
    return old;
}

/* Take a out of the registry (the caller retires it). */
static void take_out(struct agent *a) {
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < n_registry; i++)
        if (registry[i] == a) {
            memmove(registry + i, registry + i + 1, (n_registry - i - 1) * sizeof *registry);
            n_registry--;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
}

static const char *vname(const struct agent *a) {
    return a->version && a->version[0] ? a->version : "(no version)";

}

/* "echo, processor" for log lines that must say what IS loaded. */
static void loaded_names(char *out, size_t outlen) {
    size_t n = 0;
    out[0] = '\0';
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < n_registry && n < outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, "%s%s", i ? ", " : "", registry[i]->name);
    if (n_registry == 0) snprintf(out, outlen, "none");
    pthread_mutex_unlock(&reg_lock);
}

/* ---- one version ------------------------------------------------------------- */

/* A directory only this process uses for its private copies:
 * $RUNTIME_DIRECTORY (systemd cleans it), else $TMPDIR, else /tmp. */
static bool private_dir_ready(char *err, size_t errlen) {
    if (private_dir) return true;
    const char *base = getenv("RUNTIME_DIRECTORY");
    char first[512];
    if (base && base[0]) { /* systemd lists several with ':' */
        snprintf(first, sizeof first, "%.*s", (int)strcspn(base, ":"), base);
        base = first;
    } else {
        base = getenv("TMPDIR");
        if (!base || !base[0]) base = "/tmp";
    }
    char *tmpl = NULL;
    if (asprintf(&tmpl, "%s/a2ad-plugins.XXXXXX", base) < 0) return false;
    if (!mkdtemp(tmpl)) { /* mode 0700 */
        set_err(err, errlen,
                "cannot create a private directory for plugin copies in %s: %s; make it "
                "writable or set RUNTIME_DIRECTORY/TMPDIR",
                base, strerror(errno));
        free(tmpl);
        return false;
    }
    private_dir = tmpl;
    return true;
}

/* Copy path into the private directory. A2AD_ERR_STATE when the file
 * changed while it was copied (a writer is still at it: the next event
 * retries). id receives the identity of what was copied. */
static a2ad_status copy_private(const char *path, char **copy_out, uint64_t id[5], char *err,
                                size_t errlen) {
    *copy_out = NULL;
    if (!private_dir_ready(err, errlen)) return A2AD_ERR_IO;
    int in = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat before, after;
    if (in < 0 || fstat(in, &before) != 0) {
        set_err(err, errlen, "plugin %s refused: cannot read it: %s", path, strerror(errno));
        if (in >= 0) close(in);
        return A2AD_ERR_IO;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *copy = NULL;
    if (asprintf(&copy, "%s/%u-%s", private_dir, ++copy_seq, base) < 0) {
        close(in);
        return A2AD_ERR_NOMEM;
    }
    int out = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    a2ad_status st = out < 0 ? A2AD_ERR_IO : A2AD_OK;
    char buf[65536];
    while (st == A2AD_OK) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n < 0) st = A2AD_ERR_IO;
            break;
        }
        for (ssize_t w = 0; w < n && st == A2AD_OK;) {
            ssize_t k = write(out, buf + w, (size_t)(n - w));
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) st = A2AD_ERR_IO;
            else w += k;
        }
    }
    if (st != A2AD_OK)
        set_err(err, errlen, "plugin %s refused: cannot copy it to %s: %s", path, private_dir,
                strerror(errno));
    if (out >= 0 && close(out) != 0 && st == A2AD_OK) st = A2AD_ERR_IO;
    if (st == A2AD_OK && (fstat(in, &after) != 0 || after.st_size != before.st_size ||
                          after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
                          after.st_mtim.tv_nsec != before.st_mtim.tv_nsec ||
                          after.st_ctim.tv_sec != before.st_ctim.tv_sec ||
                          after.st_ctim.tv_nsec != before.st_ctim.tv_nsec)) {
        set_err(err, errlen, "plugin %s changed while it was copied; retried when written", path);
        st = A2AD_ERR_STATE;
    }
    close(in);
    if (st != A2AD_OK) {
        if (out >= 0) unlink(copy);
        free(copy);
        return st;
    }
    file_id(&before, id);
    *copy_out = copy;
    return A2AD_OK;
}

static void version_discard(struct agent *a) {
    if (a->dl) dlclose(a->dl);
    if (a->copy) unlink(a->copy);
    free(a->path);
    free(a->copy);
    free(a->name);
    free(a->version);
    free(a->settings);
    free(a);
}

/* Open path as a new version (copied, checked, not yet initialised).
 * A2AD_ERR_STATE: being written, try later; other errors: refused (err). */
static a2ad_status version_open(const char *path, struct agent **out, char *err, size_t errlen) {
    *out = NULL;
    struct stat st;
    a2ad_status s = check_file_type(path, &st, err, errlen);
    if (s != A2AD_OK) return s;
    struct agent *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(path))) {
        free(a);
        return A2AD_ERR_NOMEM;
    }
    s = copy_private(path, &a->copy, a->file_id, err, errlen);
    if (s == A2AD_OK) s = open_plugin(a->copy, path, &a->dl, &a->desc, err, errlen);
    if (s == A2AD_OK) {
        a->name = strdup(a->desc.name);
        a->version = strdup(a->desc.version ? a->desc.version : "");
        a->settings = settings_text(&cur, a->desc.name, &a->desc);
        if (!a->name || !a->version || !a->settings) s = A2AD_ERR_NOMEM;
        a->desc.name = a->name;
        a->desc.version = a->version;
        a->max_duration_s = effective_max(&cur, settings_agent(&cur, a->desc.name), &a->desc);
        a->owned = true;
        atomic_init(&a->pins, 1); /* the registry's */
        atomic_init(&a->refs, 1);
    }
    if (s != A2AD_OK) {
        version_discard(a);
        return s;
    }
    *out = a;
    return A2AD_OK;
}

/* init(), with the version findable by its index for init's log lines. */
static a2ad_status version_init(struct agent *a, char *err, size_t errlen) {
    pthread_mutex_lock(&reg_lock);
    a->index = next_index++;
    a->next_version = all_versions;
    all_versions = a;
    pthread_mutex_unlock(&reg_lock);
    if (!a->desc.init) return A2AD_OK;
    /* An agent-level ctx: a2ad_log in init() is attributed to the agent
     * even though no job exists. */
    const struct agent_config *ac = settings_agent(&cur, a->name);
    a2ad_ctx log_ctx = {host_tab, WORKERS_AGENT_HANDLE(a->index)};
    const struct a2ad_option *opts = ac && ac->n_opts ? ac->opts : NULL;
    size_t n_opts = ac && ac->n_opts ? ac->n_opts : 0;
    a2ad_status s = a->desc.init(host_tab, log_ctx, opts, n_opts, &a->state);
    if (s == A2AD_OK) return A2AD_OK;
    set_err(err, errlen,
            "plugin %s refused: init of agent \"%s\" failed (%s); see its log lines above and "
            "fix its [agent.%s] section",
            a->path, a->name, a2ad_status_name(s), a->name);
    pthread_mutex_lock(&reg_lock);
    for (struct agent **p = &all_versions; *p; p = &(*p)->next_version)
        if (*p == a) {
            *p = a->next_version;
            break;
        }
    /* Indexes stay dense when nothing else took one meanwhile. */
    if (next_index == a->index + 1) next_index--;
    pthread_mutex_unlock(&reg_lock);
    return A2AD_ERR_CONFIG;
}

/* ---- reconcile: the registry follows the directory and the settings ------- */

static char *path_join(const char *dir, const char *name, const char *suffix) {
    char *p = NULL;
    /* An empty directory means the current one; no leading "/" then. */
    int n = dir && dir[0] ? asprintf(&p, "%s/%s%s", dir, name, suffix)
                          : asprintf(&p, "%s%s", name, suffix);
    return n < 0 ? NULL : p;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct strv {
    char **v;
    size_t n, cap;
};

static bool strv_add(struct strv *s, char *str /* taken */) {
    if (!str) return false;
    if (s->n == s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 16;
        char **g = realloc(s->v, ncap * sizeof *g);
        if (!g) {
            free(str);
            return false;
        }
        s->v = g;
        s->cap = ncap;
    }
    s->v[s->n++] = str;
    return true;
}

static void strv_free(struct strv *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static bool strv_has(const struct strv *s, const char *str) {
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i] && strcmp(s->v[i], str) == 0) return true;
    return false;
}

/* Names being written right now (created or modified, not yet closed):
 * never opened. Set by the watcher. */
static pthread_mutex_t dirty_lock = PTHREAD_MUTEX_INITIALIZER;
static struct strv dirty;

static bool is_dirty(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    pthread_mutex_lock(&dirty_lock);
    bool d = strv_has(&dirty, base);
    pthread_mutex_unlock(&dirty_lock);
    return d;
}

static void set_dirty(const char *name, bool on) {
    pthread_mutex_lock(&dirty_lock);
    size_t i = 0;
    while (i < dirty.n && strcmp(dirty.v[i], name) != 0) i++;
    if (on && i == dirty.n)
        strv_add(&dirty, strdup(name));
    else if (!on && i < dirty.n) {
        free(dirty.v[i]);
        dirty.v[i] = dirty.v[--dirty.n];
    }
    pthread_mutex_unlock(&dirty_lock);
}

/* The files the settings name, in load order; listed names that are paths
 * are logged as refusals here. */
static a2ad_status candidates(struct strv *out, bool startup) {
    memset(out, 0, sizeof *out);
    if (cur.load[0]) {
        /* plugin_load: "a, b ,c" -> exactly <dir>/a.so, <dir>/b.so, <dir>/c.so. */
        char *list = strdup(cur.load);
        if (!list) return A2AD_ERR_NOMEM;
        a2ad_status rc = A2AD_OK;
        char *save = NULL;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ' || *tok == '\t') tok++;
            char *end = tok + strlen(tok);
            while (end > tok && (end[-1] == ' ' || end[-1] == '\t')) *--end = '\0';
            if (!*tok) continue; /* "a,,b" or a trailing comma: nothing named */
            if (strchr(tok, '/')) {
                /* A path would escape plugin_dir, the one place the operator
                 * reviews; names only. */
                log_error("plugin \"%s\" refused: the load list takes names, not paths; put the "
                          "file into the plugin directory and list its name without \".so\"",
                          tok);
                if (startup && cur.fatal) {
                    rc = A2AD_ERR_CONFIG;
                    break;
                }
                continue;
            }
            if (!strv_add(out, path_join(cur.dir, tok, ".so"))) {
                rc = A2AD_ERR_NOMEM;
                break;
            }
        }
        free(list);
        if (rc != A2AD_OK) strv_free(out);
        return rc;
    }
    /* Every *.so in plugin_dir, sorted by file name so the load order (and
     * so which of two same-named agents wins) does not depend on the
     * filesystem. */
    const char *dir = cur.dir[0] ? cur.dir : ".";
    DIR *d = opendir(dir);
    if (!d) {
        log_error("cannot read the plugin directory %s: %s; create it or point the "
                  "[plugins] directory setting at the built plugins",
                  dir, strerror(errno));
        return A2AD_ERR_CONFIG;
    }
    a2ad_status rc = A2AD_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        /* Like the shell's *.so: hidden files (an install in progress,
         * .x.so.tmp) are not candidates. */
        if (e->d_name[0] == '.' || len <= 3 || strcmp(e->d_name + len - 3, ".so") != 0) continue;
        if (!strv_add(out, path_join(cur.dir[0] ? cur.dir : NULL, e->d_name, ""))) {
            rc = A2AD_ERR_NOMEM;
            break;
        }
    }
    closedir(d);
    if (rc != A2AD_OK) strv_free(out);
    else if (out->n > 1) qsort(out->v, out->n, sizeof *out->v, compare_names);
    return rc;
}

static struct agent *find_by_path(const char *path) {
    pthread_mutex_lock(&reg_lock);
    struct agent *a = NULL;
    for (size_t i = 0; i < n_registry && !a; i++)
        if (strcmp(registry[i]->path, path) == 0) a = registry[i];
    pthread_mutex_unlock(&reg_lock);
    return a;
}

struct seen {
    struct agent **v;
    size_t n;
};

static void seen_add(struct seen *s, struct agent *a) {
    if (!a) return;
    struct agent **g = realloc(s->v, (s->n + 1) * sizeof *g);
    if (!g) return; /* out of memory: at worst the agent is removed, and reloaded next time */
    s->v = g;
    s->v[s->n++] = a;
}

static bool seen_has(const struct seen *s, const struct agent *a) {
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i] == a) return true;
    return false;
}

/* Retire a version that left the registry: its pin goes; the code is
 * unloaded once its last job ended. */
static void retire(struct agent *a) { plugins_put(a); }

static void apply_limits(const struct agent *a, void *arg) {
    (void)arg;
    const struct agent_config *ac = settings_agent(&cur, a->name);
    workers_agent_config(a->name, ac ? ac->workers : 0, ac ? ac->queue_length : 0);
}

/* Load, replace and remove versions until the registry matches the
 * settings and the files. Each change and each refusal is one log line.
 * At start-up with errors = fatal the first refusal stops it
 * (A2AD_ERR_CONFIG). Thread: any, with recon_lock held. */
static a2ad_status reconcile(bool startup) {
    struct strv files;
    a2ad_status rc = candidates(&files, startup);
    if (rc != A2AD_OK) return rc;
    struct seen seen = {0};
    for (size_t i = 0; i < files.n && rc == A2AD_OK; i++) {
        const char *path = files.v[i];
        struct agent *was = find_by_path(path); /* the version from this file, if any */
        struct stat st;
        uint64_t id[5] = {0};
        bool exists = lstat(path, &st) == 0;
        if (exists) file_id(&st, id);
        if (!exists && was) continue; /* its file is gone: removed below */
        if (exists && is_dirty(path)) { /* still being written: keep what runs */
            seen_add(&seen, was);
            continue;
        }
        if (was && exists && memcmp(was->file_id, id, sizeof id) == 0) {
            char *now = settings_text(&cur, was->name, &was->desc);
            bool same = now && strcmp(now, was->settings) == 0;
            free(now);
            if (same) {
                seen_add(&seen, was);
                continue;
            }
        }
        if (refused_before(path, id)) { /* unchanged since refused (or still missing) */
            seen_add(&seen, was);
            continue;
        }

        char err[ERR_LEN];
        struct agent *a = NULL;
        a2ad_status s = version_open(path, &a, err, sizeof err);
        if (s == A2AD_ERR_NOMEM) {
            rc = s;
            break;
        }
        if (s == A2AD_ERR_STATE) { /* being written: the close event brings it back */
            log_debug("%s", err);
            seen_add(&seen, was);
            continue;
        }
        if (s == A2AD_OK) {
            struct agent *other = (struct agent *)plugins_find(a->name);
            /* Two files, one name: the one serving it keeps it (at start-up,
             * the first in load order). */
            if (other && other != was && strv_has(&files, other->path)) {
                set_err(err, sizeof err,
                        "plugin %s refused: agent name \"%s\" is already used by %s; rename one "
                        "of the agents or load only one of the files",
                        path, a->name, other->path);
                version_discard(a);
                s = A2AD_ERR_CONFIG;
            }
        }
        if (s == A2AD_OK && (s = version_init(a, err, sizeof err)) != A2AD_OK) version_discard(a);
        if (s != A2AD_OK) {
            if (was)
                log_error("%s; agent %s %s from that file stays loaded", err, was->name,
                          vname(was));
            else
                log_error("%s", err);
            refused_note(path, id);
            seen_add(&seen, was);
            if (startup && cur.fatal) rc = A2AD_ERR_CONFIG;
            continue;
        }

        bool nomem;
        struct agent *old = install(a, &nomem);
        if (nomem) {
            plugins_put(a);
            rc = A2AD_ERR_NOMEM;
            break;
        }
        seen_add(&seen, a);
        apply_limits(a, NULL);
        if (old)
            log_info("replaced agent %s %s (file %s) by %s from %s (max duration %u s): new jobs "
                     "go to %s, jobs already accepted finish on %s",
                     a->name, vname(old), old->path, vname(a), path, (unsigned)a->max_duration_s,
                     vname(a), vname(old));
        else
            log_info("loaded agent %s %s from %s (max duration %u s)", a->name, vname(a), path,
                     (unsigned)a->max_duration_s);
        if (old) retire(old);
        /* This file used to serve another name: that agent is gone. */
        if (was && was != old) {
            take_out(was);
            workers_agent_removed(was->name, "its plugin file now holds another agent");
            removed_note(was->name, "its plugin file now holds another agent");
            log_info("removed agent %s %s (file %s): the file now holds agent %s", was->name,
                     vname(was), was->path, a->name);
            retire(was);
        }
    }

    /* Whatever was not seen lost its file (or the load list dropped it). */
    for (;;) {
        struct agent *gone = NULL;
        pthread_mutex_lock(&reg_lock);
        for (size_t i = 0; i < n_registry && !gone; i++)
            if (!registry[i]->fixed && !seen_has(&seen, registry[i])) gone = registry[i];
        pthread_mutex_unlock(&reg_lock);
        if (!gone) break;
        take_out(gone);
        char why[600];
        snprintf(why, sizeof why, "its plugin file %s was removed", gone->path);
        removed_note(gone->name, why);
        workers_agent_removed(gone->name, why);
        log_info("removed agent %s %s (file %s): the file is gone or no longer listed; "
                 "running jobs finish, queued jobs fail",
                 gone->name, vname(gone), gone->path);
        retire(gone);
    }
    free(seen.v);
    strv_free(&files);
    plugins_each(apply_limits, NULL);
    return rc;
}

/* An agent that is not a .so (an exec agent, runner.c): a version like any
 * other, but fixed: the plugin directory does not own it, so reconcile
 * never removes it. Takes a on success (its config strings are copied). */
a2ad_status plugins_add(struct agent *a, char *err, size_t errlen) {
    const struct agent *other = plugins_get(a->desc.name);
    if (other) {
        set_err(err, errlen, "agent %s (%s) refused: the name is already used by %s",
                a->desc.name, a->path, other->path);
        plugins_put(other);
        return A2AD_ERR_CONFIG;
    }
    a->name = strdup(a->desc.name);
    a->version = strdup(a->desc.version ? a->desc.version : "");
    a->settings = strdup(a->desc.description ? a->desc.description : "");
    if (!a->name || !a->version || !a->settings) {
        free(a->name);
        free(a->version);
        free(a->settings);
        a->name = a->version = a->settings = NULL;
        set_err(err, errlen, "agent %s: out of memory while loading it", a->desc.name);
        return A2AD_ERR_NOMEM;
    }
    a->desc.name = a->name;
    a->desc.version = a->version;
    a->desc.description = a->settings; /* owned here: the config may be reloaded */
    a->owned = true;
    a->fixed = true;
    atomic_init(&a->pins, 1); /* the registry's */
    atomic_init(&a->refs, 1);
    pthread_mutex_lock(&reg_lock);
    a->index = next_index++;
    a->next_version = all_versions;
    all_versions = a;
    pthread_mutex_unlock(&reg_lock);
    bool nomem;
    install(a, &nomem);
    if (nomem) {
        log_error("agent %s: out of memory while loading it", a->desc.name);
        plugins_put(a);
        return A2AD_OK; /* a is freed with its last pin, not by the caller */
    }
    apply_limits(a, NULL);
    return A2AD_OK;
}

/* Checks on the whole set, once every plugin had its chance. */
static a2ad_status check_loaded(bool startup) {
    char names[ERR_LEN];
    loaded_names(names, sizeof names);

    /* A section for an agent that is not there is almost always a typo, and a
     * typo must not silently drop an agent's settings. */
    for (const struct agent_config *ac = cur.agents; ac; ac = ac->next) {
        if (plugins_find(ac->name)) continue;
        if (startup && cur.fatal) {
            log_error("config section [agent.%s] names no loaded agent (loaded: %s); fix the "
                      "section name or load that agent's plugin",
                      ac->name, names);
            return A2AD_ERR_CONFIG;
        }
        log_warn("config section [agent.%s] names no loaded agent (loaded: %s); its settings "
                 "are ignored",
                 ac->name, names);
    }

    if (startup && plugins_count() == 0) {
        log_error("no agent loaded from %s; build the plugins (make) or fix the [plugins] "
                  "directory and load settings",
                  cur.dir[0] ? cur.dir : ".");
        return A2AD_ERR_CONFIG;
    }

    if (cur.default_agent[0] && !plugins_find(cur.default_agent)) {
        if (startup) {
            log_error("default_agent \"%s\" is not a loaded agent (loaded: %s); fix "
                      "default_agent or load that agent's plugin",
                      cur.default_agent, names);
            return A2AD_ERR_CONFIG;
        }
        log_warn("default_agent \"%s\" is not a loaded agent (loaded: %s); \"/\" serves no "
                 "agent until it is",
                 cur.default_agent, names);
    }
    return A2AD_OK;
}

static void set_default_name(void) {
    char *d = strdup(cur.default_agent);
    pthread_mutex_lock(&reg_lock);
    free(default_name);
    default_name = d;
    pthread_mutex_unlock(&reg_lock);
}

a2ad_status plugins_load(const struct config *cfg, const struct a2ad_host *host) {
    if (!cfg) return A2AD_ERR_INVALID;
    if (plugins_count() > 0) {
        /* Loading over a live registry would leave two inits for one agent. */
        log_error("plugins are already loaded; unload them first");
        return A2AD_ERR_STATE;
    }
    pthread_mutex_lock(&recon_lock);
    settings_free(&cur);
    a2ad_status rc = settings_copy(&cur, cfg);
    host_tab = host;
    refused_clear();
    if (rc == A2AD_OK) {
        set_default_name();
        rc = reconcile(true);
    }
    if (rc == A2AD_OK) rc = runner_load(cfg, plugins_add); /* exec agents, at start-up only */
    if (rc == A2AD_OK) rc = check_loaded(true);
    pthread_mutex_unlock(&recon_lock);
    if (rc != A2AD_OK) plugins_unload(); /* all or nothing */
    return rc;
}

static void watch_add(void);

a2ad_status plugins_reload(const struct config *cfg) {
    struct psettings fresh;
    if (!cfg || settings_copy(&fresh, cfg) != A2AD_OK) return A2AD_ERR_NOMEM;
    pthread_mutex_lock(&recon_lock);
    bool dir_changed = strcmp(fresh.dir, cur.dir) != 0;
    settings_free(&cur);
    cur = fresh;
    refused_clear(); /* a reload retries every file, and says again what it refuses */
    set_default_name();
    a2ad_status rc = reconcile(false);
    if (rc == A2AD_OK) check_loaded(false);
    pthread_mutex_unlock(&recon_lock);
    if (dir_changed) watch_add();
    return rc;
}

void plugins_unload(void) {
    /* Reverse order, like unwinding: an agent loaded later never outlives
     * one loaded before it. */
    for (;;) {
        pthread_mutex_lock(&reg_lock);
        struct agent *a = n_registry ? registry[n_registry - 1] : NULL;
        pthread_mutex_unlock(&reg_lock);
        if (!a) break;
        take_out(a);
        log_debug("unloading agent %s (%s)", a->name, a->path);
        retire(a);
    }
    pthread_mutex_lock(&recon_lock);
    pthread_mutex_lock(&reg_lock);
    free(registry);
    registry = NULL;
    n_registry = cap_registry = 0;
    free(default_name);
    default_name = NULL;
    if (!all_versions) next_index = 0;
    pthread_mutex_unlock(&reg_lock);
    settings_free(&cur);
    refused_clear();
    /* Empty unless a version is still pinned by a job that never returned. */
    if (private_dir && rmdir(private_dir) == 0) {
        free(private_dir);
        private_dir = NULL;
    }
    pthread_mutex_unlock(&recon_lock);
    pthread_mutex_lock(&dirty_lock);
    strv_free(&dirty);
    pthread_mutex_unlock(&dirty_lock);
    runner_unload();
}

/* ---- the directory watcher ---------------------------------------------------- */

static struct {
    pthread_mutex_t lock; /* fd, wd, running */
    int fd, wd, wake[2];
    bool running;
    pthread_t thread;
} watch = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1, .wd = -1, .wake = {-1, -1}};

#define WATCH_MASK                                                                       \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | IN_CREATE | IN_MODIFY |   \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
/* Quiet time after the last event before the directory is read again: a
 * burst (cp, install, a rename) settles into one reconcile. */
#define DEBOUNCE_MS 150
/* A directory that never goes quiet is read at least this often. */
#define MAX_DELAY_MS 800

/* (Re)point the watch at the current plugin directory. */
static void watch_add(void) {
    pthread_mutex_lock(&recon_lock);
    char *dir = strdup(cur.dir && cur.dir[0] ? cur.dir : ".");
    pthread_mutex_unlock(&recon_lock);
    if (!dir) return;
    pthread_mutex_lock(&watch.lock);
    if (watch.fd >= 0) {
        if (watch.wd >= 0) inotify_rm_watch(watch.fd, watch.wd);
        watch.wd = inotify_add_watch(watch.fd, dir, WATCH_MASK);
        if (watch.wd < 0)
            log_warn("plugins: cannot watch %s (%s): plugins placed there load only at SIGHUP",
                     dir, strerror(errno));
        else
            log_debug("plugins: watching %s", dir);
    }
    pthread_mutex_unlock(&watch.lock);
    free(dir);
}

static void *watch_main(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "plugins");
    bool pending = false;
    uint64_t first = 0, last = 0;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        struct pollfd p[2] = {{.fd = watch.fd, .events = POLLIN}, {.fd = watch.wake[0], .events = POLLIN}};
        int timeout = -1;
        if (pending) {
            uint64_t now = util_now_ms();
            uint64_t due = last + DEBOUNCE_MS;
            if (first + MAX_DELAY_MS < due) due = first + MAX_DELAY_MS;
            timeout = due > now ? (int)(due - now) : 0;
        }
        int n = poll(p, 2, timeout);
        if (n < 0 && errno != EINTR) break;
        if (n > 0 && (p[1].revents & POLLIN)) break; /* stop */
        if (n > 0 && (p[0].revents & POLLIN)) {
            ssize_t len = read(watch.fd, buf, sizeof buf);
            for (ssize_t off = 0; len > 0 && off < len;) {
                const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
                off += (ssize_t)(sizeof *ev + ev->len);
                if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF))
                    log_warn("plugins: the plugin directory was removed or moved; agents stay "
                             "loaded; SIGHUP after re-creating it");
                const char *name = ev->len ? ev->name : "";
                if (ev->mask & (IN_CREATE | IN_MODIFY)) set_dirty(name, true);
                if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM))
                    set_dirty(name, false);
                if (ev->mask & IN_MODIFY) continue; /* only the close says it is complete */
                uint64_t now = util_now_ms();
                if (!pending) first = now;
                pending = true;
                last = now;
            }
            continue;
        }
        if (pending && n == 0) {
            pending = false;
            pthread_mutex_lock(&recon_lock);
            log_debug("plugins: the plugin directory changed; reading it again");
            reconcile(false);
            pthread_mutex_unlock(&recon_lock);
        }
    }
    return NULL;
}

a2ad_status plugins_watch_start(void) {
    pthread_mutex_lock(&watch.lock);
    bool running = watch.running;
    pthread_mutex_unlock(&watch.lock);
    if (running) return A2AD_OK;
    watch.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (watch.fd < 0 || pipe2(watch.wake, O_CLOEXEC) != 0) {
        log_warn("plugins: cannot watch the plugin directory (%s): plugins placed there load "
                 "only at SIGHUP",
                 strerror(errno));
        if (watch.fd >= 0) close(watch.fd);
        watch.fd = -1;
        return A2AD_ERR_IO;
    }
    watch_add();
    if (pthread_create(&watch.thread, NULL, watch_main, NULL) != 0) {
        close(watch.fd);
        close(watch.wake[0]);
        close(watch.wake[1]);
        watch.fd = watch.wake[0] = watch.wake[1] = -1;
        return A2AD_ERR_IO;
    }
    pthread_mutex_lock(&watch.lock);
    watch.running = true;
    pthread_mutex_unlock(&watch.lock);
    return A2AD_OK;
}

void plugins_watch_stop(void) {
    pthread_mutex_lock(&watch.lock);
    bool running = watch.running;
    watch.running = false;
    pthread_mutex_unlock(&watch.lock);
    if (!running) return;
    ssize_t w = write(watch.wake[1], "x", 1);
    (void)w;
    pthread_join(watch.thread, NULL);
    pthread_mutex_lock(&watch.lock);
    close(watch.fd);
    close(watch.wake[0]);
    close(watch.wake[1]);
    watch.fd = watch.wd = watch.wake[0] = watch.wake[1] = -1;
    pthread_mutex_unlock(&watch.lock);
}
