"""A stop signal that finds a sink in the middle of a flush (README,
"SIGINT/SIGTERM"): a sink whose service answers (its last report: records
accepted) is only not done yet, so it is let finish, and pgspout exits 0
with everything confirmed; a sink whose service is failing (its last
report: records to send again) ends pgspout at once with exit 1, nothing it
did not acknowledge confirmed; so does a second signal."""

import signal

import pytest

from ops_support import fault_sink_path, free_port, spawn_streaming
from pgharness import lsn_to_int, read_jsonl, wait_until


def start(db, pgspout, tmp_path, failing):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    gate = tmp_path / "flush-waits"
    gate.write_text("")
    out = tmp_path / "out.jsonl"
    proc = spawn_streaming(pgspout, db, free_port(), "--sink",
                           fault_sink_path(), "-o", "path=%s" % out,
                           "-o", "flush_wait_file=%s" % gate,
                           "-o", "flush_wait_failing=%s"
                           % ("true" if failing else "false"))
    db.psql("insert into t select generate_series(1, 20);")
    inserted = lsn_to_int(db.current_lsn())
    wait_until(lambda: pgspout.stderr_of(proc).count("flush waiting") >= 1,
               timeout=60, what="a flush waiting for its service")
    return proc, gate, out, inserted


def confirmed(db):
    return lsn_to_int(db.slot_info(db.name)["confirmed_flush_lsn"])


def test_healthy_sink_finishes_its_flush(db, pgspout, tmp_path):
    proc, gate, out, inserted = start(db, pgspout, tmp_path, failing=False)
    proc.send_signal(signal.SIGTERM)
    # The flush under way goes on waiting for the service, and says so.
    wait_until(lambda: "letting it finish" in pgspout.stderr_of(proc),
               timeout=60, what="the sink let finish")
    assert proc.poll() is None, pgspout.stderr_of(proc)
    assert confirmed(db) < inserted
    gate.unlink()
    assert proc.wait(timeout=60) == 0, pgspout.stderr_of(proc)[-4000:]
    log = pgspout.stderr_of(proc)
    assert "stopped on request" in log, log
    assert "failing" not in log, log
    assert sorted(e["after"]["id"] for e in read_jsonl(str(out))
                  if e.get("op") == "insert") == list(range(1, 21))
    assert confirmed(db) >= inserted


@pytest.mark.parametrize("signals", [1, 2])
def test_failing_sink_ends_at_once(db, pgspout, tmp_path, signals):
    """Failing: one signal ends pgspout. Healthy but stuck: a second
    signal gives up on the flush it was let finish."""
    proc, gate, _, inserted = start(db, pgspout, tmp_path,
                                    failing=signals == 1)
    proc.send_signal(signal.SIGTERM)
    if signals == 2:
        wait_until(lambda: "letting it finish" in pgspout.stderr_of(proc),
                   timeout=60, what="the sink let finish")
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 1, pgspout.stderr_of(proc)[-4000:]
    assert "stop requested while it was failing" in pgspout.stderr_of(proc)
    assert confirmed(db) < inserted
    gate.unlink()
