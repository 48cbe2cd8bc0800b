#include "value_json.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void json_write_string(json_out *out, const char *s, size_t len)
{
    /* Most strings need no escaping: one that a stream would not hand on
     * straight is written whole at once. */
    size_t plain = json_plain_span(s, len);
    if (plain == len && (!json_out_streaming(out) || len < out->piece)) {
        char *dst = json_out_room(out, len + 2);
        dst[0] = '"';
        memcpy(dst + 1, s, len);
        dst[len + 1] = '"';
        json_out_commit(out, len + 2);
        return;
    }
    /* Else a buffer reserves room for all of it at once; runs of bytes
     * that pass through unchanged are copied whole (or, by a stream,
     * handed on straight from s). */
    if (!json_out_streaming(out))
        sbuf_reserve(out->buf, len + 2);
    json_out_putc(out, '"');
    for (size_t i = 0; i < len;) {
        size_t run = i ? json_plain_span(s + i, len - i) : plain;
        if (run)
            json_out_copy(out, s + i, run);
        i += run;
        if (i < len) {
            char esc[JSON_ESCAPE_MAX];
            size_t n = json_escape_byte((unsigned char)s[i++], esc);
            json_out_put(out, esc, n);
        }
    }
    json_out_putc(out, '"');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of the JSON number (RFC 8259 grammar) at the start of s, 0 if
 * there is none. */
static size_t json_number_span(const char *s, size_t len)
{
    size_t i = 0;

    if (i < len && s[i] == '-')
        i++;
    if (i >= len)
        return 0;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < len && is_digit(s[i]))
            i++;
    } else {
        return 0;
    }
    if (i < len && s[i] == '.') {
        size_t digits = ++i;
        while (i < len && is_digit(s[i]))
            i++;
        if (i == digits)
            return 0;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t digits = i;
        while (i < len && is_digit(s[i]))
            i++;
        if (i == digits)
            return 0;
    }
    return i;
}

static bool text_equals(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(s, lit, n) == 0;
}

static void append_number_or_string(json_out *out, const char *s, size_t len)
{
    if (len > 0 && json_number_span(s, len) == len)
        json_out_copy(out, s, len);
    else
        json_write_string(out, s, len);
}

static void append_float(json_out *out, const char *s, size_t len)
{
    /* JSON has no NaN or infinities; PostgreSQL spells them this way. */
    if (text_equals(s, len, "NaN") || text_equals(s, len, "Infinity") ||
        text_equals(s, len, "-Infinity"))
        json_write_string(out, s, len);
    else
        append_number_or_string(out, s, len);
}

static void append_bool(json_out *out, const char *s, size_t len)
{
    if (text_equals(s, len, "t") || text_equals(s, len, "true"))
        json_out_put(out, "true", 4);
    else if (text_equals(s, len, "f") || text_equals(s, len, "false"))
        json_out_put(out, "false", 5);
    else
        json_write_string(out, s, len);
}

/* The escape at s[i] == '\\': its length, 0 if it is malformed. */
static size_t json_escape_span(const char *s, size_t len, size_t i)
{
    if (i + 1 >= len)
        return 0;
    char e = s[i + 1];
    if (e != 'u')
        return strchr("\"\\/bfnrt", e) && e != '\0' ? 2 : 0;
    if (i + 6 > len)
        return 0;
    for (size_t k = i + 2; k < i + 6; k++) {
        char h = s[k];
        if (!is_digit(h) && !(h >= 'a' && h <= 'f') && !(h >= 'A' && h <= 'F'))
            return 0;
    }
    return 6;
}

/* Length of the JSON string literal starting at s[0] == '"', quotes
 * included, or 0 if it is malformed. */
static size_t json_string_span(const char *s, size_t len)
{
    size_t i = 1;

    while (i < len) {
        /* Printable ASCII and well-formed UTF-8 pass a word at a time. */
        i += json_plain_span(s + i, len - i);
        if (i >= len)
            return 0;
        if (s[i] == '"')
            return i + 1;
        if (s[i] != '\\')
            return 0; /* a control character or malformed UTF-8 */
        size_t n = json_escape_span(s, len, i);
        if (!n)
            return 0;
        i += n;
    }
    return 0;
}

