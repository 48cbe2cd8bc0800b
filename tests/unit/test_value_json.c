/* Column values to JSON: every value kind, array_out syntax, string escaping
 * and the fallbacks that keep the output valid JSON. */
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "typeinfo.h"
#include "value_json.h"

static strbuf out = STRBUF_INIT;
static int invalid_json_count;

/* Every encoding must parse as JSON; a failure is counted and reported at
 * the end so a single CHECK covers all of them. */
static void require_valid_json(void)
{
    json_error_t err;
    json_t *v =
        json_loadb(out.data, out.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!v) {
        invalid_json_count++;
        printf("# invalid JSON: %s (%s)\n", out.data, err.text);
        return;
    }
    json_decref(v);
}

static value_type kind(value_kind k)
{
    value_type t = {k, VK_TEXT, ',', 0, {0}, false};
    return t;
}

/* Collects what a stream hands on, checking the piece bound. */
typedef struct collector {
    strbuf text;
    size_t piece;
    bool bad_piece; /* empty, or longer than the bound */
} collector;

static bool collect(void *ctx, const char *data, size_t len)
{
    collector *c = ctx;
    if (len == 0 || len > c->piece)
        c->bad_piece = true;
    sbuf_append(&c->text, data, len);
    return true;
}

static int stream_mismatch_count;

/* Streamed in pieces of any size, the JSON must be exactly what `out` got
 * as a whole: pieces from 1 byte (a flush after every write, and every
 * array or json value long enough to take the dry-run path) up. */
static void require_same_streamed(value_type t, const char *text, size_t len,
                                  bool plain_string)
{
    static const size_t pieces[] = {1, 2, 3, 5, 8, 13, 64, 1000};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        strbuf scratch = STRBUF_INIT;
        collector c = {STRBUF_INIT, pieces[i], false};
        json_out o = json_out_stream(&scratch, pieces[i], collect, &c);
        if (plain_string)
            json_write_string(&o, text, len);
        else
            value_json_write(&o, t, text, len);
        bool ok = json_out_finish(&o);
        if (!ok || c.bad_piece || c.text.len != out.len ||
            (out.len && memcmp(c.text.data, out.data, out.len) != 0)) {
            stream_mismatch_count++;
            printf("# streamed in %zu-byte pieces: %.*s\n", pieces[i],
                   (int)c.text.len, c.text.data ? c.text.data : "");
        }
        sbuf_free(&scratch);
        sbuf_free(&c.text);
    }
}

static const char *encode_len(value_type t, const char *text, size_t len)
{
    sbuf_reset(&out);
    value_json_append(&out, t, text, len);
    require_valid_json();
    require_same_streamed(t, text, len, false);
    return out.data;
}

static const char *encode(value_type t, const char *text)
{
    return encode_len(t, text, strlen(text));
}

static const char *string_of(const char *text, size_t len)
{
    sbuf_reset(&out);
    json_append_string(&out, text, len);
    require_valid_json();
    require_same_streamed(kind(VK_TEXT), text, len, true);
    return out.data;
}

static value_type array_of(value_kind elem, char delim)
{
    return value_type_array_of(kind(elem), delim);
}

static value_type builtin(uint32_t oid, bool *known)
{
    return value_type_for_builtin(oid, known);
}

