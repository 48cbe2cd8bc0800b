/* The state of backfills as `pgspout backfill` reads it: the status table
 * the daemon keeps (<status_schema>.pgspout_backfill_status, unlogged, one
 * row per backfill and table plus a `*` row for the backfill as a whole),
 * and, while no pgspout streams from the slot, the requests still waiting
 * in the WAL (peeked from the slot, which consumes nothing). */
#ifndef PGSPOUT_BACKFILL_WATCH_H
#define PGSPOUT_BACKFILL_WATCH_H

#include <libpq-fe.h>

#include "config.h"
#include "stop.h"

#define BACKFILL_STATUS_TABLE "pgspout_backfill_status"

/* --wait: polls the `*` row of backfill `id` every second until it is
 * done (returns 0) or failed (1, with its error logged). A stop signal
 * ends the wait (1; the backfill goes on). A lost connection is opened
 * again (*conn is replaced), with backoff; the status table may not exist
 * yet (the daemon is down, or has not reached the request). */
int backfill_wait(PGconn **conn, const stop_state *stop,
                  const pgspout_config *cfg, const char *id);

/* --status: prints the slot's backfills on stdout, and the requests not
 * yet picked up when no pgspout streams from the slot. Returns the exit
 * status. */
int backfill_print_status(PGconn *conn, const stop_state *stop,
                          const pgspout_config *cfg);

#endif
