#include "backfill_table.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Catalog questions are small; a chunk read is bounded elsewhere. */
#define TABLE_QUERY_TIMEOUT_MS 60000

PGresult *bf_exec(PGconn *conn, const stop_state *stop, const char *sql,
                  int nparams, const char *const *params, ExecStatusType want,
                  const char *what, char *err, size_t errlen, bool *retryable)
{
    char why[512];
    pq_outcome outcome;
    PGresult *res = nparams < 0 ? pq_exec_one(conn, sql, TABLE_QUERY_TIMEOUT_MS,
                                              stop, &outcome, why, sizeof why)
                                : pq_exec(conn, sql, nparams, params,
                                          TABLE_QUERY_TIMEOUT_MS, stop,
                                          &outcome, why, sizeof why);
    bool again = false;
    if (!res) {
        snprintf(err, errlen, "%s: %s", what, why);
        again = outcome != PQ_STOPPED;
    } else if (PQresultStatus(res) != want) {
        pq_copy_error(conn, what, err, errlen);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        again = PQstatus(conn) != CONNECTION_OK ||
                (state && pq_sqlstate_retryable(state));
        PQclear(res);
        res = NULL;
    }
    if (retryable)
        *retryable = again;
    return res;
}

/* ---- the chunk key ---- */

int bf_choose_chunk_key(char replident, const bf_index *indexes, size_t n)
{
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        const bf_index *x = &indexes[i];
        if (!x->usable)
            continue;
        /* Deletes carry only the replica identity index's columns. */
        if (replident == 'i') {
            if (x->replident)
                return (int)i;
            continue;
        }
        if (x->primary)
            return (int)i;
        if (best < 0 || x->nkey < indexes[best].nkey ||
            (x->nkey == indexes[best].nkey &&
             strcmp(x->name, indexes[best].name) < 0))
            best = (int)i;
    }
    return replident == 'i' ? -1 : best;
}

/* ---- loading ---- */

void bf_table_info_clear(bf_table_info *info)
{
    free(info->schema);
    free(info->table);
    free(info->quoted);
    for (int i = 0; i < info->ncols; i++)
        free(info->cols[i].name);
    free(info->cols);
    for (int i = 0; i < info->nkey; i++) {
        free(info->key[i].type_name);
        free(info->key[i].collation);
    }
    free(info->key);
    free(info->key_desc);
    free(info->row_filter);
    memset(info, 0, sizeof *info);
}

/* The tables holding a relation's rows: its leaf partitions, or itself
 * (pg_partition_tree() lists nothing for a table that is no partition). */
#define LEAVES_OF(rel)                                                         \
    " pg_catalog.pg_class l WHERE l.relkind <> 'p' AND l.oid IN"               \
    " (SELECT p.relid FROM pg_catalog.pg_partition_tree(" rel ") p"            \
    " UNION ALL SELECT " rel ")"

static const char relation_sql[] =
    "SELECT c.relkind, c.relreplident, n.nspname, c.relname,"
    " pg_catalog.quote_ident(n.nspname) || '.' ||"
    " pg_catalog.quote_ident(c.relname),"
    " (SELECT CASE WHEN bool_and(l.reltuples < 0) THEN -1"
    "  ELSE sum(greatest(l.reltuples, 0)) END::pg_catalog.int8"
    "  FROM" LEAVES_OF(
        "c.oid") "),"
                 " (SELECT sum(l.reltuples) / greatest(max(l.relpages), 1)"
                 "  FROM" LEAVES_OF(
                     "c.oid") " AND l.reltuples > 0)::pg_catalog.float8 "
                              "FROM pg_catalog.pg_class c "
                              "JOIN pg_catalog.pg_namespace n ON n.oid = "
                              "c.relnamespace "
                              "WHERE c.oid = $1::pg_catalog.oid";

