#include "source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsn.h"
#include "pgoutput.h"
#include "relcache.h"
#include "stats.h"
#include "strbuf.h"

struct source {
    source_io io;
    source_catalog catalog;
    source_router router;
    checkpoint *cp;
    bool has_endpos;
    uint64_t endpos;

    pgoutput_parser parser;
    relcache rels;

    /* The message read and not yet applied. */
    bool pending;
    repl_msg rm;
    pgoutput_msg m;

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
};

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
    s->parser.proto_version = SOURCE_PGOUTPUT_PROTO_VERSION;
    return s;
}

static void discard_pending(source *s)
{
    if (!s->pending)
        return;
    pgoutput_msg_free(&s->m);
    s->io.free_buffer(s->rm.buffer);
    s->pending = false;
}

void source_free(source *s)
{
    if (!s)
        return;
    discard_pending(s);
    relcache_free(&s->rels);
    free(s);
}

/* ---- reading ---- */

/* The server has sent everything before lsn, between transactions:
 * nothing before it is pending for us. */
static void reached_idle(source *s, uint64_t lsn)
{
    if (lsn > s->idle_wal_end)
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

source_status source_read(source *s, int timeout_ms, int wake_fd, char *err,
                          size_t errlen)
{
    discard_pending(s);
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
    return SOURCE_MESSAGE;
}

/* Room for the largest number of events one message can create: a
 * TRUNCATE makes a schema event and a truncate event per relation. */
size_t source_events_needed(const source *s)
{
    if (!s->pending)
        return 0;
    return s->m.type == PGO_TRUNCATE ? 2 * (size_t)s->m.u.truncate.nrelids : 2;
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
static event *new_event(source *s, batch *b, const relcache_entry *e,
                        pgspout_op op, uint64_t lsn, size_t approx_bytes)
{
    event *ev = xcalloc(1, sizeof *ev);
    ev->op = op;
    ev->rel = relation_ref(e->rel);
    ev->lsn = lsn;
    ev->xid = s->txn_xid;
    ev->commit_time_us = s->txn_commit_time;
    ev->pos.commit_lsn = s->txn_commit_lsn;
    ev->pos.seq = s->txn_seq;
    if (op != PGSPOUT_OP_SCHEMA)
        s->last_pos = ev->pos;
    stats_event_taken(ev, e->route);
    batch_add(b, ev, e->route, approx_bytes);
    return ev;
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
        new_event(s, b, e, PGSPOUT_OP_SCHEMA, lsn, 64u * (size_t)e->rel->ncols);
    }
    s->txn_seq++;
    return new_event(s, b, e, op, lsn, approx_bytes);
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
        event *ev = next_change(s, b, e, PGSPOUT_OP_TRUNCATE, 0);
        if (ev) {
            ev->cascade = m->u.truncate.cascade;
            ev->restart_identity = m->u.truncate.restart_identity;
        }
    }
    return SOURCE_OK;
}

/* ---- transactions ---- */

static void handle_begin(source *s)
{
    const pgoutput_msg *m = &s->m;
    if (s->has_endpos && m->u.begin.final_lsn > s->endpos) {
        s->endpos_reached = true;
        s->skipping_txn = true;
        return;
    }
    s->in_txn = true;
    s->txn_commit_lsn = m->u.begin.final_lsn;
    s->txn_commit_time = m->u.begin.commit_time;
    s->txn_xid = m->xid;
    s->txn_seq = 0;
}

static void handle_commit(source *s)
{
    uint64_t end_lsn = s->m.u.commit.end_lsn;
    s->in_txn = false;
    stats_txn_committed(s->txn_commit_time, end_lsn,
                        pgspout_position_cmp(s->last_pos, s->committed_pos) !=
                            0);
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
        return SOURCE_OK;
    case PGO_COMMIT:
        if (!skipped)
            handle_commit(s);
        return SOURCE_OK;
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
        /* Not a change of a table; one outside a transaction (pgspout's
         * heartbeats among them) shows how far the server has read. */
        if (!s->in_txn && !s->m.u.message.transactional)
            reached_idle(s, s->rm.wal_start);
        return SOURCE_OK;
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
    if (!s->pending)
        return SOURCE_OK;
    bool keep = false;
    source_status st = handle_message(s, b, &keep, err, errlen);
    pgoutput_msg_free(&s->m);
    if (keep)
        batch_keep_buffer(b, s->rm.buffer, s->io.free_buffer);
    else
        s->io.free_buffer(s->rm.buffer);
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

bool source_confirm(source *s, uint64_t lsn, char *err, size_t errlen)
{
    return s->io.confirm(s->io.ctx, lsn, err, errlen);
}

bool source_finish(source *s, char *err, size_t errlen)
{
    return s->io.finish(s->io.ctx, err, errlen);
}

bool source_connected(const source *s)
{
    return s->io.connected(s->io.ctx);
}
