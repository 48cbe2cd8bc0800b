#include "source.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill.h"
#include "lsn.h"
#include "pgoutput.h"
#include "relcache.h"
#include "stats.h"
#include "strbuf.h"
#include "stream_spool.h"
#include "txn_counts.h"

struct source {
    source_io io;
    source_catalog catalog;
    source_router router;
    checkpoint *cp;
    bool has_endpos;
    uint64_t endpos;

    pgoutput_parser parser;
    relcache rels;

    /* The message read and not yet applied, and how its buffer is freed
     * (the I/O's, or free for a change replayed from the spool). */
    bool pending;
    repl_msg rm;
    pgoutput_msg m;
    void (*rm_free)(void *buffer);

    /* Streamed transactions (protocol 2): their kept changes, the
     * transaction of the current streamed block, and the one being
     * replayed since its Stream Commit (which ends the replay as a
     * Commit). NULL spool: streaming was not asked for. */
    stream_spool *spool;
    uint32_t stream_xid;
    bool replaying;
    pgoutput_parser replay_parser;
    pgoutput_msg stream_commit;

    bool in_txn;
    bool skipping_txn; /* a transaction past endpos: not delivered */
    uint64_t txn_commit_lsn;
    uint32_t txn_xid;
    int64_t txn_commit_time;
    uint64_t txn_seq;
    pgspout_position last_pos;      /* newest change event created */
    pgspout_position committed_pos; /* last_pos at the latest COMMIT */
    uint64_t idle_wal_end;
    bool endpos_reached;

    /* Backfills: the manager, whether the open transaction held a high
     * watermark, and the chunk whose rows are being sent. */
    struct backfill *backfill;
    bool txn_has_hw;
    bool emitting;
    relation *emit_rel;
    uint64_t emit_route;
    uint64_t emit_base_seq, emit_lsn;
    bool emit_schema_due;  /* before its first read event */
    bool emit_entry_stale; /* the relation cache's own schema is due after */

    /* Messages and transaction events: what is wanted, the route of events
     * that belong to no table, whether the open transaction's begin event
     * was made, and its events counted for its commit event. */
    source_events events;
    uint64_t all_route;
    bool begin_sent;
    txn_counts counts;
};

/* pgspout's own messages (backfill requests and watermarks, heartbeats):
 * never delivered, never numbered. */
#define OWN_MESSAGE_PREFIX "pgspout"

source *source_new(const source_io *io, const source_catalog *catalog,
                   const source_router *router, checkpoint *cp, bool has_endpos,
                   uint64_t endpos)
{
    source *s = xcalloc(1, sizeof *s);
    s->io = *io;
    s->catalog = *catalog;
    s->router = *router;
    s->cp = cp;
    s->has_endpos = has_endpos;
    s->endpos = endpos;
    s->parser.proto_version =
        io->proto_version ? io->proto_version : SOURCE_PGOUTPUT_PROTO_VERSION;
    s->rm_free = io->free_buffer;
    return s;
}

static void discard_pending(source *s)
{
    if (!s->pending)
        return;
    pgoutput_msg_free(&s->m);
    s->rm_free(s->rm.buffer);
    s->pending = false;
}

static void end_emission(source *s, bool completed);

void source_set_events(source *s, const source_events *ev, uint64_t all_route)
{
    s->events = *ev;
    s->all_route = all_route;
}

void source_set_backfill(source *s, struct backfill *bf)
{
    s->backfill = bf;
}

void source_set_streaming(source *s, const char *spill_dir,
                          uint64_t memory_limit)
{
    s->spool = stream_spool_new(spill_dir, memory_limit);
}

void source_free(source *s)
{
    if (!s)
        return;
    if (s->emitting)
        end_emission(s, false);
    discard_pending(s);
    relcache_free(&s->rels);
    txn_counts_free(&s->counts);
    stream_spool_free(s->spool);
    free(s);
}

/* ---- reading ---- */

/* The server has sent everything before lsn, between transactions:
 * nothing before it is pending for us. */
static void reached_idle(source *s, uint64_t lsn)
{
    /* Not while a streamed transaction is open: its changes are pending
     * for us (stream_open_limit). */
    bool stream_open = s->spool && stream_spool_open_count(s->spool) > 0;
    if (lsn > s->idle_wal_end && !stream_open)
        s->idle_wal_end = lsn;
    s->io.note_received(s->io.ctx, lsn);
    if (s->has_endpos && lsn >= s->endpos)
        s->endpos_reached = true;
}

/* A keepalive between transactions says that nothing before its WAL end
 * is pending for us. */
