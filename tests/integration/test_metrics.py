"""/metrics (README "Production"): parsed with the Prometheus text parser
of prometheus_client, every value compared with what the test did: rows
written per table and op, events delivered and acknowledged per sink,
transactions timed until durable, the slot's lag drained to 0, retries
answered by the fault sink, records a network sink reported (retried,
rejected, dead-lettered), reconnections, the build information; the
Grafana dashboard queries only metrics a live endpoint has; and the HTTP
address is checked before anything connects."""

import json
import os
import re
import socket

import pytest

from ops_support import (REPO, fault_sink_path, free_port, http_get, scrape,
                         spawn_streaming, wait_metric)
from pgharness import data_events, lsn_to_int, read_jsonl, wait_until

DASHBOARD = os.path.join(REPO, "contrib", "grafana", "pgspout.json")


def counts_settled(m, sink):
    """Every event delivered to the sink was acknowledged."""
    delivered = m.series("pgspout_events_delivered_total")
    acked = m.series("pgspout_events_acknowledged_total")
    mine = [k for k in delivered if ("sink", sink) in k]
    return mine and all(delivered[k] == acked.get(k) for k in mine) and \
        m.get("pgspout_sink_in_flight_events", sink=sink) == 0


WORKLOAD = """
insert into a select i, 'a' || i from generate_series(1, 50) i;
begin; insert into b select i, 'b' from generate_series(1, 10) i; commit;
begin; insert into b select i, 'b' from generate_series(11, 20) i; commit;
begin; insert into b select i, 'b' from generate_series(21, 30) i; commit;
update a set v = 'changed' where id <= 10;
delete from b where id <= 5;
insert into unpublished values (1);
"""
# Transactions that made events: one per statement above but the last.
TRANSACTIONS_WITH_EVENTS = 6


def test_metrics_match_the_workload(db, pgspout, tmp_path):
    db.psql("create table a (id int primary key, v text);"
            "create table b (id int primary key, v text);"
            "create table unpublished (id int);")
    db.psql("create publication pgspout for table a, b;")
    db.psql("select pg_create_logical_replication_slot('%s', 'pgoutput');"
            % db.name)
    out = tmp_path / "out.jsonl"
    port = free_port()
    proc = spawn_streaming(pgspout, db, port, "--sink", "file",
                           "-o", "path=%s" % out, "-s", "1")
    start = scrape(port)
    assert start.get("pgspout_ready") == 1
    assert start.get("pgspout_events_received_total", sink="file",
                     op="insert") == 0
    db.psql(WORKLOAD)
    end = lsn_to_int(db.current_lsn())
    wait_until(lambda: out.exists() and len(data_events(read_jsonl(out)))
               == 95, what="95 events in the file")
    m = wait_metric(port, lambda m: counts_settled(m, "file") and
                    m.get("pgspout_slot_lag_bytes") == 0 and
                    m.get("pgspout_confirmed_lsn") >= end,
                    "every event acknowledged and the lag drained")
    for op, n in (("insert", 80), ("update", 10), ("delete", 5),
                  ("schema", 2), ("truncate", 0)):
        for name in ("received", "delivered", "acknowledged"):
            assert m.get("pgspout_events_%s_total" % name, sink="file",
                         op=op) == n, (name, op, m.text)
    table = "pgspout_table_events_received_total"
    assert m.get(table, table="public.a", op="insert") == 50
    assert m.get(table, table="public.a", op="update") == 10
    assert m.get(table, table="public.b", op="insert") == 30
    assert m.get(table, table="public.b", op="delete") == 5
    assert not any(("table", "public.unpublished") in k
                   for k in m.series(table))
    lag = "pgspout_acknowledgement_lag_seconds"
    assert m.get(lag + "_count") == TRANSACTIONS_WITH_EVENTS
    assert m.get(lag + "_bucket", le="+Inf") == TRANSACTIONS_WITH_EVENTS
    assert m.get(lag + "_sum") >= 0
    assert m.get("pgspout_received_bytes_total") > 0
    assert m.get("pgspout_flushed_lsn") >= end
    assert m.get("pgspout_received_lsn") >= end
    assert m.get("pgspout_slot_wal_status", status="reserved") == 1
    assert m.get("pgspout_slot_wal_status", status="lost") == 0
    assert m.get("pgspout_slot_active") == 1
    assert m.get("pgspout_sink_retries_total", sink="file") == 0
    assert m.get("pgspout_sink_queued_events", sink="file") == 0
    assert m.get("pgspout_reconnects_total") == 0
    assert m.get("pgspout_last_error_timestamp_seconds") == 0
    version = pgspout.run("--version").stdout.split()[1]
    server = db.scalar("show server_version")
    assert m.get("pgspout_build_info", version=version, abi="1.7",
                 server_version=server) == 1, m.series("pgspout_build_info")
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)


