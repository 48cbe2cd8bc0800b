/* The Kafka sink's pure parts: topic templates, the JSON member scanner,
 * record keys (and the key an update moved away from), and Debezium's
 * envelope checked field by field against Debezium's documented create
 * event. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kafka_format.h"
#include "kafka_json.h"
#include "kafka_topic.h"

static json_span span(const char *s)
{
    return (json_span){s, s ? strlen(s) : 0};
}

static char *expand(const char *template, const char *schema, const char *table,
                    char *err, size_t errlen)
{
    kafka_topic_template *t = kafka_topic_template_parse(template, err, errlen);
    if (!t)
        return NULL;
    char *name = kafka_topic_expand(t, schema, table, err, errlen);
    kafka_topic_template_free(t);
    return name;
}

static void test_topic_templates(void)
{
    char err[256];
    char *name =
        expand("{schema}.{table}", "public", "orders", err, sizeof err);
    CHECK_STR(name, "public.orders");
    free(name);
    name = expand("cdc-{table}_v1.{schema}", "s", "T-1", err, sizeof err);
    CHECK_STR(name, "cdc-T-1_v1.s");
    free(name);
    name = expand("all_changes", "a", "b", err, sizeof err);
    CHECK_STR(name, "all_changes");
    free(name);

    /* A table whose name Kafka cannot take stops the stream, saying why. */
    CHECK(expand("{schema}.{table}", "public", "Mixed Case", err, sizeof err) ==
          NULL);
    CHECK(strstr(err, "0x20") != NULL);
    CHECK(expand("{schema}.{table}", "public", "ünï", err, sizeof err) == NULL);
    char longname[300];
    memset(longname, 'x', 260);
    longname[260] = '\0';
    CHECK(expand("{table}", "s", longname, err, sizeof err) == NULL);
    CHECK(strstr(err, "1 to 249") != NULL);
    memset(longname, 'x', 249);
    longname[249] = '\0';
    name = expand("{table}", "s", longname, err, sizeof err);
    CHECK(name && strlen(name) == 249);
    free(name);

    /* Bad templates are refused when parsed. */
    kafka_topic_template *t;
    CHECK((t = kafka_topic_template_parse("{db}.{table}", err, sizeof err)) ==
          NULL);
    CHECK(strstr(err, "unknown placeholder") != NULL);
    CHECK(kafka_topic_template_parse("{schema", err, sizeof err) == NULL);
    CHECK(kafka_topic_template_parse("a b.{table}", err, sizeof err) == NULL);
    CHECK(kafka_topic_template_parse("", err, sizeof err) == NULL);
    CHECK(kafka_topic_template_parse("..", err, sizeof err) == NULL);
    t = kafka_topic_template_parse("fixed.name", err, sizeof err);
    CHECK(t && kafka_topic_template_is_fixed(t));
    kafka_topic_template_free(t);
    t = kafka_topic_template_parse("x.{table}", err, sizeof err);
    CHECK(t && !kafka_topic_template_is_fixed(t));
    kafka_topic_template_free(t);
    CHECK(kafka_topic_name_valid("a.b_c-D9", err, sizeof err));
    CHECK(!kafka_topic_name_valid(".", err, sizeof err));
}

typedef struct collected {
    char text[512];
} collected;

static bool collect(void *ctx, json_span name, json_span value)
{
    collected *c = ctx;
    size_t used = strlen(c->text);
    snprintf(c->text + used, sizeof c->text - used, "%.*s=%.*s|",
             name.p ? (int)name.len : 4, name.p ? name.p : "elem",
             (int)value.len, value.p);
    return true;
}

static void test_json_scanner(void)
{
    collected c = {""};
    const char *obj = "{\"a\":1,\"b\\\"q\":\"x,}\\\"y\",\"c\":{\"d\":[1,{\"e\":"
                      "\"]\"}]},\"f\":null,\"g\":-1.5e3}";
    CHECK(kafka_json_each(obj, strlen(obj), collect, &c));
    CHECK_STR(c.text, "\"a\"=1|\"b\\\"q\"=\"x,}\\\"y\"|\"c\"={\"d\":[1,{\"e\":"
                      "\"]\"}]}|\"f\"=null|\"g\"=-1.5e3|");
    collected arr = {""};
    CHECK(kafka_json_each("[\"id\", \"n\"]", 11, collect, &arr));
    CHECK_STR(arr.text, "elem=\"id\"|elem=\"n\"|");
    collected empty = {""};
    CHECK(kafka_json_each("{}", 2, collect, &empty) && !empty.text[0]);
    CHECK(kafka_json_each("[]", 2, collect, &empty) && !empty.text[0]);
    CHECK(!kafka_json_each("null", 4, collect, &empty));
    CHECK(!kafka_json_each("{\"a\":1", 6, collect, &empty));
    CHECK(!kafka_json_each("{\"a\" 1}", 7, collect, &empty));
    CHECK(!kafka_json_each("{\"a\":\"open}", 11, collect, &empty));
    json_span v = kafka_json_member(obj, strlen(obj), span("\"f\""));
    CHECK(v.p && v.len == 4 && strncmp(v.p, "null", 4) == 0);
    CHECK(kafka_json_member(obj, strlen(obj), span("\"zz\"")).p == NULL);
}

