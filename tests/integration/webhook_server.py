"""A webhook receiver for the webhook sink's tests, run in a process of its
own on 127.0.0.1 (ServiceProcess): it verifies every request's signature
with the Standard Webhooks reference library (`standardwebhooks` from
PyPI, an implementation independent of the sink's), answers as its fault
plan says, and logs each request as one JSON line (receipt order) that the
tests read back.

Fault plan (POST /_control, JSON): "script", a list of answers for the
next requests, each {"status": N, "retry_after": "..."} (or
"retry_after_date_in": S, an HTTP-date S seconds after the answer) or
{"sleep": S}
(take the batch, answer 200 only after S seconds: a client that timed out
sees no answer); "fail_every": [N, status], every N-th request after the
script answers status; "sleep_every": [N, S], likewise sleeps. Requests
whose signature does not verify are answered 401 and logged with
"verified": false.

Run: webhook_server.py PORT SECRET LOG [CERT KEY]
"""

import email.utils
import http.server
import json
import os
import ssl
import sys
import threading
import time

from service import ServiceProcess, http_json


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    plan = {"script": [], "fail_every": None, "sleep_every": None}
    count = 0
    webhook = None
    log_file = None

    def log_message(self, *args):
        pass

    def _answer(self, status, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def _next_action(self):
        with Receiver.lock:
            Receiver.count += 1
            n = Receiver.count
            if Receiver.plan["script"]:
                return Receiver.plan["script"].pop(0)
            fail, sleep = Receiver.plan["fail_every"], \
                Receiver.plan["sleep_every"]
        if fail and n % fail[0] == 0:
            return {"status": fail[1]}
        if sleep and n % sleep[0] == 0:
            return {"sleep": sleep[1]}
        return {"status": 200}

    def _verified(self, body):
        try:
            Receiver.webhook.verify(body, dict(self.headers.items()),
                                    json_parse=False)
            return True
        except Exception as e:  # the library's WebhookVerificationError
            sys.stderr.write("signature refused: %r\n" % e)
            return False

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/_control":
            with Receiver.lock:
                Receiver.plan.update(json.loads(body))
            return self._answer(200)
        verified = self._verified(body)
        action = self._next_action() if verified else {"status": 401}
        status = action.get("status", 200)
        entry = {"time": time.monotonic(), "status": status,
                 "verified": verified, "path": self.path,
                 "id": self.headers.get("webhook-id"),
                 "timestamp": self.headers.get("webhook-timestamp"),
                 "content_type": self.headers.get("Content-Type"),
                 "authorization": self.headers.get("Authorization"),
                 "x_tenant": self.headers.get("X-Tenant"),
                 "body": body.decode("utf-8", "replace")}
        with Receiver.lock:
            Receiver.log_file.write(json.dumps(entry) + "\n")
            Receiver.log_file.flush()
        if "sleep" in action:
            time.sleep(action["sleep"])
        extra = []
        if "retry_after" in action:
            extra.append(("Retry-After", action["retry_after"]))
        if "retry_after_date_in" in action:  # an HTTP-date, S from now
            extra.append(("Retry-After", email.utils.formatdate(
                time.time() + action["retry_after_date_in"], usegmt=True)))
        try:
            self._answer(status, extra)
        except OSError:
            pass  # the client gave up waiting


def serve(port, secret, log_path, cert=None, key=None):
    from standardwebhooks.webhooks import Webhook
    Receiver.webhook = Webhook(secret)
    Receiver.log_file = open(log_path, "a")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    server.daemon_threads = True
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # ends when the harness closes our stdin


class WebhookServer(ServiceProcess):
    """The receiver process; tls=True serves https with a self-signed
    certificate for 127.0.0.1 (cert_path: the CA a client must be given)."""

    name = "webhook"
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    def __init__(self, tls=False, workdir=None):
        super().__init__(workdir)
        self.tls = tls
        self.cert_path = None

    @classmethod
    def installed(cls):
        try:
            import standardwebhooks  # noqa: F401
            return True
        except ImportError:
            return False

    @property
    def url(self):
        return "%s://127.0.0.1:%d/hook" % ("https" if self.tls else "http",
                                           self.port)

    def _make_certificate(self):
        import subprocess
        self.cert_path = os.path.join(self.workdir, "cert.pem")
        key = os.path.join(self.workdir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", key, "-out", self.cert_path,
                        "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        return [self.cert_path, key]

    def command(self):
        self.requests_path = os.path.join(self.workdir, "requests.jsonl")
        tls = self._make_certificate() if self.tls else []
        return [sys.executable, os.path.abspath(__file__), str(self.port),
                self.secret, self.requests_path] + tls

    def ready(self):
        if self.tls:
            return os.path.exists(self.requests_path) and \
                self.proc.poll() is None and self._tls_answers()
        http_json(self.url.rsplit("/", 1)[0] + "/_control", "POST", b"{}")
        return True

    def _tls_answers(self):
        import socket
        with socket.create_connection(("127.0.0.1", self.port), 2):
            return True

    def control(self, **plan):
        """Replaces parts of the fault plan (keys as in the module doc)."""
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.cert_path)
            import urllib.request
            req = urllib.request.Request(
                self.url.rsplit("/", 1)[0] + "/_control",
                data=json.dumps(plan).encode(), method="POST")
            urllib.request.urlopen(req, context=ctx, timeout=30).read()
            return
        http_json(self.url.rsplit("/", 1)[0] + "/_control", "POST",
                  json.dumps(plan).encode())

    def requests(self):
        """Every request received so far, in receipt order."""
        try:
            with open(self.requests_path) as f:
                return [json.loads(line) for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return []


def events_of(entry):
    """The events a request carried (JSON array or NDJSON)."""
    body = entry["body"]
    if entry["content_type"] == "application/x-ndjson":
        return [json.loads(line) for line in body.splitlines()]
    return json.loads(body)


def accepted_events(requests):
    """The events of the requests answered 2xx, each webhook-id once (as a
    receiver that deduplicates on it takes them), in receipt order."""
    seen, events = set(), []
    for entry in requests:
        if not 200 <= entry["status"] < 300 or entry["id"] in seen:
            continue
        seen.add(entry["id"])
        events.extend(events_of(entry))
    return events


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2], sys.argv[3], *sys.argv[4:6])
