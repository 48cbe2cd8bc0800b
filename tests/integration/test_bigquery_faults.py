"""The BigQuery sink against a hand-written fake of the API (and of
Google's token endpoint), for what the emulator cannot do: service-account
auth end to end, transient failures, and rows BigQuery refuses. The
emulator tests (test_bigquery.py) cover real storage and queries."""

import json
import os
import subprocess
import threading
import urllib.parse
from http.server import ThreadingHTTPServer

import pytest

from json_http import JsonHandler
from pgharness import lsn_to_int


class FakeBigQuery:
    """Tables are accepted (409 on a second insert), queries succeed,
    insertAll follows a script of answers, then 200. A script entry is
    (status, body), or a function of the request body giving one. As
    BigQuery does, a 200 stores the rows its insertErrors do not name."""

    def __init__(self):
        self.lock = threading.Lock()
        # (authorization, table, body, stored row indexes) of each insertAll
        self.inserts = []
        self.token_requests = []   # form fields
        self.script = []           # answers for the next insertAlls
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
            return [body["rows"][i] for _, _, body, stored in self.inserts
                    for i in stored]

    def _handler(self):
        fake = self

        class Handler(JsonHandler):
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
                    table = self.path.split("/")[-2]
                    body = json.loads(text)
                    with fake.lock:
                        entry = fake.script.pop(0) if fake.script \
                            else (200, {})
                        status, answer = entry(body) if callable(entry) \
                            else entry
                        failed = {e["index"]
                                  for e in answer.get("insertErrors", [])}
                        stored = [i for i in range(len(body["rows"]))
                                  if status == 200 and i not in failed]
                        fake.inserts.append((auth, table, body, stored))
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
    # One request at a time, so the order of tokens is known.
    r = run_sink(db, pgspout, fake, "-o", "auth=key",
                 "-o", "credentials_file=" + path, "-o", "in_flight=1")
    # The token came from the key's token_uri with a JWT bearer grant, was
    # sent on every request, and a 401 made the sink fetch a new one.
    assert fake.token_requests[0]["grant_type"] == \
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert fake.token_requests[0]["assertion"].count(".") == 2
    assert len(fake.token_requests) == 2
    auths = [a for a, _, _, _ in fake.inserts]
    assert auths[:3] == ["Bearer tok1"] * 3 and auths[-1] == "Bearer tok2"
    # Each row stored once, whichever request it went again in (the kit
    # retries each change on its own backoff).
    ids = [row["json"]["id"] for row in fake.rows()]
    assert sorted(ids) == [1, 2, 3, 4, 5]
    # Retries send the same insertIds, so BigQuery can drop duplicates.
    first = [row["insertId"] for row in fake.inserts[0][2]["rows"]]
    assert sorted(first) == sorted(row["insertId"] for row in fake.rows())
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


