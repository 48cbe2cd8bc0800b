"""pgspout backfill against a running pgspout: --wait returns 0 once the
copy is done (its read events in the sink), 1 when the daemon refuses the
request (a table its own filter leaves out); a request emitted while the
daemon is down waits in the WAL, --status lists it as pending, and the
daemon copies it when it starts; --status prints the status table."""

import json
import re
import shutil

import pytest

from pgharness import read_jsonl, wait_until


def setup(db):
    db.psql("""
        create table orders (id int primary key, note text, qty int);
        insert into orders select g, 'o' || g, g from generate_series(1, 500) g;
        create table other (id int primary key);
        insert into other select generate_series(1, 50);
        create publication pgspout for all tables;
    """)
    db.psql("select pg_create_logical_replication_slot('%s', 'pgoutput');"
            % db.name)


def daemon_config(tmp_path, db, out, include=None, extra=""):
    path = tmp_path / "pgspout.conf"
    path.write_text(
        'connection = %s;\nslot = "%s";\nstate_dir = %s;\n'
        'backfill_chunk_rows = 100;\nstatus_interval = 1;\n%s%s'
        'sinks = ({ name = "file"; type = "file"; '
        'options = { path = %s; fsync = false; }; });\n'
        % (json.dumps(db.conninfo), db.name,
           json.dumps(str(tmp_path / "state")),
           "include = %s;\n" % json.dumps(include) if include else "",
           extra, json.dumps(out)))
    return str(path)


def backfill(pgspout, db, *args, timeout=120):
    return pgspout.run("backfill", "-d", db.conninfo, "--slot", db.name,
                       *args, timeout=timeout)


def reads_of(events, backfill_id):
    return [e for e in events if e["op"] == "read"
            and e["snapshot"]["id"] == backfill_id]


@pytest.mark.all_versions
def test_wait_returns_when_done(db, pgspout, tmp_path):
    setup(db)
    out = str(tmp_path / "out.jsonl")
    proc = pgspout.spawn("-c", daemon_config(tmp_path, db, out))
    try:
        wait_until(lambda: db.slot_info(db.name)["active"], 30,
                   "pgspout streaming")
        db.psql("update orders set note = 'changed' where id <= 10;")
        r = backfill(pgspout, db, "-t", "orders", "--where", "id > 100",
                     "--wait")
        assert r.returncode == 0, r.stderr
        backfill_id = r.stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{16}", backfill_id)
        assert "backfill %s done: 400 rows copied" % backfill_id in r.stderr
        # Done means durable in every sink and confirmed: the file holds
        # every copied row already.
        events = read_jsonl(out)
        reads = reads_of(events, backfill_id)
        assert sorted(e["after"]["id"] for e in reads) == \
            list(range(101, 501))
        assert all(e["table"] == "orders" for e in reads)

        status = backfill(pgspout, db, "--status")
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert "streamed by pid" in lines[0]
        rows = [l.split() for l in lines if l.startswith(backfill_id)]
        assert [r[1:4] for r in rows] == [["*", "done", "400"],
                                         ["public.orders", "done", "400"]]
    finally:
        assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-4000:]


def test_wait_fails_when_the_daemon_refuses(db, pgspout, tmp_path):
    setup(db)
    out = str(tmp_path / "out.jsonl")
    # The daemon streams `other` only; the publication has both tables, so
    # the client's checks pass and the daemon refuses the request.
    proc = pgspout.spawn("-c", daemon_config(tmp_path, db, out,
                                             include=["other"]))
    try:
        r = backfill(pgspout, db, "-t", "orders", "--wait")
        assert r.returncode == 1, r.stderr
        backfill_id = r.stdout.strip()
        assert "backfill %s failed: " % backfill_id in r.stderr
        assert "public.orders" in r.stderr
        status = backfill(pgspout, db, "--status")
        assert re.search(r"^%s +\* +failed" % backfill_id, status.stdout,
                         re.M), status.stdout
        assert "    error: " in status.stdout
        # Nothing was copied, and the stream goes on.
        assert reads_of(read_jsonl(out), backfill_id) == []
        db.psql("insert into other values (1000);")
        wait_until(lambda: any(e["op"] == "insert" for e in read_jsonl(out)),
                   60, "the insert to stream")
    finally:
        assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-4000:]


