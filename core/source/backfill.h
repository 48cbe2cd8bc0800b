/* The backfill manager: snapshots and on-demand backfills, a component of
 * the source layer (it knows nothing of sinks).
 *
 * Requests arrive through the WAL as logical decoding messages (prefix
 * "pgspout") that the source hands over; the manager records each in the
 * state directory (backfill_state.h), resolves its tables with the
 * publication and the daemon's filters, and has its workers (own threads,
 * own connections) copy them in chunks by the watermark method of DBLog:
 * a low watermark message, the chunk read into a spill file, a high
 * watermark message. In the stream, the manager notes the changes of a
 * chunk's table between its watermarks (backfill_window.h), and at the
 * high watermark hands the source the chunk's rows that are not stale, to
 * become read events at that transaction's position. It holds the
 * confirmation back below every chunk whose read events are not yet
 * durable everywhere, marks a chunk done in the state before the
 * confirmation that passes its high watermark is sent, and removes its
 * spill file after.
 *
 * Threads: the source's calls come from the main thread; workers share
 * the state under the manager's lock. */
#ifndef PGSPOUT_BACKFILL_H
#define PGSPOUT_BACKFILL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "backfill_table.h"
#include "catalog.h"
#include "event_internal.h"
#include "pattern.h"
#include "stop.h"
#include "tuple.h"

typedef struct backfill backfill;

typedef struct backfill_settings {
    const char *conninfo;
    const char *slot;
    const char *publication;
    const char *state_dir; /* NULL: none could be chosen */
    const char *status_schema;
    const char *dbname; /* for three-part patterns in requests */
    int chunk_rows;
    int workers;
    int chunk_readers;    /* connections per chunk read */
    int max_rows_per_sec; /* 0: unlimited */
} backfill_settings;

/* Copies the settings; nothing touches the disk or the server yet. */
backfill *backfill_new(const backfill_settings *settings);
/* Stops the workers (ending their queries) and frees everything. */
void backfill_free(backfill *bf);

/* The state directory a slot uses when state_dir is not set: as root
 * /var/lib/pgspout/SLOT, else $XDG_STATE_HOME/pgspout/SLOT or
 * ~/.local/state/pgspout/SLOT. NULL when there is none (no home). */
char *backfill_default_state_dir(const char *slot);

/* The character classes of the connected database, for request
 * patterns (table_pattern_follow_database). */
void backfill_follow_database(backfill *bf, const database_ctype *db);

/* Once this process streams from the slot (so no other pgspout can):
 * takes the state directory (when it exists), checks the state is this
 * slot's (system identifier, database, slot; a slot this run created
 * starts with no state), removes leftovers and starts the workers. Called
 * again after a reconnect, it does nothing. */
bool backfill_attach(backfill *bf, const char *system_id, const char *database,
                     bool slot_created, char *err, size_t errlen);

/* The state directory (NULL: none could be chosen). */
const char *backfill_state_dir(const backfill *bf);

/* --snapshot: whether the state directory already lists the initial
 * backfill of this slot (read without taking the directory), with its id
 * in id. */
bool backfill_initial_id(const char *state_dir, const char *system_id,
                         const char *database, const char *slot, char *id,
                         size_t idlen);

/* Emits the request for a backfill of every selected table, as the first
 * run of a slot does (--snapshot initial/only); *id gets its id,
 * "initial-<lsn>". */
bool backfill_request_initial(PGconn *conn, const stop_state *stop,
                              const char *slot, uint64_t lsn, char *id,
                              size_t idlen, char *err, size_t errlen);

/* Whether the backfill `id` is done (every table's read events durable
 * everywhere and the confirmation that passes them decided); *failed when
 * it ended failed. */
bool backfill_finished(backfill *bf, const char *id, bool *failed);

/* ---- the source's side (main thread) ---- */

/* A stream run starts at start_lsn (the slot's confirmed position): the
 * server replays from there, so what the manager saw of the stream before
 * is forgotten; status rows of requests before it that the state lacks
 * are marked failed. */