static bool load_relation(PGconn *conn, const stop_state *stop, const char *oid,
                          bf_table_info *info, bool *gone, char *err,
                          size_t errlen, bool *retryable)
{
    const char *params[] = {oid};
    PGresult *res =
        bf_exec(conn, stop, relation_sql, 1, params, PGRES_TUPLES_OK,
                "cannot describe the table", err, errlen, retryable);
    if (!res)
        return false;
    *gone = PQntuples(res) == 0;
    if (*gone) {
        snprintf(err, errlen, "table with OID %s no longer exists", oid);
    } else {
        info->partitioned = PQgetvalue(res, 0, 0)[0] == 'p';
        info->replident = PQgetvalue(res, 0, 1)[0];
        info->schema = xstrdup(PQgetvalue(res, 0, 2));
        info->table = xstrdup(PQgetvalue(res, 0, 3));
        info->quoted = xstrdup(PQgetvalue(res, 0, 4));
        info->rows_estimated = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
        info->rows_per_block =
            PQgetisnull(res, 0, 6) ? 0 : strtod(PQgetvalue(res, 0, 6), NULL);
    }
    PQclear(res);
    return !*gone;
}

/* The columns the stream's events carry. attnames (15+) is the
 * publication's column list, or every column when it has none; before 18
 * pgoutput never sends a generated column. */
static bool load_columns(PGconn *conn, const stop_state *stop, const char *oid,
                         const char *publication, bf_table_info *info,
                         bool *gone, char *err, size_t errlen, bool *retryable)
{
    int version = PQserverVersion(conn);
    char sql[1600];
    snprintf(
        sql, sizeof sql,
        "WITH pub AS (SELECT %s AS attnames, %s AS rowfilter"
        " FROM pg_catalog.pg_publication_tables"
        " WHERE pubname = $2 AND schemaname = $3 AND tablename = $4) "
        "SELECT a.attname, a.atttypid, a.atttypmod, pub.rowfilter,"
        " CASE $5 WHEN 'f' THEN true WHEN 'n' THEN false ELSE EXISTS ("
        "  SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = a.attrelid"
        "  AND CASE $5 WHEN 'i' THEN i.indisreplident ELSE i.indisprimary END"
        "  AND a.attnum = ANY (i.indkey::pg_catalog.int2[])) END "
        "FROM pub, pg_catalog.pg_attribute a "
        "WHERE a.attrelid = $1::pg_catalog.oid AND a.attnum > 0 "
        "AND NOT a.attisdropped %s "
        "ORDER BY a.attnum",
        version >= 150000 ? "attnames" : "NULL::pg_catalog.name[]",
        version >= 150000 ? "rowfilter" : "NULL::pg_catalog.text",
        version >= 180000 ? "AND a.attname = ANY (pub.attnames)"
        : version >= 150000
            ? "AND a.attgenerated = '' AND a.attname = ANY (pub.attnames)"
            : "AND a.attgenerated = ''");
    char replident[2] = {info->replident, '\0'};
    const char *params[] = {oid, publication, info->schema, info->table,
                            replident};
    PGresult *res =
        bf_exec(conn, stop, sql, 5, params, PGRES_TUPLES_OK,
                "cannot read the table's columns", err, errlen, retryable);
    if (!res)
        return false;
    int n = PQntuples(res);
    *gone = n == 0;
    if (*gone)
        snprintf(err, errlen, "table %s is not published by publication %s",
                 info->quoted, publication);
    info->cols = xcalloc(n ? (size_t)n : 1, sizeof *info->cols);
    for (int i = 0; i < n; i++) {
        bf_column *c = &info->cols[info->ncols++];
        c->name = xstrdup(PQgetvalue(res, i, 0));
        c->type_oid = (uint32_t)strtoul(PQgetvalue(res, i, 1), NULL, 10);
        c->typmod = (int32_t)strtol(PQgetvalue(res, i, 2), NULL, 10);
        c->key = PQgetvalue(res, i, 4)[0] == 't';
        if (i == 0 && !PQgetisnull(res, 0, 3))
            info->row_filter = xstrdup(PQgetvalue(res, 0, 3));
    }
    PQclear(res);
    return !*gone;
}

static int column_index(const bf_table_info *info, const char *name)
{
    for (int i = 0; i < info->ncols; i++)
        if (strcmp(info->cols[i].name, name) == 0)
            return i;
    return -1;
}

/* Each unique index with its key columns (name, type without typmod,
 * NOT NULL, collation quoted or ''), one row per column. */
