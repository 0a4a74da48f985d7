/* asker - a test agent for A2A's interrupted states: its job asks the
 * client "What is your name?" (a2ad_request_input; with the query "auth":
 * a2ad_request_auth "Sign in, then say your name"), waits (at most 20 s)
 * for the answer through on_message, and ends with "Hello, NAME"; with the
 * query "twice" it then asks "And your surname?" and ends with "Hello,
 * NAME SURNAME". Jobs are told apart by ctx.handle. */
#include <a2ad/agent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_JOBS = 64 };

struct job {
    uint64_t handle; /* 0 = free */
    char *answer;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t arrived = PTHREAD_COND_INITIALIZER;
static struct job jobs[MAX_JOBS];

static struct job *find(uint64_t handle) {
    for (int i = 0; i < MAX_JOBS; i++)
        if (jobs[i].handle == handle) return &jobs[i];
    return NULL;
}

static void asker_on_message(void *state, a2ad_ctx ctx, const char *text) {
    (void)state;
    pthread_mutex_lock(&lock);
    struct job *j = find(ctx.handle);
    if (j && !j->answer) j->answer = strdup(text);
    pthread_cond_broadcast(&arrived);
    pthread_mutex_unlock(&lock);
}

/* The client's answer to the job's question (NULL: none within 20 s, or
 * canceled); malloc'd. */
static char *await_answer(struct job *j, a2ad_ctx ctx) {
    time_t give_up = time(NULL) + 20;
    pthread_mutex_lock(&lock);
    while (!j->answer && time(NULL) < give_up && !a2ad_cancelled(ctx)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&arrived, &lock, &ts);
    }
    char *answer = j->answer;
    j->answer = NULL;
    pthread_mutex_unlock(&lock);
    return answer;
}

static a2ad_status asker_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    pthread_mutex_lock(&lock);
    struct job *j = find(0);
    if (j) j->handle = ctx.handle;
    pthread_mutex_unlock(&lock);
    if (!j) return a2ad_fail(ctx, "too many jobs");
    a2ad_status st = strcmp(query, "auth") == 0 ? a2ad_request_auth(ctx, "Sign in, then say your name")
                                                : a2ad_request_input(ctx, "What is your name?");
    char *answer = st == A2AD_OK ? await_answer(j, ctx) : NULL;
    /* "twice": a second question, so the answer to the first is an
     * interrupted task again */
    char *surname = NULL;
    if (answer && strcmp(query, "twice") == 0 &&
        (st = a2ad_request_input(ctx, "And your surname?")) == A2AD_OK)
        surname = await_answer(j, ctx);
    pthread_mutex_lock(&lock);
    j->handle = 0;
    pthread_mutex_unlock(&lock);
    if (st != A2AD_OK) {
        free(answer);
        return a2ad_fail(ctx, "request_input refused");
    }
    if (!answer || (strcmp(query, "twice") == 0 && !surname)) {
        free(answer);
        return a2ad_fail(ctx, "no answer");
    }
    char text[500];
    snprintf(text, sizeof text, "Hello, %.200s%s%.200s", answer, surname ? " " : "",
             surname ? surname : "");
    free(answer);
    free(surname);
    return a2ad_result(ctx, text);
}

static const struct a2ad_agent asker_agent = {
    A2AD_AGENT_HEADER,
    .name = "asker",
    .description = "Asks the client for its name, then greets it (test plugin)",
    .version = "1.0.0",
    .run_background = asker_run,
    .on_message = asker_on_message,
};

A2AD_AGENT_ENTRY(asker_agent)
