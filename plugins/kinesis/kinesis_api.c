/* PutRecords requests and answers. */
#include "kinesis_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base64.h"
#include "json_string.h"
#include "sigv4.h"
#include "strbuf.h"

size_t kinesis_utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool has_key(const char *key_json)
{
    return key_json && *key_json && strcmp(key_json, "{}") != 0 &&
           strcmp(key_json, "null") != 0;
}

char *kinesis_partition_key(kinesis_key_mode mode, const char *fixed,
                            const char *schema, const char *table,
                            const char *key_json)
{
    strbuf sb = STRBUF_INIT;

    if (mode == KINESIS_KEY_FIXED)
        return xstrdup(fixed);
    sbuf_appendf(&sb, "%s.%s", schema, table);
    if (mode == KINESIS_KEY_ROW && has_key(key_json))
        sbuf_appendf(&sb, ":%s", key_json);
    if (kinesis_utf8_chars(sb.data) > KINESIS_MAX_PARTITION_KEY_CHARS) {
        char digest[65];
        strbuf hashed = STRBUF_INIT;

        sigv4_sha256_hex(sb.data, sb.len, digest);
        sbuf_appendf(&hashed, "%s.%s:sha256:%s", schema, table, digest);
        sbuf_free(&sb);
        /* Identifiers are at most 63 bytes each, so this always fits. */
        return sbuf_detach(&hashed);
    }
    return sbuf_detach(&sb);
}

char *kinesis_named_partition_key(kinesis_key_mode mode, const char *fixed,
                                  const char *name)
{
    if (mode == KINESIS_KEY_FIXED)
        return xstrdup(fixed);
    if (!*name)
        return xstrdup("-");
    if (kinesis_utf8_chars(name) > KINESIS_MAX_PARTITION_KEY_CHARS) {
        char digest[65];
        strbuf hashed = STRBUF_INIT;

        sigv4_sha256_hex(name, strlen(name), digest);
        sbuf_appendf(&hashed, "sha256:%s", digest);
        return sbuf_detach(&hashed);
    }
    return xstrdup(name);
}

char *kinesis_put_records_body(const char *stream, const kinesis_entry *entries,
                               size_t n, size_t *len)
{
    strbuf sb = STRBUF_INIT;
    size_t estimate = 64 + strlen(stream);

    for (size_t i = 0; i < n; i++)
        estimate += BASE64_ENCODED_LEN(entries[i].len) + 48 +
                    2 * strlen(entries[i].partition_key);
    sbuf_reserve(&sb, estimate);
    sbuf_append_str(&sb, "{\"StreamName\":");
    json_append_string(&sb, stream, strlen(stream));
    sbuf_append_str(&sb, ",\"Records\":[");
    for (size_t i = 0; i < n; i++) {
        sbuf_append_str(&sb, i ? ",{\"Data\":\"" : "{\"Data\":\"");
        sbuf_reserve(&sb, BASE64_ENCODED_LEN(entries[i].len));
        sb.len += base64_encode_into(sb.data + sb.len, entries[i].data,
                                     entries[i].len);
        sbuf_append_str(&sb, "\",\"PartitionKey\":");
        json_append_string(&sb, entries[i].partition_key,
                           strlen(entries[i].partition_key));
        sbuf_append_char(&sb, '}');
    }
    sbuf_append_str(&sb, "]}");
    *len = sb.len;
    return sbuf_detach(&sb);
}

bool kinesis_error_is_transient(const char *type)
{
    static const char *const transient[] = {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "KMSThrottlingException",
        "InternalFailure",
        "InternalFailureException",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        /* The clock was off; the next attempt is signed anew. */
        "RequestExpired",
        "RequestTimeTooSkewed",
        /* A stream being resharded or created answers this briefly. */
        "ResourceInUseException",
        /* Temporary credentials lapsed: the sink fetches new ones
         * (kinesis_error_is_expired_token) and the retry uses them. */
        "ExpiredTokenException",
        "ExpiredToken",
    };

    if (!type)
        return false;
    for (size_t i = 0; i < sizeof transient / sizeof *transient; i++)
        if (strcmp(type, transient[i]) == 0)
            return true;
    return false;
}

