/* The encoders' output: a plain buffer, or a stream handing on bounded
 * pieces (long runs straight from the caller's memory), holds that can be
 * taken back, a writer that fails; and how a strbuf grows for huge values. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "json_out.h"

typedef struct pieces {
    strbuf text;
    const char *first_data; /* where the first piece came from */
    size_t largest;
    int calls;
    int fail_at; /* emit returns false on this call; 0 never */
} pieces;

static bool take(void *ctx, const char *data, size_t len)
{
    pieces *p = ctx;
    if (p->calls++ == 0)
        p->first_data = data;
    if (len > p->largest)
        p->largest = len;
    sbuf_append(&p->text, data, len);
    return p->calls != p->fail_at;
}

static void test_buffer_keeps_everything(void)
{
    strbuf sb = STRBUF_INIT;
    char big[300000];
    memset(big, 'b', sizeof big);
    json_out o = json_out_buffer(&sb);
    json_out_putc(&o, '[');
    json_out_copy(&o, big, sizeof big);
    json_out_put(&o, "]", 1);
    CHECK(!json_out_streaming(&o));
    CHECK(json_out_finish(&o));
    CHECK(sb.len == sizeof big + 2 && sb.data[0] == '[' &&
          sb.data[sb.len - 1] == ']' && sb.data[sb.len] == '\0');
    sbuf_free(&sb);
}

static void test_stream_pieces(void)
{
    strbuf scratch = STRBUF_INIT;
    pieces p = {STRBUF_INIT, NULL, 0, 0, 0};
    char run[100];
    memset(run, 'r', sizeof run);
    json_out o = json_out_stream(&scratch, 16, take, &p);

    /* Small writes gather until a piece is full. */
    json_out_put(&o, "0123456789", 10);
    CHECK(p.calls == 0);
    json_out_put(&o, "abcdefgh", 8);
    CHECK(p.calls == 2 && p.largest == 16 && p.text.len == 18);
    /* A long run goes out straight from where it is, in pieces. */
    json_out_putc(&o, '<');
    json_out_copy(&o, run, sizeof run);
    CHECK(p.text.len == 18 + 1 + sizeof run);
    CHECK(scratch.len == 0 && p.largest == 16);
    json_out_putc(&o, '>');
    CHECK(json_out_finish(&o));
    CHECK(p.text.len == 18 + 2 + sizeof run &&
          p.text.data[p.text.len - 1] == '>');
    sbuf_free(&p.text);

    pieces direct = {STRBUF_INIT, NULL, 0, 0, 0};
    json_out fresh = json_out_stream(&scratch, 16, take, &direct);
    json_out_copy(&fresh, run, sizeof run);
    CHECK(direct.first_data == run); /* no copy made */
    CHECK(json_out_finish(&fresh) && direct.text.len == sizeof run);
    sbuf_free(&direct.text);
    sbuf_free(&scratch);
}

static void test_hold_rewind_release(void)
{
    strbuf scratch = STRBUF_INIT;
    pieces p = {STRBUF_INIT, NULL, 0, 0, 0};
    char run[100];
    memset(run, 'r', sizeof run);
    json_out o = json_out_stream(&scratch, 16, take, &p);

    json_out_put(&o, "keep", 4);
    size_t mark = json_out_hold(&o);
    json_out_copy(&o, run, sizeof run); /* held: nothing goes out */
    CHECK(p.calls == 0 && scratch.len == 4 + sizeof run);
    json_out_rewind(&o, mark);
    json_out_put(&o, "-instead", 8);
    json_out_release(&o);
    CHECK(json_out_finish(&o));
    CHECK_STR(p.text.data, "keep-instead");
    sbuf_free(&p.text);
    sbuf_free(&scratch);
}

static void test_failed_writer(void)
{
    strbuf scratch = STRBUF_INIT;
    pieces p = {STRBUF_INIT, NULL, 0, 0, 2};
    char run[100];
    memset(run, 'r', sizeof run);
    json_out o = json_out_stream(&scratch, 16, take, &p);

    json_out_copy(&o, run, sizeof run);
    json_out_put(&o, "more than one piece of output", 29);
    CHECK(!json_out_finish(&o));
    CHECK(p.calls == 2); /* nothing after the refusal */
    sbuf_free(&p.text);
    sbuf_free(&scratch);
}

/* Appends never cost more than amortised O(1), and a huge buffer does not
 * reserve twice its size. */
static void test_strbuf_growth(void)
{
    strbuf sb = STRBUF_INIT;
    static char block[1000];

    sbuf_append(&sb, block, sizeof block);
    CHECK(sb.cap == sizeof block + 1); /* one large append: exactly that */
    sbuf_append_char(&sb, 'x');
    CHECK(sb.cap == 2 * (sizeof block + 1)); /* then doubling */
    sbuf_free(&sb);

    size_t huge = (size_t)64 << 20;
    sbuf_reserve(&sb, huge);
    CHECK(sb.cap == huge + 1);
    sb.len = huge;
    sbuf_reserve(&sb, 1);
    CHECK(sb.cap == huge + 1 + (huge + 1) / 4); /* a quarter more */
    sbuf_free(&sb);
}

int main(void)
{
    test_buffer_keeps_everything();
    test_stream_pieces();
    test_hold_rewind_release();
    test_failed_writer();
    test_strbuf_growth();
    return check_summary();
}
