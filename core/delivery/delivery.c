#include "delivery.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "loader.h"
#include "log.h"
#include "pgconn.h"
#include "sink_host.h"
#include "stats.h"
#include "strbuf.h"

struct delivery {
    const table_filter *global;
    stop_state *stop;
    sink_handle **sinks;
    size_t nsinks;
    selection *sel;
    bool started;

    int linger_ms;
    uint64_t max_unflushed;
    delivery_backoff_fn backoff;
    void *backoff_ctx;

    const event **share; /* scratch: one sink's share of a batch */
    size_t share_cap;
    event *views; /* scratch: read events as inserts, for older sinks */
};

static int64_t default_backoff(void *ctx, int attempt)
{
    (void)ctx;
    return backoff_delay_ms(attempt);
}

delivery *delivery_new(const table_filter *global, stop_state *stop)
{
    delivery *d = xcalloc(1, sizeof *d);
    d->global = global;
    d->stop = stop;
    d->sel = selection_new(global, NULL, 0);
    d->backoff = default_backoff;
    return d;
}

void delivery_free(delivery *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nsinks; i++)
        sink_handle_free(d->sinks[i]);
    free(d->sinks);
    selection_free(d->sel);
    free(d->share);
    free(d->views);
    free(d);
}

/* ---- loading and starting ---- */

/* The sink's own judgement of its options (ABI 1.7), reported as the host
 * reports its own: where the faulty value was written, exit status 2. */
static int check_sink_options(sink_handle *s, const sink_config *sc)
{
    char option[256], why[1024], where[1024];
    if (sink_handle_check_options(s, option, sizeof option, why, sizeof why))
        return 0;
    if (option[0] &&
        sink_options_origin(sc->options, option, where, sizeof where))
        fprintf(stderr, "pgspout: %s: %s\n", where, why);
    else if (option[0]) /* at its default, or unset */
        fprintf(stderr, "pgspout: %s: option %s: %s\n", sc->origin, option,
                why);
    else
        fprintf(stderr, "pgspout: %s: %s\n", sc->origin, why);
    return CONFIG_USAGE_ERROR;
}

static int load_one(delivery *d, sink_config *sc, char *const *dirs,
                    size_t ndirs, const char *dbname)
{
    char err[2048];
    sink_library lib;
    if (!sink_library_open(sc->type, dirs, ndirs, &lib, err, sizeof err)) {
        fprintf(stderr, "pgspout: %s%s: %s\n", sc->origin,
                strncmp(sc->origin, "command line", 12) ? ".type" : "", err);
        return CONFIG_USAGE_ERROR;
    }
    if (config_validate_sink(sc, lib.desc->options, err, sizeof err) != 0) {
        fprintf(stderr, "pgspout: %s\n", err);
        sink_library_close(&lib);
        return CONFIG_USAGE_ERROR;
    }
    table_filter *f = table_filter_build(
        sc->include, sc->n_include, sc->include_origin, sc->exclude,
        sc->n_exclude, sc->exclude_origin, dbname, err, sizeof err);
    if (!f) {
        fprintf(stderr, "pgspout: %s\n", err);
        sink_library_close(&lib);
        return CONFIG_USAGE_ERROR;
    }
    d->sinks[d->nsinks++] =
        sink_handle_new(sc->name, lib, sc->options, f, d->stop);
    stats_sink_named(d->nsinks - 1, sc->name);
    return check_sink_options(d->sinks[d->nsinks - 1], sc);
}

int delivery_load(delivery *d, sink_config *sinks, size_t n, char *const *dirs,
                  size_t ndirs, const char *dbname)
{
    d->sinks = xrealloc(d->sinks, (d->nsinks + n + 1) * sizeof *d->sinks);
    for (size_t i = 0; i < n; i++) {
        int rc = load_one(d, &sinks[i], dirs, ndirs, dbname);
        if (rc != 0)
            return rc;
    }
    selection_free(d->sel);
    d->sel = selection_new(d->global, d->sinks, d->nsinks);
    return 0;
}

size_t delivery_sink_count(const delivery *d)
{
    return d->nsinks;
}

const selection *delivery_selection(const delivery *d)
{
    return d->sel;
}

uint64_t delivery_all_routes(const delivery *d)
{
    if (d->nsinks == 0)
        return 0;
    return d->nsinks >= 64 ? UINT64_MAX : UINT64_MAX >> (64 - d->nsinks);
}

bool delivery_routes_by_relation(const delivery *d)
{
    return selection_has_patterns(d->sel);
}

bool delivery_route(const delivery *d, const catalog_source *src, bool via_root,
                    const char *publication, uint64_t *route, char *err,
                    size_t errlen)
{
    if (via_root) {
        char what[256];
        snprintf(what, sizeof what, "publication \"%s\"", publication);
        if (!selection_check_partitions(d->sel, src, what, err, errlen))
            return false;
    }
    *route = selection_mask(d->sel, &src->chain);
    return true;
}

