#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "batch.h"
#include "catalog.h"
#include "checkpoint.h"
#include "delivery.h"
#include "event_internal.h"
#include "log.h"
#include "lsn.h"
#include "pgoutput.h"
#include "replication.h"
#include "selection.h"
#include "strbuf.h"

/* pgoutput protocol 1 is enough: pgspout does not ask for in-progress
 * transactions to be streamed, because their commit LSN (part of every
 * event's position) is unknown until they end; the server spills large
 * transactions to disk and sends them whole at commit instead. */
#define PGOUTPUT_PROTO_VERSION 1

void stream_settings_default(stream_settings *s)
{
    memset(s, 0, sizeof *s);
    s->slot = "pgspout";
    s->publication = "pgspout";
    s->status_interval_ms = 10000;
    s->batch_max_events = 1024;
    s->batch_max_bytes = 8u << 20;
    s->flush_interval_ms = 1000;
    s->flush_linger_ms = 10;
    s->max_unflushed_events = 100000;
}

/* What pgspout knows about one relation OID. */
typedef struct rel_entry {
    uint32_t oid; /* 0: free slot */
    relation *rel;
    bool schema_pending; /* emit a schema event before its next change */
    uint64_t sink_mask;  /* sinks that receive its changes */
} rel_entry;

typedef struct stream {
    const stream_settings *settings;
    PGconn **catalog; /* replaced when it must be reconnected */
    delivery *delivery;
    stop_state *stop;
    repl_stream rs;
    pgoutput_parser parser;
    char **search_path;
    size_t search_path_len;

    rel_entry *rels;
    size_t rels_cap, rels_used;

    bool in_txn;
    bool skipping_txn; /* a transaction past endpos: not delivered */
    uint64_t txn_commit_lsn;
    uint32_t txn_xid;
    int64_t txn_commit_time;
    uint64_t txn_seq;
    pgspout_position last_pos;      /* newest change event created */
    pgspout_position committed_pos; /* last_pos at the latest COMMIT */
    int64_t last_checkpoint_us;

    batch batch;

    checkpoint cp;
    uint64_t idle_wal_end; /* from a keepalive received between txns */
    bool endpos_reached;
} stream;

/* ---- relation cache: open addressing on the OID ---- */

static rel_entry *rel_lookup(stream *st, uint32_t oid, bool create)
{
    if (create && (st->rels_used + 1) * 2 > st->rels_cap) {
        size_t old_cap = st->rels_cap;
        rel_entry *old = st->rels;
        st->rels_cap = old_cap ? old_cap * 2 : 64;
        st->rels = xcalloc(st->rels_cap, sizeof *st->rels);
        for (size_t i = 0; i < old_cap; i++) {
            if (!old[i].oid)
                continue;
            size_t j = old[i].oid % st->rels_cap;
            while (st->rels[j].oid)
                j = (j + 1) % st->rels_cap;
            st->rels[j] = old[i];
        }
        free(old);
    }
    if (!st->rels_cap)
        return NULL;
    size_t i = oid % st->rels_cap;
    while (st->rels[i].oid) {
        if (st->rels[i].oid == oid)
            return &st->rels[i];
        i = (i + 1) % st->rels_cap;
    }
    if (!create)
        return NULL;
    st->rels[i].oid = oid;
    st->rels_used++;
    return &st->rels[i];
}

static bool same_definition(const relation *a, const relation *b)
{
    if (strcmp(a->schema, b->schema) != 0 || strcmp(a->table, b->table) != 0 ||
        a->ncols != b->ncols || a->replica_identity != b->replica_identity)
        return false;
    for (int i = 0; i < a->ncols; i++) {
        const relation_column *x = &a->cols[i], *y = &b->cols[i];
        if (strcmp(x->name, y->name) != 0 || x->type_oid != y->type_oid ||
            x->typmod != y->typmod || x->key != y->key)
            return false;
    }
    return true;
}

static bool in_search_path(const stream *st, const char *schema)
{
    for (size_t i = 0; i < st->search_path_len; i++)
        if (strcmp(st->search_path[i], schema) == 0)
            return true;
    return false;
}

/* The relation's chain and leaves as the catalog has them now. Its own
 * name is the one its changes carry (from the Relation message). A
 * relation dropped since is judged alone, visible when its schema is in
 * search_path. */