def test_request_waits_in_the_wal(db, pgspout, tmp_path):
    setup(db)
    out = str(tmp_path / "out.jsonl")
    first = backfill(pgspout, db, "-t", "orders", "--where", "id <= 50")
    second = backfill(pgspout, db, "-t", "other")
    assert first.returncode == 0 and second.returncode == 0
    ids = [first.stdout.strip(), second.stdout.strip()]
    status = backfill(pgspout, db, "--status")
    pending = [l.split()[0] for l in status.stdout.splitlines()
               if l.split()[2:3] == ["pending"]]
    assert pending == ids, status.stdout

    proc = pgspout.spawn("-c", daemon_config(tmp_path, db, out))
    try:
        def done(backfill_id):
            assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
            try:
                return db.scalar(
                    "select state from pgspout_backfill_status where slot = "
                    "'%s' and id = '%s' and table_name = '*'"
                    % (db.name, backfill_id)) == "done"
            except AssertionError:
                return False  # no status table yet
        for backfill_id in ids:
            wait_until(lambda: done(backfill_id), 120,
                       "backfill %s to be done" % backfill_id)
        events = read_jsonl(out)
        assert len(reads_of(events, ids[0])) == 50
        assert len(reads_of(events, ids[1])) == 50
        status = backfill(pgspout, db, "--status")
        assert "pending" not in status.stdout
        for backfill_id in ids:
            assert re.search(r"^%s +\* +done +50 " % backfill_id,
                             status.stdout, re.M), status.stdout
    finally:
        assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-4000:]


def test_wait_ends_when_the_state_is_lost(db, pgspout, tmp_path):
    """The state directory lost while a backfill copies, after the slot
    confirmed its request: no run copies it again, so its status rows must
    not stay "copying" (a --wait started before would wait for ever): the
    next run marks them failed, and new requests work as before. The status
    table is made as an earlier pgspout made it (no request_lsn)."""
    setup(db)
    db.psql("create unlogged table pgspout_backfill_status (slot text not "
            "null, id text not null, table_name text not null, state text "
            "not null, rows_copied bigint not null default 0, rows_estimated "
            "bigint, error text, requested_at timestamptz, updated_at "
            "timestamptz not null default now(), primary key (slot, id, "
            "table_name));")
    out = str(tmp_path / "out.jsonl")
    conf = daemon_config(tmp_path, db, out,
                         extra="backfill_max_rows_per_sec = 40;\n")
    proc = pgspout.spawn("-c", conf)
    waiter = None
    try:
        wait_until(lambda: db.slot_info(db.name)["active"], 30,
                   "pgspout streaming")
        waiter = pgspout.spawn("backfill", "-d", db.conninfo, "--slot",
                               db.name, "-t", "orders", "--wait")

        def copying():
            try:
                return db.scalar(
                    "select rows_copied from pgspout_backfill_status where "
                    "table_name = '*' and state = 'copying'") not in (None, "0")
            except AssertionError:
                return False  # no status table yet
        wait_until(copying, 60, "the copy to be under way")
        after_request = db.current_lsn()
        wait_until(lambda: db.scalar(
            "select confirmed_flush_lsn >= '%s' from pg_replication_slots "
            "where slot_name = '%s'" % (after_request, db.name)) == "t", 60,
            "the slot to confirm past the request")
        proc.kill()
        proc.wait()
        shutil.rmtree(str(tmp_path / "state"))
        proc = pgspout.spawn("-c", conf)
        assert waiter.wait(timeout=60) == 1, pgspout.stderr_of(waiter)
        assert "forgotten: pgspout's state directory no longer holds this " \
            "backfill" in pgspout.stderr_of(waiter)
        status = backfill(pgspout, db, "--status")
        assert re.search(r"^[0-9a-f]{16} +public.orders +failed",
                         status.stdout, re.M), status.stdout
        assert "copying" not in status.stdout, status.stdout
        assert "marked failed" in pgspout.stderr_of(proc)
        # A new request is copied as usual.
        r = backfill(pgspout, db, "-t", "other", "--wait")
        assert r.returncode == 0, r.stderr
    finally:
        if waiter and waiter.poll() is None:
            waiter.kill()
            waiter.wait()
        assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-4000:]
