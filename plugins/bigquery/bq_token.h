/* Fetching a Google OAuth 2.0 access token for BigQuery, one request (or
 * two or three) per call, for each kind of credentials (bq_creds.h):
 * a JWT bearer grant signed with a service-account key, the metadata
 * server, a refresh_token grant (gcloud's user credentials), or a subject
 * token exchanged at the STS endpoint and then, optionally, for a service
 * account's token (workload identity federation). Blocking; bq_auth.h
 * runs it on a thread of its own. Tokens and keys never reach err. */
#ifndef BQ_TOKEN_H
#define BQ_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "bq_creds.h"
#include "http.h"

#define BQ_SCOPE "https://www.googleapis.com/auth/bigquery"
/* What the STS token asks for when a service account is impersonated
 * next (its token then carries BQ_SCOPE). */
#define BQ_CLOUD_PLATFORM_SCOPE "https://www.googleapis.com/auth/cloud-platform"

typedef struct bq_token {
    char *value; /* secret */
    int64_t lifetime_s;
} bq_token;

/* false with err; the token is only set on success. */
bool bq_token_fetch(const bq_cred *cred, const kit_http_settings *http,
                    bq_token *out, char *err, size_t errlen);

/* Wipes and frees the value. */
void bq_token_clear(bq_token *t);

/* A signed JWT assertion (header.claims.signature, base64url) for the
 * token endpoint; caller frees. NULL on a signing failure. */
char *bq_jwt_assertion(EVP_PKEY *key, const char *client_email,
                       const char *scope, const char *audience, int64_t iat,
                       int64_t lifetime_s);

#endif
