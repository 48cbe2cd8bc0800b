/* The elastic sink: rows become documents in Elasticsearch or OpenSearch
 * through the _bulk API, one index per table, each action carrying an
 * external version so that replays and retries never overwrite newer data.
 * Batching, requests in flight, retries and acknowledgements are the sink
 * kit's (plugins/kit); this file says what to send and reads what came
 * back. See README.md for the design. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <pgspout/pgspout.h>

#include "elastic_format.h"
#include "http.h"
#include "json_string.h"
#include "option_check.h"
#include "percent.h"
#include "pipeline.h"
#include "position_id.h"
#include "row_key.h"
#include "strbuf.h"
#include "url_list.h"

#define ELASTIC_SINK_VERSION "0.1.0"

static const char *const bulk_query =
    "/_bulk?filter_path=errors,items.*.status,items.*.error.type,"
    "items.*.error.reason";

static const pgspout_option_def elastic_options[] = {
    {.name = "url",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_REQUIRED,
     .doc = "node URL, e.g. http://127.0.0.1:9200 (several: comma-separated; "
            "requests rotate over them)"},
    {.name = "index",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "{schema}.{table}",
     .doc = "index name template ({schema}, {table}); lower-cased"},
    {.name = "truncate",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "delete",
     .choices = "delete|ignore",
     .doc = "on TRUNCATE: delete every document of the index, or ignore it"},
    {.name = "version_field",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "_pgspout_version",
     .doc = "document field holding the version after an update that kept "
            "unchanged TOAST columns"},
    {.name = "username",
     .type = PGSPOUT_OPT_STRING,
     .doc = "basic authentication user"},
    {.name = "password",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_SECRET,
     .doc = "basic authentication password"},
    {.name = "api_key",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_SECRET,
     .doc = "API key, sent as Authorization: ApiKey <value> (the base64 "
            "id:key form Elasticsearch returns as \"encoded\")"},
    {.name = "messages",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "index",
     .choices = "index|skip",
     .doc = "message events (pgspout's messages setting): index them into "
            "message_index, one document each, or skip them"},
    {.name = "message_index",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "pgspout-messages",
     .doc = "index of message events (created with pgspout's mapping when "
            "missing)"},
    {.name = "transactions",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "skip",
     .choices = "skip|index",
     .doc = "begin and commit events (pgspout's transaction_events "
            "setting): skip them, or index them into transaction_index"},
    {.name = "transaction_index",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "pgspout-transactions",
     .doc = "index of begin and commit events (created with pgspout's "
            "mapping when missing)"},
    KIT_PIPELINE_OPTIONS("1000", "5M", "50ms", "4"),
    PGSPOUT_OPTION_END};

/* The index of the events that belong to no table: messages, or begin and
 * commit events. */
typedef struct event_index {
    const char *name; /* NULL: such events are skipped */
    bool ready;       /* exists (checked or created in this run) */
} event_index;

typedef struct elastic_sink {
    const pgspout_host_api *host;
    pgspout_sink_handle *handle;
    kit_pipeline_config config;
    kit_pipeline *pipeline;

    kit_url_list urls; /* without a trailing slash */
    char *auth_header; /* "Authorization: ..." or NULL; a secret */

    const char *index_template;
    const char *version_field;
    bool truncate_delete;
    event_index messages, transactions;

    /* Newest position taken by write(): a batch the host sends again after
     * write() returned RETRY part-way is taken only from there on. */
    bool have_taken;
    pgspout_position taken;
} elastic_sink;

/* What a record's bulk item is, to read its result: a record is one action
 * on one document (its order key is the document's). */
typedef struct record_meta {
    es_action action;
} record_meta;

/* ---- the pipeline's callbacks ---- */

static void add_common_headers(elastic_sink *es, kit_http_request *req,
                               const char *content_type)
{
    if (content_type)
        kit_request_header(req, "Content-Type: %s", content_type);
    kit_request_header(req, "Accept: application/json");
    if (es->auth_header)
        kit_request_header(req, "%s", es->auth_header);
}

