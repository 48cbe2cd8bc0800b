#include "stats.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "event_json.h"
#include "health.h"
#include "metrics.h"
#include "pgspout/abi.h"

#define MAX_SINKS 64
#define OPS (PGSPOUT_OP_COMMIT + 1)
/* Writes whose acknowledgement is awaited, per sink; past this many the
 * newest are merged (their counts are acknowledged with the later one). */
#define ACK_RING_MAX 4096
/* Transactions awaiting durability; past this many the newest are merged
 * and timed from the oldest commit among them (an upper bound). */
#define LAG_RING_MAX 65536

static const double lag_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1,  0.25,
                                     0.5,   1,    2.5,   5,    10,   30,
                                     60,    120,  300,   600,  1800, 3600};

static const char *const wal_statuses[] = {"reserved", "extended", "unreserved",
                                           "lost"};
#define N_WAL_STATUSES (sizeof wal_statuses / sizeof *wal_statuses)

/* Writes delivered and not yet acknowledged: their last position and
 * their events by op. Main thread only. */
typedef struct ack_entry {
    pgspout_position last;
    uint32_t by_op[OPS];
} ack_entry;

typedef struct sink_stats {
    char *name;
    metric_series *received[OPS], *delivered[OPS], *acknowledged[OPS];
    metric_series *in_flight, *queued;
    metric_series *retries, *records[PGSPOUT_RECORDS_DEAD_LETTERED + 1];
    ack_entry *ring;
    size_t head, count, cap;
} sink_stats;

typedef struct lag_entry {
    uint64_t end_lsn;
    int64_t commit_time_us;
    uint64_t count;
} lag_entry;

static struct {
    bool ready;
    metric_family *received, *table_received, *delivered, *acknowledged;
    metric_family *in_flight, *queued, *retries, *records[4];
    metric_family *bytes, *received_lsn, *flushed_lsn, *confirmed_lsn;
    metric_family *ack_lag, *reconnects, *heartbeats, *log_lines;
    metric_family *last_error, *build_info, *ready_gauge, *start_time;
    metric_family *slot_lag, *slot_retained, *slot_safe, *slot_status;
    metric_family *slot_active, *backfill_copied, *backfill_estimated;
    metric_family *backfill_state, *backfill_chunks, *backfill_tables;
    sink_stats sinks[MAX_SINKS];
    size_t nsinks;
    lag_entry *lag_ring;
    size_t lag_head, lag_count, lag_cap;
    /* The table series of the last event: events of one table come in
     * runs, so the lookup is mostly skipped. */
    char *last_schema, *last_table;
    pgspout_op last_op;
    metric_series *last_table_series;
    _Atomic int64_t last_event_us;
    bool batch_started_unclocked; /* the next event sets last_event_us */
    char server_version[64];
} st;

static const char *const sink_op[] = {"sink", "op", NULL};
static const char *const sink_only[] = {"sink", NULL};
static const char *const table_op[] = {"table", "op", NULL};
static const char *const table_only[] = {"table", NULL};
static const char *const table_state[] = {"table", "state", NULL};
static const char *const state_only[] = {"state", NULL};

static metric_family *counter(const char *name, const char *help,
                              const char *const *labels)
{
    return metrics_family(name, help, METRIC_COUNTER, labels, NULL, 0);
}

static metric_family *gauge(const char *name, const char *help,
                            const char *const *labels)
{
    return metrics_family(name, help, METRIC_GAUGE, labels, NULL, 0);
}

static void register_events(void)
{
    st.received = counter("pgspout_events_received_total",
                          "Events read from the server for the sink (its "
                          "filters select them), by op",
                          sink_op);
    st.table_received = counter("pgspout_table_events_received_total",
                                "Events read from the server for any sink, "
                                "by table and op",
                                table_op);
    st.delivered =
        counter("pgspout_events_delivered_total",
                "Events handed to the sink (its write succeeded)", sink_op);
    st.acknowledged =
        counter("pgspout_events_acknowledged_total",
                "Events the sink acknowledged as durable", sink_op);
    st.in_flight = gauge("pgspout_sink_in_flight_events",
                         "Events handed to the sink and not yet "
                         "acknowledged as durable",
                         sink_only);
    st.queued =
        gauge("pgspout_sink_queued_events",
              "Events read for the sink and not yet handed to it", sink_only);
    st.bytes = counter("pgspout_received_bytes_total",
                       "Bytes of replication messages received from the "
                       "server",
                       NULL);
}

