/*
 * a2ad/agent.h - the plugin ABI of a2ad, the A2A background-agent daemon.
 *
 * This is the only header a plugin includes. It compiles on its own with
 * -std=c11 -pedantic and needs nothing from the daemon at link time: the
 * host hands every service it offers to the plugin as a table of function
 * pointers (struct a2ad_host), never as exported symbols.
 *
 * LIFECYCLE
 *   1. a2ad dlopen()s the plugin (RTLD_NOW | RTLD_LOCAL) and calls its one
 *      exported symbol, a2ad_agent_entry(), which returns a pointer to a
 *      `static const struct a2ad_agent` (use A2AD_AGENT_ENTRY below). It is
 *      called before anything is checked, so it must do nothing else.
 *   2. The host checks abi_major (must equal the host's) and struct_size
 *      (must cover at least every member up to run_background), and that
 *      name and run_background are set, all before calling anything else.
 *   3. init() (optional) runs once per loaded version, before any of its
 *      jobs: at start-up on the main thread; for a plugin placed in or
 *      replaced in the plugin directory, or re-initialised by SIGHUP
 *      because its options changed, on the thread that applies the change.
 *   4. validate() (optional) runs on an HTTP thread for each new job;
 *      run_background() runs on a worker thread for each accepted job.
 *      Several jobs of one agent run at the same time on different workers.
 *   5. destroy() (optional) runs once, after the version's last job ended:
 *      at shutdown, or when the plugin was replaced or removed (then on the
 *      thread that ended that job). Versions of one plugin may overlap: the
 *      old one drains while the new one runs, each with its own state.
 *
 * MEMORY OWNERSHIP - the one rule for everything crossing the boundary:
 *   Every pointer passed in either direction is BORROWED for the duration of
 *   the call that passes it. The receiver copies what it wants to keep and
 *   never frees what it did not allocate. So: the host copies the message,
 *   name, MIME type and bytes of every ctx call before returning; the query
 *   given to validate/run_background is valid until that callback returns;
 *   the descriptor and its strings must stay valid while the plugin is
 *   loaded (static storage is the intended use).
 *
 * THREADS
 *   Every a2ad_ctx call is safe from any thread, including threads the plugin
 *   starts itself (the C form of the seed's update_progress_sync). A ctx is a
 *   small value handle, not memory: copy it freely. Once its job has ended
 *   (returned, cancelled, timed out) every call through it is refused with
 *   A2AD_ERR_ENDED and does nothing, so a late call from a straggling plugin
 *   thread is harmless.
 */
#ifndef A2AD_AGENT_H
#define A2AD_AGENT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped only for incompatible changes. Compatible growth appends members
 * to the structs below and is detected through their struct_size. */
#define A2AD_ABI_MAJOR 1u

#if defined(__GNUC__) || defined(__clang__)
#define A2AD_EXPORT __attribute__((visibility("default")))
#define A2AD_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define A2AD_EXPORT
#define A2AD_PRINTF(fmt, args)
#endif

/* The one status enum of a2ad, host and plugins alike. 0 = OK. */
typedef enum a2ad_status {
    A2AD_OK = 0,
    A2AD_ERR_INVALID = 1,     /* NULL/empty/out-of-range argument */
    A2AD_ERR_ENDED = 2,       /* the job behind this ctx has ended */
    A2AD_ERR_NOMEM = 3,       /* allocation failed */
    A2AD_ERR_FAILED = 4,      /* the agent failed the job (see a2ad_fail) */
    A2AD_ERR_REJECTED = 5,    /* validate() refused the job */
    A2AD_ERR_CONFIG = 6,      /* bad configuration (init: unknown option...) */
    A2AD_ERR_NOT_FOUND = 7,   /* no such task / agent / file */
    A2AD_ERR_FULL = 8,        /* a bounded queue or table is full */
    A2AD_ERR_STATE = 9,       /* not allowed in the current state */
    A2AD_ERR_IO = 10,         /* an operating-system or network call failed */
    A2AD_ERR_PARSE = 11,      /* malformed input (JSON, config) */
    A2AD_ERR_ABI = 12         /* plugin and host ABI do not match */
} a2ad_status;