void backfill_stream_start(backfill *bf, uint64_t start_lsn);

/* The transaction a message came in, and where. */
typedef struct backfill_txn {
    uint32_t xid;
    uint64_t commit_lsn;
    int64_t commit_time_us;
    uint64_t lsn; /* the message's */
} backfill_txn;

typedef enum backfill_verdict {
    BACKFILL_NOTHING,
    BACKFILL_RESOLVE, /* a request waits: call backfill_resolve */
    BACKFILL_EMIT,    /* a chunk's rows wait: backfill_emission_* */
    BACKFILL_FAILED   /* err: cannot go on (state directory unusable) */
} backfill_verdict;

/* A transactional message with prefix "pgspout". */
backfill_verdict backfill_message(backfill *bf, const backfill_txn *txn,
                                  const char *content, size_t len, char *err,
                                  size_t errlen);

/* Whether a recorded request still needs its tables resolved. */
bool backfill_needs_resolution(backfill *bf);

/* The publication's relations now (with their lineage) and, for each, the
 * route the stream gives its changes (ok[i] false: cannot be routed,
 * why[i] says why): resolves every request waiting for it. */
void backfill_resolve(backfill *bf, const catalog_source *const *sources,
                      const uint64_t *routes, const bool *ok, char *const *why,
                      size_t n);

/* Whether a chunk of relation relid is between its watermarks: its
 * changes must be noted. */
bool backfill_watching(backfill *bf, uint32_t relid);

/* A change of rel by transaction xid (op: 'I', 'U', 'D'), at position pos
 * in the stream (the same again when a restart replays it); old_kind 0,
 * 'K' or 'O' as pgoutput sends them. */
void backfill_note_change(backfill *bf, const relation *rel, uint32_t xid,
                          pgspout_position pos, char op, char old_kind,
                          const tuple *old_tuple, const tuple *new_tuple);
void backfill_note_truncate(backfill *bf, uint32_t relid, uint32_t xid);

/* Every commit the stream takes (the stream thread only). */
void backfill_committed(backfill *bf, uint32_t xid);
/* The transaction of a high watermark ended at end_lsn. */
void backfill_note_commit(backfill *bf, uint64_t end_lsn);

/* ---- the rows of a chunk, after BACKFILL_EMIT ---- */

/* What the rows are: the relation as the chunk's spill file describes it
 * (columns as the stream's events carry them). */
typedef struct backfill_rows_desc {
    uint32_t oid;
    const char *schema, *table;
    char replident;
    const bf_column *cols;
    int ncols;
    event_snapshot snapshot; /* for every read event of the chunk */
} backfill_rows_desc;

const backfill_rows_desc *backfill_emission_desc(backfill *bf);

/* The next row to send: t->cols (from mem, t->in_arena set) is one block
 * that also holds the text the values point into; *index is its 1-based
 * place among the chunk's rows (rows dropped as stale leave gaps). Returns
 * 1, 0 at the end, -1 with err. */
int backfill_emission_next(backfill *bf, tuple *t, uint64_t *index, arena *mem,
                           char *err, size_t errlen);

/* How many rows the chunk has (its seq numbers' span). */
uint64_t backfill_emission_rows(backfill *bf);

/* The chunk's rows were all handed over (completed) or the emission was
 * given up. */
void backfill_emission_end(backfill *bf, bool completed);

/* ---- confirming (main thread) ---- */

/* Everything up to durable_end is durable in every sink: the chunks whose
 * high watermark transaction ended there or before are done (recorded in
 * the state now, before any confirmation passes them). Returns the
 * highest LSN that may be confirmed: the commit LSN of the oldest low
 * watermark whose chunk is not done (UINT64_MAX: none). */
uint64_t backfill_confirm_limit(backfill *bf, uint64_t durable_end);

/* The highest LSN that may be confirmed as the windows stand now (a low
 * watermark just seen lowers it at once), without deciding what is done. */
uint64_t backfill_hold(backfill *bf);

/* The confirmation was sent: the spill files of done chunks go. */
void backfill_confirmed(backfill *bf);

#endif
