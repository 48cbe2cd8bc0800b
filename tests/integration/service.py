"""What the sinks' test services have in common: a server process started
on 127.0.0.1 with its output in a log file, waited for until it answers,
and always stopped (by its fixture, and at interpreter exit for one a
fixture never got to stop), plus the JSON-over-HTTP call their clients make.

A service subclasses ServiceProcess with its command line and readiness
probe; see kinesis_server.py, elastic_server.py and bigquery_server.py.
"""

import atexit
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from pgharness import free_port

_running = set()


@atexit.register
def _stop_running():
    for service in list(_running):
        service.stop()


def _die_with_parent():
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ServiceError(Exception):
    """A service answered with an unexpected HTTP status."""

    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body[:2000]))
        self.status = status
        self.body = body


def http_json(url, method="GET", body=None, headers=None, timeout=60,
              ok=(200,)):
    """One HTTP call; body (bytes) as given. The answer parsed as JSON, or
    None when empty; ServiceError for a status not in ok."""
    req = urllib.request.Request(url, data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if status not in ok:
        raise ServiceError(status, text)
    return json.loads(text) if text else None


class ServiceProcess:
    """A test service's server process.

    Subclasses set name, home (where its install script put it) and
    install_script, and define command() and ready(); they may override
    choose_port() (None: the service picks a port and ready() learns it),
    popen_options() and the class settings below."""

    name = "service"
    home = None
    install_script = None
    start_timeout_s = 60
    stop_timeout_s = 10
    poll_interval_s = 0.2
    # True: the server exits when its standard input closes, which also
    # ends it when the harness is killed outright. False: it is stopped
    # with SIGTERM and dies with the harness process (PR_SET_PDEATHSIG).
    exits_on_eof = True

    def __init__(self, workdir=None):
        """workdir holds the log (and whatever the service keeps); by
        default a temporary directory, removed when the service stops."""
        self.workdir = workdir
        self._own_workdir = False
        self.proc = None
        self.port = None
        self.log_path = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @classmethod
    def installed(cls):
        raise NotImplementedError

    def command(self):
        raise NotImplementedError

    def ready(self):
        """True once the server answers; OSError and ServiceError count as
        not yet."""
        raise NotImplementedError

    def choose_port(self):
        return free_port()

    def popen_options(self):
        return {}

    def log_tail(self, size=4000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-size:]
        except (OSError, TypeError):
            return ""

    def start(self):
        """Starts the server and waits until it answers; returns self.
        RuntimeError, with the log's tail, when it does not come up (the
        process is ended; the work directory stays until stop())."""
        if self.workdir is None:
            base = os.environ.get("PGSPOUT_TEST_TMPDIR") or None
            self.workdir = tempfile.mkdtemp(prefix=self.name + "-", dir=base)
            self._own_workdir = True
        self.port = self.choose_port()
        self.log_path = os.path.join(self.workdir, self.name + ".log")
        options = dict(self.popen_options())
        if not self.exits_on_eof:
            options.setdefault("preexec_fn", _die_with_parent)
        _running.add(self)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.PIPE if self.exits_on_eof
                else subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, **options)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self._end_process()
                raise RuntimeError("%s exited with %d:\n%s"
                                   % (self.name, code, self.log_tail()))
            try:
                if self.ready():
                    return self
            except (OSError, ServiceError):
                pass
            time.sleep(self.poll_interval_s)
        self._end_process()
        raise RuntimeError("%s did not start within %ds:\n%s"
                           % (self.name, self.start_timeout_s,
                              self.log_tail()))

    def _end_process(self):
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                if self.exits_on_eof:
                    proc.stdin.close()
                else:
                    proc.terminate()
                proc.wait(timeout=self.stop_timeout_s)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        if proc.stdin is not None and not proc.stdin.closed:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def stop(self):
        """Stops the server (idempotent) and removes its own work
        directory."""
        self._end_process()
        _running.discard(self)
        if self._own_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._own_workdir = False

    def require_installed(self):
        # Imported here: the benchmark harness uses these launchers without
        # pytest.
        import pytest
        if not self.installed():
            pytest.fail("%s is not installed at %s (run scripts/%s)"
                        % (self.name, self.home, self.install_script))
        return self

    def session(self):
        """For a session fixture: `yield from service.session()` starts the
        service and stops it however the session ends."""
        self.require_installed()
        try:
            yield self.start()
        finally:
            self.stop()