static bool relation_source(stream *st, const relation *rel,
                            catalog_source *src, char *err, size_t errlen,
                            bool *retryable)
{
    bool found;
    if (!catalog_relation_source(*st->catalog, st->stop, rel->oid, src, &found,
                                 err, errlen, retryable))
        return false;
    if (!found) {
        src->chain.tables = xcalloc(1, sizeof *src->chain.tables);
        src->chain.n = 1;
        src->chain.tables[0].visible = in_search_path(st, rel->schema);
    }
    catalog_table *self = &src->chain.tables[0];
    free(self->schema);
    free(self->table);
    free(self->quoted);
    self->schema = xstrdup(rel->schema);
    self->table = xstrdup(rel->table);
    char *schema = quote_ident_dup(rel->schema),
         *table = quote_ident_dup(rel->table);
    strbuf quoted = STRBUF_INIT;
    sbuf_appendf(&quoted, "%s.%s", schema, table);
    self->quoted = quoted.data;
    free(schema);
    free(table);
    return true;
}

/* Which sinks get the changes arriving under rel, judged by the catalog at
 * this moment: ATTACH and DETACH PARTITION make the server send the
 * Relation message again, so this runs for every one. A partitioned
 * relation whose leaves' changes arrive under its name
 * (publish_via_partition_root) stops the stream when a leaf is selected
 * unlike it: neither dropping nor streaming those changes is right. */
static bool relation_sink_mask(stream *st, const relation *rel, uint64_t *mask,
                               char *err, size_t errlen, bool *retryable)
{
    const selection *sel = delivery_selection(st->delivery);
    *mask = delivery_all_routes(st->delivery);
    if (!selection_has_patterns(sel))
        return true;
    catalog_source src;
    if (!relation_source(st, rel, &src, err, errlen, retryable))
        return false;
    bool ok = true, exists, via_root = false;
    if (src.nleaves > 0)
        ok = catalog_publication_info(*st->catalog, st->stop,
                                      st->settings->publication, &exists,
                                      &via_root, err, errlen, retryable);
    if (ok && via_root) {
        char what[256];
        snprintf(what, sizeof what, "publication \"%s\"",
                 st->settings->publication);
        *retryable = false;
        ok = selection_check_partitions(sel, &src, what, err, errlen);
    }
    if (ok)
        *mask = selection_mask(sel, &src.chain);
    catalog_source_clear(&src);
    return ok;
}

/* What the catalog says of a relation: its column types, and the sinks
 * that receive its changes. */
static bool ask_catalog(stream *st, relation *rel, uint64_t *mask, char *err,
                        size_t errlen, bool *retryable)
{
    *retryable = true;
    return catalog_describe_columns(*st->catalog, st->stop, rel, err, errlen,
                                    retryable) &&
           relation_sink_mask(st, rel, mask, err, errlen, retryable);
}

/* Replaces a catalog connection that can take no more queries; on failure
 * leaves none, with err saying why. */
static void reconnect_catalog(stream *st, char *err, size_t errlen)
{
    if (catalog_connection_usable(*st->catalog))
        return;
    PQfinish(*st->catalog);
    *st->catalog =
        pq_connect(st->settings->conninfo, false, st->stop, NULL, err, errlen);
    if (*st->catalog)
        log_info("catalog connection re-established");
}

/* Asks the catalog about a relation until it answers: the catalog
 * connection sits idle between Relation messages, so the server may have
 * closed it (idle_session_timeout, a terminated backend) and a new one may
 * be refused for a while (max_connections reached, a restart). Replication
 * itself is healthy meanwhile: wait with backoff, confirming nothing new
 * (the status thread keeps the walsender alive), until the catalog answers
 * or a stop is requested (*stopped). Returns false with err set on an
 * error that asking again cannot cure, or on a stop. */
