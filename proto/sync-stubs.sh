#!/usr/bin/env bash
# Regenerates the committed Python and Go stubs from proto/ (never edit them
# by hand). //proto:stubs_in_sync fails when they drift.
set -euo pipefail
cd "$(dirname "$0")/.."
bazel build //proto:python_stubs //proto:go_stubs
gen=$(bazel info bazel-bin)/proto/vessel/v1
rm -f clients/python/vessel/v1/*_pb2*.py clients/go/vesselpb/*.pb.go
cp "$gen"/*_pb2.py "$gen"/*_pb2_grpc.py clients/python/vessel/v1/
cp "$gen"/*.pb.go clients/go/vesselpb/
chmod 644 clients/python/vessel/v1/*.py clients/go/vesselpb/*.go
echo "stubs synced"
