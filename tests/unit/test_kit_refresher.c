/* The kit's background refresher with a fetch of the test's own: the first
 * fetch at start, the next before expiry (a quarter of the lifetime early),
 * at once after an invalidation, and after failures again with backoff,
 * during which callers are answered at once (no tight loop against the
 * token service) with the last error; a failure is noted before a waiting
 * caller hears of it. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "refresher.h"

typedef struct fake_source {
    pthread_mutex_t lock;
    int fail;         /* fail this many fetches next */
    int64_t lifetime; /* of the credentials it hands out */
    int calls;
} fake_source;

static int64_t fake_fetch(void *ctx, char *err, size_t errlen)
{
    fake_source *f = ctx;
    pthread_mutex_lock(&f->lock);
    f->calls++;
    bool failing = f->fail > 0;
    if (failing)
        f->fail--;
    int64_t lifetime = f->lifetime;
    pthread_mutex_unlock(&f->lock);
    if (failing) {
        snprintf(err, errlen, "service down");
        return -1;
    }
    return lifetime;
}

static int calls(fake_source *f)
{
    pthread_mutex_lock(&f->lock);
    int n = f->calls;
    pthread_mutex_unlock(&f->lock);
    return n;
}

static bool wait_fetches(kit_refresher *r, unsigned want)
{
    for (int i = 0; i < 2000 && kit_refresher_fetches(r) < want; i++)
        usleep(10000);
    return kit_refresher_fetches(r) >= want;
}

static void test_schedule(void)
{
    CHECK(kit_refresh_early_s(3600) == KIT_REFRESH_EARLY_MAX_S);
    CHECK(kit_refresh_early_s(20) == 5);
    CHECK(kit_refresh_safety_s(3600) == 30);
    CHECK(kit_refresh_safety_s(20) == 2);
}

static void test_refresh_and_backoff(void)
{
    fake_source f = {.lock = PTHREAD_MUTEX_INITIALIZER, .lifetime = 3600};
    char err[256];
    kit_refresher *r = kit_refresher_start(fake_fetch, NULL, &f);
    CHECK(r != NULL);
    CHECK(kit_refresher_wait_valid(r, 10000, err, sizeof err));
    CHECK(kit_refresher_fetches(r) == 1);

    /* An hour-long credential is not fetched again on its own soon. */
    usleep(200000);
    CHECK(calls(&f) == 1);
    /* Invalidated: fetched again at once. */
    kit_refresher_invalidate(r);
    CHECK(kit_refresher_wait_valid(r, 10000, err, sizeof err));
    CHECK(kit_refresher_fetches(r) == 2);

    /* Failing: the caller gets the error, and while the backoff runs, at
     * once and without a new fetch. */
    pthread_mutex_lock(&f.lock);
    f.fail = 2;
    pthread_mutex_unlock(&f.lock);
    kit_refresher_invalidate(r);
    CHECK(!kit_refresher_wait_valid(r, 10000, err, sizeof err));
    CHECK_STR(err, "service down");
    int after_failure = calls(&f);
    CHECK(!kit_refresher_wait_valid(r, 10000, err, sizeof err));
    CHECK(calls(&f) == after_failure);
    /* Retried with backoff until it works. */
    CHECK(wait_fetches(r, 3));
    CHECK(calls(&f) == 5);
    CHECK(kit_refresher_wait_valid(r, 0, err, sizeof err));
    kit_refresher_free(r);
}

static void test_short_lived(void)
{
    /* A 2 s credential is refreshed before it expires, again and again. */
    fake_source f = {.lock = PTHREAD_MUTEX_INITIALIZER, .lifetime = 2};
    kit_refresher *r = kit_refresher_start(fake_fetch, NULL, &f);
    CHECK(wait_fetches(r, 3));
    char err[256];
    CHECK(kit_refresher_wait_valid(r, 0, err, sizeof err) ||
          kit_refresher_wait_valid(r, 10000, err, sizeof err));
    kit_refresher_free(r);
}

/* The note is slow on purpose: a caller waiting for the first fetch must
 * still hear of the failure only after it was noted (the log's rate limit
 * lets a sink's first warning through; it must be the cause). */
static int notes;

static void slow_note(void *ctx, const char *err, unsigned failures)
{
    (void)ctx;
    usleep(100000);
    if (err && failures == 1)
        __atomic_add_fetch(&notes, 1, __ATOMIC_SEQ_CST);
}

static void test_noted_before_callers_hear(void)
{
    fake_source f = {
        .lock = PTHREAD_MUTEX_INITIALIZER, .fail = 1, .lifetime = 3600};
    char err[256];
    kit_refresher *r = kit_refresher_start(fake_fetch, slow_note, &f);
    CHECK(!kit_refresher_wait_valid(r, 10000, err, sizeof err));
    CHECK(__atomic_load_n(&notes, __ATOMIC_SEQ_CST) == 1);
    CHECK_STR(err, "service down");
    kit_refresher_free(r);
}

int main(void)
{
    test_schedule();
    test_refresh_and_backoff();
    test_short_lived();
    test_noted_before_callers_hear();
    return check_summary();
}