/* Threads that sinks start inherit the creator's signal mask; keeping stop
 * signals blocked while sinks are created leaves them to the main thread. */
static void block_stop_signals(bool block)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

bool delivery_start(delivery *d)
{
    block_stop_signals(true);
    bool ok = true;
    for (size_t i = 0; i < d->nsinks && ok; i++) {
        ok = sink_handle_create(d->sinks[i]) == PGSPOUT_OK;
        if (!ok)
            log_error("sink \"%s\" could not be started", d->sinks[i]->name);
    }
    block_stop_signals(false);
    d->started = ok;
    return ok;
}

bool delivery_started(const delivery *d)
{
    return d->started;
}

void delivery_skip_delivered(delivery *d)
{
    for (size_t i = 0; i < d->nsinks; i++)
        sink_handle_skip_delivered(d->sinks[i]);
}

void delivery_flush_abandoned(delivery *d)
{
    for (size_t i = 0; i < d->nsinks && d->started; i++)
        d->sinks[i]->lib.desc->flush(d->sinks[i]->state);
}

void delivery_set_flush_policy(delivery *d, int linger_ms,
                               uint64_t max_unflushed)
{
    d->linger_ms = linger_ms;
    d->max_unflushed = max_unflushed;
}

void delivery_set_backoff(delivery *d, delivery_backoff_fn delay, void *ctx)
{
    d->backoff = delay ? delay : default_backoff;
    d->backoff_ctx = ctx;
}

/* ---- writing and flushing ---- */

/* Calls a sink until it stops asking for a retry (events NULL: flush).
 * While streaming, one stop signal ends the retries; during a clean stop
 * (the first signal asked for it), a second one does. */
static delivery_result call_with_retry(delivery *d, sink_handle *s,
                                       const char *what, const event **events,
                                       size_t count)
{
    for (int attempt = 1;; attempt++) {
        pgspout_status rc =
            events ? s->lib.desc->write(
                         s->state, (const pgspout_event *const *)events, count)
                   : s->lib.desc->flush(s->state);
        if (rc == PGSPOUT_OK) {
            if (attempt > 1) {
                stats_sink_retry(s->name, false);
                log_fields(PGSPOUT_LOG_INFO, s->name,
                           (log_field[]){LOG_INT("attempts", attempt)}, 1,
                           "%s succeeded after %d attempts", what, attempt);
            }
            return DELIVERED;
        }
        if (rc != PGSPOUT_RETRY) {
            log_error("sink '%s': %s failed permanently; stopping without "
                      "confirming what it has not acknowledged",
                      s->name, what);
            return DELIVERY_FAILED;
        }
        int64_t delay = d->backoff(d->backoff_ctx, attempt);
        stats_sink_retry(s->name, true);
        log_fields(PGSPOUT_LOG_WARNING, s->name,
                   (log_field[]){LOG_INT("attempt", attempt),
                                 LOG_INT("delay_ms", delay)},
                   2, "%s failed (attempt %d), retrying in %lld ms", what,
                   attempt, (long long)delay);
        if (!stop_sleep(d->stop, delay)) {
            log_error("sink '%s': stop requested while it was failing; "
                      "its unacknowledged changes will be sent again on "
                      "restart",
                      s->name);
            return DELIVERY_INTERRUPTED;
        }
    }
}

/* A sink that holds everything up to `resume` needs no change at or before
 * it. A schema event at `resume` itself came after the change there and may
 * not have reached the sink: sending it again is harmless, losing it not. */
static bool already_held(const event *ev, pgspout_position resume)
{
    int c = pgspout_position_cmp(ev->pos, resume);
    return ev->op == PGSPOUT_OP_SCHEMA ? c < 0 : c <= 0;
}

/* Messages, begins and commits appeared in ABI 1.5 and generalise nothing
 * an older sink knows: a sink declaring an older minor never gets them.
 * Left out of its share, they are as delivered and durable for it as
 * events routed elsewhere, so it never holds the confirmation back. */
#define ABI_MINOR_WITH_MESSAGES 5

bool delivery_sink_takes_op(unsigned sink_abi_minor, pgspout_op op)
{
    if (op == PGSPOUT_OP_MESSAGE || op == PGSPOUT_OP_BEGIN ||
        op == PGSPOUT_OP_COMMIT)
        return sink_abi_minor >= ABI_MINOR_WITH_MESSAGES;
    return true;
}

/* The events of b that sink i takes: its route bit, minus what it holds
 * and what its ABI minor cannot know. */
static size_t share_of(delivery *d, size_t i, const batch *b)
{
    const sink_handle *s = d->sinks[i];
    size_t n = 0;
    for (size_t j = 0; j < b->count; j++) {
        if (!(b->routes[j] & (UINT64_C(1) << i)))
            continue;
        if (!delivery_sink_takes_op(s->lib.desc->abi_minor, b->events[j]->op))
            continue;
        if (s->has_resume && already_held(b->events[j], s->resume))
            continue;
        d->share[n++] = b->events[j];
    }
    return n;
}

