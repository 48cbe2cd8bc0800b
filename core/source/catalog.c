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

static PGresult *query(PGconn *conn, const stop_state *stop, const char *sql,
                       int nparams, const char *const *params)
{
    pq_outcome outcome;
    unanswered[0] = '\0';
    PGresult *res =
        pq_exec(conn, sql, nparams, params, CATALOG_QUERY_TIMEOUT_MS, stop,
                &outcome, unanswered, sizeof unanswered);
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

/* Schemas whose tables can be published (never the system's own). */
#define USER_SCHEMA(n)                                                         \
    n ".nspname NOT IN ('pg_catalog', 'information_schema') AND " n            \
      ".nspname !~ '^pg_toast' AND " n ".nspname !~ '^pg_temp_'"

/* Every chain the sources need, one row per member: per source (src) its
 * own chain (k = 0), then each leaf partition's (k = 1, by name), each
 * nearest member first. pg_partition_ancestors() returns nothing for a
 * table that is no partition, so the relation itself is added as the first
 * member; pg_partition_tree() of a plain table is that table alone. The %s
 * is a query giving the sources' OIDs. */
static const char sources_sql[] =
    "WITH targets(src) AS (%s), "
    "members AS ("
    " SELECT t.src, 0 AS k, t.src AS rel, ''::text AS sortkey FROM targets t"
    " UNION ALL"
    " SELECT t.src, 1, l.oid, n.nspname || '.' || l.relname FROM targets t"
    " CROSS JOIN LATERAL pg_catalog.pg_partition_tree(t.src) p"
    " JOIN pg_catalog.pg_class l ON l.oid = p.relid::pg_catalog.oid"
    " JOIN pg_catalog.pg_namespace n ON n.oid = l.relnamespace"
    " WHERE p.isleaf AND l.oid <> t.src AND l.relkind = 'r'"
    " AND l.relpersistence = 'p'), "
    "chains AS ("
    " SELECT m.*, 0::pg_catalog.int8 AS ord, m.rel AS member FROM members m"
    " UNION ALL"
    " SELECT m.*, a.ord, a.relid::pg_catalog.oid FROM members m"
    " CROSS JOIN LATERAL pg_catalog.pg_partition_ancestors(m.rel)"
    " WITH ORDINALITY AS a(relid, ord)"
    " WHERE a.relid::pg_catalog.oid <> m.rel) "
    "SELECT c.src, c.k, c.rel, n.nspname, r.relname,"
    " pg_catalog.pg_table_is_visible(r.oid),"
    " pg_catalog.quote_ident(n.nspname) || '.' ||"
    " pg_catalog.quote_ident(r.relname), r.oid "
    "FROM chains c JOIN pg_catalog.pg_class r ON r.oid = c.member "
    "JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace "
    "ORDER BY c.src, c.k, c.sortkey, c.rel, c.ord";

enum {
    SRC_COL_SRC,
    SRC_COL_KIND,
    SRC_COL_REL,
    SRC_COL_SCHEMA,
    SRC_COL_TABLE,
    SRC_COL_VISIBLE,
    SRC_COL_QUOTED,
    SRC_COL_OID
};

static void chain_append(catalog_chain *chain, const PGresult *res, int row)
{
    chain->tables =
        xrealloc(chain->tables, (chain->n + 1) * sizeof *chain->tables);
    catalog_table *t = &chain->tables[chain->n++];
    t->schema = xstrdup(PQgetvalue(res, row, SRC_COL_SCHEMA));
    t->table = xstrdup(PQgetvalue(res, row, SRC_COL_TABLE));
    t->visible = PQgetvalue(res, row, SRC_COL_VISIBLE)[0] == 't';
    t->quoted = xstrdup(PQgetvalue(res, row, SRC_COL_QUOTED));
    t->oid = (uint32_t)strtoul(PQgetvalue(res, row, SRC_COL_OID), NULL, 10);
}

/* Groups the rows of sources_sql into sources, their chains and leaves. */
static catalog_source *parse_sources(const PGresult *res, size_t *count)
{
    int rows = PQntuples(res);
    /* Never more sources than rows: one allocation, even for every table
     * of a large database. */
    catalog_source *sources = xcalloc(rows ? (size_t)rows : 1, sizeof *sources);
    size_t n = 0;
    const char *src = NULL, *leaf = NULL;
    for (int row = 0; row < rows; row++) {
        const char *row_src = PQgetvalue(res, row, SRC_COL_SRC);
        if (!src || strcmp(src, row_src) != 0) {
            n++;
            src = row_src;
            leaf = NULL;
        }
        catalog_source *s = &sources[n - 1];
        catalog_chain *chain = &s->chain;
        if (PQgetvalue(res, row, SRC_COL_KIND)[0] == '1') {
            const char *row_leaf = PQgetvalue(res, row, SRC_COL_REL);
            if (!leaf || strcmp(leaf, row_leaf) != 0) {
                s->leaves =
                    xrealloc(s->leaves, (s->nleaves + 1) * sizeof *s->leaves);
                memset(&s->leaves[s->nleaves++], 0, sizeof *s->leaves);
                leaf = row_leaf;
            }
            chain = &s->leaves[s->nleaves - 1];
        }
        chain_append(chain, res, row);
    }
    *count = n;
    return sources;
}

static bool query_sources(PGconn *conn, const stop_state *stop,
                          const char *targets, int nparams,
                          const char *const *params, catalog_source **sources,
                          size_t *count, char *err, size_t errlen,
                          bool *retryable)
{
    strbuf sql = STRBUF_INIT;
    sbuf_appendf(&sql, sources_sql, targets);
    PGresult *res = query(conn, stop, sql.data, nparams, params);
    sbuf_free(&sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        result_error(conn, res, "cannot read partitions from the catalog", err,
                     errlen, retryable);
        PQclear(res);
        return false;
    }
    *sources = parse_sources(res, count);
    PQclear(res);
    return true;
}

bool catalog_relation_source(PGconn *conn, const stop_state *stop,
                             uint32_t relid, catalog_source *src, bool *found,
                             char *err, size_t errlen, bool *retryable)
{
    char oid[16];
    snprintf(oid, sizeof oid, "%u", relid);
    const char *params[] = {oid};
    catalog_source *sources;
    size_t n;
    memset(src, 0, sizeof *src);
    if (!query_sources(conn, stop, "SELECT $1::pg_catalog.oid", 1, params,
                       &sources, &n, err, errlen, retryable))
        return false;
    *found = n == 1;
    if (*found) {
        *src = sources[0]; /* its contents move out; the array goes */
        n = 0;
    }
    catalog_sources_free(sources, n);
    return true;
}

bool catalog_publication_sources(PGconn *conn, const stop_state *stop,
                                 const char *publication, bool exists,
                                 catalog_source **sources, size_t *count,
                                 char *err, size_t errlen)
{
    /* A publication lists only tables it can publish: permanent ones. */
    static const char published[] =
        "SELECT c.oid FROM pg_catalog.pg_publication_tables p "
        "JOIN pg_catalog.pg_namespace n ON n.nspname = p.schemaname "
        "JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid "
        "AND c.relname = p.tablename "
        "WHERE p.pubname = $1 AND c.relkind IN ('r', 'p') "
        "AND c.relpersistence = 'p' AND " USER_SCHEMA("n");
    /* FOR ALL TABLES via the root: every permanent table that is no
     * partition; partitions are published under their roots. */
    static const char all_roots[] =
        "SELECT c.oid FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p' "
        "AND NOT c.relispartition AND " USER_SCHEMA("n");
    const char *params[] = {publication};
    return query_sources(conn, stop, exists ? published : all_roots,
                         exists ? 1 : 0, exists ? params : NULL, sources, count,
                         err, errlen, NULL);
}

static void chain_clear(catalog_chain *chain)
{
    for (size_t i = 0; i < chain->n; i++) {
        free(chain->tables[i].schema);
        free(chain->tables[i].table);
        free(chain->tables[i].quoted);
    }
    free(chain->tables);
    chain->tables = NULL;
    chain->n = 0;
}

void catalog_source_clear(catalog_source *src)
{
    chain_clear(&src->chain);
    for (size_t i = 0; i < src->nleaves; i++)
        chain_clear(&src->leaves[i]);
    free(src->leaves);
    src->leaves = NULL;
    src->nleaves = 0;
}

void catalog_sources_free(catalog_source *sources, size_t count)
{
    for (size_t i = 0; i < count; i++)
        catalog_source_clear(&sources[i]);
    free(sources);
}

bool catalog_publication_info(PGconn *conn, const stop_state *stop,
                              const char *publication, bool *exists,
                              bool *via_root, char *err, size_t errlen,
                              bool *retryable)
{
    const char *params[] = {publication};
    PGresult *res = query(conn, stop,
                          "SELECT pubviaroot FROM pg_catalog.pg_publication "
                          "WHERE pubname = $1",
                          1, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        result_error(conn, res, "cannot look up publication", err, errlen,
                     retryable);
        PQclear(res);
        return false;
    }
    *exists = PQntuples(res) > 0;
    *via_root = *exists && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return true;
}

/* A type the built-in table does not know: follow domains to their base
 * type and arrays to their element type, as far as the catalog says.
 * Returns NULL, or the failed query's result (to describe the failure): a
 * type guessed wrongly would change how its values are encoded. */
static PGresult *resolve_type(PGconn *conn, const stop_state *stop,
                              uint32_t oid, int depth, value_type *vt,
                              bool *failed)
{
    bool known;
    *vt = value_type_for_builtin(oid, &known);
    if (known || depth > 8)
        return NULL;
    char text[16];
    snprintf(text, sizeof text, "%u", oid);
    const char *params[] = {text};
    PGresult *res =
        query(conn, stop,
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
            failure = resolve_type(conn, stop, base, depth + 1, vt, failed);
        } else if (category == 'A' && elem != 0) {
            /* The element type may be an array itself when it is a domain
             * over an array type. */
            value_type ev;
            failure = resolve_type(conn, stop, elem, depth + 1, &ev, failed);
            *vt = value_type_array_of(ev, delim);
        }
    }
    PQclear(res);
    return failure;
}

