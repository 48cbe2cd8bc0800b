#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "bq_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* PostgreSQL type OIDs (pg_type.dat) whose mapping does not depend on a
 * type modifier. Array types map to their element's type, REPEATED. */
typedef struct oid_type {
    uint32_t oid;
    uint32_t array_oid;
    const char *bq_type;
} oid_type;

static const oid_type known_types[] = {
    {21, 1005, "INT64"},       /* int2 */
    {23, 1007, "INT64"},       /* int4 */
    {20, 1016, "INT64"},       /* int8 */
    {26, 1028, "INT64"},       /* oid */
    {700, 1021, "FLOAT64"},    /* float4 */
    {701, 1022, "FLOAT64"},    /* float8 */
    {16, 1000, "BOOL"},        /* bool */
    {1184, 1185, "TIMESTAMP"}, /* timestamptz */
    {1114, 1115, "DATETIME"},  /* timestamp */
    {1082, 1182, "DATE"},      /* date */
    {1083, 1183, "TIME"},      /* time */
    {114, 199, "JSON"},        /* json */
    {3802, 3807, "JSON"},      /* jsonb */
    {17, 1001, "BYTES"},       /* bytea */
};

#define NUMERIC_OID 1700
#define NUMERIC_ARRAY_OID 1231

/* NUMERIC holds 29 integer and 9 fractional digits, BIGNUMERIC 38 and 38
 * (BigQuery's documented precision); anything wider, and numeric without
 * a modifier (up to 131072 digits), stays exact only as a STRING. */
static const char *numeric_type(const char *pg_type)
{
    int precision, scale = 0;
    const char *paren = strchr(pg_type, '(');
    if (!paren || sscanf(paren, "(%d,%d)", &precision, &scale) < 1)
        return "STRING";
    if (scale < 0 || precision < 1)
        return "STRING";
    if (scale <= 9 && precision - scale <= 29)
        return "NUMERIC";
    if (scale <= 38 && precision - scale <= 38)
        return "BIGNUMERIC";
    return "STRING";
}

static bool is_array_name(const char *pg_type)
{
    size_t n = strlen(pg_type);
    return n > 2 && strcmp(pg_type + n - 2, "[]") == 0;
}

static bool type_is_toastable(const char *bq_type, bool repeated)
{
    if (repeated)
        return true;
    return strcmp(bq_type, "STRING") == 0 || strcmp(bq_type, "BYTES") == 0 ||
           strcmp(bq_type, "JSON") == 0 || strcmp(bq_type, "NUMERIC") == 0 ||
           strcmp(bq_type, "BIGNUMERIC") == 0;
}

const char *bq_map_type(const char *pg_type, uint32_t type_oid, bool *repeated,
                        bool *toastable)
{
    const char *type = "STRING";
    bool array = pg_type && is_array_name(pg_type);

    for (size_t i = 0; i < sizeof known_types / sizeof *known_types; i++) {
        if (type_oid == known_types[i].oid) {
            type = known_types[i].bq_type;
            array = false;
            break;
        }
        if (type_oid == known_types[i].array_oid) {
            type = known_types[i].bq_type;
            array = true;
            break;
        }
    }
    if (type_oid == NUMERIC_OID || type_oid == NUMERIC_ARRAY_OID) {
        type = numeric_type(pg_type ? pg_type : "");
        array = type_oid == NUMERIC_ARRAY_OID;
    }
    *repeated = array;
    *toastable = type_is_toastable(type, array);
    return type;
}

