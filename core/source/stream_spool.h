/* The changes of transactions the server streams while they run (pgoutput
 * protocol 2), kept until their Stream Commit or Stream Abort.
 *
 * Each change is kept as the server sent it (its pgoutput bytes and WAL
 * position) under its top-level transaction, in arrival order. All open
 * transactions together hold at most memory_limit bytes in memory; beyond
 * it the largest one's changes move to a file of its own in the spill
 * directory, so a transaction is its file's changes followed by its
 * in-memory ones. Replaying a transaction hands its changes back one at a
 * time, each in a fresh allocation, so memory stays bounded however large
 * it is.
 *
 * Spill files are named after the transaction and the process id:
 * stream_spool_new removes those of processes that are gone (a crash), and
 * stream_spool_free removes this process's own. Nothing in a spill file is
 * needed after a restart: the server sends every unconfirmed transaction
 * again. */
#ifndef PGSPOUT_STREAM_SPOOL_H
#define PGSPOUT_STREAM_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct stream_spool stream_spool;

/* dir: the spill directory (created, mode 0700, when first needed). */
stream_spool *stream_spool_new(const char *dir, uint64_t memory_limit);
/* Removes this process's spill files, and dir when that leaves it empty. */
void stream_spool_free(stream_spool *sp);

/* Keeps one change of top-level transaction top, sent under xid (top or
 * one of its subtransactions). False with err when a spill file cannot be
 * written (a full disk, an unwritable directory). */
bool stream_spool_append(stream_spool *sp, uint32_t top, uint32_t xid,
                         uint64_t wal_start, const char *data, size_t len,
                         char *err, size_t errlen);

/* Stream Abort: subxid == top discards the whole transaction; otherwise
 * the subtransaction's changes and everything after its first change
 * (its own subtransactions), as PostgreSQL's own subscriber does. */
bool stream_spool_abort(stream_spool *sp, uint32_t top, uint32_t subxid,
                        char *err, size_t errlen);

/* The lowest WAL position of a change still kept (UINT64_MAX: none). */
uint64_t stream_spool_oldest(const stream_spool *sp);

/* Open transactions, and the bytes kept in memory and in files. */
size_t stream_spool_open_count(const stream_spool *sp);
uint64_t stream_spool_memory(const stream_spool *sp);

/* Starts handing back top's changes (none when it kept none); the
 * transaction is no longer open. Only one replay at a time. */
void stream_spool_replay_start(stream_spool *sp, uint32_t top);
/* The next change, its bytes malloc'd for the caller (free them with
 * free): 1, or 0 at the end (the transaction and its file are gone), or -1
 * with err when its spill file cannot be read. */
int stream_spool_replay_next(stream_spool *sp, uint64_t *wal_start, char **data,
                             size_t *len, char *err, size_t errlen);

#endif
