/* The BigQuery sink: each source table gets a changelog table (one row per
 * change, written with tabledata.insertAll) and a view of every row's
 * latest state. Delivery, retries and acknowledgements are the sink kit's
 * (plugins/kit); this file turns events into requests and keeps the tables
 * in shape. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include <pgspout/pgspout.h>

#include "bq_auth.h"
#include "bq_events.h"
#include "bq_row.h"
#include "bq_schema.h"
#include "fileio.h"
#include "option_check.h"
#include "percent.h"
#include "pipeline.h"
#include "strbuf.h"

#define BQ_DEFAULT_ENDPOINT "https://bigquery.googleapis.com"

static const pgspout_option_def bq_options[] = {
    {.name = "project",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_REQUIRED,
     .doc = "Google Cloud project of the dataset"},
    {.name = "dataset",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_REQUIRED,
     .doc = "dataset the tables and views go into (must exist)"},
    {.name = "table",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "{schema}_{table}_changelog",
     .doc = "changelog table name template ({schema}, {table})"},
    {.name = "view",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "{schema}_{table}",
     .doc = "latest-state view name template ({schema}, {table})"},
    {.name = "endpoint",
     .type = PGSPOUT_OPT_STRING,
     .default_value = BQ_DEFAULT_ENDPOINT,
     .doc = "API endpoint; an http:// one (an emulator) means no auth"},
    {.name = "location",
     .type = PGSPOUT_OPT_STRING,
     .doc = "dataset location for query jobs (e.g. EU; default: the API's)"},
    {.name = "auth",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "auto",
     .choices = "auto|adc|file|key|metadata|none",
     .doc = "credentials: auto, adc (Google's discovery order), file "
            "(a credentials file; key is the same), metadata server, none"},
    {.name = "credentials_file",
     .type = PGSPOUT_OPT_STRING,
     .doc = "credentials file: service_account, authorized_user or "
            "external_account (default: $GOOGLE_APPLICATION_CREDENTIALS, "
            "then gcloud's application_default_credentials.json)"},
    {.name = "metadata_endpoint",
     .type = PGSPOUT_OPT_STRING,
     .doc = "metadata server base URL (default: http://$GCE_METADATA_HOST, "
            "else http://metadata.google.internal)"},
    {.name = "schema_mismatch",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "warn",
     .choices = "warn|stop",
     .doc = "a column changed type or was dropped: warn and go on, or stop"},
    {.name = "messages",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "table",
     .choices = "table|skip",
     .doc = "message events (pgspout's messages setting): a row each in "
            "message_table, or skip them"},
    {.name = "message_table",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "pgspout_messages",
     .doc = "table of message events (created when missing)"},
    {.name = "transactions",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "skip",
     .choices = "skip|table",
     .doc = "begin and commit events (pgspout's transaction_events "
            "setting): skip them, or a row each in transaction_table"},
    {.name = "transaction_table",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "pgspout_transactions",
     .doc = "table of begin and commit events (created when missing)"},
    KIT_PIPELINE_OPTIONS("500", "5M", "200ms", "4"),
    PGSPOUT_OPTION_END};

typedef struct bq_table {
    /* The source relation; NULL for the messages and transactions tables,
     * which belong to none. */
    char *schema, *name;
    char *changelog_id, *view_id;
    uint64_t batch_key; /* unique among the sink's tables */
    bq_columns cols;    /* the changelog table's source columns */
    bool view_current;  /* the view matches cols (this run) */
    struct bq_table *next;
} bq_table;

/* A record is one change: a JSON array of its rows (two for an update
 * that changes the key), so it is acknowledged only once all are stored. */
typedef struct bq_record_meta {
    const bq_table *table; /* lives until the sink is destroyed */
    size_t nrows;
} bq_record_meta;

typedef struct bq_sink {
    const pgspout_host_api *host;
    pgspout_sink_handle *handle;
    const char *project, *dataset, *endpoint, *location;
    const char *table_tmpl, *view_tmpl;
    bool stop_on_mismatch;
    kit_pipeline_config config;
    bq_auth *auth;
    kit_pipeline *pipeline;
    bq_table *tables;
    /* Where message and begin/commit events go (also in tables); NULL:
     * skipped. Created once per run, before their first row. */
    bq_table *messages_table, *transactions_table;
    bool messages_ready, transactions_ready;
    bool have_taken;
    pgspout_position last_taken; /* newest change event taken */
} bq_sink;

/* Percent-encodes a URL path segment (table names may hold anything). */
static void append_segment(strbuf *sb, const char *s)
{
    percent_encode(sb, s, strlen(s), NULL);
}

