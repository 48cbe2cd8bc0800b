#include "alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void out_of_memory(void)
{
    fputs("pgspout: out of memory\n", stderr);
    abort();
}

void *xnonnull(void *p)
{
    if (!p)
        out_of_memory();
    return p;
}

void *xmalloc(size_t size)
{
    return xnonnull(malloc(size ? size : 1));
}

void *xcalloc(size_t n, size_t size)
{
    return xnonnull(calloc(n ? n : 1, size ? size : 1));
}

void *xrealloc(void *p, size_t size)
{
    return xnonnull(realloc(p, size ? size : 1));
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        out_of_memory();
    return s;
}
