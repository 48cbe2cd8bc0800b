"""Partitioned tables. The server sends a partition's changes under the
leaf partition's name when the publication has publish_via_partition_root
= false, and under its topmost published ancestor's name when true. -t/-T
judge a change with the partitioned tables above the relation it arrives
under; a filter that would select a partition apart from the root its
changes arrive under is refused, at start (exit 2) or when such a partition
appears while streaming (exit 1, nothing confirmed past it). Also ATTACH and
DETACH while streaming, TRUNCATE as the server sends it under each setting,
the publication --create-slot makes, and --list-tables."""

import os
import signal

import pytest

from pgharness import (assert_positions_increase, data_events, lsn_to_int,
                       read_jsonl, wait_until)

# Three levels: a range-partitioned root, range partitions, and hash or
# list sub-partitions (the leaves).
TREE = """
create table orders (id int not null, region text not null, at date not null,
                     qty int, primary key (id, region, at))
    partition by range (at);
create table orders_2024 partition of orders
    for values from ('2024-01-01') to ('2025-01-01') partition by hash (id);
create table orders_2024_h0 partition of orders_2024
    for values with (modulus 2, remainder 0);
create table orders_2024_h1 partition of orders_2024
    for values with (modulus 2, remainder 1);
create table orders_2025 partition of orders
    for values from ('2025-01-01') to ('2026-01-01') partition by list (region);
create table orders_2025_eu partition of orders_2025 for values in ('eu');
create table orders_2025_us partition of orders_2025 for values in ('us');
create table other (id int primary key);
"""
LEAVES = ["orders_2024_h0", "orders_2024_h1", "orders_2025_eu",
          "orders_2025_us"]
ROWS = {1: ("eu", "2024-03-01"), 2: ("us", "2024-04-01"),
        3: ("eu", "2024-05-01"), 4: ("us", "2024-06-01"),
        5: ("eu", "2025-03-01"), 6: ("us", "2025-04-01")}

VIA = pytest.mark.parametrize("via_root", [False, True],
                              ids=["via_leaf", "via_root"])


def publish(db, via_root, what="all tables", slot=True):
    db.psql("create publication pgspout for %s "
            "with (publish_via_partition_root = %s);"
            % (what, "true" if via_root else "false"))
    if slot:
        db.psql("select pg_create_logical_replication_slot('%s', "
                "'pgoutput');" % db.name)


def row(i, region=None, qty=None):
    r, at = ROWS[i]
    return {"id": i, "region": region or r, "at": at,
            "qty": i if qty is None else qty}


def key(i, region=None):
    r = row(i, region)
    return {"id": i, "region": r["region"], "at": r["at"]}


def run_workload(db):
    """Changes in every leaf, one moving a row between leaves; returns the
    leaf each inserted row went to, as the server placed it."""
    db.psql("insert into orders values %s;" % ", ".join(
        "(%d, '%s', '%s', %d)" % (i, r, at, i)
        for i, (r, at) in sorted(ROWS.items())))
    db.psql("insert into other values (1);")
    leaf_of = {int(i): leaf for i, leaf in db.query(
        "select id, tableoid::regclass::text from orders")}
    assert sorted(set(leaf_of.values())) == LEAVES, leaf_of
    db.psql("update orders set qty = 10 where id = 1;")
    db.psql("delete from orders where id = 2;")
    db.psql("update orders set region = 'us' where id = 5;")  # eu -> us
    db.psql("delete from orders where id = 6;")
    return leaf_of


def expected_changes(leaf_of, via_root):
    """(op, table, key, before, after) of the workload's changes of orders,
    in order; a row moved between partitions is a delete and an insert."""
    def name(leaf):
        return "orders" if via_root else leaf
    out = [("insert", name(leaf_of[i]), key(i), None, row(i))
           for i in sorted(ROWS)]
    out.append(("update", name(leaf_of[1]), key(1), None, row(1, qty=10)))
    out.append(("delete", name(leaf_of[2]), key(2), key(2), None))
    out.append(("delete", name("orders_2025_eu"), key(5), key(5), None))
    out.append(("insert", name("orders_2025_us"), key(5, "us"), None,
                row(5, "us")))
    out.append(("delete", name(leaf_of[6]), key(6), key(6), None))
    return out


def changes(events):
    for e in data_events(events):
        assert e["schema"] == "public", e
    return [(e["op"], e["table"], e["key"], e["before"], e["after"])
            for e in data_events(events) if e["table"] != "other"]


