/* The stream loop without a server: stream_run reads a captured walsender
 * stream (tests/unit/data/stream-p1.frames, made by capture_stream.py: real
 * pgoutput messages and keepalives from PostgreSQL 15) through a fake
 * source I/O, asks a fake catalog (built-in types), and delivers to real
 * fault-injecting sinks loaded as shared objects. Checked: the events each
 * sink wrote, in order with their positions; the positions confirmed to the
 * "server", each the end of a transaction that every sink had made durable
 * by then (or an idle keepalive's WAL end); endpos; a clean stop inside a
 * transaction; a sink failing for good; a lost connection.
 *
 * Usage: test_stream FAULT_SINK_SO FRAMES_FILE */
#include "check.h"
#include "sink_support.h"

#include "catalog.h"
#include "delivery.h"
#include "loader.h"
#include "source.h"
#include "stop.h"
#include "stream.h"
#include "typeinfo.h"

static const char *fault_so;
static stop_state stop;

/* ---- the captured stream ---- */

typedef struct frame {
    const unsigned char *data;
    size_t len;
} frame;

static frame frames[256];
static size_t nframes;

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static bool load_frames(const char *path)
{
    static unsigned char data[1 << 16];
    FILE *f = fopen(path, "rb");
    size_t len = f ? fread(data, 1, sizeof data, f) : 0;
    if (f)
        fclose(f);
    for (size_t at = 0; at + 4 <= len && nframes < 256;) {
        size_t n = (size_t)data[at] << 24 | (size_t)data[at + 1] << 16 |
                   (size_t)data[at + 2] << 8 | data[at + 3];
        frames[nframes++] = (frame){data + at + 4, n};
        at += 4 + n;
    }
    return nframes > 0;
}

static char payload_type(const frame *f)
{
    return f->data[0] == 'w' && f->len > 25 ? (char)f->data[25] : 0;
}

/* The transactions of the capture, read from its Begin and Commit
 * messages; and the keepalives' WAL ends. */
typedef struct txn {
    uint64_t commit_lsn, end_lsn;
    size_t commit_frame; /* index of its Commit */
} txn;

static txn txns[8];
static size_t ntxns;
static uint64_t first_keepalive_end, last_keepalive_end;

static void find_transactions(void)
{
    for (size_t i = 0; i < nframes; i++) {
        const unsigned char *p = frames[i].data + 25;
        if (frames[i].data[0] == 'k') {
            last_keepalive_end = be64(frames[i].data + 1);
            if (!first_keepalive_end)
                first_keepalive_end = last_keepalive_end;
        } else if (payload_type(&frames[i]) == 'B') {
            txns[ntxns].commit_lsn = be64(p + 1);
        } else if (payload_type(&frames[i]) == 'C') {
            txns[ntxns].end_lsn = be64(p + 10);
            txns[ntxns++].commit_frame = i;
        }
    }
}

/* The n-th (0-based) frame whose pgoutput message is of type t. */
static size_t nth_frame(char t, int n)
{
    for (size_t i = 0; i < nframes; i++)
        if (payload_type(&frames[i]) == t && n-- == 0)
            return i;
    return nframes;
}

/* ---- what the workload's events are (see capture_stream.py) ---- */

typedef struct expected {
    const char *op, *table;
    size_t txn;
    uint64_t seq; /* 0: a schema event (which carries none) */
    long long id;
} expected;

static const expected workload[] = {
    {"schema", "items", 0, 0, -1}, {"insert", "items", 0, 1, 1},
    {"insert", "items", 1, 1, 2},  {"update", "items", 1, 2, 2},
    {"delete", "items", 1, 3, 1},  {"schema", "other", 1, 0, -1},
    {"insert", "other", 1, 4, 1},  {"truncate", "other", 2, 1, -1},
    {"schema", "items", 3, 0, -1}, {"insert", "items", 3, 1, 3},
    {"update", "items", 4, 1, 3},
};
#define WORKLOAD_EVENTS (sizeof workload / sizeof *workload)

