"""HTTP(S) proxies in front of fake-gcs-server: one that adds network latency (benchmarks), and one that plays a
connector's service account (isolation tests).

ConnectorProxy:
The emulator has no IAM, so this stands in for the guide's conditional binding: roles Storage Object Creator and
Storage Object Viewer on objects under the connector's prefix of the landing bucket, and nothing else. So:
create an object under the prefix (never over an existing one: the creator role has no delete, and an
overwrite is a delete), in one request or as a resumable upload, read an object's metadata or bytes under the
prefix, and no listing anywhere, no bucket metadata. Anything else gets the 403 that GCS returns, and is
recorded in `denied`.

`running(tls=(cert, key))` serves HTTPS, for clients that speak nothing else (gsutil's JSON API).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_OBJECT = re.compile(r"^/(?:download/)?storage/v1/b/(?P<bucket>[^/]+)/o/(?P<name>[^/]+)$")
_UPLOAD = re.compile(
    r"^(?:/resumable)?/upload/storage/v1/b/(?P<bucket>[^/]+)/o$"
)  # gsutil: /resumable/upload
BUCKET_METADATA = "storage.buckets.get"
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
}


class ForwardingProxy:
    """Forwards every request; `delay` seconds are added to each, like a round trip to a remote GCS."""

    def __init__(self, upstream: str, delay: float = 0.0):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.delay = delay
        self.denied: list[str] = []
        self.allowed: list[str] = []
        self.url = ""  # this proxy's own address, once running

    def decide(self, method: str, path: str, query: dict, body: bytes) -> str | None:
        return None

    def rewrite(self, method: str, query: dict, status: int, headers: list) -> list:
        """The upstream's response headers, as the client should see them."""
        return headers

    # --- plumbing ----------------------------------------------------------------------------------------
    def _forward(self, method: str, target: str, headers: dict, body: bytes):
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            conn.request(
                method, target, body=body or None, headers={**headers, "Content-Length": str(len(body))}
            )
            resp = conn.getresponse()
            return (
                resp.status,
                [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP],
                resp.read(),
            )
        finally:
            conn.close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body in two writes wait on a delayed ACK

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                split = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(split.query))
                reason = proxy.decide(self.command, split.path, query, body)
                line = f"{self.command} {self.path}"
                if reason is not None:
                    proxy.denied.append(f"{line} -> {reason}")
                    payload = json.dumps(
                        {
                            "error": {
                                "code": 403,
                                "message": f"connector may not: {reason}",
                                "errors": [{"reason": "forbidden", "message": reason}],
                            }
                        }
                    ).encode()
                    self._reply(403, [("Content-Type", "application/json")], payload)
                    return
                proxy.allowed.append(line)
                if proxy.delay:
                    time.sleep(proxy.delay)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                status, headers, payload = proxy._forward(self.command, self.path, headers, body)
                self._reply(status, proxy.rewrite(self.command, query, status, headers), payload)

            def _reply(self, status, headers, payload):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, *args):  # quiet: the test asserts on proxy.denied instead
                pass

        return Handler

    @contextlib.contextmanager
    def running(self, tls: tuple[str, str] | None = None):
        """Serve on 127.0.0.1 and a free port until the block ends; `tls`: (certificate, key) PEM files."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            # the handshake happens in the request's thread, not in the accepting one
            server.socket = context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self.url
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


class ConnectorProxy(ForwardingProxy):
    def __init__(self, upstream: str, bucket: str, prefix: str):
        super().__init__(upstream)
        self.bucket, self.prefix = bucket, prefix
        self._sessions: set[str] = set()  # resumable uploads this connector started (it may send their bytes)

    def decide(self, method: str, path: str, query: dict, body: bytes) -> str | None:
        """None if allowed, else the reason (the missing permission)."""
        if m := _OBJECT.match(path):
            name = urllib.parse.unquote(m["name"])
            if method != "GET":
                return "storage.objects.delete/update"
            if m["bucket"] != self.bucket or not name.startswith(self.prefix):
                return "storage.objects.get (outside the connector's prefix)"
            return None
        if (m := _UPLOAD.match(path)) and method in ("POST", "PUT"):
            if "upload_id" in query:  # the bytes of a resumable upload: only one this connector started
                return (
                    None
                    if query["upload_id"] in self._sessions
                    else "storage.objects.create (unknown upload)"
                )
            if method != "POST":
                return "not granted"
            name = query.get("name") or _metadata_name(body)
            if m["bucket"] != self.bucket or not name or not name.startswith(self.prefix):
                return "storage.objects.create (outside the connector's prefix)"
            if self._exists(name):
                return "storage.objects.delete (an overwrite replaces an existing object)"
            return None
        if method == "GET" and re.match(r"^/storage/v1/b/[^/]+/o$", path):
            return "storage.objects.list"
        if method == "GET" and re.match(r"^/storage/v1/b/[^/]+$", path):
            return BUCKET_METADATA
        return "not granted"

    def rewrite(self, method: str, query: dict, status: int, headers: list) -> list:
        """A resumable upload's session URI points at the emulator: point it here, and remember the session."""
        if method != "POST" or query.get("uploadType") != "resumable" or "upload_id" in query:
            return headers
        rewritten = []
        for key, value in headers:
            if key.lower() == "location":
                location = urllib.parse.urlsplit(value)
                self._sessions.update(urllib.parse.parse_qs(location.query).get("upload_id", []))
                value = self.url + urllib.parse.urlunsplit(("", "", location.path, location.query, ""))
            rewritten.append((key, value))
        return rewritten

    def refusals(self) -> list[str]:
        """The denied requests a connector would notice: all but the bucket-metadata GET that
        google-cloud-storage (3.x) sends in the background for its tracing attributes, and quietly does without
        on a 403."""
        return [d for d in self.denied if not d.endswith(BUCKET_METADATA)]

    def _exists(self, name: str) -> bool:
        status, _, _ = self._forward(
            "GET", f"/storage/v1/b/{self.bucket}/o/{urllib.parse.quote(name, safe='')}", {}, b""
        )
        return status == 200


def _metadata_name(body: bytes) -> str | None:
    """The object name in the JSON metadata of a multipart upload, or of a resumable upload's first request."""
    match = re.search(rb'\{[^{}]*"name"\s*:\s*"((?:[^"\\]|\\.)*)"[^{}]*\}', body)
    return json.loads(b'"' + match.group(1) + b'"') if match else None
