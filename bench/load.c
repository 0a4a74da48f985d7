/* load - submit exactly N non-blocking A2A jobs over C keep-alive
 * connections and time each acknowledgement (bench/pg.sh).
 *
 *   load URL[,URL...] N C HOOK_URL
 * Several URLs (nodes): job i goes to the (i mod count)-th, as a round-robin
 * load balancer would send it.
 * prints: "acked=A refused=R other=O start_ms=S seconds=X p50_ms=P p99_ms=Q"
 * (start_ms: CLOCK_REALTIME, comparable with bench/sink's times). */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_URLS 8
static const char *urls[MAX_URLS], *hook;
static int n_urls;
static int total;
static atomic_int next, acked, refused, other;
static double *lat_ms;

static double now_ms(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static size_t sink_body(char *p, size_t s, size_t n, void *arg) {
    size_t len = s * n;
    char *buf = arg;
    size_t have = strlen(buf);
    if (have + len < 4095) {
        memcpy(buf + have, p, len);
        buf[have + len] = '\0';
    }
    return len;
}

static void *worker(void *arg) {
    (void)arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char body[1024], resp[4096];
    for (;;) {
        int i = atomic_fetch_add(&next, 1);
        if (i >= total) break;
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"message/send\",\"params\":{"
                 "\"message\":{\"kind\":\"message\",\"messageId\":\"l%d\",\"role\":\"user\","
                 "\"parts\":[{\"kind\":\"text\",\"text\":\"job %d\"}]},\"configuration\":{"
                 "\"blocking\":false,\"pushNotificationConfig\":{\"url\":\"%s\"}}}}",
                 i, i, i, hook);
        resp[0] = '\0';
        curl_easy_setopt(c, CURLOPT_URL, urls[i % n_urls]);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
        double t0 = now_ms(CLOCK_MONOTONIC);
        CURLcode rc = curl_easy_perform(c);
        lat_ms[i] = now_ms(CLOCK_MONOTONIC) - t0;
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (rc == CURLE_OK && status == 200 && strstr(resp, "\"result\""))
            atomic_fetch_add(&acked, 1);
        else if (status == 503)
            atomic_fetch_add(&refused, 1);
        else
            atomic_fetch_add(&other, 1);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: load URL[,URL...] N CONNECTIONS HOOK_URL\n");
        return 2;
    }
    for (char *save = NULL, *u = strtok_r(argv[1], ",", &save); u && n_urls < MAX_URLS;
         u = strtok_r(NULL, ",", &save))
        urls[n_urls++] = u;
    if (n_urls == 0) return 2;
    total = atoi(argv[2]);
    int conns = atoi(argv[3]);
    hook = argv[4];
    lat_ms = calloc((size_t)total, sizeof *lat_ms);
    pthread_t *th = calloc((size_t)conns, sizeof *th);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    double start_wall = now_ms(CLOCK_REALTIME), t0 = now_ms(CLOCK_MONOTONIC);
    for (int i = 0; i < conns; i++) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < conns; i++) pthread_join(th[i], NULL);
    double secs = (now_ms(CLOCK_MONOTONIC) - t0) / 1000.0;
    qsort(lat_ms, (size_t)total, sizeof *lat_ms, cmp);
    printf("acked=%d refused=%d other=%d start_ms=%.0f seconds=%.3f p50_ms=%.2f p99_ms=%.2f\n",
           atomic_load(&acked), atomic_load(&refused), atomic_load(&other), start_wall, secs,
           lat_ms[total / 2], lat_ms[(int)(total * 0.99)]);
    curl_global_cleanup();
    free(th);
    free(lat_ms);
    return 0;
}
