/* auth - who is calling: inbound credentials, per-agent access lists, and
 * which tasks a caller may see.
 *
 * Credentials are bearer tokens ("Authorization: Bearer T") or API keys
 * ("X-API-Key: T"); any credential may be presented either way. Bearer
 * tokens may also be JWTs (auth_jwt.c), when a key is configured. They are
 * configured as SHA-256 hashes only: a tokens file ([server]
 * auth_tokens_file, one "NAME sha256:HEX [admin] [agents=a,b]" per line),
 * inline hashes ([server] auth_token_hashes), or, for compatibility, the
 * plaintext [server] auth_bearer_tokens (hashed at start-up). A presented
 * token is hashed and compared in constant time with every configured hash;
 * it is kept nowhere.
 *
 * A task belongs to the credential that created it (its NAME, kept in the
 * task's TASK_EXT_OWNER slot and persisted with it). A caller sees only its
 * own tasks, of the agents its access list allows; an admin credential sees
 * every task of those agents. With no credential configured authentication
 * is off: every caller is anonymous (NULL principal) and sees everything.
 *
 * Everything is read-only after auth_init, so every query is safe from any
 * thread without a lock.
 */
#ifndef A2AD_AUTH_H
#define A2AD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cJSON.h>

#include "a2ad/agent.h"

struct config;
struct task;

#define AUTH_NAME_MAX 64

/* One configured credential, as the rest of the daemon sees it. */
struct auth_principal {
    char name[AUTH_NAME_MAX + 1]; /* NAME in the tokens file: the owner of its tasks */
    bool admin;                   /* sees (and may act on) every task */
    char **agents;                /* agents it may use; NULL = every agent */
    size_t n_agents;
    bool from_jwt;                /* from a JWT rather than a configured credential */
};

/* Load the credentials cfg names (tokens file, inline hashes, legacy
 * plaintext tokens) and check the listening rule: a non-loopback
 * [server] listen needs credentials unless [server] allow_unauthenticated
 * = yes. On error writes "FILE:LINE: problem" (or the rule) into err and
 * returns A2AD_ERR_CONFIG (A2AD_ERR_IO for an unreadable file). Thread:
 * main, before the HTTP server starts. */
a2ad_status auth_init(const struct config *cfg, char *err, size_t errlen);
/* SIGHUP: read cfg's tokens file, inline hashes and plaintext tokens again
 * and put them in force at once; requests already admitted keep their
 * caller. JWT keys stay as loaded at start. On error (err as auth_init) the
 * credentials in force stay. Thread: main. */
a2ad_status auth_reload(const struct config *cfg, char *err, size_t errlen);
/* Forget every credential. Thread: main, after the HTTP server stopped. */
void auth_shutdown(void);

/* Register the TASK_EXT_OWNER slot ops (after tasks_init). Thread: main. */
void auth_register_owner_slot(void);

/* True when at least one credential is configured: every JSON-RPC method
 * then needs one. */
bool auth_enabled(void);
/* Credentials configured. */
size_t auth_count(void);

/* Who sent a request with these header values (NULL = header absent).
 * A2AD_OK: *out is the caller, or NULL when authentication is off.
 * A2AD_ERR_INVALID: missing, malformed or unknown credentials; *why says
 * which (never echoing the token), for a 401 with WWW-Authenticate: Bearer. */
a2ad_status auth_identify(const char *authorization, const char *api_key,
                          const struct auth_principal **out, const char **why);

/* Release what auth_identify gave (always a copy the caller owns, so a
 * reload never frees a caller under a request). NULL is fine. Thread: any. */
void auth_principal_release(const struct auth_principal *p);

/* May p use the agent named agent (NULL = an agent no longer loaded)?
 * Always true when authentication is off. A caller that may not is told
 * what a caller is told about an unknown agent. */
bool auth_may_use_agent(const struct auth_principal *p, const char *agent);

/* May p see and act on t: its agent is allowed and p created it (or p is
 * admin)? Always true when authentication is off. Others answer exactly as
 * for an unknown task. */
bool auth_may_see(const struct auth_principal *p, struct task *t);

/* The TASK_EXT_OWNER slot data for a task p creates (malloc'd name), or
 * NULL (authentication off). */
void *auth_owner_new(const struct auth_principal *p);

/* Add securitySchemes and security (0.3 shapes, v03) or securityRequirements
 * (1.0 shapes) to an agent card: exactly what is enforced, so nothing when
 * authentication is off. */
void auth_card_security(cJSON *card, bool v03);

/* A JSON-RPC error body (id null) for a request refused with 401:
 * -32600 and the reason; malloc'd. */
char *auth_unauthenticated_body(const char *why);

/* Overwrite a secret string in place (the compiler may not drop it); NULL ok. */
void auth_wipe(char *s);

/* a2ad --hash-token [NAME]: read one token from in (its first line),
 * write the tokens-file line for it to out. Returns the exit status. */
int auth_hash_token_main(const char *name, FILE *in, FILE *out, FILE *err);

#endif
