"""Containers.Start, Stop and Delete, and Create's restart_policy and
read_only_rootfs, as proto/vessel/v1/containers.proto promises them: real
vesseld, real VMs, in a network namespace of its own."""
import os
import signal
import threading
import time

import grpc
import pytest

import vessel
from contract import ARGS, IMAGE, code
from test_containers import busybox_image_tar
from vesseld import Vesseld, qemu_pids, wait_for
from vessel.v1 import containers_pb2 as cp

USR1_IMAGE = "busybox:usr1"
IMAGES = {IMAGE: {}, USR1_IMAGE: {"config_extra": {"StopSignal": "SIGUSR1"}}}
RUNNING, STOPPED = cp.CONTAINER_STATE_RUNNING, cp.CONTAINER_STATE_STOPPED


def load_images(c, tmp):
    for ref, kw in IMAGES.items():
        c.images.load(busybox_image_tar(str(tmp / ref.replace(":", "-")), **kw), reference=ref)


def output(ct):
    return b"".join(e.data for e in ct.logs())


def started(ct, marker=b"ready"):
    """Starts ct and waits until its init printed marker (its traps are set)."""
    ct.start()
    assert wait_for(lambda: marker in output(ct), timeout=60), output(ct)


TRAP = "trap 'echo got-{sig}; exit {code}' {sig}; echo ready; while :; do sleep 0.2; done"


def test_stop_signal_0_is_the_image_stopsignal_else_sigterm(c):
    """'Signal sent first. 0 = the image STOPSIGNAL, else SIGTERM (15).'"""
    usr1 = c.containers.create(USR1_IMAGE, ["sh", "-c", TRAP.format(sig="USR1", code=7)])
    term = c.containers.create(IMAGE, ["sh", "-c", TRAP.format(sig="TERM", code=5)])
    try:
        for ct, want, word in [(usr1, 7, b"got-USR1"), (term, 5, b"got-TERM")]:
            started(ct)
            st = ct.stop(grace=60)
            assert (st.code, st.signal) == (want, 0), st
            assert word in output(ct)
    finally:
        usr1.delete(force=True)
        term.delete(force=True)


def test_stop_timeout_minus_1_never_kills(c):
    """'-1 = wait indefinitely (never SIGKILL)': a process that ignores
    SIGTERM and ends by itself after ~14 s is not killed at the 10 s
    default."""
    ct = c.containers.create(IMAGE, ["sh", "-c", "trap 'echo term' TERM; echo ready; "
                                     "i=0; while [ $i -lt 70 ]; do sleep 0.2; i=$((i+1)); done; exit 4"])
    try:
        started(ct)
        t0 = time.monotonic()
        st = ct.stop(grace=-1)
        assert (st.code, st.signal) == (4, 0), st
        assert time.monotonic() - t0 > 10.5
        assert b"term" in output(ct)
    finally:
        ct.delete(force=True)