static bool describe_relation(stream *st, relation *rel, uint64_t *mask,
                              bool *stopped, char *err, size_t errlen)
{
    *stopped = false;
    if (!catalog_connection_usable(*st->catalog))
        snprintf(err, errlen, "the catalog connection is closed");
    for (int attempt = 1;; attempt++) {
        bool retryable = true;
        if (catalog_connection_usable(*st->catalog)) {
            if (ask_catalog(st, rel, mask, err, errlen, &retryable))
                return true;
            if (!retryable)
                return false;
        }
        int64_t delay = backoff_delay_ms(attempt);
        log_warning("%s; asking the catalog again in %lld ms (attempt %d); "
                    "nothing new is confirmed meanwhile",
                    err, (long long)delay, attempt);
        if (!stop_sleep(st->stop, delay)) {
            *stopped = true;
            snprintf(err, errlen,
                     "stop requested while waiting for the catalog");
            return false;
        }
        reconnect_catalog(st, err, errlen);
    }
}

typedef enum step_result { STEP_OK, STEP_FAILED, STEP_STOPPED } step_result;

static step_result handle_relation(stream *st, const pgoutput_msg *m, char *err,
                                   size_t errlen)
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
    uint64_t mask;
    bool stopped;
    if (!describe_relation(st, rel, &mask, &stopped, err, errlen)) {
        relation_unref(rel);
        return stopped ? STEP_STOPPED : STEP_FAILED;
    }
    rel_entry *e = rel_lookup(st, rel->oid, true);
    if (!e->rel || !same_definition(e->rel, rel))
        e->schema_pending = true;
    e->sink_mask = mask;
    if (e->rel)
        relation_unref(e->rel);
    e->rel = rel;
    return STEP_OK;
}

/* ---- events ---- */

/* Changes are numbered by their place among all changes the server sent in
 * the transaction, filtered or not, so a transaction resent after a restart
 * numbers its changes exactly as before, whatever sinks and filters are
 * configured now; sinks rely on that to skip what they already hold. A
 * schema event takes the position of the change before it (seq 0 at the
 * start of a transaction): it is always followed by a change in the same
 * batch, so no transaction is confirmed on a schema event alone. */
static event *new_event(stream *st, rel_entry *e, pgspout_op op, uint64_t lsn,
                        size_t approx_bytes)
{
    event *ev = xcalloc(1, sizeof *ev);
    ev->op = op;
    ev->rel = relation_ref(e->rel);
    ev->lsn = lsn;
    ev->xid = st->txn_xid;
    ev->commit_time_us = st->txn_commit_time;
    ev->pos.commit_lsn = st->txn_commit_lsn;
    ev->pos.seq = st->txn_seq;
    if (op != PGSPOUT_OP_SCHEMA)
        st->last_pos = ev->pos;
    batch_add(&st->batch, ev, e->sink_mask, approx_bytes);
    return ev;
}

static void maybe_schema_event(stream *st, rel_entry *e, uint64_t lsn)
{
    if (!e->schema_pending)
        return;
    e->schema_pending = false;
    new_event(st, e, PGSPOUT_OP_SCHEMA, lsn, 64u * (size_t)e->rel->ncols);
}

/* Hands the batch to the sinks; the batch is empty afterwards. */
static bool deliver_batch(stream *st)
{
    delivery_result r = delivery_write(st->delivery, &st->batch);
    batch_clear(&st->batch);
    return r == DELIVERED;
}

/* Confirms what every sink has made durable; sends a status update when
 * that moved. */
static bool confirm_durable(stream *st, char *err, size_t errlen)
{
    pgspout_position durable;
    bool everything = delivery_durable(st->delivery, &durable);
    bool moved = checkpoint_advance(&st->cp, everything, durable);
    if (!st->in_txn && batch_empty(&st->batch) && st->idle_wal_end)
        moved |= checkpoint_idle(&st->cp, st->idle_wal_end);
    if (!moved)
        return true;
    atomic_store(&st->rs.flushed, st->cp.confirmed);
    char lsn[LSN_FORMAT_BUFSIZE];
    log_debug("confirmed %s", lsn_format(st->cp.confirmed, lsn, sizeof lsn));
    return repl_send_status(&st->rs, false, err, errlen);
}

/* ---- messages ---- */

static rel_entry *change_relation(stream *st, uint32_t relid, char *err,
                                  size_t errlen)
{
    rel_entry *e = rel_lookup(st, relid, false);
    if (!e || !e->rel)
        snprintf(err, errlen,
                 "protocol error: change for relation %u before its "
                 "Relation message",
                 relid);
    return e && e->rel ? e : NULL;
}

