"""AWS credential sources for the Kinesis sink's credential tests: moto's
STS in server mode (from PyPI, scripts/install-deps.sh), small local
servers that follow the documented protocols of EC2 instance metadata
(IMDSv2: a session token PUT first) and of the container credentials
endpoint (ECS/EKS), and a recording proxy in front of kinesalite and STS.

kinesalite does not check signatures, so the proxy does what AWS would:
it learns every set of credentials a source issued (AccessKeyId, session
token, expiration), reads each PutRecords request's Authorization header
(Credential=<access key id>/...) and X-Amz-Security-Token, and answers
UnrecognizedClientException for keys nobody issued or a token that does
not belong to the key, ExpiredTokenException for a set past its
expiration, exactly as Kinesis does; only requests it lets through reach
kinesalite. It can also answer ExpiredTokenException on demand."""

import datetime
import http.client
import http.server
import json
import re
import socketserver
import threading
import time
import urllib.parse

from service import ServiceProcess


def iso(t):
    return datetime.datetime.fromtimestamp(
        t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text):
    text = text.rstrip("Z").split(".")[0]
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class Moto(ServiceProcess):
    """moto in server mode (STS, unsigned requests accepted)."""
    name = "moto"
    home = None
    install_script = "install-deps.sh"
    exits_on_eof = False

    @classmethod
    def installed(cls):
        import importlib.util
        return importlib.util.find_spec("moto") is not None and \
            importlib.util.find_spec("flask") is not None

    def command(self):
        import sys
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                "-p", str(self.port)]

    def ready(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("GET", "/moto-api/")
        conn.getresponse().read()
        return True


class Issued:
    """Every credential set handed out, by access key id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sets = {}  # akid -> {"secret", "token", "expiration", "by"}

    def add(self, akid, secret, token, expiration, by):
        with self.lock:
            self.sets[akid] = dict(secret=secret, token=token,
                                   expiration=expiration, by=by)

    def get(self, akid):
        with self.lock:
            return self.sets.get(akid)

    def secrets(self):
        with self.lock:
            return [s["secret"] for s in self.sets.values()] + \
                [s["token"] for s in self.sets.values() if s["token"]]


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 whose handler calls
    self.handle(handler, method)."""

    def __init__(self):
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.handle(self, "GET")

            def do_PUT(self):
                owner.handle(self, "PUT")

            def do_POST(self):
                owner.handle(self, "POST")

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def body_of(h):
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    @staticmethod
    def answer(h, status, body, ctype="application/json", headers=()):
        data = body if isinstance(body, bytes) else body.encode()
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)


