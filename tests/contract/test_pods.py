"""Pods as proto/vessel/v1/pods.proto promises them: several containers in
one VM, each on a disk slot of its own. Real vesseld and VMs, in a network
namespace of its own."""
import os
import re
import time

import grpc
import pytest

import vessel
from contract import IMAGE
from vessel.v1 import containers_pb2 as cp
from vessel.v1 import pods_pb2, types_pb2

WEB = "busybox:web"  # another image: no wget in it
IMAGES = {IMAGE: {}, WEB: {"without": ("wget",)}}
RUNNING, STOPPED = pods_pb2.POD_STATE_RUNNING, pods_pb2.POD_STATE_STOPPED

# wget without -T (busybox 1.35 crashes with it): given up after 4 s here.
FETCH = ("wget -qO- http://{addr}/index.html > /tmp/o 2>&1 & p=$!; "
         "i=0; while [ $i -lt 20 ] && kill -0 $p 2>/dev/null; do sleep 0.2; i=$((i+1)); done; "
         "kill $p 2>/dev/null; cat /tmp/o; echo end")


def sh(ct, script):
    out, err, status = ct.exec(["sh", "-c", script]).communicate()
    return out.decode() + err.decode()


def fetch(ct, addr):
    got = ""
    for _ in range(20):  # httpd needs a moment to listen
        got = sh(ct, FETCH.format(addr=addr))
        if "hello over the bridge" in got:
            break
        time.sleep(0.5)
    return got


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_a_pod_of_containers_from_two_images(c):
    """'they share the pod's network namespace (they reach each other on
    localhost), its hostname'; each has its own rootfs; containers are
    added while it runs (same VM), stop, start and are deleted on their
    own; a deleted container's slot serves the next; RESOURCE_EXHAUSTED
    when the slots run out; Delete with force frees VM, taps and IP."""
    pod = c.pods.create("pod1", hostname="podhost", slots=3, labels={"team": "a"},
                        annotations={"note": "x"}, extra_hosts={"dbhost": "10.9.9.9"})
    assert pod.state == RUNNING and pod.slots == 3 and pod.free_slots == 3, pod
    assert [(n.network, n.interface) for n in pod.networks] == [("default", "eth0")]
    assert dict(pod.labels) == {"team": "a"} and dict(pod.annotations) == {"note": "x"}
    qemu = pod.vm.qemu_pid
    assert qemu and alive(qemu)
    web = c.containers.create(WEB, ["httpd", "-f", "-p", "8080", "-h", "/var/www"], id="pweb",
                              pod="pod1")
    cli = c.containers.create(IMAGE, ["sleep", "600"], id="pcli", pod="pod1")
    try:
        web.start()
        cli.start()
        assert c.pods.inspect("pod1").vm.qemu_pid == qemu  # no new VM, no restart
        assert cli.reload().pod_id == "pod1" and cli.reload().vm.qemu_pid == qemu
        assert "hello over the bridge" in fetch(cli, "127.0.0.1:8080")
        assert sh(cli, "hostname").strip() == "podhost" == sh(web, "hostname").strip()
        for ct in (cli, web):  # the pod's /etc/hosts
            assert "10.9.9.9\tdbhost" in sh(ct, "cat /etc/hosts"), sh(ct, "cat /etc/hosts")
        # Logs and copies, per container as for any other.
        r = c.containers.run(IMAGE, ["echo", "logged"], id="plog", pod="pod1", remove=False)
        assert r.stdout == b"logged\n"
        assert b"".join(e.data for e in c.containers.logs("plog")) == b"logged\n"
        c.containers.delete("plog")
        import io
        import tarfile
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            info = tarfile.TarInfo("copied")
            info.size = 6
            t.addfile(info, io.BytesIO(b"copied"))
        cli.copy_in("/tmp", buf.getvalue())
        assert sh(cli, "cat /tmp/copied") == "copied"
        out = io.BytesIO()
        cli.copy_out("/tmp/copied", out)
        out.seek(0)
        with tarfile.open(fileobj=out) as t:
            assert t.extractfile("copied").read() == b"copied"
        # Own root filesystems: two images, writes seen only where made.
        assert "/bin/wget" in sh(cli, "ls /bin/wget") and "No such file" in sh(web, "ls /bin/wget")
        sh(cli, "echo mine > /mark")
        assert "No such file" in sh(web, "cat /mark")
        got = c.pods.inspect("pod1")
        assert list(got.container_ids) == ["pweb", "pcli"] and got.free_slots == 1
        # Stats: the VM from the host, each container from its cgroup.
        st = c.pods.stats("pod1")
        assert st.vm.host_rss_bytes > 0 and st.vm.host_cpu_usec > 0 and st.vm.vcpus == 1
        assert [x.container_id for x in st.containers] == ["pweb", "pcli"]
        assert all(x.memory.usage_bytes > 0 for x in st.containers)
        assert c.containers.stats("pcli").container_id == "pcli"
        assert "pod1" not in [x.id for x in c.containers.list(all=True)]
        with pytest.raises(vessel.VesselError) as e:
            c.containers.inspect("pod1")  # a pod is not a container
        assert e.value.code == grpc.StatusCode.NOT_FOUND

        # Independent lifecycles: cli stopped and started again (its disk
        # kept), web serving all along.
        cli.stop(grace=1)
        assert cli.reload().state == cp.CONTAINER_STATE_STOPPED
        assert web.reload().pid and c.pods.inspect("pod1").state == RUNNING
        cli.start()
        assert sh(cli, "cat /mark").strip() == "mine"
        assert "hello over the bridge" in fetch(cli, "127.0.0.1:8080")

        # A third container fills the last slot; a fourth finds none.
        third = c.containers.create(IMAGE, ["sleep", "600"], id="p3", pod="pod1")
        third.start()
        sh(third, "echo third > /t")
        with pytest.raises(vessel.VesselError) as e:
            c.containers.create(IMAGE, ["true"], id="p4", pod="pod1")
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "slot" in str(e.value)
        third.delete(force=True)
        assert c.pods.inspect("pod1").free_slots == 1
        fourth = c.containers.create(IMAGE, ["sleep", "600"], id="p4", pod="pod1")
        fourth.start()
        assert "No such file" in sh(fourth, "cat /t")  # the slot was emptied
        assert "hello over the bridge" in fetch(fourth, "127.0.0.1:8080")

        # Delete: refused while it has containers, then with force.
        with pytest.raises(vessel.VesselError) as e:
            c.pods.delete("pod1")
        assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        c.pods.delete("pod1", force=True)
    for cid in ("pweb", "pcli", "p4"):
        with pytest.raises(vessel.VesselError) as e:
            c.containers.inspect(cid)
        assert e.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(vessel.VesselError) as e:
        c.pods.inspect("pod1")
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    for _ in range(50):
        if not alive(qemu):
            break
        time.sleep(0.1)
    assert not alive(qemu)
    assert "pod1" not in dict(c.networks.inspect("default").containers)
    assert not os.path.exists(os.path.join(c.daemon.root, "containers", "pod1"))  # its slots
    taps = c.daemon.in_netns("ip", "-o", "link", "show", capture_output=True).stdout.decode()
    # Containers' taps are vt<hex>; vtt<hex> ones belong to a template being
    # built (a build can still run, or be retried, when the pod is gone).
    assert not re.search(r" vt[0-9a-f]", taps), taps


