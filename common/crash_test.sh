#!/usr/bin/env bash
# vs_log_crashes: a crash prints one line naming the program and the signal,
# then a backtrace, and the program still dies of that signal; in a dynamic
# program and in a static one (which skips the backtrace warm-up at start,
# so its first backtrace is the crash's). Under ASan, ASan reports it.
set -uo pipefail
status=0
for b in common/crash_demo common/crash_demo_static; do
  out=$("$b" 2>&1)
  rc=$?
  if grep -q "AddressSanitizer" <<<"$out"; then
    echo "$b: reported by ASan"
    continue
  fi
  frames=$(sed -n '/^crash-demo FATAL: signal 11 (Segmentation fault); backtrace:$/,$p' <<<"$out" | tail -n +2 | grep -c .)
  if [ "$rc" -ne 139 ] || [ "$frames" -lt 3 ]; then
    echo "FAIL $b: exit $rc, $frames backtrace lines:"
    echo "$out"
    status=1
  else
    echo "ok $b: died of SIGSEGV, $frames backtrace lines"
  fi
done
exit $status
