"""bqemulator (a BigQuery emulator on DuckDB, from PyPI) for the BigQuery
sink's tests, installed by scripts/install-bigquery.sh, plus a small REST
client for what the tests read back.

The emulator keeps everything in memory, listens on 127.0.0.1 only, and is
killed with the process that started it (PR_SET_PDEATHSIG), so even a
harness killed outright does not leave it behind.

Environment: PGSPOUT_BIGQUERY_HOME (default /var/cache/pgspout-test/bigquery).
"""

import base64
import ctypes
import decimal
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from pgharness import free_port

BIGQUERY_HOME = os.environ.get("PGSPOUT_BIGQUERY_HOME",
                               "/var/cache/pgspout-test/bigquery")
PROJECT = "pgspout-test"
START_TIMEOUT_S = 60


def installed():
    return os.path.exists(os.path.join(BIGQUERY_HOME, "venv", "bin",
                                       "bqemulator"))


def _die_with_parent():
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class BigQueryError(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body[:2000]))
        self.status = status
        self.body = body


class Emulator:
    def __init__(self, logdir):
        self.proc = None
        self.port = None
        self.log_path = os.path.join(logdir, "bqemulator.log")

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self.port = free_port()
        env = dict(os.environ, HOME=os.path.join(BIGQUERY_HOME, "home"))
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [os.path.join(BIGQUERY_HOME, "venv", "bin", "bqemulator"),
             "start", "--rest-host", "127.0.0.1",
             "--rest-port", str(self.port), "--grpc-host", "127.0.0.1",
             "--grpc-port", "0", "--project", PROJECT,
             "--log-level", "warning", "--ephemeral"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/healthz",
                                            timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError("bqemulator did not start:\n" + tail)

    def log_tail(self, size=4000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-size:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def request(self, method, path, body=None):
        url = "%s/bigquery/v2/projects/%s%s" % (self.url, PROJECT, path)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            url, data=data, method=method,
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if status != 200:
            raise BigQueryError(status, text)
        return json.loads(text) if text else {}

    def create_dataset(self, name):
        self.request("POST", "/datasets", {
            "datasetReference": {"projectId": PROJECT, "datasetId": name}})

    def table(self, dataset, table):
        return self.request("GET", "/datasets/%s/tables/%s"
                            % (dataset, table))

    def query(self, sql):
        """Rows as dicts of Python values (see convert)."""
        r = self.request("POST", "/queries", {"query": sql,
                                              "useLegacySql": False,
                                              "timeoutMs": 60000})
        if r.get("errors"):
            raise BigQueryError(200, json.dumps(r["errors"]))
        fields = r["schema"]["fields"]
        return [{f["name"]: convert(f, cell["v"])
                 for f, cell in zip(fields, row["f"])}
                for row in r.get("rows", [])]


def convert(field, v):
    """A query answer's cell as a Python value: INT64 int, NUMERIC Decimal,
    FLOAT64 float, BOOL bool, TIMESTAMP microseconds since the epoch, BYTES
    bytes, JSON parsed, REPEATED a list, the rest the string itself."""
    if field.get("mode") == "REPEATED":
        return [convert(dict(field, mode="NULLABLE"), e["v"])
                for e in (v or [])]
    if v is None:
        return None
    t = field["type"]
    if t in ("INTEGER", "INT64"):
        return int(v)
    if t in ("NUMERIC", "BIGNUMERIC"):
        return decimal.Decimal(v)
    if t in ("FLOAT", "FLOAT64"):
        return float(v)
    if t in ("BOOLEAN", "BOOL"):
        return v in (True, "true", "TRUE")
    if t == "TIMESTAMP":
        # Microseconds (the emulator) or float seconds (BigQuery).
        if "." in v or "E" in v:
            return int(decimal.Decimal(v) * 1000000)
        return int(v)
    if t == "BYTES":
        return base64.b64decode(v)
    if t == "JSON":
        return json.loads(v)
    return v
