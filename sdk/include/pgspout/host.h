/* The table of functions the host hands a sink (Redis-module style): a sink
 * links no host symbols and reaches the host only through this table.
 *
 * Append-only (as SQLite's sqlite3_api_routines): fields are never removed,
 * reordered or retyped within an ABI major. A field added in minor N is used
 * only after checking PGSPOUT_HAS_FIELD(host, pgspout_host_api, field), since
 * an older host hands a shorter table. */
#ifndef PGSPOUT_HOST_H
#define PGSPOUT_HOST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi.h"
#include "event.h"
#include "position.h"

/* The host's handle for one sink instance; passed back on every call. */
typedef struct pgspout_sink_handle pgspout_sink_handle;

/* The largest piece event_json_stream hands to its writer. */
#define PGSPOUT_JSON_PIECE_MAX ((size_t)64 << 10)

/* Takes the next piece of streamed JSON (`length` bytes, not NUL-terminated,
 * valid only during the call). Returns false to stop the stream, e.g. after
 * a failed write. */
typedef bool (*pgspout_json_writer)(void *ctx, const char *data, size_t length);

/* Takes one option of a prefix family (see option_prefixed); returns false
 * to stop the visit. */
typedef bool (*pgspout_option_visitor)(void *ctx, const char *name,
                                       const char *value);

typedef enum pgspout_log_level {
    PGSPOUT_LOG_DEBUG = 0,
    PGSPOUT_LOG_INFO = 1,
    PGSPOUT_LOG_WARNING = 2,
    PGSPOUT_LOG_ERROR = 3
} pgspout_log_level;

/* What happened to records a sink sent to its service (report_records). */
typedef enum pgspout_record_outcome {
    PGSPOUT_RECORDS_ACCEPTED = 0,     /* the service took them */
    PGSPOUT_RECORDS_RETRIED = 1,      /* a transient failure: sent again */
    PGSPOUT_RECORDS_REJECTED = 2,     /* refused for good by the service */
    PGSPOUT_RECORDS_DEAD_LETTERED = 3 /* rejected, and written to the
                                         dead-letter file */
} pgspout_record_outcome;

/* What an event's row image holds for one column (event_value, ABI 1.6). */
typedef enum pgspout_value_state {
    PGSPOUT_VALUE_TEXT = 0, /* a value: its text as PostgreSQL printed it */
    PGSPOUT_VALUE_NULL = 1, /* SQL NULL */
    /* Not sent: an unchanged TOASTed value (an update, or an old row)
     * that the server did not repeat. */
    PGSPOUT_VALUE_UNCHANGED_TOAST = 2,
    /* The image has no such column: no image at all (the old row of an
     * insert, the new row of a delete, any row of an event without one),
     * a non-key column of an old image that holds the key only, a column
     * index out of range. */
    PGSPOUT_VALUE_ABSENT = 3,
    /* A value in its type's binary (send) form, from pgoutput's binary
     * mode, which pgspout never asks for; read like TEXT's bytes. */
    PGSPOUT_VALUE_BINARY = 4
} pgspout_value_state;

/* Which row image of an event event_value reads (ABI 1.6). */
typedef enum pgspout_row_image {
    /* The old row, as the JSON's "before": only updates and deletes that
     * the table's replica identity made send one; key columns only unless
     * it is REPLICA IDENTITY FULL. */
    PGSPOUT_ROW_OLD = 0,
    /* The new row, as "after": inserts, reads and updates. */
    PGSPOUT_ROW_NEW = 1,
    /* The replica-identity key, as "key": the key columns of the new row,
     * of the old row for a delete, and of the old row where the new one
     * has an unchanged TOAST key value; every other column is ABSENT. */
    PGSPOUT_ROW_KEY = 2
} pgspout_row_image;

