/* The Kinesis sink: each event's canonical JSON becomes one Kinesis record
 * (or, with aggregate = true, part of a KPL aggregated record), sent with
 * PutRecords signed by SigV4. Batching, requests in flight, retries, per-key
 * order and in-order acknowledgements are the sink kit's (plugins/kit). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pgspout/pgspout.h>

#include "aws_config.h"
#include "aws_refresh.h"
#include "clock.h"
#include "kinesis_api.h"
#include "kpl.h"
#include "message.h"
#include "option_check.h"
#include "pipeline.h"
#include "sigv4.h"
#include "strbuf.h"

#define KINESIS_SINK_VERSION "0.1.0"

/* The streams records go to, as indexes into kinesis_sink.streams and as
 * the kit's batch keys: records of different streams never share a
 * PutRecords request, which names one stream. */
enum { CHANGE_STREAM, MESSAGE_STREAM, TRANSACTION_STREAM, N_STREAMS };

/* Where an event's record goes. */
typedef struct kinesis_route {
    char *key;    /* partition key, malloc'd */
    bool ordered; /* keep this key's records in order */
    int stream;   /* CHANGE_STREAM, ... */
} kinesis_route;

typedef struct kinesis_sink {
    const pgspout_host_api *host;
    pgspout_sink_handle *handle;
    kit_pipeline *pipeline;
    kit_pipeline_config config;

    aws_settings aws;
    /* The current credentials, renewed in the background when temporary. */
    aws_refresher *credentials;
    const char *stream;
    /* The name of each stream; the message and transaction events' default
     * to `stream` (then their records use CHANGE_STREAM's batch key). */
    const char *streams[N_STREAMS];
    char *url;
    char *host_header;
    char *path;

    kinesis_key_mode key_mode;
    const char *fixed_key;

    /* aggregate = true: a run of consecutive events with one partition key
     * waiting to become one record. Only consecutive events are merged, so
     * a record's events are contiguous in the stream and acknowledging its
     * last position acknowledges exactly them. */
    bool aggregate;
    kpl_aggregate pending;
    char *pending_key;
    int pending_stream;
    char *pending_first; /* sent as is when the run stays one event long */
    size_t pending_first_len;
    pgspout_position pending_last;
    int64_t pending_since_us;
} kinesis_sink;

static const pgspout_option_def kinesis_options[] = {
    {.name = "stream",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_REQUIRED,
     .doc = "Kinesis data stream name"},
    {.name = "region",
     .type = PGSPOUT_OPT_STRING,
     .doc = "AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the "
            "profile's region in the config file)"},
    {.name = "endpoint",
     .type = PGSPOUT_OPT_STRING,
     .doc = "endpoint URL (default: AWS_ENDPOINT_URL_KINESIS, "
            "AWS_ENDPOINT_URL, https://kinesis.REGION.amazonaws.com)"},
    {.name = "partition_key",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "row",
     .doc = "row (schema.table + key), table (schema.table), or a fixed "
            "string"},
    {.name = "message_stream",
     .type = PGSPOUT_OPT_STRING,
     .doc = "stream for message events (default: the stream option)"},
    {.name = "transaction_stream",
     .type = PGSPOUT_OPT_STRING,
     .doc = "stream for begin and commit events (default: the stream "
            "option)"},
    {.name = "aggregate",
     .type = PGSPOUT_OPT_BOOL,
     .default_value = "false",
     .doc = "pack consecutive same-key events into KPL aggregated records"},
    {.name = "profile",
     .type = PGSPOUT_OPT_STRING,
     .doc = "profile of the shared credentials and config files (default: "
            "AWS_PROFILE, default)"},
    {.name = "refresh_margin",
     .type = PGSPOUT_OPT_DURATION,
     .default_value = "5min",
     .doc = "renew temporary credentials this long before they expire (at "
            "most half their lifetime)"},
    {.name = "imds_v1_fallback",
     .type = PGSPOUT_OPT_BOOL,
     .default_value = "false",
     .doc = "allow EC2 instance metadata without a session token (IMDSv1) "
            "when IMDSv2 is refused"},
    {.name = "access_key_id",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_SECRET,
     .doc = "AWS access key id (default: the AWS SDKs' credential chain)"},
    {.name = "secret_access_key",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_SECRET,
     .doc = "AWS secret access key"},
    {.name = "session_token",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_SECRET,
     .doc = "AWS session token of temporary credentials"},
    KIT_PIPELINE_OPTIONS("500", "5M", "50ms", "8"),
    PGSPOUT_OPTION_END};

