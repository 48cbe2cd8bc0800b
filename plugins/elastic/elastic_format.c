#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "elastic_format.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json_string.h"

/* ---- index names ---- */

static const char *placeholder_at(const char *p, size_t *skip)
{
    static const char *const names[] = {"{schema}", "{table}"};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(names[i]);
        if (strncmp(p, names[i], n) == 0) {
            *skip = n;
            return names[i];
        }
    }
    return NULL;
}

bool es_index_template_check(const char *tmpl, char *err, size_t errlen)
{
    if (!*tmpl) {
        snprintf(err, errlen, "index template is empty");
        return false;
    }
    for (const char *p = tmpl; *p; p++) {
        size_t skip;
        if (*p == '{' && !placeholder_at(p, &skip)) {
            snprintf(err, errlen,
                     "index template \"%s\": only {schema} and {table} may "
                     "appear in braces",
                     tmpl);
            return false;
        }
        if (*p == '{')
            p += skip - 1;
        else if (*p == '}') {
            snprintf(err, errlen, "index template \"%s\": stray '}'", tmpl);
            return false;
        }
    }
    return true;
}

bool es_index_name_valid(const char *name, char *err, size_t errlen)
{
    size_t len = strlen(name);

    if (len == 0 || len > ES_MAX_INDEX_NAME) {
        snprintf(err, errlen, "index name \"%.300s\" must be 1 to %d bytes",
                 name, ES_MAX_INDEX_NAME);
        return false;
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || name[0] == '-' ||
        name[0] == '_' || name[0] == '+') {
        snprintf(err, errlen,
                 "index name \"%s\" must not be . or .. nor start with - _ +",
                 name);
        return false;
    }
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (strchr("\\/*?\"<>|, #:", c) || c < 0x20 ||
            (c < 0x80 && isupper(c))) {
            snprintf(err, errlen,
                     "index name \"%s\" contains '%c', which Elasticsearch "
                     "does not allow in index names",
                     name, c >= 0x20 ? c : '?');
            return false;
        }
    }
    return true;
}

char *es_index_name(const char *tmpl, const char *schema, const char *table,
                    char *err, size_t errlen)
{
    strbuf b = STRBUF_INIT;

    for (const char *p = tmpl; *p; p++) {
        size_t skip;
        const char *ph = *p == '{' ? placeholder_at(p, &skip) : NULL;
        if (!ph) {
            sbuf_append(&b, p, 1);
            continue;
        }
        sbuf_append_str(&b, ph[1] == 's' ? schema : table);
        p += skip - 1;
    }
    char *name = sbuf_detach(&b);
    /* ASCII only: Elasticsearch lower-cases nothing else either, and a
     * locale must not change index names. */
    for (char *p = name; *p; p++)
        if ((unsigned char)*p < 0x80)
            *p = (char)tolower((unsigned char)*p);
    if (!es_index_name_valid(name, err, errlen)) {
        free(name);
        return NULL;
    }
    return name;
}

/* ---- document ids ----
 *
 * Values are copied from the event's JSON as they are, never re-encoded, so
 * a float or a big integer keeps exactly the text PostgreSQL printed. */

/* Returns the end of the JSON value starting at p (compact JSON as the core
 * writes it), or NULL when it is malformed. */
static const char *value_end(const char *p, const char *end)
{
    int depth = 0;
    bool in_string = false;

    for (; p < end; p++) {
        char c = *p;
        if (in_string) {
            if (c == '\\')
                p++;
            else if (c == '"') {
                in_string = false;
                if (depth == 0)
                    return p + 1;
            }
            continue;
        }
        if (c == '"')
            in_string = true;
        else if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']') {
            if (depth == 0)
                return p;
            if (--depth == 0)
                return p + 1;
        } else if (c == ',' && depth == 0)
            return p;
    }
    return depth == 0 && !in_string ? p : NULL;
}

typedef struct raw_member {
    const char *name; /* the quoted name as written */
    size_t name_len;
    const char *value;
    size_t value_len;
} raw_member;

/* Splits a compact JSON object into members; returns their count or -1. */
static int split_object(const char *json, size_t len, raw_member *out, int max)
{
    const char *p = json, *end = json + len;
    int n = 0;

    if (len < 2 || *p != '{' || end[-1] != '}')
        return -1;
    p++;
    end--;
    while (p < end) {
        const char *name_end;
        if (*p != '"' || !(name_end = value_end(p, end)) || name_end >= end ||
            *name_end != ':')
            return -1;
        const char *v = name_end + 1;
        const char *v_end = value_end(v, end);
        if (!v_end || v_end == v || n == max)
            return -1;
        out[n].name = p;
        out[n].name_len = (size_t)(name_end - p);
        out[n].value = v;
        out[n].value_len = (size_t)(v_end - v);
        n++;
        p = v_end;
        if (p < end) {
            if (*p != ',')
                return -1;
            p++;
        }
    }
    return n;
}

#define ES_MAX_KEY_COLUMNS 1664 /* PostgreSQL's column limit */

