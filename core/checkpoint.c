#include "checkpoint.h"

#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

void checkpoint_init(checkpoint *cp, uint64_t confirmed)
{
    memset(cp, 0, sizeof *cp);
    cp->confirmed = confirmed;
    cp->durable = confirmed;
    cp->limit = UINT64_MAX;
}

/* confirmed = min(durable, limit), never moving back. */
static bool update_confirmed(checkpoint *cp)
{
    uint64_t want = cp->durable < cp->limit ? cp->durable : cp->limit;
    if (want <= cp->confirmed)
        return false;
    cp->confirmed = want;
    return true;
}

void checkpoint_free(checkpoint *cp)
{
    free(cp->ring);
    memset(cp, 0, sizeof *cp);
}

static checkpoint_entry *entry_at(checkpoint *cp, size_t i)
{
    return &cp->ring[(cp->head + i) % cp->cap];
}

void checkpoint_commit(checkpoint *cp, pgspout_position last_event,
                       uint64_t end_lsn)
{
    if (cp->count > 0) {
        checkpoint_entry *tail = entry_at(cp, cp->count - 1);
        if (pgspout_position_cmp(tail->last_event, last_event) == 0) {
            if (end_lsn > tail->end_lsn)
                tail->end_lsn = end_lsn;
            return;
        }
    }
    if (cp->count == cp->cap) {
        size_t cap = cp->cap ? cp->cap * 2 : 64;
        checkpoint_entry *ring = xmalloc(cap * sizeof *ring);
        for (size_t i = 0; i < cp->count; i++)
            ring[i] = *entry_at(cp, i);
        free(cp->ring);
        cp->ring = ring;
        cp->head = 0;
        cp->cap = cap;
    }
    *entry_at(cp, cp->count++) =
        (checkpoint_entry){.last_event = last_event, .end_lsn = end_lsn};
}

bool checkpoint_advance(checkpoint *cp, bool everything_durable,
                        pgspout_position durable)
{
    while (cp->count > 0) {
        checkpoint_entry *e = entry_at(cp, 0);
        if (!everything_durable &&
            pgspout_position_cmp(e->last_event, durable) > 0)
            break;
        if (e->end_lsn > cp->durable)
            cp->durable = e->end_lsn;
        cp->head = (cp->head + 1) % cp->cap;
        cp->count--;
    }
    return update_confirmed(cp);
}

bool checkpoint_idle(checkpoint *cp, uint64_t wal_end)
{
    if (cp->count > 0 || wal_end <= cp->durable)
        return false;
    cp->durable = wal_end;
    return update_confirmed(cp);
}

bool checkpoint_set_limit(checkpoint *cp, uint64_t limit)
{
    cp->limit = limit;
    return update_confirmed(cp);
}

size_t checkpoint_pending(const checkpoint *cp)
{
    return cp->count;
}