static const char *option_or_null(kinesis_sink *ks, const char *name)
{
    const char *value = NULL;

    if (!ks->host->option_string(ks->handle, name, &value) || !value || !*value)
        return NULL;
    return value;
}

/* Signs a PutRecords request with the current credentials; without any
 * yet, the records wait (kit_request_retry_later) instead of failing. */
static bool build_request(void *ctx, kit_record *const *records, size_t n,
                          kit_http_request *req, char *err, size_t errlen)
{
    kinesis_sink *ks = ctx;
    kinesis_entry *entries;
    size_t body_len;
    char *body;
    sigv4_header headers[] = {
        {"Host", ks->host_header},
        {"Content-Type", KINESIS_CONTENT_TYPE},
        {"X-Amz-Target", KINESIS_TARGET_PUT_RECORDS},
    };
    sigv4_request sreq;
    aws_credentials creds;
    sigv4_signature sig;
    bool signed_ok;

    if (!aws_refresher_get(ks->credentials, &creds, err, errlen)) {
        kit_request_init(req, "POST", ks->url);
        kit_request_retry_later(req, err);
        return true;
    }
    entries = xcalloc(n, sizeof *entries);
    for (size_t i = 0; i < n; i++)
        entries[i] = (kinesis_entry){records[i]->data, records[i]->len,
                                     records[i]->meta};
    body = kinesis_put_records_body(ks->streams[records[0]->batch_key], entries,
                                    n, &body_len);
    free(entries);
    sreq = (sigv4_request){.method = "POST",
                           .path = ks->path,
                           .headers = headers,
                           .nheaders = sizeof headers / sizeof *headers,
                           .body = body,
                           .body_len = body_len};
    sigv4_params params = {.access_key_id = creds.access_key_id,
                           .secret_access_key = creds.secret_access_key,
                           .session_token = creds.session_token,
                           .region = ks->aws.region,
                           .service = "kinesis",
                           .when = time(NULL),
                           .normalize_path = true};
    signed_ok = sigv4_sign(&sreq, &params, &sig, err, errlen);
    if (!signed_ok) {
        aws_credentials_clear(&creds);
        free(body);
        return false;
    }
    kit_request_init(req, "POST", ks->url);
    for (size_t i = 0; i < sizeof headers / sizeof *headers; i++)
        kit_request_header(req, "%s: %s", headers[i].name, headers[i].value);
    kit_request_header(req, "X-Amz-Date: %s", sig.amz_date);
    if (creds.session_token)
        kit_request_header(req, "X-Amz-Security-Token: %s",
                           creds.session_token);
    kit_request_header(req, "Authorization: %s", sig.authorization);
    kit_request_body(req, body, body_len);
    sigv4_signature_free(&sig);
    aws_credentials_clear(&creds);
    return true;
}

static void handle_response(void *ctx, const kit_http_response *resp,
                            kit_record *const *records, size_t n,
                            kit_outcome *outcomes)
{
    kinesis_sink *ks = ctx;

    /* Lapsed temporary credentials: new ones are fetched now and the
     * records retried with them (the error type is transient). */
    if (kinesis_error_is_expired_token(resp->status, resp->body))
        aws_refresher_expired(ks->credentials);
    /* Redact the whole answer first: reasons quote only part of it, and a
     * secret cut in half would no longer be recognised. */
    char *body = resp->body ? xstrdup(resp->body) : NULL;
    aws_refresher_redact(ks->credentials, body);
    kinesis_put_records_outcomes(
        resp->status, body, ks->streams[records[0]->batch_key], n, outcomes);
    free(body);
    /* A signature mismatch answer quotes the canonical request, which
     * carries the session token; no answer may carry a key into a log. */
    for (size_t i = 0; i < n; i++)
        aws_refresher_redact(ks->credentials, outcomes[i].reason);
}

