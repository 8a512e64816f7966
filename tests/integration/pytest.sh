#!/usr/bin/env bash
# bazel test wrapper: runs pytest (Debian's python3, grpcio) on the given
# files against real vessel binaries from the runfiles tree.
set -euo pipefail
ws=$PWD
export VESSELD=$ws/server/daemon/vesseld VESSEL_CERTS=$ws/server/daemon/vessel-certs.sh
export VESSELCTL=$ws/clients/cli/vesselctl
export PYTHONDONTWRITEBYTECODE=1
# Tests that boot VMs find the initramfs in the runfiles and the guest kernel
# in kernel/build.sh's cache (built once per machine; instant afterwards).
if [ -e "$ws/guest-agent/initramfs.cpio" ]; then
  export VESSEL_INITRD=$ws/guest-agent/initramfs.cpio
  src=$(cd "$(dirname "$(readlink -f "$ws/tests/integration/pytest.sh")")/../.." && pwd)
  export VESSEL_KERNEL=${VESSEL_KERNEL:-$(bash "$src/kernel/build.sh" | tail -n 1)/vmlinux}
  if [ -e "$ws/guest-agent/initramfs_arm64.cpio" ]; then # arm64 guests too
    export VESSEL_INITRD_ARM64=$ws/guest-agent/initramfs_arm64.cpio
    export VESSEL_KERNEL_ARM64=$(bash "$src/kernel/build.sh" --arch arm64 | tail -n 1)/Image
  fi
fi
exec /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE "$@"
