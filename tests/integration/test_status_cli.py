"""`pgspout status` (README "pgspout status"): one screen about a slot from
the server alone, no daemon needed, checked against what the server says:
in use or not (and by which walsender), the confirmed LSN, the lag and the
retained WAL in bytes, wal_status, the publication's tables, and the
slot's backfills: the status table's rows, and the requests waiting in the
WAL (pgspout's logical decoding messages past the confirmed position,
heartbeats and other slots' requests left out)."""

import os
import re

import pytest

import backfill_support as bs
from ops_support import free_port, spawn_streaming
from pgharness import wait_until


def field(out, label):
    m = re.search(r"^  %s:\s+(.*)$" % re.escape(label), out, re.M)
    assert m, "no %r line in:\n%s" % (label, out)
    return m.group(1)


def nbytes(text):
    m = re.match(r"(\d+) bytes", text)
    assert m, text
    return int(m.group(1))


def server_view(db):
    """confirmed LSN, lag, current and restart LSNs in bytes, walsender."""
    row = db.query("select confirmed_flush_lsn::text, "
                   "pg_current_wal_lsn() - confirmed_flush_lsn, "
                   "pg_current_wal_lsn() - '0/0', restart_lsn - '0/0', "
                   "active_pid "
                   "from pg_replication_slots where slot_name = '%s'"
                   % db.name)[0]
    return row[0], int(row[1]), int(row[2]), int(row[3]), row[4]


def setup(db):
    db.psql("create table a (id int primary key); create table b (id int);"
            "create table c (id int);"
            'create table "Odd name" (id int);'
            "create publication pgspout for table a, b, \"Odd name\";")
    db.psql("select pg_create_logical_replication_slot('%s', 'pgoutput');"
            % db.name)
    db.psql("insert into a select generate_series(1, 1000);")
    # A request as `pgspout backfill` sends one, one for another slot,
    # and a heartbeat, which is not a request.
    bs.request(db, db.name, "r1", ["a"])
    bs.request(db, "other_slot", "r2", ["b"])
    db.psql("select pg_logical_emit_message(false, 'pgspout', "
            "'{\"type\":\"heartbeat\"}');")
    db.psql("select pg_logical_emit_message(false, 'someone-else', 'x');")


@pytest.mark.all_versions
def test_status_of_an_idle_slot(db, pgspout):
    setup(db)
    before = server_view(db)
    r = pgspout.run("status", "-d", db.conninfo, "--slot", db.name)
    after = server_view(db)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith('slot "%s" (database "%s", plugin pgoutput, '
                          "PostgreSQL %d." % (db.name, db.name, db.major)), out
    assert field(out, "active") == "no"
    assert field(out, "confirmed LSN").split()[0] == before[0]
    assert before[1] <= nbytes(field(out, "lag")) <= after[1]
    assert before[1] > 0
    assert field(out, "wal_status") == "reserved"
    # Reading the requests peeks at the slot, and decoding a running-xacts
    # record behind the confirmed position lets the server move an idle
    # slot's restart_lsn on: retained WAL is bounded by both ends' moves.
    retained = nbytes(field(out, "retained WAL"))
    assert before[2] - after[3] <= retained <= after[2] - before[3]
    assert field(out, "safe_wal_size").startswith("unlimited")
    tables = out.split('publication "pgspout": 3 tables\n', 1)[1]
    assert tables.splitlines()[:3] == ['  public."Odd name"', "  public.a",
                                       "  public.b"], out
    assert "the status table public.pgspout_backfill_status does not " \
        "exist" in out, out
    assert re.search(r"^r1 +\* +pending$", out, re.M), out
    assert "    requested: -t a\n" in out, out
    assert "r2" not in out and "heartbeat" not in out, out
    # Asking moved nothing.
    assert server_view(db)[0] == before[0]


def test_status_of_a_slot_in_use(db, pgspout, tmp_path):
    """The daemon takes the request: its status rows show the copy."""
    setup(db)
    port = free_port()
    proc = spawn_streaming(pgspout, db, port, "--sink", "file",
                           "-o", "path=%s" % (tmp_path / "o.jsonl"),
                           "--state-dir", str(tmp_path / "state"))

    def status_when_copied():
        r = pgspout.run("status", "-d", db.conninfo, "--slot", db.name)
        assert r.returncode == 0, r.stderr
        return r if re.search(r"^r1 +public\.a +done +1000 ", r.stdout,
                              re.M) else None
    r = wait_until(status_when_copied, timeout=120,
                   what="public.a copied, as pgspout status shows it")
    pid = server_view(db)[4]
    assert field(r.stdout, "active") == "yes (walsender pid %s)" % pid
    assert re.search(r"^r1 +\* +done +1000 ", r.stdout, re.M), r.stdout
    assert "requested:" not in r.stdout
    assert pgspout.stop(proc) == 0


def test_status_from_a_config_file(db, pgspout, tmp_path):
    setup(db)
    cfg = tmp_path / "p.conf"
    cfg.write_text('connection = "%s";\nslot = "%s";\npublication = "nope";\n'
                   'sinks = ( { name = "f"; type = "file"; options = '
                   '{ path = "/dev/null"; }; } );\n' % (db.conninfo, db.name))
    r = pgspout.run("status", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert 'publication "nope": does not exist' in r.stdout
    assert "requests waiting in the WAL cannot be listed: " \
        'publication "nope" does not exist' in r.stdout, r.stdout
    # Flags win over the file.
    r = pgspout.run("status", "-c", str(cfg), "--publication", "pgspout")
    assert 'publication "pgspout": 3 tables' in r.stdout, r.stdout


def test_status_of_a_missing_slot(db, pgspout):
    r = pgspout.run("status", "-d", db.conninfo, "--slot", "nothere")
    assert r.returncode == 1
    assert 'replication slot "nothere" does not exist' in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--slot", "Bad-Name"], "may contain only lower-case letters"),
    (["--sink", "file"], "unknown option"),
    (["extra"], 'unexpected argument "extra"'),
    (["-d", "host=x sslmode=bogus"], "invalid value \"bogus\""),
])
def test_status_usage_errors(pgspout, args, message):
    r = pgspout.run("status", *args, env={
        k: v for k, v in os.environ.items() if not k.startswith("PG")})
    assert r.returncode == 2, r.stderr
    assert message in r.stderr, r.stderr
    assert "Usage: pgspout status [-c FILE]" in r.stderr, r.stderr

