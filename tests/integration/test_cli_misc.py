"""Secrets stay out of logs, --drop-slot, and bounded memory."""

import os

import pytest

from pgharness import PASSWORD_USER, run_measured

PASSWORD = "Sekr1t-pw-XYZZY"


def test_password_never_logged(db, pgspout, tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into t values (1);")
    good = db.server.conninfo(db.name, user=PASSWORD_USER,
                              password=PASSWORD)
    out = str(tmp_path / "out.jsonl")
    r = pgspout.run("-d", good, "--slot", db.name, "--sink", "file",
                    "-o", "path=" + out, "--endpos", db.current_lsn())
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stderr and PASSWORD not in r.stdout
    # Failures are where a conninfo tends to be echoed.
    uri = "postgresql://%s:%s@127.0.0.1:%d/%s" % (
        PASSWORD_USER, PASSWORD, db.server.port, db.name)
    for conninfo in (
            db.server.conninfo(db.name, user=PASSWORD_USER,
                               password=PASSWORD + "-wrong"),
            db.server.conninfo("no_such_db", user=PASSWORD_USER,
                               password=PASSWORD),
            uri.replace("/" + db.name, "/no_such_db")):
        r = pgspout.run("-d", conninfo, "--slot", db.name, "--sink", "file",
                        "-o", "path=" + out, "--endpos", db.current_lsn(),
                        timeout=60)
        assert r.returncode == 1, (conninfo, r.returncode, r.stderr)
        assert PASSWORD not in r.stderr, r.stderr
        assert r.stderr.strip()
    r = pgspout.run("-d", uri, "--list-tables", "-t", "nomatch_*")
    assert PASSWORD not in r.stderr + r.stdout


def test_password_from_environment(db, pgspout, tmp_path):
    env = dict(os.environ, PGPASSWORD=PASSWORD, PGUSER=PASSWORD_USER)
    r = pgspout.run("-d", "host=127.0.0.1 port=%d dbname=%s"
                    % (db.server.port, db.name), "--list-tables", env=env)
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stderr


def test_drop_slot(db, pgspout):
    db.create_slot(db.name)
    assert db.slot_info(db.name) is not None
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--drop-slot")
    assert r.returncode == 0, r.stderr
    assert db.slot_info(db.name) is None
    # dropping what is not there is a runtime failure
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--drop-slot")
    assert r.returncode == 1


def test_unreachable_server_exits_1(pgspout, tmp_path):
    r = pgspout.run("-d", "host=127.0.0.1 port=1 connect_timeout=5",
                    "--slot", "x", "--sink", "file",
                    "-o", "path=%s" % (tmp_path / "o"), timeout=60)
    assert r.returncode == 1, r.stderr


@pytest.mark.slow
@pytest.mark.rss
def test_million_row_transaction_bounded_memory(db, pgspout_bin, tmp_path):
    db.psql("create table big (id int primary key, v text);")
    db.create_slot(db.name)
    db.psql("insert into big select g, md5(g::text) from "
            "generate_series(1, 1000000) g;")
    out, peak = run_measured(pgspout_bin, db, tmp_path, timeout=900)
    max_rss_kb = peak // 1024
    count = 0
    with open(out, encoding="utf-8") as f:
        for line in f:
            if '"op":"insert"' in line:
                count += 1
    assert count == 1000000
    os.unlink(out)
    print("peak RSS %d kB" % max_rss_kb)
    assert max_rss_kb < 64 * 1024, "peak RSS %d kB" % max_rss_kb
