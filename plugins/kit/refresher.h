/* A credential kept fresh by a thread of its own: it is fetched once at
 * start, again some time before it expires (a few minutes for long-lived
 * credentials, a quarter of the lifetime for short-lived ones), at once
 * when the service refused it, and after a failure again with backoff,
 * for as long as it takes. The threads that use the credential never wait
 * for a fetch unless there is no valid credential at all.
 *
 * The refresher only schedules: the fetch callback stores the credential in
 * the caller's own storage (under the caller's own lock), which is why the
 * refresher works for any kind of credential (an OAuth token, a set of
 * temporary keys). */
#ifndef KIT_REFRESHER_H
#define KIT_REFRESHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Refresh at most this long before expiry. */
#define KIT_REFRESH_EARLY_MAX_S 300
/* Retries after a failed fetch: from this delay, doubling, up to the cap. */
#define KIT_REFRESH_BACKOFF_BASE_MS 1000
#define KIT_REFRESH_BACKOFF_CAP_MS 60000

/* Fetches a new credential and stores it. Returns its lifetime in seconds
 * (> 0), or -1 with err set (which must never quote a secret). Runs on the
 * refresher's thread only. */
typedef int64_t (*kit_refresh_fn)(void *ctx, char *err, size_t errlen);
/* Told of each failed fetch (err) and of the first success after failures
 * (err NULL), for the log. May be NULL. */
typedef void (*kit_refresh_note_fn)(void *ctx, const char *err,
                                    unsigned failures);

typedef struct kit_refresher kit_refresher;

/* Starts the thread, whose first fetch begins at once. NULL when the thread
 * cannot be started. */
kit_refresher *kit_refresher_start(kit_refresh_fn fetch,
                                   kit_refresh_note_fn note, void *ctx);

/* Stops and joins the thread (waiting for a fetch under way). */
void kit_refresher_free(kit_refresher *r);

/* True when the credential is valid now. Otherwise waits (at most wait_ms)
 * for the fetch under way, or starts one when none is and no backoff is
 * pending, and returns whether it brought a valid credential; false with
 * err (the last failure) when not. */
bool kit_refresher_wait_valid(kit_refresher *r, int64_t wait_ms, char *err,
                              size_t errlen);

/* The service refused the credential: it is no longer valid, and a fetch
 * starts at once unless one is under way already (its result is the fresh
 * credential wanted; many refusals of one credential make one fetch). */
void kit_refresher_invalidate(kit_refresher *r);

/* Successful fetches so far (for tests and debug logs). */
unsigned kit_refresher_fetches(kit_refresher *r);

/* When a credential of lifetime_s is refreshed: this many seconds before it
 * expires, and it is used until expires - kit_refresh_safety_s. */
int64_t kit_refresh_early_s(int64_t lifetime_s);
int64_t kit_refresh_safety_s(int64_t lifetime_s);

#endif