static bool build_bulk(void *ctx, kit_record *const *records, size_t n,
                       kit_http_request *req, char *err, size_t errlen)
{
    elastic_sink *es = ctx;
    size_t total = 0;
    char *url;

    (void)err;
    (void)errlen;
    for (size_t i = 0; i < n; i++)
        total += records[i]->len;
    char *body = xmalloc(total + 1);
    total = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(body + total, records[i]->data, records[i]->len);
        total += records[i]->len;
    }
    body[total] = '\0';
    url = xasprintf("%s%s", kit_url_list_next(&es->urls), bulk_query);
    kit_request_init(req, "POST", url);
    free(url);
    add_common_headers(es, req, "application/x-ndjson");
    kit_request_body(req, body, total);
    return true;
}

static void handle_bulk(void *ctx, const kit_http_response *resp,
                        kit_record *const *records, size_t n,
                        kit_outcome *outcomes)
{
    elastic_sink *es = ctx;

    if (kit_http_transient(resp))
        return; /* already RETRY */
    if (resp->status == 401 || resp->status == 403) {
        kit_outcome_set_all(outcomes, n, KIT_FATAL,
                            "_bulk: HTTP %ld: not authorised (check "
                            "username/password or api_key)",
                            resp->status);
        return;
    }
    if (resp->status == 413) {
        /* The body exceeds the node's http.max_content_length (100mb by
         * default); the kit sends the records again in smaller requests. */
        kit_outcome_set_all(outcomes, n, KIT_TOO_LARGE,
                            "_bulk: HTTP 413: the request is larger than the "
                            "node's http.max_content_length");
        return;
    }
    if (resp->status < 200 || resp->status >= 300) {
        kit_outcome_set_all(outcomes, n, KIT_FATAL, "_bulk: HTTP %ld: %.400s",
                            resp->status, resp->body ? resp->body : "");
        return;
    }

    es_action *actions = xmalloc(n * sizeof *actions);
    es_item *items = xcalloc(n, sizeof *items);
    for (size_t i = 0; i < n; i++)
        actions[i] = ((const record_meta *)records[i]->meta)->action;
    char err[200];
    if (!es_parse_bulk_response(resp->body ? resp->body : "", resp->body_len,
                                actions, items, n, err, sizeof err)) {
        /* Sending again is safe (versions make it idempotent). */
        kit_outcome_set_all(outcomes, n, KIT_RETRY, "%s", err);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *why = items[i].reason;
        if (items[i].result == ES_ITEM_MISSING)
            es->host->log(es->handle, PGSPOUT_LOG_WARNING,
                          "partial update skipped, the document is "
                          "gone (deleted later, or never indexed): %s",
                          why);
        switch (items[i].result) {
        case ES_ITEM_DONE:
        case ES_ITEM_MISSING:
            outcomes[i].kind = KIT_DONE;
            break;
        case ES_ITEM_RETRY:
            kit_outcome_set(&outcomes[i], KIT_RETRY, "%s", why);
            break;
        case ES_ITEM_REJECTED:
            kit_outcome_set(&outcomes[i], KIT_REJECTED, "%s", why);
            break;
        case ES_ITEM_FATAL:
            kit_outcome_set(&outcomes[i], KIT_FATAL, "%s", why);
            break;
        }
    }
out:
    free(actions);
    free(items);
}

static const kit_ops elastic_ops = {
    .build_request = build_bulk,
    .handle_response = handle_bulk,
    .free_meta = free,
};

/* ---- events to records ---- */

