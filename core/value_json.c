#include "value_json.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char replacement_char[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Rewinds out to an earlier length, for the fallbacks that discard a
 * half-written value. */
static void strbuf_truncate(strbuf *out, size_t len)
{
    out->len = len;
    if (out->data)
        out->data[len] = '\0';
}

/* Length of the well-formed UTF-8 sequence at s, or 0 if there is none.
 * Overlong forms, surrogates and code points past U+10FFFF count as
 * malformed, as RFC 3629 says. */
static size_t utf8_sequence_length(const unsigned char *s, size_t avail)
{
    unsigned char lead = s[0];
    size_t n;

    if (lead < 0x80)
        return 1;
    if (lead < 0xC2)
        return 0;
    if (lead < 0xE0)
        n = 2;
    else if (lead < 0xF0)
        n = 3;
    else if (lead < 0xF5)
        n = 4;
    else
        return 0;
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if (lead == 0xE0 && s[1] < 0xA0)
        return 0;
    if (lead == 0xED && s[1] >= 0xA0)
        return 0;
    if (lead == 0xF0 && s[1] < 0x90)
        return 0;
    if (lead == 0xF4 && s[1] >= 0x90)
        return 0;
    return n;
}

static void append_escaped_char(strbuf *out, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {'\\', 0, 0, 0, 0, 0};
    size_t n = 2;

    switch (c) {
    case '"':
        esc[1] = '"';
        break;
    case '\\':
        esc[1] = '\\';
        break;
    case '\n':
        esc[1] = 'n';
        break;
    case '\t':
        esc[1] = 't';
        break;
    case '\r':
        esc[1] = 'r';
        break;
    case '\b':
        esc[1] = 'b';
        break;
    case '\f':
        esc[1] = 'f';
        break;
    default:
        esc[1] = 'u';
        esc[2] = '0';
        esc[3] = '0';
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 0xF];
        n = 6;
    }
    sbuf_append(out, esc, n);
}

/* True when any of the 8 bytes in w needs a look of its own: a control
 * character, a quote, a backslash or a non-ASCII byte. The usual word-at-a-
 * time tests (a byte below n: (w - n*ones) & ~w & highs), so that long plain
 * text, the bulk of TOASTed values, is scanned 8 bytes per step. */
static bool word_needs_care(uint64_t w)
{
    const uint64_t ones = UINT64_C(0x0101010101010101);
    const uint64_t highs = UINT64_C(0x8080808080808080);
    uint64_t quote = w ^ (ones * '"');
    uint64_t backslash = w ^ (ones * '\\');
    uint64_t control = (w - ones * 0x20) & ~w;
    uint64_t is_quote = (quote - ones) & ~quote;
    uint64_t is_backslash = (backslash - ones) & ~backslash;
    return ((control | is_quote | is_backslash) & highs) || (w & highs);
}

void json_append_string(strbuf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + len;

    /* Most strings need no escaping: one reservation, then copy whole runs
     * of bytes that pass through unchanged. */
    sbuf_reserve(out, len + 2);
    out->data[out->len++] = '"';
    while (p < end) {
        const unsigned char *run = p;
        while (p < end) {
            uint64_t word;
            if (end - p >= 8) {
                memcpy(&word, p, 8);
                if (!word_needs_care(word)) {
                    p += 8;
                    continue;
                }
            }
            unsigned char c = *p;
            if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
                p++;
                continue;
            }
            if (c >= 0x80) {
                size_t n = utf8_sequence_length(p, (size_t)(end - p));
                if (n) {
                    p += n;
                    continue;
                }
            }
            break;
        }
        if (p > run)
            sbuf_append(out, (const char *)run, (size_t)(p - run));
        if (p == end)
            break;
        if (*p >= 0x80)
            sbuf_append(out, replacement_char, 3);
        else
            append_escaped_char(out, *p);
        p++;
    }
    sbuf_append_char(out, '"');
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

static void append_number_or_string(strbuf *out, const char *s, size_t len)
{
    if (len > 0 && json_number_span(s, len) == len)
        sbuf_append(out, s, len);
    else
        json_append_string(out, s, len);
}

static void append_float(strbuf *out, const char *s, size_t len)
{
    /* JSON has no NaN or infinities; PostgreSQL spells them this way. */
    if (text_equals(s, len, "NaN") || text_equals(s, len, "Infinity") ||
        text_equals(s, len, "-Infinity"))
        json_append_string(out, s, len);
    else
        append_number_or_string(out, s, len);
}

