"""Fault 1, the crash loop: while a W2-like workload (pgbench, many small
insert+update transactions from concurrent clients) runs, pgspout streaming
to the file sink, OpenSearch and kinesalite at once is killed with SIGKILL
at random moments and started again; at the end one run drains to --endpos.

File sink: every committed change exactly once and in order, checked
against the server's own audit of the transactions. Elastic: the index
equals the table. Kinesis: every change at least once, each row's changes
in order.

CI: 10 kills; PGSPOUT_FAULTS_FULL=1: 100. PGSPOUT_TEST_SEED repeats a run.
"""

import os
import random
import time

import pytest

import faults_support as fs
from pgharness import read_jsonl


@pytest.mark.slow
def test_crash_loop_exactly_once(db, pgspout, tmp_path):
    seed = int(os.environ.get("PGSPOUT_TEST_SEED", time.time()))
    print("seed", seed)
    rng = random.Random(seed)
    kills = fs.count(10, 100)
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
    env = fs.aws_env()
    work = fs.Pgbench(db, str(tmp_path)).start()
    confirmed = []
    try:
        for i in range(kills):
            # The killed process's walsender must let go of the slot first.
            fs.wait_slot_free(db, db.name)
            before = fs.slot_state(db, db.name)[1]
            proc = pgspout.spawn("-c", conf, env=env)
            if i % 4 == 0:
                # Every 4th run is killed only once it has confirmed
                # something, so the kills also hit a stream in full flow
                # however slow the sinks are to start.
                deadline = time.monotonic() + 60
                while fs.slot_state(db, db.name)[1] == before and \
                        proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(rng.uniform(0, 0.5))
            else:
                time.sleep(rng.uniform(0.1, 1.5))
            assert proc.poll() is None, "pgspout exited %s early:\n%s" % (
                proc.returncode, pgspout.stderr_of(proc)[-4000:])
            proc.kill()
            proc.wait()
            confirmed.append(fs.slot_state(db, db.name)[1])
    finally:
        work.stop()
    endpos = db.current_lsn()
    fs.wait_slot_free(db, db.name)
    r = pgspout.run("-c", conf, "--endpos", endpos, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]

    # The killed runs did make progress, so the kills hit live streaming.
    assert len(set(confirmed)) >= kills // 4, confirmed
    events = read_jsonl(out)
    changes, lost, duplicated = fs.check_exactly_once(db, events)
    assert changes > 100, "workload too small to mean anything"
    docs = fs.check_index_equals_table(node, db,
                                       index.replace("{table}", "t"))
    records, kinesis_dups = fs.check_at_least_once(kin, stream, events)
    fs.report_figures("crash_loop", kills=kills, changes=changes,
                      transactions=len(fs.audit_by_xid(db)), lost=lost,
                      duplicated_file=duplicated, elastic_docs=docs,
                      kinesis_records=records,
                      kinesis_duplicated=kinesis_dups, seed=seed)
