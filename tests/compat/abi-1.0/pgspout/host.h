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

typedef enum pgspout_log_level {
    PGSPOUT_LOG_DEBUG = 0,
    PGSPOUT_LOG_INFO = 1,
    PGSPOUT_LOG_WARNING = 2,
    PGSPOUT_LOG_ERROR = 3
} pgspout_log_level;

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

    /* Event accessors. Strings are NUL-terminated and owned by the host. */
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
} pgspout_host_api;

#endif
