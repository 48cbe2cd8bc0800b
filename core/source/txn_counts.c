#include "txn_counts.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "json_string.h"
#include "strbuf.h"

static size_t find_table(const txn_counts *c, const char *schema,
                         const char *table)
{
    if (c->last < c->ntables && strcmp(c->tables[c->last].table, table) == 0 &&
        strcmp(c->tables[c->last].schema, schema) == 0)
        return c->last;
    for (size_t i = 0; i < c->ntables; i++)
        if (strcmp(c->tables[i].table, table) == 0 &&
            strcmp(c->tables[i].schema, schema) == 0)
            return i;
    return c->ntables;
}

void txn_counts_add(txn_counts *c, const char *schema, const char *table)
{
    c->total++;
    if (!schema) {
        c->messages++;
        return;
    }
    size_t i = find_table(c, schema, table);
    if (i == c->ntables) {
        if (c->ntables == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 8;
            c->tables = xrealloc(c->tables, c->cap * sizeof *c->tables);
        }
        c->tables[i] = (txn_table_count){xstrdup(schema), xstrdup(table), 0};
        c->ntables++;
    }
    c->tables[i].events++;
    c->last = i;
}

char *txn_counts_members(const txn_counts *c)
{
    strbuf sb = STRBUF_INIT;
    sbuf_appendf(&sb, ",\"event_count\":%llu,\"tables\":{",
                 (unsigned long long)c->total);
    for (size_t i = 0; i < c->ntables; i++) {
        strbuf name = STRBUF_INIT;
        sbuf_appendf(&name, "%s.%s", c->tables[i].schema, c->tables[i].table);
        if (i > 0)
            sbuf_append_char(&sb, ',');
        json_append_string(&sb, name.data, name.len);
        sbuf_appendf(&sb, ":%llu", (unsigned long long)c->tables[i].events);
        sbuf_free(&name);
    }
    sbuf_appendf(&sb, "},\"messages\":%llu", (unsigned long long)c->messages);
    return sbuf_detach(&sb);
}

void txn_counts_reset(txn_counts *c)
{
    for (size_t i = 0; i < c->ntables; i++) {
        free(c->tables[i].schema);
        free(c->tables[i].table);
    }
    c->ntables = 0;
    c->last = 0;
    c->total = 0;
    c->messages = 0;
}

void txn_counts_free(txn_counts *c)
{
    txn_counts_reset(c);
    free(c->tables);
    memset(c, 0, sizeof *c);
}
