/* A backfill request: the logical decoding message that asks the pgspout
 * streaming from one slot to copy tables again (README "Snapshot and
 * backfill"). `pgspout backfill` builds and emits it; the daemon, and
 * `pgspout backfill --status` for requests still in the WAL, read it back
 * with backfill_request_parse. One JSON document, written by any client as
 *
 *   SELECT pg_logical_emit_message(true, 'pgspout',
 *       '{"type":"backfill","slot":"s","id":"…","include":["orders"],
 *         "exclude":[],"where":null}');
 *
 * so the parser trusts nothing in it: a hand-written request with a
 * `where` that could change the structure of the statement it is put into
 * is refused like any other malformed one. */
#ifndef PGSPOUT_BACKFILL_MESSAGE_H
#define PGSPOUT_BACKFILL_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>

/* The prefix of every logical decoding message pgspout emits or acts on. */
#define BACKFILL_MESSAGE_PREFIX "pgspout"

/* Ids `pgspout backfill` makes: 16 lower-case hex digits. An id may be
 * 1 to BACKFILL_ID_MAX characters of [A-Za-z0-9._:/-] (the daemon's own
 * initial snapshot is "initial-<LSN>"), which a file name, a log line and
 * the status table all take as they are. */
#define BACKFILL_ID_LEN 16
#define BACKFILL_ID_MAX 31

typedef struct backfill_request {
    char *slot;
    char *id;
    char **include;   /* table patterns; none: every table the daemon's */
    size_t n_include; /* filters select */
    char **exclude;
    size_t n_exclude;
    char *where; /* a boolean SQL expression over the table; NULL: none */
} backfill_request;

/* Whether id is a valid request id (see BACKFILL_ID_MAX). */
bool backfill_id_valid(const char *id);

typedef enum backfill_message_kind {
    BACKFILL_MESSAGE_REQUEST, /* a well-formed request, parsed */
    BACKFILL_MESSAGE_OTHER,   /* pgspout's own message of another type
                                 (a chunk watermark): not a request */
    BACKFILL_MESSAGE_INVALID  /* not JSON, or a malformed request */
} backfill_message_kind;

/* The request's message content: compact JSON, members in the order of
 * the example above; "where" is null when r->where is NULL. */
char *backfill_request_json(const backfill_request *r);

/* Reads a message content of len bytes (not NUL-terminated). A request
 * goes into *out (free it with backfill_request_free); INVALID comes with
 * the reason in err. `include` and `exclude` may be absent or null (no
 * patterns), `where` absent, null or "" (none). */
backfill_message_kind backfill_message_parse(const char *content, size_t len,
                                             backfill_request *out, char *err,
                                             size_t errlen);

void backfill_request_free(backfill_request *r);

/* A fresh random id (BACKFILL_ID_LEN hex digits and a NUL) into id; false
 * when the system has no randomness to give. */
bool backfill_new_id(char id[BACKFILL_ID_LEN + 1]);

/* Why `where` cannot be put between parentheses into a statement as one
 * boolean expression (NULL when it can): empty, a ';', a ')' that closes
 * more than it opened, an unclosed '(', or text ending inside a quoted
 * string, a quoted identifier, a dollar-quoted string or a comment. The
 * lexical rules are PostgreSQL's with standard_conforming_strings on (its
 * default since 9.1). Whether the expression itself is valid SQL for a
 * table is for the server to say. */
const char *backfill_where_problem(const char *where);

#endif
