"""Fixtures: one PostgreSQL server per major version for the whole session, a
fresh database per test, and a runner for the pgspout binary under test.

Environment:
  PGSPOUT_BIN           the binary under test (default build/prefix/bin/pgspout)
  PGSPOUT_PG_VERSIONS   comma-separated majors to test (default 15,14,16,17,18);
                        tests marked all_versions run on each, the rest on 15
                        (those marked major(13) on 13, which is unsupported)
  PGSPOUT_TEST_TMPDIR   where servers keep their data (scripts/test.sh sets it)
"""

import itertools
import os
import re
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import pgharness  # noqa: E402
from pgharness import Database, PgServer, pg_available  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FULL_SUITE_VERSION = 15


def selected_versions():
    raw = os.environ.get("PGSPOUT_PG_VERSIONS", "15,14,16,17,18")
    return [int(v) for v in raw.replace(" ", "").split(",") if v]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "all_versions: run on every selected PostgreSQL major")
    config.addinivalue_line(
        "markers", "since(major): run on every selected PostgreSQL major "
                   "from that one on (a feature of newer servers)")
    config.addinivalue_line(
        "markers", "single_version: run on the default major only, even in "
                   "a module marked since() or all_versions (a property "
                   "that does not depend on the server, costly to show)")
    config.addinivalue_line(
        "markers", "major(n): run on that major only, whatever "
                   "PGSPOUT_PG_VERSIONS selects (an unsupported server, "
                   "whose refusals are tested)")
    config.addinivalue_line(
        "markers", "streaming_default: asserts that streaming is on by "
                   "default (deselected in the run with streaming off)")
    config.addinivalue_line(
        "markers", "slow: long-running (fault loops, large workloads)")
    config.addinivalue_line(
        "markers", "rss: asserts peak memory, which means nothing under "
                   "ASan; left out of the sanitizer run")
    config.addinivalue_line(
        "markers", "waits_out_default: waits for a built-in default time "
                   "to pass, on a path another test runs with a short "
                   "setting; left out of the sanitizer run")


def pytest_generate_tests(metafunc):
    if "pgver" not in metafunc.fixturenames:
        return
    versions = selected_versions()
    since = metafunc.definition.get_closest_marker("since")
    major = metafunc.definition.get_closest_marker("major")
    single = metafunc.definition.get_closest_marker("single_version")
    if major is not None:
        versions = list(major.args)
    elif single is not None:
        versions = [v for v in versions if v == FULL_SUITE_VERSION]
    elif since is not None:
        versions = [v for v in versions if v >= since.args[0]]
    elif metafunc.definition.get_closest_marker("all_versions") is None:
        versions = [v for v in versions if v == FULL_SUITE_VERSION]
    metafunc.parametrize("pgver", versions, ids=lambda v: "pg%d" % v,
                         scope="session")


class ServerPool:
    def __init__(self):
        self.servers = {}

    def get(self, major):
        if major not in self.servers:
            if not pg_available(major):
                pytest.fail("PostgreSQL %d is not installed at %s "
                            "(run scripts/install-deps.sh)"
                            % (major, pgharness.pg_bindir(major)))
            server = PgServer(major)
            self.servers[major] = server
            server.start()
            # The password role exists on every server; only its hba lines
            # ask for a password.
            Database(server, "postgres").psql(
                "set password_encryption = 'scram-sha-256';"
                "create role %s login superuser replication "
                "password 'Sekr1t-pw-XYZZY';" % pgharness.PASSWORD_USER)
        return self.servers[major]

    def stop_all(self):
        for server in self.servers.values():
            server.cleanup()
        self.servers.clear()


@pytest.fixture(scope="session")
def server_pool():
    pool = ServerPool()
    yield pool
    pool.stop_all()


@pytest.fixture
def server(server_pool, pgver):
    return server_pool.get(pgver)


_db_counter = itertools.count(1)


@pytest.fixture
def db(server, request):
    base = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]
    name = "t%d_%s" % (next(_db_counter), base)
    admin = Database(server, "postgres")
    admin.psql('create database "%s";' % name)
    database = Database(server, name)
    yield database
    drop_database(admin, name)


