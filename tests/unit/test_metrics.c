/* The production pieces that need no server: the metrics registry and its
 * exposition (counters, gauges, histograms, label escaping, the series
 * cap), what stats counts from the layers' hooks (events by sink and op,
 * acknowledgements, transactions timed until durable, a sink's reports,
 * backfills), readiness and liveness, the log's JSON lines and rate limit, and
 * the http_listen check. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "health.h"
#include "http.h"
#include "http_listen.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"
#include "strbuf.h"

static bool has(const char *text, const char *needle)
{
    bool found = text && strstr(text, needle) != NULL;
    if (!found)
        printf("# missing: %s\n", needle);
    return found;
}

static char *render(void)
{
    strbuf sb = STRBUF_INIT;
    metrics_render(&sb);
    return sbuf_detach(&sb);
}

static void test_exposition(void)
{
    static const char *const labels[] = {"sink", NULL};
    static const double bounds[] = {0.1, 1};
    metric_family *c = metrics_family("t_events_total", "Events \\ seen",
                                      METRIC_COUNTER, labels, NULL, 0);
    metric_family *g =
        metrics_family("t_lag_bytes", "Lag", METRIC_GAUGE, NULL, NULL, 0);
    metric_family *h = metrics_family("t_wait_seconds", "Waits",
                                      METRIC_HISTOGRAM, NULL, bounds, 2);
    CHECK(metrics_family("t_lag_bytes", "again", METRIC_GAUGE, NULL, NULL, 0) ==
          g);
    const char *odd[] = {"a\"b\\c\nd"};
    metrics_add(metrics_series(c, odd), 3);
    metrics_add(metrics_series(c, odd), 2);
    metrics_set(metrics_series0(g), 0.090945);
    metric_series *w = metrics_series0(h);
    metrics_observe(w, 0.05, 2);
    metrics_observe(w, 0.5, 1);
    metrics_observe(w, 7, 1);
    char *text = render();
    CHECK(has(text, "# HELP t_events_total Events \\\\ seen\n"
                    "# TYPE t_events_total counter\n"
                    "t_events_total{sink=\"a\\\"b\\\\c\\nd\"} 5\n"));
    CHECK(has(text, "t_lag_bytes 0.090945\n"));
    CHECK(has(text, "# TYPE t_wait_seconds histogram\n"
                    "t_wait_seconds_bucket{le=\"0.1\"} 2\n"
                    "t_wait_seconds_bucket{le=\"1\"} 3\n"
                    "t_wait_seconds_bucket{le=\"+Inf\"} 4\n"
                    "t_wait_seconds_sum 7.6\n"
                    "t_wait_seconds_count 4\n"));
    free(text);
    metrics_set(metrics_series0(g), NAN);
    text = render();
    CHECK(has(text, "t_lag_bytes NaN\n"));
    free(text);
    metrics_reset();
}

static void test_series_cap(void)
{
    static const char *const labels[] = {"table", NULL};
    metric_family *f = metrics_family("t_tables_total", "Tables",
                                      METRIC_COUNTER, labels, NULL, 0);
    char name[32];
    for (int i = 0; i < METRICS_MAX_SERIES + 50; i++) {
        snprintf(name, sizeof name, "t%d", i);
        const char *v[] = {name};
        metrics_add(metrics_series(f, v), 1);
    }
    char *text = render();
    CHECK(has(text, "t_tables_total{table=\"_overflow\"} 50\n"));
    CHECK(has(text, "t_tables_total{table=\"t9999\"} 1\n"));
    CHECK(!strstr(text, "table=\"t10000\""));
    free(text);
    metrics_reset();
}

static relation *make_relation(const char *table)
{
    relation *rel = xcalloc(1, sizeof *rel);
    rel->refcount = 1;
    rel->schema = xstrdup("public");
    rel->table = xstrdup(table);
    return rel;
}

static event make_event(relation *rel, pgspout_op op, uint64_t lsn,
                        uint64_t seq)
{
    event ev;
    memset(&ev, 0, sizeof ev);
    ev.op = op;
    ev.rel = rel;
    ev.pos.commit_lsn = lsn;
    ev.pos.seq = seq;
    return ev;
}

/* Events for two sinks: received by route, delivered, acknowledged in two
 * steps (in flight drains), and their transactions timed. */
