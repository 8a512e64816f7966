"""vesseld --metrics-listen: Prometheus' text format on GET /metrics,
scraped by a real Prometheus (Debian's `prometheus`) and queried through
its HTTP API, while a real vesseld pulls from a local docker-registry and
runs containers and a pod in real VMs. Everything listens on the loopback
of a network namespace the test makes (vesseld's); a second vesseld
serves its metrics on a unix socket."""
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse

import grpc
import pytest

import vessel
from registry import Registry
from test_containers import INITRD, KERNEL, busybox_image_tar, run_existing
from vesseld import Vesseld, vesseld_path, wait_for
from vessel.v1 import containers_pb2 as cp
from vessel.v1 import images_pb2, system_pb2, types_pb2

VESSELCTL = os.environ.get("VESSELCTL", "")
METRICS = "127.0.0.1:9323"  # in the test's own network namespace
PROM = "127.0.0.1:9090"

# Every family vesseld serves, with its type.
FAMILIES = {
    "vessel_containers": "gauge",
    "vessel_pods": "gauge",
    "vessel_vm_starts_total": "counter",
    "vessel_vm_start_duration_seconds": "histogram",
    "vessel_pull_bytes_total": "counter",
    "vessel_pull_duration_seconds": "histogram",
    "vessel_pull_errors_total": "counter",
    "vessel_rootfs_builds_total": "counter",
    "vessel_rootfs_build_errors_total": "counter",
    "vessel_rootfs_build_duration_seconds": "histogram",
    "vessel_rpc_requests_total": "counter",
    "vessel_rpc_duration_seconds": "histogram",
    "vessel_process_open_fds": "gauge",
    "vessel_process_threads": "gauge",
    "vessel_process_resident_memory_bytes": "gauge",
    "vessel_content_store_bytes": "gauge",
}
CREATE = "/vessel.v1.Containers/Create"

# One HTTP request, made from inside a network namespace (the test's
# process stays in the host's): prints the status, the Content-Type, then
# the body.
FETCH = r"""
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], method=sys.argv[2])
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        code, ctype, body = r.status, r.headers.get("Content-Type", ""), r.read()
except urllib.error.HTTPError as e:
    code, ctype, body = e.code, e.headers.get("Content-Type", ""), e.read()
sys.stdout.buffer.write(f"{code}\n{ctype}\n".encode() + body)
"""