def drop_database(admin, name):
    # A slot pins its database: end its walsender, drop it, then the db.
    for _ in range(100):
        admin.psql(
            "select pg_terminate_backend(active_pid) from pg_replication_slots"
            " where database = '%s' and active_pid is not null;" % name)
        admin.psql(
            "select pg_drop_replication_slot(slot_name) from "
            "pg_replication_slots where database = '%s' and not active;"
            % name, check=False)
        left = admin.scalar("select count(*) from pg_replication_slots "
                            "where database = '%s'" % name)
        if left == "0":
            break
        time.sleep(0.1)
    admin.psql('drop database if exists "%s" with (force);' % name,
               check=False)


def default_binary():
    return os.path.join(REPO, "build", "prefix", "bin", "pgspout")


@pytest.fixture(scope="session")
def pgspout_bin():
    path = os.environ.get("PGSPOUT_BIN") or default_binary()
    if not os.access(path, os.X_OK):
        pytest.fail("pgspout binary not found at %s (build it, or set "
                    "PGSPOUT_BIN)" % path)
    return os.path.abspath(path)


class Pgspout:
    """Runs the binary under test; every process it starts is ended at
    teardown, by pid."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.procs = []
        self._stderr_count = itertools.count(1)

    def run(self, *args, timeout=120, env=None, input=None):
        """Runs to completion; returns CompletedProcess (text)."""
        try:
            return subprocess.run([self.binary] + list(args),
                                  capture_output=True, text=True,
                                  timeout=timeout, env=env, cwd=self.workdir,
                                  input=input if input is not None else "",
                                  errors="replace")
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                "pgspout %s did not finish within %ds; stderr:\n%s"
                % (" ".join(args), timeout,
                   (e.stderr or b"")[-4000:])) from None

    def spawn(self, *args, env=None, stdout=subprocess.DEVNULL):
        """Starts in the background; stderr goes to a file (proc.stderr_path).
        """
        path = os.path.join(self.workdir,
                            "pgspout-%d.stderr" % next(self._stderr_count))
        err = open(path, "wb")
        proc = subprocess.Popen([self.binary] + list(args), stdout=stdout,
                                stderr=err, stdin=subprocess.DEVNULL,
                                env=env, cwd=self.workdir)
        err.close()
        proc.stderr_path = path
        self.procs.append(proc)
        return proc

    @staticmethod
    def stderr_of(proc):
        with open(proc.stderr_path, errors="replace") as f:
            return f.read()

    def stop(self, proc, sig=signal.SIGTERM, timeout=60):
        """Signals and waits; returns the exit status."""
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("pgspout did not exit within %ds of signal "
                                 "%d; stderr:\n%s"
                                 % (timeout, sig, self.stderr_of(proc)[-4000:]))

    def cleanup(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def pgspout(pgspout_bin, tmp_path):
    runner = Pgspout(pgspout_bin, str(tmp_path))
    yield runner
    runner.cleanup()


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs of the test's own (skipped without root)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755",
                        "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a 2 MiB tmpfs for the disk-full test "
                    "(needs root with CAP_SYS_ADMIN): %s" % r.stderr.strip())
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def stream(db, pgspout, tmp_path):
    """stream(extra args...) -> events: streams the test database's slot
    (made beforehand with db.create_slot) into a file up to the current WAL
    position and returns what the file holds."""
    def run(*extra, slot=None, out=None, endpos=None, timeout=120):
        out = out or str(tmp_path / "out.jsonl")
        endpos = endpos or db.current_lsn()
        r = pgspout.run("-d", db.conninfo, "--slot", slot or db.name,
                        "--sink", "file", "-o", "path=" + out,
                        "-o", "fsync=false", "--endpos", endpos, *extra,
                        timeout=timeout)
        assert r.returncode == 0, "pgspout exited %d:\n%s" % (
            r.returncode, r.stderr[-4000:])
        return pgharness.read_jsonl(out)
    return run
