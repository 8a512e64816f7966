#!/usr/bin/env bash
# The whole of critest (cri-tools' CRI validation suite) against vesseld,
# set up as tests/critest/run.py says; its last count is in README.md. CI
# runs the [Conformance] specs (//tests:critest_test). Arguments go to
# run.py (--focus REGEXP, --websocket, --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
bash bazel/setup.sh
bash kernel/ensure.sh
bazel build //server/daemon:vesseld //guest-agent:initramfs
export VESSELD=$PWD/bazel-bin/server/daemon/vesseld VESSEL_INITRD=$PWD/bazel-bin/guest-agent/initramfs.cpio
export VESSEL_KERNEL=${VESSEL_KERNEL:-$(bash kernel/build.sh | tail -n 1)/vmlinux}
exec /usr/bin/python3 tests/critest/run.py "$@"
