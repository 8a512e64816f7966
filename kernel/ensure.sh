#!/usr/bin/env bash
# Makes sure the guest kernels exist in the machine's cache (builds or fetches
# them only when missing): the vessel kernel (kernel/build.sh, ~5-10 min the
# first time) and Debian's cloud kernel with its module archive
# (kernel/stock.sh, a download). Tests and the demo call this first; later
# calls return in well under a second. Prints both cache directories.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vessel=$("$here/build.sh" | tail -1)
stock=$("$here/stock.sh" | tail -1)
echo "vessel kernel: $vessel"
echo "stock kernel:  $stock"
