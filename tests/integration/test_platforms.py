"""Foreign-architecture images through user-mode emulation (real vesseld,
QEMU, kernel, vminitd; Debian's qemu-user-static in the guest through
binfmt_misc): an arm64 image built from Debian's arm64 busybox-static,
pushed to a local docker-registry as a two-platform index with the amd64
one, pulled and run by platform."""
import glob
import os
import subprocess
import time

import grpc
import pytest

import vessel
from oci_layout import Layout, tar_add
from registry import Registry
from test_containers import INITRD, KERNEL, run_existing
from vesseld import Vesseld
from vessel.v1 import containers_pb2 as cp
from vessel.v1 import images_pb2, system_pb2, types_pb2

APPLETS = ["sh", "uname", "cat", "sleep", "true", "echo"]
ARM64_DEB = glob.glob("/var/cache/vessel/debs/busybox-static_*_arm64.deb")


def busybox_tree(busybox: bytes, extra: dict | None = None) -> bytes:
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        tar_add(t, "bin")
        tar_add(t, "bin/busybox", busybox)
        for name, data in (extra or {}).items():
            tar_add(t, name, data)
        for a in APPLETS:
            tar_add(t, f"bin/{a}", link="busybox")
    return buf.getvalue()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    assert ARM64_DEB, "bazel/setup.sh downloads Debian's arm64 busybox-static"
    tmp = tmp_path_factory.mktemp("plat")
    subprocess.run(["dpkg-deb", "-x", ARM64_DEB[0], str(tmp / "arm64")], check=True)
    with open(tmp / "arm64" / "bin" / "busybox", "rb") as f:
        arm = f.read()
    with open("/bin/busybox", "rb") as f:
        amd = f.read()
    lay = Layout(str(tmp / "layout"))
    cfg = {"Env": ["PATH=/bin"]}
    # the amd64 image also holds the arm64 busybox: it must not run there
    lay.multi([lay.image([busybox_tree(amd, {"bin/arm64-busybox": arm})], arch="amd64",
                         config_extra=cfg),
               lay.image([busybox_tree(arm)], arch="arm64", config_extra=cfg),
               lay.image([busybox_tree(amd)], arch="mips64le", config_extra=cfg)], "multi")
    with Vesseld("--kernel", KERNEL, "--initrd", INITRD, netns=True) as d, \
            Registry(netns=d.netns) as reg, vessel.Client(d.address, timeout=180) as c:
        ref = f"{reg.host}/plat/busybox:1"
        subprocess.run(reg.in_netns("skopeo", "copy", "-q", "--all", "--dest-tls-verify=false",
                                    f"oci:{lay.path}:multi", f"docker://{ref}"), check=True)
        c.ref, c.daemon, c.layout = ref, d, lay.path
        yield c


def pull(c, platform=None):
    for m in c.images.Pull(images_pb2.ImagesPullRequest(
            reference=c.ref, insecure=True, platform=platform), timeout=300):
        pass


def run(c, args, platform=None, stdin=None):
    ct = c.containers.Create(cp.ContainersCreateRequest(
        image=c.ref, platform=platform, process=types_pb2.ProcessSpec(args=args)),
        timeout=180).container
    if stdin is not None:  # through Attach, given before Start
        att = c.containers.Attach(iter([
            cp.ContainersAttachRequest(open=cp.ContainersAttachOpen(
                container_id=ct.id, attach_stdin=True, attach_stdout=True)),
            cp.ContainersAttachRequest(frame=types_pb2.StdioFrame(
                stream=types_pb2.STDIO_STREAM_STDIN, data=stdin, eof=True))]), timeout=120)
        time.sleep(0.5)
        c.containers.Start(cp.ContainersStartRequest(container_id=ct.id))
        msgs = list(att)
        out = b"".join(m.frame.data for m in msgs if m.HasField("frame"))
        status = c.containers.Wait(cp.ContainersWaitRequest(container_id=ct.id), timeout=120).exit_status
    else:
        status, out, _, _ = run_existing(c, ct.id)
    c.containers.Delete(cp.ContainersDeleteRequest(container_id=ct.id, force=True))
    return status, out


ARM64 = types_pb2.Platform(os="linux", architecture="arm64")


def test_info_lists_the_platforms(env):
    plats = [(p.os, p.architecture) for p in env.system.Info(system_pb2.SystemInfoRequest()).platforms]
    assert plats[0] == ("linux", "amd64") and ("linux", "arm64") in plats and ("linux", "arm") in plats
    assert ("linux", "mips64le") not in plats


