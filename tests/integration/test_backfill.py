"""Snapshots and backfills into the file sink (README "Snapshot and
backfill"): the initial snapshot of tables of every shape while a workload
inserts, updates, deletes and changes keys in all of them; backfills
requested while pgspout streams (a second one for the same table while the
first runs, partitions under publish_via_partition_root = false); requests
the daemon refuses; --snapshot only; the confirmation held at an open low
watermark and the xmin age of pgspout's connections while it copies.

The oracle is the table itself: replaying the file sink's events per key
(read = insert; unchanged TOASTed values kept from the row before) must
give exactly its rows, every value as its events encode it."""

import json
import os
import re
import subprocess
import time

import pytest

import backfill_support as bs
import faults_support as fs
from pgharness import (assert_positions_increase, psql_env, read_jsonl,
                       wait_until)


def initial_id(db, slot):
    """The id of the slot's initial backfill, once its request is known."""
    def find():
        if not bs.status_table_exists(db):
            return None
        return db.scalar("select id from pgspout_backfill_status where slot "
                         "= '%s' and id like 'initial-%%' limit 1" % slot)
    return wait_until(find, timeout=120, what="the initial backfill",
                      interval=0.2)


def check_status_counts(st, events, backfill):
    """Every table done, its rows_copied the read events the file holds."""
    assert st["*"][0] == "done", st
    for name, (state, copied, error) in st.items():
        if name == "*":
            continue
        table = name.split(".", 1)[1]
        assert (state, error) == ("done", None), (name, state, error)
        assert copied == len(bs.reads(events, table, backfill)), name


def initial_snapshot_under_workload(db, pgspout, tmp_path, chunk_rows=300,
                                    extra="", args=()):
    """The initial snapshot of every table shape while the workload runs:
    the replay equals each table, no read event twice, chunks well formed.
    Returns the events and pgspout's stderr."""
    bs.setup_tables(db, n=4000)
    out = str(tmp_path / "out.jsonl")
    conf = bs.write_config(tmp_path, db, "s1", out, extra=(
        "create_slot = true;\nbackfill_chunk_rows = %d;\n"
        "backfill_workers = 2;\n%s" % (chunk_rows, extra)))
    work = bs.workload(db, str(tmp_path), n=4000, rate=120)
    try:
        proc = pgspout.spawn("-c", conf, *args)
        backfill = initial_id(db, "s1")
        st = bs.wait_backfill(db, "s1", backfill, proc, pgspout)
        time.sleep(1)  # changes after the copy stream on
    finally:
        work.stop()
    bs.drain(db, "s1", proc, pgspout)

    events = read_jsonl(out)
    assert_positions_increase(events)
    bs.assert_reads_once(events)
    sizes = bs.assert_replay_matches(db, events)
    assert min(sizes.values()) > 0
    for table in bs.KEYS:
        bs.assert_chunks_well_formed(events, backfill, table)
    check_status_counts(st, events, backfill)
    # The workload ran during the copy: its changes sit between chunks.
    reads = [i for i, e in enumerate(events) if e["op"] == "read"]
    changes = [i for i, e in enumerate(events)
               if e["op"] in ("insert", "update", "delete")]
    assert any(reads[0] < i < reads[-1] for i in changes)
    # Partitions under publish_via_partition_root = true (what
    # --create-slot makes) are read as their root, and named so.
    assert not {e["table"] for e in events} & set(bs.LEAVES)
    stderr = pgspout.stderr_of(proc)
    assert "copying public.orders" in stderr
    assert "chunks by ctid ranges" in stderr  # heap_full
    assert "chunks by unique index nopk_a (a)" in stderr
    assert not [f for f in os.listdir(bs.state_dir(tmp_path))
                if f.endswith(".spill")]
    return events, stderr


@pytest.mark.all_versions
def test_initial_snapshot_under_workload(db, pgspout, tmp_path):
    initial_snapshot_under_workload(db, pgspout, tmp_path)


def test_initial_snapshot_read_by_three_connections(db, pgspout, tmp_path):
    """backfill_chunk_readers = 3: each 600-row chunk (3 blocks of
    heap_full) is cut into three pieces read at once in the worker's
    exported snapshot; the outcome is exactly that of one reader, and a
    chunk's rows stay in key order."""
    events, stderr = initial_snapshot_under_workload(
        db, pgspout, tmp_path, chunk_rows=600,
        extra="backfill_chunk_readers = 3;\n",
        args=("-v",))
    # Every table shape was cut: integer, composite ICU text and unique
    # index keys, a partitioned root, ctid ranges.
    for table in ("orders", "accounts", "nopk", "events_part", "heap_full"):
        assert re.search(r"chunk \d+ of public\.%s read by 3 connections"
                         % table, stderr), table
    ids = {}
    for e in events:
        if e["op"] == "read" and e["table"] == "orders":
            ids.setdefault(e["snapshot"]["chunk"], []).append(e["after"]["id"])
    assert len(ids) > 5, ids.keys()
    for chunk, keys in ids.items():
        assert keys == sorted(keys) and len(set(keys)) == len(keys), chunk


