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
    PGSPOUT_OP_SCHEMA = 5
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
