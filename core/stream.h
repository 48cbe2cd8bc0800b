/* The stream: the loop that joins the source (core/source: messages in,
 * events out), delivery (core/delivery: events to sinks, acknowledgements
 * back) and the checkpoint (what may be confirmed), and confirms. */
#ifndef PGSPOUT_STREAM_H
#define PGSPOUT_STREAM_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delivery.h"
#include "source.h"
#include "stop.h"

typedef struct stream_settings {
    /* The user's settings, from the configuration (defaults: the settings
     * table, settings.c); the caller sets them. */
    const char *conninfo; /* for a new catalog connection */
    const char *slot;
    const char *publication;
    uint64_t start_lsn; /* the slot's confirmed_flush_lsn */
    bool has_endpos;
    uint64_t endpos;
    int status_interval_ms;
    int server_timeout_ms; /* repl_check_alive */
    source_events events;  /* messages and transaction events */
    /* Streamed in-progress transactions (PostgreSQL 14+): whether to ask
     * for them, the memory their changes may take, all together, and the
     * directory they spill to beyond it. */
    bool streaming;
    uint64_t stream_memory;
    const char *spill_dir;
    /* Backfills (NULL: none), what identifies their state (the server's
     * system identifier, the database, whether this run created the
     * slot), and for --snapshot only the backfill whose end (done,
     * durable, confirmed) ends the stream. */
    struct backfill *backfill;
    const char *system_id, *database;
    bool slot_created;
    const char *finish_backfill;
    /* Fixed limits, not user settings; stream_settings_default sets them.
     * A batch handed to sinks in one write call holds at most this much. */
    size_t batch_max_events;
    size_t batch_max_bytes;
    /* A sink is flushed when idle, after this long, or with this many
     * unflushed events, whichever comes first; the last bounds memory of
     * sinks that buffer until flushed. */
    int flush_interval_ms;
    /* A change waits at most about this long in a sink before a flush
     * makes it durable (changes arriving meanwhile share the flush). */
    int flush_linger_ms;
    uint64_t max_unflushed_events;
} stream_settings;

/* Zeroes *s and sets the fixed limits (the values README documents). */
void stream_settings_default(stream_settings *s);

/* stream_run's answer when the connection to the server was lost: the
 * caller reconnects and calls it again (nothing unacknowledged was
 * confirmed; the server sends it again). */
#define STREAM_DISCONNECTED (-1)

/* Streams until endpos, the end of settings->finish_backfill, a stop
 * signal (see stop.h), a lost connection or a failure: the source reads changes
 * into a batch, the delivery hands it to the sinks and flushes them, and the
 * end of every transaction all sinks made durable is confirmed through the
 * source's I/O. The delivery's sinks must be started, and at most
 * SELECTION_MAX_SINKS. Returns the process exit status: 0 after a clean stop
 * with everything durable confirmed, 1 on failure (nothing unacknowledged was
 * confirmed), or STREAM_DISCONNECTED. */
int stream_run(const stream_settings *settings, const source_io *io,
               const source_catalog *catalog, delivery *d, stop_state *stop);

/* stream_run from a connected server: starts replication on repl and asks
 * the catalog over *catalog, which may be replaced by a new connection
 * (the caller closes whichever it holds at the end). Returns as
 * stream_run, STREAM_DISCONNECTED too when replication could not start for
 * a reason a reconnect may cure. */
int stream_from_server(PGconn *repl, PGconn **catalog, delivery *d,
                       const stream_settings *settings, stop_state *stop);

#endif
