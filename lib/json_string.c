#include "json_string.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "hex.h"

size_t utf8_sequence_length(const unsigned char *s, size_t avail)
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

/* True when any of the 8 bytes in w needs a look of its own: a control
 * character, a quote, a backslash or a non-ASCII byte. The usual word-at-a-
 * time tests (a byte below n: (w - n*ones) & ~w & highs). */
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

size_t json_plain_span(const char *s, size_t len)
{
    const unsigned char *start = (const unsigned char *)s;
    const unsigned char *p = start, *end = start + len;

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
        size_t n = c >= 0x80 ? utf8_sequence_length(p, (size_t)(end - p)) : 0;
        if (!n)
            break;
        p += n;
    }
    return (size_t)(p - start);
}

bool utf8_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence_length((const unsigned char *)s + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* The two-character escape of c, or 0 when it has none. */
static char short_escape(unsigned char c)
{
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '\n':
        return 'n';
    case '\t':
        return 't';
    case '\r':
        return 'r';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    default:
        return 0;
    }
}

size_t json_escape_byte(unsigned char c, char esc[JSON_ESCAPE_MAX])
{
    static const char replacement_char[] = "\xEF\xBF\xBD"; /* U+FFFD */

    if (c >= 0x80) {
        memcpy(esc, replacement_char, 3);
        return 3;
    }
    esc[0] = '\\';
    esc[1] = short_escape(c);
    if (esc[1])
        return 2;
    esc[1] = 'u';
    esc[2] = '0';
    esc[3] = '0';
    hex_encode(&c, 1, esc + 4);
    return 6;
}

void json_append_string(strbuf *out, const char *s, size_t len)
{
    /* Most strings need no escaping: room for all of it at once. */
    sbuf_reserve(out, len + 2);
    sbuf_append_char(out, '"');
    for (size_t i = 0; i < len;) {
        size_t run = json_plain_span(s + i, len - i);
        sbuf_append(out, s + i, run);
        i += run;
        if (i < len) {
            char esc[JSON_ESCAPE_MAX];
            size_t n = json_escape_byte((unsigned char)s[i++], esc);
            sbuf_append(out, esc, n);
        }
    }
    sbuf_append_char(out, '"');
}