static void test_stats_hooks(void)
{
    health_reset();
    stats_init();
    stats_sink_named(0, "one");
    stats_sink_named(1, "two");
    relation *rel = make_relation("t");
    event evs[4] = {
        make_event(rel, PGSPOUT_OP_INSERT, 100, 1),
        make_event(rel, PGSPOUT_OP_INSERT, 100, 2),
        make_event(rel, PGSPOUT_OP_DELETE, 200, 1),
        make_event(rel, PGSPOUT_OP_UPDATE, 300, 1),
    };
    const event *ptrs[4] = {&evs[0], &evs[1], &evs[2], &evs[3]};
    for (int i = 0; i < 4; i++)
        stats_event_taken(&evs[i], i == 2 ? 2 : 3);
    stats_txn_committed(wall_clock_us(), 150, true);
    stats_txn_committed(wall_clock_us(), 250, false);
    stats_txn_committed(wall_clock_us(), 350, true);
    stats_sink_delivered(0, ptrs, 2);
    stats_sink_delivered(0, ptrs + 3, 1);
    stats_sink_delivered(1, ptrs, 4);
    stats_batch_handed_over();
    stats_sink_acked(0, evs[1].pos);
    stats_sink_acked(1, evs[3].pos);
    stats_flushed(150);
    char *text = render();
    CHECK(has(text, "pgspout_events_received_total{sink=\"one\",op=\"insert\"} "
                    "2\n"));
    CHECK(has(text, "pgspout_events_received_total{sink=\"one\",op=\"delete\"} "
                    "0\n"));
    CHECK(has(text, "pgspout_events_received_total{sink=\"two\",op=\"delete\"} "
                    "1\n"));
    CHECK(has(text, "pgspout_table_events_received_total{table=\"public.t\","
                    "op=\"insert\"} 2\n"));
    CHECK(has(text, "pgspout_events_acknowledged_total{sink=\"one\","
                    "op=\"update\"} 0\n"));
    CHECK(has(text, "pgspout_sink_in_flight_events{sink=\"one\"} 1\n"));
    CHECK(has(text, "pgspout_sink_in_flight_events{sink=\"two\"} 0\n"));
    CHECK(has(text, "pgspout_sink_queued_events{sink=\"one\"} 0\n"));
    CHECK(has(text, "pgspout_acknowledgement_lag_seconds_count 1\n"));
    CHECK(has(text, "pgspout_flushed_lsn 150\n"));
    free(text);
    stats_sink_acked(0, evs[3].pos);
    stats_flushed(400);
    text = render();
    CHECK(has(text, "pgspout_events_acknowledged_total{sink=\"one\","
                    "op=\"update\"} 1\n"));
    CHECK(has(text, "pgspout_sink_in_flight_events{sink=\"one\"} 0\n"));
    /* The transaction without events is not timed. */
    CHECK(has(text, "pgspout_acknowledgement_lag_seconds_count 2\n"));
    free(text);
    relation_unref(rel);
    stats_reset();
}

/* Past their limits the rings merge their newest entries: nothing is
 * lost from the counts, only the timing of the merged ones. */
static void test_stats_limits(void)
{
    stats_init();
    stats_sink_named(0, "s");
    relation *rel = make_relation("t");
    for (uint64_t i = 1; i <= 70000; i++)
        stats_txn_committed(wall_clock_us(), i, true);
    stats_flushed(70000);
    event ev = make_event(rel, PGSPOUT_OP_INSERT, 0, 0);
    const event *one[] = {&ev};
    for (uint64_t i = 1; i <= 5000; i++) {
        ev.pos.commit_lsn = i;
        stats_sink_delivered(0, one, 1);
    }
    stats_sink_acked(0, ev.pos);
    char *text = render();
    CHECK(has(text, "pgspout_acknowledgement_lag_seconds_count 70000\n"));
    CHECK(has(text, "pgspout_events_acknowledged_total{sink=\"s\","
                    "op=\"insert\"} 5000\n"));
    CHECK(has(text, "pgspout_sink_in_flight_events{sink=\"s\"} 0\n"));
    free(text);
    relation_unref(rel);
    stats_reset();
}

