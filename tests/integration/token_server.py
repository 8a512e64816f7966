"""A Docker registry token server (the Bearer flow) for tests: issues RS256
JWTs with an x5c header that docker-registry verifies against our CA cert."""
from __future__ import annotations

import base64
import datetime
import json
import os
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


class TokenServer:
    def __init__(self, directory: str, users: dict[str, str], anonymous_pull: bool = False):
        self.users = users
        self.anonymous_pull = anonymous_pull
        self.issued = 0
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vessel-test-token")])
        now = datetime.datetime.utcnow()
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=2))
                     .sign(self.key, hashes.SHA256()))
        self.cert_path = os.path.join(directory, "token-cert.pem")
        with open(self.cert_path, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        self.service, self.issuer = "vessel-test", "vessel-test-issuer"
        ts = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                    if ts.users.get(u) != p:
                        return self._reply(401, {"details": "bad credentials"})
                    user = u
                access = []
                for scope in q.get("scope", []):
                    parts = scope.split(":")
                    if len(parts) != 3 or parts[0] != "repository":
                        continue
                    actions = parts[2].split(",")
                    if user is None:
                        actions = [a for a in actions if a == "pull" and ts.anonymous_pull]
                    access.append({"type": "repository", "name": parts[1], "actions": actions})
                now = int(time.time())
                claims = {"iss": ts.issuer, "sub": user or "", "aud": ts.service,
                          "exp": now + 300, "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()),
                          "access": access}
                der = ts.cert.public_bytes(serialization.Encoding.DER)
                token = jwt.encode(claims, ts.key, algorithm="RS256",
                                   headers={"x5c": [base64.b64encode(der).decode()]})
                ts.issued += 1
                self._reply(200, {"token": token, "expires_in": 300})

            def _reply(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def registry_config(self) -> dict:
        return {"realm": self.realm, "service": self.service, "issuer": self.issuer,
                "cert": self.cert_path}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