/* endpoint/bigquery/v2/projects/P, the root of every API URL. */
static void append_project_url(strbuf *sb, const bq_sink *s)
{
    sbuf_append_str(sb, s->endpoint);
    while (sb->len && sb->data[sb->len - 1] == '/')
        sb->data[--sb->len] = '\0';
    sbuf_append_str(sb, "/bigquery/v2/projects/");
    append_segment(sb, s->project);
}

/* endpoint/bigquery/v2/projects/P/datasets/D[/tables[/T[/suffix]]] */
static char *dataset_url(const bq_sink *s, const char *table_id,
                         const char *suffix)
{
    strbuf sb = STRBUF_INIT;
    append_project_url(&sb, s);
    sbuf_append_str(&sb, "/datasets/");
    append_segment(&sb, s->dataset);
    sbuf_append_str(&sb, "/tables");
    if (table_id) {
        sbuf_append_char(&sb, '/');
        append_segment(&sb, table_id);
    }
    if (suffix)
        sbuf_append_str(&sb, suffix);
    return sbuf_detach(&sb);
}

static char *queries_url(const bq_sink *s)
{
    strbuf sb = STRBUF_INIT;
    append_project_url(&sb, s);
    sbuf_append_str(&sb, "/queries");
    return sbuf_detach(&sb);
}

/* Adds the Authorization header. The token is refreshed in the
 * background, so this waits only when there is no valid token at all, and
 * then at most one request timeout. Still none: the request goes without
 * one, the service answers 401 and the request is retried with backoff
 * (nothing is dropped). */
/* How long to wait for a first token when request_timeout is 0 (none). */
#define BQ_TOKEN_WAIT_UNLIMITED_MS 60000

static void add_auth(bq_sink *s, kit_http_request *req)
{
    char header[4096], err[512];
    long wait_ms = s->config.http.request_timeout_ms > 0
                       ? s->config.http.request_timeout_ms
                       : BQ_TOKEN_WAIT_UNLIMITED_MS;
    if (!bq_auth_header(s->auth, header, sizeof header, wait_ms, err,
                        sizeof err)) {
        s->host->log(s->handle, PGSPOUT_LOG_WARNING,
                     "no access token for now (%s); will retry", err);
        return;
    }
    if (header[0])
        kit_request_header(req, "%s", header);
    OPENSSL_cleanse(header, sizeof header);
}

/* ---- pipeline callbacks (pipeline thread) ---- */

static bool build_request(void *ctx, kit_record *const *records, size_t n,
                          kit_http_request *req, char *err, size_t errlen)
{
    bq_sink *s = ctx;
    const bq_table *table = ((const bq_record_meta *)records[0]->meta)->table;
    strbuf body = STRBUF_INIT;
    sbuf_append_str(&body, "{\"skipInvalidRows\":false,"
                           "\"ignoreUnknownValues\":false,\"rows\":[");
    unsigned attempts = 0;
    for (size_t i = 0; i < n; i++) {
        const kit_record *r = records[i];
        const bq_record_meta *meta = r->meta;
        /* The batch key is the table's, and unique per table. */
        if (meta->table != table) {
            snprintf(err, errlen,
                     "internal error: rows of %s and %s in one request",
                     table->changelog_id, meta->table->changelog_id);
            sbuf_free(&body);
            return false;
        }
        if (i)
            sbuf_append_char(&body, ',');
        /* the record's array without its brackets */
        sbuf_append(&body, r->data + 1, r->len - 2);
        if (r->attempts > attempts)
            attempts = r->attempts;
    }
    sbuf_append_str(&body, "]}");

    char *url = dataset_url(s, table->changelog_id, "/insertAll");
    kit_request_init(req, "POST", url);
    free(url);
    kit_request_header(req, "Content-Type: application/json");
    add_auth(s, req);
    size_t len = body.len;
    kit_request_body(req, sbuf_detach(&body), len);
    if (attempts > 1)
        s->host->log(s->handle, PGSPOUT_LOG_DEBUG,
                     "insertAll of %zu changes into %s, attempt %u", n,
                     table->changelog_id, attempts);
    return true;
}

static void handle_response(void *ctx, const kit_http_response *resp,
                            kit_record *const *records, size_t n,
                            kit_outcome *outcomes)
{
    bq_sink *s = ctx;
    size_t *record_rows = xcalloc(n, sizeof *record_rows);
    for (size_t i = 0; i < n; i++)
        record_rows[i] = ((const bq_record_meta *)records[i]->meta)->nrows;
    bool auth_failed = false;
    bq_insert_outcomes(resp, record_rows, n, outcomes, &auth_failed);
    free(record_rows);
    if (auth_failed)
        bq_auth_invalidate(s->auth);
    for (size_t i = 0; i < n; i++) {
        /* TOO_LARGE too: the kit rejects a change refused on its own. */
        if (outcomes[i].kind == KIT_FATAL || outcomes[i].kind == KIT_REJECTED ||
            outcomes[i].kind == KIT_TOO_LARGE) {
            const bq_record_meta *meta = records[i]->meta;
            size_t used = strlen(outcomes[i].reason);
            snprintf(outcomes[i].reason + used,
                     sizeof outcomes[i].reason - used, " (table %s)",
                     meta->table->changelog_id);
        }
    }
}