/* What a sink reports and what its RETRY answers do to readiness. */
static void test_readiness(void)
{
    health_reset();
    stats_init();
    stats_sink_named(0, "es");
    strbuf body = STRBUF_INIT;
    CHECK(health_readiness(&body) == 503);
    CHECK_STR(body.data, "{\"ready\":false,\"reasons\":[{\"reason\":"
                         "\"connecting\"}]}\n");
    health_set_phase(HEALTH_STREAMING);
    sbuf_reset(&body);
    CHECK(health_readiness(&body) == 200);
    CHECK_STR(body.data, "{\"ready\":true}\n");
    stats_sink_report("es", PGSPOUT_RECORDS_RETRIED, 3);
    stats_sink_retry("es", true);
    health_slot_lag(true, 2048, 1024);
    health_backfill_failed("public.t", "boom \"x\"");
    sbuf_reset(&body);
    CHECK(health_readiness(&body) == 503);
    CHECK_STR(body.data,
              "{\"ready\":false,\"reasons\":[{\"reason\":\"sink_retrying\","
              "\"sink\":\"es\"},{\"reason\":\"slot_lag\",\"lag_bytes\":2048,"
              "\"limit_bytes\":1024},{\"reason\":\"backfill_failed\","
              "\"table\":\"public.t\",\"error\":\"boom \\\"x\\\"\"}]}\n");
    /* Each reason goes on its own. */
    stats_sink_retry("es", false);
    CHECK(!health_ready());
    stats_sink_report("es", PGSPOUT_RECORDS_ACCEPTED, 1);
    health_slot_lag(false, 0, 1024);
    health_backfill_failed("public.t", NULL);
    CHECK(health_ready());
    sbuf_reset(&body);
    health_alive_now();
    CHECK(health_liveness(&body) == 200);
    sbuf_free(&body);
    char *text = render();
    CHECK(has(text, "pgspout_sink_records_retried_total{sink=\"es\"} 3\n"));
    CHECK(has(text, "pgspout_sink_retries_total{sink=\"es\"} 1\n"));
    free(text);
    stats_reset();
    health_reset();
}

