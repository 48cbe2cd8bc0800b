/* The BigQuery sink's pure parts: type mapping, value conversion, the rows
 * an event becomes, the view's SQL and what insertAll answers mean. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bq_events.h"
#include "bq_row.h"
#include "bq_schema.h"
#include "check.h"

static const char *map(const char *pg, unsigned oid, bool *repeated)
{
    bool toastable;
    return bq_map_type(pg, oid, repeated, &toastable);
}

static void test_type_mapping(void)
{
    bool rep;
    CHECK_STR(map("integer", 23, &rep), "INT64");
    CHECK(!rep);
    CHECK_STR(map("bigint", 20, &rep), "INT64");
    CHECK_STR(map("double precision", 701, &rep), "FLOAT64");
    CHECK_STR(map("boolean", 16, &rep), "BOOL");
    CHECK_STR(map("timestamp with time zone", 1184, &rep), "TIMESTAMP");
    CHECK_STR(map("timestamp(3) without time zone", 1114, &rep), "DATETIME");
    CHECK_STR(map("date", 1082, &rep), "DATE");
    CHECK_STR(map("time without time zone", 1083, &rep), "TIME");
    CHECK_STR(map("jsonb", 3802, &rep), "JSON");
    CHECK_STR(map("bytea", 17, &rep), "BYTES");
    CHECK_STR(map("numeric(12,2)", 1700, &rep), "NUMERIC");
    CHECK_STR(map("numeric(38,9)", 1700, &rep), "NUMERIC");
    CHECK_STR(map("numeric(40,10)", 1700, &rep), "BIGNUMERIC");
    CHECK_STR(map("numeric(80,2)", 1700, &rep), "STRING");
    CHECK_STR(map("numeric", 1700, &rep), "STRING");
    CHECK_STR(map("integer[]", 1007, &rep), "INT64");
    CHECK(rep);
    CHECK_STR(map("numeric(10,2)[]", 1231, &rep), "NUMERIC");
    CHECK(rep);
    CHECK_STR(map("text[]", 1009, &rep), "STRING");
    CHECK(rep);
    CHECK_STR(map("uuid", 2950, &rep), "STRING");
    CHECK(!rep);
    CHECK_STR(map("mood", 16390, &rep), "STRING");
    CHECK_STR(map("mood[]", 16389, &rep), "STRING");
    CHECK(rep);
}

static json_t *conv(const char *type, bool repeated, const char *value_json,
                    char *err)
{
    bq_column col = {.name = "c", .type = type, .repeated = repeated};
    json_t *v = json_loads(value_json, JSON_DECODE_ANY, NULL);
    json_t *out = bq_convert_value(&col, v, err, 200);
    json_decref(v);
    return out;
}

static void check_conv(const char *type, bool repeated, const char *in,
                       const char *want)
{
    char err[200] = "";
    json_t *out = conv(type, repeated, in, err);
    char *text = out ? json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    CHECK_STR(text, want);
    free(text);
    json_decref(out);
}

static void test_values(void)
{
    check_conv("BYTES", false, "\"\\\\x0001ff\"", "\"AAH/\"");
    check_conv("BYTES", false, "\"\\\\x\"", "\"\"");
    check_conv("JSON", false, "{\"a\":[1,2]}", "\"{\\\"a\\\":[1,2]}\"");
    check_conv("TIMESTAMP", false, "\"2026-11-21 23:55:22.123456+00\"",
               "\"2026-11-21T23:55:22.123456Z\"");
    check_conv("TIMESTAMP", false, "\"2026-01-01 00:30:00+01:30\"",
               "\"2025-12-31T23:00:00Z\"");
    check_conv("TIMESTAMP", false, "\"2000-03-01 05:00:00-05\"",
               "\"2000-03-01T10:00:00Z\"");
    check_conv("TIMESTAMP", false, "\"infinity\"",
               "\"9999-12-31T23:59:59.999999Z\"");
    check_conv("DATE", false, "\"-infinity\"", "\"0001-01-01\"");
    check_conv("NUMERIC", false, "\"12345.67\"", "\"12345.67\"");
    check_conv("FLOAT64", false, "\"NaN\"", "\"NaN\"");
    check_conv("INT64", false, "9007199254740993", "9007199254740993");
    check_conv("STRING", false, "42", "\"42\"");
    check_conv("INT64", true, "[1,2,3]", "[1,2,3]");
    check_conv("BYTES", true, "[\"\\\\x00\"]", "[\"AA==\"]");

    char err[200] = "";
    CHECK(conv("INT64", true, "[1,null]", err) == NULL);
    CHECK(strstr(err, "NULL elements") != NULL);
    CHECK(conv("INT64", true, "[[1],[2]]", err) == NULL);
    CHECK(strstr(err, "multi-dimensional") != NULL);
    CHECK(conv("BYTES", false, "\"abc\"", err) == NULL);
    CHECK(conv("DATE", false, "\"0044-03-15 BC\"", err) == NULL);
}

static bq_columns table_cols(void)
{
    static bq_column cols[] = {
        {.name = "id", .type = "INT64", .key = true},
        {.name = "big", .type = "STRING", .toastable = true},
        {.name = "n", .type = "INT64"},
    };
    bq_columns c = {cols, 3};
    return c;
}

static json_t *rows_of(const char *event_json, pgspout_position pos)
{
    json_t *ev = json_loads(event_json, 0, NULL);
    json_t *rows = json_array();
    char err[200];
    bq_columns cols = table_cols();
    CHECK(bq_event_rows(ev, pos, &cols, rows, err, sizeof err));
    json_decref(ev);
    return rows;
}

static const char *row_str(json_t *rows, size_t i, const char *field)
{
    return json_string_value(json_object_get(
        json_object_get(json_array_get(rows, i), "json"), field));
}

static void test_event_rows(void)
{
    pgspout_position pos = {0x16B37A0, 3};
    json_t *rows = rows_of(
        "{\"op\":\"update\",\"commit_time\":\"2026-11-21T23:55:22.1Z\","
        "\"key\":{\"id\":1},\"before\":null,\"after\":{\"id\":1,\"n\":5},"
        "\"unchanged_toast\":[\"big\"]}",
        pos);
    CHECK(json_array_size(rows) == 1);
    CHECK_STR(
        json_string_value(json_object_get(json_array_get(rows, 0), "insertId")),
        "16B37A0-3");
    CHECK_STR(row_str(rows, 0, "_op"), "update");
    CHECK_STR(row_str(rows, 0, "_key"), "{\"id\":1}");
    json_t *row = json_object_get(json_array_get(rows, 0), "json");
    CHECK(json_integer_value(json_object_get(row, "_commit_lsn")) == 0x16B37A0);
    CHECK(json_integer_value(json_object_get(row, "_seq")) == 3);
    CHECK(json_object_get(row, "big") == NULL);
    CHECK_STR(json_string_value(
                  json_array_get(json_object_get(row, "_unchanged_toast"), 0)),
              "big");
    json_decref(rows);

    /* A key change ends the old key's row first. */
    rows = rows_of("{\"op\":\"update\",\"key\":{\"id\":2},\"before\":"
                   "{\"id\":1},\"after\":{\"id\":2,\"n\":5},"
                   "\"unchanged_toast\":[]}",
                   pos);
    CHECK(json_array_size(rows) == 2);
    CHECK_STR(row_str(rows, 0, "_op"), "delete");
    CHECK_STR(row_str(rows, 0, "_key"), "{\"id\":1}");
    CHECK_STR(
        json_string_value(json_object_get(json_array_get(rows, 0), "insertId")),
        "16B37A0-3-k");
    CHECK_STR(row_str(rows, 1, "_op"), "update");
    CHECK_STR(row_str(rows, 1, "_key"), "{\"id\":2}");
    json_decref(rows);

    /* REPLICA IDENTITY FULL: the old row fills in unchanged TOAST. */
    rows = rows_of("{\"op\":\"update\",\"key\":{\"id\":1,\"big\":\"x\","
                   "\"n\":6},\"before\":{\"id\":1,\"big\":\"x\",\"n\":5},"
                   "\"after\":{\"id\":1,\"n\":6},\"unchanged_toast\":"
                   "[\"big\"]}",
                   pos);
    CHECK(json_array_size(rows) == 2); /* the whole row is the key */
    CHECK_STR(row_str(rows, 1, "big"), "x");
    CHECK(json_array_size(
              json_object_get(json_object_get(json_array_get(rows, 1), "json"),
                              "_unchanged_toast")) == 0);
    json_decref(rows);

    rows = rows_of("{\"op\":\"delete\",\"key\":{\"id\":7},\"before\":"
                   "{\"id\":7},\"after\":null,\"unchanged_toast\":[]}",
                   pos);
    CHECK_STR(row_str(rows, 0, "_op"), "delete");
    CHECK_STR(row_str(rows, 0, "_key"), "{\"id\":7}");
    json_decref(rows);

    rows = rows_of("{\"op\":\"truncate\",\"cascade\":false}", pos);
    CHECK_STR(row_str(rows, 0, "_op"), "truncate");
    json_decref(rows);
}