static pgspout_status fatal(elastic_sink *es, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static pgspout_status fatal(elastic_sink *es, const char *fmt, ...)
{
    char message[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    es->host->log(es->handle, PGSPOUT_LOG_ERROR, "%s", message);
    return PGSPOUT_FATAL;
}

static uint64_t order_key_of(const char *index, const char *id)
{
    strbuf b = STRBUF_INIT;
    sbuf_append_str(&b, index);
    sbuf_append(&b, "", 1); /* index names hold no NUL: unambiguous */
    sbuf_append_str(&b, id);
    uint64_t key = kit_order_key(b.data, b.len);
    sbuf_free(&b);
    return key;
}

/* An event that cannot become a document goes to the dead-letter file, or
 * stops the stream when there is none. */
static pgspout_status
dead_letter_event(elastic_sink *es, const pgspout_event *ev, const char *reason)
{
    size_t len;
    const char *json = es->host->event_json(ev, PGSPOUT_PART_EVENT, &len);
    char *copy = xstrndup(json, len);
    char full[700];
    snprintf(full, sizeof full, "%s.%s: %s", es->host->event_schema(ev),
             es->host->event_table(ev), reason);
    if (!es->config.dead_letter_path)
        es->host->log(es->handle, PGSPOUT_LOG_ERROR,
                      "%s (no dead_letter file: stopping)", full);
    kit_record *rec =
        kit_record_new(es->host->event_position(ev), copy, len, 0, NULL);
    return kit_submit_dead_letter(es->pipeline, rec, full);
}

static pgspout_status control_call(elastic_sink *es, const char *method,
                                   const char *path, const char *body,
                                   json_t **reply);

static char *url_escape(const char *s)
{
    strbuf b = STRBUF_INIT;
    percent_encode(&b, s, strlen(s), NULL);
    return sbuf_detach(&b);
}

/* An update that changed the row's key and did not send unchanged TOAST
 * columns: those values live only in the old document. Once everything
 * before is in the index (a barrier; such updates are rare), the old
 * document is read and the new one indexed in full from it. *source is
 * NULL when the old document is gone (a replay after it was deleted):
 * the caller falls back to the partial update. */
static pgspout_status merge_from_old(elastic_sink *es, const char *index,
                                     const char *old_id, const char *after,
                                     size_t after_len, char **source,
                                     size_t *source_len)
{
    json_t *reply = NULL, *doc;
    json_error_t jerr;
    char *path, *escaped = url_escape(old_id);
    pgspout_status st = kit_flush(es->pipeline);

    *source = NULL;
    if (st == PGSPOUT_OK) {
        path = xasprintf("/%s/_doc/%s", index, escaped);
        st = control_call(es, "GET", path, NULL, &reply);
        free(path);
    }
    free(escaped);
    doc = json_object_get(reply, "_source");
    if (st == PGSPOUT_OK && json_is_object(doc) &&
        json_is_true(json_object_get(reply, "found"))) {
        json_t *fresh = json_loadb(after, after_len, 0, &jerr);
        if (!fresh) {
            json_decref(reply);
            return fatal(es,
                         "cannot merge the new row into document %s/%s: "
                         "%s",
                         index, old_id, jerr.text);
        }
        json_object_del(doc, es->version_field);
        json_object_update(doc, fresh);
        json_decref(fresh);
        *source = xnonnull(json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER));
        *source_len = strlen(*source);
    }
    json_decref(reply);
    return st;
}

/* External versions are positive Java longs: a WAL position fits while the
 * cluster has written less than 8 EiB of WAL. */
static pgspout_status check_version(elastic_sink *es, uint64_t version)
{
    if (version == 0 || version > (uint64_t)ES_MAX_VERSION)
        return fatal(es,
                     "WAL position %llx is outside Elasticsearch's "
                     "version range",
                     (unsigned long long)version);
    return PGSPOUT_OK;
}

/* The document id of the event's key: from the key column's text when
 * typed column access (ABI 1.6) gives one that is the id as it is, else
 * from the key's JSON. NULL with err when the key has no id. */
static char *event_doc_id(elastic_sink *es, const pgspout_event *ev, char *err,
                          size_t errlen)
{
    uint32_t type_oid;
    const char *text;
    size_t len;

    if (kit_single_key_text(es->host, ev, &type_oid, &text, &len) &&
        es_id_is_key_text(type_oid, text, len))
        return xstrndup(text, len);
    const char *key = es->host->event_json(ev, PGSPOUT_PART_KEY, &len);
    return es_doc_id(key, len, NULL, 0, err, errlen);
}

/* The id the row's document had before an update moved its key, or NULL
 * (with *failed false) when the key did not move. Typed column access
 * answers "did not move" without the JSON of the key and the old row. */
static char *moved_from_id(elastic_sink *es, const pgspout_event *ev,
                           const char *id, bool *failed, char *err,
                           size_t errlen)
{
    const pgspout_host_api *h = es->host;
    size_t key_len, before_len;

    *failed = false;
    if (kit_key_unchanged(h, ev))
        return NULL;
    const char *before = h->event_json(ev, PGSPOUT_PART_BEFORE, &before_len);
    if (strcmp(before, "null") == 0)
        return NULL;
    const char *key = h->event_json(ev, PGSPOUT_PART_KEY, &key_len);
    char *old_id = es_doc_id(key, key_len, before, before_len, err, errlen);
    *failed = !old_id;
    if (old_id && strcmp(old_id, id) == 0) {
        free(old_id);
        return NULL;
    }
    return old_id;
}

/* An update's new row leaves unchanged TOAST values out: its document is
 * then merged into rather than replaced. */
static bool update_keeps_toast(const pgspout_host_api *h,
                               const pgspout_event *ev)
{
    bool known;
    bool keeps = kit_has_unchanged_toast(h, ev, &known);
    if (!known) {
        size_t toast_len;
        h->event_json(ev, PGSPOUT_PART_UNCHANGED_TOAST, &toast_len);
        keeps = toast_len > 2; /* "[]" when every column came */
    }
    return keeps;
}

/* Queues one action on a document (b, meta) as a record at pos, ordered
 * after every earlier record of the same document. */
static pgspout_status submit_document(elastic_sink *es, pgspout_position pos,
                                      const char *index, const char *id,
                                      strbuf *b, record_meta *meta,
                                      bool more_at_position)
{
    size_t len = b->len;
    char *data = sbuf_detach(b);
    kit_record *rec =
        kit_record_new(pos, data, len, order_key_of(index, id), meta);
    rec->more_at_position = more_at_position;
    return kit_submit(es->pipeline, rec);
}

static pgspout_status submit_delete(elastic_sink *es, pgspout_position pos,
                                    const char *index, const char *id,
                                    uint64_t version, bool more_at_position)
{
    record_meta *meta = xcalloc(1, sizeof *meta);
    strbuf b = STRBUF_INIT;
    meta->action = ES_ACTION_DELETE;
    es_bulk_delete(&b, index, id, version);
    return submit_document(es, pos, index, id, &b, meta, more_at_position);
}

/* An insert, read or update of document `id`. An update that moved the
 * row's key first deletes its old document, with the same version, so a
 * replayed older write to it stays refused. That delete is a record of
 * its own, ordered behind the old document's earlier writes: sent with
 * the new document's (ordered by the new id only), it could overtake a
 * write of the old document still being retried, and once the node had
 * forgotten the delete's tombstone (index.gc_deletes, a restart) that
 * write would bring the moved-away row back. */
static pgspout_status write_row(elastic_sink *es, const pgspout_event *ev,
                                const char *index, const char *id,
                                const char *old_id, uint64_t version)
{
    const pgspout_host_api *h = es->host;
    pgspout_position pos = h->event_position(ev);
    bool keeps_toast =
        h->event_op(ev) == PGSPOUT_OP_UPDATE && update_keeps_toast(h, ev);
    char *merged = NULL;
    size_t after_len, merged_len = 0;
    const char *after = h->event_json(ev, PGSPOUT_PART_AFTER, &after_len);
    pgspout_status st = PGSPOUT_OK;

    if (old_id && keeps_toast)
        st = merge_from_old(es, index, old_id, after, after_len, &merged,
                            &merged_len);
    if (old_id && st == PGSPOUT_OK)
        st = submit_delete(es, pos, index, old_id, version, true);
    if (st != PGSPOUT_OK) {
        free(merged);
        return st;
    }
    record_meta *meta = xcalloc(1, sizeof *meta);
    strbuf b = STRBUF_INIT;
    if (merged) {
        es_bulk_index(&b, index, id, version, merged, merged_len);
        meta->action = ES_ACTION_INDEX;
        free(merged);
    } else if (keeps_toast) {
        es_bulk_update(&b, index, id, version, es->version_field, after,
                       after_len);
        meta->action = ES_ACTION_UPDATE;
    } else {
        es_bulk_index(&b, index, id, version, after, after_len);
        meta->action = ES_ACTION_INDEX;
    }
    return submit_document(es, pos, index, id, &b, meta, false);
}

static pgspout_status submit_change(elastic_sink *es, const pgspout_event *ev,
                                    const char *index)
{
    const pgspout_host_api *h = es->host;
    pgspout_op op = h->event_op(ev);
    uint64_t version =
        op == PGSPOUT_OP_READ ? ES_READ_VERSION : h->event_lsn(ev);
    char err[300];

    if (check_version(es, version) != PGSPOUT_OK)
        return PGSPOUT_FATAL;
    char *id = event_doc_id(es, ev, err, sizeof err);
    if (!id)
        return dead_letter_event(es, ev, err);
    char *old_id = NULL;
    bool failed = false;
    if (op == PGSPOUT_OP_UPDATE)
        old_id = moved_from_id(es, ev, id, &failed, err, sizeof err);
    pgspout_status st;
    if (failed)
        st = dead_letter_event(es, ev, err);
    else if (op == PGSPOUT_OP_DELETE)
        st =
            submit_delete(es, h->event_position(ev), index, id, version, false);
    else
        st = write_row(es, ev, index, id, old_id, version);
    free(old_id);
    free(id);
    return st;
}

/* Blocking control-plane call (TRUNCATE, reading an old document, creating
 * the index of messages or begin/commit events). Returns OK, RETRY
 * (transient; logged) or FATAL (logged). 404 counts as done (no index, no
 * documents) and leaves *reply NULL; otherwise *reply (when asked for) is
 * the parsed JSON answer. */
static pgspout_status control_call(elastic_sink *es, const char *method,
                                   const char *path, const char *body,
                                   json_t **reply)
{
    kit_http_request req;
    kit_http_response resp;
    char *url;
    pgspout_status st = PGSPOUT_OK;

    if (reply)
        *reply = NULL;
    url = xasprintf("%s%s", kit_url_list_next(&es->urls), path);
    kit_request_init(&req, method, url);
    add_common_headers(es, &req, body ? "application/json" : NULL);
    if (body) {
        char *copy = xstrdup(body);
        kit_request_body(&req, copy, strlen(copy));
    }
    memset(&resp, 0, sizeof resp);
    if (!kit_http_perform(&es->config.http, &req, &resp)) {
        st = fatal(es, "%s %s: could not set up the request", method, path);
    } else if (kit_http_transient(&resp)) {
        es->host->log(es->handle, PGSPOUT_LOG_WARNING, "%s %s: %s (will retry)",
                      method, path,
                      resp.status  ? "server busy or failing"
                      : resp.error ? resp.error
                                   : "no response");
        st = PGSPOUT_RETRY;
    } else if (resp.status == 404) {
        st = PGSPOUT_OK;
    } else if (resp.status < 200 || resp.status >= 300) {
        st = fatal(es, "%s %s: HTTP %ld: %.400s", method, path, resp.status,
                   resp.body ? resp.body : "");
    } else if (reply) {
        json_error_t jerr;
        *reply =
            json_loadb(resp.body ? resp.body : "", resp.body_len, 0, &jerr);
        if (!*reply) {
            es->host->log(es->handle, PGSPOUT_LOG_WARNING,
                          "%s %s: the answer is not JSON (will retry)", method,
                          path);
            st = PGSPOUT_RETRY;
        }
    }
    kit_response_free(&resp);
    kit_request_free(&req);
    free(url);
    return st;
}

/* Queues a versioned delete of every document a search page lists. */
static pgspout_status delete_listed(elastic_sink *es, const char *index,
                                    json_t *page, pgspout_position pos,
                                    uint64_t version, size_t *count)
{
    json_t *hits = json_object_get(json_object_get(page, "hits"), "hits");
    size_t i;
    json_t *hit;

    json_array_foreach(hits, i, hit)
    {
        const char *id = json_string_value(json_object_get(hit, "_id"));
        if (!id)
            continue;
        /* The TRUNCATE's marker, submitted after the last page, completes
         * its position. */
        pgspout_status st = submit_delete(es, pos, index, id, version, true);
        if (st != PGSPOUT_OK)
            return st;
        (*count)++;
    }
    return PGSPOUT_OK;
}

/* TRUNCATE deletes every document of the index with an external-versioned
 * delete at the TRUNCATE's own version. Documents written after the
 * TRUNCATE (by an earlier run, on a replay) hold a newer version and stay;
 * tombstones refuse replayed older writes as for any delete. (Deleting the
 * index would lose its mappings and every tombstone; _delete_by_query
 * deletes with internal versions, and a replay would also wipe documents
 * written after the TRUNCATE and make their replayed writes conflict.)
 * The documents are listed after everything before the TRUNCATE is in the
 * index and the index is refreshed (a search sees refreshed documents
 * only), so the pipeline is drained first: a barrier. */
static pgspout_status truncate_index(elastic_sink *es, const char *index,
                                     const pgspout_event *ev)
{
    pgspout_position pos = es->host->event_position(ev);
    uint64_t version = es->host->event_lsn(ev);
    char *path;
    json_t *page = NULL;
    size_t count = 0;
    pgspout_status st = kit_flush(es->pipeline);

    if (st != PGSPOUT_OK)
        return st;
    path = xasprintf("/%s/_refresh", index);
    st = control_call(es, "POST", path, NULL, NULL);
    free(path);
    if (st != PGSPOUT_OK)
        return st;
    path = xasprintf("/%s/_search?scroll=2m", index);
    st = control_call(es, "POST", path,
                      "{\"size\":1000,\"_source\":false,\"sort\":[\"_doc\"],"
                      "\"query\":{\"match_all\":{}}}",
                      &page);
    free(path);
    while (st == PGSPOUT_OK && page) {
        json_t *hits = json_object_get(json_object_get(page, "hits"), "hits");
        const char *scroll_id =
            json_string_value(json_object_get(page, "_scroll_id"));
        if (json_array_size(hits) == 0 || !scroll_id) {
            if (scroll_id) {
                strbuf b = STRBUF_INIT;
                sbuf_append_str(&b, "{\"scroll_id\":");
                json_append_string(&b, scroll_id, strlen(scroll_id));
                sbuf_append_str(&b, "}");
                control_call(es, "DELETE", "/_search/scroll", b.data, NULL);
                sbuf_free(&b);
            }
            break;
        }
        st = delete_listed(es, index, page, pos, version, &count);
        if (st != PGSPOUT_OK)
            break;
        strbuf b = STRBUF_INIT;
        sbuf_append_str(&b, "{\"scroll\":\"2m\",\"scroll_id\":");
        json_append_string(&b, scroll_id, strlen(scroll_id));
        sbuf_append_str(&b, "}");
        json_decref(page);
        page = NULL;
        st = control_call(es, "POST", "/_search/scroll", b.data, &page);
        sbuf_free(&b);
        if (st == PGSPOUT_OK && !page) {
            /* 404: the scroll expired while the queue was full. */
            es->host->log(es->handle, PGSPOUT_LOG_WARNING,
                          "truncate of %s: the listing expired (will retry)",
                          index);
            st = PGSPOUT_RETRY;
        }
    }
    json_decref(page);
    if (st == PGSPOUT_OK)
        es->host->log(es->handle, PGSPOUT_LOG_INFO,
                      "truncate of %s: %zu documents to delete", index, count);
    return st;
}

/* ---- message, begin and commit events ---- */

/* Where a message, begin or commit event goes; NULL when it is skipped. */
static event_index *event_index_of(elastic_sink *es, pgspout_op op)
{
    event_index *ix =
        op == PGSPOUT_OP_MESSAGE ? &es->messages : &es->transactions;
    return ix->name ? ix : NULL;
}

/* Creates the index with pgspout's mapping (es_event_index_body) unless it
 * exists: an index or alias made beforehand is used as it is. Asked once
 * per run, before the index's first document is sent, so the node never
 * creates it on its own with guessed types. */
static pgspout_status ensure_event_index(elastic_sink *es, event_index *ix)
{
    json_t *existing = NULL;

    if (ix->ready)
        return PGSPOUT_OK;
    char *path = xasprintf("/%s", ix->name);
    pgspout_status st = control_call(es, "GET", path, NULL, &existing);
    if (st == PGSPOUT_OK && !existing) {
        st = control_call(es, "PUT", path, es_event_index_body, NULL);
        if (st == PGSPOUT_OK)
            es->host->log(es->handle, PGSPOUT_LOG_INFO, "created index %s",
                          ix->name);
    }
    json_decref(existing);
    free(path);
    ix->ready = st == PGSPOUT_OK;
    return st;
}

/* A message, begin or commit event is one document, the event's JSON as
 * it is. Its _id is the event's position, unique over the stream and the
 * same on every replay, and its version the commit LSN, so a replayed copy
 * is refused as already applied (409, done) rather than indexed twice. */
static pgspout_status submit_event_document(elastic_sink *es,
                                            const pgspout_event *ev,
                                            event_index *ix)
{
    const pgspout_host_api *h = es->host;
    pgspout_position pos = h->event_position(ev);
    char id[KIT_POSITION_ID_MAX];
    size_t len;
    pgspout_status st = ensure_event_index(es, ix);

    if (st == PGSPOUT_OK)
        st = check_version(es, pos.commit_lsn);
    if (st != PGSPOUT_OK)
        return st;
    const char *json = h->event_json(ev, PGSPOUT_PART_EVENT, &len);
    kit_position_id(pos, id, sizeof id);
    record_meta *meta = xcalloc(1, sizeof *meta);
    meta->action = ES_ACTION_INDEX;
    strbuf b = STRBUF_INIT;
    es_bulk_index(&b, ix->name, id, pos.commit_lsn, json, len);
    return submit_document(es, pos, ix->name, id, &b, meta, false);
}

static bool has_table(pgspout_op op)
{
    return op != PGSPOUT_OP_MESSAGE && op != PGSPOUT_OP_BEGIN &&
           op != PGSPOUT_OP_COMMIT;
}

static pgspout_status
elastic_write(void *state, const pgspout_event *const *events, size_t count)
{
    elastic_sink *es = state;
    const pgspout_host_api *h = es->host;

    for (size_t i = 0; i < count; i++) {
        const pgspout_event *ev = events[i];
        pgspout_position pos = h->event_position(ev);
        pgspout_op op = h->event_op(ev);
        pgspout_status st;
        char err[400];

        if (es->have_taken && pgspout_position_cmp(pos, es->taken) <= 0)
            continue;
        if (!has_table(op)) {
            event_index *ix = event_index_of(es, op);
            st = ix ? submit_event_document(es, ev, ix)
                    : kit_submit_marker(es->pipeline, pos);
        } else if (op == PGSPOUT_OP_SCHEMA ||
                   (op == PGSPOUT_OP_TRUNCATE && !es->truncate_delete)) {
            st = kit_submit_marker(es->pipeline, pos);
        } else {
            char *index = es_index_name(es->index_template, h->event_schema(ev),
                                        h->event_table(ev), err, sizeof err);
            if (!index)
                return fatal(es,
                             "table %s.%s: %s (change the index option, "
                             "or leave the table out with -T)",
                             h->event_schema(ev), h->event_table(ev), err);
            if (op == PGSPOUT_OP_TRUNCATE) {
                st = truncate_index(es, index, ev);
                if (st == PGSPOUT_OK)
                    st = kit_submit_marker(es->pipeline, pos);
            } else {
                st = submit_change(es, ev, index);
            }
            free(index);
        }
        if (st != PGSPOUT_OK)
            return st;
        es->have_taken = true;
        es->taken = pos;
    }
    return PGSPOUT_OK;
}

static pgspout_status elastic_flush(void *state)
{
    elastic_sink *es = state;
    return kit_flush(es->pipeline);
}

static void elastic_destroy(void *state)
{
    elastic_sink *es = state;
    if (!es)
        return;
    if (es->pipeline)
        kit_pipeline_free(es->pipeline);
    kit_url_list_free(&es->urls);
    kit_secret_free(es->auth_header);
    free(es);
}

static bool setup_auth(elastic_sink *es, const char **bad, char *err,
                       size_t errlen)
{
    const pgspout_host_api *h = es->host;
    const char *user = NULL, *password = NULL, *api_key = NULL;

    h->option_string(es->handle, "username", &user);
    h->option_string(es->handle, "password", &password);
    h->option_string(es->handle, "api_key", &api_key);
    if (api_key && (user || password)) {
        *bad = "api_key";
        snprintf(err, errlen,
                 "give either api_key or username/password, "
                 "not both");
        return false;
    }
    if (api_key) {
        es->auth_header = xasprintf("Authorization: ApiKey %s", api_key);
        return true;
    }
    if (!user && !password)
        return true;
    if (!user || !password) {
        *bad = user ? "password" : "username";
        snprintf(err, errlen, "username and password go together");
        return false;
    }
    es->auth_header = kit_basic_auth_header(user, password);
    return true;
}

/* Reads a choice between indexing events that belong to no table (into
 * the index the name option gives, which must be a valid index name as it
 * is) and skipping them. */
static bool setup_event_index(elastic_sink *es, const char *choice_option,
                              const char *name_option, event_index *ix,
                              char *err, size_t errlen)
{
    const char *choice = NULL, *name = NULL;
    char why[300];

    es->host->option_string(es->handle, choice_option, &choice);
    es->host->option_string(es->handle, name_option, &name);
    if (!choice || strcmp(choice, "index") != 0)
        return true;
    if (!name || !es_index_name_valid(name, why, sizeof why)) {
        snprintf(err, errlen, "%s: %s", name_option,
                 name ? why : "no index name given");
        return false;
    }
    ix->name = name;
    return true;
}

/* Reads the options into es; false with err set and *bad naming the
 * option at fault. */
static bool setup(elastic_sink *es, const char **bad, char *err, size_t errlen)
{
    const pgspout_host_api *host = es->host;
    const char *urls = NULL, *truncate = NULL;
    host->option_string(es->handle, "url", &urls);
    host->option_string(es->handle, "index", &es->index_template);
    host->option_string(es->handle, "truncate", &truncate);
    host->option_string(es->handle, "version_field", &es->version_field);
    es->truncate_delete = !truncate || strcmp(truncate, "delete") == 0;
    *bad = "url";
    if (!kit_url_list_parse(&es->urls, "url", urls, true, err, errlen))
        return false;
    *bad = "index";
    if (!es_index_template_check(es->index_template, err, errlen))
        return false;
    *bad = "message_index";
    if (!setup_event_index(es, "messages", "message_index", &es->messages, err,
                           errlen))
        return false;
    *bad = "transaction_index";
    if (!setup_event_index(es, "transactions", "transaction_index",
                           &es->transactions, err, errlen))
        return false;
    *bad = "version_field";
    if (!*es->version_field) {
        snprintf(err, errlen, "version_field is empty");
        return false;
    }
    *bad = NULL;
    return setup_auth(es, bad, err, errlen);
}

/* ABI 1.7: the options' checks of create, run when pgspout checks its
 * configuration, so a bad value is a configuration error. */
static bool elastic_check_options(const pgspout_host_api *host,
                                  pgspout_sink_handle *handle, char *option,
                                  size_t option_size, char *why,
                                  size_t why_size)
{
    elastic_sink *es = xcalloc(1, sizeof *es);
    es->host = host;
    es->handle = handle;
    char err[400];
    const char *bad = NULL;
    bool ok = setup(es, &bad, err, sizeof err);
    elastic_destroy(es);
    return ok ||
           kit_option_refuse(bad, err, option, option_size, why, why_size);
}

static pgspout_status elastic_create(const pgspout_host_api *host,
                                     pgspout_sink_handle *handle, void **state)
{
    elastic_sink *es = xcalloc(1, sizeof *es);
    char err[400];
    const char *bad;

    es->host = host;
    es->handle = handle;
    if (!setup(es, &bad, err, sizeof err)) {
        host->log(handle, PGSPOUT_LOG_ERROR, "%s", err);
        elastic_destroy(es);
        return PGSPOUT_FATAL;
    }

    if (kit_pipeline_config_from_options(host, handle, "elastic", &es->config,
                                         err, sizeof err)) {
        /* Items of one document may share a request: the node applies them
         * in order, and external versions make a retried older item
         * harmless. */
        es->config.same_key_in_request = true;
        es->config.http.user_agent = "pgspout-elastic/" ELASTIC_SINK_VERSION;
        es->pipeline = kit_pipeline_new(host, handle, &es->config, &elastic_ops,
                                        es, err, sizeof err);
    }
    if (!es->pipeline) {
        host->log(handle, PGSPOUT_LOG_ERROR, "%s", err);
        elastic_destroy(es);
        return PGSPOUT_FATAL;
    }
    *state = es;
    return PGSPOUT_OK;
}

static const pgspout_sink_descriptor elastic_descriptor = {
    /* ABI 1.5: message, begin and commit events (README). */
    PGSPOUT_SINK_HEADER_MINOR(5),
    .name = "elastic",
    .version = ELASTIC_SINK_VERSION,
    .description = "Elasticsearch/OpenSearch documents via _bulk, "
                   "externally versioned",
    .options = elastic_options,
    .create = elastic_create,
    .write = elastic_write,
    .flush = elastic_flush,
    .destroy = elastic_destroy,
    .resume_position = NULL,
    .check_options = elastic_check_options,
};

PGSPOUT_EXPORT const pgspout_sink_descriptor *pgspout_sink_entry(void)
{
    return &elastic_descriptor;
}