static void test_typeinfo(void)
{
    bool known = false;
    value_type t;

    t = builtin(21, &known);
    CHECK(known && t.kind == VK_INT);
    t = builtin(23, &known);
    CHECK(known && t.kind == VK_INT);
    t = builtin(20, &known);
    CHECK(known && t.kind == VK_INT);
    t = builtin(26, &known);
    CHECK(known && t.kind == VK_INT);
    t = builtin(700, &known);
    CHECK(known && t.kind == VK_FLOAT);
    t = builtin(701, &known);
    CHECK(known && t.kind == VK_FLOAT);
    t = builtin(1700, &known);
    CHECK(known && t.kind == VK_NUMERIC);
    t = builtin(16, &known);
    CHECK(known && t.kind == VK_BOOL);
    t = builtin(114, &known);
    CHECK(known && t.kind == VK_JSON);
    t = builtin(3802, &known);
    CHECK(known && t.kind == VK_JSON);

    static const struct {
        uint32_t oid;
        value_kind elem;
    } arrays[] = {
        {1005, VK_INT},   {1007, VK_INT},   {1016, VK_INT},     {1028, VK_INT},
        {1021, VK_FLOAT}, {1022, VK_FLOAT}, {1231, VK_NUMERIC}, {1000, VK_BOOL},
        {199, VK_JSON},   {3807, VK_JSON},  {1009, VK_TEXT},    {1015, VK_TEXT},
        {1014, VK_TEXT},  {1003, VK_TEXT},  {1182, VK_TEXT},    {1115, VK_TEXT},
        {1185, VK_TEXT},  {2951, VK_TEXT},  {1001, VK_TEXT},    {1187, VK_TEXT},
        {1183, VK_TEXT},  {1041, VK_TEXT}};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        known = false;
        t = builtin(arrays[i].oid, &known);
        CHECK(known && t.kind == VK_ARRAY && t.elem_kind == arrays[i].elem &&
              t.delim == ',');
    }
    t = builtin(1020, &known); /* box[] */
    CHECK(known && t.kind == VK_ARRAY && t.delim == ';');

    static const uint32_t text_scalars[] = {25,   1043, 1042, 19,   1082, 1114,
                                            1184, 2950, 17,   1186, 869,  3220};
    for (size_t i = 0; i < sizeof text_scalars / sizeof text_scalars[0]; i++) {
        known = false;
        t = builtin(text_scalars[i], &known);
        CHECK(known && t.kind == VK_TEXT);
    }

    known = true;
    t = builtin(16385, &known); /* a user type */
    CHECK(!known && t.kind == VK_TEXT);
}

static void test_scalars(void)
{
    CHECK_STR(encode(kind(VK_INT), "42"), "42");
    CHECK_STR(encode(kind(VK_INT), "-7"), "-7");
    CHECK_STR(encode(kind(VK_INT), "0"), "0");
    CHECK_STR(encode(kind(VK_INT), "9223372036854775807"),
              "9223372036854775807");
    CHECK_STR(encode(kind(VK_INT), "-9223372036854775808"),
              "-9223372036854775808");
    CHECK_STR(encode(kind(VK_INT), "4294967295"), "4294967295");
    /* Not what an integer output function prints: kept as a string. */
    CHECK_STR(encode(kind(VK_INT), "12abc"), "\"12abc\"");
    CHECK_STR(encode(kind(VK_INT), "007"), "\"007\"");
    CHECK_STR(encode(kind(VK_INT), ""), "\"\"");

    CHECK_STR(encode(kind(VK_FLOAT), "1.5"), "1.5");
    CHECK_STR(encode(kind(VK_FLOAT), "1e+20"), "1e+20");
    CHECK_STR(encode(kind(VK_FLOAT), "1.2345678901234567e-05"),
              "1.2345678901234567e-05");
    CHECK_STR(encode(kind(VK_FLOAT), "-0"), "-0");
    CHECK_STR(encode(kind(VK_FLOAT), "NaN"), "\"NaN\"");
    CHECK_STR(encode(kind(VK_FLOAT), "Infinity"), "\"Infinity\"");
    CHECK_STR(encode(kind(VK_FLOAT), "-Infinity"), "\"-Infinity\"");
    CHECK_STR(encode(kind(VK_FLOAT), ".5"), "\".5\"");

    CHECK_STR(encode(kind(VK_NUMERIC), "3.14159265358979323846264338"),
              "\"3.14159265358979323846264338\"");
    CHECK_STR(encode(kind(VK_NUMERIC), "NaN"), "\"NaN\"");
    CHECK_STR(encode(kind(VK_NUMERIC), "-1.00"), "\"-1.00\"");

    CHECK_STR(encode(kind(VK_BOOL), "t"), "true");
    CHECK_STR(encode(kind(VK_BOOL), "f"), "false");
    CHECK_STR(encode(kind(VK_BOOL), "maybe"), "\"maybe\"");

    CHECK_STR(encode(kind(VK_TEXT), "hello"), "\"hello\"");
    CHECK_STR(encode(kind(VK_TEXT), "2026-11-21 23:55:22.123456+00"),
              "\"2026-11-21 23:55:22.123456+00\"");
}

