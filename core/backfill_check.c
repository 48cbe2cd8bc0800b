#include "backfill_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "conninfo.h"
#include "log.h"
#include "pgconn.h"
#include "selection.h"
#include "strbuf.h"

#define EXIT_RUNTIME_FAILURE 1
#define EXIT_BAD_INPUT 2
/* Catalog questions and EXPLAIN are small: as for the daemon's catalog. */
#define QUERY_TIMEOUT_MS 60000
/* How many of the selected tables the log line names. */
#define TABLES_NAMED 10

/* The first line of the server's message for a failed result, or libpq's
 * reason when there was no result. */
static void server_message(PGconn *conn, const PGresult *res, const char *what,
                           char *err, size_t errlen)
{
    const char *primary =
        res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary)
        snprintf(err, errlen, "%s: %s", what, primary);
    else
        pq_copy_error(conn, what, err, errlen);
}

/* Runs a query expected to succeed with `want`; NULL (and err) otherwise. */
static PGresult *ask(PGconn *conn, const stop_state *stop, const char *sql,
                     int nparams, const char *const *params,
                     ExecStatusType want, const char *what, char *err,
                     size_t errlen)
{
    char why[512];
    PGresult *res = pq_exec(conn, sql, nparams, params, QUERY_TIMEOUT_MS, stop,
                            NULL, why, sizeof why);
    if (!res) {
        snprintf(err, errlen, "%s: %s", what, why);
        return NULL;
    }
    if (PQresultStatus(res) != want) {
        server_message(conn, res, what, err, errlen);
        PQclear(res);
        return NULL;
    }
    return res;
}

static int check_server(PGconn *conn, char *err, size_t errlen)
{
    int version = PQserverVersion(conn);
    if (version >= 140000)
        return 0;
    snprintf(err, errlen,
             "the server runs PostgreSQL %d.%d; backfill requests need "
             "PostgreSQL 14 or later (they travel as logical decoding "
             "messages, which pgoutput sends from 14 on)",
             version / 10000, version % 10000 / 100);
    return EXIT_BAD_INPUT;
}

static int check_slot(PGconn *conn, const stop_state *stop, const char *slot,
                      char *err, size_t errlen)
{
    const char *params[] = {slot};
    PGresult *res = ask(
        conn, stop,
        "SELECT coalesce(database::text, ''), coalesce(plugin::text, ''), "
        "pg_catalog.current_database() FROM pg_catalog.pg_replication_slots "
        "WHERE slot_name = $1",
        1, params, PGRES_TUPLES_OK, "cannot look up the replication slot", err,
        errlen);
    if (!res)
        return EXIT_RUNTIME_FAILURE;
    int rc = EXIT_BAD_INPUT;
    if (PQntuples(res) == 0)
        snprintf(err, errlen,
                 "replication slot \"%s\" does not exist: name the slot of the "
                 "pgspout that is to copy (--slot)",
                 slot);
    else if (strcmp(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 2)) != 0)
        snprintf(err, errlen,
                 "replication slot \"%s\" is not a logical slot of database "
                 "\"%s\"%s%s%s: connect to the slot's database (-d)",
                 slot, PQgetvalue(res, 0, 2),
                 *PQgetvalue(res, 0, 0) ? " (it "
                                          "belongs to \""
                                        : "",
                 PQgetvalue(res, 0, 0), *PQgetvalue(res, 0, 0) ? "\")" : "");
    else if (strcmp(PQgetvalue(res, 0, 1), "pgoutput") != 0)
        snprintf(err, errlen,
                 "replication slot \"%s\" uses output plugin \"%s\", not "
                 "pgoutput: it is not a pgspout slot",
                 slot, PQgetvalue(res, 0, 1));
    else
        rc = 0;
    PQclear(res);
    return rc;
}

/* The filter's character classes as the server applies them. */
static int follow_collation(PGconn *conn, const stop_state *stop,
                            table_filter *filter, database_ctype *db, char *err,
                            size_t errlen)
{
    if (!catalog_database_ctype(conn, stop, db, err, errlen))
        return EXIT_RUNTIME_FAILURE;
    if (!table_filter_follow_database(filter, db, err, errlen))
        return EXIT_BAD_INPUT;
    return 0;
}

/* ---- which tables ---- */

typedef struct published {
    char *publication;
    bool via_root;
    catalog_source *sources;
    size_t n;
} published;