def file_args(db, out, *extra):
    return ["-d", db.conninfo, "--slot", db.name, "--sink", "file",
            "-o", "path=%s" % out, "-o", "fsync=false", "-s", "1"] + \
        list(extra)


def list_tables(pgspout, db, *patterns, rc=0):
    r = pgspout.run("-d", db.conninfo, "--list-tables", *patterns)
    assert r.returncode == rc, (patterns, r.returncode, r.stderr)
    return r


def complete_events(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return read_jsonl(path) if text.endswith("\n") else []


def wait_for_ids(path, ids, proc, pgspout):
    def arrived():
        assert proc.poll() is None, pgspout.stderr_of(proc)[-3000:]
        got = {e["after"]["id"] for e in data_events(complete_events(path))
               if e["after"]}
        return set(ids) <= got
    wait_until(arrived, what="ids %s in the sink" % sorted(ids))


def refusal_says(stderr, kind, pattern, partition, root="public.orders",
                 sink=None):
    prefix = 'sink "%s": ' % sink if sink else ""
    assert '%s%s pattern "%s" %s partition %s but not %s' % (
        prefix, kind, pattern, "selects" if kind == "include" else "excludes",
        partition, root) in stderr, stderr[-3000:]
    assert 'publication "pgspout"' in stderr, stderr[-3000:]
    assert "publish_via_partition_root = true" in stderr, stderr[-3000:]
    assert "publish_via_partition_root = false" in stderr, stderr[-3000:]
    assert "select or exclude %s as a whole" % root in stderr, stderr[-3000:]


# ---- selection over the partition chain ----

@pytest.mark.all_versions
@VIA
def test_root_pattern_streams_every_leaf(db, stream, pgspout, via_root):
    """-t root: every change of every leaf, under the leaves' names or the
    root's; --list-tables names exactly what streamed."""
    db.psql(TREE)
    publish(db, via_root)
    leaf_of = run_workload(db)
    events = stream("-t", "orders")
    assert_positions_increase(events)
    assert changes(events) == expected_changes(leaf_of, via_root)
    assert not data_events(events, "other")
    names = sorted({e["table"] for e in events})
    assert names == (["orders"] if via_root else LEAVES)
    # each name is described once before its first change
    schema = [e["table"] for e in events if e["op"] == "schema"]
    assert sorted(schema) == names
    listed = list_tables(pgspout, db, "-t", "orders").stdout.splitlines()
    assert listed == ["public." + n for n in names]


@pytest.mark.all_versions
@pytest.mark.parametrize("args,leaves", [
    (["-t", "orders_2025"], ["orders_2025_eu", "orders_2025_us"]),
    (["-t", "public.orders_2024", "-t", "orders_2025_us"],
     ["orders_2024_h0", "orders_2024_h1", "orders_2025_us"]),
])
def test_partition_pattern_via_leaf(db, stream, args, leaves):
    """With publish_via_partition_root = false a partition is selected
    apart: its own changes and its sub-partitions', nothing else."""
    db.psql(TREE)
    publish(db, False)
    leaf_of = run_workload(db)
    events = stream(*args)
    want = [c for c in expected_changes(leaf_of, False) if c[1] in leaves]
    assert want  # the workload touches every leaf
    assert changes(events) == want
    assert sorted({e["table"] for e in events}) == leaves


@pytest.mark.all_versions
@pytest.mark.parametrize("args,leaves", [
    (["-t", "orders", "-T", "orders_2024"],
     ["orders_2025_eu", "orders_2025_us"]),
    (["-T", "orders_2025", "-T", "orders_2024_h1"], ["orders_2024_h0"]),
])
def test_exclude_partition_via_leaf(db, stream, args, leaves):
    db.psql(TREE)
    publish(db, False)
    leaf_of = run_workload(db)
    events = stream(*args)
    want = [c for c in expected_changes(leaf_of, False) if c[1] in leaves]
    assert changes(events) == want
    assert bool(data_events(events, "other")) == ("-t" not in args)


REFUSED = [
    (["-t", "orders_2025"], "include", "orders_2025", "public.orders_2025"),
    (["-t", "other", "-t", "*_h1"], "include", "*_h1",
     "public.orders_2024_h1"),
    (["-t", "orders", "-T", "orders_2024"], "exclude", "orders_2024",
     "public.orders_2024"),
    (["-T", "orders_2025_us"], "exclude", "orders_2025_us",
     "public.orders_2025_us"),
]


@pytest.mark.all_versions
@pytest.mark.parametrize("args,kind,pattern,partition", REFUSED,
                         ids=["t_partition", "t_leaf", "T_partition",
                              "T_leaf"])
def test_partition_filter_via_root_refused_at_start(
        db, pgspout, tmp_path, args, kind, pattern, partition):
    """With publish_via_partition_root = true a partition's changes arrive
    under the root, so a filter that selects a partition apart from it can
    be neither honoured nor ignored: exit 2 before streaming anything, and
    --list-tables says the same."""
    db.psql(TREE)
    publish(db, True)
    run_workload(db)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    out = tmp_path / "out.jsonl"
    r = pgspout.run(*file_args(db, out, "--endpos", db.current_lsn(), *args),
                    timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    refusal_says(r.stderr, kind, pattern, partition)
    assert not out.exists() or not data_events(read_jsonl(out))
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before
    r = list_tables(pgspout, db, *args, rc=2)
    refusal_says(r.stderr, kind, pattern, partition)
    assert r.stdout == ""


def sinks_config(tmp_path, db, all_path, y2025_path):
    path = tmp_path / "pgspout.conf"
    path.write_text("""
slot = "%s";
sinks = (
  { name = "all"; type = "file";
    options = { path = "%s"; fsync = false; }; },
  { name = "y2025"; type = "file"; include = ["orders_2025"];
    options = { path = "%s"; fsync = false; }; }
);
""" % (db.name, all_path, y2025_path))
    return str(path)


@VIA
def test_sink_filters_over_partitions(db, pgspout, tmp_path, via_root):
    """A sink's own filter follows the same rule on top of the global one,
    and is refused the same way under publish_via_partition_root."""
    db.psql(TREE)
    publish(db, via_root)
    leaf_of = run_workload(db)
    all_path, y2025_path = tmp_path / "all.jsonl", tmp_path / "y2025.jsonl"
    r = pgspout.run("-c", sinks_config(tmp_path, db, all_path, y2025_path),
                    "-d", db.conninfo, "--endpos", db.current_lsn())
    if via_root:
        assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
        refusal_says(r.stderr, "include", "orders_2025",
                     "public.orders_2025", sink="y2025")
        return
    assert r.returncode == 0, r.stderr[-3000:]
    want = expected_changes(leaf_of, False)
    assert changes(read_jsonl(all_path)) == want
    assert len(data_events(read_jsonl(all_path), "other")) == 1
    assert changes(read_jsonl(y2025_path)) == [
        c for c in want if c[1].startswith("orders_2025_")]
    assert not data_events(read_jsonl(y2025_path), "other")


@pytest.mark.all_versions
@pytest.mark.parametrize("how", ["create", "attach"])
def test_partition_selected_mid_stream_via_root_stops(db, pgspout, tmp_path,
                                                      how):
    """A partition the filter selects appears under an unselected root
    while streaming (publish_via_partition_root = true): the stream stops
    with exit 1 at its first change and confirms nothing past it."""
    db.psql(TREE)
    if how == "attach":
        db.psql("create table orders_2026 (like orders including all);")
    publish(db, True)
    out = str(tmp_path / "out.jsonl")
    proc = pgspout.spawn(*file_args(db, out, "-t", "other",
                                    "-t", "orders_2026*"))
    db.psql("insert into other values (1);")
    wait_for_ids(out, [1], proc, pgspout)
    commit = lsn_to_int(data_events(read_jsonl(out))[0]["commit_lsn"])
    wait_until(lambda: lsn_to_int(
        db.slot_info(db.name)["confirmed_flush_lsn"]) > commit,
        what="the first transaction to be confirmed")
    if how == "create":
        db.psql("create table orders_2026 partition of orders "
                "for values from ('2026-01-01') to ('2027-01-01');")
    else:
        db.psql("alter table orders attach partition orders_2026 "
                "for values from ('2026-01-01') to ('2027-01-01');")
    before = db.current_lsn()
    db.psql("insert into orders values (7, 'eu', '2026-02-01', 7);")
    db.psql("insert into other values (2);")
    try:
        rc = proc.wait(timeout=60)
    except Exception:
        pytest.fail("pgspout kept streaming a partition it cannot select:\n%s"
                    % pgspout.stderr_of(proc)[-3000:])
    stderr = pgspout.stderr_of(proc)
    assert rc == 1, stderr[-3000:]
    refusal_says(stderr, "include", "orders_2026*", "public.orders_2026")
    confirmed = db.slot_info(db.name)["confirmed_flush_lsn"]
    assert lsn_to_int(confirmed) <= lsn_to_int(before), (confirmed, before)
    assert [e["after"]["id"] for e in data_events(read_jsonl(out))] == [1]
    # A restart meets the same partition at once: refused before streaming.
    r = pgspout.run(*file_args(db, out, "-t", "other", "-t", "orders_2026*"),
                    timeout=60)
    assert r.returncode == 2, r.stderr[-3000:]
    refusal_says(r.stderr, "include", "orders_2026*", "public.orders_2026")


# ---- ATTACH / DETACH while streaming ----

@pytest.mark.all_versions
@VIA
def test_attach_detach_while_streaming(db, pgspout, tmp_path, via_root):
    """-t orders while partitions come and go. A change is judged by the
    catalog when its Relation message is handled (ATTACH and DETACH make
    the server send it again): a table attached to orders is selected from
    then on, a detached one is a plain table that -t orders leaves out."""
    db.psql(TREE + "create table loose (like orders including all);")
    publish(db, via_root)
    out = str(tmp_path / "out.jsonl")
    proc = pgspout.spawn(*file_args(db, out, "-t", "orders"))
    db.psql("insert into orders values (1, 'eu', '2025-01-10', 0);")
    db.psql("insert into orders values (2, 'us', '2025-01-11', 0);")
    db.psql("insert into loose values (100, 'eu', '2027-01-05', 0);")
    db.psql("insert into orders values (3, 'eu', '2025-01-12', 0);")
    # loose's change was judged while it was a plain table
    wait_for_ids(out, [1, 2, 3], proc, pgspout)

    db.psql("alter table orders attach partition loose "
            "for values from ('2027-01-01') to ('2028-01-01');")
    db.psql("insert into loose values (101, 'eu', '2027-02-01', 0);")
    db.psql("insert into orders values (102, 'us', '2027-03-01', 0);")
    db.psql("create table orders_2026 partition of orders "
            "for values from ('2026-01-01') to ('2027-01-01');"
            "insert into orders values (103, 'us', '2026-05-01', 0);")
    db.psql("alter table orders_2025 detach partition orders_2025_us;")
    db.psql("insert into orders_2025_us values (104, 'us', '2025-06-01', 0);")
    db.psql("insert into orders values (105, 'eu', '2025-01-13', 0);")
    wait_for_ids(out, [105], proc, pgspout)
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-3000:]

    got = [(e["after"]["id"], e["table"])
           for e in data_events(read_jsonl(out))]
    if not via_root:
        want = [(1, "orders_2025_eu"), (2, "orders_2025_us"),
                (3, "orders_2025_eu"), (101, "loose"), (102, "loose"),
                (103, "orders_2026"), (105, "orders_2025_eu")]
    elif db.major >= 15:
        want = [(1, "orders"), (2, "orders"), (3, "orders"), (101, "orders"),
                (102, "orders"), (103, "orders"), (105, "orders")]
    else:
        # A PostgreSQL 14 walsender keeps the name it chose for a table
        # before ATTACH/DETACH: loose's changes keep their own name (still
        # selected, loose is a partition of orders now), and the detached
        # table's still arrive as orders'.
        want = [(1, "orders"), (2, "orders"), (3, "orders"), (101, "loose"),
                (102, "loose"), (103, "orders"), (104, "orders"),
                (105, "orders")]
    assert got == want


# ---- TRUNCATE ----

@pytest.mark.all_versions
@VIA
def test_truncate_root_and_partitions(db, stream, via_root):
    """What the server sends for TRUNCATE: with publish_via_partition_root =
    false, one truncate per truncated leaf (never the partitioned tables);
    with true, a TRUNCATE of the root as the root's, and nothing at all for
    a TRUNCATE of a partition."""
    db.psql(TREE)
    publish(db, via_root)
    run_workload(db)
    db.psql("truncate orders_2024_h0;")
    db.psql("truncate orders_2025;")
    db.psql("truncate orders;")
    db.psql("insert into orders values (9, 'eu', '2025-01-01', 9);")
    events = data_events(stream("-t", "orders"))
    assert events[-1]["op"] == "insert" and events[-1]["after"]["id"] == 9
    groups = {}
    for e in events:
        if e["op"] == "truncate":
            assert e["cascade"] is False and e["restart_identity"] is False
            groups.setdefault(e["commit_lsn"], []).append(e["table"])
    got = [sorted(groups[lsn]) for lsn in sorted(groups, key=lsn_to_int)]
    if via_root:
        assert got == [["orders"]]
    else:
        assert got == [["orders_2024_h0"],
                       ["orders_2025_eu", "orders_2025_us"], LEAVES]


# ---- --create-slot ----

@pytest.mark.all_versions
def test_create_slot_publishes_via_root(db, pgspout, tmp_path):
    db.psql(TREE)
    out = str(tmp_path / "out.jsonl")
    proc = pgspout.spawn(*file_args(db, out, "--create-slot", "-t", "orders"))
    wait_until(lambda: (db.slot_info(db.name) or {}).get("active")
               or proc.poll() is not None, what="slot to be active")
    assert proc.poll() is None, pgspout.stderr_of(proc)
    assert db.query("select puballtables, pubviaroot from pg_publication "
                    "where pubname = 'pgspout'") == [["t", "t"]]
    db.psql("insert into orders values (1, 'eu', '2024-03-01', 1),"
            " (5, 'eu', '2025-03-01', 5);"
            "insert into other values (1);")
    wait_for_ids(out, [1, 5], proc, pgspout)
    assert pgspout.stop(proc, signal.SIGINT) == 0, pgspout.stderr_of(proc)
    events = read_jsonl(out)
    assert [(e["op"], e["table"]) for e in events] == [
        ("schema", "orders"), ("insert", "orders"), ("insert", "orders")]


# ---- --list-tables ----

ALL_LEAVES = ["public." + t for t in LEAVES]
# (publication: None = none yet, else (FOR what, via_root)), patterns,
# expected lines (None: refused with exit 2)
LIST_CASES = [
    (None, [], ["public.orders", "public.other"]),
    (None, ["-t", "orders"], ["public.orders"]),
    (None, ["-t", "orders_2025"], None),
    (("all tables", False), [], ALL_LEAVES + ["public.other"]),
    (("all tables", False), ["-t", "orders"], ALL_LEAVES),
    (("all tables", False), ["-t", "orders_2025*"],
     ["public.orders_2025_eu", "public.orders_2025_us"]),
    (("all tables", False), ["-t", "orders", "-T", "orders_2024"],
     ["public.orders_2025_eu", "public.orders_2025_us"]),
    (("all tables", True), [], ["public.orders", "public.other"]),
    (("all tables", True), ["-t", "o*"], ["public.orders", "public.other"]),
    (("all tables", True), ["-t", "orders_2025"], None),
    (("all tables", True), ["-T", "orders_2024_h1"], None),
    (("table orders_2025, other", False), [],
     ["public.orders_2025_eu", "public.orders_2025_us", "public.other"]),
    (("table orders_2025, other", True), [],
     ["public.orders_2025", "public.other"]),
    # changes arrive under orders_2025, which -t orders selects as its root
    (("table orders_2025, other", True), ["-t", "orders"],
     ["public.orders_2025"]),
    (("table orders_2025, other", True), ["-t", "orders_2025_eu"], None),
    (("table other", True), ["-t", "orders"], []),
]


@pytest.mark.all_versions
def test_list_tables_follows_the_publication(db, pgspout):
    """Only what the publication can send, under the names its changes
    carry; unlogged tables never. Without a publication, what the one
    --create-slot creates would send."""
    db.psql(TREE + "create unlogged table scratch (id int primary key);")
    mismatches = []
    for publication, patterns, want in LIST_CASES:
        db.psql("drop publication if exists pgspout;")
        if publication:
            publish(db, publication[1], publication[0], slot=False)
        r = pgspout.run("-d", db.conninfo, "--list-tables", *patterns)
        got = r.stdout.splitlines() if r.returncode == 0 else None
        if (want is None and r.returncode != 2) or got != want:
            mismatches.append("%s %s: exit %d, %s, want %s\n%s" % (
                publication, patterns, r.returncode, got, want, r.stderr))
        elif want is None:
            assert "publish_via_partition_root = false" in r.stderr
    assert not mismatches, "\n".join(mismatches)
