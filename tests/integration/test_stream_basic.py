"""insert/update/delete/truncate events, their common fields, and
REPLICA IDENTITY DEFAULT versus FULL."""

import re

import pytest

from pgharness import assert_positions_increase, data_events, lsn_to_int

LSN_RE = re.compile(r"^[0-9A-F]+/[0-9A-F]+$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def xid_of(db, sql):
    """Runs sql in one transaction and returns that transaction's xid."""
    out = db.psql("begin;\n%s\nselect txid_current();\ncommit;" % sql)
    return int(out.split()[-1]) & 0xFFFFFFFF


def check_common(e):
    for k in ("op", "schema", "table", "lsn", "commit_lsn", "xid",
              "commit_time"):
        assert k in e, "%s lacks %s" % (e, k)
    assert LSN_RE.match(e["lsn"]), e
    assert LSN_RE.match(e["commit_lsn"]), e
    assert isinstance(e["xid"], int), e
    # A change's seq is its place in the transaction; a schema event is no
    # change and has none.
    if e["op"] == "schema":
        assert "seq" not in e, e
    else:
        assert isinstance(e["seq"], int) and e["seq"] >= 1, e
    if e["op"] != "schema":
        assert TIME_RE.match(e["commit_time"]), e


@pytest.mark.all_versions
def test_insert_update_delete(db, stream):
    db.psql("create table orders (id int primary key, note text);")
    db.create_slot(db.name)
    x1 = xid_of(db, "insert into orders values (1, 'hello'), (2, 'two');")
    x2 = xid_of(db, "update orders set note = 'changed' where id = 1;"
                    "update orders set id = 3 where id = 2;")
    x3 = xid_of(db, "delete from orders where id = 3;")

    events = stream()
    for e in events:
        check_common(e)
    assert_positions_increase(events)

    schema = [e for e in events if e["op"] == "schema"]
    assert len(schema) == 1
    assert schema[0]["schema"] == "public" and schema[0]["table"] == "orders"
    assert schema[0]["columns"] == [
        {"name": "id", "type": "integer", "type_oid": 23, "key": True},
        {"name": "note", "type": "text", "type_oid": 25, "key": False},
    ]
    assert events.index(schema[0]) == 0

    changes = data_events(events)
    assert [(e["op"], e["xid"]) for e in changes] == [
        ("insert", x1), ("insert", x1), ("update", x2), ("update", x2),
        ("delete", x3)]
    # seq numbers each transaction's changes 1..n
    by_commit = {}
    for e in changes:
        by_commit.setdefault(e["commit_lsn"], []).append(e["seq"])
    assert len(by_commit) == 3
    for seqs in by_commit.values():
        assert seqs == list(range(1, len(seqs) + 1))
    ins1, ins2, upd_note, upd_key, dele = changes
    assert ins1["key"] == {"id": 1}
    assert ins1["before"] is None
    assert ins1["after"] == {"id": 1, "note": "hello"}
    assert ins1["unchanged_toast"] == []
    assert ins2["after"] == {"id": 2, "note": "two"}
    assert ins1["commit_lsn"] == ins2["commit_lsn"]
    assert lsn_to_int(ins1["lsn"]) < lsn_to_int(ins2["lsn"])
    assert lsn_to_int(ins2["lsn"]) <= lsn_to_int(ins2["commit_lsn"])

    # DEFAULT identity: no old row unless the key changed.
    assert upd_note["before"] is None
    assert upd_note["key"] == {"id": 1}
    assert upd_note["after"] == {"id": 1, "note": "changed"}
    assert upd_key["before"] == {"id": 2}
    assert upd_key["after"] == {"id": 3, "note": "two"}
    assert upd_key["key"] == {"id": 3}

    assert dele["before"] == {"id": 3}
    assert dele["key"] == {"id": 3}
    assert dele["after"] is None
    for e in changes:
        assert e["schema"] == "public" and e["table"] == "orders"


@pytest.mark.all_versions
def test_replica_identity_full(db, stream):
    db.psql("create table items (id int primary key, name text, qty int);"
            "alter table items replica identity full;"
            "insert into items values (1, 'a', 10), (2, 'b', 20);")
    db.create_slot(db.name)
    db.psql("update items set qty = 11 where id = 1;"
            "delete from items where id = 2;")
    changes = data_events(stream())
    assert [e["op"] for e in changes] == ["update", "delete"]
    upd, dele = changes
    assert upd["before"] == {"id": 1, "name": "a", "qty": 10}
    assert upd["after"] == {"id": 1, "name": "a", "qty": 11}
    assert dele["before"] == {"id": 2, "name": "b", "qty": 20}
    assert dele["after"] is None


def test_replica_identity_index(db, stream):
    db.psql("create table acct (id int not null, code text not null, v int);"
            "create unique index acct_code on acct (code);"
            "alter table acct replica identity using index acct_code;"
            "insert into acct values (1, 'x', 1);")
    db.create_slot(db.name)
    db.psql("update acct set v = 2;"
            "update acct set code = 'y';"
            "delete from acct;")
    events = stream()
    schema = [e for e in events if e["op"] == "schema"][0]
    assert [c["key"] for c in schema["columns"]] == [False, True, False]
    upd, upd_key, dele = data_events(events)
    assert upd["before"] is None and upd["key"] == {"code": "x"}
    assert upd_key["before"] == {"code": "x"}
    assert upd_key["after"] == {"id": 1, "code": "y", "v": 2}
    assert dele["before"] == {"code": "y"} and dele["key"] == {"code": "y"}


@pytest.mark.all_versions
def test_truncate(db, stream):
    db.psql("create table a (id int primary key);"
            "create table b (id serial primary key);"
            "create table parent (id int primary key);"
            "create table child (id int primary key,"
            " parent_id int references parent);"
            "insert into a values (1); insert into b default values;"
            "insert into parent values (1); insert into child values (1, 1);")
    db.create_slot(db.name)
    db.psql("truncate a, b restart identity;")
    db.psql("truncate parent cascade;")
    db.psql("insert into a values (7);")
    events = stream()
    assert_positions_increase(events)
    changes = data_events(events)
    truncs = [e for e in changes if e["op"] == "truncate"]
    by_table = {e["table"]: e for e in truncs}
    assert sorted(by_table) == ["a", "b", "child", "parent"]
    assert len(truncs) == 4
    assert by_table["a"]["restart_identity"] is True
    assert by_table["b"]["restart_identity"] is True
    assert by_table["a"]["cascade"] is False
    assert by_table["parent"]["cascade"] is True
    assert by_table["child"]["cascade"] is True
    assert by_table["parent"]["restart_identity"] is False
    assert by_table["a"]["commit_lsn"] == by_table["b"]["commit_lsn"]
    assert changes[-1]["op"] == "insert" and changes[-1]["after"] == {"id": 7}