static kafka_change row_change(pgspout_op op, const char *key,
                               const char *before, const char *after)
{
    return (kafka_change){.op = op,
                          .schema = "public",
                          .table = "orders",
                          .pos = {0x16B37A0, 3},
                          .lsn = 0x16B3748,
                          .xid = 741,
                          .commit_time_us = 1559033904863123,
                          .key = span(key),
                          .before = span(before),
                          .after = span(after)};
}

static void test_keys(void)
{
    strbuf sb = STRBUF_INIT;
    kafka_change c = row_change(PGSPOUT_OP_INSERT, "{\"id\":1}", "null",
                                "{\"id\":1,\"v\":\"a\"}");
    CHECK(kafka_message_key(KAFKA_KEY_ROW, &c, &sb));
    CHECK_STR(sb.data, "{\"id\":1}");
    sbuf_reset(&sb);
    CHECK(kafka_message_key(KAFKA_KEY_TABLE, &c, &sb));
    CHECK_STR(sb.data, "public.orders");
    sbuf_reset(&sb);
    CHECK(!kafka_message_key(KAFKA_KEY_NONE, &c, &sb) && sb.len == 0);
    /* No replica identity, or no row: no key. */
    c.key = span("{}");
    CHECK(!kafka_message_key(KAFKA_KEY_ROW, &c, &sb) && sb.len == 0);
    kafka_change t = {.op = PGSPOUT_OP_TRUNCATE, .schema = "s", .table = "t"};
    CHECK(!kafka_message_key(KAFKA_KEY_ROW, &t, &sb));
    CHECK(kafka_message_key(KAFKA_KEY_TABLE, &t, &sb));
    CHECK_STR(sb.data, "s.t");
    sbuf_free(&sb);
}

static void test_previous_key(void)
{
    strbuf sb = STRBUF_INIT;
    /* REPLICA IDENTITY DEFAULT, key changed: before holds the old key. */
    kafka_change c =
        row_change(PGSPOUT_OP_UPDATE, "{\"a\":2,\"b\":\"x\"}",
                   "{\"b\":\"x\",\"a\":1}", "{\"a\":2,\"b\":\"x\",\"v\":1}");
    CHECK(kafka_previous_key(&c, &sb));
    /* The key's member order, the bytes before holds. */
    CHECK_STR(sb.data, "{\"a\":1,\"b\":\"x\"}");
    sbuf_reset(&sb);
    /* Key unchanged (FULL identity, another column changed). */
    c = row_change(PGSPOUT_OP_UPDATE, "{\"id\":1.50}",
                   "{\"id\":1.50,\"v\":\"old\"}",
                   "{\"id\":1.50,\"v\":\"new\"}");
    CHECK(!kafka_previous_key(&c, &sb) && sb.len == 0);
    /* Numbers compare as written: 1.5 and 1.50 are different bytes, and
     * the old key keeps its own. */
    c = row_change(PGSPOUT_OP_UPDATE, "{\"id\":1.5}", "{\"id\":1.50}",
                   "{\"id\":1.5}");
    CHECK(kafka_previous_key(&c, &sb));
    CHECK_STR(sb.data, "{\"id\":1.50}");
    sbuf_reset(&sb);
    /* No old row (DEFAULT identity, key unchanged), an insert, a before
     * without the key: nothing. */
    c = row_change(PGSPOUT_OP_UPDATE, "{\"id\":1}", "null", "{\"id\":1}");
    CHECK(!kafka_previous_key(&c, &sb));
    c = row_change(PGSPOUT_OP_INSERT, "{\"id\":2}", "{\"id\":1}", "{}");
    CHECK(!kafka_previous_key(&c, &sb));
    c = row_change(PGSPOUT_OP_UPDATE, "{\"id\":2}", "{\"v\":1}", "{}");
    CHECK(!kafka_previous_key(&c, &sb) && sb.len == 0);
    sbuf_free(&sb);
}