static const kit_ops bq_ops = {
    .build_request = build_request,
    .handle_response = handle_response,
    .free_meta = free,
};

/* ---- control plane (write thread, blocking) ---- */

/* Runs one API call, taking url and body (may be NULL). PGSPOUT_OK for
 * any answer, which the caller reads and frees; FATAL (resp empty) when the
 * request could not be made at all. */
static pgspout_status api_call(bq_sink *s, const char *method, char *url,
                               char *body, kit_http_response *resp)
{
    kit_http_request req;
    memset(resp, 0, sizeof *resp);
    kit_request_init(&req, method, url);
    free(url);
    add_auth(s, &req);
    if (body) {
        kit_request_header(&req, "Content-Type: application/json");
        kit_request_body(&req, body, strlen(body));
    }
    bool ok = kit_http_perform(&s->config.http, &req, resp);
    kit_request_free(&req);
    if (!ok) {
        s->host->log(s->handle, PGSPOUT_LOG_ERROR,
                     "cannot set up a request to %s", s->endpoint);
        kit_response_free(resp);
        return PGSPOUT_FATAL;
    }
    if (resp->status == 401)
        bq_auth_invalidate(s->auth);
    return PGSPOUT_OK;
}

/* The status for an answer that is not what was hoped for. */
static pgspout_status call_failed(bq_sink *s, const char *what,
                                  const kit_http_response *resp)
{
    char message[512];
    bq_error_message(resp, message, sizeof message);
    bool transient = kit_http_transient(resp) || resp->status == 401;
    json_t *body = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
    const char *reason = bq_error_reason(body);
    if (resp->status == 403 && (strcmp(reason, "rateLimitExceeded") == 0 ||
                                strcmp(reason, "quotaExceeded") == 0))
        transient = true;
    json_decref(body);
    s->host->log(s->handle, transient ? PGSPOUT_LOG_WARNING : PGSPOUT_LOG_ERROR,
                 "%s: %s%s", what, message, transient ? " (will retry)" : "");
    return transient ? PGSPOUT_RETRY : PGSPOUT_FATAL;
}

/* Runs a query job to completion (DDL). */
static pgspout_status run_query(bq_sink *s, const char *what, const char *sql)
{
    json_t *req = json_pack("{s:s, s:b, s:i}", "query", sql, "useLegacySql", 0,
                            "timeoutMs", 60000);
    if (s->location)
        json_object_set_new(req, "location", json_string(s->location));
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    kit_http_response resp;
    pgspout_status st = api_call(s, "POST", queries_url(s), body, &resp);
    if (st != PGSPOUT_OK)
        return st;
    if (resp.status != 200) {
        st = call_failed(s, what, &resp);
    } else {
        json_t *answer = json_loads(resp.body ? resp.body : "", 0, NULL);
        json_t *errors = json_object_get(answer, "errors");
        json_t *error_result =
            json_object_get(json_object_get(answer, "status"), "errorResult");
        json_t *first =
            json_array_size(errors) ? json_array_get(errors, 0) : error_result;
        if (first) {
            const char *m =
                json_string_value(json_object_get(first, "message"));
            s->host->log(s->handle, PGSPOUT_LOG_ERROR, "%s: %s", what,
                         m ? m : "query failed");
            st = PGSPOUT_FATAL;
        } else if (!json_is_true(json_object_get(answer, "jobComplete"))) {
            s->host->log(s->handle, PGSPOUT_LOG_WARNING,
                         "%s: the query job did not finish in time; will "
                         "retry",
                         what);
            st = PGSPOUT_RETRY;
        }
        json_decref(answer);
    }
    kit_response_free(&resp);
    return st;
}

static pgspout_status get_table(bq_sink *s, const char *table_id,
                                json_t **table)
{
    kit_http_response resp;
    *table = NULL;
    pgspout_status st =
        api_call(s, "GET", dataset_url(s, table_id, NULL), NULL, &resp);
    if (st != PGSPOUT_OK)
        return st;
    if (resp.status != 200)
        st = call_failed(s, "reading the changelog table", &resp);
    else if (!(*table = json_loads(resp.body, 0, NULL)))
        st = PGSPOUT_RETRY;
    kit_response_free(&resp);
    return st;
}

