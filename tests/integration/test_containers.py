"""Containers in real QEMU VMs (real kernel, real vminitd) through the
Python client against a real vesseld."""
import io
import os
import platform
import shutil
import subprocess
import tarfile
import threading
import time

import grpc
import pytest

import vessel
from oci_layout import Layout, tar_add, tar_layer
from vesseld import Vesseld, wait_for
from vessel.v1 import containers_pb2 as cp
from vessel.v1 import events_pb2, images_pb2, types_pb2

KERNEL = os.environ.get("VESSEL_KERNEL", "")
FETCH = ("import sys, urllib.request; "
         "sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=3).read())")
INITRD = os.environ.get("VESSEL_INITRD", "")


def busybox_image_tar(tmp, config_extra=None, without=()) -> bytes:
    """An OCI archive of a busybox-static image with applet symlinks;
    config_extra: more image config fields; without: applets left out."""
    lay = Layout(os.path.join(tmp, "layout"))
    with open("/bin/busybox", "rb") as f:
        bb = f.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        add = lambda *a, **kw: tar_add(t, *a, **kw)
        for d in ["bin", "etc", "tmp", "root", "var", "var/www"]:
            add(d)
        add("bin/busybox", bb)
        for applet in ["sh", "echo", "cat", "sleep", "ls", "id", "hostname", "env", "true",
                       "false", "ip", "wget", "httpd", "head", "wc", "kill", "pwd", "tar",
                       "od", "date", "sync", "md5sum", "dd", "nslookup"]:
            if applet not in without:
                add(f"bin/{applet}", link="busybox")
        add("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
            mode=0o644)
        add("etc/group", b"root:x:0:\nnogroup:x:65534:\n", mode=0o644)
        add("var/www/index.html", b"hello over the bridge\n", mode=0o644)
    lay.tag(lay.image([buf.getvalue()], compression="gzip",
                      config_extra={"Cmd": ["echo", "hello from a vessel VM"],
                                    "Env": ["PATH=/bin", "FROM_IMAGE=1"],
                                    **(config_extra or {})}), "busybox")
    return lay.archive()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    assert KERNEL and os.path.exists(KERNEL), "VESSEL_KERNEL must name the guest kernel"
    assert INITRD and os.path.exists(INITRD), "VESSEL_INITRD must name the initramfs"
    d, c = daemon_with_image(str(tmp_path_factory.mktemp("img")))
    with d, c:
        yield c


def daemon_with_image(tmp, *flags):
    """A vesseld (in a network namespace of its own, with the guest kernel
    and initramfs and these flags) holding busybox:test, and a client of it
    (c.daemon is the vesseld); both to be used in a with."""
    d = Vesseld("--kernel", KERNEL, "--initrd", INITRD, *flags, netns=True)
    c = vessel.Client(d.address, timeout=180)
    c.images.Import(iter([
        images_pb2.ImagesImportRequest(header=images_pb2.ImagesImportHeader(reference="busybox:test")),
        images_pb2.ImagesImportRequest(data=busybox_image_tar(tmp))]), timeout=60)
    c.daemon = d
    return d, c


def run_existing(c, cid):
    """Attach to a created container, start it, collect its output."""
    att = c.containers.Attach(iter([cp.ContainersAttachRequest(
        open=cp.ContainersAttachOpen(container_id=cid, logs=True))]), timeout=120)
    c.containers.Start(cp.ContainersStartRequest(container_id=cid), timeout=60)
    out, err, status = b"", b"", None
    for m in att:
        if m.HasField("frame"):
            if m.frame.stream == types_pb2.STDIO_STREAM_STDERR:
                err += m.frame.data
            else:
                out += m.frame.data
        else:
            status = m.exit
    return status, out, err, cid


def run(c, args=None, id=None, **kw):
    """Create + start + wait; returns (exit status, stdout, stderr, id)."""
    proc = types_pb2.ProcessSpec(args=args or [], **kw.pop("process", {}))
    ct = c.containers.Create(cp.ContainersCreateRequest(
        id=id or "", image="busybox:test", process=proc, **kw), timeout=180).container
    return run_existing(c, ct.id)


