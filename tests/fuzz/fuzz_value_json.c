/* libFuzzer target: column values (PostgreSQL text output) to JSON.
 *
 * Input: a kind byte, an element-kind byte, a delimiter byte (bit 0: the
 * array's delimiter; bits 1-3: how many levels of elements are arrays
 * themselves, as through domains over array types; bits 4-7: their
 * delimiters), then the value's text; the high bits of the first two bytes
 * choose a piece size. value_json_append promises valid JSON whatever the
 * text (valid UTF-8 included), so the output is checked by a strict
 * validator written here from RFC 8259, not just run; and the same value
 * streamed in small pieces must give exactly the same bytes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "value_json.h"

typedef struct cursor {
    const unsigned char *p, *end;
    int depth;
} cursor;

static bool parse_value(cursor *c);

static bool peek(cursor *c, unsigned char ch)
{
    return c->p < c->end && *c->p == ch;
}

static bool literal(cursor *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return false;
    c->p += n;
    return true;
}

static bool digits(cursor *c)
{
    const unsigned char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return c->p > start;
}

static bool parse_number(cursor *c)
{
    if (peek(c, '-'))
        c->p++;
    if (peek(c, '0'))
        c->p++;
    else if (!digits(c))
        return false;
    if (peek(c, '.')) {
        c->p++;
        if (!digits(c))
            return false;
    }
    if (peek(c, 'e') || peek(c, 'E')) {
        c->p++;
        if (peek(c, '+') || peek(c, '-'))
            c->p++;
        if (!digits(c))
            return false;
    }
    return true;
}

/* One UTF-8 sequence, shortest form, no surrogates, at most U+10FFFF. */
static bool utf8_char(cursor *c)
{
    unsigned char b = *c->p;
    int n;
    uint32_t cp;
    if (b < 0x80)
        n = 0, cp = b;
    else if ((b & 0xE0) == 0xC0)
        n = 1, cp = b & 0x1F;
    else if ((b & 0xF0) == 0xE0)
        n = 2, cp = b & 0x0F;
    else if ((b & 0xF8) == 0xF0)
        n = 3, cp = b & 0x07;
    else
        return false;
    if (c->end - c->p < n + 1)
        return false;
    for (int i = 1; i <= n; i++) {
        if ((c->p[i] & 0xC0) != 0x80)
            return false;
        cp = cp << 6 | (c->p[i] & 0x3F);
    }
    static const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
    c->p += n + 1;
    return true;
}

static bool parse_string(cursor *c)
{
    if (!peek(c, '"'))
        return false;
    c->p++;
    while (c->p < c->end) {
        unsigned char b = *c->p;
        if (b == '"') {
            c->p++;
            return true;
        }
        if (b < 0x20)
            return false;
        if (b == '\\') {
            c->p++;
            if (c->p >= c->end)
                return false;
            unsigned char e = *c->p++;
            if (e == 'u') {
                for (int i = 0; i < 4; i++) {
                    if (c->p >= c->end ||
                        !strchr("0123456789abcdefABCDEF", *c->p) ||
                        *c->p == '\0')
                        return false;
                    c->p++;
                }
            } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
                return false;
            }
            continue;
        }
        if (!utf8_char(c))
            return false;
    }
    return false;
}

static bool parse_container(cursor *c, unsigned char open, unsigned char close)
{
    if (++c->depth > 10000)
        return false;
    c->p++; /* the opening bracket */
    (void)open;
    if (peek(c, close)) {
        c->p++;
        c->depth--;
        return true;
    }
    for (;;) {
        if (close == '}') {
            if (!parse_string(c) || !peek(c, ':'))
                return false;
            c->p++;
        }
        if (!parse_value(c))
            return false;
        if (peek(c, ',')) {
            c->p++;
            continue;
        }
        if (!peek(c, close))
            return false;
        c->p++;
        c->depth--;
        return true;
    }
}

/* Compact output: no whitespace anywhere outside strings. */
static bool parse_value(cursor *c)
{
    if (c->p >= c->end)
        return false;
    switch (*c->p) {
    case '{':
        return parse_container(c, '{', '}');
    case '[':
        return parse_container(c, '[', ']');
    case '"':
        return parse_string(c);
    case 't':
        return literal(c, "true");
    case 'f':
        return literal(c, "false");
    case 'n':
        return literal(c, "null");
    default:
        return parse_number(c);
    }
}

/* Built the way the catalog builds them: nested levels one past
 * VALUE_TYPE_MAX_NESTED are possible, to reach the cut-off. */
