/* sign - Standard Webhooks signatures. See sign.h. */
#include "delivery/sign.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

#define SECRET_MIN 24 /* bytes, as the scheme asks */
#define SECRET_MAX 64
#define LINE_MAX_BYTES 512

static struct {
    unsigned char key[SECRET_MAX];
    size_t len;
} secrets[SIGN_MAX_SECRETS];
static size_t n_secrets;
static EVP_MAC *hmac; /* fetched once: fetching is a lookup in OpenSSL's tables */

static void trim(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
}

/* Base64 text (standard alphabet, padded) to bytes; -1 when it is not. */
static int decode(const char *text, unsigned char *out, size_t cap) {
    size_t n = strlen(text);
    if (n == 0 || n % 4 || n / 4 * 3 > cap + 2) return -1;
    unsigned char buf[LINE_MAX_BYTES];
    int got = EVP_DecodeBlock(buf, (const unsigned char *)text, (int)n);
    if (got < 0) return -1;
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    if (text[n - 1] == '=') got--;
    if (text[n - 2] == '=') got--;
    if (got < 0 || (size_t)got > cap) {
        OPENSSL_cleanse(buf, sizeof buf);
        return -1;
    }
    memcpy(out, buf, (size_t)got);
    OPENSSL_cleanse(buf, sizeof buf);
    return got;
}

a2ad_status sign_load(const char *path, char *err, size_t errlen) {
    sign_unload();
    if (!path || !*path) return A2AD_OK;
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "[webhooks] signing_secret_file %s: %s", path, strerror(errno));
        return A2AD_ERR_IO;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 0077))
        log_warn("[webhooks] signing_secret_file %s can be read by other users (mode %03o); "
                 "chmod 600 it", path, (unsigned)(sb.st_mode & 0777));
    char line[LINE_MAX_BYTES + 2];
    a2ad_status st = A2AD_OK;
    unsigned lineno = 0;
    while (st == A2AD_OK && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "[webhooks] signing_secret_file %s:%u: line too long", path,
                     lineno);
            st = A2AD_ERR_CONFIG;
            break;
        }
        trim(line);
        if (!line[0] || line[0] == '#') continue;
        const char *b64 = strncmp(line, "whsec_", 6) == 0 ? line + 6 : line;
        if (n_secrets == SIGN_MAX_SECRETS) {
            snprintf(err, errlen,
                     "[webhooks] signing_secret_file %s:%u: more than %d secrets (one, or two "
                     "during a rotation)", path, lineno, SIGN_MAX_SECRETS);
            st = A2AD_ERR_CONFIG;
            break;
        }
        int n = decode(b64, secrets[n_secrets].key, SECRET_MAX);
        if (n < SECRET_MIN) {
            snprintf(err, errlen,
                     "[webhooks] signing_secret_file %s:%u: not a secret: must be whsec_ then "
                     "the base64 of %d to %d random bytes", path, lineno, SECRET_MIN, SECRET_MAX);
            st = A2AD_ERR_CONFIG;
            break;
        }
        secrets[n_secrets++].len = (size_t)n;
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    if (st == A2AD_OK && n_secrets == 0) {
        snprintf(err, errlen, "[webhooks] signing_secret_file %s holds no secret", path);
        st = A2AD_ERR_CONFIG;
    }
    if (st == A2AD_OK && !(hmac = EVP_MAC_fetch(NULL, "HMAC", NULL))) {
        snprintf(err, errlen, "OpenSSL has no HMAC");
        st = A2AD_ERR_STATE;
    }
    if (st != A2AD_OK) sign_unload();
    return st;
}

bool sign_enabled(void) { return n_secrets > 0; }

static bool mac_one(size_t i, const char *id, const char *ts, const void *body, size_t len,
                    unsigned char md[32]) {
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    size_t mdlen = 0;
    bool ok = ctx && EVP_MAC_init(ctx, secrets[i].key, secrets[i].len, params) &&
              EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) &&
              EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
              EVP_MAC_update(ctx, (const unsigned char *)ts, strlen(ts)) &&
              EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
              (len == 0 || EVP_MAC_update(ctx, body, len)) &&
              EVP_MAC_final(ctx, md, &mdlen, 32) && mdlen == 32;
    EVP_MAC_CTX_free(ctx);
    return ok;
}

bool sign_value(const char *id, uint64_t timestamp_s, const void *body, size_t len,
                char out[SIGN_VALUE_MAX]) {
    if (!n_secrets || !hmac) return false;
    char ts[24];
    snprintf(ts, sizeof ts, "%" PRIu64, timestamp_s);
    size_t at = 0;
    for (size_t i = 0; i < n_secrets; i++) {
        unsigned char md[32];
        if (!mac_one(i, id, ts, body, len, md)) return false;
        if (i) out[at++] = ' ';
        memcpy(out + at, "v1,", 3);
        at += 3;
        at += (size_t)EVP_EncodeBlock((unsigned char *)out + at, md, 32); /* 44 + NUL */
    }
    out[at] = '\0';
    return true;
}

void sign_unload(void) {
    OPENSSL_cleanse(secrets, sizeof secrets);
    n_secrets = 0;
    EVP_MAC_free(hmac);
    hmac = NULL;
}
