/* Which WAL position may be confirmed to the server.
 *
 * PostgreSQL resends, after a restart, every transaction whose commit record
 * is at or after the slot's confirmed position, so confirming a
 * transaction's end LSN promises that all of it is durable in every sink.
 * The tracker remembers, for each committed transaction not yet confirmed,
 * the position of the last event created up to its commit; once every sink
 * has acknowledged that position, the transaction's end LSN is confirmed.
 * Transactions that produced no event share their predecessor's position
 * and are merged into its entry, so the queue holds at most one entry per
 * transaction with unacknowledged events. */
#ifndef PGSPOUT_CHECKPOINT_H
#define PGSPOUT_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgspout/position.h"

typedef struct checkpoint_entry {
    pgspout_position last_event; /* every event up to here must be durable */
    uint64_t end_lsn;            /* then this may be confirmed */
} checkpoint_entry;

typedef struct checkpoint {
    checkpoint_entry *ring;
    size_t head, count, cap;
    uint64_t durable;   /* everything before it is durable in every sink */
    uint64_t limit;     /* never confirmed past (UINT64_MAX: no limit) */
    uint64_t confirmed; /* highest LSN that may be reported as flushed:
                           min(durable, limit), never moving back */
} checkpoint;

void checkpoint_init(checkpoint *cp, uint64_t confirmed);
void checkpoint_free(checkpoint *cp);

/* A transaction ended at end_lsn; last_event is the newest event created
 * so far (from this or an earlier transaction). */
void checkpoint_commit(checkpoint *cp, pgspout_position last_event,
                       uint64_t end_lsn);

/* Confirms every transaction whose events are all durable. `durable` is the
 * lowest acknowledged position among sinks still holding unacknowledged
 * events; everything_durable means no sink holds any. Returns true when
 * cp->confirmed moved forward. */
bool checkpoint_advance(checkpoint *cp, bool everything_durable,
                        pgspout_position durable);

/* The server said it has sent everything before wal_end and no transaction
 * is open: when nothing is pending either, that position is safe to
 * confirm, which lets the slot move past WAL that held no changes for us. */
bool checkpoint_idle(checkpoint *cp, uint64_t wal_end);

size_t checkpoint_pending(const checkpoint *cp);

/* Sets the limit the confirmed LSN never passes (a backfill chunk whose
 * read events are not durable yet holds it at its low watermark); returns
 * true when that let cp->confirmed move forward. */
bool checkpoint_set_limit(checkpoint *cp, uint64_t limit);

#endif
