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
    bool generated;  /* a stored generated column (published: 18+) */
    char *type_name; /* format_type(type_oid, typmod) */
    value_type vtype;
    /* "name": as JSON, made once per relation rather than per value
     * (NULL: encoders escape the name themselves). */
    char *json_member;
    size_t json_member_len;
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
    /* ,"schema":...,"table":... as JSON, made once per relation rather
     * than per event (NULL: encoders escape the names themselves). */
    char *json_names;
    size_t json_names_len;
} relation;

relation *relation_ref(relation *rel);
void relation_unref(relation *rel);
/* Fills each column's json_member from its name, and json_names. */
void relation_prepare_json(relation *rel);

#define EVENT_PART_COUNT 6

/* What a read event says of the copy that made it (its "snapshot" member).
 * Kept in the event itself: no ownership to track across sinks. */
typedef struct event_snapshot {
    char id[24];        /* the backfill's id */
    int64_t table_rows; /* the table's estimated row count (reltuples) */
    uint64_t chunk;     /* 1-based chunk number within the table */
    bool last;          /* the table's final chunk */
} event_snapshot;

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

    /* read: which backfill and chunk copied the row */
    event_snapshot snapshot;

    /* message: owned copies of the prefix and content */
    char *prefix;
    char *content;
    size_t content_len;
    bool transactional;

    /* commit: the counts, as JSON members (",\"event_count\":...") */
    char *txn_counts;

    /* Encoded JSON per pgspout_event_part, built on first request. */
    char *json[EVENT_PART_COUNT];
    size_t json_len[EVENT_PART_COUNT];
};

typedef struct pgspout_event event;

/* Frees the JSON caches and tuple arrays, drops the relation reference. */
void event_clear(event *ev);

/* Row images, by the rules the JSON's "key", "before" and "after" follow
 * (one place for both the JSON and the typed accessors of ABI 1.6). */

/* Insert, update, delete and read: the ops that carry rows. */
bool event_is_row_op(pgspout_op op);
/* The tuple of the old row image (NULL when the event has none), with
 * whether it holds the key columns only. */
const tuple *event_before_tuple(const event *ev, bool *key_only);
/* The tuple of the new row image (NULL for a delete). */
const tuple *event_after_tuple(const event *ev);
/* The tuple's value of relation column i, unchanged TOAST included; NULL
 * when there is no tuple or it is shorter than its relation. */
const colval *tuple_column(const tuple *t, int i);
/* The value key column i has in the event's "key": the new row's, the
 * old row's for a delete or where the new row's is an unchanged TOAST
 * value. NULL when neither image has one. */
const colval *event_key_column(const event *ev, int i);

/* A read event as an insert of the same row, for a sink that knows no read
 * events: a shallow copy sharing the tuples and the relation of `read`
 * (valid while `read` is), with JSON caches of its own. */
void event_view_as_insert(const event *read, event *view);
/* Frees what a view built itself (its JSON caches), nothing it shares. */
void event_view_clear(event *view);

#endif
