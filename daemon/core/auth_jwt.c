/* auth_jwt - JWT bearer tokens. See auth_jwt.h.
 *
 * libjwt 1.10 (Debian 12) checks a signature with whatever algorithm the
 * token's header names, using the key it is given, and checks no claim.
 * So the header is read here first and the algorithm must be the one the
 * configured key is for: an HS256 token is never checked against an RSA
 * public key (which an attacker knows), and "none" is never accepted.
 * That libjwt has no JWKS reader either: the RSA keys of the JWKS file are
 * turned into PEM with OpenSSL's libcrypto at start-up.
 */
#include "core/auth_jwt.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "config.h"
#include "util.h"

#define JWT_MAX 8192          /* longest token accepted */
#define FILE_MAX (1 << 20)    /* JWKS and secret files */
#define KEYS_MAX 100
#define LEEWAY_S 60           /* clock skew allowed on exp and nbf */
#define HS_SECRET_MIN 32

struct rsa_key {
    char *kid; /* NULL = none */
    char *pem;
    size_t pem_len;
};

static struct {
    unsigned char *hs_secret;
    size_t hs_len;
    struct rsa_key *keys;
    size_t n_keys;
    char *issuer, *audience; /* NULL = not checked */
} j;

/* ---- files and keys ---------------------------------------------------- */

static char *read_file(const char *path, size_t *len, char *err, size_t errlen, const char *key) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "[server] %s = %s: cannot open: %s", key, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, FILE_MAX + 1, f) : 0;
    bool bad = ferror(f) != 0;
    fclose(f);
    if (!buf || bad || n > FILE_MAX) {
        snprintf(err, errlen, "[server] %s = %s: %s", key, path,
                 !buf ? "out of memory" : bad ? "read error" : "larger than 1 MiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* base64url without padding (RFC 7515) into malloc'd bytes. */
static unsigned char *b64url_decode(const char *s, size_t n, size_t *out_len) {
    if (n > JWT_MAX * 2) return NULL;
    char *t = malloc(n + 4);
    if (!t) return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '-') c = '+';
        else if (c == '_') c = '/';
        else if (!isalnum((unsigned char)c)) {
            free(t);
            return NULL;
        }
        t[i] = c;
    }
    size_t m = n;
    while (m % 4) t[m++] = '=';
    t[m] = '\0';
    unsigned char *out = util_base64_decode(t, out_len);
    free(t);
    return out;
}

static char *rsa_pem(const unsigned char *n, size_t nlen, const unsigned char *e, size_t elen,
                     size_t *pem_len) {
    char *pem = NULL;
    BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bn && be && bld && ctx && bio && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1 &&
        PEM_write_bio_PUBKEY(bio, pkey) == 1) {
        char *data = NULL;
        long len = BIO_get_mem_data(bio, &data);
        if (len > 0 && (pem = malloc((size_t)len + 1))) {
            memcpy(pem, data, (size_t)len);
            pem[len] = '\0';
            *pem_len = (size_t)len;
        }
    }
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return pem;
}