def test_row_errors_concern_their_own_changes(db, pgspout, fake, tmp_path):
    """insertErrors name rows of the request: only the change a refused row
    belongs to is rejected; the rows BigQuery stopped because of it are
    sent again."""
    db.psql("create table t (id int primary key, v text);")
    db.create_slot(db.name)
    db.psql("insert into t select g, 'v' || g from generate_series(1, 20) g;")

    def refuse_id_10(body):
        ids = [row["json"]["id"] for row in body["rows"]]
        if 10 not in ids:
            return 200, {}
        return 200, {"insertErrors": [
            {"index": i, "errors": [
                {"reason": "invalid", "location": "v", "message": "refused"}
                if id_ == 10 else {"reason": "stopped"}]}
            for i, id_ in enumerate(ids)]}

    fake.script = [refuse_id_10] * 50
    dead = tmp_path / "dead.jsonl"
    run_sink(db, pgspout, fake, "-o", "dead_letter=%s" % dead)
    # The kit batched changes (how many per request depends on when the
    # host flushes).
    assert max(len(body["rows"]) for _, _, body, _ in fake.inserts) > 1
    lines = [json.loads(l) for l in dead.read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["record"][0]["json"]["id"] == 10
    assert "refused" in lines[0]["reason"]
    # Whatever was stopped along with it went again and was stored, once.
    assert sorted(row["json"]["id"] for row in fake.rows()) == \
        [i for i in range(1, 21) if i != 10]
    assert lsn_to_int(db.slot_info(db.name)["confirmed_flush_lsn"]) > 0


def test_requests_hold_one_table_each(db, pgspout, fake):
    """Changes of two tables, interleaved in one transaction, are batched
    per table: insertAll writes one table per request."""
    db.psql("create table a (id int primary key, x text);"
            "create table b (id int primary key, y text);")
    db.create_slot(db.name)
    db.psql("begin;" + "".join(
        "insert into a values (%d, 'a');insert into b values (%d, 'b');"
        % (i, i) for i in range(1, 21)) + "commit;")
    run_sink(db, pgspout, fake)
    by_table = {}
    for _, table, body, _ in fake.inserts:
        columns = {"x" if "x" in row["json"] else "y" for row in body["rows"]}
        assert columns == {"x" if table == "public_a_changelog" else "y"}
        by_table.setdefault(table, []).extend(
            row["json"]["id"] for row in body["rows"])
    assert sorted(by_table["public_a_changelog"]) == list(range(1, 21))
    assert sorted(by_table["public_b_changelog"]) == list(range(1, 21))
    # Batched, not one request per change.
    assert len(fake.inserts) < 10


# BigQuery's answer to an insertAll over its request size limit (10 MB;
# the fake's limit is smaller): the whole request is refused, nothing is
# stored.
PAYLOAD_LIMIT = 4000
PAYLOAD_TOO_LARGE = (400, {"error": {
    "code": 400,
    "message": "Request payload size exceeds the limit: %d bytes."
               % PAYLOAD_LIMIT,
    "errors": [{"message": "Request payload size exceeds the limit: %d "
                "bytes." % PAYLOAD_LIMIT, "domain": "global",
                "reason": "badRequest"}],
    "status": "INVALID_ARGUMENT"}})


def limit_payload(body):
    if len(json.dumps(body)) > PAYLOAD_LIMIT:
        return PAYLOAD_TOO_LARGE
    return 200, {}


def refused_sizes(fake):
    return [len(body["rows"]) for _, _, body, stored in fake.inserts
            if not stored]


def test_request_too_large_is_split(db, pgspout, fake, tmp_path):
    """Rows of about 1 kB, thirty in a transaction: a batch exceeds the
    limit, three rows do not. The requests are split until they fit, and
    every row is stored once, none dead-lettered."""
    db.psql("create table t (id int primary key, v text);")
    db.create_slot(db.name)
    db.psql("insert into t select g, repeat('x', 1000) "
            "from generate_series(1, 30) g;")
    fake.script = [limit_payload] * 1000
    dead = tmp_path / "dead.jsonl"
    run_sink(db, pgspout, fake, "-o", "dead_letter=%s" % dead)
    assert max(refused_sizes(fake)) > 3  # a whole batch was refused
    assert sorted(row["json"]["id"] for row in fake.rows()) == \
        list(range(1, 31))
    assert not dead.exists() or dead.read_text() == ""


def test_row_too_large_alone_is_rejected(db, pgspout, fake, tmp_path):
    """A row over the limit on its own is rejected once its request is
    split down to it: the dead-letter file takes it, its neighbours are
    stored; without a dead-letter file the stream stops unconfirmed."""
    db.psql("create table t (id int primary key, v text);")
    db.create_slot(db.name)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    db.psql("insert into t select g, repeat('x', case g when 5 then 5000 "
            "else 500 end) from generate_series(1, 10) g;")
    fake.script = [limit_payload] * 1000
    r = run_sink(db, pgspout, fake, expect=1)
    assert "refused as too large on its own" in r.stderr, r.stderr[-4000:]
    assert 5 not in [row["json"]["id"] for row in fake.rows()]
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before

    fake.inserts.clear()
    fake.script = [limit_payload] * 1000
    dead = tmp_path / "dead.jsonl"
    run_sink(db, pgspout, fake, "-o", "dead_letter=%s" % dead)
    lines = [json.loads(l) for l in dead.read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["record"][0]["json"]["id"] == 5
    assert "Request payload size exceeds the limit" in lines[0]["reason"]
    assert "refused as too large on its own" in lines[0]["reason"]
    assert sorted(row["json"]["id"] for row in fake.rows()) == \
        [i for i in range(1, 11) if i != 5]
    assert db.slot_info(db.name)["confirmed_flush_lsn"] != before
