/* Google OAuth 2.0 access tokens for BigQuery: a service-account key (a
 * JWT signed RS256, exchanged at the key's token_uri), the metadata
 * server of a Google Cloud machine, or nothing (an emulator). Tokens are
 * cached and refreshed ahead of expiry; keys and tokens never reach a log
 * or an error message. */
#ifndef BQ_AUTH_H
#define BQ_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "http.h"

#define BQ_SCOPE "https://www.googleapis.com/auth/bigquery"
#define BQ_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
/* Refresh this long before the token expires. */
#define BQ_TOKEN_EARLY_S 300

typedef struct bq_auth bq_auth;

/* No Authorization header at all. */
bq_auth *bq_auth_none(void);

/* A service-account key file's contents (JSON). NULL with err on a
 * malformed key (the message never quotes the key). */
bq_auth *bq_auth_from_key(const char *key_json, size_t len,
                          const kit_http_settings *http, char *err,
                          size_t errlen);

/* The metadata server at base (e.g. "http://metadata.google.internal"). */
bq_auth *bq_auth_metadata(const char *base, const kit_http_settings *http);

void bq_auth_free(bq_auth *auth);

/* Writes "Authorization: Bearer ..." into buf, fetching a token first when
 * none is cached or it expires within BQ_TOKEN_EARLY_S. Returns false with
 * err when no token could be had; *transient says whether trying later may
 * help. With bq_auth_none, buf is "" and the call succeeds. Thread-safe. */
bool bq_auth_header(bq_auth *auth, char *buf, size_t buflen, bool *transient,
                    char *err, size_t errlen);

/* Drops the cached token (the service answered 401). */
void bq_auth_invalidate(bq_auth *auth);

/* How many tokens were fetched so far (for tests and debug logs). */
unsigned bq_auth_fetches(bq_auth *auth);

/* Replaces the clock (seconds since the epoch), for tests. */
void bq_auth_set_clock(bq_auth *auth, int64_t (*now)(void));

/* A signed JWT assertion (header.claims.signature, base64url) for the
 * token endpoint; caller frees. NULL on a signing failure. */
char *bq_jwt_assertion(EVP_PKEY *key, const char *client_email,
                       const char *scope, const char *audience, int64_t iat,
                       int64_t lifetime_s);

#endif
