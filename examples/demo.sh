#!/usr/bin/env bash
# vessel's main job, from a fresh machine: install what is missing, build,
# start vesseld on local defaults and talk to it through the real API.
#   VESSEL_ROOT   state directory      (default /tmp/vessel-demo/root)
#   VESSEL_SOCK   unix socket          (default /tmp/vessel-demo/vessel.sock)
set -euo pipefail
cd "$(dirname "$0")/.."
bash bazel/setup.sh
bazel build //server/daemon:vesseld >&2

demo=/tmp/vessel-demo
root=${VESSEL_ROOT:-$demo/root}
sock=${VESSEL_SOCK:-$demo/vessel.sock}
mkdir -p "$(dirname "$sock")"
bazel-bin/server/daemon/vesseld --root "$root" --listen "unix://$sock" 2> "$demo/vesseld.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 100); do grep -q " ready " "$demo/vesseld.log" && break; sleep 0.1; done
grep -q " ready " "$demo/vesseld.log" || { cat "$demo/vesseld.log"; exit 1; }

GRPCURL=$(command -v grpcurl || echo /usr/local/bin/grpcurl)
echo "== vesseld is serving on unix://$sock; services (via reflection):"
"$GRPCURL" -plaintext "unix://$sock" list
echo "== vessel.v1.System/Version"
"$GRPCURL" -plaintext "unix://$sock" vessel.v1.System/Version
echo "== vessel.v1.System/Info (Python client)"
PYTHONPATH=clients/python /usr/bin/python3 - "$sock" <<'PY'
import sys, vessel
with vessel.Client("unix://" + sys.argv[1]) as c:
    i = c.info()
    print(f"root={i.root_dir} accelerator={i.accelerator} host={i.host_os} "
          f"cpus={i.cpus} memory={i.memory_bytes >> 20} MiB")
PY