/* Returns true when the CopyData buffer must stay alive with the batch. */
static step_result handle_message(stream *st, const repl_msg *rm,
                                  pgoutput_msg *m, bool *keep_buffer, char *err,
                                  size_t errlen)
{
    *keep_buffer = false;
    switch (m->type) {
    case PGO_BEGIN:
        if (st->settings->has_endpos &&
            m->u.begin.final_lsn > st->settings->endpos) {
            st->endpos_reached = true;
            st->skipping_txn = true;
            return STEP_OK;
        }
        st->in_txn = true;
        st->txn_commit_lsn = m->u.begin.final_lsn;
        st->txn_commit_time = m->u.begin.commit_time;
        st->txn_xid = m->xid;
        st->txn_seq = 0;
        return STEP_OK;
    case PGO_COMMIT:
        if (st->skipping_txn)
            return STEP_OK;
        st->in_txn = false;
        st->committed_pos = st->last_pos;
        checkpoint_commit(&st->cp, st->last_pos, m->u.commit.end_lsn);
        /* As pg_recvlogical: a commit ending at or past endpos is the last
         * one wanted; waiting for a keepalive instead could wait forever. */
        if (st->settings->has_endpos &&
            m->u.commit.end_lsn >= st->settings->endpos)
            st->endpos_reached = true;
        return STEP_OK;
    case PGO_RELATION:
        return handle_relation(st, m, err, errlen);
    case PGO_INSERT:
    case PGO_UPDATE:
    case PGO_DELETE: {
        if (st->skipping_txn)
            return STEP_OK;
        rel_entry *e = change_relation(st, m->u.change.relid, err, errlen);
        if (!e)
            return STEP_FAILED;
        if (!e->sink_mask) {
            st->txn_seq++;
            return STEP_OK;
        }
        maybe_schema_event(st, e, rm->wal_start);
        st->txn_seq++;
        pgspout_op op = m->type == PGO_INSERT   ? PGSPOUT_OP_INSERT
                        : m->type == PGO_UPDATE ? PGSPOUT_OP_UPDATE
                                                : PGSPOUT_OP_DELETE;
        event *ev = new_event(st, e, op, rm->wal_start, rm->payload_len);
        ev->old_kind = m->u.change.old_kind;
        ev->old_tuple = m->u.change.old_tuple;
        ev->new_tuple = m->u.change.new_tuple;
        /* The event owns the column arrays now. */
        memset(&m->u.change.old_tuple, 0, sizeof(tuple));
        memset(&m->u.change.new_tuple, 0, sizeof(tuple));
        *keep_buffer = true;
        return STEP_OK;
    }
    case PGO_TRUNCATE:
        if (st->skipping_txn)
            return STEP_OK;
        for (uint32_t i = 0; i < m->u.truncate.nrelids; i++) {
            rel_entry *e =
                change_relation(st, m->u.truncate.relids[i], err, errlen);
            if (!e)
                return STEP_FAILED;
            if (!e->sink_mask) {
                st->txn_seq++;
                continue;
            }
            maybe_schema_event(st, e, rm->wal_start);
            st->txn_seq++;
            event *ev = new_event(st, e, PGSPOUT_OP_TRUNCATE, rm->wal_start, 0);
            ev->cascade = m->u.truncate.cascade;
            ev->restart_identity = m->u.truncate.restart_identity;
        }
        return STEP_OK;
    case PGO_ORIGIN:
    case PGO_TYPE:
    case PGO_MESSAGE:
        /* Type names come from the catalog; logical decoding messages and
         * origins are not changes of a table. */
        return STEP_OK;
    default:
        snprintf(err, errlen,
                 "unexpected pgoutput message '%s' for protocol version %d",
                 pgoutput_msg_type_name(m->type), st->parser.proto_version);
        return STEP_FAILED;
    }
}

/* Room for the largest number of events one message can create: a
 * TRUNCATE makes a schema event and a truncate event per relation. */
static size_t events_needed(const pgoutput_msg *m)
{
    return m->type == PGO_TRUNCATE ? 2 * (size_t)m->u.truncate.nrelids : 2;
}

