"""Typed column access (ABI 1.6): a sink built against 1.6
(tests/sinks/columns_sink.c) writes what the accessors return for every
column of every event: names, type OIDs and names, key membership, and for
the old row, the new row and the key each value's state and text. The
text must be the server's own output (psql's `SELECT col`; not col::text,
which prints a boolean as "true", not "t") for every type of
test_types.py (quotes, unicode, arrays, json, NULLs), an unchanged TOAST
value must read as such, and the columns each row image holds must be the
ones the event's JSON (the file sink's, same run) names."""

import json

import faults_support as fs
from ops_support import fault_sink_path
from pgharness import data_events, read_jsonl
from test_messages import wal_end
from test_types import COLUMNS, ROWS

NAMES = ["id"] + [n for n, _, _ in COLUMNS] + ["big"]
BIG = "(select string_agg(md5(g::text), '') from generate_series(1, 800) g)"


def read_columns(path):
    """The columns sink's file as a list of events: {op, table, columns:
    [(name, oid, type, key)], old/new/key: [(state, text or None)]}."""
    events = []
    with open(path) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if fields[0] == "E":
                events.append({"op": fields[1], "table": fields[2],
                               "columns": [], "old": [], "new": [],
                               "key": []})
            elif fields[0] == "C":
                events[-1]["columns"].append((
                    bytes.fromhex(fields[2]).decode(), int(fields[3]),
                    bytes.fromhex(fields[4]).decode(), fields[5] == "1"))
            else:
                text = bytes.fromhex(fields[4]).decode()
                events[-1][fields[1]].append(
                    (fields[3], text if fields[3] == "T" else None))
    return events


def server_texts(db, table, names, where):
    """Each column's text as the server prints it (None for NULL)."""
    row = db.query("select %s from %s where %s" % (", ".join(names), table,
                                                    where))
    assert len(row) == 1, (table, where, row)
    return row[0]


def as_states(texts):
    return [("N", None) if t is None else ("T", t) for t in texts]


def image_names(event, image):
    """The columns a row image holds, as the JSON names them."""
    return [c[0] for c, (state, _) in zip(event["columns"], event[image])
            if state in ("T", "N")]


def check_against_json(typed, js):
    """The same columns as the JSON's key, before, after and
    unchanged_toast."""
    assert typed["op"] == js["op"]
    assert typed["table"] == "%s.%s" % (js["schema"], js["table"])
    for image, member in (("key", "key"), ("old", "before"),
                          ("new", "after")):
        want = sorted(js[member]) if js[member] is not None else []
        assert sorted(image_names(typed, image)) == want, (image, js)
    toast = [c[0] for c, (state, _) in zip(typed["columns"], typed["new"])
             if state == "U"]
    assert toast == js["unchanged_toast"]


def run_both(db, pgspout, tmp_path):
    json_out, typed_out = str(tmp_path / "out.jsonl"), str(tmp_path / "t.tsv")
    conf = fs.write_config(str(tmp_path / "pgspout.conf"), db, db.name, [
        ("json", "file", {"path": json_out}),
        ("typed", fault_sink_path().replace("pgspout_fault.so",
                                            "pgspout_columns.so"),
         {"path": typed_out}),
    ])
    r = pgspout.run("-c", conf, "--endpos", wal_end(db))
    assert r.returncode == 0, r.stderr[-4000:]
    typed = [e for e in read_columns(typed_out) if e["op"] != "schema"]
    js = data_events(read_jsonl(json_out))
    assert len(typed) == len(js)
    for t, j in zip(typed, js):
        check_against_json(t, j)
    return read_columns(typed_out), typed


def test_typed_values_are_the_servers_text(db, pgspout, tmp_path):
    db.psql("create type mood as enum ('sad', 'happy');"
            "create table vals (id int primary key, %s, big text);"
            % ", ".join("%s %s" % (n, t) for n, t, _ in COLUMNS))
    db.create_slot(db.name)
    db.psql("insert into vals (%s) values %s;"
            % (", ".join(NAMES[:-1]), ",".join(ROWS)))
    inserted = {i: server_texts(db, "vals", NAMES, "id = %d" % i)
                for i in (1, 2, 3)}
    db.psql("update vals set big = %s where id = 1;" % BIG)
    with_big = server_texts(db, "vals", NAMES, "id = 1")
    assert len(with_big[-1]) > 20000
    # big is stored out of line and not sent again: unchanged TOAST.
    db.psql("update vals set c_text = E'now \"q\" \\u00fc\\t' where id = 1;")
    changed = server_texts(db, "vals", NAMES, "id = 1")
    db.psql("update vals set id = 10 where id = 2; delete from vals "
            "where id = 3;")

    everything, typed = run_both(db, pgspout, tmp_path)
    schema = [e for e in everything if e["op"] == "schema"]
    assert len(schema) == 1
    attrs = db.query(
        "select attname, atttypid::int, format_type(atttypid, atttypmod) "
        "from pg_attribute where attrelid = 'vals'::regclass and attnum > 0 "
        "and not attisdropped order by attnum")
    assert [c[:3] for c in schema[0]["columns"]] == \
        [(n, int(o), t) for n, o, t in attrs]
    assert [c[3] for c in schema[0]["columns"]] == \
        [n == "id" for n in NAMES]

    absent = [("A", None)] * len(NAMES)
    only_key = [("A", None)] * (len(NAMES) - 1)
    assert [e["op"] for e in typed] == ["insert"] * 3 + ["update"] * 3 + \
        ["delete"]
    for event, i in zip(typed[:3], (1, 2, 3)):
        assert event["new"] == as_states(inserted[i]), i
        assert event["old"] == absent
        assert event["key"] == [("T", str(i))] + only_key
    assert typed[3]["new"] == as_states(with_big)
    # The TOASTed value was not sent; everything else is as printed.
    assert typed[4]["new"] == as_states(changed[:-1]) + [("U", None)]
    assert typed[4]["old"] == absent
    # The key moved: the old row holds the old key only.
    assert typed[5]["old"] == [("T", "2")] + only_key
    assert typed[5]["key"][0] == ("T", "10")
    assert typed[6]["old"] == [("T", "3")] + only_key
    assert typed[6]["new"] == absent
    assert typed[6]["key"] == [("T", "3")] + only_key


def test_typed_old_row_of_replica_identity_full(db, pgspout, tmp_path):
    db.psql("create table full_t (a text, b int[], c text, big text);"
            "alter table full_t replica identity full;")
    db.create_slot(db.name)
    db.psql("insert into full_t values (E'x\"y\\\\z', '{1,NULL}', "
            "E'\\u00fc', %s);" % BIG)
    names = ["a", "b", "c", "big"]
    before = server_texts(db, "full_t", names, "true")
    db.psql("update full_t set c = NULL; delete from full_t;")
    _, typed = run_both(db, pgspout, tmp_path)
    assert [e["op"] for e in typed] == ["insert", "update", "delete"]
    # Every column is part of a FULL identity: the whole old row, NULLs
    # included, in the old image and the key.
    assert typed[1]["old"] == as_states(before)
    assert typed[1]["new"][:3] == as_states(before[:2] + [None])
    assert typed[2]["old"] == as_states(before[:2] + [None] + before[3:])
    assert typed[2]["key"] == typed[2]["old"]
    assert all(json.dumps(t) for t in typed)
