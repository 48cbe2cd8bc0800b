#include "catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"
#include "strbuf.h"

/* Catalog questions are small: a minute without an answer means the
 * server (or the network) is not answering at all. */
#define CATALOG_QUERY_TIMEOUT_MS 60000

/* Why the last query() returned no result ("" when it returned one). Only
 * the main thread asks the catalog. */
static char unanswered[256];
static bool unanswered_retryable;

static PGresult *query(PGconn *conn, const char *sql, int nparams,
                       const char *const *params)
{
    pq_outcome outcome;
    unanswered[0] = '\0';
    PGresult *res =
        pq_exec(conn, sql, nparams, params, CATALOG_QUERY_TIMEOUT_MS, &outcome,
                unanswered, sizeof unanswered);
    unanswered_retryable = outcome != PQ_STOPPED;
    return res;
}

/* Describes why res (the last query's result, maybe NULL) is not what was
 * asked for; *retryable (may be NULL) tells whether asking again, on a new
 * connection if this one broke, may work. */
static void result_error(PGconn *conn, const PGresult *res, const char *what,
                         char *err, size_t errlen, bool *retryable)
{
    bool again = false;
    if (!res) {
        snprintf(err, errlen, "%s: %s", what, unanswered);
        again = unanswered_retryable;
    } else {
        pq_copy_error(conn, what, err, errlen);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        again = PQstatus(conn) != CONNECTION_OK ||
                (state && pq_sqlstate_retryable(state));
    }
    if (retryable)
        *retryable = again;
}

bool catalog_connection_usable(PGconn *conn)
{
    /* A query that timed out or was abandoned leaves it busy for good. */
    return conn && PQstatus(conn) == CONNECTION_OK &&
           PQtransactionStatus(conn) != PQTRANS_ACTIVE;
}

bool catalog_list_tables(PGconn *conn, catalog_table **tables, size_t *count,
                         char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT n.nspname, c.relname, pg_catalog.pg_table_is_visible(c.oid), "
        "pg_catalog.quote_ident(n.nspname) || '.' || "
        "pg_catalog.quote_ident(c.relname) "
        "FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'";
    PGresult *res = query(conn, sql, 0, NULL);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        result_error(conn, res, "cannot list tables", err, errlen, NULL);
        PQclear(res);
        return false;
    }
    int n = PQntuples(res);
    *tables = xcalloc((size_t)n, sizeof **tables);
    for (int i = 0; i < n; i++) {
        (*tables)[i].schema = xstrdup(PQgetvalue(res, i, 0));
        (*tables)[i].table = xstrdup(PQgetvalue(res, i, 1));
        (*tables)[i].visible = PQgetvalue(res, i, 2)[0] == 't';
        (*tables)[i].quoted = xstrdup(PQgetvalue(res, i, 3));
    }
    *count = (size_t)n;
    PQclear(res);
    return true;
}

void catalog_tables_free(catalog_table *tables, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(tables[i].schema);
        free(tables[i].table);
        free(tables[i].quoted);
    }
    free(tables);
}

int catalog_relation_visible(PGconn *conn, uint32_t relid)
{
    char oid[16];
    snprintf(oid, sizeof oid, "%u", relid);
    const char *params[] = {oid};
    PGresult *res = query(conn,
                          "SELECT pg_catalog.pg_table_is_visible(c.oid) FROM "
                          "pg_catalog.pg_class c WHERE c.oid = $1::oid",
                          1, params);
    int visible = PQresultStatus(res) != PGRES_TUPLES_OK ? -2
                  : PQntuples(res) == 1 ? PQgetvalue(res, 0, 0)[0] == 't'
                                        : -1;
    PQclear(res);
    return visible;
}

/* A type the built-in table does not know: follow domains to their base
 * type and arrays to their element type, as far as the catalog says.
 * Returns NULL, or the failed query's result (to describe the failure): a
 * type guessed wrongly would change how its values are encoded. */
static PGresult *resolve_type(PGconn *conn, uint32_t oid, int depth,
                              value_type *vt, bool *failed)
{
    bool known;
    *vt = value_type_for_builtin(oid, &known);
    if (known || depth > 8)
        return NULL;
    char text[16];
    snprintf(text, sizeof text, "%u", oid);
    const char *params[] = {text};
    PGresult *res =
        query(conn,
              "SELECT t.typtype, t.typbasetype, t.typelem, t.typcategory, "
              "coalesce(e.typdelim, ',') FROM pg_catalog.pg_type t "
              "LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem "
              "WHERE t.oid = $1::oid",
              1, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        *failed = true;
        return res;
    }
    PGresult *failure = NULL;
    if (PQntuples(res) == 1) {
        char typtype = PQgetvalue(res, 0, 0)[0];
        uint32_t base = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
        uint32_t elem = (uint32_t)strtoul(PQgetvalue(res, 0, 2), NULL, 10);
        char category = PQgetvalue(res, 0, 3)[0];
        char delim = PQgetvalue(res, 0, 4)[0];
        if (typtype == 'd' && base != 0) {
            failure = resolve_type(conn, base, depth + 1, vt, failed);
        } else if (category == 'A' && elem != 0) {
            value_type ev;
            failure = resolve_type(conn, elem, depth + 1, &ev, failed);
            vt->kind = VK_ARRAY;
            vt->elem_kind = ev.kind == VK_ARRAY ? VK_TEXT : ev.kind;
            vt->delim = delim ? delim : ',';
        }
    }
    PQclear(res);
    return failure;
}

