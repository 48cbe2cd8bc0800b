#include "bq_auth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "alloc.h"
#include "bq_token.h"
#include "refresher.h"

struct bq_auth {
    bool none;
    bq_cred cred;
    kit_http_settings http;
    bq_auth_log_fn log;
    void *log_ctx;
    kit_refresher *refresher;

    pthread_mutex_t lock;
    bq_token token; /* secret; under lock */
};

bq_auth *bq_auth_none(void)
{
    bq_auth *a = xcalloc(1, sizeof *a);
    a->none = true;
    pthread_mutex_init(&a->lock, NULL);
    return a;
}

/* The refresher's fetch (its thread): the new token replaces the old only
 * once it is had, so a failed fetch leaves a still-valid token in use. */
static int64_t fetch_token(void *ctx, char *err, size_t errlen)
{
    bq_auth *a = ctx;
    bq_token fresh;
    if (!bq_token_fetch(&a->cred, &a->http, &fresh, err, errlen))
        return -1;
    pthread_mutex_lock(&a->lock);
    bq_token_clear(&a->token);
    a->token = fresh;
    pthread_mutex_unlock(&a->lock);
    return fresh.lifetime_s;
}

static void note_fetch(void *ctx, const char *err, unsigned failures)
{
    bq_auth *a = ctx;
    if (!a->log)
        return;
    char msg[600];
    if (err)
        snprintf(msg, sizeof msg,
                 "cannot get an access token (%s credentials, %u failure%s "
                 "in a row; retrying with backoff): %s",
                 bq_cred_kind_name(a->cred.kind), failures,
                 failures == 1 ? "" : "s", err);
    else
        snprintf(msg, sizeof msg,
                 "got an access token (%s credentials) "
                 "again",
                 bq_cred_kind_name(a->cred.kind));
    a->log(a->log_ctx, err != NULL, msg);
}

bq_auth *bq_auth_start(bq_cred *cred, const kit_http_settings *http,
                       bq_auth_log_fn log, void *log_ctx, char *err,
                       size_t errlen)
{
    bq_auth *a = xcalloc(1, sizeof *a);
    a->cred = *cred;
    memset(cred, 0, sizeof *cred);
    a->http = *http;
    a->log = log;
    a->log_ctx = log_ctx;
    pthread_mutex_init(&a->lock, NULL);
    a->refresher = kit_refresher_start(fetch_token, note_fetch, a);
    if (!a->refresher) {
        snprintf(err, errlen, "cannot start the token refresh thread");
        bq_auth_free(a);
        return NULL;
    }
    return a;
}

void bq_auth_free(bq_auth *a)
{
    if (!a)
        return;
    kit_refresher_free(a->refresher);
    bq_token_clear(&a->token);
    if (!a->none)
        bq_cred_free(&a->cred);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

bool bq_auth_header(bq_auth *a, char *buf, size_t buflen, int64_t wait_ms,
                    char *err, size_t errlen)
{
    if (a->none) {
        if (buflen)
            buf[0] = '\0';
        return true;
    }
    if (!kit_refresher_wait_valid(a->refresher, wait_ms, err, errlen))
        return false;
    pthread_mutex_lock(&a->lock);
    int n = a->token.value ? snprintf(buf, buflen, "Authorization: Bearer %s",
                                      a->token.value)
                           : -1;
    pthread_mutex_unlock(&a->lock);
    if (n < 0 || (size_t)n >= buflen) {
        OPENSSL_cleanse(buf, buflen);
        snprintf(err, errlen, "the access token is too long");
        return false;
    }
    return true;
}

void bq_auth_invalidate(bq_auth *a)
{
    if (!a->none)
        kit_refresher_invalidate(a->refresher);
}

unsigned bq_auth_fetches(bq_auth *a)
{
    return a->none ? 0 : kit_refresher_fetches(a->refresher);
}
