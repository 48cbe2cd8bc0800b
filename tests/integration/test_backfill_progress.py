"""A backfill's progress on stderr (README "How the copy works", Logs) and
its rate limit: a copy held to backfill_max_rows_per_sec takes at least
its rows over that rate and logs, every 10 s, the rows copied against
the estimate, the rate and an ETA, as JSON lines with --log-format json
even when stderr is a terminal; with text logs a terminal gets one line
redrawn in place instead."""

import os
import pty
import re
import select
import subprocess
import time
import tty

from ops_support import json_lines

ROWS = 3000
PROGRESS = re.compile(r"backfill (initial-\S+): public\.t: (\d+) of ~%d "
                      r"rows \((\d+)%%\), (\d+) rows/s, ETA (\d+) s" % ROWS)
COPIED = re.compile(r"backfill initial-\S+: public\.t copied: %d rows in "
                    r"([\d.]+) s" % ROWS)


def on_terminal(pgspout, args, timeout=180):
    """Runs pgspout with stderr on a terminal (raw: no newline
    translation); returns its exit status and what it wrote there."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen([pgspout.binary] + list(args),
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave,
                            cwd=pgspout.workdir)
    pgspout.procs.append(proc)
    os.close(slave)
    out, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            out.append(data)
        else:
            raise AssertionError("pgspout ran past %d s:\n%s" % (
                timeout, b"".join(out)[-4000:].decode(errors="replace")))
        return proc.wait(timeout=60), b"".join(out).decode(errors="replace")
    finally:
        os.close(master)


def copy_args(db, tmp_path, slot, rate, *extra):
    return ["-d", db.conninfo, "--slot", slot, "--create-slot",
            "--snapshot", "only", "--state-dir", str(tmp_path / slot),
            "--backfill-chunk-rows", "100", "--backfill-max-rows-per-sec",
            str(rate), "--sink", "file", "-o",
            "path=%s" % (tmp_path / (slot + ".jsonl")), "-o", "fsync=false",
            *extra]


def test_progress_lines_and_rate_limit(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key, v text);"
            "insert into t select g, 'v' || g from generate_series(1, %d) g;"
            "analyze t;" % ROWS)

    # JSON logs on a terminal: the 10 s lines, never a redrawn one.
    rate = 250
    rc, text = on_terminal(pgspout, copy_args(db, tmp_path, "json", rate,
                                              "--log-format", "json"))
    assert rc == 0, text[-4000:]
    assert "\r" not in text and "\033[K" not in text, text[-2000:]
    messages = [line["message"] for line in json_lines(text)]
    progress = [PROGRESS.fullmatch(m) for m in messages]
    progress = [m for m in progress if m]
    assert progress, "no progress line in:\n%s" % "\n".join(messages)
    for m in progress:
        copied, percent, per_s, eta = (int(m.group(i)) for i in (2, 3, 4, 5))
        assert 0 < copied < ROWS, m[0]
        assert abs(percent - 100 * copied / ROWS) <= 0.5, m[0]
        # The burst (a second's worth) and then the rate: never faster.
        assert 0 < per_s <= 2 * rate, m[0]
        assert abs(eta - (ROWS - copied) / per_s) <= 1, m[0]
    done = [COPIED.fullmatch(m) for m in messages]
    done = [m for m in done if m]
    assert len(done) == 1, messages
    # Every row past the first second's burst (and the first chunk, which
    # may have been taken before the table's clock started) waited for
    # the limit.
    assert float(done[0].group(1)) >= (ROWS - rate - 100) / rate, done[0][0]

    # Text logs on a terminal: one line redrawn in place, no 10 s lines.
    rc, text = on_terminal(pgspout, copy_args(db, tmp_path, "text", 600))
    assert rc == 0, text[-4000:]
    drawn = re.findall(r"\r(backfill [^\r\n\033]*)\033\[K", text)
    assert drawn and all(PROGRESS.fullmatch(d) for d in drawn), text[-3000:]
    logged = [line for line in text.split("\n") if "rows/s" in line
              and not line.startswith("\r")]
    assert not logged, logged
    assert COPIED.search(text), text[-3000:]
