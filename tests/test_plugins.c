/* Tests for the plugin loader (daemon/agents/plugins.c), the example plugins
 * (plugins/) and the deliberately broken test plugins (tests/plugins/).
 *
 * Plugins are found under $A2AD_BUILD/plugins and $A2AD_BUILD/tests/plugins
 * (A2AD_BUILD defaults to "build"). Example plugins run against the mock
 * host, never the daemon, so each behaviour is checked in isolation.
 */
#include <check.h>
#include <cJSON.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agents/plugins.h"
#include "support/mock_host.h"
#include "agents/workers.h"

static char plugins_dir[1024];  /* $A2AD_BUILD/plugins */
static char tplugins_dir[1024]; /* $A2AD_BUILD/tests/plugins */

static void setup_dirs(void) {
    const char *build = getenv("A2AD_BUILD");
    if (!build || !build[0]) build = "build";
    snprintf(plugins_dir, sizeof plugins_dir, "%s/plugins", build);
    snprintf(tplugins_dir, sizeof tplugins_dir, "%s/tests/plugins", build);
    /* The tests read log lines in their plain (non-journald) form. */
    unsetenv("JOURNAL_STREAM");
}

/* With CK_FORK=no the registry would leak from one test into the next. */
static void teardown_registry(void) { plugins_unload(); }

static void so_path(char *out, size_t len, const char *dir, const char *name) {
    snprintf(out, len, "%s/%s.so", dir, name);
}

/* A config with just what the loader reads; strings are borrowed literals. */
static struct config test_config(const char *dir, const char *load, bool fatal) {
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.plugin_dir = (char *)dir;
    cfg.plugin_load = (char *)load;
    cfg.plugin_errors_fatal = fatal;
    cfg.default_agent = (char *)"";
    cfg.max_duration_s = 3600;
    return cfg;
}

/* ---- stderr capture: the loader's refusals are log lines ---------------- */

static int saved_stderr = -1;
static FILE *captured;

static void capture_begin(void) {
    fflush(stderr);
    captured = tmpfile();
    ck_assert_ptr_nonnull(captured);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fileno(captured), STDERR_FILENO);
}

/* Stop capturing; returns what was written (malloc'd). With
 * A2AD_TEST_VERBOSE set it is also passed through, to read the messages. */
static char *capture_end(void) {
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    long len = ftell(captured);
    char *text = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(text);
    rewind(captured);
    size_t got = fread(text, 1, (size_t)len, captured);
    text[got] = '\0';
    fclose(captured);
    captured = NULL;
    if (getenv("A2AD_TEST_VERBOSE")) fputs(text, stderr);
    return text;
}

static size_t lines_containing(const char *text, const char *needle) {
    size_t n = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *copy = strndup(line, len);
        if (strstr(copy, needle)) n++;
        free(copy);
        line += len + (end ? 1 : 0);
    }
    return n;
}

/* plugins_load with stderr captured; *log receives the lines (malloc'd). */
static a2ad_status load_captured(const struct config *cfg, struct mock_host *m, char **log) {
    capture_begin();
    a2ad_status s = plugins_load(cfg, m ? mock_host_table(m) : NULL);
    *log = capture_end();
    return s;
}

/* ---- temporary plugin directories ------------------------------------------ */

static void copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    ck_assert_msg(in != NULL, "cannot open %s (build the plugins first)", from);
    FILE *out = fopen(to, "wb");
    ck_assert_ptr_nonnull(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static void make_tmpdir(char *dir, size_t len) {
    snprintf(dir, len, "/tmp/a2ad-test-plugins-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* Remove dir and the entries the tests put in it (files, links, one level of
 * empty directories). */
static void remove_tmpdir(const char *dir, const char *const *entries, size_t n) {
    char path[2048];
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, entries[i]);
        if (unlink(path) != 0) rmdir(path);
    }
    rmdir(dir);
}

/* ---- direct access to a plugin's descriptor, without the loader --------- */

static const struct a2ad_agent *open_agent(const char *dir, const char *name, void **dl) {
    char path[1100];
    so_path(path, sizeof path, dir, name);
    *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(*dl != NULL, "dlopen %s: %s", path, dlerror());
    void *sym = dlsym(*dl, A2AD_AGENT_ENTRY_SYMBOL);
    ck_assert_ptr_nonnull(sym);
    a2ad_agent_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);
    return entry();
}

/* Load one example plugin through the real loader, with options. */
static const struct agent *load_example(const char *name, struct a2ad_option *opts,
                                        size_t n_opts, struct mock_host *m) {
    struct agent_config section = {
        .name = (char *)name, .opts = opts, .n_opts = n_opts, .next = NULL};
    struct config cfg = test_config(plugins_dir, name, true);
    if (n_opts) cfg.agents = &section;
    char *log;
    a2ad_status s = load_captured(&cfg, m, &log);
    ck_assert_msg(s == A2AD_OK, "loading %s: %s\n%s", name, a2ad_status_name(s), log);
    free(log);
    const struct agent *a = plugins_find(name);
    ck_assert_ptr_nonnull(a);
    return a;
}

/* ======================= plugins_check_file ====================== */

