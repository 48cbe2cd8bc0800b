"""Shared pieces of the runtime-fault suite (test_faults_*.py): an audited
workload whose committed changes the server itself records, a pgbench
driver that survives server restarts, the OpenSearch node and kinesalite
that can be stopped and started again on the same port, a TCP proxy to cut a
sink off, and the checks that compare what sinks hold with what committed.

Counts: CI runs reduced counts; PGSPOUT_FAULTS_FULL=1 runs the full ones.
Each fault test appends its figures (kills, restarts, outages, changes,
lost, duplicated) as one JSON line to PGSPOUT_FAULTS_REPORT (default
PGSPOUT_TEST_TMPDIR/faults-figures.jsonl), the source of README's
Reliability figures.
"""

import atexit
import decimal
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

import elastic_server
import kinesis_server
from pgharness import lsn_to_int, read_jsonl

FULL = os.environ.get("PGSPOUT_FAULTS_FULL") == "1"


def count(ci, full):
    return full if FULL else ci


def report_figures(test, **figures):
    base = os.environ.get("PGSPOUT_TEST_TMPDIR") or tempfile.gettempdir()
    path = os.environ.get("PGSPOUT_FAULTS_REPORT") or os.path.join(
        base, "faults-figures.jsonl")
    figures.update(test=test, full=FULL, time=int(time.time()))
    with open(path, "a") as f:
        f.write(json.dumps(figures) + "\n")
    print("figures", json.dumps(figures))


# ---- the audited workload ----

AUDIT_SQL = """
create table t (id bigserial primary key, v int not null default 0,
                note text);
alter table t replica identity full;
-- Not published: the server's own record of every committed change, in
-- change order (n) within each transaction (xid, as the stream numbers it).
create table audit (n bigserial primary key, xid bigint not null,
                    op text not null, id bigint not null, v int);
create function audit_t() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        insert into audit (xid, op, id, v)
        values (txid_current() & 4294967295, 'delete', old.id, old.v);
        return old;
    end if;
    insert into audit (xid, op, id, v)
    values (txid_current() & 4294967295, lower(tg_op), new.id, new.v);
    return new;
end $$;
create trigger audit_t after insert or update or delete on t
    for each row execute function audit_t();
"""

# Many small transactions: an insert, an update of the new row, and now and
# then an update or delete of an older row (one foreign row lock per
# transaction, so concurrent clients never deadlock).
PGBENCH_SCRIPT = r"""
\set r random(1, 100)
begin;
insert into t (v, note) values (0, 'w2 ' || :client_id) returning id \gset
update t set v = v + 1 where id = :id;
\set rid random(1, :id)
\if :r <= 10
delete from t where id = :rid;
\elif :r <= 40
update t set v = v + 1 where id = :rid;
\endif
end;
"""


def setup_audited(db, slot=None, publication="pgspout"):
    """Table t, its audit, a publication of t alone and the slot."""
    db.psql(AUDIT_SQL)
    db.psql("create publication %s for table t;" % publication)
    db.psql("select pg_create_logical_replication_slot('%s', 'pgoutput');"
            % (slot or db.name))


