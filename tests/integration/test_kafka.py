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


def record_position(r):
    """A record's place in the stream, from its headers; a tombstone right
    after the event it follows."""
    h = r["headers"]
    return (lsn_to_int(h["pgspout-commit-lsn"]), int(h["pgspout-seq"]),
            r["payload"] is None)


def replay(records):
    """The table state a consumer builds from pgspout-format records of one
    topic: {key JSON: row}; tombstones remove, truncates clear. Records
    are taken in stream order (their headers' positions): a truncate has
    no key, so it may sit in another partition than the rows it clears."""
    state = {}
    for r in sorted(records, key=record_position):
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
    # Uncompressed by default (compression = none).
    assert kafka.batch_codecs(prefix + ".public.orders") == {"none"}
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


def keyed_records(broker, topic):
    """{key: [record, ...]} in offset order, checking that each key stays in
    one partition (which is what keeps its order)."""
    per_key, partition_of = {}, {}
    for r in broker.records(topic):
        assert partition_of.setdefault(r["key"], r["partition"]) == \
            r["partition"], "key %r in two partitions" % r["key"]
        per_key.setdefault(r["key"], []).append(r)
    return per_key


def test_key_order_tombstones_headers(db, pgspout, kafka):
    db.psql("create table acct (id int primary key, balance int);")
    db.create_slot(db.name)
    # Many small transactions touching the same keys over and over, a key
    # change and deletes.
    statements = ["insert into acct select g, 0 from generate_series(1, 20) g;"]
    for i in range(1, 31):
        statements.append("update acct set balance = %d where id %% 4 = %d;"
                          % (i, i % 4))
    statements += ["update acct set id = 100 where id = 5;",
                   "delete from acct where id in (6, 7);",
                   "insert into acct values (6, -1);"]
    db.psql("\n".join(statements))
    endpos = db.current_lsn()
    prefix = new_prefix()
    r = pgspout.run(*kafka_args(db, kafka, db.name, prefix,
                                "-o", "compression=zstd",
                                "--endpos", endpos))
    assert r.returncode == 0, r.stderr[-4000:]

    topic = prefix + ".public.acct"
    # The records reached the broker's disk compressed as asked.
    assert kafka.batch_codecs(topic) == {"zstd"}
    per_key = keyed_records(kafka, topic)
    for key, records in per_key.items():
        events = [decode(r["payload"]) for r in records]
        positions = [position(e) for e in events if e]
        assert positions == sorted(positions), (key, positions)
        # Headers name what the record carries (a tombstone: its event's).
        for rec, event in zip(records, events):
            h = rec["headers"]
            assert set(h) == {"pgspout-op", "pgspout-commit-lsn",
                              "pgspout-seq", "pgspout-table"}, h
            assert h["pgspout-table"] == "public.acct"
            if event:
                assert h["pgspout-op"] == event["op"]
                assert h["pgspout-commit-lsn"] == event["commit_lsn"]
                assert h["pgspout-seq"] == str(event["seq"])
    # A delete is followed by its key's tombstone; 6 came back after.
    six = [decode(r["payload"]) for r in per_key['{"id":6}']]
    assert [e["op"] if e else None for e in six][-3:] == \
        ["delete", None, "insert"]
    seven = per_key['{"id":7}']
    assert decode(seven[-2]["payload"])["op"] == "delete"
    assert seven[-1]["payload"] is None
    assert seven[-1]["headers"]["pgspout-op"] == "delete"
    # The key change: the update under the new key, a tombstone for the old.
    moved = [decode(r["payload"]) for r in per_key['{"id":100}']]
    assert [e["op"] for e in moved] == ["update"]
    assert moved[0]["before"] == {"id": 5}
    assert per_key['{"id":5}'][-1]["payload"] is None
    assert per_key['{"id":5}'][-1]["headers"]["pgspout-op"] == "update"
    # Final balances per key equal the table's.
    state = replay(kafka.records(topic))
    source = table_rows(db, "select * from acct", ["id"])
    assert {json.dumps({"id": k[0]}, separators=(",", ":")): row
            for k, row in source.items()} == state


