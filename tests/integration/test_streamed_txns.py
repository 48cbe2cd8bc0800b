"""Streamed in-progress transactions (pgoutput protocol 2, PostgreSQL 14+).

Each test database sets logical_decoding_work_mem to its minimum, 64kB, so
the walsender streams any transaction larger than that while it runs.
pgspout keeps the changes (in memory up to stream_memory, then in files
under spill_dir) and hands them to the sinks at the Stream Commit, exactly
as a protocol 1 transaction.

Every test but the one about the default asks for streaming explicitly, so
that the suite's run with streaming off (scripts/test.sh, the ASan pass)
still tests streaming here."""

import json
import os
import signal

import pytest

from pgharness import (Session, assert_positions_increase, data_events,
                       read_jsonl, run_measured, wait_until)

pytestmark = pytest.mark.since(14)

STREAMING_ON = ("--streaming", "on")


def streaming_db(db):
    db.psql("alter database \"%s\" set logical_decoding_work_mem = '64kB';"
            % db.name)
    db.psql("create table t (id int primary key, v text);")
    db.create_slot(db.name)


def slot_stats(db):
    """(stream_bytes, spill_bytes) of the test's slot, as the server counts
    them (the statistics arrive a little after the walsender's work)."""
    db.psql("select pg_stat_force_next_flush();", check=False) \
        if db.major >= 15 else None
    row = db.query("select stream_bytes, spill_bytes from "
                   "pg_stat_replication_slots where slot_name = '%s'"
                   % db.name)
    return (int(row[0][0]), int(row[0][1])) if row else (0, 0)


def assert_streamed(db, server_spills=False):
    """The server streamed to the slot (stream_bytes > 0) and, unless
    server_spills, never spilled on its side (spill_bytes == 0)."""
    stats = {}

    def streamed():
        stats["v"] = slot_stats(db)
        return stats["v"][0] > 0
    wait_until(streamed, timeout=30, what="stream_bytes > 0 for the slot")
    assert server_spills or stats["v"][1] == 0, \
        "the server spilled: %r" % (stats["v"],)


def run_stream(pgspout, db, out, *extra, env=None, timeout=300,
               default_streaming=False):
    """Streams the slot to out up to the current WAL position, with
    streaming on unless extra sets it or default_streaming leaves it to
    pgspout's default."""
    if not default_streaming and "--streaming" not in extra:
        extra = STREAMING_ON + extra
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink", "file",
                    "-o", "path=" + out, "-o", "fsync=false",
                    "--endpos", db.current_lsn(), *extra, env=env,
                    timeout=timeout)
    assert r.returncode == 0, "pgspout exited %d:\n%s" % (
        r.returncode, r.stderr[-4000:])
    return r


def ids_of(events, op="insert"):
    return [e["after"]["id"] for e in data_events(events, "t")
            if e["op"] == op]


def test_large_transaction_streamed_delivered_once(db, pgspout, tmp_path):
    streaming_db(db)
    db.psql("insert into t select g, md5(g::text) from "
            "generate_series(1, 200000) g;")
    out = str(tmp_path / "out.jsonl")
    run_stream(pgspout, db, out)
    events = read_jsonl(out)
    assert_positions_increase(events)
    assert ids_of(events) == list(range(1, 200001))
    assert_streamed(db)
    # A second run from the confirmed position delivers nothing again.
    run_stream(pgspout, db, out)
    assert ids_of(read_jsonl(out)) == list(range(1, 200001))


@pytest.mark.streaming_default
def test_streaming_is_on_by_default(db, pgspout, tmp_path):
    """Without --streaming the server streams to pgspout (protocol 2)."""
    streaming_db(db)
    db.psql(insert_sql(1, 20000))
    out = str(tmp_path / "out.jsonl")
    run_stream(pgspout, db, out, default_streaming=True)
    assert ids_of(read_jsonl(out)) == list(range(1, 20001))
    assert_streamed(db)


def insert_sql(first, last):
    return ("insert into t select g, md5(g::text) from "
            "generate_series(%d, %d) g;" % (first, last))


def test_interleaved_transactions(db, pgspout, tmp_path):
    """Two large transactions stream interleaved, a small one commits
    between them: each arrives whole, in commit order."""
    streaming_db(db)
    a, b = Session(db.conninfo), Session(db.conninfo)
    try:
        assert a.ask("begin; " + insert_sql(1, 40000) + " select 'a1';") \
            == "a1"
        assert b.ask("begin; " + insert_sql(100001, 140000) +
                     " select 'b1';") == "b1"
        assert a.ask(insert_sql(40001, 80000) + " select 'a2';") == "a2"
        db.psql("insert into t values (900000, 'small');")
        assert b.ask("commit; select 'b2';") == "b2"
        assert a.ask("commit; select 'a3';") == "a3"
    finally:
        a.close()
        b.close()
    out = str(tmp_path / "out.jsonl")
    run_stream(pgspout, db, out)
    events = read_jsonl(out)
    assert_positions_increase(events)
    assert ids_of(events) == ([900000] + list(range(100001, 140001)) +
                              list(range(1, 80001)))
    assert_streamed(db)