def test_a_memory_limit_in_a_pod_is_that_containers(c):
    """'resources (per-container cgroup limits inside the VM)': one
    container over its limit is OOM-killed (its OOM event names it and the
    pod), the other runs on."""
    c.pods.create("pod2")
    try:
        calm = c.containers.create(IMAGE, ["sleep", "600"], id="calm", pod="pod2")
        calm.start()
        events = c.events(container_id="hog", timeout=120)
        r = c.containers.run(IMAGE, ["busybox", "awk", "BEGIN { s = \"x\"; for (;;) s = s s }"],
                             id="hog", pod="pod2", memory=64 << 20, remove=False)
        assert r.exit_status.signal == 9 or r.exit_status.oom_killed, r.exit_status
        seen = []
        for e in events:
            seen.append((e.type, e.pod_id))
            if e.type == types_pb2.EVENT_TYPE_CONTAINER_EXITED:
                break
        events.cancel()
        assert (types_pb2.EVENT_TYPE_CONTAINER_OOM, "pod2") in seen, seen
        assert (types_pb2.EVENT_TYPE_CONTAINER_CREATED, "pod2") in seen, seen
        assert calm.reload().pid and sh(calm, "echo ok").strip() == "ok"
    finally:
        c.pods.delete("pod2", force=True)


