/* sign - Standard Webhooks signatures (https://www.standardwebhooks.com).
 *
 * Every webhook (A2A push notification or Health Universe POST) then
 * carries webhook-id (its stable event id), webhook-timestamp (unix seconds
 * of the attempt) and webhook-signature: "v1,BASE64" where BASE64 is the
 * HMAC-SHA256, keyed with the secret, of "ID.TIMESTAMP.BODY". During a
 * rotation two secrets sign, giving two signatures separated by a space, so
 * a receiver that knows either one accepts.
 *
 * The secrets come from a file ([webhooks] signing_secret_file): one or two
 * lines "whsec_BASE64" (the prefix is optional), each 24 to 64 random bytes
 * once decoded. They stay in this module's memory only: never logged,
 * never stored in the database. Uses OpenSSL's libcrypto (HMAC, base64).
 */
#ifndef A2AD_SIGN_H
#define A2AD_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "a2ad/agent.h"

#define SIGN_MAX_SECRETS 2
/* Room for the header value: "v1," + 44 base64 characters per secret. */
#define SIGN_VALUE_MAX (SIGN_MAX_SECRETS * 48)

/* Read the secrets of path (NULL or "" = signing off). On error returns
 * A2AD_ERR_CONFIG/IO and writes why into err, never a secret.
 * Thread: main, before the webhook thread starts. */
a2ad_status sign_load(const char *path, char *err, size_t errlen);

/* Whether webhooks are signed. Thread: any (read-only after start-up). */
bool sign_enabled(void);

/* The webhook-signature value of one attempt into out (SIGN_VALUE_MAX
 * bytes): false when signing is off or fails. Thread: any. */
bool sign_value(const char *id, uint64_t timestamp_s, const void *body, size_t len,
                char out[SIGN_VALUE_MAX]);

/* Forget the secrets (wiped). Thread: main. */
void sign_unload(void);

#endif
