"""vesseld left running: containers and execs come and go without its fds,
threads or memory growing, finished execs are forgotten, a deleted
container's log goes with it, and a vesseld killed at any moment leaves no
QEMU that no container owns once it is back. Real VMs, one vesseld in a
network namespace of its own."""
import os
import random
import signal
import subprocess
import time

import pytest

import vessel
from test_containers import busybox_image_tar
from vesseld import Vesseld, qemu_pids, wait_for

KERNEL = os.environ.get("VESSEL_KERNEL", "")
INITRD = os.environ.get("VESSEL_INITRD", "")
IMAGE = "busybox:test"


def counts(pid):
    """(open fds, threads, RSS KiB) of a process."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return fds, threads, rss


def vesseld_pid(d):
    """vesseld's own PID (the Popen is `ip netns exec`, which execs it)."""
    return d.proc.pid


def spare_ready(root):
    spares = os.path.join(root, "spares")
    return any(os.path.exists(os.path.join(spares, d, "qemu.pid"))
               for d in (os.listdir(spares) if os.path.isdir(spares) else []))


def settle(c, root, timeout=120):
    """Runs containers until the template exists and a warm spare is ready
    (the spare follows the first restore from a template); then nothing is
    being built in the background."""
    end = time.monotonic() + timeout
    while not spare_ready(root) and time.monotonic() < end:
        assert c.containers.run(IMAGE, ["true"]).exit_code == 0
        wait_for(lambda: spare_ready(root), timeout=5)
    assert spare_ready(root), "no warm spare"
    time.sleep(1)


def load_image(c, tmp):
    c.images.load(busybox_image_tar(str(tmp)), reference=IMAGE)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    assert KERNEL and os.path.exists(KERNEL), "VESSEL_KERNEL must name the guest kernel"
    assert INITRD and os.path.exists(INITRD), "VESSEL_INITRD must name the initramfs"
    # One spare: the pool's size follows demand (each spare holds its agent
    # connection), and what it frees as it shrinks is test_memory's.
    with Vesseld("--kernel", KERNEL, "--initrd", INITRD, "--spares", "1", netns=True) as d, \
            vessel.Client(d.address, timeout=180) as c:
        load_image(c, tmp_path_factory.mktemp("img"))
        c.daemon = d
        yield c


def test_runs_leave_fds_threads_and_memory_at_baseline(daemon):
    """300 sequential `run --rm true`: vesseld's fd and thread counts are
    back to baseline (±3) and its RSS grew by less than 5 MiB."""
    c, d = daemon, daemon.daemon
    pid = vesseld_pid(d)
    for _ in range(10):  # warm up: the template, the spare, allocator arenas
        assert c.containers.run(IMAGE, ["true"]).exit_code == 0
    settle(c, d.root)
    fds0, threads0, rss0 = counts(pid)
    for i in range(300):
        r = c.containers.run(IMAGE, ["true"])
        assert r.exit_code == 0, (i, r)
    settle(c, d.root)
    fds1, threads1, rss1 = counts(pid)
    print(f"fds {fds0}->{fds1} threads {threads0}->{threads1} rss {rss0}->{rss1} KiB")
    assert abs(fds1 - fds0) <= 3, (fds0, fds1)
    assert abs(threads1 - threads0) <= 3, (threads0, threads1)
    assert rss1 - rss0 < 5 * 1024, (rss0, rss1)
    assert c.containers.list(all=True) == []
    assert os.listdir(os.path.join(d.root, "containers")) == []


def test_deleted_container_log_is_closed_and_removed(daemon):
    """A container that wrote 20 MB: once deleted, vesseld holds no fd of its
    (deleted) log and the disk space is back."""
    c, d = daemon, daemon.daemon
    pid = vesseld_pid(d)
    ct = c.containers.create(IMAGE, ["sh", "-c", "dd if=/dev/zero bs=1M count=20 2>/dev/null"])
    ct.start()
    assert ct.wait(timeout=120).code == 0
    logdir = os.path.join(d.root, "containers", ct.id, "logs")
    assert sum(os.path.getsize(os.path.join(logdir, f)) for f in os.listdir(logdir)) > 1 << 20
    ct.delete()
    assert not os.path.exists(os.path.join(d.root, "containers", ct.id))
    held = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            held.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed meanwhile (the spare keeper works on)
            pass
    assert not [h for h in held if ct.id in h or "(deleted)" in h], held