def test_a_pods_vm_dying_stops_its_containers(c):
    """'a pod's VM dying makes every container in it STOPPED with the
    reason'; the pod is STOPPED too, and a Start of its container then is
    FAILED_PRECONDITION."""
    pod = c.pods.create("pod3")
    try:
        a = c.containers.create(IMAGE, ["sleep", "600"], id="d1", pod="pod3")
        a.start()
        b = c.containers.create(IMAGE, ["sleep", "600"], id="d2", pod="pod3")
        b.start()
        os.kill(pod.vm.qemu_pid, 9)
        deadline = time.time() + 30
        while time.time() < deadline and c.pods.inspect("pod3").state != STOPPED:
            time.sleep(0.2)
        got = c.pods.inspect("pod3")
        assert got.state == STOPPED and "VM" in got.reason, got
        for ct in (a, b):
            st = ct.reload()
            assert st.state == cp.CONTAINER_STATE_STOPPED
            assert "VM" in st.exit_status.reason, st.exit_status
        with pytest.raises(vessel.VesselError) as e:
            a.start()
        assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION and "pod3" in str(e.value)
    finally:
        c.pods.delete("pod3", force=True)


def test_pod_stop_and_what_a_container_in_a_pod_does_not_set(c):
    """Stop: its containers stopped, then the VM; Create with pod_id refuses
    the pod's fields (INVALID_ARGUMENT) and an unknown or stopped pod;
    PodsCreateRequest fields not honoured yet are UNIMPLEMENTED naming
    them."""
    pod = c.pods.create("pod4")
    try:
        a = c.containers.create(IMAGE, ["sleep", "600"], id="s1", pod="pod4")
        a.start()
        for kw, field in [(dict(networks=["default"]), "networks"), (dict(hostname="h"), "hostname"),
                          (dict(ports={80: 0}), "ports"), (dict(mounts=["/tmp:/x"]), "not a volume")]:
            with pytest.raises(vessel.VesselError) as e:
                c.containers.create(IMAGE, ["true"], pod="pod4", **kw)
            assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and field in str(e.value), kw
        with pytest.raises(vessel.VesselError) as e:
            c.containers.create(IMAGE, ["true"], pod="nosuchpod")
        assert e.value.code == grpc.StatusCode.NOT_FOUND
        got = c.pods.stop("pod4", grace=2)
        assert got.state == STOPPED and not got.HasField("vm")
        assert not alive(pod.vm.qemu_pid)
        assert a.reload().exit_status.signal in (15, 9)
        with pytest.raises(vessel.VesselError) as e:
            c.containers.create(IMAGE, ["true"], pod="pod4")
        assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
        for req in [pods_pb2.PodsCreateRequest(slots=17),
                    pods_pb2.PodsCreateRequest(volumes=[types_pb2.Mount(source="/no/such/dir")])]:
            with pytest.raises(grpc.RpcError) as e:
                c.pods.Create(req)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        c.pods.delete("pod4", force=True)


def test_a_pods_volumes_are_shared_by_its_containers(c, tmp_path):
    """PodsCreateRequest.volumes: 'containers mounting the same volume see
    each other's writes'; "ro" is read-only for all; a container may mount
    a path in a volume (a directory or a file), not outside one."""
    shared, ro = tmp_path / "shared", tmp_path / "ro"
    shared.mkdir()
    ro.mkdir()
    (ro / "given").write_text("from the host\n")
    (ro / "sub").mkdir()
    (ro / "sub" / "deep").write_text("deeper\n")
    os.chmod(shared, 0o777)
    c.pods.create("pod7", volumes=[str(shared), f"{ro}:ro"])
    try:
        w = c.containers.create(IMAGE, ["sleep", "600"], id="w", pod="pod7",
                                mounts=[f"{shared}:/out", f"{ro}:/in", f"{ro}/sub:/sub",
                                        f"{ro}/given:/etc/given"])
        r = c.containers.create(IMAGE, ["sleep", "600"], id="r", pod="pod7",
                                mounts=[f"{shared}:/data"])
        w.start()
        r.start()
        sh(w, "echo written-in-w > /out/f")
        assert sh(r, "cat /data/f").strip() == "written-in-w"
        assert (shared / "f").read_text() == "written-in-w\n"
        assert sh(w, "cat /in/given").strip() == "from the host"
        assert "Read-only" in sh(w, "echo x > /in/nope")
        assert not (ro / "nope").exists()
        assert sh(w, "cat /sub/deep /etc/given") == "deeper\nfrom the host\n"
        with pytest.raises(vessel.VesselError) as e:  # outside every volume
            c.containers.create(IMAGE, ["true"], pod="pod7", mounts=[f"{tmp_path}:/t"])
        assert "not a volume of pod" in str(e.value)
    finally:
        c.pods.delete("pod7", force=True)