static void test_json_values(void)
{
    value_type json = kind(VK_JSON);

    CHECK_STR(encode(json, "{\"a\": 1, \"b\": [1, 2, 3]}"),
              "{\"a\":1,\"b\":[1,2,3]}");
    CHECK_STR(encode(json, "{\n  \"a b\" : \"x  y\",\n\t\"c\":null\n}\n"),
              "{\"a b\":\"x  y\",\"c\":null}");
    /* Numbers stay byte-exact, beyond what a double can hold (jansson,
     * the validity check here, cannot take integers past int64). */
    CHECK_STR(encode(json, "[1234567890123456789012.25, 1.50, 1E+2, -0.0]"),
              "[1234567890123456789012.25,1.50,1E+2,-0.0]");
    CHECK_STR(encode(json, "{\"n\": 9223372036854775807}"),
              "{\"n\":9223372036854775807}");
    CHECK_STR(encode(json, "{\"q\": \"say \\\"hi\\\", ok\\\\ \"}"),
              "{\"q\":\"say \\\"hi\\\", ok\\\\ \"}");
    CHECK_STR(encode(json, "\"\\u00e9t\\u00e9\\n\""), "\"\\u00e9t\\u00e9\\n\"");
    CHECK_STR(encode(json, "\"caf\xc3\xa9\""), "\"caf\xc3\xa9\"");
    CHECK_STR(encode(json, " 42 "), "42");
    CHECK_STR(encode(json, "true"), "true");
    CHECK_STR(encode(json, "null"), "null");
    CHECK_STR(encode(json, "{}"), "{}");
    CHECK_STR(encode(json, "[ ]"), "[]");
    CHECK_STR(encode(json, "[[[]], {\"x\": {}}]"), "[[[]],{\"x\":{}}]");

    /* JSON null encodes as SQL NULL does; value_json_is_null says which
     * non-NULL values do. */
    CHECK(value_json_is_null(json, "null", 4));
    CHECK(value_json_is_null(json, " \n null\t\r", 9));
    CHECK(!value_json_is_null(json, "\"null\"", 6));
    CHECK(!value_json_is_null(json, "[null]", 6));
    CHECK(!value_json_is_null(json, "nul", 3));
    CHECK(!value_json_is_null(json, "", 0));
    CHECK(!value_json_is_null(kind(VK_TEXT), "null", 4));
    CHECK(!value_json_is_null(array_of(VK_JSON, ','), "null", 4));

    /* Not JSON: a string of the text instead of broken output. */
    CHECK_STR(encode(json, "{\"a\": }"), "\"{\\\"a\\\": }\"");
    CHECK_STR(encode(json, "[1,]"), "\"[1,]\"");
    CHECK_STR(encode(json, "[1] 2"), "\"[1] 2\"");
    CHECK_STR(encode(json, "{\"a\" 1}"), "\"{\\\"a\\\" 1}\"");
    CHECK_STR(encode(json, "[1}"), "\"[1}\"");
    CHECK_STR(encode(json, "{1:2}"), "\"{1:2}\"");
    CHECK_STR(encode(json, "\"tab\there\""), "\"\\\"tab\\there\\\"\"");
    CHECK_STR(encode(json, "[01]"), "\"[01]\"");
    CHECK_STR(encode(json, "nul"), "\"nul\"");
    CHECK_STR(encode(json, ""), "\"\"");
    CHECK_STR(encode(json, "[[1]"), "\"[[1]\"");
    /* Strings are checked a word at a time: what breaks one is found
     * wherever it sits (malformed UTF-8, a bad or cut escape, no end). */
    CHECK_STR(encode(json, "[\"0123456789abcdef\\u00e9 long \\\" enough\"]"),
              "[\"0123456789abcdef\\u00e9 long \\\" enough\"]");
    CHECK_STR(encode(json, "[\"0123456789\xc3(\"]"),
              "\"[\\\"0123456789\xef\xbf\xbd(\\\"]\"");
    CHECK_STR(encode(json, "[\"0123456789\\x\"]"),
              "\"[\\\"0123456789\\\\x\\\"]\"");
    CHECK_STR(encode(json, "\"abc\\u00e\""), "\"\\\"abc\\\\u00e\\\"\"");
    CHECK_STR(encode(json, "\"0123456789abcdef"), "\"\\\"0123456789abcdef\"");

    /* Deep nesting works up to a limit far past real documents; beyond it
     * the value stays a string instead of overflowing anything. */
    enum { DEEP = 40000 };
    static char deep[2 * DEEP + 1];
    for (int levels = 1000; levels <= DEEP; levels += DEEP - 1000) {
        memset(deep, '[', (size_t)levels);
        memset(deep + levels, ']', (size_t)levels);
        deep[2 * levels] = '\0';
        const char *got = encode(json, deep);
        CHECK(got[0] == (levels == 1000 ? '[' : '"'));
        CHECK(strlen(got) == (levels == 1000 ? 2000u : 2u * DEEP + 2));
    }
}

