"""kinesalite (a Kinesis Data Streams implementation, from npm) for the
Kinesis sink's tests, installed by scripts/install-kinesis.sh, plus a reader
that walks every shard and a de-aggregator for KPL aggregated records.

The server keeps its streams in memory, listens on 127.0.0.1 only on a free
port, and exits when its standard input closes, so even a harness killed
outright does not leave it behind (process handling: service.py).

Environment: PGSPOUT_KINESIS_HOME (default /var/cache/pgspout-test/kinesis).
"""

import base64
import hashlib
import json
import os
import re
import shutil
import time

from service import ServiceProcess, http_json

KINESIS_HOME = os.environ.get("PGSPOUT_KINESIS_HOME",
                              "/var/cache/pgspout-test/kinesis")
KPL_MAGIC = b"\xf3\x89\x9a\xc2"


def installed():
    return os.path.exists(os.path.join(KINESIS_HOME, "serve.js")) and \
        os.path.exists(os.path.join(KINESIS_HOME, "node_modules",
                                    "kinesalite", "index.js"))


class Kinesalite(ServiceProcess):
    name = "kinesalite"
    home = KINESIS_HOME
    install_script = "install-kinesis.sh"
    start_timeout_s = 30
    poll_interval_s = 0.1

    installed = staticmethod(installed)

    def choose_port(self):
        return None  # serve.js binds a free port and prints "port N"

    def command(self):
        node = shutil.which("node") or "node"
        return [node, os.path.join(KINESIS_HOME, "serve.js"), "0"]

    def popen_options(self):
        return {"cwd": KINESIS_HOME}

    def ready(self):
        if self.port is None:
            m = re.search(r"^port (\d+)$", self.log_tail(), re.M)
            if not m:
                return False
            self.port = int(m.group(1))
        self.request("ListStreams", {})
        return True

    def request(self, target, body):
        """One Kinesis API call. kinesalite checks that a request is signed
        but not the signature, so a dummy one does."""
        now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "Kinesis_20131202." + target,
            "X-Amz-Date": now,
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDTEST/%s/"
                             "us-east-1/kinesis/aws4_request, SignedHeaders="
                             "content-type;host;x-amz-date;x-amz-target, "
                             "Signature=%s" % (now[:8], "0" * 64),
        }
        answer = http_json(self.url + "/", "POST", json.dumps(body).encode(),
                           headers, timeout=30)
        return {} if answer is None else answer

    def create_stream(self, name, shards=4):
        self.request("CreateStream", {"StreamName": name,
                                      "ShardCount": shards})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            desc = self.request("DescribeStream", {"StreamName": name})
            if desc["StreamDescription"]["StreamStatus"] == "ACTIVE":
                return
            time.sleep(0.05)
        raise RuntimeError("stream %s never became ACTIVE" % name)

    def shard_ids(self, name):
        desc = self.request("DescribeStream", {"StreamName": name})
        return [s["ShardId"] for s in desc["StreamDescription"]["Shards"]]

    def records(self, name):
        """{shard_id: [(sequence_number, partition_key, data bytes), ...]}
        in each shard's order, read with GetShardIterator(TRIM_HORIZON) and
        GetRecords."""
        result = {}
        for shard in self.shard_ids(name):
            it = self.request("GetShardIterator", {
                "StreamName": name, "ShardId": shard,
                "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
            got = []
            while it:
                r = self.request("GetRecords", {"ShardIterator": it,
                                                "Limit": 10000})
                for rec in r["Records"]:
                    got.append((int(rec["SequenceNumber"]),
                                rec["PartitionKey"],
                                base64.b64decode(rec["Data"])))
                if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
                    break
                it = r.get("NextShardIterator")
            result[shard] = got
        return result


# --- KPL de-aggregation: a tiny protocol-buffer reader ---

def _varint(buf, pos):
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _fields(buf):
    """(field number, wire type, value) of one message; value is an int
    for varints, bytes for length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value = bytes(buf[pos:pos + n])
            if len(value) != n:
                raise ValueError("truncated field %d" % field)
            pos += n
        else:
            raise ValueError("unexpected wire type %d" % wire)
        yield field, wire, value


def deaggregate(partition_key, data):
    """[(partition_key, data)] of one Kinesis record: itself when it is not
    a KPL aggregated record, else its user records (MD5 checked)."""
    if len(data) < 20 or not data.startswith(KPL_MAGIC):
        return [(partition_key, data)]
    pb, digest = data[4:-16], data[-16:]
    if hashlib.md5(pb).digest() != digest:
        raise AssertionError("aggregated record with a wrong MD5")
    keys, records = [], []
    for field, _, value in _fields(pb):
        if field == 1:
            keys.append(value.decode())
        elif field == 3:
            index, payload = None, None
            for f, _, v in _fields(value):
                if f == 1:
                    index = v
                elif f == 3:
                    payload = v
            assert index is not None and payload is not None
            records.append((index, payload))
    return [(keys[i], payload) for i, payload in records]
