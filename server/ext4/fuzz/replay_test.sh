#!/usr/bin/env bash
# Replays the fuzz seeds and the saved crash inputs through the fuzz
# target (built with the normal toolchain; under --config=asan with the
# sanitizers): none may crash or leak.
set -euo pipefail
ws=$PWD
seeds=$TEST_TMPDIR/seeds
/usr/bin/python3 "$ws/server/ext4/fuzz/make_seeds.py" "$seeds"
extra=()
for f in "$ws"/server/ext4/fuzz/crashes/*; do
  [ -f "$f" ] && [ "$(basename "$f")" != .keep ] && extra+=("$f")
done
"$ws/server/ext4/fuzz_replay" "$seeds" "${extra[@]}"
