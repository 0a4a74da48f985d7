/* auth - inbound credentials and task ownership. See auth.h.
 *
 * SHA-256 and the constant-time comparison come from OpenSSL's libcrypto
 * rather than hand-written code. A plain hash (no salt, no stretching) is
 * enough here because the tokens are long random strings (16 characters at
 * least, `openssl rand -hex 32` suggested), not passwords a person chose:
 * there is no dictionary to try.
 */
#include "core/auth.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/auth_jwt.h"
#include "config.h"
#include "log.h"
#include "agents/plugins.h"
#include "core/tasks.h"

#define HASH_LEN 32
#define TOKEN_MIN 16
#define TOKEN_MAX 4096
#define LINE_MAX_BYTES 4096
#define CREDS_MAX 100000

struct cred {
    struct auth_principal p;
    unsigned char hash[HASH_LEN];
};

/* The credentials in force. SIGHUP builds a new table and swaps it in under
 * the write lock (auth_reload); a request reads it under the read lock and
 * leaves with a copy of its principal, so nothing it holds is freed by a
 * swap. */
struct table {
    struct cred *creds;
    size_t n, cap;
};
static struct table a;
static pthread_rwlock_t a_lock = PTHREAD_RWLOCK_INITIALIZER;
static atomic_bool a_enabled; /* a.n > 0, readable without the lock */
/* The table the loaders fill: a fresh one, never the one in force. */
static struct table *building;

/* ---- hashing ---------------------------------------------------------- */

static bool sha256(const void *data, size_t len, unsigned char out[HASH_LEN]) {
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == HASH_LEN;
}

static void hex(const unsigned char *h, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[2 * n] = '\0';
}

/* "sha256:" and 64 hex digits (either case). */
static bool parse_hash(const char *s, size_t len, unsigned char out[HASH_LEN]) {
    if (len != 7 + 2 * HASH_LEN || strncasecmp(s, "sha256:", 7) != 0) return false;
    s += 7;
    for (size_t i = 0; i < HASH_LEN; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            int c = tolower((unsigned char)s[2 * i + (size_t)k]);
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) return false;
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    return true;
}

/* Visible ASCII, TOKEN_MIN..TOKEN_MAX characters. */
static bool token_ok(const char *t, size_t n) {
    if (n < TOKEN_MIN || n > TOKEN_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e) return false;
    return true;
}

/* ---- the credential table ------------------------------------------------ */

static bool name_ok(const char *s, size_t n) {
    if (n == 0 || n > AUTH_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-@", s[i])) return false;
    return true;
}

static void principal_free(struct auth_principal *p) {
    for (size_t i = 0; i < p->n_agents; i++) free(p->agents[i]);
    free(p->agents);
    p->agents = NULL;
    p->n_agents = 0;
}

/* A copy the caller owns (a reload may free the table's). NULL: no memory. */
static struct auth_principal *principal_dup(const struct auth_principal *src) {
    struct auth_principal *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    memcpy(p->name, src->name, sizeof p->name);
    p->admin = src->admin;
    if (src->agents) {
        p->agents = calloc(src->n_agents ? src->n_agents : 1, sizeof *p->agents);
        for (size_t i = 0; p->agents && i < src->n_agents; i++) {
            if (!(p->agents[i] = strdup(src->agents[i]))) break;
            p->n_agents++;
        }
        if (!p->agents || p->n_agents != src->n_agents) {
            principal_free(p);
            free(p);
            return NULL;
        }
    }
    return p;
}

/* Append a credential; the principal's agents list is taken. Returns NULL
 * on success, else the problem. */
static const char *cred_add(struct cred *c) {
    struct table *t = building;
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->creds[i].p.name, c->p.name) == 0) return "the name is already used above";
        if (CRYPTO_memcmp(t->creds[i].hash, c->hash, HASH_LEN) == 0)
            return "the same token hash is already configured above";
    }
    if (t->n >= CREDS_MAX) return "too many credentials (at most 100000)";
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 8;
        struct cred *nc = realloc(t->creds, ncap * sizeof *nc);
        if (!nc) return "out of memory";
        t->creds = nc;
        t->cap = ncap;
    }
    t->creds[t->n++] = *c;
    return NULL;
}

static void table_free(struct table *t) {
    for (size_t i = 0; i < t->n; i++) principal_free(&t->creds[i].p);
    if (t->creds) OPENSSL_cleanse(t->creds, t->cap * sizeof *t->creds);
    free(t->creds);
    memset(t, 0, sizeof *t);
}

