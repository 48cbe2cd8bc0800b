"""A snapshot under load, shared by the sink suites (test_elastic.py,
test_bigquery.py, test_kinesis.py) and the backfill fault tests: three
tables of mixed types (an int key with TOASTed values, a composite key
with a text part under an ICU collation, a text key), filled before
pgspout starts, and a pgbench workload of inserts, updates (some leaving
the TOASTed value unchanged), deletes and key changes on all three that
runs while pgspout copies them (--create-slot: an initial snapshot), some
of its transactions held open across a chunk's read.

run_snapshot_under_load() returns the file sink's events once everything
committed is confirmed; the caller compares its own sink with the tables.
"""

import decimal
import json
import os
import signal
import subprocess
import threading
import time

from pgharness import lsn_to_int, read_jsonl, wait_until

SCHEMA = """
create sequence keyseq start 10000000;
create table bf_items (
    id bigint primary key, name text, big text, n numeric(12,2),
    tags text[], doc jsonb, ts timestamptz, flag boolean);
alter table bf_items alter column big set storage external;
create table bf_pairs (
    a int, b text collate "und-x-icu", v int, primary key (a, b));
create table bf_text (k text primary key, v int, note text);
"""

# Sizes: a few chunks per table at the chunk size the tests set.
ITEMS, PAIRS, TEXTS = 3000, 2000, 2000

DATA = """
insert into bf_items
select g, 'item ' || g, case when g %% 10 = 0 then repeat(md5(g::text), 200)
                            else 'small ' || g end,
       g * 1.25, array['t' || g, 'x'], jsonb_build_object('g', g),
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute',
       g %% 2 = 0
from generate_series(1, %(items)d) g;
insert into bf_pairs
select g %% 50, case g %% 3 when 0 then 'b' || g when 1 then 'B' || g
                            else 'é' || g end, g
from generate_series(1, %(pairs)d) g;
insert into bf_text select 'k' || g, g, 'note ' || g
from generate_series(1, %(texts)d) g;
""" % {"items": ITEMS, "pairs": PAIRS, "texts": TEXTS}

# One row per transaction (no deadlocks between clients); a third of the
# updates hold their transaction open a little, so some are open while a
# chunk is read and commit after its high watermark. A key change rewrites
# big: the BigQuery sink documents that an unchanged TOASTed value is not
# carried across a key change (its README, "The view").
PGBENCH = r"""
\set r random(1, 100)
\set i random(1, 3000)
\set p random(1, 2000)
\set t random(1, 2000)
\set nap random(0, 80)
\if :r <= 12
insert into bf_items (id, name, big, n, tags, doc, ts, flag)
values (nextval('keyseq'), 'new', repeat('n', 3000), 1, '{a}', '{}',
        now(), true);
\elif :r <= 30
begin;
update bf_items set name = 'upd ' || :client_id, n = n + 1 where id = :i;
select pg_sleep(:nap / 1000.0);
commit;
\elif :r <= 36
update bf_items set big = repeat('u', 4000) where id = :i;
\elif :r <= 42
delete from bf_items where id = :i;
\elif :r <= 48
update bf_items set id = nextval('keyseq'), big = big || '!' where id = :i;
\elif :r <= 56
insert into bf_pairs values (:p % 50, 'new' || nextval('keyseq'), 1);
\elif :r <= 66
begin;
update bf_pairs set v = v + 1 where a = :p % 50 and b in (
    select b from bf_pairs where a = :p % 50 order by b limit 1);
select pg_sleep(:nap / 1000.0);
commit;
\elif :r <= 72
update bf_pairs set b = b || '!' || nextval('keyseq') where a = :p % 50
    and b in (select b from bf_pairs where a = :p % 50 order by b desc
              limit 1);
\elif :r <= 76
delete from bf_pairs where a = :p % 50 and b in (
    select b from bf_pairs where a = :p % 50 order by b limit 1 offset 1);
\elif :r <= 84
insert into bf_text values ('new' || nextval('keyseq'), 1, 'new');
\elif :r <= 92
update bf_text set v = v + 1, note = 'upd' where k = 'k' || :t;
\elif :r <= 96
update bf_text set k = k || '-' || nextval('keyseq') where k = 'k' || :t;
\else
delete from bf_text where k = 'k' || :t;
\endif
"""

