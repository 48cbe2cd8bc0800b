"""Fault 3, sink outages: the OpenSearch node stopped (connections refused)
and kinesalite cut off (refused through a proxy, or hung with SIGSTOP) in
the middle of a running workload. While the sink is away:
- confirmed_flush_lsn never passes the WAL position at the moment the sink
  went away (nothing it did not take can have been acknowledged);
- pgspout stays connected: the same walsender holds the slot all along,
  although wal_sender_timeout is 2 s and the sink's small queue makes the
  main loop wait inside the sink (only the status thread answers);
and after the sink returns everything arrives: the index equals the table,
every change is in the stream, and the file sink next to it holds every
change exactly once.

Outage length: CI 10 s; PGSPOUT_FAULTS_FULL=1: 60 s.
"""

import signal
import time

import pytest

import faults_support as fs
from pgharness import lsn_to_int, read_jsonl

def wait_progress(db, proc, pgspout, timeout=60):
    """Waits until confirmed_flush_lsn moves: the stream is live."""
    start = fs.slot_state(db, db.name)[1]
    deadline = time.monotonic() + timeout
    while fs.slot_state(db, db.name)[1] == start:
        assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.2)


def hold_outage(db, proc, pgspout, seconds):
    """Polls the slot for `seconds` while the sink is away; returns the
    (walsender pid, WAL position when the sink went away, polls)."""
    pid, _ = fs.slot_state(db, db.name)
    gone_at = lsn_to_int(db.current_lsn())
    assert pid is not None
    polls = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        active, confirmed = fs.slot_state(db, db.name)
        assert proc.poll() is None, "pgspout died during the outage:\n%s" % \
            pgspout.stderr_of(proc)[-4000:]
        assert active == pid, \
            "walsender changed (%s -> %s): pgspout lost its connection" % (
                pid, active)
        assert confirmed <= gone_at, \
            "confirmed %X past %X while the sink was down:\n%s" % (
                confirmed, gone_at, pgspout.stderr_of(proc)[-3000:])
        polls += 1
        time.sleep(0.2)
    return pid, gone_at, polls


def finish(db, proc, pgspout, work, out, pid):
    work.stop()
    endpos = db.current_lsn()
    fs.wait_confirmed(db, db.name, endpos, proc, pgspout, timeout=300)
    assert fs.slot_state(db, db.name)[0] == pid, "walsender changed"
    assert pgspout.stop(proc, signal.SIGTERM) == 0, \
        pgspout.stderr_of(proc)[-4000:]
    stderr = pgspout.stderr_of(proc)
    assert "connection to the server lost" not in stderr, stderr[-4000:]
    events = read_jsonl(out)
    return events, fs.check_exactly_once(db, events)


@pytest.mark.slow
def test_opensearch_node_stopped(db, pgspout, tmp_path):
    outage = fs.count(10, 60)
    node = fs.opensearch_node()
    index = "faults-%s-{table}" % db.name
    fs.setup_audited(db)
    out = str(tmp_path / "out.jsonl")
    conf = fs.write_config(str(tmp_path / "pgspout.conf"), db, db.name, [
        ("file", "file", {"path": out, "fsync": False}),
        ("search", "elastic", {"url": node.url, "index": index,
                               "queue_records": 200, "retry_max": "2s",
                               "connect_timeout": "1s"}),
    ], conninfo=fs.short_timeout_conninfo(db))
    work = fs.Pgbench(db, str(tmp_path), rate=60).start()
    proc = pgspout.spawn("-c", conf)
    try:
        wait_progress(db, proc, pgspout)
        node.pause()
        pid, gone_at, polls = hold_outage(db, proc, pgspout, outage)
        node.start_same_port()
        # Back: the slot moves past the outage while the workload goes on.
        fs.wait_confirmed(db, db.name, gone_at + 1, proc, pgspout)
        time.sleep(1)
    finally:
        work.stop()
        if node.proc is None:
            node.start_same_port()
    events, (changes, lost, dups) = finish(db, proc, pgspout, work, out, pid)
    docs = fs.check_index_equals_table(node, db,
                                       index.replace("{table}", "t"))
    stderr = pgspout.stderr_of(proc)
    assert "[search]" in stderr and "will be sent again" in stderr, \
        stderr[-3000:]
    fs.report_figures("opensearch_outage", outage_s=outage, polls=polls,
                      changes=changes, lost=lost, duplicated_file=dups,
                      elastic_docs=docs)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["refused", "hung"])