def test_execs_are_forgotten_and_memory_stays(daemon):
    """100 execs writing 1 MB each into one container: RSS within 5 MiB of
    where it started; finished execs leave exec_ids, and a finished exec
    whose exit was seen is forgotten (NOT_FOUND) after its grace, with no
    further call (vesseld's upkeep thread deletes it in the guest)."""
    c, d = daemon, daemon.daemon
    pid = vesseld_pid(d)
    ct = c.containers.create(IMAGE, ["sleep", "600"])
    ct.start()
    try:
        for _ in range(5):  # warm up
            assert ct.exec(["dd", "if=/dev/zero", "bs=64k", "count=16"]).communicate()[2].code == 0
        fds0, threads0, rss0 = counts(pid)
        for i in range(100):
            out, err, status = ct.exec(["dd", "if=/dev/zero", "bs=64k", "count=16"]).communicate()
            assert status.code == 0 and len(out) == 1 << 20, (i, status, len(out))
        time.sleep(7)  # past the grace of the last ones: forgotten without another exec
        fds1, threads1, rss1 = counts(pid)
        print(f"fds {fds0}->{fds1} threads {threads0}->{threads1} rss {rss0}->{rss1} KiB")
        assert rss1 - rss0 < 5 * 1024, (rss0, rss1)
        assert threads1 - threads0 <= 3, (threads0, threads1)
        assert fds1 - fds0 <= 3, (fds0, fds1)
        assert list(ct.reload().exec_ids) == []
        # A seen exec goes once its grace has passed, by itself.
        p = ct.exec(["true"], exec_id="seen-once")
        assert p.wait(timeout=60).code == 0
        assert c.containers.wait(ct.id, exec_id="seen-once").code == 0  # still there
        time.sleep(7)
        with pytest.raises(vessel.NotFoundError):
            c.containers.wait(ct.id, exec_id="seen-once")
        # A running exec is listed.
        ct.exec(["sleep", "30"], exec_id="long", attach=False)
        assert "long" in ct.reload().exec_ids
    finally:
        ct.delete(force=True)


def test_slow_attacher_holds_back_the_process_not_memory(daemon):
    """A client attached to a process writing 128 MiB that does not read:
    what vesseld holds for it is bounded (the agent stream's 8 MiB window,
    the attacher's 4 MiB queue, the client's window: RSS grows by far less
    than was written) and the process waits; once the client reads, every
    byte arrives."""
    c, d = daemon, daemon.daemon
    pid = vesseld_pid(d)
    ct = c.containers.create(IMAGE, ["sh", "-c", "dd if=/dev/zero bs=64k count=2048 2>/dev/null; echo done >&2"])
    rss0 = counts(pid)[2]
    proc = c.containers.attach(ct.id, logs=False)
    ct.start()
    time.sleep(10)  # the process would have written it all by now, unhindered
    rss1 = counts(pid)[2]
    assert ct.reload().state == 3, "the writer should be held back while nobody reads"  # RUNNING
    out, err, status = proc.communicate()
    assert status.code == 0 and len(out) == 128 << 20 and err == b"done\n", (status, len(out), err)
    print(f"rss while held back {rss0}->{rss1} KiB")
    assert rss1 - rss0 < 48 * 1024, (rss0, rss1)
    ct.delete()