static const struct {
    const char *file;
    const char *needle; /* part of the fix or of the problem */
} bad_plugins[] = {
    {"no_entry", "export it with A2AD_AGENT_ENTRY(descriptor)"},
    {"bad_abi", "built for plugin ABI 99, this a2ad has ABI 1; rebuild it against this a2ad's "
                "include/a2ad/agent.h"},
    {"short_struct", "struct_size 8, the minimum is"},
    {"no_run", "has no run_background"},
    {"bad_name", "agent name \"bad name!\" is invalid"},
};
#define N_BAD (sizeof bad_plugins / sizeof bad_plugins[0])

START_TEST(check_file_refuses_each_bad_plugin) {
    char path[1100], err[1024];
    so_path(path, sizeof path, tplugins_dir, bad_plugins[_i].file);
    a2ad_status s = plugins_check_file(path, err, sizeof err);
    ck_assert_int_eq(s, A2AD_ERR_ABI);
    ck_assert_msg(strstr(err, path) != NULL, "no file name in: %s", err);
    ck_assert_msg(strstr(err, bad_plugins[_i].needle) != NULL, "unexpected text: %s", err);
    ck_assert_ptr_null(strchr(err, '\n')); /* one line */
}
END_TEST

START_TEST(check_file_refuses_missing_and_odd_files) {
    char err[1024], dir[64], path[1100], target[1100];
    ck_assert_int_eq(plugins_check_file("/nonexistent/a2ad/x.so", err, sizeof err),
                     A2AD_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/a2ad/x.so"));

    make_tmpdir(dir, sizeof dir);
    /* A directory, a symbolic link to a good plugin, and a non-ELF file. */
    snprintf(path, sizeof path, "%s/dir.so", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_int_eq(plugins_check_file(path, err, sizeof err), A2AD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));

    so_path(target, sizeof target, plugins_dir, "echo");
    char *abs_target = realpath(target, NULL);
    ck_assert_ptr_nonnull(abs_target);
    snprintf(path, sizeof path, "%s/link.so", dir);
    ck_assert_int_eq(symlink(abs_target, path), 0);
    free(abs_target);
    ck_assert_int_eq(plugins_check_file(path, err, sizeof err), A2AD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));

    snprintf(path, sizeof path, "%s/text.so", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("not a shared object\n", f);
    fclose(f);
    ck_assert_int_eq(plugins_check_file(path, err, sizeof err), A2AD_ERR_ABI);
    ck_assert_ptr_nonnull(strstr(err, "dlopen failed"));
    ck_assert_ptr_nonnull(strstr(err, "check its dependencies with ldd"));

    ck_assert_int_eq(plugins_check_file(NULL, err, sizeof err), A2AD_ERR_INVALID);
    ck_assert_int_eq(plugins_check_file("", NULL, 0), A2AD_ERR_INVALID);

    const char *entries[] = {"dir.so", "link.so", "text.so"};
    remove_tmpdir(dir, entries, 3);
}
END_TEST

START_TEST(check_file_accepts_good_plugins) {
    /* failing_init passes: check_file never runs init. grown/old: sizes. */
    const char *examples[] = {"echo", "processor", "threaded", "failing"};
    const char *tests[] = {"stubborn", "opts_echo", "dup_echo", "failing_init", "grown_struct",
                           "old_struct"};
    char path[1100], err[1024];
    for (size_t i = 0; i < 4; i++) {
        so_path(path, sizeof path, plugins_dir, examples[i]);
        ck_assert_msg(plugins_check_file(path, err, sizeof err) == A2AD_OK, "%s", err);
        ck_assert_str_eq(err, "");
    }
    for (size_t i = 0; i < 6; i++) {
        so_path(path, sizeof path, tplugins_dir, tests[i]);
        ck_assert_msg(plugins_check_file(path, err, sizeof err) == A2AD_OK, "%s", err);
    }
    ck_assert_uint_eq(plugins_count(), 0); /* nothing kept */
}
END_TEST

/* ============================ plugins_load ============================ */

/* Every bad plugin, with errors fatal, stops the load and rolls back the
 * good agent loaded before it; the refusal is exactly one line. */
START_TEST(load_fatal_refuses_each_bad_plugin) {
    const char *files[] = {"no_entry", "bad_abi", "short_struct", "no_run", "bad_name",
                           "failing_init", "missing"};
    const char *file = files[_i];
    char load[128], path[1100];
    snprintf(load, sizeof load, "opts_echo, %s", file);
    so_path(path, sizeof path, tplugins_dir, file);

    struct mock_host *m = mock_host_new();
    struct config cfg = test_config(tplugins_dir, load, true);
    char *log;
    ck_assert_int_eq(load_captured(&cfg, m, &log), A2AD_ERR_CONFIG);
    ck_assert_uint_eq(plugins_count(), 0);
    ck_assert_ptr_null(plugins_find("opts"));
    ck_assert_ptr_null(plugins_default());
    ck_assert_msg(lines_containing(log, "refused") == 1, "log:\n%s", log);
    ck_assert_msg(lines_containing(log, path) == 1, "log:\n%s", log);
    ck_assert_msg(lines_containing(log, " error ") >= 1, "log:\n%s", log);

    if (strcmp(file, "failing_init") == 0) {
        /* init ran with an agent-level ctx, and its own reason was logged. */
        ck_assert(mock_host_logged(m, "refusing to start"));
        ck_assert_uint_eq(mock_host_log_at(m, 0).handle, WORKERS_AGENT_HANDLE(1));
        ck_assert_msg(lines_containing(log, "init of agent \"failing_init\" failed (bad "
                                            "configuration)") == 1,
                      "log:\n%s", log);
    }
    /* Checks come before init: no_run's init must never have run. */
    ck_assert(!mock_host_logged(m, "init must not be called"));
    free(log);
    mock_host_free(m);
}
END_TEST

START_TEST(load_nonfatal_skips_bad_plugins) {
    struct mock_host *m = mock_host_new();
    struct config cfg = test_config(tplugins_dir,
                                    "bad_abi, opts_echo, no_run,short_struct , no_entry, "
                                    "bad_name, failing_init, missing, stubborn",
                                    false);
    char *log;
    ck_assert_int_eq(load_captured(&cfg, m, &log), A2AD_OK);
    ck_assert_uint_eq(plugins_count(), 2);
    ck_assert_str_eq(plugins_at(0)->desc.name, "opts");
    ck_assert_str_eq(plugins_at(1)->desc.name, "stubborn");
    ck_assert_uint_eq(plugins_at(0)->index, 0);
    ck_assert_uint_eq(plugins_at(1)->index, 1);
    ck_assert_ptr_null(plugins_at(2));
    ck_assert_ptr_null(plugins_default()); /* two agents, no default_agent */
    ck_assert_msg(lines_containing(log, "refused") == 7, "log:\n%s", log);
    ck_assert_msg(lines_containing(log, "loaded agent") == 2, "log:\n%s", log);
    free(log);
    mock_host_free(m);
}
END_TEST

static size_t index_of(const char *name) {
    const struct agent *a = plugins_find(name);
    ck_assert_msg(a != NULL, "agent %s not loaded", name);
    return a->index;
}

/* No load list: every *.so of the directory, in file-name order. */
START_TEST(load_directory_nonfatal) {
    struct mock_host *m = mock_host_new();
    struct config cfg = test_config(tplugins_dir, "", false);
    char *log;
    ck_assert_int_eq(load_captured(&cfg, m, &log), A2AD_OK);
    /* dup_echo.so < grown_struct.so < old_struct.so < opts_echo.so < stubborn.so */
    ck_assert_uint_lt(index_of("echo"), index_of("grown"));
    ck_assert_uint_lt(index_of("grown"), index_of("old"));
    ck_assert_uint_lt(index_of("old"), index_of("opts"));
    ck_assert_uint_lt(index_of("opts"), index_of("stubborn"));
    ck_assert_ptr_nonnull(strstr(plugins_find("echo")->path, "dup_echo.so"));
    const char *never[] = {"bad_abi", "no_run", "short_struct", "failing_init", "bad name!"};
    for (size_t i = 0; i < 5; i++) ck_assert_ptr_null(plugins_find(never[i]));
    for (size_t i = 0; i < plugins_count(); i++) ck_assert_uint_eq(plugins_at(i)->index, i);
    ck_assert_uint_ge(lines_containing(log, "refused"), 6);
    free(log);
    mock_host_free(m);
}
END_TEST

START_TEST(load_directory_fatal) {
    struct config cfg = test_config(tplugins_dir, "", true);
    char *log;
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_ERR_CONFIG);
    ck_assert_uint_eq(plugins_count(), 0);
    ck_assert_msg(lines_containing(log, "refused") == 1, "log:\n%s", log);
    free(log);
}
END_TEST

