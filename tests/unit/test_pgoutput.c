/* Unit tests for the pgoutput decoder. Messages are assembled byte by byte
 * with a small builder, and every parse runs on an exact-size heap copy so
 * that AddressSanitizer catches any read past the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pgoutput.h"

#define PG_EPOCH_US INT64_C(946684800000000)

/* ---- message builder ---------------------------------------------------- */

typedef struct msgbuf {
    unsigned char data[2048];
    size_t len;
} msgbuf;

static void put_bytes(msgbuf *b, const void *p, size_t n)
{
    if (b->len + n > sizeof b->data)
        abort();
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_u8(msgbuf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put_bytes(b, &c, 1);
}

static void put_u16(msgbuf *b, unsigned v)
{
    put_u8(b, (v >> 8) & 0xff);
    put_u8(b, v & 0xff);
}

static void put_u32(msgbuf *b, uint32_t v)
{
    put_u16(b, (v >> 16) & 0xffff);
    put_u16(b, v & 0xffff);
}

static void put_u64(msgbuf *b, uint64_t v)
{
    put_u32(b, (uint32_t)(v >> 32));
    put_u32(b, (uint32_t)v);
}

static void put_i64(msgbuf *b, int64_t v)
{
    put_u64(b, (uint64_t)v);
}

static void put_str(msgbuf *b, const char *s)
{
    put_bytes(b, s, strlen(s) + 1);
}

static void put_col(msgbuf *b, char kind, const void *data, size_t n)
{
    put_u8(b, (unsigned char)kind);
    if (kind == 't' || kind == 'b') {
        put_u32(b, (uint32_t)n);
        put_bytes(b, data, n);
    }
}

static void put_text_col(msgbuf *b, const char *s)
{
    put_col(b, 't', s, strlen(s));
}

/* ---- parsing helpers ---------------------------------------------------- */

typedef struct parsed {
    char *copy; /* the exact-size buffer the message points into */
    pgoutput_msg m;
    bool ok;
    char err[256];
} parsed;

static pgoutput_parser parser(int version)
{
    pgoutput_parser p = {version, false, false};
    return p;
}

static bool parse_n(pgoutput_parser *p, const msgbuf *b, size_t len,
                    parsed *out)
{
    memset(out, 0, sizeof *out);
    out->copy = malloc(len ? len : 1);
    memcpy(out->copy, b->data, len);
    out->ok =
        pgoutput_parse(p, out->copy, len, &out->m, out->err, sizeof out->err);
    return out->ok;
}

static bool parse(pgoutput_parser *p, const msgbuf *b, parsed *out)
{
    return parse_n(p, b, b->len, out);
}

static void done(parsed *r)
{
    pgoutput_msg_free(&r->m);
    free(r->copy);
    r->copy = NULL;
}

static void check_err_has(const parsed *r, const char *needle, int line)
{
    check_report(!r->ok && strstr(r->err, needle) != NULL,
                 "error message contains expected text", __FILE__, line, r->err,
                 needle);
}
#define CHECK_ERR_HAS(r, needle) check_err_has((r), (needle), __LINE__)

static bool col_is(const colval *c, char kind, const char *text)
{
    if (c->kind != kind)
        return false;
    if (!text)
        return c->data == NULL && c->len == 0;
    return c->data != NULL && c->len == strlen(text) &&
           memcmp(c->data, text, c->len) == 0;
}

/* Every proper prefix of a valid message must be refused with an error, the
 * parser state untouched; one extra byte at the end must be refused too. */
static void check_truncations_fail(const pgoutput_parser *cfg, const msgbuf *b,
                                   const char *label)
{
    size_t refused = 0, with_message = 0, state_kept = 0, zeroed = 0;
    for (size_t n = 0; n < b->len; n++) {
        pgoutput_parser p = *cfg;
        parsed r;
        if (!parse_n(&p, b, n, &r))
            refused++;
        if (strncmp(r.err, "pgoutput", 8) == 0)
            with_message++;
        if (p.in_stream == cfg->in_stream)
            state_kept++;
        if (r.m.type == 0 && r.m.u.change.new_tuple.cols == NULL)
            zeroed++;
        done(&r);
    }
    printf("# %s: %zu bytes\n", label, b->len);
    CHECK(refused == b->len);
    CHECK(with_message == b->len);
    CHECK(state_kept == b->len);
    CHECK(zeroed == b->len);

    msgbuf longer = *b;
    put_u8(&longer, 0x7f);
    pgoutput_parser p = *cfg;
    parsed r;
    parse(&p, &longer, &r);
    CHECK_ERR_HAS(&r, "trailing");
    done(&r);
}

/* ---- message constructors ----------------------------------------------- */

static void build_begin(msgbuf *b)
{
    put_u8(b, 'B');
    put_u64(b, 0x16B37A0);
    put_i64(b, 817257322123456); /* 2025-11-24-ish, PG epoch */
    put_u32(b, 741);
}

static void build_commit(msgbuf *b)
{
    put_u8(b, 'C');
    put_u8(b, 0);
    put_u64(b, 0x16B37A0);
    put_u64(b, 0x16B37D8);
    put_i64(b, 0);
}

static void build_origin(msgbuf *b)
{
    put_u8(b, 'O');
    put_u64(b, 0xABCDEF0123ULL);
    put_str(b, "node_a");
}

static void maybe_xid(msgbuf *b, bool streamed)
{
    if (streamed)
        put_u32(b, 9001);
}

static void build_relation(msgbuf *b, bool streamed)
{
    put_u8(b, 'R');
    maybe_xid(b, streamed);
    put_u32(b, 16384);
    put_str(b, "public");
    put_str(b, "orders");
    put_u8(b, 'd');
    put_u16(b, 3);
    put_u8(b, 1);
    put_str(b, "id");
    put_u32(b, 20);
    put_u32(b, 0xffffffff); /* typmod -1 */
    put_u8(b, 0);
    put_str(b, "note");
    put_u32(b, 1043);
    put_u32(b, 68); /* varchar(64) */
    put_u8(b, 0);
    put_str(b, "");
    put_u32(b, 25);
    put_u32(b, 0xffffffff);
}

static void build_type(msgbuf *b, bool streamed)
{
    put_u8(b, 'Y');
    maybe_xid(b, streamed);
    put_u32(b, 70001);
    put_str(b, "");
    put_str(b, "mood");
}

static const unsigned char binary_value[] = {0x00, 0x01, 0x00, 0xff};

static void put_all_kinds_tuple(msgbuf *b)
{
    put_u16(b, 5);
    put_text_col(b, "42");
    put_col(b, 'n', NULL, 0);
    put_col(b, 'u', NULL, 0);
    put_col(b, 'b', binary_value, sizeof binary_value);
    put_text_col(b, "");
}

static void build_insert(msgbuf *b, bool streamed)
{
    put_u8(b, 'I');
    maybe_xid(b, streamed);
    put_u32(b, 16384);
    put_u8(b, 'N');
    put_all_kinds_tuple(b);
}

/* old_kind 0: no old tuple. */
static void build_update(msgbuf *b, bool streamed, char old_kind)
{
    put_u8(b, 'U');
    maybe_xid(b, streamed);
    put_u32(b, 16384);
    if (old_kind) {
        put_u8(b, (unsigned char)old_kind);
        put_u16(b, 2);
        put_text_col(b, "1");
        put_col(b, 'n', NULL, 0);
    }
    put_u8(b, 'N');
    put_u16(b, 2);
    put_text_col(b, "2");
    put_col(b, 'u', NULL, 0);
}

static void build_delete(msgbuf *b, bool streamed, char old_kind)
{
    put_u8(b, 'D');
    maybe_xid(b, streamed);
    put_u32(b, 16384);
    put_u8(b, (unsigned char)old_kind);
    put_u16(b, 1);
    put_text_col(b, "7");
}

static void build_truncate(msgbuf *b, bool streamed)
{
    put_u8(b, 'T');
    maybe_xid(b, streamed);
    put_u32(b, 3);
    put_u8(b, 3);
    put_u32(b, 16384);
    put_u32(b, 16390);
    put_u32(b, 4000000000u);
}

static const char message_content[] = {'h', 'i', '\0', '!'};

static void build_message(msgbuf *b, bool streamed, bool transactional)
{
    put_u8(b, 'M');
    maybe_xid(b, streamed);
    put_u8(b, transactional ? 1 : 0);
    put_u64(b, 0x2000000);
    put_str(b, "audit");
    put_u32(b, sizeof message_content);
    put_bytes(b, message_content, sizeof message_content);
}

static void build_stream_start(msgbuf *b, bool first)
{
    put_u8(b, 'S');
    put_u32(b, 9001);
    put_u8(b, first ? 1 : 0);
}

static void build_stream_stop(msgbuf *b)
{
    put_u8(b, 'E');
}

static void build_stream_commit(msgbuf *b)
{
    put_u8(b, 'c');
    put_u32(b, 9001);
    put_u8(b, 0);
    put_u64(b, 0x3000000);
    put_u64(b, 0x3000040);
    put_i64(b, 1000000);
}

static void build_stream_abort(msgbuf *b, bool with_lsn)
{
    put_u8(b, 'A');
    put_u32(b, 9001);
    put_u32(b, 9005);
    if (with_lsn) {
        put_u64(b, 0x4000000);
        put_i64(b, -1); /* one microsecond before 2000-01-01 */
    }
}

static void build_begin_prepare(msgbuf *b)
{
    put_u8(b, 'b');
    put_u64(b, 0x5000000);
    put_u64(b, 0x5000080);
    put_i64(b, 5);
    put_u32(b, 777);
    put_str(b, "gid-1");
}

static void build_prepare(msgbuf *b, char type)
{
    put_u8(b, (unsigned char)type);
    put_u8(b, 0);
    put_u64(b, 0x5000000);
    put_u64(b, 0x5000080);
    put_i64(b, 6);
    put_u32(b, 777);
    put_str(b, "gid-1");
}

static void build_commit_prepared(msgbuf *b)
{
    put_u8(b, 'K');
    put_u8(b, 0);
    put_u64(b, 0x6000000);
    put_u64(b, 0x6000080);
    put_i64(b, 7);
    put_u32(b, 777);
    put_str(b, "gid-1");
}

static void build_rollback_prepared(msgbuf *b)
{
    put_u8(b, 'r');
    put_u8(b, 0);
    put_u64(b, 0x5000080);
    put_u64(b, 0x7000080);
    put_i64(b, 6);
    put_i64(b, 8);
    put_u32(b, 777);
    put_str(b, "");
}

/* ---- tests -------------------------------------------------------------- */

static void test_begin_commit_origin(void)
{
    for (int v = 1; v <= 4; v++) {
        pgoutput_parser p = parser(v);
        msgbuf b = {0};
        parsed r;

        build_begin(&b);
        CHECK(parse(&p, &b, &r));
        CHECK(r.m.type == PGO_BEGIN);
        CHECK(r.m.has_xid && r.m.xid == 741);
        CHECK(r.m.u.begin.final_lsn == 0x16B37A0);
        CHECK(r.m.u.begin.commit_time == 817257322123456 + PG_EPOCH_US);
        done(&r);
        check_truncations_fail(&p, &b, "Begin");

        b.len = 0;
        build_commit(&b);
        CHECK(parse(&p, &b, &r));
        CHECK(r.m.type == PGO_COMMIT);
        CHECK(!r.m.has_xid);
        CHECK(r.m.u.commit.flags == 0);
        CHECK(r.m.u.commit.commit_lsn == 0x16B37A0);
        CHECK(r.m.u.commit.end_lsn == 0x16B37D8);
        /* PostgreSQL's epoch itself: 2000-01-01T00:00:00Z. */
        CHECK(r.m.u.commit.commit_time == 946684800000000);
        done(&r);
        check_truncations_fail(&p, &b, "Commit");

        b.len = 0;
        build_origin(&b);
        CHECK(parse(&p, &b, &r));
        CHECK(r.m.type == PGO_ORIGIN);
        CHECK(r.m.u.origin.commit_lsn == 0xABCDEF0123ULL);
        CHECK_STR(r.m.u.origin.name, "node_a");
        /* Zero-copy: the name points into the caller's buffer. */
        CHECK(r.m.u.origin.name == r.copy + 9);
        done(&r);
        check_truncations_fail(&p, &b, "Origin");
    }
}

static void check_relation(const parsed *r, bool streamed)
{
    const pgoutput_msg *m = &r->m;
    CHECK(r->ok);
    CHECK(m->type == PGO_RELATION);
    CHECK(m->has_xid == streamed);
    CHECK(!streamed || m->xid == 9001);
    CHECK(m->u.relation.oid == 16384);
    CHECK_STR(m->u.relation.nspname, "public");
    CHECK_STR(m->u.relation.relname, "orders");
    CHECK(m->u.relation.replica_identity == 'd');
    CHECK(m->u.relation.ncols == 3);
    if (m->u.relation.ncols != 3)
        return;
    const pgoutput_column *c = m->u.relation.cols;
    CHECK(c[0].key && c[0].flags == 1);
    CHECK_STR(c[0].name, "id");
    CHECK(c[0].type_oid == 20 && c[0].typmod == -1);
    CHECK(!c[1].key);
    CHECK_STR(c[1].name, "note");
    CHECK(c[1].type_oid == 1043 && c[1].typmod == 68);
    CHECK_STR(c[2].name, "");
    CHECK(c[2].type_oid == 25);
}

static void check_all_kinds_tuple(const tuple *t)
{
    CHECK(t->ncols == 5);
    if (t->ncols != 5)
        return;
    CHECK(col_is(&t->cols[0], COLVAL_TEXT, "42"));
    CHECK(col_is(&t->cols[1], COLVAL_NULL, NULL));
    CHECK(col_is(&t->cols[2], COLVAL_UNCHANGED_TOAST, NULL));
    CHECK(t->cols[3].kind == COLVAL_BINARY);
    CHECK(t->cols[3].len == sizeof binary_value);
    CHECK(t->cols[3].data &&
          memcmp(t->cols[3].data, binary_value, sizeof binary_value) == 0);
    CHECK(col_is(&t->cols[4], COLVAL_TEXT, ""));
}

/* The data-carrying messages, outside a stream (every version) or inside
 * one (v2+, leading xid). */
static void test_changes(int version, bool streamed)
{
    pgoutput_parser p = parser(version);
    p.in_stream = streamed;
    msgbuf b = {0};
    parsed r;

    printf("# changes, protocol %d, %s\n", version,
           streamed ? "streamed" : "not streamed");

    build_relation(&b, streamed);
    parse(&p, &b, &r);
    check_relation(&r, streamed);
    done(&r);
    check_truncations_fail(&p, &b, "Relation");

    b.len = 0;
    build_type(&b, streamed);
    CHECK(parse(&p, &b, &r));
    CHECK(r.m.type == PGO_TYPE && r.m.has_xid == streamed);
    CHECK(r.m.u.type.oid == 70001);
    CHECK_STR(r.m.u.type.nspname, "");
    CHECK_STR(r.m.u.type.name, "mood");
    done(&r);
    check_truncations_fail(&p, &b, "Type");

    b.len = 0;
    build_insert(&b, streamed);
    CHECK(parse(&p, &b, &r));
    CHECK(r.m.type == PGO_INSERT && r.m.has_xid == streamed);
    CHECK(!streamed || r.m.xid == 9001);
    CHECK(r.m.u.change.relid == 16384);
    CHECK(r.m.u.change.old_kind == 0 && r.m.u.change.old_tuple.ncols == 0);
    check_all_kinds_tuple(&r.m.u.change.new_tuple);
    /* Zero-copy: the first value "42" sits right after its length. */
    if (r.m.u.change.new_tuple.ncols > 0)
        CHECK(r.m.u.change.new_tuple.cols[0].data ==
              r.copy + (streamed ? 4 : 0) + 1 + 4 + 1 + 2 + 1 + 4);
    done(&r);
    check_truncations_fail(&p, &b, "Insert");

    const char update_kinds[] = {0, 'K', 'O'};
    for (size_t i = 0; i < sizeof update_kinds; i++) {
        char kind = update_kinds[i];
        b.len = 0;
        build_update(&b, streamed, kind);
        CHECK(parse(&p, &b, &r));
        CHECK(r.m.type == PGO_UPDATE && r.m.has_xid == streamed);
        CHECK(r.m.u.change.old_kind == kind);
        if (kind && r.m.u.change.old_tuple.ncols == 2) {
            CHECK(col_is(&r.m.u.change.old_tuple.cols[0], 't', "1"));
            CHECK(col_is(&r.m.u.change.old_tuple.cols[1], 'n', NULL));
        } else {
            CHECK(!kind && r.m.u.change.old_tuple.ncols == 0);
            CHECK(r.m.u.change.old_tuple.cols == NULL);
        }
        CHECK(r.m.u.change.new_tuple.ncols == 2);
        if (r.m.u.change.new_tuple.ncols == 2) {
            CHECK(col_is(&r.m.u.change.new_tuple.cols[0], 't', "2"));
            CHECK(col_is(&r.m.u.change.new_tuple.cols[1], 'u', NULL));
        }
        done(&r);
        check_truncations_fail(&p, &b, "Update");
    }

    const char delete_kinds[] = {'K', 'O'};
    for (size_t i = 0; i < sizeof delete_kinds; i++) {
        b.len = 0;
        build_delete(&b, streamed, delete_kinds[i]);
        CHECK(parse(&p, &b, &r));
        CHECK(r.m.type == PGO_DELETE && r.m.has_xid == streamed);
        CHECK(r.m.u.change.old_kind == delete_kinds[i]);
        CHECK(r.m.u.change.old_tuple.ncols == 1 &&
              col_is(&r.m.u.change.old_tuple.cols[0], 't', "7"));
        CHECK(r.m.u.change.new_tuple.ncols == 0);
        done(&r);
        check_truncations_fail(&p, &b, "Delete");
    }

    b.len = 0;
    build_truncate(&b, streamed);
    CHECK(parse(&p, &b, &r));
    CHECK(r.m.type == PGO_TRUNCATE && r.m.has_xid == streamed);
    CHECK(r.m.u.truncate.options == 3);
    CHECK(r.m.u.truncate.cascade && r.m.u.truncate.restart_identity);
    CHECK(r.m.u.truncate.nrelids == 3);
    if (r.m.u.truncate.nrelids == 3) {
        CHECK(r.m.u.truncate.relids[0] == 16384);
        CHECK(r.m.u.truncate.relids[1] == 16390);
        CHECK(r.m.u.truncate.relids[2] == 4000000000u);
    }
    done(&r);
    check_truncations_fail(&p, &b, "Truncate");

    for (int transactional = 0; transactional <= 1; transactional++) {
        b.len = 0;
        build_message(&b, streamed, transactional);
        CHECK(parse(&p, &b, &r));
        CHECK(r.m.type == PGO_MESSAGE && r.m.has_xid == streamed);
        CHECK(r.m.u.message.transactional == (transactional == 1));
        CHECK(r.m.u.message.flags == transactional);
        CHECK(r.m.u.message.lsn == 0x2000000);
        CHECK_STR(r.m.u.message.prefix, "audit");
        CHECK(r.m.u.message.content_len == sizeof message_content);
        CHECK(r.m.u.message.content &&
              memcmp(r.m.u.message.content, message_content,
                     sizeof message_content) == 0);
        done(&r);
        check_truncations_fail(&p, &b, "Message");
    }
}

static void test_truncate_options(void)
{
    pgoutput_parser p = parser(1);
    const unsigned opts[] = {0, 1, 2};
    for (size_t i = 0; i < 3; i++) {
        msgbuf b = {0};
        parsed r;
        put_u8(&b, 'T');
        put_u32(&b, 1);
        put_u8(&b, opts[i]);
        put_u32(&b, 5);
        CHECK(parse(&p, &b, &r));
        CHECK(r.m.u.truncate.cascade == ((opts[i] & 1) != 0));
        CHECK(r.m.u.truncate.restart_identity == ((opts[i] & 2) != 0));
        CHECK(r.m.u.truncate.nrelids == 1 && r.m.u.truncate.relids &&
              r.m.u.truncate.relids[0] == 5);
        done(&r);
    }
}

static void test_empty_tuple_and_relation(void)
{
    pgoutput_parser p = parser(1);
    msgbuf b = {0};
    parsed r;

    put_u8(&b, 'I');
    put_u32(&b, 1);
    put_u8(&b, 'N');
    put_u16(&b, 0);
    CHECK(parse(&p, &b, &r));
    CHECK(r.m.u.change.new_tuple.ncols == 0);
    CHECK(r.m.u.change.new_tuple.cols == NULL);
    done(&r);

    b.len = 0;
    put_u8(&b, 'R');
    put_u32(&b, 1);
    put_str(&b, "s");
    put_str(&b, "t");
    put_u8(&b, 'n');
    put_u16(&b, 0);
    CHECK(parse(&p, &b, &r));
    CHECK(r.m.u.relation.ncols == 0 && r.m.u.relation.cols == NULL);
    CHECK(r.m.u.relation.replica_identity == 'n');
    done(&r);
}

/* A full streamed transaction: the parser tracks the block and prefixes. */
static void test_stream_sequence(int version)
{
    pgoutput_parser p = parser(version);
    msgbuf b = {0};
    parsed r;

    printf("# stream sequence, protocol %d\n", version);
    build_stream_start(&b, true);
    CHECK(parse(&p, &b, &r));
    CHECK(r.m.type == PGO_STREAM_START);
    CHECK(r.m.has_xid && r.m.xid == 9001);
    CHECK(r.m.u.stream_start.first_segment);
    CHECK(p.in_stream);
    done(&r);

    b.len = 0;
    build_insert(&b, true);
    CHECK(parse(&p, &b, &r));
    CHECK(r.m.has_xid && r.m.xid == 9001);
    done(&r);

    /* The same bytes without the xid no longer parse inside the block. */
    b.len = 0;
    build_insert(&b, false);
    CHECK(!parse(&p, &b, &r));
    done(&r);

    b.len = 0;
    build_stream_stop(&b);
    CHECK(parse(&p, &b, &r));
    CHECK(r.m.type == PGO_STREAM_STOP && !r.m.has_xid);
    CHECK(!p.in_stream);
    done(&r);

    /* After Stop, changes have no xid again. */
    b.len = 0;
    build_insert(&b, false);
    CHECK(parse(&p, &b, &r));
    CHECK(!r.m.has_xid);
    done(&r);

    b.len = 0;
    build_stream_start(&b, false);
    CHECK(parse(&p, &b, &r));
    CHECK(!r.m.u.stream_start.first_segment);
    done(&r);
    b.len = 0;
    build_stream_stop(&b);
    CHECK(parse(&p, &b, &r));
    done(&r);

    b.len = 0;
    build_stream_commit(&b);
    CHECK(parse(&p, &b, &r));
    CHECK(r.m.type == PGO_STREAM_COMMIT);
    CHECK(r.m.has_xid && r.m.xid == 9001);
    CHECK(r.m.u.commit.flags == 0);
    CHECK(r.m.u.commit.commit_lsn == 0x3000000);
    CHECK(r.m.u.commit.end_lsn == 0x3000040);
    CHECK(r.m.u.commit.commit_time == PG_EPOCH_US + 1000000);
    done(&r);
    check_truncations_fail(&p, &b, "Stream Commit");

    b.len = 0;
    build_stream_start(&b, true);
    check_truncations_fail(&p, &b, "Stream Start");
    b.len = 0;
    build_stream_abort(&b, false);
    check_truncations_fail(&p, &b, "Stream Abort");

    pgoutput_parser in_block = p;
    in_block.in_stream = true;
    b.len = 0;
    build_stream_stop(&b);
    check_truncations_fail(&in_block, &b, "Stream Stop");
}

static void test_stream_abort(void)
{
    for (int v = 2; v <= 4; v++) {
        for (int flag = 0; flag <= 1; flag++) {
            pgoutput_parser p = parser(v);
            p.stream_abort_has_lsn = flag;
            bool expect_lsn = v >= 4 && flag;
            msgbuf b = {0};
            parsed r;

            printf("# stream abort, protocol %d, flag %d\n", v, flag);
            build_stream_abort(&b, expect_lsn);
            CHECK(parse(&p, &b, &r));
            CHECK(r.m.type == PGO_STREAM_ABORT);
            CHECK(r.m.has_xid && r.m.xid == 9001);
            CHECK(r.m.u.stream_abort.subxid == 9005);
            CHECK(r.m.u.stream_abort.has_abort_lsn == expect_lsn);
            if (expect_lsn) {
                CHECK(r.m.u.stream_abort.abort_lsn == 0x4000000);
                CHECK(r.m.u.stream_abort.abort_time == PG_EPOCH_US - 1);
            }
            done(&r);
            check_truncations_fail(&p, &b, "Stream Abort");

            /* The other layout is refused, not silently misread. */
            b.len = 0;
            build_stream_abort(&b, !expect_lsn);
            CHECK(!parse(&p, &b, &r));
            CHECK_ERR_HAS(&r, "Stream Abort");
            done(&r);
        }
    }
}

static void test_two_phase(int version)
{
    pgoutput_parser p = parser(version);
    msgbuf b = {0};
    parsed r;

    printf("# two-phase, protocol %d\n", version);
    build_begin_prepare(&b);
    CHECK(parse(&p, &b, &r));
    CHECK(r.m.type == PGO_BEGIN_PREPARE);
    CHECK(r.m.has_xid && r.m.xid == 777);
    CHECK(r.m.u.prepare.prepare_lsn == 0x5000000);
    CHECK(r.m.u.prepare.end_lsn == 0x5000080);
    CHECK(r.m.u.prepare.prepare_time == PG_EPOCH_US + 5);
    CHECK_STR(r.m.u.prepare.gid, "gid-1");
    done(&r);
    check_truncations_fail(&p, &b, "Begin Prepare");

    const char prepare_types[] = {'P', 'p'};
    for (size_t i = 0; i < sizeof prepare_types; i++) {
        b.len = 0;
        build_prepare(&b, prepare_types[i]);
        CHECK(parse(&p, &b, &r));
        CHECK(r.m.type == (pgoutput_msg_type)prepare_types[i]);
        CHECK(r.m.has_xid && r.m.xid == 777);
        CHECK(r.m.u.prepare.flags == 0);
        CHECK(r.m.u.prepare.prepare_lsn == 0x5000000);
        CHECK(r.m.u.prepare.end_lsn == 0x5000080);
        CHECK(r.m.u.prepare.prepare_time == PG_EPOCH_US + 6);
        CHECK_STR(r.m.u.prepare.gid, "gid-1");
        done(&r);
        check_truncations_fail(&p, &b, "Prepare / Stream Prepare");
    }

    b.len = 0;
    build_commit_prepared(&b);
    CHECK(parse(&p, &b, &r));
    CHECK(r.m.type == PGO_COMMIT_PREPARED);
    CHECK(r.m.has_xid && r.m.xid == 777);
    CHECK(r.m.u.commit_prepared.commit_lsn == 0x6000000);
    CHECK(r.m.u.commit_prepared.end_lsn == 0x6000080);
    CHECK(r.m.u.commit_prepared.commit_time == PG_EPOCH_US + 7);
    CHECK_STR(r.m.u.commit_prepared.gid, "gid-1");
    done(&r);
    check_truncations_fail(&p, &b, "Commit Prepared");

    b.len = 0;
    build_rollback_prepared(&b);
    CHECK(parse(&p, &b, &r));
    CHECK(r.m.type == PGO_ROLLBACK_PREPARED);
    CHECK(r.m.has_xid && r.m.xid == 777);
    CHECK(r.m.u.rollback_prepared.prepare_end_lsn == 0x5000080);
    CHECK(r.m.u.rollback_prepared.rollback_end_lsn == 0x7000080);
    CHECK(r.m.u.rollback_prepared.prepare_time == PG_EPOCH_US + 6);
    CHECK(r.m.u.rollback_prepared.rollback_time == PG_EPOCH_US + 8);
    CHECK_STR(r.m.u.rollback_prepared.gid, "");
    done(&r);
    check_truncations_fail(&p, &b, "Rollback Prepared");
}

static void test_version_gates(void)
{
    msgbuf b = {0};
    parsed r;
    pgoutput_parser p;

    p = parser(1);
    build_stream_start(&b, true);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "Stream Start message: needs protocol version 2");
    CHECK(!p.in_stream);
    done(&r);

    b.len = 0;
    build_stream_commit(&b);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "Stream Commit");
    done(&r);

    for (int v = 1; v <= 2; v++) {
        p = parser(v);
        b.len = 0;
        build_commit_prepared(&b);
        CHECK(!parse(&p, &b, &r));
        CHECK_ERR_HAS(&r, "needs protocol version 3");
        done(&r);
        b.len = 0;
        build_prepare(&b, 'p');
        CHECK(!parse(&p, &b, &r));
        CHECK_ERR_HAS(&r, "Stream Prepare");
        done(&r);
    }

    /* v1 never prefixes an xid, even if the caller set in_stream. */
    p = parser(1);
    p.in_stream = true;
    b.len = 0;
    build_insert(&b, false);
    CHECK(parse(&p, &b, &r));
    CHECK(!r.m.has_xid);
    done(&r);

    const int bad_versions[] = {0, 5, -1};
    for (size_t i = 0; i < 3; i++) {
        p = parser(bad_versions[i]);
        b.len = 0;
        build_begin(&b);
        CHECK(!parse(&p, &b, &r));
        CHECK_ERR_HAS(&r, "unsupported protocol version");
        done(&r);
    }
}

