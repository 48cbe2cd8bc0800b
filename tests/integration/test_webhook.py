"""The webhook sink against a real HTTP receiver in a process of its own
(webhook_server.py), which checks every request's signature with the
Standard Webhooks reference library: what it takes equals the file sink's
lines for the same events, one row key's events arrive in order through
503s and timeouts, a retried batch keeps its webhook-id, Retry-After is
honoured, a 400 goes to the dead-letter file (or stops the stream), a
malformed secret is refused, TLS verification is on by default, and kill
-9 loses nothing."""

import json
import os
import random
import signal
import time

import pytest

import message_sinks as ms
from faults_support import count
from pgharness import lsn_to_int, read_jsonl, wait_until
from webhook_server import WebhookServer, accepted_events, events_of


@pytest.fixture
def receiver():
    server = WebhookServer().require_installed().start()
    yield server
    server.stop()


def options(server, **extra):
    o = {"url": server.url, "secret": server.secret,
         "retry_base": "10ms", "retry_max": "200ms"}
    o.update(extra)
    return o


def positions(events):
    """The changes' positions (schema events have no seq)."""
    return [(lsn_to_int(e["commit_lsn"]), e["seq"]) for e in events
            if e["op"] != "schema"]


def canonical(events):
    return sorted(json.dumps(e, sort_keys=True) for e in events)


def check_signed(server):
    reqs = server.requests()
    assert reqs and all(r["verified"] for r in reqs), \
        [r for r in reqs if not r["verified"]][:1]
    return reqs


def check_key_order(events, per_table=False):
    """Each row's events (table and key), or each table's, in stream
    order."""
    last = {}
    for e in events:
        if e["op"] not in ("insert", "update", "delete", "read"):
            continue
        row = (e["schema"], e["table"]) if per_table else \
            (e["schema"], e["table"], json.dumps(e["key"], sort_keys=True))
        pos = (lsn_to_int(e["commit_lsn"]), e["seq"])
        assert pos > last.get(row, (0, 0)), (row, pos, last[row])
        last[row] = pos


def check_batches_kept(reqs):
    """A webhook-id sent more than once carried the same body each time."""
    bodies = {}
    for r in reqs:
        assert bodies.setdefault(r["id"], r["body"]) == r["body"], r["id"]


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_round_trip_equals_file_sink(db, pgspout, tmp_path, receiver, fmt):
    ms.tables(db)
    db.create_slot(db.name)
    ms.workload(db)
    db.psql("update a set id = 10 where id = 1; delete from a where id = 2;"
            "truncate b;"
            "alter table a add column w int; insert into a values (5, 'n', 7);")
    lines = ms.run_both(db, pgspout, tmp_path, "webhook",
                        options(receiver, format=fmt, batch_records=3))
    reqs = check_signed(receiver)
    got = accepted_events(reqs)
    assert canonical(got) == canonical(json.loads(line) for line in lines)
    assert {e["op"] for e in got} >= {"insert", "update", "delete", "truncate",
                                      "schema", "message", "begin", "commit"}
    check_key_order(got)
    assert all(len(events_of(r)) <= 3 for r in reqs)
    want_type = "application/x-ndjson" if fmt == "ndjson" \
        else "application/json"
    assert all(r["content_type"] == want_type for r in reqs)
    if fmt == "ndjson":  # the file sink's lines byte for byte
        sent = [line for r in reqs for line in r["body"].splitlines()]
        assert sorted(sent) == sorted(lines)
    else:
        assert all(r["body"].startswith("[{") for r in reqs)
    assert all(r["id"].startswith("msg_") for r in reqs)
    assert len({r["id"] for r in reqs}) == len(reqs)


def test_schema_event_opening_a_batch_is_sent(db, pgspout, tmp_path,
                                              receiver):
    """pgspout hands a batch over when the next change's events do not fit
    (1024 events): here 1023 (a's schema event and 1022 inserts), then b's
    schema event opens the next batch, at the position of a's last insert.
    That is not a resend of an event taken before, and must be sent."""
    db.psql("create table a (id int primary key); "
            "create table b (id int primary key);")
    db.create_slot(db.name)
    db.psql("begin; insert into a select generate_series(1, 1022); "
            "insert into b values (1); commit;")
    lines = ms.run_both(db, pgspout, tmp_path, "webhook", options(receiver),
                        on=False)
    got = accepted_events(check_signed(receiver))
    assert canonical(got) == canonical(json.loads(line) for line in lines)
    assert [e["table"] for e in got if e["op"] == "schema"] == ["a", "b"]
    assert len(got) == 1025


