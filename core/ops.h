/* Running in production, as main and the stream loop see it: one-line
 * hooks that keep the metrics (stats.h), readiness (health.h), the HTTP
 * endpoint (http.h), the service manager (notify.h) and the slot monitor
 * (slot_monitor.h) in step with what the daemon does. Every hook does
 * nothing before ops_start, so the layers' unit tests need none of it. */
#ifndef PGSPOUT_OPS_H
#define PGSPOUT_OPS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "stop.h"

/* Starts the metrics, the service manager's notifications and, with
 * http_listen, the HTTP endpoint (bound now: false with err when the
 * address cannot be served, a usage error). cfg and stop must outlive
 * ops_finish; stop's checks become the main thread's pulse. Call it from
 * the main thread. */
bool ops_start(const pgspout_config *cfg, stop_state *stop, char *err,
               size_t errlen);

/* Connecting (or preparing the slot). */
void ops_connecting(void);

/* Replication started on repl: streaming (READY=1 the first time), the
 * slot monitor runs until ops_stream_ended. */
void ops_streaming(PGconn *repl);
void ops_stream_ended(void);

/* The connection was lost; waiting before reconnection `attempt`. */
void ops_reconnecting(int attempt);

/* Stops the endpoint and writes the rate-limited warnings' counts. */
void ops_finish(void);

#endif
