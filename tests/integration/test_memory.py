"""Host memory of container VMs (real vesseld, QEMU, kernel, vminitd):
VMs restored from a template share its RAM file copy-on-write, write only
their own copies, survive the template's removal; with --template-memory
copy (and in cold-booted VMs) memory the guest frees goes back to the host;
the warm-spare pool grows with demand and shrinks back."""
import glob
import hashlib
import os
import shutil
import signal
import time

import pytest

from test_containers import daemon_with_image, run_existing, wait_for_template
from vesseld import wait_for
from vessel.v1 import containers_pb2 as cp
from vessel.v1 import types_pb2


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    d, c = daemon_with_image(str(tmp_path_factory.mktemp("img")))
    with d, c:
        yield c


def start(c, cid, args=("sleep", "600"), **kw):
    ct = c.containers.Create(cp.ContainersCreateRequest(
        id=cid, image="busybox:test", process=types_pb2.ProcessSpec(args=list(args)), **kw),
        timeout=180).container
    c.containers.Start(cp.ContainersStartRequest(container_id=cid))
    return ct


def sh(c, cid, script, timeout=120):
    """Runs sh -c script in the container; (exit code, stdout)."""
    ex = c.containers.Exec(cp.ContainersExecRequest(
        container_id=cid, process=types_pb2.ProcessSpec(args=["sh", "-c", script])))
    out, code = b"", None
    for m in c.containers.Attach(iter([cp.ContainersAttachRequest(open=cp.ContainersAttachOpen(
            container_id=cid, exec_id=ex.exec_id, logs=True))]), timeout=timeout):
        if m.HasField("frame") and m.frame.stream == types_pb2.STDIO_STREAM_STDOUT:
            out += m.frame.data
        elif m.HasField("exit"):
            code = m.exit.code
    return code, out


def mappings(pid):
    """{path: {field: kB}} of /proc/pid/smaps, summed per path."""
    maps, cur = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                cur = maps.setdefault(" ".join(head[5:]) if len(head) > 5 else "[anon]", {})
            elif line[0].isupper() and head[-1] == "kB":
                cur[head[0].rstrip(":")] = cur.get(head[0].rstrip(":"), 0) + int(head[1])
    return maps


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def ram_range(pid, path):
    """(start, end) of the mapping of path in pid."""
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            if line.rstrip("\n").endswith(path):
                lo, hi = line.split()[0].split("-")
                return int(lo, 16), int(hi, 16)
    raise AssertionError(f"{path} not mapped by {pid}")


