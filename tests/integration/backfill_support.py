"""Shared pieces of the backfill tests (test_backfill*.py): tables of many
shapes with their initial rows, a pgbench workload of inserts, updates
(some leaving TOASTed values unchanged), deletes and key changes on all of
them, the replay of a file sink's events per key compared with the table
row by row, the status table, and the watermark messages read back from an
observer slot.

Each table is described by its key columns (what identifies a row in the
events: the replica identity; REPLICA IDENTITY FULL without an index means
every column).
"""

import json
import os
import struct
import threading

import faults_support as fs
from pgharness import lsn_to_int, wait_until

# Table -> the columns that identify a row in its events.
KEYS = {
    "orders": ["id"],
    "accounts": ["region", "num"],
    "events_part": ["id"],
    "nopk": ["a", "b", "c"],  # REPLICA IDENTITY FULL: every column
    "heap_full": ["x", "y"],
}
LEAVES = ["events_p1", "events_p2", "events_p3"]
# Under publish_via_partition_root = false the leaves' events name them.
ALL_KEYS = dict(KEYS, **{leaf: ["id"] for leaf in LEAVES})


def icu_collation(db):
    """A non-C (ICU) collation: keys compare by it, not bytewise."""
    return db.scalar("select quote_ident(collname) from pg_collation "
                     "where collprovider = 'i' and collname in "
                     "('en-x-icu', 'und-x-icu') order by collname limit 1")


def schema_sql(collation):
    return """
create sequence key_seq start 1000000000;
create table orders (id bigint primary key, customer int not null,
    note text, amount numeric(12,2), ts timestamptz, flag bool, doc jsonb,
    big text);
create table accounts (region text collate %s not null, num bigint not null,
    balance int not null, label text, primary key (region, num));
create index accounts_num on accounts (num);
create table events_part (id bigint primary key, kind text, payload jsonb)
    partition by range (id);
create table events_p1 partition of events_part
    for values from (minvalue) to (1000);
create table events_p2 partition of events_part
    for values from (1000) to (2000);
create table events_p3 partition of events_part
    for values from (2000) to (maxvalue);
-- no primary key: a unique index over NOT NULL columns cuts the chunks
create table nopk (a bigint not null, b text, c int);
create unique index nopk_a on nopk (a);
alter table nopk replica identity full;
-- no usable index at all: ctid ranges
create table heap_full (x int, y text);
alter table heap_full replica identity full;
""" % collation


# Mixed case, accents, blanks and punctuation: ICU orders them unlike C.
REGIONS = ["'Åland'", "'åbo'", "'Zürich'", "'zulu'", "'apple'", "'Apple'",
           "'éclair'", "'Eclair'", "'b b'", "'b-b'", "'ß'", "'ss'"]