static void test_stream_state_errors(void)
{
    msgbuf b = {0};
    parsed r;
    pgoutput_parser p = parser(2);

    build_stream_stop(&b);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "Stream Stop message: not inside a streamed block");
    done(&r);

    p.in_stream = true;
    b.len = 0;
    build_stream_start(&b, false);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "already inside");
    CHECK(p.in_stream);
    done(&r);

    b.len = 0;
    build_stream_commit(&b);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "Stream Commit message: inside a streamed block");
    done(&r);
}

static void test_malformed(void)
{
    pgoutput_parser p = parser(4);
    msgbuf b = {0};
    parsed r;

    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "truncated reading message type");
    done(&r);

    put_u8(&b, 'Z');
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "unknown message type 0x5a ('Z')");
    done(&r);

    b.len = 0;
    put_u8(&b, 0x00);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "unknown message type 0x00");
    done(&r);

    /* Missing terminator: the string runs to the end of the buffer. */
    b.len = 0;
    put_u8(&b, 'R');
    put_u32(&b, 1);
    put_str(&b, "public");
    put_bytes(&b, "orders", 6);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "Relation message: relation name is not NUL-terminated "
                      "within the message at offset 12");
    done(&r);

    b.len = 0;
    put_u8(&b, 'I');
    put_u32(&b, 1);
    put_u8(&b, 'N');
    put_u16(&b, 2);
    put_col(&b, 'n', NULL, 0);
    put_col(&b, 'x', NULL, 0);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "Insert message: new tuple column 2: unknown column "
                      "kind 0x78 ('x')");
    CHECK_ERR_HAS(&r, "at offset 9");
    done(&r);

    /* Text value length larger than what is left. */
    b.len = 0;
    put_u8(&b, 'I');
    put_u32(&b, 1);
    put_u8(&b, 'N');
    put_u16(&b, 1);
    put_u8(&b, 't');
    put_u32(&b, 100);
    put_bytes(&b, "abc", 3);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "new tuple column 1: truncated reading value "
                      "(needs 100 bytes, 3 left) at offset 13");
    done(&r);

    b.len = 0;
    put_u8(&b, 'I');
    put_u32(&b, 1);
    put_u8(&b, 'N');
    put_u16(&b, 1);
    put_u8(&b, 'b');
    put_u32(&b, 0x80000000u);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "negative length");
    done(&r);

    /* A column count that cannot fit is refused before allocating. */
    b.len = 0;
    put_u8(&b, 'I');
    put_u32(&b, 1);
    put_u8(&b, 'N');
    put_u16(&b, 65535);
    put_col(&b, 'n', NULL, 0);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "column count 65535 exceeds");
    done(&r);

    b.len = 0;
    put_u8(&b, 'T');
    put_u32(&b, 0xffffffffu);
    put_u8(&b, 0);
    put_u32(&b, 1);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "Truncate message: relation count 4294967295");
    done(&r);

    b.len = 0;
    put_u8(&b, 'R');
    put_u32(&b, 1);
    put_str(&b, "s");
    put_str(&b, "t");
    put_u8(&b, 'd');
    put_u16(&b, 2);
    put_u8(&b, 1);
    put_str(&b, "a");
    put_u32(&b, 23);
    put_u32(&b, 0);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "column count 2 does not fit");
    done(&r);

    b.len = 0;
    put_u8(&b, 'U');
    put_u32(&b, 1);
    put_u8(&b, 'X');
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "expected 'K', 'O' or 'N' tuple marker, got 0x58");
    done(&r);

    /* Old key followed by something other than the new tuple. */
    b.len = 0;
    put_u8(&b, 'U');
    put_u32(&b, 1);
    put_u8(&b, 'K');
    put_u16(&b, 0);
    put_u8(&b, 'K');
    put_u16(&b, 0);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "expected 'N' (new tuple), got 0x4b");
    done(&r);

    b.len = 0;
    put_u8(&b, 'D');
    put_u32(&b, 1);
    put_u8(&b, 'N');
    put_u16(&b, 0);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "Delete message: expected 'K' or 'O'");
    done(&r);

    b.len = 0;
    put_u8(&b, 'I');
    put_u32(&b, 1);
    put_u8(&b, 'K');
    put_u16(&b, 0);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "Insert message: expected 'N' (new tuple)");
    done(&r);

    b.len = 0;
    put_u8(&b, 'M');
    put_u8(&b, 1);
    put_u64(&b, 1);
    put_str(&b, "p");
    put_u32(&b, 0xfffffff0u);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "Message message: content has negative length");
    done(&r);

    /* A timestamp that cannot be moved to the Unix epoch. */
    b.len = 0;
    put_u8(&b, 'C');
    put_u8(&b, 0);
    put_u64(&b, 1);
    put_u64(&b, 2);
    put_i64(&b, INT64_MAX);
    CHECK(!parse(&p, &b, &r));
    CHECK_ERR_HAS(&r, "commit timestamp 9223372036854775807 is out of range "
                      "at offset 18");
    done(&r);

    /* Truncated inside an int64 reports the field and where it starts. */
    b.len = 0;
    build_begin(&b);
    CHECK(!parse_n(&p, &b, 12, &r));
    CHECK_ERR_HAS(&r, "Begin message: truncated reading commit timestamp");
    done(&r);

    /* Errors fit whatever buffer the caller gives, even none. */
    b.len = 0;
    put_u8(&b, 'Z');
    char tiny[8];
    pgoutput_msg m;
    char *copy = malloc(1);
    copy[0] = 'Z';
    CHECK(!pgoutput_parse(&p, copy, 1, &m, tiny, sizeof tiny));
    CHECK(strlen(tiny) == sizeof tiny - 1);
    CHECK(!pgoutput_parse(&p, copy, 1, &m, NULL, 0));
    free(copy);
}