def test_run_captures_output_and_exit_code(env):
    status, out, _, cid = run(env)
    assert out == b"hello from a vessel VM\n"
    assert status.code == 0
    ct = env.containers.Inspect(cp.ContainersInspectRequest(container_id=cid)).container
    assert ct.state == cp.CONTAINER_STATE_STOPPED and ct.exit_status.code == 0
    env.containers.Delete(cp.ContainersDeleteRequest(container_id=cid))
    status, out, err, cid = run(env, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (status.code, out, err) == (3, b"out\n", b"err\n")
    env.containers.Delete(cp.ContainersDeleteRequest(container_id=cid))


def test_guest_cpu_under_tcg_has_no_erms(env):
    """Under TCG the guest CPU is "max" without ERMS/FSRM (server/vm/vm.c:
    TCG runs `rep movsb` a byte per iteration), and keeps what images
    built for x86-64-v2/v3 need. Checked in a container (a restored VM)."""
    if env.info().accelerator != "tcg" or platform.machine() != "x86_64":
        pytest.skip("the CPU model is chosen for TCG on x86_64 hosts")
    status, out, _, cid = run(env, ["sh", "-c", "grep -m1 '^flags' /proc/cpuinfo"])
    env.containers.Delete(cp.ContainersDeleteRequest(container_id=cid))
    assert status.code == 0
    flags = set(out.decode().split(":", 1)[1].split())
    assert "erms" not in flags and "fsrm" not in flags
    assert {"sse4_2", "popcnt", "avx2", "bmi2"} <= flags


def test_image_config_merged(env):
    status, out, _, cid = run(env, ["sh", "-c", "echo $FROM_IMAGE $MINE $HOSTNAME; pwd"],
                              hostname="box", process={"env": ["MINE=2"], "cwd": "/tmp"})
    assert out == b"1 2 box\n/tmp\n"
    env.containers.Delete(cp.ContainersDeleteRequest(container_id=cid))


def test_exec_logs_stats_stop_delete(env):
    c = env
    ct = c.containers.Create(cp.ContainersCreateRequest(
        id="long", image="busybox:test",
        process=types_pb2.ProcessSpec(args=["sh", "-c", "echo started; sleep 600"])),
        timeout=180).container
    c.containers.Start(cp.ContainersStartRequest(container_id="long"))
    ex = c.containers.Exec(cp.ContainersExecRequest(
        container_id="long", process=types_pb2.ProcessSpec(args=["cat", "/etc/hostname"])))
    att = c.containers.Attach(iter([cp.ContainersAttachRequest(open=cp.ContainersAttachOpen(
        container_id="long", exec_id=ex.exec_id, logs=True))]))
    frames = list(att)
    assert frames[-1].exit.code == 0
    time.sleep(0.5)
    logs = b"".join(e.data for m in c.containers.Logs(cp.ContainersLogsRequest(
        container_id="long")) for e in m.entries)
    assert logs == b"started\n"
    stats = c.containers.Stats(cp.ContainersStatsRequest(container_id="long")).statistics
    assert stats.memory.usage_bytes > 0
    running = c.containers.List(cp.ContainersListRequest()).containers
    assert [x.id for x in running] == ["long"] and running[0].state == cp.CONTAINER_STATE_RUNNING
    with pytest.raises(grpc.RpcError) as e:
        c.containers.Delete(cp.ContainersDeleteRequest(container_id="long"))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    t0 = time.monotonic()
    st = c.containers.Stop(cp.ContainersStopRequest(container_id="long", timeout_ms=2000),
                           timeout=60).exit_status
    assert st.signal in (15, 9) and time.monotonic() - t0 < 30
    qemu = ct.vm.qemu_pid
    c.containers.Delete(cp.ContainersDeleteRequest(container_id="long"))
    assert not os.path.exists(f"/proc/{qemu}") or "zombie" in open(f"/proc/{qemu}/status").read().lower()
    assert not os.path.exists(os.path.join(c.daemon.root, "containers", "long"))
    with pytest.raises(grpc.RpcError) as e:
        c.containers.Inspect(cp.ContainersInspectRequest(container_id="long"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_stopped_container_disk_keeps_its_writes(env):
    """The VM of an exited container is synced before it ends: the writes
    are in the container's disk on the host (a Delete need not wait)."""
    status, _, err, cid = run(env, ["sh", "-c", "echo kept > /root/kept.txt"])
    assert status.code == 0, err
    disk = os.path.join(env.daemon.root, "containers", cid, "rootfs.ext4")

    def kept():
        r = subprocess.run(["debugfs", "-R", "cat /root/kept.txt", disk],
                           capture_output=True, text=True)
        return r.stdout == "kept\n"
    assert wait_for(kept, timeout=20)
    env.containers.Delete(cp.ContainersDeleteRequest(container_id=cid))


def test_bad_requests_are_clear_errors(env):
    c = env
    cases = [
        (cp.ContainersCreateRequest(image="nope:1"), grpc.StatusCode.NOT_FOUND),
        (cp.ContainersCreateRequest(image="busybox:test", id="bad id!"),
         grpc.StatusCode.INVALID_ARGUMENT),
        (cp.ContainersCreateRequest(image="busybox:test", resources=types_pb2.Resources(
            memory_bytes=-1)), grpc.StatusCode.INVALID_ARGUMENT),
        (cp.ContainersCreateRequest(image="busybox:test", mounts=[types_pb2.Mount(
            type="tmpfs", destination="relative")]), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for req, code in cases:
        with pytest.raises(grpc.RpcError) as e:
            c.containers.Create(req, timeout=60)
        assert e.value.code() == code, req
    with pytest.raises(grpc.RpcError) as e:
        c.containers.Start(cp.ContainersStartRequest(container_id="ghost"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_missing_executable_is_an_error(env):
    c = env
    c.containers.Create(cp.ContainersCreateRequest(
        id="noexe", image="busybox:test",
        process=types_pb2.ProcessSpec(args=["/no/such/binary"])), timeout=180)
    with pytest.raises(grpc.RpcError) as e:
        c.containers.Start(cp.ContainersStartRequest(container_id="noexe"), timeout=60)
    assert "no/such/binary" in e.value.details()
    c.containers.Delete(cp.ContainersDeleteRequest(container_id="noexe", force=True))
    # The same name again at once: its tap (same name) was just removed.
    status, out, _, _ = run(c, ["echo", "again"], id="noexe")
    assert (status.code, out) == (0, b"again\n")
    c.containers.Delete(cp.ContainersDeleteRequest(container_id="noexe"))


def test_events_in_order(env):
    c = env
    got = []
    stream = c.containers and env.events.Subscribe(events_pb2.EventsSubscribeRequest(
        container_id="evc"), timeout=180)

    def reader():
        try:
            for m in stream:
                got.append(m.event.type)
        except grpc.RpcError:
            pass
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    time.sleep(0.3)
    run(c, ["true"], id="evc")
    c.containers.Delete(cp.ContainersDeleteRequest(container_id="evc"))
    deadline = time.time() + 10
    while len(got) < 4 and time.time() < deadline:
        time.sleep(0.1)
    stream.cancel()
    assert got == [types_pb2.EVENT_TYPE_CONTAINER_CREATED, types_pb2.EVENT_TYPE_CONTAINER_STARTED,
                   types_pb2.EVENT_TYPE_CONTAINER_EXITED, types_pb2.EVENT_TYPE_CONTAINER_DELETED]


def test_five_containers_concurrently(env):
    results = {}

    def one(i):
        status, out, _, cid = run(env, ["echo", f"c{i}"], id=f"par{i}")
        results[i] = (status.code, out)
        env.containers.Delete(cp.ContainersDeleteRequest(container_id=cid))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: (0, f"c{i}\n".encode()) for i in range(5)}


def test_networking_host_container_and_published_port(env):
    c, d = env, env.daemon
    web = c.containers.Create(cp.ContainersCreateRequest(
        id="web", image="busybox:test",
        process=types_pb2.ProcessSpec(args=["httpd", "-f", "-p", "80", "-h", "/var/www"]),
        ports=[cp.PortMapping(host_ip="127.0.0.1", container_port=80)]), timeout=180).container
    c.containers.Start(cp.ContainersStartRequest(container_id="web"))
    ip = web.networks[0].ip_address
    port = web.ports[0].host_port
    assert ip.startswith("10.88.") and port > 0

    def fetch(url):
        for _ in range(50):  # httpd needs a moment to listen
            r = d.in_netns("/usr/bin/python3", "-c", FETCH, url, capture_output=True)
            if r.returncode == 0:
                return r.stdout
            time.sleep(0.2)
        return r.stdout + r.stderr
    # host (vesseld's namespace) -> container, by its IP: no port forwarding
    assert fetch(f"http://{ip}/index.html") == b"hello over the bridge\n"
    # a published port on the namespace's loopback
    assert fetch(f"http://127.0.0.1:{port}/index.html") == b"hello over the bridge\n"
    # container -> container by IP
    # (no -T: busybox 1.35 wget crashes with it)
    status, out, _, cid = run(c, ["wget", "-qO-", f"http://{ip}/index.html"])
    assert (status.code, out) == (0, b"hello over the bridge\n")
    c.containers.Delete(cp.ContainersDeleteRequest(container_id=cid))
    c.containers.Delete(cp.ContainersDeleteRequest(container_id="web", force=True))
    # delete released everything: no tap left, the IP is free again
    links = d.in_netns("ip", "-br", "link", capture_output=True, text=True).stdout
    assert "vt" not in "".join(l.split()[0][:2] for l in links.splitlines())
    from vessel.v1 import networks_pb2
    net = c.networks.Inspect(networks_pb2.NetworksInspectRequest(name="default")).network
    assert dict(net.containers) == {}


def test_attach_detach_reattach_and_follow_logs(env):
    c = env
    c.containers.Create(cp.ContainersCreateRequest(
        id="chat", image="busybox:test", process=types_pb2.ProcessSpec(
            args=["sh", "-c", "while read line; do echo got:$line; done; echo bye"])),
        timeout=180)
    c.containers.Start(cp.ContainersStartRequest(container_id="chat"))
    import queue
    q1 = queue.Queue()

    def frames(q):
        yield cp.ContainersAttachRequest(open=cp.ContainersAttachOpen(
            container_id="chat", attach_stdin=True, attach_stdout=True))
        while True:
            item = q.get()
            if item is None:
                return
            yield item
    a1 = c.containers.Attach(frames(q1), timeout=60)
    q1.put(cp.ContainersAttachRequest(frame=types_pb2.StdioFrame(
        stream=types_pb2.STDIO_STREAM_STDIN, data=b"one\n")))
    assert next(a1).frame.data == b"got:one\n"
    a1.cancel()  # detach: the container keeps running
    time.sleep(0.3)
    ct = c.containers.Inspect(cp.ContainersInspectRequest(container_id="chat")).container
    assert ct.state == cp.CONTAINER_STATE_RUNNING
    # follow the logs while a second client attaches, writes and closes stdin
    follow = c.containers.Logs(cp.ContainersLogsRequest(container_id="chat", follow=True),
                               timeout=60)
    q2 = queue.Queue()
    a2 = c.containers.Attach(frames(q2), timeout=60)
    q2.put(cp.ContainersAttachRequest(frame=types_pb2.StdioFrame(
        stream=types_pb2.STDIO_STREAM_STDIN, data=b"two\n", eof=True)))
    rest = list(a2)
    q2.put(None)
    # (output arrives in chunks as the guest read it: compare the bytes)
    assert b"".join(m.frame.data for m in rest if m.HasField("frame")) == b"got:two\nbye\n"
    assert rest[-1].exit.code == 0
    logged = b"".join(e.data for m in follow for e in m.entries)  # ends: container stopped
    assert logged == b"got:one\ngot:two\nbye\n"
    c.containers.Delete(cp.ContainersDeleteRequest(container_id="chat"))


def test_qemu_killed_from_outside(env):
    c = env
    events = c.events.Subscribe(events_pb2.EventsSubscribeRequest(container_id="victim"),
                                timeout=120)
    ct = c.containers.Create(cp.ContainersCreateRequest(
        id="victim", image="busybox:test", process=types_pb2.ProcessSpec(args=["sleep", "600"])),
        timeout=180).container
    c.containers.Start(cp.ContainersStartRequest(container_id="victim"))
    os.kill(ct.vm.qemu_pid, 9)
    st = c.containers.Wait(cp.ContainersWaitRequest(container_id="victim"), timeout=60).exit_status
    assert st.code == -1 and "lost" in st.reason
    seen = []
    for m in events:
        seen.append(m.event.type)
        if m.event.type == types_pb2.EVENT_TYPE_CONTAINER_EXITED:
            assert m.event.exit_status.reason == st.reason
            break
    events.cancel()
    assert types_pb2.EVENT_TYPE_CONTAINER_EXITED in seen
    for _ in range(50):
        got = c.containers.Inspect(cp.ContainersInspectRequest(container_id="victim")).container
        if not got.HasField("vm"):
            break
        time.sleep(0.1)
    assert got.state == cp.CONTAINER_STATE_STOPPED and not got.HasField("vm")
    c.containers.Delete(cp.ContainersDeleteRequest(container_id="victim"))


@pytest.mark.parametrize("how", [signal_name for signal_name in ("SIGTERM", "SIGKILL")])
def test_restart_readopts_running_vms(env, tmp_path, how):
    import signal as sig
    data = busybox_image_tar(str(tmp_path))
    root = str(tmp_path / "root")
    first = Vesseld("--kernel", KERNEL, "--initrd", INITRD, netns=True, root=root)
    try:
        with vessel.Client(first.address, timeout=180) as c:
            def gen():
                yield images_pb2.ImagesImportRequest(
                    header=images_pb2.ImagesImportHeader(reference="busybox:test"))
                yield images_pb2.ImagesImportRequest(data=data)
            c.images.Import(gen(), timeout=60)
            c.containers.Create(cp.ContainersCreateRequest(
                id="keep", image="busybox:test", process=types_pb2.ProcessSpec(
                    args=["sh", "-c", "echo before; read x; echo after:$x"])), timeout=180)
            c.containers.Start(cp.ContainersStartRequest(container_id="keep"))
            doomed = c.containers.Create(cp.ContainersCreateRequest(
                id="doomed", image="busybox:test",
                process=types_pb2.ProcessSpec(args=["sleep", "600"])), timeout=180).container
            c.containers.Start(cp.ContainersStartRequest(container_id="doomed"))
            time.sleep(0.5)
        first.stop(getattr(sig, how))
        os.kill(doomed.vm.qemu_pid, 9)  # dies while no vesseld watches
        second = Vesseld("--kernel", KERNEL, "--initrd", INITRD, netns=first.netns, root=root)
        try:
            with vessel.Client(second.address, timeout=180) as c:
                keep = c.containers.Inspect(cp.ContainersInspectRequest(container_id="keep")).container
                assert keep.state == cp.CONTAINER_STATE_RUNNING, keep
                gone = c.containers.Inspect(cp.ContainersInspectRequest(
                    container_id="doomed")).container
                assert gone.state == cp.CONTAINER_STATE_STOPPED
                assert "not running" in gone.exit_status.reason
                # The re-adopted init still takes stdin and its output is logged.
                att = c.containers.Attach(iter([
                    cp.ContainersAttachRequest(open=cp.ContainersAttachOpen(
                        container_id="keep", attach_stdin=True, attach_stdout=True)),
                    cp.ContainersAttachRequest(frame=types_pb2.StdioFrame(
                        stream=types_pb2.STDIO_STREAM_STDIN, data=b"yes\n"))]), timeout=60)
                out = [m for m in att]
                assert out[-1].exit.code == 0
                logs = b"".join(e.data for m in c.containers.Logs(cp.ContainersLogsRequest(
                    container_id="keep")) for e in m.entries)
                assert logs == b"before\nafter:yes\n"
                for cid in ("keep", "doomed"):
                    c.containers.Delete(cp.ContainersDeleteRequest(container_id=cid, force=True))
        finally:
            second.cleanup()
    finally:
        first.cleanup()


def test_volumes_read_write_and_read_only(env, tmp_path):
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "given.txt").write_text("from the host\n")
    status, out, err, cid = run(env, ["sh", "-c",
                                      "cat /in/given.txt; echo written > /out/made.txt; "
                                      "echo x > /in/nope.txt || echo refused"],
                                mounts=[types_pb2.Mount(type="bind", source=str(rw), destination="/out"),
                                        types_pb2.Mount(type="bind", source=str(ro), destination="/in",
                                                        options=["ro"])])
    assert status.code == 0, err
    assert out.startswith(b"from the host\n") and out.endswith(b"refused\n")
    assert (rw / "made.txt").read_text() == "written\n"
    assert not (ro / "nope.txt").exists()
    env.containers.Delete(cp.ContainersDeleteRequest(container_id=cid))
    with pytest.raises(grpc.RpcError) as e:
        env.containers.Create(cp.ContainersCreateRequest(image="busybox:test", mounts=[
            types_pb2.Mount(type="bind", source="/no/such/dir", destination="/x")]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_copy_in_and_out(env):
    c = env
    c.containers.Create(cp.ContainersCreateRequest(
        id="cpy", image="busybox:test", process=types_pb2.ProcessSpec(args=["sleep", "600"])),
        timeout=180)
    c.containers.Start(cp.ContainersStartRequest(container_id="cpy"))
    payload = tar_layer({"dir/a.txt": b"alpha\n", "dir/b.bin": bytes(range(256)) * 4000})

    def chunks():
        yield cp.ContainersCopyInRequest(header=cp.ContainersCopyInHeader(
            container_id="cpy", path="/tmp"))
        for i in range(0, len(payload), 100000):
            yield cp.ContainersCopyInRequest(data=payload[i:i + 100000])
    r = c.containers.CopyIn(chunks(), timeout=60)
    assert r.bytes_received == len(payload)
    out = b"".join(m.data for m in c.containers.CopyOut(cp.ContainersCopyOutRequest(
        container_id="cpy", path="/tmp/dir"), timeout=60))
    with tarfile.open(fileobj=io.BytesIO(out)) as t:
        got = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    assert got == {"dir/a.txt": b"alpha\n", "dir/b.bin": bytes(range(256)) * 4000}
    with pytest.raises(grpc.RpcError) as e:
        list(c.containers.CopyOut(cp.ContainersCopyOutRequest(container_id="cpy",
                                                               path="/no/such"), timeout=60))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "/no/such" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        list(c.containers.CopyOut(cp.ContainersCopyOutRequest(container_id="cpy",
                                                               path="relative"), timeout=60))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    c.containers.Delete(cp.ContainersDeleteRequest(container_id="cpy", force=True))


def test_nat_for_egress(env):
    """A non-internal network masquerades egress. "Outside" is a second
    namespace made here, linked to vesseld's by a veth pair."""
    from vessel.v1 import networks_pb2
    c, d = env, env.daemon
    out_ns = d.netns + "o"
    sh = lambda *a: subprocess.run(a, check=True)  # noqa: E731
    sh("ip", "netns", "add", out_ns)
    server = None
    try:
        sh("ip", "-n", d.netns, "link", "add", "vout", "type", "veth", "peer", "name", "vin",
           "netns", out_ns)
        sh("ip", "-n", d.netns, "addr", "add", "192.0.2.2/24", "dev", "vout")
        sh("ip", "-n", d.netns, "link", "set", "vout", "up")
        sh("ip", "-n", out_ns, "addr", "add", "192.0.2.1/24", "dev", "vin")
        sh("ip", "-n", out_ns, "link", "set", "vin", "up")
        sh("ip", "-n", out_ns, "link", "set", "lo", "up")
        # a server that answers with the address it sees
        server = subprocess.Popen(["ip", "netns", "exec", out_ns, "/usr/bin/python3", "-c",
            "import http.server\n"
            "class H(http.server.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            "        b = self.client_address[0].encode()\n"
            "        self.send_response(200); self.send_header('Content-Length', str(len(b)))\n"
            "        self.end_headers(); self.wfile.write(b)\n"
            "    def log_message(self, *a): pass\n"
            "http.server.HTTPServer(('192.0.2.1', 8000), H).serve_forever()"])
        time.sleep(0.5)
        c.networks.Create(networks_pb2.NetworksCreateRequest(name="natnet"))
        status, out, err, cid = run(c, ["wget", "-qO-", "http://192.0.2.1:8000/"],
                                    networks=[cp.NetworkAttachment(network="natnet")])
        assert (status.code, out) == (0, b"192.0.2.2"), err  # masqueraded
        c.containers.Delete(cp.ContainersDeleteRequest(container_id=cid))
        # the default network is internal: no way out
        status, out, _, cid = run(c, ["wget", "-qO-", "http://192.0.2.1:8000/"])
        assert status.code != 0
        c.containers.Delete(cp.ContainersDeleteRequest(container_id=cid))
        bridge = c.networks.Inspect(networks_pb2.NetworksInspectRequest(name="natnet")).network.bridge
        assert bridge in d.in_netns("ip", "-br", "link", capture_output=True, text=True).stdout
        c.networks.Delete(networks_pb2.NetworksDeleteRequest(name="natnet"))
        assert bridge not in d.in_netns("ip", "-br", "link", capture_output=True, text=True).stdout
    finally:
        if server:
            server.kill()
        subprocess.run(["ip", "netns", "del", out_ns])


def wait_for_template(c, **kw):
    """Creates containers until one is restored from a template (built in
    the background after the first boot of its kind); the boot modes seen."""
    modes = []
    for _ in range(120):
        ct = c.containers.Create(cp.ContainersCreateRequest(
            image="busybox:test", process=types_pb2.ProcessSpec(args=["true"]), **kw),
            timeout=180).container
        c.containers.Delete(cp.ContainersDeleteRequest(container_id=ct.id, force=True))
        modes.append(ct.vm.boot_mode)
        if ct.vm.boot_mode == cp.BOOT_MODE_TEMPLATE:
            return modes
        time.sleep(1)
    return None


def test_template_restore_is_correct(env):
    """Containers restored from the VM template: each gets fresh entropy,
    its own MAC and IP, the host's time, its own root disk, a working
    network; no_template cold-boots."""
    c = env
    assert wait_for_template(c)

    probe = ("head -c 32 /dev/urandom | md5sum; date +%s; "
             "cat /sys/class/net/eth0/address; ip -4 -o addr show eth0; "
             "cat /marker 2>/dev/null || echo no-marker; echo mine > /marker; sync")
    results = []
    for i in range(2):
        ct = c.containers.Create(cp.ContainersCreateRequest(
            id=f"tpl{i}", image="busybox:test", process=types_pb2.ProcessSpec(
                args=["sh", "-c", probe])), timeout=180).container
        assert ct.vm.boot_mode == cp.BOOT_MODE_TEMPLATE
        status, out, err, _ = run_existing(c, ct.id)
        assert status.code == 0, err
        lines = out.decode().split("\n")
        results.append((lines, ct))
    (a, ca), (b, cb) = results
    assert a[0] != b[0]  # entropy differs
    for lines, ct in results:
        assert abs(int(lines[1]) - time.time()) < 30  # clock set to the host's
        assert lines[2] == ct.networks[0].mac_address  # its own MAC
        assert ct.networks[0].ip_address + "/" in lines[3]  # its own IP
        assert lines[4] == "no-marker"  # its own root disk, nothing cached
    assert ca.networks[0].mac_address != cb.networks[0].mac_address
    assert ca.networks[0].ip_address != cb.networks[0].ip_address
    for i in range(2):
        c.containers.Delete(cp.ContainersDeleteRequest(container_id=f"tpl{i}"))
    # network after restore: a restored web server answers another restored container
    web = c.containers.Create(cp.ContainersCreateRequest(
        id="tplweb", image="busybox:test",
        process=types_pb2.ProcessSpec(args=["httpd", "-f", "-p", "80", "-h", "/var/www"])),
        timeout=180).container
    assert web.vm.boot_mode == cp.BOOT_MODE_TEMPLATE
    c.containers.Start(cp.ContainersStartRequest(container_id="tplweb"))
    time.sleep(0.5)
    status, out, _, cid = run(c, ["wget", "-qO-", f"http://{web.networks[0].ip_address}/"])
    assert (status.code, out) == (0, b"hello over the bridge\n")
    c.containers.Delete(cp.ContainersDeleteRequest(container_id=cid))
    c.containers.Delete(cp.ContainersDeleteRequest(container_id="tplweb", force=True))
    cold = c.containers.Create(cp.ContainersCreateRequest(
        image="busybox:test", no_template=True, process=types_pb2.ProcessSpec(args=["true"])),
        timeout=180).container
    assert cold.vm.boot_mode == cp.BOOT_MODE_COLD
    c.containers.Delete(cp.ContainersDeleteRequest(container_id=cold.id, force=True))


def spare_pids(c):
    """The QEMU PIDs of vesseld's warm spares that are ready."""
    spares = os.path.join(c.daemon.root, "spares")
    out = set()
    for d in os.listdir(spares) if os.path.isdir(spares) else []:
        try:
            with open(os.path.join(spares, d, "qemu.pid")) as f:
                out.add(int(f.read()))
        except (OSError, ValueError):
            pass
    return out


def test_warm_spare_becomes_the_next_container(env):
    """A warm spare (restored from the template ahead of need, its agent
    already run once) becomes the next container's VM, as correct as any
    restore: its own root disk, MAC, IP, network and clock, fresh entropy;
    and another spare follows."""
    c = env
    assert wait_for_template(c)
    assert wait_for(lambda: spare_pids(c), timeout=60), "no warm spare"
    before = spare_pids(c)

    def nices(p):  # every thread's niceness (field 19 of stat)
        out = set()
        for t in os.listdir(f"/proc/{p}/task"):
            with open(f"/proc/{p}/task/{t}/stat") as f:
                out.add(int(f.read().rsplit(")", 1)[1].split()[16]))
        return out
    assert all(nices(pid) == {10} for pid in before)  # made in the background
    web = c.containers.Create(cp.ContainersCreateRequest(
        id="sparesrv", image="busybox:test", process=types_pb2.ProcessSpec(args=[
            "sh", "-c", "head -c 32 /dev/urandom | md5sum; exec httpd -f -p 80 -h /var/www"])),
        timeout=180).container
    assert web.vm.qemu_pid in before and web.vm.boot_mode == cp.BOOT_MODE_TEMPLATE
    assert nices(web.vm.qemu_pid) == {0}  # a container's VM runs at normal priority
    c.containers.Start(cp.ContainersStartRequest(container_id="sparesrv"))
    assert wait_for(lambda: spare_pids(c) - before, timeout=60), "no new spare"
    probe = ("head -c 32 /dev/urandom | md5sum; date +%s; cat /sys/class/net/eth0/address; "
             "ip -4 -o addr show eth0; cat /marker 2>/dev/null || echo no-marker; "
             f"echo mine > /marker; sync; wget -qO- http://{web.networks[0].ip_address}/")
    ready = spare_pids(c)
    ct = c.containers.Create(cp.ContainersCreateRequest(
        id="spareprobe", image="busybox:test", process=types_pb2.ProcessSpec(
            args=["sh", "-c", probe])), timeout=180).container
    assert ct.vm.qemu_pid in ready
    status, out, err, _ = run_existing(c, ct.id)
    assert status.code == 0, err
    lines = out.decode().split("\n")
    assert abs(int(lines[1]) - time.time()) < 30
    assert lines[2] == ct.networks[0].mac_address
    assert ct.networks[0].ip_address + "/" in lines[3]
    assert lines[4] == "no-marker"
    assert lines[5] == "hello over the bridge"  # both spares' taps are on the bridge
    web_log = b"".join(e.data for m in c.containers.Logs(cp.ContainersLogsRequest(
        container_id="sparesrv")) for e in m.entries).decode()
    assert web_log.split("\n")[0] != lines[0]  # entropy differs
    assert ct.networks[0].mac_address != web.networks[0].mac_address
    for cid in ("spareprobe", "sparesrv"):
        c.containers.Delete(cp.ContainersDeleteRequest(container_id=cid, force=True))


def test_templates_follow_their_inputs(env, tmp_path):
    """A template serves only the inputs it was made from: another memory
    size gets its own, a changed initramfs makes new ones (cold boots until
    then), and templates of replaced inputs are removed."""
    initrd = tmp_path / "initrd.cpio"
    shutil.copy(INITRD, initrd)
    root = str(tmp_path / "root")
    tdir = os.path.join(root, "templates")
    data = busybox_image_tar(str(tmp_path))

    def daemon(**kw):
        return Vesseld("--kernel", KERNEL, "--initrd", str(initrd), root=root, **kw)

    first = daemon(netns=True)
    try:
        with vessel.Client(first.address, timeout=180) as c:
            c.images.Import(iter([images_pb2.ImagesImportRequest(
                header=images_pb2.ImagesImportHeader(reference="busybox:test")),
                images_pb2.ImagesImportRequest(data=data)]), timeout=60)
            modes = wait_for_template(c)
            assert modes and modes[0] == cp.BOOT_MODE_COLD
            small = set(os.listdir(tdir))
            assert len(small) == 1
            big = types_pb2.Resources(memory_bytes=384 << 20)
            modes = wait_for_template(c, resources=big)
            assert modes and modes[0] == cp.BOOT_MODE_COLD  # not the 256 MiB one
            assert len(set(os.listdir(tdir)) - small) == 1
        first.stop()
        with open(initrd, "ab") as f:  # same archive to the kernel, other bytes
            f.write(b"\0" * 512)
        second = daemon(netns=first.netns)
        try:
            assert os.listdir(tdir) == []  # made from the old initramfs: pruned
            with vessel.Client(second.address, timeout=180) as c:
                modes = wait_for_template(c)
                assert modes and modes[0] == cp.BOOT_MODE_COLD
                status, out, _, cid = run(c, ["echo", "from the new template"])
                assert (status.code, out) == (0, b"from the new template\n")
        finally:
            second.cleanup()
    finally:
        first.cleanup()


def test_memory_limit_oom_event_and_name_clash(env):
    c = env
    events = c.events.Subscribe(events_pb2.EventsSubscribeRequest(container_id="oom"), timeout=120)
    status, _, _, cid = run(c, ["busybox", "awk", "BEGIN { s = \"x\"; for (;;) s = s s }"],
                            id="oom", resources=types_pb2.Resources(memory_bytes=64 << 20))
    assert status.code != 0 and (status.signal == 9 or status.oom_killed)
    seen = []
    for m in events:
        seen.append(m.event.type)
        if m.event.type == types_pb2.EVENT_TYPE_CONTAINER_EXITED:
            break
    events.cancel()
    assert types_pb2.EVENT_TYPE_CONTAINER_OOM in seen, seen
    with pytest.raises(grpc.RpcError) as e:  # the name is taken until deleted
        c.containers.Create(cp.ContainersCreateRequest(id="oom", image="busybox:test"), timeout=60)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    c.containers.Delete(cp.ContainersDeleteRequest(container_id=cid))


def test_stdin_before_start_and_process_exit_events(env):
    c = env
    c.containers.Create(cp.ContainersCreateRequest(
        id="early", image="busybox:test", process=types_pb2.ProcessSpec(
            args=["sh", "-c", "read x; echo got:$x"])), timeout=180)
    att = c.containers.Attach(iter([
        cp.ContainersAttachRequest(open=cp.ContainersAttachOpen(
            container_id="early", attach_stdin=True, attach_stdout=True)),
        cp.ContainersAttachRequest(frame=types_pb2.StdioFrame(
            stream=types_pb2.STDIO_STREAM_STDIN, data=b"early\n", eof=True))]), timeout=60)
    time.sleep(0.5)  # the stdin frame reaches vesseld before Start
    c.containers.Start(cp.ContainersStartRequest(container_id="early"))
    out = list(att)
    assert b"".join(m.frame.data for m in out if m.HasField("frame")) == b"got:early\n"
    events = c.events.Subscribe(events_pb2.EventsSubscribeRequest(
        container_id="early", types=[types_pb2.EVENT_TYPE_PROCESS_EXITED]), timeout=60)
    c.containers.Delete(cp.ContainersDeleteRequest(container_id="early"))
    c.containers.Create(cp.ContainersCreateRequest(
        id="early", image="busybox:test", process=types_pb2.ProcessSpec(args=["sleep", "60"])),
        timeout=180)
    c.containers.Start(cp.ContainersStartRequest(container_id="early"))
    ex = c.containers.Exec(cp.ContainersExecRequest(
        container_id="early", exec_id="x1", process=types_pb2.ProcessSpec(args=["sh", "-c", "exit 4"])))
    ev = next(iter(events)).event
    events.cancel()
    assert (ev.process_id, ev.exit_status.code) == ("x1", 4)
    with pytest.raises(grpc.RpcError) as e:
        c.containers.List(cp.ContainersListRequest(filters=["bogus=1"]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    c.containers.Delete(cp.ContainersDeleteRequest(container_id="early", force=True))


def test_contract_ids_stats_ports_and_list_filters(env):
    """Generated IDs are 64 lower-case hex digits; Stats of a container that
    is not running is FAILED_PRECONDITION; a host port in use is
    INVALID_ARGUMENT naming it; List with an unknown state is
    INVALID_ARGUMENT."""
    import re
    c = env
    ct = c.containers.Create(cp.ContainersCreateRequest(
        image="busybox:test", process=types_pb2.ProcessSpec(args=["true"]),
        ports=[cp.PortMapping(host_ip="127.0.0.1", container_port=80)]), timeout=180).container
    assert re.fullmatch(r"[0-9a-f]{64}", ct.id), ct.id
    port = ct.ports[0].host_port
    with pytest.raises(grpc.RpcError) as e:
        c.containers.Create(cp.ContainersCreateRequest(
            image="busybox:test", process=types_pb2.ProcessSpec(args=["true"]),
            ports=[cp.PortMapping(host_ip="127.0.0.1", host_port=port, container_port=80)]),
            timeout=180)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"127.0.0.1:{port}" in e.value.details() and "in use" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:  # CREATED: not running yet
        c.containers.Stats(cp.ContainersStatsRequest(container_id=ct.id))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    c.containers.Start(cp.ContainersStartRequest(container_id=ct.id))
    c.containers.Wait(cp.ContainersWaitRequest(container_id=ct.id), timeout=60)
    with pytest.raises(grpc.RpcError) as e:  # STOPPED
        c.containers.Stats(cp.ContainersStatsRequest(container_id=ct.id))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "stopped" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        c.containers.List(cp.ContainersListRequest(all=True, filters=["state=bogus"]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = c.containers.List(cp.ContainersListRequest(all=True, filters=["state=stopped"]))
    assert ct.id in [x.id for x in listed.containers]
    c.containers.Delete(cp.ContainersDeleteRequest(container_id=ct.id, force=True))


def test_auto_remove(env):
    """auto_remove: a container is deleted once it stops, by its own exit
    (after its EXITED event, a waiter still gets the status) or by Stop,
    also when it never ran."""
    c = env
    events = c.events.Subscribe(events_pb2.EventsSubscribeRequest(), timeout=120)
    ct = c.containers.Create(cp.ContainersCreateRequest(
        image="busybox:test", process=types_pb2.ProcessSpec(args=["sh", "-c", "exit 7"]),
        auto_remove=True), timeout=180).container
    c.containers.Start(cp.ContainersStartRequest(container_id=ct.id))
    st = c.containers.Wait(cp.ContainersWaitRequest(container_id=ct.id), timeout=60).exit_status
    assert st.code == 7
    seen = []
    for m in events:
        if m.event.container_id == ct.id:
            seen.append(m.event.type)
        if types_pb2.EVENT_TYPE_CONTAINER_DELETED in seen:
            break
    events.cancel()
    assert seen.index(types_pb2.EVENT_TYPE_CONTAINER_EXITED) < \
        seen.index(types_pb2.EVENT_TYPE_CONTAINER_DELETED), seen
    with pytest.raises(grpc.RpcError) as e:
        c.containers.Inspect(cp.ContainersInspectRequest(container_id=ct.id))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert not os.path.exists(os.path.join(c.daemon.root, "containers", ct.id))
    # Stop of a created (never started) auto_remove container removes it too.
    ct = c.containers.Create(cp.ContainersCreateRequest(
        image="busybox:test", process=types_pb2.ProcessSpec(args=["true"]), auto_remove=True),
        timeout=180).container
    c.containers.Stop(cp.ContainersStopRequest(container_id=ct.id))
    with pytest.raises(grpc.RpcError) as e:
        c.containers.Inspect(cp.ContainersInspectRequest(container_id=ct.id))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
