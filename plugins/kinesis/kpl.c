/* A minimal protocol-buffer encoder for the three messages of the KPL
 * aggregated record; Debian's protobuf-c would need a generated file and a
 * compiler at build time for what is a few varints and length prefixes. */
#include "kpl.h"

#include <string.h>

#include <openssl/evp.h>

/* Wire types: 0 varint, 2 length-delimited. */
#define PB_TAG(field, wire) ((uint64_t)(field) << 3 | (wire))

#define AGG_PARTITION_KEY_TABLE PB_TAG(1, 2)
#define AGG_RECORDS PB_TAG(3, 2)
#define RECORD_PARTITION_KEY_INDEX PB_TAG(1, 0)
#define RECORD_DATA PB_TAG(3, 2)

size_t kpl_varint_size(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

void kpl_put_varint(strbuf *out, uint64_t v)
{
    while (v >= 0x80) {
        sbuf_append_char(out, (char)(0x80 | (v & 0x7f)));
        v >>= 7;
    }
    sbuf_append_char(out, (char)v);
}

static size_t record_message_size(size_t len)
{
    /* partition_key_index = 0, then data */
    return 2 + kpl_varint_size(RECORD_DATA) + kpl_varint_size(len) + len;
}

static size_t framed_size(size_t len)
{
    return 1 + kpl_varint_size(len) + len;
}

void kpl_aggregate_add(kpl_aggregate *agg, const void *data, size_t len)
{
    kpl_put_varint(&agg->records, AGG_RECORDS);
    kpl_put_varint(&agg->records, record_message_size(len));
    kpl_put_varint(&agg->records, RECORD_PARTITION_KEY_INDEX);
    kpl_put_varint(&agg->records, 0);
    kpl_put_varint(&agg->records, RECORD_DATA);
    kpl_put_varint(&agg->records, len);
    sbuf_append(&agg->records, data, len);
    agg->count++;
}

size_t kpl_aggregate_size(const kpl_aggregate *agg, size_t partition_key_len,
                          size_t len, int add_one)
{
    size_t pb = framed_size(partition_key_len) + agg->records.len;

    if (add_one)
        pb += framed_size(record_message_size(len));
    return KPL_MAGIC_LEN + pb + KPL_DIGEST_LEN;
}

char *kpl_aggregate_finish(kpl_aggregate *agg, const char *partition_key,
                           size_t *len)
{
    strbuf out = STRBUF_INIT;
    size_t pk_len = strlen(partition_key);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    size_t pb_start;

    sbuf_reserve(&out, kpl_aggregate_size(agg, pk_len, 0, 0));
    sbuf_append(&out, KPL_MAGIC, KPL_MAGIC_LEN);
    pb_start = out.len;
    kpl_put_varint(&out, AGG_PARTITION_KEY_TABLE);
    kpl_put_varint(&out, pk_len);
    sbuf_append(&out, partition_key, pk_len);
    if (agg->records.len)
        sbuf_append(&out, agg->records.data, agg->records.len);
    if (!EVP_Digest(out.data + pb_start, out.len - pb_start, digest,
                    &digest_len, EVP_md5(), NULL) ||
        digest_len != KPL_DIGEST_LEN)
        memset(digest, 0, KPL_DIGEST_LEN); /* consumers then reject it */
    sbuf_append(&out, (const char *)digest, KPL_DIGEST_LEN);
    sbuf_reset(&agg->records);
    agg->count = 0;
    *len = out.len;
    return sbuf_detach(&out);
}

void kpl_aggregate_free(kpl_aggregate *agg)
{
    sbuf_free(&agg->records);
    agg->count = 0;
}
