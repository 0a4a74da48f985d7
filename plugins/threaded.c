/* threaded - CPU-bound work on the plugin's own threads.
 *
 * The C form of the seed's ThreadPoolExecutor example:
 *
 *     def cpu_intensive_work():
 *         ...
 *         context.update_progress_sync(message=f"Computing {i}%", progress=i / 100)
 *
 * The job counts the primes below N (N = the query when it is a positive
 * integer up to 50,000,000, else 200,000) with a segmented sieve split over
 * `threads` pthreads. Each thread gets a COPY of the ctx and reports its own
 * progress from its own thread: a ctx is a value handle and every host call
 * is thread-safe, so no lock and no hand-off to the job's thread is needed.
 *
 * The per-thread counts become a binary artifact (partials.bin, uint64
 * little-endian each), on purpose: it exercises base64 artifacts.
 *
 * Options ([agent.threaded] in the config):
 *   threads = 4      worker threads per job, 1..64
 */
#include <a2ad/agent.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_THREADS 4u
#define MAX_THREADS 64u
#define DEFAULT_N 200000ull
#define MAX_N 50000000ull
#define REPORTS_PER_WORKER 4u   /* "a few" updates per thread: 25, 50, 75, 100% */
#define CHUNK 65536ull          /* numbers sieved between two cancel checks */

struct threaded {
    unsigned threads;
};

/* What one thread works on; written by it, read by the job after join. */
struct worker {
    a2ad_ctx ctx; /* its own copy */
    unsigned k;
    unsigned long long lo, hi; /* counts primes in [lo, hi) */
    const unsigned *base;      /* primes up to sqrt(N), shared read-only */
    size_t n_base;
    atomic_uint *parts_done; /* over all threads, for the overall figure */
    unsigned parts_total;
    unsigned long long count;
    bool cancelled;
};

static int parse_unsigned(const char *text, unsigned long long max, unsigned long long *out) {
    if (!text || *text < '0' || *text > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v > max) return -1;
    *out = v;
    return 0;
}

static a2ad_status threaded_init(const struct a2ad_host *host, a2ad_ctx log_ctx,
                                 const struct a2ad_option *opts, size_t n_opts, void **state) {
    (void)host;
    unsigned long long threads = DEFAULT_THREADS;
    for (size_t i = 0; i < n_opts; i++) {
        if (strcmp(opts[i].key, "threads") != 0) {
            a2ad_log(log_ctx, A2AD_LOG_ERROR, "unknown option \"%s\" (known: threads)",
                     opts[i].key);
            return A2AD_ERR_CONFIG;
        }
        if (parse_unsigned(opts[i].value, MAX_THREADS, &threads) != 0 || threads == 0) {
            a2ad_log(log_ctx, A2AD_LOG_ERROR, "threads = \"%s\" is not a number from 1 to %u",
                     opts[i].value ? opts[i].value : "", MAX_THREADS);
            return A2AD_ERR_CONFIG;
        }
    }
    struct threaded *t = malloc(sizeof *t);
    if (!t) return A2AD_ERR_NOMEM;
    t->threads = (unsigned)threads;
    *state = t;
    return A2AD_OK;
}

static void threaded_destroy(void *state) { free(state); }

/* N from the query: a positive integer up to MAX_N, surrounding blanks
 * allowed; anything else means "use the default". */
static unsigned long long limit_from(const char *query) {
    while (*query == ' ' || *query == '\t' || *query == '\n' || *query == '\r') query++;
    char digits[32];
    size_t n = 0;
    while (query[n] >= '0' && query[n] <= '9' && n < sizeof digits - 1) {
        digits[n] = query[n];
        n++;
    }
    digits[n] = '\0';
    const char *rest = query + n;
    while (*rest == ' ' || *rest == '\t' || *rest == '\n' || *rest == '\r') rest++;
    unsigned long long v;
    if (*rest || parse_unsigned(digits, MAX_N, &v) != 0 || v == 0) return DEFAULT_N;
    return v;
}

/* Primes p with p*p < limit, by a plain sieve: at most ~7072 for 50M. */
static unsigned *base_primes(unsigned long long limit, size_t *n_out) {
    unsigned root = 1;
    while ((unsigned long long)(root + 1) * (root + 1) < limit) root++;
    unsigned char *composite = calloc((size_t)root + 1, 1);
    unsigned *primes = malloc(((size_t)root + 1) * sizeof *primes);
    if (!composite || !primes) {
        free(composite);
        free(primes);
        return NULL;
    }
    size_t n = 0;
    for (unsigned i = 2; i <= root; i++) {
        if (composite[i]) continue;
        primes[n++] = i;
        for (unsigned long long j = (unsigned long long)i * i; j <= root; j += i) composite[j] = 1;
    }
    free(composite);
    *n_out = n;
    return primes;
}

/* Count the primes in [lo, hi) with hi - lo <= CHUNK, into a scratch buffer. */
static unsigned long long sieve_chunk(const struct worker *w, unsigned long long lo,
                                      unsigned long long hi, unsigned char *mark) {
    size_t len = (size_t)(hi - lo);
    memset(mark, 1, len);
    for (size_t i = 0; i < w->n_base; i++) {
        unsigned long long p = w->base[i];
        if (p * p >= hi) break;
        unsigned long long start = (lo + p - 1) / p * p;
        if (start < p * p) start = p * p;
        for (unsigned long long j = start; j < hi; j += p) mark[j - lo] = 0;
    }
    unsigned long long count = 0;
    for (size_t i = 0; i < len; i++)
        if (mark[i] && lo + i >= 2) count++;
    return count;
}

