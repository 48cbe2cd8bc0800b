"""What the Kafka and Kinesis message tests share: a workload with
logical decoding messages (one in a transaction, one between two
transactions, one in a transaction that rolls back, one in binary) and a
run of one pgspout that streams it into a network sink and the file sink
at once, so that each record can be compared with the file sink's line for
the same event."""

import json

from pgharness import lsn_to_int

ROLLED_BACK = "never delivered"


def workload(db):
    """Writes to tables a and b, after the slot exists. The last message's
    prefix is the partition key table a's changes have under
    partition_key = table, between two of them."""
    db.psql("""
        begin;
        insert into a values (1, 'x');
        select pg_logical_emit_message(true, 'outbox', '{"order":1}');
        insert into b values (1);
        update a set v = 'y' where id = 1;
        commit;
        select pg_logical_emit_message(false, 'audit', 'between');
        begin;
        insert into a values (2, 'z');
        select pg_logical_emit_message(true, 'outbox', '{"order":2}');
        select pg_logical_emit_message(true, 'bin', '\\xff00'::bytea);
        commit;
        begin;
        insert into a values (99, 'gone');
        select pg_logical_emit_message(true, 'outbox', '%s');
        rollback;
        insert into b values (2);
        begin;
        insert into a values (3, 'p');
        select pg_logical_emit_message(true, 'public.a', 'a table''s name');
        insert into a values (4, 'q');
        commit;
    """ % ROLLED_BACK)


def tables(db):
    db.psql("create table a (id int primary key, v text);"
            "create table b (id int primary key);")


def wal_end(db):
    """An endpos past everything done so far, the non-transactional
    message included (see test_messages.wal_end: such a message is not
    flushed by itself)."""
    db.psql("select txid_current();")
    return db.scalar("select pg_current_wal_insert_lsn()")


def config(db, slot, out_path, sink_type, sink_options, on=True):
    """A config file's text: the network sink and the file sink, with
    messages and transaction events on (or off)."""
    def value(v):
        return json.dumps(v) if isinstance(v, str) else \
            ("true" if v is True else "false" if v is False else str(v))
    options = "".join("%s = %s; " % (k, value(v))
                      for k, v in sink_options.items())
    return ("connection = %s;\nslot = %s;\nmessages = %s;\n"
            "transaction_events = %s;\n"
            "sinks = (\n { name = \"net\"; type = %s; options = { %s}; },\n"
            " { name = \"file\"; type = \"file\";"
            " options = { path = %s; fsync = false; }; }\n);\n"
            % (json.dumps(db.conninfo), json.dumps(slot), value(on),
               value(on), json.dumps(sink_type), options,
               json.dumps(out_path)))


def run_both(db, pgspout, tmp_path, sink_type, sink_options, on=True,
             env=None):
    """Streams the workload (already written) into both sinks up to its
    end; returns the file sink's lines, raw (without the newline)."""
    out = str(tmp_path / "file.jsonl")
    conf = tmp_path / "pgspout.conf"
    conf.write_text(config(db, db.name, out, sink_type, sink_options, on))
    endpos = wal_end(db)
    r = pgspout.run("-c", str(conf), "--endpos", endpos, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    assert lsn_to_int(db.slot_info(db.name)["confirmed_flush_lsn"]) >= \
        lsn_to_int(endpos)
    with open(out, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def by_op(lines, *ops):
    return [line for line in lines if json.loads(line)["op"] in ops]


def check_file_side(lines):
    """What the file sink got is what the tests expect of the others: the
    messages and transaction events of the two committed transactions and
    the message between them, nothing of the rolled-back one."""
    events = [json.loads(line) for line in lines]
    assert not any(ROLLED_BACK in line for line in lines)
    msgs = [e for e in events if e["op"] == "message"]
    assert [(m["prefix"], m["transactional"]) for m in msgs] == [
        ("outbox", True), ("audit", False), ("outbox", True), ("bin", True),
        ("public.a", True)]
    assert msgs[1]["seq"] == 0 and msgs[1]["xid"] == 0
    commits = [e for e in events if e["op"] == "commit"]
    assert [(c["event_count"], c["tables"], c["messages"])
            for c in commits] == [
        (4, {"public.a": 2, "public.b": 1}, 1),
        (3, {"public.a": 1}, 2),
        (1, {"public.b": 1}, 0),
        (3, {"public.a": 2}, 1)]
    return events


def transaction_pairs(records):
    """{key: [op, ...]} of begin/commit records in their order per key."""
    out = {}
    for key, line in records:
        out.setdefault(key, []).append(json.loads(line)["op"])
    return out
