"""How the host treats a sink that is slow, asks for retries or fails for
good, using the fault-injecting test sink (tests/sinks/fault_sink.c)."""

import os

import pytest

from pgharness import data_events, lsn_to_int, read_jsonl, wait_until


@pytest.fixture
def fault_sink():
    directory = os.environ.get("PGSPOUT_TEST_SINK_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "build", "release", "tests",
        "sinks")
    path = os.path.abspath(os.path.join(directory, "pgspout_fault.so"))
    if not os.path.exists(path):
        pytest.fail("test sink not built: %s (set PGSPOUT_TEST_SINK_DIR)"
                    % path)
    return path


def workload(db, rows):
    db.psql("create table items (id int primary key, note text);")
    db.create_slot(db.name)
    for i in range(1, rows + 1):
        db.psql("insert into items values (%d, 'n%d');" % (i, i))
    db.psql("update items set note = 'changed' where id <= 2;")


def run_fault(pgspout, db, sink, out, *options, endpos=None, extra=()):
    args = ["-d", db.conninfo, "--slot", db.name, "--sink", sink,
            "-o", "path=%s" % out]
    for o in options:
        args += ["-o", o]
    args += ["--endpos", endpos or db.current_lsn()]
    return pgspout.run(*args, *extra)


def test_retry_redelivers_the_same_events(db, pgspout, fault_sink, tmp_path):
    workload(db, 5)
    out = tmp_path / "out.jsonl"
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    endpos = db.current_lsn()
    r = run_fault(pgspout, db, fault_sink, out, "retry_writes=3",
                  endpos=endpos)
    assert r.returncode == 0, r.stderr
    assert "injected RETRY" in r.stderr and "retrying in" in r.stderr
    events = data_events(read_jsonl(out))
    # Nothing of a refused batch was kept; the retried batch came whole.
    assert [(e["op"], e["key"]["id"]) for e in events] == \
        [("insert", i) for i in range(1, 6)] + [("update", 1), ("update", 2)]
    after = db.slot_info(db.name)["confirmed_flush_lsn"]
    assert lsn_to_int(after) >= lsn_to_int(endpos) > lsn_to_int(before)


def test_fatal_stops_without_confirming(db, pgspout, fault_sink, tmp_path):
    workload(db, 3)
    out = tmp_path / "out.jsonl"
    first_end = db.current_lsn()
    r = run_fault(pgspout, db, fault_sink, out, endpos=first_end)
    assert r.returncode == 0, r.stderr
    confirmed = db.slot_info(db.name)["confirmed_flush_lsn"]

    db.psql("insert into items values (100, 'after');")
    failed_out = tmp_path / "failed.jsonl"
    r = run_fault(pgspout, db, fault_sink, failed_out, "fatal_write=1")
    assert r.returncode == 1, r.stderr
    assert "failed permanently" in r.stderr
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == confirmed
    assert data_events(read_jsonl(failed_out)) == []

    # What the failed run refused is delivered by the next one.
    r = run_fault(pgspout, db, fault_sink, out)
    assert r.returncode == 0, r.stderr
    ids = [e["key"]["id"] for e in data_events(read_jsonl(out))]
    assert ids.count(100) == 1 and ids[-1] == 100


def test_slow_sink_outlives_wal_sender_timeout(db, pgspout, fault_sink,
                                              tmp_path):
    """Each write takes twice wal_sender_timeout; the status thread keeps
    the walsender from giving up on pgspout."""
    db.psql("create table items (id int primary key);")
    db.create_slot(db.name)
    for i in range(3):
        db.psql("insert into items values (%d);" % i)
    conninfo = db.conninfo + " options='-c wal_sender_timeout=1500'"
    out = tmp_path / "out.jsonl"
    endpos = db.current_lsn()
    r = pgspout.run("-d", conninfo, "--slot", db.name, "--sink", fault_sink,
                    "-o", "path=%s" % out, "-o", "write_delay=3s", "-s", "1",
                    "--endpos", endpos, timeout=180)
    assert r.returncode == 0, r.stderr
    assert [e["key"]["id"] for e in data_events(read_jsonl(out))] == \
        [0, 1, 2]
    # The final confirmation reached a walsender that was still there.
    confirmed = db.slot_info(db.name)["confirmed_flush_lsn"]
    assert lsn_to_int(confirmed) >= lsn_to_int(endpos)


def test_lost_walsender_is_not_a_clean_stop(db, pgspout, fault_sink,
                                           tmp_path):
    """Without periodic status updates (-s 0) a slow sink lets the walsender
    time out; the stop must then not claim a confirmation."""
    db.psql("create table items (id int primary key);")
    db.create_slot(db.name)
    for i in range(3):
        db.psql("insert into items values (%d);" % i)
    conninfo = db.conninfo + " options='-c wal_sender_timeout=1000'"
    r = pgspout.run("-d", conninfo, "--slot", db.name, "--sink", fault_sink,
                    "-o", "path=%s" % (tmp_path / "out.jsonl"),
                    "-o", "write_delay=3s", "-s", "0",
                    "--endpos", db.current_lsn(), timeout=180)
    assert r.returncode == 1, r.stderr
    assert "the server may not have received the final confirmation" \
        in r.stderr


def test_seq_counts_filtered_changes(db, stream, tmp_path):
    """A change's seq is its place among all changes of its transaction, so
    a sink sees the same numbers whatever the filters."""
    db.psql("create table a (id int primary key);"
            "create table b (id int primary key);")
    db.create_slot(db.name)
    db.psql("begin; insert into a values (1); insert into b values (1);"
            "insert into a values (2); commit;")
    end = db.current_lsn()
    only_a = data_events(stream("-t", "a", endpos=end,
                                out=str(tmp_path / "a.jsonl")))
    assert [(e["table"], e["seq"]) for e in only_a] == [("a", 1), ("a", 3)]
    db.psql("select pg_drop_replication_slot('%s');" % db.name)
    db.psql("select pg_create_logical_replication_slot('%s', 'pgoutput');"
            % db.name)
    db.psql("begin; insert into a values (3); insert into b values (3);"
            "commit;")
    both = data_events(stream(out=str(tmp_path / "both.jsonl")))
    assert [(e["table"], e["seq"]) for e in both] == [("a", 1), ("b", 2)]


def test_catalog_connection_reconnects(db, pgspout, tmp_path):
    """The catalog connection idles between Relation messages; a server that
    closes idle sessions must not stop the stream."""
    db.psql("create table first (id int primary key);"
            "create table second (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into first values (1);")
    out = tmp_path / "out.jsonl"
    # Held back until the catalog connection has idled past the timeout.
    proc = pgspout.spawn("-d", db.conninfo +
                         " options='-c idle_session_timeout=500'",
                         "--slot", db.name, "--sink", "file",
                         "-o", "path=%s" % out, "-o", "fsync=false")
    wait_until(lambda: out.exists() and '"first"' in out.read_text(),
               what="first table's change")
    wait_until(lambda: db.scalar(
        "select count(*) from pg_stat_activity where datname = '%s' "
        "and application_name = 'pgspout' and backend_type = "
        "'client backend'" % db.name) == "0",
        what="catalog connection closed by idle_session_timeout")
    db.psql("insert into second values (2);")
    wait_until(lambda: '"second"' in out.read_text(),
               what="second table's change")
    assert pgspout.stop(proc) == 0
    assert "catalog connection re-established" in pgspout.stderr_of(proc)
