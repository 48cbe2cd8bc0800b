"""The Kinesis sink against kinesalite: a mixed workload streamed from
PostgreSQL, read back from every shard and compared event by event with what
the file sink writes for the same changes; KPL aggregation; a restart in the
middle; secrets kept out of the logs."""

import decimal
import itertools
import json
import os
import signal

import pytest

import kinesis_server
from pgharness import lsn_to_int, read_jsonl, wait_until

_stream_counter = itertools.count(1)

SECRET = "kinesisTESTsecretKEY/abc+123"
TOKEN = "kinesisTESTsessionTOKEN//zzz=="


@pytest.fixture(scope="session")
def kinesalite():
    yield from kinesis_server.Kinesalite().session()


def aws_env(**extra):
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("AWS_"):
            del env[name]
    env.update(AWS_ACCESS_KEY_ID="AKIDTESTKINESIS",
               AWS_SECRET_ACCESS_KEY=SECRET, AWS_SESSION_TOKEN=TOKEN)
    env.update(extra)
    return env


def new_stream(kinesalite, shards=4):
    name = "pgspout-test-%d" % next(_stream_counter)
    kinesalite.create_stream(name, shards)
    return name


def kinesis_args(db, kinesalite, stream, slot, *extra):
    return ["-d", db.conninfo, "--slot", slot, "--sink", "kinesis",
            "-o", "stream=" + stream, "-o", "endpoint=" + kinesalite.url,
            "-o", "region=us-east-1", "-o", "linger=5ms"] + list(extra)


def stream_events(kinesalite, stream):
    """(events in shard order per partition key, every event, raw record
    count, shard of each key) read back from the stream."""
    per_key, everything, shard_of = {}, [], {}
    raw = 0
    for shard, records in kinesalite.records(stream).items():
        for _, pkey, data in records:
            raw += 1
            for key, payload in kinesis_server.deaggregate(pkey, data):
                event = json.loads(payload, parse_float=decimal.Decimal)
                per_key.setdefault(key, []).append(event)
                everything.append(event)
                assert shard_of.setdefault(key, shard) == shard, \
                    "partition key %r in two shards" % key
    return per_key, everything, raw


def canonical(event):
    return json.dumps(event, sort_keys=True, default=repr)


def position(event):
    return (lsn_to_int(event["commit_lsn"]), event.get("seq", 0))


def assert_same_events(kinesis_events, file_events):
    got = sorted(canonical(e) for e in kinesis_events)
    want = sorted(canonical(e) for e in file_events)
    missing = [e for e in want if e not in set(got)]
    extra = [e for e in got if e not in set(want)]
    assert not missing and not extra and len(got) == len(want), \
        "kinesis %d events, file %d; missing %s; unexpected %s" % (
            len(got), len(want), missing[:3], extra[:3])


def assert_key_order(per_key):
    for key, events in per_key.items():
        positions = [position(e) for e in events]
        assert positions == sorted(positions), \
            "events of key %r out of order: %s" % (key, positions)


def mixed_workload(db):
    db.psql("""
        create table orders (id int primary key, customer text,
                             amount numeric(10,2), tags text[], meta jsonb);
        create table "Mixed Case" (k1 int, k2 text, v float8,
                                   primary key (k1, k2));
        create table notes (id bigserial primary key, body text);
        alter table notes replica identity full;
    """)


def run_workload(db):
    db.psql("""
        insert into orders select g, 'cust' || (g % 7), g * 1.5,
            array['a', 'b'], jsonb_build_object('n', g)
            from generate_series(1, 120) g;
        insert into "Mixed Case" values (1, 'x', 0.5), (2, 'ü€', 'NaN');
        update orders set amount = amount + 1 where id % 3 = 0;
        begin;
        update orders set customer = 'moved' where id <= 10;
        delete from orders where id > 110;
        insert into notes (body) values ('hello'), (repeat('long ', 2000));
        commit;
        update "Mixed Case" set v = 'Infinity' where k1 = 1;
        alter table orders add column note text default 'n/a';
        insert into orders (id, customer, note) values (500, 'late', 'new');
        update orders set id = 1000 where id = 1;
        delete from notes where body = 'hello';
        truncate "Mixed Case";
    """)


def file_reference(db, pgspout, tmp_path, slot, endpos):
    out = str(tmp_path / ("ref-%s.jsonl" % slot))
    r = pgspout.run("-d", db.conninfo, "--slot", slot, "--sink", "file",
                    "-o", "path=" + out, "-o", "fsync=false",
                    "--endpos", endpos)
    assert r.returncode == 0, r.stderr[-4000:]
    return read_jsonl(out)


def two_slots(db):
    db.create_slot(db.name)
    db.psql("select pg_create_logical_replication_slot('%s_ref', "
            "'pgoutput');" % db.name)
    return db.name, db.name + "_ref"