static void append_bool(strbuf *out, const char *s, size_t len)
{
    if (text_equals(s, len, "t") || text_equals(s, len, "true"))
        sbuf_append(out, "true", 4);
    else if (text_equals(s, len, "f") || text_equals(s, len, "false"))
        sbuf_append(out, "false", 5);
    else
        json_append_string(out, s, len);
}

/* Length of the JSON string literal starting at s[0] == '"', quotes
 * included, or 0 if it is malformed. */
static size_t json_string_span(const char *s, size_t len)
{
    size_t i = 1;

    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            if (i + 1 >= len)
                return 0;
            char e = s[i + 1];
            if (e == 'u') {
                if (i + 6 > len)
                    return 0;
                for (size_t k = i + 2; k < i + 6; k++) {
                    char h = s[k];
                    if (!is_digit(h) && !(h >= 'a' && h <= 'f') &&
                        !(h >= 'A' && h <= 'F'))
                        return 0;
                }
                i += 6;
            } else if (strchr("\"\\/bfnrt", e) && e != '\0') {
                i += 2;
            } else {
                return 0;
            }
        } else if (c < 0x20) {
            return 0;
        } else if (c >= 0x80) {
            size_t n =
                utf8_sequence_length((const unsigned char *)s + i, len - i);
            if (!n)
                return 0;
            i += n;
        } else {
            i++;
        }
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
 * false, with out unspecified past its original length, if it is not JSON. */
static bool compact_json(strbuf *out, const char *s, size_t len)
{
    unsigned char is_object[JSON_MAX_DEPTH / 8];
    size_t depth = 0;
    enum json_state state = JS_VALUE;
    size_t i = 0;

    /* Compaction never lengthens the text, so one reservation covers every
     * write below. */
    sbuf_reserve(out, len);
    char *w = out->data + out->len;
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
                *w++ = c;
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
            memcpy(w, s + i, n);
            w += n;
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
            *w++ = c;
            i++;
            state = JS_VALUE;
            continue;
        case JS_COMMA_OR_CLOSE: {
            bool in_object =
                is_object[(depth - 1) / 8] & (1u << ((depth - 1) % 8));
            if (c == ',') {
                *w++ = c;
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
        *w++ = c;
        i++;
        depth--;
        state = depth ? JS_COMMA_OR_CLOSE : JS_END;
    }
    if (state != JS_END)
        return false;
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return true;
}

static void append_json(strbuf *out, const char *s, size_t len)
{
    if (!compact_json(out, s, len))
        json_append_string(out, s, len);
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
 * turn by value_json_append. */
static bool array_to_json(strbuf *out, value_type t, const char *s, size_t len,
                          element_buffer *eb)
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
                sbuf_append_char(out, '[');
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
                value_json_append(out, elem, buf, n);
                i = j + 1;
            } else if (c == delim) {
                return false;
            } else {
                size_t j = i;
                while (j < len && s[j] != delim && s[j] != '}' && s[j] != '{' &&
                       s[j] != '"' && s[j] != '\\' && !is_array_space(s[j]))
                    j++;
                if (j - i == 4 && strncasecmp(s + i, "NULL", 4) == 0)
                    sbuf_append(out, "null", 4);
                else
                    value_json_append(out, elem, s + i, j - i);
                i = j;
            }
            state = AS_DELIM_OR_CLOSE;
            continue;
        case AS_DELIM_OR_CLOSE:
            if (c == delim) {
                sbuf_append_char(out, ',');
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
        sbuf_append_char(out, ']');
        i++;
        depth--;
        state = depth ? AS_DELIM_OR_CLOSE : AS_END;
    }
    return state == AS_END;
}

static void append_array(strbuf *out, value_type t, const char *s, size_t len)
{
    element_buffer eb;
    size_t start = out->len;

    eb.data = eb.local;
    eb.cap = sizeof eb.local;
    if (!array_to_json(out, t, s, len, &eb)) {
        strbuf_truncate(out, start);
        json_append_string(out, s, len);
    }
    if (eb.data != eb.local)
        free(eb.data);
}

void value_json_append(strbuf *out, value_type t, const char *text, size_t len)
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
        append_json(out, text, len);
        return;
    case VK_ARRAY:
        append_array(out, t, text, len);
        return;
    case VK_NUMERIC:
    case VK_TEXT:
        break;
    }
    json_append_string(out, text, len);
}