char *es_doc_id(const char *key_json, size_t key_len, const char *values_json,
                size_t values_len, char *err, size_t errlen)
{
    raw_member *key = xmalloc(ES_MAX_KEY_COLUMNS * sizeof *key);
    raw_member *vals = NULL;
    int nkey = split_object(key_json, key_len, key, ES_MAX_KEY_COLUMNS);
    int nvals = 0;
    char *id = NULL;
    strbuf b = STRBUF_INIT;

    if (nkey < 0) {
        snprintf(err, errlen, "key is not a JSON object");
        goto out;
    }
    if (nkey == 0) {
        snprintf(err, errlen,
                 "the row has no replica-identity key, so it has no document "
                 "id (give the table a primary key or REPLICA IDENTITY "
                 "FULL)");
        goto out;
    }
    if (values_json) {
        vals = xmalloc(ES_MAX_KEY_COLUMNS * sizeof *vals);
        nvals = split_object(values_json, values_len, vals, ES_MAX_KEY_COLUMNS);
        if (nvals < 0) {
            snprintf(err, errlen, "old row is not a JSON object");
            goto out;
        }
        for (int i = 0; i < nkey; i++)
            for (int j = 0; j < nvals; j++)
                if (vals[j].name_len == key[i].name_len &&
                    memcmp(vals[j].name, key[i].name, key[i].name_len) == 0) {
                    key[i].value = vals[j].value;
                    key[i].value_len = vals[j].value_len;
                    break;
                }
    }

    if (nkey == 1 && key[0].value[0] == '"') {
        json_error_t jerr;
        json_t *s =
            json_loadb(key[0].value, key[0].value_len, JSON_DECODE_ANY, &jerr);
        if (!json_is_string(s)) {
            json_decref(s);
            snprintf(err, errlen, "key value is not valid JSON");
            goto out;
        }
        sbuf_append(&b, json_string_value(s), json_string_length(s));
        json_decref(s);
    } else if (nkey == 1) {
        sbuf_append(&b, key[0].value, key[0].value_len);
    } else {
        sbuf_append(&b, "[", 1);
        for (int i = 0; i < nkey; i++) {
            if (i)
                sbuf_append(&b, ",", 1);
            sbuf_append(&b, key[i].value, key[i].value_len);
        }
        sbuf_append(&b, "]", 1);
    }
    if (b.len == 0 || b.len > ES_MAX_ID || memchr(b.data, '\0', b.len)) {
        snprintf(err, errlen,
                 "document id would be %zu bytes; Elasticsearch takes 1 to "
                 "%d",
                 b.len, ES_MAX_ID);
        goto out;
    }
    id = sbuf_detach(&b);
out:
    sbuf_free(&b);
    free(key);
    free(vals);
    return id;
}

/* Built-in type OIDs (pg_type.h) whose JSON es_doc_id turns back into
 * their text. */
enum {
    OID_NAME = 19,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_TEXT = 25,
    OID_BPCHAR = 1042,
    OID_VARCHAR = 1043,
    OID_UUID = 2950
};

static bool is_integer_type(uint32_t oid)
{
    return oid == OID_INT2 || oid == OID_INT4 || oid == OID_INT8;
}

static bool is_string_type(uint32_t oid)
{
    return oid == OID_TEXT || oid == OID_VARCHAR || oid == OID_BPCHAR ||
           oid == OID_NAME || oid == OID_UUID;
}

bool es_id_is_key_text(uint32_t type_oid, const char *text, size_t len)
{
    if (len == 0 || len > ES_MAX_ID || memchr(text, '\0', len))
        return false;
    if (is_integer_type(type_oid))
        return true;
    return is_string_type(type_oid) && utf8_valid(text, len);
}

/* ---- bulk lines ---- */

const char es_merge_script[] =
    "def c = ctx._source[params.f]; "
    "long have = c == null ? ctx._version : ((Number) c).longValue(); "
    "if (params.v <= have) { ctx.op = 'none'; } "
    "else { ctx._source.putAll(params.doc); ctx._source[params.f] = params.v; "
    "}";

static void action_head(strbuf *b, const char *action, const char *index,
                        const char *id)
{
    sbuf_appendf(b, "{\"%s\":{\"_index\":", action);
    json_append_string(b, index, strlen(index));
    sbuf_append_str(b, ",\"_id\":");
    json_append_string(b, id, strlen(id));
}

void es_bulk_index(strbuf *b, const char *index, const char *id,
                   uint64_t version, const char *source, size_t source_len)
{
    action_head(b, "index", index, id);
    sbuf_appendf(b, ",\"version\":%llu,\"version_type\":\"external\"}}\n",
                 (unsigned long long)version);
    sbuf_append(b, source, source_len);
    sbuf_append(b, "\n", 1);
}

void es_bulk_delete(strbuf *b, const char *index, const char *id,
                    uint64_t version)
{
    action_head(b, "delete", index, id);
    sbuf_appendf(b, ",\"version\":%llu,\"version_type\":\"external\"}}\n",
                 (unsigned long long)version);
}

