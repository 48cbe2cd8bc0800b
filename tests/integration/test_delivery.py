"""--create-slot, --endpos, clean stops and resume, kill -9 with exactly-once
delivery, and the slot's confirmed position following delivery."""

import os
import random
import signal
import threading
import time

import pytest

from pgharness import (assert_positions_increase, data_events, lsn_to_int,
                       read_jsonl, wait_until)


def stream_args(db, out, *extra):
    return ["-d", db.conninfo, "--slot", db.name, "--sink", "file",
            "-o", "path=%s" % out, "-s", "1"] + list(extra)


def file_events(path):
    """Complete lines only: the file may be mid-write."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return [line for line in text.split("\n")[:-1] if '"op":"schema"' not in
            line and '"op": "schema"' not in line]


def ids_in(events, table="t"):
    return [e["after"]["id"] for e in data_events(events, table)
            if e["op"] == "insert"]


def test_create_slot_creates_slot_and_publication(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key);")
    out = str(tmp_path / "out.jsonl")
    proc = pgspout.spawn(*stream_args(db, out, "--create-slot"))
    wait_until(lambda: (db.slot_info(db.name) or {}).get("active")
               or proc.poll() is not None, what="slot to be active")
    assert proc.poll() is None, pgspout.stderr_of(proc)
    assert db.scalar("select plugin from pg_replication_slots "
                     "where slot_name = '%s'" % db.name) == "pgoutput"
    assert db.scalar("select puballtables from pg_publication "
                     "where pubname = 'pgspout'") == "t"
    db.psql("insert into t values (1), (2);")
    wait_until(lambda: len(file_events(out)) >= 2, what="events in file")
    assert pgspout.stop(proc, signal.SIGINT) == 0, pgspout.stderr_of(proc)
    assert ids_in(read_jsonl(out)) == [1, 2]
    # With both existing, --create-slot just streams.
    db.psql("insert into t values (3);")
    r = pgspout.run(*stream_args(db, out, "--create-slot", "--endpos",
                                 db.current_lsn()))
    assert r.returncode == 0, r.stderr
    assert ids_in(read_jsonl(out)) == [1, 2, 3]


def test_create_slot_with_endpos_already_reached(db, pgspout, tmp_path):
    """Setting up before a workload: the new slot starts past endpos, so
    there is nothing to stream and pgspout stops at once."""
    out = str(tmp_path / "out.jsonl")
    r = pgspout.run(*stream_args(db, out, "--create-slot", "--endpos",
                                 db.current_lsn()), timeout=60)
    assert r.returncode == 0, r.stderr
    assert db.slot_info(db.name) is not None
    db.psql("create table t (id int primary key); insert into t values (1);")
    r = pgspout.run(*stream_args(db, out, "--endpos", db.current_lsn()))
    assert r.returncode == 0, r.stderr
    assert ids_in(read_jsonl(out)) == [1]


@pytest.mark.all_versions
def test_endpos(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key, v text);")
    db.create_slot(db.name)
    db.psql("insert into t select g, 'x' from generate_series(1, 100) g;")
    endpos = db.current_lsn()
    db.psql("insert into t values (1000, 'after endpos');")
    out = str(tmp_path / "out.jsonl")
    r = pgspout.run(*stream_args(db, out, "--endpos", endpos))
    assert r.returncode == 0, r.stderr
    events = read_jsonl(out)
    assert ids_in(events) == list(range(1, 101))
    for e in events:
        assert lsn_to_int(e["commit_lsn"]) <= lsn_to_int(endpos)
    confirmed = db.slot_info(db.name)["confirmed_flush_lsn"]
    assert lsn_to_int(confirmed) >= lsn_to_int(events[-1]["commit_lsn"])
    # what lies past endpos is still there for the next run
    r = pgspout.run(*stream_args(db, out, "--endpos", db.current_lsn()))
    assert r.returncode == 0, r.stderr
    assert ids_in(read_jsonl(out)) == list(range(1, 101)) + [1000]


@pytest.mark.all_versions
def test_resume_after_clean_stop(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key, v int);")
    db.create_slot(db.name)
    out = str(tmp_path / "out.jsonl")
    expected = []
    next_id = 1
    for round_no, sig in enumerate((signal.SIGTERM, signal.SIGINT)):
        for _ in range(5):
            db.psql("insert into t select g, %d from generate_series(%d, %d)"
                    " g;" % (round_no, next_id, next_id + 9))
            expected += range(next_id, next_id + 10)
            next_id += 10
        proc = pgspout.spawn(*stream_args(db, out))
        wait_until(lambda: len(file_events(out)) >= len(expected),
                   what="round %d delivered" % round_no)
        assert pgspout.stop(proc, sig) == 0, pgspout.stderr_of(proc)
    db.psql("update t set v = 9 where id = 1; delete from t where id = 2;")
    db.psql("insert into t values (999, 0);")
    expected.append(999)
    r = pgspout.run(*stream_args(db, out, "--endpos", db.current_lsn()))
    assert r.returncode == 0, r.stderr
    events = read_jsonl(out)
    assert_positions_increase(events)
    assert ids_in(events) == expected
    tail = [(e["op"], (e["after"] or e["before"] or {}).get("id"))
            for e in data_events(events)][-3:]
    assert tail == [("update", 1), ("delete", 2), ("insert", 999)]


class Workload(threading.Thread):
    """Many transactions of mixed sizes and kinds, run while pgspout is
    being killed."""

    def __init__(self, db, rng, batches):
        super().__init__(daemon=True)
        self.db, self.rng, self.batches = db, rng, batches
        self.error = None
        self.next_id = 1

    def run(self):
        try:
            next_id = 1
            for b in range(self.batches):
                statements = []
                for _ in range(self.rng.randint(1, 4)):
                    size = self.rng.choice([1, 1, 3, 10, 50, 400])
                    statements.append(
                        "insert into t select g, %d from generate_series(%d,"
                        " %d) g;" % (b, next_id, next_id + size - 1))
                    next_id += size
                    if next_id > 20 and self.rng.random() < 0.3:
                        victim = self.rng.randint(1, next_id - 1)
                        statements.append(
                            "update t set v = v + 1000 where id = %d;"
                            % victim)
                    if next_id > 20 and self.rng.random() < 0.2:
                        victim = self.rng.randint(1, next_id - 1)
                        statements.append("delete from t where id = %d;"
                                          % victim)
                if self.rng.random() < 0.5:
                    statements = ["begin;"] + statements + ["commit;"]
                self.db.psql("\n".join(statements))
                self.next_id = next_id
        except Exception as e:  # reported by the test
            self.error = e


def test_kill9_exactly_once(db, pgspout, tmp_path):
    seed = int(os.environ.get("PGSPOUT_TEST_SEED", time.time()))
    print("seed", seed)
    rng = random.Random(seed)
    db.psql("create table t (id int primary key, v int);"
            "alter table t replica identity full;")
    db.create_slot(db.name)
    out = str(tmp_path / "out.jsonl")
    work = Workload(db, rng, batches=120)
    work.start()
    kills = 0
    while work.is_alive() or kills < 5:
        # the killed process's walsender must notice before the slot is free
        wait_until(lambda: not db.slot_info(db.name)["active"],
                   what="slot released")
        proc = pgspout.spawn(*stream_args(db, out, "-o", "fsync=true"))
        time.sleep(rng.uniform(0.05, 0.8))
        if proc.poll() is not None:
            pytest.fail("pgspout exited %s early: %s"
                        % (proc.returncode, pgspout.stderr_of(proc)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if kills > 200:
            break
    work.join()
    assert work.error is None, work.error
    wait_until(lambda: not db.slot_info(db.name)["active"],
               what="slot released")
    r = pgspout.run(*stream_args(db, out, "--endpos", db.current_lsn()),
                    timeout=300)
    assert r.returncode == 0, r.stderr
    events = read_jsonl(out)
    assert_positions_increase(events)

    # Replaying the file must give exactly the table's final contents.
    model = {}
    inserted = []
    for e in data_events(events, "t"):
        if e["op"] == "insert":
            assert e["after"]["id"] not in model, "insert twice: %s" % e
            inserted.append(e["after"]["id"])
            model[e["after"]["id"]] = e["after"]["v"]
        elif e["op"] in ("update", "delete"):
            # A row missing here was deleted twice (a duplicate) or never
            # inserted (a lost event).
            old = e["before"]["id"]
            assert old in model, "%s of a row not in the stream: %s" % (
                e["op"], e)
            assert model[old] == e["before"]["v"], e
            if e["op"] == "update":
                model[e["after"]["id"]] = e["after"]["v"]
            else:
                del model[old]
    rows = {int(i): int(v) for i, v in db.query("select id, v from t")}
    assert model == rows
    assert sorted(inserted) == list(range(1, work.next_id))
    print("kills", kills, "events", len(events))


@pytest.mark.all_versions
def test_confirmed_flush_lsn_advances(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    start = lsn_to_int(db.slot_info(db.name)["confirmed_flush_lsn"])
    out = str(tmp_path / "out.jsonl")
    proc = pgspout.spawn(*stream_args(db, out))
    for batch in range(3):
        db.psql("insert into t values (%d);" % batch)
        wait_until(lambda: len(file_events(out)) > batch,
                   what="batch %d delivered" % batch)
        last_commit = lsn_to_int(read_jsonl(out)[-1]["commit_lsn"])
        wait_until(lambda: lsn_to_int(
            db.slot_info(db.name)["confirmed_flush_lsn"]) >= last_commit,
            what="confirmed_flush_lsn to reach the delivered commit")
    assert last_commit > start
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)
