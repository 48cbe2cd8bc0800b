"""What the store sinks' message tests share: a workload with messages and
transactions, and the file sink's events to compare the stores with."""

from pgharness import lsn_to_int
from test_messages import wal_end

__all__ = ["message_workload", "wal_end", "position_id", "of_ops", "contents",
           "MESSAGE_CONTENTS"]

# What message_workload delivers, in stream order (content, or the base64
# of binary content): never the rolled-back one.
MESSAGE_CONTENTS = ['{"n":1}', "lone", "/wA="]


def message_workload(db):
    """A transactional message inside a transaction, a non-transactional
    one between two transactions, one in a transaction that rolls back
    (never delivered), and a binary one; table t gets ids 1..3."""
    db.psql("begin; insert into t values (1);"
            "select pg_logical_emit_message(true, 'app', '{\"n\":1}');"
            "insert into t values (2); commit;")
    db.psql("select pg_logical_emit_message(false, 'app', 'lone');")
    db.psql("begin; insert into t values (99);"
            "select pg_logical_emit_message(true, 'app', 'rolled back');"
            "rollback;")
    db.psql("insert into t values (3);")
    db.psql("select pg_logical_emit_message(false, 'bin', '\\xff00'::bytea);")
    return wal_end(db)


def position_id(event):
    """The id the store sinks give an event: "<commit_lsn hex>-<seq>"."""
    return "%X-%d" % (lsn_to_int(event["commit_lsn"]), event["seq"])


def of_ops(events, *ops):
    return [e for e in events if e["op"] in ops]


def contents(messages):
    return [m["content"] if "content" in m else m["content_base64"]
            for m in messages]