def http(netns, url, method="GET"):
    r = subprocess.run(["ip", "netns", "exec", netns, "/usr/bin/python3", "-c", FETCH, url, method],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    code, ctype, body = r.stdout.split(b"\n", 2)
    return int(code), ctype.decode(), body


def parse(text: str) -> dict:
    """Samples of the text format: 'name{labels}' -> value. (Label values
    here hold no spaces; promtool checks the format itself.)"""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


class Prometheus:
    """Debian's prometheus in a network namespace, scraping vesseld there
    every second, its storage in a directory of its own."""

    def __init__(self, netns: str, tmp: str):
        self.netns = netns
        self.dir = tempfile.mkdtemp(prefix="vsl-prom-", dir=tmp)
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: vessel\n    static_configs:\n"
                    f"      - targets: ['{METRICS}']\n")
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, "prometheus", f"--config.file={cfg}",
             f"--storage.tsdb.path={self.dir}/data", f"--web.listen-address={PROM}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        ok = wait_for(lambda: self.proc.poll() is None and self._ready(), timeout=60, interval=0.5)
        if not ok:
            self.stop()
            raise RuntimeError("prometheus did not start: " + self.output())

    def _ready(self):
        try:
            return http(self.netns, f"http://{PROM}/-/ready")[0] == 200
        except AssertionError:
            return False

    def output(self):
        self.log.seek(0)
        return self.log.read()[-4000:]

    def query(self, q: str) -> dict:
        """An instant query: {frozenset(labels): value}."""
        code, _, body = http(self.netns, f"http://{PROM}/api/v1/query?" +
                             urllib.parse.urlencode({"query": q}))
        assert code == 200, body
        j = json.loads(body)
        assert j["status"] == "success", j
        return {frozenset(r["metric"].items()): float(r["value"][1]) for r in j["data"]["result"]}

    def value(self, q: str):
        """The query's one value, or None while it has none."""
        r = self.query(q)
        assert len(r) <= 1, r
        return next(iter(r.values())) if r else None

    def eventually(self, q: str, want: float, timeout=30.0):
        """Waits until Prometheus has scraped q's value to be want."""
        got = [None]

        def check():
            got[0] = self.value(q)
            return got[0] == want
        assert wait_for(check, timeout=timeout, interval=0.5), f"{q} = {got[0]}, want {want}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    assert KERNEL and os.path.exists(KERNEL), "VESSEL_KERNEL must name the guest kernel"
    assert INITRD and os.path.exists(INITRD), "VESSEL_INITRD must name the initramfs"
    assert shutil.which("prometheus") and shutil.which("promtool"), \
        "bazel/setup.sh installs Debian's prometheus"
    tmp = str(tmp_path_factory.mktemp("metrics"))
    busybox_image_tar(tmp)  # an OCI layout in tmp/layout, tagged busybox
    with Vesseld("--kernel", KERNEL, "--initrd", INITRD, "--metrics-listen", f"tcp://{METRICS}",
                 netns=True) as d, Registry(netns=d.netns) as reg, \
            Prometheus(d.netns, tmp) as prom, vessel.Client(d.address, timeout=180) as c:
        assert f"serving metrics on tcp://{METRICS}/metrics" in d.log
        ref = f"{reg.host}/metrics/busybox:1"
        subprocess.run(reg.in_netns("skopeo", "copy", "-q", "--dest-tls-verify=false",
                                    f"oci:{tmp}/layout:busybox", f"docker://{ref}"), check=True)
        c.daemon, c.prom, c.ref = d, prom, ref
        yield c


def scrape(c) -> dict:
    code, _, body = http(c.daemon.netns, f"http://{METRICS}/metrics")
    assert code == 200
    return parse(body.decode())


def test_direct_scrape_is_valid_prometheus_text(env):
    d = env.daemon
    code, ctype, body = http(d.netns, f"http://{METRICS}/metrics")
    assert code == 200
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    # Prometheus' own linter: the format parses, and names follow its
    # conventions (_total counters, base units, no _count on counters).
    lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()
    for name, kind in FAMILIES.items():
        assert f"\n# TYPE {name} {kind}\n" in "\n" + text, name
        assert f"# HELP {name} " in text, name
    s = parse(text)
    # Histograms: cumulative buckets ending in +Inf, which equals _count.
    buckets = [(k, v) for k, v in s.items()
               if k.startswith('vessel_vm_start_duration_seconds_bucket{path="cold"')]
    assert buckets[-1][0].endswith('le="+Inf"}')
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert buckets[-1][1] == s['vessel_vm_start_duration_seconds_count{path="cold"}']
    # The process gauges are vesseld's own (ip netns exec execs it: same PID).
    pid = d.proc.pid
    assert abs(s["vessel_process_open_fds"] - len(os.listdir(f"/proc/{pid}/fd"))) <= 3
    with open(f"/proc/{pid}/status") as f:
        threads = int(next(l for l in f if l.startswith("Threads:")).split()[1])
    assert abs(s["vessel_process_threads"] - threads) <= 2
    assert s["vessel_process_resident_memory_bytes"] > 4 << 20
    # Only /metrics, only GET (and HEAD).
    assert http(d.netns, f"http://{METRICS}/")[0] == 404
    assert http(d.netns, f"http://{METRICS}/metrics/x")[0] == 404
    assert http(d.netns, f"http://{METRICS}/metrics", "POST")[0] == 405
    assert http(d.netns, f"http://{METRICS}/metrics", "PUT")[0] == 405
    code, _, body = http(d.netns, f"http://{METRICS}/metrics", "HEAD")
    assert (code, body) == (200, b"")
    # Prometheus scrapes it.
    env.prom.eventually('up{job="vessel"}', 1)
    assert env.prom.value("vessel_process_threads") > 0


