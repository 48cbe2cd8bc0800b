/* The webhook sink: batches of events POSTed to an HTTP endpoint, a JSON
 * array or NDJSON per request, signed as the Standard Webhooks
 * specification says (webhook_sign.h) so that receivers verify them with
 * its libraries. Batching, requests in flight, retries, per-key order,
 * dead letters and acknowledgements are the sink kit's (plugins/kit); this
 * file says what each request carries and what its answer means. It uses
 * the kit's installed headers only, so it also builds out of tree
 * (README.md, "Building it out of tree"). See README.md for the design. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <pgspout/pgspout.h>

#include "http.h"
#include "message.h"
#include "option_check.h"
#include "pipeline.h"
#include "position_id.h"
#include "url_list.h"
#include "webhook_sign.h"

#define WEBHOOK_SINK_VERSION "0.1.0"
#define WEBHOOK_MAX_HEADERS 32

static const pgspout_option_def webhook_options[] = {
    {.name = "url",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_REQUIRED,
     .doc = "endpoint URL, http:// or https:// (several: comma-separated; "
            "requests rotate over them)"},
    {.name = "format",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "json",
     .choices = "json|ndjson",
     .doc = "request body: a JSON array of events, or one event per line"},
    {.name = "order",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "key",
     .choices = "key|table|none",
     .doc = "events delivered in order per row key, per table, or in no "
            "order (requests in flight never overtake what they order)"},
    {.name = "secret",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_SECRET,
     .doc = "signing secret, whsec_<base64 key> (Standard Webhooks); unset: "
            "no webhook-signature header"},
    {.name = "headers",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_SECRET,
     .doc = "extra request headers, \"Name: value\" separated by commas"},
    {.name = "bearer_token",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_SECRET,
     .doc = "sent as Authorization: Bearer <token>"},
    {.name = "username",
     .type = PGSPOUT_OPT_STRING,
     .doc = "basic authentication user"},
    {.name = "password",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_SECRET,
     .doc = "basic authentication password"},
    {.name = "schema_events",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "send",
     .choices = "send|skip",
     .doc = "schema events: send them with the changes, or skip them"},
    {.name = "messages",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "send",
     .choices = "send|skip",
     .doc = "message events (pgspout's messages setting): send or skip"},
    {.name = "transactions",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "send",
     .choices = "send|skip",
     .doc = "begin and commit events (pgspout's transaction_events "
            "setting): send or skip"},
    KIT_PIPELINE_OPTIONS("500", "1M", "50ms", "4"),
    PGSPOUT_OPTION_END};

typedef enum order_mode { ORDER_KEY, ORDER_TABLE, ORDER_NONE } order_mode;

/* What earlier write() calls took: a position and how many events at it. */
typedef struct taken_mark {
    bool any;
    pgspout_position pos;
    size_t at_pos;
} taken_mark;

typedef struct webhook_sink {
    const pgspout_host_api *host;
    pgspout_sink_handle *handle;
    kit_pipeline_config config;
    kit_pipeline *pipeline;

    kit_url_list urls;
    bool ndjson;
    order_mode order;
    bool send_schema, send_messages, send_transactions;
    unsigned char *key; /* decoded signing secret, or NULL; a secret */
    size_t key_len;
    char *headers[WEBHOOK_MAX_HEADERS]; /* "Name: value"; secrets */
    size_t nheaders;

    /* Newest position taken by write(), and how many events with it (a
     * schema event shares its position with another event): a batch the
     * host sends again after write() returned RETRY part-way is taken
     * only from there on. */
    taken_mark taken;
    /* The last write() call returned before taking all of its events: the
     * next one is that batch again. Only then is the mark consulted: a new
     * batch may begin with a schema event at the position of the previous
     * batch's last change, which is not a copy of it. */
    bool resend_due;
} webhook_sink;

static void *must(void *p)
{
    if (!p)
        abort(); /* out of memory: as the host and the kit do */
    return p;
}

/* ---- requests ---- */

