/* Every connection and query pgspout makes, bounded and interruptible.
 *
 * libpq's blocking calls retry on EINTR and wait as long as the server
 * lets them, so a server that accepts TCP and never answers (or a slot
 * another client holds) would make pgspout deaf to SIGTERM. Here each wait
 * ends when the stop state is raised or a timeout passes:
 * - connecting is bounded by libpq's own connect_timeout (per host, as
 *   libpq applies it), PGSPOUT_DEFAULT_CONNECT_TIMEOUT_S when neither the
 *   conninfo nor PGCONNECT_TIMEOUT sets one, and ends early on a stop;
 * - a query is bounded by the timeout its caller gives and ends early on a
 *   stop. A query that did not finish leaves its connection unusable: the
 *   caller closes it (PQfinish) and reconnects when it needs one.
 *
 * Every connection also pins the settings that change how a value prints
 * (see PQ_PINNED_SETTINGS), whatever the database, the role or the
 * conninfo's own `options` say: pgspout takes the walsender's text output
 * as the value, so those settings would otherwise change the data. */
#ifndef PGSPOUT_PGCONN_H
#define PGSPOUT_PGCONN_H

#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h" /* now_us(), which deadlines here are measured by */
#include "stop.h"

#define PGSPOUT_DEFAULT_CONNECT_TIMEOUT_S 30

/* Startup options appended after the user's own, so they win (the server
 * applies -c options in order, and startup options outrank ALTER DATABASE
 * and ALTER ROLE settings). */
#define PQ_PINNED_SETTINGS                                                     \
    "-c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=3 "  \
    "-c bytea_output=hex -c TimeZone=UTC -c lc_monetary=C"

typedef enum pq_outcome {
    PQ_OK,        /* connected, or the query produced its results */
    PQ_FAILED,    /* libpq or the server said no (err says why) */
    PQ_TIMED_OUT, /* the server did not answer in time */
    PQ_STOPPED    /* a stop was requested while waiting */
} pq_outcome;

/* Call once at start, before any connection (any thread). A connection
 * attempt a stop abandons goes on, on its own thread, possibly in the
 * middle of TLS or SCRAM when the process exits; OpenSSL's exit handler
 * would free what that thread is using (a crash at exit, seen under
 * valgrind), so it is turned off: the process's end frees it all anyway. */
void pq_library_init(void);

/* Opens a connection (replication = true: a logical walsender). Returns
 * NULL with err set (never quoting the conninfo) and *outcome telling why.
 * outcome may be NULL. */
PGconn *pq_connect(const char *conninfo, bool replication,
                   const stop_state *stop, pq_outcome *outcome, char *err,
                   size_t errlen);

/* Runs one statement (params as text, may be NULL) and returns its last
 * result, whatever its status (the caller checks PQresultStatus), or NULL
 * with *outcome PQ_TIMED_OUT, PQ_STOPPED or PQ_FAILED (could not send, or
 * the connection broke) and err set. timeout_ms < 0 waits without limit
 * (still ending on a stop). After a NULL result the connection must be
 * closed. A COPY_BOTH result (START_REPLICATION) is returned at once. */
PGresult *pq_exec(PGconn *conn, const char *sql, int nparams,
                  const char *const *params, int timeout_ms,
                  const stop_state *stop, pq_outcome *outcome, char *err,
                  size_t errlen);

/* As pq_exec without parameters, through the extended query protocol, so
 * that the text is exactly one statement (text built around an untrusted
 * part, such as a backfill request's WHERE, cannot run a second one). */
PGresult *pq_exec_one(PGconn *conn, const char *sql, int timeout_ms,
                      const stop_state *stop, pq_outcome *outcome, char *err,
                      size_t errlen);

/* Waits until the socket is readable (or writable), the deadline (a
 * now_us() value; <= 0 none) passes, or a stop is requested. Returns 1
 * ready, 0 deadline, -1 stop, -2 poll failed. */
int pq_wait_socket(PGconn *conn, bool for_write, int64_t deadline_us,
                   const stop_state *stop);

/* Copies libpq's last error for conn into err as "what: message" without
 * the trailing newline. */
void pq_copy_error(PGconn *conn, const char *what, char *err, size_t errlen);

/* Whether an error the server reported can go away by reconnecting: a lost
 * or terminated connection, a server shutting down, starting or out of
 * connections, a lack of resources, an I/O or internal error. */
bool pq_sqlstate_retryable(const char *sqlstate);

#endif
