"""Backfills under faults, into the file sink: pgspout killed with SIGKILL
again and again while it copies (and a workload changes every table), and
PostgreSQL restarted (immediate) while it copies. After the faults the copy
goes on from the last chunk every sink made durable: no row is missing
(replaying the events per key gives each table exactly), and the file sink
holds each read event once.

Every other run of the kill loop, and the whole restart test, read each
chunk with two connections (backfill_chunk_readers): kills and restarts
land in the middle of pieces too, and a chunk cut by one run may be read
again by a run that does not cut it.

CI: 10 kills, 3 restarts; PGSPOUT_FAULTS_FULL=1: 100 kills, 15 restarts.
PGSPOUT_TEST_SEED repeats a run."""

import os
import random
import time

import pytest

import backfill_support as bs
import faults_support as fs
from pgharness import assert_positions_increase, read_jsonl
from test_backfill import check_status_counts, initial_id

# Rows of setup_tables(n): orders n, accounts, nopk and heap_full n / 4
# each, events_part 3000.
ROWS = 6000
TOTAL_ROWS = ROWS + 3 * (ROWS // 4) + 3000


# Each chunk in two pieces of 100 rows (the least a piece has).
TWO_READERS = ("--backfill-chunk-readers", "2")


def config(tmp_path, db, out, rate):
    return bs.write_config(tmp_path, db, "s1", out, extra=(
        "create_slot = true;\nbackfill_chunk_rows = 200;\n"
        "backfill_workers = 2;\nbackfill_max_rows_per_sec = %d;\n" % rate))


def assert_no_spill_left(tmp_path):
    """Pieces of reads cut short were removed with the chunks' files."""
    left = [f for f in os.listdir(bs.state_dir(tmp_path))
            if f.endswith(".spill")]
    assert not left, left


def check_after_faults(db, events, backfill):
    assert_positions_increase(events)
    bs.assert_reads_once(events)
    bs.assert_replay_matches(db, events)
    for table in bs.KEYS:
        bs.assert_chunks_well_formed(events, backfill, table)
    return len(bs.reads(events))


def finish(db, pgspout, conf, backfill, work, proc=None):
    """Lets the copy end, the workload stop, and everything drain."""
    try:
        if proc is None:
            fs.wait_slot_free(db, "s1")
            proc = pgspout.spawn("-c", conf, *TWO_READERS)
        st = bs.wait_backfill(db, "s1", backfill, proc, pgspout, timeout=600)
        time.sleep(1)
        # The status table existed already: the server's NOTICE about it
        # goes to pgspout's log at debug level, not raw onto stderr.
        assert "NOTICE" not in pgspout.stderr_of(proc)
    finally:
        work.stop()
    bs.drain(db, "s1", proc, pgspout, timeout=600)
    return st


@pytest.mark.slow
@pytest.mark.all_versions
def test_kill_loop_during_backfill(db, pgspout, tmp_path):
    seed = int(os.environ.get("PGSPOUT_TEST_SEED", time.time()))
    print("seed", seed)
    rng = random.Random(seed)
    kills = fs.count(10, 100)
    bs.setup_tables(db, n=ROWS)
    out = str(tmp_path / "out.jsonl")
    # Slow enough that the copy lasts the whole loop.
    conf = config(tmp_path, db, out, rate=max(200, TOTAL_ROWS // kills))
    work = bs.workload(db, str(tmp_path), n=ROWS, rate=100)
    during = 0
    try:
        proc = pgspout.spawn("-c", conf)
        backfill = initial_id(db, "s1")  # recorded: later runs go on
        for i in range(kills):
            if i:
                fs.wait_slot_free(db, "s1")
                proc = pgspout.spawn("-c", conf,
                                     *(TWO_READERS if i % 2 else ()))
                time.sleep(rng.uniform(0.3, 1.5))
            assert proc.poll() is None, "pgspout exited %s early:\n%s" % (
                proc.returncode, pgspout.stderr_of(proc)[-4000:])
            proc.kill()
            proc.wait()
            during += bs.status(db, "s1", backfill)["*"][0] != "done"
    except BaseException:
        work.stop()
        raise
    st = finish(db, pgspout, conf, backfill, work)

    events = read_jsonl(out)
    reads = check_after_faults(db, events, backfill)
    check_status_counts(st, events, backfill)
    assert_no_spill_left(tmp_path)
    assert during >= kills // 2, "the kills missed the copy: %d" % during
    fs.report_figures("backfill_kill_loop", kills=kills,
                      kills_during_copy=during, read_events=reads,
                      events=len(events), lost=0, duplicated=0, seed=seed)


@pytest.mark.slow
@pytest.mark.all_versions
def test_postgres_restarts_during_backfill(db, pgspout, tmp_path):
    seed = int(os.environ.get("PGSPOUT_TEST_SEED", time.time()))
    rng = random.Random(seed)
    restarts = fs.count(3, 15)
    bs.setup_tables(db, n=ROWS)
    out = str(tmp_path / "out.jsonl")
    conf = config(tmp_path, db, out,
                  rate=max(200, TOTAL_ROWS // (3 * restarts)))
    work = bs.workload(db, str(tmp_path), n=ROWS, rate=100)
    during = 0
    try:
        proc = pgspout.spawn("-c", conf, *TWO_READERS)
        backfill = initial_id(db, "s1")
        for _ in range(restarts):
            time.sleep(rng.uniform(1.0, 2.5))
            during += bs.status(db, "s1", backfill).get(
                "*", ("pending",))[0] != "done"
            db.server.restart("immediate")
            assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
    except BaseException:
        work.stop()
        raise
    st = finish(db, pgspout, conf, backfill, work, proc=proc)

    events = read_jsonl(out)
    reads = check_after_faults(db, events, backfill)
    check_status_counts(st, events, backfill)
    assert_no_spill_left(tmp_path)
    assert during >= restarts // 2, "the restarts missed the copy"
    stderr = pgspout.stderr_of(proc)
    assert "connection to the server lost" in stderr
    fs.report_figures("backfill_postgres_restarts", restarts=restarts,
                      restarts_during_copy=during, read_events=reads,
                      events=len(events), lost=0, duplicated=0, seed=seed)
