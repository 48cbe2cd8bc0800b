/* A tiny out-of-tree sink on the installed sink kit (pkg-config pgspout-kit
 * only): each request POSTs its records' event JSON, one per line, to the
 * URL in option `url`. Non-row events are markers, so acknowledgements
 * pass them in order. */
#include <stdlib.h>
#include <string.h>

#include <pgspout/kit/pipeline.h>

/* One order key for every record: the kit then delivers the whole stream in
 * order (0 would let concurrent requests land in any order). */
#define STREAM_ORDER_KEY 1

typedef struct ks_state {
    const pgspout_host_api *host;
    pgspout_sink_handle *sink;
    const char *url;
    kit_pipeline *pipeline;
} ks_state;

static bool ks_build(void *ctx, kit_record *const *records, size_t n,
                     kit_http_request *req, char *err, size_t errlen)
{
    ks_state *s = ctx;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += records[i]->len + 1;
    char *body = malloc(len + 1);
    if (!body) {
        strncpy(err, "out of memory", errlen);
        return false;
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(body + at, records[i]->data, records[i]->len);
        at += records[i]->len;
        body[at++] = '\n';
    }
    kit_request_init(req, "POST", s->url);
    kit_request_header(req, "Content-Type: application/x-ndjson");
    kit_request_body(req, body, at);
    return true;
}

static void ks_response(void *ctx, const kit_http_response *resp,
                        kit_record *const *records, size_t n,
                        kit_outcome *outcomes)
{
    (void)ctx, (void)records;
    if (resp->status >= 400 && !kit_http_transient(resp))
        kit_outcome_set_all(outcomes, n, KIT_FATAL, "HTTP %ld", resp->status);
}

static const kit_ops ks_ops = {.build_request = ks_build,
                               .handle_response = ks_response};

static pgspout_status ks_create(const pgspout_host_api *host,
                                pgspout_sink_handle *sink, void **state)
{
    ks_state *s = calloc(1, sizeof *s);
    if (!s)
        return PGSPOUT_FATAL;
    s->host = host;
    s->sink = sink;
    host->option_string(sink, "url", &s->url);
    kit_pipeline_config cfg = {
        .sink_name = "kitdemo",
        .max_batch_records = 3,
        .max_batch_bytes = 1 << 20,
        .linger_ms = 10,
        .max_in_flight = 2,
        .queue_max_records = 100,
        .queue_max_bytes = 1 << 20,
        .retry_base_ms = 50,
        .retry_cap_ms = 1000,
        .http = {.connect_timeout_ms = 5000, .request_timeout_ms = 10000}};
    char err[256];
    s->pipeline =
        kit_pipeline_new(host, sink, &cfg, &ks_ops, s, err, sizeof err);
    if (!s->pipeline) {
        host->log(sink, PGSPOUT_LOG_ERROR, "%s", err);
        free(s);
        return PGSPOUT_FATAL;
    }
    *state = s;
    return PGSPOUT_OK;
}

static pgspout_status ks_write(void *state, const pgspout_event *const *events,
                               size_t count)
{
    ks_state *s = state;
    for (size_t i = 0; i < count; i++) {
        pgspout_op op = s->host->event_op(events[i]);
        pgspout_position pos = s->host->event_position(events[i]);
        pgspout_status st;
        if (op == PGSPOUT_OP_INSERT || op == PGSPOUT_OP_UPDATE ||
            op == PGSPOUT_OP_DELETE) {
            size_t len;
            const char *json =
                s->host->event_json(events[i], PGSPOUT_PART_EVENT, &len);
            char *copy = malloc(len);
            if (!copy)
                return PGSPOUT_FATAL;
            memcpy(copy, json, len);
            st =
                kit_submit(s->pipeline, kit_record_new(pos, copy, len,
                                                       STREAM_ORDER_KEY, NULL));
        } else {
            st = kit_submit_marker(s->pipeline, pos);
        }
        if (st != PGSPOUT_OK)
            return st;
    }
    return PGSPOUT_OK;
}

static pgspout_status ks_flush(void *state)
{
    return kit_flush(((ks_state *)state)->pipeline);
}

static void ks_destroy(void *state)
{
    ks_state *s = state;
    kit_pipeline_free(s->pipeline);
    free(s);
}

static const pgspout_option_def ks_options[] = {
    {.name = "url",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_REQUIRED,
     .doc = "where batches are POSTed"},
    PGSPOUT_OPTION_END};

static const pgspout_sink_descriptor ks_descriptor = {
    PGSPOUT_SINK_HEADER,
    .name = "kitdemo",
    .version = "1",
    .description = "posts event JSON through the sink kit (tests only)",
    .options = ks_options,
    .create = ks_create,
    .write = ks_write,
    .flush = ks_flush,
    .destroy = ks_destroy,
};

PGSPOUT_EXPORT const pgspout_sink_descriptor *pgspout_sink_entry(void)
{
    return &ks_descriptor;
}