def start_streaming(db, pgspout, tmp_path, out, via_root, extra=""):
    """A publication of every table and a slot made beforehand (so nothing
    is copied unless requested), then pgspout streaming."""
    db.psql("create publication pgspout for all tables with "
            "(publish_via_partition_root = %s);" % via_root)
    db.psql("select pg_create_logical_replication_slot('s1', 'pgoutput');")
    conf = bs.write_config(tmp_path, db, "s1", out, extra=extra)
    return pgspout.spawn("-c", conf)


@pytest.mark.all_versions
def test_backfill_on_demand_while_streaming(db, pgspout, tmp_path):
    bs.setup_tables(db, n=4000)
    out = str(tmp_path / "out.jsonl")
    proc = start_streaming(db, pgspout, tmp_path, out, "false", extra=(
        "backfill_chunk_rows = 250;\nbackfill_max_rows_per_sec = 8000;\n"))
    work = bs.workload(db, str(tmp_path), n=4000, rate=120)
    try:
        bs.request(db, "s1", "b1", ["orders"])
        # The same table again while the first copy runs (b1 takes a
        # while: at most 8000 rows a second).
        bs.request(db, "s1", "b2", ["public.orders"])
        # Under publish_via_partition_root = false each partition is a
        # table of its own.
        bs.request(db, "s1", "b3", ["events_part"])
        st1 = bs.wait_backfill(db, "s1", "b1", proc, pgspout)
        st2 = bs.wait_backfill(db, "s1", "b2", proc, pgspout)
        st3 = bs.wait_backfill(db, "s1", "b3", proc, pgspout)
    finally:
        work.stop()
    bs.drain(db, "s1", proc, pgspout)

    events = read_jsonl(out)
    assert_positions_increase(events)
    bs.assert_reads_once(events)
    assert set(st1) == set(st2) == {"*", "public.orders"}
    assert set(st3) == {"*"} | {"public." + leaf for leaf in bs.LEAVES}
    # The backfilled tables: rows copied, then kept up to date.
    bs.assert_replay_matches(db, events, ["orders"] + bs.LEAVES)
    check_status_counts(st1, events, "b1")
    check_status_counts(st2, events, "b2")
    check_status_counts(st3, events, "b3")
    first_b2 = min(i for i, e in enumerate(events) if e["op"] == "read"
                   and e["snapshot"]["id"] == "b2")
    first_b1 = min(i for i, e in enumerate(events) if e["op"] == "read"
                   and e["snapshot"]["id"] == "b1")
    assert first_b1 < first_b2
    # The others only streamed (nothing copied), and did all along.
    assert {e["table"] for e in bs.reads(events)} == {"orders"} | set(
        bs.LEAVES)
    assert [e for e in events if e["table"] == "accounts"
            and e["op"] == "update"]


def test_request_copies_what_its_patterns_select(db, pgspout, tmp_path):
    """-t and -T as the daemon applies them: every published table that
    an include pattern selects and no exclude pattern names."""
    for table in ("keep1", "keep2", "skip_a", "skip_b"):
        db.psql("create table %s (id int primary key);"
                "insert into %s select generate_series(1, 10);"
                % (table, table))
    out = str(tmp_path / "out.jsonl")
    proc = start_streaming(db, pgspout, tmp_path, out, "false")
    bs.request(db, "s1", "b1", ["public.*"], exclude=["skip_*"])
    st = bs.wait_backfill(db, "s1", "b1", proc, pgspout)
    bs.drain(db, "s1", proc, pgspout)
    assert set(st) == {"*", "public.keep1", "public.keep2"}
    reads = bs.reads(read_jsonl(out), backfill="b1")
    assert sorted((e["table"], e["after"]["id"]) for e in reads) == sorted(
        (t, i) for t in ("keep1", "keep2") for i in range(1, 11))