/* Delivers the batch, flushes sinks that are due (all when idle) and
 * confirms what became durable. */
static bool checkpoint_now(stream *st, bool idle)
{
    char err[1024];
    st->last_checkpoint_us = now_us();
    if (!batch_empty(&st->batch) && !deliver_batch(st))
        return false;
    if (delivery_flush(st->delivery, idle, st->in_txn) != DELIVERED)
        return false;
    if (!confirm_durable(st, err, sizeof err)) {
        log_error("%s", err);
        return false;
    }
    return true;
}

static void log_stop_position(stream *st, const char *why)
{
    char lsn[LSN_FORMAT_BUFSIZE];
    log_info("%s; confirmed up to %s", why,
             lsn_format(st->cp.confirmed, lsn, sizeof lsn));
}

int stream_run(PGconn *repl, PGconn **catalog, delivery *d,
               const stream_settings *settings, stop_state *stop)
{
    char err[2048];
    if (delivery_sink_count(d) > SELECTION_MAX_SINKS) {
        log_error("at most %d sinks can run at once", SELECTION_MAX_SINKS);
        return 1;
    }
    stream *st = xcalloc(1, sizeof *st);
    st->settings = settings;
    st->catalog = catalog;
    st->delivery = d;
    delivery_set_flush_policy(d, settings->flush_linger_ms,
                              settings->max_unflushed_events);
    st->stop = stop;
    st->parser.proto_version = PGOUTPUT_PROTO_VERSION;
    checkpoint_init(&st->cp, settings->start_lsn);
    batch_init(&st->batch, settings->batch_max_events,
               settings->batch_max_bytes);
    st->search_path = catalog_search_path(*catalog, stop, &st->search_path_len);
    int exit_code = 1;
    bool started = false;

    int wake_fd = stop_wake_fd(stop);
    stop_set_phase(stop, STOP_STREAMING);
    if (!repl_start(&st->rs, repl, stop, settings->slot, settings->publication,
                    PGOUTPUT_PROTO_VERSION, settings->status_interval_ms, err,
                    sizeof err)) {
        log_error("%s", err);
        if (st->rs.start_retryable)
            exit_code = STREAM_DISCONNECTED;
        goto out;
    }
    started = true;
    log_info("streaming from slot \"%s\", publication \"%s\"", settings->slot,
             settings->publication);

    bool failed = false, disconnected = false, server_refused = false;
    while (!failed && !stop_requested(stop) && !st->endpos_reached) {
        /* A batch full by size goes out before the next message is read:
         * reading copies that message out of libpq, and the batch may hold
         * a huge one already (two such copies would coexist). */
        if (batch_full_by_size(&st->batch) && !checkpoint_now(st, false)) {
            failed = true;
            break;
        }
        /* Read without waiting while data is there and the batch has room;
         * once the socket is drained, hand the batch over. Sinks are flushed
         * when their oldest unflushed change has waited the linger: changes
         * arriving meanwhile share that fsync (group commit), and none waits
         * much longer, however busy the stream. */
        int timeout = 1000;
        int64_t deadline = st->in_txn ? 0 : delivery_linger_deadline(d);
        if (!batch_empty(&st->batch)) {
            timeout = 0;
        } else if (deadline) {
            int64_t left = deadline - now_us();
            timeout = left <= 0 ? 0 : (int)((left + 999) / 1000);
        }
        repl_msg rm;
        int r = repl_read(&st->rs, &rm, timeout, wake_fd, err, sizeof err);
        if (r == -2) {
            /* The server refused to go on (e.g. the publication was
             * dropped); it would refuse again at the same position after
             * any reconnect. */
            log_error("%s", err);
            log_error("the server stopped replication with an error that "
                      "reconnecting cannot cure");
            failed = server_refused = true;
            break;
        }
        if (r < 0) {
            log_error("%s", err);
            failed = disconnected = true;
            break;
        }
        if (r == 0 && !repl_check_alive(&st->rs, err, sizeof err)) {
            log_error("%s", err);
            failed = disconnected = true;
            break;
        }
        if (r == 0) {
            stop_drain_wake(stop);
            if (!checkpoint_now(st, batch_empty(&st->batch) && !st->in_txn))
                failed = true;
            continue;
        }
        if (rm.kind == REPL_KEEPALIVE) {
            if (!st->in_txn) {
                st->idle_wal_end = rm.wal_end;
                uint64_t received = atomic_load(&st->rs.received);
                if (rm.wal_end > received)
                    atomic_store(&st->rs.received, rm.wal_end);
                if (settings->has_endpos && rm.wal_end >= settings->endpos)
                    st->endpos_reached = true;
            }
            PQfreemem(rm.buffer);
            if (rm.reply_requested &&
                !repl_send_status(&st->rs, false, err, sizeof err)) {
                log_error("%s", err);
                failed = disconnected = true;
            }
            continue;
        }

        if (rm.wal_start > atomic_load(&st->rs.received))
            atomic_store(&st->rs.received, rm.wal_start);
        pgoutput_msg m;
        if (!pgoutput_parse(&st->parser, rm.payload, rm.payload_len, &m, err,
                            sizeof err)) {
            char lsn[LSN_FORMAT_BUFSIZE];
            log_error("cannot decode message at %s: %s",
                      lsn_format(rm.wal_start, lsn, sizeof lsn), err);
            PQfreemem(rm.buffer);
            failed = true;
            break;
        }
        size_t need = events_needed(&m);
        /* Hand over a full batch; and while the socket never runs dry, still
         * deliver, flush and confirm at the flush interval so sinks and the
         * slot keep moving. */
        int64_t now = now_us();
        bool due = now - st->last_checkpoint_us >=
                       (int64_t)settings->flush_interval_ms * 1000 ||
                   delivery_linger_over(d, now, st->in_txn);
        if (!batch_has_room(&st->batch, need) ||
            batch_full_by_size(&st->batch) || due) {
            if (!checkpoint_now(st, false)) {
                failed = true;
                pgoutput_msg_free(&m);
                PQfreemem(rm.buffer);
                break;
            }
        }
        bool keep = false;
        step_result step = handle_message(st, &rm, &m, &keep, err, sizeof err);
        if (step == STEP_FAILED) {
            log_error("%s", err);
            failed = true;
        } else if (step == STEP_STOPPED) {
            log_info("%s", err); /* the loop ends: *stop is set */
        }
        pgoutput_msg_free(&m);
        if (keep)
            batch_keep_buffer(&st->batch, rm.buffer, PQfreemem);
        else
            PQfreemem(rm.buffer);
    }

    if (failed) {
        /* A failed status update is a lost connection too; a walsender
         * that refused for good closes the connection as well, which must
         * not turn its error into a retry. */
        if (!server_refused)
            disconnected |= PQstatus(repl) != CONNECTION_OK;
        if (disconnected) {
            exit_code = STREAM_DISCONNECTED;
            goto out;
        }
        log_error("stopped on an error; nothing unacknowledged was "
                  "confirmed, a restart resumes from the slot");
        goto out;
    }
    /* A clean stop: everything taken from the server goes to the sinks and
     * is made durable before the final confirmation, except the tail of a
     * transaction that has not committed yet: the server sends all of it
     * again, so sinks that cannot recognise repeats see fewer of them. */
    if (st->in_txn)
        batch_drop_uncommitted_tail(&st->batch, st->committed_pos);
    stop_set_phase(stop, STOP_FINAL);
    if (!deliver_batch(st) || delivery_flush(d, true, st->in_txn) != DELIVERED)
        goto out;
    if (!confirm_durable(st, err, sizeof err) ||
        !repl_finish(&st->rs, err, sizeof err)) {
        log_error("%s; the server may not have received the final "
                  "confirmation, a restart resumes from the slot",
                  err);
        goto out;
    }
    log_stop_position(st, st->endpos_reached ? "reached endpos"
                                             : "stopped on request");
    exit_code = 0;

out:
    if (started)
        repl_stop(&st->rs);
    batch_free(&st->batch);
    for (size_t i = 0; i < st->rels_cap; i++)
        if (st->rels[i].rel)
            relation_unref(st->rels[i].rel);
    for (size_t i = 0; i < st->search_path_len; i++)
        free(st->search_path[i]);
    free(st->search_path);
    free(st->rels);
    checkpoint_free(&st->cp);
    free(st);
    return exit_code;
}
