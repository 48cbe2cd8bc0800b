/* Change events, as a sink sees them: opaque, read through the host API.
 * An event and everything read from it stay valid only until the write
 * callback that received it returns; a sink that keeps data copies it. */
#ifndef PGSPOUT_EVENT_H
#define PGSPOUT_EVENT_H

typedef struct pgspout_event pgspout_event;

typedef enum pgspout_op {
    PGSPOUT_OP_INSERT = 1,
    PGSPOUT_OP_UPDATE = 2,
    PGSPOUT_OP_DELETE = 3,
    PGSPOUT_OP_TRUNCATE = 4,
    PGSPOUT_OP_SCHEMA = 5,
    /* ABI 1.2: a row copied by a snapshot or backfill, as it was at the
     * event's position; read like an insert (key, after). A sink built for
     * an older minor never receives it: the host hands it such events as
     * inserts. */
    PGSPOUT_OP_READ = 6,
    /* ABI 1.5 (never handed to a sink declaring an older minor, see
     * abi.h). A logical decoding message (pg_logical_emit_message): no
     * schema or table (the accessors return NULL); the JSON carries
     * "prefix", "content" (or "content_base64") and "transactional". */
    PGSPOUT_OP_MESSAGE = 7,
    /* ABI 1.5: the start and the end of a delivered transaction
     * (transaction_events); no schema or table. The commit's JSON counts
     * the transaction's events ("event_count", "tables", "messages"). */
    PGSPOUT_OP_BEGIN = 8,
    PGSPOUT_OP_COMMIT = 9
} pgspout_op;

/* Parts of an event that can be had as JSON on their own. */
typedef enum pgspout_event_part {
    PGSPOUT_PART_EVENT = 0,  /* the whole canonical event object */
    PGSPOUT_PART_KEY = 1,    /* {"col":value,...} of replica-identity columns */
    PGSPOUT_PART_BEFORE = 2, /* old row object, or null */
    PGSPOUT_PART_AFTER = 3,  /* new row object, or null */
    PGSPOUT_PART_UNCHANGED_TOAST = 4, /* array of column names */
    PGSPOUT_PART_COLUMNS = 5 /* schema events: array of column objects */
} pgspout_event_part;

#endif
