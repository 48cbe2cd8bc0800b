/* Whole change events to canonical JSON, plus the LSN and timestamp text
 * forms they use. Relations and events are built by hand, as the pgoutput
 * decoder would build them. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "event_internal.h"
#include "event_json.h"
#include "event_support.h"
#include "lsn.h"
#include "strbuf.h"

static bool is_valid_json(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    if (!v) {
        printf("# invalid JSON: %s (%s)\n", text, err.text);
        return false;
    }
    json_decref(v);
    return true;
}

static const column_spec orders_columns[] = {
    {"id", 20, "bigint", true},
    {"note", 25, "text", false},
};

#define HEADER(op)                                                             \
    "{\"op\":\"" op "\",\"schema\":\"public\",\"table\":\"orders\","           \
    "\"lsn\":\"0/16B3748\",\"commit_lsn\":\"0/16B37A0\",\"xid\":741,"          \
    "\"seq\":1,\"commit_time\":\"2026-11-21T23:55:22.123456Z\""

/* Schema events carry no seq: their place depends on the run, not on the
 * transaction. */
#define SCHEMA_HEADER                                                          \
    "{\"op\":\"schema\",\"schema\":\"public\",\"table\":\"orders\","           \
    "\"lsn\":\"0/16B3748\",\"commit_lsn\":\"0/16B37A0\",\"xid\":741,"          \
    "\"commit_time\":\"2026-11-21T23:55:22.123456Z\""

/* What event_json_stream hands on, and how. */
typedef struct stream_capture {
    strbuf text;
    size_t piece;
    int calls;
    int refuse_at;  /* the writer returns false on this call; 0 never */
    bool bad_piece; /* empty, or longer than the bound */
} stream_capture;

static bool capture_piece(void *ctx, const char *data, size_t len)
{
    stream_capture *c = ctx;
    c->calls++;
    if (len == 0 || len > c->piece)
        c->bad_piece = true;
    sbuf_append(&c->text, data, len);
    return c->calls != c->refuse_at;
}

/* Streamed in pieces of 1 byte, 7 bytes and the default size, the JSON of
 * a part is `expected`, byte for byte. */
static void check_streamed(const event *ev, pgspout_event_part part,
                           const char *expected)
{
    static const size_t pieces[] = {1, 7, JSON_OUT_PIECE};
    for (size_t i = 0; i < 3; i++) {
        stream_capture c = {STRBUF_INIT, pieces[i], 0, 0, false};
        CHECK(event_json_stream(ev, part, pieces[i], capture_piece, &c));
        CHECK_STR(c.text.data ? c.text.data : "", expected);
        CHECK(!c.bad_piece);
        sbuf_free(&c.text);
    }
}

/* Encoded whole, streamed before (so encoded piecewise) and after (so
 * from the cache) it was. */
static void check_part(event *ev, pgspout_event_part part, const char *expected)
{
    check_streamed(ev, part, expected);
    CHECK(ev->json[part] == NULL); /* streaming does not fill the cache */
    size_t len = 0;
    const char *json = event_json_get(ev, part, &len);
    CHECK_STR(json, expected);
    CHECK(json && len == strlen(json));
    CHECK(json && is_valid_json(json));
    check_streamed(ev, part, expected);
}

static void check_event(event *ev, const char *expected)
{
    check_part(ev, PGSPOUT_PART_EVENT, expected);
}

