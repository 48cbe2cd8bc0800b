"""Backfills in operations (README "Production"): /metrics show a table's
rows copied against its estimate, its chunks and its state, and the
tables of the recorded backfills by state; a table whose backfill failed
makes /ready answer 503 (reason backfill_failed, naming the table and
the error) until a later backfill of it is done, also across a restart
(the state directory remembers it). The server's notices go through the
log (JSON lines stay JSON)."""

import backfill_support as bs
from ops_support import (free_port, json_lines, ready, scrape,
                         spawn_streaming, wait_metric)
from pgharness import read_jsonl, wait_until

# Reading row 3 divides by zero: the chunk's query fails for good.
FAILING_WHERE = "100 / (id - 3) <> 0"


def start(db, pgspout, tmp_path, port):
    out = tmp_path / "out.jsonl"
    proc = spawn_streaming(pgspout, db, port, "--sink", "file",
                           "-o", "path=%s" % out,
                           "--state-dir", str(tmp_path / "state"),
                           "--backfill-chunk-rows", "20")
    return proc, out


def chunks_read(out, backfill, table):
    return {e["snapshot"]["chunk"]
            for e in bs.reads(read_jsonl(out), table, backfill)}


def backfill_failed_reasons(port):
    status, body = ready(port)
    return status, [r for r in body.get("reasons", [])
                    if r["reason"] == "backfill_failed"]


def test_backfill_metrics_and_readiness(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key, v text);"
            "insert into t select i, 'x' from generate_series(1, 50) i;"
            "create table u (id int primary key);"
            "insert into u select generate_series(1, 30);"
            "analyze t, u;")
    db.create_slot(db.name)
    port = free_port()
    proc, out = start(db, pgspout, tmp_path, port)
    m = scrape(port)
    for state in ("pending", "copying", "done", "failed"):
        assert m.get("pgspout_backfill_tables", state=state) == 0, m.text

    bs.request(db, db.name, "b1", ["t"])
    bs.wait_backfill(db, db.name, "b1", proc, pgspout)
    m = wait_metric(port, lambda m: m.get("pgspout_backfill_rows_copied",
                                          table="public.t") == 50,
                    "50 rows of public.t copied")
    assert m.get("pgspout_backfill_rows_estimated", table="public.t") == 50
    chunks = len(chunks_read(out, "b1", "t"))
    assert chunks >= 3, chunks
    # An empty last chunk (the table's end) is a chunk with no row.
    assert chunks <= m.get("pgspout_backfill_chunks_total",
                           table="public.t") <= chunks + 1, m.text
    assert m.get("pgspout_backfill_table_state", table="public.t",
                 state="done") == 1
    assert m.get("pgspout_backfill_table_state", table="public.t",
                 state="copying") == 0
    assert m.get("pgspout_backfill_tables", state="done") == 1
    assert ready(port)[0] == 200

    bs.request(db, db.name, "b2", ["u"], where=FAILING_WHERE)
    bs.wait_backfill(db, db.name, "b2", proc, pgspout, want="failed")
    status, failed = backfill_failed_reasons(port)
    assert status == 503 and len(failed) == 1, failed
    assert failed[0]["table"] == "public.u"
    assert "division by zero" in failed[0]["error"], failed
    m = scrape(port)
    assert m.get("pgspout_ready") == 0
    assert m.get("pgspout_backfill_table_state", table="public.u",
                 state="failed") == 1
    assert m.get("pgspout_backfill_tables", state="failed") == 1

    # The state directory remembers the failure across a restart (logging
    # JSON lines: the server's notice that the status table exists is one
    # of them, not a raw line).
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)
    port = free_port()
    proc = pgspout.spawn("-d", db.conninfo, "--slot", db.name,
                         "--http", "127.0.0.1:%d" % port, "--sink", "file",
                         "-o", "path=%s" % out, "--log-format", "json", "-v",
                         "--state-dir", str(tmp_path / "state"))
    wait_until(lambda: backfill_failed_reasons(port)[1]
               if ready(port)[0] else None, timeout=60,
               what="backfill_failed after the restart")
    assert backfill_failed_reasons(port)[1][0]["table"] == "public.u"

    # Copied again: ready, and the table done.
    bs.request(db, db.name, "b3", ["u"])
    bs.wait_backfill(db, db.name, "b3", proc, pgspout)
    wait_until(lambda: ready(port)[0] == 200, timeout=60,
               what="ready once public.u is copied again")
    m = scrape(port)
    assert m.get("pgspout_backfill_rows_copied", table="public.u") == 30
    assert m.get("pgspout_backfill_table_state", table="public.u",
                 state="done") == 1
    assert m.get("pgspout_backfill_tables", state="done") == 2
    assert m.get("pgspout_backfill_tables", state="failed") == 1
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)
    notices = [line for line in json_lines(pgspout.stderr_of(proc))
               if line["message"].startswith("server NOTICE: ")]
    assert any("already exists" in line["message"] for line in notices)
