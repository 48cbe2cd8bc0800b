"""Table filters: --list-tables against what pg_dump -t/-T selects (mapped
through the publication: partitions judged with their ancestors, named as
their changes are), and streaming that delivers only the selected
tables."""

import re
import subprocess

import pytest

from pgharness import data_events, psql_env

SETUP = r"""
create schema "Sales"; create schema "weird.schema"; create schema hidden;
create schema app;
create table public.orders (id int primary key);
create table public.orders_2024 (id int primary key);
create table public.order1 (id int primary key);
create table public.order22 (id int primary key);
create table public."order$" (id int primary key);
create table public."Orders" (id int primary key);
create table public."MiXed" (id int primary key);
create table public."a.b" (id int primary key);
create table public.tmp_x (id int primary key);
create table public."tmp_Y" (id int primary key);
create unlogged table public.scratch (id int primary key);
create table "Sales".leads (id int primary key);
create table "Sales"."Deals" (id int primary key);
create table "weird.schema".t1 (id int primary key);
create table hidden.secret (id int primary key);
create table hidden.orders (id int primary key);
create table app.orders (id int primary key);
create table app.users (id int primary key);
create table public.events (id int, at date) partition by range (at);
create table public.events_2024 partition of public.events
    for values from ('2024-01-01') to ('2025-01-01');
create view public.orders_view as select * from public.orders;
create materialized view public.orders_mv as select * from public.orders;
create sequence public.orders_seq;
"""

PATTERN_SETS = [
    [],
    ["-t", "orders"],
    ["-t", "*.orders"],
    ["-t", "order?"],
    ["-t", "order[0-9]+"],
    ["-t", "Orders"],
    ["-t", '"Orders"'],
    ["-t", '"a.b"'],
    ["-t", '"Sales".*'],
    ["-t", '"weird.schema".*'],
    ["-t", "public.*", "-T", "public.tmp_*", "-T", '"tmp_Y"'],
    ["-t", "*", "-T", "*.orders*"],
    ["-t", "public.(orders|order1)"],
    ["-t", "(app|hidden).orders"],
    ["-t", "public.events*"],
    ["-t", "o*", "-T", "orders_2024"],
    ["-t", "*.*s"],
    ["-t", "hidden.*"],
    ["-t", 'public."MiXed"'],
    ["-t", "public.order$"],
    ["-t", "*.[a-m]*"],
    ["-T", "*.*"],
    ["-T", "public.*", "-T", '"Sales".*'],
    ["-t", "SALES.*"],
    ["-t", "public.order_"],
    ["-t", "secret"],
    ["-t", "events"],
    ["-t", "events_2024"],
    ["-T", "events_2024"],
    ["-t", "*", "-T", "events"],
]

CREATE_RE = re.compile(r"^CREATE (?:UNLOGGED )?TABLE (.+) \($", re.M)
# pg_dump -t '*' also reaches the system catalogs; they can never be
# published, so pgspout leaves them out.
SYSTEM_SCHEMAS = ("pg_catalog.", "information_schema.", "pg_toast.")


def pg_dump_selection(db, patterns):
    r = subprocess.run(["pg_dump", "--schema-only", "-d", db.conninfo]
                       + patterns, capture_output=True, text=True,
                       env=psql_env())
    if r.returncode != 0:
        assert "no matching tables were found" in r.stderr, r.stderr
        return []
    return sorted(name for name in CREATE_RE.findall(r.stdout)
                  if not name.startswith(SYSTEM_SCHEMAS))


# Every user table: its kind, persistence and parent partitioned table.
TABLES_SQL = r"""
select pg_catalog.quote_ident(n.nspname) || '.' ||
       pg_catalog.quote_ident(c.relname), c.relkind, c.relpersistence,
       (select pg_catalog.quote_ident(pn.nspname) || '.' ||
               pg_catalog.quote_ident(p.relname)
        from pg_catalog.pg_inherits i
        join pg_catalog.pg_class p on p.oid = i.inhparent
        join pg_catalog.pg_namespace pn on pn.oid = p.relnamespace
        where i.inhrelid = c.oid and c.relispartition)
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p')
  and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname !~ '^pg_toast'
"""