/* "a,b,c" into p->agents. */
static const char *parse_agents(const char *s, size_t len, struct auth_principal *p) {
    if (!len) return "agents= needs at least one agent name (agents=echo,processor)";
    const char *end = s + len;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        size_t n = (size_t)((comma ? comma : end) - s);
        if (!n || n > 63) return "agents= must be agent names separated by commas";
        for (size_t i = 0; i < n; i++)
            if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
                return "agents= must be agent names (letters, digits, '_' and '-') separated by commas";
        char **na = realloc(p->agents, (p->n_agents + 1) * sizeof *na);
        if (!na) return "out of memory";
        p->agents = na;
        if (!(na[p->n_agents] = strndup(s, n))) return "out of memory";
        p->n_agents++;
        s += n + (comma ? 1 : 0);
        if (comma && s == end) return "agents= must not end with a comma";
    }
    return NULL;
}

/* One line of the tokens file: NAME sha256:HEX [admin] [agents=a,b]. */
static const char *parse_line(char *line) {
    char *save = NULL;
    char *name = strtok_r(line, " \t", &save);
    char *hash = name ? strtok_r(NULL, " \t", &save) : NULL;
    if (!name || !hash)
        return "expected NAME sha256:HEX [admin] [agents=a,b] (make the hash with a2ad --hash-token)";
    struct cred c;
    memset(&c, 0, sizeof c);
    if (!name_ok(name, strlen(name)))
        return "NAME must be 1 to 64 letters, digits, '.', '_', '-' or '@'";
    memcpy(c.p.name, name, strlen(name) + 1);
    if (!parse_hash(hash, strlen(hash), c.hash))
        return "the second field must be sha256: and 64 hex digits (a2ad --hash-token prints it); "
               "plaintext tokens do not belong in this file";
    const char *bad = NULL;
    bool seen_agents = false;
    for (char *opt; !bad && (opt = strtok_r(NULL, " \t", &save));) {
        if (strcmp(opt, "admin") == 0) {
            if (c.p.admin) bad = "admin is given twice";
            c.p.admin = true;
        } else if (strncmp(opt, "agents=", 7) == 0) {
            if (seen_agents) bad = "agents= is given twice";
            else bad = parse_agents(opt + 7, strlen(opt + 7), &c.p);
            seen_agents = true;
        } else {
            bad = "unknown option after the hash (known: admin, agents=a,b)";
        }
    }
    if (!bad) bad = cred_add(&c);
    if (bad) principal_free(&c.p);
    return bad;
}

static a2ad_status load_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "[server] auth_tokens_file = %s: cannot open: %s", path,
                 strerror(errno));
        return A2AD_ERR_IO;
    }
    char line[LINE_MAX_BYTES + 2];
    unsigned lineno = 0;
    a2ad_status st = A2AD_OK;
    while (st == A2AD_OK && fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            snprintf(err, errlen, "%s:%u: line longer than %d bytes", path, lineno, LINE_MAX_BYTES);
            st = A2AD_ERR_CONFIG;
            break;
        }
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        char *s = line + strspn(line, " \t");
        if (!*s || *s == '#') continue;
        const char *bad = parse_line(s);
        if (bad) {
            snprintf(err, errlen, "%s:%u: %s", path, lineno, bad);
            st = A2AD_ERR_CONFIG;
        }
    }
    if (st == A2AD_OK && ferror(f)) {
        snprintf(err, errlen, "[server] auth_tokens_file = %s: read error", path);
        st = A2AD_ERR_IO;
    }
    fclose(f);
    return st;
}

/* [server] auth_token_hashes: NAME:sha256:HEX entries separated by commas
 * or blanks; plain clients (no admin, every agent). */
static a2ad_status load_inline(const char *v, char *err, size_t errlen) {
    for (const char *s = v; s && *s;) {
        s += strspn(s, ", \t");
        size_t n = strcspn(s, ", \t");
        if (!n) break;
        const char *colon = memchr(s, ':', n);
        struct cred c;
        memset(&c, 0, sizeof c);
        const char *bad = NULL;
        if (!colon || !name_ok(s, (size_t)(colon - s)))
            bad = "must be NAME:sha256:HEX entries separated by commas (NAME: letters, digits, "
                  "'.', '_', '-', '@')";
        else if (!parse_hash(colon + 1, n - (size_t)(colon + 1 - s), c.hash))
            bad = "must be NAME:sha256:HEX entries (a2ad --hash-token prints the hash)";
        if (!bad) {
            memcpy(c.p.name, s, (size_t)(colon - s));
            bad = cred_add(&c);
        }
        if (bad) {
            snprintf(err, errlen, "[server] auth_token_hashes: entry %.*s...: %s",
                     (int)(colon ? (size_t)(colon - s) : 0), s, bad);
            return A2AD_ERR_CONFIG;
        }
        s += n;
    }
    return A2AD_OK;
}