def test_key_modes_and_no_headers(db, pgspout, kafka):
    db.psql("create table kv (id int primary key, v text);")
    db.create_slot(db.name)
    db.psql("insert into kv select g, 'x' from generate_series(1, 30) g;"
            "delete from kv where id = 3;")
    endpos = db.current_lsn()
    by_table, no_key = new_prefix(), new_prefix()
    r = pgspout.run(*kafka_args(db, kafka, db.name, by_table, "-o",
                                "key=table", "-o", "headers=false",
                                "--endpos", endpos))
    assert r.returncode == 0, r.stderr[-4000:]
    records = kafka.records(by_table + ".public.kv")
    # One key, so one partition, in commit order; no tombstone (a table
    # key names no row), no headers.
    assert {r["key"] for r in records} == {"public.kv"}
    assert len({r["partition"] for r in records}) == 1
    assert all(r["headers"] == {} for r in records)
    assert len(records) == 31 and all(r["payload"] for r in records)
    seqs = [decode(r["payload"])["seq"] for r in records]
    assert seqs[:30] == list(range(1, 31))

    db.psql("select pg_create_logical_replication_slot('%s_2', 'pgoutput');"
            % db.name)
    db.psql("insert into kv values (99, 'y');")
    r = pgspout.run(*kafka_args(db, kafka, db.name + "_2", no_key, "-o",
                                "key=none", "--endpos", db.current_lsn()))
    assert r.returncode == 0, r.stderr[-4000:]
    records = kafka.records(no_key + ".public.kv")
    assert [r["key"] for r in records] == [None]


def test_schema_topic(db, pgspout, kafka):
    db.psql("create table s1 (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into s1 values (1); alter table s1 add column v text;"
            "insert into s1 values (2, 'b');")
    prefix = new_prefix()
    r = pgspout.run(*kafka_args(db, kafka, db.name, prefix, "-o",
                                "schema_topic=%s.schemas" % prefix,
                                "--endpos", db.current_lsn()))
    assert r.returncode == 0, r.stderr[-4000:]
    schemas = kafka.records(prefix + ".schemas")
    events = [decode(r["payload"]) for r in schemas]
    assert [e["op"] for e in events] == ["schema", "schema"]
    assert [c["name"] for c in events[-1]["columns"]] == ["id", "v"]
    assert {r["key"] for r in schemas} == {"public.s1"}
    assert "pgspout-seq" not in schemas[0]["headers"]
    assert schemas[0]["headers"]["pgspout-op"] == "schema"
    assert len(kafka.records(prefix + ".public.s1")) == 2


