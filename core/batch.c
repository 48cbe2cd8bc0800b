#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* What an event costs beyond its change, in the byte count. */
#define EVENT_OVERHEAD_BYTES 256
/* The rows' arena: a quarter of this is the largest row it holds (larger
 * ones get a block of their own). */
#define BATCH_ROWS_BLOCK_BYTES ((size_t)256 << 10)

void batch_init(batch *b, size_t max_events, size_t max_bytes)
{
    memset(b, 0, sizeof *b);
    b->max_events = max_events;
    b->max_bytes = max_bytes;
    arena_init(&b->rows, BATCH_ROWS_BLOCK_BYTES);
}

void batch_free(batch *b)
{
    batch_clear(b);
    arena_free(&b->rows);
    for (size_t i = 0; i < b->nspare; i++)
        free(b->spare[i]);
    free(b->spare);
    free(b->events);
    free(b->routes);
    free(b->buffers);
    free(b->buffer_free);
    memset(b, 0, sizeof *b);
}

event *batch_new_event(batch *b)
{
    /* event_clear left a spare all zeros. */
    return b->nspare ? b->spare[--b->nspare] : xcalloc(1, sizeof(event));
}

/* Clears ev and keeps it for batch_new_event, up to as many as the batch
 * has held at once. */
static void release_event(batch *b, event *ev)
{
    event_clear(ev);
    if (b->nspare == b->spare_cap && b->spare_cap < b->cap) {
        b->spare_cap = b->cap;
        b->spare = xrealloc(b->spare, b->spare_cap * sizeof *b->spare);
    }
    if (b->nspare < b->spare_cap)
        b->spare[b->nspare++] = ev;
    else
        free(ev);
}

void batch_add(batch *b, event *ev, uint64_t route, size_t approx_bytes)
{
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : b->max_events ? b->max_events : 64;
        b->events = xrealloc(b->events, cap * sizeof *b->events);
        b->routes = xrealloc(b->routes, cap * sizeof *b->routes);
        b->cap = cap;
    }
    b->events[b->count] = ev;
    b->routes[b->count] = route;
    b->count++;
    b->bytes += approx_bytes + EVENT_OVERHEAD_BYTES;
}

void batch_keep_buffer(batch *b, void *buffer, batch_buffer_free free_fn)
{
    if (b->nbuffers == b->buffers_cap) {
        b->buffers_cap = b->buffers_cap ? b->buffers_cap * 2 : 64;
        b->buffers = xrealloc(b->buffers, b->buffers_cap * sizeof *b->buffers);
        b->buffer_free =
            xrealloc(b->buffer_free, b->buffers_cap * sizeof *b->buffer_free);
    }
    b->buffers[b->nbuffers] = buffer;
    b->buffer_free[b->nbuffers] = free_fn;
    b->nbuffers++;
}

bool batch_has_room(const batch *b, size_t n)
{
    return b->count + n <= b->max_events;
}

bool batch_full_by_size(const batch *b)
{
    return b->bytes >= b->max_bytes;
}

bool batch_empty(const batch *b)
{
    return b->count == 0;
}

void batch_clear(batch *b)
{
    for (size_t i = 0; i < b->count; i++)
        release_event(b, b->events[i]);
    b->count = 0;
    b->bytes = 0;
    for (size_t i = 0; i < b->nbuffers; i++)
        b->buffer_free[i](b->buffers[i]);
    b->nbuffers = 0;
    arena_reset(&b->rows);
}

void batch_drop_uncommitted_tail(batch *b, pgspout_position committed)
{
    while (b->count > 0) {
        event *ev = b->events[b->count - 1];
        if (pgspout_position_cmp(ev->pos, committed) <= 0)
            break;
        release_event(b, ev);
        b->count--;
    }
}
