#!/usr/bin/env bash
# bazel test wrapper: pytest (Debian's python3) on the given files against
# the vessel-rootfs binary from the runfiles tree and the real umoci,
# debugfs and e2fsck.
set -euo pipefail
ws=$PWD
export VESSEL_ROOTFS=$ws/server/ext4/vessel-rootfs
export PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=$ws/server/ext4/tests
cd "${TEST_TMPDIR:-/tmp}"
exec /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfEs "${@/#/$ws/}"