def forward(upstream_port, h, method, body):
    conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
    headers = {k: v for k, v in h.headers.items()
               if k.lower() not in ("host", "connection")}
    conn.request(method, h.path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, r.getheader("Content-Type") or "", data


class StsProxy(LocalServer):
    """In front of moto's STS: records each call (its action, the access
    key it was signed with) and learns the credentials STS issues. With
    failing set it answers 503 instead (STS down)."""

    def __init__(self, moto_port, issued):
        self.moto_port = moto_port
        self.issued = issued
        self.calls = []
        self.failing = False
        super().__init__()

    def handle(self, h, method):
        body = self.body_of(h)
        form = urllib.parse.parse_qs(body.decode())
        m = re.search(r"Credential=([^/]+)/", h.headers.get("Authorization")
                      or "")
        call = dict(action=form.get("Action", [""])[0],
                    signed_by=m.group(1) if m else None,
                    web_identity_token=form.get("WebIdentityToken", [None])[0],
                    duration=form.get("DurationSeconds", [None])[0])
        self.calls.append(call)
        if self.failing:
            self.answer(h, 503, "<ErrorResponse><Error><Code>ServiceUnavail"
                        "able</Code><Message>down for the test</Message>"
                        "</Error></ErrorResponse>", "text/xml")
            return
        status, ctype, data = forward(self.moto_port, h, method, body)
        text = data.decode()
        got = {k: re.search("<%s>([^<]*)</%s>" % (k, k), text)
               for k in ("AccessKeyId", "SecretAccessKey", "SessionToken",
                         "Expiration")}
        if status == 200 and all(got.values()):
            self.issued.add(got["AccessKeyId"].group(1),
                            got["SecretAccessKey"].group(1),
                            got["SessionToken"].group(1),
                            parse_iso(got["Expiration"].group(1)),
                            "sts:" + call["action"])
        self.answer(h, status, data, ctype)


class KinesisProxy(LocalServer):
    """In front of kinesalite: checks each PutRecords' credentials against
    what was issued (static keys may be allowed with allow_static) and
    records them: self.accepted is [(akid, token)] of requests let
    through, self.rejected [(akid, error type)]."""

    def __init__(self, kinesalite_port, issued, allow_static=()):
        self.upstream = kinesalite_port
        self.issued = issued
        self.allow_static = set(allow_static)
        self.accepted = []
        self.rejected = []
        self.expire_next = 0
        self.lock = threading.Lock()
        super().__init__()

    def verdict(self, akid, token):
        if akid in self.allow_static and token is None:
            return None
        cred = self.issued.get(akid)
        if cred is None:
            return "UnrecognizedClientException"
        if cred["token"] != token:
            return "UnrecognizedClientException"
        if time.time() >= cred["expiration"]:
            return "ExpiredTokenException"
        with self.lock:
            if self.expire_next > 0:
                self.expire_next -= 1
                return "ExpiredTokenException"
        return None

    def handle(self, h, method):
        body = self.body_of(h)
        target = h.headers.get("X-Amz-Target") or ""
        if target.endswith(".PutRecords"):
            m = re.search(r"Credential=([^/]+)/",
                          h.headers.get("Authorization") or "")
            akid = m.group(1) if m else None
            token = h.headers.get("X-Amz-Security-Token")
            error = self.verdict(akid, token)
            with self.lock:
                if error:
                    self.rejected.append((akid, error))
                else:
                    self.accepted.append((akid, token))
            if error:
                status = 400 if error == "ExpiredTokenException" else 403
                self.answer(h, status, json.dumps({
                    "__type": error,
                    "message": "The security token included in the request "
                               "is %s" % ("expired" if status == 400
                                          else "invalid")}),
                    "application/x-amz-json-1.1")
                return
        status, ctype, data = forward(self.upstream, h, method, body)
        self.answer(h, status, data, ctype)


class ImdsServer(LocalServer):
    """EC2 instance metadata: PUT /latest/api/token (with the TTL header)
    hands out a session token; credential GETs need it in
    X-aws-ec2-metadata-token. v2=False: a service without IMDSv2 (the PUT
    is refused, GETs answer without a token). self.requests lists
    (method, path, token sent)."""

    ROLE = "pgspout-role"

    def __init__(self, issued, lifetime_s=3600, v2=True):
        self.issued = issued
        self.lifetime_s = lifetime_s
        self.v2 = v2
        self.tokens = set()
        self.requests = []
        self.counter = 0
        super().__init__()

    def handle(self, h, method):
        token = h.headers.get("X-aws-ec2-metadata-token")
        self.requests.append((method, h.path, token))
        if method == "PUT" and h.path == "/latest/api/token":
            ttl = h.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if not self.v2 or not ttl:
                self.answer(h, 403 if self.v2 else 405, "", "text/plain")
                return
            t = "imds-session-%d" % len(self.tokens)
            self.tokens.add(t)
            self.answer(h, 200, t, "text/plain")
            return
        if self.v2 and token not in self.tokens:
            self.answer(h, 401, "", "text/plain")
            return
        base = "/latest/meta-data/iam/security-credentials/"
        if h.path == base:
            self.answer(h, 200, self.ROLE, "text/plain")
        elif h.path == base + self.ROLE:
            self.counter += 1
            akid = "ASIAIMDS%012d" % self.counter
            secret, tok = "imdsSecret%d/x" % self.counter, \
                "imdsToken%d==" % self.counter
            exp = time.time() + self.lifetime_s
            self.issued.add(akid, secret, tok, exp, "imds")
            self.answer(h, 200, json.dumps({
                "Code": "Success", "Type": "AWS-HMAC",
                "AccessKeyId": akid, "SecretAccessKey": secret,
                "Token": tok, "Expiration": iso(exp),
                "LastUpdated": iso(time.time())}))
        else:
            self.answer(h, 404, "", "text/plain")


class ContainerServer(LocalServer):
    """The ECS/EKS container credentials endpoint: GET /creds with
    Authorization equal to auth_token answers the credentials."""

    def __init__(self, issued, auth_token, lifetime_s=3600):
        self.issued = issued
        self.auth_token = auth_token
        self.lifetime_s = lifetime_s
        self.requests = []
        self.counter = 0
        super().__init__()

    def handle(self, h, method):
        self.requests.append((method, h.path, h.headers.get("Authorization")))
        if h.headers.get("Authorization") != self.auth_token:
            self.answer(h, 401, json.dumps({"message": "unauthorized"}))
            return
        self.counter += 1
        akid = "ASIAECS%013d" % self.counter
        secret, tok = "ecsSecret%d/y" % self.counter, \
            "ecsToken%d==" % self.counter
        exp = time.time() + self.lifetime_s
        self.issued.add(akid, secret, tok, exp, "container")
        self.answer(h, 200, json.dumps({
            "AccessKeyId": akid, "SecretAccessKey": secret, "Token": tok,
            "Expiration": iso(exp), "RoleArn": "arn:aws:iam::1:role/x"}))
