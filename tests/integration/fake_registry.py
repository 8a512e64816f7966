"""A small registry that serves an OCI layout over the distribution API and
misbehaves on request: for fault tests (a real registry never fails on cue).
Listens on 127.0.0.1 only."""
from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeRegistry:
    """faults: path suffix ("manifests/1", "blobs/sha256:...") -> list of
    actions consumed one per request: "503", "429:<secs>", "429date:<secs>"
    (Retry-After as an HTTP-date), "408", "truncate", "truncate-nolength"
    (no Content-Length, half the body, close), "trickle:<bytes/s>",
    "corrupt", "slow:<secs>", "ok". A path without actions behaves.
    trickling counts the trickles in progress."""

    def __init__(self, layout: str, repo: str = "test/app", basic: tuple | None = None,
                 redirect_blobs_to: str | None = None):
        """basic: (user, password) required on /v2/ requests; redirect_blobs_to:
        a base URL that blob GETs are redirected to (another host)."""
        self.basic = basic
        self.redirect_blobs_to = redirect_blobs_to
        self.seen_auth: list[str] = []  # Authorization headers, by path
        self.proxied = 0  # requests that arrived as proxy requests
        self.layout = layout
        self.repo = repo
        self.faults: dict[str, list[str]] = {}
        self.hits: dict[str, int] = {}
        self.ranges: dict[str, list[str]] = {}  # Range headers, by path
        self.trickling = 0
        self.lock = threading.Lock()
        self.manifests: dict[str, tuple[bytes, str]] = {}
        with open(os.path.join(layout, "index.json")) as f:
            index = json.load(f)
        for m in index["manifests"]:
            tag = m.get("annotations", {}).get("org.opencontainers.image.ref.name")
            if tag:
                self.manifests[tag] = (self._blob(m["digest"]), m["mediaType"])
        reg = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_HEAD(self):
                self.do_GET(head=True)

            def do_GET(self, head=False):
                path = self.path.split("?")[0]
                if path.startswith("http://"):  # we are being used as a proxy
                    with reg.lock:
                        reg.proxied += 1
                    path = "/" + path.split("/", 3)[3]
                with reg.lock:
                    reg.seen_auth.append(f"{path} {self.headers.get('Authorization', '-')}")
                if path.startswith("/storage/"):  # the blob storage "host"
                    body = reg._blob(path[len("/storage/"):])
                    return self._send(200 if body else 404, body or b"", "application/octet-stream",
                                      head)
                if reg.basic:
                    import base64
                    want = "Basic " + base64.b64encode(":".join(reg.basic).encode()).decode()
                    if self.headers.get("Authorization") != want:
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="fake"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                if reg.redirect_blobs_to and "/blobs/" in path:
                    self.send_response(307)
                    self.send_header("Location",
                                     reg.redirect_blobs_to + "/storage/" + path.split("/blobs/")[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path == "/v2/":
                    return self._send(200, b"{}", "application/json", head)
                prefix = f"/v2/{reg.repo}/"
                if not path.startswith(prefix):
                    return self._send(404, b'{"errors":[{"message":"no such repo"}]}',
                                      "application/json", head)
                key = path[len(prefix):]
                with reg.lock:
                    reg.hits[key] = reg.hits.get(key, 0) + 1
                    acts = reg.faults.get(key, [])
                    act = acts.pop(0) if acts else "ok"
                body, mt = reg.lookup(key)
                if body is None:
                    return self._send(404, b'{"errors":[{"message":"unknown"}]}',
                                      "application/json", head)
                if act == "503":
                    return self._send(503, b"busy", "text/plain", head)
                if act == "408":
                    return self._send(408, b"timeout", "text/plain", head)
                if act.startswith("429date"):
                    from email.utils import formatdate
                    self.send_response(429)
                    self.send_header("Retry-After",
                                     formatdate(time.time() + float(act.split(":")[1]), usegmt=True))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if act.startswith("429"):
                    self.send_response(429)
                    self.send_header("Retry-After", act.split(":")[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if act.startswith("slow"):
                    time.sleep(float(act.split(":")[1]))
                start = 0
                rng = self.headers.get("Range")
                with reg.lock:
                    reg.ranges.setdefault(key, []).append(rng or "")
                if rng and rng.startswith("bytes=") and key.startswith("blobs/"):
                    start = int(rng[6:].split("-")[0])
                status = 206 if start else 200
                if act == "corrupt":
                    body = bytes(b ^ 0xFF for b in body[:16]) + body[16:]
                data = body[start:]
                if act == "truncate-nolength":
                    self.send_response(status)
                    self.send_header("Content-Type", mt)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if act.startswith("trickle"):
                    bps = float(act.split(":")[1])
                    self.send_response(status)
                    self.send_header("Content-Type", mt)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    with reg.lock:
                        reg.trickling += 1
                    try:
                        for i in range(len(data)):
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            time.sleep(1 / bps)
                    except OSError:
                        pass
                    finally:
                        with reg.lock:
                            reg.trickling -= 1
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("Content-Type", mt)
                self.send_header("Content-Length", str(len(data)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body)-1}/{len(body)}")
                self.end_headers()
                if head:
                    return
                if act == "truncate":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def _send(self, code, body, mt, head):
                self.send_response(code)
                self.send_header("Content-Type", mt)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _blob(self, digest: str) -> bytes | None:
        p = os.path.join(self.layout, "blobs", "sha256", digest[7:])
        if not os.path.exists(p):
            return None
        with open(p, "rb") as f:
            return f.read()

    def lookup(self, key: str):
        if key.startswith("manifests/"):
            ref = key[len("manifests/"):]
            if ref in self.manifests:
                return self.manifests[ref]
            for body, mt in self.manifests.values():
                import hashlib
                if "sha256:" + hashlib.sha256(body).hexdigest() == ref:
                    return body, mt
            return None, None
        if key.startswith("blobs/"):
            return self._blob(key[len("blobs/"):]), "application/octet-stream"
        return None, None

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
