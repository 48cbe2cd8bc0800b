"""Values do not depend on the settings of the database, the role or the
connection: DateStyle, IntervalStyle, extra_float_digits, bytea_output and
TimeZone change how the walsender prints a value, so pgspout pins them on
every connection, whatever ALTER DATABASE, ALTER ROLE, the conninfo's
`options` or PGOPTIONS say."""

import os
import subprocess

import pytest

from pgharness import data_events, psql_env, read_jsonl

SETUP = r"""
create table v (
    id int primary key,
    f8 float8, f4 float4, ts timestamp, tstz timestamptz, d date, t time,
    ttz timetz, iv interval, b bytea, m money,
    f8s float8[], tstzs timestamptz[], ivs interval[], bs bytea[]);
insert into v values (
    1, 0.1::float8 + 0.2, 1.2345679, '2026-11-30 04:24:01.57226',
    '2026-11-30 04:24:01.57226+00', '2026-11-30', '04:05:06.789',
    '04:05:06+02', '1 year 2 mons 3 days 04:05:06.5', '\xdeadbeef00ff',
    1234.56, '{0.30000000000000004,1.2345678901234567,1e-300}',
    '{"2026-11-30 04:24:01+00","1999-01-08 23:59:59.999999+00"}',
    '{"-1 days +02:03:04","3 mons"}', '{"\\x00ff","\\x6869"}');
"""

# Every setting at a value that prints differently from the defaults.
HOSTILE = {
    "DateStyle": "SQL,DMY",
    "IntervalStyle": "sql_standard",
    "extra_float_digits": "-3",
    "bytea_output": "escape",
    "TimeZone": "America/New_York",
}

# What the defaults print (PostgreSQL's own defaults, as pgspout pins them).
EXPECTED_AFTER = {
    "id": 1,
    "f8": "0.30000000000000004",
    "f4": "1.2345679",
    "ts": "2026-11-30 04:24:01.57226",
    "tstz": "2026-11-30 04:24:01.57226+00",
    "d": "2026-11-30",
    "t": "04:05:06.789",
    "ttz": "04:05:06+02",
    "iv": "1 year 2 mons 3 days 04:05:06.5",
    "b": "\\xdeadbeef00ff",
    "m": "$1,234.56",
    "f8s": ["0.30000000000000004", "1.2345678901234567", "1E-300"],
    "tstzs": ["2026-11-30 04:24:01+00", "1999-01-08 23:59:59.999999+00"],
    "ivs": ["-1 days +02:03:04", "3 mons"],
    "bs": ["\\x00ff", "\\x6869"],
}


def as_text(value):
    """Numbers (read as exact decimals) as text, so 0.30000000000000004 is
    compared digit by digit."""
    if isinstance(value, list):
        return [as_text(v) for v in value]
    return value if isinstance(value, (str, int)) else str(value)


def stream_values(pgspout, db, tmp_path, conninfo, env=None):
    out = tmp_path / "out.jsonl"
    if out.exists():
        out.unlink()
    r = pgspout.run("-d", conninfo, "--slot", db.name, "--sink", "file",
                    "-o", "path=%s" % out, "-o", "fsync=false", "--endpos",
                    db.current_lsn(), env=env)
    assert r.returncode == 0, r.stderr
    changes = data_events(read_jsonl(out), "v")
    assert len(changes) == 1, changes
    return {k: as_text(v) for k, v in changes[0]["after"].items()}


DEFAULT_TEXT = "0.30000000000000004|2026-11-30 04:24:01.57226+00|\\xdeadbeef00ff"


def session_text(conninfo, env):
    """How an ordinary session with these settings prints three values."""
    penv = psql_env()
    if env and "PGOPTIONS" in env:
        penv["PGOPTIONS"] = env["PGOPTIONS"]
    r = subprocess.run(["psql", "-X", "-A", "-t", "-d", conninfo, "-c",
                        "select f8::text || '|' || tstz::text || '|' || "
                        "b::text from v"],
                       capture_output=True, text=True, env=penv)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def hostile_options():
    return " ".join("-c %s=%s" % kv for kv in HOSTILE.items())


def set_clause(name, value):
    return "set %s = '%s'" % (name, value)


@pytest.mark.all_versions
@pytest.mark.parametrize("where", ["database", "role", "role_in_database",
                                   "conninfo_options", "pgoptions"])
def test_values_ignore_session_settings(db, pgspout, tmp_path, where):
    db.psql(SETUP)
    conninfo = db.conninfo
    env = None
    if where == "database":
        for k, v in HOSTILE.items():
            db.psql('alter database "%s" %s;' % (db.name, set_clause(k, v)))
    elif where in ("role", "role_in_database"):
        role = "hostile_%s" % db.name.split("_")[0]
        db.psql("create role %s login superuser replication;" % role)
        scope = ' in database "%s"' % db.name if where.endswith("database") \
            else ""
        for k, v in HOSTILE.items():
            db.psql("alter role %s%s %s;" % (role, scope, set_clause(k, v)))
        conninfo = conninfo.replace("user=postgres", "user=%s" % role)
    elif where == "conninfo_options":
        conninfo += " options='%s'" % hostile_options()
    else:
        env = dict(os.environ, PGOPTIONS=hostile_options())
    db.create_slot(db.name)
    db.psql("update v set id = 1;")  # the row, as it is, into the stream

    # The settings really are in force for a session like pgspout's: it
    # prints the same values differently.
    assert session_text(conninfo, env) != DEFAULT_TEXT

    after = stream_values(pgspout, db, tmp_path, conninfo, env=env)
    assert after == EXPECTED_AFTER