void es_bulk_update(strbuf *b, const char *index, const char *id,
                    uint64_t version, const char *version_field,
                    const char *doc, size_t doc_len)
{
    action_head(b, "update", index, id);
    /* Conflicts here are concurrent writes to the same document (the
     * update reads, then writes); re-running the script is what we want. */
    sbuf_append_str(b, ",\"retry_on_conflict\":3}}\n{\"script\":{\"source\":");
    json_append_string(b, es_merge_script, strlen(es_merge_script));
    sbuf_appendf(b, ",\"lang\":\"painless\",\"params\":{\"v\":%llu,\"f\":",
                 (unsigned long long)version);
    json_append_string(b, version_field, strlen(version_field));
    sbuf_append_str(b, ",\"doc\":");
    sbuf_append(b, doc, doc_len);
    sbuf_append_str(b, "}}}\n");
}

/* ---- bulk results ---- */

es_item_result es_classify_item(es_action action, int status,
                                const char *error_type)
{
    if (status >= 200 && status < 300)
        return ES_ITEM_DONE;
    if (status == 409)
        return action == ES_ACTION_UPDATE ? ES_ITEM_RETRY : ES_ITEM_DONE;
    if (status == 404) {
        if (action == ES_ACTION_DELETE)
            return ES_ITEM_DONE;
        if (action == ES_ACTION_UPDATE &&
            (!error_type ||
             strcmp(error_type, "document_missing_exception") == 0))
            return ES_ITEM_MISSING;
        return ES_ITEM_FATAL;
    }
    if (status == 429 || status == 408 || status >= 500)
        return ES_ITEM_RETRY;
    if (status == 401 || status == 403)
        return ES_ITEM_FATAL;
    return ES_ITEM_REJECTED;
}

static const char *action_name(es_action a)
{
    switch (a) {
    case ES_ACTION_INDEX:
        return "index";
    case ES_ACTION_DELETE:
        return "delete";
    case ES_ACTION_UPDATE:
        return "update";
    }
    return "?";
}

bool es_parse_bulk_response(const char *body, size_t len,
                            const es_action *actions, es_item *items,
                            size_t nitems, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    json_t *arr = root ? json_object_get(root, "items") : NULL;
    bool ok = false;

    if (!json_is_array(arr)) {
        snprintf(err, errlen, "the _bulk response has no items array");
        goto out;
    }
    if (json_array_size(arr) != nitems) {
        snprintf(err, errlen,
                 "the _bulk response has %zu items for %zu actions",
                 json_array_size(arr), nitems);
        goto out;
    }
    for (size_t i = 0; i < nitems; i++) {
        json_t *item = json_array_get(arr, i);
        json_t *res = json_is_object(item) && json_object_size(item) == 1
                          ? json_object_iter_value(json_object_iter(item))
                          : NULL;
        json_t *status = json_object_get(res, "status");
        if (!json_is_integer(status)) {
            snprintf(err, errlen,
                     "item %zu of the _bulk response has no "
                     "status",
                     i);
            goto out;
        }
        json_t *error = json_object_get(res, "error");
        const char *type = NULL, *reason = NULL;
        if (json_is_object(error)) {
            type = json_string_value(json_object_get(error, "type"));
            reason = json_string_value(json_object_get(error, "reason"));
        } else if (json_is_string(error)) {
            reason = json_string_value(error);
        }
        items[i].status = (int)json_integer_value(status);
        items[i].result = es_classify_item(actions[i], items[i].status, type);
        snprintf(items[i].reason, sizeof items[i].reason, "%s: HTTP %d%s%s%s%s",
                 action_name(actions[i]), items[i].status, type ? " " : "",
                 type ? type : "", reason ? ": " : "", reason ? reason : "");
    }
    ok = true;
out:
    json_decref(root);
    return ok;
}

const char es_event_index_body[] =
    "{\"mappings\":{\"date_detection\":false,\"numeric_detection\":false,"
    "\"properties\":{"
    "\"op\":{\"type\":\"keyword\"},"
    "\"schema\":{\"type\":\"keyword\"},"
    "\"table\":{\"type\":\"keyword\"},"
    "\"lsn\":{\"type\":\"keyword\"},"
    "\"commit_lsn\":{\"type\":\"keyword\"},"
    "\"xid\":{\"type\":\"long\"},"
    "\"seq\":{\"type\":\"long\"},"
    "\"commit_time\":{\"type\":\"date\"},"
    "\"prefix\":{\"type\":\"keyword\"},"
    "\"content\":{\"type\":\"text\",\"fields\":{\"keyword\":"
    "{\"type\":\"keyword\",\"ignore_above\":256}}},"
    "\"content_base64\":{\"type\":\"binary\"},"
    "\"transactional\":{\"type\":\"boolean\"},"
    "\"event_count\":{\"type\":\"long\"},"
    "\"messages\":{\"type\":\"long\"},"
    "\"tables\":{\"type\":\"object\",\"enabled\":false}}}}";