static bool is_metadata_name(const char *name)
{
    static const char *const names[] = {
        BQ_COL_OP,  BQ_COL_KEY,         BQ_COL_COMMIT_LSN,
        BQ_COL_SEQ, BQ_COL_COMMIT_TIME, BQ_COL_UNCHANGED_TOAST};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

bool bq_columns_from_event(json_t *columns, bq_columns *out, char *err,
                           size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!json_is_array(columns)) {
        snprintf(err, errlen, "schema event without a columns array");
        return false;
    }
    out->cols = xcalloc(json_array_size(columns) + 1, sizeof *out->cols);
    size_t i;
    json_t *col;
    json_array_foreach(columns, i, col)
    {
        const char *name = json_string_value(json_object_get(col, "name"));
        const char *type = json_string_value(json_object_get(col, "type"));
        json_t *oid = json_object_get(col, "type_oid");
        if (!name) {
            snprintf(err, errlen, "schema event column %zu has no name", i);
            bq_columns_free(out);
            return false;
        }
        if (is_metadata_name(name)) {
            snprintf(err, errlen,
                     "column \"%s\" collides with the sink's metadata column "
                     "of that name",
                     name);
            bq_columns_free(out);
            return false;
        }
        bq_column *c = &out->cols[out->n++];
        c->name = xstrdup(name);
        c->pg_type = xstrdup(type ? type : "unknown");
        c->type = bq_map_type(type, (uint32_t)json_integer_value(oid),
                              &c->repeated, &c->toastable);
        c->key = json_is_true(json_object_get(col, "key"));
    }
    return true;
}

/* Type names as tables.get may spell them (legacy names included). */
static const char *canonical_type(const char *t)
{
    static const char *const pairs[][2] = {
        {"INTEGER", "INT64"},       {"INT64", "INT64"},
        {"FLOAT", "FLOAT64"},       {"FLOAT64", "FLOAT64"},
        {"BOOLEAN", "BOOL"},        {"BOOL", "BOOL"},
        {"NUMERIC", "NUMERIC"},     {"BIGNUMERIC", "BIGNUMERIC"},
        {"STRING", "STRING"},       {"BYTES", "BYTES"},
        {"TIMESTAMP", "TIMESTAMP"}, {"DATETIME", "DATETIME"},
        {"DATE", "DATE"},           {"TIME", "TIME"},
        {"JSON", "JSON"},           {"GEOGRAPHY", "GEOGRAPHY"},
        {"RECORD", "RECORD"},       {"STRUCT", "RECORD"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++)
        if (strcmp(t, pairs[i][0]) == 0)
            return pairs[i][1];
    return "STRING";
}

bool bq_columns_from_table(json_t *table, bq_columns *out, char *err,
                           size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_t *fields =
        json_object_get(json_object_get(table, "schema"), "fields");
    if (!json_is_array(fields)) {
        snprintf(err, errlen, "the table resource has no schema");
        return false;
    }
    out->cols = xcalloc(json_array_size(fields) + 1, sizeof *out->cols);
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        const char *type = json_string_value(json_object_get(f, "type"));
        const char *mode = json_string_value(json_object_get(f, "mode"));
        if (!name || is_metadata_name(name))
            continue;
        bq_column *c = &out->cols[out->n++];
        c->name = xstrdup(name);
        c->type = canonical_type(type ? type : "STRING");
        c->repeated = mode && strcmp(mode, "REPEATED") == 0;
        c->toastable = type_is_toastable(c->type, c->repeated);
        c->pg_type = xstrdup("");
    }
    return true;
}

void bq_columns_free(bq_columns *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->cols[i].name);
        free(c->cols[i].pg_type);
    }
    free(c->cols);
    c->cols = NULL;
    c->n = 0;
}

const bq_column *bq_columns_find(const bq_columns *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->cols[i].name, name) == 0)
            return &c->cols[i];
    return NULL;
}

json_t *bq_field_json(const char *name, const char *type, bool repeated,
                      const char *description)
{
    json_t *f = json_pack("{s:s, s:s, s:s}", "name", name, "type", type, "mode",
                          repeated ? "REPEATED" : "NULLABLE");
    if (description)
        json_object_set_new(f, "description", json_string(description));
    return f;
}

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return xnonnull(s);
}

