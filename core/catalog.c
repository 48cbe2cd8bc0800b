#include "catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static void result_error(PGconn *conn, const char *what, char *err,
                         size_t errlen)
{
    const char *msg = PQerrorMessage(conn);
    size_t len = strlen(msg);
    while (len > 0 && msg[len - 1] == '\n')
        len--;
    snprintf(err, errlen, "%s: %.*s", what, (int)len, msg);
}

static PGresult *query(PGconn *conn, const char *sql, int nparams,
                       const char *const *params)
{
    return PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
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
        result_error(conn, "cannot list tables", err, errlen);
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
    int visible = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        visible = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return visible;
}

/* A type the built-in table does not know: follow domains to their base
 * type and arrays to their element type, as far as the catalog says. */
static value_type resolve_type(PGconn *conn, uint32_t oid, int depth)
{
    bool known;
    value_type vt = value_type_for_builtin(oid, &known);
    if (known || depth > 8)
        return vt;
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
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        char typtype = PQgetvalue(res, 0, 0)[0];
        uint32_t base = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
        uint32_t elem = (uint32_t)strtoul(PQgetvalue(res, 0, 2), NULL, 10);
        char category = PQgetvalue(res, 0, 3)[0];
        char delim = PQgetvalue(res, 0, 4)[0];
        if (typtype == 'd' && base != 0) {
            vt = resolve_type(conn, base, depth + 1);
        } else if (category == 'A' && elem != 0) {
            value_type ev = resolve_type(conn, elem, depth + 1);
            vt.kind = VK_ARRAY;
            vt.elem_kind = ev.kind == VK_ARRAY ? VK_TEXT : ev.kind;
            vt.delim = delim ? delim : ',';
        }
    }
    PQclear(res);
    return vt;
}

bool catalog_describe_columns(PGconn *conn, relation *rel, char *err,
                              size_t errlen)
{
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
        result_error(conn, "cannot describe column types", err, errlen);
        PQclear(res);
        return false;
    }
    for (int i = 0; i < rel->ncols; i++) {
        free(rel->cols[i].type_name);
        rel->cols[i].type_name = xstrdup(PQgetvalue(res, i, 0));
        rel->cols[i].vtype = resolve_type(conn, rel->cols[i].type_oid, 0);
    }
    PQclear(res);
    return true;
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
        result_error(conn, "cannot look up replication slot", err, errlen);
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
        result_error(conn, "cannot look up publication", err, errlen);
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
    res = PQexec(conn, sql.data);
    sbuf_free(&sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        result_error(conn, "cannot create publication", err, errlen);
    PQclear(res);
    return ok;
}

char *catalog_current_database(PGconn *conn)
{
    return xstrdup(PQdb(conn));
}

bool catalog_database_ctype(PGconn *conn, database_ctype *db, char *err,
                            size_t errlen)
{
    /* datlocprovider came in 15 (before, always libc); the ICU or
     * builtin locale is daticulocale in 15 and 16, datlocale from 17 */
    int version = PQserverVersion(conn);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT %s, d.datctype, %s, "
             "pg_catalog.pg_encoding_to_char(d.encoding) "
             "FROM pg_catalog.pg_database d "
             "WHERE d.datname = pg_catalog.current_database()",
             version >= 150000 ? "d.datlocprovider::text" : "'c'",
             version >= 170000   ? "d.datlocale"
             : version >= 150000 ? "d.daticulocale"
                                 : "NULL");
    PGresult *res = query(conn, sql, 0, NULL);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        result_error(conn, "cannot read the database's collation", err, errlen);
        PQclear(res);
        return false;
    }
    db->provider = PQgetvalue(res, 0, 0)[0];
    db->ctype = xstrdup(PQgetvalue(res, 0, 1));
    db->locale = PQgetisnull(res, 0, 2) ? NULL : xstrdup(PQgetvalue(res, 0, 2));
    db->encoding = xstrdup(PQgetvalue(res, 0, 3));
    PQclear(res);
    return true;
}

void catalog_database_ctype_free(database_ctype *db)
{
    free(db->ctype);
    free(db->locale);
    free(db->encoding);
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
