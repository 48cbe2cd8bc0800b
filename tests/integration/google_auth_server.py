"""Google's token services as the BigQuery sink's auth tests need them, on
127.0.0.1, following Google's documented request and answer formats, and
strict about what they are sent:

- the OAuth token endpoint (/token): the JWT bearer grant (the assertion's
  RS256 signature is checked with the public half of the test key, and its
  iss, aud, scope, iat and exp), and the refresh_token grant (client id,
  secret and refresh token must match);
- the metadata server (/computeMetadata/v1/...): Metadata-Flavor: Google;
- STS (/sts): the token-exchange grant with the expected audience, subject
  token and types;
- IAM credentials (/iam/...:generateAccessToken): authorized by a valid STS
  token, answering accessToken and expireTime;
- a subject token URL (/subject): JSON, behind a header.

Every token it issues lives `lifetime_s` (short, so tests see refreshes).
A request that is not right is answered as Google would (400/401/403) and
noted in `errors`, which tests assert empty.

BigQueryProxy sits in front of the emulator (which checks no auth) and lets
through only requests bearing a token the fake issued for BigQuery and that
has not expired nor been revoked; anything else gets Google's 401 and is
noted in `refused`."""

import base64
import datetime
import http.client
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from json_http import JsonHandler

BQ_SCOPE = "https://www.googleapis.com/auth/bigquery"
CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
SA_EMAIL = "spout@pgspout-test.iam.gserviceaccount.com"
CLIENT_ID = "pgspout-client.apps.googleusercontent.com"
CLIENT_SECRET = "d-FL95Q19q7MQmFpd7hHD0Ty-PGSPOUT-CLIENT-SECRET"
REFRESH_TOKEN = "1//0gPGSPOUT-REFRESH-TOKEN-secret"
AUDIENCE = ("//iam.googleapis.com/projects/123/locations/global/"
            "workloadIdentityPools/pool/providers/oidc")