static void test_insert(relation *orders)
{
    event ev;
    init_event(&ev, PGSPOUT_OP_INSERT, orders);
    ev.new_tuple = make_tuple(2, (const char *[]){"1", "hello"});
    check_event(&ev, HEADER("insert") ",\"key\":{\"id\":1},\"before\":null,"
                                      "\"after\":{\"id\":1,\"note\":\"hello\"},"
                                      "\"unchanged_toast\":[]}");
    check_part(&ev, PGSPOUT_PART_KEY, "{\"id\":1}");
    check_part(&ev, PGSPOUT_PART_BEFORE, "null");
    check_part(&ev, PGSPOUT_PART_AFTER, "{\"id\":1,\"note\":\"hello\"}");
    check_part(&ev, PGSPOUT_PART_UNCHANGED_TOAST, "[]");
    check_part(&ev, PGSPOUT_PART_COLUMNS, "null");

    /* Encoded once, then served from the cache. */
    const char *first = event_json_get(&ev, PGSPOUT_PART_EVENT, NULL);
    CHECK(event_json_get(&ev, PGSPOUT_PART_EVENT, NULL) == first);
    size_t len = 99;
    CHECK(event_json_get(&ev, (pgspout_event_part)6, &len) == NULL && len == 0);
    event_clear(&ev);
    CHECK(ev.rel == NULL && ev.json[0] == NULL);
}

static void test_update_key_old_tuple(relation *orders)
{
    event ev;
    init_event(&ev, PGSPOUT_OP_UPDATE, orders);
    ev.old_kind = 'K';
    ev.old_tuple = make_tuple(2, (const char *[]){"1", SQL_NULL});
    ev.new_tuple = make_tuple(2, (const char *[]){"2", "moved"});
    check_event(&ev, HEADER("update") ",\"key\":{\"id\":2},"
                                      "\"before\":{\"id\":1},"
                                      "\"after\":{\"id\":2,\"note\":\"moved\"},"
                                      "\"unchanged_toast\":[]}");
    event_clear(&ev);
}

static void test_update_full_old_tuple(relation *orders)
{
    event ev;
    init_event(&ev, PGSPOUT_OP_UPDATE, orders);
    ev.old_kind = 'O';
    ev.old_tuple = make_tuple(2, (const char *[]){"1", SQL_NULL});
    ev.new_tuple = make_tuple(2, (const char *[]){"1", "now set"});
    check_event(&ev, HEADER("update") ",\"key\":{\"id\":1},"
                                      "\"before\":{\"id\":1,\"note\":null},"
                                      "\"after\":{\"id\":1,\"note\":\"now "
                                      "set\"},\"unchanged_toast\":[]}");
    check_part(&ev, PGSPOUT_PART_BEFORE, "{\"id\":1,\"note\":null}");
    event_clear(&ev);
}

static void test_delete(relation *orders)
{
    event ev;
    init_event(&ev, PGSPOUT_OP_DELETE, orders);
    ev.old_kind = 'K';
    ev.old_tuple = make_tuple(2, (const char *[]){"7", SQL_NULL});
    check_event(&ev, HEADER("delete") ",\"key\":{\"id\":7},"
                                      "\"before\":{\"id\":7},\"after\":null,"
                                      "\"unchanged_toast\":[]}");
    check_part(&ev, PGSPOUT_PART_AFTER, "null");
    event_clear(&ev);

    /* REPLICA IDENTITY NOTHING: no old tuple at all. */
    init_event(&ev, PGSPOUT_OP_DELETE, orders);
    check_event(&ev, HEADER("delete") ",\"key\":{},\"before\":null,"
                                      "\"after\":null,\"unchanged_toast\":[]}");
    event_clear(&ev);
}

static void test_unchanged_toast(relation *orders)
{
    event ev;
    init_event(&ev, PGSPOUT_OP_UPDATE, orders);
    ev.new_tuple = make_tuple(2, (const char *[]){"1", TOAST});
    check_event(&ev, HEADER("update") ",\"key\":{\"id\":1},\"before\":null,"
                                      "\"after\":{\"id\":1},"
                                      "\"unchanged_toast\":[\"note\"]}");
    check_part(&ev, PGSPOUT_PART_UNCHANGED_TOAST, "[\"note\"]");
    event_clear(&ev);

    /* A TOASTed key column: its value comes from the old tuple. */
    static const column_spec doc_columns[] = {
        {"path", 25, "text", true},
        {"rev", 23, "integer", false},
        {"body", 25, "text", false},
    };
    relation *docs = make_relation("public", "orders", doc_columns, 3);
    init_event(&ev, PGSPOUT_OP_UPDATE, docs);
    ev.old_kind = 'K';
    ev.old_tuple =
        make_tuple(3, (const char *[]){"/a/long/path", SQL_NULL, SQL_NULL});
    ev.new_tuple = make_tuple(3, (const char *[]){TOAST, "2", TOAST});
    check_event(&ev, HEADER("update") ",\"key\":{\"path\":\"/a/long/path\"},"
                                      "\"before\":{\"path\":\"/a/long/path\"},"
                                      "\"after\":{\"rev\":2},"
                                      "\"unchanged_toast\":[\"path\","
                                      "\"body\"]}");
    event_clear(&ev);
    relation_unref(docs);
}

