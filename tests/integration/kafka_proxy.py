"""A TCP proxy in front of a Kafka broker that answers the first
ProduceRequest (v7, what librdkafka 2.0.2 sends to Kafka 4) for a topic
with "Not leader for partition" without passing it on, once the client
has sent the next one: the broker then sees the second batch first, as
when a partition just created is not yet led when the first batch
arrives. The broker advertises the proxy's port, so every connection,
the ones made after a metadata request included, goes through it.

Frames are Kafka's: a 4-byte size, then the request header (api_key,
api_version, correlation_id, client_id) and body. Responses on a
connection come back in request order, so the answer to the held request
is written only once every earlier request was answered, and the
requests that follow it wait until then.
"""

import socket
import struct
import threading

PRODUCE = 0
NOT_LEADER_OR_FOLLOWER = 6
HOLD_AT_MOST_S = 10


def _read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _read_frame(sock):
    size = struct.unpack(">i", _read_exact(sock, 4))[0]
    return _read_exact(sock, size)


def _string(buf, at):
    n = struct.unpack_from(">h", buf, at)[0]
    at += 2
    return (None if n < 0 else buf[at:at + n].decode()), at + max(n, 0)


def produce_target(frame):
    """(correlation_id, topic, partition) of a v7 ProduceRequest with one
    topic and one partition, else None."""
    api_key, version, corr = struct.unpack_from(">hhi", frame, 0)
    if api_key != PRODUCE or version != 7:
        return None
    _, at = _string(frame, 8)          # client_id
    _, at = _string(frame, at)         # transactional_id
    at += 2 + 4                        # acks, timeout
    if struct.unpack_from(">i", frame, at)[0] != 1:
        return None
    topic, at = _string(frame, at + 4)
    if struct.unpack_from(">i", frame, at)[0] != 1:
        return None
    return corr, topic, struct.unpack_from(">i", frame, at + 4)[0]


def not_leader_response(corr, topic, partition):
    name = topic.encode()
    body = struct.pack(">ii", corr, 1) + struct.pack(">h", len(name)) + name
    body += struct.pack(">iihqqq", 1, partition, NOT_LEADER_OR_FOLLOWER,
                        -1, -1, -1)
    body += struct.pack(">i", 0)       # throttle_time_ms
    return struct.pack(">i", len(body)) + body


class _Connection:
    def __init__(self, proxy, client, upstream):
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.lock = threading.Condition()
        self.unanswered = 0

    def run(self):
        threading.Thread(target=self._responses, daemon=True).start()
        try:
            self._requests()
        except (EOFError, OSError):
            pass
        self._close()

    def _close(self):
        for s in (self.client, self.upstream):
            try:
                s.close()
            except OSError:
                pass

    def _forward(self, frame):
        with self.lock:
            self.unanswered += 1
        self.upstream.sendall(struct.pack(">i", len(frame)) + frame)

    def _responses(self):
        try:
            while True:
                frame = _read_frame(self.upstream)
                with self.lock:
                    self.client.sendall(struct.pack(">i", len(frame)) + frame)
                    self.unanswered -= 1
                    self.lock.notify_all()
        except (EOFError, OSError):
            self._close()

    def _requests(self):
        while True:
            frame = _read_frame(self.client)
            target = produce_target(frame)
            if target and self.proxy.claim(target[1]):
                self._refuse_after_next(target)
            else:
                self._forward(frame)

    def _refuse_after_next(self, target):
        """Holds the request, gathers what follows it until the next
        ProduceRequest (at most HOLD_AT_MOST_S), answers the held one with
        the error once everything before it was answered, then passes the
        gathered requests on."""
        following = []
        self.client.settimeout(HOLD_AT_MOST_S)
        try:
            while True:
                frame = _read_frame(self.client)
                following.append(frame)
                if produce_target(frame):
                    break
        except socket.timeout:
            pass
        self.client.settimeout(None)
        with self.lock:
            self.lock.wait_for(lambda: self.unanswered == 0, HOLD_AT_MOST_S)
            self.client.sendall(not_leader_response(*target))
        self.proxy.refused.set()
        for frame in following:
            self._forward(frame)


class RefuseFirstProduce:
    """Listens on a free port, passes everything to broker_port, and
    refuses the first ProduceRequest for a topic starting with prefix
    (once). `refused` is set when it did."""

    def __init__(self, port, broker_port, prefix):
        self.broker_port, self.prefix = broker_port, prefix
        self.refused = threading.Event()
        self._claimed = False
        self._claim_lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self._accept, daemon=True).start()

    def claim(self, topic):
        with self._claim_lock:
            if self._claimed or not topic.startswith(self.prefix):
                return False
            self._claimed = True
            return True

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1",
                                                 self.broker_port))
            conn = _Connection(self, client, upstream)
            threading.Thread(target=conn.run, daemon=True).start()

    def close(self):
        self.listener.close()
