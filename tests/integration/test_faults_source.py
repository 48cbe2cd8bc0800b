"""Fault 5, trouble on the source side. Each case has a clear message and a
defined outcome, never a silent skip:
- the slot dropped while streaming (its walsender terminated first, as an
  active slot cannot be dropped): pgspout's reconnect finds it missing and
  exits 1 saying so, also with --create-slot (a new slot would start after
  the lost changes);
- the publication missing at start, or dropped while streaming: exit 1;
- a published table dropped or altered while streaming (or before pgspout
  reads its changes): the changes before the drop arrive, with the schema
  as it was, and the stream goes on;
- a role without REPLICATION: exit 1 with the server's refusal.
"""

import signal
import time

import pytest

import faults_support as fs
from pgharness import data_events, read_jsonl, wait_until


def file_args(db, out, *extra):
    return ["-d", db.conninfo, "--slot", db.name, "--sink", "file",
            "-o", "path=%s" % out, "-o", "fsync=false", "-s", "1"] + \
        list(extra)


def inserted_ids(events, table="t"):
    return [e["after"]["id"] for e in data_events(events, table)
            if e["op"] == "insert"]


def drop_active_slot(db, slot, timeout=30):
    """Terminates the slot's walsender and drops the slot before pgspout's
    reconnect takes it again."""
    deadline = time.monotonic() + timeout
    while db.slot_info(slot) is not None:
        assert time.monotonic() < deadline, "could not drop slot %s" % slot
        db.psql("select pg_terminate_backend(active_pid) from "
                "pg_replication_slots where slot_name = '%s' and active_pid "
                "is not null;"
                "select pg_drop_replication_slot(slot_name) from "
                "pg_replication_slots where slot_name = '%s' and not active;"
                % (slot, slot), check=False)


@pytest.mark.parametrize("create_slot", [False, True],
                         ids=["plain", "create_slot"])
def test_slot_dropped_while_streaming(db, pgspout, tmp_path, create_slot):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    out = tmp_path / "out.jsonl"
    extra = ["--create-slot"] if create_slot else []
    proc = pgspout.spawn(*file_args(db, out, *extra))
    db.psql("insert into t select g from generate_series(1, 50) g;")
    wait_until(lambda: len(fs.complete_events(str(out))) >= 51,
               what="changes before the drop")
    drop_active_slot(db, db.name)
    db.psql("insert into t values (1000);")  # can never be delivered now
    try:
        rc = proc.wait(timeout=60)
    except Exception:
        pytest.fail("pgspout kept running without its slot:\n%s"
                    % pgspout.stderr_of(proc)[-3000:])
    stderr = pgspout.stderr_of(proc)
    assert rc == 1, stderr[-3000:]
    assert 'replication slot "%s"' % db.name in stderr, stderr[-3000:]
    assert "dropped" in stderr or "does not exist" in stderr, stderr[-3000:]
    assert inserted_ids(read_jsonl(out)) == list(range(1, 51))
    # No new slot was made behind the user's back.
    assert db.slot_info(db.name) is None


def test_publication_missing_at_start(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key);"
            "select pg_create_logical_replication_slot('%s', 'pgoutput');"
            % db.name)
    r = pgspout.run(*file_args(db, tmp_path / "out.jsonl",
                               "--publication", "nosuchpub"), timeout=60)
    assert r.returncode == 1, r.stderr
    assert 'publication "nosuchpub" does not exist' in r.stderr, r.stderr
    assert db.slot_info(db.name)["active"] is False


def test_two_phase_slot_refused(db, pgspout, tmp_path):
    """A two-phase slot makes the server send prepared transactions even to
    a protocol 1 client; pgspout refuses it at start with a plain message
    instead of failing on the protocol later."""
    db.psql("create table t (id int primary key);"
            "create publication pgspout for all tables;"
            "select pg_create_logical_replication_slot('%s', 'pgoutput', "
            "false, true);" % db.name)
    r = pgspout.run(*file_args(db, tmp_path / "out.jsonl"), timeout=60)
    assert r.returncode == 1, r.stderr
    assert "was created with two_phase = true" in r.stderr, r.stderr


@pytest.mark.parametrize("create_slot", [False, True],
                         ids=["plain", "create_slot"])
def test_publication_dropped_while_streaming(db, pgspout, tmp_path,
                                             create_slot):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    out = tmp_path / "out.jsonl"
    extra = ["--create-slot"] if create_slot else []
    proc = pgspout.spawn(*file_args(db, out, *extra))
    db.psql("insert into t values (1), (2);")
    wait_until(lambda: len(fs.complete_events(str(out))) >= 3,
               what="changes before the drop")
    db.psql("drop publication pgspout; insert into t values (3);")
    try:
        rc = proc.wait(timeout=90)
    except Exception:
        pytest.fail("pgspout did not stop without its publication:\n%s"
                    % pgspout.stderr_of(proc)[-3000:])
    stderr = pgspout.stderr_of(proc)
    assert rc == 1, stderr[-3000:]
    assert 'publication "pgspout" does not exist' in stderr, stderr[-3000:]
    assert inserted_ids(read_jsonl(out)) == [1, 2]


