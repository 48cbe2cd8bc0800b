"""Logs (README "Logs"): --log-format json (or log_format in the config
file) writes one JSON object a line with an RFC 3339 UTC timestamp, the
level, the message, the sink and the line's fields; and a sink's repeated
warnings are rate-limited to one line per 10 s with a count, so an outage
of the fault sink's service (a warning per failed request, as the sink kit
writes them) or a run of RETRY answers (a warning per retry from the core)
writes a few lines whose counts add up to every warning."""

import re

from ops_support import fault_sink_path, json_lines
from pgharness import wait_until

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
LEVELS = {"debug", "info", "warning", "error"}


def check_line(line):
    assert set(line) == {"timestamp", "level", "message", "sink", "fields"}, \
        line
    assert TIMESTAMP.match(line["timestamp"]), line
    assert line["level"] in LEVELS, line
    assert isinstance(line["message"], str) and line["message"], line
    assert line["sink"] is None or isinstance(line["sink"], str), line
    assert isinstance(line["fields"], dict), line


def test_json_lines(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into t values (1);")
    r = pgspout.run("-v", "--log-format", "json", "-d", db.conninfo,
                    "--slot", db.name, "--sink", fault_sink_path(),
                    "-o", "path=%s" % (tmp_path / "o.jsonl"),
                    "-o", "retry_writes=2", "--endpos", db.current_lsn())
    assert r.returncode == 0, r.stderr
    lines = json_lines(r.stderr)
    for line in lines:
        check_line(line)
    levels = {line["level"] for line in lines}
    assert {"debug", "info", "warning"} <= levels, levels
    # A sink's own line and the core's lines about a sink name the sink;
    # the three warnings after the first were counted, not written.
    injected = [x for x in lines if "injected RETRY" in x["message"]]
    assert [x["sink"] for x in injected] == ["fault"], injected
    repeats = [x for x in lines if "repeated" in x["fields"]]
    assert [(x["sink"], x["fields"]["repeated"]) for x in repeats] == \
        [("fault", 3)], lines
    assert "the last: write failed (attempt 2)" in repeats[0]["message"]
    done = [x for x in lines if "succeeded after" in x["message"]]
    assert [(x["sink"], x["fields"]) for x in done] == \
        [("fault", {"attempts": 3})], done
    core = [x for x in lines if x["message"].startswith("reached endpos")]
    assert core and core[0]["sink"] is None


def test_json_from_the_config_file(db, pgspout, tmp_path):
    db.create_slot(db.name)
    cfg = tmp_path / "p.conf"
    cfg.write_text('log_format = "json";\nslot = "%s";\nsinks = ( { name = '
                   '"f"; type = "file"; options = { path = "%s"; }; } );\n'
                   % (db.name, tmp_path / "o.jsonl"))
    r = pgspout.run("-c", str(cfg), "-d", db.conninfo,
                    "--endpos", db.current_lsn())
    assert r.returncode == 0, r.stderr
    lines = json_lines(r.stderr)
    assert lines and all(check_line(x) is None for x in lines)
    # The command line wins over the file.
    r = pgspout.run("-c", str(cfg), "-d", db.conninfo, "--log-format",
                    "text", "--endpos", db.current_lsn())
    assert r.stderr.startswith("pgspout: info: "), r.stderr


def warnings_of(lines, sink):
    return [x for x in lines if x["sink"] == sink and
            x["level"] == "warning"]


def counted(lines):
    """Warnings a set of lines stands for: one each, or a line's count."""
    return sum(x["fields"].get("repeated", 1) for x in lines)


def test_outage_warnings_rate_limited(db, pgspout, tmp_path):
    """An outage of 4 s with a failed request every 20 ms: 200 warnings,
    written as the first one and one line that counts the 199 others."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    proc = pgspout.spawn("--log-format", "json", "-d", db.conninfo,
                         "--slot", db.name, "--sink", fault_sink_path(),
                         "-o", "path=%s" % (tmp_path / "o.jsonl"),
                         "-o", "outage=4s", "-o", "outage_request=20ms")
    db.psql("insert into t values (1);")
    wait_until(lambda: "outage over" in pgspout.stderr_of(proc), timeout=60,
               what="the outage's end")
    # The count comes once the 10 s window is over.
    wait_until(lambda: any("repeated" in x["fields"] for x in warnings_of(
        json_lines(pgspout.stderr_of(proc)), "fault")), timeout=30,
        what="the line with the count")
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)
    lines = warnings_of(json_lines(pgspout.stderr_of(proc)), "fault")
    assert len(lines) == 2, lines
    assert lines[0]["message"] == "outage: request 1 failed " \
        "(connection refused)"
    assert lines[1]["fields"]["repeated"] == 199, lines[1]
    assert lines[1]["message"].startswith("199 more warnings in the last "), \
        lines[1]
    assert lines[1]["message"].endswith("the last: outage: request 200 "
                                        "failed (connection refused)")
    assert counted(lines) == 200


def test_retry_warnings_rate_limited_in_text(db, pgspout, tmp_path):
    """Six RETRY answers: the core's warning per retry and the sink's own,
    twelve warnings, in two text lines; the core's own lines (no sink)
    are never held back."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into t values (1);")
    r = pgspout.run("-d", db.conninfo, "--slot", db.name,
                    "--sink", fault_sink_path(),
                    "-o", "path=%s" % (tmp_path / "o.jsonl"),
                    "-o", "retry_writes=6", "--endpos", db.current_lsn())
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines()
             if x.startswith("pgspout: warning: [fault] ")]
    assert len(lines) == 2, r.stderr
    assert lines[0] == "pgspout: warning: [fault] injected RETRY for " \
        "write call 1"
    m = re.match(r"pgspout: warning: \[fault\] (\d+) more warnings in the "
                 r"last \d+ s; the last: ", lines[1])
    assert m and int(m.group(1)) == 11, lines
    assert "succeeded after 7 attempts" in r.stderr
