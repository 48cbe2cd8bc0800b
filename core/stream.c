#include "stream.h"

#include <stdio.h>
#include <string.h>

#include "backfill.h"
#include "batch.h"
#include "catalog_client.h"
#include "checkpoint.h"
#include "log.h"
#include "lsn.h"
#include "ops.h"
#include "pgconn.h"
#include "repl_io.h"
#include "selection.h"
#include "stats.h"

void stream_settings_default(stream_settings *s)
{
    memset(s, 0, sizeof *s);
    s->slot = "pgspout";
    s->publication = "pgspout";
    s->status_interval_ms = 10000;
    s->server_timeout_ms = 40000;
    s->batch_max_events = 1024;
    s->batch_max_bytes = 8u << 20;
    s->flush_interval_ms = 1000;
    s->flush_linger_ms = 10;
    s->max_unflushed_events = 100000;
}

typedef struct stream {
    const stream_settings *settings;
    source *source;
    delivery *delivery;
    stop_state *stop;
    batch batch;
    checkpoint cp;
    int64_t last_checkpoint_us;
    /* --snapshot only: its backfill ended (failed: not all of it). */
    bool backfill_finished, backfill_failed;
} stream;

/* How a run goes on or why it ended before a clean stop. */
typedef enum run_state {
    RUN_ON,
    RUN_FAILED,  /* a failure (logged); maybe the connection broke too */
    RUN_LOST,    /* the connection broke: reconnect */
    RUN_REFUSED, /* the server refused to go on; reconnecting cannot cure */
} run_state;

/* The router the source asks about each relation: which sinks get its
 * changes, by the delivery's filters. */
static bool route_relation(void *ctx, const relation_lineage *lineage,
                           uint64_t *route, char *err, size_t errlen)
{
    const delivery *d = ctx;
    if (!lineage) {
        *route = delivery_all_routes(d);
        return true;
    }
    return delivery_route(d, &lineage->src, lineage->via_root,
                          lineage->publication, route, err, errlen);
}

/* Hands the batch to the sinks; the batch is empty afterwards. */
static bool deliver_batch(stream *st)
{
    delivery_result r = delivery_write(st->delivery, &st->batch);
    batch_clear(&st->batch);
    stats_batch_handed_over();
    return r == DELIVERED;
}

/* Confirms the end of every transaction that every sink has made durable,
 * or the server's WAL end when nothing is pending at all; sends a status
 * update when that moved. */
static bool confirm_durable(stream *st, char *err, size_t errlen)
{
    pgspout_position durable;
    bool everything = delivery_durable(st->delivery, &durable);
    bool moved = checkpoint_advance(&st->cp, everything, durable);
    uint64_t idle_end = source_idle_wal_end(st->source);
    if (!source_in_txn(st->source) && batch_empty(&st->batch) && idle_end)
        moved |= checkpoint_idle(&st->cp, idle_end);
    /* Backfill chunks durable now are recorded as done before any
     * confirmation passes them; the others hold it back. */
    moved |= checkpoint_set_limit(
        &st->cp, source_confirm_limit(st->source, st->cp.durable));
    const char *finish = st->settings->finish_backfill;
    if (finish && !st->backfill_finished)
        st->backfill_finished = backfill_finished(st->settings->backfill,
                                                  finish, &st->backfill_failed);
    if (!moved)
        return true;
    stats_flushed(st->cp.confirmed);
    char lsn[LSN_FORMAT_BUFSIZE];
    log_debug("confirmed %s", lsn_format(st->cp.confirmed, lsn, sizeof lsn));
    return source_confirm(st->source, st->cp.confirmed, err, errlen);
}

/* Delivers the batch, flushes the sinks that are due (all when idle) and
 * confirms what became durable. */
static bool checkpoint_now(stream *st, bool idle)
{
    char err[1024];
    st->last_checkpoint_us = now_us();
    if (!batch_empty(&st->batch) && !deliver_batch(st))
        return false;
    bool in_txn = source_in_txn(st->source);
    if (delivery_flush(st->delivery, idle, in_txn) != DELIVERED)
        return false;
    if (!confirm_durable(st, err, sizeof err)) {
        log_error("%s", err);
        return false;
    }
    return true;
}