/* Two files, one agent name: the second is refused, naming the first. */
START_TEST(load_duplicate_name) {
    char dir[64], from[1100], to[1100];
    make_tmpdir(dir, sizeof dir);
    so_path(from, sizeof from, plugins_dir, "echo");
    so_path(to, sizeof to, dir, "echo");
    copy_file(from, to);
    so_path(from, sizeof from, tplugins_dir, "dup_echo");
    so_path(to, sizeof to, dir, "dup_echo");
    copy_file(from, to);

    /* Directory order: dup_echo.so comes first and wins. */
    struct config cfg = test_config(dir, "", false);
    char *log;
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_OK);
    ck_assert_uint_eq(plugins_count(), 1);
    ck_assert_str_eq(plugins_find("echo")->desc.version, "0.0.1");
    ck_assert_msg(lines_containing(log, "is already used by") == 1, "log:\n%s", log);
    ck_assert_msg(lines_containing(log, "dup_echo.so") >= 1, "log:\n%s", log);
    free(log);
    plugins_unload();

    /* List order: echo first this time. */
    cfg = test_config(dir, "echo, dup_echo", false);
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_OK);
    ck_assert_uint_eq(plugins_count(), 1);
    ck_assert_str_eq(plugins_find("echo")->desc.version, "1.0.0");
    free(log);
    plugins_unload();

    cfg = test_config(dir, "", true);
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_ERR_CONFIG);
    ck_assert_uint_eq(plugins_count(), 0);
    free(log);

    const char *entries[] = {"echo.so", "dup_echo.so"};
    remove_tmpdir(dir, entries, 2);
}
END_TEST