static const kit_ops kinesis_ops = {
    .build_request = build_request,
    .handle_response = handle_response,
    .free_meta = free,
};

static const char *position_text(kinesis_sink *ks, pgspout_position pos,
                                 char *buf, size_t buflen)
{
    char lsn[32];

    snprintf(buf, buflen, "commit_lsn %s seq %" PRIu64,
             ks->host->format_lsn(pos.commit_lsn, lsn, sizeof lsn), pos.seq);
    return buf;
}

/* route.ordered: keep this partition key's records in order (one
 * unfinished record per key); rows without a replica identity have no
 * order to keep, and serialising them would send one record per round
 * trip. Takes route.key. */
static pgspout_status submit(kinesis_sink *ks, pgspout_position pos, char *data,
                             size_t len, kinesis_route route)
{
    kit_record *rec = kit_record_new(
        pos, data, len,
        route.ordered ? kit_order_key(route.key, strlen(route.key)) : 0,
        route.key);

    rec->overhead = strlen(route.key);
    rec->batch_key = (uint64_t)route.stream;
    return kit_submit(ks->pipeline, rec);
}

/* Sends the pending run of same-key events as one record. */
static pgspout_status emit_pending(kinesis_sink *ks)
{
    char *data, *key = ks->pending_key;
    size_t len;

    if (!key)
        return PGSPOUT_OK;
    if (ks->pending.count == 1) {
        /* As the KPL does: a lone record goes out plain, which every
         * consumer (KCL or not) reads. */
        data = ks->pending_first;
        len = ks->pending_first_len;
        sbuf_reset(&ks->pending.records);
    } else {
        data = kpl_aggregate_finish(&ks->pending, key, &len);
        free(ks->pending_first);
    }
    ks->pending.count = 0;
    ks->pending_first = NULL;
    ks->pending_key = NULL;
    return submit(ks, ks->pending_last, data, len,
                  (kinesis_route){key, true, ks->pending_stream});
}

/* Takes route.key. A run is one partition key's, on one stream. */
static pgspout_status add_aggregated(kinesis_sink *ks, pgspout_position pos,
                                     const char *json, size_t len,
                                     kinesis_route route)
{
    pgspout_status status;
    char *key = route.key;
    size_t key_len = strlen(key);

    if (ks->pending_key &&
        (strcmp(ks->pending_key, key) != 0 ||
         ks->pending_stream != route.stream ||
         kpl_aggregate_size(&ks->pending, key_len, len, 1) + key_len >
             KINESIS_MAX_RECORD_BYTES)) {
        status = emit_pending(ks);
        if (status != PGSPOUT_OK) {
            free(key);
            return status;
        }
    }
    if (!ks->pending_key) {
        ks->pending_key = key;
        ks->pending_stream = route.stream;
        ks->pending_first = xstrndup(json, len);
        ks->pending_first_len = len;
        ks->pending_since_us = now_us();
    } else {
        free(key);
    }
    kpl_aggregate_add(&ks->pending, json, len);
    ks->pending_last = pos;
    return PGSPOUT_OK;
}

static bool pending_is_old(kinesis_sink *ks)
{
    if (!ks->pending_key)
        return false;
    int64_t age_us = now_us() - ks->pending_since_us;
    return age_us >= (int64_t)ks->config.linger_ms * 1000;
}

/* A message goes by its prefix, so one prefix's messages keep their
 * order in one shard. A begin and a commit go by their transaction's
 * commit LSN: unique to the transaction and the same when the slot sends
 * it again, so both land in one shard, the begin first, while different
 * transactions spread over the shards; one key for all of them would
 * allow one unfinished record, i.e. one transaction event per round trip
 * (README, "Messages and transaction events"). */