static pgspout_status add_columns(bq_sink *s, bq_table *t, json_t *existing,
                                  const bq_column *added, size_t nadded)
{
    char *body = bq_patch_add_columns_json(existing, added, nadded);
    kit_http_response resp;
    pgspout_status st = api_call(
        s, "PATCH", dataset_url(s, t->changelog_id, NULL), body, &resp);
    if (st != PGSPOUT_OK)
        return st;
    if (resp.status != 200)
        st = call_failed(s, "adding columns to the changelog table", &resp);
    kit_response_free(&resp);
    /* tables.patch is the API's way; the same change as DDL is a no-op on
     * BigQuery once the patch went through, and keeps emulators whose
     * patch only updates metadata consistent. */
    for (size_t i = 0; st == PGSPOUT_OK && i < nadded; i++) {
        char *ddl = bq_add_column_ddl(s->project, s->dataset, t->changelog_id,
                                      &added[i]);
        st = run_query(s, "adding a column to the changelog table", ddl);
        free(ddl);
    }
    for (size_t i = 0; st == PGSPOUT_OK && i < nadded; i++)
        s->host->log(s->handle, PGSPOUT_LOG_INFO,
                     "added column %s (%s%s) to %s", added[i].name,
                     added[i].repeated ? "REPEATED " : "", added[i].type,
                     t->changelog_id);
    return st;
}

static void copy_column(bq_column *dst, const bq_column *src)
{
    *dst = *src;
    dst->name = xstrdup(src->name);
    dst->pg_type = xstrdup(src->pg_type);
}

/* Brings the changelog table (existing: its tables.get resource) in line
 * with the relation's columns; t->cols becomes the table's columns. */
static pgspout_status reconcile(bq_sink *s, bq_table *t, json_t *existing,
                                const bq_columns *source)
{
    char err[512];
    bq_columns current;
    if (!bq_columns_from_table(existing, &current, err, sizeof err)) {
        s->host->log(s->handle, PGSPOUT_LOG_ERROR, "table %s: %s",
                     t->changelog_id, err);
        return PGSPOUT_FATAL;
    }
    bq_schema_diff diff;
    bq_schema_diff_compute(&current, source, &diff);
    pgspout_status st = PGSPOUT_OK;
    for (size_t i = 0; i < diff.nretyped; i++)
        s->host->log(s->handle,
                     s->stop_on_mismatch ? PGSPOUT_LOG_ERROR
                                         : PGSPOUT_LOG_WARNING,
                     "table %s: column %s; values are written as the "
                     "BigQuery type and rows BigQuery refuses are rejected",
                     t->changelog_id, diff.retyped[i]);
    for (size_t i = 0; i < diff.ndropped; i++)
        s->host->log(s->handle,
                     s->stop_on_mismatch ? PGSPOUT_LOG_ERROR
                                         : PGSPOUT_LOG_WARNING,
                     "table %s: column %s is gone from %s.%s; it stays in "
                     "BigQuery and new changes leave it NULL",
                     t->changelog_id, diff.dropped[i], t->schema, t->name);
    if (s->stop_on_mismatch && (diff.nretyped || diff.ndropped))
        st = PGSPOUT_FATAL;
    if (st == PGSPOUT_OK && diff.nadded)
        st = add_columns(s, t, existing, diff.added, diff.nadded);
    if (st == PGSPOUT_OK) {
        bool changed = diff.nadded > 0 || current.n != t->cols.n;
        bq_columns merged = {
            xcalloc(current.n + diff.nadded + 1, sizeof *merged.cols), 0};
        for (size_t i = 0; i < current.n; i++)
            copy_column(&merged.cols[merged.n++], &current.cols[i]);
        for (size_t i = 0; i < diff.nadded; i++)
            copy_column(&merged.cols[merged.n++], &diff.added[i]);
        bq_columns_free(&t->cols);
        t->cols = merged;
        if (changed)
            t->view_current = false;
    }
    bq_schema_diff_free(&diff);
    bq_columns_free(&current);
    return st;
}

