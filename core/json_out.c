#include "json_out.h"

#include <stdint.h>

json_out json_out_buffer(strbuf *sb)
{
    return (json_out){.buf = sb, .flush_at = SIZE_MAX};
}

json_out json_out_stream(strbuf *scratch, size_t piece, json_out_fn emit,
                         void *ctx)
{
    if (piece == 0 || piece > JSON_OUT_PIECE)
        piece = JSON_OUT_PIECE;
    return (json_out){.buf = scratch,
                      .flush_at = piece,
                      .piece = piece,
                      .emit = emit,
                      .ctx = ctx};
}

static bool drop(void *ctx, const char *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
    return true;
}

json_out json_out_discard(strbuf *scratch, size_t piece)
{
    return json_out_stream(scratch, piece, drop, NULL);
}

/* Hands data on in pieces; after a failure nothing more is handed on. */
static void emit_pieces(json_out *o, const char *data, size_t len)
{
    while (len > 0 && !o->failed) {
        size_t n = len < o->piece ? len : o->piece;
        if (!o->emit(o->ctx, data, n))
            o->failed = true;
        data += n;
        len -= n;
    }
}

void json_out_flush(json_out *o)
{
    if (!json_out_streaming(o) || o->held)
        return;
    emit_pieces(o, o->buf->data, o->buf->len);
    sbuf_reset(o->buf);
}

bool json_out_finish(json_out *o)
{
    json_out_flush(o);
    return !o->failed;
}

void json_out_copy_long(json_out *o, const char *data, size_t len)
{
    json_out_flush(o);
    emit_pieces(o, data, len);
}

size_t json_out_hold(json_out *o)
{
    o->held++;
    o->flush_at = SIZE_MAX;
    return o->buf->len;
}

void json_out_rewind(json_out *o, size_t mark)
{
    o->buf->len = mark;
    if (o->buf->data)
        o->buf->data[mark] = '\0';
}

void json_out_release(json_out *o)
{
    if (--o->held > 0 || !json_out_streaming(o))
        return;
    o->flush_at = o->piece;
    json_out_check(o);
}
