/* The elastic sink's request building and response reading. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "elastic_format.h"

static char *id_of(const char *key, const char *values)
{
    char err[300];
    return es_doc_id(key, strlen(key), values, values ? strlen(values) : 0, err,
                     sizeof err);
}

static void check_id(const char *key, const char *values, const char *want)
{
    char *id = id_of(key, values);
    CHECK_STR(id, want);
    free(id);
}

static void test_doc_ids(void)
{
    char err[300];

    check_id("{\"id\":42}", NULL, "42");
    check_id("{\"id\":-9223372036854775808}", NULL, "-9223372036854775808");
    check_id("{\"code\":\"abc\"}", NULL, "abc");
    /* Strings are unescaped for a single key. */
    check_id("{\"code\":\"a\\\"b\\\\c\\u00e9\"}", NULL, "a\"b\\c\xc3\xa9");
    /* Values are copied as printed, never re-encoded. */
    check_id("{\"f\":1.1}", NULL, "1.1");
    check_id("{\"n\":\"12345678901234567890.000001\"}", NULL,
             "12345678901234567890.000001");
    /* Composite keys: a JSON array in column order, so a separator inside
     * a value cannot make two keys meet. */
    check_id("{\"a\":1,\"b\":\"x,y\"}", NULL, "[1,\"x,y\"]");
    check_id("{\"a\":\"1,x\",\"b\":\"y\"}", NULL, "[\"1,x\",\"y\"]");
    check_id("{\"a\":\"]\",\"b\":{\"k\":[1,\"}\"]}}", NULL,
             "[\"]\",{\"k\":[1,\"}\"]}]");
    check_id("{\"a\":null,\"b\":true}", NULL, "[null,true]");
    /* The old id of a row whose key changed: key names, old values. */
    check_id("{\"a\":2,\"b\":\"new\"}", "{\"a\":1,\"b\":\"old\",\"c\":\"z\"}",
             "[1,\"old\"]");
    check_id("{\"id\":2}", "{\"id\":1}", "1");
    /* A key column missing from the old row keeps the key's value. */
    check_id("{\"a\":2,\"b\":3}", "{\"a\":1}", "[1,3]");

    CHECK(es_doc_id("{}", 2, NULL, 0, err, sizeof err) == NULL);
    CHECK(strstr(err, "replica-identity") != NULL);
    CHECK(es_doc_id("{\"a\":", 5, NULL, 0, err, sizeof err) == NULL);
    CHECK(es_doc_id("[1]", 3, NULL, 0, err, sizeof err) == NULL);
    CHECK(es_doc_id("{\"a\":\"\"}", 8, NULL, 0, err, sizeof err) == NULL);

    char big[700];
    strcpy(big, "{\"a\":\"");
    memset(big + 6, 'x', 600);
    strcpy(big + 606, "\"}");
    CHECK(es_doc_id(big, strlen(big), NULL, 0, err, sizeof err) == NULL);
    CHECK(strstr(err, "512") != NULL);
    memcpy(big + 6 + 512, "\"}", 3);
    char *id = es_doc_id(big, strlen(big), NULL, 0, err, sizeof err);
    CHECK(id && strlen(id) == 512);
    free(id);
}

static void check_index(const char *tmpl, const char *schema, const char *table,
                        const char *want)
{
    char err[300];
    char *name = es_index_name(tmpl, schema, table, err, sizeof err);
    CHECK_STR(name, want);
    if (!want && !name)
        CHECK(err[0] != '\0');
    free(name);
}

static void test_index_names(void)
{
    char err[300];

    check_index("{schema}.{table}", "public", "Orders", "public.orders");
    check_index("cdc-{table}", "s", "T1", "cdc-t1");
    check_index("{table}", "s", "caf\xc3\xa9", "caf\xc3\xa9");
    check_index("{schema}.{table}", "public", "a b", NULL);
    check_index("{schema}.{table}", "public", "a:b", NULL);
    check_index("{schema}.{table}", "public", "a*b", NULL);
    check_index("{table}", "public", "_t", NULL);
    check_index("{table}", "public", "-t", NULL);
    check_index("{table}", "public", "..", NULL);
    char longname[300];
    memset(longname, 'a', 256);
    longname[256] = '\0';
    check_index("{table}", "s", longname, NULL);
    longname[255] = '\0';
    check_index("{table}", "s", longname, longname);

    CHECK(es_index_template_check("{schema}.{table}", err, sizeof err));
    CHECK(es_index_template_check("fixed", err, sizeof err));
    CHECK(!es_index_template_check("{db}.{table}", err, sizeof err));
    CHECK(!es_index_template_check("a}", err, sizeof err));
    CHECK(!es_index_template_check("", err, sizeof err));
}

