"""A single-node Apache Kafka (KRaft mode) for the Kafka sink's tests,
installed by scripts/install-kafka.sh (jars from Maven Central), and a
reader of topics through kcat (Debian's package).

The broker runs as the unprivileged test user (when the tests run as
root), listens on 127.0.0.1 only: a PLAINTEXT listener, a TLS listener
with a self-signed certificate made here (for the TLS tests; the
certificate is `cert_path`) and its controller listener, each on a free
port, with its storage formatted in its work directory under
PGSPOUT_TEST_TMPDIR. It is stopped with SIGTERM, and dies with the
harness (PR_SET_PDEATHSIG) when that is killed outright. kill() and
start() again restart it on the same ports with the same data, as after
a crash.

Environment: PGSPOUT_KAFKA_HOME (default /var/cache/pgspout-test/kafka).
"""

import ctypes
import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile

from pgharness import TEST_USER, free_port
from service import ServiceProcess

KAFKA_HOME = os.environ.get("PGSPOUT_KAFKA_HOME",
                            "/var/cache/pgspout-test/kafka")


def installed():
    return os.path.isdir(os.path.join(KAFKA_HOME, "lib")) and \
        os.path.exists(os.path.join(KAFKA_HOME, "log4j2.properties")) and \
        shutil.which("kcat") is not None


def _unprivileged():
    """(uid, gid) to run the broker as, or None when not root."""
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam(TEST_USER)
    return pw.pw_uid, pw.pw_gid


def _become(ids):
    """A preexec_fn: drop to ids (if any), then die with the parent (the
    death signal must come after setuid, which clears it)."""
    def preexec():
        if ids:
            os.setgroups([])
            os.setgid(ids[1])
            os.setuid(ids[0])
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    return preexec