def test_refused_requests_touch_nothing(db, pgspout, tmp_path):
    bs.setup_tables(db, n=400)
    out = str(tmp_path / "out.jsonl")
    proc = start_streaming(db, pgspout, tmp_path, out, "true",
                           extra='exclude = ["heap_full"];\n')
    bs.request(db, "s1", "r1", ["heap_full"])  # excluded by -T
    bs.request(db, "s1", "r2", ["no_such_table"])
    bs.request(db, "s1", "r3", ["orders", "nope_*"])  # half of it unknown
    bs.request(db, "other_slot", "r4", ["orders"])  # not ours
    db.psql("select pg_logical_emit_message(true, 'pgspout', 'not json');")
    # A hand-written WHERE that closes the chunk's query and runs
    # statements of its own (sent as one simple query it would drop the
    # table): refused as it arrives, the table and the stream untouched.
    bs.request(db, "s1", "r5", ["nopk"], where=(
        "true) LIMIT 1) TO STDOUT; COMMIT; DROP TABLE nopk; "
        "COPY (SELECT 1 AS a WHERE (true"))
    # Malformed with no valid id: nothing to report it under but the log.
    db.psql("select pg_logical_emit_message(true, 'pgspout', "
            "'{\"type\":\"backfill\",\"slot\":\"s1\",\"id\":\"a b\"}');")
    # A WHERE the server refuses when the chunk is read.
    bs.request(db, "s1", "r7", ["nopk"], where="no_such_column > 0")
    # After all that, a valid request (its WHERE with a comment) is
    # copied: the failures left nothing behind on the connections.
    bs.request(db, "s1", "r6", ["orders"],
               where="customer = 7 -- one customer\n")
    r1 = bs.wait_backfill(db, "s1", "r1", proc, pgspout, want="failed")
    r2 = bs.wait_backfill(db, "s1", "r2", proc, pgspout, want="failed")
    r3 = bs.wait_backfill(db, "s1", "r3", proc, pgspout, want="failed")
    r7 = bs.wait_backfill(db, "s1", "r7", proc, pgspout, want="failed")
    r5 = bs.wait_backfill(db, "s1", "r5", proc, pgspout, want="failed")
    r6 = bs.wait_backfill(db, "s1", "r6", proc, pgspout)
    db.psql("insert into orders (id, customer) values (-1, 7);")
    bs.drain(db, "s1", proc, pgspout)

    assert "filters exclude (public.heap_full)" in r1["*"][2]
    assert ('pattern "no_such_table" matches no table that publication '
            '"pgspout" publishes') in r2["*"][2]
    assert '"nope_*" matches no table' in r3["*"][2]
    assert set(r1) == set(r2) == set(r3) == {"*"}
    assert bs.status(db, "other_slot", "r4") == {}
    assert set(r5) == {"*"} and ("\"where\" has a ')' that closes more "
                                 "than it opened") in r5["*"][2], r5
    assert '"no_such_column" does not exist' in r7["public.nopk"][2], r7
    assert r7["*"][0] == "failed"
    assert db.scalar("select count(*) from nopk") == "100"
    assert r6["*"][0] == r6["public.orders"][0] == "done"
    events = read_jsonl(out)
    copied = bs.reads(events)
    assert copied and {e["snapshot"]["id"] for e in copied} == {"r6"}
    assert {e["after"]["customer"] for e in copied} == {7}
    assert len(copied) == r6["public.orders"][1] == int(db.scalar(
        "select count(*) from orders where customer = 7 and id > 0"))
    assert [e["after"]["id"] for e in events if e["op"] == "insert"] == [-1]
    stderr = pgspout.stderr_of(proc)
    assert "backfill r1 failed" in stderr and "backfill r3 failed" in stderr
    assert "ignoring a pgspout message that is not JSON" in stderr
    assert "backfill r5 failed: backfill request: \"where\" has a ')'" in stderr
    assert ("ignoring a malformed backfill request (backfill request: "
            "\"id\" must be") in stderr