static void register_sink_health(void)
{
    st.retries = counter("pgspout_sink_retries_total",
                         "Write and flush calls the sink answered RETRY "
                         "(each retried after a backoff)",
                         sink_only);
    st.records[PGSPOUT_RECORDS_ACCEPTED] =
        counter("pgspout_sink_records_accepted_total",
                "Records the sink's service accepted (reported by the sink)",
                sink_only);
    st.records[PGSPOUT_RECORDS_RETRIED] =
        counter("pgspout_sink_records_retried_total",
                "Records the sink sends again after a transient failure of "
                "its service (reported by the sink)",
                sink_only);
    st.records[PGSPOUT_RECORDS_REJECTED] =
        counter("pgspout_sink_records_rejected_total",
                "Records the sink's service refused for good (reported by "
                "the sink)",
                sink_only);
    st.records[PGSPOUT_RECORDS_DEAD_LETTERED] = counter(
        "pgspout_sink_records_dead_lettered_total",
        "Rejected records the sink wrote to its dead-letter file", sink_only);
}

static void register_positions(void)
{
    st.received_lsn = gauge("pgspout_received_lsn",
                            "Highest WAL position received from the server "
                            "(an LSN as a number of bytes)",
                            NULL);
    st.flushed_lsn = gauge("pgspout_flushed_lsn",
                           "End of the last transaction every sink made "
                           "durable (an LSN as a number of bytes)",
                           NULL);
    st.confirmed_lsn = gauge("pgspout_confirmed_lsn",
                             "Last position confirmed to the server as "
                             "flushed (an LSN as a number of bytes)",
                             NULL);
    st.ack_lag = metrics_family(
        "pgspout_acknowledgement_lag_seconds",
        "Seconds from a transaction's commit (server clock) until every "
        "sink made it durable",
        METRIC_HISTOGRAM, NULL, lag_buckets,
        sizeof lag_buckets / sizeof *lag_buckets);
}

static void register_slot(void)
{
    static const char *const status_label[] = {"status", NULL};
    st.slot_lag = gauge("pgspout_slot_lag_bytes",
                        "WAL bytes between the server's position and the "
                        "slot's confirmed position",
                        NULL);
    st.slot_retained = gauge("pgspout_slot_retained_wal_bytes",
                             "WAL bytes the server keeps for the slot (from "
                             "its restart position)",
                             NULL);
    st.slot_safe = gauge("pgspout_slot_safe_wal_size_bytes",
                         "WAL bytes that can be written before the slot is "
                         "lost (NaN: max_slot_wal_keep_size is -1)",
                         NULL);
    st.slot_status =
        gauge("pgspout_slot_wal_status",
              "The slot's wal_status: 1 for the current one", status_label);
    st.slot_active = gauge("pgspout_slot_active",
                           "Whether the slot is in use by a walsender", NULL);
}

static void register_process(void)
{
    static const char *const level_label[] = {"level", NULL};
    static const char *const build_labels[] = {"version", "abi",
                                               "server_version", NULL};
    st.reconnects = counter("pgspout_reconnects_total",
                            "Reconnections after a lost connection", NULL);
    st.heartbeats = counter("pgspout_heartbeats_total",
                            "Heartbeat messages written to the WAL", NULL);
    st.log_lines = counter("pgspout_log_messages_total",
                           "Messages logged, by level (rate-limited "
                           "warnings included)",
                           level_label);
    st.last_error = gauge("pgspout_last_error_timestamp_seconds",
                          "Unix time of the last error logged (0: none)", NULL);
    st.ready_gauge =
        gauge("pgspout_ready", "1 when /ready would answer 200", NULL);
    st.start_time = gauge("pgspout_start_time_seconds",
                          "Unix time the process started", NULL);
    st.build_info = gauge("pgspout_build_info",
                          "Version, sink ABI and PostgreSQL server version "
                          "(empty until connected)",
                          build_labels);
}

/* Backfills: their tables' progress and state. */
static void register_backfill(void)
{
    st.backfill_copied = gauge("pgspout_backfill_rows_copied",
                               "Rows of the table's backfill durable in "
                               "every sink",
                               table_only);
    st.backfill_estimated = gauge("pgspout_backfill_rows_estimated",
                                  "The table's estimated row count "
                                  "(pg_class.reltuples) when its backfill "
                                  "started",
                                  table_only);
    st.backfill_state = gauge("pgspout_backfill_table_state",
                              "The state of the table's backfill: 1 for the "
                              "current one",
                              table_state);
    st.backfill_chunks = counter("pgspout_backfill_chunks_total",
                                 "Chunks of the table's backfill that became "
                                 "durable in every sink",
                                 table_only);
    st.backfill_tables =
        gauge("pgspout_backfill_tables",
              "Tables of the recorded backfills, by state", state_only);
}

