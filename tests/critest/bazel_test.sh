#!/usr/bin/env bash
# CI's share of critest (//tests:critest_test): every [Conformance] spec over
# SPDY, then the streaming ones of them again over WebSocket. tests/critest.sh runs
# the whole suite.
set -euo pipefail
ws=$PWD
export VESSELD=$ws/server/daemon/vesseld VESSEL_INITRD=$ws/guest-agent/initramfs.cpio
export PYTHONDONTWRITEBYTECODE=1
src=$(cd "$(dirname "$(readlink -f "$ws/tests/critest/run.py")")/../.." && pwd)
export VESSEL_KERNEL=${VESSEL_KERNEL:-$(bash "$src/kernel/build.sh" | tail -n 1)/vmlinux}
rc=0
/usr/bin/python3 "$ws/tests/critest/run.py" --focus 'Conformance' || rc=1
/usr/bin/python3 "$ws/tests/critest/run.py" --focus 'Streaming.*Conformance' --websocket || rc=1
exit $rc