@pytest.mark.all_versions
def test_snapshot_only_exits_once_confirmed(db, pgspout, tmp_path):
    bs.setup_tables(db, n=2000)
    out = str(tmp_path / "out.jsonl")
    state = bs.state_dir(tmp_path)
    args = ["-d", db.conninfo, "--slot", "s1", "--create-slot", "--snapshot",
            "only", "--state-dir", state, "--backfill-chunk-rows", "400",
            "--sink", "file", "-o", "path=" + out]
    r = pgspout.run(*args, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "the snapshot is done" in r.stderr
    events = read_jsonl(out)
    assert {e["op"] for e in events} == {"schema", "read"}
    bs.assert_replay_matches(db, events)
    confirmed = fs.slot_state(db, "s1")[1]
    last_commit = max(fs.lsn_to_int(e["commit_lsn"]) for e in events)
    assert confirmed > last_commit, "the copy was not all confirmed"
    backfill = events[-1]["snapshot"]["id"]
    assert bs.status(db, "s1", backfill)["*"][0] == "done"
    assert not [f for f in os.listdir(state) if f.endswith(".spill")]

    # Again on the same slot: the initial copy is done, nothing to copy.
    db.psql("update orders set note = 'later' where id = 1;")
    r = pgspout.run(*args, timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    later = read_jsonl(out)[len(events):]
    assert not bs.reads(later)


def test_confirmation_held_at_open_low_watermark(db, pgspout, tmp_path):
    """While a chunk's read events are not durable, the slot is never
    confirmed past its low watermark, however much after it is; and no
    pgspout connection holds an xmin back for longer than a chunk."""
    bs.setup_tables(db, n=20000)
    db.psql("create publication pgspout for all tables with "
            "(publish_via_partition_root = true);")
    bs.create_observer(db)
    db.psql("select pg_create_logical_replication_slot('s1', 'pgoutput');")
    out = str(tmp_path / "out.jsonl")
    conf = bs.write_config(tmp_path, db, "s1", out, extra=(
        "backfill_chunk_rows = 2000;\nbackfill_max_rows_per_sec = 6000;\n"))
    work = bs.workload(db, str(tmp_path), n=20000, rate=250, clients=3)
    try:
        proc = pgspout.spawn("-c", conf, "-v")
        xid_before = int(db.scalar("select txid_current()"))
        sampler = bs.XminSampler(db)
        bs.request(db, "s1", "x1", ["orders"])
        bs.wait_backfill(db, "s1", "x1", proc, pgspout)
        max_age = sampler.stop()
        xids = int(db.scalar("select txid_current()")) - xid_before
    finally:
        work.stop()
    bs.drain(db, "s1", proc, pgspout)
    assert bs.status(db, "s1", "x1")["*"][0] == "done"

    marks, others = bs.watermarks(db)
    events = read_jsonl(out)
    # The chunks whose rows went out (a chunk found stale at its high
    # watermark sends nothing and lets go at once): their read events
    # carry the high watermark transaction's commit LSN.
    sent = {fs.lsn_to_int(e["commit_lsn"]) for e in bs.reads(events)}
    lows = {tok: commit for kind, tok, commit, _ in marks if kind == "lw"}
    highs = {}
    for kind, tok, commit, end in marks:
        if kind == "hw" and commit in sent:
            highs.setdefault(tok, end)
    windows = [(lows[t], highs[t]) for t in highs if t in lows]
    assert len(windows) >= 10, windows
    confirmed = bs.confirmations(pgspout.stderr_of(proc))
    inside = [(c, w) for c in confirmed for w in windows if w[0] < c < w[1]]
    assert not inside, "confirmed past an open low watermark: %s" % inside[:3]
    # It could have: transactions ended inside windows, and were durable
    # before the chunk was.
    within = [c for c in others for w in windows if w[0] < c < w[1]]
    assert len(within) >= 5, "too few transactions inside windows"
    bs.assert_replay_matches(db, events, ["orders"])
    # No xmin held for anything like the copy's length.
    print("xmin age: max %d over %d samples (%d with a pgspout xmin); %d "
          "xids during the copy" % (max_age, sampler.samples, sampler.seen,
                                    xids))
    assert xids > 200
    assert max_age < xids / 4, (max_age, xids)


class AdvisoryLock:
    """An exclusive advisory lock held by a psql session of its own until
    release(): a chunk read whose condition takes the same lock (shared)
    waits for it, after its snapshot was taken."""

    def __init__(self, db, number):
        self.db = db
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.conninfo],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            env=psql_env())
        self.proc.stdin.write("select pg_advisory_lock(%d);\n" % number)
        self.proc.stdin.flush()
        wait_until(lambda: self.waiters(granted=True) > 0,
                   what="the advisory lock")

    def waiters(self, granted=False):
        return int(self.db.scalar(
            "select count(*) from pg_locks where locktype = 'advisory' and "
            "granted = %s" % ("true" if granted else "false")))

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def copy_through_a_gate(db, pgspout, tmp_path, chunk_rows, sql):
    """Backfills orders in chunks of chunk_rows while streaming; the read
    of row 150 waits on an advisory lock after its chunk's snapshot was
    taken, and sql commits meanwhile, inside that chunk's window,
    deterministically. Returns (proc, out) once the copy is done and
    drained."""
    db.psql("""
create function gate(k bigint) returns boolean language plpgsql as $$
begin
    if k = 150 then
        perform pg_advisory_xact_lock_shared(4242);
    end if;
    return true;
end $$;""")
    out = str(tmp_path / "out.jsonl")
    proc = start_streaming(db, pgspout, tmp_path, out, "true", extra=(
        "backfill_chunk_rows = %d;\n" % chunk_rows))
    gate = AdvisoryLock(db, 4242)
    try:
        bs.request(db, "s1", "k1", ["orders"], where="gate(id)")
        wait_until(lambda: gate.waiters() > 0, timeout=120,
                   what="the chunk read to wait at row 150")
        db.psql(sql)
    finally:
        gate.release()
    bs.wait_backfill(db, "s1", "k1", proc, pgspout)
    bs.drain(db, "s1", proc, pgspout)
    return proc, out