/* The records' event JSON as one body: a JSON array, or a line each. */
static char *batch_body(const webhook_sink *ws, kit_record *const *records,
                        size_t n, size_t *len)
{
    size_t total = 2;
    for (size_t i = 0; i < n; i++)
        total += records[i]->len + 1;
    char *body = must(malloc(total + 1));
    size_t off = 0;
    if (!ws->ndjson)
        body[off++] = '[';
    for (size_t i = 0; i < n; i++) {
        if (!ws->ndjson && i > 0)
            body[off++] = ',';
        memcpy(body + off, records[i]->data, records[i]->len);
        off += records[i]->len;
        if (ws->ndjson)
            body[off++] = '\n';
    }
    if (!ws->ndjson)
        body[off++] = ']';
    body[off] = '\0';
    *len = off;
    return body;
}

/* The batch's webhook-id, from what it carries: its first and last
 * positions, its count and a hash of its events' JSON (a schema event
 * shares its position with a change, so positions alone do not name an
 * event). The same batch (kept whole across retries,
 * kit_pipeline_config.keep_batches) always has the same id, and a batch
 * with other events (after a restart batches form anew) another one, so a
 * receiver that deduplicates on it drops true repeats only. */
static void batch_id(kit_record *const *records, size_t n, char *out,
                     size_t outlen)
{
    char first[KIT_POSITION_ID_MAX], last[KIT_POSITION_ID_MAX];
    uint64_t hash = 0;
    for (size_t i = 0; i < n; i++)
        hash = hash * UINT64_C(0x100000001b3) ^
               kit_order_key(records[i]->data, records[i]->len);
    kit_position_id(records[0]->pos, first, sizeof first);
    kit_position_id(records[n - 1]->pos, last, sizeof last);
    snprintf(out, outlen, "msg_%s_%s_%zu_%016" PRIx64, first, last, n, hash);
}

static bool build_batch(void *ctx, kit_record *const *records, size_t n,
                        kit_http_request *req, char *err, size_t errlen)
{
    webhook_sink *ws = ctx;
    char id[160], timestamp[24], signature[WEBHOOK_SIGNATURE_MAX];
    size_t len;
    char *body = batch_body(ws, records, n, &len);

    batch_id(records, n, id, sizeof id);
    /* Each attempt is signed anew: receivers refuse old timestamps (the
     * specification's libraries allow five minutes). */
    snprintf(timestamp, sizeof timestamp, "%lld", (long long)time(NULL));
    kit_request_init(req, "POST", kit_url_list_next(&ws->urls));
    kit_request_header(req, "Content-Type: %s",
                       ws->ndjson ? "application/x-ndjson"
                                  : "application/json");
    kit_request_header(req, "webhook-id: %s", id);
    kit_request_header(req, "webhook-timestamp: %s", timestamp);
    if (ws->key) {
        if (!webhook_sign(ws->key, ws->key_len, id, timestamp, body, len,
                          signature)) {
            free(body);
            snprintf(err, errlen, "cannot sign a request (OpenSSL failed)");
            return false;
        }
        kit_request_header(req, "webhook-signature: %s", signature);
    }
    for (size_t i = 0; i < ws->nheaders; i++)
        kit_request_header(req, "%s", ws->headers[i]);
    kit_request_body(req, body, len);
    return true;
}

/* The answer is about the whole batch: the receiver took it or not. */
static void handle_answer(void *ctx, const kit_http_response *resp,
                          kit_record *const *records, size_t n,
                          kit_outcome *outcomes)
{
    (void)ctx;
    (void)records;
    long st = resp->status;
    const char *text = resp->body ? resp->body : "";

    /* RETRY, DONE or (413) TOO_LARGE, as pre-filled: the kit sends a
     * request the receiver found too large again in halves. */
    if (kit_http_transient(resp) || (st >= 200 && st < 300) || st == 413)
        return;
    if (st == 401 || st == 403)
        kit_outcome_set_all(outcomes, n, KIT_FATAL,
                            "HTTP %ld: not authorised (check bearer_token, "
                            "username/password, headers or secret): %.200s",
                            st, text);
    else if (st >= 400 && st < 500)
        kit_outcome_set_all(outcomes, n, KIT_REJECTED,
                            "HTTP %ld: the receiver refused the batch: "
                            "%.300s",
                            st, text);
    else
        kit_outcome_set_all(outcomes, n, KIT_FATAL,
                            "HTTP %ld: unexpected answer (redirects are not "
                            "followed: give the final URL): %.200s",
                            st, text);
}

