"""PostgreSQL restarting under pgspout: it reconnects with backoff and
resumes from the slot, and every committed change arrives exactly once."""

from pgharness import data_events, read_jsonl, wait_until


def data_ids(path):
    if not path.exists():
        return []
    return [e["after"]["id"] for e in data_events(read_jsonl(path))
            if e["op"] == "insert"]


def complete_lines(path):
    """Events whose line is complete (the file may be mid-write)."""
    if not path.exists():
        return 0
    return path.read_text().count('"op":"insert"')


def test_server_restarts_mid_stream(server, db, pgspout, tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    out = tmp_path / "out.jsonl"
    proc = pgspout.spawn("-d", db.conninfo, "--slot", db.name, "--sink",
                         "file", "-o", "path=%s" % out)
    for round_ in range(3):
        first = round_ * 100 + 1
        db.psql("insert into t select g from generate_series(%d, %d) g;"
                % (first, first + 99))
        wait_until(lambda: complete_lines(out) >= first + 99,
                   what="round %d delivered" % round_)
        server.restart("immediate")
    db.psql("insert into t select g from generate_series(301, 400) g;")
    wait_until(lambda: complete_lines(out) >= 400, timeout=120,
               what="changes after the last restart")
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-3000:]
    ids = data_ids(out)
    assert ids == list(range(1, 401))  # each once, in order
    stderr = pgspout.stderr_of(proc)
    assert "connection to the server lost" in stderr
    assert "reconnecting in" in stderr


def test_first_connection_failure(server, db, pgspout, tmp_path):
    """Without --retry-initial a server that is down at start is an error;
    with it, pgspout waits for the server and then streams."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    out = tmp_path / "out.jsonl"
    args = ("-d", db.conninfo, "--slot", db.name, "--sink", "file",
            "-o", "path=%s" % out)
    server.stop()
    try:
        r = pgspout.run(*args, timeout=60)
        assert r.returncode == 1
        assert "--retry-initial" in r.stderr
        proc = pgspout.spawn(*args, "--retry-initial")
        wait_until(lambda: "reconnecting in" in pgspout.stderr_of(proc),
                   what="a retry while the server is down")
    finally:
        server.start_same_port()
    db.psql("insert into t values (1), (2);")
    wait_until(lambda: complete_lines(out) >= 2, timeout=120,
               what="changes once the server is up")
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-3000:]
    assert data_ids(out) == [1, 2]
