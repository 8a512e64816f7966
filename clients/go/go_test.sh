#!/usr/bin/env bash
# bazel test wrapper: runs `go test` of the Go client against a real vesseld.
set -euo pipefail
ws=$PWD
export VESSELD=$ws/server/daemon/vesseld VESSEL_CERTS=$ws/server/daemon/vessel-certs.sh
export PATH=$PATH:/usr/local/go/bin GOFLAGS=-mod=mod
cd "$(dirname "$(readlink -f clients/go/go.mod)")"
go test -count=1 -v ./... 2>&1 | tail -n 60
exit "${PIPESTATUS[0]}"
