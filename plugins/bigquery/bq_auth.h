/* Google OAuth 2.0 access tokens for BigQuery, kept fresh by a thread of
 * the sink (kit refresher) so that the pipeline thread only reads the
 * cached token: it waits for a fetch only when it has no valid token at
 * all. Credentials come from bq_creds.h, fetches from bq_token.h; keys and
 * tokens never reach a log or an error message. */
#ifndef BQ_AUTH_H
#define BQ_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bq_creds.h"
#include "http.h"

typedef struct bq_auth bq_auth;

/* Told of failed fetches (failure true; msg never holds a secret) and of
 * the first success after failures. */
typedef void (*bq_auth_log_fn)(void *ctx, bool failure, const char *msg);

/* No Authorization header at all (an emulator). */
bq_auth *bq_auth_none(void);

/* Takes cred (and clears it) and starts fetching at once, in the
 * background. NULL with err when the thread cannot be started. log may be
 * NULL. */
bq_auth *bq_auth_start(bq_cred *cred, const kit_http_settings *http,
                       bq_auth_log_fn log, void *log_ctx, char *err,
                       size_t errlen);

/* Stops the refresher (waiting for a fetch under way). */
void bq_auth_free(bq_auth *auth);

/* Writes "Authorization: Bearer ..." into buf. Without a valid token,
 * waits at most wait_ms for a fetch (one under way, or one started now
 * unless a failed one's backoff is pending); false with err (the last
 * failure) when there is still none. With bq_auth_none, buf is "" and the
 * call succeeds. Thread-safe. */
bool bq_auth_header(bq_auth *auth, char *buf, size_t buflen, int64_t wait_ms,
                    char *err, size_t errlen);

/* The service answered 401: the token is dropped and a new one fetched at
 * once. */
void bq_auth_invalidate(bq_auth *auth);

/* How many tokens were fetched so far (for tests and debug logs). */
unsigned bq_auth_fetches(bq_auth *auth);

#endif
