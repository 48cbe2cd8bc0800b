/* What the elastic sink says to Elasticsearch/OpenSearch and how it reads
 * the answers: index names, document ids, versions, _bulk NDJSON lines and
 * per-item results. Pure functions, no I/O, so they are unit-tested on their
 * own. */
#ifndef ELASTIC_FORMAT_H
#define ELASTIC_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* Elasticsearch limits */
#define ES_MAX_INDEX_NAME 255 /* bytes */
#define ES_MAX_ID 512         /* bytes */
/* External versions are positive Java longs. */
#define ES_MAX_VERSION INT64_MAX
/* The external version of a read event (a row copied by a backfill): below
 * every change's (a WAL position), so a read is indexed only where no
 * document, and no delete tombstone, exists yet. Not the read's own
 * position: a transaction open while the chunk was read can commit after
 * it with an earlier LSN, and its change must still win (README, "Read
 * events"). */
#define ES_READ_VERSION 1

typedef enum es_action {
    ES_ACTION_INDEX = 0,
    ES_ACTION_DELETE = 1,
    ES_ACTION_UPDATE = 2 /* the TOAST-preserving scripted partial update */
} es_action;

/* ---- index names ---- */

/* Checks a template: only {schema} and {table} placeholders. */
bool es_index_template_check(const char *tmpl, char *err, size_t errlen);

/* Expands the template, lower-cases the result and checks it against
 * Elasticsearch's index name rules. Returns a malloc'd name or NULL with
 * err set. */
char *es_index_name(const char *tmpl, const char *schema, const char *table,
                    char *err, size_t errlen);

/* Elasticsearch's rules: lower case, no \ / * ? " < > | , # : or space, not
 * starting with - _ +, not . or .., at most 255 bytes. */
bool es_index_name_valid(const char *name, char *err, size_t errlen);

/* ---- document ids ---- */

/* The document _id for a key object {"col":value,...} (replica-identity
 * columns in table column order): one key column gives its value's text (a
 * string as is, anything else as compact JSON: 42, true, [1,2]); several
 * give the compact JSON array of the values in column order, e.g.
 * [7,"a\"b"]. Within one table the column count is fixed, so the two forms
 * never meet and every id maps back to exactly one key. When `values` is
 * not NULL the values are taken from that object instead (the old row of an
 * update, for the id the row had before its key changed), by the key's
 * column names; a name missing there keeps the key's value. Returns a
 * malloc'd id, or NULL with err set (no key columns, invalid JSON, longer
 * than 512 bytes). */
char *es_doc_id(const char *key_json, size_t key_len, const char *values_json,
                size_t values_len, char *err, size_t errlen);

/* True when es_doc_id gives a one-column key of type `type_oid` whose
 * value PostgreSQL printed as text[0..len) the id `text` itself: an
 * integer (int2, int4, int8), whose JSON is its digits, or a string type
 * (text, varchar, char(n), name, uuid) whose text is valid UTF-8 (JSON
 * would replace malformed bytes), 1 to ES_MAX_ID bytes long. Lets the sink
 * take the id from typed column access without the key's JSON. */
bool es_id_is_key_text(uint32_t type_oid, const char *text, size_t len);

/* ---- bulk lines ---- */

/* Appends an index action with external version and the source line. */
void es_bulk_index(strbuf *b, const char *index, const char *id,
                   uint64_t version, const char *source, size_t source_len);
/* Appends a delete action with external version. */
void es_bulk_delete(strbuf *b, const char *index, const char *id,
                    uint64_t version);
/* Appends an update action running the merge script: the fields of `doc`
 * are set, every other field is kept, and `version_field` records the
 * version. The script is a no-op when the document already holds that
 * version or a newer one (its version_field, or its _version when the last
 * write was an external-versioned index). */
void es_bulk_update(strbuf *b, const char *index, const char *id,
                    uint64_t version, const char *version_field,
                    const char *doc, size_t doc_len);

/* The painless source of the merge script (constant, so the node compiles
 * it once and caches it). */
extern const char es_merge_script[];

/* The body that creates the index of message, begin and commit events
 * (PUT /<index>): their fields mapped explicitly, so that the first
 * document's values never decide the types by guessing (a message whose
 * content looks like a date would make every later one a mapping error),
 * and a commit's per-table counts stored but not mapped (one field per
 * table would grow the mapping without bound). */
extern const char es_event_index_body[];

/* ---- bulk results ---- */

typedef enum es_item_result {
    ES_ITEM_DONE = 0,
    ES_ITEM_RETRY = 1,
    ES_ITEM_REJECTED = 2,
    ES_ITEM_FATAL = 3,
    ES_ITEM_MISSING = 4 /* DONE, worth a warning: a partial update found no
                           document to update */
} es_item_result;

typedef struct es_item {
    es_item_result result;
    int status;
    char reason[400];
} es_item;

/* Classifies one bulk item from its action and HTTP status and error type:
 * 2xx done; 409 done for index/delete (the document holds this version or a
 * newer one: a replay) but retried for update (a concurrent write); 404
 * done for delete, MISSING for update, fatal for index (no such index and
 * no automatic creation); 429, 408 and 5xx retried; 401/403 fatal; any
 * other 4xx rejected. */
es_item_result es_classify_item(es_action action, int status,
                                const char *error_type);

/* Parses a _bulk response body into items[0..nitems). Returns false with err
 * set when the body is not a bulk answer or holds another number of items.
 */
bool es_parse_bulk_response(const char *body, size_t len,
                            const es_action *actions, es_item *items,
                            size_t nitems, char *err, size_t errlen);

#endif
