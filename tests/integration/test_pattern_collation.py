"""Character classes in table patterns ([[:upper:]], \\w, [[:alpha:]]...)
mean what they mean on the server, where psql sends relname ~ '^(...)$'
COLLATE pg_catalog.default: in a database whose default collation has a C
(or POSIX) ctype no character beyond ASCII is in any class; under other
libc locales, ICU and the builtin C.UTF-8 the classes are Unicode's.

The expectation is psql's own \\dt for the same pattern, on every major: the
harness's databases are C (initdb --no-locale), and each test also makes
databases with the other providers the server has."""

import subprocess

import pytest

from conftest import drop_database
from pgharness import Database, data_events, psql_env, read_jsonl

NAMES = ["Ärger", "été", "ß", "日本", "Übel_2", "Abc", "abc", "a1_b", "x-y",
         "_x"]
OTHER_SCHEMA = "Über"
OTHER_NAMES = ["Ärger", "abc"]

PATTERN_SETS = [
    ["-t", "\\w+"],                  # word characters only
    ["-t", "[[:upper:]]*"],          # starts with an upper-case letter
    ["-t", "*[[:lower:]]"],          # ends with a lower-case letter
    ["-t", "[[:alpha:]]+"],
    ["-t", "[^[:alpha:]]*"],
    ["-t", "[[:alnum:]_]+"],
    ["-t", "*[^[:alnum:]_]*"],       # has a character that is not a word's
    ["-t", "[[:punct:]]*"],
    ["-t", "*.[[:upper:]]*"],
    ["-t", "[[:upper:]]*.*"],        # schemas starting upper-case
    ["-t", "*", "-T", "[[:upper:]]*"],
    ["-t", "*.*", "-T", "*.\\w+"],
]

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


def flavors(major):
    """Databases besides the C one, by the collation options they take."""
    made = [("libc C.UTF-8", "locale 'C.UTF-8'")]
    if major >= 15:
        # ICU decides the classes even with a C ctype
        made.append(("ICU", "locale_provider icu icu_locale 'und' "
                            "locale 'C'"))
    if major >= 17:
        made.append(("builtin C", "locale_provider builtin builtin_locale "
                                  "'C' locale 'C.UTF-8'"))
        made.append(("builtin C.UTF-8", "locale_provider builtin "
                                        "builtin_locale 'C.UTF-8' locale 'C'"))
    return made


def create_tables(database):
    sql = ['create schema "%s";' % OTHER_SCHEMA]
    sql += ['create table public."%s" (id int primary key);' % n
            for n in NAMES]
    sql += ['create table "%s"."%s" (id int primary key);' % (OTHER_SCHEMA, n)
            for n in OTHER_NAMES]
    database.psql("\n".join(sql))


def quoted_names(database):
    """(schema, table) -> the quoted name --list-tables prints."""
    rows = database.query(
        "select n.nspname, c.relname, pg_catalog.quote_ident(n.nspname) || "
        "'.' || pg_catalog.quote_ident(c.relname) from pg_catalog.pg_class c "
        "join pg_catalog.pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind in ('r', 'p')")
    return {(s, t): q for s, t, q in rows}


