"""Shared pieces of the production tests (metrics, readiness, heartbeats,
slot guard, logs, systemd): the HTTP endpoint read with urllib, /metrics
parsed with the Prometheus text parser of the prometheus_client package
(scripts/install-deps.sh installs the pinned version), and small waits."""

import json
import os
import socket
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from pgharness import wait_until

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, method="GET", timeout=10):
    """(status, body) of one request; (None, error) when nothing answers."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def ready(port):
    """(status, parsed JSON body) of /ready."""
    status, body = http_get(port, "/ready")
    return status, json.loads(body) if status else None


def reasons(port):
    status, body = ready(port)
    if status is None:
        return None
    return [r["reason"] for r in body.get("reasons", [])]


class Metrics:
    """One scrape of /metrics, parsed by prometheus_client's parser."""

    def __init__(self, text):
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.samples = {}
        for family in self.families:
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                self.samples[key] = s.value

    def get(self, name, **labels):
        """The sample's value, or None when there is no such sample."""
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def series(self, name):
        """{labels tuple: value} of every sample of that name."""
        return {k[1]: v for k, v in self.samples.items() if k[0] == name}

    def names(self):
        """Every sample name and every family name (a counter's with its
        _total, which the parser drops, too: a family exposed before it
        has a sample still names its series)."""
        return {k[0] for k in self.samples} | {f.name for f in self.families} \
            | {f.name + "_total" for f in self.families
               if f.type == "counter"}

    def family(self, name):
        for f in self.families:
            if f.name == name:
                return f
        return None


def scrape(port):
    status, body = http_get(port, "/metrics")
    assert status == 200, (status, body)
    return Metrics(body)


def wait_metric(port, predicate, what, timeout=60):
    """Scrapes until predicate(metrics) holds; returns that scrape."""
    box = {}

    def check():
        m = scrape(port)
        box["m"] = m
        return predicate(m)
    try:
        wait_until(check, timeout=timeout, what=what)
    except AssertionError:
        raise AssertionError("%s; last scrape:\n%s" % (
            what, box.get("m").text if box.get("m") else "(none)")) from None
    return box["m"]


def wait_http(port, proc, pgspout, timeout=60):
    """Waits until the endpoint answers /health."""
    def up():
        assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
        return http_get(port, "/health")[0] == 200
    wait_until(up, timeout=timeout, what="the HTTP endpoint")


def json_lines(text):
    """The JSON log lines of a stderr (every line must be one)."""
    lines = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError("not a JSON log line: %r" % line) from None
    return lines


def fault_sink_path():
    """The fault-injecting test sink (tests/sinks/fault_sink.c)."""
    directory = os.environ.get("PGSPOUT_TEST_SINK_DIR") or os.path.join(
        REPO, "build", "release", "tests", "sinks")
    path = os.path.abspath(os.path.join(directory, "pgspout_fault.so"))
    assert os.path.exists(path), \
        "test sink not built: %s (set PGSPOUT_TEST_SINK_DIR)" % path
    return path


def spawn_streaming(pgspout, db, port, *args, env=None):
    """Starts pgspout with the HTTP endpoint on port and waits until it
    streams (/ready answers 200)."""
    proc = pgspout.spawn("-d", db.conninfo, "--slot", db.name,
                         "--http", "127.0.0.1:%d" % port, *args, env=env)
    wait_http(port, proc, pgspout)
    wait_until(lambda: ready(port)[0] == 200 or proc.poll() is not None,
               timeout=60, what="/ready answering 200")
    assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
    return proc
