"""The container's device allow-list (runc's default) and the bounded
console log: a container's root cannot reach the VM's disk, serial console
or agent port, and what QEMU keeps of the console is bounded. Real vesseld
and VMs, in a network namespace of its own."""
import os
import time

from contract import IMAGE


PROBE = r"""
try() { if sh -c "$2" >/dev/null 2>&1; then echo "$1 open"; else echo "$1 denied"; fi; }
mknod /tmp/vda b 254 0 && echo "mknod ok"
try disk "head -c 512 /tmp/vda"
mknod /tmp/ttyS0 c 4 64
try console "echo x > /tmp/ttyS0"
vp=$(sed -n 's/^ *\([0-9]*\) virtio-portsdev$/\1/p' /proc/devices)
mknod /tmp/vport c ${vp:-243} 1
try agent-port "head -c 1 /tmp/vport"
try null "echo x > /dev/null"
try zero "head -c 8 /dev/zero"
"""


def test_devices_outside_the_allow_list_are_denied(c):
    """mknod is allowed (runc's default), opening the VM's disk, serial
    console or agent port is not; /dev/null and /dev/zero work."""
    r = c.containers.run(IMAGE, ["sh", "-c", PROBE])
    out = r.stdout.decode()
    assert "mknod ok" in out, out
    for dev in ["disk", "console", "agent-port"]:
        assert f"{dev} denied" in out, out
    assert "null open" in out and "zero open" in out, out


def test_console_log_is_kept_bounded(c):
    """What is kept of a VM's console is bounded (its last MiB on disk),
    however much is appended."""
    ct = c.containers.create(IMAGE, ["sleep", "600"])
    try:
        ct.start()
        log = os.path.join(c.daemon.root, "containers", ct.id, "console.log")
        with open(log, "ab") as f:  # as QEMU appends
            for _ in range(48):
                f.write(b"k" * (64 << 10))
            f.write(b"LAST LINE\n")
        deadline = time.monotonic() + 30
        while os.stat(log).st_blocks * 512 > (1 << 20) + (1 << 19) and time.monotonic() < deadline:
            time.sleep(0.5)
        st = os.stat(log)
        assert st.st_blocks * 512 <= (1 << 20) + (1 << 19), st
        assert st.st_size >= 3 << 20  # appends go on at the end
        with open(log, "rb") as f:
            f.seek(-10, 2)
            assert f.read() == b"LAST LINE\n"
    finally:
        ct.delete(force=True)
