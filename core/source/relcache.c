#include "relcache.h"

#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

void relcache_free(relcache *c)
{
    for (size_t i = 0; i < c->cap; i++)
        if (c->entries[i].rel)
            relation_unref(c->entries[i].rel);
    free(c->entries);
    memset(c, 0, sizeof *c);
}

static relcache_entry *lookup(relcache *c, uint32_t oid, bool create)
{
    if (create && (c->used + 1) * 2 > c->cap) {
        size_t old_cap = c->cap;
        relcache_entry *old = c->entries;
        c->cap = old_cap ? old_cap * 2 : 64;
        c->entries = xcalloc(c->cap, sizeof *c->entries);
        for (size_t i = 0; i < old_cap; i++) {
            if (!old[i].oid)
                continue;
            size_t j = old[i].oid % c->cap;
            while (c->entries[j].oid)
                j = (j + 1) % c->cap;
            c->entries[j] = old[i];
        }
        free(old);
    }
    if (!c->cap)
        return NULL;
    size_t i = oid % c->cap;
    while (c->entries[i].oid) {
        if (c->entries[i].oid == oid)
            return &c->entries[i];
        i = (i + 1) % c->cap;
    }
    if (!create)
        return NULL;
    c->entries[i].oid = oid;
    c->used++;
    return &c->entries[i];
}

relcache_entry *relcache_find(relcache *c, uint32_t oid)
{
    relcache_entry *e = lookup(c, oid, false);
    return e && e->rel ? e : NULL;
}

bool relation_same_definition(const relation *a, const relation *b)
{
    if (strcmp(a->schema, b->schema) != 0 || strcmp(a->table, b->table) != 0 ||
        a->ncols != b->ncols || a->replica_identity != b->replica_identity)
        return false;
    for (int i = 0; i < a->ncols; i++) {
        const relation_column *x = &a->cols[i], *y = &b->cols[i];
        if (strcmp(x->name, y->name) != 0 || x->type_oid != y->type_oid ||
            x->typmod != y->typmod || x->key != y->key)
            return false;
    }
    return true;
}

void relcache_put(relcache *c, relation *rel, uint64_t route)
{
    relcache_entry *e = lookup(c, rel->oid, true);
    if (!e->rel || !relation_same_definition(e->rel, rel))
        e->schema_pending = true;
    e->route = route;
    if (e->rel)
        relation_unref(e->rel);
    e->rel = rel;
}
