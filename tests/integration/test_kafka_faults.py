"""The Kafka sink when the broker goes away, with pgbench updating keyed
rows throughout (each update adds 1 to its row's v, so a row's records
must carry v = 0, 1, 2, ... in partition order):

- the broker killed (-9) and restarted mid-stream, several times: nothing
  lost, each row's records in order, and while the broker is dead
  confirmed_flush_lsn never passes the WAL position of the kill (nothing
  committed after it can have been acknowledged);
- the broker down (CI 15 s, PGSPOUT_FAULTS_FULL=1: 60 s) with a small
  producer queue (the stream waits in the sink's write and flush): the LSN
  is held, pgspout keeps its walsender although wal_sender_timeout is 2 s
  (only the status thread's updates, every second, keep it), and SIGTERM
  still ends it promptly with exit 1; a restart once the broker is back
  delivers everything;
- a new topic's first batch answered "Not leader for partition" (by a
  proxy, kafka_proxy.py) while the next one is stored: with one request in
  flight (the default) every row arrives in order; with several, librdkafka
  reports the first record delivered without an offset though it is not in
  the topic, and pgspout stops without confirming it; the next run
  delivers it.

Counts: CI kills the broker twice, PGSPOUT_FAULTS_FULL=1 ten times.
"""

import json
import random
import signal
import time

import pytest

import faults_support as fs
import kafka_proxy
import kafka_server
from pgharness import free_port, lsn_to_int, wait_until

ROWS = 200
TOPIC_TEMPLATE = "faults.{schema}.{table}"

PGBENCH_SCRIPT = r"""
\set id random(1, %d)
update acct set v = v + 1 where id = :id;
""" % ROWS


@pytest.fixture
def broker():
    b = kafka_server.KafkaBroker().require_installed()
    b.start()
    yield b
    b.stop()


def setup(db, tmp_path):
    db.psql("create table acct (id int primary key, v int not null);")
    db.create_slot(db.name)
    db.psql("insert into acct select g, 0 from generate_series(1, %d) g;"
            % ROWS)
    work = fs.Pgbench(db, str(tmp_path), clients=4, rate=150)
    with open(work.script, "w") as f:
        f.write(PGBENCH_SCRIPT)
    return work


def spawn(pgspout, db, broker, *extra, conninfo=None):
    return pgspout.spawn("-d", conninfo or db.conninfo, "--slot", db.name,
                         "--sink", "kafka", "-o", "brokers=" + broker.bootstrap,
                         "-o", "topic=" + TOPIC_TEMPLATE, *extra)


def wait_progress(db, proc, pgspout, timeout=120):
    start = fs.slot_state(db, db.name)[1]
    wait_until(lambda: fs.slot_state(db, db.name)[1] != start or
               proc.poll() is not None, timeout=timeout,
               what="confirmed_flush_lsn to move")
    assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]


def hold_down(db, proc, pgspout, gone_at, seconds, pid):
    """Samples the slot while the broker is away: the LSN stays at or
    below the WAL position of its going, and the walsender stays."""
    deadline = time.monotonic() + seconds
    samples = 0
    while time.monotonic() < deadline:
        active, confirmed = fs.slot_state(db, db.name)
        assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
        assert confirmed <= gone_at, \
            "confirmed %X past %X while the broker was down" % (confirmed,
                                                                 gone_at)
        assert active == pid, "walsender changed: %s -> %s:\n%s" % (
            pid, active, pgspout.stderr_of(proc)[-3000:])
        samples += 1
        time.sleep(0.2)
    return samples


def check_rows(db, broker):
    """Each row's records against the table: v = 0, 1, ... up to the row's
    final v, in partition order, repeats allowed only as whole replays of
    a run already seen (at-least-once). Returns (records, duplicated)."""
    per_key = {}
    records = broker.records("faults.public.acct")
    partition_of = {}
    for r in records:
        assert partition_of.setdefault(r["key"], r["partition"]) == \
            r["partition"], "key %s in two partitions" % r["key"]
        event = json.loads(r["payload"])
        per_key.setdefault(r["key"], []).append(event["after"]["v"])
    final = {int(i): int(v) for i, v in db.query("select id, v from acct")}
    duplicated = 0
    for id_, v in final.items():
        seen = per_key.get('{"id":%d}' % id_, [])
        firsts = []
        for x in seen:
            if x in firsts:
                duplicated += 1
                # A repeat replays an earlier run: it is never ahead of
                # what arrived first.
                assert x <= firsts[-1]
                continue
            firsts.append(x)
        assert firsts == list(range(0, v + 1)), \
            "row %d: records carry v %s, the table has %d" % (id_, seen[:50],
                                                              v)
    assert len(per_key) == ROWS
    return len(records), duplicated


@pytest.mark.slow
def test_broker_killed_and_restarted(db, pgspout, broker, tmp_path):
    kills = fs.count(2, 10)
    work = setup(db, tmp_path)
    proc = spawn(pgspout, db, broker)
    work.start()
    samples = 0
    try:
        wait_progress(db, proc, pgspout)
        pid = fs.slot_state(db, db.name)[0]
        for _ in range(kills):
            time.sleep(random.uniform(0.5, 3))
            gone_at = lsn_to_int(db.current_lsn())
            broker.kill()
            samples += hold_down(db, proc, pgspout, gone_at,
                                 random.uniform(1, 4), pid)
            broker.start()
            wait_progress(db, proc, pgspout)
    finally:
        work.stop()
    endpos = db.current_lsn()
    fs.wait_confirmed(db, db.name, endpos, proc, pgspout, timeout=300)
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-4000:]
    records, duplicated = check_rows(db, broker)
    fs.report_figures("kafka_broker_killed", kills=kills, records=records,
                      duplicated=duplicated, lost=0, samples=samples)