def write_rows(db, n_keys=6, rounds=12):
    db.psql("create table t (id int primary key, v int);")
    db.create_slot(db.name)
    db.psql("insert into t select g, 0 from generate_series(1, %d) g;"
            % n_keys)
    for r in range(1, rounds + 1):
        db.psql("begin; update t set v = %d where id %% 2 = %d; "
                "update t set v = v + 1 where id = %d; commit;"
                % (r, r % 2, 1 + r % n_keys))
    db.psql("delete from t where id = 2; insert into t values (2, 99);")


@pytest.mark.parametrize("order", ["key", "table"])
def test_order_through_503s_and_timeouts(db, pgspout, tmp_path, receiver,
                                         order):
    write_rows(db)
    receiver.control(fail_every=[3, 503], sleep_every=[5, 2.5])
    lines = ms.run_both(db, pgspout, tmp_path, "webhook",
                        options(receiver, batch_records=4, in_flight=4,
                                linger="1ms", request_timeout="1s",
                                order=order),
                        on=False)
    reqs = check_signed(receiver)
    statuses = [r["status"] for r in reqs]
    assert 503 in statuses
    ids = [r["id"] for r in reqs]
    # a timed-out batch (taken, answer lost) went again with its id
    assert len(set(ids)) < len(ids)
    check_batches_kept(reqs)
    got = accepted_events(reqs)
    # deduplicated on webhook-id: exactly the stream, nothing twice
    assert canonical(got) == canonical(json.loads(line) for line in lines)
    check_key_order(got, per_table=order == "table")


@pytest.mark.parametrize("form", ["seconds", "date"])
def test_retry_after_is_honoured(db, pgspout, tmp_path, receiver, form):
    write_rows(db, n_keys=2, rounds=1)
    answer = {"status": 503, "retry_after": "2"} if form == "seconds" \
        else {"status": 429, "retry_after_date_in": 3}
    receiver.control(script=[answer])
    ms.run_both(db, pgspout, tmp_path, "webhook",
                options(receiver, batch_records=1000, retry_max="100ms"),
                on=False)
    reqs = check_signed(receiver)
    assert reqs[0]["status"] in (503, 429) and reqs[1]["id"] == reqs[0]["id"]
    # the backoff alone would have waited at most retry_max (100 ms)
    assert reqs[1]["time"] - reqs[0]["time"] >= 1.5


def test_rejected_batch_goes_to_dead_letter(db, pgspout, tmp_path, receiver):
    write_rows(db, n_keys=3, rounds=2)
    receiver.control(script=[{"status": 400}])
    dead = tmp_path / "dead.jsonl"
    lines = ms.run_both(db, pgspout, tmp_path, "webhook",
                        options(receiver, batch_records=2, in_flight=1,
                                dead_letter=str(dead)), on=False)
    reqs = check_signed(receiver)
    assert reqs[0]["status"] == 400
    letters = read_jsonl(dead)
    assert [d["record"] for d in letters] == events_of(reqs[0])
    assert all("HTTP 400" in d["reason"] and d["sink"] == "webhook"
               for d in letters)
    got = accepted_events(reqs) + [d["record"] for d in letters]
    assert canonical(got) == canonical(json.loads(line) for line in lines)


def test_rejected_batch_stops_without_dead_letter(db, pgspout, tmp_path,
                                                  receiver):
    write_rows(db, n_keys=3, rounds=2)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    receiver.control(script=[{"status": 400}])
    conf = tmp_path / "pgspout.conf"
    conf.write_text(ms.config(db, db.name, str(tmp_path / "f.jsonl"),
                              "webhook", options(receiver), on=False))
    r = pgspout.run("-c", str(conf), "--endpos", ms.wal_end(db))
    assert r.returncode != 0
    assert "HTTP 400" in r.stderr
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before


@pytest.mark.parametrize("secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                    "whsec_not*base64!", "whsec_"])
def test_malformed_secret_is_refused(db, pgspout, receiver, secret):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink", "webhook",
                    "-o", "url=%s" % receiver.url, "-o", "secret=%s" % secret,
                    "--endpos", db.current_lsn())
    # a configuration error (check_options, ABI 1.7): exit 2, naming the
    # key, before any request
    assert r.returncode == 2, r.stderr[-2000:]
    assert "command line: -o secret: " in r.stderr, r.stderr
    assert secret[6:] not in r.stderr or secret == "whsec_"
    assert receiver.requests() == []