/* Every bulk line must be one JSON object; returns them as an array. */
static json_t *ndjson(const strbuf *b)
{
    json_t *arr = json_array();
    const char *p = b->data, *end = b->data + b->len;
    CHECK(b->len > 0 && end[-1] == '\n');
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        json_error_t jerr;
        json_t *v = json_loadb(p, (size_t)(nl - p), 0, &jerr);
        CHECK(json_is_object(v));
        json_array_append_new(arr, v ? v : json_null());
        p = nl + 1;
    }
    return arr;
}

static void test_bulk_lines(void)
{
    strbuf b = STRBUF_INIT;
    const char *src = "{\"id\":1,\"t\":\"x\\ny\"}";

    es_bulk_index(&b, "public.t", "a\"b", 9223372036854775807ULL, src,
                  strlen(src));
    es_bulk_delete(&b, "public.t", "7", 123);
    es_bulk_update(&b, "public.t", "8", 456, "_pgspout_version",
                   "{\"id\":8,\"n\":1}", 14);
    json_t *lines = ndjson(&b);
    CHECK(json_array_size(lines) == 5);

    json_t *idx = json_object_get(json_array_get(lines, 0), "index");
    CHECK_STR(json_string_value(json_object_get(idx, "_index")), "public.t");
    CHECK_STR(json_string_value(json_object_get(idx, "_id")), "a\"b");
    CHECK(json_integer_value(json_object_get(idx, "version")) ==
          9223372036854775807LL);
    CHECK_STR(json_string_value(json_object_get(idx, "version_type")),
              "external");
    CHECK_STR(json_string_value(json_object_get(json_array_get(lines, 1), "t")),
              "x\ny");

    json_t *del = json_object_get(json_array_get(lines, 2), "delete");
    CHECK_STR(json_string_value(json_object_get(del, "_id")), "7");
    CHECK(json_integer_value(json_object_get(del, "version")) == 123);
    CHECK_STR(json_string_value(json_object_get(del, "version_type")),
              "external");

    json_t *upd = json_object_get(json_array_get(lines, 3), "update");
    CHECK_STR(json_string_value(json_object_get(upd, "_id")), "8");
    CHECK(json_object_get(upd, "version") == NULL);
    json_t *script = json_object_get(json_array_get(lines, 4), "script");
    CHECK_STR(json_string_value(json_object_get(script, "source")),
              es_merge_script);
    CHECK_STR(json_string_value(json_object_get(script, "lang")), "painless");
    json_t *params = json_object_get(script, "params");
    CHECK(json_integer_value(json_object_get(params, "v")) == 456);
    CHECK_STR(json_string_value(json_object_get(params, "f")),
              "_pgspout_version");
    CHECK(json_integer_value(
              json_object_get(json_object_get(params, "doc"), "n")) == 1);
    json_decref(lines);
    sbuf_free(&b);

    /* Control characters are escaped in ids. */
    es_bulk_delete(&b, "i", "a\tb\x01", 1);
    CHECK(strstr(b.data, "\"a\\tb\\u0001\"") != NULL);
    sbuf_free(&b);
}

static void test_classify(void)
{
    CHECK(es_classify_item(ES_ACTION_INDEX, 201, NULL) == ES_ITEM_DONE);
    CHECK(es_classify_item(ES_ACTION_UPDATE, 200, NULL) == ES_ITEM_DONE);
    CHECK(es_classify_item(ES_ACTION_INDEX, 409,
                           "version_conflict_engine_exception") ==
          ES_ITEM_DONE);
    CHECK(es_classify_item(ES_ACTION_DELETE, 409, NULL) == ES_ITEM_DONE);
    CHECK(es_classify_item(ES_ACTION_UPDATE, 409, NULL) == ES_ITEM_RETRY);
    CHECK(es_classify_item(ES_ACTION_DELETE, 404, NULL) == ES_ITEM_DONE);
    CHECK(es_classify_item(ES_ACTION_DELETE, 404,
                           "index_not_found_exception") == ES_ITEM_DONE);
    CHECK(es_classify_item(ES_ACTION_UPDATE, 404,
                           "document_missing_exception") == ES_ITEM_MISSING);
    CHECK(es_classify_item(ES_ACTION_UPDATE, 404,
                           "index_not_found_exception") == ES_ITEM_FATAL);
    CHECK(es_classify_item(ES_ACTION_INDEX, 404, "index_not_found_exception") ==
          ES_ITEM_FATAL);
    CHECK(es_classify_item(ES_ACTION_INDEX, 429, NULL) == ES_ITEM_RETRY);
    CHECK(es_classify_item(ES_ACTION_INDEX, 503, NULL) == ES_ITEM_RETRY);
    CHECK(es_classify_item(ES_ACTION_INDEX, 500, NULL) == ES_ITEM_RETRY);
    CHECK(es_classify_item(ES_ACTION_INDEX, 400, "mapper_parsing_exception") ==
          ES_ITEM_REJECTED);
    CHECK(es_classify_item(ES_ACTION_INDEX, 403, NULL) == ES_ITEM_FATAL);
}