static void test_value_kinds(void)
{
    static const column_spec columns[] = {
        {"id", 23, "integer", true},
        {"f", 701, "double precision", false},
        {"n", 1700, "numeric", false},
        {"b", 16, "boolean", false},
        {"j", 3802, "jsonb", false},
        {"a", 1007, "integer[]", false},
        {"t", 1009, "text[]", false},
        {"raw", 17, "bytea", false},
        {"we\"ird\\ name\n", 25, "text", false},
    };
    relation *rel = make_relation("public", "orders", columns, 9);
    event ev;
    init_event(&ev, PGSPOUT_OP_INSERT, rel);
    ev.new_tuple =
        make_tuple(9, (const char *[]){"3", "NaN", "12.50", "t",
                                       "{\"k\": [1, 2.0]}", "{{1,NULL},{3,4}}",
                                       "{a,\"b,c\",NULL}", "bin", "x"});
    /* A binary-format value prints as bytea's hex output. */
    ev.new_tuple.cols[7].kind = COLVAL_BINARY;
    ev.new_tuple.cols[7].data = "\x00\xff\x10";
    ev.new_tuple.cols[7].len = 3;
    check_part(&ev, PGSPOUT_PART_AFTER,
               "{\"id\":3,\"f\":\"NaN\",\"n\":\"12.50\",\"b\":true,"
               "\"j\":{\"k\":[1,2.0]},\"a\":[[1,null],[3,4]],"
               "\"t\":[\"a\",\"b,c\",null],\"raw\":\"\\\\x00ff10\","
               "\"we\\\"ird\\\\ name\\n\":\"x\"}");
    CHECK(is_valid_json(event_json_get(&ev, PGSPOUT_PART_EVENT, NULL)));
    event_clear(&ev);

    /* A tuple shorter than its relation: only what is there. */
    init_event(&ev, PGSPOUT_OP_INSERT, rel);
    ev.new_tuple = make_tuple(2, (const char *[]){"4", "-1.5e+300"});
    check_part(&ev, PGSPOUT_PART_AFTER, "{\"id\":4,\"f\":-1.5e+300}");
    check_part(&ev, PGSPOUT_PART_KEY, "{\"id\":4}");
    event_clear(&ev);
    relation_unref(rel);
}

/* JSON null in a json/jsonb column encodes as null, as SQL NULL does; the
 * event lists such columns per image, and only events that have one carry
 * json_null at all. */