def expected_listing(db, patterns, via_root):
    """What --list-tables must print: pg_dump decides which tables each
    pattern matches; a change arriving under a table is selected when an
    include pattern (or none) matches the table or an ancestor and no
    exclude pattern matches any of them. Only permanent tables stream:
    under their leaf names with publish_via_partition_root = false, under
    their roots with true. None when a leaf is selected unlike its root
    under true (pgspout must refuse)."""
    tables = {name: (kind, persistence, parent)
              for name, kind, persistence, parent in db.query(TABLES_SQL)}

    def chain(name):
        out = [name]
        while tables[out[-1]][2]:
            out.append(tables[out[-1]][2])
        return out

    def matched(flag):
        args = [a for f, p in zip(patterns[::2], patterns[1::2]) if f == flag
                for a in ("-t", p)]
        return set(pg_dump_selection(db, args)) if args else None

    included, excluded = matched("-t"), matched("-T") or set()

    def selected(name):
        c = set(chain(name))
        return (included is None or bool(included & c)) and not excluded & c

    permanent = [t for t, (_, persistence, _) in tables.items()
                 if persistence == "p"]
    leaves = [t for t in permanent if tables[t][0] == "r"]
    if not via_root:
        return sorted(t for t in leaves if selected(t))
    roots = [t for t in permanent if not tables[t][2]]
    for leaf in leaves:
        if selected(leaf) != selected(chain(leaf)[-1]):
            return None
    return sorted(t for t in roots if selected(t))


def list_tables(pgspout, db, patterns, publication=None):
    """The sorted lines, or None when pgspout refused the filter (exit 2)."""
    args = ["--publication", publication] if publication else []
    r = pgspout.run("-d", db.conninfo, "--list-tables", *(args + patterns))
    if r.returncode == 2 and "publish_via_partition_root" in r.stderr:
        return None
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


@pytest.mark.parametrize("via_root", [False, True],
                         ids=["via_leaf", "no_publication_yet"])
def test_list_tables_matches_pg_dump(db, pgspout, via_root):
    db.psql(SETUP)
    publication = None
    if not via_root:
        publication = "leafpub"
        db.psql("create publication leafpub for all tables;")
    mismatches = []
    for patterns in PATTERN_SETS:
        expected = expected_listing(db, patterns, via_root)
        got = list_tables(pgspout, db, patterns, publication)
        if (sorted(got) if got is not None else None) != expected:
            mismatches.append("%s: pgspout %s, expected %s"
                              % (patterns, got, expected))
    assert not mismatches, "\n".join(mismatches)


def test_list_tables_follows_search_path(db, pgspout):
    db.psql(SETUP)
    db.psql('alter database "%s" set search_path = hidden, public;' % db.name)
    for patterns in (["-t", "secret"], ["-t", "orders"], ["-t", "*"]):
        expected = expected_listing(db, patterns, True)
        assert sorted(list_tables(pgspout, db, patterns)) == expected
    assert list_tables(pgspout, db, ["-t", "secret"]) == ["hidden.secret"]
    # the first schema on the path hides public.orders
    assert list_tables(pgspout, db, ["-t", "orders"]) == ["hidden.orders"]


def test_list_tables_sorted(db, pgspout):
    db.psql("create table zeta (id int); create table alpha (id int);"
            "create schema beta; create table beta.mid (id int);")
    assert list_tables(pgspout, db, []) == [
        "beta.mid", "public.alpha", "public.zeta"]


def test_stream_with_filters(db, stream):
    db.psql("create schema hidden;"
            "create table keep_a (id int primary key);"
            "create table keep_b (id int primary key);"
            "create table other (id int primary key);"
            "create table hidden.keep_c (id int primary key);"
            "create table hidden.keep_d (id int primary key);")
    db.create_slot(db.name)
    db.psql("create table keep_new (id int primary key);"
            "create table other_new (id int primary key);")
    for t in ("keep_a", "keep_b", "other", "hidden.keep_c", "hidden.keep_d",
              "keep_new", "other_new"):
        db.psql("insert into %s values (1), (2);" % t)
    events = stream("-t", "keep*", "-t", "*.keep_c", "-T", "keep_b")
    tables = sorted({(e["schema"], e["table"]) for e in events})
    assert tables == [("hidden", "keep_c"), ("public", "keep_a"),
                      ("public", "keep_new")]
    assert len(data_events(events)) == 6