static source_status take_keepalive(source *s, char *err, size_t errlen)
{
    const repl_msg *rm = &s->rm;
    if (!s->in_txn)
        reached_idle(s, rm->wal_end);
    s->io.free_buffer(rm->buffer);
    if (rm->reply_requested && !s->io.reply(s->io.ctx, err, errlen))
        return SOURCE_LOST;
    return SOURCE_OK;
}

/* ---- streamed transactions ---- */

/* The highest LSN that may be confirmed as things stand: not past a
 * backfill's low watermark, nor past the first change of a streamed
 * transaction still open (the server sends it again from there). */
static uint64_t confirm_hold(source *s, uint64_t limit)
{
    uint64_t oldest = s->spool ? stream_spool_oldest(s->spool) : UINT64_MAX;
    return oldest < limit ? oldest : limit;
}

static void update_hold(source *s)
{
    uint64_t limit = s->backfill ? backfill_hold(s->backfill) : UINT64_MAX;
    checkpoint_set_limit(s->cp, confirm_hold(s, limit));
}

/* A change (or Relation, Type, transactional Message) inside a streamed
 * block: kept as sent, under the block's transaction, until it ends. */
static source_status keep_streamed(source *s, char *err, size_t errlen)
{
    bool ok = false;
    if (!s->spool)
        snprintf(err, errlen,
                 "protocol error: the server streams transaction %u, but "
                 "streaming was not asked for",
                 (unsigned)s->stream_xid);
    else
        ok = stream_spool_append(s->spool, s->stream_xid, s->m.xid,
                                 s->rm.wal_start, s->rm.payload,
                                 s->rm.payload_len, err, errlen);
    discard_pending(s);
    update_hold(s);
    return ok ? SOURCE_OK : SOURCE_FAILED;
}

static source_status stream_abort(source *s, char *err, size_t errlen)
{
    const pgoutput_msg *m = &s->m;
    bool ok =
        !s->spool || stream_spool_abort(s->spool, m->xid,
                                        m->u.stream_abort.subxid, err, errlen);
    discard_pending(s);
    update_hold(s);
    return ok ? SOURCE_OK : SOURCE_FAILED;
}

/* Protocol 2's stream control: blocks and aborts are handled here, a
 * Stream Commit waits (source_apply replays its transaction); anything
 * outside a block is an ordinary message. */
static source_status take_streamed(source *s, char *err, size_t errlen)
{
    const pgoutput_msg *m = &s->m;
    switch (m->type) {
    case PGO_STREAM_START:
        s->stream_xid = m->xid;
        discard_pending(s);
        return SOURCE_OK;
    case PGO_STREAM_STOP:
        discard_pending(s);
        return SOURCE_OK;
    case PGO_STREAM_ABORT:
        return stream_abort(s, err, errlen);
    case PGO_STREAM_COMMIT:
        return SOURCE_MESSAGE;
    default:
        break;
    }
    /* A non-transactional message is sent as decoding reaches it, never
     * held back with the transaction. */
    if (!s->parser.in_stream ||
        (m->type == PGO_MESSAGE && !m->u.message.transactional))
        return SOURCE_MESSAGE;
    return keep_streamed(s, err, errlen);
}

/* The next change of the transaction being replayed, or at the end its
 * Stream Commit as a Commit. */
static source_status read_replayed(source *s, char *err, size_t errlen)
{
    uint64_t wal_start = 0;
    char *data = NULL;
    size_t len = 0;
    int r = stream_spool_replay_next(s->spool, &wal_start, &data, &len, err,
                                     errlen);
    if (r < 0)
        return SOURCE_FAILED;
    memset(&s->rm, 0, sizeof s->rm);
    s->rm.kind = REPL_XLOGDATA;
    s->rm_free = free;
    s->pending = true;
    if (r == 0) {
        s->replaying = false;
        s->m = s->stream_commit;
        s->m.type = PGO_COMMIT;
        return SOURCE_MESSAGE;
    }
    s->rm.wal_start = wal_start;
    s->rm.payload = s->rm.buffer = data;
    s->rm.payload_len = len;
    char why[1024];
    if (!pgoutput_parse(&s->replay_parser, data, len, &s->m, why, sizeof why)) {
        s->pending = false;
        free(data);
        snprintf(err, errlen,
                 "cannot decode a change of streamed transaction %u: %s",
                 (unsigned)s->txn_xid, why);
        return SOURCE_FAILED;
    }
    return SOURCE_MESSAGE;
}

