/* Row images as pgoutput sends them (TupleData): one value per column. The
 * data pointers point into the CopyData buffer the message came in, which
 * the core keeps alive for as long as the events built from it. */
#ifndef PGSPOUT_TUPLE_H
#define PGSPOUT_TUPLE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum colval_kind {
    COLVAL_NULL = 'n',
    COLVAL_UNCHANGED_TOAST = 'u', /* value not sent: unchanged TOASTed datum */
    COLVAL_TEXT = 't',
    COLVAL_BINARY = 'b'
} colval_kind;

typedef struct colval {
    char kind;        /* colval_kind */
    uint32_t len;     /* bytes at data, for TEXT and BINARY */
    const char *data; /* not NUL-terminated */
} colval;

typedef struct tuple {
    uint16_t ncols;
    /* Owned by the event: malloc'd array of ncols, unless in_arena (a
     * backfill row's block, freed with the batch's arena). */
    bool in_arena;
    colval *cols;
} tuple;

#endif