/* How prominently an update is shown (the seed's UpdateImportance). */
typedef enum a2ad_importance {
    A2AD_ERROR = 0,  /* critical issues */
    A2AD_NOTICE = 1, /* important information */
    A2AD_INFO = 2,   /* general progress: the usual choice */
    A2AD_DEBUG = 3   /* detailed debugging info */
} a2ad_importance;

/* Levels for a2ad_log, ordered like syslog's. */
typedef enum a2ad_log_level {
    A2AD_LOG_ERROR = 3,
    A2AD_LOG_WARNING = 4,
    A2AD_LOG_INFO = 6,
    A2AD_LOG_DEBUG = 7
} a2ad_log_level;

struct a2ad_host;
struct a2ad_job;

/* A job handle, passed by value. `host` is the host's function table (valid
 * while the plugin is loaded); `handle` names the job and is opaque. */
typedef struct a2ad_ctx {
    const struct a2ad_host *host;
    uint64_t handle;
} a2ad_ctx;

/* The host's services. Call them through the inline wrappers below, which
 * check struct_size so a plugin built against a newer header still runs on an
 * older host (a missing service answers A2AD_ERR_ABI). */
struct a2ad_host {
    uint32_t abi_major;
    uint32_t struct_size;

    /* Report progress. message may be NULL or "" (no text) when progress is
     * given; progress is clamped to 0..1, and NaN means "no figure". NULL/""
     * message together with NaN, or an importance outside ERROR..DEBUG, is
     * A2AD_ERR_INVALID. Moves a submitted task to working. */
    a2ad_status (*update_progress)(a2ad_ctx ctx, const char *message, double progress,
                                   a2ad_importance importance);

    /* Attach an artifact. name must be non-empty; mime_type NULL or "" means
     * "application/octet-stream"; data may be NULL only when len is 0. */
    a2ad_status (*add_artifact)(a2ad_ctx ctx, const char *name, const char *mime_type,
                                const void *data, size_t len);

    /* Nonzero once the job should stop: cancel requested, maximum duration
     * passed, the daemon's shutdown grace period over, or the job already
     * ended. (During the grace period running jobs may finish normally.) */
    int (*cancelled)(a2ad_ctx ctx);

    /* Log a line attributed to this agent (and task). Works in init/destroy
     * too, and after the job ended. */
    void (*vlog)(a2ad_ctx ctx, a2ad_log_level level, const char *fmt, va_list ap);

    /* (Member names avoid plain `result`/`fail`: test frameworks such as
     * Check define a `fail` macro.)
     * Set the final text of a successful job; returns A2AD_OK so that
     * `return a2ad_result(ctx, "done");` reads like the seed. NULL = no text. */
    a2ad_status (*set_result)(a2ad_ctx ctx, const char *text);

    /* Set the failure reason; returns A2AD_ERR_FAILED so that
     * `return a2ad_fail(ctx, "...");` fails the job with that reason. */
    a2ad_status (*set_failure)(a2ad_ctx ctx, const char *reason);

    /* Optional (added compatibly; a2ad_request_input answers A2AD_ERR_ABI
     * on an older host). Ask the client for more input (kind
     * A2AD_INPUT_REQUIRED) or for authorization (A2AD_AUTH_REQUIRED): the
     * task goes to A2A's input-required / auth-required state with message
     * as the agent's status message (also added to the history); a blocking
     * message/send answers at that point, streams end there, webhooks get
     * it. It returns at once; the job goes on running and usually waits
     * (its own condition variable, checking a2ad_cancelled) for the
     * client's next message, which reaches it through on_message and moves
     * the task back to working. message must be non-empty
     * (A2AD_ERR_INVALID); A2AD_ERR_ENDED once the job has ended. The
     * maximum duration keeps counting while the job waits. */
    a2ad_status (*request_input)(a2ad_ctx ctx, const char *message, uint32_t kind);