/* Read without waiting while data is there and the batch has room; once
 * the socket is drained, hand the batch over. Sinks are flushed when their
 * oldest unflushed change has waited the linger: changes arriving
 * meanwhile share that fsync (group commit), and none waits much longer,
 * however busy the stream. */
static int read_timeout_ms(const stream *st)
{
    if (!batch_empty(&st->batch))
        return 0;
    int64_t deadline =
        source_in_txn(st->source) ? 0 : delivery_linger_deadline(st->delivery);
    if (!deadline)
        return 1000;
    int64_t left = deadline - now_us();
    return left <= 0 ? 0 : (int)((left + 999) / 1000);
}

/* Makes room for the waiting message's events, then has the source turn
 * it into them. A full batch is handed over first; and while the socket
 * never runs dry, the batch is still delivered, sinks flushed and the slot
 * confirmed at the flush interval, so that sinks and the slot keep
 * moving. */
static run_state take_message(stream *st, char *err, size_t errlen)
{
    size_t need = source_events_needed(st->source);
    /* Once per change: the coarse clock (a tick behind at most) is plenty
     * for intervals of milliseconds and more, at a fraction of the cost. */
    int64_t now = now_coarse_us();
    bool due =
        now - st->last_checkpoint_us >=
            (int64_t)st->settings->flush_interval_ms * 1000 ||
        delivery_linger_over(st->delivery, now, source_in_txn(st->source));
    if ((!batch_has_room(&st->batch, need) || batch_full_by_size(&st->batch) ||
         due) &&
        !checkpoint_now(st, false))
        return RUN_FAILED;
    source_status s = source_apply(st->source, &st->batch, err, errlen);
    if (s == SOURCE_FAILED) {
        log_error("%s", err);
        return RUN_FAILED;
    }
    if (s == SOURCE_STOPPED)
        log_info("%s", err); /* the run ends: a stop is requested */
    return RUN_ON;
}

/* A failure ends the run: with STREAM_DISCONNECTED when the connection is
 * gone (a failed status update is a lost connection too), so the caller
 * reconnects; a walsender that refused for good closes the connection as
 * well, which must not turn its error into a retry. */
static int after_failure(stream *st, run_state state)
{
    if (state == RUN_LOST ||
        (state == RUN_FAILED && !source_connected(st->source)))
        return STREAM_DISCONNECTED;
    log_error("stopped on an error; nothing unacknowledged was "
              "confirmed, a restart resumes from the slot");
    return 1;
}

/* A clean stop: everything taken from the server goes to the sinks and is
 * made durable before the final confirmation, except the tail of a
 * transaction that has not committed yet: the server sends all of it
 * again, so sinks that cannot recognise repeats see fewer of them. From
 * here on only a second signal ends the waits for a failing sink. */
static int clean_stop(stream *st)
{
    char err[2048], lsn[LSN_FORMAT_BUFSIZE];
    bool in_txn = source_in_txn(st->source);
    if (in_txn)
        batch_drop_uncommitted_tail(&st->batch, source_committed(st->source));
    stop_set_phase(st->stop, STOP_FINAL);
    if (!deliver_batch(st) ||
        delivery_flush(st->delivery, true, in_txn) != DELIVERED)
        return 1;
    if (!confirm_durable(st, err, sizeof err) ||
        !source_finish(st->source, err, sizeof err)) {
        log_error("%s; the server may not have received the final "
                  "confirmation, a restart resumes from the slot",
                  err);
        return 1;
    }
    log_info("%s; confirmed up to %s",
             source_endpos_reached(st->source) ? "reached endpos"
             : st->backfill_finished           ? "the snapshot is done"
                                               : "stopped on request",
             lsn_format(st->cp.confirmed, lsn, sizeof lsn));
    return st->backfill_failed ? 1 : 0;
}