/* jsonb's text as jsonb_out prints it is compacted without a grammar
 * check, to exactly what the checked path makes of it. */
static void test_jsonb_values(void)
{
    value_type json = kind(VK_JSON), jsonb = json;
    jsonb.jsonb = true;
    bool known;
    CHECK(builtin(3802, &known).jsonb && !builtin(114, &known).jsonb);
    static const char *const texts[] = {
        "{\"a\": 1, \"b\": [1, 2.5e10, -3, true, false, null]}",
        "{\"k ey\": \"va\\\"l, ue: x \", \"x\\\\\": \"\\\\\"}",
        "{\"n\": 1, \"tag\": \"c4ca4238a0b923820dcc509a6f75849b\"}",
        "[{\"\": {}}, [], [[]], \"\\u00e9 \\n\"]",
        "\"a string, with: spaces\"",
        "1.50",
        "null",
        "{}",
        "[]",
        "\"\\\\\"",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char *checked = strdup(encode(json, texts[i]));
        CHECK_STR(encode(jsonb, texts[i]), checked);
        free(checked);
    }
    CHECK_STR(encode(jsonb, "{\"a\": [1, {\"b\": \"c, d\"}]}"),
              "{\"a\":[1,{\"b\":\"c, d\"}]}");
    /* Too long to be sure it nests no deeper than the checked path takes:
     * the checked path, which keeps a too deep value a string. */
    enum { DEEP = 40000 };
    static char deep[2 * DEEP + 1];
    memset(deep, '[', DEEP);
    memset(deep + DEEP, ']', DEEP);
    CHECK(encode(jsonb, deep)[0] == '"');
}