/* One thread: REPORTS_PER_WORKER parts, each sieved CHUNK by CHUNK with a
 * cancel check in between, and a progress update after each part, sent from
 * this very thread (the seed's update_progress_sync). */
static void *worker_main(void *arg) {
    struct worker *w = arg;
    unsigned char *mark = malloc(CHUNK);
    if (!mark) {
        w->cancelled = true; /* the job reports the failure after join */
        return NULL;
    }
    unsigned long long span = w->hi - w->lo;
    for (unsigned part = 1; part <= REPORTS_PER_WORKER && !w->cancelled; part++) {
        unsigned long long from = w->lo + span * (part - 1) / REPORTS_PER_WORKER;
        unsigned long long to = w->lo + span * part / REPORTS_PER_WORKER;
        for (unsigned long long c = from; c < to; c += CHUNK) {
            if (a2ad_cancelled(w->ctx)) {
                w->cancelled = true;
                break;
            }
            w->count += sieve_chunk(w, c, to - c < CHUNK ? to : c + CHUNK, mark);
        }
        if (w->cancelled) break;
        unsigned done = atomic_fetch_add(w->parts_done, 1) + 1;
        char message[48];
        snprintf(message, sizeof message, "worker %u: %u%%", w->k, part * 100 / REPORTS_PER_WORKER);
        a2ad_update_progress(w->ctx, message, (double)done / w->parts_total, A2AD_INFO);
    }
    free(mark);
    return NULL;
}

static a2ad_status threaded_run(void *state, const char *query, a2ad_ctx ctx) {
    const struct threaded *t = state;
    unsigned long long limit = limit_from(query);
    unsigned n = t->threads;

    size_t n_base = 0;
    unsigned *base = base_primes(limit, &n_base);
    struct worker *workers = calloc(n, sizeof *workers);
    pthread_t *tids = calloc(n, sizeof *tids);
    if (!base || !workers || !tids) {
        free(base);
        free(workers);
        free(tids);
        return a2ad_fail(ctx, "out of memory");
    }

    atomic_uint parts_done = 0;
    unsigned started = 0;
    for (unsigned k = 0; k < n; k++) {
        workers[k] = (struct worker){
            .ctx = ctx,
            .k = k,
            .lo = limit * k / n,
            .hi = limit * (k + 1) / n,
            .base = base,
            .n_base = n_base,
            .parts_done = &parts_done,
            .parts_total = n * REPORTS_PER_WORKER,
        };
        if (pthread_create(&tids[k], NULL, worker_main, &workers[k]) != 0) break;
        started++;
    }
    /* Every started thread is joined before anything it points to is freed,
     * even when some could not start: a plugin must never leave a thread
     * behind that outlives its job (or its dlclose). */
    for (unsigned k = 0; k < started; k++) pthread_join(tids[k], NULL);

    bool cancelled = started < n;
    unsigned long long total = 0;
    unsigned char *partials = malloc((size_t)n * 8);
    for (unsigned k = 0; k < n; k++) {
        cancelled = cancelled || workers[k].cancelled;
        total += workers[k].count;
        /* Little-endian by hand: the artifact reads the same on any host. */
        for (unsigned b = 0; partials && b < 8; b++)
            partials[k * 8 + b] = (unsigned char)(workers[k].count >> (8 * b));
    }
    free(base);
    free(workers);
    free(tids);

    if (started < n) {
        free(partials);
        return a2ad_fail(ctx, "could not start the worker threads");
    }
    if (cancelled || a2ad_cancelled(ctx)) {
        free(partials);
        return a2ad_fail(ctx, "cancelled");
    }
    if (!partials) return a2ad_fail(ctx, "out of memory");

    a2ad_status s = a2ad_add_artifact(ctx, "partials.bin", "application/octet-stream", partials,
                                      (size_t)n * 8);
    free(partials);
    if (s != A2AD_OK) return s;

    char text[96];
    snprintf(text, sizeof text, "primes below %llu: %llu", limit, total);
    return a2ad_result(ctx, text);
}

static const char *const threaded_tags[] = {"example", "threads", "cpu", NULL};
static const char *const threaded_examples[] = {"1000000", NULL};

static const struct a2ad_skill threaded_skills[] = {
    {
        .id = "count-primes",
        .name = "Count primes",
        .description = "Counts the primes below N (the query, up to 50000000) on several "
                       "threads, each reporting its own progress",
        .tags = threaded_tags,
        .examples = threaded_examples,
    },
};

static const struct a2ad_agent threaded_agent = {
    A2AD_AGENT_HEADER,
    .name = "threaded",
    .description = "CPU-bound work split over the plugin's own threads",
    .version = "1.0.0",
    .skills = threaded_skills,
    .n_skills = sizeof threaded_skills / sizeof threaded_skills[0],
    .init = threaded_init,
    .destroy = threaded_destroy,
    .run_background = threaded_run,
    /* No validate(), so this is the estimate clients are told (Health
     * Universe acknowledgement, agent card): the default N takes well under
     * that on one core. */
    .estimated_duration_s = 5,
};

A2AD_AGENT_ENTRY(threaded_agent)