static const char *jwk_member(const cJSON *k, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(k, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* One JWK: NULL and appended, or the problem. Keys that are not RSA
 * signing keys for RS256 are skipped (a JWKS may hold others). */
static const char *add_jwk(const cJSON *k, bool *used) {
    *used = false;
    const char *kty = jwk_member(k, "kty"), *use = jwk_member(k, "use"),
               *alg = jwk_member(k, "alg"), *kid = jwk_member(k, "kid");
    if (!kty) return "a key has no \"kty\"";
    if (strcmp(kty, "RSA") != 0 || (use && strcmp(use, "sig") != 0) ||
        (alg && strcmp(alg, "RS256") != 0))
        return NULL;
    if (kid && (!*kid || strlen(kid) > 200)) return "a key's \"kid\" must be 1 to 200 characters";
    const char *n64 = jwk_member(k, "n"), *e64 = jwk_member(k, "e");
    if (!n64 || !e64) return "an RSA key needs \"n\" and \"e\"";
    size_t nlen = 0, elen = 0;
    unsigned char *n = b64url_decode(n64, strlen(n64), &nlen);
    unsigned char *e = b64url_decode(e64, strlen(e64), &elen);
    const char *bad = NULL;
    size_t pem_len = 0;
    char *pem = NULL;
    if (!n || !e) bad = "an RSA key's \"n\" or \"e\" is not base64url";
    else if (nlen < 256) bad = "an RSA key is shorter than 2048 bits";
    else if (!(pem = rsa_pem(n, nlen, e, elen, &pem_len))) bad = "an RSA key cannot be used";
    free(n);
    free(e);
    if (bad) return bad;
    if (j.n_keys >= KEYS_MAX) {
        free(pem);
        return "more than 100 keys";
    }
    struct rsa_key *nk = realloc(j.keys, (j.n_keys + 1) * sizeof *nk);
    if (!nk) {
        free(pem);
        return "out of memory";
    }
    j.keys = nk;
    nk[j.n_keys] = (struct rsa_key){.kid = kid ? strdup(kid) : NULL, .pem = pem, .pem_len = pem_len};
    j.n_keys++;
    *used = true;
    return NULL;
}

static a2ad_status load_jwks(const char *path, char *err, size_t errlen) {
    size_t len = 0;
    char *text = read_file(path, &len, err, errlen, "auth_jwt_jwks_file");
    if (!text) return A2AD_ERR_IO;
    cJSON *doc = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(doc, "keys");
    const char *bad = !cJSON_IsArray(keys) ? "must be a JWKS: {\"keys\": [...]}" : NULL;
    size_t used_n = 0;
    const cJSON *k;
    if (!bad) cJSON_ArrayForEach(k, keys) {
            bool used;
            if ((bad = add_jwk(k, &used))) break;
            used_n += used;
        }
    if (!bad && !used_n) bad = "holds no RSA key for RS256 (kty RSA, use sig, alg RS256)";
    cJSON_Delete(doc);
    if (bad) {
        snprintf(err, errlen, "[server] auth_jwt_jwks_file = %s: %s", path, bad);
        return A2AD_ERR_CONFIG;
    }
    return A2AD_OK;
}

static a2ad_status load_secret(const char *path, char *err, size_t errlen) {
    size_t len = 0;
    char *text = read_file(path, &len, err, errlen, "auth_jwt_hs256_secret_file");
    if (!text) return A2AD_ERR_IO;
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    if (len < HS_SECRET_MIN) {
        OPENSSL_cleanse(text, len);
        free(text);
        snprintf(err, errlen,
                 "[server] auth_jwt_hs256_secret_file = %s: the secret must be at least %d bytes "
                 "(e.g. openssl rand -hex 32)",
                 path, HS_SECRET_MIN);
        return A2AD_ERR_CONFIG;
    }
    j.hs_secret = (unsigned char *)text;
    j.hs_len = len;
    return A2AD_OK;
}

a2ad_status auth_jwt_init(const struct config *cfg, char *err, size_t errlen) {
    auth_jwt_shutdown();
    a2ad_status st = A2AD_OK;
    if (cfg->auth_jwt_hs256_secret_file && *cfg->auth_jwt_hs256_secret_file)
        st = load_secret(cfg->auth_jwt_hs256_secret_file, err, errlen);
    if (st == A2AD_OK && cfg->auth_jwt_jwks_file && *cfg->auth_jwt_jwks_file)
        st = load_jwks(cfg->auth_jwt_jwks_file, err, errlen);
    if (st == A2AD_OK && auth_jwt_enabled()) {
        if (cfg->auth_jwt_issuer && *cfg->auth_jwt_issuer) j.issuer = strdup(cfg->auth_jwt_issuer);
        if (cfg->auth_jwt_audience && *cfg->auth_jwt_audience)
            j.audience = strdup(cfg->auth_jwt_audience);
    }
    if (st != A2AD_OK) auth_jwt_shutdown();
    return st;
}

void auth_jwt_shutdown(void) {
    if (j.hs_secret) OPENSSL_cleanse(j.hs_secret, j.hs_len);
    free(j.hs_secret);
    for (size_t i = 0; i < j.n_keys; i++) {
        free(j.keys[i].kid);
        free(j.keys[i].pem);
    }
    free(j.keys);
    free(j.issuer);
    free(j.audience);
    memset(&j, 0, sizeof j);
}

bool auth_jwt_enabled(void) { return j.hs_secret || j.n_keys; }

bool auth_jwt_shaped(const char *tok, size_t n) {
    size_t dots = 0;
    for (size_t i = 0; i < n; i++) dots += tok[i] == '.';
    return dots == 2;
}

/* ---- verification ------------------------------------------------------------ */

/* The header's alg and kid (kid NULL when absent), from the first segment. */
static cJSON *read_header(const char *tok, size_t n) {
    const char *dot = memchr(tok, '.', n);
    size_t len = 0;
    unsigned char *raw = dot ? b64url_decode(tok, (size_t)(dot - tok), &len) : NULL;
    cJSON *h = raw ? cJSON_ParseWithLength((const char *)raw, len) : NULL;
    free(raw);
    return h;
}

static bool claims_ok(const cJSON *c, const char **why) {
    time_t now = time(NULL);
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(c, "exp");
    const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(c, "nbf");
    if (!cJSON_IsNumber(exp)) {
        *why = "authentication required: the token has no exp claim";
        return false;
    }
    if ((double)now > exp->valuedouble + LEEWAY_S) {
        *why = "authentication required: the token has expired";
        return false;
    }
    if (nbf && (!cJSON_IsNumber(nbf) || (double)now + LEEWAY_S < nbf->valuedouble)) {
        *why = "authentication required: the token is not valid yet (nbf)";
        return false;
    }
    if (j.issuer) {
        const cJSON *iss = cJSON_GetObjectItemCaseSensitive(c, "iss");
        if (!cJSON_IsString(iss) || strcmp(iss->valuestring, j.issuer) != 0) {
            *why = "authentication required: the token's issuer (iss) is not accepted";
            return false;
        }
    }
    if (j.audience) {
        const cJSON *aud = cJSON_GetObjectItemCaseSensitive(c, "aud");
        bool ok = cJSON_IsString(aud) && strcmp(aud->valuestring, j.audience) == 0;
        const cJSON *a;
        if (cJSON_IsArray(aud)) cJSON_ArrayForEach(a, aud) ok |= cJSON_IsString(a) && strcmp(a->valuestring, j.audience) == 0;
        if (!ok) {
            *why = "authentication required: the token's audience (aud) does not include this server";
            return false;
        }
    }
    return true;
}

static bool sub_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > AUTH_NAME_MAX - 4) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-@:", s[i])) return false;
    return true;
}

