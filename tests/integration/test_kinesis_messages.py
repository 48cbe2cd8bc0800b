"""Logical decoding messages and transaction events through the Kinesis
sink (ABI 1.5), against kinesalite: records on the sink's stream (or the
streams message_stream and transaction_stream name), a message keyed by
its prefix, a begin or commit by its transaction's commit LSN, each
record's data the file sink's line for the same event (both sinks in one
pgspout); nothing of a rolled-back transaction; nothing extra with the
settings off."""

import json

import kinesis_server
import message_sinks as ms
from test_kinesis import aws_env, kinesalite, new_stream  # noqa: F401


def kinesis_options(kinesalite, stream, **extra):
    options = {"stream": stream, "endpoint": kinesalite.url,
               "region": "us-east-1", "linger": "5ms"}
    options.update(extra)
    return options


def stream_records(kinesalite, stream):
    """[(partition key, data text)] of a stream, user records of KPL
    aggregates included, in shard order per shard."""
    return [(k, d.decode()) for recs in kinesalite.records(stream).values()
            for _, pkey, data in recs
            for k, d in kinesis_server.deaggregate(pkey, data)]


def per_key(records):
    out = {}
    for key, data in records:
        out.setdefault(key, []).append(data)
    return out


def check_untabled(records, lines):
    """Messages keyed by prefix, begins and commits by commit LSN, each one
    the file sink's line, in the file's order per key."""
    msgs = [(k, d) for k, d in records if json.loads(d)["op"] == "message"]
    assert sorted(d for _, d in msgs) == sorted(ms.by_op(lines, "message"))
    keyed = per_key(msgs)
    assert set(keyed) == {"outbox", "audit", "bin", "public.a"}
    for key, datas in keyed.items():
        assert datas == [line for line in ms.by_op(lines, "message")
                         if json.loads(line)["prefix"] == key]
    txs = [(k, d) for k, d in records
           if json.loads(d)["op"] in ("begin", "commit")]
    assert sorted(d for _, d in txs) == sorted(
        ms.by_op(lines, "begin", "commit"))
    assert all(k == json.loads(d)["commit_lsn"] for k, d in txs)
    pairs = ms.transaction_pairs(txs)
    assert len(pairs) == 4
    assert all(ops == ["begin", "commit"] for ops in pairs.values())
    assert not any(ms.ROLLED_BACK in d for _, d in records)


def test_messages_and_transactions_on_the_stream(db, pgspout, kinesalite,
                                                 tmp_path):
    ms.tables(db)
    db.create_slot(db.name)
    ms.workload(db)
    stream = new_stream(kinesalite)
    lines = ms.run_both(db, pgspout, tmp_path, "kinesis",
                        kinesis_options(kinesalite, stream), env=aws_env())
    ms.check_file_side(lines)
    records = stream_records(kinesalite, stream)
    # Every event the file sink wrote (schema events included), each once.
    assert sorted(d for _, d in records) == sorted(lines)
    check_untabled(records, lines)


def test_separate_streams_aggregated(db, pgspout, kinesalite, tmp_path):
    """message_stream and transaction_stream, with KPL aggregation per
    table: each kind of event on its stream, none on another, and an
    aggregated record never mixes streams."""
    ms.tables(db)
    db.create_slot(db.name)
    ms.workload(db)
    changes, messages, transactions = (new_stream(kinesalite, shards=2)
                                       for _ in range(3))
    lines = ms.run_both(db, pgspout, tmp_path, "kinesis", kinesis_options(
        kinesalite, changes, message_stream=messages,
        transaction_stream=transactions, aggregate=True,
        partition_key="table"), env=aws_env())
    ms.check_file_side(lines)
    on_messages = stream_records(kinesalite, messages)
    on_transactions = stream_records(kinesalite, transactions)
    on_changes = stream_records(kinesalite, changes)
    assert sorted(d for _, d in on_messages) == sorted(
        ms.by_op(lines, "message"))
    assert sorted(d for _, d in on_transactions) == sorted(
        ms.by_op(lines, "begin", "commit"))
    assert sorted(d for _, d in on_changes) == sorted(
        ms.by_op(lines, "insert", "update", "schema"))
    check_untabled(on_messages + on_transactions, lines)


def test_settings_off_send_nothing_extra(db, pgspout, kinesalite, tmp_path):
    ms.tables(db)
    db.create_slot(db.name)
    ms.workload(db)
    changes, messages, transactions = (new_stream(kinesalite, shards=1)
                                       for _ in range(3))
    lines = ms.run_both(db, pgspout, tmp_path, "kinesis", kinesis_options(
        kinesalite, changes, message_stream=messages,
        transaction_stream=transactions), on=False, env=aws_env())
    assert ms.by_op(lines, "message", "begin", "commit") == []
    assert stream_records(kinesalite, messages) == []
    assert stream_records(kinesalite, transactions) == []
    assert sorted(d for _, d in stream_records(kinesalite, changes)) == \
        sorted(lines)


def test_empty_prefix_partition_key(db, pgspout, kinesalite, tmp_path):
    """Kinesis takes no empty partition key: an empty prefix's messages go
    by "-", in order."""
    ms.tables(db)
    db.create_slot(db.name)
    db.psql("select pg_logical_emit_message(false, '', 'first');"
            "select pg_logical_emit_message(true, '', 'second');")
    stream = new_stream(kinesalite, shards=2)
    lines = ms.run_both(db, pgspout, tmp_path, "kinesis",
                        kinesis_options(kinesalite, stream), env=aws_env())
    records = [(k, d) for k, d in stream_records(kinesalite, stream)
               if json.loads(d)["op"] == "message"]
    assert records == [("-", line) for line in ms.by_op(lines, "message")]
    assert [json.loads(d)["content"] for _, d in records] == [
        "first", "second"]


def test_undelivered_message_is_never_confirmed(db, pgspout, kinesalite):
    """A message counts as durable only once Kinesis stored its record:
    with a message_stream that does not exist the stream stops, naming
    it, and the slot stays before the messages (a transactional one whose
    transaction holds no change, and a non-transactional one)."""
    db.create_slot(db.name)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    db.psql("select pg_logical_emit_message(true, 'outbox', 'tx');"
            "select pg_logical_emit_message(false, 'outbox', 'lone');")
    stream = new_stream(kinesalite, shards=1)
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--messages",
                    "--sink", "kinesis", "-o", "stream=" + stream,
                    "-o", "message_stream=no-such-messages",
                    "-o", "endpoint=" + kinesalite.url,
                    "-o", "region=us-east-1", "--endpos", ms.wal_end(db),
                    env=aws_env(), timeout=60)
    assert r.returncode == 1, r.stderr[-4000:]
    assert "ResourceNotFoundException" in r.stderr
    assert "no-such-messages" in r.stderr
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before
    assert stream_records(kinesalite, stream) == []
