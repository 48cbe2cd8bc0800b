"""What a read event holds is what the stream would send for the same row
(README "Snapshot and backfill"): each value byte for byte as the insert
of that row encodes it, for every value type of test_types.py, text that
COPY escapes, a TOASTed value and names that need quoting, even with the
database set to print values its own way; and the publication's column
list and row filter (PostgreSQL 15+) shape the copy as they shape the
stream."""


import pytest

import test_types as tt
import test_value_settings as tv
from pgharness import assert_positions_increase, read_jsonl

# Values COPY's text format escapes (tab, newline, carriage return,
# backslash), control characters JSON escapes, a value stored out of line
# and column names that need quoting.
EXTRA_COLUMNS = [('"we""ird col"', "text"), ('"Ünï Cödé"', "text"),
                 ("big", "bytea")]
AWKWARD_ROW = r"""
insert into vals (id, c_text, c_text_arr, c_jsonb, "we""ird col",
                  "Ünï Cödé", big)
values (4, E'tab\there\nline\rcr \\ back \\N \x01\x1f end',
        ARRAY[E'a\tb', E'c\nd', E'e\\f', '\N', 'NULL', ''],
        E'{"k\\ttab": "v\\nnl", "bs": "\\\\"}',
        E'quote " and \' ', 'ünï', (select string_agg(decode(md5(g::text),
        'hex'), '') from generate_series(1, 20000) g));
"""


def body(line):
    """An event's members from "key" on, without the read event's
    "snapshot": what a read and an insert of the same row share."""
    start = line.index(',"key":')
    end = line.rfind(',"snapshot":') if line.startswith('{"op":"read"') \
        else len(line) - 1
    return line[start:end]


def raw_events(path, table):
    """{(op, id): body} of the table's reads and inserts, from the file's
    lines as written."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            for op in ("read", "insert"):
                if line.startswith('{"op":"%s","schema":"public","table":'
                                   '"%s"' % (op, table)):
                    key = line[line.index(',"key":{"id":') + 13:]
                    row = int(key[:key.index("}")])
                    assert (op, row) not in out, "%s of %d twice" % (op, row)
                    out[(op, row)] = body(line)
    return out


@pytest.mark.all_versions
def test_read_events_encode_like_inserts(db, pgspout, tmp_path):
    columns = ["%s %s" % (n, t) for n, t, _ in tt.COLUMNS] + \
        ["%s %s" % c for c in EXTRA_COLUMNS]
    db.psql("create type mood as enum ('sad', 'happy');"
            "create table vals (id int primary key, %s);"
            "alter table vals alter column big set storage external;"
            % ", ".join(columns))
    for name, value in tv.HOSTILE.items():
        db.psql('alter database "%s" %s;' % (db.name,
                                             tv.set_clause(name, value)))
    db.create_slot(db.name)
    names = ", ".join(n for n, _, _ in tt.COLUMNS)
    db.psql("insert into vals (id, %s) values %s;" % (names,
                                                      ",".join(tt.ROWS)))
    db.psql(AWKWARD_ROW)
    assert db.scalar("select pg_column_size(big) > 300000 and "
                     "pg_relation_size(reltoastrelid) > 300000 from vals, "
                     "pg_class where id = 4 and oid = 'vals'::regclass") \
        == "t", "the big value is not stored out of line"

    out = str(tmp_path / "out.jsonl")
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--snapshot",
                    "only", "--state-dir", str(tmp_path / "state"),
                    "--sink", "file", "-o", "path=" + out, timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    assert_positions_increase(read_jsonl(out))
    got = raw_events(out, "vals")
    assert sorted(got) == sorted((op, i) for op in ("insert", "read")
                                 for i in (1, 2, 3, 4)), sorted(got)
    for i in (1, 2, 3, 4):
        assert got[("read", i)] == got[("insert", i)], (
            "row %d:\nread:   %s\ninsert: %s"
            % (i, got[("read", i)][:3000], got[("insert", i)][:3000]))
    # The stream's values themselves are checked against the server's
    # text in test_types.py; here one that a database setting would have
    # printed otherwise (DateStyle SQL, DMY), and the escapes.
    events = {(e["op"], e["after"]["id"]): e for e in read_jsonl(out)
              if e["op"] == "read"}
    assert events[("read", 1)]["after"]["c_date"] == "2024-12-31"
    assert events[("read", 4)]["after"]["c_text"] == \
        'tab\there\nline\rcr \\ back \\N \x01\x1f end'
    assert events[("read", 4)]["after"]["c_text_arr"] == \
        ["a\tb", "c\nd", "e\\f", "\\N", "NULL", ""]


# items: a column list (leaving secret out) and a filter on its key;
# flt: a filter on a column its updates change, so an update may leave or
# enter it (the filter's columns must be in the replica identity, and a
# column list must cover it: hence FULL and no list there); parts: both,
# on a partitioned table.
PUBLICATION = """
create table items (id int primary key, a int not null, secret text,
                    b text);
