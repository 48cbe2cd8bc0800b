/* The Kinesis Data Streams API as the sink uses it: partition keys, the
 * PutRecords request body, and what a PutRecords answer means for each
 * record. */
#ifndef KINESIS_API_H
#define KINESIS_API_H

#include <stdbool.h>
#include <stddef.h>

#include "pipeline.h"

/* Limits of PutRecords (Kinesis Data Streams quotas). A record's size is
 * its data plus its partition key; so is a request's. */
#define KINESIS_MAX_RECORDS_PER_REQUEST 500
#define KINESIS_MAX_REQUEST_BYTES ((size_t)5 << 20)
#define KINESIS_MAX_RECORD_BYTES ((size_t)1 << 20)
#define KINESIS_MAX_PARTITION_KEY_CHARS 256

#define KINESIS_TARGET_PUT_RECORDS "Kinesis_20131202.PutRecords"
#define KINESIS_CONTENT_TYPE "application/x-amz-json-1.1"

typedef enum kinesis_key_mode {
    KINESIS_KEY_ROW,   /* schema.table plus the row's key */
    KINESIS_KEY_TABLE, /* schema.table */
    KINESIS_KEY_FIXED  /* one string for everything */
} kinesis_key_mode;

/* Unicode characters in a UTF-8 string (what the 256 limit counts). */
size_t kinesis_utf8_chars(const char *s);

/* The partition key of an event. key_json is the event's replica-identity
 * key as compact JSON (NULL, "" or "{}" when it has none: truncate and
 * schema events, tables without a key); it is appended after a colon in
 * KINESIS_KEY_ROW mode. A key over 256 characters is replaced by
 * schema.table:sha256:<hex of the full key>, so it stays deterministic. */
char *kinesis_partition_key(kinesis_key_mode mode, const char *fixed,
                            const char *schema, const char *table,
                            const char *key_json);

/* The partition key of an event that belongs to no table: `name` (a
 * message's prefix, a transaction's commit LSN) in the row and table
 * modes, the fixed string in KINESIS_KEY_FIXED (which orders everything).
 * Kinesis takes 1 to 256 characters: an empty name becomes "-", a longer
 * one "sha256:<hex of the name>", so the key stays deterministic. */
char *kinesis_named_partition_key(kinesis_key_mode mode, const char *fixed,
                                  const char *name);

typedef struct kinesis_entry {
    const char *data;
    size_t len;
    const char *partition_key;
} kinesis_entry;

/* {"StreamName":..,"Records":[{"Data":"<base64>","PartitionKey":..},..]} */
char *kinesis_put_records_body(const char *stream, const kinesis_entry *entries,
                               size_t n, size_t *len);

/* True for error types retrying can fix (throttling, limits, service
 * trouble); everything else (missing stream, access denied, validation,
 * bad credentials) needs a person. */
bool kinesis_error_is_transient(const char *type);

/* True for an answer saying the request's temporary credentials expired
 * (ExpiredTokenException, ExpiredToken): retried once new ones arrive. */
bool kinesis_error_is_expired_token(long status, const char *body);

/* Fills outcomes[0..n) for a PutRecords answer. For HTTP 200: per record
 * from Records[i] (SequenceNumber: DONE; ProvisionedThroughputExceeded,
 * InternalFailure and other codes: RETRY); a body that cannot be read or
 * does not match the request: RETRY. For other statuses: the __type of the
 * error body decides (transient types RETRY, others FATAL with the type and
 * message). Status 0 (no answer) leaves outcomes as they are. `stream`
 * names the stream in messages. */
void kinesis_put_records_outcomes(long status, const char *body,
                                  const char *stream, size_t n,
                                  kit_outcome *outcomes);

#endif
