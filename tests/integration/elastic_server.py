"""A single-node OpenSearch for the elastic sink's tests, installed by
scripts/install-elastic.sh (jars from Maven Central, no Docker).

The node listens on 127.0.0.1 only, on a free port, with a small heap; it is
started once per test session and always stopped at the end, also when the
session fails: the node exits when its standard input closes, so even a
harness killed outright does not leave it behind (process handling:
service.py).

Environment: PGSPOUT_ELASTIC_HOME (default /var/cache/pgspout-test/elastic).
"""

import json
import os
import shutil

from pgharness import free_port
from service import ServiceError, ServiceProcess, http_json

ELASTIC_HOME = os.environ.get("PGSPOUT_ELASTIC_HOME",
                              "/var/cache/pgspout-test/elastic")


def installed():
    return os.path.exists(os.path.join(ELASTIC_HOME, "classes",
                                       "PgspoutOpenSearch.class"))


class ElasticNode(ServiceProcess):
    name = "opensearch"
    home = ELASTIC_HOME
    install_script = "install-elastic.sh"
    start_timeout_s = 120
    stop_timeout_s = 30
    poll_interval_s = 0.3

    installed = staticmethod(installed)

    def __init__(self, workdir=None, max_content_length=None):
        """max_content_length: the node's http.max_content_length (e.g.
        "4kb"), for requests it refuses as too large; None keeps 100mb."""
        super().__init__(workdir)
        self.max_content_length = max_content_length

    def write_settings(self):
        # The launcher takes no settings; the runner keeps a node's
        # opensearch.yml when one exists and reads it.
        if self.max_content_length is None:
            return
        config = os.path.join(self.workdir, "node", "node_1", "config")
        os.makedirs(config, exist_ok=True)
        with open(os.path.join(config, "opensearch.yml"), "w") as f:
            f.write("http.max_content_length: %s\n" % self.max_content_length)

    def choose_port(self):
        # This module's free_port, which a test may replace to restart the
        # node on the same port.
        return free_port()

    def command(self):
        self.write_settings()
        java = shutil.which("java") or "java"
        return [java, "-Xms256m", "-Xmx512m", "-XX:+UseSerialGC",
                "-Djava.awt.headless=true",
                "-cp", "%s/classes:%s/lib/*" % (ELASTIC_HOME, ELASTIC_HOME),
                "PgspoutOpenSearch", os.path.join(self.workdir, "node"),
                str(self.port)]

    def ready(self):
        health = self.request("GET", "/_cluster/health")
        return health.get("status") in ("green", "yellow")

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
        return http_json(self.url + path, method, data, headers, ok=ok)

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
        except ServiceError as e:
            if e.status == 404:
                return False
            raise

    def delete_index(self, index):
        self.request("DELETE", "/" + index, ok=(200, 404))
