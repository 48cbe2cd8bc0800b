/* The sink kit (plugins/kit), which every network sink links: its delivery
 * pipeline (this header), HTTP (http.h) and the dead-letter file
 * (dead_letter.h). Every name it exports starts with kit_ (KIT_ for
 * macros).
 *
 * The pipeline batches records into requests, keeps several requests in
 * flight, retries what failed transiently (exponential backoff with
 * jitter, without limit), splits a request the service refuses as too
 * large into halves (down to single records), keeps one ordering key's
 * records in order across partial failures and splits, sends what the
 * service rejects for good to the
 * dead-letter file (when configured) or stops, and acknowledges positions
 * to the host strictly in order.
 *
 * A sink supplies the service-specific parts through kit_ops: how a batch
 * of records becomes one HTTP request, and what the response says about
 * each record. Records are submitted from the sink's write callback;
 * the pipeline's own thread does the I/O. */
#ifndef KIT_PIPELINE_H
#define KIT_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pgspout/pgspout.h>

#include "dead_letter.h"
#include "http.h"

/* One unit the service stores: an event's document, a Kinesis record, a
 * BigQuery row. Allocate with kit_record_new; after submission the
 * pipeline owns it. */
typedef struct kit_record {
    pgspout_position pos; /* the (last) event this record carries */
    char *data;           /* payload, malloc'd; may be NULL for a marker */
    size_t len;
    /* Records with the same non-zero key are delivered in submission order:
     * the pipeline never lets a later one be in flight, or succeed, before
     * an earlier one. 0: no constraint. */
    uint64_t order_key;
    /* Records with different batch keys never share a request (BigQuery's
     * insertAll writes one table per request). 0 for every record when
     * any mix is fine. Unlike order_key it does not order anything. */
    uint64_t batch_key;
    /* Sink-specific data (a partition key, a document id, an action);
     * released with ops->free_meta. */
    void *meta;
    /* Bytes this record adds to a request beyond len (framing, metadata),
     * for the request size limit. */
    size_t overhead;
    /* How often delivery was tried; maintained by the pipeline, visible
     * to build_request (e.g. for logging). */
    unsigned attempts;
    /* More records of this position follow: an event the sink sends as
     * several records (an update that moved a row to another document, a
     * TRUNCATE's deletes). The position is acknowledged only with the last
     * of them, submitted without this flag (or a marker): acknowledging it
     * with an earlier one would confirm the event while the rest may still
     * fail. */
    bool more_at_position;
} kit_record;

kit_record *kit_record_new(pgspout_position pos, char *data, size_t len,
                           uint64_t order_key, void *meta);

/* What happened to one record of a request. */
typedef enum kit_outcome_kind {
    KIT_DONE = 0,     /* stored (or already stored: a replay) */
    KIT_RETRY = 1,    /* transient: send again after a backoff */
    KIT_REJECTED = 2, /* the service refuses it for good: dead-letter
                             file when configured, else the stream stops */
    KIT_FATAL = 3,    /* stop the stream (access denied, no such
                             stream/index/table) */
    KIT_TOO_LARGE = 4 /* the request was too large for the service (HTTP
                             413, a request size limit): its records are sent
                             again in requests of at most half as many
                             records, down to one; a record refused alone is
                             REJECTED with this reason */
} kit_outcome_kind;

typedef struct kit_outcome {
    kit_outcome_kind kind;
    char reason[512]; /* for RETRY and TOO_LARGE (logged), REJECTED and
                         FATAL; no secrets */
} kit_outcome;

/* Sets an outcome: its kind and its reason, formatted as by printf and cut
 * to fit. */
void kit_outcome_set(kit_outcome *o, kit_outcome_kind kind, const char *fmt,
                     ...) PGSPOUT_PRINTF(3, 4);

/* The same outcome for each of outcomes[0..n): an answer about the whole
 * request, which every record shares. */
void kit_outcome_set_all(kit_outcome *outcomes, size_t n, kit_outcome_kind kind,
                         const char *fmt, ...) PGSPOUT_PRINTF(4, 5);

