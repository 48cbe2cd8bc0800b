#include "refresher.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "clock.h"

struct kit_refresher {
    kit_refresh_fn fetch;
    kit_refresh_note_fn note;
    void *ctx;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */

    /* Monotonic microseconds; 0: never. All under lock. */
    int64_t valid_until_us, refresh_at_us, next_try_us;
    bool fetching, requested, stopping;
    unsigned attempts; /* fetches finished, failed or not */
    unsigned failures; /* in a row */
    unsigned fetches;  /* successful */
    char last_err[256];
};

int64_t kit_refresh_early_s(int64_t lifetime_s)
{
    int64_t quarter = lifetime_s / 4;
    return quarter < KIT_REFRESH_EARLY_MAX_S ? quarter
                                             : KIT_REFRESH_EARLY_MAX_S;
}

/* A request that starts just before expiry must still be accepted. */
int64_t kit_refresh_safety_s(int64_t lifetime_s)
{
    int64_t tenth = lifetime_s / 10;
    return tenth < 30 ? tenth : 30;
}

/* Lock held. Whether a fetch is due now; else *wake_us says when. */
static bool fetch_due(const kit_refresher *r, int64_t now, int64_t *wake_us)
{
    if (r->requested)
        return true;
    *wake_us = r->failures ? r->next_try_us : r->refresh_at_us;
    return now >= *wake_us;
}

/* Lock held on entry and return; released around the fetch itself. */
static void fetch_once(kit_refresher *r)
{
    r->requested = false;
    r->fetching = true;
    int64_t started = now_us();
    pthread_mutex_unlock(&r->lock);
    char err[sizeof r->last_err] = "";
    int64_t lifetime = r->fetch(r->ctx, err, sizeof err);
    pthread_mutex_lock(&r->lock);
    unsigned failures_before = r->failures;
    if (lifetime > 0) {
        r->valid_until_us =
            started + (lifetime - kit_refresh_safety_s(lifetime)) * 1000000;
        r->refresh_at_us =
            started + (lifetime - kit_refresh_early_s(lifetime)) * 1000000;
        r->failures = 0;
        r->fetches++;
    } else {
        r->failures++;
        snprintf(r->last_err, sizeof r->last_err, "%s",
                 *err ? err : "the credential could not be fetched");
        r->next_try_us =
            now_us() + backoff_delay_between((int)r->failures,
                                             KIT_REFRESH_BACKOFF_BASE_MS,
                                             KIT_REFRESH_BACKOFF_CAP_MS) *
                           1000;
    }
    /* Said before callers learn the outcome (fetching stays true until
     * then, so they wait): a caller that logs the same failure in its own
     * words must not take the host's rate-limit window (a sink's first
     * warning passes, the next 10 s only count) from the line naming the
     * cause. */
    unsigned failures = r->failures;
    if (r->note && (failures || failures_before)) {
        pthread_mutex_unlock(&r->lock);
        r->note(r->ctx, failures ? err : NULL, failures);
        pthread_mutex_lock(&r->lock);
    }
    r->fetching = false;
    r->attempts++;
    pthread_cond_broadcast(&r->cond);
}

static void *refresh_loop(void *arg)
{
    kit_refresher *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        int64_t wake_us = 0, now = now_us();
        if (fetch_due(r, now, &wake_us)) {
            fetch_once(r);
            continue;
        }
        struct timespec at =
            clock_after_ms(CLOCK_MONOTONIC, (wake_us - now + 999) / 1000);
        pthread_cond_timedwait(&r->cond, &r->lock, &at);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

kit_refresher *kit_refresher_start(kit_refresh_fn fetch,
                                   kit_refresh_note_fn note, void *ctx)
{
    kit_refresher *r = xcalloc(1, sizeof *r);
    r->fetch = fetch;
    r->note = note;
    r->ctx = ctx;
    r->requested = true; /* the first fetch, at once */
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&r->thread, NULL, refresh_loop, r) != 0) {
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return NULL;
    }
    return r;
}

void kit_refresher_free(kit_refresher *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

bool kit_refresher_wait_valid(kit_refresher *r, int64_t wait_ms, char *err,
                              size_t errlen)
{
    pthread_mutex_lock(&r->lock);
    int64_t now = now_us();
    bool valid = now < r->valid_until_us;
    /* After a failure the backoff stands: callers asking again and again
     * must not turn it into a tight loop against the token endpoint. */
    if (!valid && !r->fetching && (!r->failures || now >= r->next_try_us)) {
        r->requested = true;
        pthread_cond_broadcast(&r->cond);
    }
    if (!valid && (r->fetching || r->requested)) {
        unsigned attempts = r->attempts;
        struct timespec until = clock_after_ms(CLOCK_MONOTONIC, wait_ms);
        while (r->attempts == attempts && !r->stopping &&
               pthread_cond_timedwait(&r->cond, &r->lock, &until) == 0)
            ;
        valid = now_us() < r->valid_until_us;
    }
    if (!valid)
        snprintf(err, errlen, "%s",
                 r->failures ? r->last_err : "no credential yet");
    pthread_mutex_unlock(&r->lock);
    return valid;
}

void kit_refresher_invalidate(kit_refresher *r)
{
    pthread_mutex_lock(&r->lock);
    if (!r->fetching) {
        r->valid_until_us = 0;
        if (!r->failures) {
            r->requested = true;
            pthread_cond_broadcast(&r->cond);
        }
    }
    pthread_mutex_unlock(&r->lock);
}

unsigned kit_refresher_fetches(kit_refresher *r)
{
    pthread_mutex_lock(&r->lock);
    unsigned n = r->fetches;
    pthread_mutex_unlock(&r->lock);
    return n;
}
