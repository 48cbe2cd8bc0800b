/* libFuzzer target: the table pattern compiler and matcher, and
 * quote_ident_dup.
 *
 * Input: up to four newline-separated fields: pattern, database name,
 * schema, table (missing fields are empty). The input's length parity
 * chooses whether the table counts as visible in the search_path. A
 * pattern that compiles is matched with Unicode classes and again with a
 * C database's ASCII ones; switching must never fail. Schema and table are
 * cut to 63 bytes, the longest name the server has (NAMEDATALEN - 1):
 * glibc's matcher keeps state per character, and a pattern near the
 * complexity limits would take minutes on a name of kilobytes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"

#define MAX_NAME_BYTES 63

static volatile unsigned sink;

static const database_ctype c_database = {'c', "C", NULL, "UTF8"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *field[4] = {copy, "", "", ""};
    char *p = copy;
    for (int i = 1; i < 4; i++) {
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
        field[i] = p;
    }
    bool visible = (size & 1) != 0;
    for (int i = 2; i < 4; i++)
        if (strlen(field[i]) > MAX_NAME_BYTES)
            field[i][MAX_NAME_BYTES] = '\0';

    char err[512];
    err[0] = '\0';
    table_pattern *tp =
        table_pattern_compile(field[0], field[1], err, sizeof err);
    if (tp) {
        sink += table_pattern_matches(tp, field[2], field[3], visible);
        if (!table_pattern_follow_database(tp, &c_database, err, sizeof err))
            abort(); /* what compiled must compile with other classes */
        sink += table_pattern_matches(tp, field[2], field[3], visible);
        const char *s = table_pattern_schema_regex(tp);
        const char *n = table_pattern_name_regex(tp);
        sink += (unsigned)(s ? strlen(s) : 0) + (unsigned)(n ? strlen(n) : 0);
        sink += table_pattern_is_qualified(tp);
        table_pattern_free(tp);
    } else if (!err[0]) {
        abort(); /* a refusal must say why */
    }

    /* A NULL database accepts no three-part pattern; must not crash. */
    tp = table_pattern_compile(field[0], NULL, err, sizeof err);
    if (tp)
        table_pattern_free(tp);

    table_filter *f = table_filter_new();
    bool added =
        table_filter_add(f, false, field[0], field[1], err, sizeof err);
    table_filter_add(f, true, field[1], field[1], err, sizeof err);
    bool matched = table_filter_matches(f, field[2], field[3], visible);
    if (!added && table_filter_is_empty(f) && !matched)
        abort(); /* an empty filter passes everything */
    table_filter_free(f);

    /* quote_ident: a quoted name reads back as the original. */
    char *q = quote_ident_dup(field[2]);
    size_t qlen = strlen(q);
    if (q[0] == '"') {
        if (qlen < 2 || q[qlen - 1] != '"')
            abort();
        size_t j = 0;
        for (size_t i = 1; i + 1 < qlen; i++, j++) {
            if (q[i] == '"') {
                if (q[i + 1] != '"')
                    abort();
                i++;
            }
            if (q[i] != field[2][j])
                abort();
        }
        if (field[2][j] != '\0')
            abort();
    } else if (strcmp(q, field[2]) != 0) {
        abort();
    }
    free(q);
    free(copy);
    return 0;
}
