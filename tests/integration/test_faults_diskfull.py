"""Fault 4, disk full under the file sink: the output lives on a 2 MiB
tmpfs of its own, mounted for the test (root is needed to mount; without
it the test is skipped and says why). A filler file leaves a few KiB; the
workload fills the rest. Then:
- the error is clear: the sink names the file and "No space left on
  device", and the core says it retries;
- nothing is confirmed past what the file holds: every transaction whose
  commit lies before confirmed_flush_lsn is complete in the file, sampled
  again and again while the disk is full;
- once the filler is removed the stream resumes by itself, and the file
  holds every committed change exactly once (no torn or repeated lines).

The full period lasts 5 s in CI, 30 s with PGSPOUT_FAULTS_FULL=1.
"""

import os
import re
import signal
import time

import pytest

import faults_support as fs
from pgharness import lsn_to_int, read_jsonl, wait_until


def fill(path, leave):
    st = os.statvfs(os.path.dirname(path))
    size = st.f_bavail * st.f_frsize - leave
    with open(path, "wb") as f:
        f.write(b"\0" * size)
    return size


def positions(events):
    return {(e["commit_lsn"], e["seq"]) for e in fs.data_only(events)}


def batch(db, rows):
    db.psql("begin;"
            "insert into t (v, note) select 0, repeat('x', 200) "
            "from generate_series(1, %d);"
            "update t set v = v + 1 where id = (select max(id) from t);"
            "commit;" % rows)


@pytest.mark.slow
def test_disk_full_under_file_sink(db, pgspout, small_fs):
    full_for = fs.count(5, 30)
    fs.setup_audited(db)
    out = str(small_fs / "out.jsonl")
    filler = str(small_fs / "filler")
    proc = pgspout.spawn("-d", db.conninfo, "--slot", db.name,
                         "--sink", "file", "-o", "path=" + out,
                         "-o", "fsync=true", "-s", "1")
    batch(db, 10)
    wait_until(lambda: len(fs.complete_events(out)) >= 11,
               what="first changes in the file")
    fill(filler, leave=24 * 1024)

    # Write until the sink reports the full disk.
    for _ in range(200):
        batch(db, 20)
        time.sleep(0.05)
        if "No space left on device" in pgspout.stderr_of(proc):
            break
    stderr = pgspout.stderr_of(proc)
    assert "No space left on device" in stderr, stderr[-3000:]

    # Full: the stream stays up, and what is confirmed is in the file.
    samples = []
    deadline = time.monotonic() + full_for
    while time.monotonic() < deadline:
        batch(db, 5)
        before = positions(fs.complete_events(out))
        confirmed = fs.slot_state(db, db.name)[1]
        after = positions(fs.complete_events(out))
        assert proc.poll() is None, pgspout.stderr_of(proc)[-3000:]
        if before == after:
            samples.append((confirmed, after))
        time.sleep(0.2)
    assert samples, "the file never held still while the disk was full"
    # The sink's warning comes at once; delivery's, from the same sink
    # within 10 s, is rate-limited (README "Logs"): it comes in the line
    # that counts the window's warnings.
    wait_until(lambda: "retrying in" in pgspout.stderr_of(proc),
               timeout=60, what="the retry warning, once its window ends")
    stderr = pgspout.stderr_of(proc)
    assert "(will retry)" in stderr, stderr[-3000:]
    assert re.search(r"\[file\] \d+ more warnings? in the last \d+ s; "
                     r"the last: ", stderr), stderr[-3000:]
    assert out in stderr  # the message names the file

    os.unlink(filler)
    endpos = db.current_lsn()
    fs.wait_confirmed(db, db.name, endpos, proc, pgspout, timeout=120)
    assert pgspout.stop(proc, signal.SIGTERM) == 0, \
        pgspout.stderr_of(proc)[-3000:]
    assert "succeeded after" in pgspout.stderr_of(proc)

    events = read_jsonl(out)  # no torn line either
    changes, lost, dups = fs.check_exactly_once(db, events)
    checked = 0
    for confirmed, held in samples:
        # A transaction that commits before the confirmed position ends at
        # or before it: all of it must have been in the file.
        due = {(e["commit_lsn"], e["seq"]) for e in fs.data_only(events)
               if lsn_to_int(e["commit_lsn"]) < confirmed}
        missing = due - held
        assert not missing, "confirmed %X while %d confirmed changes were " \
            "not in the file, e.g. %s" % (confirmed, len(missing),
                                          sorted(missing)[:3])
        checked += 1
    held_back = sum(1 for c, held in samples
                    if len(held) < changes)
    assert held_back == len(samples), "disk was not full while sampling"
    fs.report_figures("disk_full", full_s=full_for, samples=checked,
                      changes=changes, lost=lost, duplicated_file=dups)