source_status source_read(source *s, int timeout_ms, int wake_fd, char *err,
                          size_t errlen)
{
    discard_pending(s);
    if (s->replaying)
        return read_replayed(s, err, errlen);
    repl_msg *rm = &s->rm;
    switch (s->io.read(s->io.ctx, rm, timeout_ms, wake_fd, err, errlen)) {
    case REPL_READ_MESSAGE:
        break;
    case REPL_READ_TIMEOUT:
        return SOURCE_IDLE;
    case REPL_READ_LOST:
        return SOURCE_LOST;
    case REPL_READ_REFUSED:
        return SOURCE_REFUSED;
    }
    if (rm->kind == REPL_KEEPALIVE)
        return take_keepalive(s, err, errlen);
    s->io.note_received(s->io.ctx, rm->wal_start);
    s->rm_free = s->io.free_buffer;
    char why[1024];
    if (!pgoutput_parse(&s->parser, rm->payload, rm->payload_len, &s->m, why,
                        sizeof why)) {
        char lsn[LSN_FORMAT_BUFSIZE];
        snprintf(err, errlen, "cannot decode message at %s: %s",
                 lsn_format(rm->wal_start, lsn, sizeof lsn), why);
        s->io.free_buffer(rm->buffer);
        return SOURCE_FAILED;
    }
    s->pending = true;
    if (s->parser.proto_version >= SOURCE_PGOUTPUT_STREAM_PROTO_VERSION)
        return take_streamed(s, err, errlen);
    return SOURCE_MESSAGE;
}

/* Room for the largest number of events one message can create: a
 * TRUNCATE makes a schema event and a truncate event per relation; the
 * first event of a transaction may come after its begin event. */
size_t source_events_needed(const source *s)
{
    size_t begin = s->events.transaction_events ? 1 : 0;
    if (s->emitting)
        return 2 + begin; /* a read event, after a schema event if due */
    if (!s->pending)
        return 0;
    if (s->m.type == PGO_TRUNCATE)
        return 2 * (size_t)s->m.u.truncate.nrelids + begin;
    return 2 + begin;
}

/* ---- relations ---- */

static relation *relation_from_message(const pgoutput_msg *m)
{
    relation *rel = xcalloc(1, sizeof *rel);
    rel->refcount = 1;
    rel->oid = m->u.relation.oid;
    rel->schema =
        xstrdup(*m->u.relation.nspname ? m->u.relation.nspname : "pg_catalog");
    rel->table = xstrdup(m->u.relation.relname);
    rel->replica_identity = m->u.relation.replica_identity;
    rel->ncols = m->u.relation.ncols;
    rel->cols = xcalloc((size_t)rel->ncols, sizeof *rel->cols);
    for (int i = 0; i < rel->ncols; i++) {
        const pgoutput_column *c = &m->u.relation.cols[i];
        rel->cols[i].name = xstrdup(c->name);
        rel->cols[i].type_oid = c->type_oid;
        rel->cols[i].typmod = c->typmod;
        rel->cols[i].key = c->key;
    }
    relation_prepare_json(rel);
    return rel;
}

/* What the catalog says of a relation: its column types, and (judged by
 * the catalog at this moment: ATTACH and DETACH PARTITION make the server
 * send the Relation message again) which sinks want its changes. */
static source_status describe_and_route(source *s, relation *rel,
                                        uint64_t *route, char *err,
                                        size_t errlen)
{
    relation_lineage lineage;
    memset(&lineage, 0, sizeof lineage);
    relation_lineage *wanted = s->router.needs_lineage ? &lineage : NULL;
    source_status st =
        s->catalog.describe(s->catalog.ctx, rel, wanted, err, errlen);
    if (st == SOURCE_OK &&
        !s->router.route(s->router.ctx, wanted, route, err, errlen))
        st = SOURCE_FAILED;
    catalog_source_clear(&lineage.src);
    return st;
}

static source_status handle_relation(source *s, char *err, size_t errlen)
{
    relation *rel = relation_from_message(&s->m);
    uint64_t route = 0;
    source_status st = describe_and_route(s, rel, &route, err, errlen);
    if (st != SOURCE_OK) {
        relation_unref(rel);
        return st;
    }
    relcache_put(&s->rels, rel, route);
    return SOURCE_OK;
}

static relcache_entry *change_relation(source *s, uint32_t relid, char *err,
                                       size_t errlen)
{
    relcache_entry *e = relcache_find(&s->rels, relid);
    if (!e)
        snprintf(err, errlen,
                 "protocol error: change for relation %u before its "
                 "Relation message",
                 relid);
    return e;
}

/* ---- events ---- */

/* Changes are numbered by their place among all changes the server sent in
 * the transaction, routed anywhere or not, so a transaction resent after a
 * restart numbers its changes exactly as before, whatever sinks and
 * filters are configured now; sinks rely on that to skip what they already
 * hold. A schema event takes the position of the change before it (seq 0
 * at the start of a transaction): it is always followed by a change in the
 * same batch, so no transaction is confirmed on a schema event alone. */
