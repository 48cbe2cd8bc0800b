"""The BigQuery sink against a BigQuery emulator (bqemulator, started by
bigquery_server.py): a mixed workload from a real PostgreSQL goes through
pgspout, then the latest-state view is read back and compared, row by row,
with the source table's final state."""

import base64
import datetime
import decimal
import json
import os

import pytest

import bigquery_server
import faults_support as fs
from messages_support import (MESSAGE_CONTENTS, contents, message_workload,
                              of_ops, wal_end)
from pgharness import lsn_to_int, read_jsonl

DATASET = "cdc"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    yield from bigquery_server.Emulator(
        str(tmp_path_factory.mktemp("bigquery"))).session()


_datasets = iter(range(1, 1000))


@pytest.fixture
def dataset(emulator):
    name = "%s_%d" % (DATASET, next(_datasets))
    emulator.create_dataset(name)
    return name


def sink_args(db, emulator, dataset, *extra):
    return ["-d", db.conninfo, "--slot", db.name, "--sink", "bigquery",
            "-o", "project=" + bigquery_server.PROJECT,
            "-o", "dataset=" + dataset, "-o", "endpoint=" + emulator.url,
            "-o", "retry_base=20ms", "-o", "retry_max=200ms",
            "-o", "request_timeout=30s"] + list(extra)


def stream_to_bigquery(db, pgspout, emulator, dataset, *extra):
    env = dict(os.environ)
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    r = pgspout.run(*sink_args(db, emulator, dataset, "--endpos",
                               db.current_lsn(), *extra), env=env,
                    timeout=150)
    assert r.returncode == 0, "pgspout exited %d:\n%s\nemulator:\n%s" % (
        r.returncode, r.stderr[-4000:], emulator.log_tail())
    return r


# ---- PostgreSQL values in the form bigquery_server.convert gives ----

def micros(text):
    dt = datetime.datetime.fromisoformat(text)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    delta = dt - epoch
    return (delta.days * 86400 + delta.seconds) * 1000000 + \
        delta.microseconds


def normalise_pg(column, value):
    if value is None:
        return [] if column == "tags" else None
    if column == "price":
        return decimal.Decimal(str(value))
    if column == "ratio":
        return float(value)
    if column == "created":
        return micros(value)
    if column == "raw":
        return bytes.fromhex(value[2:])
    return value


def pg_state(db, table):
    rows = db.query("select row_to_json(t)::text from %s t order by id"
                    % table)
    out = []
    for (text,) in rows:
        row = json.loads(text, parse_float=decimal.Decimal)
        out.append({k: normalise_pg(k, v) for k, v in row.items()})
    return out


def bq_state(emulator, dataset, view, columns):
    rows = emulator.query("SELECT * FROM `%s.%s.%s` ORDER BY id"
                          % (bigquery_server.PROJECT, dataset, view))
    return [{c: r.get(c) for c in columns} for r in rows]


def assert_same_rows(expected, actual):
    assert [r["id"] for r in actual] == [r["id"] for r in expected]
    for want, got in zip(expected, actual):
        for column, value in want.items():
            if isinstance(value, float):
                assert got[column] == pytest.approx(value), (want["id"],
                                                             column)
            else:
                assert got[column] == value, (want["id"], column, got[column],
                                              value)


MIXED_SCHEMA = """
create table items (
    id int primary key, name text, qty bigint, price numeric(12,2),
    ratio double precision, active boolean, created timestamptz, day date,
    doc jsonb, raw bytea, tags text[], big text);
alter table items alter column big set storage external;
"""

MIXED_WORKLOAD = """
insert into items
select g, 'item ' || g, g * 1000000000000, g * 1.25, g / 3.0, g % 2 = 0,
       timestamptz '2026-11-21 23:55:22.123456+00' + g * interval '1 hour',
       date '2026-01-01' + g, jsonb_build_object('n', g, 'list', array[g, 2]),
       decode(lpad(to_hex(g), 4, '0'), 'hex'), array['t' || g, 'x'],
       repeat(chr(65 + g % 26), 9000 + g)
from generate_series(1, 30) g;
update items set qty = qty + 1, name = name || ' (updated)'
 where id % 3 = 0;
delete from items where id % 5 = 0;
update items set doc = '{"changed": true}', big = repeat('z', 12000)
 where id = 7;
begin;
update items set ratio = -1.5 where id in (1, 2);
update items set active = not active where id = 2;
commit;
alter table items add column note text;
update items set note = 'note ' || id where id % 4 = 0;
insert into items (id, name, note, big) values (100, 'late', 'added later',
    repeat('q', 10000));
update items set qty = 7 where id = 100;
-- A key change carries no unchanged TOAST value across (README: limits),
-- so this one rewrites big too.
update items set id = 200, big = big || '!' where id = 8;
delete from items where id = 11;
insert into items (id, name, tags) values (11, 'back again', '{a,b}');
"""