static void test_arrays(void)
{
    CHECK_STR(encode(array_of(VK_INT, ','), "{1,2,3}"), "[1,2,3]");
    CHECK_STR(encode(array_of(VK_INT, ','), "{}"), "[]");
    CHECK_STR(encode(array_of(VK_INT, ','), "{{1,2},{3,4}}"), "[[1,2],[3,4]]");
    CHECK_STR(encode(array_of(VK_INT, ','), "{{{1},{NULL}},{{3},{4}}}"),
              "[[[1],[null]],[[3],[4]]]");
    CHECK_STR(encode(array_of(VK_INT, ','), "{1,NULL,3}"), "[1,null,3]");
    CHECK_STR(encode(array_of(VK_INT, ','), "[0:1]={7,8}"), "[7,8]");
    CHECK_STR(encode(array_of(VK_INT, ','), "[0:1][2:3]={{1,2},{3,4}}"),
              "[[1,2],[3,4]]");
    CHECK_STR(encode(array_of(VK_INT, ','), "{-9223372036854775808,"
                                            "9223372036854775807}"),
              "[-9223372036854775808,9223372036854775807]");

    CHECK_STR(encode(array_of(VK_FLOAT, ','), "{1.5,NaN,-Infinity,1e+20}"),
              "[1.5,\"NaN\",\"-Infinity\",1e+20]");
    CHECK_STR(encode(array_of(VK_NUMERIC, ','), "{1.10,NaN}"),
              "[\"1.10\",\"NaN\"]");
    CHECK_STR(encode(array_of(VK_BOOL, ','), "{t,f,NULL}"),
              "[true,false,null]");

    value_type text = array_of(VK_TEXT, ',');
    CHECK_STR(encode(text, "{a,\"b c\",\"NULL\",NULL,\"\"}"),
              "[\"a\",\"b c\",\"NULL\",null,\"\"]");
    CHECK_STR(encode(text, "{\"null\",NuLl}"), "[\"null\",null]");
    CHECK_STR(encode(text, "{\"a,b\",\"{x}\",\"q\\\"uote\",\"back\\\\slash\"}"),
              "[\"a,b\",\"{x}\",\"q\\\"uote\",\"back\\\\slash\"]");
    CHECK_STR(encode(text, "{{a,b},{\"c d\",NULL}}"),
              "[[\"a\",\"b\"],[\"c d\",null]]");
    CHECK_STR(encode(text, "{\"line\nbreak\"}"), "[\"line\\nbreak\"]");
    CHECK_STR(encode(text, "{caf\xc3\xa9}"), "[\"caf\xc3\xa9\"]");

    /* box[] separates elements with ';' because a box contains commas. */
    CHECK_STR(encode(array_of(VK_TEXT, ';'), "{(1,1),(0,0);(3,3),(2,2)}"),
              "[\"(1,1),(0,0)\",\"(3,3),(2,2)\"]");

    /* json[]: elements arrive quoted and backslash-escaped. */
    CHECK_STR(encode(array_of(VK_JSON, ','),
                     "{\"{\\\"a\\\": \\\"x\\\\\\\"y\\\"}\",\"[1, 2]\",3,NULL}"),
              "[{\"a\":\"x\\\"y\"},[1,2],3,null]");

    /* An element longer than the on-stack unescape buffer. */
    char big_in[1200], big_out[1200];
    size_t n = 0, m = 0;
    big_in[n++] = '{';
    big_in[n++] = '"';
    big_out[m++] = '[';
    big_out[m++] = '"';
    for (int i = 0; i < 1000; i++) {
        big_in[n++] = (char)('a' + i % 26);
        big_out[m++] = (char)('a' + i % 26);
    }
    memcpy(big_in + n, " \"}", 4);
    memcpy(big_out + m, " \"]", 4);
    CHECK_STR(encode(text, big_in), big_out);

    /* Malformed array text: the whole value as a string. */
    CHECK_STR(encode(text, "{a,b"), "\"{a,b\"");
    CHECK_STR(encode(text, "{a,,b}"), "\"{a,,b}\"");
    CHECK_STR(encode(text, "{a,}"), "\"{a,}\"");
    CHECK_STR(encode(text, "{\"a}"), "\"{\\\"a}\"");
    CHECK_STR(encode(text, "{a}}"), "\"{a}}\"");
    CHECK_STR(encode(text, "plain"), "\"plain\"");
    CHECK_STR(encode(text, "[1:2]{a}"), "\"[1:2]{a}\"");
    CHECK_STR(encode(text, ""), "\"\"");
    CHECK_STR(encode(array_of(VK_INT, ','), "{1,x}"), "[1,\"x\"]");
}

