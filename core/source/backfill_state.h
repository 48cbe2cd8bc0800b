/* The backfills' durable state: what the state directory's backfill.state
 * holds (one JSON document, rewritten atomically), in memory.
 *
 * It lists each backfill that was requested (its id, patterns and WHERE),
 * the tables it resolved to, and per table how far the copy got: the key
 * after which new chunks start (its cursor), the rows every sink made
 * durable, and each chunk that was read but is not done yet (its spill
 * file, the token of its watermarks and the snapshot it was read with), or
 * that must be read again (no spill file). A chunk is done once the
 * confirmation that passes its high watermark is about to be sent; then it
 * leaves the state. */
#ifndef PGSPOUT_BACKFILL_STATE_H
#define PGSPOUT_BACKFILL_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pgspout/position.h>

/* The text of a chunk key's columns (the type output functions'), or, for
 * a table copied in ctid ranges, one value: a block number. n == 0: none
 * (before the first row). */
typedef struct bf_key {
    size_t n;
    char **v;
} bf_key;

void bf_key_set(bf_key *k, char *const *values, size_t n);
void bf_key_copy(bf_key *dst, const bf_key *src);
void bf_key_clear(bf_key *k);
bool bf_key_equal(const bf_key *a, const bf_key *b);

/* A key to read a row at while its table is copied (an update without
 * its unchanged TOASTed values moved the row there, or left it there
 * after a chunk that read it was judged), with where the rows the stream
 * had sent from key ranges ended: the row is read at its key only if the
 * key is not after that bound (rows after it are read by ranges still to
 * come). No bound (n == 0): every range had been sent. `after`: it is
 * read only if the key is after this (keys up to it are another entry's);
 * none (n == 0): no lower limit. */
typedef struct bf_moved {
    bf_key key;
    bf_key bound;
    bf_key after;
} bf_moved;

/* A list of them. A key moved to again while it waits keeps one entry,
 * with the latest bound (bounds only grow); it may be in the list again
 * once its entry is being read. */
typedef struct bf_moved_list {
    size_t n;
    bf_moved *v;
} bf_moved_list;

/* The first entry at or after index `from` with that key, or NULL. */
bf_moved *bf_moved_find(const bf_moved_list *l, size_t from, const bf_key *key);
void bf_moved_append(bf_moved_list *l, const bf_moved *m);
/* Appends a copy of m unless an entry has its key and bound: true when
 * appended. */
bool bf_moved_add(bf_moved_list *l, const bf_moved *m);
/* Moves the first n entries of src to the end of dst (those dst has
 * already are dropped). */
void bf_moved_move_front(bf_moved_list *dst, bf_moved_list *src, size_t n);
void bf_moved_clear(bf_moved_list *l);

typedef enum bf_status {
    BF_PENDING,
    BF_COPYING,
    BF_DONE,
    BF_FAILED,
} bf_status;

const char *bf_status_name(bf_status s);

#define BF_TOKEN_LEN 16

/* A chunk read and recorded (spill set), or a range to read again. */
typedef struct bf_chunk {
    uint64_t n;    /* 1-based, in the order chunks of the table were read */
    bf_key lo;     /* exclusive lower bound (none: the table's start) */
    bf_key hi;     /* inclusive upper bound: the last key read (ctid: the
                      exclusive end block) */
    uint64_t rows; /* rows in the spill file */
    bool last;     /* the table's final chunk */
    char *spill;   /* file name in the state directory; NULL: read again */
    char token[BF_TOKEN_LEN + 1]; /* names its watermark messages */
    char *snapshot;       /* pg_current_snapshot() the rows were read with */
    int attempts;         /* times the range was found changed and read again */
    bf_key keycols;       /* the chunk key's column names (none: ctid ranges) */
    uint64_t spill_bytes; /* the spill file's size */
    /* A chunk that reads these keys (rows an update moved behind the
     * copy's cursor) instead of a key range; none: a range. */
    bf_moved_list keys;
    /* Not saved: this process knows its high watermark is in the WAL;
     * the stream turned it into read events in this run; a worker is at
     * it. */
    bool hw_sent, processed, claimed;
} bf_chunk;

