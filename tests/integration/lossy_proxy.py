"""An HTTP reverse proxy on 127.0.0.1 in front of a registry that loses the
answer to chosen requests: the request reaches the registry, the client
gets no response (as when a connection dies after the server acted)."""
from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LossyProxy:
    def __init__(self, upstream: str, lose):
        """upstream: "host:port"; lose(method, path) -> True to drop that
        request's answer (called once per request, under a lock)."""
        self.upstream = upstream
        self.lost: list[str] = []
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection")}
                headers["Host"] = proxy.host  # the registry names URLs after it
                up = http.client.HTTPConnection(proxy.upstream, timeout=60)
                up.request(self.command, self.path, body=body, headers=headers)
                resp = up.getresponse()
                data = resp.read()
                with lock:
                    drop = lose(self.command, self.path)
                    if drop:
                        proxy.lost.append(f"{self.command} {self.path}")
                if drop:
                    self.close_connection = True
                    return
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() in ("content-length", "connection", "transfer-encoding"):
                        continue
                    self.send_header(k, v.replace(proxy.upstream, proxy.host))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                up.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
