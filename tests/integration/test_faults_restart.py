"""Fault 2: PostgreSQL restarted with `pg_ctl restart -m immediate` (a crash
for everything but the data on disk) several times while a workload runs
and one pgspout streams to the file sink, OpenSearch and kinesalite at once
from a config file. pgspout reconnects with backoff and resumes from the
slot; nothing committed is lost, and the file sink (which skips what it
already took in this process) holds every change exactly once.

CI: 3 restarts; PGSPOUT_FAULTS_FULL=1: 15.
"""

import random
import signal
import time

import pytest

import faults_support as fs
from pgharness import read_jsonl


@pytest.mark.slow
def test_server_restarts_under_workload(server, db, pgspout, tmp_path):
    restarts = fs.count(3, 15)
    rng = random.Random()
    node = fs.opensearch_node()
    kin = fs.kinesalite_server()
    stream = fs.new_kinesis_stream(kin)
    index = "faults-%s-{table}" % db.name
    fs.setup_audited(db)
    out = str(tmp_path / "out.jsonl")
    conf = fs.write_config(str(tmp_path / "pgspout.conf"), db, db.name, [
        ("file", "file", {"path": out, "fsync": True}),
        ("search", "elastic", {"url": node.url, "index": index}),
        ("kinesis", "kinesis", {"stream": stream, "endpoint": kin.url,
                                "region": "us-east-1", "linger": "5ms"}),
    ])
    work = fs.Pgbench(db, str(tmp_path)).start()
    proc = pgspout.spawn("-c", conf, env=fs.aws_env())
    try:
        for i in range(restarts):
            # Let changes flow (and be confirmed) before each crash.
            before = fs.slot_state(db, db.name)[1]
            deadline = time.monotonic() + 60
            while fs.slot_state(db, db.name)[1] == before:
                assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
                assert time.monotonic() < deadline, \
                    "nothing confirmed after restart %d" % i
                time.sleep(0.2)
            time.sleep(rng.uniform(0.2, 2.0))
            server.restart("immediate")
    finally:
        work.stop()
    endpos = db.current_lsn()
    fs.wait_confirmed(db, db.name, endpos, proc, pgspout)
    assert pgspout.stop(proc, signal.SIGTERM) == 0, \
        pgspout.stderr_of(proc)[-4000:]
    stderr = pgspout.stderr_of(proc)
    lost_connections = stderr.count("connection to the server lost")
    assert lost_connections >= restarts, stderr[-4000:]
    assert "reconnecting in" in stderr

    events = read_jsonl(out)
    changes, lost, duplicated = fs.check_exactly_once(db, events)
    assert changes > 100
    docs = fs.check_index_equals_table(node, db,
                                       index.replace("{table}", "t"))
    records, kinesis_dups = fs.check_at_least_once(kin, stream, events)
    fs.report_figures("pg_restarts", restarts=restarts,
                      reconnects=lost_connections, pgbench_runs=work.runs,
                      changes=changes, lost=lost, duplicated_file=duplicated,
                      elastic_docs=docs, kinesis_records=records,
                      kinesis_duplicated=kinesis_dups)