def test_rolled_back_transaction_never_delivered(db, pgspout, tmp_path):
    """Rolled back after the server streamed (part of) it: nothing of it
    is delivered. pgspout runs meanwhile, since PostgreSQL 18 does not
    stream a transaction it already knows to be aborted."""
    streaming_db(db)
    out = str(tmp_path / "out.jsonl")
    proc = pgspout.spawn("-d", db.conninfo, "--slot", db.name, "--sink",
                         "file", "-o", "path=" + out, *STREAMING_ON)
    session = Session(db.conninfo)
    try:
        assert session.ask("begin; " + insert_sql(1, 100000) +
                           " select 'in';") == "in"
        assert_streamed(db)
        assert session.ask("rollback; select 'out';") == "out"
    finally:
        session.close()
    db.psql("insert into t values (500000, 'after');")
    wait_until(lambda: os.path.exists(out) and
               ids_of(read_jsonl(out)) != [], timeout=60,
               what="the transaction after the rollback")
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-4000:]
    assert ids_of(read_jsonl(out)) == [500000]


def test_rollback_to_savepoint_discards_only_the_subtransaction(
        db, pgspout, tmp_path):
    streaming_db(db)
    db.psql("begin; " + insert_sql(1, 30000) +
            " savepoint s1; " + insert_sql(30001, 60000) +
            " savepoint s2; " + insert_sql(60001, 70000) +
            " rollback to savepoint s1; " + insert_sql(70001, 90000) +
            " savepoint s3; " + insert_sql(90001, 100000) +
            " release savepoint s3; commit;")
    out = str(tmp_path / "out.jsonl")
    run_stream(pgspout, db, out)
    events = read_jsonl(out)
    assert_positions_increase(events)
    assert ids_of(events) == list(range(1, 30001)) + list(range(70001, 100001))
    assert_streamed(db)


def spill_files(spill_dir):
    if not os.path.isdir(spill_dir):
        return []
    return sorted(f for f in os.listdir(spill_dir) if f.endswith(".spill"))


def test_kill_during_streamed_transaction(db, pgspout, tmp_path):
    """kill -9 while a streamed transaction is open and partly spilled: the
    next run removes the dead run's files, the server sends the transaction
    again, and the file sink holds every row once."""
    streaming_db(db)
    db.psql(insert_sql(1, 1000))
    spill_dir = str(tmp_path / "spill")
    out = str(tmp_path / "out.jsonl")
    args = ["-d", db.conninfo, "--slot", db.name, "--sink", "file",
            "-o", "path=" + out, *STREAMING_ON, "--stream-memory", "256k",
            "--spill-dir", spill_dir]
    proc = pgspout.spawn(*args)
    session = Session(db.conninfo)
    try:
        assert session.ask("begin; " + insert_sql(1001, 60000) +
                           " select 'in';") == "in"
        wait_until(lambda: spill_files(spill_dir), timeout=60,
                   what="spill files of the open transaction")
        wait_until(lambda: os.path.exists(out) and
                   len(read_jsonl(out)) >= 1000, timeout=60,
                   what="the first rows delivered")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        left = spill_files(spill_dir)
        assert left, "a killed run leaves its spill files"
        assert session.ask(insert_sql(60001, 80000) +
                           " commit; select 'done';") == "done"
    finally:
        session.close()
    wait_until(lambda: not db.slot_info(db.name)["active"], timeout=60,
               what="the killed run's walsender to let go")
    r = pgspout.run(*args, "--endpos", db.current_lsn(), timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    events = read_jsonl(out)
    assert sorted(ids_of(events)) == list(range(1, 80001))
    assert len(ids_of(events)) == 80000, "rows delivered twice"
    # Its own files and the directory are gone after a clean exit, the
    # dead run's at its start.
    assert not os.path.exists(spill_dir), os.listdir(spill_dir)
    # After the restart the server decodes again from the slot's restart
    # LSN and spills what lies before the confirmed position (the first
    # 1000 rows): it cannot stream there.
    assert_streamed(db, server_spills=True)


def test_streaming_off_uses_protocol_1(db, pgspout, tmp_path):
    streaming_db(db)
    db.psql(insert_sql(1, 50000))
    out = str(tmp_path / "out.jsonl")
    run_stream(pgspout, db, out, "--streaming", "off")
    assert ids_of(read_jsonl(out)) == list(range(1, 50001))
    stats = {}

    def spilled():
        stats["v"] = slot_stats(db)
        return stats["v"][1] > 0
    wait_until(spilled, timeout=30, what="the server spilling (protocol 1)")
    assert stats["v"][0] == 0, stats["v"]


def test_unwritable_spill_dir_stops_unconfirmed(db, pgspout, tmp_path):
    streaming_db(db)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    db.psql(insert_sql(1, 50000))
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    out = str(tmp_path / "out.jsonl")
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink", "file",
                    "-o", "path=" + out, "--endpos", db.current_lsn(),
                    *STREAMING_ON, "--stream-memory", "64k",
                    "--spill-dir", str(blocked / "spill"), timeout=120)
    assert r.returncode == 1, r.stderr[-4000:]
    assert "cannot create directory %s" % (blocked / "spill") in r.stderr
    assert "spill_dir" in r.stderr
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before
    assert not os.path.exists(out) or ids_of(read_jsonl(out)) == []


