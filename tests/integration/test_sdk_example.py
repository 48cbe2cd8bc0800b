"""The SDK's example sink builds out of tree from the installed headers and
pkg-config file alone, loads into the installed pgspout, and sees the same
events as the file sink."""

import glob
import json
import os
import shutil
import subprocess

import pytest

from pgharness import data_events, read_jsonl
from test_sdk_compat import host_minor

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def installed_pkgconfig_dir(binary):
    prefix = os.path.dirname(os.path.dirname(binary))
    # Where meson installs it (lib/, lib64/ or a multiarch lib/<triplet>/);
    # not a recursive search: the prefix may be /usr.
    found = [path for pattern in ("lib*/pkgconfig", "lib*/*/pkgconfig")
             for path in glob.glob(os.path.join(prefix, pattern,
                                                "pgspout-sdk.pc"))]
    if not found:
        pytest.fail("no pgspout-sdk.pc under %s" % prefix)
    return os.path.dirname(found[0])


def test_example_sink_out_of_tree(db, pgspout, pgspout_bin, tmp_path):
    src = os.path.join(REPO, "sdk", "example")
    build = tmp_path / "example"
    shutil.copytree(src, build, ignore=shutil.ignore_patterns("*.o", "*.so"))
    env = dict(os.environ,
               PKG_CONFIG_PATH=installed_pkgconfig_dir(pgspout_bin))
    r = subprocess.run(["make", "-C", str(build)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    sink = build / "pgspout_example.so"
    assert sink.exists()
    # built against the installed headers, not the source tree
    cflags = subprocess.run(["pkg-config", "--cflags", "pgspout-sdk"],
                            env=env, capture_output=True, text=True).stdout
    assert REPO + "/sdk" not in cflags
    # The description names the ABI of the installed headers (abi.h's).
    with open(os.path.join(installed_pkgconfig_dir(pgspout_bin),
                           "pgspout-sdk.pc")) as f:
        description = [line for line in f if line.startswith("Description:")]
    assert description and "(ABI 1.%d)" % host_minor() in description[0], \
        description

    db.psql("create table t (id int primary key, v text);"
            "create table u (a int, b int, primary key (a, b));")
    db.create_slot(db.name)
    db.psql("select pg_create_logical_replication_slot('%s_b', 'pgoutput');"
            % db.name)
    db.psql("insert into t values (1, 'x'), (2, 'y');"
            "update t set v = 'z' where id = 1;"
            "insert into u values (5, 6);"
            "delete from t where id = 2;")
    endpos = db.current_lsn()

    reference = tmp_path / "ref.jsonl"
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink", "file",
                    "-o", "path=%s" % reference, "--endpos", endpos)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "example.tsv"
    r = pgspout.run("-d", db.conninfo, "--slot", db.name + "_b",
                    "--sink", str(sink), "-o", "path=%s" % out,
                    "--endpos", endpos)
    assert r.returncode == 0, r.stderr

    rows = []
    for line in out.read_text().splitlines():
        commit_lsn, seq, op, rel, key = line.split("\t")
        if op in ("insert", "update", "delete"):
            rows.append((commit_lsn, int(seq), op, rel, json.loads(key)))
    expected = [(e["commit_lsn"], e["seq"], e["op"],
                 "%s.%s" % (e["schema"], e["table"]), e["key"])
                for e in data_events(read_jsonl(reference))]
    assert rows == expected
    assert [r[2] for r in rows] == ["insert", "insert", "update", "insert",
                                    "delete"]
    assert rows[3][4] == {"a": 5, "b": 6}