def test_debezium_format(db, pgspout, kafka, tmp_path):
    db.psql("""
        create table customers (id int primary key, first_name text,
                                last_name text, email text, big text);
        alter table customers alter column big set storage external;
    """)
    slot, ref_slot = two_slots(db)
    db.psql("""
        insert into customers values
            (1, 'Anne', 'Kretchmar', 'annek@noanswer.org', repeat('z', 9000));
        update customers set first_name = 'Anne Marie' where id = 1;
        update customers set id = 2 where id = 1;
        delete from customers where id = 2;
        insert into customers values (3, 'Sally', 'Thomas', 's@x', null);
        truncate customers;
    """)
    endpos = db.current_lsn()
    prefix = new_prefix()
    r = pgspout.run(*kafka_args(db, kafka, slot, prefix,
                                "-o", "format=debezium",
                                "-o", "debezium_name=PostgreSQL_server",
                                "-o", "debezium_db=" + db.name,
                                "--endpos", endpos))
    assert r.returncode == 0, r.stderr[-4000:]
    ref = [e for e in file_reference(db, pgspout, tmp_path, ref_slot, endpos)
           if e["op"] != "schema"]
    records = sorted(kafka.records(prefix + ".public.customers"),
                     key=record_position)
    values = [(r["key"], decode(r["payload"])) for r in records]
    letters = {"insert": "c", "update": "u", "delete": "d",
               "truncate": "t"}
    changes = [(k, v) for k, v in values if v is not None]
    assert len(changes) == len(ref)
    for (key, v), e in zip(changes, ref):
        assert v["op"] == letters[e["op"]]
        src = v["source"]
        assert src["connector"] == "postgresql"
        assert src["name"] == "PostgreSQL_server"
        assert src["db"] == db.name
        assert (src["schema"], src["table"]) == ("public", "customers")
        assert src["txId"] == e["xid"]
        assert src["lsn"] == lsn_to_int(e["lsn"])
        assert src["sequence"] == json.dumps(
            [str(lsn_to_int(e["commit_lsn"])), str(lsn_to_int(e["lsn"]))],
            separators=(",", ":"))
        assert src["snapshot"] == "false" and src["xmin"] is None
        # source.ts_* is the commit time; ts_ms at the top, processing time.
        assert src["ts_us"] == _epoch_us(e["commit_time"])
        assert src["ts_ms"] == src["ts_us"] // 1000
        assert src["ts_ns"] == src["ts_us"] * 1000
        assert v["ts_ms"] >= src["ts_ms"] and v["ts_us"] // 1000 == v["ts_ms"]
        assert v["transaction"] is None
        if e["op"] == "truncate":
            assert key is None and "before" not in v and "after" not in v
            continue
        assert key == json.dumps(e["key"], separators=(",", ":"))
        assert v["before"] == e["before"]
        after = dict(e["after"]) if e["after"] is not None else None
        for col in e["unchanged_toast"]:
            after[col] = "__debezium_unavailable_value"
        assert v["after"] == after
    # The update that left `big` unchanged carries the placeholder.
    assert changes[1][1]["after"]["big"] == "__debezium_unavailable_value"
    # Tombstones after the delete and for the key the update moved away
    # from, as Debezium's delete + tombstone.
    tombstones = [k for k, v in values if v is None]
    assert sorted(tombstones) == ['{"id":1}', '{"id":2}']


def _epoch_us(text):
    """Microseconds since the epoch of "2026-11-21T23:55:22.123456Z"."""
    import datetime
    t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    t = t.replace(tzinfo=datetime.timezone.utc)
    delta = t - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1000000 + \
        delta.microseconds


# ---- read events: an initial snapshot under load ----

DEBEZIUM_OP = {"insert": "c", "update": "u", "delete": "d", "truncate": "t",
               "read": "r"}


def test_initial_snapshot_under_load(db, pgspout, kafka, tmp_path):
    """pgspout --create-slot copies tables with keys of every kind while a
    workload changes them, into two Kafka sinks beside the file sink: in
    pgspout's format every event of the file sink, read events included,
    is on the topics once, each key's records in stream order, and
    replaying them gives each table; in Debezium's, each table's records
    are the same events with op "r" for the reads and source.snapshot
    "true" for them only."""
    import backfill_support as bs
    import snapshot_sinks
    plain, dbz = new_prefix(), new_prefix()
    events = snapshot_sinks.run(db, pgspout, tmp_path, [
        ("kafka_plain", "kafka", {"brokers": kafka.bootstrap,
                                  "topic": plain + ".{schema}.{table}"}),
        ("kafka_debezium", "kafka", {"brokers": kafka.bootstrap,
                                     "topic": dbz + ".{schema}.{table}",
                                     "format": "debezium",
                                     "debezium_db": db.name})])
    expected = [e for e in events if e["op"] != "schema"]
    tables = sorted({"%s.%s" % (e["schema"], e["table"]) for e in expected})
    data = []
    for table in tables:
        for key, records in keyed_records(kafka,
                                          plain + "." + table).items():
            changes = [decode(r["payload"]) for r in records
                       if r["payload"] is not None]
            positions = [position(e) for e in changes]
            assert positions == sorted(positions), (table, key)
            data += changes
    assert sorted(canonical(e) for e in data) == \
        sorted(canonical(e) for e in expected)
    assert any(e["op"] == "read" for e in data)
    in_order = sorted(data, key=position)
    for table in bs.KEYS:
        assert bs.replay(in_order, table) == bs.table_contents(db, table)
    for table in tables:
        check_debezium_reads(kafka, dbz + "." + table, [
            e for e in expected
            if "%s.%s" % (e["schema"], e["table"]) == table])