def test_key_moved_past_the_chunk_is_read(db, pgspout, tmp_path):
    """A row whose key an update moves past the end of the chunk being read
    (an update that leaves its TOASTed value out: the stream never carries
    that value) while the chunk is read: the chunk drops the row, and the
    copy must read the row at its new key afterwards, or the sink never
    gets the value. The chunk read waits on an advisory lock after its
    snapshot was taken, so the update commits inside its window,
    deterministically."""
    bs.setup_tables(db, n=300)
    # Only the read of row 150 waits: every chunk read evaluates it.
    # Row 20 has a TOASTed `big`: the update's event lacks it.
    proc, out = copy_through_a_gate(
        db, pgspout, tmp_path, 1000,
        "update orders set id = 900000 where id = 20;")
    events = read_jsonl(out)
    moved = [e for e in events if e["table"] == "orders"
             and e["op"] == "update" and e["after"]["id"] == 900000]
    assert moved and moved[0]["unchanged_toast"] == ["big"], moved
    assert "are read again by key" in pgspout.stderr_of(proc)
    bs.assert_reads_once(events)
    bs.assert_chunks_well_formed(events, "k1", "orders")
    bs.assert_replay_matches(db, events, ["orders"])


def test_key_moved_behind_the_copy_is_read(db, pgspout, tmp_path):
    """An update that leaves a TOASTed value out and moves its row from the
    part of the table not copied yet to the part copied already: no range
    read reaches the new key, and the update's event lacks the value, so
    the row must be read at its new key. The second chunk's read waits on
    an advisory lock at row 150 (index scans only, so no other read meets
    that row), and the updates commit inside its window."""
    bs.setup_tables(db, n=300)
    db.psql("delete from orders where id = 15;"  # room for a row
            "alter database %s set enable_seqscan = off;" % db.name)
    # Rows 270, 280 and 290 have a TOASTed `big`. -5 and 15 are behind the
    # copy (in the first chunk's range); 1000 is ahead of it.
    proc, out = copy_through_a_gate(
        db, pgspout, tmp_path, 100,
        "update orders set id = -5 where id = 280;"
        "update orders set id = 15 where id = 290;"
        "update orders set id = 1000 where id = 270;")
    events = read_jsonl(out)
    for new in (-5, 15, 1000):
        moved = [i for i, e in enumerate(events) if e["table"] == "orders"
                 and e["op"] == "update" and e["after"]["id"] == new]
        assert moved and events[moved[0]]["unchanged_toast"] == ["big"]
        read = [i for i, e in enumerate(events) if e["op"] == "read"
                and e["table"] == "orders" and e["after"]["id"] == new]
        assert read and read[0] > moved[0], (new, read, moved)
        assert len(events[read[0]]["after"]["big"]) > 2000
    stderr = pgspout.stderr_of(proc)
    assert "moved a row to another key; the row is read again" in stderr
    bs.assert_reads_once(events)
    bs.assert_chunks_well_formed(events, "k1", "orders")
    bs.assert_replay_matches(db, events, ["orders"])


def state_of(tmp_path, table):
    """The table's entry in pgspout's state file."""
    with open(os.path.join(bs.state_dir(tmp_path), "backfill.state")) as f:
        state = json.load(f)
    return [t for b in state["backfills"] for t in b["tables"]
            if t["name"] == table][0]


def moved_keys(tmp_path):
    """The keys orders' state lists as moved behind the copy (saved as soon
    as an update moves a row there), as text."""
    return {m["key"][0] for m in state_of(tmp_path, "public.orders")["moved"]}


def keys_done(out, tmp_path, ids):
    """Rows ids of orders read, and the chunks that read them no longer in
    the state (done: durable in the sink, and the state saved so). The
    moved list may still hold those keys: a chunk whose window saw the
    update lists them again, limited to its own range, where they are not
    (that entry reads nothing); whether it is read before the kill depends
    on whether the worker takes it before the range that waits."""
    reads = [e for e in bs.reads(read_jsonl(out), "orders")
             if e["after"]["id"] in ids]
    chunks = {e["snapshot"]["chunk"] for e in reads}
    pending = {c["n"] for c in state_of(tmp_path, "public.orders")["chunks"]}
    return {e["after"]["id"] for e in reads} == set(ids) and \
        not chunks & pending