int stream_run(const stream_settings *settings, const source_io *io,
               const source_catalog *catalog, delivery *d, stop_state *stop)
{
    char err[2048];
    stream st = {.settings = settings, .delivery = d, .stop = stop};
    checkpoint_init(&st.cp, settings->start_lsn);
    batch_init(&st.batch, settings->batch_max_events,
               settings->batch_max_bytes);
    delivery_set_flush_policy(d, settings->flush_linger_ms,
                              settings->max_unflushed_events);
    source_router router = {.ctx = d,
                            .needs_lineage = delivery_routes_by_relation(d),
                            .route = route_relation};
    st.source = source_new(io, catalog, &router, &st.cp, settings->has_endpos,
                           settings->endpos);
    source_set_events(st.source, &settings->events, delivery_all_routes(d));
    if (io->proto_version >= SOURCE_PGOUTPUT_STREAM_PROTO_VERSION)
        source_set_streaming(st.source, settings->spill_dir,
                             settings->stream_memory);
    if (settings->backfill) {
        source_set_backfill(st.source, settings->backfill);
        backfill_stream_start(settings->backfill, settings->start_lsn);
    }
    stop_set_phase(stop, STOP_STREAMING);
    stats_stream_started();

    run_state state = RUN_ON;
    while (state == RUN_ON && !stop_requested(stop) &&
           !source_endpos_reached(st.source) && !st.backfill_finished) {
        /* A batch full by size goes out before the next message is read:
         * reading copies that message out of libpq, and the batch may hold
         * a huge one already (two such copies would coexist). */
        if (batch_full_by_size(&st.batch) && !checkpoint_now(&st, false)) {
            state = RUN_FAILED;
            break;
        }
        /* A backfill chunk's rows go out a batch at a time, inside their
         * high watermark's transaction, before anything else is read. */
        if (source_has_more(st.source)) {
            state = take_message(&st, err, sizeof err);
            continue;
        }
        switch (source_read(st.source, read_timeout_ms(&st), stop_wake_fd(stop),
                            err, sizeof err)) {
        case SOURCE_MESSAGE: /* pgoutput: events into the batch */
            state = take_message(&st, err, sizeof err);
            break;
        case SOURCE_OK: /* a keepalive */
            break;
        case SOURCE_IDLE: { /* nothing to read, or a sink acknowledged */
            stop_drain_wake(stop);
            bool idle = batch_empty(&st.batch) && !source_in_txn(st.source);
            if (!checkpoint_now(&st, idle))
                state = RUN_FAILED;
            break;
        }
        case SOURCE_LOST:
            log_error("%s", err);
            state = RUN_LOST;
            break;
        case SOURCE_REFUSED:
            /* e.g. the publication was dropped: the server would refuse
             * again at the same position after any reconnect */
            log_error("%s", err);
            log_error("the server stopped replication with an error that "
                      "reconnecting cannot cure");
            state = RUN_REFUSED;
            break;
        case SOURCE_FAILED:
        case SOURCE_STOPPED:
            log_error("%s", err);
            state = RUN_FAILED;
            break;
        }
    }
    int rc = state == RUN_ON ? clean_stop(&st) : after_failure(&st, state);
    source_free(st.source);
    batch_free(&st.batch);
    checkpoint_free(&st.cp);
    return rc;
}

int stream_from_server(PGconn *repl, PGconn **catalog, delivery *d,
                       const stream_settings *settings, stop_state *stop)
{
    char err[2048];
    if (delivery_sink_count(d) > SELECTION_MAX_SINKS) {
        log_error("at most %d sinks can run at once", SELECTION_MAX_SINKS);
        return 1;
    }
    stop_set_phase(stop, STOP_STREAMING);
    catalog_client *cat = catalog_client_new(catalog, settings->conninfo,
                                             settings->publication, stop);
    bool retryable = false;
    repl_io *io =
        repl_io_start(repl, stop, settings->slot, settings->publication,
                      settings->streaming, settings->status_interval_ms,
                      settings->server_timeout_ms, err, sizeof err, &retryable);
    if (!io) {
        log_error("%s", err);
        catalog_client_free(cat);
        return retryable ? STREAM_DISCONNECTED : 1;
    }
    if (settings->backfill &&
        !backfill_attach(settings->backfill, settings->system_id,
                         settings->database, settings->slot_created, err,
                         sizeof err)) {
        log_error("%s", err);
        repl_io_free(io);
        catalog_client_free(cat);
        return 1;
    }
    log_info("streaming from slot \"%s\", publication \"%s\"", settings->slot,
             settings->publication);
    ops_streaming(repl);
    int rc = stream_run(settings, repl_io_source(io),
                        catalog_client_source(cat), d, stop);
    ops_stream_ended();
    repl_io_free(io);
    catalog_client_free(cat);
    return rc;
}