static int load_published(PGconn *conn, const stop_state *stop,
                          const char *publication, published *pub, char *err,
                          size_t errlen)
{
    bool exists;
    memset(pub, 0, sizeof *pub);
    if (!catalog_publication_info(conn, stop, publication, &exists,
                                  &pub->via_root, err, errlen, NULL))
        return EXIT_RUNTIME_FAILURE;
    if (!exists) {
        snprintf(err, errlen,
                 "publication \"%s\" does not exist: the tables to copy must "
                 "be in the publication pgspout streams (--publication)",
                 publication);
        return EXIT_BAD_INPUT;
    }
    if (!catalog_publication_sources(conn, stop, publication, true,
                                     &pub->sources, &pub->n, err, errlen))
        return EXIT_RUNTIME_FAILURE;
    pub->publication = xstrdup(publication);
    return 0;
}

static void published_free(published *pub)
{
    catalog_sources_free(pub->sources, pub->n);
    free(pub->publication);
}

static bool matches_any(const table_pattern *p, const published *pub)
{
    for (size_t i = 0; i < pub->n; i++) {
        const catalog_chain *c = &pub->sources[i].chain;
        for (size_t j = 0; j < c->n; j++)
            if (table_pattern_matches(p, c->tables[j].schema,
                                      c->tables[j].table, c->tables[j].visible))
                return true;
    }
    return false;
}

/* Each pattern must match a published table (or a partitioned table above
 * one): a typo would otherwise copy nothing, or leave out nothing. */
static int check_pattern(const char *flag, const char *pattern,
                         const char *dbname, const database_ctype *db,
                         const published *pub, char *err, size_t errlen)
{
    table_pattern *p = table_pattern_compile(pattern, dbname, err, errlen);
    if (!p || !table_pattern_follow_database(p, db, err, errlen)) {
        table_pattern_free(p);
        return EXIT_BAD_INPUT;
    }
    bool found = matches_any(p, pub);
    table_pattern_free(p);
    if (found)
        return 0;
    snprintf(err, errlen,
             "%s \"%s\" matches no table that publication \"%s\" publishes "
             "(pgspout --list-tables --publication %s lists them)",
             flag, pattern, pub->publication, pub->publication);
    return EXIT_BAD_INPUT;
}

