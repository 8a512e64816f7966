#!/usr/bin/env bash
# bazel test wrapper: runs `go test` of the Go client against a real vesseld
# (unix, TCP + mTLS; containers in real VMs, with vesseld in a network
# namespace the test creates) and builds and runs examples/go.
set -euo pipefail
ws=$PWD
export VESSELD=$ws/server/daemon/vesseld VESSEL_CERTS=$ws/server/daemon/vessel-certs.sh
export VESSEL_INITRD=$ws/guest-agent/initramfs.cpio VESSEL_REQUIRE_VM=1
export PATH=$PATH:/usr/local/go/bin GOFLAGS=-mod=mod
src=$(dirname "$(readlink -f clients/go/go.mod)")
# The guest kernel comes from kernel/build.sh's cache (built once per machine).
export VESSEL_KERNEL=${VESSEL_KERNEL:-$(bash "$src/../../kernel/build.sh" | tail -n 1)/vmlinux}
cd "$src"
go test -count=1 -v ./... 2>&1 | grep -v 'level=error msg="response completed with error"' | tail -n 80
exit "${PIPESTATUS[0]}"