static bool describe_types(PGconn *conn, const stop_state *stop, relation *rel,
                           char *err, size_t errlen, bool *retryable)
{
    for (int i = 0; i < rel->ncols; i++) {
        bool failed = false;
        PGresult *res = resolve_type(conn, stop, rel->cols[i].type_oid, 0,
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

/* Which columns are generated: a publication publishes them from
 * PostgreSQL 18 on (publish_generated_columns = stored), never before. */
static bool mark_generated(PGconn *conn, const stop_state *stop, relation *rel,
                           char *err, size_t errlen, bool *retryable)
{
    if (PQserverVersion(conn) < 180000)
        return true;
    char oid[16];
    snprintf(oid, sizeof oid, "%u", rel->oid);
    const char *params[] = {oid};
    PGresult *res = query(conn, stop,
                          "SELECT attname FROM pg_catalog.pg_attribute WHERE "
                          "attrelid = $1::pg_catalog.oid AND attgenerated <> "
                          "'' AND NOT attisdropped",
                          1, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        result_error(conn, res, "cannot look up generated columns", err, errlen,
                     retryable);
        PQclear(res);
        return false;
    }
    for (int r = 0; r < PQntuples(res); r++)
        for (int i = 0; i < rel->ncols; i++)
            if (strcmp(rel->cols[i].name, PQgetvalue(res, r, 0)) == 0)
                rel->cols[i].generated = true;
    PQclear(res);
    return true;
}

bool catalog_describe_columns(PGconn *conn, const stop_state *stop,
                              relation *rel, char *err, size_t errlen,
                              bool *retryable)
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
        conn, stop,
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
    return describe_types(conn, stop, rel, err, errlen, retryable) &&
           mark_generated(conn, stop, rel, err, errlen, retryable);
}

bool catalog_slot_exists(PGconn *conn, const stop_state *stop, const char *slot,
                         bool *exists, uint64_t *confirmed, char *err,
                         size_t errlen)
{
    const char *params[] = {slot};
    PGresult *res =
        query(conn, stop,
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

bool catalog_ensure_publication(PGconn *conn, const stop_state *stop,
                                const char *publication, bool create,
                                const char *generated, char *err, size_t errlen)
{
    bool exists, via_root;
    if (!catalog_publication_info(conn, stop, publication, &exists, &via_root,
                                  err, errlen, NULL))
        return false;
    if (exists)
        return true;
    if (!create) {
        snprintf(err, errlen,
                 "publication \"%s\" does not exist (--create-slot creates "
                 "it FOR ALL TABLES WITH (publish_via_partition_root = true))",
                 publication);
        return false;
    }
    /* Via the root: a partitioned table's changes carry its name, as most
     * consumers of a partitioned table want. */
    char *ident = PQescapeIdentifier(conn, publication, strlen(publication));
    strbuf sql = STRBUF_INIT;
    sbuf_appendf(&sql,
                 "CREATE PUBLICATION %s FOR ALL TABLES "
                 "WITH (publish_via_partition_root = true",
                 ident);
    /* The option exists from 18 on; its values are the setting's choices. */
    if (PQserverVersion(conn) >= 180000 && generated)
        sbuf_appendf(&sql, ", publish_generated_columns = %s", generated);
    sbuf_append_char(&sql, ')');
    PQfreemem(ident);
    PGresult *res = query(conn, stop, sql.data, 0, NULL);
    sbuf_free(&sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        result_error(conn, res, "cannot create publication", err, errlen, NULL);
    PQclear(res);
    return ok;
}

bool catalog_database_ctype(PGconn *conn, const stop_state *stop,
                            database_ctype *db, char *err, size_t errlen)
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
    PGresult *res = query(conn, stop, sql, 0, NULL);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        result_error(conn, res, "cannot read the database's collation", err,
                     errlen, NULL);
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

char **catalog_search_path(PGconn *conn, const stop_state *stop, size_t *count)
{
    PGresult *res = query(
        conn, stop, "SELECT unnest(pg_catalog.current_schemas(true))", 0, NULL);
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
