"""The catalog connection lost while the server is full: replication is
healthy, so pgspout waits (backing off, confirming nothing new) until the
catalog answers again, and nothing is lost."""

import os
import time

import pytest

from faults_support import slot_state
from pgharness import (Database, PgServer, Session, data_events,
                       lsn_to_int, read_jsonl, wait_until)

MAX_CONNECTIONS = 8


@pytest.fixture
def small_server():
    """A server of its own with few connection slots, so a test can take
    every one of them."""
    server = PgServer(15)
    server.init()
    server._as_user(["tee", "-a", os.path.join(server.datadir,
                                                "postgresql.conf")],
                    input="max_connections = %d\n"
                          "superuser_reserved_connections = 0\n"
                    % MAX_CONNECTIONS)
    server.start()
    yield server
    server.cleanup()


def fill_connections(conninfo):
    """Opens sessions until the server refuses more; returns them."""
    sessions = []
    while True:
        s = Session(conninfo)
        if s.ask("select 'up';") != "up":
            s.close()
            return sessions
        sessions.append(s)
        assert len(sessions) <= MAX_CONNECTIONS


def test_catalog_reconnect_waits_for_free_connections(small_server, pgspout,
                                                      tmp_path):
    admin = Database(small_server, "postgres")
    admin.psql("create database cat;")
    db = Database(small_server, "cat")
    db.psql("create table t1 (id int primary key);")
    db.create_slot("cat")
    out = tmp_path / "out.jsonl"
    proc = pgspout.spawn("-d", db.conninfo, "--slot", "cat", "-s", "1",
                         "--sink", "file", "-o", "path=%s" % out)
    db.psql("insert into t1 values (1);")
    wait_until(lambda: out.exists() and '"table":"t1"' in out.read_text(),
               what="the first change delivered")

    # The catalog connection goes away while every slot is taken.
    db.psql("select pg_terminate_backend(pid) from pg_stat_activity where "
            "application_name = 'pgspout' and backend_type = "
            "'client backend';")
    sessions = fill_connections(db.conninfo)
    assert sessions, "no connection could be opened"
    full = sessions[0]
    full.ask("create table t2 (id int primary key);"
             "insert into t2 select generate_series(1, 100);"
             "insert into t1 values (2); select 'done';")
    end = full.ask("select pg_current_wal_lsn();")
    wait_until(lambda: pgspout.stderr_of(proc).count(
        "asking the catalog again") >= 3, timeout=60,
        what="pgspout retrying the catalog")
    assert proc.poll() is None, pgspout.stderr_of(proc)[-3000:]
    # Nothing of the transaction it cannot describe is confirmed.
    confirmed = full.ask("select confirmed_flush_lsn from "
                         "pg_replication_slots where slot_name = 'cat';")
    assert lsn_to_int(confirmed) < lsn_to_int(end)
    time.sleep(10)  # the server stays full for a while
    assert proc.poll() is None, pgspout.stderr_of(proc)[-3000:]
    for s in sessions:
        s.close()

    wait_until(lambda: (slot_state(db, "cat")[1] or 0) >= lsn_to_int(end),
               timeout=120, what="confirmation after connections freed up")
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-3000:]
    events = data_events(read_jsonl(out))
    ids = [(e["table"], e["after"]["id"]) for e in events]
    assert ids == [("t1", 1)] + [("t2", i) for i in range(1, 101)] + \
        [("t1", 2)], ids[:5]
    assert "catalog connection re-established" in pgspout.stderr_of(proc)