static kinesis_route untabled_route(kinesis_sink *ks, const pgspout_event *ev,
                                    pgspout_op op, const char *json, size_t len)
{
    if (op == PGSPOUT_OP_MESSAGE) {
        char *prefix = kit_message_prefix(json, len);
        kinesis_route r = {kinesis_named_partition_key(ks->key_mode,
                                                       ks->fixed_key,
                                                       prefix ? prefix : ""),
                           true, MESSAGE_STREAM};
        free(prefix);
        return r;
    }
    char lsn[32];
    ks->host->format_lsn(ks->host->event_position(ev).commit_lsn, lsn,
                         sizeof lsn);
    return (kinesis_route){
        kinesis_named_partition_key(ks->key_mode, ks->fixed_key, lsn), true,
        TRANSACTION_STREAM};
}

static kinesis_route event_route(kinesis_sink *ks, const pgspout_event *ev,
                                 const char *json, size_t len)
{
    pgspout_op op = ks->host->event_op(ev);
    const char *key_json = NULL;
    size_t key_len;
    kinesis_route route = {NULL, true, CHANGE_STREAM};

    if (!ks->host->event_schema(ev))
        route = untabled_route(ks, ev, op, json, len);
    else if (ks->key_mode == KINESIS_KEY_ROW &&
             (op == PGSPOUT_OP_INSERT || op == PGSPOUT_OP_UPDATE ||
              op == PGSPOUT_OP_DELETE || op == PGSPOUT_OP_READ)) {
        key_json = ks->host->event_json(ev, PGSPOUT_PART_KEY, &key_len);
        route.ordered = key_len != 2; /* "{}": REPLICA IDENTITY NOTHING */
    }
    if (!route.key)
        route.key = kinesis_partition_key(ks->key_mode, ks->fixed_key,
                                          ks->host->event_schema(ev),
                                          ks->host->event_table(ev), key_json);
    /* Streams left at their default share the change stream's requests. */
    if (ks->streams[route.stream] == ks->stream)
        route.stream = CHANGE_STREAM;
    return route;
}

/* "schema.table", or the op of an event that belongs to no table. */
static const char *event_subject(kinesis_sink *ks, const pgspout_event *ev,
                                 char *buf, size_t buflen)
{
    if (ks->host->event_schema(ev))
        snprintf(buf, buflen, "%s.%s", ks->host->event_schema(ev),
                 ks->host->event_table(ev));
    else
        snprintf(buf, buflen, "%s", ks->host->op_name(ks->host->event_op(ev)));
    return buf;
}

static pgspout_status write_one(kinesis_sink *ks, const pgspout_event *ev)
{
    pgspout_position pos = ks->host->event_position(ev);
    size_t len;
    const char *json = ks->host->event_json(ev, PGSPOUT_PART_EVENT, &len);
    kinesis_route route = event_route(ks, ev, json, len);
    char *key = route.key;
    char *copy;

    if (len + strlen(key) > KINESIS_MAX_RECORD_BYTES) {
        char where[80], reason[400], subject[160];
        pgspout_status status = ks->aggregate ? emit_pending(ks) : PGSPOUT_OK;

        snprintf(reason, sizeof reason,
                 "the event at %s (%s) is %zu bytes with its partition "
                 "key, over the Kinesis record limit of %zu bytes",
                 position_text(ks, pos, where, sizeof where),
                 event_subject(ks, ev, subject, sizeof subject),
                 len + strlen(key), KINESIS_MAX_RECORD_BYTES);
        copy = xstrndup(json, len);
        if (status != PGSPOUT_OK) {
            free(copy);
            free(key);
            return status;
        }
        /* Without a dead_letter file the kit stops the stream with this
         * reason, which names the event. */
        return kit_submit_dead_letter(
            ks->pipeline, kit_record_new(pos, copy, len, 0, key), reason);
    }
    if (ks->aggregate)
        return add_aggregated(ks, pos, json, len, route);
    copy = xstrndup(json, len);
    return submit(ks, pos, copy, len, route);
}

