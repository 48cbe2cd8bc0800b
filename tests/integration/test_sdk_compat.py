"""Sinks built against an older SDK keep working: a sink compiled from the
ABI 1.0 headers, kept verbatim in tests/compat/abi-1.0, loads into today's
host and receives exactly what 1.0 can name (inserts, updates, deletes,
truncates, schema events), never a message, begin or commit, and the
rows a snapshot copies (read events, ABI 1.2) as inserts; and a sink
declaring a newer minor than the host's is refused, naming both versions.
"""

import json
import os

import faults_support as fs
from ops_support import fault_sink_path
from pgharness import lsn_to_int, read_jsonl
from test_messages import slot_confirmed, wal_end


def compat_sink_path(name):
    return fault_sink_path().replace("pgspout_fault.so", name)


def read_compat(path):
    with open(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    return [(op, rel, json.loads(key)) for op, rel, key in rows]


def test_abi_1_0_sink_gets_what_it_knows(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key, v text);")
    db.create_slot(db.name)
    db.psql("insert into t values (1, 'a'), (2, 'b');"
            "update t set v = 'c' where id = 1;")
    db.psql("begin; delete from t where id = 2;"
            "select pg_logical_emit_message(true, 'app', 'in'); commit;")
    last = lsn_to_int(db.scalar(
        "select pg_logical_emit_message(false, 'app', 'last')"))
    new_out, old_out = str(tmp_path / "new.jsonl"), str(tmp_path / "old.tsv")
    conf = fs.write_config(str(tmp_path / "pgspout.conf"), db, db.name, [
        ("new", "file", {"path": new_out}),
        ("old", compat_sink_path("pgspout_compat_abi10.so"), {"path": old_out}),
    ], extra="messages = true;\ntransaction_events = true;")
    r = pgspout.run("-c", conf, "--endpos", wal_end(db))
    # The compat sink fails the run on any op its headers cannot name.
    assert r.returncode == 0, r.stderr[-4000:]
    new = read_jsonl(new_out)
    assert {"message", "begin", "commit"} <= {e["op"] for e in new}
    old = [row for row in read_compat(old_out) if row[0] != "schema"]
    assert old == [(e["op"], "%s.%s" % (e["schema"], e["table"]), e["key"])
                   for e in new if e["op"] in ("insert", "update", "delete")]
    assert [row[0] for row in old] == ["insert", "insert", "update",
                                       "delete"]
    # What the old sink never held does not hold the slot back.
    assert slot_confirmed(db, db.name) > last


def test_abi_1_0_sink_gets_reads_as_inserts(db, pgspout, tmp_path):
    """abi.h: an op added later reaches an older sink as the op it
    generalises; a read is an insert of the same row at the same place."""
    db.psql("create table t (id int primary key, v text);"
            "insert into t select g, 'v' || g from generate_series(1, 25) g;")
    new_out, old_out = str(tmp_path / "new.jsonl"), str(tmp_path / "old.tsv")
    conf = fs.write_config(str(tmp_path / "pgspout.conf"), db, db.name, [
        ("new", "file", {"path": new_out}),
        ("old", compat_sink_path("pgspout_compat_abi10.so"), {"path": old_out}),
    ], extra='create_slot = true;\nsnapshot = "only";\nstate_dir = "%s";'
       % (tmp_path / "state"))
    r = pgspout.run("-c", conf, timeout=120)
    # The compat sink fails the run on any op its headers cannot name.
    assert r.returncode == 0, r.stderr[-4000:]
    reads = [e for e in read_jsonl(new_out) if e["op"] != "schema"]
    assert len(reads) == 25 and {e["op"] for e in reads} == {"read"}
    old = [row for row in read_compat(old_out) if row[0] != "schema"]
    assert old == [("insert", "public.t", e["key"]) for e in reads]


def test_sink_of_a_newer_minor_is_refused(db, pgspout, tmp_path):
    db.create_slot(db.name)
    sink = compat_sink_path("pgspout_compat_too_new.so")
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink", sink,
                    "-o", "path=%s" % (tmp_path / "out.tsv"))
    assert r.returncode != 0
    assert "sink built for ABI 1.%d" % (host_minor() + 1) in r.stderr, \
        r.stderr
    assert "this pgspout provides ABI 1.%d" % host_minor() in r.stderr
    assert not os.path.exists(tmp_path / "out.tsv")


def host_minor():
    repo = os.path.join(os.path.dirname(__file__), "..", "..")
    with open(os.path.join(repo, "sdk", "include", "pgspout",
                           "abi.h")) as f:
        for line in f:
            if line.startswith("#define PGSPOUT_ABI_MINOR"):
                return int(line.split()[2])
    raise AssertionError("no PGSPOUT_ABI_MINOR in abi.h")
