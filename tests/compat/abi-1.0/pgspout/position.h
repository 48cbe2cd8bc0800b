/* Positions in the change stream. */
#ifndef PGSPOUT_POSITION_H
#define PGSPOUT_POSITION_H

#include <stdint.h>

/* A WAL location, as PostgreSQL's XLogRecPtr ("0/16B3748" in text). */
typedef uint64_t pgspout_lsn;

/* Every event has one; (commit_lsn, seq) is strictly increasing over the
 * whole stream, so a sink can acknowledge "everything up to here" and can
 * recognise an event it already stored after a restart. */
typedef struct pgspout_position {
    pgspout_lsn commit_lsn; /* commit LSN of the event's transaction */
    uint64_t seq;           /* 1-based position within that transaction */
} pgspout_position;

static inline int pgspout_position_cmp(pgspout_position a, pgspout_position b)
{
    if (a.commit_lsn != b.commit_lsn)
        return a.commit_lsn < b.commit_lsn ? -1 : 1;
    if (a.seq != b.seq)
        return a.seq < b.seq ? -1 : 1;
    return 0;
}

#endif
