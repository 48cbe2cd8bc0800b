/* The Kinesis Producer Library's aggregated record: several user records in
 * one Kinesis record, which the Kinesis Client Library (and every consumer
 * built on it) splits up again. Layout: the 4 magic bytes F3 89 9A C2, an
 * AggregatedRecord protocol buffer, then the 16-byte MD5 of that protocol
 * buffer.
 *
 *   message AggregatedRecord {
 *     repeated string partition_key_table = 1;
 *     repeated string explicit_hash_key_table = 2;
 *     repeated Record records = 3;
 *   }
 *   message Record {
 *     required uint64 partition_key_index = 1;
 *     optional uint64 explicit_hash_key_index = 2;
 *     required bytes data = 3;
 *     repeated Tag tags = 4;
 *   }
 *   message Tag { required string key = 1; optional string value = 2; }
 *
 * The sink only aggregates records sharing one partition key, so the
 * partition key table has one entry, every record points at it, and no
 * explicit hash keys or tags are written. */
#ifndef KINESIS_KPL_H
#define KINESIS_KPL_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define KPL_MAGIC "\xF3\x89\x9A\xC2"
#define KPL_MAGIC_LEN 4
#define KPL_DIGEST_LEN 16

typedef struct kpl_aggregate {
    strbuf records; /* encoded "records" fields, in order */
    size_t count;
} kpl_aggregate;

#define KPL_AGGREGATE_INIT                                                     \
    {                                                                          \
        STRBUF_INIT, 0                                                         \
    }

/* Bytes of a protobuf varint holding v. */
size_t kpl_varint_size(uint64_t v);
/* Appends v as a protobuf varint. */
void kpl_put_varint(strbuf *out, uint64_t v);

/* Adds one user record (all share partition key index 0). */
void kpl_aggregate_add(kpl_aggregate *agg, const void *data, size_t len);

/* Size of the finished aggregated record, magic and digest included, if a
 * record of `len` bytes were added (len 0 with add_one false: as it is). */
size_t kpl_aggregate_size(const kpl_aggregate *agg, size_t partition_key_len,
                          size_t len, int add_one);

/* Builds magic + AggregatedRecord + MD5 into a malloc'd buffer and resets
 * agg for reuse. */
char *kpl_aggregate_finish(kpl_aggregate *agg, const char *partition_key,
                           size_t *len);

void kpl_aggregate_free(kpl_aggregate *agg);

#endif