static const kit_ops webhook_ops = {
    .build_request = build_batch,
    .handle_response = handle_answer,
    .free_meta = NULL,
};

/* ---- events to records ---- */

static bool is_change(pgspout_op op)
{
    return op == PGSPOUT_OP_INSERT || op == PGSPOUT_OP_UPDATE ||
           op == PGSPOUT_OP_DELETE || op == PGSPOUT_OP_READ;
}

/* Order key of bytes a[0..alen) then b[0..blen), a NUL between: table
 * names hold no NUL, so the pair is unambiguous. */
static uint64_t key_of(const char *a, size_t alen, const char *b, size_t blen)
{
    char *buf = must(malloc(alen + blen + 1));
    memcpy(buf, a, alen);
    buf[alen] = '\0';
    memcpy(buf + alen + 1, b, blen);
    uint64_t k = kit_order_key(buf, alen + blen + 1);
    free(buf);
    return k;
}

static uint64_t table_key(const webhook_sink *ws, const pgspout_event *ev)
{
    const char *schema = ws->host->event_schema(ev);
    const char *table = ws->host->event_table(ev);
    return key_of(schema, strlen(schema), table, strlen(table));
}

/* Order key of a change: its table's, or its table's and row key's. */
static uint64_t change_key(const webhook_sink *ws, const pgspout_event *ev)
{
    uint64_t table = table_key(ws, ev);
    if (ws->order == ORDER_TABLE)
        return table;
    size_t len;
    const char *key = ws->host->event_json(ev, PGSPOUT_PART_KEY, &len);
    return key_of((const char *)&table, sizeof table, key ? key : "",
                  key ? len : 0);
}

/* An update that moved its row to another key: under order=key it orders
 * against both keys' events. */
static bool moves_row(const webhook_sink *ws, const pgspout_event *ev)
{
    size_t key_len, before_len;
    const char *key = ws->host->event_json(ev, PGSPOUT_PART_KEY, &key_len);
    const char *before =
        ws->host->event_json(ev, PGSPOUT_PART_BEFORE, &before_len);
    if (!key || !before || strcmp(before, "null") == 0)
        return false;
    json_t *k = json_loadb(key, key_len, 0, NULL);
    json_t *b = json_loadb(before, before_len, 0, NULL);
    bool moved = false;
    const char *name;
    json_t *value;
    json_object_foreach(k, name, value)
    {
        json_t *old = json_object_get(b, name);
        if (old && !json_equal(old, value))
            moved = true;
    }
    json_decref(k);
    json_decref(b);
    return moved;
}

/* The record's order key; *barrier when the event orders against every
 * key (a truncate or schema change of the table, a row moving to another
 * key, under order=key): everything before it is delivered first, and
 * nothing after it goes before it is. */
static uint64_t order_key_of(const webhook_sink *ws, const pgspout_event *ev,
                             bool *barrier)
{
    pgspout_op op = ws->host->event_op(ev);
    *barrier = false;
    if (ws->order == ORDER_NONE)
        return 0;
    if (op == PGSPOUT_OP_BEGIN || op == PGSPOUT_OP_COMMIT) {
        /* A transaction's begin before its commit. */
        uint64_t lsn = ws->host->event_position(ev).commit_lsn;
        return key_of("tx", 2, (const char *)&lsn, sizeof lsn);
    }
    if (op == PGSPOUT_OP_MESSAGE) {
        size_t len;
        const char *json = ws->host->event_json(ev, PGSPOUT_PART_EVENT, &len);
        char *prefix = kit_message_prefix(json, len);
        uint64_t k =
            key_of("msg", 3, prefix ? prefix : "", prefix ? strlen(prefix) : 0);
        free(prefix);
        return k;
    }
    if (ws->order == ORDER_KEY)
        *barrier =
            !is_change(op) || (op == PGSPOUT_OP_UPDATE && moves_row(ws, ev));
    return is_change(op) && ws->order == ORDER_KEY && !*barrier
               ? change_key(ws, ev)
               : table_key(ws, ev);
}

