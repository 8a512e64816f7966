#!/usr/bin/env bash
# grpcurl and grpc-health-probe (from the Go module proxy) against a real
# vesseld, through server reflection only: no .proto files are given to grpcurl.
set -euo pipefail
ws=$PWD
VESSELD=$ws/server/daemon/vesseld
GRPCURL=$(command -v grpcurl || echo /usr/local/bin/grpcurl)
tmp=$(mktemp -d /tmp/vsl-grpcurl-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
# grep -q would quit early and SIGPIPE the writer under pipefail.
has() { grep "$@" >/dev/null; }

bash "$ws/server/daemon/vessel-certs.sh" "$tmp/certs" >/dev/null
"$VESSELD" --root "$tmp/root" --listen "unix://$tmp/v.sock" --listen tcp://127.0.0.1:0 \
  --tls-cert "$tmp/certs/server.pem" --tls-key "$tmp/certs/server.key" \
  --tls-client-ca "$tmp/certs/ca.pem" 2> "$tmp/log" &
pid=$!
for _ in $(seq 100); do grep -q " ready " "$tmp/log" && break; sleep 0.1; done
grep -q " ready " "$tmp/log" || { cat "$tmp/log"; fail "vesseld not ready"; }
tcp=$(sed -n 's|.*listening on tcp://||p' "$tmp/log")

# grpcurl 1.9 takes unix sockets as unix:///path (its -unix flag dials TCP).
# g [-flag value ...] VERB [ARGS]: flags go before the address, the rest after.
g() {
  local opts=()
  while [[ ${1:-} == -* ]]; do opts+=("$1" "$2"); shift 2; done
  "$GRPCURL" -plaintext "${opts[@]}" "unix://$tmp/v.sock" "$@"
}

services=$(g list)
echo "$services"
for s in vessel.v1.Agent vessel.v1.Containers vessel.v1.Events vessel.v1.Images \
         vessel.v1.Networks vessel.v1.System grpc.health.v1.Health \
         grpc.reflection.v1.ServerReflection grpc.reflection.v1alpha.ServerReflection; do
  case $s in vessel.v1.Agent) continue ;; esac  # the guest API is served by vminitd only
  grep -qx "$s" <<<"$services" || fail "list lacks $s"
done
grep -qx vessel.v1.Agent <<<"$services" && fail "vesseld must not serve the guest Agent API"

g list vessel.v1.Containers | has -x vessel.v1.Containers.Attach || fail "list methods"
g describe vessel.v1.Containers.Attach | has "stream .vessel.v1.ContainersAttachRequest" \
  || fail "describe Attach"
# A message that crosses files (types.proto, timestamp.proto) resolves.
g describe vessel.v1.ExitStatus | has "google.protobuf.Timestamp exited_at" || fail "describe ExitStatus"
g describe vessel.v1.ProcessSpec | has "vessel.v1.User user" || fail "describe ProcessSpec"

out=$(g vessel.v1.System/Version)
echo "$out"
grep -q '"apiVersion": "vessel.v1"' <<<"$out" || fail "System/Version"
g -d '{"service":"vessel.v1.System"}' grpc.health.v1.Health/Check | has SERVING || fail health

# grpc-health-probe (Kubernetes-style probes) sees a serving daemon.
PROBE=$(command -v grpc-health-probe || echo /usr/local/bin/grpc-health-probe)
"$PROBE" -addr "unix://$tmp/v.sock" 2>&1 | has "status: SERVING" || fail "grpc-health-probe"
"$PROBE" -addr "unix://$tmp/v.sock" -service vessel.v1.Containers 2>&1 | has "status: SERVING" \
  || fail "probe service"
if "$PROBE" -addr "unix://$tmp/v.sock" -service no.such.Service >/dev/null 2>&1; then
  fail "probe of an unknown service succeeded"
fi

# Bad input is a clean gRPC error naming the problem, not a hang.
if out=$(g -max-time 5 -d '{"container_id":"nope"}' vessel.v1.Containers/Inspect 2>&1); then
  fail "Inspect of a missing container succeeded?"
fi
grep -q "NotFound" <<<"$out" && grep -q "no container nope" <<<"$out" || fail "want NotFound, got: $out"

# Remote: TCP + mutual TLS; refused without a client certificate.
"$GRPCURL" -cacert "$tmp/certs/ca.pem" -cert "$tmp/certs/client.pem" -key "$tmp/certs/client.key" \
  "$tcp" vessel.v1.System/Version | has '"apiVersion": "vessel.v1"' || fail "mTLS grpcurl"
if "$GRPCURL" -max-time 5 -cacert "$tmp/certs/ca.pem" "$tcp" list >/dev/null 2>&1; then
  fail "TCP without a client certificate was accepted"
fi
if "$GRPCURL" -max-time 5 -plaintext "$tcp" list >/dev/null 2>&1; then
  fail "plaintext TCP was accepted"
fi
echo "grpcurl: all checks passed"
