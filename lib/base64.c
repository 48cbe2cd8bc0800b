#include "base64.h"

#include <stdbool.h>

#include "alloc.h"

static const char standard_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t encode(char *out, const unsigned char *in, size_t len,
                     const char *alphabet, bool pad)
{
    char *o = out;

    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        *o++ = alphabet[(v >> 18) & 63];
        *o++ = alphabet[(v >> 12) & 63];
        if (i + 1 < len)
            *o++ = alphabet[(v >> 6) & 63];
        else if (pad)
            *o++ = '=';
        if (i + 2 < len)
            *o++ = alphabet[v & 63];
        else if (pad)
            *o++ = '=';
    }
    *o = '\0';
    return (size_t)(o - out);
}

size_t base64_encode_into(char *out, const void *data, size_t len)
{
    return encode(out, data, len, standard_alphabet, true);
}

char *base64_encode(const void *data, size_t len)
{
    char *out = xmalloc(BASE64_ENCODED_LEN(len) + 1);
    encode(out, data, len, standard_alphabet, true);
    return out;
}

char *base64url_encode(const void *data, size_t len)
{
    char *out = xmalloc(BASE64_ENCODED_LEN(len) + 1);
    encode(out, data, len, url_alphabet, false);
    return out;
}