static json_t *rows_of_table(const char *event_json, const bq_columns *cols)
{
    pgspout_position pos = {0x16B37A0, 3};
    json_t *ev = json_loads(event_json, 0, NULL);
    json_t *rows = json_array();
    char err[200];
    CHECK(ev && bq_event_rows(ev, pos, cols, rows, err, sizeof err));
    json_decref(ev);
    return rows;
}

/* json_null names the columns whose null is JSON null: they get the JSON
 * text "null" (a JSON null in a JSON column), while SQL NULL stays a NULL
 * cell (left out of the row). */
static void test_json_null_rows(void)
{
    static bq_column cols[] = {
        {.name = "id", .type = "INT64", .key = true},
        {.name = "doc", .type = "JSON", .toastable = true},
        {.name = "dom", .type = "STRING", .toastable = true}, /* a domain */
        {.name = "other", .type = "JSON", .toastable = true},
    };
    bq_columns table = {cols, 4};
    json_t *rows = rows_of_table(
        "{\"op\":\"insert\",\"key\":{\"id\":1},\"before\":null,\"after\":"
        "{\"id\":1,\"doc\":null,\"dom\":null,\"other\":null},"
        "\"unchanged_toast\":[],\"json_null\":{\"before\":[],\"after\":"
        "[\"doc\",\"dom\"]}}",
        &table);
    json_t *row = json_object_get(json_array_get(rows, 0), "json");
    CHECK_STR(json_string_value(json_object_get(row, "doc")), "null");
    CHECK_STR(json_string_value(json_object_get(row, "dom")), "null");
    CHECK(json_object_get(row, "other") == NULL);
    json_decref(rows);

    /* Without json_null (most events) every null is SQL NULL. */
    rows = rows_of_table("{\"op\":\"insert\",\"key\":{\"id\":1},\"before\":"
                         "null,\"after\":{\"id\":1,\"doc\":null},"
                         "\"unchanged_toast\":[]}",
                         &table);
    row = json_object_get(json_array_get(rows, 0), "json");
    CHECK(json_object_get(row, "doc") == NULL);
    json_decref(rows);

    /* A delete's row comes from the before image; an unchanged TOAST value
     * filled from a whole before image keeps its JSON null. */
    rows = rows_of_table(
        "{\"op\":\"delete\",\"key\":{\"id\":1},\"before\":{\"id\":1,\"doc\":"
        "null,\"other\":null},\"after\":null,\"unchanged_toast\":[],"
        "\"json_null\":{\"before\":[\"doc\"],\"after\":[]}}",
        &table);
    row = json_object_get(json_array_get(rows, 0), "json");
    CHECK_STR(json_string_value(json_object_get(row, "doc")), "null");
    CHECK(json_object_get(row, "other") == NULL);
    json_decref(rows);
    rows = rows_of_table(
        "{\"op\":\"update\",\"key\":{\"id\":1},\"before\":{\"id\":1,\"doc\":"
        "null,\"dom\":null,\"other\":null},\"after\":{\"id\":1,\"dom\":null,"
        "\"other\":null},\"unchanged_toast\":[\"doc\"],\"json_null\":{"
        "\"before\":[\"doc\",\"other\"],\"after\":[\"dom\"]}}",
        &table);
    CHECK(json_array_size(rows) == 1);
    row = json_object_get(json_array_get(rows, 0), "json");
    CHECK_STR(json_string_value(json_object_get(row, "doc")), "null");
    CHECK_STR(json_string_value(json_object_get(row, "dom")), "null");
    CHECK(json_object_get(row, "other") == NULL); /* SQL NULL in after */
    json_decref(rows);
}

