/* The real source_io: the walsender through a repl_stream. */
#ifndef PGSPOUT_REPL_IO_H
#define PGSPOUT_REPL_IO_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "source.h"
#include "stop.h"

typedef struct repl_io repl_io;

/* START_REPLICATION on repl from the slot's confirmed position: pgoutput
 * protocol SOURCE_PGOUTPUT_STREAM_PROTO_VERSION with streaming on when
 * streaming is asked for and the server has it (PostgreSQL 14+), else
 * SOURCE_PGOUTPUT_PROTO_VERSION. Returns NULL with err set and *retryable
 * telling whether a reconnect may cure it. */
repl_io *repl_io_start(PGconn *repl, const stop_state *stop, const char *slot,
                       const char *publication, bool streaming,
                       int status_interval_ms, int server_timeout_ms, char *err,
                       size_t errlen, bool *retryable);

/* The interface; valid until repl_io_free. */
const source_io *repl_io_source(repl_io *io);

/* Stops the status thread; the connection stays open. */
void repl_io_free(repl_io *io);

#endif