static bool wanted(const webhook_sink *ws, pgspout_op op)
{
    switch (op) {
    case PGSPOUT_OP_SCHEMA:
        return ws->send_schema;
    case PGSPOUT_OP_MESSAGE:
        return ws->send_messages;
    case PGSPOUT_OP_BEGIN:
    case PGSPOUT_OP_COMMIT:
        return ws->send_transactions;
    default:
        return true;
    }
}

/* Submits the event's record (or a marker when it is skipped). *barrier:
 * the caller must wait for it to be delivered before the next event
 * (order_key_of), once it has counted the event as taken. */
static pgspout_status submit_event(webhook_sink *ws, const pgspout_event *ev,
                                   bool *barrier)
{
    const pgspout_host_api *h = ws->host;
    pgspout_position pos = h->event_position(ev);
    size_t len;

    *barrier = false;
    if (!wanted(ws, h->event_op(ev)))
        return kit_submit_marker(ws->pipeline, pos);
    const char *json = h->event_json(ev, PGSPOUT_PART_EVENT, &len);
    if (!json) {
        h->log(ws->handle, PGSPOUT_LOG_ERROR,
               "the event at %" PRIX64 "-%" PRIu64 " cannot be encoded",
               pos.commit_lsn, pos.seq);
        return PGSPOUT_FATAL;
    }
    uint64_t key = order_key_of(ws, ev, barrier);
    pgspout_status st = *barrier ? kit_flush(ws->pipeline) : PGSPOUT_OK;
    if (st != PGSPOUT_OK)
        return st;
    char *copy = must(malloc(len + 1));
    memcpy(copy, json, len);
    copy[len] = '\0';
    kit_record *rec = kit_record_new(pos, copy, len, key, NULL);
    rec->overhead = 1; /* the comma or newline */
    return kit_submit(ws->pipeline, rec);
}

/* Whether an earlier write() call took this event (seen: events of this
 * call at the mark's position so far). */
static bool taken_before(const taken_mark *mark, pgspout_position pos,
                         size_t *seen)
{
    if (!mark->any)
        return false;
    int cmp = pgspout_position_cmp(pos, mark->pos);
    return cmp < 0 || (cmp == 0 && (*seen)++ < mark->at_pos);
}

static pgspout_status
webhook_write(void *state, const pgspout_event *const *events, size_t count)
{
    webhook_sink *ws = state;
    const taken_mark before = ws->resend_due ? ws->taken : (taken_mark){0};
    size_t seen = 0;

    ws->resend_due = true; /* until every event is taken */
    for (size_t i = 0; i < count; i++) {
        pgspout_position pos = ws->host->event_position(events[i]);
        if (taken_before(&before, pos, &seen))
            continue;
        bool barrier;
        pgspout_status st = submit_event(ws, events[i], &barrier);
        if (st != PGSPOUT_OK)
            return st;
        bool same =
            ws->taken.any && pgspout_position_cmp(pos, ws->taken.pos) == 0;
        ws->taken.at_pos = same ? ws->taken.at_pos + 1 : 1;
        ws->taken.any = true;
        ws->taken.pos = pos;
        /* Taken: a RETRY from here must not submit it again. */
        if (barrier && (st = kit_flush(ws->pipeline)) != PGSPOUT_OK)
            return st;
    }
    ws->resend_due = false;
    return PGSPOUT_OK;
}

static pgspout_status webhook_flush(void *state)
{
    webhook_sink *ws = state;
    return kit_flush(ws->pipeline);
}