static const char indexes_sql[] =
    "SELECT pg_catalog.quote_ident(ci.relname), i.indisprimary,"
    " i.indisreplident, i.indimmediate AND i.indisvalid AND"
    " i.indpred IS NULL AND i.indexprs IS NULL, k.o, a.attname,"
    " pg_catalog.format_type(a.atttypid, NULL), a.attnotnull,"
    " coalesce((SELECT pg_catalog.quote_ident(cn.nspname) || '.' ||"
    "  pg_catalog.quote_ident(co.collname) FROM pg_catalog.pg_collation co"
    "  JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace"
    "  WHERE co.oid = k.coll), '') "
    "FROM pg_catalog.pg_index i "
    "JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid "
    "CROSS JOIN LATERAL unnest(i.indkey::pg_catalog.int2[],"
    " i.indcollation::pg_catalog.oid[]) WITH ORDINALITY AS k(attnum, coll, o) "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid"
    " AND a.attnum = k.attnum "
    "WHERE i.indrelid = $1::pg_catalog.oid AND i.indisunique"
    " AND k.o <= i.indnkeyatts "
    "ORDER BY ci.relname, k.o";

/* Rows [first, end) of indexes_sql describe one index. */
static void index_from_rows(const bf_table_info *info, PGresult *res, int first,
                            int end, bf_index *x)
{
    x->name = PQgetvalue(res, first, 0);
    x->primary = PQgetvalue(res, first, 1)[0] == 't';
    x->replident = PQgetvalue(res, first, 2)[0] == 't';
    x->usable = PQgetvalue(res, first, 3)[0] == 't';
    x->nkey = end - first;
    for (int r = first; r < end; r++)
        x->usable = x->usable && PQgetvalue(res, r, 7)[0] == 't' &&
                    column_index(info, PQgetvalue(res, r, 5)) >= 0;
}

static void set_key(bf_table_info *info, PGresult *res, int first, int end)
{
    info->nkey = end - first;
    info->key = xcalloc((size_t)info->nkey, sizeof *info->key);
    strbuf desc = STRBUF_INIT;
    sbuf_appendf(&desc, "%s %s (",
                 PQgetvalue(res, first, 1)[0] == 't' ? "primary key"
                                                     : "unique index",
                 PQgetvalue(res, first, 0));
    for (int r = first; r < end; r++) {
        bf_key_column *k = &info->key[r - first];
        k->col = column_index(info, PQgetvalue(res, r, 5));
        k->type_name = xstrdup(PQgetvalue(res, r, 6));
        const char *coll = PQgetvalue(res, r, 8);
        k->collation = *coll ? xstrdup(coll) : NULL;
        sbuf_appendf(&desc, "%s%s", r > first ? ", " : "",
                     info->cols[k->col].name);
    }
    sbuf_append_char(&desc, ')');
    info->key_desc = sbuf_detach(&desc);
}

static bool load_chunk_key(PGconn *conn, const stop_state *stop,
                           const char *oid, bf_table_info *info, char *err,
                           size_t errlen, bool *retryable)
{
    const char *params[] = {oid};
    PGresult *res =
        bf_exec(conn, stop, indexes_sql, 1, params, PGRES_TUPLES_OK,
                "cannot read the table's indexes", err, errlen, retryable);
    if (!res)
        return false;
    int rows = PQntuples(res);
    bf_index *indexes = xcalloc((size_t)rows + 1, sizeof *indexes);
    int *starts = xcalloc((size_t)rows + 2, sizeof *starts);
    size_t n = 0;
    for (int r = 0; r < rows; r++) {
        if (r > 0 &&
            strcmp(PQgetvalue(res, r, 0), PQgetvalue(res, r - 1, 0)) == 0)
            continue;
        starts[n++] = r;
    }
    starts[n] = rows;
    for (size_t i = 0; i < n; i++)
        index_from_rows(info, res, starts[i], starts[i + 1], &indexes[i]);
    int chosen = bf_choose_chunk_key(info->replident, indexes, n);
    if (chosen >= 0)
        set_key(info, res, starts[chosen], starts[chosen + 1]);
    else
        info->key_desc = xstrdup("ctid ranges (no usable unique key)");
    free(indexes);
    free(starts);
    PQclear(res);
    return true;
}

bool bf_table_info_load(PGconn *conn, const stop_state *stop, uint32_t oid,
                        const char *publication, bf_table_info *info,
                        bool *gone, char *err, size_t errlen, bool *retryable)
{
    memset(info, 0, sizeof *info);
    info->oid = oid;
    char text[16];
    snprintf(text, sizeof text, "%u", oid);
    *gone = false;
    bool ok =
        load_relation(conn, stop, text, info, gone, err, errlen, retryable) &&
        load_columns(conn, stop, text, publication, info, gone, err, errlen,
                     retryable) &&
        load_chunk_key(conn, stop, text, info, err, errlen, retryable);
    if (!ok)
        bf_table_info_clear(info);
    return ok;
}

