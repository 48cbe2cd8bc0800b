"""PostgreSQL 18's published generated columns (README "--publish-generated-
columns"): the publication --create-slot makes publishes stored generated
columns unless told `none`; published, they are in insert, update and read
events like any column (read events equal to the inserts of the same rows),
and schema events mark them "generated": true; not published, no event
carries them."""

import os
import signal

import pytest

from pgharness import read_jsonl, wait_until

TABLE = """
create table gen (id int primary key, a int not null, label text,
                  doubled int generated always as (a * 2) stored,
                  tag text generated always as ('#' || label) stored);
insert into gen (id, a, label) values (1, 10, 'one'), (2, 20, 'two');
"""


def events_in(path):
    return read_jsonl(path) if os.path.exists(path) else []


def stream(db, pgspout, tmp_path, *extra):
    """--create-slot with an initial snapshot, then a change of each kind;
    returns (events, the publication's pubgencols)."""
    db.psql(TABLE)
    out = str(tmp_path / "out.jsonl")
    proc = pgspout.spawn("-d", db.conninfo, "--slot", db.name, "--sink",
                         "file", "-o", "path=%s" % out, "-o", "fsync=false",
                         "-s", "1", "--create-slot", "--state-dir",
                         str(tmp_path / "state"), *extra)
    try:
        def reads():
            assert proc.poll() is None, pgspout.stderr_of(proc)
            return len([e for e in events_in(out) if e["op"] == "read"])
        wait_until(lambda: reads() == 2, timeout=120, what="the snapshot")
        db.psql("insert into gen (id, a, label) values (3, 30, 'three');"
                "update gen set a = 11 where id = 1;"
                "delete from gen where id = 2;")
        wait_until(lambda: any(e["op"] == "delete" for e in read_jsonl(out)),
                   timeout=60, what="the delete")
    finally:
        assert pgspout.stop(proc, signal.SIGINT) == 0, pgspout.stderr_of(proc)
    mode = db.scalar("select pubgencols from pg_publication where "
                     "pubname = 'pgspout'")
    return read_jsonl(out), mode


def rows(events, op):
    return {e["after"]["id"]: e["after"] for e in events if e["op"] == op}


@pytest.mark.since(18)
def test_generated_columns_published_by_default(db, pgspout, tmp_path):
    events, mode = stream(db, pgspout, tmp_path)
    assert mode == "s"  # stored
    assert rows(events, "read") == {
        1: {"id": 1, "a": 10, "label": "one", "doubled": 20, "tag": "#one"},
        2: {"id": 2, "a": 20, "label": "two", "doubled": 40, "tag": "#two"}}
    assert rows(events, "insert") == {
        3: {"id": 3, "a": 30, "label": "three", "doubled": 60,
            "tag": "#three"}}
    assert rows(events, "update") == {
        1: {"id": 1, "a": 11, "label": "one", "doubled": 22, "tag": "#one"}}
    schema = [e for e in events if e["op"] == "schema"]
    assert schema, events
    for e in schema:
        marks = {c["name"]: c.get("generated", False) for c in e["columns"]}
        assert marks == {"id": False, "a": False, "label": False,
                         "doubled": True, "tag": True}, e["columns"]
        assert all("generated" not in c for c in e["columns"]
                   if c["name"] in ("id", "a", "label"))


@pytest.mark.since(18)
def test_generated_columns_left_out_when_told(db, pgspout, tmp_path):
    events, mode = stream(db, pgspout, tmp_path,
                          "--publish-generated-columns", "none")
    assert mode == "n"
    assert rows(events, "read") == {
        1: {"id": 1, "a": 10, "label": "one"},
        2: {"id": 2, "a": 20, "label": "two"}}
    assert rows(events, "insert") == {3: {"id": 3, "a": 30, "label": "three"}}
    assert rows(events, "update") == {1: {"id": 1, "a": 11, "label": "one"}}
    for e in events:
        if e["op"] == "schema":
            assert [c["name"] for c in e["columns"]] == ["id", "a", "label"]
            assert all("generated" not in c for c in e["columns"])


def test_choice_is_checked(pgspout, tmp_path):
    r = pgspout.run("-d", "dbname=x", "--sink", "file", "-o", "path=/dev/null",
                    "--publish-generated-columns", "virtual")
    assert r.returncode == 2, r.stderr
    assert "--publish-generated-columns" in r.stderr
    assert "stored" in r.stderr and "none" in r.stderr