TABLES = ("bf_items", "bf_pairs", "bf_text")
KEYS = {"bf_items": ("id",), "bf_pairs": ("a", "b"), "bf_text": ("k",)}


def create(db):
    db.psql(SCHEMA)
    db.psql(DATA)
    db.psql("vacuum analyze bf_items, bf_pairs, bf_text;")


class Load:
    """pgbench with PGBENCH in the background until stop()."""

    def __init__(self, db, workdir, clients=4, rate=200):
        script = os.path.join(workdir, "backfill.pgbench")
        with open(script, "w") as f:
            f.write(PGBENCH)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        self.log = os.path.join(workdir, "backfill-pgbench.log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["pgbench", "-n", "-c", str(clients), "-j", "2", "-R",
                 str(rate), "-T", "100000", "-f", script, "-h", "127.0.0.1",
                 "-p", str(db.server.port), "-U", "postgres", db.name],
                stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        with open(self.log, errors="replace") as f:
            out = f.read()
        # A client that hit an error stops: the load would have dwindled.
        assert " aborted " not in out, out[-3000:]
        return out


def status_row(db, table="*", slot=None):
    """(state, rows_copied, error) of the slot's initial backfill."""
    rows = db.query("select state, rows_copied, error from "
                    "pgspout_backfill_status where slot = '%s' and "
                    "table_name = '%s' and id like 'initial-%%'"
                    % (slot or db.name, table))
    return tuple(rows[0]) if rows else None


def wait_snapshot_done(db, proc, pgspout, timeout=300, slot=None):
    def done():
        if proc.poll() is not None:
            raise AssertionError("pgspout exited %d during the snapshot:\n%s"
                                 % (proc.returncode,
                                    pgspout.stderr_of(proc)[-4000:]))
        try:
            row = status_row(db, slot=slot)
        except AssertionError:
            return None  # the status table is not there yet
        assert not row or row[0] != "failed", row
        return row and row[0] == "done"
    wait_until(done, timeout, "the initial snapshot to be done")


def wait_confirmed(db, slot, lsn, proc, pgspout, timeout=180):
    target = lsn_to_int(lsn)

    def reached():
        if proc.poll() is not None:
            raise AssertionError("pgspout exited %d:\n%s" % (
                proc.returncode, pgspout.stderr_of(proc)[-4000:]))
        info = db.slot_info(slot)
        return info and lsn_to_int(info["confirmed_flush_lsn"]) >= target
    wait_until(reached, timeout, "confirmed_flush_lsn to reach %s" % lsn)