/* An array of a domain over an array type: PostgreSQL prints its elements
 * as quoted array texts, {"{1,2}","{}",NULL}; each becomes a JSON array of
 * the innermost type, however deep, and alongside every dimension. The
 * inputs are a PostgreSQL 15 server's text output. */
static void test_arrays_of_arrays(void)
{
    value_type intlist = array_of(VK_INT, ',');
    value_type intlists = value_type_array_of(intlist, ',');

    CHECK(intlists.kind == VK_ARRAY && intlists.elem_kind == VK_INT &&
          intlists.nested == 1 && intlists.nested_delims[0] == ',');
    value_type elem = value_type_element(intlists);
    CHECK(elem.kind == VK_ARRAY && elem.elem_kind == VK_INT &&
          elem.nested == 0 && elem.delim == ',');
    CHECK(value_type_element(elem).kind == VK_INT);

    CHECK_STR(encode(intlists, "{\"{1,2}\",\"{}\",NULL}"), "[[1,2],[],null]");
    CHECK_STR(encode(intlists, "{}"), "[]");
    /* Multi-dimensional outside, inside, and a lower bound inside. */
    CHECK_STR(encode(intlists, "{{\"{1}\",\"{2,3}\"},{NULL,\"{}\"}}"),
              "[[[1],[2,3]],[null,[]]]");
    CHECK_STR(encode(intlists, "{{\"{{1,2},{3,4}}\",\"[0:1]={5,6}\"}}"),
              "[[[[1,2],[3,4]],[5,6]]]");
    /* Elements of the inner arrays keep their own quoting and escapes. */
    value_type textlists = value_type_array_of(array_of(VK_TEXT, ','), ',');
    CHECK_STR(encode(textlists, "{\"{\\\"a b\\\",\\\"q\\\\\\\"uo\\\\\\\\te\\\","
                                "NULL,\\\"NULL\\\",\\\"\\\"}\",\"{}\"}"),
              "[[\"a b\",\"q\\\"uo\\\\te\",null,\"NULL\",\"\"],[]]");
    /* Each level has its own delimiter: box[] inside an array of commas. */
    value_type boxlists = value_type_array_of(array_of(VK_TEXT, ';'), ',');
    CHECK_STR(encode(boxlists, "{\"{(1,1),(0,0);(3,3),(2,2)}\",\"{}\"}"),
              "[[\"(1,1),(0,0)\",\"(3,3),(2,2)\"],[]]");
    /* json inside arrays inside arrays. */
    value_type jsonlists = value_type_array_of(array_of(VK_JSON, ','), ',');
    CHECK_STR(
        encode(jsonlists,
               "{\"{\\\"{\\\\\\\"a\\\\\\\": 1}\\\",\\\"null\\\",NULL}\"}"),
        "[[{\"a\":1},null,null]]");
    /* A malformed inner array becomes a string; its siblings do not. */
    CHECK_STR(encode(intlists, "{\"{1,2\",\"{3}\"}"), "[\"{1,2\",[3]]");
    CHECK_STR(encode(intlists, "{plain}"), "[\"plain\"]");

    /* Three levels: an array of a domain over intlist[]. */
    value_type three = value_type_array_of(intlists, ',');
    CHECK(three.nested == 2 && three.elem_kind == VK_INT);
    CHECK_STR(encode(three, "{\"{\\\"{1,2}\\\",NULL}\",\"{}\"}"),
              "[[[1,2],null],[]]");

    /* Four levels fit; with five, one past VALUE_TYPE_MAX_NESTED, the
     * innermost arrays stay strings of their text. */
    value_type deep = intlist;
    for (int i = 0; i < VALUE_TYPE_MAX_NESTED; i++)
        deep = value_type_array_of(deep, ',');
    CHECK(deep.nested == VALUE_TYPE_MAX_NESTED && deep.elem_kind == VK_INT);
    value_type too_deep = value_type_array_of(deep, ';');
    CHECK(too_deep.nested == VALUE_TYPE_MAX_NESTED &&
          too_deep.elem_kind == VK_TEXT && too_deep.delim == ';' &&
          too_deep.nested_delims[0] == ',');
    CHECK_STR(encode(deep, "{\"{\\\"{\\\\\\\"{1}\\\\\\\"}\\\"}\"}"),
              "[[[[1]]]]");
    CHECK_STR(encode(too_deep, "{\"{\\\"{\\\\\\\"{\\\\\\\\\\\\\\\"{1}\\\\\\\\"
                               "\\\\\\\"}\\\\\\\"}\\\"}\"}"),
              "[[[[\"{1}\"]]]]");
}

