"""pgspout backfill, the client command: bad input exits 2 before anything
is emitted (checked on a second slot made for the check, which decodes
every logical decoding message of the database), a good request emits
exactly the message README describes, --status lists requests still in
the WAL while no pgspout streams, and a stop ends --wait. What the daemon
does with requests (--wait returning, failed backfills, --status of a
running copy) is in test_backfill_daemon.py."""

import json
import re
import signal
import struct
import time

import pytest

from pgharness import wait_until

CHECK_SLOT = "emitted_check"


def setup(db, publication="for all tables"):
    db.psql("""
        create table orders (id int primary key, note text, qty int);
        create table order_items (order_id int, n int, sku text,
                                  primary key (order_id, n));
        create table "Mixed Case" (k text primary key);
        create table other (id int primary key, flag bool);
        create publication pgspout %s;
        select pg_create_logical_replication_slot('%s', 'pgoutput');
        select pg_create_logical_replication_slot('%s', 'pgoutput');
    """ % (publication, db.name, CHECK_SLOT))


def pgoutput_messages(db, slot=CHECK_SLOT):
    """The contents of every logical decoding message with prefix pgspout
    the slot would send, decoded from pgoutput's binary Message format
    ('M', flags, LSN, prefix, length, content)."""
    rows = db.query(
        "select encode(data, 'hex') from "
        "pg_logical_slot_peek_binary_changes('%s', null, null, "
        "'proto_version', '1', 'publication_names', 'pgspout', "
        "'messages', 'true') where get_byte(data, 0) = 77" % slot)
    out = []
    for (hexdata,) in rows:
        data = bytes.fromhex(hexdata)
        flags = data[1]
        end = data.index(b"\0", 10)
        prefix = data[10:end].decode()
        (length,) = struct.unpack(">I", data[end + 1:end + 5])
        content = data[end + 5:end + 5 + length].decode()
        assert flags & 1, "a non-transactional message"
        if prefix == "pgspout":
            out.append(json.loads(content))
    return out


def backfill(pgspout, db, *args, slot=None, timeout=60):
    return pgspout.run("backfill", "-d", db.conninfo, "--slot",
                       slot or db.name, *args, timeout=timeout)


def assert_refused(r, db, *fragments):
    assert r.returncode == 2, "exit %d:\n%s%s" % (r.returncode, r.stdout,
                                                   r.stderr)
    for f in fragments:
        assert f in r.stderr, "%r not in:\n%s" % (f, r.stderr)
    assert r.stdout == ""
    assert pgoutput_messages(db) == [], "a refused request was emitted"


@pytest.mark.all_versions
def test_request_emits_the_message(db, pgspout):
    setup(db)
    r = backfill(pgspout, db, "-t", "public.order*", "-T", "order_items",
                 "-t", '"Mixed Case"', "--where", "id > 0 OR k <> ')'")
    # The where must apply to every selected table: "Mixed Case" has no
    # id and orders no k, so the server refuses it for the first one.
    assert_refused(r, db, "--where does not apply to", "does not exist")

    r = backfill(pgspout, db, "-t", "public.order*", "-T", "order_items",
                 "-t", '"Mixed Case"')
    assert r.returncode == 0, r.stderr
    backfill_id = r.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{16}", backfill_id), r.stdout
    assert "the request selects 2 tables: public.\"Mixed Case\", " \
           "public.orders" in r.stderr, r.stderr
    assert pgoutput_messages(db) == [{
        "type": "backfill", "slot": db.name, "id": backfill_id,
        "include": ["public.order*", '"Mixed Case"'],
        "exclude": ["order_items"], "where": None}]

    # A where that applies to every selected table goes along, as given.
    r = backfill(pgspout, db, "-t", "orders", "-t", "order_items",
                 "--where", "(select true)")
    assert r.returncode == 0, r.stderr
    second = r.stdout.strip()
    assert second != backfill_id
    messages = pgoutput_messages(db)
    assert [m["id"] for m in messages] == [backfill_id, second]
    assert messages[1]["where"] == "(select true)"
    assert messages[1]["include"] == ["orders", "order_items"]