static void set_build_info(void)
{
    char abi[16];
    snprintf(abi, sizeof abi, "%d.%d", PGSPOUT_ABI_MAJOR, PGSPOUT_ABI_MINOR);
    const char *values[] = {PGSPOUT_VERSION, abi, st.server_version};
    metrics_family_clear(st.build_info);
    metrics_set(metrics_series(st.build_info, values), 1);
}

void stats_init(void)
{
    register_events();
    register_sink_health();
    register_positions();
    register_slot();
    register_process();
    register_backfill();
    metrics_series0(st.ack_lag);
    metrics_set(metrics_series0(st.last_error), 0);
    metrics_set(metrics_series0(st.start_time), (double)wall_clock_us() / 1e6);
    metrics_add(metrics_series0(st.reconnects), 0);
    metrics_add(metrics_series0(st.heartbeats), 0);
    metrics_add(metrics_series0(st.bytes), 0);
    set_build_info();
    st.ready = true;
    st.batch_started_unclocked = true;
}

void stats_reset(void)
{
    for (size_t i = 0; i < st.nsinks; i++) {
        free(st.sinks[i].name);
        free(st.sinks[i].ring);
    }
    free(st.lag_ring);
    free(st.last_schema);
    free(st.last_table);
    memset(&st, 0, sizeof st);
    metrics_reset();
}

/* ---- sinks ---- */

void stats_sink_named(size_t index, const char *name)
{
    if (!st.ready || index >= MAX_SINKS)
        return;
    health_sink_named(index, name);
    sink_stats *s = &st.sinks[index];
    free(s->name);
    s->name = xstrdup(name);
    if (index >= st.nsinks)
        st.nsinks = index + 1;
    for (int op = PGSPOUT_OP_INSERT; op < OPS; op++) {
        const char *values[] = {name, event_op_name((pgspout_op)op)};
        s->received[op] = metrics_series(st.received, values);
        s->delivered[op] = metrics_series(st.delivered, values);
        s->acknowledged[op] = metrics_series(st.acknowledged, values);
    }
    const char *values[] = {name};
    s->in_flight = metrics_series(st.in_flight, values);
    s->queued = metrics_series(st.queued, values);
    s->retries = metrics_series(st.retries, values);
    for (int i = 0; i <= PGSPOUT_RECORDS_DEAD_LETTERED; i++)
        s->records[i] = metrics_series(st.records[i], values);
}

static sink_stats *sink_by_name(const char *name)
{
    for (size_t i = 0; i < st.nsinks && name; i++)
        if (st.sinks[i].name && strcmp(st.sinks[i].name, name) == 0)
            return &st.sinks[i];
    return NULL;
}

static metric_series *table_series(const event *ev)
{
    if (st.last_table_series && st.last_op == ev->op &&
        strcmp(st.last_schema, ev->rel->schema) == 0 &&
        strcmp(st.last_table, ev->rel->table) == 0)
        return st.last_table_series;
    char *name = xasprintf("%s.%s", ev->rel->schema, ev->rel->table);
    const char *values[] = {name, event_op_name(ev->op)};
    st.last_table_series = metrics_series(st.table_received, values);
    free(name);
    free(st.last_schema);
    free(st.last_table);
    st.last_schema = xstrdup(ev->rel->schema);
    st.last_table = xstrdup(ev->rel->table);
    st.last_op = ev->op;
    return st.last_table_series;
}

void stats_event_taken(const event *ev, uint64_t route)
{
    if (!st.ready || !route || (int)ev->op >= OPS)
        return;
    /* The time of a batch's first event is close enough for heartbeats,
     * which compare it with now_us at the scale of seconds (batches are
     * handed over at least every flush interval), and saves reading the
     * clock for every event. */
    if (st.batch_started_unclocked) {
        st.batch_started_unclocked = false;
        atomic_store(&st.last_event_us, now_coarse_us());
    }
    /* Messages, begins and commits belong to no table. */
    if (ev->rel)
        metrics_add(table_series(ev), 1);
    for (size_t i = 0; i < st.nsinks; i++) {
        if (!(route & (UINT64_C(1) << i)))
            continue;
        metrics_add(st.sinks[i].received[ev->op], 1);
        metrics_gauge_add(st.sinks[i].queued, 1);
    }
}

void stats_batch_handed_over(void)
{
    st.batch_started_unclocked = true;
    for (size_t i = 0; i < st.nsinks && st.ready; i++)
        metrics_set(st.sinks[i].queued, 0);
}