def dt(database, pattern):
    """The tables psql's \\dt selects for one pattern, as (schema, table)."""
    arg = "'" + pattern.replace("\\", "\\\\").replace("'", "''") + "'"
    r = subprocess.run(["psql", "-X", "-A", "-t", "-d", database.conninfo,
                        "-c", "\\dt " + arg], capture_output=True, text=True,
                       env=psql_env(), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    if not r.stdout.strip():
        assert "Did not find any relation" in r.stderr, r.stderr
    rows = {tuple(line.split("|")[:2]) for line in r.stdout.splitlines()}
    return {row for row in rows if row[0] not in SYSTEM_SCHEMAS}


def expected_tables(database, patterns):
    """What psql selects for the -t patterns (or everything), less what it
    selects for the -T ones."""
    include = [p for flag, p in zip(patterns[::2], patterns[1::2])
               if flag == "-t"]
    exclude = [p for flag, p in zip(patterns[::2], patterns[1::2])
               if flag == "-T"]
    selected = set()
    for p in include or ["*.*"]:
        selected |= dt(database, p)
    for p in exclude:
        selected -= dt(database, p)
    return selected


def list_tables(pgspout, database, patterns):
    r = pgspout.run("-d", database.conninfo, "--list-tables", *patterns)
    assert r.returncode == 0, r.stderr
    return sorted(r.stdout.splitlines())


def mismatches_in(pgspout, database):
    create_tables(database)
    quoted = quoted_names(database)
    found = []
    for patterns in PATTERN_SETS:
        want = sorted(quoted[t] for t in expected_tables(database, patterns))
        got = list_tables(pgspout, database, patterns)
        if got != want:
            found.append("%s: pgspout %s, psql %s" % (patterns, got, want))
    return found


@pytest.fixture
def other_database(db):
    """make(suffix, options) -> a Database created with those collation
    options on db's server; all dropped at teardown."""
    admin = Database(db.server, "postgres")
    made = []

    def make(suffix, options):
        name = "%s_%s" % (db.name[:50], suffix)
        admin.psql('create database "%s" template template0 %s;'
                   % (name, options))
        made.append(name)
        return Database(db.server, name)
    yield make
    for name in made:
        drop_database(admin, name)


@pytest.mark.all_versions
def test_list_tables_classes_follow_collation(db, pgspout, other_database):
    mismatches = ["C: " + m for m in mismatches_in(pgspout, db)]
    for i, (flavor, options) in enumerate(flavors(db.major)):
        database = other_database("f%d" % i, options)
        mismatches += ["%s: %s" % (flavor, m)
                       for m in mismatches_in(pgspout, database)]
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.all_versions
def test_expectations_tell_the_collations_apart(db, other_database):
    """The control: psql's answers differ between the C database and a
    Unicode one, so the comparison above can tell the rules apart."""
    unicode_db = other_database("u", "locale 'C.UTF-8'")
    for database in (db, unicode_db):
        create_tables(database)
    in_c = dt(db, "[[:upper:]]*")
    in_unicode = dt(unicode_db, "[[:upper:]]*")
    assert ("public", "Abc") in in_c
    assert ("public", "Ärger") not in in_c
    assert ("public", "Ärger") in in_unicode
    assert ("public", "Übel_2") in in_unicode


def stream_tables(pgspout, database, tmp_path, patterns):
    """Streams database's slot (made beforehand) into a file up to the
    current WAL position; returns the (schema, table) of the data events."""
    out = str(tmp_path / ("%s.jsonl" % database.name))
    r = pgspout.run("-d", database.conninfo, "--slot", database.name,
                    "--sink", "file", "-o", "path=" + out,
                    "-o", "fsync=false", "--endpos", database.current_lsn(),
                    *patterns)
    assert r.returncode == 0, r.stderr[-4000:]
    return {(e["schema"], e["table"]) for e in data_events(read_jsonl(out))}


# In C: Abc, abc and "Über".abc; under Unicode the non-ASCII names too.
STREAM_PATTERNS = ["-t", "*.[[:upper:]]*", "-t", "*.[[:lower:]]+",
                   "-T", "*.*[^[:alnum:]_]*"]


@pytest.mark.parametrize("flavor", ["C", "libc C.UTF-8"])
def test_stream_selects_what_psql_selects(db, pgspout, other_database,
                                          tmp_path, flavor):
    database = db if flavor == "C" else other_database("s", "locale "
                                                            "'C.UTF-8'")
    create_tables(database)
    database.create_slot(database.name)
    quoted = quoted_names(database)
    tables = ['public."%s"' % n for n in NAMES]
    tables += ['"%s"."%s"' % (OTHER_SCHEMA, n) for n in OTHER_NAMES]
    database.psql("".join("insert into %s values (1);" % t for t in tables))
    assert len(tables) == len([k for k in quoted
                               if k[0] in ("public", OTHER_SCHEMA)])
    want = expected_tables(database, STREAM_PATTERNS)
    assert want, "psql selects nothing: the check would be empty"
    got = stream_tables(pgspout, database, tmp_path, STREAM_PATTERNS)
    assert got == want
    if flavor == "C":
        assert got == {("public", "Abc"), ("public", "abc"),
                       (OTHER_SCHEMA, "abc")}
    else:
        assert ("public", "Ärger") in got and (OTHER_SCHEMA, "Ärger") in got
