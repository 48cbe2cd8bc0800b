"""An initial snapshot under load into the network sinks (test_elastic.py,
test_bigquery.py, test_kinesis.py, test_faults_outage.py). The tables and
the workload are backfill_support's (keys of every kind: an int key with
TOASTed values, a composite key under an ICU collation, a partitioned
table, REPLICA IDENTITY FULL with a unique index, and no index at all),
plus updates whose transactions stay open a little, so that some are open
while a chunk is read and commit after its high watermark: the case where
a sink must not let the copy win over the change. A random workload may
miss a table's copy (a copy that fits in the throttle's burst takes a few
milliseconds), so each table with a chunk key gets a change of its own
while its copy is known to be under way (CopyGates).

run() returns the file sink's events, already checked against the tables
(backfill_support's replay); each sink's test compares its own output."""

import json
import os
import subprocess
import time

import backfill_support as bs
import faults_support as fs
from pgharness import lsn_to_int, psql_env, read_jsonl, wait_until

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
    """Creates the tables, starts the load, makes the slot, runs pgspout
    with an initial snapshot into the file sink and `sinks` (a list of
    (name, type, {option: value})), waits for the copy to be done, stops
    the load and drains. The slot is made here, not by --create-slot, so
    that the gates can lock the tables between the slot's creation (which
    waits for every transaction with an id, as a lock's is) and the copy.
    `during(proc)` runs while the copy is under way, once every gated table
    got its change. The copy is throttled to rows_per_sec, so
    that the workload's changes land in it too; one worker per table, so
    that every table's copy starts at once (the gates hold their writers
    back until then)."""
    bs.setup_tables(db, n=ROWS)
    out = str(tmp_path / "snapshot.jsonl")
    conf = fs.write_config(
        str(tmp_path / "pgspout.conf"), db, db.name,
        [("file", "file", {"path": out, "fsync": False})] + sinks,
        extra='snapshot = "initial";\nstate_dir = "%s";\n'
              'backfill_chunk_rows = 300;\nbackfill_max_rows_per_sec = %d;\n'
              'backfill_workers = %d;\n'
              % (bs.state_dir(tmp_path), rows_per_sec, len(bs.KEYS)))
    work = bs.workload(db, str(tmp_path), n=ROWS, rate=120)
    (tmp_path / "held").mkdir()
    held = fs.Pgbench(db, str(tmp_path / "held"), clients=2, rate=40,
                      script=HELD_OPEN, defines={"n": ROWS})
    proc = None
    gates = None
    try:
        held.start()
        db.psql("create publication pgspout for all tables "
                "with (publish_via_partition_root = true);"
                "select pg_create_logical_replication_slot('%s', 'pgoutput');"
                % db.name)
        gates = CopyGates(db, bs.state_dir(tmp_path), out)
        proc = pgspout.spawn("-c", conf, env=env)
        gates.run(proc, pgspout)
        backfill = initial_backfill(db, db.name)
        if during:
            during(proc)
        bs.wait_backfill(db, db.name, backfill, proc, pgspout)
    finally:
        if gates:
            gates.close()
        work.stop()
        held.stop()
    bs.drain(db, db.name, proc, pgspout)
    events = read_jsonl(out)
    bs.assert_replay_matches(db, events)
    bs.assert_reads_once(events)
    check_copy_overlapped_changes(events)
    return events


# A change of each table with a chunk key, made by CopyGates while the
# table's copy is under way (heap_full, copied by ctid ranges, is left
# alone: a row changed during such a copy may be read twice).
GATED_CHANGES = {
    "orders": "update orders set amount = amount + 1 "
              "where id = (select min(id) from orders)",
    "accounts": "update accounts set balance = balance + 1 "
                "where num = (select min(num) from accounts)",
    "events_part": "update events_part set kind = 'gated' "
                   "where id = (select min(id) from events_part)",
    "nopk": "update nopk set c = c + 1 where a = (select min(a) from nopk)",
}


class TableLock:
    """An ACCESS EXCLUSIVE lock on a table, asked for by a psql session of
    its own: a chunk read of the table (ACCESS SHARE) waits while it is
    held, and so do the table's writers."""

    def __init__(self, db, table):
        self.db, self.table = db, table
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
             db.conninfo], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env=psql_env())
        self.send("select pg_backend_pid();")
        self.pid = int(self.proc.stdout.readline())
        # ONLY: the partitions of events_part stay free for pgspout's
        # catalog queries; its reads and writes lock the root first.
        self.send("begin; lock table only %s in access exclusive mode;"
                  % table)

    def send(self, sql):
        self.proc.stdin.write(sql + "\n")
        self.proc.stdin.flush()

    def state(self):
        """'held', 'waiting' or None (not asked for yet)."""
        rows = self.db.query(
            "select granted from pg_locks where pid = %d and locktype = "
            "'relation' and relation = '%s'::regclass and mode = "
            "'AccessExclusiveLock'" % (self.pid, self.table))
        if not rows:
            return None
        return "held" if rows[0][0] in ("t", True) else "waiting"

    def commit(self, sql=""):
        """Commits (after sql) and ends the session; the lock goes."""
        self.send(sql + ("; " if sql else "") + "commit;")
        self.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


