#!/usr/bin/env bash
# bazel test wrapper for the VM tests: real QEMU, the cached kernels
# (kernel/ensure.sh builds/fetches them once per machine), the initramfs and
# the launcher CLI from the build.
set -euo pipefail
ws=$PWD
kdir=$(kernel/build.sh --print-hash)
if [ ! -f "$kdir/vmlinux" ]; then
  echo "vm_test: vessel kernel not built: run kernel/ensure.sh first ($kdir)" >&2
  exit 1
fi
export VESSEL_KERNEL=$kdir/vmlinux
export VESSEL_VM=$ws/server/vm/vessel-vm
export VESSEL_INITRAMFS=$ws/guest-agent/initramfs.cpio
sdir=$(kernel/stock.sh --print-dir 2>/dev/null || true)
export VESSEL_STOCK_DIR=$sdir
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE "$@"
