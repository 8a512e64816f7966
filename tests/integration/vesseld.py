"""Starts real vesseld processes for integration tests."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time


def vesseld_path() -> str:
    p = os.environ.get("VESSELD")
    if not p or not os.access(p, os.X_OK):
        raise RuntimeError("set VESSELD to the vesseld binary (bazel test sets it)")
    return p


def make_certs(directory: str) -> str:
    script = os.environ.get("VESSEL_CERTS")
    if not script:
        raise RuntimeError("set VESSEL_CERTS to server/daemon/vessel-certs.sh")
    subprocess.run(["bash", script, directory], check=True, stdout=subprocess.DEVNULL)
    return directory


class Vesseld:
    """One vesseld with its own root and unix socket (paths kept short:
    unix sockets are limited to 107 bytes)."""

    def __init__(self, *extra: str, tcp: bool = False, certs: str | None = None,
                 insecure_tcp: bool = False, root: str | None = None, env: dict | None = None,
                 netns: bool = False):
        """netns: run vesseld in a network namespace of its own (made here,
        removed on cleanup), so its bridges, taps and VMs never touch the
        host's network (the tests' network rule)."""
        self.tmp = tempfile.mkdtemp(prefix="vsl-", dir="/tmp")
        self.root = root or os.path.join(self.tmp, "root")
        self.socket = os.path.join(self.tmp, "v.sock")
        self.address = "unix://" + self.socket
        self.tcp_address = None
        args = [vesseld_path(), "--root", self.root, "--listen", self.address]
        if tcp:
            args += ["--listen", "tcp://127.0.0.1:0"]
            if insecure_tcp:
                args.append("--insecure-tcp")
            if certs:
                args += ["--tls-cert", f"{certs}/server.pem", "--tls-key", f"{certs}/server.key",
                         "--tls-client-ca", f"{certs}/ca.pem"]
        args += list(extra)
        if netns and "--dns-upstream" not in extra:
            # The networks' DNS forwards to the namespace's own loopback (the
            # tests' network rule), not to the host's resolvers.
            args += ["--dns-upstream", "127.0.0.1:53"]
        self.netns, self.own_netns = None, False
        if isinstance(netns, str):  # join an existing one (a restarted vesseld)
            self.netns = netns
            args = ["ip", "netns", "exec", self.netns] + args
        elif netns:
            self.netns = "vsl-" + os.path.basename(self.tmp)[4:].replace("_", "")[:10]
            self.own_netns = True
            subprocess.run(["ip", "netns", "add", self.netns], check=True)
            subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
            args = ["ip", "netns", "exec", self.netns] + args
        self.args = args
        self.log_lines: list[str] = []
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env={**os.environ, **(env or {})})
        self._ready = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(30):
            self.stop()
            raise RuntimeError("vesseld did not start:\n" + self.log)
        if self.proc.poll() is not None:
            raise RuntimeError(f"vesseld exited {self.proc.returncode}:\n" + self.log)

    def _pump(self):
        for line in self.proc.stdout:
            self.log_lines.append(line)
            m = re.search(r"listening on (tcp://\S+)", line)
            if m:
                self.tcp_address = m.group(1)
            if " ready " in line:
                self._ready.set()
        self._ready.set()

    @property
    def log(self) -> str:
        return "".join(self.log_lines)

    def stop(self, sig=signal.SIGTERM, timeout=20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def cleanup(self):
        died = self.proc.poll()
        code = self.stop()
        if died is not None and code != 0:
            # It ended on its own: its last words are the clue.
            import sys
            sys.stderr.write(f"vesseld exited {code} by itself; its log ends:\n"
                             + "".join(self.log_lines[-60:]))
        out = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
        if out:
            with open(os.path.join(out, os.path.basename(self.tmp) + "-vesseld.log"), "w") as f:
                f.write(self.log)
        # vesseld leaves VMs running when it exits (a restarted one re-adopts
        # them): a test's leftovers are ended here.
        for pid in qemu_pids(self.tmp):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.own_netns:
            subprocess.run(["ip", "netns", "del", self.netns], check=False)
            self.own_netns = False
        shutil.rmtree(self.tmp, ignore_errors=True)

    def in_netns(self, *cmd: str, **kw):
        """Runs a command in vesseld's network namespace."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *cmd], **kw)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


def qemu_pids(marker: str) -> list[int]:
    """PIDs of the QEMUs whose command line contains marker (a path)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"qemu-system" in cmd and marker.encode() in cmd:
            found.append(int(pid))
    return found


def wait_for(pred, timeout=10.0, interval=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval)
    return pred()
