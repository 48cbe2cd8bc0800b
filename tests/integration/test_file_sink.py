"""File sink options: stdout, rotation, fsync; and sinks listing."""

import glob
import os
import re
import subprocess

from pgharness import (assert_positions_increase, data_events, lsn_to_int,
                       read_jsonl)


def test_path_dash_writes_stdout(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into t values (1), (2);")
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink", "file",
                    "-o", "path=-", "--endpos", db.current_lsn())
    assert r.returncode == 0, r.stderr
    out = tmp_path / "stdout.jsonl"
    out.write_text(r.stdout)
    events = data_events(read_jsonl(out))
    assert [e["after"]["id"] for e in events] == [1, 2]
    # logs go to stderr, never into the data stream
    assert all(line.startswith("{") for line in r.stdout.splitlines())


def test_rotation(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key, pad text);")
    db.create_slot(db.name)
    out = str(tmp_path / "rot.jsonl")
    # Several runs, each writing more than rotate_size: however the sink
    # batches its writes, each run's output crosses the limit.
    for part in range(4):
        db.psql("insert into t select g, repeat('p', 100) from "
                "generate_series(%d, %d) g;" % (part * 60 + 1, part * 60 + 60))
        r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink",
                        "file", "-o", "path=" + out, "-o", "rotate_size=8192",
                        "-o", "fsync=true", "--endpos", db.current_lsn())
        assert r.returncode == 0, r.stderr
    rotated = sorted(glob.glob(out + ".[0-9][0-9][0-9][0-9][0-9][0-9]"))
    assert len(rotated) >= 3, os.listdir(tmp_path)
    assert rotated[0].endswith(".000001")
    files = rotated + ([out] if os.path.exists(out) else [])
    events = []
    for path in files:
        assert os.path.getsize(path) > 0 or path == out
        events += read_jsonl(path)
    assert_positions_increase(events)
    ids = [e["after"]["id"] for e in data_events(events)]
    assert ids == list(range(1, 241))


def test_resume_continues_rotated_file(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key, pad text);")
    db.create_slot(db.name)
    out = str(tmp_path / "rot.jsonl")
    args = ["-d", db.conninfo, "--slot", db.name, "--sink", "file",
            "-o", "path=" + out, "-o", "rotate_size=4096"]
    logs = []
    for part in range(3):
        db.psql("insert into t select g, repeat('p', 100) from "
                "generate_series(%d, %d) g;" % (part * 50 + 1, part * 50 + 50))
        res = pgspout.run(*args, "--endpos", db.current_lsn())
        assert res.returncode == 0, res.stderr
        logs.append(res.stderr)
    files = sorted(glob.glob(out + ".*")) + ([out] if os.path.exists(out)
                                             else [])
    assert len(files) >= 3, files
    # Each run ends with a rotation (its output passes rotate_size), so the
    # next one finds the current file empty and resumes from a rotated one.
    assert any(re.search(r'rot\.jsonl\.\d{6}": resuming after', log)
               for log in logs[1:]), logs
    events = []
    for path in files:
        events += read_jsonl(path)
    assert_positions_increase(events)
    assert [e["after"]["id"] for e in data_events(events)] == \
        list(range(1, 151))


def test_list_sinks(pgspout):
    r = pgspout.run("--list-sinks", timeout=30)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    file_lines = [line for line in lines if line.split()[0] == "file"]
    assert len(file_lines) == 1, r.stdout
    name, version, abi_word, abi, *description = file_lines[0].split()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), file_lines
    assert (abi_word, abi) == ("ABI", "1.7"), file_lines
    assert " ".join(description).startswith("appends one JSON object")
    # the option table is printed under it
    assert re.search(r"^\s+path\s+string\s+required", r.stdout, re.M)


def test_help_and_version(pgspout):
    for flag in ("--help", "--version"):
        r = pgspout.run(flag, timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip()
    assert "--sink" in pgspout.run("--help", timeout=30).stdout


def test_lsn_helper():
    assert lsn_to_int("1/0") == 1 << 32
    assert lsn_to_int("0/16B3748") == 0x16B3748


def test_restart_after_values_jansson_cannot_load(db, pgspout, tmp_path):
    """jsonb holds numbers past 64 bits and json holds 1e400; such a row as
    the file's last line must not stop the sink from restarting."""
    db.psql("create table t (id int primary key, j jsonb, k json);")
    db.create_slot(db.name)
    db.psql("insert into t values (1, '{\"a\": 123456789012345678901234567890}',"
            " '[1e400]');")
    out = str(tmp_path / "out.jsonl")
    args = ("-d", db.conninfo, "--slot", db.name, "--sink", "file",
            "-o", "path=" + out)
    r = pgspout.run(*args, "--endpos", db.current_lsn())
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        last = f.read().splitlines()[-1]
    assert '"a":123456789012345678901234567890' in last
    assert '"k":[1e400]' in last
    db.psql("insert into t values (2, '{}', '{}');")
    r = pgspout.run(*args, "--endpos", db.current_lsn())
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        ids = [line.split('"key":{"id":')[1].split("}")[0]
               for line in f if '"op":"insert"' in line]
    assert ids == ["1", "2"]


def cached_bytes(path):
    """Bytes of the file in the page cache (util-linux fincore)."""
    r = subprocess.run(["fincore", "--bytes", "--noheadings", "--output",
                        "RES", path], capture_output=True, text=True,
                       check=True)
    return int(r.stdout.strip())


def test_fsynced_output_leaves_the_page_cache(db, pgspout, tmp_path):
    """With fsync, what was made durable is dropped from the page cache by
    default (pgspout never reads it back; a partly filled last page may
    stay); keep_cached=true leaves it there. The lines are the same either way."""
    db.psql("create table t (id int primary key, pad text);")
    db.create_slot(db.name)
    db.psql("select pg_create_logical_replication_slot('%s_kept', "
            "'pgoutput');" % db.name)
    db.psql("insert into t select g, repeat('p', 200) from "
            "generate_series(1, 3000) g;")
    end = db.current_lsn()
    outputs = {}
    # The default first, then keep_cached=true.
    for keep, slot in (("false", db.name), ("true", db.name + "_kept")):
        out = str(tmp_path / ("keep-%s.jsonl" % keep))
        extra = ["-o", "keep_cached=true"] if keep == "true" else []
        r = pgspout.run("-d", db.conninfo, "--slot", slot, "--sink", "file",
                        "-o", "path=" + out, "-o", "fsync=true", *extra,
                        "--endpos", end)
        assert r.returncode == 0, r.stderr
        outputs[keep] = out
    # Before anything reads the files (which would cache them again).
    size = os.path.getsize(outputs["false"])
    assert size > 500000
    assert cached_bytes(outputs["false"]) <= 4096
    assert cached_bytes(outputs["true"]) >= size
    dropped, kept = (read_jsonl(outputs[k]) for k in ("false", "true"))
    assert [e["after"]["id"] for e in data_events(dropped)] == \
        list(range(1, 3001))
    assert [e["after"] for e in data_events(dropped)] == \
        [e["after"] for e in data_events(kept)]