static event *new_event_at(source *s, batch *b, relation *rel, uint64_t route,
                           pgspout_op op, uint64_t lsn, pgspout_position pos,
                           size_t approx_bytes)
{
    event *ev = batch_new_event(b);
    ev->op = op;
    ev->rel = rel ? relation_ref(rel) : NULL;
    ev->lsn = lsn;
    ev->xid = s->txn_xid;
    ev->commit_time_us = s->txn_commit_time;
    ev->pos = pos;
    if (op != PGSPOUT_OP_SCHEMA)
        s->last_pos = ev->pos;
    stats_event_taken(ev, route);
    batch_add(b, ev, route, approx_bytes);
    return ev;
}

/* With transaction_events, a transaction's first event comes after its
 * begin event, which holds seq 1 (handle_begin numbers from there). */
static void begin_if_due(source *s, batch *b)
{
    if (!s->events.transaction_events || s->begin_sent || !s->in_txn)
        return;
    s->begin_sent = true;
    new_event_at(s, b, NULL, s->all_route, PGSPOUT_OP_BEGIN, s->rm.wal_start,
                 (pgspout_position){s->txn_commit_lsn, 1}, 0);
}

static event *new_event(source *s, batch *b, relation *rel, uint64_t route,
                        pgspout_op op, uint64_t lsn, size_t approx_bytes)
{
    begin_if_due(s, b);
    if (op != PGSPOUT_OP_SCHEMA && s->events.transaction_events)
        txn_counts_add(&s->counts, rel ? rel->schema : NULL,
                       rel ? rel->table : NULL);
    return new_event_at(s, b, rel, route, op, lsn,
                        (pgspout_position){s->txn_commit_lsn, s->txn_seq},
                        approx_bytes);
}

/* The next change of the relation in e: numbered always, an event (after
 * a schema event when one is due) only when some sink wants it. */
static event *next_change(source *s, batch *b, relcache_entry *e, pgspout_op op,
                          size_t approx_bytes)
{
    uint64_t lsn = s->rm.wal_start;
    if (!e->route) {
        s->txn_seq++;
        return NULL;
    }
    if (e->schema_pending) {
        e->schema_pending = false;
        new_event(s, b, e->rel, e->route, PGSPOUT_OP_SCHEMA, lsn,
                  64u * (size_t)e->rel->ncols);
    }
    s->txn_seq++;
    return new_event(s, b, e->rel, e->route, op, lsn, approx_bytes);
}

static source_status handle_change(source *s, batch *b, bool *keep_buffer,
                                   char *err, size_t errlen)
{
    pgoutput_msg *m = &s->m;
    relcache_entry *e = change_relation(s, m->u.change.relid, err, errlen);
    if (!e)
        return SOURCE_FAILED;
    pgspout_op op = m->type == PGO_INSERT   ? PGSPOUT_OP_INSERT
                    : m->type == PGO_UPDATE ? PGSPOUT_OP_UPDATE
                                            : PGSPOUT_OP_DELETE;
    if (s->backfill)
        backfill_note_change(
            s->backfill, e->rel, s->txn_xid,
            (pgspout_position){s->txn_commit_lsn, s->txn_seq + 1},
            (char)m->type, m->u.change.old_kind, &m->u.change.old_tuple,
            &m->u.change.new_tuple);
    event *ev = next_change(s, b, e, op, s->rm.payload_len);
    if (!ev)
        return SOURCE_OK;
    ev->old_kind = m->u.change.old_kind;
    ev->old_tuple = m->u.change.old_tuple;
    ev->new_tuple = m->u.change.new_tuple;
    /* The event owns the column arrays now, and its values point into the
     * message's buffer. */
    memset(&m->u.change.old_tuple, 0, sizeof(tuple));
    memset(&m->u.change.new_tuple, 0, sizeof(tuple));
    *keep_buffer = true;
    return SOURCE_OK;
}

static source_status handle_truncate(source *s, batch *b, char *err,
                                     size_t errlen)
{
    const pgoutput_msg *m = &s->m;
    for (uint32_t i = 0; i < m->u.truncate.nrelids; i++) {
        relcache_entry *e =
            change_relation(s, m->u.truncate.relids[i], err, errlen);
        if (!e)
            return SOURCE_FAILED;
        if (s->backfill)
            backfill_note_truncate(s->backfill, e->oid, s->txn_xid);
        event *ev = next_change(s, b, e, PGSPOUT_OP_TRUNCATE, 0);
        if (ev) {
            ev->cascade = m->u.truncate.cascade;
            ev->restart_identity = m->u.truncate.restart_identity;
        }
    }
    return SOURCE_OK;
}