static int check_patterns(const pgspout_config *cfg, const database_ctype *db,
                          const published *pub, char *err, size_t errlen)
{
    char *dbname = conninfo_dbname(cfg->conninfo);
    int rc = 0;
    for (size_t i = 0; i < cfg->n_include && rc == 0; i++)
        rc = check_pattern("-t", cfg->include[i], dbname, db, pub, err, errlen);
    for (size_t i = 0; i < cfg->n_exclude && rc == 0; i++)
        rc = check_pattern("-T", cfg->exclude[i], dbname, db, pub, err, errlen);
    free(dbname);
    return rc;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The selected tables' quoted names (pointing into pub), as --list-tables
 * would list them for this filter; a filter that selects a partition
 * apart from its root is refused the same way. */
static int select_tables(const published *pub, const table_filter *filter,
                         const char ***tables, size_t *n, char *err,
                         size_t errlen)
{
    selection *sel = selection_new(filter, NULL, 0);
    char what[256];
    snprintf(what, sizeof what, "publication \"%s\"", pub->publication);
    *tables = xcalloc(pub->n + 1, sizeof **tables);
    *n = 0;
    int rc = 0;
    for (size_t i = 0; i < pub->n && rc == 0; i++) {
        const catalog_source *src = &pub->sources[i];
        if (pub->via_root &&
            !selection_check_partitions(sel, src, what, err, errlen))
            rc = EXIT_BAD_INPUT;
        else if (selection_global(sel, &src->chain))
            (*tables)[(*n)++] = src->chain.tables[0].quoted;
    }
    selection_free(sel);
    qsort(*tables, *n, sizeof **tables, compare_names);
    return rc;
}

/* ---- the where ---- */

/* EXPLAIN plans without running anything; the read-only transaction,
 * rolled back, also keeps a function folded at plan time from writing.
 * A parameter makes libpq use the extended protocol, which takes one
 * statement only. */
static int explain_where(PGconn *conn, const stop_state *stop,
                         const char *table, const char *where, char *err,
                         size_t errlen)
{
    strbuf sql = STRBUF_INIT, what = STRBUF_INIT;
    sbuf_appendf(&sql, "EXPLAIN SELECT $1::pg_catalog.int4 FROM %s WHERE (%s)",
                 table, where);
    sbuf_appendf(&what, "--where does not apply to %s", table);
    const char *params[] = {"1"};
    PGresult *res = ask(conn, stop, sql.data, 1, params, PGRES_TUPLES_OK,
                        what.data, err, errlen);
    sbuf_free(&sql);
    sbuf_free(&what);
    if (res) {
        PQclear(res);
        return 0;
    }
    return catalog_connection_usable(conn) ? EXIT_BAD_INPUT
                                           : EXIT_RUNTIME_FAILURE;
}

static int check_where(PGconn *conn, const stop_state *stop, const char *where,
                       const char *const *tables, size_t n, char *err,
                       size_t errlen)
{
    PGresult *res = ask(conn, stop, "BEGIN READ ONLY", 0, NULL,
                        PGRES_COMMAND_OK, "cannot check --where", err, errlen);
    if (!res)
        return EXIT_RUNTIME_FAILURE;
    PQclear(res);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = explain_where(conn, stop, tables[i], where, err, errlen);
    if (rc == EXIT_RUNTIME_FAILURE)
        return rc;
    /* The reason for a refused where stays in err. */
    char why[512];
    res = ask(conn, stop, "ROLLBACK", 0, NULL, PGRES_COMMAND_OK,
              "cannot end the --where check", why, sizeof why);
    if (!res) {
        snprintf(err, errlen, "%s", why);
        return EXIT_RUNTIME_FAILURE;
    }
    PQclear(res);
    return rc;
}

static void log_selected(const char *const *tables, size_t n)
{
    strbuf names = STRBUF_INIT;
    for (size_t i = 0; i < n && i < TABLES_NAMED; i++)
        sbuf_appendf(&names, "%s%s", i ? ", " : "", tables[i]);
    if (n > TABLES_NAMED)
        sbuf_appendf(&names, " and %zu more", n - TABLES_NAMED);
    log_info("the request selects %zu table%s: %s", n, n == 1 ? "" : "s",
             names.data);
    sbuf_free(&names);
}

int backfill_check(PGconn *conn, const stop_state *stop,
                   const pgspout_config *cfg, table_filter *filter, char *err,
                   size_t errlen)
{
    database_ctype db = {0};
    published pub = {0};
    const char **tables = NULL;
    size_t n = 0;
    int rc = check_server(conn, err, errlen);
    if (rc == 0)
        rc = check_slot(conn, stop, cfg->slot, err, errlen);
    if (rc == 0)
        rc = follow_collation(conn, stop, filter, &db, err, errlen);
    if (rc == 0)
        rc = load_published(conn, stop, cfg->publication, &pub, err, errlen);
    if (rc == 0)
        rc = select_tables(&pub, filter, &tables, &n, err, errlen);
    if (rc == 0)
        rc = check_patterns(cfg, &db, &pub, err, errlen);
    if (rc == 0 && n == 0) {
        snprintf(err, errlen,
                 "the patterns select no table: -T leaves out "
                 "every table -t matches");
        rc = EXIT_BAD_INPUT;
    }
    if (rc == 0 && cfg->backfill_where)
        rc = check_where(conn, stop, cfg->backfill_where, tables, n, err,
                         errlen);
    if (rc == 0)
        log_selected(tables, n);
    free(tables);
    published_free(&pub);
    catalog_database_ctype_free(&db);
    return rc;
}

int backfill_emit(PGconn *conn, const stop_state *stop,
                  const backfill_request *req, char *err, size_t errlen)
{
    char *json = backfill_request_json(req);
    const char *params[] = {json};
    PGresult *res = ask(conn, stop,
                        "SELECT pg_catalog.pg_logical_emit_message(true, "
                        "'" BACKFILL_MESSAGE_PREFIX
                        "', $1::pg_catalog.text)::pg_catalog.text",
                        1, params, PGRES_TUPLES_OK,
                        "cannot emit the backfill request", err, errlen);
    free(json);
    if (!res)
        return EXIT_RUNTIME_FAILURE;
    log_info("backfill %s requested for slot \"%s\" (message at %s)", req->id,
             req->slot, PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}