/* A sink's output and what it should receive. */
typedef struct sink_out {
    const char *path;
    const char *only_table; /* NULL: every table */
} sink_out;

/* Whether the events in out's file begin with the workload's events of the
 * transactions before upto (and are exactly those when exact). */
static bool holds(const sink_out *out, size_t upto, bool exact)
{
    written w[64];
    int n = read_written(out->path, w, 64), k = 0;
    if (n < 0)
        return false;
    for (size_t i = 0; i < WORKLOAD_EVENTS; i++) {
        const expected *e = &workload[i];
        if (e->txn >= upto ||
            (out->only_table && strcmp(e->table, out->only_table) != 0))
            continue;
        if (k >= n)
            return false;
        const written *got = &w[k++];
        if (strcmp(got->op, e->op) != 0 || strcmp(got->table, e->table) != 0 ||
            got->commit_lsn != txns[e->txn].commit_lsn || got->seq != e->seq ||
            got->id != e->id) {
            printf("# %s: event %d is %s %s %llu, expected %s %s %llu\n",
                   out->path, k, got->op, got->table,
                   (unsigned long long)got->seq, e->op, e->table,
                   (unsigned long long)e->seq);
            return false;
        }
    }
    return !exact || k == n;
}

/* ---- the fake walsender ---- */

typedef struct fake_io {
    size_t next;            /* next frame to answer */
    bool idle_after_commit; /* answer "nothing more" after each Commit and
                               keepalive, as a drained socket does */
    bool idle_pending;
    size_t stop_at; /* raise a stop while answering this frame (1-based) */
    size_t lose_at; /* answer "connection lost" instead of this frame */
    bool connected; /* what connected() says after a failure */
    bool exhausted; /* the stop raised once every frame was answered */
    int reads;
    uint64_t received;
    uint64_t confirmed[32];
    size_t nconfirmed;
    int finishes, replies;
    sink_out *outs; /* checked at every confirmation */
    size_t nouts;
    bool confirmed_early; /* a confirmation came before the sinks had it */
} fake_io;

static repl_read_result fake_read(void *ctx, repl_msg *msg, int timeout_ms,
                                  int wake_fd, char *err, size_t errlen)
{
    fake_io *f = ctx;
    (void)timeout_ms;
    (void)wake_fd;
    if (++f->reads > 10000 || (f->lose_at && f->next + 1 == f->lose_at)) {
        snprintf(err, errlen, "connection lost (test)");
        return REPL_READ_LOST;
    }
    if (f->idle_pending || f->next == nframes) {
        f->idle_pending = false;
        if (f->next == nframes && !f->exhausted) {
            f->exhausted = true;
            stop_signal(&stop);
        }
        return REPL_READ_TIMEOUT;
    }
    const frame *fr = &frames[f->next++];
    if (f->next == f->stop_at)
        stop_signal(&stop); /* as if it came while this frame was read */
    char *buf = malloc(fr->len);
    memcpy(buf, fr->data, fr->len);
    memset(msg, 0, sizeof *msg);
    msg->buffer = buf;
    if (buf[0] == 'w') {
        msg->kind = REPL_XLOGDATA;
        msg->wal_start = be64(fr->data + 1);
        msg->wal_end = be64(fr->data + 9);
        msg->payload = buf + 25;
        msg->payload_len = fr->len - 25;
        f->idle_pending = f->idle_after_commit && buf[25] == 'C';
    } else {
        msg->kind = REPL_KEEPALIVE;
        msg->wal_end = be64(fr->data + 1);
        msg->reply_requested = buf[17] != 0;
        f->idle_pending = f->idle_after_commit;
    }
    return REPL_READ_MESSAGE;
}

static void fake_free_buffer(void *buffer)
{
    free(buffer);
}