def test_stop_waiting_forever_gives_way_to_a_cancel_and_to_a_forced_delete(c):
    """A Stop with timeout_ms -1 whose client gives up leaves the container
    RUNNING; a forced Delete still ends one that ignores its signal."""
    ct = c.containers.create(IMAGE, ["sh", "-c", "trap '' TERM; echo ready; "
                                     "while :; do sleep 0.2; done"])
    started(ct)
    assert code(lambda: c.containers.stop(ct.id, grace=-1, timeout=3)) in (
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
    assert wait_for(lambda: ct.reload().state == RUNNING, timeout=10), ct.reload()
    result = {}
    t = threading.Thread(target=lambda: result.update(st=ct.stop(grace=-1)), daemon=True)
    t.start()
    time.sleep(2)
    assert t.is_alive() and ct.reload().state == cp.CONTAINER_STATE_STOPPING
    t0 = time.monotonic()
    ct.delete(force=True)
    t.join(60)
    assert result["st"].signal == 9, result
    assert time.monotonic() - t0 < 60
    assert code(lambda: ct.reload()) == grpc.StatusCode.NOT_FOUND


def test_stop_rejects_bad_signal_and_timeout(c):
    """'Errors: ... INVALID_ARGUMENT (signal out of range)'; a timeout below
    -1 means nothing."""
    ct = c.containers.create(IMAGE, ["true"])
    try:
        for sig, ms in [(65, 0), (-1, 0), (15, -2)]:
            req = cp.ContainersStopRequest(container_id=ct.id, signal=sig, timeout_ms=ms)
            assert code(lambda: c.containers.stub.Stop(req)) == grpc.StatusCode.INVALID_ARGUMENT
        assert ct.reload().state == cp.CONTAINER_STATE_CREATED
    finally:
        ct.delete(force=True)


def test_delete_of_a_created_container_needs_force(c):
    """'FAILED_PRECONDITION (CREATED/RUNNING/STOPPING and force false)'."""
    ct = c.containers.create(IMAGE, ["true"])
    req = cp.ContainersDeleteRequest(container_id=ct.id)
    assert code(lambda: c.containers.stub.Delete(req)) == grpc.StatusCode.FAILED_PRECONDITION
    assert ct.reload().state == cp.CONTAINER_STATE_CREATED
    ct.delete(force=True)
    assert code(lambda: ct.reload()) == grpc.StatusCode.NOT_FOUND


def test_start_of_a_stopped_container_runs_it_again_on_its_disk(c):
    """'a STOPPED one first gets a fresh VM over its preserved root
    filesystem': same ID, disk, address; a new exit status."""
    ct = c.containers.create(IMAGE, ["sh", "-c", "echo run >> /root/runs; wc -l < /root/runs; "
                                     "ip -4 -o addr show eth0; exit $(wc -l < /root/runs)"])
    try:
        ct.start()
        assert ct.wait(timeout=120).code == 1
        first = ct.reload()
        assert first.state == STOPPED and not first.HasField("vm")
        ct.start()
        assert ct.wait(timeout=120).code == 2
        again = ct.reload()
        assert again.state == STOPPED and again.exit_status.code == 2
        assert again.networks[0].ip_address == first.networks[0].ip_address
        assert again.started_at.ToNanoseconds() > first.started_at.ToNanoseconds()
        out = output(ct).decode()
        assert out.count(first.networks[0].ip_address) == 2, out
        assert out.startswith("1\n") and "\n2\n" in out, out
        assert again.restart_count == 0  # a client's Start is not a policy restart
    finally:
        ct.delete(force=True)


def test_start_of_a_running_container_is_failed_precondition(c):
    ct = c.containers.create(IMAGE, ["sleep", "600"])
    try:
        ct.start()
        assert code(ct.start) == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        ct.delete(force=True)


def test_restart_policy_on_failure_with_a_limit(c):
    """on-failure:2 restarts a failing init twice, then leaves it STOPPED;
    restart_count says so; the disk is the same for each run."""
    ct = c.containers.create(IMAGE, ["sh", "-c", "echo x >> /root/n; wc -l < /root/n; exit 3"],
                             restart="on-failure:2")
    try:
        assert ct.reload().restart_policy.name == "on-failure"
        ct.start()
        assert wait_for(lambda: ct.reload().restart_count == 2 and ct.reload().state == STOPPED,
                        timeout=240), ct.reload()
        time.sleep(3)  # and no third
        last = ct.reload()
        assert last.restart_count == 2 and last.state == STOPPED and last.exit_status.code == 3
        assert output(ct) == b"1\n2\n3\n"
    finally:
        ct.delete(force=True)


def test_restart_policy_on_failure_leaves_a_success_alone_always_does_not(c):
    ok = c.containers.create(IMAGE, ["true"], restart="on-failure")
    always = c.containers.create(IMAGE, ["sh", "-c", "echo run"], restart="always")
    try:
        ok.start()
        always.start()
        assert ok.wait(timeout=120).code == 0
        assert wait_for(lambda: always.reload().restart_count >= 2, timeout=240)
        assert ok.reload().restart_count == 0 and ok.reload().state == STOPPED
        # Stop ends the restarts.
        always.stop()
        n = always.reload().restart_count
        time.sleep(4)
        assert always.reload().state == STOPPED and always.reload().restart_count == n
    finally:
        ok.delete(force=True)
        always.delete(force=True)


def test_restart_policy_bad_input(c):
    before = len(c.containers.list(all=True))
    for kw in [dict(restart="sometimes"), dict(restart="always:3"),
               dict(restart="on-failure:-1"), dict(restart="always", auto_remove=True)]:
        assert code(lambda: c.containers.create(IMAGE, ["true"], **kw)) == \
            grpc.StatusCode.INVALID_ARGUMENT, kw
    assert len(c.containers.list(all=True)) == before


def test_restart_policies_across_a_vesseld_restart(tmp_path):
    """'applied by vesseld, also across a vesseld restart': with vesseld
    down, the VM of an unless-stopped container dies: the next vesseld
    restarts it; an "always" container stopped by Stop starts again (as
    Docker's daemon start does); an unless-stopped one stopped by Stop
    stays stopped."""
    root = str(tmp_path / "root")
    d1 = Vesseld(*ARGS, netns=True, root=root)
    d2 = None
    try:
        with vessel.Client(d1.address, timeout=180) as c1:
            load_images(c1, tmp_path)
            died = c1.containers.create(IMAGE, ["sleep", "600"], id="died",
                                        restart="unless-stopped")
            died.start()
            qemu = died.reload().vm.qemu_pid
            for name, policy in [("always", "always"), ("kept", "unless-stopped")]:
                ct = c1.containers.create(IMAGE, ["sleep", "600"], id=name, restart=policy)
                ct.start()
                ct.stop(grace=1)
        d1.stop()
        os.kill(qemu, signal.SIGKILL)
        assert wait_for(lambda: qemu not in qemu_pids(root), timeout=20)
        d2 = Vesseld(*ARGS, netns=d1.netns, root=root)
        with vessel.Client(d2.address, timeout=180) as c2:
            def state(i):
                return c2.containers.inspect(i)
            assert wait_for(lambda: state("died").state == RUNNING, timeout=240), state("died")
            assert state("died").restart_count == 1
            assert wait_for(lambda: state("always").state == RUNNING, timeout=240)
            assert state("kept").state == STOPPED
            for i in ["died", "always", "kept"]:
                c2.containers.delete(i, force=True)
    finally:
        if d2:
            d2.cleanup()
        d1.cleanup()


def test_read_only_rootfs(c):
    """'every write outside volumes and tmpfs mounts fails with EROFS'."""
    ct = c.containers.create(
        IMAGE, ["sh", "-c", "touch /root/x 2>&1; echo rc=$?; touch /scratch/y && echo tmpfs-ok"],
        read_only=True, tmpfs=["/scratch"])
    try:
        assert ct.reload().read_only_rootfs
        ct.start()
        ct.wait(timeout=120)
        out = output(ct)
        assert b"Read-only file system" in out and b"rc=1" in out and b"tmpfs-ok" in out, out
    finally:
        ct.delete(force=True)


def test_path_restrictions(c):
    """ContainersCreateRequest.path_restrictions: absent = the default set
    (/sys/firmware masked, /proc/sys read-only); present = exactly its lists
    (a directory masked by an empty tmpfs, a file by /dev/null, read-only
    paths; the defaults no longer apply); bad paths INVALID_ARGUMENT."""
    probe = ("[ $(ls /sys/firmware | wc -l) = 0 ] && echo fw=masked || echo fw=visible; "
             "echo 0 > /proc/sys/vm/overcommit_memory 2>/dev/null && echo sys=rw || echo sys=ro; "
             "echo www=$(ls /var/www | wc -l) group=$(cat /etc/group | wc -c); "
             "touch /tmp/x 2>/dev/null && echo tmp=rw || echo tmp=ro")
    out = c.containers.run(IMAGE, ["sh", "-c", probe]).stdout.decode().split()
    assert out[:3] == ["fw=masked", "sys=ro", "www=1"] and out[3] != "group=0", out
    assert out[4] == "tmp=rw", out
    out = c.containers.run(IMAGE, ["sh", "-c", probe], masked_paths=["/var/www", "/etc/group"],
                           readonly_paths=["/tmp"]).stdout.decode().split()
    assert out == ["fw=visible", "sys=rw", "www=0", "group=0", "tmp=ro"], out
    for bad in (["relative"], ["/a/../b"]):
        with pytest.raises(vessel.VesselError) as e:
            c.containers.create(IMAGE, ["true"], masked_paths=bad)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "path_restrictions" in str(e.value)


def test_update_changes_limits_in_place_and_keeps_them(c):
    """Containers.Update: 'memory_bytes, milli_cpus and pids_max replace
    the current ones (0 = unlimited), kept for later starts'; above the VM
    INVALID_ARGUMENT; not CREATED or RUNNING: FAILED_PRECONDITION."""
    ct = c.containers.create(IMAGE, ["sleep", "600"], memory=128 << 20)
    try:
        ct.start()
        assert c.containers.stats(ct.id).memory.limit_bytes == 128 << 20
        got = c.containers.update(ct.id, memory=96 << 20, pids_max=50)
        assert got.resources.memory_bytes == 96 << 20 and got.resources.pids_max == 50, got.resources
        st = c.containers.stats(ct.id)
        assert st.memory.limit_bytes == 96 << 20 and st.pids.max == 50, st
        c.containers.update(ct.id)  # all unlimited: the VM's memory is the limit
        assert c.containers.stats(ct.id).memory.limit_bytes > 96 << 20
        c.containers.update(ct.id, memory=80 << 20)
        vm_mib = ct.reload().vm.memory_bytes >> 20
        assert code(lambda: c.containers.update(ct.id, memory=(vm_mib + 1) << 20)) == \
            grpc.StatusCode.INVALID_ARGUMENT
        assert code(lambda: c.containers.update(ct.id, cpus=64)) == grpc.StatusCode.INVALID_ARGUMENT
        ct.stop(grace=1)
        assert code(lambda: c.containers.update(ct.id, memory=64 << 20)) == \
            grpc.StatusCode.FAILED_PRECONDITION
        ct.start()  # a later start keeps the updated limit
        assert c.containers.stats(ct.id).memory.limit_bytes == 80 << 20
    finally:
        ct.delete(force=True)
    assert code(lambda: c.containers.update("no-such-container", memory=64 << 20)) == \
        grpc.StatusCode.NOT_FOUND
