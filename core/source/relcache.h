/* The relation cache: what the source knows about each relation OID the
 * server described in a Relation message. */
#ifndef PGSPOUT_RELCACHE_H
#define PGSPOUT_RELCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event_internal.h"

typedef struct relcache_entry {
    uint32_t oid; /* 0: free slot */
    relation *rel;
    bool schema_pending; /* a schema event is due before its next change */
    uint64_t route;      /* which sinks want its changes (0: none) */
} relcache_entry;

/* Open addressing on the OID. Zero-initialised means empty. */
typedef struct relcache {
    relcache_entry *entries;
    size_t cap, used;
} relcache;

void relcache_free(relcache *c);

/* The entry of a relation whose Relation message came; NULL otherwise. */
relcache_entry *relcache_find(relcache *c, uint32_t oid);

/* Takes rel (just described) with its route, replacing what the entry
 * held. A schema event becomes due when the relation is new or its
 * definition (names, columns, types, key, replica identity) changed. */
void relcache_put(relcache *c, relation *rel, uint64_t route);

/* Same names, columns, types, key and replica identity. */
bool relation_same_definition(const relation *a, const relation *b);

#endif