bool bf_table_blocks(PGconn *conn, const stop_state *stop, uint32_t oid,
                     uint64_t *blocks, char *err, size_t errlen,
                     bool *retryable)
{
    char text[16];
    snprintf(text, sizeof text, "%u", oid);
    const char *params[] = {text};
    PGresult *res = bf_exec(
        conn, stop,
        "SELECT coalesce(max(pg_catalog.pg_relation_size(l.oid) /"
        " pg_catalog.current_setting('block_size')::pg_catalog.int8), 0) "
        "FROM" LEAVES_OF("$1::pg_catalog.oid"),
        1, params, PGRES_TUPLES_OK, "cannot read the table's size", err, errlen,
        retryable);
    if (!res)
        return false;
    *blocks = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return true;
}

/* ---- SQL ---- */

char *bf_table_spill_header(const bf_table_info *info)
{
    json_t *cols = json_array(), *key = json_array();
    for (int i = 0; i < info->ncols; i++)
        json_array_append_new(
            cols,
            json_pack("{s s s I s i s b}", "name", info->cols[i].name, "type",
                      (json_int_t)info->cols[i].type_oid, "typmod",
                      (int)info->cols[i].typmod, "key", info->cols[i].key));
    for (int i = 0; i < info->nkey; i++)
        json_array_append_new(key, json_integer(info->key[i].col));
    char replident[2] = {info->replident, '\0'};
    json_t *root = json_pack("{s i s I s s s s s s s o s o}", "v", 1, "oid",
                             (json_int_t)info->oid, "schema", info->schema,
                             "table", info->table, "replident", replident,
                             "columns", cols, "chunk_key", key);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return xnonnull(text);
}

static void append_ident(PGconn *conn, strbuf *sql, const char *name)
{
    char *q = PQescapeIdentifier(conn, name, strlen(name));
    sbuf_append_str(sql, q ? q : "\"\"");
    PQfreemem(q);
}

static void append_key_columns(PGconn *conn, strbuf *sql,
                               const bf_table_info *info)
{
    for (int i = 0; i < info->nkey; i++) {
        const bf_key_column *k = &info->key[i];
        if (i)
            sbuf_append_str(sql, ", ");
        append_ident(conn, sql, info->cols[k->col].name);
        if (k->collation)
            sbuf_appendf(sql, " COLLATE %s", k->collation);
    }
}

static void append_key_values(PGconn *conn, strbuf *sql,
                              const bf_table_info *info, const bf_key *k)
{
    for (int i = 0; i < info->nkey && (size_t)i < k->n; i++) {
        char *lit = PQescapeLiteral(conn, k->v[i], strlen(k->v[i]));
        sbuf_appendf(sql, "%s%s::%s", i ? ", " : "", lit ? lit : "NULL",
                     info->key[i].type_name);
        PQfreemem(lit);
    }
}

/* (key columns) OP (values), compared by the index's collations. */
static void append_key_bound(PGconn *conn, strbuf *sql,
                             const bf_table_info *info, const char *op,
                             const bf_key *k)
{
    sbuf_append_str(sql, " AND (");
    append_key_columns(conn, sql, info);
    sbuf_appendf(sql, ") %s (", op);
    append_key_values(conn, sql, info, k);
    sbuf_append_char(sql, ')');
}

static void append_block_bound(strbuf *sql, const char *op, const bf_key *k)
{
    unsigned long long block = k->n ? strtoull(k->v[0], NULL, 10) : 0;
    sbuf_appendf(sql, " AND ctid %s '(%llu,0)'::pg_catalog.tid", op, block);
}

static void append_from(strbuf *sql, const bf_table_info *info)
{
    /* ONLY: a table with inheritance children publishes each of them on
     * its own; a partitioned table read via its root has no rows itself. */
    sbuf_appendf(sql, " FROM %s%s WHERE true", info->partitioned ? "" : "ONLY ",
                 info->quoted);
}

