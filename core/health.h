/* Liveness and readiness, as /health and /ready report them.
 *
 * Alive: the main thread has looked at its stop state recently. Every wait
 * of the main loop does so at least every second (socket reads, backoffs,
 * queries and connection attempts every 100 ms, sinks waiting for their
 * service through should_stop), so a main thread that stops doing it for
 * HEALTH_STALL_S seconds is stuck.
 *
 * Ready: streaming, every sink accepting events, the slot's lag under
 * max_slot_lag and no backfill failed; otherwise each reason that holds is
 * named. Any thread may update the state. */
#ifndef PGSPOUT_HEALTH_H
#define PGSPOUT_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define HEALTH_STALL_S 60

typedef enum health_phase {
    HEALTH_CONNECTING,        /* connecting, or preparing the slot */
    HEALTH_STREAMING,         /* replication started */
    HEALTH_RECONNECT_BACKOFF, /* waiting before the next connection attempt */
    HEALTH_STOPPING           /* a stop signal came */
} health_phase;

/* Back to the start: connecting, no sink, no reason (between unit tests). */
void health_reset(void);

void health_set_phase(health_phase phase);
health_phase health_get_phase(void);

/* The main thread is alive (see above). */
void health_alive_now(void);

/* Sink `index` (a route bit, at most 64 sinks) is called `name`. */
void health_sink_named(size_t index, const char *name);

/* A sink is retrying, as pgspout sees it (its write or flush answered
 * RETRY: `core`), or as the sink reported it (records to send again, until
 * the service accepts records again). */
void health_sink_retrying(size_t index, bool core, bool retrying);

/* The slot's lag is over max_slot_lag (or no longer). */
void health_slot_lag(bool over, uint64_t lag_bytes, uint64_t limit_bytes);

/* A backfill of `table` failed (why: its error), or, with why NULL, the
 * table's failure is over (copied again). */
void health_backfill_failed(const char *table, const char *why);

/* /health: 200 with {"alive":true}, or 503 once the main thread has not
 * been seen for HEALTH_STALL_S. Returns the status code. */
int health_liveness(strbuf *body);

/* /ready: 200 with {"ready":true}, or 503 with {"ready":false,"reasons":
 * [...]}: each {"reason":R,...} with R one of connecting,
 * reconnect_backoff, stopping, sink_retrying ("sink"), slot_lag
 * ("lag_bytes", "limit_bytes") or backfill_failed ("table", "error").
 * Returns the status code. */
int health_readiness(strbuf *body);

bool health_ready(void);

#endif
