/* Relations, tuples and events built by hand for the unit tests, as the
 * pgoutput decoder would build them (test_event_json.c,
 * test_host_columns.c). */
#ifndef PGSPOUT_TEST_EVENT_SUPPORT_H
#define PGSPOUT_TEST_EVENT_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "event_internal.h"
#include "strbuf.h"

/* 2026-11-21T23:55:22.123456Z */
#define COMMIT_TIME_US INT64_C(1795305322123456)

typedef struct column_spec {
    const char *name;
    uint32_t type_oid;
    const char *type_name;
    bool key;
} column_spec;

static inline relation *make_relation(const char *schema, const char *table,
                                      const column_spec *specs, int ncols)
{
    relation *rel = xcalloc(1, sizeof *rel);
    rel->refcount = 1;
    rel->oid = 16384;
    rel->schema = xstrdup(schema);
    rel->table = xstrdup(table);
    rel->replica_identity = 'd';
    rel->ncols = ncols;
    rel->cols = xcalloc((size_t)ncols, sizeof *rel->cols);
    for (int i = 0; i < ncols; i++) {
        bool known;
        rel->cols[i].name = xstrdup(specs[i].name);
        rel->cols[i].type_oid = specs[i].type_oid;
        rel->cols[i].typmod = -1;
        rel->cols[i].key = specs[i].key;
        rel->cols[i].type_name = xstrdup(specs[i].type_name);
        rel->cols[i].vtype = value_type_for_builtin(specs[i].type_oid, &known);
    }
    return rel;
}

/* Values are given as strings: "\x01NULL" for SQL NULL, "\x01TOAST" for an
 * unchanged TOAST value, anything else as text. */
#define SQL_NULL "\x01NULL"
#define TOAST "\x01TOAST"

static inline tuple make_tuple(int ncols, const char *const *values)
{
    tuple t;
    t.ncols = (uint16_t)ncols;
    t.cols = xcalloc((size_t)(ncols ? ncols : 1), sizeof *t.cols);
    for (int i = 0; i < ncols; i++) {
        colval *v = &t.cols[i];
        if (strcmp(values[i], SQL_NULL) == 0) {
            v->kind = COLVAL_NULL;
        } else if (strcmp(values[i], TOAST) == 0) {
            v->kind = COLVAL_UNCHANGED_TOAST;
        } else {
            v->kind = COLVAL_TEXT;
            v->data = values[i];
            v->len = (uint32_t)strlen(values[i]);
        }
    }
    return t;
}

static inline void init_event(event *ev, pgspout_op op, relation *rel)
{
    memset(ev, 0, sizeof *ev);
    ev->op = op;
    ev->rel = relation_ref(rel);
    ev->lsn = 0x16B3748;
    ev->pos.commit_lsn = 0x16B37A0;
    ev->pos.seq = 1;
    ev->xid = 741;
    ev->commit_time_us = COMMIT_TIME_US;
}

#endif