/* Runs fn with stderr going to a file; returns what it wrote. */
static char *captured_stderr(void (*fn)(void))
{
    char path[] = "/tmp/pgspout-test-log-XXXXXX";
    int fd = mkstemp(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    strbuf sb = STRBUF_INIT;
    char buf[4096];
    ssize_t n;
    lseek(fd, 0, SEEK_SET);
    while ((n = read(fd, buf, sizeof buf)) > 0)
        sbuf_append(&sb, buf, (size_t)n);
    close(fd);
    unlink(path);
    sbuf_append(&sb, "", 0);
    return sbuf_detach(&sb);
}

static void log_some(void)
{
    log_set_format(LOG_FORMAT_JSON);
    log_fields(PGSPOUT_LOG_WARNING, "es",
               (log_field[]){LOG_INT("attempt", 1), LOG_STR("why", "a\"b")}, 2,
               "failed %d", 1);
    for (int i = 2; i <= 5; i++)
        log_sink(PGSPOUT_LOG_WARNING, "es", "failed %d", i);
    log_sink(PGSPOUT_LOG_WARNING, "other", "not held back");
    log_warning("the core's own: never held back");
    log_warning("the core's own: never held back");
    log_flush_repeats(false); /* the window is not over: nothing */
    log_flush_repeats(true);
    log_set_format(LOG_FORMAT_TEXT);
    log_sink(PGSPOUT_LOG_INFO, "es", "in text");
}

static void test_log_lines(void)
{
    char *out = captured_stderr(log_some);
    CHECK(has(out, "\"level\":\"warning\",\"message\":\"failed 1\","
                   "\"sink\":\"es\",\"fields\":{\"attempt\":1,\"why\":"
                   "\"a\\\"b\"}}\n"));
    CHECK(!strstr(out, "\"failed 2\""));
    CHECK(has(out, "\"message\":\"not held back\",\"sink\":\"other\""));
    CHECK(has(out, "\"sink\":null,\"fields\":{}}\n"));
    CHECK(has(out, "\"message\":\"4 more warnings in the last 1 s; the "
                   "last: failed 5\",\"sink\":\"es\",\"fields\":{"
                   "\"repeated\":4}}\n"));
    CHECK(has(out, "pgspout: info: [es] in text\n"));
    /* RFC 3339, UTC, microseconds. */
    const char *ts = strstr(out, "{\"timestamp\":\"");
    CHECK(ts && strlen(ts) > 41 && ts[14 + 4] == '-' && ts[14 + 10] == 'T' &&
          ts[14 + 26] == 'Z');
    size_t lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    CHECK(lines == 6);
    free(out);
}

static void test_http_listen(void)
{
    CHECK(http_listen_problem("127.0.0.1:9187") == NULL);
    CHECK(http_listen_problem("[::1]:9187") == NULL);
    CHECK(http_listen_problem("localhost:1") == NULL);
    CHECK(has(http_listen_problem("127.0.0.1"), "has no port"));
    CHECK(has(http_listen_problem("127.0.0.1:"), "has no port"));
    CHECK(has(http_listen_problem(":80"), "has no address"));
    CHECK(has(http_listen_problem("::1:80"), "brackets"));
    CHECK(has(http_listen_problem("[::1]80"), "[IPV6]:PORT"));
    CHECK(has(http_listen_problem("h:0"), "invalid port"));
    CHECK(has(http_listen_problem("h:65536"), "invalid port"));
    CHECK(has(http_listen_problem("h:-1"), "invalid port"));
    CHECK(has(http_listen_problem("h:80x"), "invalid port"));
}

/* A backfill's tables: progress, state, chunks, and a failure that keeps
 * pgspout not ready until a later backfill of the table is done. */
static void test_backfill_stats(void)
{
    health_reset();
    stats_init();
    health_set_phase(HEALTH_STREAMING);
    stats_backfill_table_now(&(stats_backfill_table){
        .table = "public.t", .state = "pending", .rows_estimated = -1});
    stats_backfill_table_now(&(stats_backfill_table){.table = "public.t",
                                                     .state = "copying",
                                                     .rows_copied = 20,
                                                     .rows_estimated = 50});
    stats_backfill_chunk_done("public.t");
    stats_backfill_chunk_done("public.t");
    stats_backfill_tables("copying", 1);
    char *text = render();
    CHECK(has(text, "pgspout_backfill_rows_copied{table=\"public.t\"} 20\n"));
    CHECK(has(text, "pgspout_backfill_rows_estimated{table=\"public.t\"} "
                    "50\n"));
    CHECK(has(text, "pgspout_backfill_table_state{table=\"public.t\","
                    "state=\"copying\"} 1\n"));
    CHECK(has(text, "pgspout_backfill_table_state{table=\"public.t\","
                    "state=\"pending\"} 0\n"));
    CHECK(has(text, "pgspout_backfill_chunks_total{table=\"public.t\"} 2\n"));
    CHECK(has(text, "pgspout_backfill_tables{state=\"copying\"} 1\n"));
    free(text);
    CHECK(health_ready());
    stats_backfill_table_now(&(stats_backfill_table){
        .table = "public.t", .state = "failed", .error = "division by zero"});
    CHECK(!health_ready());
    /* Copied again: pending and copying keep the failure, done ends it. */
    stats_backfill_table_now(
        &(stats_backfill_table){.table = "public.t", .state = "copying"});
    CHECK(!health_ready());
    stats_backfill_table_now(&(stats_backfill_table){
        .table = "public.t", .state = "done", .rows_copied = 50});
    CHECK(health_ready());
    stats_reset();
    health_reset();
}

int main(void)
{
    test_exposition();
    test_series_cap();
    test_stats_hooks();
    test_stats_limits();
    test_readiness();
    test_backfill_stats();
    test_log_lines();
    test_http_listen();
    return check_summary();
}