def test_moved_key_read_once_across_a_replay(db, pgspout, tmp_path,
                                            monkeypatch):
    """A row moved behind the copy is read at its new key; when pgspout is
    then killed while another table's chunk still holds the confirmation
    before the update, the restart replays the update, which must not have
    the row read a second time. Another table's read (worker 2) waits at
    row 150 all along; orders (worker 1) moves rows -5 and 15 behind its
    copy while its second chunk waits at row 150, reads them in a chunk of
    keys, and waits at row 250 when pgspout is killed. Nothing here waits
    for a timer: every step waits for the state it needs (the moved keys
    noted before the second chunk goes on, the chunk of keys done), and
    pgspout is killed long before the held read would be given up (a read
    the server sends nothing for 60 s), which would let the confirmation
    pass the update."""
    bs.setup_tables(db, n=300)
    monkeypatch.setitem(bs.ALL_KEYS, "hold", ["id"])
    db.psql("""
delete from orders where id = 15;
alter database %s set enable_seqscan = off;
create table hold (id bigint primary key);
insert into hold select generate_series(1, 300);
create function gate_at(k bigint, at bigint, lock bigint) returns boolean
language plpgsql as $$
begin
    if k = at then
        perform pg_advisory_xact_lock_shared(lock);
    end if;
    return true;
end $$;""" % db.name)
    out = str(tmp_path / "out.jsonl")
    conf_extra = "backfill_chunk_rows = 100;\nbackfill_workers = 2;\n"
    proc = start_streaming(db, pgspout, tmp_path, out, "true",
                           extra=conf_extra)
    conf = str(tmp_path / "pgspout.conf")
    holding, later = AdvisoryLock(db, 4243), AdvisoryLock(db, 4244)
    try:
        bs.request(db, "s1", "k2", ["hold"], where="gate_at(id, 150, 4243)")
        wait_until(lambda: holding.waiters() == 1, timeout=120,
                   what="the read of hold to wait at row 150")
        first = AdvisoryLock(db, 4242)
        try:
            bs.request(db, "s1", "k1", ["orders"],
                       where="gate_at(id, 150, 4242) and "
                             "gate_at(id, 250, 4244)")
            wait_until(lambda: first.waiters() == 2, timeout=120,
                       what="the read of orders to wait at row 150")
            db.psql("update orders set id = -5 where id = 280;"
                    "update orders set id = 15 where id = 290;")
            # Noted before the second chunk is read to its end: the worker
            # then reads them in the chunk of keys it takes next, not after
            # the range that waits at row 250.
            wait_until(lambda: moved_keys(tmp_path) >= {"-5", "15"},
                       timeout=120, what="the moved keys noted")
        finally:
            first.release()
        wait_until(lambda: later.waiters() == 2, timeout=120,
                   what="the read of orders to wait at row 250")
        wait_until(lambda: keys_done(out, tmp_path, (-5, 15)), timeout=120,
                   what="the chunk of keys done")
        proc.kill()
        proc.wait()
        fs.wait_slot_free(db, "s1")
        # The held chunk of hold kept the confirmation before the update,
        # so the restart replays it (what read the rows twice before the
        # fix).
        update = [e for e in read_jsonl(out) if e["op"] == "update"][0]
        confirmed = fs.slot_state(db, "s1")[1]
        assert confirmed < fs.lsn_to_int(update["commit_lsn"]), \
            "the restart would not replay the update: confirmed %X" % confirmed
    finally:
        holding.release()
        later.release()
    proc = pgspout.spawn("-c", conf)
    bs.wait_backfill(db, "s1", "k2", proc, pgspout)
    bs.wait_backfill(db, "s1", "k1", proc, pgspout)
    bs.drain(db, "s1", proc, pgspout)
    events = read_jsonl(out)
    assert_positions_increase(events)
    bs.assert_reads_once(events)
    bs.assert_chunks_well_formed(events, "k1", "orders")
    bs.assert_replay_matches(db, events, ["orders", "hold"])


def test_ctid_chunks_of_a_partitioned_root_hold_chunk_rows(db, pgspout,
                                                          tmp_path):
    """A partitioned table without a usable unique index, copied through
    its root (publish_via_partition_root): each chunk reads the same block
    numbers of every partition, so a chunk's blocks are sized by the rows
    per block number over all of them, not per block of one."""
    db.psql("""
create table hp (a int not null, b text) partition by range (a);
create table hp1 partition of hp for values from (0) to (10000);
create table hp2 partition of hp for values from (10000) to (20000);
create table hp3 partition of hp for values from (20000) to (30000);
insert into hp select g, repeat('x', 40) from generate_series(0, 29999) g
    where g % 10000 < 3000;
analyze hp1; analyze hp2; analyze hp3;""")
    out = str(tmp_path / "out.jsonl")
    proc = start_streaming(db, pgspout, tmp_path, out, "true",
                           extra="backfill_chunk_rows = 1000;\n")
    bs.request(db, "s1", "c1", ["hp"])
    bs.wait_backfill(db, "s1", "c1", proc, pgspout)
    bs.drain(db, "s1", proc, pgspout)
    reads = bs.reads(read_jsonl(out), "hp", "c1")
    assert sorted(e["after"]["a"] for e in reads) == \
        [g for g in range(30000) if g % 10000 < 3000]
    per_chunk = {}
    for e in reads:
        per_chunk[e["snapshot"]["chunk"]] = \
            per_chunk.get(e["snapshot"]["chunk"], 0) + 1
    # About 1000 each (a block more or less per partition); before, every
    # chunk read 1000 rows' worth of blocks from each of the three.
    assert max(per_chunk.values()) < 1500, per_chunk
    assert len(per_chunk) >= 7, per_chunk


