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

#if defined(__SSE2__)
#include <emmintrin.h>

/* Bit i set when byte i of the 16 at p needs a look of its own: a control
 * character, a quote, a backslash or a non-ASCII byte. Compared as signed
 * bytes, control characters and non-ASCII ones (negative) are all below
 * 0x20. */
static unsigned block_needs_care(const unsigned char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i below = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
    __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
    __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    return (unsigned)_mm_movemask_epi8(
        _mm_or_si128(below, _mm_or_si128(quote, backslash)));
}

/* How many of the len bytes at p, from the start, pass as they are
 * (printable ASCII other than a quote or a backslash): 16 at a time, the
 * last few from a copy padded with a byte that stops the run. */
static size_t ascii_run(const unsigned char *p, size_t len)
{
    size_t i = 0;
    for (; len - i >= 16; i += 16) {
        unsigned care = block_needs_care(p + i);
        if (care)
            return i + (size_t)__builtin_ctz(care);
    }
    if (i == len)
        return i;
    unsigned char tail[16] = {0};
    memcpy(tail, p + i, len - i);
    return i + (size_t)__builtin_ctz(block_needs_care(tail));
}
#else
/* True when any of the 8 bytes in w needs a look of its own. The usual
 * word-at-a-time tests (a byte below n: (w - n*ones) & ~w & highs). */
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

static bool plain_ascii(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* How many of the len bytes at p, from the start, pass as they are. */
static size_t ascii_run(const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (len - i >= 8) {
        uint64_t word;
        memcpy(&word, p + i, 8);
        if (word_needs_care(word))
            break;
        i += 8;
    }
    while (i < len && plain_ascii(p[i]))
        i++;
    return i;
}
#endif

size_t json_plain_span(const char *s, size_t len)
{
    const unsigned char *start = (const unsigned char *)s;
    const unsigned char *p = start, *end = start + len;

    while (p < end) {
        p += ascii_run(p, (size_t)(end - p));
        if (p == end)
            break;
        size_t n = *p >= 0x80 ? utf8_sequence_length(p, (size_t)(end - p)) : 0;
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
