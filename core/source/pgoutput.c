#include "pgoutput.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* A cursor over one message. The tuple/column context exists only to make
 * error messages precise; it costs nothing unless something fails. */
typedef struct reader {
    const char *buf;
    size_t len;
    size_t pos;
    const char *msg_name;
    const char *tuple_name; /* "new tuple", ...; NULL outside TupleData */
    long column;            /* -1 outside a column */
    char *err;
    size_t errlen;
} reader;

static size_t remaining(const reader *r)
{
    return r->len - r->pos;
}

static bool fail_at(reader *r, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail_at(reader *r, size_t offset, const char *fmt, ...)
{
    if (!r->err || r->errlen == 0)
        return false;

    int n = r->msg_name ? snprintf(r->err, r->errlen,
                                   "pgoutput %s message: ", r->msg_name)
                        : snprintf(r->err, r->errlen, "pgoutput: ");
    size_t used = n < 0 ? 0 : (size_t)n;
    if (used < r->errlen && r->tuple_name) {
        n = r->column >= 0
                ? snprintf(r->err + used, r->errlen - used,
                           "%s column %ld: ", r->tuple_name, r->column + 1)
                : snprintf(r->err + used, r->errlen - used,
                           "%s: ", r->tuple_name);
        used += n < 0 ? 0 : (size_t)n;
    }
    if (used < r->errlen) {
        va_list ap;
        va_start(ap, fmt);
        n = vsnprintf(r->err + used, r->errlen - used, fmt, ap);
        va_end(ap);
        used += n < 0 ? 0 : (size_t)n;
    }
    if (used < r->errlen)
        snprintf(r->err + used, r->errlen - used, " at offset %zu", offset);
    return false;
}

static bool take(reader *r, size_t n, const char *field, const char **out)
{
    *out = NULL;
    if (remaining(r) < n)
        return fail_at(r, r->pos,
                       "truncated reading %s (needs %zu bytes, %zu left)",
                       field, n, remaining(r));
    *out = r->buf + r->pos;
    r->pos += n;
    return true;
}

static bool get_u8(reader *r, const char *field, uint8_t *v)
{
    const char *p;
    if (!take(r, 1, field, &p))
        return false;
    *v = (uint8_t)p[0];
    return true;
}

static bool get_u16(reader *r, const char *field, uint16_t *v)
{
    const char *p;
    if (!take(r, 2, field, &p))
        return false;
    const unsigned char *b = (const unsigned char *)p;
    *v = (uint16_t)((unsigned)b[0] << 8 | b[1]);
    return true;
}

static bool get_u32(reader *r, const char *field, uint32_t *v)
{
    const char *p;
    if (!take(r, 4, field, &p))
        return false;
    const unsigned char *b = (const unsigned char *)p;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         b[3];
    return true;
}

static bool get_i32(reader *r, const char *field, int32_t *v)
{
    uint32_t u;
    if (!get_u32(r, field, &u))
        return false;
    /* memcpy keeps the two's-complement reinterpretation well defined. */
    memcpy(v, &u, sizeof *v);
    return true;
}

static bool get_u64(reader *r, const char *field, uint64_t *v)
{
    const char *p;
    if (!take(r, 8, field, &p))
        return false;
    const unsigned char *b = (const unsigned char *)p;
    uint64_t acc = 0;
    for (int i = 0; i < 8; i++)
        acc = acc << 8 | b[i];
    *v = acc;
    return true;
}

/* Reads a PostgreSQL timestamp and moves it to the Unix epoch. */
static bool get_time(reader *r, const char *field, int64_t *v)
{
    size_t start = r->pos;
    uint64_t u;
    int64_t pg_us;
    if (!get_u64(r, field, &u))
        return false;
    memcpy(&pg_us, &u, sizeof pg_us);
    if (__builtin_add_overflow(pg_us, PGOUTPUT_EPOCH_OFFSET_US, v))
        return fail_at(r, start, "%s %lld is out of range", field,
                       (long long)pg_us);
    return true;
}

/* Returns a pointer into the buffer; the terminator must be inside it. */
static bool get_string(reader *r, const char *field, const char **s)
{
    const char *start = r->buf + r->pos;
    const char *nul = memchr(start, '\0', remaining(r));
    if (!nul)
        return fail_at(r, r->pos, "%s is not NUL-terminated within the message",
                       field);
    *s = start;
    r->pos += (size_t)(nul - start) + 1;
    return true;
}

/* A length-prefixed byte run (column values, Message content). */
static bool get_counted_bytes(reader *r, const char *field, uint32_t *len,
                              const char **data)
{
    size_t start = r->pos;
    int32_t n;
    if (!get_i32(r, field, &n))
        return false;
    if (n < 0)
        return fail_at(r, start, "%s has negative length %d", field, (int)n);
    *len = (uint32_t)n;
    return take(r, (size_t)n, field, data);
}

static bool get_tuple(reader *r, const char *what, tuple *t)
{
    uint16_t ncols;
    size_t start = r->pos;

    r->tuple_name = what;
    r->column = -1;
    if (!get_u16(r, "column count", &ncols))
        return false;
    /* Every column takes at least its kind byte; checking first keeps a
     * corrupt count from allocating for columns that cannot be there. */
    if (ncols > remaining(r))
        return fail_at(r, start, "column count %u exceeds the %zu bytes left",
                       (unsigned)ncols, remaining(r));
    t->ncols = ncols;
    t->cols = ncols ? xmalloc(ncols * sizeof *t->cols) : NULL;

    for (uint16_t i = 0; i < ncols; i++) {
        colval *c = &t->cols[i];
        uint8_t kind;

        r->column = i;
        if (!get_u8(r, "kind", &kind))
            return false;
        c->kind = (char)kind;
        c->len = 0;
        c->data = NULL;
        switch (kind) {
        case COLVAL_NULL:
        case COLVAL_UNCHANGED_TOAST:
            break;
        case COLVAL_TEXT:
        case COLVAL_BINARY:
            if (!get_counted_bytes(r, "value", &c->len, &c->data))
                return false;
            break;
        default:
            return fail_at(r, r->pos - 1,
                           "unknown column kind 0x%02x ('%c'), expected one "
                           "of 'n', 'u', 't', 'b'",
                           (unsigned)kind,
                           kind >= 0x20 && kind < 0x7f ? (char)kind : '?');
        }
    }
    r->tuple_name = NULL;
    r->column = -1;
    return true;
}

static bool parse_begin(reader *r, pgoutput_msg *m)
{
    m->has_xid = true;
    return get_u64(r, "final LSN", &m->u.begin.final_lsn) &&
           get_time(r, "commit timestamp", &m->u.begin.commit_time) &&
           get_u32(r, "xid", &m->xid);
}

static bool parse_commit_fields(reader *r, pgoutput_msg *m)
{
    return get_u8(r, "flags", &m->u.commit.flags) &&
           get_u64(r, "commit LSN", &m->u.commit.commit_lsn) &&
           get_u64(r, "end LSN", &m->u.commit.end_lsn) &&
           get_time(r, "commit timestamp", &m->u.commit.commit_time);
}

static bool parse_origin(reader *r, pgoutput_msg *m)
{
    return get_u64(r, "origin commit LSN", &m->u.origin.commit_lsn) &&
           get_string(r, "origin name", &m->u.origin.name);
}

static bool parse_relation(reader *r, pgoutput_msg *m)
{
    uint8_t replident;
    uint16_t ncols;
    size_t count_at;

    if (!get_u32(r, "relation OID", &m->u.relation.oid) ||
        !get_string(r, "namespace", &m->u.relation.nspname) ||
        !get_string(r, "relation name", &m->u.relation.relname) ||
        !get_u8(r, "replica identity", &replident))
        return false;
    m->u.relation.replica_identity = (char)replident;

    count_at = r->pos;
    if (!get_u16(r, "column count", &ncols))
        return false;
    /* A column needs at least 10 bytes: flags, empty name, OID, typmod. */
    if (ncols > remaining(r) / 10)
        return fail_at(r, count_at,
                       "column count %u does not fit in the %zu bytes left",
                       (unsigned)ncols, remaining(r));
    m->u.relation.ncols = ncols;
    m->u.relation.cols =
        ncols ? xcalloc(ncols, sizeof *m->u.relation.cols) : NULL;

    r->tuple_name = "relation";
    for (uint16_t i = 0; i < ncols; i++) {
        pgoutput_column *c = &m->u.relation.cols[i];
        r->column = i;
        if (!get_u8(r, "flags", &c->flags) ||
            !get_string(r, "name", &c->name) ||
            !get_u32(r, "type OID", &c->type_oid) ||
            !get_i32(r, "type modifier", &c->typmod))
            return false;
        c->key = (c->flags & PGO_COLUMN_FLAG_KEY) != 0;
    }
    r->tuple_name = NULL;
    r->column = -1;
    return true;
}

static bool parse_type(reader *r, pgoutput_msg *m)
{
    return get_u32(r, "type OID", &m->u.type.oid) &&
           get_string(r, "namespace", &m->u.type.nspname) &&
           get_string(r, "type name", &m->u.type.name);
}

static bool expect_new_tuple_marker(reader *r, uint8_t marker)
{
    if (marker == 'N')
        return true;
    return fail_at(r, r->pos - 1, "expected 'N' (new tuple), got 0x%02x",
                   (unsigned)marker);
}

static bool parse_insert(reader *r, pgoutput_msg *m)
{
    uint8_t marker;
    return get_u32(r, "relation OID", &m->u.change.relid) &&
           get_u8(r, "tuple marker", &marker) &&
           expect_new_tuple_marker(r, marker) &&
           get_tuple(r, "new tuple", &m->u.change.new_tuple);
}

static bool parse_update(reader *r, pgoutput_msg *m)
{
    uint8_t marker;
    if (!get_u32(r, "relation OID", &m->u.change.relid) ||
        !get_u8(r, "tuple marker", &marker))
        return false;
    if (marker == 'K' || marker == 'O') {
        m->u.change.old_kind = (char)marker;
        if (!get_tuple(r, marker == 'K' ? "old key" : "old tuple",
                       &m->u.change.old_tuple) ||
            !get_u8(r, "new tuple marker", &marker))
            return false;
    } else if (marker != 'N') {
        return fail_at(r, r->pos - 1,
                       "expected 'K', 'O' or 'N' tuple marker, got 0x%02x",
                       (unsigned)marker);
    }
    return expect_new_tuple_marker(r, marker) &&
           get_tuple(r, "new tuple", &m->u.change.new_tuple);
}

static bool parse_delete(reader *r, pgoutput_msg *m)
{
    uint8_t marker;
    if (!get_u32(r, "relation OID", &m->u.change.relid) ||
        !get_u8(r, "tuple marker", &marker))
        return false;
    if (marker != 'K' && marker != 'O')
        return fail_at(r, r->pos - 1,
                       "expected 'K' or 'O' tuple marker, got 0x%02x",
                       (unsigned)marker);
    m->u.change.old_kind = (char)marker;
    return get_tuple(r, marker == 'K' ? "old key" : "old tuple",
                     &m->u.change.old_tuple);
}

static bool parse_truncate(reader *r, pgoutput_msg *m)
{
    uint32_t n;
    size_t count_at = r->pos;

    if (!get_u32(r, "relation count", &n) ||
        !get_u8(r, "options", &m->u.truncate.options))
        return false;
    m->u.truncate.cascade = (m->u.truncate.options & PGO_TRUNCATE_CASCADE) != 0;
    m->u.truncate.restart_identity =
        (m->u.truncate.options & PGO_TRUNCATE_RESTART_IDENTITY) != 0;
    if (n > remaining(r) / 4)
        return fail_at(r, count_at,
                       "relation count %u does not fit in the %zu bytes left",
                       (unsigned)n, remaining(r));
    m->u.truncate.nrelids = n;
    m->u.truncate.relids = n ? xmalloc(n * sizeof(uint32_t)) : NULL;
    for (uint32_t i = 0; i < n; i++)
        if (!get_u32(r, "relation OID", &m->u.truncate.relids[i]))
            return false;
    return true;
}

static bool parse_message(reader *r, pgoutput_msg *m)
{
    if (!get_u8(r, "flags", &m->u.message.flags) ||
        !get_u64(r, "LSN", &m->u.message.lsn) ||
        !get_string(r, "prefix", &m->u.message.prefix) ||
        !get_counted_bytes(r, "content", &m->u.message.content_len,
                           &m->u.message.content))
        return false;
    m->u.message.transactional =
        (m->u.message.flags & PGO_MESSAGE_FLAG_TRANSACTIONAL) != 0;
    return true;
}

static bool parse_stream_start(reader *r, pgoutput_msg *m)
{
    uint8_t first;
    m->has_xid = true;
    if (!get_u32(r, "xid", &m->xid) || !get_u8(r, "first segment flag", &first))
        return false;
    m->u.stream_start.first_segment = first == 1;
    return true;
}

static bool parse_stream_commit(reader *r, pgoutput_msg *m)
{
    m->has_xid = true;
    return get_u32(r, "xid", &m->xid) && parse_commit_fields(r, m);
}

static bool parse_stream_abort(reader *r, pgoutput_msg *m, bool has_lsn)
{
    m->has_xid = true;
    if (!get_u32(r, "xid", &m->xid) ||
        !get_u32(r, "subtransaction xid", &m->u.stream_abort.subxid))
        return false;
    m->u.stream_abort.has_abort_lsn = has_lsn;
    if (!has_lsn)
        return true;
    return get_u64(r, "abort LSN", &m->u.stream_abort.abort_lsn) &&
           get_time(r, "abort timestamp", &m->u.stream_abort.abort_time);
}

static bool parse_begin_prepare(reader *r, pgoutput_msg *m)
{
    m->has_xid = true;
    return get_u64(r, "prepare LSN", &m->u.prepare.prepare_lsn) &&
           get_u64(r, "end LSN", &m->u.prepare.end_lsn) &&
           get_time(r, "prepare timestamp", &m->u.prepare.prepare_time) &&
           get_u32(r, "xid", &m->xid) &&
           get_string(r, "GID", &m->u.prepare.gid);
}

/* Prepare and Stream Prepare share one layout. */
static bool parse_prepare(reader *r, pgoutput_msg *m)
{
    m->has_xid = true;
    return get_u8(r, "flags", &m->u.prepare.flags) &&
           get_u64(r, "prepare LSN", &m->u.prepare.prepare_lsn) &&
           get_u64(r, "end LSN", &m->u.prepare.end_lsn) &&
           get_time(r, "prepare timestamp", &m->u.prepare.prepare_time) &&
           get_u32(r, "xid", &m->xid) &&
           get_string(r, "GID", &m->u.prepare.gid);
}

static bool parse_commit_prepared(reader *r, pgoutput_msg *m)
{
    m->has_xid = true;
    return get_u8(r, "flags", &m->u.commit_prepared.flags) &&
           get_u64(r, "commit LSN", &m->u.commit_prepared.commit_lsn) &&
           get_u64(r, "end LSN", &m->u.commit_prepared.end_lsn) &&
           get_time(r, "commit timestamp", &m->u.commit_prepared.commit_time) &&
           get_u32(r, "xid", &m->xid) &&
           get_string(r, "GID", &m->u.commit_prepared.gid);
}

static bool parse_rollback_prepared(reader *r, pgoutput_msg *m)
{
    m->has_xid = true;
    return get_u8(r, "flags", &m->u.rollback_prepared.flags) &&
           get_u64(r, "prepare end LSN",
                   &m->u.rollback_prepared.prepare_end_lsn) &&
           get_u64(r, "rollback end LSN",
                   &m->u.rollback_prepared.rollback_end_lsn) &&
           get_time(r, "prepare timestamp",
                    &m->u.rollback_prepared.prepare_time) &&
           get_time(r, "rollback timestamp",
                    &m->u.rollback_prepared.rollback_time) &&
           get_u32(r, "xid", &m->xid) &&
           get_string(r, "GID", &m->u.rollback_prepared.gid);
}

static const char *known_type_name(int type_byte)
{
    switch (type_byte) {
    case PGO_BEGIN:
        return "Begin";
    case PGO_MESSAGE:
        return "Message";
    case PGO_COMMIT:
        return "Commit";
    case PGO_ORIGIN:
        return "Origin";
    case PGO_RELATION:
        return "Relation";
    case PGO_TYPE:
        return "Type";
    case PGO_INSERT:
        return "Insert";
    case PGO_UPDATE:
        return "Update";
    case PGO_DELETE:
        return "Delete";
    case PGO_TRUNCATE:
        return "Truncate";
    case PGO_STREAM_START:
        return "Stream Start";
    case PGO_STREAM_STOP:
        return "Stream Stop";
    case PGO_STREAM_COMMIT:
        return "Stream Commit";
    case PGO_STREAM_ABORT:
        return "Stream Abort";
    case PGO_BEGIN_PREPARE:
        return "Begin Prepare";
    case PGO_PREPARE:
        return "Prepare";
    case PGO_COMMIT_PREPARED:
        return "Commit Prepared";
    case PGO_ROLLBACK_PREPARED:
        return "Rollback Prepared";
    case PGO_STREAM_PREPARE:
        return "Stream Prepare";
    default:
        return NULL;
    }
}

static int min_proto_version(pgoutput_msg_type t)
{
    switch (t) {
    case PGO_STREAM_START:
    case PGO_STREAM_STOP:
    case PGO_STREAM_COMMIT:
    case PGO_STREAM_ABORT:
        return 2;
    case PGO_BEGIN_PREPARE:
    case PGO_PREPARE:
    case PGO_COMMIT_PREPARED:
    case PGO_ROLLBACK_PREPARED:
    case PGO_STREAM_PREPARE:
        return 3;
    default:
        return 1;
    }
}

/* The messages that carry a leading xid when sent inside a streamed block. */
static bool may_carry_stream_xid(pgoutput_msg_type t)
{
    switch (t) {
    case PGO_RELATION:
    case PGO_TYPE:
    case PGO_INSERT:
    case PGO_UPDATE:
    case PGO_DELETE:
    case PGO_TRUNCATE:
    case PGO_MESSAGE:
        return true;
    default:
        return false;
    }
}

/* Stream state checks keep the xid-prefix decision honest: if the parser
 * lost track of the block boundaries, every later change would be misread. */
static bool check_stream_state(reader *r, const pgoutput_parser *p,
                               pgoutput_msg_type t)
{
    switch (t) {
    case PGO_STREAM_START:
        if (p->in_stream)
            return fail_at(r, 0, "already inside a streamed block");
        return true;
    case PGO_STREAM_STOP:
        if (!p->in_stream)
            return fail_at(r, 0, "not inside a streamed block");
        return true;
    case PGO_STREAM_COMMIT:
    case PGO_STREAM_ABORT:
    case PGO_STREAM_PREPARE:
        if (p->in_stream)
            return fail_at(r, 0, "inside a streamed block (no Stream Stop)");
        return true;
    default:
        return true;
    }
}

static bool dispatch(reader *r, const pgoutput_parser *p, pgoutput_msg *m)
{
    switch (m->type) {
    case PGO_BEGIN:
        return parse_begin(r, m);
    case PGO_COMMIT:
        return parse_commit_fields(r, m);
    case PGO_ORIGIN:
        return parse_origin(r, m);
    case PGO_RELATION:
        return parse_relation(r, m);
    case PGO_TYPE:
        return parse_type(r, m);
    case PGO_INSERT:
        return parse_insert(r, m);
    case PGO_UPDATE:
        return parse_update(r, m);
    case PGO_DELETE:
        return parse_delete(r, m);
    case PGO_TRUNCATE:
        return parse_truncate(r, m);
    case PGO_MESSAGE:
        return parse_message(r, m);
    case PGO_STREAM_START:
        return parse_stream_start(r, m);
    case PGO_STREAM_STOP:
        return true;
    case PGO_STREAM_COMMIT:
        return parse_stream_commit(r, m);
    case PGO_STREAM_ABORT:
        return parse_stream_abort(
            r, m, p->proto_version >= 4 && p->stream_abort_has_lsn);
    case PGO_BEGIN_PREPARE:
        return parse_begin_prepare(r, m);
    case PGO_PREPARE:
    case PGO_STREAM_PREPARE:
        return parse_prepare(r, m);
    case PGO_COMMIT_PREPARED:
        return parse_commit_prepared(r, m);
    case PGO_ROLLBACK_PREPARED:
        return parse_rollback_prepared(r, m);
    }
    return fail_at(r, 0, "no decoder");
}

bool pgoutput_parse(pgoutput_parser *p, const char *buf, size_t len,
                    pgoutput_msg *out, char *err, size_t errlen)
{
    reader r = {.buf = buf,
                .len = len,
                .msg_name = NULL,
                .column = -1,
                .err = err,
                .errlen = errlen};
    pgoutput_msg m;
    uint8_t type_byte;

    memset(out, 0, sizeof *out);
    memset(&m, 0, sizeof m);
    if (err && errlen > 0)
        err[0] = '\0';

    if (p->proto_version < 1 || p->proto_version > 4)
        return fail_at(&r, 0, "unsupported protocol version %d",
                       p->proto_version);
    if (!get_u8(&r, "message type", &type_byte))
        return false;

    m.type = (pgoutput_msg_type)type_byte;
    r.msg_name = known_type_name(type_byte);
    if (!r.msg_name) {
        return fail_at(
            &r, 0, "unknown message type 0x%02x ('%c')", (unsigned)type_byte,
            type_byte >= 0x20 && type_byte < 0x7f ? (char)type_byte : '?');
    }
    if (p->proto_version < min_proto_version(m.type))
        return fail_at(&r, 0,
                       "needs protocol version %d or later, the stream uses "
                       "version %d",
                       min_proto_version(m.type), p->proto_version);
    if (!check_stream_state(&r, p, m.type))
        return false;

    if (p->proto_version >= 2 && p->in_stream && may_carry_stream_xid(m.type)) {
        m.has_xid = true;
        if (!get_u32(&r, "streamed xid", &m.xid))
            return false;
    }

    if (!dispatch(&r, p, &m)) {
        pgoutput_msg_free(&m);
        return false;
    }
    if (remaining(&r) > 0) {
        fail_at(&r, r.pos, "%zu unexpected trailing bytes", remaining(&r));
        pgoutput_msg_free(&m);
        return false;
    }

    if (m.type == PGO_STREAM_START)
        p->in_stream = true;
    else if (m.type == PGO_STREAM_STOP)
        p->in_stream = false;
    *out = m;
    return true;
}

void pgoutput_msg_free(pgoutput_msg *m)
{
    switch (m->type) {
    case PGO_RELATION:
        free(m->u.relation.cols);
        m->u.relation.cols = NULL;
        m->u.relation.ncols = 0;
        break;
    case PGO_INSERT:
    case PGO_UPDATE:
    case PGO_DELETE:
        free(m->u.change.old_tuple.cols);
        free(m->u.change.new_tuple.cols);
        m->u.change.old_tuple = (tuple){0};
        m->u.change.new_tuple = (tuple){0};
        break;
    case PGO_TRUNCATE:
        free(m->u.truncate.relids);
        m->u.truncate.relids = NULL;
        m->u.truncate.nrelids = 0;
        break;
    default:
        break;
    }
}

const char *pgoutput_msg_type_name(pgoutput_msg_type t)
{
    const char *name = known_type_name((int)t);
    return name ? name : "unknown";
}