    /* Optional (added compatibly; a2ad_add_artifact_chunk answers
     * A2AD_ERR_ABI on an older host, A2AD_HOST_HAS(ctx.host,
     * add_artifact_chunk) tests for it). Stream one artifact in pieces, as
     * A2A's append/lastChunk: append 0 starts an artifact called name (its
     * mime_type holds for every chunk), append nonzero adds to the open one
     * of that name, last_chunk nonzero completes it. Each chunk is one
     * artifact-update event in streams and push notifications; tasks/get
     * shows the assembled artifact. Text chunks should split on UTF-8
     * character boundaries (a chunk that is not valid UTF-8 travels as
     * bytes; the assembled artifact is text again). A2AD_ERR_STATE: append
     * with no open artifact of that name (none started, or its last chunk
     * was sent), or a new one while one of that name is open;
     * A2AD_ERR_FULL: the assembled artifact would pass [workers]
     * max_artifact_bytes (the chunk is dropped, the job goes on: fail it or
     * stop sending); A2AD_ERR_ENDED once the job has ended. */
    a2ad_status (*add_artifact_chunk)(a2ad_ctx ctx, const char *name, const char *mime_type,
                                      const void *data, size_t len, int append,
                                      int last_chunk);
};

#define A2AD_INPUT_REQUIRED 0u
#define A2AD_AUTH_REQUIRED 1u

/* One option from the agent's config section ([agent.NAME]), borrowed. */
struct a2ad_option {
    const char *key;
    const char *value;
};

/* One skill for the agent card. tags/examples: NULL-terminated arrays. */
struct a2ad_skill {
    const char *id;
    const char *name;
    const char *description;
    const char *const *tags;
    const char *const *examples;
};

/* What validate() may report about an accepted job. */
struct a2ad_validation {
    uint32_t estimated_duration_s; /* 0 = no estimate */
    char reason[256];              /* on A2AD_ERR_REJECTED: why (NUL-terminated) */
};

/* The descriptor a plugin exports. Fill it with designated initializers
 * starting with A2AD_AGENT_HEADER; members left out are zero = absent. */
struct a2ad_agent {
    uint32_t abi_major;   /* A2AD_ABI_MAJOR the plugin was built with */
    uint32_t struct_size; /* sizeof(struct a2ad_agent) the plugin was built with */

    const char *name;        /* required: [A-Za-z0-9_-]+, unique among loaded agents */
    const char *description; /* for the agent card */
    const char *version;     /* for the agent card, e.g. "1.0.0" */
    const struct a2ad_skill *skills; /* may be NULL */
    size_t n_skills;

    /* Optional. Called once before any job with the agent's config options.
     * *state is handed back to every other callback. Return A2AD_OK, or an
     * error (A2AD_ERR_CONFIG for a bad option) to refuse loading; log why.
     * Thread: see LIFECYCLE above. */
    a2ad_status (*init)(const struct a2ad_host *host, a2ad_ctx log_ctx,
                        const struct a2ad_option *opts, size_t n_opts, void **state);

    /* Optional. Called once after the version's last job ended (at
     * shutdown, or once a replaced or removed plugin drained). */
    void (*destroy)(void *state);

    /* Optional. Decide quickly (it runs on an HTTP thread, no blocking I/O)
     * whether to accept a job. Return A2AD_OK (optionally setting
     * out->estimated_duration_s) or A2AD_ERR_REJECTED with out->reason set:
     * the task then ends in state `rejected`. */
    a2ad_status (*validate)(void *state, const char *query, struct a2ad_validation *out);

    /* Required. Do the job. query is the text of the user's message (text
     * parts joined by "\n"). Return a2ad_result(ctx, text) on success or
     * a2ad_fail(ctx, reason) on failure; any other non-zero status fails the
     * job with that status's name. Check a2ad_cancelled(ctx) between steps.
     * Thread: a worker thread; several jobs may run at once. */
    a2ad_status (*run_background)(void *state, const char *query, a2ad_ctx ctx);

    /* Optional: the longest a job may run before it is failed (seconds).
     * 0 = the daemon's default; the config can override per agent. */
    uint32_t max_duration_s;

    /* Optional: how long a job usually takes (seconds), announced to the
     * client when validate() gives no estimate of its own (the Health
     * Universe acknowledgement, the agent card). 0 = no estimate. Added
     * after max_duration_s, in what was tail padding: an older plugin's
     * static descriptor has zero bits there (C11 6.7.9), so it reads 0. */
    uint32_t estimated_duration_s;

