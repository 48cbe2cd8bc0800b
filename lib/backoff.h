/* Delays between retries (a failing sink, a lost connection, a request the
 * service refused for now): exponential with full jitter, so a fleet of
 * pgspout instances does not retry in lockstep. */
#ifndef PGSPOUT_BACKOFF_H
#define PGSPOUT_BACKOFF_H

#include <stdint.h>

#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 30000

/* A delay in [base/2, min(cap, base * 2^(attempt-1))] ms. Thread-safe. */
int64_t backoff_delay_between(int attempt, int64_t base_ms, int64_t cap_ms);

/* The daemon's own schedule (sinks and reconnects; README, "Delivery
 * guarantees"): BACKOFF_BASE_MS up to BACKOFF_CAP_MS. */
int64_t backoff_delay_ms(int attempt);

#endif