static void test_parse_response(void)
{
    const char *body =
        "{\"errors\":true,\"items\":["
        "{\"index\":{\"status\":201}},"
        "{\"index\":{\"status\":409,\"error\":{\"type\":"
        "\"version_conflict_engine_exception\",\"reason\":\"[1]: version "
        "conflict\"}}},"
        "{\"delete\":{\"status\":404}},"
        "{\"index\":{\"status\":400,\"error\":{\"type\":"
        "\"mapper_parsing_exception\",\"reason\":\"failed to parse field "
        "[id]\"}}},"
        "{\"index\":{\"status\":429,\"error\":{\"type\":"
        "\"es_rejected_execution_exception\",\"reason\":\"queue full\"}}},"
        "{\"update\":{\"status\":404,\"error\":{\"type\":"
        "\"document_missing_exception\",\"reason\":\"[9]: document "
        "missing\"}}}]}";
    es_action actions[6] = {ES_ACTION_INDEX, ES_ACTION_INDEX, ES_ACTION_DELETE,
                            ES_ACTION_INDEX, ES_ACTION_INDEX, ES_ACTION_UPDATE};
    es_item items[6];
    char err[200];

    CHECK(es_parse_bulk_response(body, strlen(body), actions, items, 6, err,
                                 sizeof err));
    CHECK(items[0].result == ES_ITEM_DONE);
    CHECK(items[1].result == ES_ITEM_DONE);
    CHECK(items[2].result == ES_ITEM_DONE);
    CHECK(items[3].result == ES_ITEM_REJECTED);
    CHECK(items[3].status == 400);
    CHECK_STR(items[3].reason, "index: HTTP 400 mapper_parsing_exception: "
                               "failed to parse field [id]");
    CHECK(items[4].result == ES_ITEM_RETRY);
    CHECK(items[5].result == ES_ITEM_MISSING);

    /* Wrong item count, no items, not JSON: not a usable answer. */
    CHECK(!es_parse_bulk_response(body, strlen(body), actions, items, 5, err,
                                  sizeof err));
    CHECK(strstr(err, "6 items for 5") != NULL);
    CHECK(!es_parse_bulk_response("{\"errors\":false}", 16, actions, items, 1,
                                  err, sizeof err));
    CHECK(!es_parse_bulk_response("<html>", 6, actions, items, 1, err,
                                  sizeof err));
    const char *nostatus = "{\"items\":[{\"index\":{}}]}";
    CHECK(!es_parse_bulk_response(nostatus, strlen(nostatus), actions, items, 1,
                                  err, sizeof err));
}

/* A one-column key's text is taken as its id only where es_doc_id of the
 * key's JSON gives exactly that text. */
static void check_text_id(uint32_t oid, const char *text, const char *json,
                          bool taken)
{
    CHECK(es_id_is_key_text(oid, text, strlen(text)) == taken);
    if (taken)
        check_id(json, NULL, text);
}

static void test_ids_from_key_text(void)
{
    check_text_id(20, "-9223372036854775808", "{\"id\":-9223372036854775808}",
                  true);
    check_text_id(23, "42", "{\"id\":42}", true);
    check_text_id(25, "a\"b\\c\xc3\xa9\n", "{\"c\":\"a\\\"b\\\\c\xc3\xa9\\n\"}",
                  true);
    check_text_id(2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                  "{\"u\":\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"}", true);
    check_text_id(1042, "ab  ", "{\"c\":\"ab  \"}", true);
    /* JSON changes these: t is true, {1,2} is [1,2], a float may be
     * re-printed, malformed UTF-8 becomes U+FFFD. */
    check_text_id(16, "t", NULL, false);
    check_text_id(1007, "{1,2}", NULL, false);
    check_text_id(701, "1e+300", NULL, false);
    check_text_id(25, "a\xff", NULL, false);
    /* Too long, or empty: es_doc_id says why. */
    check_text_id(25, "", NULL, false);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    check_text_id(25, big, NULL, false);
}

int main(void)
{
    test_doc_ids();
    test_ids_from_key_text();
    test_index_names();
    test_bulk_lines();
    test_classify();
    test_parse_response();
    return check_summary();
}