/* ---- backfills ---- */

/* Resolves the tables of the requests waiting for it: the publication's
 * relations, each with the route its changes get. */
static source_status resolve_backfills(source *s, char *err, size_t errlen)
{
    relation_lineage *lineages = NULL;
    size_t n = 0;
    if (!s->catalog.published)
        return SOURCE_OK;
    source_status st =
        s->catalog.published(s->catalog.ctx, &lineages, &n, err, errlen);
    if (st != SOURCE_OK)
        return st;
    const catalog_source **sources = xcalloc(n + 1, sizeof *sources);
    uint64_t *routes = xcalloc(n + 1, sizeof *routes);
    bool *ok = xcalloc(n + 1, sizeof *ok);
    char **why = xcalloc(n + 1, sizeof *why);
    for (size_t i = 0; i < n; i++) {
        char reason[1024] = "";
        sources[i] = &lineages[i].src;
        ok[i] = s->router.route(s->router.ctx,
                                s->router.needs_lineage ? &lineages[i] : NULL,
                                &routes[i], reason, sizeof reason);
        why[i] = ok[i] ? NULL : xstrdup(reason);
    }
    backfill_resolve(s->backfill, sources, routes, ok, why, n);
    for (size_t i = 0; i < n; i++) {
        free(why[i]);
        catalog_source_clear(&lineages[i].src);
    }
    free(lineages);
    free(sources);
    free(routes);
    free(ok);
    free(why);
    return SOURCE_OK;
}

static relation *relation_from_rows(const backfill_rows_desc *d)
{
    relation *rel = xcalloc(1, sizeof *rel);
    rel->refcount = 1;
    rel->oid = d->oid;
    rel->schema = xstrdup(d->schema);
    rel->table = xstrdup(d->table);
    rel->replica_identity = d->replident;
    rel->ncols = d->ncols;
    rel->cols = xcalloc((size_t)rel->ncols, sizeof *rel->cols);
    for (int i = 0; i < rel->ncols; i++) {
        rel->cols[i].name = xstrdup(d->cols[i].name);
        rel->cols[i].type_oid = d->cols[i].type_oid;
        rel->cols[i].typmod = d->cols[i].typmod;
        rel->cols[i].key = d->cols[i].key;
    }
    relation_prepare_json(rel);
    return rel;
}

/* The relation the chunk's read events carry: the columns as it was read.
 * When the stream describes the table alike, its entry (and route) serve;
 * otherwise the read events get a schema event of their own before them,
 * and, if the stream had described the table otherwise, the stream's
 * description is due again after them. */
static source_status emission_relation(source *s, const backfill_rows_desc *d,
                                       char *err, size_t errlen)
{
    relation *rel = relation_from_rows(d);
    relcache_entry *e = relcache_find(&s->rels, d->oid);
    s->emit_entry_stale = false;
    if (e && relation_same_definition(e->rel, rel)) {
        relation_unref(rel);
        s->emit_rel = relation_ref(e->rel);
        s->emit_route = e->route;
        s->emit_schema_due = e->schema_pending;
        e->schema_pending = false;
        return SOURCE_OK;
    }
    uint64_t route = 0;
    source_status st = describe_and_route(s, rel, &route, err, errlen);
    if (st != SOURCE_OK) {
        relation_unref(rel);
        return st;
    }
    s->emit_rel = rel;
    s->emit_route = e ? e->route : route;
    s->emit_schema_due = true;
    s->emit_entry_stale = e != NULL;
    if (!e) {
        relcache_put(&s->rels, relation_ref(rel), route);
        relcache_find(&s->rels, d->oid)->schema_pending = false;
    }
    return SOURCE_OK;
}

static void end_emission(source *s, bool completed)
{
    backfill_emission_end(s->backfill, completed);
    /* A chunk without rows sent no schema event: the stream's next event
     * of the table owes it (an empty table's first insert needs one). */
    if (s->emit_entry_stale || s->emit_schema_due) {
        relcache_entry *e = relcache_find(&s->rels, s->emit_rel->oid);
        if (e)
            e->schema_pending = true;
    }
    relation_unref(s->emit_rel);
    s->emit_rel = NULL;
    s->emitting = false;
}

static size_t row_bytes(const tuple *t)
{
    size_t n = 0;
    for (int i = 0; i < t->ncols; i++)
        n += t->cols[i].len;
    return n;
}

/* A read event: the row as an insert, at the high watermark transaction's
 * position, numbered by its place among the chunk's rows. */
