"""Failover (README "Failover"): pgspout streams with --failover from a
primary whose standby synchronizes the slot; under a write load the
primary crashes (immediate stop) and the standby is promoted; pgspout,
given both hosts with target_session_attrs=read-write, reconnects to the
promoted standby on its own and goes on from the synchronized slot.
Replaying the file sink's events gives exactly the table on the promoted
standby (every change it acknowledged, none it did not), no event is
there twice, and positions strictly increase; the elastic sink of the same
run ends with an index equal to that table.

Also: --failover refused before PostgreSQL 17, and a failover slot on a
standby refused with a clear error. CI: once per major (17+);
PGSPOUT_FAULTS_FULL=1: 10 times."""

import os
import subprocess
import threading
import time

import pytest

import elastic_server
import faults_support as fs
from pgharness import (Database, assert_positions_increase, psql_env,
                       read_jsonl, wait_until)
from standby_support import Pair

SLOT = "s1"


class Writer(threading.Thread):
    """Inserts rows (ids 1, 2, ...) and updates earlier ones in small
    transactions through the multi-host conninfo until stopped; a
    transaction that fails (the primary gone) is retried on whichever
    server is the primary next."""

    def __init__(self, conninfo):
        super().__init__(daemon=True)
        self.conninfo = conninfo
        self.next_id = 1
        self.stopping = threading.Event()
        self.failures = 0

    def run(self):
        while not self.stopping.is_set():
            first = self.next_id
            sql = ("begin; insert into t (id, v) select g, 'v' || g from "
                   "generate_series(%d, %d) g; update t set n = n + 1 where "
                   "id %% 7 = %d and id < %d; commit;"
                   % (first, first + 19, first % 7, first))
            r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                                "-d", self.conninfo, "-c", sql],
                               capture_output=True, text=True,
                               env=psql_env(), stdin=subprocess.DEVNULL)
            if r.returncode == 0:
                self.next_id += 20
            else:
                self.failures += 1
                time.sleep(0.2)

    def stop(self):
        self.stopping.set()
        self.join(timeout=120)


def replay(events):
    """The table as the file sink's events build it, by id."""
    rows = {}
    for e in events:
        if e.get("table") != "t":
            continue
        if e["op"] in ("insert", "update", "read"):
            a = e["after"]
            rows[a["id"]] = (a["v"], a["n"])
        elif e["op"] == "delete":
            rows.pop(e["before"]["id"], None)
    return rows


def table_rows(db):
    return {int(i): (v, int(n)) for i, v, n in
            db.query("select id, v, n from t")}


def events_in(path):
    return read_jsonl(path) if os.path.exists(path) else []


def index_rows(node, index):
    node.refresh(index)
    return {int(i): (src["v"], src["n"])
            for i, (_, src) in node.documents(index).items()}


@pytest.fixture(scope="session")
def opensearch():
    yield from elastic_server.ElasticNode().session()


def fail_over_once(pgver, pgspout, tmp_path, node, index):
    pair = Pair(pgver)
    proc = writer = None
    try:
        pair.admin.psql("create database app;")
        app = Database(pair.primary, "app")
        app.psql("create table t (id bigint primary key, v text, "
                 "n int not null default 0);")
        out = str(tmp_path / "out.jsonl")
        conf = fs.write_config(
            str(tmp_path / "pgspout.conf"), app, SLOT,
            [("file", "file", {"path": out}),
             ("elastic", "elastic", {"url": node.url, "index": index})],
            conninfo=pair.conninfo("app"),
            extra="create_slot = true;\nfailover = true;\n"
                  "snapshot = \"never\";\n")
        proc = pgspout.spawn("-c", conf)
        wait_until(lambda: proc.poll() is not None or app.scalar(
            "select count(*) from pg_replication_slots where slot_name = "
            "'%s' and active and failover" % SLOT) == "1", timeout=60,
            what="pgspout streaming from a failover slot")
        assert proc.poll() is None, pgspout.stderr_of(proc)
        writer = Writer(pair.conninfo("app"))
        writer.start()
        wait_until(pair.synced_soon(SLOT), timeout=120,
                   what="the standby to synchronize the slot")
        # The standby's copy cannot be streamed from before a promotion.
        r = pgspout.run("-d", pair.standby.conninfo("app"), "--slot", SLOT,
                        "--sink", "file", "-o", "path=/dev/null")
        assert r.returncode == 1, r.stderr
        assert ('this server is a standby, and replication slot "%s" on it '
                'is synchronized from its primary' % SLOT) in r.stderr
        wait_until(lambda: len(events_in(out)) > 200, timeout=60,
                   what="changes streamed before the failover")
        pair.fail_over()
        # Writes go on on the promoted standby.
        promoted = Database(pair.standby, "app")
        before = writer.next_id
        wait_until(lambda: writer.next_id > before + 100, timeout=120,
                   what="writes on the promoted standby")
        writer.stop()
        want = table_rows(promoted)

        def caught_up():
            assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
            return replay(events_in(out)) == want
        wait_until(caught_up, timeout=120, interval=0.5,
                   what="the file sink to hold the promoted standby's table")
        wait_until(lambda: index_rows(node, index) == want, timeout=120,
                   interval=0.5, what="the index to equal the table")
        assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-4000:]
        events = read_jsonl(out)
        assert_positions_increase(events)
        inserts = [e["after"]["id"] for e in events if e["op"] == "insert"]
        assert len(inserts) == len(set(inserts)), "an insert twice"
        stderr = pgspout.stderr_of(proc)
        assert "reconnecting" in stderr
        return len(want), writer.failures
    finally:
        if writer is not None and writer.is_alive():
            writer.stop()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        pair.stop()


@pytest.mark.slow
@pytest.mark.since(17)
def test_failover_follows_the_promoted_standby(pgver, pgspout, tmp_path,
                                               opensearch):
    runs = fs.count(1, 10)
    for i in range(runs):
        run_dir = tmp_path / ("run%d" % i)
        run_dir.mkdir()
        index = "failover-%d-%d-%d" % (pgver, os.getpid(), i)
        rows, failures = fail_over_once(pgver, pgspout, run_dir, opensearch,
                                        index)
        print("run %d: %d rows, %d writes failed over" % (i, rows, failures))


def test_failover_needs_postgresql_17(db, pgspout, tmp_path):
    """On 15 (the full suite's server): refused before anything is made."""
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--create-slot",
                    "--failover", "--sink", "file", "-o",
                    "path=%s" % (tmp_path / "out.jsonl"))
    assert r.returncode == 1, r.stderr
    assert "--failover needs PostgreSQL 17 or later" in r.stderr
    assert db.scalar("select count(*) from pg_replication_slots where "
                     "slot_name = '%s'" % db.name) == "0"


@pytest.mark.since(17)
def test_existing_slot_made_a_failover_slot(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    assert db.scalar("select failover from pg_replication_slots where "
                     "slot_name = '%s'" % db.name) == "f"
    db.psql("insert into t values (1);")
    out = str(tmp_path / "out.jsonl")
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--failover",
                    "--sink", "file", "-o", "path=" + out, "--endpos",
                    db.current_lsn())
    assert r.returncode == 0, r.stderr
    assert 'replication slot "%s" is now a failover slot' % db.name \
        in r.stderr
    assert db.scalar("select failover from pg_replication_slots where "
                     "slot_name = '%s'" % db.name) == "t"
    assert [e["op"] for e in read_jsonl(out)] == ["schema", "insert"]
