/* tls - the listener's certificate and key, replaceable while serving.
 *
 * A pair (a generation) is parsed once by GnuTLS and handed to every
 * handshake by the certificate callback. GnuTLS neither copies nor frees
 * what the callback returns and may use it until the session ends, so each
 * session that took a generation is recorded (session -> generation) and
 * released when libmicrohttpd reports its connection closed; a replaced
 * generation is freed when the last such session is gone. The record is a
 * small hash table under one mutex; nothing under it does I/O or parsing.
 */
#include "front/tls.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* A certificate chain or a key is a few KiB. */
#define TLS_FILE_MAX (1024 * 1024)
/* Certificates in tls_cert_file: the server's and its intermediates. */
#define TLS_CHAIN_MAX 16
#define TLS_BUCKETS 256

struct tls_gen {
    gnutls_pcert_st chain[TLS_CHAIN_MAX];
    unsigned n_chain;
    gnutls_privkey_t key;
    size_t sessions; /* handshakes that took this generation, not yet closed */
    struct tls_gen *next_retired;
};

struct tls_use {
    gnutls_session_t session;
    struct tls_gen *gen;
    struct tls_use *next;
};

static struct {
    pthread_mutex_t lock;
    struct tls_gen *current;  /* NULL: no TLS */
    struct tls_gen *retired;  /* replaced, still held by open sessions */
    struct tls_use *uses[TLS_BUCKETS];
} tls = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* For /metrics, read without the lock: the served certificate's notAfter
 * (0 = no TLS, or none readable) and the SIGHUP re-reads by outcome. */
static _Atomic long long served_not_after;
static _Atomic unsigned long long reloads_ok, reloads_failed;

static void gen_free(struct tls_gen *g) {
    if (!g) return;
    for (unsigned i = 0; i < g->n_chain; i++) gnutls_pcert_deinit(&g->chain[i]);
    if (g->key) gnutls_privkey_deinit(g->key); /* GnuTLS clears the key's numbers */
    free(g);
}

