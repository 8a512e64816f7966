#!/usr/bin/env bash
# Runs every test of vessel: installs what is missing, then `bazel test //...`
# (unit tests, integration tests against real daemons and clients), then
# again under AddressSanitizer + UBSan (all but the VM tests). Ends with:
#   N passed, N failed
set -uo pipefail
cd "$(dirname "$0")/.."
bash bazel/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
# The guest kernels (x86_64 and arm64): built (~10 + ~15 min) or fetched once
# per machine, cached by content hash under /var/cache/vessel; instant
# afterwards.
bash kernel/ensure.sh --arm64 || { echo "kernel build failed"; echo "0 passed, 1 failed"; exit 1; }

log=$(mktemp /tmp/vessel-tests-XXXXXX.log)
trap 'rm -f "$log"' EXIT
rc=0
# --nocache_test_results: a result is never taken from an earlier run, whose
# inputs outside Bazel's view (the guest kernel in /var/cache/vessel, Debian
# packages) may have changed since.
bazel test //... --nocache_test_results --keep_going --test_summary=short 2>&1 \
  | sed -E 's|^(//[^ ]+)|default:\1|' | tee "$log" || rc=1
# Again under the sanitizers: unit tests, and the daemon integration tests,
# which then drive an ASan/UBSan vesseld. Tests that boot VMs (tag "vm") are
# left out: too slow twice, and the guest is not the sanitised part.
bazel test --config=asan --nocache_test_results --keep_going --test_tag_filters=-vm //... \
  --test_summary=short 2>&1 | sed -E 's|^(//[^ ]+)|asan:\1|' | tee -a "$log" || rc=1

# One result per test target and configuration: its summary line.
summary=$(grep -E '^(default|asan)://[^ ]+ +(\(cached\) )?[A-Z]' "$log" |
  awk '{ k = $1; s = ($2 == "(cached)") ? $3 : $2; st[k] = s }
       END { for (k in st) if (st[k] == "PASSED") p++; else f++; printf "%d %d", p + 0, f + 0 }')
passed=${summary% *}
failed=${summary#* }
if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi  # build broke before any test ran
echo "$passed passed, $failed failed"
exit $rc
