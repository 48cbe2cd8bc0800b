"""The Kafka sink against a real broker (Apache Kafka 4, KRaft, one node):
a mixed workload on several tables read back from every topic and
compared with the source rows and with what the file sink writes for the
same changes; per-key order; tombstones; headers; the Debezium envelope
field by field; schema events; an oversized record into the dead-letter
file; TLS verification; options pgspout refuses."""

import decimal
import itertools
import json
import os
import signal
import time

import pytest

import kafka_server
from pgharness import lsn_to_int, read_jsonl, wait_until

_prefix_counter = itertools.count(1)


@pytest.fixture(scope="session")
def kafka():
    yield from kafka_server.KafkaBroker().session()


def new_prefix():
    """A topic prefix of its own for each test, on the shared broker."""
    return "t%d-%d" % (os.getpid(), next(_prefix_counter))


def kafka_args(db, broker, slot, prefix, *extra):
    return ["-d", db.conninfo, "--slot", slot, "--sink", "kafka",
            "-o", "brokers=" + broker.bootstrap,
            "-o", "topic=%s.{schema}.{table}" % prefix] + list(extra)


def two_slots(db):
    db.create_slot(db.name)
    db.psql("select pg_create_logical_replication_slot('%s_ref', "
            "'pgoutput');" % db.name)
    return db.name, db.name + "_ref"


def file_reference(db, pgspout, tmp_path, slot, endpos):
    out = str(tmp_path / ("ref-%s.jsonl" % slot))
    r = pgspout.run("-d", db.conninfo, "--slot", slot, "--sink", "file",
                    "-o", "path=" + out, "-o", "fsync=false",
                    "--endpos", endpos)
    assert r.returncode == 0, r.stderr[-4000:]
    return read_jsonl(out)


def decode(payload):
    return None if payload is None else json.loads(
        payload, parse_float=decimal.Decimal)


def canonical(event):
    return json.dumps(event, sort_keys=True, default=repr)


def position(event):
    return (lsn_to_int(event["commit_lsn"]), event.get("seq", 0))


def schema_tables(db):
    db.psql("""
        create table orders (id int primary key, customer text,
                             amount numeric(10,2), tags text[], meta jsonb);
        create table "MixedCase" (k1 int, k2 text, v float8,
                                  primary key (k1, k2));
        create table notes (id bigserial primary key, body text);
        create table log_only (line text);
        alter table log_only replica identity nothing;
    """)


def workload(db):
    db.psql("""
        insert into orders select g, 'cust' || (g % 7), g * 1.5,
            array['a', 'b'], jsonb_build_object('n', g)
            from generate_series(1, 120) g;
        insert into "MixedCase" values (1, 'x', 0.5), (2, 'ü€', 'NaN');
        update orders set amount = amount + 1 where id % 3 = 0;
        begin;
        update orders set customer = 'moved' where id <= 10;
        delete from orders where id > 110;
        insert into notes (body) values ('hello'), (repeat('long ', 2000));
        insert into log_only values ('one'), ('two');
        commit;
        update "MixedCase" set v = 'Infinity' where k1 = 1;
        update orders set id = 1000 where id = 1;
        update orders set amount = 7 where id = 2;
        update orders set amount = 8 where id = 2;
        delete from notes where body = 'hello';
        truncate "MixedCase";
    """)


def table_rows(db, select, key):
    """{key tuple: row dict} of a query's rows, as JSON from the server
    (numeric as text, as pgspout encodes it)."""
    rows = db.query("select row_to_json(t)::text from (%s) t" % select)
    out = {}
    for (text,) in rows:
        row = json.loads(text, parse_float=decimal.Decimal)
        out[tuple(row[k] for k in key)] = row
    return out


def replay(records):
    """The table state a consumer builds from pgspout-format records of one
    topic, in offset order per partition (a key's records share one):
    {key JSON: row}; tombstones remove, truncates clear."""
    state = {}
    for r in records:
        event = decode(r["payload"])
        if event is None:
            state.pop(r["key"], None)
        elif event["op"] == "truncate":
            state.clear()
        elif event["op"] in ("insert", "update", "read"):
            state[r["key"]] = event["after"]
        elif event["op"] == "delete":
            state.pop(r["key"], None)
    return state


def test_round_trip(db, pgspout, kafka, tmp_path):
    schema_tables(db)
    slot, ref_slot = two_slots(db)
    workload(db)
    endpos = db.current_lsn()
    prefix = new_prefix()

    r = pgspout.run(*kafka_args(db, kafka, slot, prefix, "--endpos", endpos))
    assert r.returncode == 0, r.stderr[-4000:]
    expected = file_reference(db, pgspout, tmp_path, ref_slot, endpos)

    topics = {t for t in kafka.topics() if t.startswith(prefix + ".")}
    assert topics == {prefix + ".public.orders", prefix + ".public.MixedCase",
                      prefix + ".public.notes", prefix + ".public.log_only"}
    records = {t: kafka.records(t) for t in topics}
    events = [decode(r["payload"]) for rs in records.values() for r in rs
              if r["payload"] is not None]
    # Every change event exactly once, as the file sink writes it; schema
    # events are not sent without schema_topic.
    want = sorted(canonical(e) for e in expected if e["op"] != "schema")
    assert sorted(canonical(e) for e in events) == want
    # Row by row: replaying each topic gives the table as it is now.
    orders = replay(records[prefix + ".public.orders"])
    source = table_rows(db, "select id, customer, amount::text as amount, "
                        "tags, meta from orders", ["id"])
    assert {json.dumps({"id": k[0]}, separators=(",", ":")): row
            for k, row in source.items()} == orders
    assert replay(records[prefix + ".public.MixedCase"]) == {}
    notes = replay(records[prefix + ".public.notes"])
    assert len(notes) == 1 and list(notes.values())[0]["body"].startswith(
        "long long")
    # Rows without a replica identity have no key.
    assert all(r["key"] is None for r in records[prefix + ".public.log_only"])
    # The slot was confirmed up to the end.
    assert lsn_to_int(db.slot_info(slot)["confirmed_flush_lsn"]) >= \
        lsn_to_int(endpos)
