#!/usr/bin/env bash
# Fuzzes the layer applier (and writer) with libFuzzer for a few minutes.
# Not a CI test: run by hand or nightly.
#
#   server/ext4/fuzz/run.sh [SECONDS]          (default 300)
#
# Builds layer_fuzz.c and the library with clang (-fsanitize=fuzzer,
# address,undefined), seeds a corpus from make_seeds.py and runs. Work
# files and crashes go to $FUZZ_DIR (default /tmp/vessel-rootfs-fuzz);
# copy a crash into server/ext4/fuzz/crashes/ to keep it as a regression
# input for //server/ext4:fuzz_replay_test.
set -euo pipefail
cd "$(dirname "$0")/../../.."
secs=${1:-300}
dir=${FUZZ_DIR:-/tmp/vessel-rootfs-fuzz}
mkdir -p "$dir/corpus" "$dir/artifacts" "$dir/tmp"
command -v clang >/dev/null || { echo "clang missing: apt-get install clang libclang-rt-14-dev" >&2; exit 1; }

srcs=(server/ext4/apply.c server/ext4/tree.c server/ext4/spool.c server/ext4/writer.c
      server/ext4/dir.c server/ext4/extent.c server/ext4/build.c server/ext4/copy.c
      common/vs_err.c server/ext4/fuzz/layer_fuzz.c)
clang -std=c11 -D_GNU_SOURCE -g -O1 -I. -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined "${srcs[@]}" -o "$dir/layer_fuzz" \
  -larchive -lext2fs -lcom_err
/usr/bin/python3 server/ext4/fuzz/make_seeds.py "$dir/seeds"
cp -n server/ext4/fuzz/crashes/* "$dir/seeds/" 2>/dev/null || true

echo "fuzzing for ${secs}s; artifacts in $dir/artifacts" >&2
cd "$dir"
TEST_TMPDIR=$dir/tmp ASAN_OPTIONS=detect_leaks=1 ./layer_fuzz -max_total_time="$secs" \
  -max_len=262144 -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
  -artifact_prefix="$dir/artifacts/" corpus seeds 2>&1 | tail -25
n=$(find "$dir/artifacts" -type f | wc -l)
echo "artifacts: $n"
[ "$n" = 0 ]
