/* What a change becomes on Kafka, apart from the producer: the message key
 * for each key mode, the key an update moved its row away from, and the
 * value in Debezium's PostgreSQL envelope. Pure functions of the parts of
 * an event (read through the host API by kafka_sink.c), so they are tested
 * without a host or a broker. */
#ifndef KAFKA_FORMAT_H
#define KAFKA_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pgspout/pgspout.h>

#include "kafka_json.h"
#include "strbuf.h"

typedef enum kafka_key_mode {
    KAFKA_KEY_ROW,   /* the row's replica identity, as JSON */
    KAFKA_KEY_TABLE, /* "schema.table" */
    KAFKA_KEY_NONE   /* no key: the partitioner spreads records */
} kafka_key_mode;

/* Debezium's placeholder for a value the server did not send (an
 * unchanged TOASTed column); its unavailable.value.placeholder default. */
#define KAFKA_DEBEZIUM_UNAVAILABLE "__debezium_unavailable_value"

/* One event as the sink reads it. JSON parts hold p NULL when not read
 * (the formats read only what they need). */
typedef struct kafka_change {
    pgspout_op op;
    const char *schema, *table;
    pgspout_position pos; /* commit_lsn, seq */
    pgspout_lsn lsn;
    uint32_t xid;
    int64_t commit_time_us; /* microseconds since the Unix epoch */
    json_span key;          /* {"id":1}; {} without a replica identity */
    json_span before, after;
    json_span unchanged_toast; /* ["col",...] */
    /* A read event of an on-demand backfill (`pgspout backfill`), not of
     * the initial snapshot: Debezium's incremental snapshot. */
    bool incremental;
} kafka_change;

/* True for the ops that carry a row (insert, update, delete, read). */
bool kafka_op_has_row(pgspout_op op);

/* Appends "schema.table", the key of KAFKA_KEY_TABLE and of schema events
 * on the schema topic. */
void kafka_table_key(strbuf *out, const char *schema, const char *table);

/* The message key of a change: false when it has none (KAFKA_KEY_NONE; in
 * KAFKA_KEY_ROW a truncate or a row without a replica identity), else the
 * key appended to out. */
bool kafka_message_key(kafka_key_mode mode, const kafka_change *c, strbuf *out);

/* For an update whose row changed its replica identity (its key): appends
 * the key it had, built from `before` in the key's member order with the
 * bytes the encoder wrote, and returns true. False when the key did not
 * change or `before` does not hold it. */
bool kafka_previous_key(const kafka_change *c, strbuf *out);

/* For a read event's whole JSON: true when its `snapshot` member names a
 * backfill other than the initial snapshot (whose id is initial-<LSN>). */
bool kafka_read_is_incremental(json_span event);

/* What the Debezium envelope says of its producer. */
typedef struct kafka_debezium_source {
    const char *version; /* source.version */
    const char *name;    /* source.name: Debezium's topic.prefix */
    const char *db;      /* source.db */
} kafka_debezium_source;

/* Debezium's op letter: c, u, d, r, t; NULL for events it has none for. */
const char *kafka_debezium_op(pgspout_op op);

/* Appends the value of a change in Debezium's PostgreSQL envelope, as its
 * JsonConverter writes it with schemas.enable=false: before, after (with
 * unchanged TOASTed columns as KAFKA_DEBEZIUM_UNAVAILABLE), source, op,
 * ts_ms/ts_us/ts_ns (processed_us, when the sink handled it) and
 * transaction (null). A truncate has no before/after, as in Debezium.
 * False, appending nothing, for an op without a letter. */
bool kafka_debezium_value(strbuf *out, const kafka_change *c,
                          const kafka_debezium_source *src,
                          int64_t processed_us);

#endif
