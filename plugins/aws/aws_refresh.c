/* The background refresh of temporary credentials (aws_refresh.h). */
#include "aws_refresh.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "backoff.h"
#include "clock.h"
#include "redact.h"

/* Backoff between failed fetches: from half a second up to half a
 * minute, so 30-second credentials get several tries before they lapse. */
#define RETRY_BASE_MS 500
#define RETRY_CAP_MS 30000

struct aws_refresher {
    const pgspout_host_api *host;
    pgspout_sink_handle *handle;
    aws_provider *provider;
    int margin_s;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool thread_started;
    bool stopping;
    bool have;  /* current holds a set */
    bool force; /* fetch now: the service said they expired */
    aws_credentials current;
    aws_credentials previous; /* for redaction only */
    time_t refresh_at;        /* 0: never (long-term keys) */
    int failures;
    int64_t retry_at_ms;
    char last_error[512];
};

static int64_t wall_ms(void)
{
    return wall_clock_us() / 1000;
}

/* When a set fetched now should be replaced. */
static time_t refresh_time(const aws_refresher *r, const aws_credentials *c)
{
    time_t now = time(NULL), lifetime, margin;

    if (c->expiration == 0)
        return 0;
    lifetime = c->expiration > now ? c->expiration - now : 0;
    margin = r->margin_s < lifetime / 2 ? r->margin_s : lifetime / 2;
    return c->expiration - margin;
}

/* Stores a fetched set, or schedules a retry. Lock held. */
static void store_result(aws_refresher *r, bool ok, aws_credentials *fresh,
                         const char *err)
{
    if (ok) {
        aws_credentials_clear(&r->previous);
        r->previous = r->current;
        r->current = *fresh;
        r->have = true;
        r->refresh_at = refresh_time(r, fresh);
        if (r->failures)
            r->host->log(r->handle, PGSPOUT_LOG_INFO,
                         "AWS credentials from %s obtained again after %d "
                         "failed attempts",
                         r->provider->description, r->failures);
        r->failures = 0;
        r->last_error[0] = '\0';
        return;
    }
    r->failures++;
    r->retry_at_ms = wall_ms() + backoff_delay_between(
                                     r->failures, RETRY_BASE_MS, RETRY_CAP_MS);
    snprintf(r->last_error, sizeof r->last_error, "%s", err);
    r->host->log(r->handle, PGSPOUT_LOG_WARNING,
                 "cannot obtain AWS credentials (attempt %d, retrying%s): %s",
                 r->failures, r->have ? "; the current ones stay in use" : "",
                 err);
}

static bool fetch_due(const aws_refresher *r, int64_t now)
{
    if (r->failures && now < r->retry_at_ms)
        return false;
    return !r->have || r->force || r->failures ||
           (r->refresh_at && now >= (int64_t)r->refresh_at * 1000);
}

/* How long to sleep when nothing is due, in ms from now (-1: forever). */
static int64_t wait_ms(const aws_refresher *r, int64_t now)
{
    if (r->failures)
        return r->retry_at_ms - now;
    if (r->refresh_at)
        return (int64_t)r->refresh_at * 1000 - now;
    return -1;
}

static void *refresh_main(void *arg)
{
    aws_refresher *r = arg;

    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        int64_t now = wall_ms();

        if (!fetch_due(r, now)) {
            int64_t ms = wait_ms(r, now);
            if (ms < 0) {
                pthread_cond_wait(&r->wake, &r->lock);
            } else if (ms > 0) {
                struct timespec until = clock_after_ms(CLOCK_REALTIME, ms);
                pthread_cond_timedwait(&r->wake, &r->lock, &until);
            }
            continue;
        }
        r->force = false;
        pthread_mutex_unlock(&r->lock);
        aws_credentials fresh;
        char err[512] = "";
        bool ok = aws_provider_fetch(r->provider, &fresh, err, sizeof err);
        pthread_mutex_lock(&r->lock);
        store_result(r, ok, &fresh, err);
        if (ok)
            r->host->log(r->handle, PGSPOUT_LOG_DEBUG,
                         "AWS credentials from %s refreshed",
                         r->provider->description);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

aws_refresher *aws_refresher_new(const pgspout_host_api *host,
                                 pgspout_sink_handle *handle,
                                 aws_provider *provider, int margin_s,
                                 char *err, size_t errlen)
{
    aws_refresher *r = xcalloc(1, sizeof *r);
    aws_credentials first;
    char why[512] = "";

    r->host = host;
    r->handle = handle;
    r->provider = provider;
    r->margin_s = margin_s;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    if (aws_provider_fetch(provider, &first, why, sizeof why)) {
        store_result(r, true, &first, NULL);
    } else if (provider->implicit) {
        snprintf(err, errlen,
                 "no AWS credentials: none in the sink options, the "
                 "environment, the shared files or the container variables, "
                 "and %s",
                 why);
        aws_refresher_free(r);
        return NULL;
    } else {
        store_result(r, false, NULL, why);
    }
    /* Long-term keys never change: no thread for them. */
    if (provider->kind != AWS_PROVIDER_STATIC) {
        if (pthread_create(&r->thread, NULL, refresh_main, r) != 0) {
            snprintf(err, errlen, "cannot start the credentials thread");
            aws_refresher_free(r);
            return NULL;
        }
        r->thread_started = true;
    }
    return r;
}

bool aws_refresher_get(aws_refresher *r, aws_credentials *out, char *err,
                       size_t errlen)
{
    bool have;

    pthread_mutex_lock(&r->lock);
    have = r->have;
    if (have)
        aws_credentials_copy(out, &r->current);
    else
        snprintf(err, errlen, "no AWS credentials yet (%s)",
                 r->last_error[0] ? r->last_error : "still fetching");
    pthread_mutex_unlock(&r->lock);
    return have;
}

void aws_refresher_expired(aws_refresher *r)
{
    pthread_mutex_lock(&r->lock);
    if (r->thread_started) {
        r->force = true;
        pthread_cond_signal(&r->wake);
    }
    pthread_mutex_unlock(&r->lock);
}

void aws_refresher_redact(aws_refresher *r, char *text)
{
    if (!text)
        return;
    pthread_mutex_lock(&r->lock);
    redact(text, r->current.secret_access_key);
    redact(text, r->current.session_token);
    redact(text, r->previous.secret_access_key);
    redact(text, r->previous.session_token);
    pthread_mutex_unlock(&r->lock);
}

const char *aws_refresher_source(const aws_refresher *r)
{
    return r->provider->description;
}

void aws_refresher_free(aws_refresher *r)
{
    if (!r)
        return;
    if (r->thread_started) {
        pthread_mutex_lock(&r->lock);
        r->stopping = true;
        pthread_cond_signal(&r->wake);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
    }
    aws_credentials_clear(&r->current);
    aws_credentials_clear(&r->previous);
    aws_provider_free(r->provider);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    free(r);
}