def content_bytes(c) -> int:
    blobs = os.path.join(c.daemon.root, "content", "blobs", "sha256")
    return sum(os.path.getsize(os.path.join(blobs, b)) for b in os.listdir(blobs))


def test_pulls(env):
    c = env
    before = scrape(c)
    assert before["vessel_pull_bytes_total"] == 0 and before["vessel_content_store_bytes"] == 0
    for _ in c.images.Pull(images_pb2.ImagesPullRequest(reference=c.ref, insecure=True), timeout=120):
        pass
    with pytest.raises(grpc.RpcError) as e:
        for _ in c.images.Pull(images_pb2.ImagesPullRequest(
                reference=c.ref.replace(":1", ":missing"), insecure=True), timeout=120):
            pass
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    s = scrape(c)
    # The store was empty: what the pull received (manifest, config,
    # layer; plain HTTP, no retries) is what the store now holds.
    stored = content_bytes(c)
    assert stored > 100_000  # busybox-static's layer
    assert s["vessel_pull_bytes_total"] == stored
    assert s["vessel_content_store_bytes"] == stored
    assert s["vessel_pull_duration_seconds_count"] == 2  # failed ones included
    assert s['vessel_pull_duration_seconds_bucket{le="+Inf"}'] == 2
    assert s["vessel_pull_duration_seconds_sum"] > 0
    assert s['vessel_pull_errors_total{code="NOT_FOUND"}'] == 1
    assert s['vessel_rpc_requests_total{method="/vessel.v1.Images/Pull",code="OK"}'] == 1
    assert s['vessel_rpc_requests_total{method="/vessel.v1.Images/Pull",code="NOT_FOUND"}'] == 1
    p = c.prom
    p.eventually("vessel_pull_bytes_total", stored)
    p.eventually('vessel_pull_errors_total{code="NOT_FOUND"}', 1)
    p.eventually("vessel_pull_duration_seconds_count", 2)
    p.eventually("vessel_content_store_bytes", stored)
    p.eventually('sum(vessel_rpc_requests_total{method="/vessel.v1.Images/Pull"})', 2)


PATHS = ("spare", "template", "cold")


def starts(s: dict) -> dict:
    return {p: s[f'vessel_vm_starts_total{{path="{p}"}}'] for p in PATHS}


def start_one(c, **create):
    """Creates, runs and deletes a container; returns its boot mode and
    what vessel_vm_starts_total gained meanwhile, by path."""
    before = starts(scrape(c))
    ct = c.containers.Create(cp.ContainersCreateRequest(
        image=c.ref, process=types_pb2.ProcessSpec(args=["true"]), **create), timeout=180).container
    status, _, _, _ = run_existing(c, ct.id)
    assert status.code == 0
    c.containers.Delete(cp.ContainersDeleteRequest(container_id=ct.id), timeout=60)
    after = starts(scrape(c))
    return ct.vm.boot_mode, {p: after[p] - before[p] for p in PATHS if after[p] != before[p]}


