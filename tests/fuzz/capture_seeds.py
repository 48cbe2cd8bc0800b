#!/usr/bin/env python3
"""Captures real pgoutput messages as seeds for fuzz_pgoutput: starts a
throwaway PostgreSQL (the integration harness's), runs a workload that makes
the server send every message type (relations, types, inserts, updates with
old keys and whole old rows, deletes, truncates, logical messages, origins,
text and binary tuples, unchanged TOAST values, streamed transactions with
commits and aborts, two-phase prepares, commits and rollbacks), streams it
with the capture tool once per protocol version, and writes the payloads to
OUTDIR.

Usage: capture_seeds.py CAPTURE_BINARY OUTDIR
PostgreSQL 15 serves protocols 1-3 and 16 serves 4; a missing server is
skipped with a note."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))

from pgharness import Database, PgServer, pg_available  # noqa: E402

SETUP = """
create type mood as enum ('sad', 'ok', 'happy');
create table plain (id int primary key, note text, n numeric, f float8,
    b bool, j jsonb, a int[], bin bytea, ts timestamptz, m mood);
create table full_ident (id int, v text);
alter table full_ident replica identity full;
create table nothing_ident (v text);
alter table nothing_ident replica identity nothing;
create table toasted (id int primary key, big text, small int);
alter table toasted alter column big set storage external;
create table "Mixed Case" ("Id" int primary key, "välue" text);
select pg_replication_origin_create('seed_origin');
"""

WORKLOAD = """
insert into plain values (1, 'hello', 3.14159265358979323846, 'NaN', true,
    '{"a": [1, 2.50, null]}', '{1,NULL,3}', '\\x00ff', now(), 'happy');
insert into plain values (2, E'line\\nbreak "quoted" \\u00e9', -1e-30,
    '-Infinity', false, '[]', '{}', '', 'infinity', null);
update plain set note = 'changed' where id = 1;
update plain set id = 10 where id = 2;
delete from plain where id = 10;
insert into full_ident values (1, 'a'), (2, null);
update full_ident set v = 'b' where id = 1;
delete from full_ident where id = 2;
insert into nothing_ident values ('x');
insert into toasted values (1, repeat('x', 100000), 1);
update toasted set small = 2 where id = 1;
insert into "Mixed Case" values (1, 'ü');
truncate full_ident, nothing_ident restart identity cascade;
select pg_logical_emit_message(true, 'seed/tx', 'transactional');
select pg_logical_emit_message(false, 'seed/nontx', '\\x00010203'::bytea);
begin;
select pg_replication_origin_session_setup('seed_origin');
select pg_replication_origin_xact_setup('0/AABBCC', now());
insert into plain values (3, 'from an origin');
commit;
select pg_replication_origin_session_reset();
-- big enough to be streamed (logical_decoding_work_mem = 64kB)
begin;
insert into plain (id, note) select g, md5(g::text) from
    generate_series(100, 3000) g;
savepoint s1;
insert into plain (id, note) select g, 'rolled back' from
    generate_series(5000, 7000) g;
rollback to savepoint s1;
commit;
begin;
insert into plain (id, note) select g, 'aborted' from
    generate_series(8000, 11000) g;
rollback;
alter table plain add column extra int default 7;
insert into plain (id, extra) values (4, 8);
begin;
insert into plain (id, note) values (20, 'prepared, committed');
prepare transaction 'seed_gid_1';
commit prepared 'seed_gid_1';
begin;
insert into plain (id, note) values (21, 'prepared, rolled back');
prepare transaction 'seed_gid_2';
rollback prepared 'seed_gid_2';
begin;
insert into plain (id, note) select g, 'streamed and prepared' from
    generate_series(20000, 23000) g;
prepare transaction 'seed_gid_3';
commit prepared 'seed_gid_3';
"""

# (server major, protocol, START_REPLICATION options)
RUNS = [
    (15, 1, ""),
    (15, 1, "binary 'true'"),
    (15, 2, "streaming 'on', messages 'true'"),
    (15, 3, "streaming 'on', two_phase 'on', messages 'true', "
            "binary 'true'"),
    (16, 4, "streaming 'parallel', two_phase 'on', messages 'true', "
            "origin 'any'"),
]


def extra_conf(server, text):
    server._as_user(["tee", "-a", os.path.join(server.datadir,
                                               "postgresql.conf")],
                    input=text)


def main():
    capture, outdir = sys.argv[1], os.path.abspath(sys.argv[2])
    os.makedirs(outdir, exist_ok=True)
    os.chmod(outdir, 0o777)
    servers = {}
    try:
        for major, proto, options in RUNS:
            if not pg_available(major):
                print("PostgreSQL %d not installed: protocol %d skipped"
                      % (major, proto))
                continue
            if major not in servers:
                server = PgServer(major)
                server.init()
                extra_conf(server, "max_prepared_transactions = 10\n"
                                   "logical_decoding_work_mem = 64kB\n")
                server.start()
                servers[major] = server
            server = servers[major]
            name = "seed_p%d_%d" % (proto, len(os.listdir(outdir)))
            admin = Database(server, "postgres")
            admin.psql('create database "%s";' % name)
            db = Database(server, name)
            # Origins are cluster-wide: one per database.
            origin = name + "_origin"
            db.psql(SETUP.replace("seed_origin", origin))
            db.psql("create publication pub for all tables;")
            # A slot made with two_phase = true makes the server send
            # Begin Prepare even to protocol 1 and 2 clients, which the
            # parser refuses (they need protocol 3): only protocols 3+ get
            # one.
            db.psql("select pg_create_logical_replication_slot('%s', "
                    "'pgoutput', false, %s);"
                    % (name, "true" if proto >= 3 else "false"))
            db.psql(WORKLOAD.replace("seed_origin", origin)
                     .replace("seed_gid", name + "_gid"))
            endpos = db.current_lsn()
            sub = os.path.join(outdir, name)
            os.makedirs(sub, exist_ok=True)
            r = subprocess.run([capture, db.conninfo, name, "pub", str(proto),
                                endpos, sub, options],
                               capture_output=True, text=True, timeout=60)
            print(r.stdout.strip() or r.stderr.strip())
            if r.returncode != 0:
                print(r.stderr, file=sys.stderr)
                return 1
    finally:
        for server in servers.values():
            server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