/* The outcome of a request of one record of one row. */
static kit_outcome outcome(long status, const char *body, bool prefill)
{
    kit_http_response resp = {.status = status,
                              .body = (char *)body,
                              .body_len = body ? strlen(body) : 0,
                              .retry_after_s = -1};
    kit_outcome o = {.kind = prefill ? KIT_RETRY : KIT_DONE};
    size_t rows = 1;
    bool auth_failed;
    bq_insert_outcomes(&resp, &rows, 1, &o, &auth_failed);
    return o;
}

/* BigQuery's answers to a request over insertAll's size limit: the 400
 * the API gives, and the 413 (an HTML page) Google's front end gives to a
 * far larger one; the kit then sends the rows again in smaller requests.
 * Another 400 still rejects the rows. */
static void test_outcomes_too_large(void)
{
    kit_outcome o =
        outcome(400,
                "{\"error\":{\"code\":400,\"message\":\"Request payload size "
                "exceeds the limit: 10485760 bytes.\",\"errors\":[{\"message\":"
                "\"Request payload size exceeds the limit: 10485760 bytes.\","
                "\"domain\":\"global\",\"reason\":\"badRequest\"}],"
                "\"status\":\"INVALID_ARGUMENT\"}}",
                false);
    CHECK(o.kind == KIT_TOO_LARGE);
    CHECK(strstr(o.reason, "exceeds the limit: 10485760 bytes") != NULL);
    CHECK(outcome(413,
                  "<!DOCTYPE html><title>Error 413 (Request Entity Too "
                  "Large)!!1</title>",
                  false)
              .kind == KIT_TOO_LARGE);
    CHECK(outcome(400,
                  "{\"error\":{\"code\":400,\"message\":\"No such field\","
                  "\"errors\":[{\"reason\":\"invalid\"}]}}",
                  false)
              .kind == KIT_REJECTED);
}