# Memory held by pgspout does not depend on the server's major: shown on one.
@pytest.mark.single_version
@pytest.mark.slow
@pytest.mark.rss
def test_huge_streamed_transaction_bounded_memory(db, pgspout_bin, tmp_path):
    """A transaction of some 300 MB of pgoutput changes, streamed and
    spilled with a small stream_memory: peak RSS stays small."""
    streaming_db(db)
    db.psql("insert into t select g, repeat(md5(g::text), 3) from "
            "generate_series(1, 2000000) g;")
    out, peak = run_measured(pgspout_bin, db, tmp_path, *STREAMING_ON,
                             "--stream-memory", "4M", "--spill-dir", str(tmp_path / "spill"),
                             timeout=900)
    max_rss_kb = peak // 1024
    count = id_sum = 0
    with open(out, encoding="utf-8") as f:
        for line in f:
            if '"op":"insert"' in line:
                count += 1
                id_sum += json.loads(line)["after"]["id"]
    os.unlink(out)
    assert count == 2000000
    assert id_sum == 2000000 * 2000001 // 2
    assert not os.path.exists(tmp_path / "spill")
    assert_streamed(db)
    print("peak RSS %d kB" % max_rss_kb)
    assert max_rss_kb < 64 * 1024, "peak RSS %d kB" % max_rss_kb


@pytest.mark.single_version
@pytest.mark.slow
@pytest.mark.rss
def test_fifty_interleaved_transactions_bounded_memory(db, pgspout_bin,
                                                       tmp_path):
    """50 large transactions open at once, their changes interleaved in
    the WAL (some 150 MB of pgoutput changes in all), one rolled back:
    every committed row once, in commit order, nothing of the rolled back
    one, and peak RSS stays small with stream_memory 4M."""
    streaming_db(db)
    per_round, rounds, count = 5000, 4, 50
    sessions = [Session(db.conninfo) for _ in range(count)]
    try:
        for i, s in enumerate(sessions):
            assert s.ask("begin; select 'b%d';" % i) == "b%d" % i
        for r in range(rounds):
            for i, s in enumerate(sessions):
                first = i * 1000000 + r * per_round + 1
                assert s.ask(insert_sql(first, first + per_round - 1) +
                             " select 'r';") == "r"
        for i, s in enumerate(reversed(sessions)):
            end = "rollback" if i == 7 else "commit"
            assert s.ask(end + "; select 'e';") == "e"
    finally:
        for s in sessions:
            s.close()
    out, peak = run_measured(pgspout_bin, db, tmp_path, *STREAMING_ON,
                             "--stream-memory", "4M", "--spill-dir",
                             str(tmp_path / "spill"), timeout=900)
    per_txn = per_round * rounds
    ids = []
    with open(out, encoding="utf-8") as f:
        for line in f:
            if '"op":"insert"' in line:
                ids.append(json.loads(line)["after"]["id"])
    os.unlink(out)
    committed = [i for i in reversed(range(count)) if i != count - 1 - 7]
    assert ids == [i * 1000000 + n for i in committed
                   for n in range(1, per_txn + 1)]
    assert not os.path.exists(tmp_path / "spill")
    assert_streamed(db)
    print("peak RSS %d kB" % (peak // 1024))
    assert peak < 64 * 1024 * 1024, "peak RSS %d kB" % (peak // 1024)


def test_full_spill_disk_stops_unconfirmed(db, pgspout, tmp_path, small_fs):
    """spill_dir on a 2 MiB tmpfs, a transaction of some 15 MB: the stream
    stops with the file and the error named, nothing confirmed, and the
    spill files are gone after the exit."""
    streaming_db(db)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    db.psql(insert_sql(1, 200000))
    spill_dir = str(small_fs / "spill")
    out = str(tmp_path / "out.jsonl")
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink", "file",
                    "-o", "path=" + out, "--endpos", db.current_lsn(),
                    *STREAMING_ON, "--stream-memory", "64k", "--spill-dir", spill_dir,
                    timeout=120)
    assert r.returncode == 1, r.stderr[-4000:]
    assert "cannot write spill file %s/xid-" % spill_dir in r.stderr
    assert "No space left on device (spill_dir)" in r.stderr
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before
    assert not os.path.exists(out) or ids_of(read_jsonl(out)) == []
    assert not os.path.exists(spill_dir)