def test_runs_count_vm_starts_by_path_and_rpcs(env, tmp_path):
    c = env
    assert VESSELCTL, "VESSELCTL names vesselctl (bazel test sets it)"
    if not scrape(c)["vessel_pull_bytes_total"]:  # test_pulls did not run before
        for _ in c.images.Pull(images_pb2.ImagesPullRequest(reference=c.ref, insecure=True),
                               timeout=120):
            pass
    assert sum(starts(scrape(c)).values()) == 0
    seen = {}

    def check(mode, gained):
        """Each start counts once, under the path its boot mode says."""
        if mode == cp.BOOT_MODE_COLD:
            assert gained == {"cold": 1}
        else:
            assert mode == cp.BOOT_MODE_TEMPLATE and gained in ({"spare": 1}, {"template": 1})
        for k, v in gained.items():
            seen[k] = seen.get(k, 0) + v
    # The first start of a kind boots cold (and has its template built: a
    # failed build is tried again at the next cold start, so start until
    # one restores).
    mode, gained = start_one(c)
    assert (mode, gained) == (cp.BOOT_MODE_COLD, {"cold": 1})
    check(mode, gained)
    for _ in range(60):
        mode, gained = start_one(c)
        check(mode, gained)
        if mode == cp.BOOT_MODE_TEMPLATE:
            break
        time.sleep(1)
    assert mode == cp.BOOT_MODE_TEMPLATE
    # Warm spares are restored from it; a start takes one over.
    spares = os.path.join(c.daemon.root, "spares", "*", "qemu.pid")
    for _ in range(5):
        if seen.get("spare"):
            break
        wait_for(lambda: glob.glob(spares), timeout=60)
        check(*start_one(c))
    assert seen.get("spare"), seen
    # A container with a volume never takes a spare (they have no shares):
    # cold until its kind's template is built, then restored from it.
    vol = types_pb2.Mount(type="bind", source=str(tmp_path), destination="/data")
    for _ in range(60):
        mode, gained = start_one(c, mounts=[vol])
        assert gained == ({"template": 1} if mode == cp.BOOT_MODE_TEMPLATE else {"cold": 1})
        check(mode, gained)
        if mode == cp.BOOT_MODE_TEMPLATE:
            break
        time.sleep(1)
    assert mode == cp.BOOT_MODE_TEMPLATE
    # vesselctl run --rm counts like any other.
    before = sum(starts(scrape(c)).values())
    r = subprocess.run([VESSELCTL, "--host", c.daemon.address, "run", "--rm", c.ref, "true"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    s = scrape(c)
    got = starts(s)
    runs = sum(got.values())
    assert runs == before + 1
    assert got["spare"] >= 1 and got["template"] >= 1 and got["cold"] >= 2
    assert all(seen[p] <= got[p] <= seen[p] + 1 for p in PATHS), (seen, got)
    for path, n in got.items():
        assert s[f'vessel_vm_start_duration_seconds_count{{path="{path}"}}'] == n
        assert s[f'vessel_vm_start_duration_seconds_bucket{{path="{path}",le="+Inf"}}'] == n
    assert s['vessel_vm_start_duration_seconds_sum{path="cold"}'] > 0.05 * got["cold"]
    assert s[f'vessel_rpc_requests_total{{method="{CREATE}",code="OK"}}'] == runs
    assert s[f'vessel_rpc_duration_seconds_count{{method="{CREATE}"}}'] == runs
    assert s["vessel_rootfs_builds_total"] == 1  # then cached
    assert s["vessel_rootfs_build_duration_seconds_count"] == 1
    assert s["vessel_rootfs_build_errors_total"] == 0
    p = c.prom
    p.eventually("sum(vessel_vm_starts_total)", runs)
    for path in PATHS:
        p.eventually(f'vessel_vm_starts_total{{path="{path}"}}', got[path])
    p.eventually(f'vessel_rpc_requests_total{{method="{CREATE}",code="OK"}}', runs)
    p.eventually(f'vessel_rpc_duration_seconds_count{{method="{CREATE}"}}', runs)
    p.eventually("sum(vessel_vm_start_duration_seconds_count)", runs)
    p.eventually("vessel_rootfs_builds_total", 1)
    # A quantile of the cold boots is a real number of seconds.
    q = p.value('histogram_quantile(0.5, vessel_vm_start_duration_seconds_bucket{path="cold"})')
    assert q is not None and 0 < q <= 60


def test_containers_by_state_and_pods(env):
    c = env
    p = c.prom
    ct = c.containers.Create(cp.ContainersCreateRequest(
        image=c.ref, process=types_pb2.ProcessSpec(args=["sleep", "600"])), timeout=180).container
    p.eventually('vessel_containers{state="created"}', 1)
    c.containers.Start(cp.ContainersStartRequest(container_id=ct.id), timeout=60)
    p.eventually('vessel_containers{state="running"}', 1)
    assert scrape(c)['vessel_containers{state="running"}'] == 1
    p.eventually('vessel_containers{state="created"}', 0)
    c.containers.Stop(cp.ContainersStopRequest(container_id=ct.id, timeout_ms=1000), timeout=60)
    p.eventually('vessel_containers{state="running"}', 0)
    p.eventually('vessel_containers{state="stopped"}', 1)
    c.containers.Delete(cp.ContainersDeleteRequest(container_id=ct.id), timeout=60)
    p.eventually("sum(vessel_containers)", 0)
    assert scrape(c)["vessel_pods"] == 0
    c.pods.create("metricspod", slots=1)
    p.eventually("vessel_pods", 1)
    assert scrape(c)["vessel_pods"] == 1
    c.pods.delete("metricspod", force=True)
    p.eventually("vessel_pods", 0)


def test_unix_socket_and_codes(tmp_path):
    """No VMs: a vesseld serving its metrics on a unix socket counts each
    RPC by method and code."""
    sock = tempfile.mktemp(prefix="vsl-m-", suffix=".sock", dir="/tmp")
    with Vesseld("--metrics-listen", f"unix://{sock}", "--spares", "0") as d, \
            vessel.Client(d.address) as c:
        for _ in range(3):
            c.version()
        with pytest.raises(grpc.RpcError) as e:
            c.containers.Inspect(cp.ContainersInspectRequest(container_id="nope"))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND

        def get():
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            s.close()
            head, body = data.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200"), head
            return parse(body.decode())
        version = 'vessel_rpc_requests_total{method="/vessel.v1.System/Version",code="OK"}'
        inspect = ('vessel_rpc_requests_total{method="/vessel.v1.Containers/Inspect",'
                   'code="NOT_FOUND"}')
        # A call is counted just after its status went out, which the client
        # may already have: wait for the last one's count too.
        def counted():
            m = get()
            return m.get(version) == 3 and m.get(inspect) == 1
        assert wait_for(counted, timeout=5), get()
        s = get()
        assert s[inspect] == 1
        assert s['vessel_rpc_duration_seconds_count{method="/vessel.v1.System/Version"}'] == 3
        assert not any("Containers/Create" in k for k in s)  # only methods called
        # A path no service has is counted as "unknown", never by its name.
        with grpc.insecure_channel(d.address) as ch:
            with pytest.raises(grpc.RpcError) as e:
                ch.unary_unary("/made.up.Service/Method")(b"", timeout=10)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert wait_for(lambda: get().get(
            'vessel_rpc_requests_total{method="unknown",code="UNIMPLEMENTED"}') == 1, timeout=5)
        assert not any("made.up" in k for k in get())
    assert not os.path.exists(sock)  # removed at exit


def test_bad_metrics_address_is_refused(tmp_path):
    r = subprocess.run([vesseld_path(), "--root", str(tmp_path / "r"),
                        "--metrics-listen", "127.0.0.1:9323"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2
    assert "--metrics-listen" in r.stderr and "127.0.0.1:9323" in r.stderr
    # A port already taken: vesseld says so and exits (no half-started daemon).
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    sock = tempfile.mktemp(prefix="vsl-", suffix=".sock", dir="/tmp")
    r = subprocess.run([vesseld_path(), "--root", str(tmp_path / "r"), "--listen", f"unix://{sock}",
                        "--spares", "0", "--metrics-listen", f"tcp://127.0.0.1:{port}"],
                       capture_output=True, text=True, timeout=60)
    taken.close()
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert f"--metrics-listen tcp://127.0.0.1:{port}" in out and "cannot listen" in out, out
    assert not os.path.exists(sock)
