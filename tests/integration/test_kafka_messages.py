"""Logical decoding messages and transaction events through the Kafka sink
(ABI 1.5), against a real broker: messages on message_topic keyed by
their prefix, begin and commit events on transaction_topic keyed by the
commit LSN, each record's value the file sink's line for the same event
(both sinks in one pgspout); nothing of a rolled-back transaction; and
nothing extra when the settings or the topics are off."""

import json

import kafka_server
import message_sinks as ms
from test_kafka import kafka, new_prefix  # noqa: F401 (the fixture)


def kafka_options(kafka, prefix, **extra):
    options = {"brokers": kafka.bootstrap,
               "topic": prefix + ".{schema}.{table}",
               "message_topic": prefix + ".messages",
               "transaction_topic": prefix + ".transactions"}
    options.update(extra)
    return options


def values(records):
    return [r["payload"] for r in records]


def change_lines(lines):
    return ms.by_op(lines, "insert", "update", "delete", "truncate")


def change_records(kafka, prefix):
    return [r for t in (prefix + ".public.a", prefix + ".public.b")
            for r in kafka.records(t)]


def test_messages_and_transactions_on_their_topics(db, pgspout, kafka,
                                                   tmp_path):
    ms.tables(db)
    db.create_slot(db.name)
    ms.workload(db)
    prefix = new_prefix()
    lines = ms.run_both(db, pgspout, tmp_path, "kafka",
                        kafka_options(kafka, prefix))
    ms.check_file_side(lines)

    # Messages: one record each, the file sink's line byte for byte, keyed
    # by the prefix; one prefix's records in one partition, in order.
    msgs = kafka.records(prefix + ".messages")
    want = ms.by_op(lines, "message")
    assert sorted(values(msgs)) == sorted(want)
    assert all(r["key"] == json.loads(r["payload"])["prefix"] for r in msgs)
    for key in ("outbox", "audit", "bin", "public.a"):
        mine = [r for r in msgs if r["key"] == key]
        assert len({r["partition"] for r in mine}) == 1
        assert values(mine) == [v for v in want
                                if json.loads(v)["prefix"] == key]
    assert all(ms.ROLLED_BACK not in (r["payload"] or "")
               for t in kafka.topics() if t.startswith(prefix + ".")
               for r in kafka.records(t))
    # Headers name the op and the position; a message has no table.
    m = msgs[0]
    assert m["headers"]["pgspout-op"] == "message"
    assert m["headers"]["pgspout-commit-lsn"] == \
        json.loads(m["payload"])["commit_lsn"]
    assert m["headers"]["pgspout-seq"] == str(json.loads(m["payload"])["seq"])
    assert "pgspout-table" not in m["headers"]

    # Begin and commit: keyed by the commit LSN, the begin first.
    txs = kafka.records(prefix + ".transactions")
    assert sorted(values(txs)) == sorted(ms.by_op(lines, "begin", "commit"))
    assert all(r["key"] == json.loads(r["payload"])["commit_lsn"]
               for r in txs)
    pairs = ms.transaction_pairs((r["key"], r["payload"]) for r in txs)
    assert len(pairs) == 4
    assert all(ops == ["begin", "commit"] for ops in pairs.values())

    # The tables' topics hold the changes and nothing else.
    assert sorted(values(change_records(kafka, prefix))) == \
        sorted(change_lines(lines))
    assert set(t for t in kafka.topics() if t.startswith(prefix + ".")) == {
        prefix + s for s in (".public.a", ".public.b", ".messages",
                             ".transactions")}


def test_topics_off_send_nothing_extra(db, pgspout, kafka, tmp_path):
    """message_topic and transaction_topic empty: the events reach the
    file sink, the Kafka sink skips them and still lets the slot move past
    them."""
    ms.tables(db)
    db.create_slot(db.name)
    ms.workload(db)
    prefix = new_prefix()
    lines = ms.run_both(db, pgspout, tmp_path, "kafka", kafka_options(
        kafka, prefix, message_topic="", transaction_topic=""))
    ms.check_file_side(lines)
    assert set(t for t in kafka.topics() if t.startswith(prefix + ".")) == {
        prefix + ".public.a", prefix + ".public.b"}
    assert sorted(values(change_records(kafka, prefix))) == \
        sorted(change_lines(lines))


def test_settings_off_send_nothing_extra(db, pgspout, kafka, tmp_path):
    ms.tables(db)
    db.create_slot(db.name)
    ms.workload(db)
    prefix = new_prefix()
    lines = ms.run_both(db, pgspout, tmp_path, "kafka",
                        kafka_options(kafka, prefix), on=False)
    assert ms.by_op(lines, "message", "begin", "commit") == []
    assert set(t for t in kafka.topics() if t.startswith(prefix + ".")) == {
        prefix + ".public.a", prefix + ".public.b"}
    assert sorted(values(change_records(kafka, prefix))) == \
        sorted(change_lines(lines))


def test_empty_prefix_is_an_empty_key(db, pgspout, kafka, tmp_path):
    """PostgreSQL takes an empty prefix; its messages still have a key (an
    empty one), so they keep their order in one partition."""
    ms.tables(db)
    db.create_slot(db.name)
    db.psql("select pg_logical_emit_message(false, '', 'first');"
            "select pg_logical_emit_message(true, '', 'second');")
    prefix = new_prefix()
    lines = ms.run_both(db, pgspout, tmp_path, "kafka",
                        kafka_options(kafka, prefix))
    msgs = kafka.records(prefix + ".messages")
    assert values(msgs) == ms.by_op(lines, "message")
    assert [json.loads(v)["content"] for v in values(msgs)] == [
        "first", "second"]
    assert [r["key"] for r in msgs] == ["", ""]


def test_undelivered_message_is_never_confirmed(db, pgspout):
    """A message counts as durable only once Kafka has its record: on a
    broker that does not create message_topic the stream stops and the
    slot stays before the messages, a transactional one (its transaction
    holds no change) and a non-transactional one alike."""
    broker = kafka_server.KafkaBroker(
        properties={"auto.create.topics.enable": "false"})
    broker.require_installed()
    broker.start()
    try:
        db.create_slot(db.name)
        before = db.slot_info(db.name)["confirmed_flush_lsn"]
        db.psql("select pg_logical_emit_message(true, 'outbox', 'tx');"
                "select pg_logical_emit_message(false, 'outbox', 'lone');")
        r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--messages",
                        "--sink", "kafka", "-o", "brokers=" + broker.bootstrap,
                        # The default message_topic, on a broker of its own.
                        "-o", "kafka.topic.metadata.propagation.max.ms=2000",
                        "--endpos", ms.wal_end(db))
        assert r.returncode == 1, r.stderr[-4000:]
        # librdkafka's "Local: Unknown topic" when it knows before sending,
        # the broker's "Unknown topic or partition" otherwise.
        assert "Unknown topic" in r.stderr, r.stderr[-4000:]
        assert db.slot_info(db.name)["confirmed_flush_lsn"] == before
    finally:
        broker.stop()
