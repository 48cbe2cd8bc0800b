/* Decoder for the messages of PostgreSQL's pgoutput plugin ("Logical
 * Replication Message Formats" in the PostgreSQL docs), protocol versions 1
 * to 4. It parses the payload of one XLogData message and does no I/O.
 *
 * The daemon asks for protocol 1 (SOURCE_PGOUTPUT_PROTO_VERSION, source.h).
 * Versions 2 to 4 (streamed in-progress transactions, two-phase commit,
 * parallel streaming) are decoded all the same, on purpose: the fuzzers
 * feed them real captured messages, and streaming large transactions, a
 * planned change, will ask for them.
 *
 * Zero-copy: every string and column value in a decoded message points into
 * the caller's buffer, which must outlive the message. Only the tuple column
 * arrays, the relation column array and the truncate OID array are allocated;
 * pgoutput_msg_free releases them. */
#ifndef PGSPOUT_PGOUTPUT_H
#define PGSPOUT_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tuple.h"

/* Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01). */
#define PGOUTPUT_EPOCH_OFFSET_US INT64_C(946684800000000)

typedef struct pgoutput_parser {
    int proto_version; /* 1..4, as sent in START_REPLICATION */
    /* Between Stream Start and Stream Stop: changes carry a leading xid.
     * Maintained by pgoutput_parse; start with false. */
    bool in_stream;
    /* Protocol 4 with streaming = parallel: Stream Abort carries the abort
     * LSN and timestamp. Ignored below version 4. */
    bool stream_abort_has_lsn;
} pgoutput_parser;

typedef enum pgoutput_msg_type {
    PGO_BEGIN = 'B',
    PGO_MESSAGE = 'M',
    PGO_COMMIT = 'C',
    PGO_ORIGIN = 'O',
    PGO_RELATION = 'R',
    PGO_TYPE = 'Y',
    PGO_INSERT = 'I',
    PGO_UPDATE = 'U',
    PGO_DELETE = 'D',
    PGO_TRUNCATE = 'T',
    PGO_STREAM_START = 'S',
    PGO_STREAM_STOP = 'E',
    PGO_STREAM_COMMIT = 'c',
    PGO_STREAM_ABORT = 'A',
    PGO_BEGIN_PREPARE = 'b',
    PGO_PREPARE = 'P',
    PGO_COMMIT_PREPARED = 'K',
    PGO_ROLLBACK_PREPARED = 'r',
    PGO_STREAM_PREPARE = 'p'
} pgoutput_msg_type;

#define PGO_COLUMN_FLAG_KEY 1
#define PGO_MESSAGE_FLAG_TRANSACTIONAL 1
#define PGO_TRUNCATE_CASCADE 1
#define PGO_TRUNCATE_RESTART_IDENTITY 2

typedef struct pgoutput_column {
    uint8_t flags; /* PGO_COLUMN_FLAG_* */
    bool key;      /* part of the replica identity */
    const char *name;
    uint32_t type_oid;
    int32_t typmod;
} pgoutput_column;

/* Timestamps are microseconds since the Unix epoch (UTC); LSNs are raw. */
typedef struct pgoutput_msg {
    pgoutput_msg_type type;
    /* Set for messages that carry a transaction id: Begin, the two-phase and
     * stream control messages, and (v2+) changes inside a streamed block. */
    bool has_xid;
    uint32_t xid;
    union {
        struct {
            uint64_t final_lsn; /* the commit's LSN */
            int64_t commit_time;
        } begin;
        struct {
            uint8_t flags;
            uint64_t commit_lsn;
            uint64_t end_lsn;
            int64_t commit_time;
        } commit; /* also Stream Commit */
        struct {
            uint64_t commit_lsn; /* on the origin server */
            const char *name;
        } origin;
        struct {
            uint32_t oid;
            const char *nspname; /* "" means pg_catalog */
            const char *relname;
            char replica_identity; /* 'd', 'n', 'f', 'i' */
            uint16_t ncols;
            pgoutput_column *cols; /* malloc'd, NULL when ncols == 0 */
        } relation;
        struct {
            uint32_t oid;
            const char *nspname;
            const char *name;
        } type;
        struct {
            uint32_t relid;
            /* 0 when no old row was sent (Insert, some Updates), else 'K'
             * (replica identity columns only) or 'O' (whole old row). */
            char old_kind;
            tuple old_tuple;
            tuple new_tuple; /* empty for Delete */
        } change;            /* Insert, Update, Delete */
        struct {
            uint8_t options; /* PGO_TRUNCATE_* */
            bool cascade;
            bool restart_identity;
            uint32_t nrelids;
            uint32_t *relids; /* malloc'd, NULL when nrelids == 0 */
        } truncate;
        struct {
            uint8_t flags;
            bool transactional;
            uint64_t lsn;
            const char *prefix;
            uint32_t content_len;
            const char *content; /* not NUL-terminated */
        } message;
        struct {
            bool first_segment;
        } stream_start;
        struct {
            uint32_t subxid; /* equals xid for a top-level abort */
            bool has_abort_lsn;
            uint64_t abort_lsn;
            int64_t abort_time;
        } stream_abort;
        struct {
            uint8_t flags; /* Prepare and Stream Prepare; 0 for Begin Prepare */
            uint64_t prepare_lsn;
            uint64_t end_lsn;
            int64_t prepare_time;
            const char *gid;
        } prepare; /* Begin Prepare, Prepare, Stream Prepare */
        struct {
            uint8_t flags;
            uint64_t commit_lsn;
            uint64_t end_lsn;
            int64_t commit_time;
            const char *gid;
        } commit_prepared;
        struct {
            uint8_t flags;
            uint64_t prepare_end_lsn;
            uint64_t rollback_end_lsn;
            int64_t prepare_time;
            int64_t rollback_time;
            const char *gid;
        } rollback_prepared;
    } u;
} pgoutput_msg;

/* Decodes buf[0..len) into *out. On failure returns false, leaves nothing to
 * free in *out and the parser state unchanged, and writes a message naming
 * the message type, the field and the offset into err. Bytes left over after
 * a complete message are an error: they mean the parser and the server
 * disagree about the format (protocol version, stream_abort_has_lsn). */
bool pgoutput_parse(pgoutput_parser *p, const char *buf, size_t len,
                    pgoutput_msg *out, char *err, size_t errlen);

/* Frees what pgoutput_parse allocated; safe on a zeroed message. */
void pgoutput_msg_free(pgoutput_msg *m);

/* "Begin", "Stream Abort", ...; "unknown" for other values. */
const char *pgoutput_msg_type_name(pgoutput_msg_type t);

#endif