def test_mixed_workload_per_row_keys(db, pgspout, kinesalite, tmp_path):
    mixed_workload(db)
    slot, ref_slot = two_slots(db)
    run_workload(db)
    endpos = db.current_lsn()
    stream = new_stream(kinesalite)

    r = pgspout.run(*kinesis_args(db, kinesalite, stream, slot,
                                  "--endpos", endpos), env=aws_env())
    assert r.returncode == 0, r.stderr[-4000:]
    expected = file_reference(db, pgspout, tmp_path, ref_slot, endpos)
    per_key, events, raw = stream_events(kinesalite, stream)

    assert_same_events(events, expected)
    assert raw == len(expected)  # no aggregation: one record per event
    assert_key_order(per_key)
    # Partition keys: schema.table plus the row's key; schema and truncate
    # events use schema.table.
    for key, evs in per_key.items():
        for e in evs:
            table = "%s.%s" % (e["schema"], e["table"])
            if e["op"] in ("insert", "update", "delete"):
                prefix, _, key_json = key.partition(":")
                assert prefix == table, (key, e)
                if key_json.startswith("sha256:"):
                    # Over 256 characters (the full-identity table with a
                    # long text): a digest of the whole key.
                    assert e["table"] == "notes" and len(key_json) == 71
                else:
                    assert json.loads(key_json, parse_float=decimal.Decimal) \
                        == e["key"], (key, e)
            else:
                assert key == table, (key, e)
    # Several shards were used.
    shards = {s for s, recs in kinesalite.records(stream).items() if recs}
    assert len(shards) > 1
    # The slot was confirmed up to the end.
    info = db.slot_info(slot)
    assert lsn_to_int(info["confirmed_flush_lsn"]) >= lsn_to_int(endpos)


def test_aggregated_per_table(db, pgspout, kinesalite, tmp_path):
    mixed_workload(db)
    slot, ref_slot = two_slots(db)
    run_workload(db)
    endpos = db.current_lsn()
    stream = new_stream(kinesalite, shards=3)

    r = pgspout.run(*kinesis_args(db, kinesalite, stream, slot,
                                  "-o", "aggregate=true",
                                  "-o", "partition_key=table",
                                  "--endpos", endpos), env=aws_env())
    assert r.returncode == 0, r.stderr[-4000:]
    expected = file_reference(db, pgspout, tmp_path, ref_slot, endpos)
    per_key, events, raw = stream_events(kinesalite, stream)

    assert_same_events(events, expected)
    # Aggregation packed many events into few records.
    assert raw < len(expected) / 4, (raw, len(expected))
    assert set(per_key) == {"public.orders", "public.Mixed Case",
                            "public.notes"}
    assert_key_order(per_key)


def test_fixed_key_keeps_total_order(db, pgspout, kinesalite, tmp_path):
    mixed_workload(db)
    slot, ref_slot = two_slots(db)
    run_workload(db)
    endpos = db.current_lsn()
    stream = new_stream(kinesalite, shards=2)

    r = pgspout.run(*kinesis_args(db, kinesalite, stream, slot,
                                  "-o", "partition_key=everything",
                                  "-o", "batch_records=7",
                                  "--endpos", endpos), env=aws_env())
    assert r.returncode == 0, r.stderr[-4000:]
    expected = file_reference(db, pgspout, tmp_path, ref_slot, endpos)
    per_key, _, _ = stream_events(kinesalite, stream)
    assert list(per_key) == ["everything"]
    assert [canonical(e) for e in per_key["everything"]] == \
        [canonical(e) for e in expected]


def test_restart_in_the_middle_loses_nothing(db, pgspout, kinesalite,
                                            tmp_path):
    db.psql("create table t (id int primary key, v int);")
    slot, ref_slot = two_slots(db)
    stream = new_stream(kinesalite)
    args = kinesis_args(db, kinesalite, stream, slot, "-s", "1")

    proc = pgspout.spawn(*args, env=aws_env())
    db.psql("insert into t select g, 0 from generate_series(1, 200) g;"
            "update t set v = 1 where id % 2 = 0;")
    mid = db.current_lsn()
    wait_until(lambda: lsn_to_int(db.slot_info(slot)["confirmed_flush_lsn"]
                                  or "0/0") >= lsn_to_int(mid)
               or proc.poll() is not None, timeout=60,
               what="confirmation of the first half")
    assert proc.poll() is None, pgspout.stderr_of(proc)
    assert pgspout.stop(proc, signal.SIGTERM) == 0, pgspout.stderr_of(proc)

    # Changes while pgspout is down, then a restart up to the end.
    db.psql("delete from t where id <= 50; update t set v = 2 where id > 150;"
            "insert into t values (1000, 7);")
    endpos = db.current_lsn()
    r = pgspout.run(*(args + ["--endpos", endpos]), env=aws_env())
    assert r.returncode == 0, r.stderr[-4000:]

    expected = file_reference(db, pgspout, tmp_path, ref_slot, endpos)
    per_key, events, _ = stream_events(kinesalite, stream)
    # Every change exactly once; the restarted run describes the table
    # again before its first change, as every new session does.
    assert_same_events([e for e in events if e["op"] != "schema"],
                       [e for e in expected if e["op"] != "schema"])
    assert {canonical(e["columns"]) for e in events if e["op"] == "schema"} \
        == {canonical(e["columns"]) for e in expected if e["op"] == "schema"}
    assert_key_order(per_key)
    # Replaying the stream gives the table's state.
    state = {}
    for e in sorted((e for e in events if e["op"] != "schema"),
                    key=position):
        if e["op"] == "delete":
            del state[e["key"]["id"]]
        else:
            state[e["after"]["id"]] = e["after"]["v"]
    rows = {int(i): int(v) for i, v in db.query("select id, v from t")}
    assert state == rows