typedef struct kit_ops {
    /* Builds the request for records[0..n) into req (initialised empty).
     * Return false to fail the stream (err says why). Called on the
     * pipeline thread; may refresh credentials. */
    bool (*build_request)(void *ctx, kit_record *const *records, size_t n,
                          kit_http_request *req, char *err, size_t errlen);
    /* Sets outcomes[i] for each record from the response. The pipeline
     * pre-fills every outcome with RETRY when kit_http_transient(resp)
     * holds, with TOO_LARGE when the status is 413 (Content Too Large) and
     * with DONE otherwise, so a sink only changes what differs (a service
     * that says "too large" another way maps that to TOO_LARGE). */
    void (*handle_response)(void *ctx, const kit_http_response *resp,
                            kit_record *const *records, size_t n,
                            kit_outcome *outcomes);
    void (*free_meta)(void *meta); /* may be NULL */
} kit_ops;

typedef struct kit_pipeline_config {
    const char *sink_name;    /* names the sink in dead-letter lines */
    size_t max_batch_records; /* per request */
    size_t max_batch_bytes;   /* per request: sum of len + overhead */
    int linger_ms;            /* wait this long for a batch to fill */
    int max_in_flight;        /* concurrent requests */
    /* Same-key records may share a request (the service applies a
     * request's items in order, and a failed item cannot be overtaken
     * harmfully: Elasticsearch's external versions); false: at most one
     * unfinished record per key anywhere (Kinesis PutRecords). */
    bool same_key_in_request;
    /* A request sent again carries exactly the records it carried the
     * first time, together and alone, so that a name the sink derives
     * from them (a webhook's id, by which receivers deduplicate) stays the
     * same across attempts. false: retried records may be batched anew. */
    bool keep_batches;
    size_t queue_max_records; /* submit blocks beyond these */
    size_t queue_max_bytes;
    int retry_base_ms; /* backoff: base * 2^attempt, full jitter, capped */
    int retry_cap_ms;
    const char *dead_letter_path; /* NULL: REJECTED stops the stream */
    kit_http_settings http;
} kit_pipeline_config;

typedef struct kit_pipeline kit_pipeline;

/* Starts the pipeline thread. NULL with err set on failure. */
kit_pipeline *kit_pipeline_new(const pgspout_host_api *host,
                               pgspout_sink_handle *handle,
                               const kit_pipeline_config *config,
                               const kit_ops *ops, void *ctx, char *err,
                               size_t errlen);

/* Queues a record (blocking while the queue is full). Returns FATAL, and
 * frees the record, once the pipeline has failed. */
pgspout_status kit_submit(kit_pipeline *p, kit_record *record);

/* Marks a position that carries nothing to send (an event the sink skips
 * by design, such as a schema event), so acknowledgements pass it in
 * order. */
pgspout_status kit_submit_marker(kit_pipeline *p, pgspout_position pos);

/* Sends what is queued without waiting for the linger time and waits until
 * everything submitted is acknowledged. FATAL when the pipeline failed. */
pgspout_status kit_flush(kit_pipeline *p);

/* Writes a record straight to the dead-letter file (e.g. one too large to
 * send), keeping acknowledgement order. FATAL when no dead-letter file is
 * configured (the stream must stop) or the write failed. Frees record. */
pgspout_status kit_submit_dead_letter(kit_pipeline *p, kit_record *record,
                                      const char *reason);

/* Order keys with records in flight now (for tests and diagnostics: it
 * must not grow with the number of distinct keys ever seen). */
size_t kit_pipeline_tracked_keys(kit_pipeline *p);

/* Stops the thread; what was not acknowledged is dropped (the host has
 * not confirmed it and will send it again). */
void kit_pipeline_free(kit_pipeline *p);

