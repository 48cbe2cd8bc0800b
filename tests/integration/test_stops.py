"""Stop signals always work, and every connection and query is bounded:
against a TCP endpoint that accepts and never answers, a server that stops
answering mid-stream, and a slot that another client holds."""

import re
import signal
import socket
import threading
import time

import pytest

from faults_support import TcpProxy, slot_state
from pgharness import Session, data_events, read_jsonl, wait_until

# How long a process may take to end after a stop signal. Generous: the
# point is that it ends at all (before the fix these waited for minutes).
EXIT_AFTER_SIGNAL_S = 20


class SilentServer:
    """Accepts TCP connections and never says a word."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.held = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted += 1

    def conninfo(self, **extra):
        parts = ["host=127.0.0.1", "port=%d" % self.port, "dbname=postgres",
                 "user=postgres"] + ["%s=%s" % kv for kv in extra.items()]
        return " ".join(parts)

    def close(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for c in self.held:
            c.close()


@pytest.fixture
def silent():
    s = SilentServer()
    yield s
    s.close()


@pytest.fixture
def proxy(server):
    p = TcpProxy(server.port)
    yield p
    p.close()


def proxied(db, proxy):
    return db.server.conninfo(db.name).replace(
        "port=%d" % db.server.port, "port=%d" % proxy.port)


def stop_and_wait(pgspout, proc, sig=signal.SIGTERM):
    return pgspout.stop(proc, sig, timeout=EXIT_AFTER_SIGNAL_S)


def wait_accepted(silent, count=1):
    wait_until(lambda: silent.accepted >= count, timeout=30,
               what="pgspout to connect to the silent server")
    time.sleep(0.3)  # now inside the wait for the server's answer


def test_first_connection_to_silent_server_stops_on_signal(
        silent, pgspout, tmp_path):
    proc = pgspout.spawn("-d", silent.conninfo(), "--slot", "s", "--sink",
                         "file", "-o", "path=%s" % (tmp_path / "out.jsonl"))
    wait_accepted(silent)
    assert stop_and_wait(pgspout, proc) == 1
    assert "stop requested" in pgspout.stderr_of(proc)


def test_retry_initial_against_silent_server_stops_on_signal(
        silent, pgspout, tmp_path):
    proc = pgspout.spawn("-d", silent.conninfo(connect_timeout=2), "--slot",
                         "s", "--retry-initial", "--sink", "file", "-o",
                         "path=%s" % (tmp_path / "out.jsonl"))
    # connect_timeout bounds each attempt: pgspout backs off and tries again.
    wait_until(lambda: silent.accepted >= 2, timeout=60,
               what="a second attempt after connect_timeout")
    assert "timeout expired" in pgspout.stderr_of(proc)
    assert stop_and_wait(pgspout, proc) == 1


def test_connect_timeout_bounds_first_connection(silent, pgspout, tmp_path):
    r = pgspout.run("-d", silent.conninfo(connect_timeout=2), "--slot", "s",
                    "--sink", "file", "-o",
                    "path=%s" % (tmp_path / "out.jsonl"), timeout=60)
    assert r.returncode == 1, r.stderr
    assert "timeout expired" in r.stderr


@pytest.mark.waits_out_default
def test_default_connect_timeout(silent, pgspout, tmp_path):
    """No connect_timeout anywhere: pgspout's default (30 s) still ends the
    attempt instead of waiting forever."""
    r = pgspout.run("-d", silent.conninfo(), "--list-tables", timeout=90)
    assert r.returncode == 1, r.stderr
    assert "timeout expired" in r.stderr


def test_list_tables_against_silent_server_stops_on_signal(
        silent, pgspout):
    proc = pgspout.spawn("-d", silent.conninfo(), "--list-tables")
    wait_accepted(silent)
    assert stop_and_wait(pgspout, proc) == 1


def test_drop_slot_against_silent_server_stops_on_signal(silent, pgspout):
    proc = pgspout.spawn("-d", silent.conninfo(), "--slot", "s",
                         "--drop-slot")
    wait_accepted(silent)
    assert stop_and_wait(pgspout, proc) == 1


def stream_through(proxy, db, pgspout, out, *extra):
    """pgspout streaming table t through the proxy, its first change
    delivered."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    proc = pgspout.spawn("-d", proxied(db, proxy), "--slot", db.name,
                         "--sink", "file", "-o", "path=%s" % out, *extra)
    db.psql("insert into t values (1);")
    wait_until(lambda: out.exists() and '"op":"insert"' in out.read_text(),
               what="the first change delivered")
    return proc