@pytest.mark.parametrize("live", [True, False], ids=["live", "catching_up"])
def test_table_dropped_and_altered(db, pgspout, tmp_path, live):
    """Live: pgspout streams while the DDL runs. Catching up: it starts
    after the DDL, so it describes relations whose catalog entries have
    changed or are gone."""
    db.psql("create type mood as enum ('ok', 'meh');"
            "create table t (id int primary key, m mood, x int);"
            "create table gone (id int primary key, note text);")
    db.create_slot(db.name)
    out = tmp_path / "out.jsonl"
    proc = pgspout.spawn(*file_args(db, out)) if live else None
    steps = [
        "insert into gone values (1, 'before drop');"
        "insert into t values (1, 'ok', 1);",
        "drop table gone;",
        "insert into t values (2, 'meh', 2);",
        "alter table t add column y text default 'dflt';",
        "insert into t values (3, 'ok', 3, 'y3');",
        "alter table t alter column x type bigint;",
        "insert into t values (4, 'ok', 4, 'y4');",
        "alter table t drop column m; drop type mood;",
        "insert into t values (5, 5, 'y5');",
        "alter table t rename to t2;",
        "insert into t2 values (6, 6, 'y6');",
    ]
    for sql in steps:
        db.psql(sql)
        if live:
            time.sleep(0.1)
    endpos = db.current_lsn()
    if live:
        fs.wait_confirmed(db, db.name, endpos, proc, pgspout)
        assert pgspout.stop(proc, signal.SIGTERM) == 0, \
            pgspout.stderr_of(proc)[-3000:]
        stderr = pgspout.stderr_of(proc)
    else:
        r = pgspout.run(*file_args(db, out, "--endpos", endpos))
        stderr = r.stderr
        assert r.returncode == 0, stderr[-3000:]
    events = read_jsonl(out)
    changes = [(e["table"], e["after"]) for e in data_events(events)]
    assert changes == [
        ("gone", {"id": 1, "note": "before drop"}),
        ("t", {"id": 1, "m": "ok", "x": 1}),
        ("t", {"id": 2, "m": "meh", "x": 2}),
        ("t", {"id": 3, "m": "ok", "x": 3, "y": "y3"}),
        ("t", {"id": 4, "m": "ok", "x": 4, "y": "y4"}),
        ("t", {"id": 5, "x": 5, "y": "y5"}),
        ("t2", {"id": 6, "x": 6, "y": "y6"}),
    ], stderr[-3000:]
    schemas = [(e["table"], [c["name"] for c in e["columns"]])
               for e in events if e["op"] == "schema"]
    for expected in [("gone", ["id", "note"]), ("t", ["id", "m", "x"]),
                     ("t", ["id", "m", "x", "y"]), ("t", ["id", "x", "y"]),
                     ("t2", ["id", "x", "y"])]:
        assert expected in schemas, schemas
    types = {(e["table"], c["name"]): c["type"] for e in events
             if e["op"] == "schema" for c in e["columns"]}
    assert types[("t2", "x")] == "bigint"


def test_role_without_replication(server, db, pgspout, tmp_path):
    db.psql("create role norepl login;"
            "grant all on database %s to norepl;" % db.name)
    db.create_slot(db.name)
    conninfo = server.conninfo(db.name, user="norepl")
    r = pgspout.run("-d", conninfo, "--slot", db.name, "--sink", "file",
                    "-o", "path=%s" % (tmp_path / "out.jsonl"), timeout=60)
    assert r.returncode == 1, r.stderr
    assert "replication connection failed" in r.stderr, r.stderr
    assert "must be superuser or replication role" in r.stderr or \
        "permission denied" in r.stderr, r.stderr
    db.psql("drop owned by norepl; drop role norepl;", check=False)


def test_slot_held_by_another_client_backs_off(db, pgspout, tmp_path):
    """A second pgspout on a slot the first one holds keeps retrying with a
    growing delay (not every 100 ms forever) and takes over once the first
    one stops: nothing is delivered twice between their files' union."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    first = pgspout.spawn(*file_args(db, tmp_path / "a.jsonl"))
    db.psql("insert into t values (1);")
    wait_until(lambda: len(fs.complete_events(str(tmp_path / "a.jsonl")))
               >= 2, what="first pgspout streaming")
    second = pgspout.spawn(*file_args(db, tmp_path / "b.jsonl"))
    wait_until(lambda: "(attempt 5)" in pgspout.stderr_of(second)
               or second.poll() is not None, timeout=30,
               what="the second pgspout backing off")
    stderr = pgspout.stderr_of(second)
    assert second.poll() is None, stderr[-3000:]
    assert "is active for PID" in stderr, stderr[-3000:]
    # The delays are jittered; the attempt number, which sets their
    # ceiling, must keep growing.
    attempts = [int(line.split("(attempt ")[1].rstrip(")"))
                for line in stderr.splitlines() if "reconnecting in" in line]
    assert attempts == list(range(2, 2 + len(attempts))), attempts
    assert pgspout.stop(first, signal.SIGTERM) == 0
    db.psql("insert into t values (2);")
    wait_until(lambda: len(fs.complete_events(str(tmp_path / "b.jsonl")))
               >= 2, timeout=60, what="the second pgspout taking over")
    assert pgspout.stop(second, signal.SIGTERM) == 0
    assert inserted_ids(read_jsonl(tmp_path / "a.jsonl")) == [1]
    assert inserted_ids(read_jsonl(tmp_path / "b.jsonl")) == [2]