static void test_json_null(void)
{
    static const column_spec columns[] = {
        {"id", 3802, "jsonb", true},
        {"j", 114, "json", false},
        {"b", 3802, "jsonb", false},
        {"t", 25, "text", false},
    };
    relation *rel = make_relation("public", "orders", columns, 4);
    event ev;
    init_event(&ev, PGSPOUT_OP_INSERT, rel);
    ev.new_tuple =
        make_tuple(4, (const char *[]){"1", " null\n", SQL_NULL, "null"});
    check_event(&ev, HEADER("insert") ",\"key\":{\"id\":1},\"before\":null,"
                                      "\"after\":{\"id\":1,\"j\":null,\"b\":"
                                      "null,\"t\":\"null\"},"
                                      "\"unchanged_toast\":[],\"json_null\":{"
                                      "\"before\":[],\"after\":[\"j\"]}}");
    event_clear(&ev);

    /* SQL NULL, or JSON that is not null: nothing to tell apart. */
    init_event(&ev, PGSPOUT_OP_INSERT, rel);
    ev.new_tuple =
        make_tuple(4, (const char *[]){"1", SQL_NULL, "[null]", "\"null\""});
    check_event(&ev, HEADER("insert") ",\"key\":{\"id\":1},\"before\":null,"
                                      "\"after\":{\"id\":1,\"j\":null,\"b\":"
                                      "[null],\"t\":\"\\\"null\\\"\"},"
                                      "\"unchanged_toast\":[]}");
    event_clear(&ev);

    /* A whole old row: both images; a key column in the key-only one. */
    init_event(&ev, PGSPOUT_OP_UPDATE, rel);
    ev.old_kind = 'O';
    ev.old_tuple = make_tuple(4, (const char *[]){"1", "null", "null", "x"});
    ev.new_tuple = make_tuple(4, (const char *[]){"1", SQL_NULL, "null", "x"});
    check_part(&ev, PGSPOUT_PART_AFTER,
               "{\"id\":1,\"j\":null,\"b\":null,\"t\":\"x\"}");
    const char *json = event_json_get(&ev, PGSPOUT_PART_EVENT, NULL);
    CHECK(strstr(json, ",\"json_null\":{\"before\":[\"j\",\"b\"],\"after\":["
                       "\"b\"]}}") != NULL);
    event_clear(&ev);

    init_event(&ev, PGSPOUT_OP_DELETE, rel);
    ev.old_kind = 'K';
    ev.old_tuple =
        make_tuple(4, (const char *[]){"null", SQL_NULL, SQL_NULL, SQL_NULL});
    check_event(&ev, HEADER("delete") ",\"key\":{\"id\":null},"
                                      "\"before\":{\"id\":null},\"after\":"
                                      "null,\"unchanged_toast\":[],"
                                      "\"json_null\":{\"before\":[\"id\"],"
                                      "\"after\":[]}}");
    event_clear(&ev);
    relation_unref(rel);
}

static void test_truncate(relation *orders)
{
    event ev;
    init_event(&ev, PGSPOUT_OP_TRUNCATE, orders);
    ev.cascade = true;
    check_event(&ev, HEADER("truncate") ",\"cascade\":true,"
                                        "\"restart_identity\":false}");
    check_part(&ev, PGSPOUT_PART_KEY, "null");
    check_part(&ev, PGSPOUT_PART_UNCHANGED_TOAST, "null");
    event_clear(&ev);
}

static void test_schema(void)
{
    static const column_spec columns[] = {
        {"id", 20, "bigint", true},
        {"label", 1043, "character varying(40)", false},
        {"mood", 16390, "mood", false},
    };
    relation *rel = make_relation("public", "orders", columns, 3);
    event ev;
    init_event(&ev, PGSPOUT_OP_SCHEMA, rel);
    check_event(&ev, SCHEMA_HEADER ",\"columns\":["
                                   "{\"name\":\"id\",\"type\":\"bigint\","
                                   "\"type_oid\":20,\"key\":true},"
                                   "{\"name\":\"label\",\"type\":"
                                   "\"character varying(40)\","
                                   "\"type_oid\":1043,\"key\":false},"
                                   "{\"name\":\"mood\",\"type\":\"mood\","
                                   "\"type_oid\":16390,\"key\":false}]}");
    check_part(&ev, PGSPOUT_PART_AFTER, "null");
    check_part(&ev, PGSPOUT_PART_COLUMNS,
               "[{\"name\":\"id\",\"type\":\"bigint\",\"type_oid\":20,"
               "\"key\":true},{\"name\":\"label\",\"type\":\"character "
               "varying(40)\",\"type_oid\":1043,\"key\":false},{\"name\":"
               "\"mood\",\"type\":\"mood\",\"type_oid\":16390,\"key\":false}]");
    event_clear(&ev);
    relation_unref(rel);
}

