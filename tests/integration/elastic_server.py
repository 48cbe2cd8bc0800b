"""A single-node OpenSearch for the elastic sink's tests, installed by
scripts/install-elastic.sh (jars from Maven Central, no Docker).

The node listens on 127.0.0.1 only, on a free port, with a small heap; it is
started once per test session and always stopped at the end, also when the
session fails: the node exits when its standard input closes, so even a
harness killed outright does not leave it behind.

Environment: PGSPOUT_ELASTIC_HOME (default /var/cache/pgspout-test/elastic).
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ELASTIC_HOME = os.environ.get("PGSPOUT_ELASTIC_HOME",
                              "/var/cache/pgspout-test/elastic")
START_TIMEOUT_S = 120


def installed():
    return os.path.exists(os.path.join(ELASTIC_HOME, "classes",
                                       "PgspoutOpenSearch.class"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ElasticError(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body[:2000]))
        self.status = status
        self.body = body


class ElasticNode:
    def __init__(self, workdir=None):
        self.workdir = workdir
        self.proc = None
        self.port = None
        self.log_path = None
        self._own_workdir = False

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        if self.workdir is None:
            base = os.environ.get("PGSPOUT_TEST_TMPDIR") or None
            self.workdir = tempfile.mkdtemp(prefix="opensearch-", dir=base)
            self._own_workdir = True
        self.port = free_port()
        self.log_path = os.path.join(self.workdir, "node.log")
        log = open(self.log_path, "wb")
        java = shutil.which("java") or "java"
        cmd = [java, "-Xms256m", "-Xmx512m", "-XX:+UseSerialGC",
               "-Djava.awt.headless=true",
               "-cp", "%s/classes:%s/lib/*" % (ELASTIC_HOME, ELASTIC_HOME),
               "PgspoutOpenSearch", os.path.join(self.workdir, "node"),
               str(self.port)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("OpenSearch exited with %d:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            try:
                health = self.request("GET", "/_cluster/health")
                if health.get("status") in ("green", "yellow"):
                    return self
            except (OSError, ElasticError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("OpenSearch did not start within %ds:\n%s"
                           % (START_TIMEOUT_S, self.log_tail()))

    def log_tail(self, size=4000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-size:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._own_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def request(self, method, path, body=None, ndjson=False, ok=(200, 201)):
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            if ndjson:
                data = "".join(json.dumps(line) + "\n" for line in body)
                headers["Content-Type"] = "application/x-ndjson"
            else:
                data = json.dumps(body)
                headers["Content-Type"] = "application/json"
            data = data.encode()
        req = urllib.request.Request(self.url + path, data=data,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if status not in ok:
            raise ElasticError(status, text)
        return json.loads(text) if text else None

    def refresh(self, index="_all"):
        self.request("POST", "/%s/_refresh" % index)

    def documents(self, index):
        """{_id: (_version, _source)} of every document in index."""
        self.refresh(index)
        docs = {}
        r = self.request("POST", "/%s/_search?scroll=1m&version=true" % index,
                         {"size": 1000, "query": {"match_all": {}},
                          "sort": ["_doc"]})
        while r["hits"]["hits"]:
            for h in r["hits"]["hits"]:
                docs[h["_id"]] = (h["_version"], h["_source"])
            r = self.request("POST", "/_search/scroll",
                             {"scroll": "1m", "scroll_id": r["_scroll_id"]})
        self.request("DELETE", "/_search/scroll",
                     {"scroll_id": r["_scroll_id"]}, ok=(200, 404))
        return docs

    def index_exists(self, index):
        try:
            self.request("HEAD", "/" + index)
            return True
        except ElasticError as e:
            if e.status == 404:
                return False
            raise

    def delete_index(self, index):
        self.request("DELETE", "/" + index, ok=(200, 404))
