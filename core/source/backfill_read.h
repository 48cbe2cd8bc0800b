/* A chunk's rows taken from the COPYs reading them: one connection's, or
 * several at once (backfill_chunk_readers), each into a spill writer.
 *
 * With several readers the worker's connection opens the chunk's
 * REPEATABLE READ transaction, exports its snapshot and cuts the range
 * into consecutive pieces; each other connection imports that snapshot
 * and reads one piece (backfill_worker.c). Together they read exactly the
 * rows one reader would have, at the same snapshot, so the chunk's
 * watermarks mean what they did. Here they are drained side by side: a
 * reader waiting on a full socket would stall its server backend, so none
 * is read to its end before the others. */
#ifndef PGSPOUT_BACKFILL_READ_H
#define PGSPOUT_BACKFILL_READ_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backfill_spill.h"
#include "stop.h"

/* The most readers one chunk has. */
#define BF_MAX_READERS 16

typedef struct bf_piece {
    PGconn *conn;        /* in COPY OUT state */
    bf_spill_writer *sw; /* where its rows go */
    bool keep_all;       /* ctid ranges: every row sent */
    uint64_t limit;      /* else rows kept; one more tells more follow */
    /* What was taken. */
    uint64_t rows;
    bool more;
    char *last_line; /* the last row kept (keyed), as COPY sent it */
    int last_len;
    bool done;
    int64_t heard_us; /* when its socket last had something */
} bf_piece;

/* Takes every piece's rows until each COPY ended with success. False
 * with err ("reading the chunk failed: ...") on a failure, a stop, or a
 * server silent for 60 s on any of them; *retryable tells whether a new
 * connection may help. */
bool bf_pieces_drain(bf_piece *pieces, int n, const stop_state *stop, char *err,
                     size_t errlen, bool *retryable);

/* Frees what a piece holds (not its connection or writer). */
void bf_piece_clear(bf_piece *p);

#endif