def config(path, db, sinks, state_dir, chunk_rows=400, extra=""):
    """A config file streaming the three tables with --create-slot; sinks
    is a list of (name, type, {option: value})."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return json.dumps(str(v))
    groups = ",\n  ".join(
        '{ name = "%s"; type = "%s"; options = { %s }; }'
        % (name, type_, " ".join("%s = %s;" % (k, value(v))
                                 for k, v in options.items()))
        for name, type_, options in sinks)
    with open(path, "w") as f:
        f.write('connection = %s;\nslot = "%s";\ncreate_slot = true;\n'
                'include = ["bf_*"];\nstate_dir = %s;\n'
                'backfill_chunk_rows = %d;\nstatus_interval = 1;\n%s\n'
                'sinks = (\n  %s\n);\n'
                % (json.dumps(db.conninfo), db.name, json.dumps(state_dir),
                   chunk_rows, extra, groups))
    return path


def run_snapshot_under_load(db, pgspout, tmp_path, sinks, env=None,
                            during=None, extra=""):
    """Creates the tables, starts the load, runs pgspout (--create-slot:
    initial snapshot) with the file sink plus `sinks`, waits for the
    snapshot to be done, stops the load, waits until everything committed
    is confirmed and stops pgspout. `during(proc)` runs while the snapshot
    is under way; `extra` goes into the config file. Returns the file
    sink's events."""
    create(db)
    db.psql("create publication pgspout for all tables;")
    out = str(tmp_path / "snapshot.jsonl")
    conf = config(str(tmp_path / "pgspout.conf"), db,
                  [("file", "file", {"path": out, "fsync": False})] + sinks,
                  str(tmp_path / "state"), extra=extra)
    load = Load(db, str(tmp_path))
    proc = None
    try:
        time.sleep(1)  # the load is running before the copy starts
        proc = pgspout.spawn("-c", conf, env=env)
        if during:
            during(proc)
        wait_snapshot_done(db, proc, pgspout)
    finally:
        load.stop()
    end = db.current_lsn()
    wait_confirmed(db, db.name, end, proc, pgspout)
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-4000:]
    events = read_jsonl(out)
    check_snapshot_meant_something(events)
    positions = [(lsn_to_int(e["commit_lsn"]), e["seq"]) for e in events
                 if e["op"] != "schema"]
    assert positions == sorted(set(positions)), \
        "the file sink holds an event twice or out of order"
    return events


def check_snapshot_meant_something(events):
    """Each table was copied in several chunks, and changes of each table
    were streamed while its copy ran (between its first and last read
    event): otherwise the test would not test the consistency it claims
    to."""
    for table in TABLES:
        reads = [e for e in events if e["op"] == "read"
                 and e["table"] == table]
        assert reads, "no read event of %s" % table
        chunks = {e["snapshot"]["chunk"] for e in reads}
        assert len(chunks) > 2, (table, chunks)
        first = lsn_to_int(reads[0]["commit_lsn"])
        last = lsn_to_int(reads[-1]["commit_lsn"])
        during = [e for e in events if e["table"] == table and
                  e["op"] in ("insert", "update", "delete") and
                  first < lsn_to_int(e["commit_lsn"]) < last]
        assert during, "no change of %s while it was copied" % table


def key_of(table, row):
    return tuple(row[c] for c in KEYS[table])


def replay(events):
    """{table: {key: row}} from events in stream order, read as insert."""
    state = {t: {} for t in TABLES}
    for e in events:
        if e["op"] in ("schema",) or e["table"] not in state:
            continue
        rows = state[e["table"]]
        if e["op"] in ("insert", "read"):
            rows[key_of(e["table"], e["after"])] = e["after"]
        elif e["op"] == "update":
            old = e["before"] or e["after"]
            previous = rows.pop(key_of(e["table"], old), {})
            after = dict(e["after"])
            for c in e.get("unchanged_toast", []):
                after[c] = previous.get(c)
            rows[key_of(e["table"], after)] = after
        elif e["op"] == "delete":
            rows.pop(key_of(e["table"], e["before"]), None)
        elif e["op"] == "truncate":
            rows.clear()
    return state


# Each table's rows as the events encode them (numeric as exact text,
# timestamptz in the pinned ISO/UTC form, arrays and jsonb as JSON).
ROWS_SQL = {
    "bf_items": "select json_build_object('id', id, 'name', name, 'big', "
                "big, 'n', n::text, 'tags', tags, 'doc', doc, 'ts', "
                "ts::text, 'flag', flag) from bf_items",
    "bf_pairs": "select json_build_object('a', a, 'b', b, 'v', v) "
                "from bf_pairs",
    "bf_text": "select json_build_object('k', k, 'v', v, 'note', note) "
               "from bf_text",
}


def table_state(db):
    """{table: {key: row}} as the events would encode the rows."""
    out = {}
    for table in TABLES:
        text = db.scalar("select coalesce(json_agg(r), '[]')::text from (%s) "
                         "q(r)" % ROWS_SQL[table])
        rows = json.loads(text, parse_float=decimal.Decimal)
        out[table] = {key_of(table, r): r for r in rows}
    return out
