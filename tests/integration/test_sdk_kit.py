"""The sink kit installs with the SDK: a tiny sink (tests/integration/
kit_sink) builds out of tree from `pkg-config --cflags --libs pgspout-kit`
alone, loads into the installed pgspout, and its batches, POSTed by the
kit's pipeline to a local HTTP server, carry every row event in order."""

import http.server
import json
import os
import shutil
import subprocess
import threading

from pgharness import read_jsonl
from test_sdk_example import REPO, installed_pkgconfig_dir


class Collector(http.server.BaseHTTPRequestHandler):
    bodies = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Collector.bodies.append(body.decode())
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def make_on_installed_kit(pgspout_bin, build):
    """Runs make in build with pkg-config finding the installed kit, after
    checking that its flags name the installed headers, never the source
    tree; returns make's output."""
    env = dict(os.environ,
               PKG_CONFIG_PATH=installed_pkgconfig_dir(pgspout_bin))
    cflags = subprocess.run(["pkg-config", "--cflags", "pgspout-kit"],
                            env=env, capture_output=True, text=True)
    assert cflags.returncode == 0, cflags.stderr
    # the installed headers, never the source tree
    for tree in ("sdk", "plugins", "lib", "core"):
        assert os.path.join(REPO, tree) not in cflags.stdout, cflags.stdout
    r = subprocess.run(["make", "-C", str(build)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def build_kit_sink(pgspout_bin, tmp_path):
    build = tmp_path / "kit_sink"
    shutil.copytree(os.path.join(REPO, "tests", "integration", "kit_sink"),
                    build)
    make_on_installed_kit(pgspout_bin, build)
    return build / "pgspout_kitdemo.so"


def test_kit_sink_out_of_tree(db, pgspout, pgspout_bin, tmp_path):
    sink = build_kit_sink(pgspout_bin, tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Collector.bodies = []
    try:
        db.psql("create table t (id int primary key, v text);")
        db.create_slot(db.name)
        db.psql("select pg_create_logical_replication_slot('%s_b', "
                "'pgoutput');" % db.name)
        db.psql("insert into t select g, 'v' || g "
                "from generate_series(1, 7) g;"
                "update t set v = 'w' where id = 3;"
                "delete from t where id = 5;")
        endpos = db.current_lsn()
        reference = tmp_path / "ref.jsonl"
        r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink",
                        "file", "-o", "path=%s" % reference,
                        "--endpos", endpos)
        assert r.returncode == 0, r.stderr
        r = pgspout.run("-d", db.conninfo, "--slot", db.name + "_b",
                        "--sink", str(sink), "-o",
                        "url=http://127.0.0.1:%d/" % server.server_port,
                        "--endpos", endpos)
        assert r.returncode == 0, r.stderr[-4000:]
    finally:
        server.shutdown()
    got = [json.loads(line) for body in Collector.bodies
           for line in body.splitlines()]
    # batches of at most 3 records (the sink's max_batch_records)
    assert all(len(b.splitlines()) <= 3 for b in Collector.bodies)
    key = [(e["commit_lsn"], e["seq"], e["op"], e["key"]) for e in got]
    expected = [(e["commit_lsn"], e["seq"], e["op"], e["key"])
                for e in read_jsonl(reference)
                if e["op"] in ("insert", "update", "delete")]
    assert key == expected and len(key) == 9