START_TEST(default_agent_rules) {
    char *log;
    /* One agent: it is the default without being named. */
    struct config cfg = test_config(tplugins_dir, "opts_echo", true);
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_OK);
    free(log);
    ck_assert_ptr_eq(plugins_default(), plugins_find("opts"));
    plugins_unload();
    ck_assert_ptr_null(plugins_default());

    /* Two agents, none named: no default. */
    cfg = test_config(tplugins_dir, "opts_echo, stubborn", true);
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_OK);
    free(log);
    ck_assert_ptr_null(plugins_default());
    plugins_unload();

    /* Two agents, one named. */
    cfg.default_agent = (char *)"stubborn";
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_OK);
    free(log);
    ck_assert_ptr_eq(plugins_default(), plugins_find("stubborn"));
    plugins_unload();

    /* Named but not loaded: a configuration error, whatever errors_fatal. */
    cfg.default_agent = (char *)"nope";
    cfg.plugin_errors_fatal = false;
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_ERR_CONFIG);
    ck_assert_uint_eq(plugins_count(), 0);
    ck_assert_msg(lines_containing(log, "default_agent \"nope\"") == 1, "log:\n%s", log);
    free(log);
}
END_TEST

START_TEST(unknown_agent_section) {
    struct agent_config typo = {.name = (char *)"opst"};
    struct config cfg = test_config(tplugins_dir, "opts_echo", true);
    cfg.agents = &typo;
    char *log;
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_ERR_CONFIG);
    ck_assert_uint_eq(plugins_count(), 0);
    ck_assert_msg(lines_containing(log, "[agent.opst] names no loaded agent (loaded: opts)") == 1,
                  "log:\n%s", log);
    free(log);

    cfg.plugin_errors_fatal = false;
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_OK);
    ck_assert_uint_eq(plugins_count(), 1);
    ck_assert_msg(lines_containing(log, " warning ") == 1, "log:\n%s", log);
    ck_assert_msg(lines_containing(log, "[agent.opst]") == 1, "log:\n%s", log);
    free(log);
}
END_TEST

START_TEST(no_agent_loaded) {
    char *log;
    struct config cfg = test_config(tplugins_dir, "bad_abi", false);
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_ERR_CONFIG);
    ck_assert_msg(lines_containing(log, "no agent loaded") == 1, "log:\n%s", log);
    free(log);

    char dir[64];
    make_tmpdir(dir, sizeof dir);
    cfg = test_config(dir, "", false);
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_ERR_CONFIG);
    ck_assert_msg(lines_containing(log, "no agent loaded") == 1, "log:\n%s", log);
    free(log);
    remove_tmpdir(dir, NULL, 0);

    cfg = test_config("/nonexistent/a2ad-plugins", "", false);
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_ERR_CONFIG);
    ck_assert_msg(lines_containing(log, "cannot read the plugin directory") == 1, "log:\n%s", log);
    free(log);
    ck_assert_uint_eq(plugins_count(), 0);
}
END_TEST

START_TEST(load_list_syntax) {
    char *log;
    /* Blanks around names, empty items and a trailing comma are fine. */
    struct config cfg = test_config(tplugins_dir, "  opts_echo ,, \tstubborn  ,", true);
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_OK);
    ck_assert_uint_eq(plugins_count(), 2);
    free(log);
    plugins_unload();

    /* A path instead of a name is refused. */
    cfg = test_config(tplugins_dir, "opts_echo, ../plugins/echo", true);
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_ERR_CONFIG);
    ck_assert_msg(lines_containing(log, "takes names, not paths") == 1, "log:\n%s", log);
    ck_assert_uint_eq(plugins_count(), 0);
    free(log);
}
END_TEST

START_TEST(options_reach_init) {
    struct a2ad_option opts[] = {{"alpha", "1"}, {"beta", "two words"}};
    struct agent_config section = {.name = (char *)"opts", .max_duration_s = 7, .opts = opts,
                                   .n_opts = 2};
    struct config cfg = test_config(tplugins_dir, "opts_echo", true);
    cfg.agents = &section;
    char *log;
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_OK);
    free(log);
    const struct agent *a = plugins_find("opts");
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->max_duration_s, 7); /* the config's, over the default */

    struct mock_host *m = mock_host_new();
    ck_assert_int_eq(a->desc.run_background(a->state, "", mock_host_ctx(m)), A2AD_OK);
    ck_assert_str_eq(mock_host_result(m), "alpha=1,beta=two words");
    mock_host_free(m);
    plugins_unload();

    /* No section: no options, and the daemon's default duration. */
    cfg.agents = NULL;
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_OK);
    free(log);
    a = plugins_find("opts");
    ck_assert_uint_eq(a->max_duration_s, 3600);
    m = mock_host_new();
    ck_assert_int_eq(a->desc.run_background(a->state, "", mock_host_ctx(m)), A2AD_OK);
    ck_assert_str_eq(mock_host_result(m), "");
    mock_host_free(m);
}
END_TEST

/* Newer and older descriptor layouts both load; members beyond the
 * plugin's struct_size are never read. */
