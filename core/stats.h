/* What pgspout counts: the pgspout_* metric families (README, "Metrics")
 * and the one-line hooks the layers call to keep them. Every hook does
 * nothing until stats_init ran, so the layers' unit tests need no setup.
 *
 * Sinks are known by index (the route bit delivery gives them, at most 64)
 * on the hot paths and by name where a sink itself reports. Hooks on the
 * hot paths (one per event) cost a few atomic additions. */
#ifndef PGSPOUT_STATS_H
#define PGSPOUT_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event_internal.h"
#include "pgspout/host.h"
#include "pgspout/position.h"
#include "slot_guard.h"

/* Registers the families and the build information. */
void stats_init(void);

/* Forgets everything (unit tests). */
void stats_reset(void);

/* Sink `index` is called `name` (delivery, when it loads the sinks). */
void stats_sink_named(size_t index, const char *name);

/* ---- the source ---- */

/* An event made for the sinks in `route` (source). */
void stats_event_taken(const event *ev, uint64_t route);

/* A transaction ended (source): its commit time (server clock), end LSN,
 * and whether it made any event; those that did are timed until every
 * sink made them durable (stats_flushed). */
void stats_txn_committed(int64_t commit_time_us, uint64_t end_lsn,
                         bool had_events);

/* Replication I/O: a message of `bytes` bytes arrived; everything up to
 * lsn was received; lsn was confirmed to the server. */
void stats_received_bytes(size_t bytes);
void stats_received_lsn(uint64_t lsn);
void stats_confirmed_lsn(uint64_t lsn);

/* ---- the stream ---- */

/* A run of the stream loop starts: nothing is waiting in a batch, and
 * transactions of an earlier run will be sent again. */
void stats_stream_started(void);

/* The batch went to the sinks. */
void stats_batch_handed_over(void);

/* Every transaction ending at or before lsn is durable in every sink. */
void stats_flushed(uint64_t lsn);

/* ---- delivery ---- */

/* A write of n events to sink `index` succeeded. */
void stats_sink_delivered(size_t index, const event *const *events, size_t n);

/* Sink `index` has acknowledged everything up to `acked`. */
void stats_sink_acked(size_t index, pgspout_position acked);

/* The sink answered RETRY to a write or flush (retrying: true), or
 * succeeded after retries (false). */
void stats_sink_retry(const char *sink, bool retrying);

/* What a sink reports of its records (the host API's report_records). */
void stats_sink_report(const char *sink, pgspout_record_outcome what,
                       uint64_t n);

/* ---- the process ---- */

void stats_reconnect(void);

/* The server's version (server_version), for the build information. */
void stats_server_version(const char *version);

/* A line was logged at `level` (log_set_observer). */
void stats_log_line(pgspout_log_level level);

/* The slot as the slot monitor read it. */
void stats_slot(const slot_state *st);

void stats_heartbeat(void);

/* When the last event for a sink was taken (now_us clock; 0: none). */
int64_t stats_last_event_us(void);

/* Refreshes what is computed when scraped (readiness). */
void stats_refresh(void);

/* ---- backfills (called by the backfill engine) ---- */

/* The backfill states a table goes through, in order. */
#define STATS_BACKFILL_STATES "pending", "copying", "done", "failed"

/* A table of a backfill, as the engine's state has it now. */
typedef struct stats_backfill_table {
    const char *table;      /* schema.table */
    const char *state;      /* one of STATS_BACKFILL_STATES */
    const char *error;      /* why it failed (state "failed") */
    uint64_t rows_copied;   /* read events durable in every sink */
    int64_t rows_estimated; /* pg_class.reltuples at its start; -1: not yet */
} stats_backfill_table;

/* The table's progress and state; a failed table makes pgspout not ready
 * until a later backfill of it is done. */
void stats_backfill_table_now(const stats_backfill_table *t);

/* A chunk of the table became durable in every sink. */
void stats_backfill_chunk_done(const char *table);

/* How many tables of the recorded backfills are in `state`. */
void stats_backfill_tables(const char *state, uint64_t n);

#endif
