"""The libconfig file: several sinks with their own filters, command-line
overrides, and errors that name the file, the line and the key."""

import re

import pytest

from pgharness import data_events, read_jsonl


def write(path, text):
    path.write_text(text)
    return str(path)


def test_several_sinks_from_config(db, pgspout, tmp_path):
    db.psql("create table orders (id int primary key);"
            "create table customers (id int primary key);"
            "create table tmp_scratch (id int primary key);")
    db.create_slot(db.name, publication="pub1")
    db.psql("insert into orders values (1), (2);"
            "insert into customers values (10);"
            "insert into tmp_scratch values (99);"
            "delete from orders where id = 1;")
    all_path, orders_path = tmp_path / "all.jsonl", tmp_path / "b.jsonl"
    cfg = write(tmp_path / "pgspout.conf", """
# the connection is overridden on the command line
connection = "host=127.0.0.1 port=1 dbname=nowhere user=nobody";
slot = "%s";
publication = "pub1";
include = ["public.*"];
exclude = ["public.tmp_*"];
sinks = (
  { name = "all"; type = "file";
    options = { path = "%s"; fsync = false; }; },
  { name = "orders"; type = "file"; include = ["orders"];
    options = { path = "%s"; }; }
);
""" % (db.name, all_path, orders_path))
    r = pgspout.run("-c", cfg, "-d", db.conninfo,
                    "--endpos", db.current_lsn())
    assert r.returncode == 0, r.stderr
    every = data_events(read_jsonl(all_path))
    assert [(e["table"], e["op"]) for e in every] == [
        ("orders", "insert"), ("orders", "insert"),
        ("customers", "insert"), ("orders", "delete")]
    only_orders = data_events(read_jsonl(orders_path))
    assert [(e["table"], e["op"]) for e in only_orders] == [
        ("orders", "insert"), ("orders", "insert"), ("orders", "delete")]
    assert all(e["table"] == "orders" for e in read_jsonl(orders_path))
    slot = db.slot_info(db.name)
    assert slot and not slot["active"]


BAD_CONFIGS = [
    # (text, line of the error, key named)
    ('slot = "s";\nbogus_key = 1;\n', 2, "bogus_key"),
    ('slot = "s";\npublication = 5;\n', 2, "publication"),
    ('create_slot = "yes";\n', 1, "create_slot"),
    ('include = [1, 2];\n', 1, "include"),
    ('sinks = (\n { name = "a"; type = "file";\n'
     '   options = { fsync = false; }; }\n);\n', (2, 3), "path"),
    ('sinks = (\n { name = "a"; type = "file";\n'
     '   options = { path = "/tmp/x";\n  fsync = "maybe"; }; }\n);\n',
     4, "fsync"),
    ('sinks = (\n { name = "a"; type = "file";\n'
     '   options = { path = "/tmp/x";\n  unknown_opt = 1; }; }\n);\n',
     4, "unknown_opt"),
    ('sinks = (\n { name = "a"; type = "file";\n'
     '   options = { path = "/tmp/x";\n  rotate_size = -5; }; }\n);\n',
     4, "rotate_size"),
]


@pytest.mark.parametrize("text,line,key", BAD_CONFIGS,
                         ids=[c[2] + str(i) for i, c in
                              enumerate(BAD_CONFIGS)])
def test_config_errors(pgspout, tmp_path, text, line, key):
    cfg = write(tmp_path / "bad.conf",
                'connection = "host=127.0.0.1 port=1";\n' + text)
    lines = line if isinstance(line, tuple) else (line,)
    lines = [n + 1 for n in lines]  # the connection line above
    # Nothing listens on port 1: exit 2, not 1, shows it failed before
    # connecting.
    extra = [] if "sinks" in text else ["--sink", "file", "-o",
                                         "path=" + str(tmp_path / "o")]
    r = pgspout.run("-c", cfg, *extra, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert any(re.search(re.escape(cfg) + r":%d\b" % n, r.stderr)
               for n in lines), r.stderr
    assert key in r.stderr, r.stderr


def test_config_syntax_error(pgspout, tmp_path):
    cfg = write(tmp_path / "syntax.conf", 'slot = "s";\nslot = ;\n')
    r = pgspout.run("-c", cfg, timeout=30)
    assert r.returncode == 2
    assert re.search(re.escape(cfg) + r":2\b", r.stderr), r.stderr


@pytest.mark.parametrize("args", [
    ["--no-such-flag"],
    ["-d", "host=127.0.0.1 port=1"],  # no sink
    ["-d", "host=127.0.0.1 port=1", "--sink", "no_such_sink"],
    ["-d", "host=127.0.0.1 port=1", "--sink", "file"],  # no path
    ["-d", "host=127.0.0.1 port=1", "--sink", "file", "-o", "path=/tmp/x",
     "-o", "fsync=perhaps"],
    ["-d", "host=127.0.0.1 port=1", "--sink", "file", "-o", "nokeyvalue"],
    ["-d", "host=127.0.0.1 port=1", "--sink", "file", "-o", "path=/tmp/x",
     "--endpos", "not-an-lsn"],
    ["-c", "/nonexistent/pgspout.conf"],
], ids=["flag", "nosink", "unknownsink", "nopath", "badbool", "badopt",
        "badendpos", "noconfig"])
def test_usage_errors_exit_2(pgspout, args):
    r = pgspout.run(*args, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.strip(), "no message on stderr"


# A string this long took libconfig 5 to 20 seconds to read (its scanner is
# quadratic in a token's length); now it is refused before libconfig reads
# it. The generous timeout only keeps a regression from hanging the suite.
HUGE = 4 * 1024 * 1024


@pytest.mark.parametrize("how", ["file", "include", "pipe"])
def test_huge_string_refused(pgspout, tmp_path, how):
    text = ('slot = "s";\nconnection = "host=db password=%s";\n'
            'sinks = ( { name = "o"; type = "file"; } );\n' % ("p" * HUGE))
    if how == "include":
        write(tmp_path / "secret.inc", text)
        cfg = write(tmp_path / "pgspout.conf",
                    'create_slot = true;\n@include "secret.inc"\n')
        named = str(tmp_path / "secret.inc")
    else:
        cfg = write(tmp_path / "pgspout.conf", text)
        named = cfg
    if how == "pipe":
        r = pgspout.run("-c", "/dev/stdin", input=text, timeout=120)
        named = "/dev/stdin"
    else:
        r = pgspout.run("-c", cfg, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert ("%s:2: connection: a string longer than the limit of 64 KiB"
            % named) in r.stderr, r.stderr[-2000:]
    assert "ppppp" not in r.stderr  # the value is never quoted


def test_long_comment_refused(pgspout, tmp_path):
    cfg = write(tmp_path / "pgspout.conf",
                'slot = "s";\n\n# %s\n' % ("c" * HUGE))
    r = pgspout.run("-c", cfg, "--sink", "file", timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "%s:3: a comment longer than the limit of 64 KiB" % cfg in \
        r.stderr, r.stderr[-2000:]