static void test_header_fields(relation *orders)
{
    event ev;
    init_event(&ev, PGSPOUT_OP_TRUNCATE, orders);
    ev.lsn = UINT64_C(0x16B374D848);
    ev.pos.commit_lsn = UINT64_MAX;
    ev.pos.seq = UINT64_MAX;
    ev.xid = UINT32_MAX;
    ev.commit_time_us = -1;
    /* jansson cannot hold a seq past INT64_MAX, so only compare text. */
    CHECK_STR(event_json_get(&ev, PGSPOUT_PART_EVENT, NULL),
              "{\"op\":\"truncate\",\"schema\":\"public\","
              "\"table\":\"orders\",\"lsn\":\"16/B374D848\","
              "\"commit_lsn\":\"FFFFFFFF/FFFFFFFF\",\"xid\":4294967295,"
              "\"seq\":18446744073709551615,"
              "\"commit_time\":\"1969-12-31T23:59:59.999999Z\","
              "\"cascade\":false,\"restart_identity\":false}");
    event_clear(&ev);
}

/* A relation prepared for JSON (names escaped once) encodes its events
 * exactly as one escaped per event, names that need escaping included. */
static void test_prepared_relation(void)
{
    static const column_spec cols[] = {
        {"i\"d", 23, "integer", true},
        {"n\tote", 25, "text", false},
    };
    relation *plain = make_relation("sch\"ema", "ta\\ble", cols, 2);
    relation *prepared = make_relation("sch\"ema", "ta\\ble", cols, 2);
    relation_prepare_json(prepared);
    CHECK(prepared->json_names != NULL);
    event a, b;
    init_event(&a, PGSPOUT_OP_READ, plain);
    init_event(&b, PGSPOUT_OP_READ, prepared);
    a.new_tuple = make_tuple(2, (const char *[]){"7", "x\"y"});
    b.new_tuple = make_tuple(2, (const char *[]){"7", "x\"y"});
    const char *want = event_json_get(&a, PGSPOUT_PART_EVENT, NULL);
    CHECK(want && strstr(want, "\"schema\":\"sch\\\"ema\","
                               "\"table\":\"ta\\\\ble\"") != NULL);
    CHECK(want && is_valid_json(want));
    check_event(&b, want);
    event_clear(&a);
    event_clear(&b);
    relation_unref(plain);
    relation_unref(prepared);
}

/* Read events carry their chunk's "snapshot" member and their xid, which
 * consecutive events share: each event gets its own, not the last one's. */
