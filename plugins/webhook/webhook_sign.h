/* Standard Webhooks signing (https://www.standardwebhooks.com): the secret
 * in its whsec_<base64> form, and the v1 signature, base64 of HMAC-SHA256
 * over "<webhook-id>.<webhook-timestamp>.<body>" keyed with the decoded
 * secret, which receivers check with the specification's libraries. */
#ifndef WEBHOOK_SIGN_H
#define WEBHOOK_SIGN_H

#include <stdbool.h>
#include <stddef.h>

#define WEBHOOK_SECRET_PREFIX "whsec_"

/* Longest webhook_sign output with its NUL: "v1," and the base64 of a
 * 32-byte digest (44 characters). */
#define WEBHOOK_SIGNATURE_MAX 48

/* Decodes "whsec_<base64>" into the key bytes (malloc'd, *key_len of
 * them; a secret). false with err set (never quoting the value) when the
 * prefix is missing, the base64 is malformed or the key is empty. */
bool webhook_secret_decode(const char *secret, unsigned char **key,
                           size_t *key_len, char *err, size_t errlen);

/* Writes "v1,<base64 signature>" into out (WEBHOOK_SIGNATURE_MAX bytes).
 * false when OpenSSL fails. */
bool webhook_sign(const unsigned char *key, size_t key_len, const char *id,
                  const char *timestamp, const char *body, size_t body_len,
                  char out[WEBHOOK_SIGNATURE_MAX]);

#endif