static size_t json_literal_span(const char *s, size_t len)
{
    static const char *const literals[] = {"true", "false", "null"};
    for (size_t k = 0; k < 3; k++) {
        size_t n = strlen(literals[k]);
        if (len >= n && memcmp(s, literals[k], n) == 0)
            return n;
    }
    return 0;
}

static bool is_json_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

enum json_state {
    JS_VALUE,
    JS_VALUE_OR_CLOSE,
    JS_KEY,
    JS_KEY_OR_CLOSE,
    JS_COLON,
    JS_COMMA_OR_CLOSE,
    JS_END
};

/* Deeper documents than this fall back to a JSON string; nothing real
 * nests this far. One bit per level says object (1) or array (0). */
#define JSON_MAX_DEPTH 32768

/* Compacts a JSON text while checking its grammar, copying numbers and
 * strings byte for byte (a parse and re-dump would reformat numbers). Returns
 * false, with what it wrote to be discarded, if it is not JSON. */
static bool compact_json(json_out *out, const char *s, size_t len)
{
    unsigned char is_object[JSON_MAX_DEPTH / 8];
    size_t depth = 0;
    enum json_state state = JS_VALUE;
    size_t i = 0;

    /* Compaction never lengthens the text: a buffer reserves once. */
    if (!json_out_streaming(out))
        sbuf_reserve(out->buf, len);
    while (i < len) {
        char c = s[i];
        size_t n;

        if (is_json_space(c)) {
            i++;
            continue;
        }
        switch (state) {
        case JS_VALUE:
        case JS_VALUE_OR_CLOSE:
        case JS_KEY:
        case JS_KEY_OR_CLOSE: {
            bool want_key = state == JS_KEY || state == JS_KEY_OR_CLOSE;
            bool may_close =
                state == JS_VALUE_OR_CLOSE || state == JS_KEY_OR_CLOSE;
            if (may_close && c == (want_key ? '}' : ']'))
                goto close_container;
            if (want_key && c != '"')
                return false;
            if (c == '{' || c == '[') {
                if (depth == JSON_MAX_DEPTH)
                    return false;
                unsigned char bit = (unsigned char)(1u << (depth % 8));
                if (c == '{')
                    is_object[depth / 8] |= bit;
                else
                    is_object[depth / 8] &= (unsigned char)~bit;
                depth++;
                json_out_putc(out, c);
                i++;
                state = c == '{' ? JS_KEY_OR_CLOSE : JS_VALUE_OR_CLOSE;
                continue;
            }
            if (c == '"')
                n = json_string_span(s + i, len - i);
            else if (c == '-' || is_digit(c))
                n = json_number_span(s + i, len - i);
            else
                n = json_literal_span(s + i, len - i);
            if (!n)
                return false;
            json_out_copy(out, s + i, n);
            i += n;
            if (want_key)
                state = JS_COLON;
            else
                state = depth ? JS_COMMA_OR_CLOSE : JS_END;
            continue;
        }
        case JS_COLON:
            if (c != ':')
                return false;
            json_out_putc(out, c);
            i++;
            state = JS_VALUE;
            continue;
        case JS_COMMA_OR_CLOSE: {
            bool in_object =
                is_object[(depth - 1) / 8] & (1u << ((depth - 1) % 8));
            if (c == ',') {
                json_out_putc(out, c);
                i++;
                state = in_object ? JS_KEY : JS_VALUE;
                continue;
            }
            if (c != (in_object ? '}' : ']'))
                return false;
            goto close_container;
        }
        case JS_END:
            return false;
        }
    close_container:
        json_out_putc(out, c);
        i++;
        depth--;
        state = depth ? JS_COMMA_OR_CLOSE : JS_END;
    }
    return state == JS_END;
}

