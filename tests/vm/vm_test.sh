#!/usr/bin/env bash
# bazel test wrapper for the VM tests: real QEMU, the cached kernels
# (kernel/ensure.sh builds/fetches them once per machine), the initramfs and
# the launcher CLI from the build.
set -euo pipefail
ws=$PWD
# Both return at once when cached; on a clean machine the first VM test
# builds the kernel (minutes; run kernel/ensure.sh beforehand to keep that
# out of the test run) and fetches the stock one. A lock serialises callers.
if [ "${VESSEL_GUEST_ARCH:-}" = arm64 ]; then
  # An arm64 guest: the arm64 kernel (its Image) and the cross-built
  # initramfs (//guest-agent:initramfs_arm64).
  kdir=$(kernel/build.sh --arch arm64 | tail -n 1)
  export VESSEL_KERNEL=$kdir/Image
  export VESSEL_INITRAMFS=$ws/guest-agent/initramfs_arm64.cpio
else
  kdir=$(kernel/build.sh | tail -n 1)
  export VESSEL_KERNEL=$kdir/vmlinux
fi
export VESSEL_VM=$ws/server/vm/vessel-vm
export VESSEL_INITRAMFS=${VESSEL_INITRAMFS:-$ws/guest-agent/initramfs.cpio}
export VESSEL_STOCK_DIR=$(kernel/stock.sh | tail -n 1)
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE "$@"
