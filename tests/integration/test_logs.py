"""Container logs: rotation configured per container (LogConfig) and by
vesseld's --log-max-size / --log-max-files, and since / until / tail
answered right across rotated files, through the API and vesselctl, with a
real container in a real VM writing enough to rotate."""
import os
import subprocess
import threading

import grpc
import pytest

import vessel
from test_containers import INITRD, KERNEL, daemon_with_image

VESSELCTL = os.environ.get("VESSELCTL", "")
LINES = 600
# Each line is one record of ~110-150 bytes on disk: 4 KiB files hold ~30.
PAD = "x" * 40
SCRIPT = (f"i=0; while [ $i -lt {LINES} ]; do echo \"line $i {PAD}\"; "
          "[ $((i % 20)) -eq 19 ] && sleep 0.05; i=$((i+1)); done")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    assert KERNEL and os.path.exists(KERNEL), "VESSEL_KERNEL must name the guest kernel"
    assert INITRD and os.path.exists(INITRD), "VESSEL_INITRD must name the initramfs"
    d, c = daemon_with_image(str(tmp_path_factory.mktemp("img")), "--log-max-size", "64K",
                             "--log-max-files", "5", "--spares", "0")
    with d, c:
        yield c


def log_files(d, cid):
    logs = os.path.join(d.root, "containers", cid, "logs")
    return sorted(f for f in os.listdir(logs) if f.startswith("container.log"))


def vesselctl(d, *args):
    return subprocess.run([VESSELCTL, "--host", d.address, *args], capture_output=True,
                          timeout=60)


def test_log_config_defaults_and_validation(env):
    """0 fields take vesseld's defaults, fixed at Create; bad values are
    INVALID_ARGUMENT. The VM runs under the accelerator vesseld chose."""
    accel = env.info().accelerator
    a = env.containers.create("busybox:test", ["true"])
    b = env.containers.create("busybox:test", ["true"], log_max_size=4096, log_max_files=3)
    half = env.containers.create("busybox:test", ["true"], log_max_files=2)
    try:
        got = {x.id: env.containers.inspect(x.id) for x in (a, b, half)}
        assert (got[a.id].log.max_size_bytes, got[a.id].log.max_files) == (64 << 10, 5)
        assert (got[b.id].log.max_size_bytes, got[b.id].log.max_files) == (4096, 3)
        assert (got[half.id].log.max_size_bytes, got[half.id].log.max_files) == (64 << 10, 2)
        assert got[a.id].vm.accelerator == accel
    finally:
        for x in (a, b, half):
            env.containers.delete(x.id, force=True)
    for bad in (dict(log_max_files=101), dict(log_max_size=-1), dict(log_max_files=-2)):
        with pytest.raises(vessel.VesselError) as e:
            env.containers.create("busybox:test", ["true"], **bad)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "log:" in str(e.value)


def test_rotation_bounded_and_since_until_tail_across_files(env):
    d = env.daemon
    ct = env.containers.create("busybox:test", ["sh", "-c", SCRIPT], log_max_size=4096,
                               log_max_files=3)
    most, done = [0], threading.Event()

    def watch():  # the number of files on disk, while the container writes
        while not done.is_set():
            most[0] = max(most[0], len(log_files(d, ct.id)))
            done.wait(0.005)
    t = threading.Thread(target=watch)
    t.start()
    try:
        ct.start()
        assert ct.wait(timeout=120).code == 0
    finally:
        done.set()
        t.join()
    files = log_files(d, ct.id)
    assert files == ["container.log", "container.log.1", "container.log.2"]
    assert most[0] == 3, f"{most[0]} log files at once; at most 3 allowed"
    logs = os.path.join(d.root, "containers", ct.id, "logs")
    for f in files:  # each within the limit (a file is rotated before it would pass it)
        assert os.path.getsize(os.path.join(logs, f)) <= 4096

    entries = list(env.containers.logs(ct.id))
    nums = [int(e.data.split()[1]) for e in entries]
    # The newest records survive, in order, none lost between files: at
    # least the two rotated files' worth (each filled to within a record of
    # 4 KiB; records take ~110-150 bytes), the current file maybe just begun.
    assert nums == list(range(nums[0], LINES)) and 40 < len(nums) < 200, nums[:3]
    kept, times = nums[0], [e.time for e in entries]
    older = sum(1 for _ in open(os.path.join(logs, "container.log.2")))
    newest = sum(1 for _ in open(os.path.join(logs, "container.log")))

    def api(**kw):
        return [int(e.data.split()[1]) for e in env.containers.logs(ct.id, **kw)]

    # tail spanning the current file and the one before
    n = newest + 5
    assert api(tail=n) == list(range(LINES - n, LINES))
    # since in the oldest file
    k = older // 2
    assert api(since=times[k]) == list(range(kept + k, LINES))
    # until before the newest record (in an older file), and a window
    m = len(entries) - newest - 3
    assert api(until=times[m]) == list(range(kept, kept + m + 1))
    assert api(since=times[k], until=times[m]) == list(range(kept + k, kept + m + 1))
    # tail of what since/until let through
    assert api(since=times[k], until=times[m], tail=4) == list(range(kept + m - 3, kept + m + 1))

    # vesselctl: the same answers (times as RFC 3339 with nanoseconds)
    def cli(*args):
        r = vesselctl(d, "logs", *args, ct.id)
        assert r.returncode == 0, r.stderr
        return [int(l.split()[1]) for l in r.stdout.decode().splitlines()]
    assert cli("--tail", str(n)) == list(range(LINES - n, LINES))
    assert cli("--since", times[k].ToJsonString()) == list(range(kept + k, LINES))
    assert cli("--until", times[m].ToJsonString(), "--since", times[k].ToJsonString(),
               "--tail", "4") == list(range(kept + m - 3, kept + m + 1))
    assert cli("--since", "1h") == nums  # a duration ago: everything
    assert cli("--until", "1h") == []
    r = vesselctl(d, "logs", "--since", "yesterday", ct.id)
    assert r.returncode == 2 and b"since yesterday: not a time" in r.stderr
    env.containers.delete(ct.id, force=True)


def test_follow_ends_at_until(env):
    """A follow with until ends by itself once until passed, though the
    container still runs."""
    import time
    ct = env.containers.create("busybox:test", ["sh", "-c", "while true; do echo tick; sleep 0.2; done"])
    try:
        ct.start()
        t0 = time.time()
        got = list(env.containers.logs(ct.id, follow=True, until=t0 + 1.5, timeout=30))
        took = time.time() - t0
        assert 1.4 < took < 6, took
        assert got and all(e.data == b"tick\n" for e in got)
        assert all(e.time.ToNanoseconds() <= int((t0 + 1.5) * 1e9) for e in got)
    finally:
        env.containers.delete(ct.id, force=True)