static bool describe_types(PGconn *conn, relation *rel, char *err,
                           size_t errlen, bool *retryable)
{
    for (int i = 0; i < rel->ncols; i++) {
        bool failed = false;
        PGresult *res = resolve_type(conn, rel->cols[i].type_oid, 0,
                                     &rel->cols[i].vtype, &failed);
        if (failed) {
            result_error(conn, res, "cannot look up a column type", err, errlen,
                         retryable);
            PQclear(res);
            return false;
        }
    }
    return true;
}

bool catalog_describe_columns(PGconn *conn, relation *rel, char *err,
                              size_t errlen, bool *retryable)
{
    if (retryable)
        *retryable = false;
    if (rel->ncols == 0)
        return true;
    strbuf oids = STRBUF_INIT, typmods = STRBUF_INIT;
    sbuf_append_char(&oids, '{');
    sbuf_append_char(&typmods, '{');
    for (int i = 0; i < rel->ncols; i++) {
        sbuf_appendf(&oids, "%s%u", i ? "," : "", rel->cols[i].type_oid);
        sbuf_appendf(&typmods, "%s%d", i ? "," : "", rel->cols[i].typmod);
    }
    sbuf_append_char(&oids, '}');
    sbuf_append_char(&typmods, '}');
    const char *params[] = {oids.data, typmods.data};
    PGresult *res = query(
        conn,
        "SELECT pg_catalog.format_type(u.t, nullif(u.m, -1)) FROM "
        "unnest($1::pg_catalog.oid[], $2::pg_catalog.int4[]) WITH ORDINALITY "
        "AS u(t, m, o) ORDER BY u.o",
        2, params);
    sbuf_free(&oids);
    sbuf_free(&typmods);
    if (PQresultStatus(res) != PGRES_TUPLES_OK ||
        PQntuples(res) != rel->ncols) {
        result_error(conn, res, "cannot describe column types", err, errlen,
                     retryable);
        PQclear(res);
        return false;
    }
    for (int i = 0; i < rel->ncols; i++) {
        free(rel->cols[i].type_name);
        rel->cols[i].type_name = xstrdup(PQgetvalue(res, i, 0));
    }
    PQclear(res);
    return describe_types(conn, rel, err, errlen, retryable);
}

bool catalog_slot_exists(PGconn *conn, const char *slot, bool *exists,
                         uint64_t *confirmed, char *err, size_t errlen)
{
    const char *params[] = {slot};
    PGresult *res =
        query(conn,
              "SELECT plugin, coalesce(confirmed_flush_lsn - '0/0', 0)::text, "
              "two_phase FROM pg_catalog.pg_replication_slots "
              "WHERE slot_name = $1",
              1, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        result_error(conn, res, "cannot look up replication slot", err, errlen,
                     NULL);
        PQclear(res);
        return false;
    }
    *exists = PQntuples(res) > 0;
    *confirmed = *exists ? strtoull(PQgetvalue(res, 0, 1), NULL, 10) : 0;
    bool ok = true;
    if (*exists && PQgetvalue(res, 0, 2)[0] == 't') {
        /* Such a slot makes the server send prepared transactions (Begin
         * Prepare) even to a protocol 1 client, before they commit. */
        snprintf(err, errlen,
                 "replication slot \"%s\" was created with two_phase = true; "
                 "pgspout needs a slot without two-phase decoding (create it "
                 "with --create-slot or pg_create_logical_replication_slot("
                 "name, 'pgoutput'))",
                 slot);
        ok = false;
    } else if (*exists && strcmp(PQgetvalue(res, 0, 0), "pgoutput") != 0) {
        snprintf(err, errlen,
                 "replication slot \"%s\" uses output plugin \"%s\", not "
                 "pgoutput",
                 slot, PQgetvalue(res, 0, 0));
        ok = false;
    }
    PQclear(res);
    return ok;
}

bool catalog_ensure_publication(PGconn *conn, const char *publication,
                                bool create, char *err, size_t errlen)
{
    const char *params[] = {publication};
    PGresult *res = query(
        conn, "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1", 1,
        params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        result_error(conn, res, "cannot look up publication", err, errlen,
                     NULL);
        PQclear(res);
        return false;
    }
    bool exists = PQntuples(res) > 0;
    PQclear(res);
    if (exists)
        return true;
    if (!create) {
        snprintf(err, errlen,
                 "publication \"%s\" does not exist (--create-slot creates "
                 "it FOR ALL TABLES)",
                 publication);
        return false;
    }
    char *ident = PQescapeIdentifier(conn, publication, strlen(publication));
    strbuf sql = STRBUF_INIT;
    sbuf_appendf(&sql, "CREATE PUBLICATION %s FOR ALL TABLES", ident);
    PQfreemem(ident);
    res = query(conn, sql.data, 0, NULL);
    sbuf_free(&sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        result_error(conn, res, "cannot create publication", err, errlen, NULL);
    PQclear(res);
    return ok;
}

char *catalog_current_database(PGconn *conn)
{
    return xstrdup(PQdb(conn));
}

char **catalog_search_path(PGconn *conn, size_t *count)
{
    PGresult *res =
        query(conn, "SELECT unnest(pg_catalog.current_schemas(true))", 0, NULL);
    *count = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return NULL;
    }
    int n = PQntuples(res);
    char **schemas = xcalloc((size_t)n, sizeof *schemas);
    for (int i = 0; i < n; i++)
        schemas[i] = xstrdup(PQgetvalue(res, i, 0));
    *count = (size_t)n;
    PQclear(res);
    return schemas;
}