def test_published_port_one_poller_many_connections(daemon):
    """A published port: 60 connections (20 at a time) and a 5 MiB body
    through the proxy; vesseld's thread count does not grow with them and
    its fds are back to baseline after."""
    import threading
    c, d = daemon, daemon.daemon
    pid = vesseld_pid(d)
    ct = c.containers.create(IMAGE, ["sh", "-c", "dd if=/dev/urandom of=/var/www/big bs=1M count=5 "
                                     "2>/dev/null && httpd -f -p 80 -h /var/www"],
                             ports={80: ("127.0.0.1", 0)})
    ct.start()
    port = ct.reload().ports[0].host_port
    fetch = ("import sys, hashlib, urllib.request\n"
             "for i in range(int(sys.argv[2])):\n"
             "    for _ in range(100):\n"
             "        try:\n"
             "            b = urllib.request.urlopen(sys.argv[1], timeout=10).read(); break\n"
             "        except OSError: __import__('time').sleep(0.1)\n"
             "print(len(b), hashlib.md5(b).hexdigest())\n")
    url = f"http://127.0.0.1:{port}/"
    # httpd listens once dd is done
    assert wait_for(lambda: ct.exec(["wget", "-qO-", "http://127.0.0.1/index.html"])
                    .communicate()[2].code == 0, timeout=60, interval=0.5)
    want = ct.exec(["md5sum", "/var/www/big"]).communicate()[0].split()[0].decode()
    fds0, threads0, _ = counts(pid)
    peak = [threads0]
    def many():
        d.in_netns("/usr/bin/python3", "-c", fetch, url + "index.html", "3", capture_output=True)
    ts = [threading.Thread(target=many) for _ in range(20)]
    [t.start() for t in ts]
    while any(t.is_alive() for t in ts):
        peak.append(counts(pid)[1])
        time.sleep(0.05)
    [t.join() for t in ts]
    r = d.in_netns("/usr/bin/python3", "-c", fetch, url + "big", "1", capture_output=True, text=True)
    n, md5 = r.stdout.split()
    assert int(n) == 5 << 20 and md5 == want, (r.stdout, r.stderr, want)
    fds1, threads1, _ = counts(pid)
    print(f"threads {threads0} peak {max(peak)}; fds {fds0}->{fds1}")
    assert max(peak) - threads0 <= 3, (threads0, max(peak))
    assert abs(fds1 - fds0) <= 3, (fds0, fds1)
    ct.delete(force=True)


def kill_at(d, delay):
    time.sleep(delay)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()


@pytest.mark.parametrize("phase", ["template-build", "spare-refill"])
def test_killed_vesseld_leaves_no_orphan_qemu(tmp_path, phase):
    """kill -9 of vesseld at several points of a template build (right after
    the first container of a new kind cold-booted) and of a spare refill
    (right after a container took the spare or restored the template):
    after a restart on the same root, every QEMU of that root belongs to a
    container."""
    assert KERNEL and os.path.exists(KERNEL)
    rnd = random.Random(11 if phase == "template-build" else 12)
    delays = [0.0, 0.05, 0.3, 0.8] + [round(rnd.uniform(0.0, 2.0), 2) for _ in range(2)]
    root = str(tmp_path / "root")
    args = ("--kernel", KERNEL, "--initrd", INITRD)
    daemons = [Vesseld(*args, netns=True, root=root)]
    try:
        with vessel.Client(daemons[0].address, timeout=180) as c:
            load_image(c, tmp_path)
            if phase == "spare-refill":
                settle(c, root, timeout=180)
        for n, delay in enumerate(delays):
            d = daemons[-1]
            with vessel.Client(d.address, timeout=180) as c:
                # template-build: a new memory size is a new kind of VM, whose
                # template starts building now.
                mem = (128 + 64 * n) << 20 if phase == "template-build" else 0
                ct = c.containers.create(IMAGE, ["sleep", "600"], memory=mem)
                ct.start()
            kill_at(d, delay)
            d = Vesseld(*args, netns=daemons[0].netns, root=root)
            daemons.append(d)
            with vessel.Client(d.address, timeout=180) as c:
                listed = c.containers.list(all=True)
                mine = {x.vm.qemu_pid for x in listed if x.vm.qemu_pid}
                assert ct.id in [x.id for x in listed]
                stray = set(qemu_pids(root)) - mine
                assert not stray, f"kill after {delay}s: QEMUs {stray} owned by no container " \
                                  f"(containers own {mine})\n" + d.log
    finally:
        for d in daemons[1:]:
            d.stop()
        for p in qemu_pids(root):
            os.kill(p, signal.SIGKILL)
        for d in daemons[1:]:
            d.cleanup()
        daemons[0].cleanup()  # its network namespace last