START_TEST(descriptor_size_compatibility) {
    struct config cfg = test_config(tplugins_dir, "grown_struct, old_struct", true);
    char *log;
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_OK);
    free(log);
    const struct agent *grown = plugins_find("grown"), *old = plugins_find("old");
    ck_assert_ptr_nonnull(grown);
    ck_assert_ptr_nonnull(old);
    ck_assert_uint_eq(grown->max_duration_s, 42); /* the descriptor's, over the default */
    ck_assert_uint_eq(old->desc.max_duration_s, 0);
    ck_assert_uint_eq(grown->desc.estimated_duration_s, 7);
    ck_assert_uint_eq(old->desc.estimated_duration_s, 0);
    ck_assert_uint_eq(old->max_duration_s, 3600);
    ck_assert_ptr_null(old->desc.init);

    struct mock_host *m = mock_host_new();
    ck_assert_int_eq(old->desc.run_background(old->state, "still works", mock_host_ctx(m)),
                     A2AD_OK);
    ck_assert_str_eq(mock_host_result(m), "still works");
    mock_host_free(m);
    plugins_unload();

    /* The config's max_duration_s beats the descriptor's. */
    struct agent_config section = {.name = (char *)"grown", .max_duration_s = 5};
    cfg = test_config(tplugins_dir, "grown_struct", true);
    cfg.agents = &section;
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_OK);
    free(log);
    ck_assert_uint_eq(plugins_find("grown")->max_duration_s, 5);
}
END_TEST

START_TEST(unload_is_idempotent) {
    plugins_unload();
    plugins_unload();
    struct config cfg = test_config(tplugins_dir, "opts_echo", true);
    char *log;
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_OK);
    free(log);
    /* Loading over a live registry is refused; the registry is untouched. */
    capture_begin();
    ck_assert_int_eq(plugins_load(&cfg, NULL), A2AD_ERR_STATE);
    free(capture_end());
    ck_assert_uint_eq(plugins_count(), 1);
    plugins_unload();
    plugins_unload();
    ck_assert_uint_eq(plugins_count(), 0);
    ck_assert_ptr_null(plugins_find("opts"));
    ck_assert_ptr_null(plugins_default());
    ck_assert_ptr_null(plugins_at(0));
    ck_assert_ptr_null(plugins_find(NULL));
}
END_TEST

/* ======================= the example plugins ======================== */

START_TEST(echo_returns_query) {
    struct mock_host *m = mock_host_new();
    const struct agent *a = load_example("echo", NULL, 0, m);
    ck_assert_str_eq(a->desc.version, "1.0.0");
    ck_assert_uint_eq(a->desc.n_skills, 1);
    ck_assert_int_eq(a->desc.run_background(a->state, "hello, echo", mock_host_ctx(m)), A2AD_OK);
    ck_assert_str_eq(mock_host_result(m), "hello, echo");
    ck_assert_uint_eq(mock_host_progress_count(m), 0);
    ck_assert_uint_eq(mock_host_fail_calls(m), 0);
    mock_host_free(m);
}
END_TEST

START_TEST(processor_full_job) {
    struct a2ad_option opts[] = {{"step_ms", "0"}};
    struct mock_host *m = mock_host_new();
    const struct agent *a = load_example("processor", opts, 1, m);
    const char *query = "say \"hi\"\n\\ \x01 caf\xc3\xa9";
    ck_assert_int_eq(a->desc.run_background(a->state, query, mock_host_ctx(m)), A2AD_OK);

    /* Exactly the seed's ten updates: "Step i/10" at i/10, INFO. */
    ck_assert_uint_eq(mock_host_progress_count(m), 10);
    for (size_t i = 0; i < 10; i++) {
        struct mock_progress p = mock_host_progress_at(m, i);
        char want[16];
        snprintf(want, sizeof want, "Step %zu/10", i + 1);
        ck_assert_str_eq(p.message, want);
        ck_assert_double_eq_tol(p.progress, (double)(i + 1) / 10, 1e-9);
        ck_assert_int_eq(p.importance, A2AD_INFO);
    }

    /* One artifact, valid JSON that gives the query back unchanged. */
    ck_assert_uint_eq(mock_host_artifact_count(m), 1);
    struct mock_artifact art = mock_host_artifact_at(m, 0);
    ck_assert_str_eq(art.name, "results.json");
    ck_assert_str_eq(art.mime_type, "application/json");
    cJSON *json = cJSON_ParseWithLength((const char *)art.data, art.len);
    ck_assert_msg(json != NULL, "not JSON: %.*s", (int)art.len, art.data);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(json, "query")), query);
    ck_assert_double_eq(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(json, "steps")), 10);
    cJSON_Delete(json);

    ck_assert_str_eq(mock_host_result(m), "Processing complete!");
    ck_assert_uint_eq(mock_host_result_calls(m), 1);
    ck_assert_uint_eq(mock_host_fail_calls(m), 0);
    mock_host_free(m);
}
END_TEST

START_TEST(processor_stops_when_cancelled) {
    struct a2ad_option opts[] = {{"step_ms", "1"}};
    struct mock_host *m = mock_host_new();
    const struct agent *a = load_example("processor", opts, 1, m);
    mock_host_cancel_after(m, 3);
    ck_assert_int_eq(a->desc.run_background(a->state, "data", mock_host_ctx(m)), A2AD_ERR_FAILED);
    ck_assert_uint_lt(mock_host_progress_count(m), 10);
    ck_assert_uint_eq(mock_host_progress_count(m), 3);
    ck_assert_str_eq(mock_host_fail_reason(m), "cancelled");
    ck_assert_uint_eq(mock_host_artifact_count(m), 0);
    ck_assert_uint_eq(mock_host_result_calls(m), 0);
    mock_host_free(m);

    /* Cancelled before it started: not a single step. */
    m = mock_host_new();
    mock_host_set_cancelled(m, true);
    ck_assert_int_eq(a->desc.run_background(a->state, "data", mock_host_ctx(m)), A2AD_ERR_FAILED);
    ck_assert_uint_eq(mock_host_progress_count(m), 0);
    mock_host_free(m);
}
END_TEST