def ns_of(ct, kind):
    return sh(ct, f"readlink /proc/self/ns/{kind}").strip()


def test_share_pid_and_ipc(c):
    """PodsCreateRequest.share_pid / share_ipc: its containers share one PID
    (they see and signal each other's processes; init is not PID 1) and
    one IPC namespace; without them each has its own (and init is PID 1)."""
    c.pods.create("sh1", share_pid=True, share_ipc=True)
    c.pods.create("sh2")
    try:
        a = c.containers.create(IMAGE, ["sh", "-c", "echo $$ > /tmp/me; exec sleep 600"], id="sa",
                                pod="sh1")
        b = c.containers.create(WEB, ["sleep", "600"], id="sb", pod="sh1")
        x = c.containers.create(IMAGE, ["sleep", "600"], id="sx", pod="sh2")
        y = c.containers.create(IMAGE, ["sleep", "600"], id="sy", pod="sh2")
        for ct in (a, b, x, y):
            ct.start()
        for kind in ("pid", "ipc"):
            assert ns_of(a, kind) == ns_of(b, kind) and ns_of(a, kind).startswith(kind + ":")
            assert ns_of(x, kind) != ns_of(y, kind)
        pid_a = sh(a, "cat /tmp/me").strip()
        assert pid_a != "1" and sh(x, "cat /proc/1/comm").strip() == "sleep"
        assert "sleep" in sh(b, f"cat /proc/{pid_a}/comm")  # b sees a's init
        sh(b, f"kill {pid_a}")  # and may signal it
        assert a.wait(timeout=30).signal == 15
        assert b.reload().pid  # b runs on
    finally:
        c.pods.delete("sh1", force=True)
        c.pods.delete("sh2", force=True)


def test_pod_delete_while_an_exec_is_attached(c):
    """Deleting a pod (force) while a client is attached to an exec in one
    of its containers ends that attach with an exit, promptly."""
    c.pods.create("pod5")
    ct = c.containers.create(IMAGE, ["sleep", "600"], id="x1", pod="pod5")
    ct.start()
    proc = ct.exec(["sh", "-c", "echo started; sleep 600"])
    assert proc.stdout.readline() == b"started\n"
    import threading
    res = {}

    def wait():
        try:
            res["status"] = proc.wait()
        except vessel.VesselError as e:
            res["error"] = e
    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    c.pods.delete("pod5", force=True)
    waiter.join(30)
    assert not waiter.is_alive(), "the attach outlived its pod"
    status = res.get("status")
    assert status is not None and (status.signal or status.code), res