static ack_entry *ack_at(sink_stats *s, size_t i)
{
    return &s->ring[(s->head + i) % s->cap];
}

/* A new entry at the ring's tail, or the tail itself when the ring is at
 * its limit (its counts then wait for the later position). */
static ack_entry *ack_push(sink_stats *s, pgspout_position last)
{
    if (s->count == s->cap && s->cap < ACK_RING_MAX) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        ack_entry *ring = xcalloc(cap, sizeof *ring);
        for (size_t i = 0; i < s->count; i++)
            ring[i] = *ack_at(s, i);
        free(s->ring);
        s->ring = ring;
        s->head = 0;
        s->cap = cap;
    }
    ack_entry *e;
    if (s->count == s->cap) {
        e = ack_at(s, s->count - 1);
    } else {
        e = ack_at(s, s->count++);
        memset(e, 0, sizeof *e);
    }
    e->last = last;
    return e;
}

void stats_sink_delivered(size_t index, const event *const *events, size_t n)
{
    if (!st.ready || index >= st.nsinks || n == 0)
        return;
    sink_stats *s = &st.sinks[index];
    ack_entry *e = ack_push(s, events[n - 1]->pos);
    for (size_t i = 0; i < n; i++) {
        pgspout_op op = events[i]->op;
        if ((int)op >= OPS)
            continue;
        metrics_add(s->delivered[op], 1);
        e->by_op[op]++;
    }
    metrics_gauge_add(s->in_flight, (double)n);
}

void stats_sink_acked(size_t index, pgspout_position acked)
{
    if (!st.ready || index >= st.nsinks)
        return;
    sink_stats *s = &st.sinks[index];
    while (s->count > 0 &&
           pgspout_position_cmp(ack_at(s, 0)->last, acked) <= 0) {
        const ack_entry *e = ack_at(s, 0);
        uint64_t total = 0;
        for (int op = 0; op < OPS; op++) {
            metrics_add(s->acknowledged[op], e->by_op[op]);
            total += e->by_op[op];
        }
        metrics_gauge_add(s->in_flight, -(double)total);
        s->head = (s->head + 1) % s->cap;
        s->count--;
    }
}

void stats_sink_retry(const char *sink, bool retrying)
{
    sink_stats *s = st.ready ? sink_by_name(sink) : NULL;
    if (!s)
        return;
    if (retrying)
        metrics_add(s->retries, 1);
    health_sink_retrying((size_t)(s - st.sinks), true, retrying);
}

void stats_sink_report(const char *sink, pgspout_record_outcome what,
                       uint64_t n)
{
    sink_stats *s = st.ready ? sink_by_name(sink) : NULL;
    if (!s || (int)what < 0 || what > PGSPOUT_RECORDS_DEAD_LETTERED)
        return;
    metrics_add(s->records[what], n);
    size_t index = (size_t)(s - st.sinks);
    if (what == PGSPOUT_RECORDS_RETRIED && n > 0)
        health_sink_retrying(index, false, true);
    else if (what == PGSPOUT_RECORDS_ACCEPTED && n > 0)
        health_sink_retrying(index, false, false);
}

/* ---- transactions and positions ---- */

static lag_entry *lag_at(size_t i)
{
    return &st.lag_ring[(st.lag_head + i) % st.lag_cap];
}

static void lag_grow(void)
{
    size_t cap = st.lag_cap ? st.lag_cap * 2 : 64;
    lag_entry *ring = xcalloc(cap, sizeof *ring);
    for (size_t i = 0; i < st.lag_count; i++)
        ring[i] = *lag_at(i);
    free(st.lag_ring);
    st.lag_ring = ring;
    st.lag_head = 0;
    st.lag_cap = cap;
}

void stats_txn_committed(int64_t commit_time_us, uint64_t end_lsn,
                         bool had_events)
{
    if (!st.ready || !had_events)
        return;
    if (st.lag_count == st.lag_cap && st.lag_cap < LAG_RING_MAX)
        lag_grow();
    if (st.lag_count == st.lag_cap) {
        lag_entry *tail = lag_at(st.lag_count - 1);
        tail->end_lsn = end_lsn;
        tail->count++;
        return;
    }
    *lag_at(st.lag_count++) = (lag_entry){end_lsn, commit_time_us, 1};
}

