"""The service manager's protocol (README "systemd"), with a fake
NOTIFY_SOCKET (a datagram socket, as systemd's): WATCHDOG=1 arrives while
pgspout cannot reach the server yet, READY=1 only once it streams,
STOPPING=1 at a stop; no WATCHDOG=1 without WATCHDOG_USEC. And
contrib/systemd/pgspout@.service is a unit systemd-analyze accepts without
a warning."""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from faults_support import TcpProxy
from ops_support import REPO
from pgharness import wait_until

UNIT = os.path.join(REPO, "contrib", "systemd", "pgspout@.service")


class FakeNotify:
    """Collects what arrives on a NOTIFY_SOCKET, with arrival times."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="notify-", dir="/tmp")
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []  # (monotonic time, one KEY=VALUE)
        self.closing = False
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self):
        while not self.closing:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            for line in data.decode().splitlines():
                self.messages.append((now, line))

    def count(self, line, since=0.0):
        return sum(1 for t, m in self.messages if m == line and t >= since)

    def lines(self):
        return [m for _, m in self.messages]

    def close(self):
        self.closing = True
        self.thread.join()
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    n = FakeNotify()
    yield n
    n.close()


def environment(notify, watchdog_usec=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env["NOTIFY_SOCKET"] = notify.path
    if watchdog_usec:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    return env


def test_ready_once_streaming_and_watchdog(db, pgspout, tmp_path, notify):
    db.create_slot(db.name)
    proxy = TcpProxy(db.server.port)
    proxy.down()
    try:
        conninfo = "host=127.0.0.1 port=%d dbname=%s user=postgres " \
                   "connect_timeout=5" % (proxy.port, db.name)
        proc = pgspout.spawn("-d", conninfo, "--slot", db.name,
                             "--retry-initial", "--sink", "file",
                             "-o", "path=%s" % (tmp_path / "o.jsonl"),
                             env=environment(notify, 1000000))
        # Half a second apart: the main loop runs while it cannot connect.
        wait_until(lambda: notify.count("WATCHDOG=1") >= 4, timeout=30,
                   what="WATCHDOG=1 while connecting")
        assert notify.count("READY=1") == 0, notify.lines()
        assert "STATUS=connecting" in notify.lines()
        assert any(m.startswith("STATUS=reconnecting (attempt ")
                   for m in notify.lines()), notify.lines()
        proxy.up()
        wait_until(lambda: notify.count("READY=1") == 1, timeout=60,
                   what="READY=1 once streaming")
        assert db.slot_info(db.name)["active"]
        assert 'STATUS=streaming from slot "%s"' % db.name in notify.lines()
        since = time.monotonic()
        wait_until(lambda: notify.count("WATCHDOG=1", since) >= 4,
                   timeout=30, what="WATCHDOG=1 while streaming")
        assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)
        wait_until(lambda: notify.count("STOPPING=1") == 1, timeout=10,
                   what="STOPPING=1")
        assert notify.count("READY=1") == 1
    finally:
        proxy.close()


def test_no_watchdog_unless_asked(db, pgspout, tmp_path, notify):
    db.create_slot(db.name)
    proc = pgspout.spawn("-d", db.conninfo, "--slot", db.name,
                         "--sink", "file",
                         "-o", "path=%s" % (tmp_path / "o.jsonl"),
                         env=environment(notify))
    wait_until(lambda: notify.count("READY=1") == 1, timeout=60,
               what="READY=1")
    time.sleep(2)
    assert notify.count("WATCHDOG=1") == 0, notify.lines()
    assert pgspout.stop(proc) == 0


def test_unit_file_verifies(pgspout_bin):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    with open(UNIT) as f:
        unit = f.read()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure",
                 "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ExecStart=/usr/local/bin/pgspout -c /etc/pgspout/%i.conf"):
        assert line in unit, line
    # Verified as an instance, with ExecStart pointing at a binary that
    # exists here (systemd-analyze checks that it can be executed).
    work = tempfile.mkdtemp(prefix="unit-", dir="/tmp")
    try:
        path = os.path.join(work, "pgspout@test.service")
        with open(path, "w") as f:
            f.write(unit.replace("/usr/local/bin/pgspout", "/bin/true"))
        # Its Documentation= pages are looked up with man: those the build
        # installed beside the binary.
        manpath = os.path.join(os.path.dirname(os.path.dirname(pgspout_bin)),
                               "share", "man")
        r = subprocess.run([analyze, "verify", path], capture_output=True,
                           text=True, env=dict(os.environ, MANPATH=manpath))
        assert r.returncode == 0 and r.stderr == "", r.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)
