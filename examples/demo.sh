#!/usr/bin/env bash
# vessel's main job, from a fresh machine: install what is missing, build
# vesseld, vminitd's initramfs and the guest kernel (cached after the first
# run), start vesseld on local defaults, make a busybox image available
# without internet (built from Debian's busybox-static and imported), run a
# command in a container VM and show its output.
#   VESSEL_ROOT   state directory      (default /tmp/vessel-demo/root)
#   VESSEL_SOCK   unix socket          (default /tmp/vessel-demo/vessel.sock)
set -euo pipefail
cd "$(dirname "$0")/.."
bash bazel/setup.sh
kdir=$(bash kernel/build.sh | tail -n 1)
bazel build //server/daemon:vesseld //guest-agent:initramfs >&2
bin=$(bazel info output_path 2>/dev/null)/k8-fastbuild/bin

demo=/tmp/vessel-demo
root=${VESSEL_ROOT:-$demo/root}
sock=${VESSEL_SOCK:-$demo/vessel.sock}
mkdir -p "$(dirname "$sock")" "$demo"
# The demo keeps its bridge and VMs in a network namespace of its own.
ns=vessel-demo
ip netns del $ns 2>/dev/null || true
ip netns add $ns
ip -n $ns link set lo up
ip netns exec $ns "$bin/server/daemon/vesseld" --root "$root" --listen "unix://$sock" \
  --kernel "$kdir/vmlinux" --initrd "$bin/guest-agent/initramfs.cpio" 2> "$demo/vesseld.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; ip netns del $ns 2>/dev/null' EXIT
for _ in $(seq 100); do grep -q " ready " "$demo/vesseld.log" && break; sleep 0.1; done
grep -q " ready " "$demo/vesseld.log" || { cat "$demo/vesseld.log"; exit 1; }

echo "== vesseld serving on unix://$sock (log: $demo/vesseld.log)"
PYTHONPATH=clients/python:tests/integration /usr/bin/python3 - "$sock" <<'PY'
import sys, tempfile, time
import vessel
from vessel.v1 import containers_pb2 as cp, images_pb2, types_pb2
from test_containers import busybox_image_tar

with vessel.Client("unix://" + sys.argv[1], timeout=300) as c:
    v = c.version()
    print(f"== vesseld {v.version} ({v.api_version}), accelerator {c.info().accelerator}")
    data = busybox_image_tar(tempfile.mkdtemp())
    def chunks():
        yield images_pb2.ImagesImportRequest(header=images_pb2.ImagesImportHeader(reference="busybox:demo"))
        yield images_pb2.ImagesImportRequest(data=data)
    img = c.images.Import(chunks()).images[0]
    print(f"== imported {img.name} ({img.target.digest[:19]}…, {img.size} bytes)")
    t0 = time.monotonic()
    ct = c.containers.Create(cp.ContainersCreateRequest(
        image="busybox:demo", process=types_pb2.ProcessSpec(args=[
            "sh", "-c", "echo hello from $(hostname), a container in its own VM; "
                        "echo kernel $(cat /proc/sys/kernel/osrelease); ip -4 addr show eth0 | grep inet"]))).container
    print(f"== created {ct.id[:12]} (VM booted in {ct.vm.boot_duration_ms} ms, IP {ct.networks[0].ip_address})")
    att = c.containers.Attach(iter([cp.ContainersAttachRequest(
        open=cp.ContainersAttachOpen(container_id=ct.id, logs=True))]))
    c.containers.Start(cp.ContainersStartRequest(container_id=ct.id))
    for m in att:
        if m.HasField("frame"):
            sys.stdout.write(m.frame.data.decode(errors="replace"))
        else:
            print(f"== exited with code {m.exit.code} after {time.monotonic() - t0:.2f} s")
    c.containers.Delete(cp.ContainersDeleteRequest(container_id=ct.id))
PY