static void fake_note_received(void *ctx, uint64_t lsn)
{
    fake_io *f = ctx;
    if (lsn > f->received)
        f->received = lsn;
}

/* Every transaction ending at or before lsn must be in every sink. */
static bool fake_confirm(void *ctx, uint64_t lsn, char *err, size_t errlen)
{
    fake_io *f = ctx;
    (void)err;
    (void)errlen;
    size_t ended = 0;
    while (ended < ntxns && txns[ended].end_lsn <= lsn)
        ended++;
    for (size_t i = 0; i < f->nouts; i++)
        if (!holds(&f->outs[i], ended, false))
            f->confirmed_early = true;
    if (f->nconfirmed < 32)
        f->confirmed[f->nconfirmed++] = lsn;
    return true;
}

static bool fake_reply(void *ctx, char *err, size_t errlen)
{
    fake_io *f = ctx;
    (void)err;
    (void)errlen;
    f->replies++;
    return true;
}

static bool fake_finish(void *ctx, char *err, size_t errlen)
{
    fake_io *f = ctx;
    (void)err;
    (void)errlen;
    f->finishes++;
    return true;
}

static bool fake_connected(void *ctx)
{
    fake_io *f = ctx;
    return f->connected;
}

/* ---- the fake catalog: built-in types, relations that are no
 * partitions ---- */

static int describes;

static const char *type_name(uint32_t oid)
{
    return oid == 23 ? "integer" : oid == 25 ? "text" : "unknown";
}

static source_status fake_describe(void *ctx, relation *rel,
                                   relation_lineage *lineage, char *err,
                                   size_t errlen)
{
    (void)ctx;
    (void)err;
    (void)errlen;
    describes++;
    for (int i = 0; i < rel->ncols; i++) {
        bool known;
        free(rel->cols[i].type_name);
        rel->cols[i].type_name = strdup(type_name(rel->cols[i].type_oid));
        rel->cols[i].vtype =
            value_type_for_builtin(rel->cols[i].type_oid, &known);
    }
    if (lineage) {
        memset(lineage, 0, sizeof *lineage);
        catalog_table *t = calloc(1, sizeof *t);
        t->schema = strdup(rel->schema);
        t->table = strdup(rel->table);
        t->quoted = malloc(strlen(rel->schema) + strlen(rel->table) + 2);
        sprintf(t->quoted, "%s.%s", rel->schema, rel->table);
        t->visible = true;
        lineage->src.chain = (catalog_chain){t, 1};
        lineage->publication = "pub";
    }
    return SOURCE_OK;
}

/* ---- running the stream ---- */

typedef struct run {
    stream_settings settings;
    fake_io io;
    test_sinks sinks;
    table_filter *global;
} run;

static void run_init(run *r)
{
    memset(r, 0, sizeof *r);
    stream_settings_default(&r->settings);
    /* flush at once between transactions: each is confirmed on its own */
    r->settings.flush_linger_ms = 0;
    /* the slot's confirmed position: where the capture started */
    r->settings.start_lsn = first_keepalive_end;
    r->io.idle_after_commit = true;
    r->io.connected = true;
    r->global = table_filter_new();
    describes = 0;
}

static int run_stream(run *r, sink_out *outs, size_t nouts)
{
    stop_init(&stop);
    r->io.outs = outs;
    r->io.nouts = nouts;
    source_io io = {.ctx = &r->io,
                    .read = fake_read,
                    .free_buffer = fake_free_buffer,
                    .note_received = fake_note_received,
                    .confirm = fake_confirm,
                    .reply = fake_reply,
                    .finish = fake_finish,
                    .connected = fake_connected};
    source_catalog catalog = {.describe = fake_describe};
    delivery *d = start_delivery(&r->sinks, r->global, &stop);
    if (!d)
        return -100;
    int rc = stream_run(&r->settings, &io, &catalog, d, &stop);
    delivery_free(d); /* closes the sinks' files */
    free_sinks(&r->sinks);
    table_filter_free(r->global);
    return rc;
}

