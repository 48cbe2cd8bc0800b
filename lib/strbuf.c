#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Past this, a buffer grows by a quarter rather than doubling. */
#define SBUF_GEOMETRIC_LIMIT ((size_t)64 << 20)

void sbuf_reserve(strbuf *sb, size_t extra)
{
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return;
    /* Growing geometrically keeps appends amortised O(1). A buffer of a
     * huge value grows by a quarter only (glibc remaps such blocks rather
     * than copying them), and one append larger than the growth gets
     * exactly its size, so a giant string never reserves twice its size. */
    size_t cap = sb->cap ? sb->cap : 64;
    cap += cap < SBUF_GEOMETRIC_LIMIT ? cap : cap / 4;
    if (cap < need)
        cap = need;
    sb->data = xrealloc(sb->data, cap);
    sb->cap = cap;
}

void sbuf_append(strbuf *sb, const char *data, size_t len)
{
    sbuf_reserve(sb, len);
    memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
}

void sbuf_append_str(strbuf *sb, const char *s)
{
    sbuf_append(sb, s, strlen(s));
}

void sbuf_append_char(strbuf *sb, char c)
{
    sbuf_reserve(sb, 1);
    sb->data[sb->len++] = c;
    sb->data[sb->len] = '\0';
}

void sbuf_vappendf(strbuf *sb, const char *fmt, va_list ap)
{
    /* Most formatted pieces are short: format once on the stack, and only
     * a long one a second time into the grown buffer. */
    char small[256];
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(small, sizeof small, fmt, copy);
    va_end(copy);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        sbuf_append(sb, small, (size_t)n);
        return;
    }
    sbuf_reserve(sb, (size_t)n);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
}

void sbuf_appendf(strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sbuf_vappendf(sb, fmt, ap);
    va_end(ap);
}

void sbuf_reset(strbuf *sb)
{
    sbuf_truncate(sb, 0);
}

void sbuf_truncate(strbuf *sb, size_t len)
{
    sb->len = len;
    if (sb->data)
        sb->data[len] = '\0';
}

void sbuf_free(strbuf *sb)
{
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
}

char *sbuf_detach(strbuf *sb)
{
    char *p = sb->data ? sb->data : xstrdup("");
    sb->data = NULL;
    sb->len = sb->cap = 0;
    return p;
}