static bool fill_principal(const cJSON *c, struct auth_principal *out, const char **why) {
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(c, "sub");
    if (!cJSON_IsString(sub) || !sub_ok(sub->valuestring)) {
        *why = "authentication required: the token's sub claim must be 1 to 60 letters, digits, "
               "'.', '_', '-', '@' or ':'";
        return false;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "jwt:%s", sub->valuestring);
    out->admin = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "a2ad_admin"));
    const cJSON *agents = cJSON_GetObjectItemCaseSensitive(c, "a2ad_agents");
    if (!agents) return true;
    int count = cJSON_GetArraySize(agents);
    if (!cJSON_IsArray(agents) || count > 1000) {
        *why = "authentication required: the token's a2ad_agents claim must be an array of agent names";
        return false;
    }
    out->agents = calloc((size_t)count + 1, sizeof *out->agents);
    if (!out->agents) {
        *why = "authentication required: out of memory";
        return false;
    }
    const cJSON *a;
    cJSON_ArrayForEach(a, agents) {
        if (!cJSON_IsString(a) || !(out->agents[out->n_agents] = strdup(a->valuestring))) {
            for (size_t i = 0; i < out->n_agents; i++) free(out->agents[i]);
            free(out->agents);
            out->agents = NULL;
            out->n_agents = 0;
            *why = "authentication required: the token's a2ad_agents claim must be an array of agent names";
            return false;
        }
        out->n_agents++;
    }
    return true;
}

/* jwt_decode with one key, then the algorithm it used must be want. */
static jwt_t *decode_with(const char *tok, const unsigned char *key, size_t len, jwt_alg_t want) {
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, tok, key, (int)len) != 0) return NULL;
    if (jwt_get_alg(jwt) != want) {
        jwt_free(jwt);
        return NULL;
    }
    return jwt;
}

a2ad_status auth_jwt_verify(const char *tok, size_t n, struct auth_principal *out,
                            const char **why) {
    *why = "authentication required: the token presented is not valid";
    if (!auth_jwt_enabled() || n > JWT_MAX || !auth_jwt_shaped(tok, n)) return A2AD_ERR_INVALID;
    cJSON *h = read_header(tok, n);
    const cJSON *algv = cJSON_GetObjectItemCaseSensitive(h, "alg");
    const cJSON *kidv = cJSON_GetObjectItemCaseSensitive(h, "kid");
    const char *alg = cJSON_IsString(algv) ? algv->valuestring : "";
    const char *kid = cJSON_IsString(kidv) ? kidv->valuestring : NULL;
    char *copy = strndup(tok, n);
    jwt_t *jwt = NULL;
    if (copy && strcmp(alg, "HS256") == 0 && j.hs_secret) {
        jwt = decode_with(copy, j.hs_secret, j.hs_len, JWT_ALG_HS256);
    } else if (copy && strcmp(alg, "RS256") == 0) {
        for (size_t i = 0; !jwt && i < j.n_keys; i++)
            if (!kid || (j.keys[i].kid && strcmp(kid, j.keys[i].kid) == 0))
                jwt = decode_with(copy, (const unsigned char *)j.keys[i].pem, j.keys[i].pem_len,
                                  JWT_ALG_RS256);
    }
    cJSON_Delete(h);
    if (copy) OPENSSL_cleanse(copy, n);
    free(copy);
    if (!jwt) return A2AD_ERR_INVALID;
    char *grants = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    cJSON *claims = grants ? cJSON_Parse(grants) : NULL;
    free(grants);
    bool ok = cJSON_IsObject(claims) && claims_ok(claims, why) && fill_principal(claims, out, why);
    cJSON_Delete(claims);
    return ok ? A2AD_OK : A2AD_ERR_INVALID;
}