@pytest.mark.all_versions
def test_bad_input_emits_nothing(db, pgspout, tmp_path):
    setup(db)
    db.psql("create table unpublished (id int primary key);"
            "alter publication pgspout set (publish = 'insert');")
    cases = [
        (["-t", "nosuchtable"],
         ['-t "nosuchtable" matches no table that publication "pgspout" '
          'publishes']),
        (["-t", "orders", "-T", "nosuch*"],
         ['-T "nosuch*" matches no table']),
        (["-t", "orders", "-T", "orders"],
         ["the patterns select no table"]),
        (["-t", "orders", "--where", "no_such_column = 1"],
         ['--where does not apply to public.orders: column '
          '"no_such_column" does not exist']),
        (["-t", "orders", "--where", "id >"],
         ["--where does not apply to public.orders: syntax error"]),
        (["-t", "orders", "--where", "pg_sleep(1) IS NULL"],
         None),  # valid: EXPLAIN runs nothing
        (["-t", "orders", "--publication", "nopub"],
         ['publication "nopub" does not exist']),
    ]
    for args, fragments in cases:
        r = backfill(pgspout, db, *args)
        if fragments is None:
            assert r.returncode == 0, r.stderr
            db.psql("select pg_drop_replication_slot('%s');"
                    "select pg_create_logical_replication_slot('%s', "
                    "'pgoutput');" % (CHECK_SLOT, CHECK_SLOT))
            continue
        assert_refused(r, db, *fragments)

    r = backfill(pgspout, db, "-t", "orders", slot="nosuchslot")
    assert_refused(r, db, 'replication slot "nosuchslot" does not exist')

    # A slot of another database.
    other = db.name + "_b"
    db.psql('create database "%s";' % other, dbname="postgres")
    try:
        db.psql("select pg_create_logical_replication_slot('%s_other', "
                "'pgoutput');" % db.name, dbname=other)
        r = backfill(pgspout, db, "-t", "orders", slot=db.name + "_other")
        assert_refused(r, db, "is not a logical slot of database",
                       'belongs to "%s"' % other)
    finally:
        db.psql("select pg_drop_replication_slot('%s_other');" % db.name,
                dbname=other)
        db.psql('drop database "%s";' % other, dbname="postgres")

    # A slot of another output plugin.
    db.psql("select pg_create_logical_replication_slot('%s_td', "
            "'test_decoding');" % db.name)
    r = backfill(pgspout, db, "-t", "orders", slot=db.name + "_td")
    assert_refused(r, db, 'uses output plugin "test_decoding"')

    # Refused before connecting: the where's form, patterns, flags.
    for args, fragment in [
            (["-t", "orders", "--where", "true); drop table orders; --"],
             "--where has a ')' that closes more than it opened"),
            (["-t", "orders", "--where", "true; select 1"],
             "--where holds a ';'"),
            (["-t", "orders", "--where", "note = 'open"], "--where ends "
             "inside a quoted string"),
            (["-t", "a.b.c.d"], "too many dotted names"),
            (["-t", "otherdb.public.orders"],
             "cross-database references are not implemented"),
            ([], "-t PATTERN is required"),
            (["-t", "orders", "--status"], "--table cannot be used with --status"),
            (["-t", "orders", "--wait=3"], "unrecognized option '--wait'"),
    ]:
        r = backfill(pgspout, db, *args)
        assert_refused(r, db, fragment)
        assert 'Try "pgspout backfill --help"' in r.stderr
    assert db.scalar("select count(*) from orders") == "0"


def test_partition_apart_from_root_refused(db, pgspout):
    db.psql("""
        create table m (id int, at date, primary key (id, at))
            partition by range (at);
        create table m_2025 partition of m
            for values from ('2025-01-01') to ('2026-01-01');
        create publication pgspout for all tables
            with (publish_via_partition_root = true);
        select pg_create_logical_replication_slot('%s', 'pgoutput');
        select pg_create_logical_replication_slot('%s', 'pgoutput');
    """ % (db.name, CHECK_SLOT))
    r = backfill(pgspout, db, "-t", "m_2025")
    assert_refused(r, db, 'include pattern "m_2025" selects partition '
                          'public.m_2025 but not public.m')
    r = backfill(pgspout, db, "-t", "m")
    assert r.returncode == 0, r.stderr
    assert "the request selects 1 table: public.m\n" in r.stderr
    assert [m["include"] for m in pgoutput_messages(db)] == [["m"]]


def test_secrets_and_bad_conninfo(db, pgspout):
    setup(db)
    r = pgspout.run("backfill", "-d", "host=127.0.0.1 sslmode=bogus "
                    "password=Sekr1t-pw", "-t", "orders")
    assert r.returncode == 2
    assert "sslmode" in r.stderr and "Sekr1t" not in r.stderr
    assert pgoutput_messages(db) == []


