#include "redact.h"

#include <string.h>

void redact(char *s, const char *secret)
{
    static const char mask[] = "[redacted]";
    size_t slen, mlen = sizeof mask - 1;
    char *hit;

    if (!secret || (slen = strlen(secret)) == 0)
        return;
    while ((hit = strstr(s, secret)) != NULL) {
        if (slen < mlen) {
            memset(hit, '*', slen);
            continue;
        }
        memcpy(hit, mask, mlen);
        memmove(hit + mlen, hit + slen, strlen(hit + slen) + 1);
    }
}