class KafkaBroker(ServiceProcess):
    name = "kafka"
    home = KAFKA_HOME
    install_script = "install-kafka.sh"
    start_timeout_s = 120
    stop_timeout_s = 30
    poll_interval_s = 0.3
    exits_on_eof = False

    installed = staticmethod(installed)

    def __init__(self, properties=None):
        """properties: extra server.properties lines {name: value}."""
        base = os.environ.get("PGSPOUT_TEST_TMPDIR") or None
        workdir = tempfile.mkdtemp(prefix="kafka-", dir=base)
        super().__init__(workdir)
        self._own_workdir = True
        self.ids = _unprivileged()
        if self.ids:
            os.chown(workdir, *self.ids)
        os.chmod(workdir, 0o755)
        self.extra = dict(properties or {})
        self.controller_port = None
        self.tls_port = None
        self.cert_path = os.path.join(workdir, "cert.pem")

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    @property
    def tls_bootstrap(self):
        return "127.0.0.1:%d" % self.tls_port

    def choose_port(self):
        # Keeps its ports across a restart: clients come back to them.
        if self.port is None:
            self.port, self.controller_port, self.tls_port = \
                free_port(), free_port(), free_port()
        return self.port

    def _java(self):
        return [shutil.which("java") or "java", "-Xms256m", "-Xmx512m",
                "-XX:+UseSerialGC", "-Djava.awt.headless=true",
                "-Dlog4j2.configurationFile=%s/log4j2.properties"
                % KAFKA_HOME, "-cp", "%s/lib/*" % KAFKA_HOME]

    def _run_as_broker(self, argv):
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL,
                       capture_output=True, cwd=self.workdir,
                       preexec_fn=_become(self.ids))

    def _make_certificate(self):
        """A self-signed certificate for 127.0.0.1, and a PEM keystore
        (key and certificate) the broker reads."""
        key = os.path.join(self.workdir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", key, "-out", self.cert_path,
                        "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        keystore = os.path.join(self.workdir, "keystore.pem")
        with open(keystore, "w") as out:
            for part in (key, self.cert_path):
                with open(part) as f:
                    out.write(f.read())
        os.chmod(key, 0o644)
        os.chmod(keystore, 0o644)
        return keystore

    def _write_properties(self, keystore):
        data = os.path.join(self.workdir, "data")
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": "1@127.0.0.1:%d"
                                        % self.controller_port,
            "listeners": "PLAINTEXT://127.0.0.1:%d,SSL://127.0.0.1:%d,"
                         "CONTROLLER://127.0.0.1:%d"
                         % (self.port, self.tls_port, self.controller_port),
            "advertised.listeners": "PLAINTEXT://127.0.0.1:%d,"
                                    "SSL://127.0.0.1:%d"
                                    % (self.port, self.tls_port),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map":
                "PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": keystore,
            "log.dirs": data,
            "num.partitions": "3",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.enable": "false",
        }
        props.update(self.extra)
        path = os.path.join(self.workdir, "server.properties")
        with open(path, "w") as f:
            for k, v in props.items():
                f.write("%s=%s\n" % (k, v))
        return path, data

    def start(self):
        self.choose_port()
        self.properties_path = os.path.join(self.workdir, "server.properties")
        if not os.path.exists(self.properties_path):
            path, data = self._write_properties(self._make_certificate())
            self._run_as_broker(self._java() + [
                "kafka.tools.StorageTool", "format", "-t",
                "pgspout-test-cluster-0", "-c", path])
        return super().start()

    def command(self):
        return self._java() + ["kafka.Kafka", self.properties_path]

    def popen_options(self):
        return {"cwd": self.workdir, "preexec_fn": _become(self.ids)}

    def ready(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=2):
            pass
        meta = self.metadata()
        return bool(meta.get("brokers"))

    def kill(self):
        """SIGKILL, as a crash; start() brings it back with its data."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

    def stop_keeping_data(self):
        """A clean shutdown (SIGTERM); start() brings it back."""
        self._end_process()

    # ---- reading topics with kcat ----

    def kcat(self, *args, timeout=120):
        r = subprocess.run(["kcat", "-b", self.bootstrap] + list(args),
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError("kcat %s failed (%d): %s"
                               % (" ".join(args), r.returncode, r.stderr))
        return r.stdout

    def metadata(self):
        return json.loads(self.kcat("-L", "-J", "-m", "5", timeout=30))

    def topics(self):
        return sorted(t["topic"] for t in self.metadata()["topics"]
                      if not t["topic"].startswith("__"))

    def records(self, topic):
        """Every record of a topic, each {"partition", "offset", "key",
        "payload", "headers": {name: value}}, in offset order per
        partition (partitions one after the other)."""
        out = self.kcat("-C", "-t", topic, "-o", "beginning", "-e", "-J",
                        "-q")
        records = []
        for line in out.splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            pairs = r.get("headers") or []
            r["headers"] = dict(zip(pairs[0::2], pairs[1::2]))
            records.append(r)
        records.sort(key=lambda r: (r["partition"], r["offset"]))
        return records

    # ---- the broker's own files ----

    CODECS = ("none", "gzip", "snappy", "lz4", "zstd")

    def batch_codecs(self, topic):
        """The compression codec of every record batch the broker stored
        for a topic, read from its log segments (Kafka's record batch v2:
        baseOffset int64, batchLength int32, then partitionLeaderEpoch,
        magic and crc, and the attributes int16 whose low 3 bits name the
        codec), so a test sees what reached the disk, not what a consumer
        decompressed."""
        data = os.path.join(self.workdir, "data")
        codecs = set()
        for entry in os.listdir(data):
            if entry.rpartition("-")[0] != topic:
                continue
            part = os.path.join(data, entry)
            for name in os.listdir(part):
                if name.endswith(".log"):
                    with open(os.path.join(part, name), "rb") as f:
                        codecs |= self._segment_codecs(f.read())
        return codecs

    def _segment_codecs(self, raw):
        codecs, at = set(), 0
        while at + 23 <= len(raw):
            length = struct.unpack_from(">i", raw, at + 8)[0]
            attributes = struct.unpack_from(">h", raw, at + 21)[0]
            codecs.add(self.CODECS[attributes & 7])
            at += 12 + length
        return codecs
