/* auth_jwt - JWT bearer tokens for auth.c (not used elsewhere): HS256 with
 * a shared secret from a file, RS256 with public keys from a JWKS file.
 * Signatures are checked by libjwt; the header's alg must be the one the
 * key is for (no "none", no HS256 token checked against an RSA key), and
 * exp (required), nbf, iss and aud are checked here.
 *
 * The caller is "jwt:" + the token's sub claim; claims "a2ad_admin": true
 * and "a2ad_agents": ["a", ...] give the admin flag and the access list.
 * Read-only after auth_jwt_init: safe from any thread.
 */
#ifndef A2AD_AUTH_JWT_H
#define A2AD_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>

#include "a2ad/agent.h"
#include "core/auth.h"

struct config;

/* Load [server] auth_jwt_hs256_secret_file / auth_jwt_jwks_file and the
 * claim checks. A2AD_ERR_CONFIG / A2AD_ERR_IO with err set. Thread: main. */
a2ad_status auth_jwt_init(const struct config *cfg, char *err, size_t errlen);
void auth_jwt_shutdown(void);
bool auth_jwt_enabled(void);

/* True when tok (n bytes) has the shape of a JWT (three dot-separated parts). */
bool auth_jwt_shaped(const char *tok, size_t n);

/* Verify tok; on success fill *out (its agents list is malloc'd: the
 * caller frees it with the principal). A2AD_ERR_INVALID with *why set. */
a2ad_status auth_jwt_verify(const char *tok, size_t n, struct auth_principal *out,
                            const char **why);

#endif
