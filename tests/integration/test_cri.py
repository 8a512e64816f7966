"""vesseld's CRI server (--cri-listen), checked by crictl (cri-tools,
built from the Go module proxy by bazel/setup.sh): the runtime's version
and status, and the image service over vessel's image store with a real
registry (Debian's docker-registry on loopback), and pod sandboxes with
containers in real VMs."""
import json
import os
import subprocess
import time

import pytest

import vessel
from registry import Registry
from test_containers import busybox_image_tar
from vesseld import Vesseld


class Env:
    def __init__(self, d, tmp, sock):
        self.d, self.tmp, self.sock = d, tmp, sock

    def argv(self, *args):
        """crictl's command line, in vesseld's network namespace if it has
        one (the streaming URLs are on its loopback)."""
        config = os.path.join(str(self.tmp), "crictl.yaml")  # (none: crictl warns)
        with open(config, "w") as f:
            f.write(f"runtime-endpoint: {self.sock}\nimage-endpoint: {self.sock}\ntimeout: 60\n")
        ns = ["ip", "netns", "exec", self.d.netns] if self.d.netns else []
        return [*ns, "crictl", "--config", config, *args]

    def crictl(self, *args, check=True, input=None):
        r = subprocess.run(self.argv(*args), capture_output=True, text=True, input=input, timeout=120)
        if check:
            assert r.returncode == 0, (args, r.stderr)
        return r


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cri")
    sock = "unix://" + str(tmp / "cri.sock")
    with Vesseld("--cri-listen", sock) as d:
        yield Env(d, tmp, sock)


def test_version_and_status(env):
    """Version names the runtime and the CRI API; Status: runtime and
    network ready."""
    out = env.crictl("version").stdout
    assert "RuntimeName:  vessel" in out and "RuntimeApiVersion:  v1" in out, out
    info = json.loads(env.crictl("info").stdout)
    conds = {c["type"]: c["status"] for c in info["status"]["conditions"]}
    assert conds == {"RuntimeReady": True, "NetworkReady": True}, info


def test_images_pull_list_inspect_remove(env):
    """PullImage from a registry, ListImages, ImageStatus (also verbose),
    RemoveImage; references normalise as containerd's (busybox =
    docker.io/library/busybox:latest); ImageFsInfo counts the store."""
    with Registry() as reg, vessel.Client(env.d.address, timeout=60) as c:
        ref = f"{reg.host}/cri/busybox:1"
        c.images.load(busybox_image_tar(str(env.tmp)), reference=ref)
        c.images.push(ref)
        c.images.delete(ref)
        assert env.crictl("images", "-q").stdout.strip() == ""
        out = env.crictl("pull", ref).stdout
        digest = out.split()[-1]
        assert digest.startswith("sha256:"), out
        listed = json.loads(env.crictl("images", "-o", "json").stdout)["images"]
        assert [i["repoTags"] for i in listed] == [[ref]] and listed[0]["id"] == digest, listed
        assert listed[0]["repoDigests"] == [f"{reg.host}/cri/busybox@{digest}"]
        st = json.loads(env.crictl("inspecti", "-o", "json", ref).stdout)
        assert st["status"]["id"] == digest and int(st["status"]["size"]) > 0, st
        assert st["info"]["layers"] == 1 and st["info"]["name"] == ref, st["info"]  # verbose
        # by ID and by repository digest too (pulled by tag)
        for other in (digest, f"{reg.host}/cri/busybox@{digest}"):
            assert json.loads(env.crictl("inspecti", "-o", "json", other).stdout)["status"]["id"] == digest
        # The same image under Docker Hub's name is found by its short name.
        c.images.tag(ref, "docker.io/library/busybox:latest")
        st = json.loads(env.crictl("inspecti", "-o", "json", "busybox").stdout)
        assert st["status"]["id"] == digest
        assert sorted(st["status"]["repoTags"]) == sorted([ref, "docker.io/library/busybox:latest"])
        fs = json.loads(env.crictl("imagefsinfo", "-o", "json").stdout)["status"]["imageFilesystems"][0]
        assert int(fs["usedBytes"]["value"]) > 0 and int(fs["inodesUsed"]["value"]) > 0, fs
        # Removing the image removes it under every name; again is no error.
        env.crictl("rmi", digest)
        assert env.crictl("images", "-q").stdout.strip() == ""
        assert not c.images.list()
        r = env.crictl("inspecti", "busybox", check=False)
        assert r.returncode != 0 and "no such image" in (r.stdout + r.stderr).lower(), r
        # A registry that is not there: the pull fails with the reason.
        r = env.crictl("pull", "127.0.0.1:1/none/such:1", check=False)
        assert r.returncode != 0 and "127.0.0.1:1" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def vm_env(tmp_path_factory):
    """A vesseld that runs VMs (in a network namespace of its own), the
    busybox test image under Docker Hub's name for busybox."""
    kernel, initrd = os.environ.get("VESSEL_KERNEL", ""), os.environ.get("VESSEL_INITRD", "")
    assert kernel and initrd, "VESSEL_KERNEL and VESSEL_INITRD must be set"
    tmp = tmp_path_factory.mktemp("crivm")
    sock = "unix://" + str(tmp / "cri.sock")
    with Vesseld("--kernel", kernel, "--initrd", initrd, "--cri-listen", sock,
                 "--cri-stream-url-ttl", str(URL_TTL), netns=True) as d, \
            vessel.Client(d.address, timeout=180) as c:
        c.images.load(busybox_image_tar(str(tmp)), reference="docker.io/library/busybox:latest")
        yield Env(d, tmp, sock)