/* [server] auth_bearer_tokens, the older plaintext form: hashed now, each
 * named "bearer-" and the first 12 hex digits of its hash. */
static a2ad_status load_plain(const char *v, char *err, size_t errlen) {
    size_t count = 0;
    for (const char *s = v; s && *s;) {
        s += strspn(s, ", \t");
        size_t n = strcspn(s, ", \t");
        if (!n) break;
        struct cred c;
        memset(&c, 0, sizeof c);
        const char *bad = !token_ok(s, n)           ? "each token must be 16 to 4096 visible characters"
                          : !sha256(s, n, c.hash)   ? "cannot hash a token"
                                                    : NULL;
        if (!bad) {
            char h[2 * HASH_LEN + 1];
            hex(c.hash, HASH_LEN, h);
            snprintf(c.p.name, sizeof c.p.name, "bearer-%.12s", h);
            OPENSSL_cleanse(h, sizeof h);
            bad = cred_add(&c);
        }
        if (bad) {
            snprintf(err, errlen, "[server] auth_bearer_tokens: token %zu: %s", count + 1, bad);
            return A2AD_ERR_CONFIG;
        }
        count++;
        s += n;
    }
    if (count)
        log_warn("auth: [server] auth_bearer_tokens holds %zu plaintext tokens; store their hashes "
                 "in [server] auth_tokens_file instead (a2ad --hash-token prints the line)",
                 count);
    return A2AD_OK;
}

static bool loopback(const char *addr) {
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, addr, &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, addr, &v6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] == 127;
    }
    return false;
}

/* Read cfg's credentials into a new table, check the listening rule with
 * it, and put it in force; on error the table in force stays. */
static a2ad_status tables_load(const struct config *cfg, char *err, size_t errlen) {
    struct table fresh = {0};
    building = &fresh;
    a2ad_status st = A2AD_OK;
    if (cfg->auth_tokens_file && *cfg->auth_tokens_file)
        st = load_file(cfg->auth_tokens_file, err, errlen);
    if (st == A2AD_OK) st = load_inline(cfg->auth_token_hashes, err, errlen);
    if (st == A2AD_OK) st = load_plain(cfg->auth_bearer_tokens, err, errlen);
    building = NULL;
    if (st == A2AD_OK && cfg->auth_tokens_file && *cfg->auth_tokens_file && fresh.n == 0) {
        snprintf(err, errlen,
                 "[server] auth_tokens_file = %s has no credential: add a line "
                 "\"NAME sha256:HEX\" (a2ad --hash-token prints it)",
                 cfg->auth_tokens_file);
        st = A2AD_ERR_CONFIG;
    }
    if (st == A2AD_OK && fresh.n == 0 && !auth_jwt_enabled() && !cfg->allow_unauthenticated &&
        !loopback(cfg->listen)) {
        snprintf(err, errlen,
                 "[server] listen = %s is not a loopback address and no credentials are "
                 "configured: anyone who can reach it could run jobs and read every task. Set "
                 "[server] auth_tokens_file (a2ad --hash-token makes its lines), or set "
                 "[server] allow_unauthenticated = yes if something in front authenticates",
                 cfg->listen);
        st = A2AD_ERR_CONFIG;
    }
    if (st != A2AD_OK) {
        table_free(&fresh);
        return st;
    }
    pthread_rwlock_wrlock(&a_lock);
    struct table old = a;
    a = fresh;
    atomic_store(&a_enabled, a.n > 0);
    pthread_rwlock_unlock(&a_lock);
    table_free(&old);
    return A2AD_OK;
}

a2ad_status auth_init(const struct config *cfg, char *err, size_t errlen) {
    auth_shutdown();
    a2ad_status st = auth_jwt_init(cfg, err, errlen);
    if (st == A2AD_OK) st = tables_load(cfg, err, errlen);
    if (st != A2AD_OK) auth_shutdown();
    return st;
}

a2ad_status auth_reload(const struct config *cfg, char *err, size_t errlen) {
    return tables_load(cfg, err, errlen);
}

void auth_shutdown(void) {
    pthread_rwlock_wrlock(&a_lock);
    struct table old = a;
    memset(&a, 0, sizeof a);
    atomic_store(&a_enabled, false);
    pthread_rwlock_unlock(&a_lock);
    table_free(&old);
    auth_jwt_shutdown();
}

