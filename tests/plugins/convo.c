/* convo - a test agent that holds a conversation: its job waits for
 * further messages (on_message) and reports each as a progress update
 * "heard: TEXT". "bye" ends the job ("conversation over after N messages");
 * "flood N" sends N progress updates of about 1 KB at once (a stream
 * reader that does not keep up gets cut off). The job gives up after 20 s.
 * Jobs are told apart by ctx.handle, as agent.h says. */
#include <a2ad/agent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_JOBS = 512, INBOX = 64 };

struct job {
    uint64_t handle; /* 0 = free */
    char *inbox[INBOX];
    unsigned n;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t arrived = PTHREAD_COND_INITIALIZER;
static struct job jobs[MAX_JOBS];

static struct job *find(uint64_t handle) {
    for (int i = 0; i < MAX_JOBS; i++)
        if (jobs[i].handle == handle) return &jobs[i];
    return NULL;
}

static void convo_on_message(void *state, a2ad_ctx ctx, const char *text) {
    (void)state;
    pthread_mutex_lock(&lock);
    struct job *j = find(ctx.handle);
    if (j && j->n < INBOX && (j->inbox[j->n] = strdup(text))) j->n++;
    pthread_cond_broadcast(&arrived);
    pthread_mutex_unlock(&lock);
}

static a2ad_status convo_run(void *state, const char *query, a2ad_ctx ctx) {
    (void)state;
    (void)query;
    pthread_mutex_lock(&lock);
    struct job *j = find(0);
    if (j) j->handle = ctx.handle;
    pthread_mutex_unlock(&lock);
    if (!j) return a2ad_fail(ctx, "too many conversations");
    a2ad_update_progress(ctx, "listening", 0.0, A2AD_INFO);
    unsigned heard = 0;
    a2ad_status result = A2AD_ERR_FAILED;
    char *msg = NULL;
    time_t give_up = time(NULL) + 20;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (j->n == 0 && time(NULL) < give_up && !a2ad_cancelled(ctx)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&arrived, &lock, &ts);
        }
        msg = NULL;
        if (j->n) {
            msg = j->inbox[0];
            memmove(j->inbox, j->inbox + 1, (j->n - 1) * sizeof j->inbox[0]);
            j->n--;
        }
        pthread_mutex_unlock(&lock);
        if (!msg) {
            result = a2ad_cancelled(ctx) ? a2ad_fail(ctx, "cancelled") : a2ad_fail(ctx, "nobody talked");
            break;
        }
        heard++;
        unsigned flood = 0;
        if (strcmp(msg, "bye") == 0) {
            char text[64];
            snprintf(text, sizeof text, "conversation over after %u messages", heard);
            free(msg);
            result = a2ad_result(ctx, text);
            break;
        } else if (sscanf(msg, "flood %u", &flood) == 1) {
            char big[1024];
            memset(big, 'x', sizeof big - 1);
            big[sizeof big - 1] = '\0';
            for (unsigned i = 0; i < flood && a2ad_update_progress(ctx, big, NAN, A2AD_DEBUG) == A2AD_OK; i++)
                ;
        } else {
            char text[300];
            snprintf(text, sizeof text, "heard: %.250s", msg);
            a2ad_update_progress(ctx, text, 0.5, A2AD_INFO);
        }
        free(msg);
    }
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < j->n; i++) free(j->inbox[i]);
    j->n = 0;
    j->handle = 0;
    pthread_mutex_unlock(&lock);
    return result;
}

static const struct a2ad_agent convo_agent = {
    A2AD_AGENT_HEADER,
    .name = "convo",
    .description = "Holds a conversation: reports every further message",
    .version = "1.0.0",
    .run_background = convo_run,
    .on_message = convo_on_message,
};

A2AD_AGENT_ENTRY(convo_agent)