def test_reconnect_to_silent_endpoint_stops_on_signal(db, pgspout, proxy,
                                                      tmp_path):
    """Streaming, then the server's address starts accepting connections it
    never answers: reconnect attempts must not make pgspout deaf."""
    out = tmp_path / "out.jsonl"
    proc = stream_through(proxy, db, pgspout, out)
    proxy.hang()
    wait_until(lambda: "connection to the server lost"
               in pgspout.stderr_of(proc), what="the connection lost")
    time.sleep(1.5)  # inside a reconnect attempt that gets no answer
    assert stop_and_wait(pgspout, proc) == 1
    stderr = pgspout.stderr_of(proc)
    assert "stopped while disconnected" in stderr or "stop requested" in stderr
    assert [e["after"]["id"] for e in data_events(read_jsonl(out))] == [1]


def test_clean_stop_with_server_frozen_ends_on_second_signal(
        db, pgspout, proxy, tmp_path):
    """The server stops answering mid-stream; a stop must not wait forever
    for its answer to the final confirmation: a second signal ends it, and
    pgspout does not claim a clean stop."""
    out = tmp_path / "out.jsonl"
    proc = stream_through(proxy, db, pgspout, out)
    proxy.freeze()
    proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)  # waiting for the frozen server to end COPY
    assert proc.poll() is None, "exited before the server answered"
    assert stop_and_wait(pgspout, proc) == 1
    assert "the server may not have received the final confirmation" in \
        pgspout.stderr_of(proc)


def hold_slot(pgspout, db, tmp_path):
    """Another client streaming from the slot (pgspout itself)."""
    proc = pgspout.spawn("-d", db.conninfo, "--slot", db.name, "--sink",
                         "file", "-o", "path=%s" % (tmp_path / "held.jsonl"))
    wait_until(lambda: slot_state(db, db.name)[0] is not None,
               what="the slot held by another client")
    return proc


def test_drop_slot_held_by_another_client_fails_at_once(db, pgspout,
                                                        tmp_path):
    db.create_slot(db.name)
    holder = hold_slot(pgspout, db, tmp_path)
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--drop-slot",
                    timeout=60)
    assert r.returncode == 1, r.stderr
    assert "is active for PID %d" % slot_state(db, db.name)[0] in r.stderr
    assert "--wait" in r.stderr
    assert slot_state(db, db.name)[0] is not None
    pgspout.stop(holder)


def test_drop_slot_wait_is_bounded(db, pgspout, tmp_path):
    db.create_slot(db.name)
    holder = hold_slot(pgspout, db, tmp_path)
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--drop-slot",
                    "--wait", "2", timeout=60)
    assert r.returncode == 1, r.stderr
    assert "still held after waiting 2 s" in r.stderr
    assert slot_state(db, db.name) != (None, None)
    pgspout.stop(holder)


def test_drop_slot_waits_for_release(db, pgspout, tmp_path):
    db.create_slot(db.name)
    holder = hold_slot(pgspout, db, tmp_path)
    proc = pgspout.spawn("-d", db.conninfo, "--slot", db.name, "--drop-slot",
                         "--wait", "120")
    wait_until(lambda: "waiting up to 120 s" in pgspout.stderr_of(proc),
               what="--drop-slot waiting")
    assert pgspout.stop(holder) == 0
    assert proc.wait(timeout=60) == 0, pgspout.stderr_of(proc)
    assert db.scalar("select count(*) from pg_replication_slots where "
                     "slot_name = '%s'" % db.name) == "0"