def test_missing_stream_is_fatal_without_confirming(db, pgspout, kinesalite):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    db.psql("insert into t values (1), (2);")
    r = pgspout.run(*kinesis_args(db, kinesalite, "no-such-stream", db.name,
                                  "--endpos", db.current_lsn()),
                    env=aws_env(), timeout=60)
    assert r.returncode == 1, r.stderr[-4000:]
    assert "ResourceNotFoundException" in r.stderr
    assert "no-such-stream" in r.stderr
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before


def test_secrets_never_logged(db, pgspout, kinesalite, tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into t values (1);")
    stream = new_stream(kinesalite, shards=1)
    endpos = db.current_lsn()
    # From the environment, verbose, successful.
    r = pgspout.run("-v", "-v", *kinesis_args(db, kinesalite, stream,
                                              db.name, "--endpos", endpos),
                    env=aws_env())
    assert r.returncode == 0, r.stderr[-4000:]
    assert "Kinesis stream" in r.stderr  # the sink did log at start
    # From options, verbose, failing (missing stream).
    db.psql("insert into t values (2);")
    r2 = pgspout.run("-v", "-v", *kinesis_args(
        db, kinesalite, "missing-stream", db.name,
        "-o", "access_key_id=AKIDOPTION", "-o", "secret_access_key=" + SECRET,
        "-o", "session_token=" + TOKEN, "--endpos", db.current_lsn()),
        env=aws_env(AWS_SECRET_ACCESS_KEY="x" * 20), timeout=60)
    assert r2.returncode == 1
    # From a credentials file.
    creds = tmp_path / "credentials"
    creds.write_text("[p]\naws_access_key_id = AKIDFILE\n"
                     "aws_secret_access_key = %s\naws_session_token = %s\n"
                     % (SECRET, TOKEN))
    env = aws_env(AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_PROFILE="p")
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    db.psql("insert into t values (3);")
    r3 = pgspout.run("-v", "-v", *kinesis_args(db, kinesalite, stream,
                                               db.name, "--endpos",
                                               db.current_lsn()), env=env)
    assert r3.returncode == 0, r3.stderr[-4000:]
    assert "[p]" in r3.stderr
    for run in (r, r2, r3):
        for secret in (SECRET, TOKEN, SECRET[:12], TOKEN[:12]):
            assert secret not in run.stderr and secret not in run.stdout
    # The failed run confirmed nothing, so row 2 came with the last run.
    _, events, _ = stream_events(kinesalite, stream)
    assert sorted(e["after"]["id"] for e in events if e["op"] == "insert") \
        == [1, 2, 3]


# ---- read events: an initial snapshot under load ----

def test_initial_snapshot_under_load(db, pgspout, kinesalite, tmp_path):
    """pgspout --create-slot copies tables with keys of every kind while a
    workload changes them: every event of the file sink, read events
    included, is in the stream, each row's records in stream order, and
    replaying them per key gives each table."""
    import backfill_support as bs
    import snapshot_sinks
    stream = new_stream(kinesalite)
    events = snapshot_sinks.run(db, pgspout, tmp_path, [
        ("kinesis", "kinesis", {"stream": stream,
                                "endpoint": kinesalite.url,
                                "region": "us-east-1", "linger": "5ms"})],
        env=aws_env())
    per_key, everything, _ = stream_events(kinesalite, stream)
    data = [e for e in everything if e["op"] != "schema"]
    assert_same_events(data, [e for e in events if e["op"] != "schema"])
    assert_key_order(per_key)
    assert any(e["op"] == "read" for e in data)
    in_order = sorted(data, key=position)
    for table in bs.KEYS:
        assert bs.replay(in_order, table) == bs.table_contents(db, table)