void stats_flushed(uint64_t lsn)
{
    if (!st.ready)
        return;
    metrics_set(metrics_series0(st.flushed_lsn), (double)lsn);
    metric_series *lag = metrics_series0(st.ack_lag);
    int64_t now = wall_clock_us();
    while (st.lag_count > 0 && lag_at(0)->end_lsn <= lsn) {
        const lag_entry *e = lag_at(0);
        int64_t us = now - e->commit_time_us;
        /* The server's clock may be ahead of this machine's. */
        metrics_observe(lag, us > 0 ? (double)us / 1e6 : 0, e->count);
        st.lag_head = (st.lag_head + 1) % st.lag_cap;
        st.lag_count--;
    }
}

void stats_stream_started(void)
{
    if (!st.ready)
        return;
    st.lag_head = st.lag_count = 0;
    stats_batch_handed_over();
    atomic_store(&st.last_event_us, now_us());
}

void stats_received_bytes(size_t bytes)
{
    if (st.ready)
        metrics_add(metrics_series0(st.bytes), bytes);
}

void stats_received_lsn(uint64_t lsn)
{
    if (st.ready)
        metrics_set(metrics_series0(st.received_lsn), (double)lsn);
}

void stats_confirmed_lsn(uint64_t lsn)
{
    if (st.ready)
        metrics_set(metrics_series0(st.confirmed_lsn), (double)lsn);
}

/* ---- the process ---- */

void stats_reconnect(void)
{
    if (st.ready)
        metrics_add(metrics_series0(st.reconnects), 1);
}

void stats_server_version(const char *version)
{
    if (!st.ready || !version || strcmp(version, st.server_version) == 0)
        return;
    snprintf(st.server_version, sizeof st.server_version, "%s", version);
    set_build_info();
}

void stats_log_line(pgspout_log_level level)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    if (!st.ready || (int)level < 0 || level > PGSPOUT_LOG_ERROR)
        return;
    const char *values[] = {names[level]};
    metrics_add(metrics_series(st.log_lines, values), 1);
    if (level == PGSPOUT_LOG_ERROR)
        metrics_set(metrics_series0(st.last_error),
                    (double)wall_clock_us() / 1e6);
}

void stats_slot(const slot_state *slot)
{
    if (!st.ready)
        return;
    metrics_set(metrics_series0(st.slot_lag), (double)slot_lag_bytes(slot));
    metrics_set(metrics_series0(st.slot_retained),
                (double)slot_retained_bytes(slot));
    metrics_set(metrics_series0(st.slot_safe),
                slot->has_safe_wal_size ? (double)slot->safe_wal_size : NAN);
    metrics_set(metrics_series0(st.slot_active), slot->active ? 1 : 0);
    for (size_t i = 0; i < N_WAL_STATUSES; i++) {
        const char *values[] = {wal_statuses[i]};
        metrics_set(metrics_series(st.slot_status, values),
                    strcmp(slot->wal_status, wal_statuses[i]) == 0);
    }
}

void stats_heartbeat(void)
{
    if (st.ready)
        metrics_add(metrics_series0(st.heartbeats), 1);
}

int64_t stats_last_event_us(void)
{
    return atomic_load(&st.last_event_us);
}

void stats_refresh(void)
{
    if (st.ready)
        metrics_set(metrics_series0(st.ready_gauge), health_ready() ? 1 : 0);
}

static const char *const backfill_states[] = {STATS_BACKFILL_STATES};
#define N_BACKFILL_STATES (sizeof backfill_states / sizeof *backfill_states)

void stats_backfill_table_now(const stats_backfill_table *t)
{
    if (!st.ready)
        return;
    const char *table[] = {t->table};
    metrics_set(metrics_series(st.backfill_copied, table),
                (double)t->rows_copied);
    if (t->rows_estimated >= 0)
        metrics_set(metrics_series(st.backfill_estimated, table),
                    (double)t->rows_estimated);
    for (size_t i = 0; i < N_BACKFILL_STATES; i++) {
        const char *values[] = {t->table, backfill_states[i]};
        metrics_set(metrics_series(st.backfill_state, values),
                    strcmp(t->state, backfill_states[i]) == 0);
    }
    if (strcmp(t->state, "failed") == 0)
        health_backfill_failed(t->table, t->error ? t->error : "failed");
    else if (strcmp(t->state, "done") == 0)
        health_backfill_failed(t->table, NULL);
}

void stats_backfill_chunk_done(const char *table)
{
    if (!st.ready)
        return;
    const char *values[] = {table};
    metrics_add(metrics_series(st.backfill_chunks, values), 1);
}

void stats_backfill_tables(const char *state, uint64_t n)
{
    if (!st.ready)
        return;
    const char *values[] = {state};
    metrics_set(metrics_series(st.backfill_tables, values), (double)n);
}
