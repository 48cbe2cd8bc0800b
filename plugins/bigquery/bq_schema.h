/* BigQuery tables for PostgreSQL relations: the type mapping, the changelog
 * table's schema, the latest-state view's SQL, and how a relation's new
 * definition differs from the table that already exists. */
#ifndef BQ_SCHEMA_H
#define BQ_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Metadata columns every changelog table has, after the source columns. */
#define BQ_COL_OP "_op"
#define BQ_COL_KEY "_key"
#define BQ_COL_COMMIT_LSN "_commit_lsn"
#define BQ_COL_SEQ "_seq"
#define BQ_COL_COMMIT_TIME "_commit_time"
#define BQ_COL_UNCHANGED_TOAST "_unchanged_toast"

typedef struct bq_column {
    char *name;
    const char *type; /* "INT64", "STRING", ... (static strings) */
    bool repeated;    /* a PostgreSQL array */
    bool key;         /* part of the replica identity */
    /* The value may be an unchanged TOAST value (variable-length types),
     * so the view carries it forward from earlier changes of the row. */
    bool toastable;
    /* The PostgreSQL type, for messages. */
    char *pg_type;
} bq_column;

typedef struct bq_columns {
    bq_column *cols;
    size_t n;
} bq_columns;

/* BigQuery's type for a PostgreSQL type as format_type() prints it (and
 * its OID): *repeated is set for arrays, *toastable for variable-length
 * types. Never fails: what has no better home is a STRING. */
const char *bq_map_type(const char *pg_type, uint32_t type_oid, bool *repeated,
                        bool *toastable);

/* Columns from a schema event's "columns" array. False (with err) when the
 * array is malformed or a name collides with a metadata column. */
bool bq_columns_from_event(json_t *columns, bq_columns *out, char *err,
                           size_t errlen);

/* Columns (source columns only) from a tables.get resource's schema. */
bool bq_columns_from_table(json_t *table, bq_columns *out, char *err,
                           size_t errlen);

void bq_columns_free(bq_columns *c);
const bq_column *bq_columns_find(const bq_columns *c, const char *name);

/* A field of a table schema resource; description may be NULL. */
json_t *bq_field_json(const char *name, const char *type, bool repeated,
                      const char *description);

/* The tables.insert body of a table with these fields (taken: the
 * reference is stolen). Caller frees (free()). */
char *bq_table_json(const char *project, const char *dataset,
                    const char *table_id, json_t *fields,
                    const char *description);

/* The tables.insert body of a changelog table. Caller frees (free()). */
char *bq_changelog_table_json(const char *project, const char *dataset,
                              const char *table_id, const bq_columns *cols);

/* A tables.patch body whose schema is existing's fields plus the added
 * columns (BigQuery's patch replaces the field list as a whole). */
char *bq_patch_add_columns_json(json_t *existing_table, const bq_column *added,
                                size_t nadded);

/* `ALTER TABLE ... ADD COLUMN IF NOT EXISTS` for one column. */
char *bq_add_column_ddl(const char *project, const char *dataset,
                        const char *table_id, const bq_column *col);

/* The view's query: each row's latest state (the last change by
 * (_commit_lsn, _seq) per _key), deleted rows left out, nothing from
 * before the last TRUNCATE, and unchanged TOAST values taken from the
 * latest earlier change of the row that carried them. */
char *bq_view_sql(const char *project, const char *dataset,
                  const char *changelog_id, const bq_columns *cols);

/* `CREATE OR REPLACE VIEW` wrapped in a jobs.query body. */
char *bq_view_query_json(const char *project, const char *dataset,
                         const char *view_id, const char *changelog_id,
                         const bq_columns *cols);

/* A query request body (standard SQL). */
char *bq_query_json(const char *sql);

/* How a relation's columns compare with the table's: which are new, which
 * are gone, and which changed type. */
typedef struct bq_schema_diff {
    bq_column *added;
    size_t nadded;
    char **dropped; /* names */
    size_t ndropped;
    char **retyped; /* "name: TYPE -> TYPE" */
    size_t nretyped;
} bq_schema_diff;

void bq_schema_diff_compute(const bq_columns *table, const bq_columns *source,
                            bq_schema_diff *diff);
void bq_schema_diff_free(bq_schema_diff *diff);

/* Expands a naming template: {schema} and {table} are replaced. */
char *bq_expand_template(const char *tmpl, const char *schema,
                         const char *table);

#endif