class CopyGates:
    """Makes each table of GATED_CHANGES change while its copy is under
    way, whatever the timing: the change commits after the high watermark
    of the table's first chunk (its read events are in the file sink) and
    before the read of any other chunk, so before the last one's high
    watermark. Each table is locked before pgspout starts. Each time a
    read of the table waits while no chunk of it has been read (the state
    file has none), the lock is asked for again behind that read and the
    old one let go: the read goes through, and the new lock holds the one
    after it. Once a chunk was read, the lock is kept until its read events
    are in the file sink; then the change commits in the lock's
    transaction, which lets the copy go on."""

    def __init__(self, db, state_dir, out):
        self.db, self.out = db, out
        self.state_file = os.path.join(state_dir, "backfill.state")
        self.locks = {t: TableLock(db, t) for t in GATED_CHANGES}
        self.queued = {}
        self.read_tables = set()
        self.offset = 0

    def close(self):
        for lock in list(self.locks.values()) + list(self.queued.values()):
            lock.close()
        self.locks, self.queued = {}, {}

    def run(self, proc, pgspout, timeout=300):
        deadline = time.monotonic() + timeout
        while self.locks:
            assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
            assert time.monotonic() < deadline, \
                "copies not seen under way: %s" % sorted(self.locks)
            self.step()
            time.sleep(0.02)

    def step(self):
        # Waits first: a read seen waiting while no chunk was recorded
        # after it is the table's first (a chunk is recorded before the
        # worker asks to read the next one).
        waiting = self.reads_waiting()
        started = self.tables_started()
        self.note_reads()
        for table in list(self.locks):
            lock = self.locks[table]
            if table in self.queued:
                if self.queued[table].state() == "waiting":
                    lock.commit()  # the waiting read goes first
                    self.locks[table] = self.queued.pop(table)
            elif lock.state() != "held":
                continue
            elif table in started:
                if table in self.read_tables:
                    lock.commit(GATED_CHANGES[table])
                    del self.locks[table]
            elif table in waiting:
                self.queued[table] = TableLock(self.db, table)

    def tables_started(self):
        """Tables of which the state file records a chunk read."""
        try:
            with open(self.state_file) as f:
                state = json.load(f)
        except (FileNotFoundError, ValueError):
            return set()
        return {t["name"].split(".", 1)[1] for b in state["backfills"]
                for t in b["tables"]
                if t["chunks"] or t["cursor"] is not None or t["at_end"]}

    def reads_waiting(self):
        """Tables a read (ACCESS SHARE) waits for."""
        return {r[0] for r in self.db.query(
            "select relation::regclass::text from pg_locks where locktype = "
            "'relation' and not granted and mode = 'AccessShareLock'")}

    def note_reads(self):
        """Tables with read events in the file sink."""
        if not os.path.exists(self.out):
            return
        with open(self.out, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            e = json.loads(line)
            if e["op"] == "read":
                self.read_tables.add(e["table"])


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


def assert_index_equals_table(db, table, docs, events):
    """docs ({_id: (_version, _source)}, read back from the index) equal
    the table row by row. A failure says how many documents are missing,
    extra or different, with a few of each, their versions and the
    events of their rows (a whole-dict diff of thousands of rows hides
    that)."""
    got = {i: bs.plain({k: v for k, v in src.items()
                        if k != "_pgspout_version"})
           for i, (_, src) in docs.items()}
    want = expected_documents(db, table)
    if got == want:
        return
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    differ = sorted(i for i in want if i in got and got[i] != want[i])

    def story(doc_id):
        return [(e["op"], e["commit_lsn"], e["seq"])
                for e in events if e.get("table") == table
                and doc_id in (row_id(table, e.get("before")),
                               row_id(table, e.get("after")))]
    samples = ["%s: index %s, table %s, events %s" % (
        i, docs.get(i), want.get(i), story(i))
        for i in (missing[:3] + extra[:3] + differ[:3])]
    raise AssertionError(
        "%s: %d documents, %d rows: %d missing, %d extra, %d different\n%s"
        % (table, len(got), len(want), len(missing), len(extra),
           len(differ), "\n".join(samples)))


def row_id(table, row):
    return elastic_id(key_values(table, bs.plain(row))) if row else None


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