    /* Optional: non-zero when running a job again from the start is
     * harmless (no side effect outside its own results). A job that was
     * running when a2ad died is then queued again at the next start (the
     * task's metadata.a2ad.attempt counts the runs); with 0 it is failed
     * with "interrupted: a2ad restarted". Plugins built against headers
     * without this member read as 0 (their struct_size stops before it). */
    uint32_t rerun_safe;

    /* Optional (added compatibly: a plugin built before it has a smaller
     * struct_size and never gets called). A client continued a running
     * job's conversation: it sent a message naming the job's task (A2A
     * message/send with message.taskId). The message is already in the
     * task's history; this hands its text to the job. text is the text
     * parts joined by "\n" (borrowed for the call); ctx is the job's own ctx,
     * equal (same host, same handle) to the one run_background received,
     * so a plugin running several jobs finds the job by ctx.handle.
     * Thread: an HTTP thread, while run_background runs on its worker:
     * copy what you need under your own lock and return at once (no
     * blocking I/O, no waiting for the job). ctx calls are allowed. It is
     * only called while run_background has not returned, and
     * run_background's return waits for a call in progress to finish. */
    void (*on_message)(void *state, a2ad_ctx ctx, const char *text);

    /* Optional (added compatibly): the media types the agent takes in a
     * message, NULL-terminated, e.g. {"text/plain", "application/json",
     * NULL}; a mode "image/" followed by a star takes every image type, a
     * star, slash, star anything. They are the card's defaultInputModes,
     * and a message with a part of another type is refused with A2A error
     * -32005 (content type not supported) before a job exists. A text part is "text/plain", a data part
     * "application/json", a file part its mimeType (mediaType in A2A 1.0;
     * "application/octet-stream" when absent). NULL: the card says
     * "text/plain" and every part is accepted (the behaviour before). */
    const char *const *input_modes;

    /* Optional (added compatibly). When set, the host calls it INSTEAD of
     * run_background, with the whole job: task and context ids, attempt,
     * the full message as JSON and the request metadata (struct a2ad_job).
     * Same rules as run_background. Keep run_background set as well: a host
     * older than this member calls that one. An artifact whose MIME type is
     * application/json and whose bytes are JSON becomes an A2A data part. */
    a2ad_status (*run_job)(void *state, const struct a2ad_job *job, a2ad_ctx ctx);
};

/* The job as the client sent it, for run_job (below). Every pointer is
 * BORROWED for the run_job call. Grown by appending members only: read a
 * member only when job->struct_size covers it (A2AD_JOB_HAS). */
struct a2ad_job {
    uint32_t struct_size;     /* sizeof(struct a2ad_job) the host was built with */
    uint32_t attempt;         /* 1 for the first run; more when re-run after a restart */
    const char *task_id;      /* the A2A task id */
    const char *context_id;   /* the A2A context id */
    const char *agent;        /* the agent's name (as in the URL) */
    const char *query;        /* the text parts joined by "\n" (run_background's query) */
    const char *message_json; /* the user's A2A Message as JSON (A2A 0.3 shape): every part
                                 (text, data, file) and its metadata */
    const char *metadata_json; /* the request's params.metadata as a JSON object, "{}" if none */
};

#define A2AD_JOB_HAS(job, member)                                                        \
    ((job) != NULL && (job)->struct_size >= offsetof(struct a2ad_job, member) +         \
                                                 sizeof((job)->member))

#define A2AD_AGENT_HEADER .abi_major = A2AD_ABI_MAJOR, .struct_size = sizeof(struct a2ad_agent)

/* The one exported symbol: `A2AD_AGENT_ENTRY(my_descriptor)` at file scope. */
#define A2AD_AGENT_ENTRY_SYMBOL "a2ad_agent_entry"
typedef const struct a2ad_agent *(*a2ad_agent_entry_fn)(void);
#define A2AD_AGENT_ENTRY(descriptor)                                                     \
    A2AD_EXPORT const struct a2ad_agent *a2ad_agent_entry(void);                         \
    A2AD_EXPORT const struct a2ad_agent *a2ad_agent_entry(void) { return &(descriptor); }

/* ---- thin wrappers: plugin code reads like the seed ---------------------- */