def private_pages(pid, lo, hi):
    """Page offsets in [lo, hi) that pid has a private copy of (present,
    not a page of the file: /proc/pid/pagemap bits 63 and 61)."""
    n = (hi - lo) // 4096
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(lo // 4096 * 8)
        raw = f.read(n * 8)
    out = set()
    for i in range(n):
        e = int.from_bytes(raw[i * 8:i * 8 + 8], "little")
        if e >> 63 & 1 and not e >> 61 & 1:
            out.add(i)
    return out


def page(pid, addr):
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(addr)
        return f.read(4096)


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def test_restored_vms_share_the_template_ram_and_write_their_own(shared):
    """Two VMs restored from one template map its RAM file; each writes a
    different 32 MiB pattern into its guest RAM (tmpfs) at the same guest
    moment and reads back only its own; the file never changes."""
    c = shared
    assert wait_for_template(c)
    rams = glob.glob(os.path.join(c.daemon.root, "templates", "*", "ram"))
    assert len(rams) == 1
    before = digest(rams[0])
    a = start(c, "sha")
    b = start(c, "shb")
    assert a.vm.boot_mode == b.vm.boot_mode == cp.BOOT_MODE_TEMPLATE
    for ct in (a, b):
        m = mappings(ct.vm.qemu_pid).get(rams[0])
        assert m and m["Rss"] > 4096, m  # the guest's pages come from the file
        # ... and the other VM's too (dirty while the template's writes are not on disk yet)
        assert m.get("Shared_Clean", 0) + m.get("Shared_Dirty", 0) > 2048, m
    fill = "yes {} | head -c 33554432 > /dev/shm/p && md5sum < /dev/shm/p"
    want = {k: hashlib.md5(((k + "\n") * (33554432 // 2)).encode()).hexdigest() for k in "AB"}
    assert sh(c, "sha", fill.format("A")) == (0, f"{want['A']}  -\n".encode())
    assert sh(c, "shb", fill.format("B")) == (0, f"{want['B']}  -\n".encode())
    # read again after both wrote: each still sees only its own
    assert sh(c, "sha", "md5sum < /dev/shm/p") == (0, f"{want['A']}  -\n".encode())
    assert sh(c, "shb", "md5sum < /dev/shm/p") == (0, f"{want['B']}  -\n".encode())
    for ct in (a, b):  # what each wrote is private to its QEMU
        assert mappings(ct.vm.qemu_pid)[rams[0]]["Private_Dirty"] > 32 * 1024
    # The same guest-physical pages hold A's pattern in one QEMU and B's in
    # the other: both were restored from one state, so their kernels placed
    # the tmpfs pages alike.
    (alo, ahi), (blo, bhi) = ram_range(a.vm.qemu_pid, rams[0]), ram_range(b.vm.qemu_pid, rams[0])
    both = private_pages(a.vm.qemu_pid, alo, ahi) & private_pages(b.vm.qemu_pid, blo, bhi)
    pa, pb = b"A\n" * 2048, b"B\n" * 2048
    same = [i for i in sorted(both)
            if page(a.vm.qemu_pid, alo + i * 4096) == pa and page(b.vm.qemu_pid, blo + i * 4096) == pb]
    assert len(same) > 1024, len(same)  # > 4 MiB of guest addresses written by both, each its own
    assert digest(rams[0]) == before
    for cid in ("sha", "shb"):
        c.containers.Delete(cp.ContainersDeleteRequest(container_id=cid, force=True))


def test_template_removed_while_vms_run_from_it(shared):
    """Removing a template (as vesseld's pruning does) leaves the VMs
    restored from it their RAM: they keep running programs that live in
    the template's pages; once the spares made before are used, the next
    VMs cold-boot until it is rebuilt, and then restore from the new one."""
    c = shared
    assert wait_for_template(c)
    ct = start(c, "orphan")
    assert ct.vm.boot_mode == cp.BOOT_MODE_TEMPLATE
    shutil.rmtree(os.path.join(c.daemon.root, "templates"))
    maps = mappings(ct.vm.qemu_pid)
    assert any(p.endswith("/ram (deleted)") for p in maps), list(maps)
    assert sh(c, "orphan", "echo still; md5sum /bin/busybox >/dev/null && echo ok") == (0, b"still\nok\n")
    modes = []
    while cp.BOOT_MODE_COLD not in modes and len(modes) < 20:
        ct = c.containers.Create(cp.ContainersCreateRequest(
            image="busybox:test", process=types_pb2.ProcessSpec(args=["echo", "after"])),
            timeout=180).container
        modes.append(ct.vm.boot_mode)
        status, out, _, _ = run_existing(c, ct.id)
        assert (status.code, out) == (0, b"after\n")
        c.containers.Delete(cp.ContainersDeleteRequest(container_id=ct.id, force=True))
    assert cp.BOOT_MODE_COLD in modes, modes
    # The cold boot asked for a new template. (A restore alone does not show
    # it: a spare begun from the old one before it went can still be taken.)
    rebuilt = lambda: glob.glob(os.path.join(c.daemon.root, "templates", "*", "state"))
    assert wait_for(rebuilt, timeout=300)
    assert glob.glob(os.path.join(c.daemon.root, "templates", "*", "ram"))
    assert wait_for_template(c)
    assert sh(c, "orphan", "echo alive") == (0, b"alive\n")
    c.containers.Delete(cp.ContainersDeleteRequest(container_id="orphan", force=True))


def test_freed_memory_goes_back_to_the_host(tmp_path):
    """--template-memory copy: a container's VM that filled 200 MiB and
    freed it gives it back (free page reporting); its QEMU's resident size
    falls to near where it was."""
    d, c = daemon_with_image(str(tmp_path), "--template-memory", "copy")
    with d, c:
        assert wait_for_template(c, resources=types_pb2.Resources(memory_bytes=512 << 20))
        ct = start(c, "fat", resources=types_pb2.Resources(memory_bytes=512 << 20),
                   mounts=[types_pb2.Mount(type="tmpfs", destination="/big", options=["size=300m"])])
        assert ct.vm.boot_mode == cp.BOOT_MODE_TEMPLATE
        pid = ct.vm.qemu_pid
        assert not any(p.endswith("/ram") for p in mappings(pid))  # its own copy
        time.sleep(3)
        base = rss_kb(pid)
        assert sh(c, "fat", "dd if=/dev/urandom of=/big/x bs=1M count=200 2>/dev/null; echo $?") \
            == (0, b"0\n")
        full = rss_kb(pid)
        assert full - base > 180 * 1024, (base, full)
        assert sh(c, "fat", "rm /big/x && echo freed") == (0, b"freed\n")
        assert wait_for(lambda: rss_kb(pid) - base < 48 * 1024, timeout=60), (base, full, rss_kb(pid))
        c.containers.Delete(cp.ContainersDeleteRequest(container_id="fat", force=True))


def fds_threads(pid):
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def spares(c):
    return glob.glob(os.path.join(c.daemon.root, "spares", "*", "qemu.pid"))


def test_spare_pool_follows_demand(tmp_path):
    """Starts in a burst grow the pool of warm spares (up to --spares);
    --spares-memory seconds after the burst it shrinks back to one, and
    vesseld's fds and threads are back where they were with one."""
    d, c = daemon_with_image(str(tmp_path), "--spares", "3", "--spares-memory", "20")
    with d, c:
        assert wait_for_template(c)
        assert wait_for(lambda: len(spares(c)) == 1, timeout=60), spares(c)
        time.sleep(1)
        base = fds_threads(d.proc.pid)
        for i in range(5):
            start(c, f"burst{i}", args=["true"])
        assert wait_for(lambda: len(spares(c)) == 3, timeout=90), spares(c)  # capped at --spares
        time.sleep(3)
        assert len(spares(c)) == 3
        assert fds_threads(d.proc.pid)[0] > base[0]  # each spare has its agent connection
        for i in range(5):
            c.containers.Delete(cp.ContainersDeleteRequest(container_id=f"burst{i}", force=True))
        assert wait_for(lambda: len(spares(c)) == 1, timeout=60), spares(c)  # the burst is forgotten
        time.sleep(1)
        fds, threads = fds_threads(d.proc.pid)
        # (the base may still count a container's teardown in flight)
        assert fds <= base[0] + 1 and threads <= base[1] + 1, (base, fds, threads)
        # a spare whose QEMU dies is reaped (no zombie), its files go, and
        # another takes its place
        [dead] = spares(c)
        pid = int(open(dead).read())
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}") and not os.path.exists(dead)
                        and len(spares(c)) == 1, timeout=60), (pid, spares(c))
        start(c, "after", args=["true"])
        c.containers.Delete(cp.ContainersDeleteRequest(container_id="after", force=True))
    d2, c2 = daemon_with_image(str(tmp_path / "none"), "--spares", "0")
    with d2, c2:
        assert wait_for_template(c2)
        time.sleep(5)
        assert spares(c2) == []