def test_mixed_workload_view_matches_source(db, pgspout, emulator, dataset):
    db.psql(MIXED_SCHEMA)
    db.create_slot(db.name)
    db.psql(MIXED_WORKLOAD)

    stream_to_bigquery(db, pgspout, emulator, dataset)

    expected = pg_state(db, "items")
    columns = list(expected[0].keys())
    assert "note" in columns
    actual = bq_state(emulator, dataset, "public_items", columns)
    assert len(actual) == len(expected) == 25
    assert_same_rows(expected, actual)

    # The column added mid-stream is in the changelog table too, and the
    # changelog holds one row per change (plus one per key change).
    fields = [f["name"] for f in
              emulator.table(dataset, "public_items_changelog")
              ["schema"]["fields"]]
    assert "note" in fields and "_unchanged_toast" in fields
    ops = emulator.query(
        "SELECT _op, COUNT(*) AS n FROM `%s.%s.public_items_changelog` "
        "GROUP BY _op ORDER BY _op" % (bigquery_server.PROJECT, dataset))
    counts = {r["_op"]: r["n"] for r in ops}
    assert counts["insert"] == 32
    assert counts["delete"] == 7 + 1  # 7 deletes, 1 for the key change
    toast = emulator.query(
        "SELECT COUNT(*) AS n FROM `%s.%s.public_items_changelog` WHERE "
        "'big' IN UNNEST(_unchanged_toast)"
        % (bigquery_server.PROJECT, dataset))
    assert toast[0]["n"] > 0, "the workload never left big unchanged"


def test_restart_and_truncate(db, pgspout, emulator, dataset):
    """A second run finds its tables and adds to them; a TRUNCATE empties
    the view; later rows appear again."""
    db.psql("create table t (id int primary key, v text);")
    db.create_slot(db.name)
    db.psql("insert into t values (1, 'a'), (2, 'b'), (3, 'c');")
    stream_to_bigquery(db, pgspout, emulator, dataset)
    view = lambda: emulator.query(  # noqa: E731
        "SELECT id, v FROM `%s.%s.public_t` ORDER BY id"
        % (bigquery_server.PROJECT, dataset))
    assert view() == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"},
                      {"id": 3, "v": "c"}]

    db.psql("update t set v = 'B' where id = 2; truncate t; "
            "insert into t values (4, 'd'); "
            "alter table t add column w int; update t set w = 5;")
    stream_to_bigquery(db, pgspout, emulator, dataset)
    rows = emulator.query("SELECT id, v, w FROM `%s.%s.public_t` ORDER BY id"
                          % (bigquery_server.PROJECT, dataset))
    assert rows == [{"id": 4, "v": "d", "w": 5}]


def test_json_null_is_not_sql_null(db, pgspout, emulator, dataset):
    """A jsonb value holding JSON null is a JSON null in BigQuery's JSON
    column (the text "null" in the STRING column of a domain over jsonb);
    SQL NULL stays a NULL cell: both as the server tells them apart."""
    db.psql("create domain jdoc as jsonb;"
            "create table docs (id int primary key, doc jsonb, d jdoc);")
    db.create_slot(db.name)
    db.psql("insert into docs values (1, 'null', 'null'), (2, NULL, NULL),"
            " (3, '{\"a\": null}', NULL);")
    stream_to_bigquery(db, pgspout, emulator, dataset)

    expected = [[int(r[0]), r[1] == "t", r[2], r[3] == "t", r[4]]
                for r in db.query(
                    "select id, doc is null, doc::text, d is null, d::text "
                    "from docs order by id")]
    rows = emulator.query(
        "SELECT id, doc IS NULL AS doc_null, TO_JSON_STRING(doc) AS doc_text,"
        " d IS NULL AS d_null, d FROM `%s.%s.public_docs_changelog` "
        "ORDER BY id" % (bigquery_server.PROJECT, dataset))
    got = [[r["id"], r["doc_null"],
            None if r["doc_null"] else json.dumps(json.loads(r["doc_text"])),
            r["d_null"], r["d"]] for r in rows]
    expected = [[i, dn, None if dt is None else json.dumps(json.loads(dt)),
                 n, d] for i, dn, dt, n, d in expected]
    assert got == expected
    assert expected[0][1:] == [False, "null", False, "null"]