@pytest.mark.slow
def test_broker_down_then_sigterm(db, pgspout, broker, tmp_path):
    outage = fs.count(15, 60)
    work = setup(db, tmp_path)
    # A small producer queue: during the outage the stream fills it and
    # then waits inside the sink's write, not only in its flush.
    small_queue = ("-o", "kafka.queue.buffering.max.messages=500")
    # wal_sender_timeout 2 s: only the status thread's updates (-s 1) keep
    # the walsender while the stream waits inside the sink.
    proc = spawn(pgspout, db, broker, "-s", "1", *small_queue,
                 conninfo=fs.short_timeout_conninfo(db))
    work.start()
    try:
        wait_progress(db, proc, pgspout)
        pid = fs.slot_state(db, db.name)[0]
        # A clean shutdown takes a moment, and the broker may acknowledge
        # what it has meanwhile: the outage starts once it has exited.
        broker.stop_keeping_data()
        gone_at = lsn_to_int(db.current_lsn())
        hold_down(db, proc, pgspout, gone_at, outage, pid)
        stderr = pgspout.stderr_of(proc)
        assert "brokers are down" in stderr or "Connection refused" in stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 1, pgspout.stderr_of(proc)[-4000:]
        assert "stop requested while it was failing" in \
            pgspout.stderr_of(proc)
        assert fs.slot_state(db, db.name)[1] <= gone_at
        broker.start()
    finally:
        work.stop()
    # Back up: a new run delivers everything that was held.
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink", "kafka",
                    "-o", "brokers=" + broker.bootstrap,
                    "-o", "topic=" + TOPIC_TEMPLATE,
                    "--endpos", db.current_lsn(), timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    records, duplicated = check_rows(db, broker)
    fs.report_figures("kafka_broker_down", outage_s=outage, records=records,
                      duplicated=duplicated, lost=0)



def proxied_broker(prefix):
    """A broker of its own behind kafka_proxy.RefuseFirstProduce (its
    advertised port is the proxy's); returns (broker, proxy, its port)."""
    b = kafka_server.KafkaBroker().require_installed()
    b.choose_port()
    proxy_port = free_port()
    proxy = kafka_proxy.RefuseFirstProduce(proxy_port, b.port, prefix)
    b.extra["advertised.listeners"] = ("PLAINTEXT://127.0.0.1:%d,"
                                       "SSL://127.0.0.1:%d"
                                       % (proxy_port, b.tls_port))
    b.start()
    return b, proxy, proxy_port


def five_rows(db):
    """Five rows, a transaction each; the LSN after the first and the end."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into t values (1);")
    after_first = db.current_lsn()
    for i in range(2, 6):
        db.psql("insert into t values (%d);" % i)
    return after_first, db.current_lsn()


@pytest.mark.parametrize("in_flight", [1, 5])
def test_first_batch_of_new_topic_refused(db, pgspout, in_flight):
    """A new topic's first batch answered "Not leader for partition" (by
    the proxy) while the next one, if already sent, is stored. With the
    sink's default of one request in flight the refused batch is retried
    before anything else: every row arrives, in order. With several (a user
    may raise it) librdkafka reports the first record delivered without an
    offset though it is not in the topic: pgspout must stop without
    confirming it, and the next run delivers it."""
    prefix = "implicit%d" % random.randrange(1 << 30)
    b, proxy, proxy_port = proxied_broker(prefix)
    try:
        after_first, endpos = five_rows(db)
        # One partition for all (key = table), one record per batch.
        args = ["-d", db.conninfo, "--slot", db.name, "--sink", "kafka",
                "-o", "brokers=127.0.0.1:%d" % proxy_port,
                "-o", "topic=%s.{table}" % prefix, "-o", "key=table",
                "-o", "kafka.batch.num.messages=1", "--endpos", endpos]
        if in_flight != 1:
            args += ["-o", "kafka.max.in.flight.requests.per.connection=%d"
                     % in_flight]
        r = pgspout.run(*args)
        assert proxy.refused.is_set(), r.stderr[-4000:]
        if in_flight != 1:
            assert r.returncode == 1, r.stderr[-4000:]
            assert "Kafka did not confirm the record of the event at" in \
                r.stderr
            confirmed = db.slot_info(db.name)["confirmed_flush_lsn"]
            assert lsn_to_int(confirmed) < lsn_to_int(after_first)
            # The next run sends the first row again, the rest after it.
            r = pgspout.run(*args)
        assert r.returncode == 0, r.stderr[-4000:]
        ids = [json.loads(rec["payload"])["after"]["id"]
               for rec in b.records(prefix + ".t")]
        if in_flight == 1:
            assert ids == [1, 2, 3, 4, 5]
        assert ids[-5:] == [1, 2, 3, 4, 5], ids
    finally:
        proxy.close()
        b.stop()
