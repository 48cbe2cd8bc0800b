/* The change source: walsender messages in, events and transaction
 * boundaries out.
 *
 * It reads the server's messages through a small I/O interface
 * (source_io), decodes pgoutput, keeps the relation cache (asking the
 * catalog, through source_catalog, about each relation the server
 * describes), numbers the changes of each transaction, appends their
 * events to a batch and records each commit in the checkpoint. It knows
 * nothing of sinks: which sinks want a relation's changes is an opaque
 * route that a router callback returns; route 0 makes no event (the change
 * still counts in the transaction's numbering).
 *
 * Reading is two steps, so that the caller can make room in the batch (or
 * deliver it) between them: source_read takes one message from the server
 * and, for a change, leaves it waiting; source_apply turns it into
 * events. */
#ifndef PGSPOUT_SOURCE_H
#define PGSPOUT_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "catalog.h"
#include "checkpoint.h"
#include "event_internal.h"
#include "replication.h"

/* Protocol 1 sends each transaction whole at its commit: the server
 * spills large ones to its own disk first. With protocol 2 and streaming
 * on (PostgreSQL 14+) it streams them while they run; the source keeps
 * their changes (stream_spool.h) and hands them on at their Stream Commit,
 * numbered exactly as protocol 1 would (their commit LSN is unknown
 * before). */
#define SOURCE_PGOUTPUT_PROTO_VERSION 1
#define SOURCE_PGOUTPUT_STREAM_PROTO_VERSION 2

typedef enum source_status {
    SOURCE_OK,      /* handled: a keepalive, or a change turned into events */
    SOURCE_MESSAGE, /* a change waits: make room, then source_apply */
    SOURCE_IDLE,    /* nothing arrived in time (or a wake-up, a signal) */
    SOURCE_FAILED,  /* err: an undecodable message, a protocol or catalog
                       error */
    SOURCE_STOPPED, /* a stop came while waiting for the catalog (err) */
    SOURCE_LOST,    /* the connection is gone (err): reconnect */
    SOURCE_REFUSED  /* the server refused to go on for good (err) */
} source_status;

/* The walsender as the source reads it. The real one (repl_io.h) wraps a
 * repl_stream; tests replay captured messages. */
typedef struct source_io {
    void *ctx;
    /* The pgoutput protocol asked for: 0 or 1, or
     * SOURCE_PGOUTPUT_STREAM_PROTO_VERSION with streaming on. */
    int proto_version;
    /* As repl_read; REPL_READ_LOST also for a server silent too long. */
    repl_read_result (*read)(void *ctx, repl_msg *msg, int timeout_ms,
                             int wake_fd, char *err, size_t errlen);
    /* Frees a message's buffer (repl_msg.buffer). */
    void (*free_buffer)(void *buffer);
    /* Everything up to lsn has been received (reported as written). */
    void (*note_received)(void *ctx, uint64_t lsn);
    /* Reports lsn as flushed: the server may forget everything before. */
    bool (*confirm)(void *ctx, uint64_t lsn, char *err, size_t errlen);
    /* Answers a keepalive that asked for a reply. */
    bool (*reply)(void *ctx, char *err, size_t errlen);
    /* After a clean stop: sends the final confirmation and waits until
     * the server is known to have it. */
    bool (*finish)(void *ctx, char *err, size_t errlen);
    /* Whether the connection still works (after a failure: was it lost?). */
    bool (*connected)(void *ctx);
} source_io;

/* What decides which sinks get the changes arriving under a relation, as
 * the catalog has it when the Relation message is handled. */
typedef struct relation_lineage {
    catalog_source src; /* the relation's chain and its leaf partitions */
    bool via_root;      /* the publication sends the leaves' changes under the
                           relation's name (publish_via_partition_root) */
    const char *publication;
} relation_lineage;

/* The catalog as the source asks it. The real one (catalog_client.h) wraps
 * catalog.c; tests answer from built-in types. */