bool auth_enabled(void) { return atomic_load(&a_enabled) || auth_jwt_enabled(); }

size_t auth_count(void) {
    pthread_rwlock_rdlock(&a_lock);
    size_t n = a.n;
    pthread_rwlock_unlock(&a_lock);
    return n;
}

/* ---- requests ------------------------------------------------------------ */

a2ad_status auth_identify(const char *authorization, const char *api_key,
                          const struct auth_principal **out, const char **why) {
    *out = NULL;
    *why = NULL;
    if (!auth_enabled()) return A2AD_OK;
    const char *tok = NULL;
    bool bearer = false;
    if (authorization && *authorization) {
        const char *s = authorization + strspn(authorization, " \t");
        if (strncasecmp(s, "Bearer", 6) == 0 && (s[6] == ' ' || s[6] == '\t')) {
            tok = s + 6 + strspn(s + 6, " \t");
            bearer = true;
        } else if (!api_key) {
            *why = "authentication required: the Authorization header must use the Bearer "
                   "scheme (\"Authorization: Bearer TOKEN\"), or send \"X-API-Key: TOKEN\"";
            return A2AD_ERR_INVALID;
        }
    }
    if (!tok && api_key) tok = api_key + strspn(api_key, " \t");
    if (!tok) {
        *why = "authentication required: send \"Authorization: Bearer TOKEN\" or "
               "\"X-API-Key: TOKEN\"";
        return A2AD_ERR_INVALID;
    }
    size_t n = strlen(tok);
    while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t')) n--;
    if (bearer && auth_jwt_enabled() && auth_jwt_shaped(tok, n)) {
        struct auth_principal *p = calloc(1, sizeof *p);
        if (!p) {
            *why = "authentication required: out of memory";
            return A2AD_ERR_INVALID;
        }
        if (auth_jwt_verify(tok, n, p, why) != A2AD_OK) {
            free(p);
            return A2AD_ERR_INVALID;
        }
        p->from_jwt = true;
        *out = p;
        return A2AD_OK;
    }
    unsigned char h[HASH_LEN];
    if (!token_ok(tok, n) || !sha256(tok, n, h)) {
        *why = "authentication required: the credential presented is not valid";
        return A2AD_ERR_INVALID;
    }
    /* Every entry is compared, so the time taken does not tell which. */
    pthread_rwlock_rdlock(&a_lock);
    size_t found = a.n;
    for (size_t i = 0; i < a.n; i++) {
        int diff = CRYPTO_memcmp(h, a.creds[i].hash, HASH_LEN);
        size_t mask = (size_t)0 - (size_t)(diff == 0);
        found = (found & ~mask) | (i & mask);
    }
    OPENSSL_cleanse(h, sizeof h);
    struct auth_principal *p = found == a.n ? NULL : principal_dup(&a.creds[found].p);
    pthread_rwlock_unlock(&a_lock);
    if (!p) {
        *why = found == a.n ? "authentication required: the credential presented is not valid"
                            : "authentication required: out of memory";
        return A2AD_ERR_INVALID;
    }
    *out = p;
    return A2AD_OK;
}

void auth_principal_release(const struct auth_principal *p) {
    if (!p) return;
    struct auth_principal *m = (struct auth_principal *)p; /* a copy made by auth_identify */
    principal_free(m);
    free(m);
}

bool auth_may_use_agent(const struct auth_principal *p, const char *agent) {
    if (!auth_enabled()) return true;
    if (!p) return false;
    if (!p->agents) return true;
    for (size_t i = 0; agent && i < p->n_agents; i++)
        if (strcmp(p->agents[i], agent) == 0) return true;
    return false;
}

bool auth_may_see(const struct auth_principal *p, struct task *t) {
    if (!auth_enabled()) return true;
    if (!p) return false;
    const struct agent *ag = task_agent(t);
    if (!auth_may_use_agent(p, ag ? ag->desc.name : NULL)) return false;
    if (p->admin) return true;
    task_lock(t);
    const char *owner = task_ext(t, TASK_EXT_OWNER);
    bool mine = owner && strcmp(owner, p->name) == 0;
    task_unlock(t);
    return mine;
}

void *auth_owner_new(const struct auth_principal *p) { return p ? strdup(p->name) : NULL; }

/* ---- the owner slot ------------------------------------------------------ */

