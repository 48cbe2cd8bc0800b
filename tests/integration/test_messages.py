"""Logical decoding messages (messages, message_prefixes) and transaction
events (transaction_events): what reaches the sinks, at which positions,
across a kill -9, and what a sink built for ABI 1.4 gets (nothing of them).
"""

import base64
import os
import time

import pytest

import faults_support as fs
from ops_support import fault_sink_path
from pgharness import (assert_positions_increase, lsn_to_int, read_jsonl,
                       wait_until)

def emit(db, transactional, prefix, content):
    """Emits a message in its own statement; returns its LSN (an int)."""
    return lsn_to_int(db.scalar(
        "select pg_logical_emit_message(%s, '%s', %s)"
        % ("true" if transactional else "false", prefix, content)))


def wal_end(db):
    """The endpos that covers everything done so far. A non-transactional
    message is flushed with nothing (before 17 it cannot ask to be) and the
    test servers commit asynchronously, so pg_current_wal_lsn (the written
    position) may stop short of it: a transaction's commit has the WAL
    writer flush everything before it soon, and the insert position covers
    it."""
    db.psql("select txid_current();")
    return db.scalar("select pg_current_wal_insert_lsn()")


def messages(events):
    return [e for e in events if e["op"] == "message"]


def slot_confirmed(db, slot):
    return lsn_to_int(db.scalar(
        "select confirmed_flush_lsn from pg_replication_slots "
        "where slot_name = '%s'" % slot))


@pytest.mark.all_versions
def test_messages_reach_the_sink_in_order(db, stream):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("begin; insert into t values (1);"
            "select pg_logical_emit_message(true, 'app', '{\"n\":1}');"
            "insert into t values (2); commit;")
    lone = emit(db, False, "app", "'lone'")
    db.psql("begin; insert into t values (99);"
            "select pg_logical_emit_message(true, 'app', 'rolled back');"
            "rollback;")
    db.psql("insert into t values (3);")
    emit(db, False, "other", "'filtered out'")
    emit(db, True, "other", "'filtered out too'")
    # What pgspout's own heartbeats write: never delivered.
    emit(db, False, "pgspout", "'{\"type\":\"heartbeat\"}'")
    binary = emit(db, False, "app.bin", "'\\xff00'::bytea")
    # Emitted inside a transaction but not part of it: its record ends where
    # the transaction's commit record starts (nothing else writes WAL here),
    # so both have that LSN as commit_lsn; the message, sent first, has to
    # sort first.
    db.psql("begin; insert into t values (4);"
            "select pg_logical_emit_message(false, 'app', 'adjacent');"
            "commit;")
    events = stream("--messages", "--message-prefix", "app*",
                    endpos=wal_end(db))
    assert_positions_increase(events)
    got = messages(events)
    assert [m["content"] if "content" in m else m["content_base64"]
            for m in got] == ['{"n":1}', "lone", base64.b64encode(
                b"\xff\x00").decode(), "adjacent"]
    inside, alone, raw, adjacent = got
    # The transactional one is the second of its transaction's events.
    first = [e for e in events if e["op"] == "insert"][0]
    assert inside["transactional"] is True and inside["prefix"] == "app"
    assert inside["commit_lsn"] == first["commit_lsn"]
    assert inside["seq"] == 2 and inside["xid"] == first["xid"]
    assert inside["schema"] is None and inside["table"] is None
    # A lone one sits at its own LSN, between the transactions around it.
    assert alone["transactional"] is False and alone["commit_time"] is None
    assert lsn_to_int(alone["commit_lsn"]) == lone and alone["seq"] == 0
    assert lsn_to_int(alone["lsn"]) == lone
    assert raw["prefix"] == "app.bin" and "content" not in raw
    assert lsn_to_int(raw["commit_lsn"]) == binary
    inserts = [e for e in events if e["op"] == "insert"]
    assert [e["after"]["id"] for e in inserts] == [1, 2, 3, 4]
    assert events.index(adjacent) < events.index(inserts[3])
    assert adjacent["commit_lsn"] == inserts[3]["commit_lsn"]
    assert events.index(alone) > events.index(first)
    third = [e for e in events if e["op"] == "insert"][2]
    assert lsn_to_int(third["commit_lsn"]) > lone
    assert events.index(alone) < events.index(third)
    assert not any(e.get("prefix") in ("pgspout", "other") for e in got)


def test_messages_are_off_by_default(db, stream):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("begin; insert into t values (1);"
            "select pg_logical_emit_message(true, 'app', 'x'); commit;")
    emit(db, False, "app", "'y'")
    events = stream("--transaction-events", endpos=wal_end(db))
    assert messages(events) == []
    assert [e["op"] for e in events if e["op"] != "schema"] == [
        "begin", "insert", "commit"]


@pytest.mark.all_versions
def test_transaction_events_count_per_table(db, stream):
    db.psql("create table a (id int primary key);"
            "create table b (id int primary key);"
            "create table skipped (id int primary key);")
    db.create_slot(db.name)
    db.psql("begin; insert into a values (1), (2); insert into b values (1);"
            "select pg_logical_emit_message(true, 'app', 'm');"
            "insert into skipped values (1); update a set id = 3 where id = 2;"
            "commit;")
    # Nothing of this one is delivered: no begin, no commit.
    db.psql("insert into skipped values (2);")
    db.psql("delete from b;")

    events = stream("--transaction-events", "--messages",
                    "-T", "public.skipped")
    assert_positions_increase(events)
    ops = [e for e in events if e["op"] != "schema"]
    assert [e["op"] for e in ops] == [
        "begin", "insert", "insert", "insert", "message", "update", "commit",
        "begin", "delete", "commit"]
    begin, commit = ops[0], ops[6]
    assert begin["seq"] == 1 and begin["table"] is None
    # Changes after the begin, numbered among all the transaction's changes
    # (the skipped table's insert included), the commit last.
    assert [e["seq"] for e in ops[:7]] == [1, 2, 3, 4, 5, 7, 8]
    assert len({e["commit_lsn"] for e in ops[:7]}) == 1
    assert commit["event_count"] == 5
    assert commit["tables"] == {"public.a": 3, "public.b": 1}
    assert commit["messages"] == 1
    assert ops[9]["event_count"] == 1 and ops[9]["tables"] == {"public.b": 1}
    assert ops[7]["xid"] == ops[8]["xid"] == ops[9]["xid"]