def test_partial_update_in_a_window_rereads_only_its_rows(db, pgspout,
                                                          tmp_path):
    """Updates that leave a TOASTed value out (REPLICA IDENTITY DEFAULT:
    the event lacks it) commit inside the window of the chunk that reads
    rows 101-200: one of a row of that chunk (hot: three times), one that
    moves a row from past the chunk to a free key inside it. The chunk is
    sent without those rows, which are read again by key after the
    updates, with their TOASTed value; the chunk is not read again whole
    (before, it was stale and the copy went back to its start)."""
    bs.setup_tables(db, n=300)
    # Incompressible, 4 kB: stored out of line.
    db.psql("update orders set big = (select string_agg(md5(random()::text),"
            " '') from generate_series(1, 128)) where id in (160, 290);"
            "delete from orders where id = 155;"
            "alter database %s set enable_seqscan = off;" % db.name)
    assert db.scalar("select pg_column_size(big) > 2000 from orders "
                     "where id = 160") == "t"
    proc, out = copy_through_a_gate(
        db, pgspout, tmp_path, 100,
        "update orders set note = 'hot 1' where id = 160;"
        "update orders set note = 'hot 2' where id = 160;"
        "update orders set note = 'hot 3', amount = 7 where id = 160;"
        "update orders set id = 155 where id = 290;")
    events = read_jsonl(out)
    for key, note in ((160, "hot 3"), (155, "note 290")):
        updates = [i for i, e in enumerate(events) if e["op"] == "update"
                   and e["table"] == "orders" and e["after"]["id"] == key]
        assert updates and all(events[i]["unchanged_toast"] == ["big"]
                               for i in updates), updates
        read = [i for i, e in enumerate(events) if e["op"] == "read"
                and e["table"] == "orders" and e["after"]["id"] == key]
        assert len(read) == 1 and read[0] > updates[-1], (key, read, updates)
        row = events[read[0]]["after"]
        assert row["note"] == note and len(row["big"]) == 4096, row
    # The chunk went out once, without the two rows: the others of its
    # range are in one chunk, the second.
    chunks = {e["snapshot"]["chunk"] for e in bs.reads(events, "orders")
              if 100 < e["after"]["id"] <= 200
              and e["after"]["id"] not in (155, 160)}
    assert chunks == {2}, chunks
    stderr = pgspout.stderr_of(proc)
    assert "must be read again" not in stderr
    assert "2 rows updated without their unchanged TOASTed values while " \
        "it was read are read again by key" in stderr
    bs.assert_reads_once(events)
    bs.assert_chunks_well_formed(events, "k1", "orders")
    bs.assert_replay_matches(db, events, ["orders"])