# ---- read events: an initial snapshot under load ----

def bq_value(value, bq_type):
    """A value as the event encodes it, in the form bigquery_server.convert
    gives for its BigQuery column type."""
    if value is None:
        return None
    if bq_type == "NUMERIC":
        return decimal.Decimal(value)
    if bq_type == "TIMESTAMP":
        return micros(value.replace(" ", "T", 1).replace("+00", "+00:00"))
    return value


def test_initial_snapshot_under_load(db, pgspout, emulator, dataset,
                                     tmp_path):
    """pgspout --create-slot copies tables with keys of every kind while a
    workload changes them: each latest-state view equals its table row by
    row, read rows counting as inserts (but for the TOASTed values the
    view documents it cannot carry across a key change)."""
    import backfill_support as bs
    import snapshot_sinks
    env = dict(os.environ)
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    events = snapshot_sinks.run(db, pgspout, tmp_path, [
        ("warehouse", "bigquery", {
            "project": bigquery_server.PROJECT, "dataset": dataset,
            "endpoint": emulator.url, "retry_base": "20ms",
            "retry_max": "200ms", "request_timeout": "30s"})], env=env)
    lost_total = 0
    for table in bs.KEYS:
        fields = emulator.table(dataset, "public_%s_changelog"
                                % table)["schema"]["fields"]
        types = {f["name"]: f["type"] for f in fields}
        lost = snapshot_sinks.toast_lost_across_key_changes(events, table)
        lost_total += len(lost)
        want = {}
        for key, row in bs.table_contents(db, table).items():
            want[key] = {c: None if c in lost.get(key, ()) else
                         bq_value(v, types[c]) for c, v in row.items()}
        rows = emulator.query("SELECT * FROM `%s.%s.public_%s`"
                              % (bigquery_server.PROJECT, dataset, table))
        got = {}
        for r in rows:
            row = {c: r.get(c) for c in next(iter(want.values()))}
            got[bs.row_key(table, bs.plain(row))] = row
        assert len(got) == len(rows), "a row twice in the view of " + table
        differ = [(k, got.get(k), want.get(k)) for k in set(got) | set(want)
                  if got.get(k) != want.get(k)]
        assert not differ, (table, len(differ), differ[:2])
        ops = emulator.query(
            "SELECT _op, COUNT(*) AS n FROM `%s.%s.public_%s_changelog` "
            "GROUP BY _op" % (bigquery_server.PROJECT, dataset, table))
        counts = {r["_op"]: r["n"] for r in ops}
        assert counts.get("read", 0) == len(bs.reads(events, table))
    print("rows whose TOASTed value the view lost to a key change:",
          lost_total)


# ---- messages and transaction events (pgspout's messages and
# transaction_events): a row each in the messages table, begin and commit
# events in the transactions table when asked, each row the event as the
# file sink writes it; a restart adds only what is new; nothing of them
# when skipped or off.

MESSAGE_COLUMNS = ["op", "lsn", "commit_lsn", "seq", "xid", "commit_time",
                   "prefix", "content", "content_base64", "transactional"]
TRANSACTION_COLUMNS = ["op", "lsn", "commit_lsn", "seq", "xid", "commit_time",
                       "event_count", "tables", "messages"]
BOTH = "messages = true;\ntransaction_events = true;"


def expected_rows(events, columns):
    """The file sink's events in the form the emulator's answers take."""
    def cell(event, column):
        v = event.get(column)
        if v is None:
            return None
        if column in ("lsn", "commit_lsn"):
            return lsn_to_int(v)
        if column == "commit_time":
            return micros(v)
        if column == "content_base64":
            return base64.b64decode(v)
        return v
    return [{c: cell(e, c) for c in columns} for e in events]


def table_rows(emulator, dataset, table, columns):
    return emulator.query(
        "SELECT %s FROM `%s.%s.%s` ORDER BY commit_lsn, seq"
        % (", ".join(columns), bigquery_server.PROJECT, dataset, table))


