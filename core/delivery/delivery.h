/* Delivery: the sinks, as the rest of the core sees them.
 *
 * An opaque host for the configured sinks. It loads them and validates
 * their options, starts them, hands each the share of a batch its route
 * bit selects (skipping what a sink already holds), retries a failing
 * write or flush with backoff until the stop state says to give up,
 * decides when each sink is flushed, and reports the position every sink
 * has made durable. Nothing outside core/delivery/ touches a sink handle or
 * calls a sink's callbacks.
 *
 * Routes: bit i of an event's route stands for the i-th configured sink
 * (at most SELECTION_MAX_SINKS); an event with route 0 reaches no sink. */
#ifndef PGSPOUT_DELIVERY_H
#define PGSPOUT_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "config.h"
#include "pattern.h"
#include "pgspout/event.h"
#include "pgspout/position.h"
#include "selection.h"
#include "stop.h"

typedef struct delivery delivery;

typedef enum delivery_result {
    DELIVERED,
    DELIVERY_FAILED,     /* FATAL from a sink */
    DELIVERY_INTERRUPTED /* a stop request came while a sink kept failing */
} delivery_result;

/* No sinks yet. global (the global table filter) and stop must outlive the
 * delivery. */
delivery *delivery_new(const table_filter *global, stop_state *stop);

/* Destroys the sinks (after their last flush) and unloads them. */
void delivery_free(delivery *d);

/* Loads every configured sink from dirs and validates its options and
 * filters, all before anything connects. Returns 0, or CONFIG_USAGE_ERROR
 * with the error printed (naming file, line and key). The sink configs
 * must outlive the delivery (it reads their options). */
int delivery_load(delivery *d, sink_config *sinks, size_t n, char *const *dirs,
                  size_t ndirs, const char *dbname);

size_t delivery_sink_count(const delivery *d);

/* The filters, global and per sink, for judging relations. */
const selection *delivery_selection(const delivery *d);

/* The route that reaches every sink. */
uint64_t delivery_all_routes(const delivery *d);

/* False when no filter has a pattern: every relation's route is then
 * delivery_all_routes, whatever the catalog says of it. */
bool delivery_routes_by_relation(const delivery *d);

/* The route of the changes arriving under the relation src describes
 * (its chain and leaves). With via_root (the publication sends the leaves'
 * changes under the relation's name), a filter that selects a leaf apart
 * from the relation is refused: false with a message naming the pattern,
 * the partition and `publication` (its name). */
bool delivery_route(const delivery *d, const catalog_source *src, bool via_root,
                    const char *publication, uint64_t *route, char *err,
                    size_t errlen);

/* Creates every sink (their threads start with stop signals blocked, so
 * signals stay with the main thread) and reads where each resumes. False,
 * logged, when one cannot start. */
bool delivery_start(delivery *d);

bool delivery_started(const delivery *d);

/* After a reconnect the server resends what was not confirmed; what a sink
 * already took in this process (it owns it now) is skipped. */
void delivery_skip_delivered(delivery *d);

/* A stop while no connection streams: flushes what the sinks took (it is
 * confirmed by the next run); nothing can be confirmed now, so a failure
 * changes nothing. */
void delivery_flush_abandoned(delivery *d);

/* A sink is flushed once the oldest change it has not flushed waited
 * linger_ms (between transactions only: inside one nothing can be
 * confirmed before the commit), or once it holds max_unflushed events.
 * Until this is called, every flush finds every sink due. */
void delivery_set_flush_policy(delivery *d, int linger_ms,
                               uint64_t max_unflushed);

/* The delay before retry number `attempt` (1, 2, ...) of a failing sink;
 * by default exponential with jitter, 100 ms doubling to 30 s. */
typedef int64_t (*delivery_backoff_fn)(void *ctx, int attempt);
void delivery_set_backoff(delivery *d, delivery_backoff_fn delay, void *ctx);

/* Whether a sink declaring ABI minor sink_abi_minor may receive events of
 * op (ops that generalise nothing it knows never reach it; see abi.h). */
bool delivery_sink_takes_op(unsigned sink_abi_minor, pgspout_op op);

/* Hands each sink its share of the batch (write, retried with backoff). */
delivery_result delivery_write(delivery *d, const batch *b);

/* Flushes the sinks that are due by the policy, or every sink holding
 * unflushed changes when `everything`. */
delivery_result delivery_flush(delivery *d, bool everything, bool in_txn);

/* When the oldest unflushed change's linger ends (now_us() clock); 0 when
 * every sink is flushed. */
int64_t delivery_linger_deadline(const delivery *d);

/* Whether that deadline passed at `now`; never inside a transaction. */
bool delivery_linger_over(const delivery *d, int64_t now, bool in_txn);

/* The position every sink has acknowledged as durable: returns true when
 * no sink holds anything unacknowledged, else false with *durable the
 * lowest acknowledgement among the sinks that do (a sink with nothing
 * pending does not hold it back). */
bool delivery_durable(const delivery *d, pgspout_position *durable);

/* Makes every sink's own filter apply the connected database's character
 * classes (table_filter_follow_database). */
bool delivery_follow_database(delivery *d, const database_ctype *db, char *err,
                              size_t errlen);

#endif