static void add_read_event(source *s, batch *b, tuple *t, uint64_t index)
{
    const backfill_rows_desc *d = backfill_emission_desc(s->backfill);
    if (s->emit_schema_due) {
        s->emit_schema_due = false;
        new_event(s, b, s->emit_rel, s->emit_route, PGSPOUT_OP_SCHEMA,
                  s->emit_lsn, 64u * (size_t)s->emit_rel->ncols);
    }
    s->txn_seq = s->emit_base_seq + index;
    event *ev = new_event(s, b, s->emit_rel, s->emit_route, PGSPOUT_OP_READ,
                          s->emit_lsn, row_bytes(t));
    /* The tuple's block holds the values' text too: the event frees it. */
    ev->new_tuple = *t;
    ev->snapshot = d->snapshot;
}

/* Sends the chunk's rows while the batch has room; the stream calls again
 * (source_has_more) after handing a full batch over. */
static source_status emit_rows(source *s, batch *b, char *err, size_t errlen)
{
    while (batch_has_room(b, source_events_needed(s)) &&
           !batch_full_by_size(b)) {
        tuple t;
        uint64_t index;
        int r = backfill_emission_next(s->backfill, &t, &index, &b->rows, err,
                                       errlen);
        if (r <= 0) {
            s->txn_seq = s->emit_base_seq + backfill_emission_rows(s->backfill);
            end_emission(s, r == 0);
            return r == 0 ? SOURCE_OK : SOURCE_FAILED;
        }
        if (!s->emit_route) {
            arena_undo(&b->rows, t.cols);
            continue;
        }
        add_read_event(s, b, &t, index);
    }
    return SOURCE_OK;
}

static source_status start_emission(source *s, batch *b, char *err,
                                    size_t errlen)
{
    const backfill_rows_desc *d = backfill_emission_desc(s->backfill);
    source_status st = emission_relation(s, d, err, errlen);
    if (st != SOURCE_OK) {
        backfill_emission_end(s->backfill, false);
        return st;
    }
    s->emitting = true;
    s->emit_base_seq = s->txn_seq;
    s->emit_lsn = s->rm.wal_start;
    return emit_rows(s, b, err, errlen);
}

/* pgspout's own messages: transactional, prefix "pgspout" (requests and
 * watermarks). */
static source_status handle_pgspout_message(source *s, batch *b, char *err,
                                            size_t errlen)
{
    const pgoutput_msg *m = &s->m;
    if (!s->backfill || !m->u.message.transactional || !s->in_txn)
        return SOURCE_OK;
    backfill_txn txn = {.xid = s->txn_xid,
                        .commit_lsn = s->txn_commit_lsn,
                        .commit_time_us = s->txn_commit_time,
                        .lsn = s->rm.wal_start};
    backfill_verdict v =
        backfill_message(s->backfill, &txn, m->u.message.content,
                         m->u.message.content_len, err, errlen);
    /* A low watermark holds the confirmation back from now on. */
    update_hold(s);
    switch (v) {
    case BACKFILL_RESOLVE:
        return resolve_backfills(s, err, errlen);
    case BACKFILL_EMIT:
        s->txn_has_hw = true;
        return start_emission(s, b, err, errlen);
    case BACKFILL_FAILED:
        return SOURCE_FAILED;
    case BACKFILL_NOTHING:
        break;
    }
    return SOURCE_OK;
}

static bool message_wanted(const source *s, const char *prefix)
{
    if (!s->events.messages || !s->all_route)
        return false;
    if (s->events.nprefixes == 0)
        return true;
    for (size_t i = 0; i < s->events.nprefixes; i++)
        if (fnmatch(s->events.prefixes[i], prefix, 0) == 0)
            return true;
    return false;
}

/* The message as an event: at pos, which the caller chose. */
static event *add_message_event(source *s, batch *b, pgspout_position pos)
{
    pgoutput_msg *m = &s->m;
    event *ev =
        s->in_txn
            ? new_event(s, b, NULL, s->all_route, PGSPOUT_OP_MESSAGE,
                        m->u.message.lsn, m->u.message.content_len)
            : new_event_at(s, b, NULL, s->all_route, PGSPOUT_OP_MESSAGE,
                           m->u.message.lsn, pos, m->u.message.content_len);
    ev->prefix = xstrdup(m->u.message.prefix);
    ev->content = xmalloc(m->u.message.content_len + 1);
    memcpy(ev->content, m->u.message.content, m->u.message.content_len);
    ev->content[m->u.message.content_len] = '\0';
    ev->content_len = m->u.message.content_len;
    ev->transactional = m->u.message.transactional;
    return ev;
}