static void test_outcomes(void)
{
    CHECK(outcome(200, "{\"kind\":\"x\"}", false).kind == KIT_DONE);
    CHECK(outcome(200, "{\"insertErrors\":[]}", false).kind == KIT_DONE);
    CHECK(outcome(200, "not json", false).kind == KIT_RETRY);
    kit_outcome o = outcome(
        200,
        "{\"insertErrors\":[{\"index\":0,\"errors\":[{\"reason\":\"invalid\","
        "\"location\":\"qty\",\"message\":\"Cannot convert value\"}]}]}",
        false);
    CHECK(o.kind == KIT_REJECTED);
    CHECK(strstr(o.reason, "row 0: invalid at qty: Cannot convert") != NULL);
    o = outcome(200,
                "{\"insertErrors\":[{\"index\":0,\"errors\":[{\"reason\":"
                "\"backendError\"}]}]}",
                false);
    CHECK(o.kind == KIT_RETRY);
    CHECK(outcome(503, "", true).kind == KIT_RETRY);
    CHECK(outcome(403,
                  "{\"error\":{\"code\":403,\"message\":\"Exceeded rate "
                  "limits\",\"errors\":[{\"reason\":\"rateLimitExceeded\"}]}}",
                  false)
              .kind == KIT_RETRY);
    o = outcome(403,
                "{\"error\":{\"code\":403,\"message\":\"Access Denied\","
                "\"errors\":[{\"reason\":\"accessDenied\"}]}}",
                false);
    CHECK(o.kind == KIT_FATAL);
    CHECK(strstr(o.reason, "Access Denied") != NULL);
    CHECK(outcome(404, "{}", false).kind == KIT_FATAL);
    CHECK(outcome(400, "{}", false).kind == KIT_REJECTED);
    kit_http_response resp = {.status = 401, .retry_after_s = -1};
    kit_outcome o401 = {.kind = KIT_DONE};
    size_t rows = 1;
    bool auth_failed = false;
    bq_insert_outcomes(&resp, &rows, 1, &o401, &auth_failed);
    CHECK(auth_failed && o401.kind == KIT_RETRY);
}

/* insertErrors' row indexes count the request's rows; each record carries
 * one or more of them. */