/* A cancel that arrives in the middle of a long step is seen within a slice:
 * with one-minute steps the job still returns at once (were the sleep not
 * sliced, the test would hit Check's timeout instead). */
static void *cancel_soon(void *arg) {
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
    nanosleep(&ts, NULL);
    mock_host_set_cancelled(arg, true);
    return NULL;
}

START_TEST(processor_cancel_during_a_step) {
    struct a2ad_option opts[] = {{"step_ms", "60000"}};
    struct mock_host *m = mock_host_new();
    const struct agent *a = load_example("processor", opts, 1, m);
    pthread_t canceller;
    ck_assert_int_eq(pthread_create(&canceller, NULL, cancel_soon, m), 0);
    ck_assert_int_eq(a->desc.run_background(a->state, "data", mock_host_ctx(m)), A2AD_ERR_FAILED);
    pthread_join(canceller, NULL);
    ck_assert_uint_eq(mock_host_progress_count(m), 0);
    ck_assert_str_eq(mock_host_fail_reason(m), "cancelled");
    ck_assert_uint_ge(mock_host_cancel_checks(m), 1);
    mock_host_free(m);
}
END_TEST

START_TEST(processor_validate) {
    void *dl;
    const struct a2ad_agent *d = open_agent(plugins_dir, "processor", &dl);
    struct mock_host *m = mock_host_new();
    a2ad_ctx log_ctx = {mock_host_table(m), WORKERS_AGENT_HANDLE(0)};
    static const struct {
        const char *step_ms;
        uint32_t estimate;
    } cases[] = {{NULL, 2}, {"150", 2}, {"0", 0}, {"1000", 10}, {"1", 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct a2ad_option opt = {"step_ms", cases[i].step_ms};
        void *state = NULL;
        ck_assert_int_eq(d->init(mock_host_table(m), log_ctx, cases[i].step_ms ? &opt : NULL,
                                 cases[i].step_ms ? 1 : 0, &state),
                         A2AD_OK);
        struct a2ad_validation v = {0};
        ck_assert_int_eq(d->validate(state, "hello", &v), A2AD_OK);
        ck_assert_uint_eq(v.estimated_duration_s, cases[i].estimate);

        const char *empty[] = {"", " ", " \t\r\n "};
        for (size_t k = 0; k < 3; k++) {
            struct a2ad_validation r = {0};
            ck_assert_int_eq(d->validate(state, empty[k], &r), A2AD_ERR_REJECTED);
            ck_assert_str_eq(r.reason, "the query is empty");
        }
        d->destroy(state);
    }
    mock_host_free(m);
    dlclose(dl);
}
END_TEST

START_TEST(processor_init_refuses_bad_options) {
    void *dl;
    const struct a2ad_agent *d = open_agent(plugins_dir, "processor", &dl);
    static const struct a2ad_option bad[] = {
        {"steps", "10"}, {"step_ms", "fast"}, {"step_ms", "-1"}, {"step_ms", "12ms"},
        {"step_ms", ""}, {"step_ms", "99999999999999999999"}, {"step_ms", " 5"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct mock_host *m = mock_host_new();
        void *state = NULL;
        a2ad_ctx log_ctx = {mock_host_table(m), WORKERS_AGENT_HANDLE(0)};
        ck_assert_int_eq(d->init(mock_host_table(m), log_ctx, &bad[i], 1, &state),
                         A2AD_ERR_CONFIG);
        ck_assert_ptr_null(state);
        /* It says why, through the host's log. */
        ck_assert_uint_eq(mock_host_log_count(m), 1);
        ck_assert_int_eq(mock_host_log_at(m, 0).level, A2AD_LOG_ERROR);
        ck_assert(mock_host_logged(m, i == 0 ? "unknown option \"steps\"" : "step_ms"));
        mock_host_free(m);
    }
    dlclose(dl);

    /* Through the loader: the agent is refused. */
    struct a2ad_option unknown[] = {{"steps", "10"}};
    struct agent_config section = {.name = (char *)"processor", .opts = unknown, .n_opts = 1};
    struct config cfg = test_config(plugins_dir, "processor", true);
    cfg.agents = &section;
    struct mock_host *m = mock_host_new();
    char *log;
    ck_assert_int_eq(load_captured(&cfg, m, &log), A2AD_ERR_CONFIG);
    ck_assert_msg(lines_containing(log, "init of agent \"processor\" failed") == 1, "%s", log);
    free(log);
    mock_host_free(m);
}
END_TEST

START_TEST(failing_reports_error_then_fails) {
    struct mock_host *m = mock_host_new();
    const struct agent *a = load_example("failing", NULL, 0, m);
    ck_assert_int_eq(a->desc.run_background(a->state, "boom", mock_host_ctx(m)), A2AD_ERR_FAILED);
    ck_assert_uint_eq(mock_host_progress_count(m), 1);
    struct mock_progress p = mock_host_progress_at(m, 0);
    ck_assert_str_eq(p.message, "Something went wrong");
    ck_assert_double_eq_tol(p.progress, 0.5, 1e-9);
    ck_assert_int_eq(p.importance, A2AD_ERROR);
    ck_assert_str_eq(mock_host_fail_reason(m), "simulated failure: boom");
    ck_assert_uint_eq(mock_host_result_calls(m), 0);
    mock_host_free(m);

    m = mock_host_new();
    ck_assert_int_eq(a->desc.run_background(a->state, "", mock_host_ctx(m)), A2AD_ERR_FAILED);
    ck_assert_str_eq(mock_host_fail_reason(m), "simulated failure");
    mock_host_free(m);
}
END_TEST

/* Runs threaded on query with `threads` threads; checks the artifact adds up
 * to the stated total and returns that total. */
static unsigned long long run_threaded(const char *threads, const char *query,
                                       struct mock_host *m, unsigned long long *limit) {
    struct a2ad_option opts[] = {{"threads", threads}};
    const struct agent *a = load_example("threaded", opts, 1, m);
    ck_assert_int_eq(a->desc.run_background(a->state, query, mock_host_ctx(m)), A2AD_OK);
    unsigned n = (unsigned)atoi(threads);

    ck_assert_uint_eq(mock_host_artifact_count(m), 1);
    struct mock_artifact art = mock_host_artifact_at(m, 0);
    ck_assert_str_eq(art.name, "partials.bin");
    ck_assert_str_eq(art.mime_type, "application/octet-stream");
    ck_assert_uint_eq(art.len, 8 * n);
    unsigned long long sum = 0;
    for (unsigned k = 0; k < n; k++) {
        unsigned long long v = 0;
        for (unsigned b = 0; b < 8; b++) v |= (unsigned long long)art.data[k * 8 + b] << (8 * b);
        sum += v;
    }
    unsigned long long total = 0;
    ck_assert_int_eq(sscanf(mock_host_result(m), "primes below %llu: %llu", limit, &total), 2);
    ck_assert_uint_eq(sum, total);
    /* Every thread reported: four updates each, all at INFO. */
    ck_assert_uint_eq(mock_host_progress_count(m), 4 * n);
    plugins_unload();
    return total;
}

START_TEST(threaded_progress_from_several_threads) {
    struct mock_host *m = mock_host_new();
    unsigned long long limit;
    ck_assert_uint_eq(run_threaded("4", "100000", m, &limit), 9592);
    ck_assert_uint_eq(limit, 100000);
    ck_assert_uint_gt(mock_host_progress_threads(m), 1);
    /* "worker k: x%" texts, and the last overall figure is 1. */
    bool seen[4] = {false};
    double top = 0;
    for (size_t i = 0; i < mock_host_progress_count(m); i++) {
        struct mock_progress p = mock_host_progress_at(m, i);
        unsigned k, pct;
        ck_assert_int_eq(sscanf(p.message, "worker %u: %u%%", &k, &pct), 2);
        ck_assert_uint_lt(k, 4);
        seen[k] = true;
        ck_assert_int_eq(p.importance, A2AD_INFO);
        if (p.progress > top) top = p.progress;
    }
    for (int k = 0; k < 4; k++) ck_assert(seen[k]);
    ck_assert_double_eq_tol(top, 1.0, 1e-9);
    mock_host_free(m);
}
END_TEST

START_TEST(threaded_limits_and_defaults) {
    unsigned long long limit;
    struct mock_host *m = mock_host_new();
    ck_assert_uint_eq(run_threaded("1", "not a number", m, &limit), 17984);
    ck_assert_uint_eq(limit, 200000);
    mock_host_free(m);

    m = mock_host_new();
    ck_assert_uint_eq(run_threaded("64", " 10 ", m, &limit), 4); /* more threads than numbers */
    ck_assert_uint_eq(limit, 10);
    mock_host_free(m);

    m = mock_host_new();
    ck_assert_uint_eq(run_threaded("3", "50000001", m, &limit), 17984); /* too big: default */
    mock_host_free(m);
}
END_TEST

START_TEST(threaded_cancel_and_bad_options) {
    struct a2ad_option opts[] = {{"threads", "4"}};
    struct mock_host *m = mock_host_new();
    const struct agent *a = load_example("threaded", opts, 1, m);
    mock_host_set_cancelled(m, true);
    ck_assert_int_eq(a->desc.run_background(a->state, "1000000", mock_host_ctx(m)),
                     A2AD_ERR_FAILED);
    ck_assert_str_eq(mock_host_fail_reason(m), "cancelled");
    ck_assert_uint_eq(mock_host_artifact_count(m), 0);
    mock_host_free(m);
    plugins_unload();

    void *dl;
    const struct a2ad_agent *d = open_agent(plugins_dir, "threaded", &dl);
    static const struct a2ad_option bad[] = {
        {"threads", "0"}, {"threads", "65"}, {"threads", "x"}, {"workers", "2"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = mock_host_new();
        void *state = NULL;
        a2ad_ctx log_ctx = {mock_host_table(m), WORKERS_AGENT_HANDLE(0)};
        ck_assert_int_eq(d->init(mock_host_table(m), log_ctx, &bad[i], 1, &state),
                         A2AD_ERR_CONFIG);
        ck_assert_uint_eq(mock_host_log_count(m), 1);
        mock_host_free(m);
    }
    dlclose(dl);
}
END_TEST

START_TEST(stubborn_ignores_cancel) {
    struct a2ad_option opts[] = {{"sleep_ms", "1"}};
    struct agent_config section = {.name = (char *)"stubborn", .opts = opts, .n_opts = 1};
    struct config cfg = test_config(tplugins_dir, "stubborn", true);
    cfg.agents = &section;
    char *log;
    ck_assert_int_eq(load_captured(&cfg, NULL, &log), A2AD_OK);
    free(log);
    const struct agent *a = plugins_find("stubborn");
    struct mock_host *m = mock_host_new();
    mock_host_set_cancelled(m, true);
    ck_assert_int_eq(a->desc.run_background(a->state, "", mock_host_ctx(m)), A2AD_OK);
    ck_assert_str_eq(mock_host_result(m), "done anyway");
    ck_assert_uint_eq(mock_host_cancel_checks(m), 0);
    mock_host_free(m);
}
END_TEST

/* The mock itself behaves like the host where plugins could tell. */
START_TEST(mock_host_checks_like_the_host) {
    struct mock_host *m = mock_host_new();
    a2ad_ctx ctx = mock_host_ctx(m);
    ck_assert_int_eq(a2ad_update_progress(ctx, NULL, NAN, A2AD_INFO), A2AD_ERR_INVALID);
    ck_assert_int_eq(a2ad_update_progress(ctx, "x", 0.5, (a2ad_importance)9), A2AD_ERR_INVALID);
    ck_assert_int_eq(a2ad_update_progress(ctx, "x", 7.0, A2AD_DEBUG), A2AD_OK);
    ck_assert_double_eq(mock_host_progress_at(m, 0).progress, 1.0);
    ck_assert_int_eq(a2ad_add_artifact(ctx, "", NULL, "a", 1), A2AD_ERR_INVALID);
    ck_assert_int_eq(a2ad_add_artifact(ctx, "n", NULL, NULL, 0), A2AD_OK);
    ck_assert_int_eq(a2ad_cancelled(ctx), 0);
    mock_host_cancel_after(m, 1);
    ck_assert_int_ne(a2ad_cancelled(ctx), 0);
    mock_host_end(m);
    ck_assert_int_eq(a2ad_update_progress(ctx, "late", 0.1, A2AD_INFO), A2AD_ERR_ENDED);
    ck_assert_int_eq(a2ad_result(ctx, "late"), A2AD_ERR_ENDED);
    a2ad_log(ctx, A2AD_LOG_INFO, "still logs %d", 1);
    ck_assert(mock_host_logged(m, "still logs 1"));
    ck_assert_uint_eq(mock_host_progress_count(m), 1);
    mock_host_free(m);
}
END_TEST

Suite *plugins_suite(void); /* the runner declares it (weakly) in tests/main.c */
Suite *plugins_suite(void) {
    Suite *s = suite_create("plugins");

    TCase *check = tcase_create("check_file");
    tcase_add_checked_fixture(check, setup_dirs, teardown_registry);
    tcase_add_loop_test(check, check_file_refuses_each_bad_plugin, 0, N_BAD);
    tcase_add_test(check, check_file_refuses_missing_and_odd_files);
    tcase_add_test(check, check_file_accepts_good_plugins);
    suite_add_tcase(s, check);

    TCase *load = tcase_create("load");
    tcase_add_checked_fixture(load, setup_dirs, teardown_registry);
    tcase_add_loop_test(load, load_fatal_refuses_each_bad_plugin, 0, 7);
    tcase_add_test(load, load_nonfatal_skips_bad_plugins);
    tcase_add_test(load, load_directory_nonfatal);
    tcase_add_test(load, load_directory_fatal);
    tcase_add_test(load, load_duplicate_name);
    tcase_add_test(load, default_agent_rules);
    tcase_add_test(load, unknown_agent_section);
    tcase_add_test(load, no_agent_loaded);
    tcase_add_test(load, load_list_syntax);
    tcase_add_test(load, options_reach_init);
    tcase_add_test(load, descriptor_size_compatibility);
    tcase_add_test(load, unload_is_idempotent);
    suite_add_tcase(s, load);

    TCase *examples = tcase_create("examples");
    tcase_add_checked_fixture(examples, setup_dirs, teardown_registry);
    tcase_set_timeout(examples, 30); /* sanitizer builds are slower */
    tcase_add_test(examples, echo_returns_query);
    tcase_add_test(examples, processor_full_job);
    tcase_add_test(examples, processor_stops_when_cancelled);
    tcase_add_test(examples, processor_cancel_during_a_step);
    tcase_add_test(examples, processor_validate);
    tcase_add_test(examples, processor_init_refuses_bad_options);
    tcase_add_test(examples, failing_reports_error_then_fails);
    tcase_add_test(examples, threaded_progress_from_several_threads);
    tcase_add_test(examples, threaded_limits_and_defaults);
    tcase_add_test(examples, threaded_cancel_and_bad_options);
    tcase_add_test(examples, stubborn_ignores_cancel);
    tcase_add_test(examples, mock_host_checks_like_the_host);
    suite_add_tcase(s, examples);
    return s;
}
