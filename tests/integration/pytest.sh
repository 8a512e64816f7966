#!/usr/bin/env bash
# bazel test wrapper: runs pytest (Debian's python3, grpcio) on the given
# files against real vessel binaries from the runfiles tree.
set -euo pipefail
ws=$PWD
export VESSELD=$ws/server/daemon/vesseld VESSEL_CERTS=$ws/server/daemon/vessel-certs.sh
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE "$@"