class Pgbench:
    """pgbench with a script (PGBENCH_SCRIPT unless given, with -D defines)
    in the background, started again whenever it ends (a server restart
    aborts its clients) until stop()."""

    def __init__(self, db, workdir, clients=4, rate=150, script=None,
                 defines=None):
        self.db, self.clients, self.rate = db, clients, rate
        self.defines = defines or {}
        self.script = os.path.join(workdir, "w2.pgbench")
        with open(self.script, "w") as f:
            f.write(script or PGBENCH_SCRIPT)
        self.log = os.path.join(workdir, "pgbench.log")
        self.proc = None
        self.runs = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _loop(self):
        server = self.db.server
        argv = ["pgbench", "-n", "-c", str(self.clients), "-j", "2",
                "-T", "100000", "-R", str(self.rate), "-f", self.script,
                "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres"]
        for name, value in sorted(self.defines.items()):
            argv += ["-D", "%s=%s" % (name, value)]
        argv.append(self.db.name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    break
                log = open(self.log, "ab")
                self.proc = subprocess.Popen(argv, stdout=log,
                                             stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL,
                                             env=env)
                log.close()
                self.runs += 1
            self.proc.wait()
            self._stop.wait(0.2)

    def stop(self):
        """Ends pgbench (its open transactions abort: the audit rolls back
        with them) and waits for it."""
        with self._lock:
            self._stop.set()
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
        self._thread.join(timeout=60)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def audit_by_xid(db):
    """{xid: [(op, id, v), ...]} in change order, from the audit table."""
    out = {}
    for xid, op, id_, v in db.query("select xid, op, id, v from audit "
                                    "order by n"):
        out.setdefault(int(xid), []).append((op, int(id_), int(v)))
    return out


def event_change(e):
    row = e["after"] if e["op"] != "delete" else e["before"]
    return (e["op"], int(row["id"]), int(row["v"]))


def data_only(events):
    return [e for e in events if e.get("op") != "schema"]


def check_exactly_once(db, events):
    """The file sink's events against the audit: every committed change
    exactly once, transactions in commit order, changes in order within
    each. Returns (changes, lost, duplicated)."""
    changes = data_only(events)
    positions = [(lsn_to_int(e["commit_lsn"]), e["seq"]) for e in changes]
    duplicated = len(positions) - len(set(positions))
    assert duplicated == 0, "%d events delivered twice" % duplicated
    assert positions == sorted(positions), "events out of order"
    got = {}
    for e in changes:
        got.setdefault(int(e["xid"]), []).append(event_change(e))
    want = audit_by_xid(db)
    lost = sum(len(v) for x, v in want.items() if got.get(x) != v)
    missing = [x for x in want if x not in got]
    wrong = [x for x in want if x in got and got[x] != want[x]]
    foreign = [x for x in got if x not in want]
    assert not missing and not wrong and not foreign, (
        "transactions missing: %d %s; different: %s; not committed: %s"
        % (len(missing), missing[:5],
           [(x, got[x], want[x]) for x in wrong[:3]], foreign[:5]))
    total = int(db.scalar("select count(*) from audit"))
    assert len(changes) == total, "%d events, %d audited changes" % (
        len(changes), total)
    replay_model_matches(db, changes)
    return len(changes), lost, duplicated


def replay_model_matches(db, changes):
    """Applying the changes in stream order gives the table: each row's
    changes arrived in order (REPLICA IDENTITY FULL: every before image
    must equal the state the earlier changes left)."""
    model = {}
    for e in changes:
        if e["op"] == "insert":
            assert e["after"]["id"] not in model, "insert twice: %s" % e
            model[e["after"]["id"]] = e["after"]["v"]
        else:
            old = e["before"]["id"]
            assert model.get(old) == e["before"]["v"], \
                "%s out of order: model %r, event %s" % (
                    e["op"], model.get(old), e)
            if e["op"] == "update":
                model[e["after"]["id"]] = e["after"]["v"]
            else:
                del model[old]
    rows = {int(i): int(v) for i, v in db.query("select id, v from t")}
    assert {int(k): int(v) for k, v in model.items()} == rows


def table_rows(db):
    """{document id: row}: t has REPLICA IDENTITY FULL, so its key is every
    column and the sink's _id is their compact JSON array."""
    rows = {}
    for i, v, note in db.query("select id, v, note from t"):
        row = {"id": int(i), "v": int(v), "note": note}
        key = json.dumps([row["id"], row["v"], note], separators=(",", ":"),
                         ensure_ascii=False)
        rows[key] = row
    return rows


def check_index_equals_table(node, db, index="public.t"):
    docs = node.documents(index)
    got = {i: {k: v for k, v in src.items() if k != "_pgspout_version"}
           for i, (_, src) in docs.items()}
    want = table_rows(db)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    differ = [i for i in want if i in got and got[i] != want[i]]
    assert not missing and not extra and not differ, (
        "index %s: %d docs, table %d rows; missing %s; extra %s; "
        "different %s" % (index, len(got), len(want), missing[:5], extra[:5],
                          [(i, got[i], want[i]) for i in differ[:3]]))
    return len(got)


def canonical(event):
    return json.dumps(event, sort_keys=True, default=str)


def kinesis_events(kin, stream):
    """{partition key: [event, ...]} in shard order."""
    per_key = {}
    for records in kin.records(stream).values():
        for _, pkey, data in records:
            for key, payload in kinesis_server.deaggregate(pkey, data):
                per_key.setdefault(key, []).append(
                    json.loads(payload, parse_float=decimal.Decimal))
    return per_key


def check_at_least_once(kin, stream, file_events):
    """Every change the file sink holds (checked exactly-once against the
    audit) is in the stream, nothing else is, and each row's changes are
    in order: the first arrival of each change follows the one before, and
    every replayed run is itself in order. Returns (records, duplicated).
    """
    want = {canonical(e) for e in data_only(file_events)}
    per_key = kinesis_events(kin, stream)
    seen = set()
    records = duplicated = 0
    for key, events in per_key.items():
        firsts = []
        for e in data_only(events):
            records += 1
            c = canonical(e)
            assert c in want, "event not committed: %s" % c[:300]
            if c in seen:
                duplicated += 1
                continue
            seen.add(c)
            firsts.append((lsn_to_int(e["commit_lsn"]), e["seq"]))
        assert firsts == sorted(firsts), \
            "changes of %s out of order: %s" % (key, firsts)
    lost = want - seen
    assert not lost, "%d changes never reached Kinesis, e.g. %s" % (
        len(lost), sorted(lost)[:2])
    return records, duplicated


# ---- servers that can be stopped and started on the same port ----

class RestartableNode(elastic_server.ElasticNode):
    """The OpenSearch node, stopped and started again with its data and on
    its port: sinks reconnect to the same URL."""

    def pause(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def start_same_port(self):
        port = self.port
        original = elastic_server.free_port
        elastic_server.free_port = lambda: port
        try:
            deadline = time.monotonic() + 60
            while True:  # the old listener may linger for a moment
                try:
                    return self.start()
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)
        finally:
            elastic_server.free_port = original


_singletons = {}


def opensearch_node():
    """One node for the whole fault suite, stopped at exit (and by the node
    itself when the harness dies: its stdin closes)."""
    node = _singletons.get("opensearch")
    if node is None or node.proc is None:
        if not elastic_server.installed():
            raise RuntimeError("OpenSearch is not installed at %s (run "
                               "scripts/install-elastic.sh)"
                               % elastic_server.ELASTIC_HOME)
        node = RestartableNode()
        node.start()
        _singletons["opensearch"] = node
        atexit.register(node.stop)
    return node


def kinesalite_server():
    server = _singletons.get("kinesalite")
    if server is None or server.proc is None:
        if not kinesis_server.installed():
            raise RuntimeError("kinesalite is not installed at %s (run "
                               "scripts/install-kinesis.sh)"
                               % kinesis_server.KINESIS_HOME)
        server = kinesis_server.Kinesalite().start()
        _singletons["kinesalite"] = server
        atexit.register(server.stop)
    return server


_stream_no = [0]


def new_kinesis_stream(kin, shards=4):
    _stream_no[0] += 1
    name = "pgspout-faults-%d-%d" % (os.getpid(), _stream_no[0])
    kin.create_stream(name, shards)
    return name


def aws_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="AKIDFAULTS",
               AWS_SECRET_ACCESS_KEY="faultsSECRETkey")
    return env


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; down() refuses new connections
    and cuts the open ones (a stopped server, as seen by a client), up()
    listens again on the same port."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = None
        self.listener = None
        self.conns = set()
        self.lock = threading.Lock()
        # hang(): new connections are accepted and never answered;
        # freeze(): open connections stop carrying data either way.
        self.hanging = False
        self.frozen = False
        self.up()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def up(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port or 0))
        s.listen(64)
        self.port = s.getsockname()[1]
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.hanging:
                with self.lock:
                    self.conns.add(client)  # held open, never read
                continue
            try:
                upstream = socket.create_connection(
                    ("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b),
                                 daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                # Frozen: what arrives is held, not passed on (a recv()
                # already waiting when freeze() came must not leak it).
                while self.frozen:
                    time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def down(self):
        # shutdown() first: a thread blocked in accept() keeps a merely
        # closed listening socket alive, and it would go on accepting.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self._cut_all()

    def hang(self):
        """Cuts the open connections; new ones are accepted and never
        answered (a server that accepts TCP and says nothing)."""
        self.hanging = True
        self._cut_all()

    def freeze(self):
        """Open connections stay open but carry nothing more either way
        (a hung server, or a network path silently dropping packets)."""
        self.frozen = True

    def _cut_all(self):
        with self.lock:
            conns, self.conns = self.conns, set()
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.frozen = False
        self.down()


# ---- pgspout helpers ----

def slot_state(db, slot):
    rows = db.query("select active_pid, confirmed_flush_lsn::text from "
                    "pg_replication_slots where slot_name = '%s'" % slot)
    if not rows:
        return None, None
    pid, lsn = rows[0]
    return (int(pid) if pid else None), lsn_to_int(lsn)


def wait_slot_free(db, slot, timeout=60):
    deadline = time.monotonic() + timeout
    while slot_state(db, slot)[0] is not None:
        if time.monotonic() > deadline:
            raise AssertionError("slot %s still active" % slot)
        time.sleep(0.05)


def wait_confirmed(db, slot, lsn, proc, pgspout, timeout=180):
    """Waits for confirmed_flush_lsn to reach lsn while proc keeps running.
    """
    target = lsn_to_int(lsn) if isinstance(lsn, str) else lsn
    deadline = time.monotonic() + timeout
    while True:
        _, confirmed = slot_state(db, slot)
        if confirmed is not None and confirmed >= target:
            return
        if proc.poll() is not None:
            raise AssertionError("pgspout exited %d before confirming %s:\n%s"
                                 % (proc.returncode, lsn,
                                    pgspout.stderr_of(proc)[-4000:]))
        if time.monotonic() > deadline:
            raise AssertionError("confirmed_flush_lsn stuck below %s:\n%s"
                                 % (lsn, pgspout.stderr_of(proc)[-4000:]))
        time.sleep(0.2)


# Short, so that an outage of a few seconds outlasts it many times: while
# the main loop waits inside a sink, only the status thread's updates (every
# status_interval, 1 s in these tests) keep the walsender from ending the
# connection.
WAL_SENDER_TIMEOUT_MS = 2000


def short_timeout_conninfo(db):
    """db's conninfo with wal_sender_timeout WAL_SENDER_TIMEOUT_MS."""
    return db.conninfo + " options='-c wal_sender_timeout=%d'" % \
        WAL_SENDER_TIMEOUT_MS


def write_config(path, db, slot, sinks, status_interval=1, extra="",
                 conninfo=None):
    """A libconfig file; sinks is a list of (name, type, {option: value})."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return json.dumps(str(v))
    groups = []
    for name, type_, options in sinks:
        opts = " ".join("%s = %s;" % (k, value(v)) for k, v in options.items())
        groups.append('{ name = "%s"; type = "%s"; options = { %s }; }'
                      % (name, type_, opts))
    with open(path, "w") as f:
        f.write('connection = %s;\nslot = "%s";\nstatus_interval = %d;\n%s\n'
                'sinks = (\n  %s\n);\n'
                % (json.dumps(conninfo or db.conninfo), slot, status_interval,
                   extra,
                   ",\n  ".join(groups)))
    return path


def complete_events(path):
    """The complete lines of a file being written, parsed."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    end = data.rfind(b"\n")
    if end < 0:
        return []
    return [json.loads(line) for line in data[:end].split(b"\n")]


__all__ = ["read_jsonl"]