static cJSON *owner_save(const void *data) { return cJSON_CreateString(data); }
static void *owner_load(const cJSON *saved) {
    return cJSON_IsString(saved) ? strdup(saved->valuestring) : NULL;
}

void auth_register_owner_slot(void) {
    static const struct task_ext_ops ops = {
        .name = "owner", .free = free, .save = owner_save, .load = owner_load};
    tasks_register_ext(TASK_EXT_OWNER, &ops);
}

/* ---- cards and answers ---------------------------------------------------- */

void auth_card_security(cJSON *card, bool v03) {
    if (!auth_enabled()) return;
    /* API keys are the configured tokens only; a JWT is a bearer token. */
    bool keys = a.n > 0;
    static const char *const names[] = {"bearer", "apiKey"};
    size_t n_schemes = keys ? 2 : 1;
    cJSON *schemes = cJSON_AddObjectToObject(card, "securitySchemes");
    cJSON *b = cJSON_AddObjectToObject(schemes, "bearer");
    cJSON *k = keys ? cJSON_AddObjectToObject(schemes, "apiKey") : NULL;
    if (v03) {
        cJSON_AddStringToObject(b, "type", "http");
        cJSON_AddStringToObject(b, "scheme", "bearer");
        if (!keys) cJSON_AddStringToObject(b, "bearerFormat", "JWT");
        if (k) {
            cJSON_AddStringToObject(k, "type", "apiKey");
            cJSON_AddStringToObject(k, "in", "header");
            cJSON_AddStringToObject(k, "name", "X-API-Key");
        }
        /* Either one: alternatives, each a requirement of one scheme. */
        cJSON *sec = cJSON_AddArrayToObject(card, "security");
        for (size_t i = 0; i < n_schemes; i++) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddArrayToObject(r, names[i]);
            cJSON_AddItemToArray(sec, r);
        }
    } else {
        cJSON *hs = cJSON_AddObjectToObject(b, "httpAuthSecurityScheme");
        cJSON_AddStringToObject(hs, "scheme", "Bearer");
        if (!keys) cJSON_AddStringToObject(hs, "bearerFormat", "JWT");
        if (k) {
            cJSON *ak = cJSON_AddObjectToObject(k, "apiKeySecurityScheme");
            cJSON_AddStringToObject(ak, "location", "header");
            cJSON_AddStringToObject(ak, "name", "X-API-Key");
        }
        cJSON *sec = cJSON_AddArrayToObject(card, "securityRequirements");
        for (size_t i = 0; i < n_schemes; i++) {
            cJSON *r = cJSON_CreateObject();
            cJSON *s = cJSON_AddObjectToObject(r, "schemes");
            cJSON_AddArrayToObject(cJSON_AddObjectToObject(s, names[i]), "list");
            cJSON_AddItemToArray(sec, r);
        }
    }
}

char *auth_unauthenticated_body(const char *why) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "jsonrpc", "2.0");
    cJSON_AddNullToObject(o, "id");
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddNumberToObject(e, "code", -32600);
    cJSON_AddStringToObject(e, "message", why ? why : "authentication required");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

void auth_wipe(char *s) {
    if (s) OPENSSL_cleanse(s, strlen(s));
}

/* ---- a2ad --hash-token ------------------------------------------------------ */

int auth_hash_token_main(const char *name, FILE *in, FILE *out, FILE *err) {
    if (!name) name = "client";
    if (!name_ok(name, strlen(name))) {
        fprintf(err, "a2ad --hash-token: NAME must be 1 to 64 letters, digits, '.', '_', '-' or '@'\n");
        return 2;
    }
    char buf[TOKEN_MAX + 3];
    size_t n = fgets(buf, sizeof buf, in) ? strlen(buf) : 0;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
    int rc = 0;
    unsigned char h[HASH_LEN];
    if (!token_ok(buf, n)) {
        fprintf(err,
                "a2ad --hash-token: give the token on standard input, one line of %d to %d visible "
                "ASCII characters, e.g.\n"
                "  openssl rand -hex 32 | tee token.txt | a2ad --hash-token %s\n",
                TOKEN_MIN, TOKEN_MAX, name);
        rc = 1;
    } else if (!sha256(buf, n, h)) {
        fprintf(err, "a2ad --hash-token: cannot compute SHA-256\n");
        rc = 1;
    } else {
        char x[2 * HASH_LEN + 1];
        hex(h, HASH_LEN, x);
        fprintf(out, "%s sha256:%s\n", name, x);
    }
    OPENSSL_cleanse(buf, sizeof buf);
    OPENSSL_cleanse(h, sizeof h);
    return rc;
}
