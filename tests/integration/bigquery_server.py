"""bqemulator (a BigQuery emulator on DuckDB, from PyPI) for the BigQuery
sink's tests, installed by scripts/install-bigquery.sh, plus a small REST
client for what the tests read back.

The emulator keeps everything in memory, listens on 127.0.0.1 only, and is
killed with the process that started it (PR_SET_PDEATHSIG), so even a
harness killed outright does not leave it behind (process handling:
service.py).

Environment: PGSPOUT_BIGQUERY_HOME (default /var/cache/pgspout-test/bigquery).
"""

import base64
import decimal
import json
import os

from service import ServiceError, ServiceProcess, http_json

BIGQUERY_HOME = os.environ.get("PGSPOUT_BIGQUERY_HOME",
                               "/var/cache/pgspout-test/bigquery")
PROJECT = "pgspout-test"


def installed():
    return os.path.exists(os.path.join(BIGQUERY_HOME, "venv", "bin",
                                       "bqemulator"))


class Emulator(ServiceProcess):
    name = "bqemulator"
    home = BIGQUERY_HOME
    install_script = "install-bigquery.sh"
    start_timeout_s = 60
    exits_on_eof = False

    installed = staticmethod(installed)

    def command(self):
        return [os.path.join(BIGQUERY_HOME, "venv", "bin", "bqemulator"),
                "start", "--rest-host", "127.0.0.1",
                "--rest-port", str(self.port), "--grpc-host", "127.0.0.1",
                "--grpc-port", "0", "--project", PROJECT,
                "--log-level", "warning", "--ephemeral"]

    def popen_options(self):
        return {"env": dict(os.environ,
                            HOME=os.path.join(BIGQUERY_HOME, "home"))}

    def ready(self):
        http_json(self.url + "/healthz", timeout=2)
        return True

    def request(self, method, path, body=None):
        url = "%s/bigquery/v2/projects/%s%s" % (self.url, PROJECT, path)
        data = json.dumps(body).encode() if body is not None else None
        answer = http_json(url, method, data,
                           {"Content-Type": "application/json"})
        return {} if answer is None else answer

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
            raise ServiceError(200, json.dumps(r["errors"]))
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