bool value_json_is_null(value_type t, const char *text, size_t len)
{
    if (t.kind != VK_JSON)
        return false;
    while (len > 0 && is_json_space(text[len - 1]))
        len--;
    while (len > 0 && is_json_space(*text)) {
        text++;
        len--;
    }
    return text_equals(text, len, "null");
}

static bool is_array_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

enum array_state {
    AS_START,
    AS_ELEM,
    AS_ELEM_OR_CLOSE,
    AS_DELIM_OR_CLOSE,
    AS_END
};

/* Room for unescaping quoted array elements; a bigger element borrows a heap
 * buffer for the rest of the array. */
typedef struct element_buffer {
    char local[256];
    char *data;
    size_t cap;
} element_buffer;

static char *element_buffer_get(element_buffer *eb, size_t need)
{
    if (need > eb->cap) {
        if (eb->data != eb->local)
            free(eb->data);
        eb->data = xmalloc(need);
        eb->cap = need;
    }
    return eb->data;
}

/* Parses array_out's syntax: {a,b}, nested braces per dimension, elements
 * double-quoted (with backslash escapes) when they hold special characters or
 * spell NULL, and a "[lo:hi]=" prefix when a lower bound is not 1. An element
 * that is an array itself arrives quoted, {"{1,2}","{}"}, and is parsed in
 * turn by value_json_write. */
static bool array_to_json(json_out *out, value_type t, const char *s,
                          size_t len, element_buffer *eb)
{
    value_type elem = value_type_element(t); /* an array itself, through a
                                                 domain over an array type */
    char delim = t.delim ? t.delim : ',';
    enum array_state state = AS_START;
    size_t depth = 0;
    size_t i = 0;

    if (len > 0 && s[0] == '[') {
        const char *eq = memchr(s, '=', len);
        if (!eq)
            return false;
        i = (size_t)(eq - s) + 1;
    }
    while (i < len) {
        char c = s[i];
        if (is_array_space(c)) {
            i++;
            continue;
        }
        switch (state) {
        case AS_START:
        case AS_ELEM:
        case AS_ELEM_OR_CLOSE:
            if (c == '{') {
                json_out_putc(out, '[');
                depth++;
                i++;
                state = AS_ELEM_OR_CLOSE;
                continue;
            }
            if (state == AS_START)
                return false;
            if (c == '}') {
                if (state != AS_ELEM_OR_CLOSE)
                    return false;
                goto close_dimension;
            }
            if (c == '"') {
                size_t j = i + 1, n = 0;
                while (j < len && s[j] != '"')
                    j += s[j] == '\\' ? 2 : 1;
                if (j >= len)
                    return false;
                char *buf = element_buffer_get(eb, j - i);
                for (size_t k = i + 1; k < j; k++) {
                    if (s[k] == '\\')
                        k++;
                    buf[n++] = s[k];
                }
                value_json_write(out, elem, buf, n);
                i = j + 1;
            } else if (c == delim) {
                return false;
            } else {
                size_t j = i;
                while (j < len && s[j] != delim && s[j] != '}' && s[j] != '{' &&
                       s[j] != '"' && s[j] != '\\' && !is_array_space(s[j]))
                    j++;
                if (j - i == 4 && strncasecmp(s + i, "NULL", 4) == 0)
                    json_out_put(out, "null", 4);
                else
                    value_json_write(out, elem, s + i, j - i);
                i = j;
            }
            state = AS_DELIM_OR_CLOSE;
            continue;
        case AS_DELIM_OR_CLOSE:
            if (c == delim) {
                json_out_putc(out, ',');
                i++;
                state = AS_ELEM;
                continue;
            }
            if (c != '}')
                return false;
            goto close_dimension;
        case AS_END:
            return false;
        }
    close_dimension:
        json_out_putc(out, ']');
        i++;
        depth--;
        state = depth ? AS_DELIM_OR_CLOSE : AS_END;
    }
    return state == AS_END;
}

