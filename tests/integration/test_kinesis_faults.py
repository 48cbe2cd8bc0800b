"""The Kinesis sink against a hand-written fake PutRecords server, for what
kinesalite never does: partial failures (FailedRecordCount > 0 with
ProvisionedThroughputExceededException / InternalFailure on chosen entries),
500s, throttling, and errors retrying cannot fix. Proves retries, per-key
order under partial failures, and that a FATAL stop confirms nothing."""

import base64
import decimal
import http.server
import json
import random
import threading

import pytest

from json_http import JsonHandler
from pgharness import lsn_to_int, read_jsonl

TOKEN = "faultTESTsessionTOKEN=="


class FakeKinesis(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode):
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.mode = mode
        self.lock = threading.Lock()
        self.rng = random.Random(20261122)
        self.requests = 0
        self.injected = {"entry": 0, "500": 0, "throttle": 0}
        self.accepted = {}  # partition key -> [event, ...] in accept order
        self.bad_requests = []
        self.seq = 0

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]


class FakeHandler(JsonHandler):
    content_type = "application/x-amz-json-1.1"

    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        auth = self.headers.get("Authorization", "")
        with srv.lock:
            if (self.headers.get("X-Amz-Target")
                    != "Kinesis_20131202.PutRecords"
                    or self.headers.get("Content-Type")
                    != "application/x-amz-json-1.1"
                    or not auth.startswith("AWS4-HMAC-SHA256 Credential="
                                           "AKIDFAULT/")
                    or "/us-east-1/kinesis/aws4_request" not in auth
                    or "x-amz-security-token" not in auth
                    or self.headers.get("X-Amz-Security-Token") != TOKEN):
                srv.bad_requests.append(dict(self.headers))
                return self.answer(400, {"__type": "IncompleteSignature",
                                         "message": "bad headers"})
            doc = json.loads(body)
            srv.requests += 1
            n = srv.requests
            if srv.mode.startswith("fatal:"):
                return self.answer(400, {"__type": srv.mode[6:],
                                         "message": "stream %s: no way"
                                         % doc["StreamName"]})
            if srv.mode == "partial" and n % 7 == 3:
                srv.injected["500"] += 1
                return self.answer(500, {"__type": "InternalFailure"})
            if srv.mode == "partial" and n % 11 == 5:
                srv.injected["throttle"] += 1
                return self.answer(400, {
                    "__type": "ProvisionedThroughputExceededException",
                    "message": "Rate exceeded"})
            results, failed = [], 0
            for i, rec in enumerate(doc["Records"]):
                if srv.mode == "partial" and srv.rng.random() < 0.3:
                    failed += 1
                    srv.injected["entry"] += 1
                    code = ("ProvisionedThroughputExceededException"
                            if i % 2 else "InternalFailure")
                    results.append({"ErrorCode": code,
                                    "ErrorMessage": "injected"})
                    continue
                event = json.loads(base64.b64decode(rec["Data"]),
                                   parse_float=decimal.Decimal)
                srv.accepted.setdefault(rec["PartitionKey"], []).append(event)
                srv.seq += 1
                results.append({"SequenceNumber": str(srv.seq),
                                "ShardId": "shardId-000000000000"})
            self.answer(200, {"FailedRecordCount": failed,
                              "Records": results})


@pytest.fixture
def fake_kinesis():
    servers = []

    def start(mode):
        srv = FakeKinesis(mode)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv
    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def env_for(pgspout_env=None):
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="AKIDFAULT", AWS_SECRET_ACCESS_KEY="s" * 40,
               AWS_SESSION_TOKEN=TOKEN, AWS_REGION="us-east-1")
    env.update(pgspout_env or {})
    return env


def args_for(db, srv, slot, *extra):
    return ["-d", db.conninfo, "--slot", slot, "--sink", "kinesis",
            "-o", "stream=faulty", "-o", "endpoint=" + srv.url,
            "-o", "linger=1ms", "-o", "retry_base=5ms",
            "-o", "retry_max=50ms"] + list(extra)


def position(event):
    return (lsn_to_int(event["commit_lsn"]), event.get("seq", 0))