/* Read events appeared in ABI 1.2; a sink built against an older minor
 * gets each as an insert of the same row, so it never receives an op it
 * cannot know. Returns how many views were made (freed by the caller once
 * the sink's write returned: events are only valid during the call). */
#define ABI_MINOR_WITH_READ 2

static size_t share_reads_as_inserts(delivery *d, const sink_handle *s,
                                     size_t n)
{
    size_t views = 0;
    if (s->lib.desc->abi_minor >= ABI_MINOR_WITH_READ)
        return 0;
    for (size_t j = 0; j < n; j++) {
        if (d->share[j]->op != PGSPOUT_OP_READ)
            continue;
        event_view_as_insert(d->share[j], &d->views[views]);
        d->share[j] = &d->views[views++];
    }
    return views;
}

delivery_result delivery_write(delivery *d, const batch *b)
{
    if (d->share_cap < b->count) {
        d->share_cap = b->cap > b->count ? b->cap : b->count;
        d->share = xrealloc(d->share, d->share_cap * sizeof *d->share);
        d->views = xrealloc(d->views, d->share_cap * sizeof *d->views);
    }
    delivery_result result = DELIVERED;
    for (size_t i = 0; i < d->nsinks && result == DELIVERED; i++) {
        sink_handle *s = d->sinks[i];
        size_t n = share_of(d, i, b);
        if (n == 0)
            continue;
        size_t views = share_reads_as_inserts(d, s, n);
        result = call_with_retry(d, s, "write", d->share, n);
        if (result == DELIVERED) {
            stats_sink_delivered(i, d->share, n);
            s->delivered = d->share[n - 1]->pos;
            if (s->unflushed == 0)
                s->unflushed_since_us = now_us();
            s->unflushed += n;
        }
        for (size_t v = 0; v < views; v++)
            event_view_clear(&d->views[v]);
    }
    return result;
}

delivery_result delivery_flush(delivery *d, bool everything, bool in_txn)
{
    int64_t now = now_us();
    for (size_t i = 0; i < d->nsinks; i++) {
        sink_handle *s = d->sinks[i];
        if (s->unflushed == 0)
            continue;
        bool due = everything || s->unflushed >= d->max_unflushed ||
                   (!in_txn && now - s->unflushed_since_us >=
                                   (int64_t)d->linger_ms * 1000);
        if (!due)
            continue;
        delivery_result r = call_with_retry(d, s, "flush", NULL, 0);
        if (r != DELIVERED)
            return r;
        s->unflushed = 0;
    }
    return DELIVERED;
}

/* When the oldest event not yet flushed in any sink was written; 0 when
 * every sink is flushed. */
static int64_t oldest_unflushed_us(const delivery *d)
{
    int64_t oldest = 0;
    for (size_t i = 0; i < d->nsinks; i++) {
        const sink_handle *s = d->sinks[i];
        if (s->unflushed > 0 && (!oldest || s->unflushed_since_us < oldest))
            oldest = s->unflushed_since_us;
    }
    return oldest;
}

int64_t delivery_linger_deadline(const delivery *d)
{
    int64_t oldest = oldest_unflushed_us(d);
    return oldest ? oldest + (int64_t)d->linger_ms * 1000 : 0;
}

/* The linger is counted from the oldest unflushed event, not from the
 * last message: a busy stream never falls silent, and its changes must
 * still become durable (and be confirmed) within the linger. Inside a
 * transaction it does not apply: nothing can be confirmed before the
 * commit arrives, so flushing there costs fsyncs and buys no latency
 * (memory stays bounded by max_unflushed and the sinks' buffers). */
bool delivery_linger_over(const delivery *d, int64_t now, bool in_txn)
{
    if (in_txn)
        return false;
    int64_t deadline = delivery_linger_deadline(d);
    return deadline && now >= deadline;
}

/* ---- acknowledgements ---- */

bool delivery_durable(const delivery *d, pgspout_position *durable)
{
    bool everything = true;
    *durable = (pgspout_position){0, 0};
    for (size_t i = 0; i < d->nsinks; i++) {
        sink_handle *s = d->sinks[i];
        pgspout_position acked = sink_handle_acked(s);
        stats_sink_acked(i, acked);
        if (pgspout_position_cmp(acked, s->delivered) >= 0)
            continue;
        if (everything || pgspout_position_cmp(acked, *durable) < 0)
            *durable = acked;
        everything = false;
    }
    return everything;
}

bool delivery_follow_database(delivery *d, const database_ctype *db, char *err,
                              size_t errlen)
{
    for (size_t i = 0; i < d->nsinks; i++)
        if (!table_filter_follow_database(d->sinks[i]->filter, db, err, errlen))
            return false;
    return true;
}
