/* What the parts of the backfill manager share: backfill.c (the stream's
 * side: watermarks, windows, emission, confirmation), backfill_request.c
 * (requests and their tables), backfill_worker.c (the workers) and
 * backfill_status.c (the status table and progress). Not for anyone
 * else. */
#ifndef PGSPOUT_BACKFILL_INTERNAL_H
#define PGSPOUT_BACKFILL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "backfill.h"
#include "backfill_spill.h"
#include "backfill_state.h"
#include "backfill_table.h"
#include "backfill_throttle.h"
#include "backfill_window.h"
#include "stop.h"

/* A chunk between its low watermark and its record in the state. */
typedef struct bf_inflight {
    char token[BF_TOKEN_LEN + 1];
    uint32_t oid;
    bf_key keycols;
} bf_inflight;

typedef enum bf_window_phase {
    WINDOW_OPEN,      /* low watermark seen: changes are noted */
    WINDOW_EMITTING,  /* high watermark seen: rows go out */
    WINDOW_PROCESSED, /* rows handed over: waiting to be durable */
} bf_window_phase;

/* What the stream saw of one chunk since its low watermark. */
typedef struct bf_window {
    char token[BF_TOKEN_LEN + 1];
    uint32_t oid;
    bf_key keycols;
    uint64_t lw_commit_lsn; /* the confirmation stays at or below it */
    bf_window_phase phase;
    bf_notes *notes;  /* while open */
    bool hw_in_txn;   /* its high watermark is in the open transaction */
    uint64_t hw_end;  /* that transaction's end (0: not yet) */
    uint64_t emitted; /* read events made */
    /* The latest commits before the low watermark (fewer after a restart:
     * the replay starts at the confirmed position). */
    uint32_t *before;
    size_t nbefore;
} bf_window;

/* The chunk whose rows the source is taking. */
typedef struct bf_emission {
    bool active;
    char token[BF_TOKEN_LEN + 1];
    bf_spill_reader reader;
    backfill_rows_desc desc;
    bf_column *cols;
    int *key_index; /* the chunk key's columns among cols */
    int nkey;
    bf_drops *drops;
    /* Keys to read again once the chunk is sent (rows a change it did
     * not see left without values), and the bound they get. */
    bf_moved_list reread;
    bf_key reread_bound, reread_after;
    uint64_t rows, next_index, emitted;
    char *schema, *table;
} bf_emission;

typedef struct bf_worker {
    backfill *bf;
    int index;
    pthread_t thread;
    PGconn *conn;
    /* The other connections that read its chunks with it (chunk_readers
     * - 1 of them, each connected when first needed). */
    PGconn **readers;
    /* The table it copies (looked up by id and OID: the state's arrays
     * move when they grow). */
    char *id;
    uint32_t oid;
    bf_table_info info;
    bool have_info;
    int failures; /* connection trouble in a row, for the backoff */
} bf_worker;

struct backfill {
    /* Settings (owned copies). */
    char *conninfo, *slot, *publication, *state_dir, *status_schema, *dbname;
    int chunk_rows, nworkers, chunk_readers, max_rows_per_sec;

    /* Everything below is under `lock`; workers wait on `changed`. */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bf_state st;
    bool attached;
    bool have_dir; /* state_dir exists and is ours (locked) */
    int lock_fd;
    database_ctype db;
    bool have_db;
    bool needs_resolution;

    bf_inflight *inflight;
    size_t ninflight;
    bf_window *windows;
    size_t nwindows;
    atomic_size_t open_windows; /* read without the lock, per change */
    bf_recent recent;           /* the stream thread's only */
    bf_emission em;
    char **doomed; /* spill files of done chunks, removed after confirming */
    size_t ndoomed;
    /* Moved keys are in memory but the state could not be saved: nothing
     * new is confirmed until it is. */
    bool moved_unsaved;

    token_bucket bucket;
    stop_state worker_stop;
    bool closing; /* no new work: the status rows are written, then stop */
    bool stopping;
    bf_worker *workers;
    bool workers_started;

    bool status_disabled, status_busy;
    int64_t status_due_us;
    bool status_table_ready; /* created, with every column, by this run */
    /* Rows of backfills requested before this LSN (the stream's start) and
     * not in the state are marked forgotten once (0: done). */
    uint64_t forget_before;
    bool tty;
    int64_t progress_us;
};

/* ---- backfill.c ---- */

/* Saves the state (lock held); logs and returns false on failure. */
bool bf_save_locked(backfill *bf);
/* Creates the state directory when missing and takes it (lock held). */
bool bf_ensure_dir_locked(backfill *bf, char *err, size_t errlen);
bf_table *bf_find_table(bf_state *st, const char *id, uint32_t oid,
                        bf_backfill **b);
/* The chunk with that token, and its table and backfill. */
bf_chunk *bf_find_chunk(bf_state *st, const char *token, bf_table **t,
                        bf_backfill **b);
char *bf_spill_path(const backfill *bf, const char *name);
/* A chunk's read is recorded in the state or was given up: it is no
 * longer in flight (lock held). */
void bf_forget_token_locked(backfill *bf, const char *token);
/* A read given up: the window its low watermark opened (if the stream saw
 * it) closes, and holds nothing back any more (lock held). */
void bf_drop_window_locked(backfill *bf, const char *token);
/* A table's chunks are all done (or it failed): its state, its
 * backfill's, logs and the status (lock held). */
void bf_table_settle_locked(backfill *bf, bf_backfill *b, bf_table *t);
void bf_table_fail_locked(backfill *bf, bf_backfill *b, bf_table *t,
                          const char *error);

/* ---- backfill_request.c ---- */

/* A request message; the verdict as backfill_message returns it. */
backfill_verdict bf_request(backfill *bf, const backfill_txn *txn,
                            const char *content, size_t len, char *err,
                            size_t errlen);

/* ---- backfill_worker.c ---- */

void bf_workers_start(backfill *bf);
void bf_workers_stop(backfill *bf);

/* ---- backfill_status.c ---- */

/* Writes the rows of every backfill whose status changed (on the worker's
 * connection). */
void bf_status_flush(backfill *bf, bf_worker *w);
/* A flush that could not start (no connection, a stop). */
void bf_status_flush_abandon(backfill *bf);
/* Whether a flush is due (lock held). */
bool bf_status_due_locked(backfill *bf);
/* The status rows of b (its "*" row, and t's when t is not NULL) need
 * writing; t's metrics are updated now. */
void bf_status_changed_locked(backfill *bf, bf_backfill *b, bf_table *t);
/* Every row to be written again (the table may have lost them). */
void bf_status_all_changed_locked(backfill *bf);
/* Every table's progress and state to the metrics and readiness (the
 * state just loaded; bf_status_changed_locked keeps them after). */
void bf_status_publish_all_locked(backfill *bf);
/* Logs progress every 10 s (on a terminal, a line on stderr every
 * second); lock held. */
void bf_progress_tick_locked(backfill *bf);
void bf_progress_table_done(const bf_backfill *b, const bf_table *t);

#endif