static void test_outcomes_per_record(void)
{
    /* records of 1, 2 and 1 rows: rows 0 | 1 2 | 3 */
    const size_t rows[] = {1, 2, 1};
    kit_outcome o[3];
    bool auth_failed;
    const char *body =
        "{\"insertErrors\":["
        "{\"index\":0,\"errors\":[{\"reason\":\"stopped\"}]},"
        "{\"index\":2,\"errors\":[{\"reason\":\"invalid\",\"location\":"
        "\"qty\",\"message\":\"Cannot convert value\"}]},"
        "{\"index\":3,\"errors\":[{\"reason\":\"stopped\"}]}]}";
    kit_http_response resp = {.status = 200,
                              .body = (char *)body,
                              .body_len = strlen(body),
                              .retry_after_s = -1};
    memset(o, 0, sizeof o);
    bq_insert_outcomes(&resp, rows, 3, o, &auth_failed);
    CHECK(o[0].kind == KIT_RETRY);
    CHECK(o[1].kind == KIT_REJECTED);
    /* the row's index within its record */
    CHECK(strstr(o[1].reason, "row 1: invalid at qty: Cannot convert") != NULL);
    CHECK(o[2].kind == KIT_RETRY);
    CHECK(!auth_failed);

    /* rows without errors were stored */
    body = "{\"insertErrors\":[{\"index\":1,\"errors\":[{\"reason\":"
           "\"backendError\"}]}]}";
    resp.body = (char *)body;
    resp.body_len = strlen(body);
    memset(o, 0, sizeof o);
    bq_insert_outcomes(&resp, rows, 3, o, &auth_failed);
    CHECK(o[0].kind == KIT_DONE);
    CHECK(o[1].kind == KIT_RETRY);
    CHECK(o[2].kind == KIT_DONE);

    /* an index that fits no record concerns them all */
    body = "{\"insertErrors\":[{\"index\":9,\"errors\":[{\"reason\":"
           "\"invalid\"}]}]}";
    resp.body = (char *)body;
    resp.body_len = strlen(body);
    memset(o, 0, sizeof o);
    bq_insert_outcomes(&resp, rows, 3, o, &auth_failed);
    CHECK(o[0].kind == KIT_REJECTED && o[1].kind == KIT_REJECTED &&
          o[2].kind == KIT_REJECTED);

    /* a request-level answer applies to every record */
    body = "{\"error\":{\"code\":400,\"message\":\"Bad request\","
           "\"errors\":[{\"reason\":\"invalid\"}]}}";
    resp.status = 400;
    resp.body = (char *)body;
    resp.body_len = strlen(body);
    memset(o, 0, sizeof o);
    bq_insert_outcomes(&resp, rows, 3, o, &auth_failed);
    for (int i = 0; i < 3; i++) {
        CHECK(o[i].kind == KIT_REJECTED);
        CHECK(strstr(o[i].reason, "Bad request") != NULL);
    }
    resp.status = 503;
    resp.body = NULL;
    resp.body_len = 0;
    for (int i = 0; i < 3; i++)
        o[i].kind = KIT_RETRY;
    bq_insert_outcomes(&resp, rows, 3, o, &auth_failed);
    CHECK(o[0].kind == KIT_RETRY && o[2].kind == KIT_RETRY);
}

static void test_view_and_tables(void)
{
    bq_column cols[] = {
        {.name = "id", .type = "INT64"},
        {.name = "by", .type = "STRING", .toastable = true},
    };
    bq_columns c = {cols, 2};
    char *sql = bq_view_sql("p", "d", "t_changelog", &c);
    CHECK(strstr(sql, "FROM `p.d.t_changelog` AS c") != NULL);
    CHECK(strstr(sql, "FIRST_VALUE(`by`) OVER (PARTITION BY `_key`, `_g1`") !=
          NULL);
    CHECK(strstr(sql, "FIRST_VALUE(`id`)") == NULL);
    CHECK(strstr(sql, "'by' IN UNNEST(`_unchanged_toast`)") != NULL);
    CHECK(strstr(sql, "`_rn` = 1 AND `_op` != 'delete'") != NULL);
    free(sql);

    char *table = bq_changelog_table_json("p", "d", "t_changelog", &c);
    json_t *j = json_loads(table, 0, NULL);
    json_t *fields = json_object_get(json_object_get(j, "schema"), "fields");
    CHECK(json_array_size(fields) == 2 + 6);
    CHECK_STR(
        json_string_value(json_object_get(json_array_get(fields, 7), "name")),
        "_unchanged_toast");
    CHECK_STR(
        json_string_value(json_object_get(json_array_get(fields, 7), "mode")),
        "REPEATED");
    json_decref(j);
    free(table);

    char *ddl = bq_add_column_ddl("p", "d", "t`x", &cols[1]);
    CHECK_STR(ddl, "ALTER TABLE `p.d.t\\`x` ADD COLUMN IF NOT EXISTS `by` "
                   "STRING");
    free(ddl);

    char *name =
        bq_expand_template("{schema}_{table}_changelog", "public", "orders");
    CHECK_STR(name, "public_orders_changelog");
    free(name);

    /* A relation that gained a column, lost one and changed one. */
    bq_column now[] = {
        {.name = "id", .type = "STRING", .pg_type = "text"},
        {.name = "note", .type = "STRING", .pg_type = "text"},
    };
    bq_columns src = {now, 2};
    bq_schema_diff diff;
    bq_schema_diff_compute(&c, &src, &diff);
    CHECK(diff.nadded == 1 && strcmp(diff.added[0].name, "note") == 0);
    CHECK(diff.ndropped == 1 && strcmp(diff.dropped[0], "by") == 0);
    CHECK(diff.nretyped == 1 && strstr(diff.retyped[0], "id: INT64") != NULL);
    bq_schema_diff_free(&diff);

    json_t *cols_json = json_loads(
        "[{\"name\":\"_op\",\"type\":\"text\",\"type_oid\":25,\"key\":false}]",
        0, NULL);
    bq_columns out;
    char err[200];
    CHECK(!bq_columns_from_event(cols_json, &out, err, sizeof err));
    CHECK(strstr(err, "collides") != NULL);
    json_decref(cols_json);
}