static bool encode_array(json_out *out, value_type t, const char *s, size_t len)
{
    element_buffer eb;

    eb.data = eb.local;
    eb.cap = sizeof eb.local;
    bool ok = array_to_json(out, t, s, len, &eb);
    if (eb.data != eb.local)
        free(eb.data);
    return ok;
}

/* The index of the quote that ends the JSON string opened at s[open]
 * (len when none does): the first quote after it that an even number of
 * backslashes leads up to. */
static size_t string_close(const char *s, size_t len, size_t open)
{
    for (size_t from = open + 1; from < len;) {
        const char *quote = memchr(s + from, '"', len - from);
        if (!quote)
            break;
        size_t at = (size_t)(quote - s), slashes = 0;
        while (at - slashes > open + 1 && s[at - slashes - 1] == '\\')
            slashes++;
        if (slashes % 2 == 0)
            return at;
        from = at + 1;
    }
    return len;
}

/* jsonb_out prints JSON with one space after each ',' and ':' outside
 * strings and no other space there: dropping those compacts it to what
 * compact_json makes of it, without a grammar to check (a quarter of the
 * instructions of a backfill's read event with one small jsonb value went
 * to that check). Never longer than the text: written in place. */
static void compact_jsonb(json_out *out, const char *s, size_t len)
{
    char *dst = json_out_room(out, len);
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ')
            continue;
        dst[n++] = s[i];
        if (s[i] != '"')
            continue;
        size_t close = string_close(s, len, i);
        size_t end = close < len ? close + 1 : len;
        memcpy(dst + n, s + i + 1, end - i - 1);
        n += end - i - 1;
        i = end - 1;
    }
    json_out_commit(out, n);
}

static bool encode_json(json_out *out, value_type t, const char *s, size_t len)
{
    (void)t;
    return compact_json(out, s, len);
}

typedef bool (*checked_encoder)(json_out *out, value_type t, const char *s,
                                size_t len);

/* Encodes a value whose text may turn out malformed half-way, and then
 * falls back to a JSON string of the text. A stream cannot take back what
 * it handed on: a value no longer than a piece stays held in the buffer
 * until it is known good; a longer one is checked by a dry run first, so
 * that it then streams with nothing held (twice the work, only for huge
 * values). */
static void append_checked(json_out *out, checked_encoder encode, value_type t,
                           const char *s, size_t len)
{
    bool ok;

    if (json_out_streaming(out) && len > out->piece) {
        strbuf scratch = STRBUF_INIT;
        json_out dry = json_out_discard(&scratch, out->piece);
        ok = encode(&dry, t, s, len);
        sbuf_free(&scratch);
        if (ok)
            encode(out, t, s, len);
    } else {
        size_t mark = json_out_hold(out);
        ok = encode(out, t, s, len);
        if (!ok)
            json_out_rewind(out, mark);
        json_out_release(out);
    }
    if (!ok)
        json_write_string(out, s, len);
}

void value_json_write(json_out *out, value_type t, const char *text, size_t len)
{
    switch (t.kind) {
    case VK_INT:
        append_number_or_string(out, text, len);
        return;
    case VK_FLOAT:
        append_float(out, text, len);
        return;
    case VK_BOOL:
        append_bool(out, text, len);
        return;
    case VK_JSON:
        /* Longer, it might nest past what compact_json takes. */
        if (t.jsonb && len <= 2 * JSON_MAX_DEPTH)
            compact_jsonb(out, text, len);
        else
            append_checked(out, encode_json, t, text, len);
        return;
    case VK_ARRAY:
        append_checked(out, encode_array, t, text, len);
        return;
    case VK_NUMERIC:
    case VK_TEXT:
        break;
    }
    json_write_string(out, text, len);
}

void value_json_append(strbuf *out, value_type t, const char *text, size_t len)
{
    json_out o = json_out_buffer(out);
    value_json_write(&o, t, text, len);
}