def check_debezium_reads(kafka, topic, expected):
    """The Debezium records of one table against the file sink's events
    of that table, in stream order."""
    records = sorted(kafka.records(topic), key=record_position)
    values = [decode(r["payload"]) for r in records
              if r["payload"] is not None]
    assert len(values) == len(expected), topic
    for v, e in zip(values, expected):
        assert v["op"] == DEBEZIUM_OP[e["op"]], (v, e)
        assert v["source"]["lsn"] == lsn_to_int(e["lsn"])
        assert v["source"]["snapshot"] == \
            ("true" if e["op"] == "read" else "false")
        if e["op"] == "read":
            assert v["before"] is None and v["after"] == e["after"]
    assert sum(v["op"] == "r" for v in values) == \
        sum(e["op"] == "read" for e in expected) > 0


def test_backfill_is_an_incremental_snapshot(db, pgspout, kafka, tmp_path):
    """A `pgspout backfill` while pgspout streams into a Debezium-format
    sink: its rows are op "r" records with source.snapshot "incremental"
    (Debezium's flag for a signalled snapshot), a change after it
    "false"."""
    import faults_support as fs
    db.psql("create table items (id int primary key, note text);"
            "insert into items select g, 'n' || g "
            "from generate_series(1, 300) g;")
    db.create_slot(db.name)
    prefix = new_prefix()
    conf = tmp_path / "pgspout.conf"
    conf.write_text(
        'connection = %s;\nslot = "%s";\nstate_dir = %s;\n'
        'backfill_chunk_rows = 100;\nstatus_interval = 1;\n'
        'sinks = ({ name = "kafka"; type = "kafka"; options = { '
        'brokers = %s; topic = %s; format = "debezium"; }; });\n'
        % (json.dumps(db.conninfo), db.name,
           json.dumps(str(tmp_path / "state")), json.dumps(kafka.bootstrap),
           json.dumps(prefix + ".{schema}.{table}")))
    proc = pgspout.spawn("-c", str(conf))
    try:
        wait_until(lambda: db.slot_info(db.name)["active"], 30,
                   "pgspout streaming")
        r = pgspout.run("backfill", "-d", db.conninfo, "--slot", db.name,
                        "-t", "items", "--wait", timeout=120)
        assert r.returncode == 0, r.stderr
        db.psql("insert into items values (1000, 'after');")
        fs.wait_confirmed(db, db.name, db.current_lsn(), proc, pgspout)
    finally:
        assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-4000:]
    records = sorted(kafka.records(prefix + ".public.items"),
                     key=record_position)
    values = [decode(r["payload"]) for r in records]
    reads = [v for v in values if v["op"] == "r"]
    assert sorted(v["after"]["id"] for v in reads) == list(range(1, 301))
    assert {v["source"]["snapshot"] for v in reads} == {"incremental"}
    assert [(v["op"], v["after"]["id"], v["source"]["snapshot"])
            for v in values if v["op"] != "r"] == [("c", 1000, "false")]


def big_row_workload(db, size):
    db.psql("create table docs (id int primary key, body text);")
    db.create_slot(db.name)
    db.psql("insert into docs values (1, 'small');"
            "insert into docs values (2, repeat('x', %d));"
            "insert into docs values (3, 'after');" % size)


def test_oversized_record_dead_letter(db, pgspout, kafka, tmp_path):
    # 2 MB: over the producer's message.max.bytes (librdkafka's 1,000,000),
    # refused before it is sent.
    big_row_workload(db, 2000000)
    endpos = db.current_lsn()
    prefix = new_prefix()
    dead = tmp_path / "dead.jsonl"
    r = pgspout.run(*kafka_args(db, kafka, db.name, prefix,
                                "-o", "dead_letter=%s" % dead,
                                "--endpos", endpos))
    assert r.returncode == 0, r.stderr[-4000:]
    assert "dead-letter" in r.stderr
    kept = [decode(r["payload"]) for r in
            kafka.records(prefix + ".public.docs")]
    assert sorted(e["after"]["id"] for e in kept) == [1, 3]
    lines = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["sink"] == "kafka"
    assert "Message size too large" in lines[0]["reason"] or \
        "too large" in lines[0]["reason"], lines[0]["reason"]
    assert lines[0]["record"]["after"]["id"] == 2
    assert len(lines[0]["record"]["after"]["body"]) == 2000000
    assert lsn_to_int(db.slot_info(db.name)["confirmed_flush_lsn"]) >= \
        lsn_to_int(endpos)