/* COPY (SELECT <the published columns> FROM <table> WHERE true */
static void append_select(PGconn *conn, strbuf *sql, const bf_table_info *info)
{
    sbuf_append_str(sql, "COPY (SELECT ");
    for (int i = 0; i < info->ncols; i++) {
        if (i)
            sbuf_append_str(sql, ", ");
        append_ident(conn, sql, info->cols[i].name);
    }
    append_from(sql, info);
}

/* The row filter and the request's condition. */
static void append_conditions(strbuf *sql, const bf_table_info *info,
                              const char *where)
{
    if (info->row_filter)
        sbuf_appendf(sql, " AND (%s)", info->row_filter);
    /* A request's condition on lines of its own: a comment in it ends
     * there, and the statement stays one (sent as such). */
    if (where)
        sbuf_appendf(sql, " AND (\n%s\n)", where);
}

/* The row filter, the request's condition, the order and the end. */
static void append_rest(PGconn *conn, strbuf *sql, const bf_table_info *info,
                        const char *where, uint64_t limit)
{
    append_conditions(sql, info, where);
    if (info->nkey > 0) {
        sbuf_append_str(sql, " ORDER BY ");
        append_key_columns(conn, sql, info);
        if (limit)
            sbuf_appendf(sql, " LIMIT %llu", (unsigned long long)limit + 1);
    }
    sbuf_append_str(sql, ") TO STDOUT");
}

static void append_key_range(PGconn *conn, strbuf *sql,
                             const bf_table_info *info, const bf_key *lo,
                             const bf_key *hi)
{
    if (info->nkey == 0) {
        append_block_bound(sql, ">=", lo);
        append_block_bound(sql, "<", hi);
        return;
    }
    if (lo->n)
        append_key_bound(conn, sql, info, ">", lo);
    if (hi && hi->n)
        append_key_bound(conn, sql, info, "<=", hi);
}

char *bf_chunk_copy_sql(PGconn *conn, const bf_table_info *info,
                        const bf_key *lo, const bf_key *hi, uint64_t limit,
                        const char *where)
{
    strbuf sql = STRBUF_INIT;
    append_select(conn, &sql, info);
    append_key_range(conn, &sql, info, lo, hi);
    append_rest(conn, &sql, info, where, limit);
    return sbuf_detach(&sql);
}

char *bf_chunk_split_sql(PGconn *conn, const bf_table_info *info,
                         const bf_key *lo, const bf_key *hi, uint64_t skip,
                         const char *where)
{
    strbuf sql = STRBUF_INIT;
    sbuf_append_str(&sql, "SELECT ");
    for (int i = 0; i < info->nkey; i++) {
        if (i)
            sbuf_append_str(&sql, ", ");
        append_ident(conn, &sql, info->cols[info->key[i].col].name);
    }
    append_from(&sql, info);
    append_key_range(conn, &sql, info, lo, hi);
    append_conditions(&sql, info, where);
    sbuf_append_str(&sql, " ORDER BY ");
    append_key_columns(conn, &sql, info);
    sbuf_appendf(&sql, " OFFSET %llu LIMIT 1", (unsigned long long)skip);
    return sbuf_detach(&sql);
}

/* (key columns) = (key) [AND (key columns) <= (bound)]
 * [AND (key columns) > (after)] */
static void append_moved(PGconn *conn, strbuf *sql, const bf_table_info *info,
                         const bf_moved *m)
{
    sbuf_append_str(sql, "((");
    append_key_columns(conn, sql, info);
    sbuf_append_str(sql, ") = (");
    append_key_values(conn, sql, info, &m->key);
    sbuf_append_char(sql, ')');
    if (m->bound.n)
        append_key_bound(conn, sql, info, "<=", &m->bound);
    if (m->after.n)
        append_key_bound(conn, sql, info, ">", &m->after);
    sbuf_append_char(sql, ')');
}

char *bf_chunk_keys_sql(PGconn *conn, const bf_table_info *info,
                        const bf_moved_list *keys, const char *where)
{
    strbuf sql = STRBUF_INIT;
    append_select(conn, &sql, info);
    sbuf_append_str(&sql, keys->n ? " AND (" : " AND (false");
    for (size_t i = 0; i < keys->n; i++) {
        if (i)
            sbuf_append_str(&sql, " OR ");
        append_moved(conn, &sql, info, &keys->v[i]);
    }
    sbuf_append_char(&sql, ')');
    append_rest(conn, &sql, info, where, 0);
    return sbuf_detach(&sql);
}