static bool confirmed_exactly(const fake_io *io, const uint64_t *lsns, size_t n)
{
    if (io->nconfirmed != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (io->confirmed[i] != lsns[i])
            return false;
    return true;
}

/* ---- tests ---- */

/* Everything, to two sinks, one filtered: events in order, numbered among
 * all the transaction's changes; each transaction confirmed once both
 * sinks made it durable; at the end the idle keepalive's WAL end. */
static void test_whole_stream(void)
{
    run r;
    run_init(&r);
    sink_out outs[] = {{test_path("all"), NULL}, {test_path("items"), "items"}};
    add_sink(&r.sinks, "all", fault_so, NULL, "path", outs[0].path, NULL);
    add_sink(&r.sinks, "items", fault_so, "items", "path", outs[1].path, NULL);
    CHECK(run_stream(&r, outs, 2) == 0);
    CHECK(holds(&outs[0], ntxns, true));
    CHECK(holds(&outs[1], ntxns, true));
    CHECK(!r.io.confirmed_early);
    uint64_t want[8];
    for (size_t i = 0; i < ntxns; i++)
        want[i] = txns[i].end_lsn;
    want[ntxns] = last_keepalive_end;
    CHECK(last_keepalive_end > txns[ntxns - 1].end_lsn);
    CHECK(confirmed_exactly(&r.io, want, ntxns + 1));
    CHECK(r.io.finishes == 1);
    CHECK(r.io.received == last_keepalive_end);
    CHECK(describes == 4); /* one per Relation message */
}

/* A filtered-out relation makes no event, but its changes still count in
 * the numbering (other's insert is change 4 of its transaction), and a
 * transaction with no event is confirmed too. */
static void test_global_filter(void)
{
    run r;
    run_init(&r);
    char err[256];
    CHECK(table_filter_add(r.global, true, "items", "test", err, sizeof err));
    sink_out out = {test_path("filtered"), "other"};
    add_sink(&r.sinks, "all", fault_so, NULL, "path", out.path, NULL);
    CHECK(run_stream(&r, &out, 1) == 0);
    CHECK(holds(&out, ntxns, true));
    CHECK(!r.io.confirmed_early);
    CHECK(r.io.nconfirmed == ntxns + 1);
    /* the first transaction touched only items */
    CHECK(r.io.confirmed[0] == txns[0].end_lsn);
}

/* A sink that never acknowledges: nothing is ever confirmed, though the
 * other sink holds everything and the stream stops cleanly. */
static void test_unacknowledged(void)
{
    run r;
    run_init(&r);
    sink_out out = {test_path("acked"), NULL};
    add_sink(&r.sinks, "acked", fault_so, NULL, "path", out.path, NULL);
    add_sink(&r.sinks, "silent", fault_so, NULL, "path", test_path("silent"),
             "ack", "false", NULL);
    CHECK(run_stream(&r, &out, 1) == 0);
    CHECK(holds(&out, ntxns, true));
    CHECK(r.io.nconfirmed == 0);
    CHECK(r.io.finishes == 1);
}

/* endpos at a commit's end: that transaction is the last one read,
 * delivered and confirmed. */
static void test_endpos_at_commit(void)
{
    run r;
    run_init(&r);
    r.settings.has_endpos = true;
    r.settings.endpos = txns[1].end_lsn;
    sink_out out = {test_path("endpos"), NULL};
    add_sink(&r.sinks, "all", fault_so, NULL, "path", out.path, NULL);
    CHECK(run_stream(&r, &out, 1) == 0);
    CHECK(holds(&out, 2, true));
    CHECK(r.io.next == txns[1].commit_frame + 1);
    uint64_t want[] = {txns[0].end_lsn, txns[1].end_lsn};
    CHECK(confirmed_exactly(&r.io, want, 2));
    CHECK(r.io.finishes == 1);
}

/* endpos between two transactions: the next one (committed after it) is
 * skipped and ends the stream. */
static void test_endpos_between(void)
{
    run r;
    run_init(&r);
    r.settings.has_endpos = true;
    r.settings.endpos = txns[0].end_lsn + 1;
    sink_out out = {test_path("endpos2"), NULL};
    add_sink(&r.sinks, "all", fault_so, NULL, "path", out.path, NULL);
    CHECK(run_stream(&r, &out, 1) == 0);
    CHECK(holds(&out, 1, true));
    uint64_t want[] = {txns[0].end_lsn};
    CHECK(confirmed_exactly(&r.io, want, 1));
}

/* A stop inside a transaction while the batch holds it and the one before:
 * the committed one is delivered and confirmed, the uncommitted tail is
 * not delivered (the server sends it again). */
static void test_clean_stop_drops_tail(void)
{
    run r;
    run_init(&r);
    r.io.idle_after_commit = false;
    r.io.stop_at = nth_frame('D', 0) + 1; /* txn 2's delete */
    sink_out out = {test_path("tail"), NULL};
    add_sink(&r.sinks, "all", fault_so, NULL, "path", out.path, NULL);
    CHECK(run_stream(&r, &out, 1) == 0);
    CHECK(holds(&out, 1, true));
    uint64_t want[] = {txns[0].end_lsn};
    CHECK(confirmed_exactly(&r.io, want, 1));
    CHECK(r.io.finishes == 1);
}

/* A sink failing for good: exit 1, nothing confirmed, no final
 * confirmation; with the connection gone as well, a reconnect. */
static void test_fatal_sink(void)
{
    for (int gone = 0; gone <= 1; gone++) {
        run r;
        run_init(&r);
        r.io.connected = !gone;
        sink_out out = {test_path("fatal"), NULL};
        add_sink(&r.sinks, "bad", fault_so, NULL, "path", out.path,
                 "fatal_write", "1", NULL);
        CHECK(run_stream(&r, &out, 1) == (gone ? STREAM_DISCONNECTED : 1));
        CHECK(r.io.nconfirmed == 0);
        CHECK(r.io.finishes == 0);
        CHECK(holds(&out, 0, true));
    }
}

/* A lost connection: what was confirmed stays, the caller reconnects. */
static void test_lost_connection(void)
{
    run r;
    run_init(&r);
    r.io.lose_at = txns[2].commit_frame + 1;
    sink_out out = {test_path("lost"), NULL};
    add_sink(&r.sinks, "all", fault_so, NULL, "path", out.path, NULL);
    CHECK(run_stream(&r, &out, 1) == STREAM_DISCONNECTED);
    CHECK(holds(&out, 2, true));
    uint64_t want[] = {txns[0].end_lsn, txns[1].end_lsn};
    CHECK(confirmed_exactly(&r.io, want, 2));
    CHECK(r.io.finishes == 0);
    CHECK(!r.io.confirmed_early);
}

int main(int argc, char **argv)
{
    char err[1024];
    if (argc != 3) {
        fprintf(stderr, "usage: test_stream FAULT_SINK_SO FRAMES_FILE\n");
        return 2;
    }
    fault_so = argv[1];
    if (!load_frames(argv[2]) || !loader_init(err, sizeof err)) {
        fprintf(stderr, "cannot read %s or start the loader\n", argv[2]);
        return 1;
    }
    find_transactions();
    CHECK(ntxns == 5);
    if (ntxns != 5)
        return check_summary();
    test_whole_stream();
    test_global_filter();
    test_unacknowledged();
    test_endpos_at_commit();
    test_endpos_between();
    test_clean_stop_drops_tail();
    test_fatal_sink();
    test_lost_connection();
    loader_shutdown();
    remove_test_dir();
    return check_summary();
}
