/* Support for the unit tests that run real sinks (the fault-injecting sink,
 * the file sink, the Kafka sink) through the delivery layer: configuring
 * them as the config file would, events to hand them, and reading back
 * the JSON lines they wrote. */
#ifndef PGSPOUT_TEST_SINK_SUPPORT_H
#define PGSPOUT_TEST_SINK_SUPPORT_H

#include <ftw.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "delivery.h"
#include "event_internal.h"
#include "lsn.h"
#include "options.h"
#include "typeinfo.h"

#define MAX_TEST_SINKS 4

typedef struct test_sinks {
    sink_config cfg[MAX_TEST_SINKS];
    size_t n;
} test_sinks;

/* A directory for this test's output files. */
static const char *test_dir(void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/pgspout-unit.XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes test_dir() and everything the sinks left in it. */
static void remove_test_dir(void)
{
    nftw(test_dir(), remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* A path in test_dir(), fresh (removed if a run left it). */
static char *test_path(const char *name)
{
    static char paths[16][256];
    static int next;
    char *p = paths[next++ % 16];
    snprintf(p, sizeof paths[0], "%s/%s", test_dir(), name);
    remove(p);
    return p;
}

/* Adds a sink of type so (an absolute path) with options given as key,
 * value pairs ending in NULL, as `-o key=value` would. */
static void add_sink(test_sinks *t, const char *name, const char *so,
                     const char *include, ...)
{
    sink_config *sc = &t->cfg[t->n++];
    memset(sc, 0, sizeof *sc);
    sc->name = (char *)name;
    sc->type = (char *)so;
    sc->origin = (char *)"test";
    sc->options = sink_options_new();
    if (include) {
        sc->include = malloc(sizeof *sc->include);
        sc->include[0] = (char *)include;
        sc->n_include = 1;
    }
    va_list ap;
    va_start(ap, include);
    for (const char *key; (key = va_arg(ap, const char *));) {
        const char *value = va_arg(ap, const char *);
        sink_options_add_text(sc->options, key, value, NULL, 0, NULL);
    }
    va_end(ap);
}

static void free_sinks(test_sinks *t)
{
    for (size_t i = 0; i < t->n; i++) {
        sink_options_free(t->cfg[i].options);
        free(t->cfg[i].include);
    }
    t->n = 0;
}

/* Loads and starts the sinks; NULL (and a failed check) when that fails. */
static delivery *start_delivery(test_sinks *t, const table_filter *global,
                                stop_state *stop)
{
    delivery *d = delivery_new(global, stop);
    if (delivery_load(d, t->cfg, t->n, NULL, 0, "test") != 0 ||
        !delivery_start(d)) {
        printf("# cannot start the sinks\n");
        delivery_free(d);
        return NULL;
    }
    return d;
}

/* ---- events: inserts (or reads) of one int column, id ---- */

static inline relation *items_relation(void)
{
    relation *rel = calloc(1, sizeof *rel);
    rel->refcount = 1;
    rel->oid = 16384;
    rel->schema = strdup("public");
    rel->table = strdup("items");
    rel->replica_identity = 'd';
    rel->ncols = 1;
    rel->cols = calloc(1, sizeof *rel->cols);
    rel->cols[0].name = strdup("id");
    rel->cols[0].type_oid = 23;
    rel->cols[0].key = true;
    rel->cols[0].type_name = strdup("integer");
    bool known;
    rel->cols[0].vtype = value_type_for_builtin(23, &known);
    return rel;
}

static const char *const id_text[] = {"0", "1", "2", "3", "4",
                                      "5", "6", "7", "8", "9"};

/* An insert of id = seq (0..9) at (commit_lsn, seq), or a schema event. */
static inline event *make_event(relation *rel, pgspout_op op,
                                uint64_t commit_lsn, uint64_t seq)
{
    event *ev = calloc(1, sizeof *ev);
    ev->op = op;
    ev->rel = relation_ref(rel);
    ev->lsn = commit_lsn - 0x10 + seq;
    ev->pos = (pgspout_position){commit_lsn, seq};
    ev->xid = 700;
    if (op == PGSPOUT_OP_INSERT || op == PGSPOUT_OP_READ) {
        ev->new_tuple.ncols = 1;
        ev->new_tuple.cols = calloc(1, sizeof(colval));
        ev->new_tuple.cols[0] = (colval){COLVAL_TEXT, 1, id_text[seq % 10]};
    }
    return ev;
}

/* Whether the file at path holds text (anywhere). */
static inline bool file_contains(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[65536];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

/* One event as a sink wrote it. */
typedef struct written {
    char op[16];
    char table[64];
    uint64_t commit_lsn;
    uint64_t seq; /* 0 for schema events, which have none */
    long long id; /* after.id or before.id; -1 when neither */
} written;

static inline long long row_id(json_t *ev)
{
    const char *images[] = {"after", "before"};
    for (int i = 0; i < 2; i++) {
        json_t *id = json_object_get(json_object_get(ev, images[i]), "id");
        if (json_is_integer(id))
            return (long long)json_integer_value(id);
    }
    return -1;
}

/* Reads every JSON line of path into out (at most max); returns how many,
 * or -1 when a line is not an event. A missing file holds none. */
static inline int read_written(const char *path, written *out, int max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[65536];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < max) {
        json_t *ev = json_loads(line, 0, NULL);
        const char *op = json_string_value(json_object_get(ev, "op"));
        const char *table = json_string_value(json_object_get(ev, "table"));
        const char *lsn = json_string_value(json_object_get(ev, "commit_lsn"));
        written *w = &out[n];
        /* Messages, begins and commits have a null table. */
        bool tableless = json_is_null(json_object_get(ev, "table"));
        if (!op || (!table && !tableless) || !lsn ||
            !lsn_parse(lsn, &w->commit_lsn)) {
            json_decref(ev);
            fclose(f);
            return -1;
        }
        snprintf(w->op, sizeof w->op, "%s", op);
        snprintf(w->table, sizeof w->table, "%s", table ? table : "");
        w->seq = (uint64_t)json_integer_value(json_object_get(ev, "seq"));
        w->id = row_id(ev);
        json_decref(ev);
        n++;
    }
    fclose(f);
    return n;
}

#endif
