/* libFuzzer target: the pgoutput decoder, over every protocol version and
 * parser state.
 *
 * Input: one flags byte, then one XLogData payload (a pgoutput message):
 *   bits 0-1  protocol version - 1 (1..4)
 *   bit 2     in_stream (between Stream Start and Stream Stop)
 *   bit 3     stream_abort_has_lsn
 * The capture tool (capture.c) writes real payloads in this form.
 *
 * Beyond not crashing, a decoded message must only point inside the input:
 * every string and value is read here, so ASan reports any pointer that
 * strays, and the failure contract (state unchanged) is checked.
 *
 * With PGSPOUT_FUZZ_EXPECT_VALID set (the replay of captured seeds), a
 * refusal is itself a failure: the server sent that message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"

static const char *buf_start, *buf_end;
static volatile unsigned sink_byte;

static void check_inside(const void *p, size_t len)
{
    const char *c = p;
    if (!c) {
        if (len != 0)
            abort();
        return;
    }
    if (c < buf_start || c + len > buf_end)
        abort();
    for (size_t i = 0; i < len; i++)
        sink_byte += (unsigned char)c[i];
}

static void check_string(const char *s)
{
    if (!s)
        return;
    check_inside(s, strlen(s) + 1);
}

static void check_tuple(const tuple *t)
{
    if (t->ncols > 0 && !t->cols)
        abort();
    for (uint16_t i = 0; i < t->ncols; i++) {
        const colval *c = &t->cols[i];
        switch (c->kind) {
        case COLVAL_TEXT:
        case COLVAL_BINARY:
            check_inside(c->data, c->len);
            break;
        case COLVAL_NULL:
        case COLVAL_UNCHANGED_TOAST:
            break;
        default:
            abort();
        }
    }
}

static void check_message(const pgoutput_msg *m)
{
    switch (m->type) {
    case PGO_ORIGIN:
        check_string(m->u.origin.name);
        break;
    case PGO_RELATION:
        check_string(m->u.relation.nspname);
        check_string(m->u.relation.relname);
        if (m->u.relation.ncols > 0 && !m->u.relation.cols)
            abort();
        for (uint16_t i = 0; i < m->u.relation.ncols; i++)
            check_string(m->u.relation.cols[i].name);
        break;
    case PGO_TYPE:
        check_string(m->u.type.nspname);
        check_string(m->u.type.name);
        break;
    case PGO_INSERT:
    case PGO_UPDATE:
    case PGO_DELETE:
        check_tuple(&m->u.change.old_tuple);
        check_tuple(&m->u.change.new_tuple);
        break;
    case PGO_TRUNCATE:
        if (m->u.truncate.nrelids > 0 && !m->u.truncate.relids)
            abort();
        for (uint32_t i = 0; i < m->u.truncate.nrelids; i++)
            sink_byte += m->u.truncate.relids[i];
        break;
    case PGO_MESSAGE:
        check_string(m->u.message.prefix);
        check_inside(m->u.message.content, m->u.message.content_len);
        break;
    case PGO_BEGIN_PREPARE:
    case PGO_PREPARE:
    case PGO_STREAM_PREPARE:
        check_string(m->u.prepare.gid);
        break;
    case PGO_COMMIT_PREPARED:
        check_string(m->u.commit_prepared.gid);
        break;
    case PGO_ROLLBACK_PREPARED:
        check_string(m->u.rollback_prepared.gid);
        break;
    default:
        break;
    }
    if (!pgoutput_msg_type_name(m->type))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    pgoutput_parser p = {
        .proto_version = 1 + (data[0] & 3),
        .in_stream = (data[0] & 4) != 0,
        .stream_abort_has_lsn = (data[0] & 8) != 0,
    };
    /* An exact-size copy, so that ASan sees a read one byte past the end. */
    size_t len = size - 1;
    char *buf = malloc(len ? len : 1);
    memcpy(buf, data + 1, len);
    buf_start = buf;
    buf_end = buf + len;

    pgoutput_parser before = p;
    pgoutput_msg m;
    char err[256];
    err[0] = '\0';
    if (pgoutput_parse(&p, buf, len, &m, err, sizeof err)) {
        check_message(&m);
        pgoutput_msg_free(&m);
    } else {
        /* A refusal explains itself and changes nothing. */
        if (!err[0] || memchr(err, '\0', sizeof err) == NULL)
            abort();
        if (p.in_stream != before.in_stream ||
            p.proto_version != before.proto_version)
            abort();
        if (getenv("PGSPOUT_FUZZ_EXPECT_VALID")) {
            fprintf(stderr, "refused a captured message: %s\n", err);
            abort();
        }
    }
    free(buf);
    return 0;
}