static void test_read_snapshot(relation *orders)
{
    static const struct {
        const char *id;
        int64_t table_rows;
        uint64_t chunk;
        bool last;
        uint32_t xid;
        const char *json;
    } cases[] = {
        {"bf1", 10, 1, false, 741,
         "\"snapshot\":{\"id\":\"bf1\",\"table_rows\":10,\"chunk\":1,"
         "\"last\":false}}"},
        {"bf1", 10, 1, false, 741,
         "\"snapshot\":{\"id\":\"bf1\",\"table_rows\":10,\"chunk\":1,"
         "\"last\":false}}"},
        {"bf1", 10, 2, true, 742,
         "\"snapshot\":{\"id\":\"bf1\",\"table_rows\":10,\"chunk\":2,"
         "\"last\":true}}"},
        {"b\"2", -1, 2, true, 7,
         "\"snapshot\":{\"id\":\"b\\\"2\",\"table_rows\":0,\"chunk\":2,"
         "\"last\":true}}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        event ev;
        init_event(&ev, PGSPOUT_OP_READ, orders);
        ev.new_tuple = make_tuple(2, (const char *[]){"1", "x"});
        snprintf(ev.snapshot.id, sizeof ev.snapshot.id, "%s", cases[i].id);
        ev.snapshot.table_rows = cases[i].table_rows;
        ev.snapshot.chunk = cases[i].chunk;
        ev.snapshot.last = cases[i].last;
        ev.xid = cases[i].xid;
        const char *json = event_json_get(&ev, PGSPOUT_PART_EVENT, NULL);
        size_t n = strlen(json), t = strlen(cases[i].json);
        CHECK(n > t && strcmp(json + n - t, cases[i].json) == 0);
        char xid[32];
        snprintf(xid, sizeof xid, "\"xid\":%u,", (unsigned)cases[i].xid);
        CHECK(strstr(json, xid) != NULL);
        CHECK(is_valid_json(json));
        check_streamed(&ev, PGSPOUT_PART_EVENT, json);
        event_clear(&ev);
    }
}

/* An event with huge values (text, bytea's hex form, binary) streams in
 * bounded pieces to the same JSON as encoded whole; a writer that refuses
 * a piece gets no further one; a part out of range streams nothing. */
static void test_stream_huge_event(void)
{
    static const column_spec columns[] = {
        {"id", 23, "integer", true},
        {"t", 25, "text", false},
        {"hex", 17, "bytea", false},
        {"bin", 17, "bytea", false},
    };
    const size_t n = (size_t)3 << 20;
    char *text = xmalloc(n + 1), *hex = xmalloc(n + 1), *bin = xmalloc(n);
    memset(text, 'q', n);
    text[n / 2] = '"';
    text[n] = '\0';
    hex[0] = '\\';
    hex[1] = 'x';
    memset(hex + 2, 'a', n - 2);
    hex[n] = '\0';
    for (size_t i = 0; i < n; i++)
        bin[i] = (char)i;
    relation *rel = make_relation("public", "orders", columns, 4);
    event ev;
    init_event(&ev, PGSPOUT_OP_INSERT, rel);
    ev.new_tuple = make_tuple(4, (const char *[]){"5", text, hex, "x"});
    ev.new_tuple.cols[3].kind = COLVAL_BINARY;
    ev.new_tuple.cols[3].data = bin;
    ev.new_tuple.cols[3].len = (uint32_t)n;

    stream_capture c = {STRBUF_INIT, JSON_OUT_PIECE, 0, 0, false};
    CHECK(event_json_stream(&ev, PGSPOUT_PART_EVENT, 0, capture_piece, &c));
    CHECK(!c.bad_piece && c.calls > 3 * (int)(n / JSON_OUT_PIECE));
    CHECK(ev.json[PGSPOUT_PART_EVENT] == NULL);
    size_t len = 0;
    const char *whole = event_json_get(&ev, PGSPOUT_PART_EVENT, &len);
    CHECK(c.text.len == len && memcmp(c.text.data, whole, len) == 0);
    CHECK(is_valid_json(whole));
    sbuf_free(&c.text);

    stream_capture refusing = {STRBUF_INIT, JSON_OUT_PIECE, 0, 3, false};
    CHECK(!event_json_stream(&ev, PGSPOUT_PART_AFTER, 0, capture_piece,
                             &refusing));
    CHECK(refusing.calls == 3);
    sbuf_free(&refusing.text);

    stream_capture none = {STRBUF_INIT, JSON_OUT_PIECE, 0, 0, false};
    CHECK(!event_json_stream(&ev, (pgspout_event_part)6, 0, capture_piece,
                             &none));
    CHECK(none.calls == 0);

    event_clear(&ev);
    relation_unref(rel);
    free(text);
    free(hex);
    free(bin);
}

static void test_lsn(void)
{
    uint64_t lsn = 0;
    char buf[LSN_FORMAT_BUFSIZE];

    CHECK(lsn_parse("0/16B3748", &lsn) && lsn == 0x16B3748);
    CHECK(lsn_parse("16/B374D848", &lsn) && lsn == UINT64_C(0x16B374D848));
    CHECK(lsn_parse("ffffffff/ffffffff", &lsn) && lsn == UINT64_MAX);
    CHECK(lsn_parse("0/0", &lsn) && lsn == 0);
    CHECK(lsn_parse("00000001/00000000", &lsn) && lsn == UINT64_C(0x100000000));

    static const char *const garbage[] = {
        "",    "/",     "0/",    "/0",   "0/0 ", " 0/0", "123456789/0",
        "0/G", "0x1/0", "0/0/0", "-1/0", "0",    "0/+1", "0/123456789"};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        lsn = 42;
        CHECK(!lsn_parse(garbage[i], &lsn) && lsn == 42);
    }

    CHECK_STR(lsn_format(0x16B3748, buf, sizeof buf), "0/16B3748");
    CHECK_STR(lsn_format(0, buf, sizeof buf), "0/0");
    CHECK_STR(lsn_format(UINT64_C(0x16B374D848), buf, sizeof buf),
              "16/B374D848");
    CHECK_STR(lsn_format(UINT64_MAX, buf, sizeof buf), "FFFFFFFF/FFFFFFFF");
    CHECK_STR(lsn_format(UINT64_C(0x100000000), buf, sizeof buf), "1/0");
    char small[4];
    CHECK_STR(lsn_format(0x16B3748, small, sizeof small), "0/1");

    static const uint64_t samples[] = {
        0,         1, 0xFFFFFFFF, 0x100000000, UINT64_C(0xDEADBEEF00C0FFEE),
        UINT64_MAX};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        lsn = 0;
        CHECK(lsn_parse(lsn_format(samples[i], buf, sizeof buf), &lsn) &&
              lsn == samples[i]);
    }
}