static void webhook_destroy(void *state)
{
    webhook_sink *ws = state;
    if (!ws)
        return;
    if (ws->pipeline)
        kit_pipeline_free(ws->pipeline);
    kit_url_list_free(&ws->urls);
    for (size_t i = 0; i < ws->nheaders; i++)
        kit_secret_free(ws->headers[i]);
    if (ws->key) {
        memset(ws->key, 0, ws->key_len);
        free(ws->key);
    }
    free(ws);
}

/* ---- options ---- */

static const char *option(const webhook_sink *ws, const char *name)
{
    const char *value = NULL;
    ws->host->option_string(ws->handle, name, &value);
    return value;
}

static bool option_is(const webhook_sink *ws, const char *name,
                      const char *value)
{
    const char *v = option(ws, name);
    return v && strcmp(v, value) == 0;
}

/* Headers the sink sets itself, which `headers` may not replace. */
static bool reserved_header(const char *name, size_t len)
{
    static const char *const reserved[] = {
        "content-type",     "content-length", "host",
        "authorization",    "webhook-id",     "webhook-timestamp",
        "webhook-signature"};
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
        if (strlen(reserved[i]) == len &&
            strncasecmp(reserved[i], name, len) == 0)
            return true;
    return false;
}

static bool header_name_valid(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!(name[i] == '-' || name[i] == '_' ||
              (name[i] >= '0' && name[i] <= '9') ||
              (name[i] >= 'a' && name[i] <= 'z') ||
              (name[i] >= 'A' && name[i] <= 'Z')))
            return false;
    return len > 0;
}

/* One "Name: value" entry of `headers`, trimmed; errors name the header
 * only (values may be secrets). */
static bool add_header(webhook_sink *ws, const char *entry, size_t len,
                       char *err, size_t errlen)
{
    while (len && (*entry == ' ' || *entry == '\t'))
        entry++, len--;
    while (len && (entry[len - 1] == ' ' || entry[len - 1] == '\t'))
        len--;
    if (!len)
        return true;
    const char *colon = memchr(entry, ':', len);
    size_t name_len = colon ? (size_t)(colon - entry) : len;
    if (!colon || !header_name_valid(entry, name_len)) {
        snprintf(err, errlen,
                 "headers: each entry must be \"Name: value\" (a name of "
                 "letters, digits, '-' and '_')");
        return false;
    }
    if (reserved_header(entry, name_len) ||
        ws->nheaders == WEBHOOK_MAX_HEADERS) {
        snprintf(err, errlen,
                 ws->nheaders == WEBHOOK_MAX_HEADERS
                     ? "headers: at most %d of them"
                     : "headers: %.*s is set by the sink itself",
                 ws->nheaders == WEBHOOK_MAX_HEADERS ? WEBHOOK_MAX_HEADERS
                                                     : (int)name_len,
                 entry);
        return false;
    }
    ws->headers[ws->nheaders++] = must(strndup(entry, len));
    return true;
}

static bool setup_headers(webhook_sink *ws, char *err, size_t errlen)
{
    const char *p = option(ws, "headers");
    while (p && *p) {
        size_t n = strcspn(p, ",");
        if (!add_header(ws, p, n, err, errlen))
            return false;
        p += n;
        if (*p == ',')
            p++;
    }
    return true;
}

static bool setup_auth(webhook_sink *ws, const char **bad, char *err,
                       size_t errlen)
{
    const char *token = option(ws, "bearer_token");
    const char *user = option(ws, "username");
    const char *password = option(ws, "password");

    if (token && (user || password)) {
        *bad = "bearer_token";
        snprintf(err, errlen,
                 "give either bearer_token or username/password, not both");
        return false;
    }
    if ((user != NULL) != (password != NULL)) {
        *bad = user ? "password" : "username";
        snprintf(err, errlen, "username and password go together");
        return false;
    }
    if (ws->nheaders == WEBHOOK_MAX_HEADERS && (token || user)) {
        *bad = "headers";
        snprintf(err, errlen,
                 "headers: at most %d of them, with "
                 "authentication",
                 WEBHOOK_MAX_HEADERS - 1);
        return false;
    }
    if (token) {
        size_t len = strlen(token) + sizeof "Authorization: Bearer ";
        char *h = must(malloc(len));
        snprintf(h, len, "Authorization: Bearer %s", token);
        ws->headers[ws->nheaders++] = h;
    } else if (user) {
        ws->headers[ws->nheaders++] = kit_basic_auth_header(user, password);
    }
    return true;
}

