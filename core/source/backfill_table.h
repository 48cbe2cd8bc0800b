/* What a backfill worker needs to know of a table before it reads it, and
 * the SQL that reads one chunk.
 *
 * The columns are those the stream's events carry (pgoutput's Relation
 * message): the publication's column list (PostgreSQL 15+), no generated
 * column (before 18), in attnum order, with pgoutput's key flags (the
 * replica identity's columns; all of them under REPLICA IDENTITY FULL).
 * The chunk key orders the rows and tells a chunk's rows apart from the
 * changes the stream notes, so every key column must be in the events
 * that can change a row: the replica identity index under REPLICA
 * IDENTITY USING INDEX (deletes carry only its columns), else the primary
 * key, else the unique index over NOT NULL columns with the fewest
 * columns; none of those: ctid ranges (PostgreSQL 14+ TID range scans),
 * which cannot be matched with changes.
 *
 * Everything here is asked over a worker's own connection, from the
 * worker's thread (catalog.c serves the main thread only). */
#ifndef PGSPOUT_BACKFILL_TABLE_H
#define PGSPOUT_BACKFILL_TABLE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backfill_state.h"
#include "pgconn.h"
#include "strbuf.h"

typedef struct bf_column {
    char *name;
    uint32_t type_oid;
    int32_t typmod;
    bool key; /* pgoutput's flag: part of the replica identity */
} bf_column;

typedef struct bf_key_column {
    int col;         /* index into the table's columns */
    char *type_name; /* format_type without typmod, for literals */
    char *collation; /* the index's collation, quoted; NULL: none */
} bf_key_column;

typedef struct bf_table_info {
    uint32_t oid;
    char *schema, *table; /* the names its events carry */
    char *quoted;         /* schema.table, quoted */
    bool partitioned;     /* read as one table with its partitions */
    char replident;       /* 'd', 'n', 'f', 'i' */
    bf_column *cols;
    int ncols;
    bf_key_column *key; /* nkey == 0: ctid ranges */
    int nkey;
    char *key_desc;   /* how the chunks are cut, for logs */
    char *row_filter; /* the publication's row filter; NULL: none */
    int64_t rows_estimated;
    /* For ctid ranges: rows per block number, over every leaf partition
     * (a chunk reads the same block numbers of each). */
    double rows_per_block;
} bf_table_info;

/* A candidate chunk key: a unique index of the table. */
typedef struct bf_index {
    const char *name;
    bool primary, replident;
    bool usable; /* unique, immediate, valid, whole-table, over plain
                    columns that are NOT NULL and published */
    int nkey;
} bf_index;

/* Which of the indexes cuts the chunks (README "Snapshot and backfill"),
 * or -1 for ctid ranges. */
int bf_choose_chunk_key(char replident, const bf_index *indexes, size_t n);

/* Runs one statement as pq_exec does, with a timeout; NULL (and err) when
 * it did not produce a result of status `want`. nparams < 0: no
 * parameters, and exactly one statement (pq_exec_one). *retryable (may be
 * NULL) tells whether a new connection may help (connection trouble, a
 * stop is not). */
PGresult *bf_exec(PGconn *conn, const stop_state *stop, const char *sql,
                  int nparams, const char *const *params, ExecStatusType want,
                  const char *what, char *err, size_t errlen, bool *retryable);

/* Loads what the worker needs of table oid as the publication publishes
 * it. *gone: the table no longer exists or is no longer published (err
 * says which). */
bool bf_table_info_load(PGconn *conn, const stop_state *stop, uint32_t oid,
                        const char *publication, bf_table_info *info,
                        bool *gone, char *err, size_t errlen, bool *retryable);
void bf_table_info_clear(bf_table_info *info);

/* The spill file's header line for rows of this table. */
char *bf_table_spill_header(const bf_table_info *info);

/* One chunk: the rows after lo (none: from the start) and, with hi, up
 * to hi inclusive, at most limit + 1 of them (the extra one only tells
 * that more follow), in key order; or for ctid ranges the blocks [lo, hi).
 * `where` is the request's own condition (NULL: none). */
char *bf_chunk_copy_sql(PGconn *conn, const bf_table_info *info,
                        const bf_key *lo, const bf_key *hi, uint64_t limit,
                        const char *where);

/* For a chunk read by several connections: the key of the row `skip`
 * rows into the range a chunk with those bounds reads (same conditions,
 * same order), as a query with one row of the key columns' text, or none
 * when the range holds no more rows. Keyed tables only. */
char *bf_chunk_split_sql(PGconn *conn, const bf_table_info *info,
                         const bf_key *lo, const bf_key *hi, uint64_t skip,
                         const char *where);

/* COPY of the rows at the listed keys, each only if it is not after its
 * bound, in key order; the row filter and `where` apply as for a range. */
char *bf_chunk_keys_sql(PGconn *conn, const bf_table_info *info,
                        const bf_moved_list *keys, const char *where);

/* The table's current size in blocks (its largest partition's), for ctid
 * ranges. */
bool bf_table_blocks(PGconn *conn, const stop_state *stop, uint32_t oid,
                     uint64_t *blocks, char *err, size_t errlen,
                     bool *retryable);

#endif
