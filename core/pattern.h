/* Table name patterns with the exact meaning pg_dump gives -t/-T (psql's
 * "Patterns"), matched locally so that tables created while streaming are
 * judged by the same rules as the initial catalog listing. Also
 * quote_ident_dup(), because listing tables must quote names exactly as the
 * server's quote_ident() does. */
#ifndef PGSPOUT_PATTERN_H
#define PGSPOUT_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct table_pattern table_pattern;

/* Compiles one pattern. dbname is the connected database's name: a
 * three-part pattern db.schema.table is accepted only when its db part
 * equals it (NULL accepts none). On error returns NULL and writes a message
 * naming the pattern into err; a pattern too complex to compile in bounded
 * time and memory is such an error (README "Table patterns"). */
table_pattern *table_pattern_compile(const char *pattern, const char *dbname,
                                     char *err, size_t errlen);

/* What decides how a database's default collation classifies characters
 * ([[:alpha:]], [[:upper:]], \w, \d, \s...), from pg_database. */
typedef struct database_ctype {
    char provider;  /* datlocprovider: 'c' libc (always before 15), 'i' ICU,
                       'b' builtin (17+) */
    char *ctype;    /* datctype */
    char *locale;   /* datlocale (17+) or daticulocale (15, 16); NULL: none */
    char *encoding; /* the database encoding's name, e.g. "UTF8" */
} database_ctype;

/* Makes the pattern's character classes those the server applies to
 * relname ~ regex COLLATE pg_catalog.default in that database (until
 * then they are Unicode's): a C/POSIX ctype puts no non-ASCII character
 * in any class. Recompiles when that changes anything; on failure
 * (which a pattern that compiled before cannot meet short of running out
 * of memory) p is unchanged and err says why. */
bool table_pattern_follow_database(table_pattern *p, const database_ctype *db,
                                   char *err, size_t errlen);

/* visible_in_search_path is pg_table_is_visible() of the table on the
 * connection; it matters only for unqualified patterns. */
bool table_pattern_matches(const table_pattern *p, const char *schema,
                           const char *table, bool visible_in_search_path);

void table_pattern_free(table_pattern *p);

/* The regular expressions psql would send to the server, e.g. "^(public)$",
 * or NULL when that part is unconstrained (no schema part, or "*"). */
const char *table_pattern_schema_regex(const table_pattern *p);
const char *table_pattern_name_regex(const table_pattern *p);

/* True when the pattern has a schema part; unqualified patterns match only
 * tables visible in the search_path. */
bool table_pattern_is_qualified(const table_pattern *p);

/* Include (-t) and exclude (-T) lists: an excluded table never matches, and
 * an empty include list means every table. */
typedef struct table_filter table_filter;

table_filter *table_filter_new(void);
bool table_filter_add(table_filter *f, bool exclude, const char *pattern,
                      const char *dbname, char *err, size_t errlen);
bool table_filter_matches(const table_filter *f, const char *schema,
                          const char *table, bool visible_in_search_path);
/* The text of the first include (exclude) pattern matching the table, as
 * given; NULL when none does. Callers that judge a partition together with
 * the tables above it combine these themselves (selection.h). */
const char *table_filter_include_match(const table_filter *f,
                                       const char *schema, const char *table,
                                       bool visible_in_search_path);
const char *table_filter_exclude_match(const table_filter *f,
                                       const char *schema, const char *table,
                                       bool visible_in_search_path);
bool table_filter_has_include(const table_filter *f);
/* table_pattern_follow_database() for every pattern of the filter. */
bool table_filter_follow_database(table_filter *f, const database_ctype *db,
                                  char *err, size_t errlen);
/* True when no pattern at all was added: every table passes. */
bool table_filter_is_empty(const table_filter *f);
void table_filter_free(table_filter *f);

/* A filter of the include and exclude patterns given; an error names where
 * a pattern came from ("FILE:LINE: sinks.[0].include", "command line: -t";
 * NULL origin: "table filter") and returns NULL. */
table_filter *table_filter_build(char *const *include, size_t n_include,
                                 const char *include_origin,
                                 char *const *exclude, size_t n_exclude,
                                 const char *exclude_origin, const char *dbname,
                                 char *err, size_t errlen);

/* Returns a malloc'd copy of ident, double-quoted when PostgreSQL's
 * quote_ident() would quote it. */
char *quote_ident_dup(const char *ident);

#endif