static void test_names_and_free(void)
{
    CHECK_STR(pgoutput_msg_type_name(PGO_BEGIN), "Begin");
    CHECK_STR(pgoutput_msg_type_name(PGO_STREAM_ABORT), "Stream Abort");
    CHECK_STR(pgoutput_msg_type_name(PGO_ROLLBACK_PREPARED),
              "Rollback Prepared");
    CHECK_STR(pgoutput_msg_type_name(PGO_TYPE), "Type");
    CHECK_STR(pgoutput_msg_type_name((pgoutput_msg_type)'Z'), "unknown");

    pgoutput_msg zero;
    memset(&zero, 0, sizeof zero);
    pgoutput_msg_free(&zero);

    /* Freeing twice is harmless: the first free clears the pointers. */
    pgoutput_parser p = parser(1);
    msgbuf b = {0};
    parsed r;
    build_insert(&b, false);
    CHECK(parse(&p, &b, &r));
    pgoutput_msg_free(&r.m);
    CHECK(r.m.u.change.new_tuple.cols == NULL);
    done(&r);
}

int main(void)
{
    test_begin_commit_origin();
    for (int v = 1; v <= 4; v++)
        test_changes(v, false);
    for (int v = 2; v <= 4; v++)
        test_changes(v, true);
    test_truncate_options();
    test_empty_tuple_and_relation();
    for (int v = 2; v <= 4; v++)
        test_stream_sequence(v);
    test_stream_abort();
    for (int v = 3; v <= 4; v++)
        test_two_phase(v);
    test_version_gates();
    test_stream_state_errors();
    test_malformed();
    test_names_and_free();
    return check_summary();
}
