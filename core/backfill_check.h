/* What `pgspout backfill` asks the server before it emits a request, and
 * emitting it. Every check that fails is bad input (exit 2) with a message
 * naming what is wrong, and nothing is emitted: a server older than 14
 * (pgoutput sends logical decoding messages from 14 on), a slot that is
 * not a pgoutput slot of this database, a publication that does not
 * exist, a pattern that matches no table the publication publishes, a
 * filter that selects a partition apart from the root its changes arrive
 * under (as for --list-tables), and a --where that does not apply to every
 * selected table (EXPLAIN in a read-only transaction that is rolled
 * back). The daemon checks the rest when the request reaches it. */
#ifndef PGSPOUT_BACKFILL_CHECK_H
#define PGSPOUT_BACKFILL_CHECK_H

#include <libpq-fe.h>
#include <stddef.h>

#include "backfill_message.h"
#include "config.h"
#include "pattern.h"
#include "stop.h"

/* 0 when the server agrees with the request cfg describes (filter is made
 * of its patterns; its character classes are made to follow the
 * database's collation here); 2 with what is wrong in err; 1 when the
 * server could not be asked. */
int backfill_check(PGconn *conn, const stop_state *stop,
                   const pgspout_config *cfg, table_filter *filter, char *err,
                   size_t errlen);

/* Emits the request as a transactional logical decoding message with
 * prefix BACKFILL_MESSAGE_PREFIX; 0, or 1 with the reason in err. */
int backfill_emit(PGconn *conn, const stop_state *stop,
                  const backfill_request *req, char *err, size_t errlen);

#endif
