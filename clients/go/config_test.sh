#!/usr/bin/env bash
# bazel test wrapper: the Go client's configuration tests (no daemon), on
# the cases vesselctl and the Python client share.
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin GOFLAGS=-mod=mod GOPROXY=off
cd "$(dirname "$(readlink -f clients/go/go.mod)")"
go test -count=1 -run 'TestConfig|TestFromEnv' .