def test_config_file_gives_connection_and_slot(db, pgspout, tmp_path):
    setup(db)
    conf = tmp_path / "pgspout.conf"
    conf.write_text('connection = "%s";\nslot = "%s";\n'
                    'include = ["other"];\nexclude = ["orders"];\n'
                    'sinks = ({ name = "f"; type = "file"; '
                    'options = { path = "/dev/null"; }; });\n'
                    % (db.conninfo, db.name))
    r = pgspout.run("backfill", "-c", str(conf), "-t", "orders")
    assert r.returncode == 0, r.stderr
    (msg,) = pgoutput_messages(db)
    # The file's include/exclude are the daemon's filters, not the
    # request's patterns.
    assert msg["slot"] == db.name and msg["include"] == ["orders"]
    assert msg["exclude"] == []


def test_status_lists_requests_waiting_in_the_wal(db, pgspout, tmp_path):
    setup(db)
    r = backfill(pgspout, db, "--status")
    assert r.returncode == 0, r.stderr
    assert "nothing streams from it" in r.stdout
    assert "pgspout_backfill_status does not exist" in r.stdout
    assert "no request is waiting in the WAL" in r.stdout

    ids = []
    for args in (["-t", "orders"], ["-t", "order*", "-T", "order_items",
                                    "--where", "qty > 1 OR id = 7"]):
        r = backfill(pgspout, db, *args)
        assert r.returncode == 0, r.stderr
        ids.append(r.stdout.strip())
    # A request for another slot is not this slot's.
    other = backfill(pgspout, db, "-t", "orders", slot=CHECK_SLOT)
    assert other.returncode == 0, other.stderr
    # One by hand, as README shows it, and a rolled-back one.
    db.psql("""
        select pg_logical_emit_message(true, 'pgspout', json_build_object(
            'type', 'backfill', 'slot', '%s', 'id', 'by-hand-1',
            'include', json_build_array('public.orders'),
            'exclude', json_build_array(), 'where', NULL)::text);
        begin;
        select pg_logical_emit_message(true, 'pgspout',
            '{"type":"backfill","slot":"%s","id":"rolled-back",
              "include":["orders"]}');
        rollback;
    """ % (db.name, db.name))
    r = backfill(pgspout, db, "--status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    pending = [l.split()[0] for l in lines if l.split()[2:3] == ["pending"]]
    assert pending == ids + ["by-hand-1"], r.stdout
    assert "    requested: -t order* -T order_items --where qty > 1 OR " \
           "id = 7" in lines
    assert "    requested: -t public.orders" in lines
    assert other.stdout.strip() not in r.stdout

    # Once pgspout streams from the slot, it has the requests (in its
    # status table) and the WAL is not peeked.
    proc = pgspout.spawn("-d", db.conninfo, "--slot", db.name, "--sink",
                         "file", "-o", "path=/dev/null", "-t", "other",
                         "--state-dir", str(tmp_path / "state"))
    try:
        def listed():
            r = backfill(pgspout, db, "--status")
            assert r.returncode == 0, r.stderr
            ids_in_table = [l.split()[0] for l in r.stdout.splitlines()
                            if l.split()[1:2] == ["*"]]
            return "streamed by pid" in r.stdout and \
                ids_in_table == ids + ["by-hand-1"] and r
        r = wait_until(listed, 60, "the requests in the status table")
        assert "streamed by pid" in r.stdout
        assert "requested:" not in r.stdout and "WAL" not in r.stdout
    finally:
        pgspout.stop(proc)

    r = backfill(pgspout, db, "--status", slot="nosuchslot")
    assert r.returncode == 2
    assert 'replication slot "nosuchslot" does not exist' in r.stdout


def test_wait_ends_on_a_stop(db, pgspout):
    setup(db)
    proc = pgspout.spawn("backfill", "-d", db.conninfo, "--slot", db.name,
                         "-t", "orders", "--wait")
    path = proc.stderr_path
    wait_until(lambda: "waiting for pgspout to pick up" in open(path).read(),
               30, "the wait to begin")
    started = time.monotonic()
    rc = pgspout.stop(proc, signal.SIGINT, timeout=10)
    assert rc == 1
    assert time.monotonic() - started < 5
    err = pgspout.stderr_of(proc)
    assert "stopped waiting; backfill" in err and "goes on" in err
    assert len(pgoutput_messages(db)) == 1