HOST_PORT = 18080
URL_TTL = 10  # seconds a streaming URL stays valid (--cri-stream-url-ttl)


def write_json(tmp, name, doc):
    path = str(tmp / name)
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def test_a_sandbox_and_its_containers(vm_env):
    """RunPodSandbox (a vessel pod: one VM) with metadata, hostname, labels
    and annotations; CreateContainer/StartContainer in it; ExecSync (output,
    exit codes, timeout); the containers reach each other on localhost;
    ListPodSandbox/ListContainers/…Status with filters; StopContainer,
    RemoveContainer, StopPodSandbox, RemovePodSandbox."""
    e, tmp = vm_env, vm_env.tmp
    pod = write_json(tmp, "pod.json", {
        "metadata": {"name": "web", "uid": "uid-1", "namespace": "ns1", "attempt": 1},
        "hostname": "crihost", "log_directory": str(tmp / "logs"),
        "labels": {"app": "web"}, "annotations": {"note": "kept"},
        "port_mappings": [{"container_port": 8080, "host_port": 0},  # declared only
                          {"container_port": 8080, "host_port": HOST_PORT}],
        "linux": {"sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"},
                  "security_context": {"namespace_options": {"pid": 0, "ipc": 0}}}})
    sid = e.crictl("runp", pod).stdout.strip()
    try:
        pods = json.loads(e.crictl("pods", "-o", "json").stdout)["items"]
        assert [p["id"] for p in pods] == [sid], pods
        p = pods[0]
        assert p["metadata"] == {"name": "web", "uid": "uid-1", "namespace": "ns1", "attempt": 1}, p
        assert p["state"] == "SANDBOX_READY" and p["labels"] == {"app": "web"}, p
        assert p["annotations"] == {"note": "kept"}, p
        st = json.loads(e.crictl("inspectp", "-o", "json", sid).stdout)["status"]
        assert st["network"]["ip"].startswith("10.88."), st
        assert json.loads(e.crictl("pods", "-o", "json", "--label", "app=other").stdout)["items"] == []

        srv = write_json(tmp, "srv.json", {
            "metadata": {"name": "srv"}, "image": {"image": "busybox"},
            "command": ["httpd"], "args": ["-f", "-p", "8080", "-h", "/var/www"],
            "labels": {"role": "srv"}, "annotations": {"x": "y"}, "log_path": "srv.log"})
        cli = write_json(tmp, "cli.json", {
            "metadata": {"name": "cli"}, "image": {"image": "busybox"},
            "args": ["sh", "-c", "echo hello-log; echo err-log >&2; exec sleep 600"],
            "envs": [{"key": "GREETING", "value": "hi"}], "log_path": "cli.log"})
        # GetContainerEvents: crictl events, from before the containers.
        events = subprocess.Popen(e.argv("events", "-o", "json"),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(1)
        s_id = e.crictl("create", "--no-pull", sid, srv, pod).stdout.strip()
        c_id = e.crictl("create", "--no-pull", sid, cli, pod).stdout.strip()
        e.crictl("start", s_id)
        e.crictl("start", c_id)
        out = ""
        for _ in range(20):
            r = e.crictl("exec", "--sync", c_id, "wget", "-qO-", "http://127.0.0.1:8080/index.html",
                         check=False)
            out = r.stdout
            if "hello over the bridge" in out:
                break
            time.sleep(0.5)
        assert "hello over the bridge" in out, out
        # The port mapping with a host port is published (on the node's
        # side: vesseld's namespace), the one without is not.
        got = e.d.in_netns("/usr/bin/python3", "-c",
                           "import urllib.request,sys; sys.stdout.buffer.write(urllib.request.urlopen("
                           f"'http://127.0.0.1:{HOST_PORT}/index.html', timeout=10).read())",
                           capture_output=True)
        assert got.stdout == b"hello over the bridge\n", got.stderr
        with vessel.Client(e.d.address) as vc:
            pod_msg = vc.pods.inspect(sid)
        assert [(m.container_port, m.host_port) for m in pod_msg.ports] == [(8080, HOST_PORT)]
        assert e.crictl("exec", "--sync", c_id, "sh", "-c", "hostname; echo $GREETING").stdout.strip() == "crihost\nhi"
        r = e.crictl("exec", "--sync", c_id, "sh", "-c", "echo err >&2; exit 3", check=False)
        assert r.returncode != 0 and "err" in r.stderr and "3" in r.stderr, (r.stdout, r.stderr)
        r = e.crictl("exec", "--sync", "--timeout", "2", c_id, "sleep", "30", check=False)
        assert r.returncode != 0 and "DeadlineExceeded" in r.stderr, r.stderr
        # The sandbox's PID and IPC namespaces (POD) and sysctls; a security
        # context: user, groups, capabilities, no_new_privs, read-only root.
        ns = lambda cid: e.crictl("exec", "--sync", cid, "sh", "-c", "readlink /proc/self/ns/pid").stdout.strip()
        assert ns(c_id) == ns(s_id)
        sec = write_json(tmp, "sec.json", {
            "metadata": {"name": "sec"}, "image": {"image": "busybox"}, "args": ["sleep", "600"],
            "linux": {"security_context": {
                "run_as_user": {"value": 65534}, "run_as_group": {"value": 65534},
                "supplemental_groups": [1234], "readonly_rootfs": True, "no_new_privs": True,
                "capabilities": {"drop_capabilities": ["ALL"]}}}})
        x_id = e.crictl("create", "--no-pull", sid, sec, pod).stdout.strip()
        e.crictl("start", x_id)
        r = e.crictl("exec", "--sync", x_id, "sh", "-c",
                     "id -u; id -g; id -G; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
                     "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; touch /x 2>&1; true", check=False)
        out = r.stdout
        assert out.split("\n")[:3] == ["65534", "65534", "65534 1234"], (out, r.stderr)
        assert "CapEff:\t0000000000000000" in out and "NoNewPrivs:\t1" in out, out
        assert "\n0\n" in out and "Read-only file system" in out, out
        e.crictl("rm", "-f", x_id)
        for bad, word in [({"privileged": True}, "privileged"),
                          ({"namespace_options": {"network": 2}}, "network NODE")]:
            cfg = write_json(tmp, "bad.json", {"metadata": {"name": "bad"}, "image": {"image": "busybox"},
                                               "linux": {"security_context": bad}})
            r = e.crictl("create", "--no-pull", sid, cfg, pod, check=False)
            assert r.returncode != 0 and word in r.stderr, r.stderr

        # Stats: each container's cgroup, the sandbox's VM with its containers.
        st = json.loads(e.crictl("stats", "-o", "json", "--id", c_id).stdout)["stats"]
        assert [x["attributes"]["id"] for x in st] == [c_id], st
        assert int(st[0]["memory"]["workingSetBytes"]["value"]) > 0, st
        assert int(st[0]["cpu"]["usageCoreNanoSeconds"]["value"]) > 0, st
        ps = json.loads(e.crictl("statsp", "-o", "json", "--id", sid).stdout)["stats"]
        assert [x["attributes"]["id"] for x in ps] == [sid], ps
        lx = ps[0]["linux"]
        assert int(lx["memory"]["workingSetBytes"]["value"]) > 0, lx
        assert sorted(x["attributes"]["id"] for x in lx["containers"]) == sorted([s_id, c_id]), lx
        events.terminate()
        seen = events.communicate(timeout=10)[0]
        for cid, kind in [(s_id, "CONTAINER_CREATED_EVENT"), (s_id, "CONTAINER_STARTED_EVENT"),
                          (c_id, "CONTAINER_STARTED_EVENT")]:
            assert any(cid in chunk and kind in chunk for chunk in seen.split("}\n{")), (cid, kind, seen)
        assert sid in seen  # each event has the sandbox's status

        ctrs = json.loads(e.crictl("ps", "-o", "json", "--pod", sid).stdout)["containers"]
        assert sorted(x["metadata"]["name"] for x in ctrs) == ["cli", "srv"], ctrs
        assert all(x["state"] == "CONTAINER_RUNNING" and x["podSandboxId"] == sid for x in ctrs)
        mine = json.loads(e.crictl("ps", "-o", "json", "--label", "role=srv").stdout)["containers"]
        assert [x["id"] for x in mine] == [s_id] and mine[0]["labels"] == {"role": "srv"}, mine
        st = json.loads(e.crictl("inspect", "-o", "json", s_id).stdout)["status"]
        assert st["annotations"] == {"x": "y"} and st["logPath"] == str(tmp / "logs" / "srv.log"), st
        # Logs in the CRI's format at <log_directory>/<log_path>, which is
        # what crictl (and kubelet) read.
        lines = open(tmp / "logs" / "cli.log").read().splitlines()
        assert [l.split(" ", 1)[1] for l in lines] == ["stdout F hello-log", "stderr F err-log"], lines
        assert lines[0][:4].isdigit() and lines[0].split(" ")[0].endswith("Z"), lines
        r = e.crictl("logs", c_id)
        assert r.stdout == "hello-log\n" and r.stderr == "err-log\n", (r.stdout, r.stderr)
        assert st["metadata"]["name"] == "srv" and st["image"]["image"] == "busybox", st

        # UpdateContainerResources: the new memory limit in its cgroup.
        e.crictl("update", "--memory", str(96 << 20), c_id)
        st = json.loads(e.crictl("stats", "-o", "json", "--id", c_id).stdout)["stats"][0]
        assert int(st["memory"]["availableBytes"]["value"]) < 96 << 20, st
        e.crictl("stop", "--timeout", "1", c_id)
        st = json.loads(e.crictl("inspect", "-o", "json", c_id).stdout)["status"]
        assert st["state"] == "CONTAINER_EXITED" and st["exitCode"] in (137, 143), st
        e.crictl("rm", c_id)
        assert [x["id"] for x in json.loads(e.crictl("ps", "-a", "-o", "json").stdout)["containers"]] == [s_id]
        e.crictl("stopp", sid)
        assert json.loads(e.crictl("inspectp", "-o", "json", sid).stdout)["status"]["state"] == "SANDBOX_NOTREADY"
    finally:
        e.crictl("rmp", "-f", sid, check=False)
    assert json.loads(e.crictl("pods", "-o", "json").stdout)["items"] == []
    assert json.loads(e.crictl("ps", "-a", "-o", "json").stdout)["containers"] == []


def run_on_pty(argv, rows, cols, send=b"", timeout=60):
    """argv with a terminal of rows x cols as its stdin/stdout/stderr;
    send is typed once it runs; everything it printed, and its exit code."""
    import fcntl, pty, select, struct, termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out, deadline, sent = b"", time.time() + timeout, False
    while time.time() < deadline:
        if not sent and send:
            time.sleep(2)
            os.write(master, send)
            sent = True
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    return out.decode(errors="replace"), p.wait(timeout=10)


# A minimal WebSocket client (RFC 6455) that asks for v4.channel.k8s.io
# only, reads the server's frames to its close and prints [protocol,
# [channel, text], ...] as JSON.
WS_V4_CLIENT = r'''
import base64, json, os, socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
s = socket.create_connection((u.hostname, u.port), timeout=30)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n").encode())
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
head, buf = buf.split(b"\r\n\r\n", 1)
proto = [l.split(b": ", 1)[1].decode() for l in head.split(b"\r\n") if l.lower().startswith(b"sec-websocket-protocol")]
out = [proto]
def need(n):
    global buf
    while len(buf) < n:
        c = s.recv(65536)
        if not c:
            raise EOFError
        buf += c
while True:
    need(2)
    op, n = buf[0] & 15, buf[1] & 127
    o = 2
    if n == 126:
        need(4); n = int.from_bytes(buf[2:4], "big"); o = 4
    elif n == 127:
        need(10); n = int.from_bytes(buf[2:10], "big"); o = 10
    need(o + n)
    payload, buf = buf[o:o + n], buf[o + n:]
    if op == 8:
        break
    if op == 2 and payload:
        out.append([payload[0], payload[1:].decode()])
print(json.dumps(out))
'''


def attach_and_type(e, cid, transport, line):
    """crictl attach -i: types line, reads what the container printed,
    then closes stdin, which detaches (exit 0); the output."""
    p = subprocess.Popen(e.argv("attach", "-i", "-r", transport, cid), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    p.stdin.write(line + "\n")
    p.stdin.flush()
    out = p.stdout.readline()
    p.stdin.close()
    assert p.wait(timeout=30) == 0, p.stderr.read()
    return out


def test_streaming_exec_attach_port_forward(vm_env):
    """Exec, Attach and PortForward through the streaming server, by
    crictl over SPDY/3.1 (its default, kubelet's) and over WebSocket
    (v5.channel.k8s.io; port-forward as SPDY tunnelled in a WebSocket):
    output on stdout and stderr, exit codes, stdin to EOF, a terminal
    with its size, attaching to a container's stdin (and detaching
    without ending it), port-forward to a server in the pod, logs -f; a
    URL works once."""
    e, tmp = vm_env, vm_env.tmp
    pod = write_json(tmp, "spod.json", {"metadata": {"name": "s", "uid": "us", "namespace": "n"},
                                         "log_directory": str(tmp / "slogs")})
    sid = e.crictl("runp", pod).stdout.strip()
    try:
        web = write_json(tmp, "sweb.json", {
            "metadata": {"name": "web"}, "image": {"image": "busybox"},
            "command": ["httpd"], "args": ["-f", "-p", "8080", "-h", "/var/www"]})
        shell = write_json(tmp, "ssh.json", {
            "metadata": {"name": "sh"}, "image": {"image": "busybox"}, "args": ["sh"],
            "stdin": True, "log_path": "sh.log"})
        w_id = e.crictl("create", "--no-pull", sid, web, pod).stdout.strip()
        s_id = e.crictl("create", "--no-pull", sid, shell, pod).stdout.strip()
        e.crictl("start", w_id)
        e.crictl("start", s_id)
        for transport in ("spdy", "websocket"):
            # output, error output and the exit code
            r = e.crictl("exec", "-r", transport, w_id, "sh", "-c", "echo out; echo err >&2; exit 3",
                         check=False)
            assert r.stdout == "out\n" and "err\n" in r.stderr, (transport, r)
            assert r.returncode != 0 and "command terminated with exit code 3" in r.stderr, (transport, r)
            r = e.crictl("exec", "-r", transport, w_id, "true", check=False)
            assert (r.stdout, r.returncode) == ("", 0), (transport, r)
            # stdin to its end: cat sees EOF and exits
            data = "".join(f"line {i}\n" for i in range(2000))
            r = e.crictl("exec", "-i", "-r", transport, w_id, "cat", input=data)
            assert r.stdout == data, (transport, len(r.stdout))
            # a terminal, with the client's size
            out, code = run_on_pty(e.argv("exec", "-it", "-r", transport, w_id, "sh", "-c", "tty; stty size"),
                                   33, 101)
            assert code == 0 and "/dev/pts/" in out and "33 101" in out, (transport, out)
            # typing into an interactive shell on a terminal
            out, code = run_on_pty(e.argv("exec", "-it", "-r", transport, w_id, "sh"), 24, 80,
                                   send=b"echo $((6*7))\nexit 5\n")
            assert "42" in out and "exit code 5" in out and code != 0, (transport, out, code)
            # attach: what it reads from stdin, its output; the client's
            # end of stdin detaches, the container runs on
            assert attach_and_type(e, s_id, transport, f"echo attached-{transport}") == f"attached-{transport}\n"
            st = json.loads(e.crictl("inspect", "-o", "json", s_id).stdout)["status"]
            assert st["state"] == "CONTAINER_RUNNING", st
            # port-forward: a local port to the pod's 8080
            port = 18200 + (transport == "websocket")
            pf = subprocess.Popen(e.argv("port-forward", "-r", transport, sid, f"{port}:8080"),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                got = None
                for _ in range(40):
                    got = e.d.in_netns(
                        "/usr/bin/python3", "-c",
                        "import urllib.request,sys\n"
                        "for _ in range(3): sys.stdout.buffer.write(urllib.request.urlopen("
                        f"'http://127.0.0.1:{port}/index.html', timeout=10).read())",
                        capture_output=True)
                    if got.returncode == 0:
                        break
                    time.sleep(0.5)
                assert got.stdout == b"hello over the bridge\n" * 3, (transport, got.stderr)
            finally:
                pf.terminate()
                pf.wait(timeout=10)
        # what the shell printed went to its log too: logs -f follows it
        follow = subprocess.Popen(e.argv("logs", "-f", s_id), stdout=subprocess.PIPE, text=True)
        try:
            assert attach_and_type(e, s_id, "spdy", "echo followed") == "followed\n"
            lines = []
            deadline = time.time() + 30
            while "followed" not in lines and time.time() < deadline:
                lines.append(follow.stdout.readline().strip())
            assert "attached-spdy" in lines and "followed" in lines, lines
        finally:
            follow.kill()
            follow.wait()
        # bad requests, and a URL used twice
        r = e.crictl("attach", "-i", w_id, check=False)  # web was created without stdin
        assert r.returncode != 0 and "created without stdin" in r.stderr, r.stderr
        grpcurl = lambda req, method: subprocess.run(
            ["grpcurl", "-plaintext", "-d", json.dumps(req), e.sock,
             "runtime.v1.RuntimeService/" + method], capture_output=True, text=True)
        r = grpcurl({"container_id": w_id, "cmd": ["true"], "stdout": True, "stderr": True, "tty": True}, "Exec")
        assert "InvalidArgument" in r.stderr and "tty and stderr" in r.stderr, r.stderr
        r = grpcurl({"container_id": w_id, "cmd": ["true"], "stdout": True}, "Exec")
        url = json.loads(r.stdout)["url"]
        assert url.startswith("http://127.0.0.1:") and "/exec/" in url, url
        get = lambda u: e.d.in_netns("/usr/bin/python3", "-c",
                                     "import urllib.request,urllib.error\n"
                                     f"try: urllib.request.urlopen(urllib.request.Request('{u}', method='POST'))\n"
                                     "except urllib.error.HTTPError as x: print(x.code, x.read().decode())",
                                     capture_output=True, text=True).stdout
        assert get(url).startswith("400 "), "a request that does not upgrade is refused"
        assert get(url).startswith("404 ") and "once" in get(url), "the URL was used"
        # v4.channel.k8s.io over WebSocket (crictl speaks v5): a client
        # written here reads the channels and the status
        url = json.loads(grpcurl({"container_id": w_id, "cmd": ["sh", "-c", "echo v4-out; exit 7"],
                                  "stdout": True, "stderr": True}, "Exec").stdout)["url"]
        got = e.d.in_netns("/usr/bin/python3", "-c", WS_V4_CLIENT, url, capture_output=True, text=True)
        frames = json.loads(got.stdout or "null")
        assert frames and frames[0] == ["v4.channel.k8s.io"], (frames, got.stderr)
        out = "".join(d for ch, d in frames[1:] if ch == 1)
        status = json.loads("".join(d for ch, d in frames[1:] if ch == 3))
        assert out == "v4-out\n" and status["reason"] == "NonZeroExitCode", frames
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}], status
        # a URL not used within --cri-stream-url-ttl is gone
        late = json.loads(grpcurl({"container_id": w_id, "cmd": ["true"], "stdout": True}, "Exec").stdout)["url"]
        time.sleep(URL_TTL + 1)
        assert get(late).startswith("404 "), "an expired URL"
    finally:
        e.crictl("rmp", "-f", sid, check=False)


def test_container_mounts(vm_env):
    """ContainerConfig.mounts: host directories and files (also through a
    symlink), read-write (the host sees the writes) and read-only, in
    ContainerStatus; removing the container removes its mounts from the
    node; what a VM cannot do is refused by name."""
    e, tmp = vm_env, vm_env.tmp
    data = tmp / "hostdata"
    data.mkdir()
    (data / "in.txt").write_text("from the host\n")
    (tmp / "single.conf").write_text("one file\n")
    link = tmp / "data-link"
    link.symlink_to(data)
    ro = tmp / "rodata"
    ro.mkdir()
    (ro / "x").write_text("x\n")
    pod = write_json(tmp, "mpod.json", {"metadata": {"name": "m", "uid": "um", "namespace": "n"}})
    sid = e.crictl("runp", pod).stdout.strip()
    try:
        ctr = write_json(tmp, "mctr.json", {
            "metadata": {"name": "m"}, "image": {"image": "busybox"}, "args": ["sleep", "600"],
            "mounts": [{"container_path": "/data", "host_path": str(link)},
                       {"container_path": "/etc/single.conf", "host_path": str(tmp / "single.conf"),
                        "readonly": True},
                       {"container_path": "/ro", "host_path": str(ro), "readonly": True}]})
        cid = e.crictl("create", "--no-pull", sid, ctr, pod).stdout.strip()
        e.crictl("start", cid)
        ex = lambda cmd: e.crictl("exec", "-s", cid, "sh", "-c", cmd, check=False)
        assert ex("cat /data/in.txt /etc/single.conf").stdout.rstrip("\n") == "from the host\none file"
        assert ex("echo from the vm > /data/out.txt").returncode == 0
        assert (data / "out.txt").read_text() == "from the vm\n"
        r = ex("touch /ro/y 2>&1; cat /ro/x")
        assert "Read-only file system" in r.stdout and "x\n" in r.stdout, r.stdout
        assert not (ro / "y").exists()
        st = json.loads(e.crictl("inspect", "-o", "json", cid).stdout)["status"]
        assert [(m["containerPath"], m["hostPath"], m.get("readonly", False)) for m in st["mounts"]] == [
            ("/data", str(link), False), ("/etc/single.conf", str(tmp / "single.conf"), True),
            ("/ro", str(ro), True)], st["mounts"]
        # (vesseld's mount namespace: `ip netns exec` gives it one of its own)
        staged = lambda: [l for l in open(f"/proc/{e.d.proc.pid}/mountinfo") if "/cri-mounts/" in l]
        assert len(staged()) == 3
        e.crictl("rm", "-f", cid)
        assert staged() == []
        assert (data / "in.txt").exists()  # the host's files stay
        for bad, word in [({"container_path": "/p", "host_path": str(data), "propagation": 2}, "propagation"),
                          ({"container_path": "/p", "host_path": str(tmp / "missing")}, "missing"),
                          ({"container_path": "rel", "host_path": str(data)}, "container_path")]:
            cfg = write_json(tmp, "mbad.json", {"metadata": {"name": "bad"}, "image": {"image": "busybox"},
                                                "mounts": [bad]})
            r = e.crictl("create", "--no-pull", sid, cfg, pod, check=False)
            assert r.returncode != 0 and word in r.stderr, r.stderr
        assert staged() == []
    finally:
        e.crictl("rmp", "-f", sid, check=False)
    assert not [l for l in open(f"/proc/{e.d.proc.pid}/mountinfo") if "/cri-mounts/" in l]


def test_the_cri_leaves_no_fds_or_threads_behind(vm_env):
    """A daemon left running for months: sandboxes with a container, an
    ExecSync, stats and an events stream that is dropped return vesseld's
    fds and threads to where they were."""
    e, tmp = vm_env, vm_env.tmp
    pid = e.d.proc.pid
    counts = lambda: (len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task")))
    pod = write_json(tmp, "leak-pod.json", {"metadata": {"name": "leak", "uid": "u", "namespace": "n"}})
    os.makedirs(tmp / "leak-mount", exist_ok=True)
    ctr = write_json(tmp, "leak-ctr.json", {"metadata": {"name": "c"}, "image": {"image": "busybox"},
                                            "args": ["sleep", "600"],
                                            "mounts": [{"container_path": "/m", "host_path": str(tmp / "leak-mount")}]})

    def life():
        sid = e.crictl("runp", pod).stdout.strip()
        cid = e.crictl("create", "--no-pull", sid, ctr, pod).stdout.strip()
        e.crictl("start", cid)
        assert e.crictl("exec", "--sync", cid, "true").returncode == 0
        # streaming: an exec over each transport, one left half-way (its
        # client killed), a port-forward whose target refuses
        for transport in ("spdy", "websocket"):
            assert e.crictl("exec", "-r", transport, cid, "echo", "x").stdout == "x\n"
        left = subprocess.Popen(e.argv("exec", "-i", cid, "cat"), stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        left.kill()
        left.wait()
        pf = subprocess.Popen(e.argv("port-forward", sid, "18300:9"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        time.sleep(1)
        e.d.in_netns("/usr/bin/python3", "-c", "import socket; s = socket.create_connection(('127.0.0.1', 18300)); "
                     "s.recv(10)", capture_output=True, timeout=30)
        pf.kill()
        pf.wait()
        e.crictl("stats", "--id", cid)
        e.crictl("statsp", "--id", sid)
        ev = subprocess.Popen(e.argv("events"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        ev.kill()
        ev.wait()
        e.crictl("rmp", "-f", sid)

    import glob
    life()  # the kind's template (built in the background), the guest's paths once
    inputs = os.path.join(e.d.root, "templates", "*", "inputs")
    deadline = time.time() + 120
    while not any("slots 4" in open(f).read() for f in glob.glob(inputs)) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    base = counts()
    for _ in range(3):
        life()
    deadline = time.time() + 30
    while counts() != base and time.time() < deadline:
        time.sleep(0.5)
    assert counts() == base, (counts(), base)
    assert not [l for l in open(f"/proc/{pid}/mountinfo") if "/cri-mounts/" in l]