/* Reads the options into ws; false with err set and *bad naming the
 * option at fault. */
static bool setup(webhook_sink *ws, const char **bad, char *err, size_t errlen)
{
    const char *secret = option(ws, "secret");
    ws->ndjson = option_is(ws, "format", "ndjson");
    ws->order = option_is(ws, "order", "table")  ? ORDER_TABLE
                : option_is(ws, "order", "none") ? ORDER_NONE
                                                 : ORDER_KEY;
    ws->send_schema = !option_is(ws, "schema_events", "skip");
    ws->send_messages = !option_is(ws, "messages", "skip");
    ws->send_transactions = !option_is(ws, "transactions", "skip");
    *bad = "url";
    if (!kit_url_list_parse(&ws->urls, "url", option(ws, "url"), false, err,
                            errlen))
        return false;
    *bad = "secret";
    if (secret &&
        !webhook_secret_decode(secret, &ws->key, &ws->key_len, err, errlen))
        return false;
    *bad = "headers";
    if (!setup_headers(ws, err, errlen))
        return false;
    *bad = NULL;
    return setup_auth(ws, bad, err, errlen);
}

/* ABI 1.7: the options' checks of create, run when pgspout checks its
 * configuration, so a bad value is a configuration error. */
static bool webhook_check_options(const pgspout_host_api *host,
                                  pgspout_sink_handle *handle, char *option,
                                  size_t option_size, char *why,
                                  size_t why_size)
{
    webhook_sink *ws = must(calloc(1, sizeof *ws));
    ws->host = host;
    ws->handle = handle;
    char err[400];
    const char *bad = NULL;
    bool ok = setup(ws, &bad, err, sizeof err);
    webhook_destroy(ws);
    return ok ||
           kit_option_refuse(bad, err, option, option_size, why, why_size);
}

static pgspout_status webhook_create(const pgspout_host_api *host,
                                     pgspout_sink_handle *handle, void **state)
{
    webhook_sink *ws = must(calloc(1, sizeof *ws));
    char err[400];

    ws->host = host;
    ws->handle = handle;
    const char *bad;
    bool ok = setup(ws, &bad, err, sizeof err) &&
              kit_pipeline_config_from_options(host, handle, "webhook",
                                               &ws->config, err, sizeof err);
    if (ok) {
        /* A request is one body the receiver takes or refuses whole, in
         * order: one key's events may share it. Its id names its events,
         * so a retry sends exactly them again. */
        ws->config.same_key_in_request = true;
        ws->config.keep_batches = true;
        ws->config.http.user_agent = "pgspout-webhook/" WEBHOOK_SINK_VERSION;
        ws->pipeline = kit_pipeline_new(host, handle, &ws->config, &webhook_ops,
                                        ws, err, sizeof err);
    }
    if (!ws->pipeline) {
        host->log(handle, PGSPOUT_LOG_ERROR, "%s", err);
        webhook_destroy(ws);
        return PGSPOUT_FATAL;
    }
    *state = ws;
    return PGSPOUT_OK;
}

static const pgspout_sink_descriptor webhook_descriptor = {
    /* ABI 1.5: read, message, begin and commit events (README). */
    PGSPOUT_SINK_HEADER_MINOR(5),
    .name = "webhook",
    .version = WEBHOOK_SINK_VERSION,
    .description = "batches of events POSTed to an HTTP endpoint, signed "
                   "as Standard Webhooks",
    .options = webhook_options,
    .create = webhook_create,
    .write = webhook_write,
    .flush = webhook_flush,
    .destroy = webhook_destroy,
    .resume_position = NULL,
    .check_options = webhook_check_options,
};

PGSPOUT_EXPORT const pgspout_sink_descriptor *pgspout_sink_entry(void)
{
    return &webhook_descriptor;
}
