/* A batch: the events the source made since the last delivery, each with
 * its route (which sinks want it, see delivery.h), and the CopyData
 * buffers their tuples point into, kept alive until the batch is cleared.
 *
 * The source appends; the stream decides when the batch goes out (full by
 * count or by bytes, or due); delivery reads it; the stream clears it. A
 * batch holds at most max_events events (more only for a single message
 * that makes more, such as a TRUNCATE of many tables) and about max_bytes
 * of changes before it is handed over: memory stays bounded whatever the
 * transaction size. */
#ifndef PGSPOUT_BATCH_H
#define PGSPOUT_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "event_internal.h"

typedef void (*batch_buffer_free)(void *buffer);

typedef struct batch {
    event **events;
    uint64_t *routes; /* routes[i] belongs to events[i] */
    size_t count, cap;
    size_t bytes; /* approximate size of the events' changes */
    size_t max_events, max_bytes;
    void **buffers; /* what the events point into */
    batch_buffer_free *buffer_free;
    size_t nbuffers, buffers_cap;
    /* Events cleared and kept for batch_new_event, at most one batch's
     * worth: a backfill or a large transaction makes millions, and
     * allocating each anew cost a few percent of the stream's time. */
    event **spare;
    size_t nspare, spare_cap;
    /* Backfill rows (values and text, one block each) live here until the
     * batch is cleared: one allocation per block of rows, not per row. */
    arena rows;
} batch;

void batch_init(batch *b, size_t max_events, size_t max_bytes);
/* Clears it and frees the arrays. */
void batch_free(batch *b);

/* A zeroed event for batch_add, reused from an earlier batch when there
 * is one. */
event *batch_new_event(batch *b);

/* Takes ev (from batch_new_event, owned by the batch from now on);
 * approx_bytes is what the change weighs (its message's size). */
void batch_add(batch *b, event *ev, uint64_t route, size_t approx_bytes);

/* Keeps buffer alive until the batch is cleared, then frees it with
 * free_fn. */
void batch_keep_buffer(batch *b, void *buffer, batch_buffer_free free_fn);

/* Whether n more events fit under max_events. */
bool batch_has_room(const batch *b, size_t n);

/* Whether the events reached max_bytes: the batch must go out before the
 * next message is read (reading copies it out of libpq, and the batch may
 * already hold a huge one: two such copies would coexist). */
bool batch_full_by_size(const batch *b);

bool batch_empty(const batch *b);

/* Frees every event and buffer; the batch is empty and reusable. */
void batch_clear(batch *b);

/* Drops the events after `committed` (the last change event of the last
 * committed transaction): on a clean stop inside a transaction, its
 * undelivered tail is not delivered, as the server sends all of it again. */
void batch_drop_uncommitted_tail(batch *b, pgspout_position committed);

#endif
