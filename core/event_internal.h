/* The core's representation of relations and change events. Sinks never see
 * these structs; they read events through the host API. */
#ifndef PGSPOUT_EVENT_INTERNAL_H
#define PGSPOUT_EVENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgspout/event.h"
#include "pgspout/position.h"
#include "tuple.h"
#include "typeinfo.h"

typedef struct relation_column {
    char *name;
    uint32_t type_oid;
    int32_t typmod;
    bool key;        /* part of the replica identity */
    char *type_name; /* format_type(type_oid, typmod) */
    value_type vtype;
} relation_column;

/* Immutable once built; a new Relation message makes a new one. Events hold a
 * reference, so a batch can span an ALTER TABLE. */
typedef struct relation {
    int refcount;
    uint32_t oid;
    char *schema;
    char *table;
    char replica_identity; /* 'd', 'n', 'f', 'i' */
    int ncols;
    relation_column *cols;
} relation;

relation *relation_ref(relation *rel);
void relation_unref(relation *rel);

#define EVENT_PART_COUNT 6

struct pgspout_event {
    pgspout_op op;
    relation *rel; /* referenced */
    uint64_t lsn;  /* the change's own WAL position */
    pgspout_position pos;
    uint32_t xid;
    int64_t commit_time_us; /* microseconds since the Unix epoch, UTC */

    /* insert/update/delete */
    char old_kind; /* 0 none, 'K' key columns only, 'O' whole old row */
    tuple old_tuple;
    tuple new_tuple;

    /* truncate */
    bool cascade;
    bool restart_identity;

    /* Encoded JSON per pgspout_event_part, built on first request. */
    char *json[EVENT_PART_COUNT];
    size_t json_len[EVENT_PART_COUNT];
};

typedef struct pgspout_event event;

/* Frees the JSON caches and tuple arrays, drops the relation reference. */
void event_clear(event *ev);

#endif