/* The create event of Debezium's PostgreSQL connector documentation
 * ("Descriptions of create event value fields"), its payload as the
 * JsonConverter writes it with schemas.enable=false, with the values of
 * the change below. Two fields differ from the page on purpose:
 * source.snapshot is the string Debezium's code writes ("true", "false",
 * ...; the page's example still shows a boolean, an older form), and
 * source.version is this sink's. */
static const char *const documented_create =
    "{\"before\":null,"
    "\"after\":{\"id\":1,\"first_name\":\"Anne\",\"last_name\":\"Kretchmar\","
    "\"email\":\"annek@noanswer.org\"},"
    "\"source\":{\"version\":\"pgspout-kafka-0.1.0\",\"connector\":"
    "\"postgresql\",\"name\":\"PostgreSQL_server\",\"ts_ms\":1559033904863,"
    "\"ts_us\":1559033904863123,\"ts_ns\":1559033904863123000,\"snapshot\":"
    "\"false\",\"db\":\"postgres\",\"sequence\":\"[\\\"24023119\\\","
    "\\\"24023128\\\"]\",\"schema\":\"public\",\"table\":\"customers\","
    "\"txId\":555,\"lsn\":24023128,\"xmin\":null},"
    "\"op\":\"c\",\"ts_ms\":1559033904863,\"ts_us\":1559033904863841,"
    "\"ts_ns\":1559033904863841000,\"transaction\":null}";

static const kafka_debezium_source doc_source = {
    "pgspout-kafka-0.1.0", "PostgreSQL_server", "postgres"};

static json_t *debezium(const kafka_change *c, int64_t processed_us)
{
    strbuf sb = STRBUF_INIT;
    json_t *v = NULL;
    if (kafka_debezium_value(&sb, c, &doc_source, processed_us))
        v = json_loadb(sb.data, sb.len, 0, NULL);
    sbuf_free(&sb);
    return v;
}

static void test_debezium_documented_create(void)
{
    kafka_change c = {
        .op = PGSPOUT_OP_INSERT,
        .schema = "public",
        .table = "customers",
        .pos = {24023119, 1},
        .lsn = 24023128,
        .xid = 555,
        .commit_time_us = 1559033904863123,
        .key = span("{\"id\":1}"),
        .before = span("null"),
        .after = span("{\"id\":1,\"first_name\":\"Anne\",\"last_name\":"
                      "\"Kretchmar\",\"email\":\"annek@noanswer.org\"}"),
        .unchanged_toast = span("[]")};
    json_t *got = debezium(&c, 1559033904863841);
    json_t *want = json_loads(documented_create, 0, NULL);
    CHECK(got && want);
    /* Field by field, so a failure names the field. */
    const char *key;
    json_t *value;
    json_object_foreach(want, key, value)
    {
        json_t *g = json_object_get(got, key);
        bool same = g && json_equal(g, value);
        if (!same)
            printf("# field %s differs\n", key);
        CHECK(same);
    }
    json_t *src = json_object_get(got, "source");
    json_object_foreach(json_object_get(want, "source"), key, value)
    {
        bool same = json_equal(json_object_get(src, key), value);
        if (!same)
            printf("# source.%s differs\n", key);
        CHECK(same);
    }
    CHECK(json_object_size(got) == json_object_size(want));
    CHECK(json_object_size(src) == 14);
    json_decref(got);
    json_decref(want);
}