def test_broker_refused_record_dead_letter(db, pgspout, kafka, tmp_path):
    # 1.5 MB passes the producer (its limit raised) but not the broker
    # (message.max.bytes 1,048,588 by default): refused in the delivery
    # report, for good.
    big_row_workload(db, 1500000)
    endpos = db.current_lsn()
    prefix = new_prefix()
    dead = tmp_path / "dead.jsonl"
    r = pgspout.run(*kafka_args(db, kafka, db.name, prefix,
                                "-o", "dead_letter=%s" % dead,
                                "-o", "kafka.message.max.bytes=5000000",
                                "--endpos", endpos))
    assert r.returncode == 0, r.stderr[-4000:]
    kept = [decode(r["payload"]) for r in
            kafka.records(prefix + ".public.docs")]
    assert sorted(e["after"]["id"] for e in kept) == [1, 3]
    lines = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [line["record"]["after"]["id"] for line in lines] == [2]
    assert "Kafka refused the record" in lines[0]["reason"]


def test_record_outcomes_in_metrics(db, pgspout, kafka, tmp_path):
    """What became of the records reaches /metrics: two stored by the
    broker, one refused by it for good and dead-lettered."""
    from ops_support import free_port, wait_http, wait_metric
    big_row_workload(db, 1500000)
    port = free_port()
    dead = tmp_path / "dead.jsonl"
    proc = pgspout.spawn(*kafka_args(db, kafka, db.name, new_prefix(),
                                     "-o", "dead_letter=%s" % dead,
                                     "-o", "kafka.message.max.bytes=5000000",
                                     "--http", "127.0.0.1:%d" % port))
    wait_http(port, proc, pgspout)
    records = "pgspout_sink_records_%s_total"
    outcomes = ("accepted", "rejected", "dead_lettered")

    # Waits until every record has its outcome: records in different
    # partitions are reported in any order, so two accepted may show while
    # the third's rejection is still being written to the dead-letter file.
    def settled(m):
        return sum(m.get(records % o, sink="kafka") or 0
                   for o in ("accepted", "dead_lettered")) >= 3
    m = wait_metric(port, settled, "three records accepted or dead-lettered")
    assert [m.get(records % o, sink="kafka") for o in outcomes] == [2, 1, 1]
    assert len(dead.read_text().splitlines()) == 1
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)


def test_oversized_record_stops_without_dead_letter(db, pgspout, kafka):
    big_row_workload(db, 2000000)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    prefix = new_prefix()
    r = pgspout.run(*kafka_args(db, kafka, db.name, prefix,
                                "--endpos", db.current_lsn()))
    assert r.returncode == 1, r.stderr[-4000:]
    assert "delivery failed for good" in r.stderr
    assert "(public.docs)" in r.stderr and "seq 1" in r.stderr
    # Nothing at or after the refused row's transaction was confirmed.
    rows = db.query("select pg_current_wal_lsn()::text")
    assert lsn_to_int(db.slot_info(db.name)["confirmed_flush_lsn"]) < \
        lsn_to_int(rows[0][0])
    assert lsn_to_int(db.slot_info(db.name)["confirmed_flush_lsn"]) >= \
        lsn_to_int(before)


def test_invalid_topic_name_stops(db, pgspout, kafka):
    db.psql('create table "Bad Name" (id int primary key);')
    db.create_slot(db.name)
    db.psql('insert into "Bad Name" values (1);')
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    r = pgspout.run(*kafka_args(db, kafka, db.name, new_prefix(),
                                "--endpos", db.current_lsn()))
    assert r.returncode == 1, r.stderr[-4000:]
    assert "table public.Bad Name has no valid topic name" in r.stderr
    assert "0x20" in r.stderr
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before


