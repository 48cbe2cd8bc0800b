"""/health and /ready (README "Production"): alive while the loop runs;
ready only while streaming with every sink accepting events and the slot's
lag under max_slot_lag; otherwise 503 naming each reason: connecting and
reconnect backoff (the server behind a proxy that refuses, then accepts),
a sink retrying (RETRY answers, and a sink that reports its records for a
retry during an outage), slot lag over the limit (acknowledgements held
back), with one warning per crossing and the lag drained to 0 after."""

import os
import time

from faults_support import TcpProxy
from ops_support import (fault_sink_path, free_port, http_get, reasons,
                         scrape, spawn_streaming, wait_http, wait_metric)
from pgharness import wait_until


def watch_reasons(port, until, timeout=60):
    """Polls /ready until until() holds; returns every reason list seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        r = reasons(port)
        if r is not None:
            seen.append(r)
        if until():
            return seen
        assert time.monotonic() < deadline, "timed out; seen %r" % seen
        time.sleep(0.05)


def test_connecting_then_streaming_then_backoff(db, pgspout, tmp_path):
    db.create_slot(db.name)
    proxy = TcpProxy(db.server.port)
    proxy.down()
    try:
        port = free_port()
        conninfo = "host=127.0.0.1 port=%d dbname=%s user=postgres " \
                   "connect_timeout=5" % (proxy.port, db.name)
        proc = pgspout.spawn("-d", conninfo, "--slot", db.name,
                             "--retry-initial", "--sink", "file",
                             "-o", "path=%s" % (tmp_path / "o.jsonl"),
                             "--http", "127.0.0.1:%d" % port)
        wait_http(port, proc, pgspout)
        # The server refuses: not ready, for connecting or the backoff.
        seen = watch_reasons(port, lambda: "reconnecting in" in
                             pgspout.stderr_of(proc))
        assert seen and all(r and set(r) <= {"connecting",
                                             "reconnect_backoff"}
                            for r in seen), seen
        assert http_get(port, "/health")[0] == 200
        proxy.up()
        wait_until(lambda: reasons(port) == [], timeout=90,
                   what="ready once the server answers")
        # The connection cut: not ready until streaming again.
        proxy.down()
        wait_until(lambda: "reconnect_backoff" in (reasons(port) or []) or
                   "connecting" in (reasons(port) or []),
                   timeout=60, what="not ready after the cut")
        proxy.up()
        wait_until(lambda: reasons(port) == [], timeout=90,
                   what="ready again")
        assert scrape(port).get("pgspout_reconnects_total") >= 2
        assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)
    finally:
        proxy.close()


def test_sink_retrying(db, pgspout, tmp_path):
    """RETRY answers: the sink is named while pgspout backs off."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    port = free_port()
    proc = spawn_streaming(pgspout, db, port, "--sink", fault_sink_path(),
                           "-o", "path=%s" % (tmp_path / "o.jsonl"),
                           "-o", "retry_writes=5")
    db.psql("insert into t values (1);")
    seen = watch_reasons(port, lambda: scrape(port).get(
        "pgspout_events_acknowledged_total", sink="fault", op="insert") == 1)
    assert ["sink_retrying"] in seen, seen
    assert reasons(port) == []
    status, body = http_get(port, "/ready")
    assert status == 200
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)


def test_sink_reporting_retries(db, pgspout, tmp_path):
    """A sink inside an outage of its service reports records to send
    again (ABI 1.3): not ready until it reports records accepted."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    port = free_port()
    proc = spawn_streaming(pgspout, db, port, "--sink", fault_sink_path(),
                           "-o", "path=%s" % (tmp_path / "o.jsonl"),
                           "-o", "outage=3s", "-o", "outage_request=100ms")
    db.psql("insert into t values (1);")
    seen = watch_reasons(port, lambda: "outage over" in
                         pgspout.stderr_of(proc))
    assert ["sink_retrying"] in seen, seen
    wait_until(lambda: reasons(port) == [], what="ready after the outage")
    m = scrape(port)
    assert m.get("pgspout_sink_records_retried_total", sink="fault") == 30
    assert m.get("pgspout_sink_records_accepted_total", sink="fault") == 1
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)


def lag_warnings(pgspout, proc):
    return pgspout.stderr_of(proc).count("over max_slot_lag")


def write_megabytes(db, n):
    db.psql("insert into t (v) select repeat('x', 1000) from "
            "generate_series(1, %d);" % (n * 1024))


def test_slot_lag_over_the_limit(db, pgspout, tmp_path):
    db.psql("create table t (id serial primary key, v text);")
    db.create_slot(db.name)
    hold = tmp_path / "hold"
    hold.write_text("")
    port = free_port()
    proc = spawn_streaming(pgspout, db, port, "--sink", fault_sink_path(),
                           "-o", "path=%s" % (tmp_path / "o.jsonl"),
                           "-o", "hold_acks_file=%s" % hold,
                           "--max-slot-lag", "1M", "-s", "1")
    write_megabytes(db, 2)
    wait_until(lambda: "slot_lag" in (reasons(port) or []), timeout=60,
               what="not ready for the slot's lag")
    m = scrape(port)
    first = m.get("pgspout_slot_lag_bytes")
    assert first > 1024 * 1024
    # More lag, more polls: still one warning for this crossing. (A row
    # takes about 1 kB of WAL, a little less or more: no exact figure.)
    write_megabytes(db, 1)
    wait_metric(port, lambda m: m.get("pgspout_slot_lag_bytes") >
                first + 512 * 1024, "the lag grew")
    time.sleep(2.5)
    assert lag_warnings(pgspout, proc) == 1, pgspout.stderr_of(proc)
    _, body = http_get(port, "/ready")
    assert '"limit_bytes":1048576' in body, body
    # Acknowledgements flow again: drained to 0, ready, back under.
    os.unlink(hold)
    db.psql("insert into t (v) values ('nudge');")
    wait_metric(port, lambda m: m.get("pgspout_slot_lag_bytes") == 0,
                "the lag drained to 0")
    wait_until(lambda: reasons(port) == [], what="ready again")
    assert "back under max_slot_lag" in pgspout.stderr_of(proc)
    # A second crossing warns again.
    hold.write_text("")
    write_megabytes(db, 2)
    wait_until(lambda: lag_warnings(pgspout, proc) == 2, timeout=60,
               what="a warning for the second crossing")
    os.unlink(hold)
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)