char *bq_changelog_table_json(const char *project, const char *dataset,
                              const char *table_id, const bq_columns *cols)
{
    json_t *fields = json_array();
    for (size_t i = 0; i < cols->n; i++) {
        const bq_column *c = &cols->cols[i];
        json_array_append_new(
            fields, bq_field_json(c->name, c->type, c->repeated, NULL));
    }
    json_array_append_new(
        fields, bq_field_json(BQ_COL_OP, "STRING", false,
                              "insert, update, delete, truncate or read"));
    json_array_append_new(
        fields, bq_field_json(BQ_COL_KEY, "STRING", false,
                              "the row's replica-identity columns as JSON"));
    json_array_append_new(
        fields, bq_field_json(BQ_COL_COMMIT_LSN, "INT64", false,
                              "commit LSN of the change's transaction"));
    json_array_append_new(
        fields, bq_field_json(BQ_COL_SEQ, "INT64", false,
                              "position of the change in its transaction"));
    json_array_append_new(fields, bq_field_json(BQ_COL_COMMIT_TIME, "TIMESTAMP",
                                                false, "commit time"));
    json_array_append_new(
        fields, bq_field_json(BQ_COL_UNCHANGED_TOAST, "STRING", true,
                              "columns whose value the change did not carry"));
    return bq_table_json(project, dataset, table_id, fields,
                         "pgspout changelog: one row per change; see the view "
                         "for the latest state");
}

char *bq_table_json(const char *project, const char *dataset,
                    const char *table_id, json_t *fields,
                    const char *description)
{
    json_t *body = json_pack(
        "{s:{s:s, s:s, s:s}, s:{s:o}, s:s}", "tableReference", "projectId",
        project, "datasetId", dataset, "tableId", table_id, "schema", "fields",
        fields, "description", description);
    return dump(body);
}

char *bq_patch_add_columns_json(json_t *existing_table, const bq_column *added,
                                size_t nadded)
{
    json_t *fields = json_deep_copy(
        json_object_get(json_object_get(existing_table, "schema"), "fields"));
    if (!json_is_array(fields)) {
        json_decref(fields);
        fields = json_array();
    }
    for (size_t i = 0; i < nadded; i++)
        json_array_append_new(fields,
                              bq_field_json(added[i].name, added[i].type,
                                            added[i].repeated, NULL));
    return dump(json_pack("{s:{s:o}}", "schema", "fields", fields));
}

/* BigQuery quoted identifiers: backticks, with backslash escapes. */
static void append_ident(strbuf *sb, const char *name)
{
    sbuf_append_char(sb, '`');
    for (const char *p = name; *p; p++) {
        if (*p == '`' || *p == '\\')
            sbuf_append_char(sb, '\\');
        sbuf_append_char(sb, *p);
    }
    sbuf_append_char(sb, '`');
}

/* `project.dataset.table` as one quoted path. */
static void append_table_path(strbuf *sb, const char *project,
                              const char *dataset, const char *table)
{
    char *path = xasprintf("%s.%s.%s", project, dataset, table);
    append_ident(sb, path);
    free(path);
}

/* A string literal: only the column names of the table go in, but they
 * may contain anything. */
static void append_string_literal(strbuf *sb, const char *s)
{
    sbuf_append_char(sb, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'' || *p == '\\')
            sbuf_append_char(sb, '\\');
        sbuf_append_char(sb, *p);
    }
    sbuf_append_char(sb, '\'');
}

static void append_type(strbuf *sb, const bq_column *c)
{
    if (c->repeated)
        sbuf_appendf(sb, "ARRAY<%s>", c->type);
    else
        sbuf_append_str(sb, c->type);
}