/* Long plain text is scanned 8 bytes at a time: a byte needing care is
 * found at every offset, in every position of a word. */
static void test_string_word_scan(void)
{
    static const struct {
        char byte;
        const char *escaped;
    } specials[] = {{'"', "\\\""},
                    {'\\', "\\\\"},
                    {'\n', "\\n"},
                    {'\x01', "\\u0001"},
                    {'\x7f', "\x7f"}};
    bool all_ok = true;
    for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
        for (size_t at = 0; at < 40; at++) {
            char text[41], expected[64];
            memset(text, 'a', 40);
            text[at] = specials[k].byte;
            text[40] = '\0';
            snprintf(expected, sizeof expected, "\"%.*s%s%.*s\"", (int)at, text,
                     specials[k].escaped, (int)(39 - at), text + at + 1);
            strbuf out = STRBUF_INIT;
            json_append_string(&out, text, 40);
            if (strcmp(out.data, expected) != 0) {
                printf("# offset %zu: %s\n", at, out.data);
                all_ok = false;
            }
            sbuf_free(&out);
        }
    }
    CHECK(all_ok);
    /* A multi-byte character and an invalid byte across a word boundary. */
    strbuf out = STRBUF_INIT;
    json_append_string(&out,
                       "aaaaaa\xc3\xa9"
                       "bbbbbbb\xff"
                       "cc",
                       18);
    CHECK_STR(out.data, "\"aaaaaa\xc3\xa9"
                        "bbbbbbb\xef\xbf\xbd"
                        "cc\"");
    sbuf_free(&out);
}

