/* A growable byte buffer. Growing it never fails: allocation follows the
 * one out-of-memory policy (alloc.h), which this header brings along. */
#ifndef PGSPOUT_STRBUF_H
#define PGSPOUT_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

#include "alloc.h"

typedef struct strbuf {
    char *data; /* always NUL-terminated once anything was appended */
    size_t len;
    size_t cap;
} strbuf;

#define STRBUF_INIT                                                            \
    {                                                                          \
        NULL, 0, 0                                                             \
    }

void sbuf_reserve(strbuf *sb, size_t extra);
void sbuf_append(strbuf *sb, const char *data, size_t len);
void sbuf_append_str(strbuf *sb, const char *s);
void sbuf_append_char(strbuf *sb, char c);
void sbuf_appendf(strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sbuf_vappendf(strbuf *sb, const char *fmt, va_list ap);
void sbuf_reset(strbuf *sb); /* len = 0, keeps the allocation */
/* Keeps the first len bytes (len <= sb->len), and the allocation. */
void sbuf_truncate(strbuf *sb, size_t len);
void sbuf_free(strbuf *sb);
/* Hands the buffer to the caller (never NULL) and resets sb. */
char *sbuf_detach(strbuf *sb);

#endif