/* The whole file, NUL-terminated, or NULL with why in err. */
static char *file_read(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        return NULL;
    }
    setvbuf(f, NULL, _IONBF, 0); /* no copy of the key left in a stdio buffer */
    char *buf = malloc(TLS_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, TLS_FILE_MAX + 1, f) : 0;
    bool rerr = ferror(f);
    fclose(f);
    if (!buf || rerr || n == 0 || n > TLS_FILE_MAX || !memmem(buf, n, "-----BEGIN ", 11)) {
        snprintf(err, errlen, "%s",
                 !buf   ? "out of memory"
                 : rerr ? "read error"
                 : n > TLS_FILE_MAX ? "larger than 1 MiB"
                                    : "not a PEM file (no -----BEGIN line)");
        if (buf) gnutls_memset(buf, 0, n <= TLS_FILE_MAX ? n : TLS_FILE_MAX + 1);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static bool same_key(gnutls_pubkey_t cert_pub, gnutls_privkey_t key) {
    gnutls_pubkey_t pub;
    unsigned char a[64], b[64];
    size_t na = sizeof a, nb = sizeof b;
    if (gnutls_pubkey_init(&pub) < 0) return false;
    bool same = gnutls_pubkey_import_privkey(pub, key, 0, 0) >= 0 &&
                gnutls_pubkey_get_key_id(pub, 0, a, &na) >= 0 &&
                gnutls_pubkey_get_key_id(cert_pub, 0, b, &nb) >= 0 && na == nb &&
                memcmp(a, b, na) == 0;
    gnutls_pubkey_deinit(pub);
    return same;
}

/* "subject CN=x, serial 0a1b, notAfter 2027-01-01T00:00:00Z" of the first
 * certificate, for the log; returns its notAfter ((time_t)-1: unreadable). */
static time_t gen_describe(const struct tls_gen *g, char *out, size_t n) {
    gnutls_x509_crt_t crt;
    time_t until = (time_t)-1;
    snprintf(out, n, "(certificate not readable)");
    if (gnutls_x509_crt_init(&crt) < 0) return until;
    if (gnutls_x509_crt_import(crt, &g->chain[0].cert, GNUTLS_X509_FMT_DER) >= 0) {
        gnutls_datum_t dn = {NULL, 0};
        unsigned char serial[40];
        size_t ns = sizeof serial;
        char hex[2 * sizeof serial + 1] = "";
        if (gnutls_x509_crt_get_serial(crt, serial, &ns) >= 0)
            for (size_t i = 0; i < ns; i++) snprintf(hex + 2 * i, 3, "%02x", serial[i]);
        until = gnutls_x509_crt_get_expiration_time(crt);
        struct tm tm;
        char when[32] = "?";
        if (until != (time_t)-1 && gmtime_r(&until, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        int dn_ok = gnutls_x509_crt_get_dn3(crt, &dn, 0);
        snprintf(out, n, "subject %s, serial %s, notAfter %s%s", dn_ok >= 0 ? (const char *)dn.data : "?",
                 hex[0] ? hex : "?", when, until != (time_t)-1 && until < time(NULL) ? " (EXPIRED)" : "");
        gnutls_free(dn.data);
    }
    gnutls_x509_crt_deinit(crt);
    return until;
}

static bool expired(time_t until) { return until != (time_t)-1 && until < time(NULL); }

/* An expired certificate is served (a refusal would only turn the clients'
 * certificate error into a connection error) but said loudly. */
static void warn_expired(const char *origin, const char *cert_path, time_t until) {
    struct tm tm;
    char when[32] = "?";
    if (gmtime_r(&until, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    log_warn("%s: [server] tls_cert_file = %s: the certificate expired at %s (notAfter); "
             "clients refuse it until it is renewed",
             origin, cert_path, when);
}

/* Parse and check the pair; NULL with "[server] KEY = PATH: problem" in err. */
static struct tls_gen *gen_load(const char *cert_path, const char *key_path, char *err, size_t errlen) {
    char why[300];
    size_t len = 0;
    struct tls_gen *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char *pem = file_read(cert_path, &len, why, sizeof why);
    if (!pem) {
        snprintf(err, errlen, "[server] tls_cert_file = %s: %s", cert_path, why);
        goto fail;
    }
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
    g->n_chain = TLS_CHAIN_MAX;
    int rc = gnutls_pcert_list_import_x509_raw(g->chain, &g->n_chain, &d, GNUTLS_X509_FMT_PEM, 0);
    free(pem);
    if (rc < 0) {
        g->n_chain = 0;
        snprintf(err, errlen, "[server] tls_cert_file = %s: %s", cert_path,
                 rc == GNUTLS_E_SHORT_MEMORY_BUFFER ? "more than 16 certificates"
                                                     : "no readable PEM certificate");
        goto fail;
    }
    if (g->n_chain == 0) {
        snprintf(err, errlen, "[server] tls_cert_file = %s: no PEM certificate", cert_path);
        goto fail;
    }
    pem = file_read(key_path, &len, why, sizeof why);
    if (!pem) {
        snprintf(err, errlen, "[server] tls_key_file = %s: %s", key_path, why);
        goto fail;
    }
    d = (gnutls_datum_t){(unsigned char *)pem, (unsigned)len};
    rc = gnutls_privkey_init(&g->key);
    if (rc >= 0) rc = gnutls_privkey_import_x509_raw(g->key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_memset(pem, 0, len);
    free(pem);
    if (rc < 0) {
        snprintf(err, errlen, "[server] tls_key_file = %s: no readable unencrypted PEM private key (%s)",
                 key_path, gnutls_strerror(rc));
        goto fail;
    }
    if (!same_key(g->chain[0].pubkey, g->key)) {
        snprintf(err, errlen, "[server] tls_key_file = %s: the key does not match the certificate in %s",
                 key_path, cert_path);
        goto fail;
    }
    return g;
fail:
    gen_free(g);
    return NULL;
}

a2ad_status tls_start(const char *cert_path, const char *key_path) {
    char err[700], what[600];
    struct tls_gen *g = gen_load(cert_path, key_path, err, sizeof err);
    if (!g) {
        log_error("http: %s", err);
        return A2AD_ERR_CONFIG;
    }
    time_t until = gen_describe(g, what, sizeof what);
    log_info("http: TLS certificate %s (%s)", cert_path, what);
    if (expired(until)) warn_expired("http", cert_path, until);
    atomic_store(&served_not_after, until == (time_t)-1 ? 0 : (long long)until);
    pthread_mutex_lock(&tls.lock);
    struct tls_gen *old = tls.current;
    tls.current = g;
    pthread_mutex_unlock(&tls.lock);
    gen_free(old); /* a second start (tests) after a stop: none */
    return A2AD_OK;
}

static size_t bucket(gnutls_session_t s) { return ((uintptr_t)s >> 4) % TLS_BUCKETS; }

int tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                 const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
                 unsigned int *pcert_length, gnutls_privkey_t *privkey) {
    (void)req_ca_rdn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    struct tls_use *fresh = malloc(sizeof *fresh);
    pthread_mutex_lock(&tls.lock);
    struct tls_use **head = &tls.uses[bucket(session)], *u = *head;
    while (u && u->session != session) u = u->next;
    if (!u && fresh && tls.current) {
        /* A session asking again (a renegotiation) keeps the pair it has. */
        u = fresh;
        fresh = NULL;
        *u = (struct tls_use){.session = session, .gen = tls.current, .next = *head};
        *head = u;
        tls.current->sessions++;
    }
    struct tls_gen *g = u ? u->gen : NULL;
    pthread_mutex_unlock(&tls.lock);
    free(fresh);
    if (!g) return -1; /* out of memory: this handshake fails, the next may not */
    *pcert = g->chain;
    *pcert_length = g->n_chain;
    *privkey = g->key;
    return 0;
}

void tls_conn_closed(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session) return;
    gnutls_session_t session = ci->tls_session;
    struct tls_gen *drop = NULL;
    pthread_mutex_lock(&tls.lock);
    struct tls_use **p = &tls.uses[bucket(session)];
    while (*p && (*p)->session != session) p = &(*p)->next;
    struct tls_use *u = *p;
    if (u) {
        *p = u->next;
        if (--u->gen->sessions == 0 && u->gen != tls.current) {
            for (struct tls_gen **r = &tls.retired; *r; r = &(*r)->next_retired)
                if (*r == u->gen) {
                    *r = u->gen->next_retired;
                    drop = u->gen;
                    break;
                }
        }
    }
    pthread_mutex_unlock(&tls.lock);
    free(u);
    gen_free(drop);
}

void tls_reload(const struct config *fresh) {
    pthread_mutex_lock(&tls.lock);
    bool on = tls.current != NULL;
    pthread_mutex_unlock(&tls.lock);
    /* Turning TLS on or off is one of the restart keys (main.c). */
    if (!on || !fresh->tls_cert_file || !*fresh->tls_cert_file) return;
    char err[700], what[600];
    struct tls_gen *g = gen_load(fresh->tls_cert_file, fresh->tls_key_file, err, sizeof err);
    if (!g) {
        atomic_fetch_add(&reloads_failed, 1);
        log_error("reload: %s; new connections keep the previous TLS certificate", err);
        return;
    }
    time_t until = gen_describe(g, what, sizeof what);
    struct tls_gen *drop = NULL;
    pthread_mutex_lock(&tls.lock);
    struct tls_gen *old = tls.current;
    tls.current = g;
    if (old->sessions == 0) {
        drop = old;
    } else {
        old->next_retired = tls.retired;
        tls.retired = old;
    }
    pthread_mutex_unlock(&tls.lock);
    gen_free(drop);
    atomic_store(&served_not_after, until == (time_t)-1 ? 0 : (long long)until);
    atomic_fetch_add(&reloads_ok, 1);
    log_info("reload: TLS certificate %s (%s) for new connections", fresh->tls_cert_file, what);
    if (expired(until)) warn_expired("reload", fresh->tls_cert_file, until);
}

a2ad_status tls_check(const char *cert_path, const char *key_path, char *what, size_t n, bool *is_expired) {
    *is_expired = false;
    struct tls_gen *g = gen_load(cert_path, key_path, what, n);
    if (!g) return A2AD_ERR_CONFIG;
    *is_expired = expired(gen_describe(g, what, n));
    gen_free(g);
    return A2AD_OK;
}

bool tls_metrics(long long *not_after, unsigned long long *ok, unsigned long long *failed) {
    pthread_mutex_lock(&tls.lock);
    bool on = tls.current != NULL;
    pthread_mutex_unlock(&tls.lock);
    *not_after = atomic_load(&served_not_after);
    *ok = atomic_load(&reloads_ok);
    *failed = atomic_load(&reloads_failed);
    return on;
}

void tls_stop(void) {
    pthread_mutex_lock(&tls.lock);
    struct tls_gen *cur = tls.current, *ret = tls.retired;
    tls.current = tls.retired = NULL;
    atomic_store(&served_not_after, 0);
    for (size_t i = 0; i < TLS_BUCKETS; i++)
        for (struct tls_use *u = tls.uses[i], *next; u; u = next) {
            next = u->next;
            free(u);
        }
    memset(tls.uses, 0, sizeof tls.uses);
    pthread_mutex_unlock(&tls.lock);
    gen_free(cur);
    for (struct tls_gen *next; ret; ret = next) {
        next = ret->next_retired;
        gen_free(ret);
    }
}