/* A message outside any transaction: the server sends it when decoding
 * reaches its record, and a transaction when decoding reaches its commit
 * record. Its LSN, as pgoutput and pg_logical_emit_message give it, is its
 * record's end E; a transaction's commit_lsn is its commit record's start.
 * So every transaction sent before it has a commit_lsn below E, every one
 * sent after it a commit_lsn of at least E: (E, 0) sorts between them even
 * when the next commit record starts right at E (its events have seq 1 and
 * more), and messages among themselves are in LSN order. Confirming E
 * makes the server skip the message on restart (it skips those whose
 * record starts before the confirmed position), and nothing after it. */
static void handle_lone_message(source *s, batch *b)
{
    uint64_t lsn = s->m.u.message.lsn;
    bool past_endpos = s->has_endpos && lsn > s->endpos;
    if (!past_endpos && message_wanted(s, s->m.u.message.prefix)) {
        s->txn_xid = 0;
        s->txn_commit_time = 0;
        add_message_event(s, b, (pgspout_position){lsn, 0});
        s->committed_pos = s->last_pos;
        checkpoint_commit(s->cp, s->last_pos, lsn);
    }
    reached_idle(s, s->rm.wal_start);
}

/* A message in a transaction is one of its changes: numbered always
 * (whatever the settings, as changes are), an event when wanted. */
static source_status handle_logical_message(source *s, batch *b, char *err,
                                            size_t errlen)
{
    const pgoutput_msg *m = &s->m;
    bool own = strcmp(m->u.message.prefix, OWN_MESSAGE_PREFIX) == 0;
    if (!s->in_txn) {
        if (!m->u.message.transactional && !own)
            handle_lone_message(s, b);
        else if (!m->u.message.transactional)
            reached_idle(s, s->rm.wal_start);
        return SOURCE_OK;
    }
    if (own)
        return handle_pgspout_message(s, b, err, errlen);
    if (!m->u.message.transactional)
        return SOURCE_OK;
    s->txn_seq++;
    if (message_wanted(s, m->u.message.prefix))
        add_message_event(s, b, (pgspout_position){s->txn_commit_lsn, 0});
    return SOURCE_OK;
}

/* ---- transactions ---- */

static void start_txn(source *s, uint64_t commit_lsn, int64_t commit_time,
                      uint32_t xid)
{
    s->in_txn = true;
    s->txn_commit_lsn = commit_lsn;
    s->txn_commit_time = commit_time;
    s->txn_xid = xid;
    /* seq 1 is the begin event's when there are transaction events: the
     * numbering of changes depends on that setting (README). */
    s->txn_seq = s->events.transaction_events ? 1 : 0;
    s->begin_sent = false;
    txn_counts_reset(&s->counts);
}

static void handle_begin(source *s)
{
    const pgoutput_msg *m = &s->m;
    if (s->has_endpos && m->u.begin.final_lsn > s->endpos) {
        s->endpos_reached = true;
        s->skipping_txn = true;
        return;
    }
    start_txn(s, m->u.begin.final_lsn, m->u.begin.commit_time, m->xid);
}

/* A streamed transaction committed: it begins now, as if its Begin had
 * come, and its kept changes follow (read_replayed), then its Commit. */
static source_status handle_stream_commit(source *s, char *err, size_t errlen)
{
    const pgoutput_msg *m = &s->m;
    if (!s->spool) {
        snprintf(err, errlen,
                 "protocol error: Stream Commit, but streaming was not "
                 "asked for");
        return SOURCE_FAILED;
    }
    if (s->has_endpos && m->u.commit.commit_lsn > s->endpos) {
        s->endpos_reached = true;
        bool ok = stream_spool_abort(s->spool, m->xid, m->xid, err, errlen);
        update_hold(s);
        return ok ? SOURCE_OK : SOURCE_FAILED;
    }
    start_txn(s, m->u.commit.commit_lsn, m->u.commit.commit_time, m->xid);
    s->stream_commit = *m;
    s->replay_parser = (pgoutput_parser){
        .proto_version = s->parser.proto_version, .in_stream = true};
    stream_spool_replay_start(s->spool, m->xid);
    s->replaying = true;
    /* No longer open: its events hold the confirmation back from now on,
     * as any transaction's do. */
    update_hold(s);
    return SOURCE_OK;
}

/* The commit event of a transaction that delivered something: after its
 * last change, with its counts. */
static void add_commit_event(source *s, batch *b)
{
    if (!s->begin_sent)
        return;
    s->txn_seq++;
    event *ev = new_event_at(
        s, b, NULL, s->all_route, PGSPOUT_OP_COMMIT, s->m.u.commit.commit_lsn,
        (pgspout_position){s->txn_commit_lsn, s->txn_seq}, 0);
    ev->txn_counts = txn_counts_members(&s->counts);
    s->begin_sent = false;
}