#define A2AD_HOST_HAS(host, member)                                                      \
    ((host) != NULL && (host)->struct_size >= offsetof(struct a2ad_host, member) +      \
                                                  sizeof((host)->member) &&              \
     (host)->member != NULL)

static inline a2ad_status a2ad_update_progress(a2ad_ctx ctx, const char *message,
                                               double progress, a2ad_importance importance) {
    return A2AD_HOST_HAS(ctx.host, update_progress)
               ? ctx.host->update_progress(ctx, message, progress, importance)
               : A2AD_ERR_ABI;
}

static inline a2ad_status a2ad_add_artifact(a2ad_ctx ctx, const char *name,
                                            const char *mime_type, const void *data,
                                            size_t len) {
    return A2AD_HOST_HAS(ctx.host, add_artifact)
               ? ctx.host->add_artifact(ctx, name, mime_type, data, len)
               : A2AD_ERR_ABI;
}

static inline a2ad_status a2ad_add_artifact_chunk(a2ad_ctx ctx, const char *name,
                                                  const char *mime_type, const void *data,
                                                  size_t len, int append, int last_chunk) {
    return A2AD_HOST_HAS(ctx.host, add_artifact_chunk)
               ? ctx.host->add_artifact_chunk(ctx, name, mime_type, data, len, append,
                                              last_chunk)
               : A2AD_ERR_ABI;
}

static inline int a2ad_cancelled(a2ad_ctx ctx) {
    return A2AD_HOST_HAS(ctx.host, cancelled) ? ctx.host->cancelled(ctx) : 1;
}

static inline a2ad_status a2ad_result(a2ad_ctx ctx, const char *text) {
    return A2AD_HOST_HAS(ctx.host, set_result) ? ctx.host->set_result(ctx, text) : A2AD_ERR_ABI;
}

static inline a2ad_status a2ad_request_input(a2ad_ctx ctx, const char *message) {
    return A2AD_HOST_HAS(ctx.host, request_input)
               ? ctx.host->request_input(ctx, message, A2AD_INPUT_REQUIRED)
               : A2AD_ERR_ABI;
}

static inline a2ad_status a2ad_request_auth(a2ad_ctx ctx, const char *message) {
    return A2AD_HOST_HAS(ctx.host, request_input)
               ? ctx.host->request_input(ctx, message, A2AD_AUTH_REQUIRED)
               : A2AD_ERR_ABI;
}

static inline a2ad_status a2ad_fail(a2ad_ctx ctx, const char *reason) {
    return A2AD_HOST_HAS(ctx.host, set_failure) ? ctx.host->set_failure(ctx, reason)
                                                : A2AD_ERR_FAILED;
}

static inline void a2ad_log(a2ad_ctx ctx, a2ad_log_level level, const char *fmt, ...)
    A2AD_PRINTF(3, 4);
static inline void a2ad_log(a2ad_ctx ctx, a2ad_log_level level, const char *fmt, ...) {
    if (A2AD_HOST_HAS(ctx.host, vlog)) {
        va_list ap;
        va_start(ap, fmt);
        ctx.host->vlog(ctx, level, fmt, ap);
        va_end(ap);
    }
}

/* A readable name for a status, for logs and failure texts. */
static inline const char *a2ad_status_name(a2ad_status s) {
    switch (s) {
    case A2AD_OK: return "ok";
    case A2AD_ERR_INVALID: return "invalid argument";
    case A2AD_ERR_ENDED: return "job ended";
    case A2AD_ERR_NOMEM: return "out of memory";
    case A2AD_ERR_FAILED: return "failed";
    case A2AD_ERR_REJECTED: return "rejected";
    case A2AD_ERR_CONFIG: return "bad configuration";
    case A2AD_ERR_NOT_FOUND: return "not found";
    case A2AD_ERR_FULL: return "full";
    case A2AD_ERR_STATE: return "not allowed in this state";
    case A2AD_ERR_IO: return "I/O error";
    case A2AD_ERR_PARSE: return "malformed input";
    case A2AD_ERR_ABI: return "ABI mismatch";
    }
    return "unknown status";
}

#ifdef __cplusplus
}
#endif
#endif /* A2AD_AGENT_H */
