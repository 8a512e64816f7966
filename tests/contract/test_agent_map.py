"""proto/README.md's "Host RPC -> agent RPC mapping" table, checked against
the agent calls vesseld really makes (--trace-agent-calls): every call a
host RPC made is in its row, and every name of its row not in brackets was
called. Real vesseld and VMs, in a network namespace of its own."""
import io
import os
import re
import tarfile
import time

import vessel
from contract import ARGS, IMAGE, KERNEL, SRC
from test_containers import busybox_image_tar
from vesseld import Vesseld
from vessel.v1 import containers_pb2 as cp
from vessel.v1 import types_pb2


def table():
    """{"Containers.Create": (required names, optional names)} from the README."""
    with open(os.path.join(SRC, "proto", "README.md")) as f:
        text = f.read()
    section = text.split("## Host RPC → agent RPC mapping")[1].split("\n## ")[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `((?:Containers|Pods)\.\w+)` \| (.*?) \|", line)
        if not m:
            continue
        col = m.group(2)
        optional = set()
        for part in re.findall(r"\[([^\]]*)\]", col):
            optional |= set(re.findall(r"Agent\.\w+", part))
        required = set(re.findall(r"Agent\.\w+", re.sub(r"\[[^\]]*\]", "", col)))
        rows[m.group(1)] = (required, optional)
    return rows


def traced(path):
    """{"Containers.Create": {"Agent.Info", ...}} from the trace file."""
    calls = {}
    with open(path) as f:
        for line in f:
            host, agent = line.split()
            if host == "-":
                continue
            name = host.split("/vessel.v1.")[1].replace("/", ".")
            calls.setdefault(name, set()).add(agent.split("/vessel.v1.")[1].replace("/", "."))
    return calls


def test_the_table_is_what_vesseld_does(tmp_path):
    assert KERNEL and os.path.exists(KERNEL), "VESSEL_KERNEL must name the guest kernel"
    rows = table()
    assert len(rows) == 23, sorted(rows)
    trace = str(tmp_path / "trace")
    with Vesseld(*ARGS, "--trace-agent-calls", trace, netns=True) as d, vessel.Client(d.address, timeout=180) as c:
        c.images.load(busybox_image_tar(str(tmp_path / "img")), reference=IMAGE)
        s = c.containers.stub
        # Every Containers RPC at least once, with its optional paths.
        ct = c.containers.create(IMAGE, ["sh", "-c", "cat; sleep 600"], tty=True)
        proc = ct.attach(stdin=True, logs=True)
        ct.start()
        proc.resize(30, 90)
        s.Resize(cp.ContainersResizeRequest(container_id=ct.id,
                                            size=types_pb2.ConsoleSize(rows=40, cols=100)))
        s.CloseStdin(cp.ContainersCloseStdinRequest(container_id=ct.id))
        first = ct.exec(["true"])
        first.wait(timeout=60)
        ct.exec(["sleep", "1"]).wait(timeout=60)
        s.Signal(cp.ContainersSignalRequest(container_id=ct.id, signal=28))
        s.Stats(cp.ContainersStatsRequest(container_id=ct.id))
        s.Update(cp.ContainersUpdateRequest(container_id=ct.id, resources=types_pb2.Resources(
            memory_bytes=100 << 20)))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            info = tarfile.TarInfo("f")
            info.size = 1
            t.addfile(info, io.BytesIO(b"x"))
        ct.copy_in("/tmp", buf.getvalue())
        ct.copy_out("/tmp/f", io.BytesIO())
        list(s.Logs(cp.ContainersLogsRequest(container_id=ct.id)))
        s.List(cp.ContainersListRequest(all=True))
        s.Inspect(cp.ContainersInspectRequest(container_id=ct.id))
        ct.stop(grace=5)
        s.Wait(cp.ContainersWaitRequest(container_id=ct.id), timeout=60)
        ct.start()  # from STOPPED
        s.Delete(cp.ContainersDeleteRequest(container_id=ct.id, force=True))
        # Several networks: the guest's NICs found and named eth0, eth1.
        c.networks.create("map-b")
        two = c.containers.create(IMAGE, ["true"], networks=["default", "map-b"])
        two.delete(force=True)
        # A pod: its VM with a network and a volume, a container in it
        # created, started, stopped, started again (re-created in the
        # guest), deleted; a second one left for the forced delete.
        vol = str(tmp_path / "vol")
        os.mkdir(vol)
        c.pods.create("map-pod", networks=["default", "map-b"], volumes=[vol])
        c.pods.list()
        c.pods.inspect("map-pod")
        inpod = c.containers.create(IMAGE, ["sleep", "600"], id="in-pod", pod="map-pod",
                                    mounts=[f"{vol}:/v"])
        inpod.start()
        c.pods.stats("map-pod")
        inpod.stop(grace=1)
        inpod.start()
        inpod.delete(force=True)
        c.containers.create(IMAGE, ["sleep", "600"], id="in-pod2", pod="map-pod").start()
        c.pods.stop("map-pod", grace=1)
        c.pods.delete("map-pod", force=True)
        c.networks.delete("map-b")
        time.sleep(1)
    calls = traced(trace)
    for rpc, (required, optional) in sorted(rows.items()):
        made = calls.get(rpc, set())
        assert made <= required | optional, f"{rpc} made {made - required - optional} " \
                                            f"the table does not list"
        assert required <= made, f"{rpc}: the table says {required - made}, not made"
