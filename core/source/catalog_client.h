/* The real source_catalog: catalog.c over the ordinary connection, asked
 * again (with backoff, on a new connection when needed) until it answers.
 *
 * The catalog connection sits idle between Relation messages, so the
 * server may have closed it (idle_session_timeout, a terminated backend)
 * and a new one may be refused for a while (max_connections reached, a
 * restart). Replication itself is healthy meanwhile: the source waits,
 * confirming nothing new (the status thread keeps the walsender alive),
 * until the catalog answers or a stop is requested. */
#ifndef PGSPOUT_CATALOG_CLIENT_H
#define PGSPOUT_CATALOG_CLIENT_H

#include <libpq-fe.h>

#include "source.h"
#include "stop.h"

typedef struct catalog_client catalog_client;

/* *conn may be replaced by a new connection made with conninfo (the caller
 * closes whichever it holds at the end). Reads the connection's
 * search_path now: a relation dropped since its changes were sent is
 * judged as visible when its schema is in it. */
catalog_client *catalog_client_new(PGconn **conn, const char *conninfo,
                                   const char *publication,
                                   const stop_state *stop);

/* The interface; valid until catalog_client_free. */
const source_catalog *catalog_client_source(catalog_client *c);

void catalog_client_free(catalog_client *c);

#endif
