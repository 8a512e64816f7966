#!/usr/bin/env bash
# Fails when the committed client stubs differ from what proto/ generates.
set -uo pipefail
status=0
check() {  # generated-dir committed-dir pattern
  for f in "$1"/$3; do
    c="$2/$(basename "$f")"
    if ! cmp -s "$f" "$c"; then
      echo "DRIFT: $c differs from the generated $(basename "$f")"; status=1
    fi
  done
  for c in "$2"/$3; do
    [ -e "$1/$(basename "$c")" ] || { echo "STALE: $c is not generated any more"; status=1; }
  done
}
check proto/vessel/v1 clients/python/vessel/v1 '*_pb2*.py'
check proto/vessel/v1 clients/go/vesselpb '*.pb.go'
[ $status = 0 ] && echo "client stubs match proto/" || echo "run proto/sync-stubs.sh"
exit $status