def load_sql(n):
    """About n rows in orders, fewer in the others; every tenth order has
    a TOASTed value (3.2 kB of hex digits, stored out of line)."""
    return """
insert into orders
select g, g %% 100, 'note ' || g, (g * 1.25)::numeric(12,2),
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute',
       g %% 2 = 0, jsonb_build_object('g', g, 'tags', array[g %% 3, g %% 5]),
       case when g %% 10 = 0 then (select string_agg(md5(g::text || i::text),
                                                  '')
                                  from generate_series(1, 100) i) end
from generate_series(1, %(n)d) g;
insert into accounts
select (array[%(regions)s])[1 + g %% %(nregions)d] || ' ' || (g %% 37), g,
       g %% 1000, 'l' || g
from generate_series(1, %(m)d) g;
insert into events_part
select g, 'k' || (g %% 4), jsonb_build_object('n', g)
from generate_series(1, 3000) g;
insert into nopk select g, 'b' || g, g from generate_series(1, %(m)d) g;
insert into heap_full select g, 'y' || g from generate_series(1, %(m)d) g;
analyze;
""" % {"n": n, "m": max(n // 4, 10), "regions": ", ".join(REGIONS),
       "nregions": len(REGIONS)}


# One statement per transaction (no two clients deadlock): inserts,
# updates (orders' leave `big` unchanged: its events lack it), key changes
# (to fresh keys from key_seq; events_part's move rows to another
# partition), deletes.
WORKLOAD = r"""
\set r random(1, 100)
\set k random(1, :n)
\set a random(1, :m)
\if :r <= 12
insert into orders (id, customer, note, amount, ts, flag, doc) values (nextval('key_seq'), :k % 100, 'new', 1.5, now(), true, '{"new": true}');
\elif :r <= 30
update orders set note = 'upd ' || :r, amount = amount + 1 where id = :k;
\elif :r <= 36
update orders set id = nextval('key_seq') where id = :k;
\elif :r <= 42
delete from orders where id = :k;
\elif :r <= 52
update accounts set balance = balance + 1 where num = :a;
\elif :r <= 57
update accounts set num = nextval('key_seq') where num = :a;
\elif :r <= 61
delete from accounts where num = :a;
\elif :r <= 66
insert into accounts values ('new ' || :r, nextval('key_seq'), 0, 'n');
\elif :r <= 74
update events_part set kind = 'u' || :r where id = :k % 3000;
\elif :r <= 78
update events_part set id = nextval('key_seq') where id = :k % 3000;
\elif :r <= 81
delete from events_part where id = :k % 3000;
\elif :r <= 84
insert into events_part values (nextval('key_seq'), 'new', '{}');
\elif :r <= 90
update nopk set b = 'u' || :r, c = c + 1 where a = :a;
\elif :r <= 94
update nopk set a = nextval('key_seq') where a = :a;
\elif :r <= 97
delete from nopk where a = :a;
\else
insert into nopk values (nextval('key_seq'), 'n', 0);
\endif
"""


def setup_tables(db, n=4000):
    db.psql(schema_sql(icu_collation(db)))
    db.psql(load_sql(n))


def workload(db, workdir, n=4000, rate=150, clients=2):
    """The workload in the background (started again after a server
    restart); stop() ends it."""
    return fs.Pgbench(db, workdir, clients=clients, rate=rate,
                      script=WORKLOAD,
                      defines={"n": n, "m": max(n // 4, 10)}).start()


# ---- the table as the events encode it ----

def column_types(db, table):
    return db.query(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute "
        "where attrelid = '%s'::regclass and attnum > 0 and not attisdropped "
        "order by attnum" % table)


def decode(type_name, text):
    """A value's text output as pgspout encodes it in JSON."""
    if text is None:
        return None
    if type_name in ("integer", "bigint", "smallint"):
        return int(text)
    if type_name == "boolean":
        return text in ("t", "true")
    if type_name in ("jsonb", "json"):
        return json.loads(text)
    return text  # text, numeric, timestamptz: their text output


def table_contents(db, table):
    """{key: row} of the table now, each value as its events carry it."""
    cols = column_types(db, table)
    names = [c for c, _ in cols]
    rows = db.query("select %s from %s" % (
        ", ".join('"%s"::text' % c for c in names), table))
    out = {}
    for values in rows:
        row = {c: decode(t, v) for (c, t), v in zip(cols, values)}
        out[row_key(table, row)] = row
    return out


def row_key(table, row):
    return tuple(json.dumps(row[c], sort_keys=True, default=str)
                 for c in ALL_KEYS[table])


MISSING = "<value never sent>"


def plain(value):
    """Events are read with exact numbers (Decimal): compare as JSON."""
    return json.loads(json.dumps(value, default=str))


def replay(events, table):
    """Applies the table's events in stream order, per key: a read or an
    insert sets the row, an update replaces it (unchanged TOASTed values
    taken from the row before; MISSING when the replay never had them), a
    delete removes it, a truncate empties the table."""
    model = {}
    for e in events:
        if e.get("table") != table:
            continue
        op = e["op"]
        if op in ("insert", "read"):
            after = plain(e["after"])
            model[row_key(table, after)] = after
        elif op == "update":
            after = plain(e["after"])
            old = plain(e["before"]) if e["before"] else after
            previous = model.pop(row_key(table, old), None)
            for c in e["unchanged_toast"]:
                after[c] = previous[c] if previous else MISSING
            model[row_key(table, after)] = after
        elif op == "delete":
            model.pop(row_key(table, plain(e["before"])), None)
        elif op == "truncate":
            model.clear()
    return model


def assert_replay_matches(db, events, tables=None):
    """Replaying each table's events gives exactly its contents; returns
    {table: rows}."""
    sizes = {}
    for table in tables or KEYS:
        got = replay(events, table)
        want = table_contents(db, table)
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        differ = [k for k in want if k in got and got[k] != want[k]]
        assert not missing and not extra and not differ, (
            "%s: %d rows, replay %d; missing %s; extra %s; different %s"
            % (table, len(want), len(got), missing[:3], extra[:3],
               [(k, got[k], want[k]) for k in differ[:2]]))
        sizes[table] = len(want)
    return sizes


def reads(events, table=None, backfill=None):
    return [e for e in events if e["op"] == "read"
            and (table is None or e["table"] == table)
            and (backfill is None or e["snapshot"]["id"] == backfill)]


def assert_reads_once(events):
    """No read event twice: not by position, not by (backfill, key)."""
    positions = [(e["commit_lsn"], e["seq"]) for e in events
                 if e["op"] != "schema"]
    assert len(positions) == len(set(positions)), "an event twice"
    seen = set()
    for e in reads(events):
        k = (e["snapshot"]["id"], e["table"],
             row_key(e["table"], plain(e["after"])))
        assert k not in seen, "read twice: %s" % (e,)
        seen.add(k)


def partial_keys(events, table):
    """Keys updates lacking a TOASTed value left rows at (moved there or
    not), in stream order ({key: index of the first such update}): a
    chunk that read such a row before the update drops it, and the row is
    read again at that key."""
    keys = {}
    for i, e in enumerate(events):
        if (e.get("table") == table and e["op"] == "update"
                and e["unchanged_toast"]):
            keys.setdefault(row_key(table, plain(e["after"])), i)
    return keys


def assert_chunks_well_formed(events, backfill, table):
    """A table's read events: chunks in order, the last (its final key
    range) flagged once; after it only rows read again at a key an update
    lacking a TOASTed value left them at before; one estimate throughout.
    """
    rs = [(i, e) for i, e in enumerate(events) if e["op"] == "read"
          and e["table"] == table and e["snapshot"]["id"] == backfill]
    assert rs, "no read event of %s" % table
    lasts = [i for i, e in rs if e["snapshot"]["last"]]
    assert lasts, "no chunk of %s says it is the last" % table
    last_chunk = events[lasts[0]]["snapshot"]["chunk"]
    assert all(events[i]["snapshot"]["chunk"] == last_chunk for i in lasts)
    moved = partial_keys(events, table)
    after = [(i, e) for i, e in rs if i > lasts[-1]]
    for i, e in after:
        key = row_key(table, plain(e["after"]))
        assert key in moved and moved[key] < i, \
            "a read event after the last chunk: %s" % (e,)
    assert len({e["snapshot"]["table_rows"] for _, e in rs}) == 1


# ---- the status table ----

def status(db, slot, backfill, schema="public"):
    """{table_name: (state, rows_copied, error)} for one backfill ({} while
    there is no status table)."""
    if not status_table_exists(db, schema):
        return {}
    rows = db.query("select table_name, state, rows_copied, error from "
                    "%s.pgspout_backfill_status where slot = '%s' and id = "
                    "'%s'" % (schema, slot, backfill))
    return {t: (s, int(n), err) for t, s, n, err in rows}


def status_table_exists(db, schema="public"):
    return db.scalar("select to_regclass('%s.pgspout_backfill_status') "
                     "is not null" % schema) == "t"


def wait_backfill(db, slot, backfill, proc, pgspout, timeout=300,
                  want="done"):
    """Waits for the backfill's "*" row to say done (or failed)."""
    def ended():
        if proc is not None and proc.poll() is not None:
            raise AssertionError("pgspout exited %s:\n%s" % (
                proc.returncode, pgspout.stderr_of(proc)[-4000:]))
        row = status(db, slot, backfill).get("*")
        return row if row and row[0] in ("done", "failed") else None
    try:
        row = wait_until(ended, timeout=timeout,
                         what="backfill %s to end" % backfill, interval=0.2)
    except AssertionError as e:
        raise AssertionError("%s; status %s; pgspout says:\n%s" % (
            e, status(db, slot, backfill),
            pgspout.stderr_of(proc)[-6000:] if proc else "")) from None
    assert row[0] == want, "backfill %s: %s" % (backfill, row)
    return status(db, slot, backfill)


def request(db, slot, backfill, include, exclude=(), where=None):
    """The request as `pgspout backfill` sends it (README)."""
    msg = json.dumps({"type": "backfill", "slot": slot, "id": backfill,
                      "include": list(include), "exclude": list(exclude),
                      "where": where})
    db.psql("select pg_logical_emit_message(true, 'pgspout', %s);"
            % quote_literal(msg))


def quote_literal(s):
    return "'" + s.replace("'", "''") + "'"


def drain(db, slot, proc, pgspout, timeout=300):
    """Waits until pgspout confirmed everything committed so far, then
    stops it cleanly."""
    lsn = db.current_lsn()
    fs.wait_confirmed(db, slot, lsn, proc, pgspout, timeout=timeout)
    rc = pgspout.stop(proc)
    assert rc == 0, pgspout.stderr_of(proc)[-4000:]


# ---- watermarks, read back from an observer slot ----

def create_observer(db, name="observer"):
    db.psql("select pg_create_logical_replication_slot('%s', 'pgoutput');"
            % name)


def watermarks(db, publication="pgspout", name="observer"):
    """[(type, token, commit_lsn, end_lsn)] of pgspout's watermark
    messages, and the end LSN of every other transaction, from pgoutput's
    own output (peeked, the slot stays)."""
    rows = db.query(
        "select lsn::text, encode(data, 'hex') from "
        "pg_logical_slot_peek_binary_changes('%s', NULL, NULL, "
        "'proto_version', '1', 'publication_names', '%s', "
        "'messages', 'true')" % (name, publication))
    out, others, begin, pending = [], [], None, []
    for _, hexdata in rows:
        data = bytes.fromhex(hexdata)
        kind = chr(data[0])
        if kind == "B":
            begin = struct.unpack(">Q", data[1:9])[0]
            pending = []
        elif kind == "M":
            prefix_end = data.index(b"\0", 10)
            if data[10:prefix_end] == b"pgspout":
                content = json.loads(data[prefix_end + 5:])
                if content.get("type") in ("lw", "hw"):
                    pending.append((content["type"], content["token"]))
        elif kind == "C":
            end = struct.unpack(">Q", data[10:18])[0]
            out += [(t, tok, begin, end) for t, tok in pending]
            if not pending:
                others.append(end)
            pending = []
    return out, others


def confirmations(stderr):
    """Every LSN pgspout confirmed, in order, from its debug log (-v)."""
    return [lsn_to_int(line.rsplit(" ", 1)[1]) for line in stderr.splitlines()
            if line.startswith("pgspout: debug: confirmed ")]


XMIN_SAMPLER = """
create function pgspout_xmin_sample(n int, out max_age int, out seen int)
language plpgsql as $$
declare a int;
begin
    max_age := 0;
    seen := 0;
    for i in 1 .. n loop
        perform pg_stat_clear_snapshot();
        select max(age(backend_xmin)) into a from pg_stat_activity
            where application_name = 'pgspout' and backend_xmin is not null;
        if a is not null then
            seen := seen + 1;
            max_age := greatest(max_age, a);
        end if;
        perform pg_sleep(0.002);
    end loop;
end $$;
"""


class XminSampler:
    """Samples, every few milliseconds, the largest backend_xmin age among
    pgspout's connections (application_name pgspout), until stop()."""

    def __init__(self, db):
        self.db = db
        self.max_age = self.seen = self.samples = 0
        self._stop = threading.Event()
        db.psql(XMIN_SAMPLER)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            row = self.db.query("select * from pgspout_xmin_sample(200)")[0]
            self.max_age = max(self.max_age, int(row[0]))
            self.seen += int(row[1])
            self.samples += 200

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=60)
        return self.max_age


def state_dir(tmp_path):
    path = str(tmp_path / "state")
    return path


def write_config(tmp_path, db, slot, out, extra="", fsync=True):
    """A config with the file sink and the backfill settings given."""
    return fs.write_config(str(tmp_path / "pgspout.conf"), db, slot,
                           [("file", "file", {"path": out, "fsync": fsync})],
                           extra='state_dir = "%s";\n%s'
                                 % (state_dir(tmp_path), extra))


__all__ = ["os"]
