"""Streamed in-progress transactions (pgoutput protocol 2, PostgreSQL 14+).

Each test database sets logical_decoding_work_mem to its minimum, 64kB, so
the walsender streams any transaction larger than that while it runs.
pgspout keeps the changes (in memory up to stream_memory, then in files
under spill_dir) and hands them to the sinks at the Stream Commit, exactly
as a protocol 1 transaction."""

import os
import signal
import subprocess
import threading
import time

import pytest

from pgharness import (assert_positions_increase, data_events, lsn_to_int,
                       read_jsonl, wait_until)

pytestmark = pytest.mark.since(14)


def streaming_db(db):
    db.psql("alter database \"%s\" set logical_decoding_work_mem = '64kB';"
            % db.name)
    db.psql("create table t (id int primary key, v text);")
    db.create_slot(db.name)


def slot_stats(db):
    """(stream_bytes, spill_bytes) of the test's slot, as the server counts
    them (the statistics arrive a little after the walsender's work)."""
    db.psql("select pg_stat_force_next_flush();", check=False) \
        if db.major >= 15 else None
    row = db.query("select stream_bytes, spill_bytes from "
                   "pg_stat_replication_slots where slot_name = '%s'"
                   % db.name)
    return (int(row[0][0]), int(row[0][1])) if row else (0, 0)


def run_stream(pgspout, db, out, *extra, env=None, timeout=300):
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink", "file",
                    "-o", "path=" + out, "-o", "fsync=false",
                    "--endpos", db.current_lsn(), *extra, env=env,
                    timeout=timeout)
    assert r.returncode == 0, "pgspout exited %d:\n%s" % (
        r.returncode, r.stderr[-4000:])
    return r


def ids_of(events, op="insert"):
    return [e["after"]["id"] for e in data_events(events, "t")
            if e["op"] == op]


def test_large_transaction_streamed_delivered_once(db, pgspout, tmp_path):
    streaming_db(db)
    db.psql("insert into t select g, md5(g::text) from "
            "generate_series(1, 200000) g;")
    out = str(tmp_path / "out.jsonl")
    run_stream(pgspout, db, out)
    events = read_jsonl(out)
    assert_positions_increase(events)
    assert ids_of(events) == list(range(1, 200001))
    stream_bytes, spill_bytes = wait_for_stats(db)
    assert stream_bytes > 0 and spill_bytes == 0, (stream_bytes, spill_bytes)
    # A second run from the confirmed position delivers nothing again.
    run_stream(pgspout, db, out)
    assert ids_of(read_jsonl(out)) == list(range(1, 200001))


def wait_for_stats(db):
    result = {}

    def streamed():
        result["v"] = slot_stats(db)
        return result["v"][0] > 0
    wait_until(streamed, timeout=30, what="stream_bytes > 0")
    return result["v"]
