/* Questions pgspout asks the server's catalogs over an ordinary connection
 * (a walsender in COPY mode cannot answer queries). */
#ifndef PGSPOUT_CATALOG_H
#define PGSPOUT_CATALOG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event_internal.h"
#include "pattern.h"

typedef struct catalog_table {
    char *schema;
    char *table;
    char *quoted; /* quote_ident(schema) || '.' || quote_ident(table) */
    bool visible; /* pg_table_is_visible(): found through search_path */
} catalog_table;

/* Ordinary and partitioned tables outside the system schemas. */
bool catalog_list_tables(PGconn *conn, catalog_table **tables, size_t *count,
                         char *err, size_t errlen);
void catalog_tables_free(catalog_table *tables, size_t count);

/* 1 visible, 0 not, -1 the relation no longer exists. */
int catalog_relation_visible(PGconn *conn, uint32_t relid);

/* Fills type_name (format_type) and vtype of every column. */
bool catalog_describe_columns(PGconn *conn, relation *rel, char *err,
                              size_t errlen);

/* *confirmed gets the slot's confirmed_flush_lsn (0 when unknown). */
bool catalog_slot_exists(PGconn *conn, const char *slot, bool *exists,
                         uint64_t *confirmed, char *err, size_t errlen);
/* Creates the publication FOR ALL TABLES when missing and create is set;
 * otherwise a missing publication is an error. */
bool catalog_ensure_publication(PGconn *conn, const char *publication,
                                bool create, char *err, size_t errlen);

char *catalog_current_database(PGconn *conn);

/* What decides the character classes of the connected database's default
 * collation, from pg_database (whichever columns this server version
 * has); free it with catalog_database_ctype_free(). */
bool catalog_database_ctype(PGconn *conn, database_ctype *db, char *err,
                            size_t errlen);
void catalog_database_ctype_free(database_ctype *db);

/* current_schemas(true): the schemas an unqualified name is looked up in. */
char **catalog_search_path(PGconn *conn, size_t *count);

#endif
