#include "percent.h"

#include <stdbool.h>
#include <string.h>

#include "hex.h"

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

void percent_encode(strbuf *out, const char *s, size_t len, const char *keep)
{
    static const char digits[] = "0123456789ABCDEF";

    sbuf_reserve(out, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (c && keep && strchr(keep, c))) {
            sbuf_append_char(out, (char)c);
        } else {
            char esc[3] = {'%', digits[c >> 4], digits[c & 0xF]};
            sbuf_append(out, esc, 3);
        }
    }
}

char *percent_decode(const char *s, size_t len)
{
    char *out = xmalloc(len + 1);
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len &&
            (hi = hex_digit_value(s[i + 1])) >= 0 &&
            (lo = hex_digit_value(s[i + 2])) >= 0) {
            out[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    return out;
}