def test_drop_slot_cancelled_does_not_drop(db, pgspout, tmp_path):
    """A user who gives up on --drop-slot with SIGTERM must not find the
    slot dropped later, when its holder lets go."""
    db.create_slot(db.name)
    holder = hold_slot(pgspout, db, tmp_path)
    proc = pgspout.spawn("-d", db.conninfo, "--slot", db.name, "--drop-slot",
                         "--wait", "600")
    wait_until(lambda: "waiting up to 600 s" in pgspout.stderr_of(proc),
               what="--drop-slot waiting")
    assert stop_and_wait(pgspout, proc) == 1
    assert "was not dropped" in pgspout.stderr_of(proc)
    assert pgspout.stop(holder) == 0
    time.sleep(1.0)
    assert db.scalar("select count(*) from pg_replication_slots where "
                     "slot_name = '%s'" % db.name) == "1"


def test_wait_needs_drop_slot(pgspout):
    r = pgspout.run("-d", "dbname=x", "--list-tables", "--wait", "5")
    assert r.returncode == 2
    assert "--wait can only be used with --drop-slot" in r.stderr


def test_silent_server_mid_stream_is_taken_for_gone(db, pgspout, proxy,
                                                    tmp_path):
    """The path to the server stops carrying anything (no error, no reset):
    pgspout asks for a sign of life, gives up on the connection when none
    comes (--server-timeout: 8 s here, 40 by default), and reconnects once
    the path works again; nothing is lost."""
    out = tmp_path / "out.jsonl"
    proc = stream_through(proxy, db, pgspout, out, "--server-timeout", "8")
    proxy.freeze()
    db.psql("insert into t values (2);")
    wait_until(lambda: "has not answered" in pgspout.stderr_of(proc),
               timeout=120, what="the silent connection given up")
    # Not before the timeout: the request for a sign of life went
    # unanswered for the rest of it.
    silent_s = re.search(r"has not answered for (\d+) s",
                         pgspout.stderr_of(proc)).group(1)
    assert int(silent_s) >= 8, pgspout.stderr_of(proc)
    proxy.frozen = False
    db.psql("insert into t values (3);")
    wait_until(lambda: out.read_text().count('"op":"insert"') >= 3,
               timeout=120, what="the changes after the reconnect")
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-3000:]
    assert [e["after"]["id"] for e in data_events(read_jsonl(out))] == \
        [1, 2, 3]


def test_stop_while_the_catalog_is_slow_ends_cleanly(db, pgspout, tmp_path):
    """A stop that comes while pgspout waits for the catalog's answer about
    a new relation ends the run as any stop does (exit 0, everything
    durable confirmed), not as a catalog failure. The catalog is made to
    wait by a session that holds pg_type locked: pgspout's question about
    the relation's column type (a domain: built-in types need no question)
    waits for that lock. The server's own sessions know the domain by then
    and do not wait."""
    out = tmp_path / "out.jsonl"
    db.psql("create domain d_int as int;"
            "create table t (id d_int primary key);"
            "create table u (id d_int primary key);")
    writer, watcher, locker = (Session(db.conninfo) for _ in range(3))
    # Warm sessions: once the lock is held, they must not need pg_type.
    assert writer.ask("insert into u values (0); select 'warm';") == "warm"
    waiting_sql = ("select count(*) from pg_locks l join pg_stat_activity a "
                   "using (pid) where not l.granted and "
                   "a.application_name = 'pgspout';")
    assert watcher.ask(waiting_sql) == "0"
    db.create_slot(db.name)
    proc = pgspout.spawn("-d", db.conninfo, "--slot", db.name,
                         "--sink", "file", "-o", "path=%s" % out)
    try:
        assert writer.ask("insert into t values (1); select 'ok';") == "ok"
        wait_until(lambda: out.exists() and '"table":"t"' in out.read_text(),
                   what="the first change delivered")
        assert locker.ask("begin; lock table pg_catalog.pg_type in access "
                          "exclusive mode; select 'locked';") == "locked"
        assert writer.ask("insert into u values (1); select 'ok';") == "ok"
        wait_until(lambda: watcher.ask(waiting_sql) != "0",
                   what="pgspout waiting for the catalog's answer")
        assert stop_and_wait(pgspout, proc) == 0, pgspout.stderr_of(proc)
    finally:
        locker.ask("rollback; select 'released';")
        for s in (writer, watcher, locker):
            s.close()
    stderr = pgspout.stderr_of(proc)
    assert "stop requested while waiting" in stderr, stderr
    assert "error" not in stderr, stderr
    assert [e["after"]["id"] for e in data_events(read_jsonl(out))] == [1]