def run_bigquery_config(pgspout, db, emulator, dataset, tmp_path, sinks,
                        extra, bq_options):
    options = {"project": bigquery_server.PROJECT, "dataset": dataset,
               "endpoint": emulator.url, "retry_base": "20ms",
               "retry_max": "200ms"}
    options.update(bq_options)
    conf = fs.write_config(str(tmp_path / "pgspout.conf"), db, db.name,
                           sinks + [("bq", "bigquery", options)],
                           extra=extra)
    env = dict(os.environ)
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    r = pgspout.run("-c", conf, "--endpos", wal_end(db), env=env,
                    timeout=150)
    assert r.returncode == 0, "pgspout exited %d:\n%s\nemulator:\n%s" % (
        r.returncode, r.stderr[-4000:], emulator.log_tail())


def test_messages_and_transactions_tables(db, pgspout, emulator, dataset,
                                          tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    message_workload(db)
    out = str(tmp_path / "out.jsonl")
    run = lambda: run_bigquery_config(  # noqa: E731
        pgspout, db, emulator, dataset, tmp_path,
        [("file", "file", {"path": out})], BOTH, {"transactions": "table"})
    run()
    events = read_jsonl(out)
    messages = of_ops(events, "message")
    assert contents(messages) == MESSAGE_CONTENTS
    assert table_rows(emulator, dataset, "pgspout_messages",
                      MESSAGE_COLUMNS) == expected_rows(messages,
                                                        MESSAGE_COLUMNS)
    transactions = of_ops(events, "begin", "commit")
    assert [e["op"] for e in transactions] == ["begin", "commit"] * 2
    assert table_rows(emulator, dataset, "pgspout_transactions",
                      TRANSACTION_COLUMNS) == expected_rows(
                          transactions, TRANSACTION_COLUMNS)
    assert [r["id"] for r in emulator.query(
        "SELECT id FROM `%s.%s.public_t` ORDER BY id"
        % (bigquery_server.PROJECT, dataset))] == [1, 2, 3]

    # A restart goes on from the confirmed position: the tables get the new
    # events, and nothing twice.
    db.psql("begin; insert into t values (4);"
            "select pg_logical_emit_message(true, 'app', 'later'); commit;")
    run()
    events = read_jsonl(out)
    assert contents(of_ops(events, "message")) == MESSAGE_CONTENTS + ["later"]
    assert table_rows(emulator, dataset, "pgspout_messages",
                      MESSAGE_COLUMNS) == expected_rows(
                          of_ops(events, "message"), MESSAGE_COLUMNS)
    assert table_rows(emulator, dataset, "pgspout_transactions",
                      TRANSACTION_COLUMNS) == expected_rows(
                          of_ops(events, "begin", "commit"),
                          TRANSACTION_COLUMNS)


def dataset_tables(emulator, dataset):
    answer = emulator.request("GET", "/datasets/%s/tables" % dataset)
    return sorted(t["tableReference"]["tableId"]
                  for t in answer.get("tables", []))


def test_messages_skipped_by_option_or_when_off(db, pgspout, emulator,
                                                dataset, tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    endpos = message_workload(db)
    # Skipped by option (transactions are skipped by default): no table of
    # them, and the skipped events do not hold the slot back.
    run_bigquery_config(pgspout, db, emulator, dataset, tmp_path, [], BOTH,
                        {"messages": "skip"})
    assert dataset_tables(emulator, dataset) == ["public_t",
                                                 "public_t_changelog"]
    confirmed = db.scalar("select confirmed_flush_lsn from "
                          "pg_replication_slots where slot_name = '%s'"
                          % db.name)
    assert lsn_to_int(confirmed) >= lsn_to_int(endpos)
    # Kept by option, but pgspout's messages and transaction_events are off
    # (the default): nothing reaches the sink, no table appears.
    db.psql("begin; insert into t values (4);"
            "select pg_logical_emit_message(true, 'app', 'in'); commit;"
            "select pg_logical_emit_message(false, 'app', 'out');")
    run_bigquery_config(pgspout, db, emulator, dataset, tmp_path, [], "",
                        {"transactions": "table"})
    assert dataset_tables(emulator, dataset) == ["public_t",
                                                 "public_t_changelog"]
    assert len(emulator.query("SELECT id FROM `%s.%s.public_t`"
                              % (bigquery_server.PROJECT, dataset))) == 4
