"""Runs Debian's docker-registry on loopback for tests: plain HTTP,
htpasswd Basic auth, or TLS with a test CA."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Registry:
    def __init__(self, htpasswd: tuple[str, str] | None = None, tls_dir: str | None = None,
                 token: dict | None = None, netns: str | None = None):
        """netns: serve on the loopback of that network namespace (one a
        test made, e.g. a vesseld's) instead of the host's."""
        self.netns = netns
        self.tmp = tempfile.mkdtemp(prefix="vsl-reg-", dir="/tmp")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        auth = ""
        if htpasswd:
            import bcrypt  # docker-registry's htpasswd wants bcrypt hashes
            hp = os.path.join(self.tmp, "htpasswd")
            user, pw = htpasswd
            hashed = bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()
            with open(hp, "w") as f:
                f.write(f"{user}:{hashed}\n")
            auth = f"auth:\n  htpasswd:\n    realm: vessel-test\n    path: {hp}\n"
        if token:
            auth = ("auth:\n  token:\n"
                    f"    realm: {token['realm']}\n    service: {token['service']}\n"
                    f"    issuer: {token['issuer']}\n    rootcertbundle: {token['cert']}\n")
        tls = ""
        if tls_dir:
            tls = (f"  tls:\n    certificate: {tls_dir}/server.pem\n"
                   f"    key: {tls_dir}/server.key\n")
        cfg = os.path.join(self.tmp, "config.yml")
        with open(cfg, "w") as f:
            f.write("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {self.tmp}/data\n"
                    "  delete:\n    enabled: true\n"
                    f"http:\n  addr: 127.0.0.1:{self.port}\n{tls}" + auth)
        self.proc = subprocess.Popen(self.in_netns("docker-registry", "serve", cfg),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        scheme = "https" if tls_dir else "http"
        deadline = time.monotonic() + 20
        while True:
            try:
                if netns:
                    subprocess.run(self.in_netns(
                        "/usr/bin/python3", "-c", "import socket; socket.create_connection("
                        f"('127.0.0.1', {self.port}), timeout=1)"), check=True,
                        stderr=subprocess.DEVNULL)
                else:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except (OSError, subprocess.CalledProcessError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("docker-registry did not start: " +
                                       self.proc.stderr.read().decode(errors="replace"))
                time.sleep(0.05)
        self.url = f"{scheme}://{self.host}"

    def in_netns(self, *cmd: str) -> list[str]:
        """cmd, run in the registry's network namespace."""
        return ["ip", "netns", "exec", self.netns, *cmd] if self.netns else list(cmd)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