static void test_debezium_ops(void)
{
    /* op letters */
    CHECK_STR(kafka_debezium_op(PGSPOUT_OP_INSERT), "c");
    CHECK_STR(kafka_debezium_op(PGSPOUT_OP_UPDATE), "u");
    CHECK_STR(kafka_debezium_op(PGSPOUT_OP_DELETE), "d");
    CHECK_STR(kafka_debezium_op(PGSPOUT_OP_READ), "r");
    CHECK_STR(kafka_debezium_op(PGSPOUT_OP_TRUNCATE), "t");
    CHECK(kafka_debezium_op(PGSPOUT_OP_SCHEMA) == NULL);

    /* A read event: op r, source.snapshot "true". */
    kafka_change c =
        row_change(PGSPOUT_OP_READ, "{\"id\":1}", "null", "{\"id\":1}");
    json_t *v = debezium(&c, 0);
    CHECK_STR(json_string_value(json_object_get(v, "op")), "r");
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(v, "source"), "snapshot")),
              "true");
    json_decref(v);
    /* A read of an on-demand backfill: Debezium's incremental snapshot. */
    c.incremental = true;
    v = debezium(&c, 0);
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(v, "source"), "snapshot")),
              "incremental");
    json_decref(v);

    /* A delete: before as sent, after null. */
    c = row_change(PGSPOUT_OP_DELETE, "{\"id\":1}", "{\"id\":1}", "null");
    v = debezium(&c, 0);
    CHECK_STR(json_string_value(json_object_get(v, "op")), "d");
    CHECK(json_is_null(json_object_get(v, "after")));
    CHECK(json_integer_value(
              json_object_get(json_object_get(v, "before"), "id")) == 1);
    json_decref(v);

    /* A truncate has no before/after, as Debezium's. */
    kafka_change t = {.op = PGSPOUT_OP_TRUNCATE,
                      .schema = "s",
                      .table = "t",
                      .pos = {10, 1},
                      .lsn = 9,
                      .xid = 7};
    v = debezium(&t, 0);
    CHECK_STR(json_string_value(json_object_get(v, "op")), "t");
    CHECK(!json_object_get(v, "before") && !json_object_get(v, "after"));
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(v, "source"), "table")),
              "t");
    json_decref(v);

    /* Schema events have no Debezium form. */
    strbuf sb = STRBUF_INIT;
    kafka_change s = {.op = PGSPOUT_OP_SCHEMA, .schema = "s", .table = "t"};
    CHECK(!kafka_debezium_value(&sb, &s, &doc_source, 0) && sb.len == 0);
    sbuf_free(&sb);
}

static void test_debezium_unchanged_toast(void)
{
    kafka_change c = row_change(PGSPOUT_OP_UPDATE, "{\"id\":1}", "null",
                                "{\"id\":1,\"n\":2}");
    c.unchanged_toast = span("[\"big\",\"Other \\\"col\\\"\"]");
    json_t *v = debezium(&c, 0);
    json_t *after = json_object_get(v, "after");
    CHECK(json_object_size(after) == 4);
    CHECK_STR(json_string_value(json_object_get(after, "big")),
              KAFKA_DEBEZIUM_UNAVAILABLE);
    CHECK_STR(json_string_value(json_object_get(after, "Other \"col\"")),
              KAFKA_DEBEZIUM_UNAVAILABLE);
    CHECK(json_integer_value(json_object_get(after, "n")) == 2);
    json_decref(v);
    /* Every column unchanged but the key, in an otherwise empty row. */
    c.after = span("{}");
    c.unchanged_toast = span("[\"big\"]");
    v = debezium(&c, 0);
    CHECK(json_object_size(json_object_get(v, "after")) == 1);
    json_decref(v);
    /* Names and values that need escaping stay valid JSON. */
    kafka_change odd = row_change(PGSPOUT_OP_INSERT, "{}", "null", "{}");
    odd.schema = "we\"ird";
    odd.table = "t\\n";
    v = debezium(&odd, 0);
    CHECK(v != NULL);
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(v, "source"), "schema")),
              "we\"ird");
    json_decref(v);
}

/* Which backfill a read event belongs to, from its whole JSON. */
static void test_read_is_incremental(void)
{
    CHECK(!kafka_read_is_incremental(
        span("{\"op\":\"read\",\"snapshot\":{\"id\":\"initial-0/16B3748\","
             "\"table_rows\":3,\"chunk\":1,\"last\":false}}")));
    CHECK(kafka_read_is_incremental(
        span("{\"op\":\"read\",\"after\":{\"id\":\"initial-x\"},"
             "\"snapshot\":{\"id\":\"0/16B3800-1\",\"chunk\":2}}")));
    /* An id shorter than the prefix, and events without a snapshot. */
    CHECK(kafka_read_is_incremental(span("{\"snapshot\":{\"id\":\"init\"}}")));
    CHECK(!kafka_read_is_incremental(span("{\"op\":\"insert\"}")));
    CHECK(!kafka_read_is_incremental(span("{\"snapshot\":{}}")));
}

int main(void)
{
    test_topic_templates();
    test_json_scanner();
    test_keys();
    test_previous_key();
    test_debezium_documented_create();
    test_debezium_ops();
    test_debezium_unchanged_toast();
    test_read_is_incremental();
    return check_summary();
}