def test_retries_counted(db, pgspout, tmp_path):
    """The fault sink answers RETRY to its first three writes: three
    retries, and the events still all arrive once."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    port = free_port()
    out = tmp_path / "out.jsonl"
    proc = spawn_streaming(pgspout, db, port, "--sink", fault_sink_path(),
                           "-o", "path=%s" % out, "-o", "retry_writes=3")
    db.psql("insert into t select generate_series(1, 7);")
    m = wait_metric(port, lambda m: counts_settled(m, "fault") and
                    m.get("pgspout_events_acknowledged_total", sink="fault",
                          op="insert") == 7, "seven inserts acknowledged")
    assert m.get("pgspout_sink_retries_total", sink="fault") == 3
    assert m.get("pgspout_log_messages_total", level="warning") >= 1
    assert [e["key"]["id"] for e in data_events(read_jsonl(out))] == \
        list(range(1, 8))
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)


def test_sink_reported_records(db, pgspout, tmp_path):
    """A network sink (elastic, through the sink kit) reports what became
    of its records: with one document throttled once and one rejected
    into the dead-letter file, the counters say exactly that."""
    from test_elastic import FakeBulk
    db.psql("create table f (id int primary key, v text);")
    db.create_slot(db.name)
    db.psql("insert into f select i, 'v' || i from generate_series(1, 6) i;")
    srv = FakeBulk([lambda a, meta, n: 429 if meta["_id"] == "2" and n == 1
                    else 400 if meta["_id"] == "4" else 201])
    try:
        port = free_port()
        proc = spawn_streaming(
            pgspout, db, port, "--sink", "elastic", "-o", "url=" + srv.url,
            "-o", "retry_base=10ms", "-o", "retry_max=50ms",
            "-o", "dead_letter=%s" % (tmp_path / "dead.jsonl"))
        m = wait_metric(port, lambda m: counts_settled(m, "elastic") and
                        m.get("pgspout_events_acknowledged_total",
                              sink="elastic", op="insert") == 6,
                        "six inserts acknowledged")
        records = "pgspout_sink_records_%s_total"
        assert m.get(records % "retried", sink="elastic") == 1
        assert m.get(records % "rejected", sink="elastic") == 1
        assert m.get(records % "dead_lettered", sink="elastic") == 1
        assert m.get(records % "accepted", sink="elastic") == 5
        assert len((tmp_path / "dead.jsonl").read_text().splitlines()) == 1
        assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)
    finally:
        srv.close()


def test_reconnects_and_last_error(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    port = free_port()
    proc = spawn_streaming(pgspout, db, port, "--sink", "file",
                           "-o", "path=%s" % (tmp_path / "o.jsonl"))
    before = scrape(port)
    assert before.get("pgspout_reconnects_total") == 0
    started = before.get("pgspout_start_time_seconds")
    db.psql("select pg_terminate_backend(active_pid) from "
            "pg_replication_slots where slot_name = '%s';" % db.name)
    m = wait_metric(port, lambda m: m.get("pgspout_reconnects_total") == 1
                    and m.get("pgspout_ready") == 1,
                    "one reconnection, then ready again")
    assert m.get("pgspout_last_error_timestamp_seconds") >= started
    db.psql("insert into t values (1);")
    wait_metric(port, lambda m: m.get("pgspout_events_acknowledged_total",
                                      sink="file", op="insert") == 1,
                "the insert after the reconnection acknowledged")
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)


def dashboard_metrics():
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "query") and isinstance(value, str):
                    exprs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(dashboard)
    names = set()
    for expr in exprs:
        names.update(re.findall(r"\bpgspout_[a-z_]+", expr))
    return dashboard, exprs, names


def test_grafana_dashboard_queries_live_metrics(db, pgspout, tmp_path):
    dashboard, exprs, names = dashboard_metrics()
    assert dashboard["title"] and len(exprs) >= 10, exprs
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    port = free_port()
    proc = spawn_streaming(pgspout, db, port, "--sink", "file",
                           "-o", "path=%s" % (tmp_path / "o.jsonl"), "-s", "1")
    db.psql("insert into t values (1); delete from t;")
    m = wait_metric(port, lambda m: counts_settled(m, "file") and
                    m.get("pgspout_slot_lag_bytes") is not None,
                    "events acknowledged and the slot read")
    live = m.names()
    missing = sorted(n for n in names if n not in live)
    assert not missing, "the dashboard queries metrics /metrics lacks: %s" \
        % missing
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)


def test_endpoint_paths_and_methods(db, pgspout, tmp_path):
    db.create_slot(db.name)
    port = free_port()
    proc = spawn_streaming(pgspout, db, port, "--sink", "file",
                           "-o", "path=%s" % (tmp_path / "o.jsonl"))
    assert http_get(port, "/health") == (200, '{"alive":true}\n')
    assert http_get(port, "/ready") == (200, '{"ready":true}\n')
    assert http_get(port, "/nope")[0] == 404
    assert http_get(port, "/metrics", method="POST")[0] == 405
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)


def dead_conninfo(port):
    return "host=127.0.0.1 port=%d dbname=x connect_timeout=3" % port


@pytest.fixture
def listening_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


@pytest.mark.parametrize("listen,message", [
    ("IN_USE", "Address already in use"),
    ("192.0.2.1:9187", "not one of this machine's"),
    ("no-such-host.invalid:9187", "cannot resolve the address"),
    ("127.0.0.1", "has no port"),
    ("127.0.0.1:0", "invalid port"),
    ("127.0.0.1:65536", "invalid port"),
    ("::1:9187", "in brackets"),
    (":9187", "has no address"),
])
def test_http_address_refused_before_connecting(pgspout, listening_port,
                                                 tmp_path, listen, message):
    """A port in use or an address that cannot be served is a usage error
    (exit 2) before anything connects: the conninfo points at a port
    where nothing listens, so trying to connect would exit 1."""
    if listen == "IN_USE":
        listen = "127.0.0.1:%d" % listening_port
    dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    dead.bind(("127.0.0.1", 0))
    try:
        r = pgspout.run("-d", dead_conninfo(dead.getsockname()[1]),
                        "--sink", "file", "-o", "path=%s" % (tmp_path / "o"),
                        "--http", listen, timeout=30)
    finally:
        dead.close()
    assert r.returncode == 2, r.stderr
    assert message in r.stderr, r.stderr
    assert "connection" not in r.stderr.lower(), r.stderr