def test_partial_failures_retry_and_keep_key_order(db, pgspout, fake_kinesis,
                                                   tmp_path):
    db.psql("create table hot (id int primary key, n int);")
    db.create_slot(db.name)
    db.psql("select pg_create_logical_replication_slot('%s_ref', "
            "'pgoutput');" % db.name)
    # Few rows, many changes each: every key has a long ordered history.
    db.psql("insert into hot select g, 0 from generate_series(1, 12) g;")
    for i in range(1, 16):
        db.psql("update hot set n = %d; update hot set n = n + 100 "
                "where id %% 3 = %d;" % (i, i % 3))
    db.psql("begin; delete from hot where id > 10; "
            "insert into hot values (50, 1); update hot set n = -1; commit;")
    endpos = db.current_lsn()
    srv = fake_kinesis("partial")

    r = pgspout.run(*args_for(db, srv, db.name, "-o", "batch_records=9",
                              "-o", "in_flight=6", "--endpos", endpos),
                    env=env_for(), timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    assert not srv.bad_requests, srv.bad_requests[:1]
    ref = str(tmp_path / "ref.jsonl")
    rr = pgspout.run("-d", db.conninfo, "--slot", db.name + "_ref",
                     "--sink", "file", "-o", "path=" + ref,
                     "-o", "fsync=false", "--endpos", endpos)
    assert rr.returncode == 0, rr.stderr
    expected = read_jsonl(ref)

    # Failures of every kind were injected and retried.
    assert srv.injected["entry"] > 20 and srv.injected["500"] > 0 and \
        srv.injected["throttle"] > 0, srv.injected
    assert "will be sent again" in r.stderr
    # Every event was accepted exactly once ...
    accepted = [e for evs in srv.accepted.values() for e in evs]
    key = lambda e: json.dumps(e, sort_keys=True, default=repr)  # noqa
    assert sorted(map(key, accepted)) == sorted(map(key, expected))
    # ... and each partition key's records in commit order, although later
    # records of the key were ready while an earlier one was failing.
    assert len([k for k in srv.accepted if k.startswith("public.hot:")]) == 13
    for pkey, events in srv.accepted.items():
        positions = [position(e) for e in events]
        assert positions == sorted(positions), (pkey, positions)
    assert lsn_to_int(db.slot_info(db.name)["confirmed_flush_lsn"]) >= \
        lsn_to_int(endpos)


@pytest.mark.parametrize("error", ["ResourceNotFoundException",
                                   "AccessDeniedException"])
def test_unfixable_errors_stop_without_confirming(db, pgspout, fake_kinesis,
                                                  error):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    db.psql("insert into t select generate_series(1, 20);")
    srv = fake_kinesis("fatal:" + error)
    r = pgspout.run(*args_for(db, srv, db.name, "--endpos",
                              db.current_lsn()), env=env_for(), timeout=60)
    assert r.returncode == 1, r.stderr[-4000:]
    assert error in r.stderr and "faulty" in r.stderr
    assert srv.requests >= 1
    assert not srv.accepted
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before


def test_record_over_the_limit(db, pgspout, fake_kinesis, tmp_path):
    db.psql("create table big (id int primary key, body text);")
    db.create_slot(db.name)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    db.psql("insert into big values (1, 'small');"
            "insert into big values (2, repeat('x', 1100000));"
            "insert into big values (3, 'after');")
    endpos = db.current_lsn()
    srv = fake_kinesis("ok")

    # Without a dead-letter file: stop, naming the event, confirming
    # nothing past it.
    r = pgspout.run(*args_for(db, srv, db.name, "--endpos", endpos),
                    env=env_for(), timeout=60)
    assert r.returncode == 1, r.stderr[-4000:]
    assert "over the Kinesis record limit" in r.stderr
    assert "commit_lsn" in r.stderr and "public.big" in r.stderr
    info = db.slot_info(db.name)["confirmed_flush_lsn"]
    assert lsn_to_int(info) < lsn_to_int(endpos)
    assert lsn_to_int(info) >= lsn_to_int(before)

    # With one: the record goes there with its reason, the rest to Kinesis.
    dead = str(tmp_path / "dead.jsonl")
    r = pgspout.run(*args_for(db, srv, db.name, "-o", "dead_letter=" + dead,
                              "--endpos", endpos), env=env_for(), timeout=60)
    assert r.returncode == 0, r.stderr[-4000:]
    lines = read_jsonl(dead)
    assert len(lines) == 1
    assert "over the Kinesis record limit" in lines[0]["reason"]
    assert lines[0]["record"]["after"]["id"] == 2
    ids = sorted(e["after"]["id"] for evs in srv.accepted.values()
                 for e in evs if e["op"] == "insert")
    assert 2 not in ids and 3 in ids


def test_stop_while_the_service_is_down(db, pgspout, tmp_path):
    """Nothing answers at the endpoint and the sink keeps retrying; a stop
    signal must still end pgspout (the sink is told to stop waiting), with
    exit 1 and nothing confirmed that the sink did not acknowledge."""
    import signal
    import socket

    from pgharness import free_port, wait_until
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    db.psql("insert into t select g from generate_series(1, 50) g;")
    # A port that is bound but never listened on refuses every connection.
    holder = socket.socket()
    holder.bind(("127.0.0.1", free_port()))
    try:
        url = "http://127.0.0.1:%d" % holder.getsockname()[1]
        proc = pgspout.spawn("-d", db.conninfo, "--slot", db.name, "--sink",
                             "kinesis", "-o", "stream=down",
                             "-o", "endpoint=" + url, "-o", "linger=1ms",
                             "-o", "retry_base=5ms", "-o", "retry_max=50ms",
                             env=env_for())
        wait_until(lambda: "will be sent again" in pgspout.stderr_of(proc),
                   what="retries against the unreachable endpoint")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 1
    finally:
        holder.close()
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before
    assert "stop requested while it was failing" in pgspout.stderr_of(proc)