/* Message and commit events: rows of pgspout's own tables, their fields
 * as cells, LSNs as integers, the insertId the position's. */
static void test_message_and_transaction_rows(void)
{
    char err[200];
    json_t *msg = json_loads(
        "{\"op\":\"message\",\"schema\":null,\"table\":null,"
        "\"lsn\":\"0/16B3798\",\"commit_lsn\":\"0/16B3798\",\"xid\":0,"
        "\"seq\":0,\"commit_time\":null,\"prefix\":\"app\","
        "\"content_base64\":\"/wA=\",\"transactional\":false}",
        0, NULL);
    pgspout_position lone = {0x16B3798, 0};
    json_t *row = bq_event_row(msg, lone, BQ_MESSAGES_TABLE, err, sizeof err);
    CHECK(row != NULL);
    CHECK_STR(json_string_value(json_object_get(row, "insertId")), "16B3798-0");
    json_t *cells = json_object_get(row, "json");
    CHECK(json_integer_value(json_object_get(cells, "lsn")) == 0x16B3798);
    CHECK(json_integer_value(json_object_get(cells, "seq")) == 0);
    CHECK_STR(json_string_value(json_object_get(cells, "content_base64")),
              "/wA=");
    CHECK(json_is_false(json_object_get(cells, "transactional")));
    /* NULL cells are left out; so are fields the table has no column for. */
    CHECK(json_object_get(cells, "commit_time") == NULL);
    CHECK(json_object_get(cells, "content") == NULL);
    CHECK(json_object_get(cells, "schema") == NULL);
    json_decref(row);
    json_object_set_new(msg, "lsn", json_string("not an LSN"));
    CHECK(bq_event_row(msg, lone, BQ_MESSAGES_TABLE, err, sizeof err) == NULL);
    CHECK(strstr(err, "\"lsn\"") != NULL);
    json_decref(msg);

    json_t *commit = json_loads(
        "{\"op\":\"commit\",\"lsn\":\"1/0\",\"commit_lsn\":\"1/0\","
        "\"xid\":7,\"seq\":4,\"commit_time\":\"2026-11-21T23:55:22Z\","
        "\"event_count\":2,\"tables\":{\"public.t\":2},\"messages\":0}",
        0, NULL);
    pgspout_position at = {0x100000000, 4};
    row = bq_event_row(commit, at, BQ_TRANSACTIONS_TABLE, err, sizeof err);
    cells = json_object_get(row, "json");
    CHECK_STR(json_string_value(json_object_get(row, "insertId")),
              "100000000-4");
    CHECK_STR(json_string_value(json_object_get(cells, "tables")),
              "{\"public.t\":2}");
    CHECK(json_integer_value(json_object_get(cells, "event_count")) == 2);
    CHECK_STR(json_string_value(json_object_get(cells, "commit_time")),
              "2026-11-21T23:55:22Z");
    json_decref(row);
    json_decref(commit);

    char *table =
        bq_event_table_json("p", "d", "pgspout_messages", BQ_MESSAGES_TABLE);
    CHECK(strstr(table, "\"name\":\"content_base64\",\"type\":\"BYTES\"") !=
          NULL);
    CHECK(strstr(table, "\"tableId\":\"pgspout_messages\"") != NULL);
    free(table);
}

int main(void)
{
    test_type_mapping();
    test_values();
    test_event_rows();
    test_json_null_rows();
    test_outcomes();
    test_outcomes_too_large();
    test_outcomes_per_record();
    test_view_and_tables();
    test_message_and_transaction_rows();
    return check_summary();
}
