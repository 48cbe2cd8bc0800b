"""Heartbeats (README "Heartbeats"): while every write goes to a table the
publication leaves out and to another database, pgspout writes its
heartbeat message to the WAL every heartbeat_interval, the slot's
restart_lsn keeps advancing and the WAL it retains stays bounded, and no
heartbeat reaches a sink. A test_decoding slot in the same database sees
the messages themselves. While changes flow, no heartbeat is written;
heartbeat_interval = 0 writes none.

Duration: 40 s by default, the test asking for a CHECKPOINT (which logs
the running transactions) every loop, so restart_lsn can move every few
seconds; 300 s at the server's own pace (every 15 s) with
PGSPOUT_FAULTS_FULL=1."""

import os
import re
import time

import pytest

from ops_support import free_port, scrape, spawn_streaming
from pgharness import lsn_to_int, read_jsonl, wait_until

FULL = os.environ.get("PGSPOUT_FAULTS_FULL") == "1"
DURATION_S = 300 if FULL else 40
# The server logs the running transactions, which let a restart_lsn move,
# every 15 s, and a move takes two of them: the slot keeps about the last
# 30 s of WAL. A checkpoint logs them too: with one every loop (2 s of
# sleep plus the writes) the slot keeps about the last 10 s. Bounded means
# never more than the last RETAINED_S seconds', however long the run and
# however much is written. Without heartbeats nothing is confirmed and the
# slot keeps everything since the start.
FORCE_RUNNING_XACTS = not FULL
RETAINED_S = 20 if FORCE_RUNNING_XACTS else 50
RESTART_EVERY_S = 10 if FORCE_RUNNING_XACTS else 30

HEARTBEAT = re.compile(r"^message: transactional: 0 prefix: pgspout, "
                       r"sz: \d+ content:\{\"type\":\"heartbeat\"\}$")


def setup(db, other):
    db.psql("create table pub (id int primary key);"
            "create table unpub (id serial primary key, v text);"
            "create publication pgspout for table pub;")
    db.psql("select pg_create_logical_replication_slot('%s', 'pgoutput');"
            % db.name)
    # A second slot that decodes everything, to see the messages.
    db.psql("select pg_create_logical_replication_slot('%s_probe', "
            "'test_decoding');" % db.name)
    db.psql('create database "%s";' % other, dbname="postgres")
    db.psql("create table w (id serial, v text);", dbname=other)


def heartbeats_seen(db):
    """Heartbeat messages decoded since the last call, with their LSNs."""
    rows = db.query("select lsn::text, data from pg_logical_slot_get_changes("
                    "'%s_probe', NULL, NULL)" % db.name)
    return [lsn for lsn, data in rows if HEARTBEAT.match(data)]


def slot_positions(db):
    return [lsn_to_int(x) for x in db.query(
        "select restart_lsn, confirmed_flush_lsn, pg_current_wal_lsn() "
        "from pg_replication_slots where slot_name = '%s'" % db.name)[0]]


def drop_other(db, other):
    db.psql('drop database if exists "%s" with (force);' % other,
            dbname="postgres", check=False)


def test_heartbeats_move_the_slot(db, pgspout, tmp_path):
    other = "%s_other" % db.name[:40]
    setup(db, other)
    try:
        run_unpublished_writes(db, other, pgspout, tmp_path)
    finally:
        drop_other(db, other)


def run_unpublished_writes(db, other, pgspout, tmp_path):
    out = tmp_path / "out.jsonl"
    port = free_port()
    proc = spawn_streaming(pgspout, db, port, "--sink", "file",
                           "-o", "path=%s" % out, "-s", "1",
                           "--heartbeat-interval", "2")
    t0 = time.monotonic()
    start = slot_positions(db)
    samples, heartbeats = [(0.0,) + tuple(start)], []
    while time.monotonic() - t0 < DURATION_S:
        db.psql("insert into w (v) select repeat('x', 1000) from "
                "generate_series(1, 2000);", dbname=other)
        db.psql("insert into unpub (v) select repeat('y', 100) from "
                "generate_series(1, 200);")
        if FORCE_RUNNING_XACTS:
            db.psql("checkpoint;")
        time.sleep(2)
        samples.append((time.monotonic() - t0,) + tuple(slot_positions(db)))
        heartbeats += heartbeats_seen(db)
    assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
    # The heartbeats are in the WAL, about one per interval.
    assert len(heartbeats) >= DURATION_S // 2 // 3, heartbeats
    assert scrape(port).get("pgspout_heartbeats_total") >= len(heartbeats)
    # The slot moved on with them: confirmed past a heartbeat of the run,
    # restart_lsn advancing through it, and never keeping more than the
    # last RETAINED_S seconds of WAL.
    end = samples[-1]
    assert end[2] >= lsn_to_int(heartbeats[len(heartbeats) // 2])
    restarts = sorted({s[1] for s in samples})
    assert len(restarts) >= DURATION_S // RESTART_EVERY_S, restarts
    assert end[3] - start[2] > DURATION_S // 3 * 1024 * 1024, \
        "too little WAL written"
    for t, restart, _, _ in samples:
        if t < RETAINED_S:
            continue
        then = max(s[3] for s in samples if s[0] <= t - RETAINED_S)
        assert restart >= then, \
            "at %.0f s the slot kept WAL older than %d s: %r" % (
                t, RETAINED_S, samples)
    # Never delivered to a sink.
    assert not out.exists() or read_jsonl(out) == []
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)


@pytest.mark.all_versions
def test_no_heartbeat_while_changes_flow(db, pgspout, tmp_path):
    db.psql("create table pub (id int primary key);")
    db.create_slot(db.name)
    db.psql("select pg_create_logical_replication_slot('%s_probe', "
            "'test_decoding');" % db.name)
    port = free_port()
    proc = spawn_streaming(pgspout, db, port, "--sink", "file",
                           "-o", "path=%s" % (tmp_path / "o.jsonl"),
                           "--heartbeat-interval", "2")
    # Three heartbeat intervals with a change every quarter of one.
    for i in range(12):
        db.psql("insert into pub values (%d);" % i)
        time.sleep(0.5)
    assert heartbeats_seen(db) == []
    # Once they stop, heartbeats follow.
    wait_until(lambda: heartbeats_seen(db), timeout=30,
               what="a heartbeat once the changes stopped", interval=0.5)
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)


def test_heartbeats_off(db, pgspout, tmp_path):
    db.create_slot(db.name)
    db.psql("select pg_create_logical_replication_slot('%s_probe', "
            "'test_decoding');" % db.name)
    port = free_port()
    proc = spawn_streaming(pgspout, db, port, "--sink", "file",
                           "-o", "path=%s" % (tmp_path / "o.jsonl"),
                           "--heartbeat-interval", "0")
    db.psql("create table unpub (id int);")
    time.sleep(6)
    assert heartbeats_seen(db) == []
    assert scrape(port).get("pgspout_heartbeats_total") == 0
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)
