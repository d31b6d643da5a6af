"""A JSON HTTP server in a thread on 127.0.0.1 (ephemeral port) that records every request.

Subclasses route ``(method, path, query, body)`` to a handler returning ``(status, json)``.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FakeServer:
    """Start with ``start()``, stop with ``stop()``; ``requests`` lists what was received."""

    def __init__(self):
        self.requests = []
        self.lock = threading.RLock()
        self._fail_next = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw.strip() else {}
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                status, payload = fake.handle(self.command, parts.path, query, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, method, path, query, body):
        with self.lock:
            self.requests.append({"method": method, "path": path, "query": query, "body": body})
            return self.route(method, path, query, body)

    def route(self, method, path, query, body):
        raise NotImplementedError

    def fail_next_launch(self, status):
        """Answer the next launch request with this HTTP error status."""
        self._fail_next.append(status)

    def take_failure(self):
        return self._fail_next.pop(0) if self._fail_next else None

    def sent(self, method, suffix):
        """Bodies of the requests received with this method on a path ending with ``suffix``."""
        return [
            r["body"] for r in self.requests if r["method"] == method and r["path"].endswith(suffix)
        ]
