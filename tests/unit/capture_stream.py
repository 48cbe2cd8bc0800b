#!/usr/bin/env python3
"""Captures a short, real walsender stream for test_stream.c: starts a
throwaway PostgreSQL 15 (the integration harness's), runs a small workload
(inserts, an update, a delete, a truncate, an ALTER TABLE, in transactions
of one and of several changes over two tables), then a CHECKPOINT so that
the server's WAL end moves past the last commit, and records every CopyData
message of the replication stream (pgoutput protocol 1, and the keepalives
the server sends once it is idle) with tests/fuzz/capture.c.

Usage: capture_stream.py CAPTURE_BINARY OUTFILE.frames
(build the capture tool with
 cc -o /tmp/capture tests/fuzz/capture.c $(pkg-config --cflags --libs libpq))

The workload is what test_stream.c expects; change both together."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))

from pgharness import Database, PgServer  # noqa: E402

SETUP = """
create table items (id int primary key, note text, qty int);
create table other (id int primary key, v text);
create publication pub for all tables;
select pg_create_logical_replication_slot('stream', 'pgoutput');
"""

# One statement per transaction unless grouped in begin/commit.
WORKLOAD = """
insert into items values (1, 'one', 10);
begin;
insert into items values (2, 'two', 20);
update items set qty = 21 where id = 2;
delete from items where id = 1;
insert into other values (1, 'x');
commit;
truncate other;
alter table items add column extra int;
insert into items values (3, 'three', 30, 7);
update items set note = 'changed' where id = 3;
checkpoint;
"""


def main():
    capture, out = sys.argv[1], os.path.abspath(sys.argv[2])
    server = PgServer(15)
    try:
        server.init()
        server.start()
        Database(server, "postgres").psql("create database stream;")
        db = Database(server, "stream")
        db.psql(SETUP)
        db.psql(WORKLOAD)
        endpos = db.current_lsn()
        r = subprocess.run([capture, db.conninfo, "stream", "pub", "1",
                            endpos, out], capture_output=True, text=True,
                           timeout=60)
        print(r.stdout.strip() or r.stderr.strip())
        return r.returncode
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