char *bq_add_column_ddl(const char *project, const char *dataset,
                        const char *table_id, const bq_column *col)
{
    strbuf sb = STRBUF_INIT;
    sbuf_append_str(&sb, "ALTER TABLE ");
    append_table_path(&sb, project, dataset, table_id);
    sbuf_append_str(&sb, " ADD COLUMN IF NOT EXISTS ");
    append_ident(&sb, col->name);
    sbuf_append_char(&sb, ' ');
    append_type(&sb, col);
    return sbuf_detach(&sb);
}

/* The view in three steps, innermost first:
 *  1. the changes since the last TRUNCATE, each with, per TOAST-able
 *     column, a running count of the changes of its row that carried the
 *     column (the count stays put across changes that did not), and the
 *     change's rank from the newest;
 *  2. per column, the value of the first change in its (row, count)
 *     group: the latest change that carried it;
 *  3. the newest change of each row, unless it is a delete.
 * Ordering by (_commit_lsn, _seq) makes the result independent of the
 * order in which rows reached the table (requests run concurrently). */
char *bq_view_sql(const char *project, const char *dataset,
                  const char *changelog_id, const bq_columns *cols)
{
    strbuf sb = STRBUF_INIT;
    const char *order = "ORDER BY `" BQ_COL_COMMIT_LSN "`, `" BQ_COL_SEQ "`";
    const char *meta[] = {BQ_COL_COMMIT_LSN, BQ_COL_SEQ, BQ_COL_COMMIT_TIME};

    /* Step 3's select list. */
    sbuf_append_str(&sb, "SELECT ");
    for (size_t i = 0; i < cols->n; i++) {
        append_ident(&sb, cols->cols[i].name);
        sbuf_append_str(&sb, ", ");
    }
    for (size_t i = 0; i < 3; i++) {
        append_ident(&sb, meta[i]);
        sbuf_append_str(&sb, i < 2 ? ", " : "");
    }

    /* Step 2. */
    sbuf_append_str(&sb, " FROM (SELECT ");
    for (size_t i = 0; i < cols->n; i++) {
        const bq_column *c = &cols->cols[i];
        if (c->toastable) {
            sbuf_append_str(&sb, "FIRST_VALUE(");
            append_ident(&sb, c->name);
            sbuf_appendf(&sb, ") OVER (PARTITION BY `%s`, `_g%zu` %s) AS ",
                         BQ_COL_KEY, i, order);
        }
        append_ident(&sb, c->name);
        sbuf_append_str(&sb, ", ");
    }
    sbuf_appendf(&sb, "`%s`, `%s`, `%s`, `%s`, `_rn`", BQ_COL_OP, meta[0],
                 meta[1], meta[2]);

    /* Step 1. */
    sbuf_append_str(&sb, " FROM (SELECT *");
    for (size_t i = 0; i < cols->n; i++) {
        const bq_column *c = &cols->cols[i];
        if (!c->toastable)
            continue;
        sbuf_append_str(&sb, ", SUM(IF(");
        append_string_literal(&sb, c->name);
        sbuf_appendf(&sb,
                     " IN UNNEST(`%s`), 0, 1)) OVER (PARTITION BY `%s` %s "
                     "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS "
                     "`_g%zu`",
                     BQ_COL_UNCHANGED_TOAST, BQ_COL_KEY, order, i);
    }
    sbuf_appendf(&sb,
                 ", ROW_NUMBER() OVER (PARTITION BY `%s` ORDER BY `%s` DESC, "
                 "`%s` DESC) AS `_rn` FROM ",
                 BQ_COL_KEY, BQ_COL_COMMIT_LSN, BQ_COL_SEQ);
    append_table_path(&sb, project, dataset, changelog_id);
    sbuf_appendf(&sb,
                 " AS c WHERE c.`%s` != 'truncate' AND NOT EXISTS (SELECT 1 "
                 "FROM ",
                 BQ_COL_OP);
    append_table_path(&sb, project, dataset, changelog_id);
    sbuf_appendf(&sb,
                 " AS t WHERE t.`%s` = 'truncate' AND (t.`%s` > c.`%s` OR "
                 "(t.`%s` = c.`%s` AND t.`%s` > c.`%s`)))",
                 BQ_COL_OP, BQ_COL_COMMIT_LSN, BQ_COL_COMMIT_LSN,
                 BQ_COL_COMMIT_LSN, BQ_COL_COMMIT_LSN, BQ_COL_SEQ, BQ_COL_SEQ);
    sbuf_appendf(&sb, ")) WHERE `_rn` = 1 AND `%s` != 'delete'", BQ_COL_OP);
    return sbuf_detach(&sb);
}

