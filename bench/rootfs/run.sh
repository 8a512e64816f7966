#!/usr/bin/env bash
# bench/rootfs: OCI image -> ext4 image, vessel-rootfs against two peers:
# (A) umoci unpack + mke2fs -t ext4 -d, (B) umoci raw unpack + mke2fs -t ext4 -d
# (bench.py says what each does). A benchmark, not a test: prints medians and
# the ratios.
#
#   bench/rootfs/run.sh [RUNS]      (default 5)
#
# The image (60k files, ~600 MB, 3 gzip layers; bench/rootfs/mkimage.py)
# is generated once into $BENCH_DIR (default /tmp/vessel-bench-rootfs).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
dir=${BENCH_DIR:-/tmp/vessel-bench-rootfs}
[ "$(id -u)" = 0 ] || echo "note: umoci unpack without root loses owners/devices" >&2
bazel build -c opt //server/ext4:vessel-rootfs >&2
vr=$(bazel info -c opt bazel-bin 2>/dev/null)/server/ext4/vessel-rootfs
cp "$vr" "$dir.vessel-rootfs" 2>/dev/null || { mkdir -p "$(dirname "$dir")"; cp "$vr" "$dir.vessel-rootfs"; }
if [ ! -f "$dir/image/layers.txt" ]; then
  echo "generating the benchmark image in $dir/image" >&2
  rm -rf "$dir/image"
  /usr/bin/python3 bench/rootfs/mkimage.py "$dir/image" --files 60000 --mbytes 600 --layers 3 >&2
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%d GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo +dirty), date: $(date +%F)"
echo "tools: $(umoci --version 2>&1 | head -1), $(mke2fs -V 2>&1 | head -1)"
/usr/bin/python3 bench/rootfs/bench.py "$dir.vessel-rootfs" "$dir/image" "$dir/work" "$runs"
rm -rf "$dir/work"