@pytest.mark.parametrize("option,fragment", [
    ("kafka.acks=1", "-o kafka.acks: is not accepted"),
    ("kafka.enable.idempotence=false",
     "-o kafka.enable.idempotence: is not accepted"),
    ("kafka.message.timeout.ms=1000", "not accepted"),
    ("kafka.no.such.thing=1", "No such configuration property"),
    ("topic={db}.x", "unknown placeholder"),
    ("compression=brotli", "expected one of: none|gzip|snappy|lz4|zstd"),
    ("message_topic=bad name", "-o message_topic: "),
    ("transaction_topic=..", "-o transaction_topic: "),
])
def test_refused_options(db, pgspout, kafka, option, fragment):
    db.create_slot(db.name)
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink", "kafka",
                    "-o", "brokers=" + kafka.bootstrap, "-o", option,
                    "--endpos", db.current_lsn())
    # every one is a configuration error, named where it was given
    assert r.returncode == 2, r.stderr
    assert "command line: -o %s" % option.split("=")[0] in r.stderr, r.stderr
    assert fragment in r.stderr, r.stderr


def test_tls_verified_by_default(db, pgspout, kafka, tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into t values (1);")
    endpos = db.current_lsn()
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    prefix = new_prefix()
    args = ["-d", db.conninfo, "--slot", db.name, "--sink", "kafka",
            "-o", "brokers=" + kafka.tls_bootstrap,
            "-o", "topic=%s.{table}" % prefix,
            "-o", "kafka.security.protocol=SSL"]
    # The broker's certificate is self-signed: refused, so nothing is
    # delivered or confirmed, and pgspout says why; a stop signal ends the
    # wait (exit 1: nothing unacknowledged confirmed).
    proc = pgspout.spawn(*args)
    wait_until(lambda: "certificate verify failed" in
               pgspout.stderr_of(proc), timeout=60,
               what="a refused TLS handshake in the log")
    # The insert has reached pgspout, and the sink has had time to be
    # asked to flush it (10 ms after it took it): the signal must find
    # pgspout waiting for the broker, not between changes (where a stop
    # is a clean stop that waits for the sink until a second signal).
    wait_until(lambda: db.scalar(
        "select count(*) from pg_stat_replication where sent_lsn >= '%s'"
        % endpos) == "1", timeout=60, what="the insert sent to pgspout")
    time.sleep(1)
    assert proc.poll() is None
    assert pgspout.stop(proc, timeout=30) == 1
    assert "stop requested while it was failing" in pgspout.stderr_of(proc)
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before
    assert prefix + ".t" not in kafka.topics()
    # Trusting its certificate as the CA: delivered.
    r = pgspout.run(*args, "-o", "kafka.ssl.ca.location=" + kafka.cert_path,
                    "--endpos", endpos)
    assert r.returncode == 0, r.stderr[-4000:]
    assert [decode(x["payload"])["after"] for x in
            kafka.records(prefix + ".t")] == [{"id": 1}]


def test_missing_topic_stops(db, pgspout):
    """A broker that does not create topics: once librdkafka gives up on
    the topic (topic.metadata.propagation.max.ms, shortened here), the
    stream stops saying so, and nothing is confirmed."""
    broker = kafka_server.KafkaBroker(
        properties={"auto.create.topics.enable": "false"})
    broker.require_installed()
    broker.start()
    try:
        db.psql("create table t (id int primary key);")
        db.create_slot(db.name)
        db.psql("insert into t values (1);")
        before = db.slot_info(db.name)["confirmed_flush_lsn"]
        prefix = new_prefix()
        r = pgspout.run(*kafka_args(db, broker, db.name, prefix,
                                    "-o",
                                    "kafka.topic.metadata.propagation.max.ms"
                                    "=2000", "--endpos", db.current_lsn()))
        assert r.returncode == 1, r.stderr[-4000:]
        # librdkafka's "Local: Unknown topic" when its metadata already
        # says so, the broker's "Unknown topic or partition" otherwise.
        assert "Unknown topic" in r.stderr, r.stderr[-4000:]
        assert "delivery failed for good" in r.stderr
        assert 'for topic "%s.public.t"' % prefix in r.stderr, r.stderr
        assert db.slot_info(db.name)["confirmed_flush_lsn"] == before
    finally:
        broker.stop()