def test_pods_survive_a_vesseld_restart(tmp_path):
    """'Pods survive a vesseld restart (re-adopted like containers)': a pod
    of three containers (two running, one stopped) after vesseld was
    killed: the same VM, its containers as they were, localhost still
    served, slots still accounted, and it is deleted cleanly."""
    import signal
    from contract import ARGS
    from test_containers import busybox_image_tar
    from vesseld import Vesseld
    root = str(tmp_path / "root")
    first = Vesseld(*ARGS, netns=True, root=root)
    try:
        with vessel.Client(first.address, timeout=180) as c:
            c.images.load(busybox_image_tar(str(tmp_path / "a")), reference=IMAGE)
            c.images.load(busybox_image_tar(str(tmp_path / "b"), without=("wget",)), reference=WEB)
            pod = c.pods.create("pod6", slots=4)
            c.containers.create(WEB, ["httpd", "-f", "-p", "8080", "-h", "/var/www"], id="r1",
                                pod="pod6").start()
            c.containers.create(IMAGE, ["sh", "-c", "trap 'exit 3' TERM; while :; do sleep 0.2; done"],
                                id="r2", pod="pod6").start()
            done = c.containers.create(IMAGE, ["true"], id="r3", pod="pod6")
            done.start()
            assert done.wait(timeout=60).code == 0
        first.stop(signal.SIGKILL)
        second = Vesseld(*ARGS, netns=first.netns, root=root)
        try:
            with vessel.Client(second.address, timeout=180) as c:
                got = c.pods.inspect("pod6")
                assert got.state == RUNNING and got.vm.qemu_pid == pod.vm.qemu_pid, got
                assert list(got.container_ids) == ["r1", "r2", "r3"] and got.free_slots == 1
                states = {i: c.containers.inspect(i).state for i in ("r1", "r2", "r3")}
                assert states == {"r1": cp.CONTAINER_STATE_RUNNING, "r2": cp.CONTAINER_STATE_RUNNING,
                                  "r3": cp.CONTAINER_STATE_STOPPED}, states
                r2 = c.containers.get("r2")
                assert "hello over the bridge" in fetch(r2, "127.0.0.1:8080")
                r3 = c.containers.get("r3")
                r3.start()  # re-created in the pod over its kept disk
                assert r3.wait(timeout=60).code == 0
                c.containers.create(IMAGE, ["true"], id="r4", pod="pod6")
                assert c.pods.inspect("pod6").free_slots == 0
                c.containers.get("r2").stop(grace=1)  # its init's exit still reaches vesseld
                assert c.containers.inspect("r2").exit_status.code == 3
                c.pods.delete("pod6", force=True)
                for _ in range(50):
                    if not alive(pod.vm.qemu_pid):
                        break
                    time.sleep(0.1)
                assert not alive(pod.vm.qemu_pid)
        finally:
            second.cleanup()
    finally:
        first.cleanup()


def test_a_pod_restores_from_its_template(c):
    """Templates serve pods too: once the first pod of a kind (here 2
    slots) has built its template, the next restores from it, and its
    slots, network and containers work as in a booted one."""
    import glob
    templates = lambda: len(glob.glob(c.daemon.root + "/templates/*/state"))
    before = templates()
    first = c.pods.create("tp1", slots=2)
    try:
        assert first.vm.boot_mode == cp.BOOT_MODE_COLD
        deadline = time.time() + 300
        while templates() <= before and time.time() < deadline:
            time.sleep(0.5)
        assert templates() > before, "no template for two-slot pods"
        second = c.pods.create("tp2", slots=2, hostname="restored")
        assert second.vm.boot_mode == cp.BOOT_MODE_TEMPLATE, second.vm
        web = c.containers.create(WEB, ["httpd", "-f", "-p", "8080", "-h", "/var/www"], pod="tp2")
        web.start()
        r = c.containers.run(IMAGE, ["sh", "-c", "hostname; for i in 1 2 3 4 5 6 7 8 9 10; do "
                                     "wget -qO- http://127.0.0.1:8080/index.html && break; sleep 0.5; done"],
                             pod="tp2")
        assert r.stdout.decode().startswith("restored\n") and "hello over the bridge" in r.stdout.decode(), r
        ip = second.networks[0].ip_address
        assert ip and ip != first.networks[0].ip_address
    finally:
        c.pods.delete("tp1", force=True)
        c.pods.delete("tp2", force=True)


def test_pods_leave_no_fds_or_threads_behind(c):
    """A daemon left running for months: a pod's whole life (containers,
    an exec, stats, volumes, forced delete) returns vesseld's fds and
    threads to where they were."""
    pid = c.daemon.proc.pid

    def counts():
        return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))

    def life(name):
        c.pods.create(name, slots=2)
        ct = c.containers.create(IMAGE, ["sleep", "600"], pod=name)
        ct.start()
        assert sh(ct, "echo hi").strip() == "hi"
        c.pods.stats(name)
        c.containers.run(IMAGE, ["true"], pod=name)
        c.pods.delete(name, force=True)

    import glob
    state = os.path.join(c.daemon.root, "templates", "*", "inputs")
    kinds = lambda: [open(f).read() for f in glob.glob(state)]
    life("leak0")  # its kind's template built, the guest's paths run once
    deadline = time.time() + 120
    while not any("slots 2" in k for k in kinds()) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    base = counts()
    for i in range(3):
        life(f"leak{i + 1}")
    deadline = time.time() + 30
    while counts() != base and time.time() < deadline:
        time.sleep(0.5)
    assert counts() == base, (counts(), base)