static const char *format_time(int64_t us)
{
    static char buf[TIMESTAMP_FORMAT_BUFSIZE];
    timestamp_format_utc(us, buf, sizeof buf);
    return buf;
}

static void test_timestamps(void)
{
    CHECK_STR(format_time(0), "1970-01-01T00:00:00.000000Z");
    CHECK_STR(format_time(COMMIT_TIME_US), "2026-11-21T23:55:22.123456Z");
    CHECK_STR(format_time(-1), "1969-12-31T23:59:59.999999Z");
    CHECK_STR(format_time(-1000000), "1969-12-31T23:59:59.000000Z");
    CHECK_STR(format_time(INT64_C(951825600000001)),
              "2000-02-29T12:00:00.000001Z");
    CHECK_STR(format_time(INT64_C(-2203891200000000)),
              "1900-03-01T00:00:00.000000Z");
    CHECK_STR(format_time(INT64_C(-11670912000000001)),
              "1600-02-29T23:59:59.999999Z");
    CHECK_STR(format_time(INT64_C(-62135596800000000)),
              "0001-01-01T00:00:00.000000Z");
    CHECK_STR(format_time(INT64_C(-62135596800000001)),
              "0000-12-31T23:59:59.999999Z");
    CHECK_STR(format_time(INT64_C(-62167219200000001)),
              "-0001-12-31T23:59:59.999999Z");
    CHECK_STR(format_time(INT64_C(253402300799999999)),
              "9999-12-31T23:59:59.999999Z");
    /* The extremes must not overflow anywhere. */
    const char *lo = format_time(INT64_MIN);
    CHECK(lo[0] == '-' && lo[strlen(lo) - 1] == 'Z');
    const char *hi = format_time(INT64_MAX);
    CHECK(strlen(hi) > 20 && hi[strlen(hi) - 1] == 'Z');
}

int main(void)
{
    relation *orders = make_relation("public", "orders", orders_columns, 2);

    test_insert(orders);
    test_update_key_old_tuple(orders);
    test_update_full_old_tuple(orders);
    test_delete(orders);
    test_unchanged_toast(orders);
    test_value_kinds();
    test_json_null();
    test_truncate(orders);
    test_schema();
    test_header_fields(orders);
    test_prepared_relation();
    test_read_snapshot(orders);
    test_stream_huge_event();
    CHECK(orders->refcount == 1);
    relation_unref(orders);

    test_lsn();
    test_timestamps();
    return check_summary();
}