static value_type fuzzed_type(const uint8_t *data)
{
    value_type t = {(value_kind)(data[0] % 7), VK_TEXT, ',', 0, {0}, false};
    if (t.kind != VK_ARRAY)
        return t;
    value_type elem = {(value_kind)(data[1] % 6), VK_TEXT, ',', 0, {0}, false};
    unsigned nested = (data[2] >> 1 & 7) % (VALUE_TYPE_MAX_NESTED + 2);
    for (unsigned k = 0; k < nested; k++)
        elem = value_type_array_of(elem, (data[2] >> (4 + k) & 1) ? ';' : ',');
    return value_type_array_of(elem, (data[2] & 1) ? ';' : ',');
}

typedef struct collected {
    strbuf text;
    size_t piece;
} collected;

static bool collect(void *ctx, const char *data, size_t len)
{
    collected *c = ctx;
    if (len == 0 || len > c->piece)
        abort();
    sbuf_append(&c->text, data, len);
    return true;
}

/* Pieces of 1 to 128 bytes: small enough that values of a few hundred
 * bytes take the dry-run path of json and arrays. */
static void check_streamed(value_type t, const char *text, size_t len,
                           size_t piece, const strbuf *whole)
{
    strbuf scratch = STRBUF_INIT;
    collected c = {STRBUF_INIT, piece};
    json_out o = json_out_stream(&scratch, piece, collect, &c);
    value_json_write(&o, t, text, len);
    if (!json_out_finish(&o) || c.text.len != whole->len ||
        memcmp(c.text.data, whole->data, whole->len) != 0) {
        fprintf(stderr, "streamed in %zu-byte pieces, kind %d/%d: %.*s\n",
                piece, t.kind, t.elem_kind,
                (int)(c.text.len < 2000 ? c.text.len : 2000),
                c.text.data ? c.text.data : "");
        abort();
    }
    sbuf_free(&scratch);
    sbuf_free(&c.text);
}

/* Compact JSON spaced as jsonb_out spaces it: a space after each ',' and
 * ':' outside strings. */
static void jsonb_spaced(const strbuf *compact, strbuf *spaced)
{
    bool in_string = false;
    for (size_t i = 0; i < compact->len; i++) {
        char ch = compact->data[i];
        sbuf_append_char(spaced, ch);
        if (in_string && ch == '\\')
            sbuf_append_char(spaced, compact->data[++i]);
        else if (ch == '"')
            in_string = !in_string;
        else if (!in_string && (ch == ',' || ch == ':'))
            sbuf_append_char(spaced, ' ');
    }
}

/* A json value's compacted form, spaced as jsonb prints it, goes back to
 * the same text by jsonb's unchecked compaction, whole and streamed. */
static void check_jsonb(value_type t, const strbuf *out, size_t piece)
{
    if (t.kind != VK_JSON)
        return;
    strbuf spaced = STRBUF_INIT, again = STRBUF_INIT;
    jsonb_spaced(out, &spaced);
    t.jsonb = true;
    value_json_append(&again, t, spaced.data, spaced.len);
    if (again.len != out->len || memcmp(again.data, out->data, out->len) != 0) {
        fprintf(stderr, "jsonb compaction differs: %.*s\n",
                (int)(again.len < 2000 ? again.len : 2000), again.data);
        abort();
    }
    check_streamed(t, spaced.data, spaced.len, piece, out);
    sbuf_free(&spaced);
    sbuf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    value_type t = fuzzed_type(data);
    size_t len = size - 3;
    char *text = malloc(len ? len : 1);
    memcpy(text, data + 3, len);

    strbuf out = STRBUF_INIT;
    value_json_append(&out, t, text, len);
    cursor c = {(const unsigned char *)out.data,
                (const unsigned char *)out.data + out.len, 0};
    if (!out.data || !parse_value(&c) || c.p != c.end) {
        fprintf(stderr, "invalid JSON for kind %d/%d from %zu bytes: %.*s\n",
                t.kind, t.elem_kind, len,
                (int)(out.len < 2000 ? out.len : 2000),
                out.data ? out.data : "");
        abort();
    }
    /* value_json_is_null says exactly when a value encodes as null (what
     * the event's json_null lists). */
    bool encodes_null = out.len == 4 && memcmp(out.data, "null", 4) == 0;
    if (encodes_null != value_json_is_null(t, text, len)) {
        fprintf(stderr, "value_json_is_null disagrees for kind %d: %.*s\n",
                t.kind, (int)(len < 200 ? len : 200), text);
        abort();
    }
    /* Pieces of 1 to 128 bytes, from bits the type bytes leave unused. */
    size_t piece = 1 + (size_t)((data[0] >> 3) | (data[1] >> 6) << 5) % 128;
    check_streamed(t, text, len, piece, &out);
    check_jsonb(t, &out, piece);
    sbuf_free(&out);

    /* The same for plain strings. */
    json_append_string(&out, text, len);
    c = (cursor){(const unsigned char *)out.data,
                 (const unsigned char *)out.data + out.len, 0};
    if (!parse_string(&c) || c.p != c.end)
        abort();
    sbuf_free(&out);
    free(text);
    return 0;
}
