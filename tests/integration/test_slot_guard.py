"""The slot guard at start (README "The slot guard"): a slot whose WAL the
server no longer reserves (wal_status = unreserved) is streamed from with
a warning; one whose WAL is gone (lost) is refused with exit 1, a message
that says changes were lost and how to recover, and nothing confirmed.
The server's max_slot_wal_keep_size is set to 1 MB for the test (and
reset after), and WAL segments are switched so that the slot falls
behind it."""

import time

import pytest

from pgharness import lsn_to_int, wait_until


@pytest.fixture
def small_keep_size(db):
    db.psql("alter system set max_slot_wal_keep_size = '1MB';")
    db.psql("select pg_reload_conf();")
    try:
        yield
    finally:
        db.psql("alter system reset max_slot_wal_keep_size;")
        db.psql("select pg_reload_conf();")


def wal_status(db):
    return db.scalar("select wal_status from pg_replication_slots "
                     "where slot_name = '%s'" % db.name)


def fall_behind(db, segments=3):
    """Fills and switches WAL segments while nobody streams the slot."""
    for _ in range(segments):
        db.psql("insert into t select generate_series(1, 1000);")
        db.psql("select pg_switch_wal();")


def run(pgspout, db, tmp_path):
    return pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink", "file",
                       "-o", "path=%s" % (tmp_path / "out.jsonl"),
                       "--endpos", db.current_lsn(), timeout=120)


@pytest.mark.all_versions
def test_unreserved_warns_and_lost_is_refused(db, pgspout, tmp_path,
                                              small_keep_size):
    db.psql("create table t (id int);")
    db.create_slot(db.name)
    fall_behind(db)
    wait_until(lambda: wal_status(db) == "unreserved", timeout=30,
               what="wal_status unreserved")
    r = run(pgspout, db, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no longer has its WAL reserved (wal_status = unreserved" \
        in r.stderr, r.stderr

    # Behind again, and this time a checkpoint removes what it needs.
    fall_behind(db)
    db.psql("checkpoint;")
    wait_until(lambda: wal_status(db) == "lost", timeout=30,
               what="wal_status lost")
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    r = run(pgspout, db, tmp_path)
    assert r.returncode == 1, r.stderr
    assert ('replication slot "%s" is lost (wal_status = lost, '
            'invalidation_reason = wal_removed): the server invalidated it '
            'because the server removed WAL it still needed '
            '(max_slot_wal_keep_size)' % db.name) in r.stderr, r.stderr
    assert "are lost to the sinks; nothing was confirmed" in r.stderr
    assert "pgspout --drop-slot --slot %s" % db.name in r.stderr
    assert "backfill" in r.stderr
    # It stopped before asking the server to stream.
    assert "streaming from slot" not in r.stderr
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before
    assert lsn_to_int(before) > 0


@pytest.mark.since(18)
def test_idle_timeout_invalidation_is_named(db, pgspout, tmp_path):
    """PostgreSQL 18 invalidates a slot left inactive longer than
    idle_replication_slot_timeout (at a checkpoint): pgspout refuses it
    with that cause named, and confirms nothing."""
    db.psql("create table t (id int);")
    db.create_slot(db.name)
    db.psql("alter system set idle_replication_slot_timeout = '1s';"
            "select pg_reload_conf();")
    assert db.scalar("select unit from pg_settings where name = "
                     "'idle_replication_slot_timeout'") == "s"
    try:
        # inactive_since is set when the slot is released; a checkpoint
        # after the timeout invalidates it.
        def invalidated():
            db.psql("checkpoint;")
            return db.scalar(
                "select invalidation_reason from pg_replication_slots where "
                "slot_name = '%s'" % db.name) == "idle_timeout"
        time.sleep(2)
        wait_until(invalidated, timeout=60, what="the idle slot invalidated")
    finally:
        db.psql("alter system reset idle_replication_slot_timeout;"
                "select pg_reload_conf();")
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    r = run(pgspout, db, tmp_path)
    assert r.returncode == 1, r.stderr
    assert ('replication slot "%s" is lost (wal_status = lost, '
            'invalidation_reason = idle_timeout): the server invalidated it '
            'because it was inactive longer than the server\'s '
            'idle_replication_slot_timeout' % db.name) in r.stderr, r.stderr
    assert "streaming from slot" not in r.stderr
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before
