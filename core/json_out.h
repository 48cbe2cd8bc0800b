/* Where the JSON encoders write: either a plain buffer that ends up holding
 * the whole document (event_json's cache), or a stream that hands its output
 * on in pieces of bounded size as it goes, so that encoding an event with a
 * huge value never holds a whole copy of that value. */
#ifndef PGSPOUT_JSON_OUT_H
#define PGSPOUT_JSON_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "pgspout/host.h"
#include "strbuf.h"

/* The largest piece a stream hands on: the bound sinks are promised. */
#define JSON_OUT_PIECE PGSPOUT_JSON_PIECE_MAX

/* Takes one piece of output; returns false to stop the stream. */
typedef bool (*json_out_fn)(void *ctx, const char *data, size_t len);

typedef struct json_out {
    strbuf *buf;     /* output not handed on yet */
    size_t flush_at; /* hand buf on once it holds this much; SIZE_MAX never */
    size_t piece;    /* streams: the largest piece; 0 for a plain buffer */
    unsigned held;   /* open json_out_hold calls */
    json_out_fn emit;
    void *ctx;
    bool failed; /* emit returned false: everything after is dropped */
} json_out;

/* Appends to sb, which keeps everything. */
json_out json_out_buffer(strbuf *sb);

/* Hands output to emit in pieces of at most `piece` bytes (0: the default),
 * collecting small writes in `scratch` (empty; the caller frees it). */
json_out json_out_stream(strbuf *scratch, size_t piece, json_out_fn emit,
                         void *ctx);

/* A stream that drops its output: a dry run that only checks a value. */
json_out json_out_discard(strbuf *scratch, size_t piece);

static inline bool json_out_streaming(const json_out *o)
{
    return o->piece != 0;
}

/* Hands on everything buffered; returns false once emit has failed. */
bool json_out_finish(json_out *o);

void json_out_flush(json_out *o);

static inline void json_out_check(json_out *o)
{
    if (o->buf->len >= o->flush_at)
        json_out_flush(o);
}

/* Appends a few bytes (anything up to a few pieces). Inline, with the
 * buffer's terminator kept, because encoders call these per character. */
static inline void json_out_put(json_out *o, const char *data, size_t len)
{
    strbuf *sb = o->buf;
    if (sb->cap - sb->len > len) {
        memcpy(sb->data + sb->len, data, len);
        sb->len += len;
        sb->data[sb->len] = '\0';
    } else {
        sbuf_append(sb, data, len);
    }
    json_out_check(o);
}

static inline void json_out_putc(json_out *o, char c)
{
    strbuf *sb = o->buf;
    if (sb->cap - sb->len > 1) {
        sb->data[sb->len++] = c;
        sb->data[sb->len] = '\0';
    } else {
        sbuf_append_char(sb, c);
    }
    json_out_check(o);
}

/* Room for len more bytes at the end of the buffer; json_out_commit then
 * counts those that were written. */
static inline char *json_out_room(json_out *o, size_t len)
{
    sbuf_reserve(o->buf, len);
    return o->buf->data + o->buf->len;
}

static inline void json_out_commit(json_out *o, size_t len)
{
    o->buf->len += len;
    o->buf->data[o->buf->len] = '\0';
    json_out_check(o);
}

/* The part of json_out_copy for a run a stream hands on straight. */
void json_out_copy_long(json_out *o, const char *data, size_t len);

/* Appends bytes of any length; a stream hands a long run on straight from
 * `data` in pieces instead of copying it. Inline: encoders call it per
 * value, nearly always with a short run. */
static inline void json_out_copy(json_out *o, const char *data, size_t len)
{
    if (json_out_streaming(o) && !o->held && len >= o->piece)
        json_out_copy_long(o, data, len);
    else
        json_out_put(o, data, len);
}

/* Output written between json_out_hold and json_out_release stays in the
 * buffer, so that json_out_rewind can take it back (to the returned mark)
 * while the hold lasts. Only for values of bounded size: a hold keeps a
 * stream from handing anything on. */
size_t json_out_hold(json_out *o);
void json_out_rewind(json_out *o, size_t mark);
void json_out_release(json_out *o);

#endif
