"""The base of the tests' hand-written HTTP services (fakes of Google's
token endpoints, BigQuery's API, an OpenSearch _bulk endpoint, Kinesis):
JSON answers with their length, request bodies read whole, no access log
on the test's output."""

import json
from http.server import BaseHTTPRequestHandler


class JsonHandler(BaseHTTPRequestHandler):
    # What answer() sends as Content-Type; Kinesis wants its own.
    content_type = "application/json"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        """The request's body as text (empty without Content-Length)."""
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode()