static pgspout_status ensure_tables(bq_sink *s, bq_table *t,
                                    const bq_columns *source)
{
    char *body = bq_changelog_table_json(s->project, s->dataset,
                                         t->changelog_id, source);
    kit_http_response resp;
    pgspout_status st =
        api_call(s, "POST", dataset_url(s, NULL, NULL), body, &resp);
    if (st != PGSPOUT_OK)
        return st;
    json_t *existing = NULL;
    if (resp.status == 200) {
        existing = json_loads(resp.body, 0, NULL);
        s->host->log(s->handle, PGSPOUT_LOG_INFO, "created table %s",
                     t->changelog_id);
    } else if (resp.status == 409) {
        st = get_table(s, t->changelog_id, &existing);
    } else {
        st = call_failed(s, "creating the changelog table", &resp);
    }
    kit_response_free(&resp);
    if (st == PGSPOUT_OK && !existing)
        st = get_table(s, t->changelog_id, &existing);
    if (st == PGSPOUT_OK)
        st = reconcile(s, t, existing, source);
    json_decref(existing);
    if (st == PGSPOUT_OK && !t->view_current) {
        char *view = bq_view_query_json(s->project, s->dataset, t->view_id,
                                        t->changelog_id, &t->cols);
        json_t *req = json_loads(view, 0, NULL);
        free(view);
        const char *sql = json_string_value(json_object_get(req, "query"));
        st = run_query(s, "creating the view", sql);
        json_decref(req);
        if (st == PGSPOUT_OK) {
            t->view_current = true;
            s->host->log(s->handle, PGSPOUT_LOG_INFO, "view %s is up to date",
                         t->view_id);
        }
    }
    return st;
}

/* ---- events ---- */