char *bq_query_json(const char *sql)
{
    return dump(json_pack("{s:s, s:b, s:i}", "query", sql, "useLegacySql", 0,
                          "timeoutMs", 60000));
}

char *bq_view_query_json(const char *project, const char *dataset,
                         const char *view_id, const char *changelog_id,
                         const bq_columns *cols)
{
    strbuf sb = STRBUF_INIT;
    char *select = bq_view_sql(project, dataset, changelog_id, cols);
    sbuf_append_str(&sb, "CREATE OR REPLACE VIEW ");
    append_table_path(&sb, project, dataset, view_id);
    sbuf_append_str(&sb, " AS ");
    sbuf_append_str(&sb, select);
    free(select);
    char *sql = sbuf_detach(&sb);
    char *body = bq_query_json(sql);
    free(sql);
    return body;
}

static bool same_type(const bq_column *a, const bq_column *b)
{
    return strcmp(a->type, b->type) == 0 && a->repeated == b->repeated;
}

void bq_schema_diff_compute(const bq_columns *table, const bq_columns *source,
                            bq_schema_diff *diff)
{
    memset(diff, 0, sizeof *diff);
    diff->added = xcalloc(source->n + 1, sizeof *diff->added);
    diff->dropped = xcalloc(table->n + 1, sizeof *diff->dropped);
    diff->retyped = xcalloc(source->n + 1, sizeof *diff->retyped);
    for (size_t i = 0; i < source->n; i++) {
        const bq_column *s = &source->cols[i];
        const bq_column *t = bq_columns_find(table, s->name);
        if (!t) {
            bq_column *a = &diff->added[diff->nadded++];
            *a = *s;
            a->name = xstrdup(s->name);
            a->pg_type = xstrdup(s->pg_type);
        } else if (!same_type(t, s)) {
            diff->retyped[diff->nretyped++] =
                xasprintf("%s: %s%s in BigQuery, %s (%s%s) in PostgreSQL",
                          s->name, t->repeated ? "REPEATED " : "", t->type,
                          s->pg_type, s->repeated ? "REPEATED " : "", s->type);
        }
    }
    for (size_t i = 0; i < table->n; i++)
        if (!bq_columns_find(source, table->cols[i].name))
            diff->dropped[diff->ndropped++] = xstrdup(table->cols[i].name);
}

void bq_schema_diff_free(bq_schema_diff *diff)
{
    bq_columns added = {diff->added, diff->nadded};
    bq_columns_free(&added);
    for (size_t i = 0; i < diff->ndropped; i++)
        free(diff->dropped[i]);
    for (size_t i = 0; i < diff->nretyped; i++)
        free(diff->retyped[i]);
    free(diff->dropped);
    free(diff->retyped);
    memset(diff, 0, sizeof *diff);
}

char *bq_expand_template(const char *tmpl, const char *schema,
                         const char *table)
{
    strbuf sb = STRBUF_INIT;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{schema}", 8) == 0) {
            sbuf_append_str(&sb, schema);
            p += 8;
        } else if (strncmp(p, "{table}", 7) == 0) {
            sbuf_append_str(&sb, table);
            p += 7;
        } else {
            sbuf_append_char(&sb, *p++);
        }
    }
    sbuf_append_str(&sb, "");
    return sbuf_detach(&sb);
}