/* ---- options every network sink shares ----
 *
 * KIT_PIPELINE_OPTIONS(records, bytes, linger, inflight) expands to
 * option table entries: batch_records, batch_bytes, linger, in_flight,
 * queue_records, queue_bytes, retry_base, retry_max, dead_letter, ca_file,
 * tls_verify, connect_timeout, request_timeout. The arguments are the
 * defaults as strings (the service's limits differ). */
#define KIT_PIPELINE_OPTIONS(records, bytes, linger, inflight)                 \
    {.name = "batch_records",                                                  \
     .type = PGSPOUT_OPT_INT,                                                  \
     .default_value = records,                                                 \
     .doc = "records per request at most",                                     \
     .min = 1,                                                                 \
     .max = 1e9},                                                              \
        {.name = "batch_bytes",                                                \
         .type = PGSPOUT_OPT_INT,                                              \
         .default_value = bytes,                                               \
         .doc = "bytes per request at most (k/M suffixes)",                    \
         .min = 1,                                                             \
         .max = 1e12},                                                         \
        {.name = "linger",                                                     \
         .type = PGSPOUT_OPT_DURATION,                                         \
         .default_value = linger,                                              \
         .doc = "wait this long for a request to fill (ms, s)"},               \
        {.name = "in_flight",                                                  \
         .type = PGSPOUT_OPT_INT,                                              \
         .default_value = inflight,                                            \
         .doc = "requests in flight at once",                                  \
         .min = 1,                                                             \
         .max = 1024},                                                         \
        {.name = "queue_records",                                              \
         .type = PGSPOUT_OPT_INT,                                              \
         .default_value = "20000",                                             \
         .doc = "records queued in memory before the stream waits",            \
         .min = 1,                                                             \
         .max = 1e9},                                                          \
        {.name = "queue_bytes",                                                \
         .type = PGSPOUT_OPT_INT,                                              \
         .default_value = "64M",                                               \
         .doc = "bytes queued in memory before the stream waits",              \
         .min = 1024,                                                          \
         .max = 1e12},                                                         \
        {.name = "retry_base",                                                 \
         .type = PGSPOUT_OPT_DURATION,                                         \
         .default_value = "100ms",                                             \
         .doc = "first retry delay; doubles per attempt, with jitter"},        \
        {.name = "retry_max",                                                  \
         .type = PGSPOUT_OPT_DURATION,                                         \
         .default_value = "30s",                                               \
         .doc = "longest retry delay (retries never give up)"},                \
        KIT_DEAD_LETTER_OPTION,                                                \
        {.name = "ca_file",                                                    \
         .type = PGSPOUT_OPT_STRING,                                           \
         .doc = "CA certificates (PEM) to verify the server with"},            \
        {.name = "tls_verify",                                                 \
         .type = PGSPOUT_OPT_BOOL,                                             \
         .default_value = "true",                                              \
         .doc = "verify the server's certificate and host name"},              \
        {.name = "connect_timeout",                                            \
         .type = PGSPOUT_OPT_DURATION,                                         \
         .default_value = "10s",                                               \
         .doc = "connection timeout"},                                         \
    {                                                                          \
        .name = "request_timeout", .type = PGSPOUT_OPT_DURATION,               \
        .default_value = "60s", .doc = "whole-request timeout"                 \
    }

/* A key for kit_record.order_key from bytes (a partition key, a
 * document id): equal inputs give equal keys; a collision only orders two
 * unrelated keys together. Never 0. */
uint64_t kit_order_key(const char *data, size_t len);

/* Reads those options into config (strings stay owned by the host); sets
 * sink_name to the given name and http.user_agent to "pgspout". Each
 * default is declared once, in the option table: the host always has a
 * value for an option declared with one, so there is no fallback here, and
 * an option without a value (a sink whose table lacks
 * KIT_PIPELINE_OPTIONS) is an error: false with err naming it. */
bool kit_pipeline_config_from_options(const pgspout_host_api *host,
                                      pgspout_sink_handle *handle,
                                      const char *sink_name,
                                      kit_pipeline_config *config, char *err,
                                      size_t errlen);

#endif