static bq_table *find_table(bq_sink *s, const char *schema, const char *name)
{
    for (bq_table *t = s->tables; t; t = t->next)
        if (t->schema && strcmp(t->schema, schema) == 0 &&
            strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

/* The kit never puts records of different batch keys in one request, and
 * insertAll takes one table per request: so a table's key must be its own
 * even when two names hash alike. */
static uint64_t table_batch_key(const bq_sink *s, const char *changelog_id)
{
    uint64_t key = kit_order_key(changelog_id, strlen(changelog_id));
    for (;;) {
        bool taken = key == 0;
        for (const bq_table *t = s->tables; t && !taken; t = t->next)
            taken = t->batch_key == key;
        if (!taken)
            return key;
        key++;
    }
}

/* Submits one change's rows (rows_json: a JSON array) as one record. */
static pgspout_status submit_rows(bq_sink *s, const bq_table *t,
                                  pgspout_position pos, char *rows_json,
                                  size_t nrows)
{
    bq_record_meta *meta = xcalloc(1, sizeof *meta);
    meta->table = t;
    meta->nrows = nrows;
    kit_record *r = kit_record_new(pos, rows_json, strlen(rows_json), 0, meta);
    r->batch_key = t->batch_key;
    /* the comma that joins it to the request's other rows */
    r->overhead = 1;
    return kit_submit(s->pipeline, r);
}

static pgspout_status handle_schema(bq_sink *s, const pgspout_event *ev)
{
    const pgspout_host_api *h = s->host;
    const char *schema = h->event_schema(ev), *name = h->event_table(ev);
    size_t len;
    const char *cols_json = h->event_json(ev, PGSPOUT_PART_COLUMNS, &len);
    json_t *cols = json_loadb(cols_json, len, 0, NULL);
    char err[512];
    bq_columns source;
    bool ok = bq_columns_from_event(cols, &source, err, sizeof err);
    json_decref(cols);
    if (!ok) {
        h->log(s->handle, PGSPOUT_LOG_ERROR, "%s.%s: %s", schema, name, err);
        return PGSPOUT_FATAL;
    }
    /* Rows already submitted were converted for the table as it was:
     * they go out before the table changes. */
    pgspout_status st = kit_flush(s->pipeline);
    bq_table *t = find_table(s, schema, name);
    if (st == PGSPOUT_OK && !t) {
        t = xcalloc(1, sizeof *t);
        t->schema = xstrdup(schema);
        t->name = xstrdup(name);
        t->changelog_id = bq_expand_template(s->table_tmpl, schema, name);
        t->view_id = bq_expand_template(s->view_tmpl, schema, name);
        t->batch_key = table_batch_key(s, t->changelog_id);
        t->next = s->tables;
        s->tables = t;
    }
    if (st == PGSPOUT_OK)
        st = ensure_tables(s, t, &source);
    bq_columns_free(&source);
    if (st == PGSPOUT_OK)
        st = kit_submit_marker(s->pipeline, h->event_position(ev));
    return st;
}

static pgspout_status handle_change(bq_sink *s, const pgspout_event *ev)
{
    const pgspout_host_api *h = s->host;
    pgspout_position pos = h->event_position(ev);
    bq_table *t = find_table(s, h->event_schema(ev), h->event_table(ev));
    if (!t) {
        h->log(s->handle, PGSPOUT_LOG_ERROR,
               "a change of %s.%s came before its schema event",
               h->event_schema(ev), h->event_table(ev));
        return PGSPOUT_FATAL;
    }
    size_t len;
    const char *text = h->event_json(ev, PGSPOUT_PART_EVENT, &len);
    json_t *event = json_loadb(text, len, 0, NULL);
    json_t *rows = json_array();
    char err[512] = "";
    bool ok =
        event && bq_event_rows(event, pos, &t->cols, rows, err, sizeof err);
    json_decref(event);
    if (!ok) {
        json_decref(rows);
        if (!*err)
            snprintf(err, sizeof err, "unreadable event JSON");
        kit_record *r = kit_record_new(pos, xstrndup(text, len), len, 0, NULL);
        char reason[700];
        snprintf(reason, sizeof reason, "%s.%s: %s", t->schema, t->name, err);
        pgspout_status st = kit_submit_dead_letter(s->pipeline, r, reason);
        if (st != PGSPOUT_OK)
            h->log(s->handle, PGSPOUT_LOG_ERROR,
                   "cannot store a change in BigQuery (%s) and no "
                   "dead_letter file takes it",
                   reason);
        return st;
    }
    size_t nrows = json_array_size(rows);
    char *rows_json = json_dumps(rows, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(rows);
    if (nrows == 0) {
        free(rows_json);
        return kit_submit_marker(s->pipeline, pos);
    }
    return submit_rows(s, t, pos, rows_json, nrows);
}

/* ---- message, begin and commit events ---- */

/* Creates the messages or transactions table unless it exists; a table
 * that exists is used as it is. */
static pgspout_status ensure_event_table(bq_sink *s, const bq_table *t,
                                         bq_event_table_kind kind)
{
    char *body =
        bq_event_table_json(s->project, s->dataset, t->changelog_id, kind);
    kit_http_response resp;
    pgspout_status st =
        api_call(s, "POST", dataset_url(s, NULL, NULL), body, &resp);
    if (st != PGSPOUT_OK)
        return st;
    if (resp.status == 200)
        s->host->log(s->handle, PGSPOUT_LOG_INFO, "created table %s",
                     t->changelog_id);
    else if (resp.status != 409)
        st = call_failed(s, "creating the messages or transactions table",
                         &resp);
    kit_response_free(&resp);
    return st;
}

/* A message, begin or commit event is one row of its table; its insertId
 * is its position, as a change's, so a resent copy is dropped the same
 * way. A skipped one counts as delivered at once. */
static pgspout_status handle_event(bq_sink *s, const pgspout_event *ev)
{
    const pgspout_host_api *h = s->host;
    pgspout_position pos = h->event_position(ev);
    bool message = h->event_op(ev) == PGSPOUT_OP_MESSAGE;
    bq_table *t = message ? s->messages_table : s->transactions_table;
    bool *ready = message ? &s->messages_ready : &s->transactions_ready;
    bq_event_table_kind kind =
        message ? BQ_MESSAGES_TABLE : BQ_TRANSACTIONS_TABLE;

    if (!t)
        return kit_submit_marker(s->pipeline, pos);
    if (!*ready) {
        pgspout_status st = ensure_event_table(s, t, kind);
        if (st != PGSPOUT_OK)
            return st;
        *ready = true;
    }
    size_t len;
    const char *text = h->event_json(ev, PGSPOUT_PART_EVENT, &len);
    json_t *event = json_loadb(text, len, 0, NULL);
    char err[300] = "unreadable event JSON";
    json_t *row =
        event ? bq_event_row(event, pos, kind, err, sizeof err) : NULL;
    json_decref(event);
    if (!row) {
        h->log(s->handle, PGSPOUT_LOG_ERROR, "%s: %s", t->changelog_id, err);
        return PGSPOUT_FATAL;
    }
    json_t *rows = json_pack("[o]", row);
    char *rows_json = json_dumps(rows, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(rows);
    return submit_rows(s, t, pos, xnonnull(rows_json), 1);
}

static bool has_table(pgspout_op op)
{
    return op != PGSPOUT_OP_MESSAGE && op != PGSPOUT_OP_BEGIN &&
           op != PGSPOUT_OP_COMMIT;
}

static pgspout_status bq_write(void *state, const pgspout_event *const *events,
                               size_t count)
{
    bq_sink *s = state;
    const pgspout_host_api *h = s->host;
    for (size_t i = 0; i < count; i++) {
        const pgspout_event *ev = events[i];
        pgspout_op op = h->event_op(ev);
        pgspout_position pos = h->event_position(ev);
        pgspout_status st;
        if (op == PGSPOUT_OP_SCHEMA) {
            st = handle_schema(s, ev);
        } else {
            /* After a RETRY the host sends the batch again: what was
             * already taken is not taken twice. */
            if (s->have_taken && pgspout_position_cmp(pos, s->last_taken) <= 0)
                continue;
            if (!has_table(op))
                st = handle_event(s, ev);
            else if (op == PGSPOUT_OP_INSERT || op == PGSPOUT_OP_UPDATE ||
                     op == PGSPOUT_OP_DELETE || op == PGSPOUT_OP_TRUNCATE ||
                     op == PGSPOUT_OP_READ)
                st = handle_change(s, ev);
            else
                st = kit_submit_marker(s->pipeline, pos);
            if (st == PGSPOUT_OK) {
                s->have_taken = true;
                s->last_taken = pos;
            }
        }
        if (st != PGSPOUT_OK)
            return st;
    }
    return PGSPOUT_OK;
}

static pgspout_status bq_flush(void *state)
{
    bq_sink *s = state;
    return kit_flush(s->pipeline);
}

static void bq_destroy(void *state)
{
    bq_sink *s = state;
    if (!s)
        return;
    if (s->pipeline)
        kit_pipeline_free(s->pipeline);
    while (s->tables) {
        bq_table *t = s->tables;
        s->tables = t->next;
        free(t->schema);
        free(t->name);
        free(t->changelog_id);
        free(t->view_id);
        bq_columns_free(&t->cols);
        free(t);
    }
    bq_auth_free(s->auth);
    free(s);
}

/* Token fetch failures, from the refresh thread. */
static void log_auth(void *ctx, bool failure, const char *msg)
{
    bq_sink *s = ctx;
    s->host->log(s->handle, failure ? PGSPOUT_LOG_WARNING : PGSPOUT_LOG_INFO,
                 "%s", msg);
}

/* The credentials file the auth mode calls for (README, "Credentials"):
 * NULL for the metadata server, or with *none for no auth at all. */
static char *pick_credentials_file(bq_sink *s, const char *mode,
                                   const char **source, bool *none)
{
    const char *file = NULL;
    s->host->option_string(s->handle, "credentials_file", &file);
    bool emulator = strncmp(s->endpoint, "http://", 7) == 0;
    *none = strcmp(mode, "none") == 0;
    if (*none || strcmp(mode, "metadata") == 0)
        return NULL;
    /* auto against an emulator: only credentials asked for explicitly, so
     * that a developer's gcloud login is not sent to it. */
    bool automatic = strcmp(mode, "auto") == 0;
    char *path = bq_cred_discover_file(file, !(automatic && emulator), source);
    if (!path && automatic && emulator)
        *none = true;
    return path;
}

static bool make_auth(bq_sink *s, char *err, size_t errlen)
{
    const char *mode = "auto", *metadata = NULL, *source = NULL;
    s->host->option_string(s->handle, "auth", &mode);
    s->host->option_string(s->handle, "metadata_endpoint", &metadata);
    bool none = false;
    char *path = pick_credentials_file(s, mode, &source, &none);
    bool needs_file = strcmp(mode, "file") == 0 || strcmp(mode, "key") == 0;
    if (none) {
        s->auth = bq_auth_none();
        s->host->log(s->handle, PGSPOUT_LOG_INFO, "auth: none");
        return true;
    }
    if (!path && needs_file) {
        snprintf(err, errlen,
                 "auth = %s needs credentials_file, "
                 "GOOGLE_APPLICATION_CREDENTIALS or gcloud's "
                 "application_default_credentials.json",
                 mode);
        return false;
    }
    bq_cred cred;
    if (path && !bq_cred_load(path, &cred, err, errlen)) {
        free(path);
        return false;
    }
    if (path) {
        s->host->log(s->handle, PGSPOUT_LOG_INFO,
                     "auth: %s credentials from %s (%s)",
                     bq_cred_kind_name(cred.kind), path, source);
    } else {
        bq_cred_metadata(metadata, &cred);
        s->host->log(s->handle, PGSPOUT_LOG_INFO, "auth: metadata server %s",
                     cred.metadata_base);
    }
    free(path);
    s->auth = bq_auth_start(&cred, &s->config.http, log_auth, s, err, errlen);
    bq_cred_free(&cred);
    return s->auth != NULL;
}

/* The table message (or begin/commit) events go to when choice_option
 * says "table"; NULL when they are skipped. Kept among the sink's tables so
 * that its batch key is its own. */
static bq_table *event_table(bq_sink *s, const char *choice_option,
                             const char *name_option)
{
    const char *choice = NULL, *name = NULL;
    s->host->option_string(s->handle, choice_option, &choice);
    s->host->option_string(s->handle, name_option, &name);
    if (!choice || strcmp(choice, "table") != 0 || !name)
        return NULL;
    bq_table *t = xcalloc(1, sizeof *t);
    t->changelog_id = xstrdup(name);
    t->batch_key = table_batch_key(s, t->changelog_id);
    t->next = s->tables;
    s->tables = t;
    return t;
}

/* Reads the table options into s; false with err set and *bad naming the
 * option at fault. */
static bool read_table_options(bq_sink *s, const char **bad, char *err,
                               size_t errlen)
{
    const pgspout_host_api *host = s->host;
    pgspout_sink_handle *handle = s->handle;
    const char *mismatch = "warn";
    host->option_string(handle, "project", &s->project);
    host->option_string(handle, "dataset", &s->dataset);
    host->option_string(handle, "table", &s->table_tmpl);
    host->option_string(handle, "view", &s->view_tmpl);
    host->option_string(handle, "endpoint", &s->endpoint);
    if (!host->option_string(handle, "location", &s->location) || !*s->location)
        s->location = NULL;
    host->option_string(handle, "schema_mismatch", &mismatch);
    s->stop_on_mismatch = strcmp(mismatch, "stop") == 0;
    if (!s->endpoint)
        s->endpoint = BQ_DEFAULT_ENDPOINT;
    *bad = !s->project      ? "project"
           : !s->dataset    ? "dataset"
           : !s->table_tmpl ? "table"
           : !s->view_tmpl  ? "view"
                            : NULL;
    if (*bad) {
        snprintf(err, errlen, "project, dataset, table and view must be set");
        return false;
    }
    if (strcmp(s->table_tmpl, s->view_tmpl) == 0) {
        *bad = "view";
        snprintf(err, errlen, "the table and view templates must differ");
        return false;
    }
    s->messages_table = event_table(s, "messages", "message_table");
    s->transactions_table = event_table(s, "transactions", "transaction_table");
    if (s->messages_table && s->transactions_table &&
        strcmp(s->messages_table->changelog_id,
               s->transactions_table->changelog_id) == 0) {
        *bad = "transaction_table";
        snprintf(err, errlen,
                 "message_table and transaction_table must differ");
        return false;
    }
    return true;
}

/* ABI 1.7: the table options' checks of create, run when pgspout checks
 * its configuration (credentials are looked at when the sink starts: they
 * may appear or change while pgspout runs). */
static bool bq_check_options(const pgspout_host_api *host,
                             pgspout_sink_handle *handle, char *option,
                             size_t option_size, char *why, size_t why_size)
{
    bq_sink *s = xcalloc(1, sizeof *s);
    s->host = host;
    s->handle = handle;
    char err[512];
    const char *bad = NULL;
    bool ok = read_table_options(s, &bad, err, sizeof err);
    bq_destroy(s);
    return ok ||
           kit_option_refuse(bad, err, option, option_size, why, why_size);
}

static pgspout_status bq_create(const pgspout_host_api *host,
                                pgspout_sink_handle *handle, void **state)
{
    bq_sink *s = xcalloc(1, sizeof *s);
    s->host = host;
    s->handle = handle;
    const char *bad;
    char err[512];
    if (!read_table_options(s, &bad, err, sizeof err)) {
        host->log(handle, PGSPOUT_LOG_ERROR, "%s", err);
        bq_destroy(s);
        return PGSPOUT_FATAL;
    }

    if (!kit_pipeline_config_from_options(host, handle, "bigquery", &s->config,
                                          err, sizeof err) ||
        !make_auth(s, err, sizeof err)) {
        host->log(handle, PGSPOUT_LOG_ERROR, "%s", err);
        bq_destroy(s);
        return PGSPOUT_FATAL;
    }
    s->pipeline =
        kit_pipeline_new(host, handle, &s->config, &bq_ops, s, err, sizeof err);
    if (!s->pipeline) {
        host->log(handle, PGSPOUT_LOG_ERROR, "%s", err);
        bq_destroy(s);
        return PGSPOUT_FATAL;
    }
    *state = s;
    return PGSPOUT_OK;
}

static const pgspout_sink_descriptor bq_descriptor = {
    /* ABI 1.5: message, begin and commit events (README). */
    PGSPOUT_SINK_HEADER_MINOR(5),
    .name = "bigquery",
    .version = "0.1.0",
    .description = "BigQuery: a changelog table (insertAll) and a "
                   "latest-state view per source table",
    .options = bq_options,
    .create = bq_create,
    .write = bq_write,
    .flush = bq_flush,
    .destroy = bq_destroy,
    .resume_position = NULL,
    .check_options = bq_check_options,
};

PGSPOUT_EXPORT const pgspout_sink_descriptor *pgspout_sink_entry(void)
{
    return &bq_descriptor;
}