create table flt (id int primary key, a int not null, note text);
alter table flt replica identity full;
create table parts (id int, region text, v int, note text,
                    primary key (id, region)) partition by list (region);
create table parts_eu partition of parts for values in ('eu');
create table parts_us partition of parts for values in ('us');
insert into items select g, g, 's' || g, 'b' || g
from generate_series(1, 60) g;
insert into flt select g, g, 'n' || g from generate_series(1, 60) g;
insert into parts select g, case when g % 2 = 0 then 'eu' else 'us' end,
       g, 'n' || g
from generate_series(1, 40) g;
"""

# The partitions' own list and filter unless the root publishes for them
# (a partitioned table takes neither without publish_via_partition_root).
PUBLISH = {
    True: "create publication pgspout for table items (id, a, b) where "
          "(id % 3 = 0), table flt where (a % 3 = 0), table parts "
          "(id, region, v) where (v > 25) with "
          "(publish_via_partition_root = true);",
    False: "create publication pgspout for table items (id, a, b) where "
           "(id % 3 = 0), table flt where (a % 3 = 0), table parts_eu "
           "(id, region, v) where (v > 25), table parts_us (id, region, v) "
           "where (v > 25);",
}

CHANGES = """
insert into items values (300, 300, 's', 'in'), (301, 301, 's', 'out');
update items set b = 'changed', secret = 'x' where id = 9;
update flt set a = 61 where id = 6;            -- leaves the filter
update flt set a = 63, note = 'x' where id = 7; -- enters it
update flt set note = 'changed' where id = 9;
insert into parts values (100, 'eu', 100, 'in'), (101, 'us', 1, 'out');
"""


def shape(events, table):
    """{id: after} of the table's read events."""
    return {e["after"]["id"]: e["after"] for e in events
            if e["op"] == "read" and e["table"] == table}


@pytest.mark.since(15)
@pytest.mark.parametrize("via_root", [True, False])
def test_column_list_and_row_filter_shape_the_copy(db, pgspout, tmp_path,
                                                   via_root):
    db.psql(PUBLICATION + PUBLISH[via_root])
    out = str(tmp_path / "copy.jsonl")
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--create-slot",
                    "--snapshot", "only", "--state-dir",
                    str(tmp_path / "state"), "--backfill-chunk-rows", "7",
                    "--sink", "file", "-o", "path=" + out, timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    events = read_jsonl(out)
    items = shape(events, "items")
    assert sorted(items) == list(range(3, 61, 3))
    assert all(list(row) == ["id", "a", "b"] for row in items.values())
    assert items[9] == {"id": 9, "a": 9, "b": "b9"}
    flt = shape(events, "flt")
    assert sorted(flt) == list(range(3, 61, 3))
    assert flt[9] == {"id": 9, "a": 9, "note": "n9"}
    parts_tables = ["parts"] if via_root else ["parts_eu", "parts_us"]
    parts = {}
    for table in parts_tables:
        parts.update(shape(events, table))
    assert sorted(parts) == list(range(26, 41))
    assert all(list(row) == ["id", "region", "v"] for row in parts.values())
    schemas = {e["table"]: [c["name"] for c in e["columns"]]
               for e in events if e["op"] == "schema"}
    assert schemas["items"] == ["id", "a", "b"]

    # The stream after the copy: the same columns, the same filter.
    db.psql(CHANGES)
    stream_out = str(tmp_path / "stream.jsonl")
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--state-dir",
                    str(tmp_path / "state"), "--endpos", db.current_lsn(),
                    "--sink", "file", "-o", "path=" + stream_out,
                    timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    changes = [e for e in read_jsonl(stream_out)
               if e["op"] in ("insert", "update", "delete")]

    def ops(tables):
        return [(e["op"], (e["after"] or e["before"])["id"]) for e in changes
                if e["table"] in tables]
    assert ops(["items"]) == [("insert", 300), ("update", 9)]
    assert [e["after"] for e in changes if e["table"] == "items"] == [
        {"id": 300, "a": 300, "b": "in"}, {"id": 9, "a": 9, "b": "changed"}]
    assert ops(["flt"]) == [("delete", 6), ("insert", 7), ("update", 9)]
    assert ops(parts_tables) == [("insert", 100)]