typedef struct bf_table {
    uint32_t oid;
    char *name; /* schema.table, as quote_ident prints each */
    bf_status status;
    char *error;
    int64_t rows_estimated;
    uint64_t rows_copied; /* read events durable in every sink */
    uint64_t next_chunk;  /* the number the next chunk read gets */
    bf_key cursor;        /* new chunks start after it */
    bool at_end;          /* new chunks reached the end of the table */
    bf_key keycols;       /* the chunk key's column names (none: ctid, or
                             not known yet) */
    /* Keys an update without its unchanged TOASTed values moved rows to
     * while the table was copied: each is read in a chunk of keys. The
     * first moved_claimed of them are being read (not saved). */
    bf_moved_list moved;
    size_t moved_claimed;
    /* The stream position of the latest update noted in moved (saved with
     * it): a restart replays changes from the slot's confirmed position,
     * which a chunk not done can hold before updates whose keys were read
     * already; noting those again would read their rows twice. */
    pgspout_position moved_noted;
    /* Not saved: the stream sent the chunk flagged last; later updates
     * find every row in the sinks. */
    bool last_sent;
    bf_chunk *chunks; /* recorded and not done, or to read again */
    size_t nchunks;
    /* Not saved: the worker copying it (-1: none), and progress. */
    int owner;
    /* Not saved: times the copy went back to a stale chunk's start (a
     * chunk read before the latest one is not recorded), and how many of
     * them in a row without a chunk sent between (new chunks get smaller,
     * so a hot range ends up read in pieces small enough). */
    uint64_t rewinds;
    int stale_streak;
    int64_t started_us, logged_us;
    uint64_t rows_at_start; /* rows_copied when this run started it */
    bool status_dirty;
} bf_table;

typedef struct bf_backfill {
    char *id;
    char **include, **exclude;
    size_t n_include, n_exclude;
    char *where; /* NULL: none */
    uint64_t request_lsn;
    int64_t requested_at_us; /* the request's commit time */
    bf_status status;
    char *error;
    bool resolved; /* its tables are known */
    bf_table *tables;
    size_t ntables;
    bool status_dirty; /* not saved: the status table needs its rows */
} bf_backfill;

typedef struct bf_state {
    /* Whose state it is: a state found for another server, database or
     * slot is not used. */
    char *system_id;
    char *database;
    char *slot;
    bf_backfill *backfills;
    size_t nbackfills;
} bf_state;

void bf_state_clear(bf_state *st);

/* Reads dir/backfill.state; a missing file is an empty state. False with
 * err when the file cannot be read or is not a state pgspout wrote. */
bool bf_state_load(const char *dir, bf_state *st, char *err, size_t errlen);

/* Writes it atomically and durably: a temporary file, fsync, rename over
 * backfill.state, fsync of the directory. */
bool bf_state_save(const char *dir, const bf_state *st, char *err,
                   size_t errlen);

/* The JSON text and back (for tests, and what load/save use). */
char *bf_state_to_json(const bf_state *st);
bool bf_state_from_json(const char *text, bf_state *st, char *err,
                        size_t errlen);

bf_backfill *bf_state_find(bf_state *st, const char *id);
/* Appends a zeroed backfill (owned by the state) and returns it. */
bf_backfill *bf_state_add(bf_state *st);
bf_table *bf_backfill_add_table(bf_backfill *b, uint32_t oid, const char *name);
void bf_backfill_drop_table(bf_backfill *b, size_t i);
/* Appends a zeroed chunk to the table and returns it (pointers into the
 * table's chunk array move when it grows). */
bf_chunk *bf_table_add_chunk(bf_table *t);
void bf_table_remove_chunk(bf_table *t, size_t i);
void bf_chunk_clear(bf_chunk *c);

/* Where the rows the stream sent from the table's key ranges end: the
 * start of the first range it has not sent (the rows after it are read,
 * or read again, by ranges still to come), else the cursor; empty when no
 * range was sent; NULL when the ranges reached the table's end and were
 * all sent. */
const bf_key *bf_table_sent_bound(const bf_table *t);

#endif