def test_rows_to_read_again_survive_a_kill(db, pgspout, tmp_path):
    """pgspout is killed (SIGKILL) while the chunk of keys that reads a
    row again after an update left it without its TOASTed value is being
    read: the key is in the state file, so the next run reads it (once,
    after a replay of the chunk that listed it, if that chunk was not done
    yet), and the sink ends with the whole row. The chunk read of rows
    101-200 waits at row 150 as in copy_through_a_gate; the read of row
    160 waits too once gate_armed names it, which the chunk's snapshot
    does not see and the chunk of keys' does."""
    bs.setup_tables(db, n=300)
    db.psql("""
update orders set big = (select string_agg(md5(random()::text), '')
                         from generate_series(1, 128)) where id = 160;
alter database %s set enable_seqscan = off;
create table gate_armed (k bigint primary key);
create function gate(k bigint) returns boolean language plpgsql as $$
begin
    if k = 150 then
        perform pg_advisory_xact_lock_shared(4242);
    end if;
    if exists (select 1 from gate_armed a where a.k = gate.k) then
        perform pg_advisory_xact_lock_shared(4243);
    end if;
    return true;
end $$;
create publication pgspout for all tables;
select pg_create_logical_replication_slot('s1', 'pgoutput');""" % db.name)
    out = str(tmp_path / "out.jsonl")
    conf = bs.write_config(tmp_path, db, "s1", out,
                           extra="backfill_chunk_rows = 100;\n")
    proc = pgspout.spawn("-c", conf)
    def lock_4243(granted):
        return int(db.scalar(
            "select count(*) from pg_locks where locktype = 'advisory' and "
            "objid = 4243 and granted = %s" % granted))
    first, key_read = AdvisoryLock(db, 4242), AdvisoryLock(db, 4243)
    try:
        wait_until(lambda: lock_4243("true") > 0, what="the second lock")
        bs.request(db, "s1", "k1", ["orders"], where="gate(id)")
        wait_until(lambda: first.waiters() > 0, timeout=120,
                   what="the chunk read to wait at row 150")
        db.psql("update orders set note = 'hot 1' where id = 160;"
                "update orders set note = 'hot 2' where id = 160;"
                "insert into gate_armed values (160);")
        first.release()
        wait_until(lambda: lock_4243("false") > 0, timeout=120,
                   what="the read of row 160 by key to wait")
        proc.kill()
        proc.wait()
        first_run = pgspout.stderr_of(proc)
    finally:
        first.release()
        key_read.release()
    assert "are read again by key" in first_run
    fs.wait_slot_free(db, "s1")
    proc = pgspout.spawn("-c", conf)
    bs.wait_backfill(db, "s1", "k1", proc, pgspout)
    bs.drain(db, "s1", proc, pgspout)
    events = read_jsonl(out)
    updates = [i for i, e in enumerate(events) if e["op"] == "update"
               and e["table"] == "orders" and e["after"]["id"] == 160]
    assert len(updates) == 2 and all(
        events[i]["unchanged_toast"] == ["big"] for i in updates), updates
    read = [i for i, e in enumerate(events) if e["op"] == "read"
            and e["table"] == "orders" and e["after"]["id"] == 160]
    assert len(read) == 1 and read[0] > updates[-1], (read, updates)
    row = events[read[0]]["after"]
    assert row["note"] == "hot 2" and len(row["big"]) == 4096, row
    chunks = {e["snapshot"]["chunk"] for e in bs.reads(events, "orders")
              if 100 < e["after"]["id"] <= 200 and e["after"]["id"] != 160}
    assert chunks == {2}, chunks
    bs.assert_reads_once(events)
    bs.assert_chunks_well_formed(events, "k1", "orders")
    bs.assert_replay_matches(db, events, ["orders"])


def test_commit_not_yet_visible_is_waited_for(db, pgspout, tmp_path):
    """A transaction whose commit record is written but which other
    sessions cannot see yet (it waits for a synchronous standby, here one
    that never answers while the test holds it) is streamed before the
    chunk's low watermark, yet a snapshot taken right after the watermark
    would still see the row's older version, and the chunk would send it
    after the change. pgspout's low watermark waits for the standbys as
    long as any commit does, so the chunk is read after the transaction is
    visible. The test's own sessions commit without waiting (the
    database's synchronous_commit = local)."""
    bs.setup_tables(db, n=300)
    db.psql("alter database %s set synchronous_commit = local;" % db.name)
    out = str(tmp_path / "out.jsonl")
    proc = start_streaming(db, pgspout, tmp_path, out, "true")
    db.psql("alter system set synchronous_standby_names = 'nobody';"
            "select pg_reload_conf();")
    waiting = None

    def sync_waiters():
        return int(db.scalar("select count(*) from pg_stat_activity where "
                             "wait_event = 'SyncRep'"))
    try:
        waiting = subprocess.Popen(
            ["psql", "-X", "-q", "-d", db.conninfo, "-c",
             "set synchronous_commit = on; "
             "update orders set note = 'committed late' where id = 150;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=psql_env())
        wait_until(lambda: sync_waiters() == 1,
                   what="the update to wait for the standby")
        bs.request(db, "s1", "k1", ["orders"])
        # The low watermark waits too (before the fix, the copy was done
        # meanwhile, with the older version).
        wait_until(lambda: sync_waiters() == 2 or
                   bs.status(db, "s1", "k1").get("*", [None])[0] == "done",
                   timeout=120, what="the low watermark to wait as well")
    finally:
        db.psql("alter system reset synchronous_standby_names;"
                "select pg_reload_conf();")
        if waiting:
            waiting.wait(timeout=60)
    bs.wait_backfill(db, "s1", "k1", proc, pgspout)
    bs.drain(db, "s1", proc, pgspout)
    events = read_jsonl(out)
    update = [i for i, e in enumerate(events) if e["op"] == "update"]
    read = [i for i, e in enumerate(events) if e["op"] == "read"
            and e["table"] == "orders" and e["after"]["id"] == 150]
    assert len(update) == 1 and read and read[0] > update[0], (update, read)
    assert events[read[0]]["after"]["note"] == "committed late"
    bs.assert_reads_once(events)
    bs.assert_replay_matches(db, events, ["orders"])
