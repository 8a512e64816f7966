#!/usr/bin/env bash
# Fetches Debian's cloud kernel (linux-image-cloud-amd64) and prepares it for
# vessel: the vmlinuz, and a cpio archive of the virtio/overlay/vsock modules
# it needs (Debian builds them as modules) with their load order. The archive
# is appended to the vessel initramfs; vminitd loads the modules at boot.
#
#   kernel/stock.sh [--print-dir]
#
# Prints the cache directory (last line): vmlinuz, modules.cpio, release.
# Cache root: $VESSEL_KERNEL_CACHE, default /var/cache/vessel/kernel.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${VESSEL_KERNEL_CACHE:-/var/cache/vessel/kernel}
meta=linux-image-cloud-amd64
# Modules vessel needs; their dependencies are added from .modinfo.
WANT="virtio_mmio virtio_pci virtio_blk virtio_console virtio_net virtio-rng overlay vmw_vsock_virtio_transport"

pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$pkg" ]; then
  echo "stock.sh: cannot resolve $meta (run apt-get update)" >&2
  exit 1
fi
out=$cache/stock-$pkg
if [ "${1:-}" = --print-dir ]; then echo "$out"; exit 0; fi
if [ -f "$out/release" ]; then echo "$out"; exit 0; fi

mkdir -p "$cache"
exec 9>"$cache/.lock-stock"
flock 9
if [ -f "$out/release" ]; then echo "$out"; exit 0; fi

work=$(mktemp -d "$cache/stock-work.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "$pkg" >&2)
dpkg-deb -x "$work"/*.deb "$work/x"
moddir=$(echo "$work"/x/lib/modules/*)
release=$(basename "$moddir")

# Dependency closure, dependencies first (reads each module's .modinfo).
mods=$(/usr/bin/python3 - "$moddir" $WANT <<'PY'
import os, subprocess, sys
root, want = sys.argv[1], sys.argv[2:]
files = {}
for d, _, fs in os.walk(os.path.join(root, "kernel")):
    for f in fs:
        if f.endswith(".ko"):
            files[f[:-3].replace("-", "_")] = os.path.join(d, f)
def deps(path):
    data = subprocess.run(["objcopy", "-O", "binary", "--only-section=.modinfo", path, "/dev/stdout"],
                          check=True, capture_output=True).stdout
    for field in data.split(b"\0"):
        if field.startswith(b"depends="):
            return [x for x in field[8:].decode().split(",") if x]
    return []
order, seen = [], set()
def visit(name):
    name = name.replace("-", "_")
    if name in seen:
        return
    seen.add(name)
    if name not in files:
        return  # built in
    for d in deps(files[name]):
        visit(d)
    order.append(files[name])
for w in want:
    visit(w)
print("\n".join(order))
PY
)
mkdir -p "$out.tmp"
cp "$work"/x/boot/vmlinuz-* "$out.tmp/vmlinuz"
# shellcheck disable=SC2086
/usr/bin/python3 "$here/../guest-agent/initfs/mkinitfs.py" --modules $mods --out "$out.tmp/modules.cpio"
echo "$release" > "$out.tmp/release"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