/* "com.amazonaws.kinesis.v20131202#ResourceNotFoundException" and
 * "ResourceNotFoundException:http://..." both name ResourceNotFoundException.
 */
static void error_type_name(const char *raw, char *out, size_t outlen)
{
    const char *hash = strrchr(raw, '#');
    const char *start = hash ? hash + 1 : raw;
    size_t n = strcspn(start, ":");

    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, start, n);
    out[n] = '\0';
}

bool kinesis_error_is_expired_token(long status, const char *body)
{
    json_t *doc;
    const char *raw;
    char type[128] = "";

    if (status < 400 || status >= 500 || !body)
        return false;
    doc = json_loads(body, 0, NULL);
    raw = json_string_value(json_object_get(doc, "__type"));
    if (raw)
        error_type_name(raw, type, sizeof type);
    json_decref(doc);
    return strcmp(type, "ExpiredTokenException") == 0 ||
           strcmp(type, "ExpiredToken") == 0;
}

static void request_error(long status, json_t *doc, const char *body,
                          const char *stream, size_t n, kit_outcome *outcomes)
{
    const char *raw_type = json_string_value(json_object_get(doc, "__type"));
    const char *message = json_string_value(json_object_get(doc, "message"));
    char type[128] = "";
    kit_outcome_kind kind;

    if (!message)
        message = json_string_value(json_object_get(doc, "Message"));
    if (raw_type)
        error_type_name(raw_type, type, sizeof type);
    if (*type)
        kind =
            kinesis_error_is_transient(type) || status >= 500 || status == 429
                ? KIT_RETRY
                : KIT_FATAL;
    else
        kind = status >= 500 || status == 429 || status == 408 ? KIT_RETRY
                                                               : KIT_FATAL;
    if (*type)
        kit_outcome_set_all(
            outcomes, n, kind,
            "PutRecords to stream \"%s\" failed with HTTP %ld: %s: %.300s",
            stream, status, type, message ? message : "(no message)");
    else
        kit_outcome_set_all(
            outcomes, n, kind,
            "PutRecords to stream \"%s\" failed with HTTP %ld: %.200s", stream,
            status, body && *body ? body : "(empty answer)");
}

void kinesis_put_records_outcomes(long status, const char *body,
                                  const char *stream, size_t n,
                                  kit_outcome *outcomes)
{
    json_t *doc, *records;
    json_error_t jerr;

    if (status == 0)
        return;
    doc = body ? json_loads(body, 0, &jerr) : NULL;
    if (status != 200) {
        request_error(status, doc, body, stream, n, outcomes);
        json_decref(doc);
        return;
    }
    records = json_object_get(doc, "Records");
    if (!json_is_array(records) || json_array_size(records) != n) {
        /* An answer we cannot map to the records leaves their fate open;
         * sending again can only duplicate, never lose. */
        kit_outcome_set_all(outcomes, n, KIT_RETRY,
                            "PutRecords answer without one result per record");
        json_decref(doc);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *rec = json_array_get(records, i);
        const char *seq =
            json_string_value(json_object_get(rec, "SequenceNumber"));
        const char *code = json_string_value(json_object_get(rec, "ErrorCode"));
        const char *message =
            json_string_value(json_object_get(rec, "ErrorMessage"));

        if (seq && !code) {
            outcomes[i].kind = KIT_DONE;
            outcomes[i].reason[0] = '\0';
            continue;
        }
        /* Per record, the API documents only throughput and internal
         * failures, both transient; an unknown code is retried too (and
         * logged each time) rather than dropping a change. */
        kit_outcome_set(&outcomes[i], KIT_RETRY, "%s: %.300s",
                        code ? code : "record without SequenceNumber",
                        message ? message : "");
    }
    json_decref(doc);
}
