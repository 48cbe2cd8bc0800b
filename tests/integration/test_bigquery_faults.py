"""The BigQuery sink against a hand-written fake of the API (and of
Google's token endpoint), for what the emulator cannot do: service-account
auth end to end, transient failures, and rows BigQuery refuses. The
emulator tests (test_bigquery.py) cover real storage and queries."""

import json
import os
import signal
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pgharness import lsn_to_int, wait_until


class FakeBigQuery:
    """Tables are accepted (409 on a second insert), queries succeed,
    insertAll follows a script of answers, then 200."""

    def __init__(self):
        self.lock = threading.Lock()
        self.inserts = []          # (authorization, body) of each insertAll
        self.token_requests = []   # form fields
        self.script = []           # (status, body) for the next insertAlls
        self.tables = {}
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def rows(self):
        with self.lock:
            return [r for auth, body, ok in self.inserts if ok
                    for r in body["rows"]]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n).decode()

            def do_GET(self):
                table = self.path.rsplit("/", 1)[-1]
                with fake.lock:
                    resource = fake.tables.get(table)
                if resource is None:
                    return self.answer(404, {"error": {"code": 404}})
                self.answer(200, resource)

            def do_PATCH(self):
                self.answer(200, json.loads(self.body()))

            def do_POST(self):
                text = self.body()
                if self.path == "/token":
                    form = dict(urllib.parse.parse_qsl(text))
                    with fake.lock:
                        fake.token_requests.append(form)
                        n = len(fake.token_requests)
                    return self.answer(200, {"access_token": "tok%d" % n,
                                             "expires_in": 3600})
                if self.path.endswith("/queries"):
                    return self.answer(200, {"jobComplete": True})
                if self.path.endswith("/tables"):
                    body = json.loads(text)
                    table = body["tableReference"]["tableId"]
                    with fake.lock:
                        if table in fake.tables:
                            return self.answer(409, {"error": {"code": 409}})
                        fake.tables[table] = body
                    return self.answer(200, body)
                if self.path.endswith("/insertAll"):
                    auth = self.headers.get("Authorization")
                    with fake.lock:
                        status, answer = (fake.script.pop(0) if fake.script
                                          else (200, {}))
                        ok = status == 200 and not answer.get("insertErrors")
                        fake.inserts.append((auth, json.loads(text), ok))
                    return self.answer(status, answer)
                self.answer(404, {"error": {"code": 404}})

        return Handler


@pytest.fixture
def fake():
    f = FakeBigQuery()
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture
def key_file(tmp_path, fake):
    """A throwaway service-account key, made now with OpenSSL."""
    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA",
                          "-pkeyopt", "rsa_keygen_bits:2048"],
                         capture_output=True, text=True, check=True).stdout
    path = tmp_path / "key.json"
    path.write_text(json.dumps({
        "type": "service_account", "client_email": "sa@p.iam.example",
        "private_key": pem, "token_uri": fake.url + "/token"}))
    return str(path), pem


def run_sink(db, pgspout, fake, *extra, expect=0):
    env = dict(os.environ)
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink",
                    "bigquery", "-o", "project=p", "-o", "dataset=d",
                    "-o", "endpoint=" + fake.url, "-o", "retry_base=10ms",
                    "-o", "retry_max=50ms", "--endpos", db.current_lsn(),
                    *extra, env=env, timeout=120)
    assert r.returncode == expect, r.stderr[-4000:]
    return r


def test_service_account_auth_and_retries(db, pgspout, fake, key_file):
    path, pem = key_file
    db.psql("create table t (id int primary key, v text);")
    db.create_slot(db.name)
    db.psql("insert into t select g, 'v' || g from generate_series(1, 5) g;")
    fake.script = [(503, {"error": {"code": 503, "errors": [
                        {"reason": "backendError"}]}}),
                   (200, {"insertErrors": [
                       {"index": 0, "errors": [{"reason": "backendError"}]},
                       {"index": 1, "errors": [{"reason": "stopped"}]}]}),
                   (401, {"error": {"code": 401}})]
    r = run_sink(db, pgspout, fake, "-o", "auth=key",
                 "-o", "credentials_file=" + path)
    # The token came from the key's token_uri with a JWT bearer grant, was
    # sent on every request, and a 401 made the sink fetch a new one.
    assert fake.token_requests[0]["grant_type"] == \
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert fake.token_requests[0]["assertion"].count(".") == 2
    assert len(fake.token_requests) == 2
    auths = [a for a, _, _ in fake.inserts]
    assert auths[:3] == ["Bearer tok1"] * 3 and auths[-1] == "Bearer tok2"
    ids = [row["json"]["id"] for row in fake.rows()]
    assert ids == [1, 2, 3, 4, 5]
    # Retries send the same insertIds, so BigQuery can drop duplicates.
    first = [row["insertId"] for row in fake.inserts[0][1]["rows"]]
    assert first == [row["insertId"] for row in fake.rows()]
    # Neither the key nor a token reaches the log.
    body = "".join(pem.splitlines()[1:3])
    assert body not in r.stderr and "tok1" not in r.stderr
    slot = db.slot_info(db.name)
    assert lsn_to_int(slot["confirmed_flush_lsn"]) > 0


def test_rejected_rows_stop_or_go_to_dead_letter(db, pgspout, fake,
                                                 tmp_path):
    db.psql("create table t (id int primary key, v text);")
    db.create_slot(db.name)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    db.psql("insert into t values (1, 'a');")
    invalid = (200, {"insertErrors": [{"index": 0, "errors": [
        {"reason": "invalid", "location": "v",
         "message": "no such field"}]}]})
    fake.script = [invalid]
    r = run_sink(db, pgspout, fake, expect=1)
    assert "no such field" in r.stderr
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before

    fake.script = [invalid]
    dead = tmp_path / "dead.jsonl"
    run_sink(db, pgspout, fake, "-o", "dead_letter=%s" % dead)
    lines = [json.loads(l) for l in dead.read_text().splitlines()]
    assert len(lines) == 1 and "no such field" in lines[0]["reason"]
    assert lines[0]["record"][0]["json"]["v"] == "a"
    assert db.slot_info(db.name)["confirmed_flush_lsn"] != before
