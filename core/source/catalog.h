/* Questions pgspout asks the server's catalogs over an ordinary connection
 * (a walsender in COPY mode cannot answer queries). Each waits for the
 * server as pgconn.h describes, ending early when `stop` asks for a stop. */
#ifndef PGSPOUT_CATALOG_H
#define PGSPOUT_CATALOG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event_internal.h"
#include "pattern.h"
#include "stop.h"

typedef struct catalog_table {
    char *schema;
    char *table;
    char *quoted; /* quote_ident(schema) || '.' || quote_ident(table) */
    bool visible; /* pg_table_is_visible(): found through search_path */
    uint32_t oid;
} catalog_table;

/* A relation and the partitioned tables above it, nearest first: tables[0]
 * is the relation itself, tables[n - 1] the root of its partition tree (the
 * relation alone when it is no partition). */
typedef struct catalog_chain {
    catalog_table *tables;
    size_t n;
} catalog_chain;

/* A relation whose name changes can carry, with what decides whether they
 * are selected: its chain, and for a partitioned relation the chain of each
 * leaf partition below it whose changes can be published (permanent
 * tables), as those arrive under its name with publish_via_partition_root.
 * Leaves are ordered by name. */
typedef struct catalog_source {
    catalog_chain chain;
    catalog_chain *leaves;
    size_t nleaves;
} catalog_source;

/* The source for relation relid as the catalog has it now; *found is false
 * (and src empty) when the relation no longer exists. On failure *retryable
 * (may be NULL) tells whether asking again may work, as for
 * catalog_describe_columns. */
bool catalog_relation_source(PGconn *conn, const stop_state *stop,
                             uint32_t relid, catalog_source *src, bool *found,
                             char *err, size_t errlen, bool *retryable);

/* The relations whose names the publication's changes carry
 * (pg_publication_tables: with publish_via_partition_root the topmost
 * published partitioned tables, else the leaf partitions), or, when
 * `exists` is false, those of the publication --create-slot would create
 * (FOR ALL TABLES WITH (publish_via_partition_root = true)). Unordered. */
bool catalog_publication_sources(PGconn *conn, const stop_state *stop,
                                 const char *publication, bool exists,
                                 catalog_source **sources, size_t *count,
                                 char *err, size_t errlen);
void catalog_source_clear(catalog_source *src);
void catalog_sources_free(catalog_source *sources, size_t count);

/* Whether the publication exists, and its publish_via_partition_root. */
bool catalog_publication_info(PGconn *conn, const stop_state *stop,
                              const char *publication, bool *exists,
                              bool *via_root, char *err, size_t errlen,
                              bool *retryable);

/* Fills type_name (format_type) and vtype of every column. On failure
 * *retryable (may be NULL) tells whether asking again may work: the server
 * did not answer in time, the connection broke (reconnect first: see
 * catalog_connection_usable) or the error is of a passing kind. */
bool catalog_describe_columns(PGconn *conn, const stop_state *stop,
                              relation *rel, char *err, size_t errlen,
                              bool *retryable);

/* False when conn cannot take another query: closed, broken, or still busy
 * with one that timed out or was abandoned on a stop. */
bool catalog_connection_usable(PGconn *conn);

/* *confirmed gets the slot's confirmed_flush_lsn (0 when unknown). */
bool catalog_slot_exists(PGconn *conn, const stop_state *stop, const char *slot,
                         bool *exists, uint64_t *confirmed, char *err,
                         size_t errlen);
/* Creates the publication FOR ALL TABLES WITH (publish_via_partition_root
 * = true, and on PostgreSQL 18+ publish_generated_columns = generated:
 * "stored" or "none") when missing and create is set; otherwise a missing
 * publication is an error. */
bool catalog_ensure_publication(PGconn *conn, const stop_state *stop,
                                const char *publication, bool create,
                                const char *generated, char *err,
                                size_t errlen);

/* What decides the character classes of the connected database's default
 * collation, from pg_database (whichever columns this server version
 * has); free it with catalog_database_ctype_free(). */
bool catalog_database_ctype(PGconn *conn, const stop_state *stop,
                            database_ctype *db, char *err, size_t errlen);
void catalog_database_ctype_free(database_ctype *db);

/* current_schemas(true): the schemas an unqualified name is looked up in. */
char **catalog_search_path(PGconn *conn, const stop_state *stop, size_t *count);

#endif