static void handle_commit(source *s, batch *b)
{
    uint64_t end_lsn = s->m.u.commit.end_lsn;
    add_commit_event(s, b);
    s->in_txn = false;
    stats_txn_committed(s->txn_commit_time, end_lsn,
                        pgspout_position_cmp(s->last_pos, s->committed_pos) !=
                            0);
    if (s->backfill)
        backfill_committed(s->backfill, s->txn_xid);
    if (s->txn_has_hw)
        backfill_note_commit(s->backfill, end_lsn);
    s->txn_has_hw = false;
    s->committed_pos = s->last_pos;
    checkpoint_commit(s->cp, s->last_pos, end_lsn);
    /* As pg_recvlogical: a commit ending at or past endpos is the last one
     * wanted; waiting for a keepalive instead could wait forever. */
    if (s->has_endpos && end_lsn >= s->endpos)
        s->endpos_reached = true;
}

static source_status handle_message(source *s, batch *b, bool *keep_buffer,
                                    char *err, size_t errlen)
{
    pgoutput_msg_type type = s->m.type;
    bool skipped = s->skipping_txn;
    switch (type) {
    case PGO_BEGIN:
        handle_begin(s);
        /* Requests recorded by an earlier run whose tables were never
         * resolved (it stopped in between). */
        if (s->backfill && backfill_needs_resolution(s->backfill))
            return resolve_backfills(s, err, errlen);
        return SOURCE_OK;
    case PGO_COMMIT:
        if (!skipped)
            handle_commit(s, b);
        return SOURCE_OK;
    case PGO_STREAM_COMMIT: {
        source_status st = handle_stream_commit(s, err, errlen);
        if (st == SOURCE_OK && s->in_txn && s->backfill &&
            backfill_needs_resolution(s->backfill))
            return resolve_backfills(s, err, errlen);
        return st;
    }
    case PGO_RELATION:
        return handle_relation(s, err, errlen);
    case PGO_INSERT:
    case PGO_UPDATE:
    case PGO_DELETE:
        return skipped ? SOURCE_OK
                       : handle_change(s, b, keep_buffer, err, errlen);
    case PGO_TRUNCATE:
        return skipped ? SOURCE_OK : handle_truncate(s, b, err, errlen);
    case PGO_MESSAGE:
        /* One outside a transaction (pgspout's heartbeats among them) also
         * shows how far the server has read. */
        if (skipped && !s->in_txn && !s->m.u.message.transactional)
            reached_idle(s, s->rm.wal_start);
        return skipped ? SOURCE_OK : handle_logical_message(s, b, err, errlen);
    case PGO_ORIGIN:
    case PGO_TYPE:
        /* Type names come from the catalog; origins are not changes. */
        return SOURCE_OK;
    default:
        snprintf(err, errlen,
                 "unexpected pgoutput message '%s' for protocol version %d",
                 pgoutput_msg_type_name(type), s->parser.proto_version);
        return SOURCE_FAILED;
    }
}

source_status source_apply(source *s, batch *b, char *err, size_t errlen)
{
    if (s->emitting)
        return emit_rows(s, b, err, errlen);
    if (!s->pending)
        return SOURCE_OK;
    bool keep = false;
    source_status st = handle_message(s, b, &keep, err, errlen);
    pgoutput_msg_free(&s->m);
    if (keep)
        batch_keep_buffer(b, s->rm.buffer, s->rm_free);
    else
        s->rm_free(s->rm.buffer);
    s->pending = false;
    return st;
}

/* ---- state ---- */

bool source_in_txn(const source *s)
{
    return s->in_txn;
}

pgspout_position source_committed(const source *s)
{
    return s->committed_pos;
}

uint64_t source_idle_wal_end(const source *s)
{
    return s->idle_wal_end;
}

bool source_endpos_reached(const source *s)
{
    return s->endpos_reached;
}

bool source_has_more(const source *s)
{
    return s->emitting;
}

uint64_t source_confirm_limit(source *s, uint64_t durable_end)
{
    return confirm_hold(
        s, s->backfill ? backfill_confirm_limit(s->backfill, durable_end)
                       : UINT64_MAX);
}

bool source_confirm(source *s, uint64_t lsn, char *err, size_t errlen)
{
    bool ok = s->io.confirm(s->io.ctx, lsn, err, errlen);
    /* Done chunks are recorded as done: their spill files are not needed
     * whether or not the server got this confirmation. */
    if (s->backfill)
        backfill_confirmed(s->backfill);
    return ok;
}

bool source_finish(source *s, char *err, size_t errlen)
{
    return s->io.finish(s->io.ctx, err, errlen);
}

bool source_connected(const source *s)
{
    return s->io.connected(s->io.ctx);
}