def test_arm64_image_runs_through_the_emulator(env):
    c = env
    pull(c)  # the host's platform: amd64
    status, out = run(c, ["uname", "-m"])
    assert (status.code, out) == (0, b"x86_64\n")
    native_vm_cannot_run_arm64 = ["sh", "-c", "/bin/arm64-busybox true 2>/dev/null; echo $?"]
    status, out = run(c, native_vm_cannot_run_arm64)
    assert status.code == 0 and out != b"0\n", out
    with pytest.raises(grpc.RpcError):  # not pulled for arm64 yet
        run(c, ["true"], platform=ARM64)
    pull(c, ARM64)
    status, out = run(c, ["uname", "-m"], platform=ARM64)
    assert (status.code, out) == (0, b"aarch64\n")
    # Emulating VMs get a template of their own (with the emulators
    # registered): restored ones run arm64 too, and native images never get
    # such a VM.
    for _ in range(60):
        ct = c.containers.Create(cp.ContainersCreateRequest(
            image=c.ref, platform=ARM64, process=types_pb2.ProcessSpec(args=["uname", "-m"])),
            timeout=180).container
        status, out, _, _ = run_existing(c, ct.id)
        c.containers.Delete(cp.ContainersDeleteRequest(container_id=ct.id, force=True))
        assert (status.code, out) == (0, b"aarch64\n"), ct.vm.boot_mode
        if ct.vm.boot_mode == cp.BOOT_MODE_TEMPLATE:
            break
        time.sleep(1)
    assert ct.vm.boot_mode == cp.BOOT_MODE_TEMPLATE
    for _ in range(3):
        status, out = run(c, native_vm_cannot_run_arm64)
        assert status.code == 0 and out != b"0\n", out
    assert run(c, ["sh", "-c", "exit 7"], platform=ARM64)[0].code == 7
    status, out = run(c, ["cat"], platform=ARM64, stdin=b"through qemu-aarch64\n")
    assert (status.code, out) == (0, b"through qemu-aarch64\n")
    # signals reach the emulated processes: an init with a handler (as any
    # init needs one), an exec without
    ct = c.containers.Create(cp.ContainersCreateRequest(
        image=c.ref, platform=ARM64, process=types_pb2.ProcessSpec(
            args=["sh", "-c", "trap 'exit 3' TERM; echo trapped; sleep 600 & wait"])),
        timeout=180).container
    c.containers.Start(cp.ContainersStartRequest(container_id=ct.id))
    # the signal goes once the emulated shell has its handler (a fixed sleep
    # was not always long enough on a loaded host)
    seen = b""
    for m in c.containers.Logs(cp.ContainersLogsRequest(container_id=ct.id, follow=True), timeout=120):
        seen += b"".join(e.data for e in m.entries)
        if b"trapped\n" in seen:
            break
    ex = c.containers.Exec(cp.ContainersExecRequest(
        container_id=ct.id, exec_id="s", process=types_pb2.ProcessSpec(args=["sleep", "600"])))
    # (an exec without a handler dies of the signal whenever it comes)
    c.containers.Signal(cp.ContainersSignalRequest(container_id=ct.id, exec_id=ex.exec_id, signal=15))
    st = c.containers.Wait(cp.ContainersWaitRequest(container_id=ct.id, exec_id="s"), timeout=60).exit_status
    assert st.signal == 15, st
    c.containers.Signal(cp.ContainersSignalRequest(container_id=ct.id, signal=15))
    st = c.containers.Wait(cp.ContainersWaitRequest(container_id=ct.id), timeout=60).exit_status
    assert st.code == 3, st
    c.containers.Delete(cp.ContainersDeleteRequest(container_id=ct.id, force=True))


def test_unsupported_platform_is_refused(env):
    c = env
    mips = types_pb2.Platform(os="linux", architecture="mips64le")
    pull(c, mips)
    with pytest.raises(grpc.RpcError) as e:
        c.containers.Create(cp.ContainersCreateRequest(
            image=c.ref, platform=mips, process=types_pb2.ProcessSpec(args=["true"])), timeout=60)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "linux/mips64le" in e.value.details() and "linux/amd64" in e.value.details()


def test_arm64_guest_runs_arm64_images_natively(env):
    """vesseld --guest-arch arm64: arm64 VMs (the arm64 kernel and the
    cross-built vminitd on qemu-system-aarch64 -M virt), images pulled for
    arm64 without asking, nothing emulated."""
    kernel, initrd = os.environ.get("VESSEL_KERNEL_ARM64"), os.environ.get("VESSEL_INITRD_ARM64")
    assert kernel and initrd, "pytest.sh finds the arm64 kernel and initramfs"
    with Vesseld("--kernel", kernel, "--initrd", initrd, "--guest-arch", "arm64",
                 netns=True) as d, Registry(netns=d.netns) as reg, \
            vessel.Client(d.address, timeout=300) as c:
        c.ref = f"{reg.host}/plat/busybox:1"
        subprocess.run(reg.in_netns("skopeo", "copy", "-q", "--all", "--dest-tls-verify=false",
                                    f"oci:{env.layout}:multi", f"docker://{c.ref}"), check=True)
        plats = [(p.os, p.architecture) for p in c.system.Info(system_pb2.SystemInfoRequest()).platforms]
        assert plats == [("linux", "arm64")]  # the host's emulators are x86 binaries
        pull(c)  # no platform: the VMs' own
        status, out = run(c, ["uname", "-m"])
        assert (status.code, out) == (0, b"aarch64\n")
        # the kernel is the arm64 one, not the emulator's idea of it
        status, out = run(c, ["cat", "/proc/cpuinfo"])
        assert status.code == 0 and b"CPU architecture: 8" in out, out[:300]
        assert run(c, ["sh", "-c", "exit 5"])[0].code == 5
        status, out = run(c, ["cat"], stdin=b"arm64 guest\n")
        assert (status.code, out) == (0, b"arm64 guest\n")
        amd64 = types_pb2.Platform(os="linux", architecture="amd64")
        pull(c, amd64)
        with pytest.raises(grpc.RpcError) as e:
            c.containers.Create(cp.ContainersCreateRequest(
                image=c.ref, platform=amd64, process=types_pb2.ProcessSpec(args=["true"])), timeout=60)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "linux/amd64" in e.value.details() and "linux/arm64" in e.value.details()
