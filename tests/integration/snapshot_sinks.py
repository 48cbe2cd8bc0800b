"""An initial snapshot under load into the network sinks (test_elastic.py,
test_bigquery.py, test_kinesis.py, test_faults_outage.py). The tables and
the workload are backfill_support's (keys of every kind: an int key with
TOASTed values, a composite key under an ICU collation, a partitioned
table, REPLICA IDENTITY FULL with a unique index, and no index at all),
plus updates whose transactions stay open a little, so that some are open
while a chunk is read and commit after its high watermark: the case where
a sink must not let the copy win over the change.

run() returns the file sink's events, already checked against the tables
(backfill_support's replay); each sink's test compares its own output."""

import json

import backfill_support as bs
import faults_support as fs
from pgharness import lsn_to_int, read_jsonl, wait_until

ROWS = 3000

# One row per transaction (no deadlocks with the other workload); the
# transaction stays open up to 80 ms after its update.
HELD_OPEN = r"""
\set k random(1, :n)
\set nap random(0, 80)
begin;
update orders set note = 'held ' || :client_id, amount = amount + 1
    where id = :k;
select pg_sleep(:nap / 1000.0);
commit;
"""


def initial_backfill(db, slot):
    """The id of the slot's initial backfill, once the daemon has it."""
    def find():
        if not bs.status_table_exists(db):
            return None
        return db.scalar("select id from pgspout_backfill_status where slot "
                         "= '%s' and id like 'initial-%%' limit 1" % slot)
    return wait_until(find, 120, "the initial backfill", interval=0.2)


def run(db, pgspout, tmp_path, sinks, env=None, during=None,
        rows_per_sec=1500):
    """Creates the tables, starts the load, runs pgspout --create-slot
    (an initial snapshot) into the file sink and `sinks` (a list of (name,
    type, {option: value})), waits for the copy to be done, stops the load
    and drains. `during(proc)` runs while the copy is under way. The copy
    is throttled to rows_per_sec, so that every table changes while it is
    copied, however fast the machine."""
    bs.setup_tables(db, n=ROWS)
    out = str(tmp_path / "snapshot.jsonl")
    conf = fs.write_config(
        str(tmp_path / "pgspout.conf"), db, db.name,
        [("file", "file", {"path": out, "fsync": False})] + sinks,
        extra='create_slot = true;\nstate_dir = "%s";\n'
              'backfill_chunk_rows = 300;\nbackfill_max_rows_per_sec = %d;\n'
              % (bs.state_dir(tmp_path), rows_per_sec))
    work = bs.workload(db, str(tmp_path), n=ROWS, rate=120)
    (tmp_path / "held").mkdir()
    held = fs.Pgbench(db, str(tmp_path / "held"), clients=2, rate=40,
                      script=HELD_OPEN, defines={"n": ROWS})
    proc = None
    try:
        held.start()
        proc = pgspout.spawn("-c", conf, env=env)
        backfill = initial_backfill(db, db.name)
        if during:
            during(proc)
        bs.wait_backfill(db, db.name, backfill, proc, pgspout)
    finally:
        work.stop()
        held.stop()
    bs.drain(db, db.name, proc, pgspout)
    events = read_jsonl(out)
    bs.assert_replay_matches(db, events)
    bs.assert_reads_once(events)
    check_copy_overlapped_changes(events)
    return events


def check_copy_overlapped_changes(events):
    """Each table was copied in several chunks while its rows changed
    (changes between its first and last read event): otherwise the test
    would not test what it claims to."""
    for table in bs.KEYS:
        reads = bs.reads(events, table)
        assert reads, "no read event of " + table
        if table == "heap_full":
            continue  # small, copied by ctid ranges; the workload leaves it
        assert len({e["snapshot"]["chunk"] for e in reads}) >= 2, table
        first = lsn_to_int(reads[0]["commit_lsn"])
        last = lsn_to_int(reads[-1]["commit_lsn"])
        assert any(e["table"] == table and
                   e["op"] in ("insert", "update", "delete") and
                   first < lsn_to_int(e["commit_lsn"]) < last
                   for e in events), "no change of %s during its copy" % table


def key_values(table, row):
    return [row[c] for c in bs.ALL_KEYS[table]]


def elastic_id(values):
    """The elastic sink's _id: one key column's text, or the compact JSON
    array of several (plugins/elastic/README.md, "Documents")."""
    if len(values) == 1:
        v = values[0]
        return v if isinstance(v, str) else json.dumps(v)
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def expected_documents(db, table):
    return {elastic_id(key_values(table, row)): row
            for row in bs.table_contents(db, table).values()}


def toast_lost_across_key_changes(events, table):
    """{row key: columns} the BigQuery view shows as NULL although the row
    has a value: an unchanged TOASTed value is not carried across a key
    change (plugins/bigquery/README.md, "The view"), until a later change
    of the row carries the column again."""
    lost = {}
    for e in events:
        if e.get("table") != table or e["op"] == "schema":
            continue
        if e["op"] == "truncate":
            lost.clear()
            continue
        if e["op"] == "delete":
            lost.pop(bs.row_key(table, bs.plain(e["before"])), None)
            continue
        key = bs.row_key(table, bs.plain(e["after"]))
        toast = set(e.get("unchanged_toast", []))
        old = bs.row_key(table, bs.plain(e["before"])) if e["before"] else key
        before = lost.pop(old, set())
        lost[key] = toast if old != key else before & toast
    return {k: cols for k, cols in lost.items() if cols}