static void test_strings(void)
{
    CHECK_STR(string_of("", 0), "\"\"");
    CHECK_STR(string_of("a\"b\\c", 5), "\"a\\\"b\\\\c\"");
    CHECK_STR(string_of("\n\t\r\b\f", 5), "\"\\n\\t\\r\\b\\f\"");
    CHECK_STR(string_of("\x01\x1f\x7f", 3), "\"\\u0001\\u001f\x7f\"");
    CHECK_STR(string_of("nul\0byte", 8), "\"nul\\u0000byte\"");
    CHECK_STR(string_of("/slash", 6), "\"/slash\"");

    /* Valid UTF-8 of every length passes through unchanged. */
    const char *utf8 = "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf";
    strbuf want = STRBUF_INIT;
    sbuf_appendf(&want, "\"%s\"", utf8);
    CHECK_STR(string_of(utf8, strlen(utf8)), want.data);
    sbuf_free(&want);

    /* Each byte outside valid UTF-8 becomes U+FFFD. */
    CHECK_STR(string_of("a\xff"
                        "b",
                        3),
              "\"a\xef\xbf\xbd"
              "b\"");
    CHECK_STR(string_of("\x80", 1), "\"\xef\xbf\xbd\"");
    CHECK_STR(string_of("\xc3", 1), "\"\xef\xbf\xbd\""); /* truncated */
    CHECK_STR(string_of("\xc0\xaf", 2),                  /* overlong */
              "\"\xef\xbf\xbd\xef\xbf\xbd\"");
    CHECK_STR(string_of("\xed\xa0\x80", 3), /* surrogate */
              "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    CHECK_STR(string_of("\xf4\x90\x80\x80", 4), /* > U+10FFFF */
              "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    CHECK_STR(string_of("\xe2\x82"
                        "x",
                        3),
              "\"\xef\xbf\xbd\xef\xbf\xbdx\"");

    /* VK_TEXT goes through the same escaping. */
    CHECK_STR(encode(kind(VK_TEXT), "say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
    CHECK_STR(encode_len(kind(VK_TEXT), "tab\there", 8), "\"tab\\there\"");

    /* Appending keeps what is already in the buffer. */
    strbuf sb = STRBUF_INIT;
    sbuf_append_str(&sb, "[");
    value_json_append(&sb, kind(VK_INT), "1", 1);
    sbuf_append_str(&sb, ",");
    value_json_append(&sb, array_of(VK_TEXT, ','), "{x,\"y\"}", 7);
    sbuf_append_str(&sb, "]");
    CHECK_STR(sb.data, "[1,[\"x\",\"y\"]]");
    sbuf_free(&sb);
}

/* Memory a stream used for a value: its scratch buffer's capacity. */
static size_t streamed_scratch(value_type t, const char *text, size_t len,
                               strbuf *collected)
{
    strbuf scratch = STRBUF_INIT;
    collector c = {STRBUF_INIT, JSON_OUT_PIECE, false};
    json_out o = json_out_stream(&scratch, 0, collect, &c);
    value_json_write(&o, t, text, len);
    CHECK(json_out_finish(&o) && !c.bad_piece);
    size_t cap = scratch.cap;
    sbuf_free(&scratch);
    *collected = c.text;
    return cap;
}

/* open 1,1,...,1 close */
static void fill_list(char *text, size_t n, char open, char close)
{
    for (size_t i = 1; i + 1 < n; i++)
        text[i] = i % 2 ? '1' : ',';
    text[0] = open;
    text[n - 1] = close;
}

/* Huge values stream with a bounded buffer, whatever their kind, and give
 * the same JSON as when encoded whole: text that needs no escaping, text
 * that is all escapes (6 bytes out per byte in), json and arrays that are
 * valid, and ones that turn out malformed only at their very end (which
 * then fall back to a string). */
static void test_huge_values_stream_bounded(void)
{
    const size_t n = ((size_t)4 << 20) + 1; /* odd, for fill_list */
    char *text = xmalloc(n);
    const struct {
        value_type type;
        char fill, open, close; /* fill 0: a list */
        char json_starts;
    } cases[] = {
        {kind(VK_TEXT), 'a', 0, 0, '"'},
        {kind(VK_TEXT), '\x01', 0, 0, '"'},
        {kind(VK_JSON), 0, '[', ']', '['},
        {kind(VK_JSON), 0, '[', '}', '"'},
        {array_of(VK_INT, ','), 0, '{', '}', '['},
        {array_of(VK_INT, ','), 0, '{', ']', '"'},
    };

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        if (cases[k].fill)
            memset(text, cases[k].fill, n);
        else
            fill_list(text, n, cases[k].open, cases[k].close);
        strbuf whole = STRBUF_INIT, streamed;
        value_json_append(&whole, cases[k].type, text, n);
        size_t cap = streamed_scratch(cases[k].type, text, n, &streamed);
        printf("# case %zu: %zu bytes of JSON, scratch buffer %zu bytes\n", k,
               whole.len, cap);
        CHECK(cap <= 4 * JSON_OUT_PIECE);
        CHECK(whole.data[0] == cases[k].json_starts);
        CHECK(streamed.len == whole.len &&
              memcmp(streamed.data, whole.data, whole.len) == 0);
        sbuf_free(&whole);
        sbuf_free(&streamed);
    }
    free(text);
}

int main(void)
{
    test_typeinfo();
    test_scalars();
    test_json_values();
    test_jsonb_values();
    test_arrays();
    test_arrays_of_arrays();
    test_string_word_scan();
    test_strings();
    test_huge_values_stream_bounded();
    CHECK(invalid_json_count == 0);
    CHECK(stream_mismatch_count == 0);
    sbuf_free(&out);
    return check_summary();
}