def test_auth_and_headers_never_logged(db, pgspout, tmp_path, receiver):
    write_rows(db, n_keys=2, rounds=1)
    receiver.control(script=[{"status": 503}])  # a logged retry, too
    secrets = {"bearer_token": "tok-SECRET-1",
               "headers": "X-Tenant: acme-SECRET-2"}
    conf = tmp_path / "pgspout.conf"
    conf.write_text(ms.config(db, db.name, str(tmp_path / "f.jsonl"),
                              "webhook", options(receiver, **secrets),
                              on=False))
    r = pgspout.run("-c", str(conf), "--endpos", ms.wal_end(db))
    assert r.returncode == 0, r.stderr[-4000:]
    reqs = check_signed(receiver)
    assert all(r["authorization"] == "Bearer tok-SECRET-1" and
               r["x_tenant"] == "acme-SECRET-2" for r in reqs)
    assert "will be sent again" in r.stderr
    for value in ("SECRET-1", "SECRET-2", receiver.secret[6:]):
        assert value not in r.stderr


def test_tls_verified_by_default(db, pgspout, tmp_path):
    server = WebhookServer(tls=True).require_installed().start()
    try:
        write_rows(db, n_keys=2, rounds=1)
        before = db.slot_info(db.name)["confirmed_flush_lsn"]
        endpos = ms.wal_end(db)
        args = ["-d", db.conninfo, "--slot", db.name, "--sink", "webhook",
                "-o", "url=%s" % server.url, "-o", "secret=%s" % server.secret,
                "-o", "retry_max=200ms", "--endpos", endpos]
        proc = pgspout.spawn(*args)
        wait_until(lambda: "certificate" in pgspout.stderr_of(proc),
                   what="a certificate error")
        assert server.requests() == []
        # the first signal still flushes (retrying); the second gives up
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        pgspout.stop(proc)
        assert db.slot_info(db.name)["confirmed_flush_lsn"] == before
        r = pgspout.run(*(args + ["-o", "ca_file=%s" % server.cert_path]))
        assert r.returncode == 0, r.stderr[-4000:]
        got = accepted_events(check_signed(server))
        assert {e["op"] for e in got} >= {"insert", "update", "delete"}
        assert lsn_to_int(db.slot_info(db.name)["confirmed_flush_lsn"]) >= \
            lsn_to_int(endpos)
    finally:
        server.stop()


def test_kill9_loses_nothing(db, pgspout, tmp_path, receiver):
    db.psql("create table t (id int primary key, v int);")
    db.create_slot(db.name)
    db.psql("select pg_create_logical_replication_slot('%s_ref', "
            "'pgoutput');" % db.name)
    conf = tmp_path / "pgspout.conf"
    conf.write_text(
        "connection = %s;\nslot = %s;\nsinks = ({ name = \"w\"; type = "
        "\"webhook\"; options = { %s }; });\n"
        % (json.dumps(db.conninfo), json.dumps(db.name),
           " ".join("%s = %s;" % (k, json.dumps(v)) for k, v in
                    options(receiver, batch_records=5).items())))
    receiver.control(fail_every=[4, 503])
    rng = random.Random(17)
    next_id = 0
    for _ in range(count(3, 25)):
        proc = pgspout.spawn("-c", str(conf))
        for _ in range(5):
            db.psql("insert into t select g, 0 from generate_series(%d, %d) g;"
                    "update t set v = v + 1 where id %% 7 = %d;"
                    % (next_id + 1, next_id + 20, rng.randrange(7)))
            next_id += 20
            time.sleep(rng.uniform(0, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    endpos = db.current_lsn()
    r = pgspout.run("-c", str(conf), "--endpos", endpos, timeout=180)
    assert r.returncode == 0, r.stderr[-4000:]
    ref = tmp_path / "ref.jsonl"
    r = pgspout.run("-d", db.conninfo, "--slot", db.name + "_ref", "--sink",
                    "file", "-o", "path=%s" % ref, "--endpos", endpos)
    assert r.returncode == 0, r.stderr[-4000:]
    got = accepted_events(check_signed(receiver))
    missing = set(positions(read_jsonl(ref))) - set(positions(got))
    assert not missing, sorted(missing)[:5]
