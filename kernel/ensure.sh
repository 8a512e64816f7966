#!/usr/bin/env bash
# Makes sure the guest kernels exist in the machine's cache (builds or fetches
# them only when missing): the vessel kernel (kernel/build.sh, ~5-10 min the
# first time) and Debian's cloud kernel with its module archive
# (kernel/stock.sh, a download); with --arm64 also the vessel kernel for arm64
# guests (cross-compiled, ~10-15 min the first time; the tests want it, the
# demo does not). Tests and the demo call this first; later calls return in
# well under a second. Prints the cache directories.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vessel=$("$here/build.sh" | tail -1)
stock=$("$here/stock.sh" | tail -1)
echo "vessel kernel: $vessel"
echo "stock kernel:  $stock"
# The arm64 guest's (vesseld --guest-arch arm64, tests/vm:agent_arm64_test).
if [ "${1:-}" = --arm64 ]; then
  echo "arm64 kernel:  $("$here/build.sh" --arch arm64 | tail -1)"
fi
