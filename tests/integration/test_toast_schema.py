"""Unchanged TOAST values and table definitions changing mid-stream."""

import pytest

from pgharness import assert_positions_increase, data_events

# md5 chunks do not compress well, and STORAGE EXTERNAL stores out of line
# without trying to.
BIG = "(select string_agg(md5(g::text), '') from generate_series(1, 100) g)"


@pytest.mark.all_versions
def test_unchanged_toast(db, stream):
    db.psql("create table docs (id int primary key, body text, n int);"
            "alter table docs alter column body set storage external;"
            "insert into docs values (1, %s, 1);" % BIG)
    body = db.scalar("select body from docs where id = 1")
    assert len(body) == 3200
    db.create_slot(db.name)
    db.psql("update docs set n = 2 where id = 1;")
    db.psql("update docs set body = body || 'x', n = 3 where id = 1;")
    db.psql("insert into docs values (2, %s, 4);" % BIG)

    upd, upd_body, ins = data_events(stream())
    assert upd["op"] == "update"
    assert upd["unchanged_toast"] == ["body"]
    assert "body" not in upd["after"]
    assert upd["after"] == {"id": 1, "n": 2}
    # a changed TOAST value is sent in full
    assert upd_body["unchanged_toast"] == []
    assert upd_body["after"]["body"] == body + "x"
    assert ins["unchanged_toast"] == []
    assert ins["after"]["body"] == body


@pytest.mark.all_versions
def test_alter_table_mid_stream(db, stream):
    db.psql("create table evolving (id int primary key, a text);")
    db.create_slot(db.name)
    db.psql("insert into evolving values (1, 'one');")
    db.psql("alter table evolving add column b int default 42;")
    db.psql("insert into evolving values (2, 'two', 7);"
            "update evolving set a = 'uno' where id = 1;")
    db.psql("alter table evolving drop column a;")
    db.psql("insert into evolving values (3, 8);")

    events = stream()
    assert_positions_increase(events)
    ops = [e["op"] for e in events]
    assert ops == ["schema", "insert", "schema", "insert", "update",
                   "schema", "insert"]
    s1, i1, s2, i2, u1, s3, i3 = events
    assert [c["name"] for c in s1["columns"]] == ["id", "a"]
    assert [(c["name"], c["type"]) for c in s2["columns"]] == [
        ("id", "integer"), ("a", "text"), ("b", "integer")]
    assert [c["name"] for c in s3["columns"]] == ["id", "b"]
    for s in (s1, s2, s3):
        assert s["schema"] == "public" and s["table"] == "evolving"
        for k in ("lsn", "commit_lsn", "xid", "commit_time"):
            assert k in s
        assert "seq" not in s
    assert i1["after"] == {"id": 1, "a": "one"}
    assert i2["after"] == {"id": 2, "a": "two", "b": 7}
    assert u1["after"] == {"id": 1, "a": "uno", "b": 42}
    assert i3["after"] == {"id": 3, "b": 8}