typedef struct pgspout_host_api {
    /* Size of this table as the host built it, and the host's ABI version. */
    uint32_t size;
    uint16_t abi_major;
    uint16_t abi_minor;

    /* --- ABI 1.0 --- */

    /* Log a line prefixed with the sink instance's name. Thread-safe. */
    void (*log)(pgspout_sink_handle *sink, pgspout_log_level level,
                const char *fmt, ...) PGSPOUT_PRINTF(3, 4);

    /* Typed option lookup. The host validated every option against the
     * sink's table and applied defaults, so a declared option with a default
     * is always found. Returns false when the option is unset (no value and
     * no default) or not of that type. Strings stay valid for the sink
     * instance's lifetime. Durations are in milliseconds. */
    bool (*option_string)(pgspout_sink_handle *sink, const char *name,
                          const char **value);
    bool (*option_int)(pgspout_sink_handle *sink, const char *name,
                       int64_t *value);
    bool (*option_bool)(pgspout_sink_handle *sink, const char *name,
                        bool *value);
    bool (*option_double)(pgspout_sink_handle *sink, const char *name,
                          double *value);

    /* Event accessors. Strings are NUL-terminated and owned by the host.
     * Message, begin and commit events (ABI 1.5) have no schema or table:
     * NULL. */
    pgspout_op (*event_op)(const pgspout_event *event);
    const char *(*event_schema)(const pgspout_event *event);
    const char *(*event_table)(const pgspout_event *event);
    pgspout_position (*event_position)(const pgspout_event *event);
    pgspout_lsn (*event_lsn)(const pgspout_event *event);
    uint32_t (*event_xid)(const pgspout_event *event);
    /* Microseconds since 1970-01-01 00:00:00 UTC. */
    int64_t (*event_commit_time)(const pgspout_event *event);

    /* Compact JSON of an event, or of one part of it. The buffer is owned by
     * the host, NUL-terminated, and valid until the write callback returns;
     * the whole-event form is encoded once and shared by every sink. */
    const char *(*event_json)(const pgspout_event *event,
                              pgspout_event_part part, size_t *length);

    /* Format an LSN as PostgreSQL does ("16/B374D848") into buf (>= 20
     * bytes); returns buf. */
    char *(*format_lsn)(pgspout_lsn lsn, char *buf, size_t buflen);

    /* Everything this sink received up to and including `upto` is durable.
     * Calls must not go backwards. Thread-safe; may be called from any
     * thread, inside or outside a callback, until destroy returns. */
    void (*ack_durable)(pgspout_sink_handle *sink, pgspout_position upto);

    /* "insert", "update", "delete", "truncate", "schema": the names the
     * canonical JSON uses; NULL for a value outside pgspout_op. */
    const char *(*op_name)(pgspout_op op);

    /* True once the user asked pgspout to stop and it no longer waits for
     * this sink. A sink blocked waiting for its service (a flush that cannot
     * complete during an outage, a full queue) then returns PGSPOUT_RETRY
     * promptly, and the host stops without confirming anything the sink has
     * not acknowledged. A sink whose last report_records said ACCEPTED is
     * not failing: the first signal lets it finish (false), a second one
     * does not. Thread-safe. */
    bool (*should_stop)(pgspout_sink_handle *sink);

    /* --- ABI 1.1 --- */

    /* The same JSON as event_json, handed to `writer` in order, in pieces of
     * at most PGSPOUT_JSON_PIECE_MAX bytes, instead of as one buffer: the
     * host never builds it whole (unless event_json already did), so a sink
     * that passes the pieces on (a file, a socket) holds no whole copy of an
     * event with a huge value. Returns true once every piece was taken;
     * false when `writer` returned false (no piece follows) or `part` is out
     * of range. Call it during the write callback, like event_json. */
    bool (*event_json_stream)(const pgspout_event *event,
                              pgspout_event_part part,
                              pgspout_json_writer writer, void *ctx);

    /* --- ABI 1.3 --- */

    /* What happened to `n` records the sink sent to its service, for
     * pgspout's metrics and readiness (README, "Production"): accepted,
     * to be sent again after a transient failure, refused for good,
     * written to a dead-letter file. A sink that reports RETRIED counts as
     * retrying (/ready answers 503) until it reports ACCEPTED records
     * again. While the last report was ACCEPTED, should_stop stays false
     * at the first stop signal (see there). Optional: a sink that never
     * calls it is judged by its write and flush answers alone.
     * Thread-safe. */
    void (*report_records)(pgspout_sink_handle *sink,
                           pgspout_record_outcome what, uint64_t n);

    /* --- ABI 1.4 --- */

    /* Calls visit(ctx, name, value) for each option set under the prefix
     * option `prefix` (declared with PGSPOUT_OPTF_PREFIX, e.g. "kafka."),
     * in the order given, with the full name ("kafka.security.protocol")
     * and the value as text (a config file's number or boolean as it would
     * be written: "5", "true"). Stops early when visit returns false.
     * Returns false when visit did, or when `prefix` names no prefix
     * option of this sink. Strings are valid during the call only. */
    bool (*option_prefixed)(pgspout_sink_handle *sink, const char *prefix,
                            pgspout_option_visitor visit, void *ctx);

    /* --- ABI 1.6: typed column access --- */

    /* The columns of an event's table, the ones its JSON's rows and
     * "columns" name, read without building any JSON. Columns are numbered
     * from 0 in the table's order (the order of a schema event's
     * "columns"). Events of no table (messages, begin, commit) have 0.
     * Strings are NUL-terminated, owned by the host, valid as the event
     * is. Out of range: NULL, 0, false. */
    int (*event_column_count)(const pgspout_event *event);
    const char *(*event_column_name)(const pgspout_event *event, int column);
    /* The column's type, as pg_attribute.atttypid, and as format_type
     * prints it with its modifier ("character varying(20)", "integer[]"):
     * the JSON's "type_oid" and "type". */
    uint32_t (*event_column_type_oid)(const pgspout_event *event, int column);
    const char *(*event_column_type_name)(const pgspout_event *event,
                                          int column);
    /* True when the column is part of the table's replica identity: the
     * columns of the JSON's "key". */
    bool (*event_column_is_key)(const pgspout_event *event, int column);

    /* What row image `row` of the event holds in `column`. For
     * PGSPOUT_VALUE_TEXT, *text points at the value's text exactly as
     * the type's output function printed it (what psql shows for
     * `SELECT col`: "t" for a boolean, although bool::text is "true";
     * "{1,2}" for an array; no JSON escaping)
     * and *length is its length in bytes. The text is NOT NUL-terminated:
     * use *length. PGSPOUT_VALUE_BINARY gives the bytes the same way.
     * For NULL, UNCHANGED_TOAST and ABSENT, *text is NULL and *length 0.
     * text and length may be NULL when only the state is wanted. Valid
     * until the write callback that received the event returns. A row
     * image an op does not have, or a `row` outside pgspout_row_image,
     * reads as ABSENT in every column. */
    pgspout_value_state (*event_value)(const pgspout_event *event,
                                       pgspout_row_image row, int column,
                                       const char **text, size_t *length);
} pgspout_host_api;

#endif