static pgspout_status
kinesis_write(void *state, const pgspout_event *const *events, size_t count)
{
    kinesis_sink *ks = state;

    for (size_t i = 0; i < count; i++) {
        pgspout_status status = write_one(ks, events[i]);

        if (status != PGSPOUT_OK)
            return status;
    }
    /* A run that has waited the linger time goes out even if the next
     * event might have joined it, so a quiet key is not held back. */
    return pending_is_old(ks) ? emit_pending(ks) : PGSPOUT_OK;
}

static pgspout_status kinesis_flush(void *state)
{
    kinesis_sink *ks = state;
    pgspout_status status = emit_pending(ks);

    return status == PGSPOUT_OK ? kit_flush(ks->pipeline) : status;
}

static void kinesis_destroy(void *state)
{
    kinesis_sink *ks = state;

    if (!ks)
        return;
    kit_pipeline_free(ks->pipeline);
    aws_refresher_free(ks->credentials);
    kpl_aggregate_free(&ks->pending);
    free(ks->pending_key);
    free(ks->pending_first);
    aws_settings_free(&ks->aws);
    free(ks->url);
    free(ks->host_header);
    free(ks->path);
    free(ks);
}

static pgspout_status fail_create(kinesis_sink *ks, const char *fmt,
                                  const char *arg)
{
    ks->host->log(ks->handle, PGSPOUT_LOG_ERROR, fmt, arg);
    kinesis_destroy(ks);
    return PGSPOUT_FATAL;
}

/* Region, endpoint and the credential provider (the AWS SDKs' chain), and
 * the first credentials. The TLS settings of the sink apply to STS too. */
static bool resolve_aws(kinesis_sink *ks, char *err, size_t errlen)
{
    aws_explicit_settings given = {
        .access_key_id = option_or_null(ks, "access_key_id"),
        .secret_access_key = option_or_null(ks, "secret_access_key"),
        .session_token = option_or_null(ks, "session_token"),
        .profile = option_or_null(ks, "profile"),
        .region = option_or_null(ks, "region"),
        .endpoint = option_or_null(ks, "endpoint"),
        .http = ks->config.http,
    };
    int64_t margin_ms = 0;
    strbuf url = STRBUF_INIT;

    ks->host->option_bool(ks->handle, "imds_v1_fallback",
                          &given.imds_v1_fallback);
    ks->host->option_int(ks->handle, "refresh_margin", &margin_ms);
    if (!aws_settings_resolve(&given, "kinesis", &ks->aws, err, errlen))
        return false;
    if (!aws_endpoint_parts(ks->aws.endpoint, &ks->host_header, &ks->path)) {
        snprintf(err, errlen, "bad endpoint \"%s\"", ks->aws.endpoint);
        return false;
    }
    sbuf_append_str(&url, ks->aws.endpoint);
    if (strcmp(ks->path, "/") == 0)
        sbuf_append_char(&url, '/');
    ks->url = sbuf_detach(&url);
    ks->credentials = aws_refresher_new(ks->host, ks->handle, ks->aws.provider,
                                        (int)(margin_ms / 1000), err, errlen);
    ks->aws.provider = NULL; /* the refresher owns it, even on failure */
    return ks->credentials != NULL;
}

/* Reads the stream and key options into ks; false with err set and *bad
 * naming the option at fault. */
static bool read_stream_options(kinesis_sink *ks, const char **bad, char *err,
                                size_t errlen)
{
    ks->stream = option_or_null(ks, "stream");
    *bad = "stream";
    if (!ks->stream) {
        snprintf(err, errlen, "the stream option is empty");
        return false;
    }
    ks->streams[CHANGE_STREAM] = ks->stream;
    ks->streams[MESSAGE_STREAM] = option_or_null(ks, "message_stream");
    ks->streams[TRANSACTION_STREAM] = option_or_null(ks, "transaction_stream");
    for (int i = 0; i < N_STREAMS; i++)
        if (!ks->streams[i] || strcmp(ks->streams[i], ks->stream) == 0)
            ks->streams[i] = ks->stream;
    const char *key_option = option_or_null(ks, "partition_key");
    *bad = "partition_key";
    if (!key_option || strcmp(key_option, "row") == 0) {
        ks->key_mode = KINESIS_KEY_ROW;
    } else if (strcmp(key_option, "table") == 0) {
        ks->key_mode = KINESIS_KEY_TABLE;
    } else {
        ks->key_mode = KINESIS_KEY_FIXED;
        ks->fixed_key = key_option;
        if (kinesis_utf8_chars(key_option) > KINESIS_MAX_PARTITION_KEY_CHARS) {
            snprintf(err, errlen,
                     "partition_key \"%.40s...\" is longer than 256 "
                     "characters",
                     key_option);
            return false;
        }
    }
    return true;
}

