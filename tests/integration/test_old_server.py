"""A server older than PostgreSQL 14 (13, which pgspout does not support
and the harness installs only for this): pgspout and `pgspout backfill`
refuse it with an error naming its version and exit 2, before anything
is created or emitted."""

import os
import re

import pytest

pytestmark = pytest.mark.major(13)

ROWS = 5


def slots(db):
    return [r[0] for r in db.query(
        "select slot_name from pg_replication_slots "
        "where database = current_database() order by 1")]


def test_refused_before_anything_is_made(db, pgspout, tmp_path):
    db.psql("create table orders (id int primary key, note text);"
            "insert into orders select g, 'n' || g "
            "from generate_series(1, %d) g;" % ROWS)
    out = str(tmp_path / "out.jsonl")
    for mode in ([], ["--snapshot", "initial"], ["--snapshot", "only"],
                 ["--snapshot", "never"]):
        r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--create-slot",
                        *mode, "--state-dir", str(tmp_path / "state"),
                        "--sink", "file", "-o", "path=" + out, timeout=60)
        assert r.returncode == 2, "exit %d:\n%s" % (r.returncode, r.stderr)
        assert re.search(r"the server runs PostgreSQL 13\.\d+; pgspout needs "
                         r"PostgreSQL 14 or later", r.stderr), r.stderr
        assert slots(db) == [], "a refused run left a slot behind"
        assert db.scalar("select count(*) from pg_publication") == "0"
        assert not os.path.exists(out) or os.path.getsize(out) == 0


def test_backfill_request_refused(db, pgspout):
    db.psql("create table orders (id int primary key, note text);"
            "create publication pgspout for all tables;")
    # test_decoding prints every logical decoding message: none may appear.
    db.psql("select pg_create_logical_replication_slot('%s', 'pgoutput');"
            "select pg_create_logical_replication_slot('seen', "
            "'test_decoding');" % db.name)
    r = pgspout.run("backfill", "-d", db.conninfo, "--slot", db.name, "-t",
                    "orders", timeout=60)
    assert r.returncode == 2, "exit %d:\n%s" % (r.returncode, r.stderr)
    assert re.search(r"the server runs PostgreSQL 13\.\d+; backfill requests "
                     r"need PostgreSQL 14 or later", r.stderr), r.stderr
    assert r.stdout == ""
    changes = db.query("select data from pg_logical_slot_peek_changes("
                       "'seen', null, null)")
    assert not [c for (c,) in changes if "message" in c], changes