def test_kinesis_outage(db, pgspout, tmp_path, mode):
    outage = fs.count(10, 60)
    kin = fs.kinesalite_server()
    stream = fs.new_kinesis_stream(kin)
    proxy = fs.TcpProxy(kin.port)
    fs.setup_audited(db)
    out = str(tmp_path / "out.jsonl")
    conf = fs.write_config(str(tmp_path / "pgspout.conf"), db, db.name, [
        ("file", "file", {"path": out, "fsync": False}),
        ("kinesis", "kinesis", {"stream": stream, "endpoint": proxy.url,
                                "region": "us-east-1", "linger": "5ms",
                                "queue_records": 200, "retry_max": "2s",
                                "connect_timeout": "1s",
                                "request_timeout": "3s"}),
    ], conninfo=fs.short_timeout_conninfo(db))
    work = fs.Pgbench(db, str(tmp_path), rate=60).start()
    proc = pgspout.spawn("-c", conf, env=fs.aws_env())
    stopped = False
    try:
        wait_progress(db, proc, pgspout)
        if mode == "refused":
            proxy.down()
        else:
            kin.proc.send_signal(signal.SIGSTOP)
            stopped = True
        pid, gone_at, polls = hold_outage(db, proc, pgspout, outage)
        if mode == "refused":
            proxy.up()
        else:
            kin.proc.send_signal(signal.SIGCONT)
            stopped = False
        fs.wait_confirmed(db, db.name, gone_at + 1, proc, pgspout)
        time.sleep(1)
    finally:
        work.stop()
        if stopped:
            kin.proc.send_signal(signal.SIGCONT)
    try:
        events, (changes, lost, dups) = finish(db, proc, pgspout, work, out,
                                               pid)
        records, kinesis_dups = fs.check_at_least_once(kin, stream, events)
    finally:
        proxy.close()
    fs.report_figures("kinesis_outage_" + mode, outage_s=outage, polls=polls,
                      changes=changes, lost=lost, duplicated_file=dups,
                      kinesis_records=records,
                      kinesis_duplicated=kinesis_dups)


@pytest.mark.slow
def test_opensearch_down_during_backfill(db, pgspout, tmp_path):
    """The OpenSearch node stopped for 30 s in the middle of an initial
    snapshot under load: the copy waits for it (nothing it did not take is
    confirmed) and goes on when it is back; in the end each index equals
    its table and the file sink beside it holds every event once."""
    import backfill_support as bs
    import snapshot_sinks
    seconds = 30
    node = fs.opensearch_node()
    index = "bfout-%s-{table}" % db.name
    out = str(tmp_path / "snapshot.jsonl")

    def outage(proc):
        # Down once the copy is under way (read events flowing).
        wait_for_reads(out, proc, pgspout)
        gone_at = lsn_to_int(db.current_lsn())
        node.pause()
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
                confirmed = fs.slot_state(db, db.name)[1]
                assert confirmed <= gone_at, \
                    "confirmed past the outage: %X > %X" % (confirmed,
                                                           gone_at)
                time.sleep(0.5)
            backfill = snapshot_sinks.initial_backfill(db, db.name)
            assert bs.status(db, db.name, backfill)["*"][0] != "done"
        finally:
            node.start_same_port()

    events = snapshot_sinks.run(
        db, pgspout, tmp_path,
        # A short backoff cap, as in test_opensearch_node_stopped: the copy
        # resumes within seconds of the node's return, not up to 30 s later.
        [("search", "elastic", {"url": node.url, "index": index,
                                "retry_max": "2s", "connect_timeout": "1s"})],
        during=outage, rows_per_sec=500)
    for table in bs.KEYS:
        snapshot_sinks.assert_index_equals_table(
            db, table, node.documents(index.replace("{table}", table)),
            events)
    fs.report_figures("opensearch_down_during_backfill", outage_s=seconds,
                      events=len(events), reads=len(bs.reads(events)),
                      lost=0, duplicated=0)


def wait_for_reads(out, proc, pgspout, timeout=120):
    deadline = time.monotonic() + timeout
    while not any(e["op"] == "read" for e in fs.complete_events(out)):
        assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
        assert time.monotonic() < deadline, "the copy never started"
        time.sleep(0.2)