/* ABI 1.7: the stream options' checks of create, run when pgspout checks
 * its configuration (credentials and region are looked up when the sink
 * starts: they come from the environment and may change). */
static bool kinesis_check_options(const pgspout_host_api *host,
                                  pgspout_sink_handle *handle, char *option,
                                  size_t option_size, char *why,
                                  size_t why_size)
{
    kinesis_sink *ks = xcalloc(1, sizeof *ks);
    ks->host = host;
    ks->handle = handle;
    char err[400];
    const char *bad = NULL;
    bool ok = read_stream_options(ks, &bad, err, sizeof err);
    kinesis_destroy(ks);
    return ok ||
           kit_option_refuse(bad, err, option, option_size, why, why_size);
}

static pgspout_status kinesis_create(const pgspout_host_api *host,
                                     pgspout_sink_handle *handle, void **state)
{
    kinesis_sink *ks = xcalloc(1, sizeof *ks);
    char err[1024];

    ks->host = host;
    ks->handle = handle;
    const char *bad;
    if (!read_stream_options(ks, &bad, err, sizeof err))
        return fail_create(ks, "%s", err);
    host->option_bool(handle, "aggregate", &ks->aggregate);

    if (!kit_pipeline_config_from_options(host, handle, "kinesis", &ks->config,
                                          err, sizeof err))
        return fail_create(ks, "%s", err);
    if (!resolve_aws(ks, err, sizeof err))
        return fail_create(ks, "%s", err);
    /* Kinesis may store a later record of a key while an earlier one of the
     * same request failed; only one unfinished record per key keeps order. */
    ks->config.same_key_in_request = false;
    if (ks->config.max_batch_records > KINESIS_MAX_RECORDS_PER_REQUEST)
        ks->config.max_batch_records = KINESIS_MAX_RECORDS_PER_REQUEST;
    if (ks->config.max_batch_bytes > KINESIS_MAX_REQUEST_BYTES)
        ks->config.max_batch_bytes = KINESIS_MAX_REQUEST_BYTES;
    ks->pipeline = kit_pipeline_new(host, handle, &ks->config, &kinesis_ops, ks,
                                    err, sizeof err);
    if (!ks->pipeline)
        return fail_create(ks, "%s", err);
    host->log(handle, PGSPOUT_LOG_INFO,
              "Kinesis stream \"%s\" in %s at %s, partition key %s%s, "
              "credentials from %s",
              ks->stream, ks->aws.region, ks->aws.endpoint,
              ks->key_mode == KINESIS_KEY_ROW     ? "per row"
              : ks->key_mode == KINESIS_KEY_TABLE ? "per table"
                                                  : "fixed",
              ks->aggregate ? ", KPL aggregation" : "",
              aws_refresher_source(ks->credentials));
    *state = ks;
    return PGSPOUT_OK;
}

static const pgspout_sink_descriptor kinesis_descriptor = {
    /* ABI 1.5: message, begin and commit events (README). */
    PGSPOUT_SINK_HEADER_MINOR(5),
    .name = "kinesis",
    .version = KINESIS_SINK_VERSION,
    .description = "Amazon Kinesis Data Streams (PutRecords, SigV4, ordered "
                   "per partition key)",
    .options = kinesis_options,
    .create = kinesis_create,
    .write = kinesis_write,
    .flush = kinesis_flush,
    .destroy = kinesis_destroy,
    .resume_position = NULL,
    .check_options = kinesis_check_options,
};

PGSPOUT_EXPORT const pgspout_sink_descriptor *pgspout_sink_entry(void)
{
    return &kinesis_descriptor;
}
