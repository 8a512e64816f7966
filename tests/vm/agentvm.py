"""Boots vessel VMs for tests and drives their agent (vessel.v1.Agent).

A VM is started with the launcher CLI (server/vm: vessel-vm --detach), which
waits until the agent answers and then frees the agent socket; the tests
connect to that socket with grpcio (so every test VM also exercises the
agent serving a second, reconnected host client).
"""
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))

from vessel.v1 import agent_pb2 as A  # noqa: E402
from vessel.v1 import agent_pb2_grpc as AG  # noqa: E402
from vessel.v1 import types_pb2 as T  # noqa: E402

STDOUT = T.STDIO_STREAM_STDOUT
STDERR = T.STDIO_STREAM_STDERR
STDIN = T.STDIO_STREAM_STDIN


def env(name):
    v = os.environ.get(name)
    if not v:
        raise RuntimeError(name + " is not set (run through the Bazel test wrapper)")
    return v


def request_stream(first):
    """A queue to put stream requests on (None ends the stream) and the
    iterator a streaming stub reads them from; `first` is already queued."""
    q = queue.Queue()
    q.put(first)

    def reqs():
        while True:
            m = q.get()
            if m is None:
                return
            yield m

    return q, reqs()


class AgentVM:
    def __init__(self, kernel=None, initrd_extra=None, stock=False, memory=256, vcpus=1,
                 rootfs=True, extra_args=(), wrap=()):
        self.dir = tempfile.mkdtemp(prefix="vvm-", dir="/tmp")
        self.sock = os.path.join(self.dir, "agent.sock")
        self.console = os.path.join(self.dir, "console.log")
        self.kernel = kernel or env("VESSEL_KERNEL")
        args = [env("VESSEL_VM"), "--kernel", self.kernel, "--initrd", env("VESSEL_INITRAMFS"),
                "--socket", self.sock, "--console", self.console, "--memory", str(memory),
                "--vcpus", str(vcpus), "--timeout", "60000", "--detach"]
        if os.environ.get("VESSEL_GUEST_ARCH"):
            args += ["--arch", os.environ["VESSEL_GUEST_ARCH"]]
        if rootfs:
            self.root = os.path.join(self.dir, "root.img")
            subprocess.run([os.path.join(HERE, "mkrootfs.sh"), self.root], check=True,
                           stdout=subprocess.DEVNULL)
            args += ["--root", self.root]
        if stock:
            args += ["--stock"]
        if initrd_extra:
            args += ["--initrd-extra", initrd_extra]
        args = list(wrap) + args + list(extra_args)
        t0 = time.monotonic()
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("vessel-vm failed: " + r.stderr)
        self.boot = json.loads(r.stdout)
        self.boot_s = time.monotonic() - t0
        self.pid = self.boot["pid"]
        # vessel-vm has just left: the agent serves the next host, but a
        # connection made before the guest saw the last one go can break
        # (vm_reconnect in server/vm does the same): a fresh one then.
        for attempt in range(3):
            self.channel = grpc.insecure_channel(
                "unix:" + self.sock,
                options=[("grpc.max_receive_message_length", 128 << 20),
                         ("grpc.max_send_message_length", 128 << 20),
                         ("grpc.use_local_subchannel_pool", 1)])
            self.stub = AG.AgentStub(self.channel)
            try:
                self.stub.Info(A.AgentInfoRequest(), timeout=20)
                break
            except grpc.RpcError:
                self.channel.close()
                if attempt == 2:
                    raise
                time.sleep(0.5)

    def alive(self):
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        # A zombie counts as gone.
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                return f.read().split()[2] != "Z"
        except FileNotFoundError:
            return False

    def shutdown(self, timeout=15):
        try:
            self.stub.Shutdown(A.AgentShutdownRequest(action=A.SHUTDOWN_ACTION_POWEROFF), timeout=10)
        except grpc.RpcError:
            pass
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        gone = not self.alive()
        if not gone:
            os.kill(self.pid, 9)
        return gone

    def close(self):
        if self.alive():
            self.shutdown()
        self.channel.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def console_text(self):
        with open(self.console, errors="replace") as f:
            return f.read()

    # ---- containers and processes ----

    def create(self, cid, args, **kw):
        """CreateContainer on the root disk; kw: ProcessSpec fields plus
        hostname=, resources=, mounts=."""
        spec_kw = {k: v for k, v in kw.items() if k not in ("hostname", "resources", "mounts", "dns", "hosts")}
        req = A.AgentCreateContainerRequest(
            container_id=cid,
            rootfs=T.Mount(type="ext4", source="/dev/vda"),
            process=T.ProcessSpec(args=args, **spec_kw),
            hostname=kw.get("hostname", ""),
        )
        if "resources" in kw:
            req.resources.CopyFrom(kw["resources"])
        for m in kw.get("mounts", []):
            req.mounts.append(m)
        if "dns" in kw:
            req.dns.CopyFrom(kw["dns"])
        for h in kw.get("hosts", []):
            req.hosts.append(h)
        self.stub.CreateContainer(req, timeout=60)

    def delete(self, cid, force=True):
        self.stub.DeleteContainer(A.AgentDeleteContainerRequest(container_id=cid, force=force), timeout=60)

    def stdio(self, cid, pid="", stdin=b"", stdin_chunks=None, close_stdin=True, on_start=None,
              timeout=120):
        """Opens Stdio, starts the process, feeds stdin, returns (stdout, stderr, exit)."""
        q, reqs = request_stream(
            A.AgentStdioRequest(open=A.AgentStdioOpen(container_id=cid, process_id=pid)))
        it = self.stub.Stdio(reqs, timeout=timeout)
        out, err_, exit_ = [], [], None
        started = threading.Event()

        def feeder():
            started.wait()
            chunks = stdin_chunks if stdin_chunks is not None else ([stdin] if stdin else [])
            for c in chunks:
                q.put(A.AgentStdioRequest(frame=T.StdioFrame(stream=STDIN, data=c)))
            if close_stdin:
                q.put(A.AgentStdioRequest(frame=T.StdioFrame(stream=STDIN, eof=True)))

        ft = threading.Thread(target=feeder, daemon=True)
        ft.start()
        # The stream is open on the agent once it answers; start after a
        # first round trip is not observable, so start right away: the
        # agent buffers output in the pipe until the stream reads it.
        self.stub.StartProcess(A.AgentStartProcessRequest(container_id=cid, process_id=pid), timeout=60)
        started.set()
        if on_start:
            on_start()
        try:
            for r in it:
                if r.HasField("frame"):
                    (out if r.frame.stream == STDOUT else err_).append(r.frame.data)
                elif r.HasField("exit"):
                    exit_ = r.exit
                    q.put(None)  # half-close: detach
        finally:
            q.put(None)
        return b"".join(out), b"".join(err_), exit_

    def run(self, cid, args, stdin=b"", delete=True, **kw):
        self.create(cid, args, **kw)
        try:
            return self.stdio(cid, stdin=stdin)
        finally:
            if delete:
                self.delete(cid)

    def exec_(self, cid, pid, args, stdin=b"", **kw):
        self.stub.CreateProcess(A.AgentCreateProcessRequest(
            container_id=cid, process_id=pid, process=T.ProcessSpec(args=args, **kw)), timeout=60)
        return self.stdio(cid, pid, stdin=stdin)

    def sh(self, cid, script, **kw):
        """Runs a shell snippet as an exec'd process; returns (stdout str, exit code)."""
        pid = "sh%d" % int(time.monotonic_ns() % 1_000_000_000)
        out, err_, ex = self.exec_(cid, pid, ["sh", "-c", script], **kw)
        self.stub.DeleteProcess(A.AgentDeleteProcessRequest(container_id=cid, process_id=pid), timeout=30)
        return out.decode(errors="replace"), ex.code, err_.decode(errors="replace")