SUBJECT_TOKEN = "eyJhbGciOiJSUzI1NiJ9.PGSPOUT-SUBJECT-TOKEN.sig"
SUBJECT_HEADER = ("X-Subject-Auth", "pgspout-subject-header-secret")
ACCESS_PREFIX = "ya29.PGSPOUT-ACCESS-"


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key():
    """A throwaway RSA key: (private PEM text, public key object)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, key.public_key()


class GoogleAuth:
    def __init__(self, public_key, lifetime_s=20):
        self.public_key = public_key
        self.lifetime_s = lifetime_s
        self.lock = threading.Lock()
        self.tokens = {}      # token -> (expires monotonic, for_bigquery)
        self.issued = []      # (endpoint, token) in order
        self.errors = []      # what was wrong with requests
        self.fail_next = 0    # answer this many token requests with 503
        self.failed = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    @property
    def host(self):
        return "127.0.0.1:%d" % self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def issued_by(self, endpoint):
        with self.lock:
            return [t for e, t in self.issued if e == endpoint]

    def revoke_all(self):
        with self.lock:
            self.tokens.clear()

    def check(self, token):
        """None when token is good for BigQuery now, else why not."""
        with self.lock:
            entry = self.tokens.get(token)
            known = token in (t for _, t in self.issued)
        if entry is None:
            return "revoked" if known else "unknown"
        expires, for_bigquery = entry
        if not for_bigquery:
            return "not for BigQuery"
        if time.monotonic() >= expires:
            return "expired"
        return None

    def _issue(self, endpoint, for_bigquery=True):
        with self.lock:
            token = "%s%s-%d" % (ACCESS_PREFIX, endpoint, len(self.issued))
            self.tokens[token] = (time.monotonic() + self.lifetime_s,
                                  for_bigquery)
            self.issued.append((endpoint, token))
        return token

    def _error(self, what):
        with self.lock:
            self.errors.append(what)

    def _should_fail(self):
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.failed += 1
                return True
        return False

    # ---- validation ----

    def verify_jwt(self, assertion, token_url):
        parts = assertion.split(".")
        if len(parts) != 3:
            return "the assertion is not a JWT"
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        if header.get("alg") != "RS256":
            return "alg is %r" % header.get("alg")
        try:
            self.public_key.verify(b64url_decode(parts[2]),
                                   ("%s.%s" % (parts[0], parts[1])).encode(),
                                   padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "bad JWT signature"
        now = time.time()
        if claims.get("iss") != SA_EMAIL:
            return "iss is %r" % claims.get("iss")
        if claims.get("aud") != token_url:
            return "aud is %r" % claims.get("aud")
        if BQ_SCOPE not in claims.get("scope", "").split():
            return "scope is %r" % claims.get("scope")
        iat, exp = claims.get("iat", 0), claims.get("exp", 0)
        if abs(iat - now) > 300 or not 0 < exp - iat <= 3600:
            return "iat/exp are %r/%r" % (iat, exp)
        return None

    def token_grant(self, form):
        grant = form.get("grant_type")
        if grant == JWT_GRANT:
            return self.verify_jwt(form.get("assertion", ""),
                                   self.url + "/token")
        if grant == "refresh_token":
            if (form.get("client_id"), form.get("client_secret"),
                    form.get("refresh_token")) != (CLIENT_ID, CLIENT_SECRET,
                                                   REFRESH_TOKEN):
                return "wrong client or refresh token"
            return None
        return "grant_type is %r" % grant

    def sts_exchange(self, form):
        want = {"grant_type": EXCHANGE_GRANT, "audience": AUDIENCE,
                "requested_token_type": ACCESS_TOKEN_TYPE,
                "subject_token": SUBJECT_TOKEN,
                "subject_token_type": JWT_TOKEN_TYPE}
        for name, value in want.items():
            if form.get(name) != value:
                return "%s is %r" % (name, form.get(name))
        if form.get("scope") not in (BQ_SCOPE, CLOUD_SCOPE):
            return "scope is %r" % form.get("scope")
        return None

    def _handler(self):
        fake = self

        class Handler(JsonHandler):
            def refuse(self, status, why):
                fake._error("%s %s: %s" % (self.command, self.path, why))
                self.answer(status, {"error": "invalid_grant",
                                     "error_description": why})

            def unavailable(self):
                self.answer(503, {"error": {"code": 503,
                                            "message": "try later"}})

            def oauth_token(self, endpoint, for_bigquery=True):
                self.answer(200, {
                    "access_token": fake._issue(endpoint, for_bigquery),
                    "expires_in": fake.lifetime_s, "token_type": "Bearer"})

            def do_GET(self):
                if self.path == "/subject":
                    name, value = SUBJECT_HEADER
                    if self.headers.get(name) != value:
                        return self.refuse(403, "subject header missing")
                    return self.answer(200, {"id_token": SUBJECT_TOKEN})
                if self.path == ("/computeMetadata/v1/instance/"
                                 "service-accounts/default/token"):
                    if self.headers.get("Metadata-Flavor") != "Google":
                        return self.refuse(403, "no Metadata-Flavor: Google")
                    if fake._should_fail():
                        return self.unavailable()
                    return self.oauth_token("metadata")
                self.refuse(404, "no such path")

            def do_POST(self):
                text = self.body()
                if self.path in ("/token", "/sts"):
                    form = dict(urllib.parse.parse_qsl(text))
                    check = fake.token_grant if self.path == "/token" \
                        else fake.sts_exchange
                    why = check(form)
                    if why:
                        return self.refuse(400, why)
                    if fake._should_fail():
                        return self.unavailable()
                    if self.path == "/token":
                        return self.oauth_token(form["grant_type"])
                    # An STS token asked for cloud-platform is for the
                    # impersonation that follows, not for BigQuery.
                    return self.oauth_token(
                        "sts", form.get("scope") == BQ_SCOPE)
                if self.path.startswith("/iam/") and \
                        self.path.endswith(":generateAccessToken"):
                    return self.generate_access_token(text)
                self.refuse(404, "no such path")

            def generate_access_token(self, text):
                auth = self.headers.get("Authorization", "")
                token = auth[len("Bearer "):] if \
                    auth.startswith("Bearer ") else ""
                with fake.lock:
                    entry = fake.tokens.get(token)
                if not entry or time.monotonic() >= entry[0] or \
                        token not in fake.issued_by("sts"):
                    return self.refuse(401, "no valid STS token")
                body = json.loads(text)
                if BQ_SCOPE not in body.get("scope", []):
                    return self.refuse(400, "scope is %r"
                                       % body.get("scope"))
                if SA_EMAIL not in self.path:
                    return self.refuse(404, "no such service account")
                expire = datetime.datetime.now(datetime.timezone.utc) + \
                    datetime.timedelta(seconds=fake.lifetime_s)
                self.answer(200, {
                    "accessToken": fake._issue("iam"),
                    "expireTime": expire.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})

        return Handler


class BigQueryProxy:
    """Forwards to the emulator what bears a valid token; refuses the rest
    with Google's 401."""

    def __init__(self, google, target_url):
        self.google = google
        self.target = urllib.parse.urlparse(target_url)
        self.lock = threading.Lock()
        self.refused = []     # (reason, method, path)
        self.passed = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def refusals(self, reason=None):
        with self.lock:
            return [r for r in self.refused if reason in (None, r[0])]

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def relay(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                auth = self.headers.get("Authorization", "")
                why = "missing" if not auth.startswith("Bearer ") else \
                    proxy.google.check(auth[len("Bearer "):])
                if why:
                    with proxy.lock:
                        proxy.refused.append((why, self.command, self.path))
                    data = json.dumps({"error": {
                        "code": 401, "status": "UNAUTHENTICATED",
                        "message": "Request had invalid authentication "
                                   "credentials."}}).encode()
                    status = 401
                else:
                    conn = http.client.HTTPConnection(
                        proxy.target.hostname, proxy.target.port,
                        timeout=60)
                    headers = {"Content-Type": self.headers.get(
                        "Content-Type", "application/json")}
                    conn.request(self.command, self.path, body, headers)
                    resp = conn.getresponse()
                    status, data = resp.status, resp.read()
                    conn.close()
                    with proxy.lock:
                        proxy.passed += 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = relay

        return Handler