typedef struct source_catalog {
    void *ctx;
    /* Fills the type name and JSON encoding of rel's columns and, when
     * lineage is not NULL, the lineage (to be freed with
     * catalog_source_clear). Returns SOURCE_OK, SOURCE_FAILED or
     * SOURCE_STOPPED, with err set. */
    source_status (*describe)(void *ctx, relation *rel,
                              relation_lineage *lineage, char *err,
                              size_t errlen);
    /* The relations whose names the publication's changes carry, each
     * with its lineage (free each with catalog_source_clear, then the
     * array): for resolving backfill requests. May be NULL (no
     * backfills). */
    source_status (*published)(void *ctx, relation_lineage **lineages,
                               size_t *count, char *err, size_t errlen);
} source_catalog;

/* Which sinks want a relation's changes, as an opaque route. */
typedef struct source_router {
    void *ctx;
    /* False when the route is the same for every relation: the catalog is
     * then not asked for lineages, and route gets NULL. */
    bool needs_lineage;
    /* False with err for a relation that cannot be routed as the filters
     * say (which stops the stream). */
    bool (*route)(void *ctx, const relation_lineage *lineage, uint64_t *route,
                  char *err, size_t errlen);
} source_router;

typedef struct source source;

/* Copies the three interfaces. Commits go to cp; with has_endpos, the
 * source ends (source_endpos_reached) at the first commit or idle
 * keepalive at or past endpos and skips transactions committed after it. */
source *source_new(const source_io *io, const source_catalog *catalog,
                   const source_router *router, checkpoint *cp, bool has_endpos,
                   uint64_t endpos);
void source_free(source *s);

/* What the source makes besides changes (every one off by default):
 * message events for logical decoding messages whose prefix matches one of
 * prefixes (fnmatch globs; none: any prefix; pgspout's own prefix never),
 * and begin and commit events around each transaction that makes an
 * event. */
typedef struct source_events {
    bool messages;
    const char *const *prefixes; /* must outlive the source */
    size_t nprefixes;
    bool transaction_events;
} source_events;

/* all_route: the route of events that belong to no table (every sink). */
void source_set_events(source *s, const source_events *ev, uint64_t all_route);

/* Hands pgspout's own logical decoding messages (backfill requests and
 * watermarks) to bf, notes the changes it watches and sends the rows of
 * its chunks as read events. NULL (the default): none. */
struct backfill;
void source_set_backfill(source *s, struct backfill *bf);

/* Where the changes of streamed transactions go beyond memory_limit bytes
 * (all open transactions together): spill files in spill_dir (see
 * stream_spool.h). Without it a streamed transaction fails the stream. */
void source_set_streaming(source *s, const char *spill_dir,
                          uint64_t memory_limit);

/* Waits up to timeout_ms for one message (or until wake_fd is readable).
 * Keepalives are handled here (SOURCE_OK); a change is decoded and left
 * waiting (SOURCE_MESSAGE). */
source_status source_read(source *s, int timeout_ms, int wake_fd, char *err,
                          size_t errlen);

/* How many events the waiting message can make at most. */
size_t source_events_needed(const source *s);

/* A chunk's rows are being sent (more than a batch holds): call
 * source_apply again, after making room, before reading on. */
bool source_has_more(const source *s);

/* Turns the waiting message into events appended to b (and commits into
 * the checkpoint): SOURCE_OK, SOURCE_FAILED or SOURCE_STOPPED. */
source_status source_apply(source *s, batch *b, char *err, size_t errlen);

/* Between a Begin and its Commit. */
bool source_in_txn(const source *s);

/* The last change event of the last committed transaction. */
pgspout_position source_committed(const source *s);

/* The server's WAL end from a keepalive received between transactions
 * (0: none yet): nothing before it is pending for us. */
uint64_t source_idle_wal_end(const source *s);

bool source_endpos_reached(const source *s);

/* The highest LSN that may be confirmed now that everything up to
 * durable_end is durable everywhere (UINT64_MAX: no limit): a backfill
 * chunk whose read events are not yet durable holds it at its low
 * watermark. Chunks that became durable are recorded as done first. */
uint64_t source_confirm_limit(source *s, uint64_t durable_end);

/* The I/O's confirm, finish and connected. */
bool source_confirm(source *s, uint64_t lsn, char *err, size_t errlen);
bool source_finish(source *s, char *err, size_t errlen);
bool source_connected(const source *s);

#endif