def test_kill_restart_neither_duplicates_nor_loses(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key, v text);")
    db.create_slot(db.name)
    out = str(tmp_path / "out.jsonl")
    args = ["-d", db.conninfo, "--slot", db.name, "--sink", "file",
            "-o", "path=" + out, "--messages", "--transaction-events",
            "--heartbeat-interval", "1"]
    kills = 12 if os.environ.get("PGSPOUT_FAULTS_FULL") else 3
    emitted, n = [], 0
    for _ in range(kills):
        fs.wait_slot_free(db, db.name)
        proc = pgspout.spawn(*args)
        for _ in range(20):
            n += 1
            db.psql("begin; insert into t values (%d, 'x');"
                    "select pg_logical_emit_message(true, 'app', 't%d');"
                    "commit;" % (n, n))
            emit(db, False, "app", "'n%d'" % n)
            emitted += ["t%d" % n, "n%d" % n]
        wait_until(lambda: len(messages(fs.complete_events(out))) > 0,
                   what="some messages written")
        assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
        proc.kill()
        proc.wait()
    endpos = wal_end(db)
    fs.wait_slot_free(db, db.name)
    r = pgspout.run(*args, "--endpos", endpos, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    events = read_jsonl(out)
    # Strictly increasing positions over the whole file: nothing twice.
    assert_positions_increase(events)
    assert [m["content"] for m in messages(events)] == emitted
    ids = [e["after"]["id"] for e in events if e["op"] == "insert"]
    assert ids == list(range(1, n + 1))
    commits = [e for e in events if e["op"] == "commit"]
    assert len(commits) == n
    assert all(c["tables"] == {"public.t": 1} and c["messages"] == 1
               for c in commits)
    assert slot_confirmed(db, db.name) >= lsn_to_int(endpos)


def test_sink_of_an_older_minor_gets_none(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into t values (1);")
    db.psql("begin; insert into t values (2);"
            "select pg_logical_emit_message(true, 'app', 'in'); commit;")
    last = emit(db, False, "app", "'last'")
    new_out, old_out = str(tmp_path / "new.jsonl"), str(tmp_path / "old.jsonl")
    old_so = fault_sink_path().replace("pgspout_fault.so",
                                       "pgspout_fault_abi14.so")
    conf = fs.write_config(str(tmp_path / "pgspout.conf"), db, db.name, [
        ("new", "file", {"path": new_out}),
        ("old", old_so, {"path": old_out}),
    ], extra="messages = true;\ntransaction_events = true;")
    endpos = wal_end(db)
    r = pgspout.run("-c", conf, "--endpos", endpos)
    # The 1.4 fault sink fails on any op it cannot know.
    assert r.returncode == 0, r.stderr[-4000:]
    new, old = read_jsonl(new_out), read_jsonl(old_out)
    assert [m["content"] for m in messages(new)] == ["in", "last"]
    assert [e["op"] for e in old if e["op"] != "schema"] == [
        "insert", "insert"]
    # The last event, the lone message, was confirmed past although the old
    # sink never held it.
    assert slot_confirmed(db, db.name) > last


def test_lone_message_is_not_confirmed_before_every_sink_has_it(
        db, pgspout, tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into t values (1);")
    lone = emit(db, False, "app", "'held'")
    wal_end(db)
    out, silent = str(tmp_path / "out.jsonl"), str(tmp_path / "silent.jsonl")
    conf = fs.write_config(str(tmp_path / "pgspout.conf"), db, db.name, [
        ("file", "file", {"path": out}),
        # Takes every event and never acknowledges one.
        ("silent", fault_sink_path(), {"path": silent, "ack": False}),
    ], extra="messages = true;")
    proc = pgspout.spawn("-c", conf)
    try:
        wait_until(lambda: [m["content"] for m in
                            messages(fs.complete_events(out))] == ["held"],
                   what="the message in the file sink")
        # A few status updates (status_interval = 1) go out meanwhile.
        time.sleep(3)
        assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
        assert slot_confirmed(db, db.name) < lone
    finally:
        proc.kill()
        proc.wait()


def test_file_ending_in_a_lone_message_restarts(db, stream):
    """A non-transactional message (seq 0) as the file's last line is where
    the next run resumes, not data the sink refuses to append after."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into t values (1);")
    emit(db, False, "app", "'last'")
    events = stream("--messages", endpos=wal_end(db))
    assert events[-1]["seq"] == 0 and events[-1]["content"] == "last"
    db.psql("insert into t values (2);")
    emit(db, False, "app", "'again'")
    events = stream("--messages", endpos=wal_end(db))
    assert_positions_increase(events)
    assert [e["content"] for e in messages(events)] == ["last", "again"]
    assert [e["after"]["id"] for e in events if e["op"] == "insert"] == [1, 2]
