#!/usr/bin/env bash
# Runs every ```sh block of examples/grpcurl.md, in order, against a real
# vesseld (containers in real VMs) in a network namespace made here, with a
# docker-registry inside it standing in for Docker Hub. Substitutes the
# socket path, the image reference and the remote address; checks each
# block's <!-- expect: TEXT --> / <!-- expect-failure --> marker. Also checks
# that a client certificate from another CA is refused.
set -euo pipefail
ws=$PWD
VESSELD=$ws/server/daemon/vesseld
CERTS=$ws/server/daemon/vessel-certs.sh
DOC=$ws/examples/grpcurl.md
GRPCURL=$(command -v grpcurl || echo /usr/local/bin/grpcurl)
[ -x "$GRPCURL" ] || { echo "FAIL: grpcurl not installed (bazel/setup.sh)"; exit 1; }
export PATH="$(dirname "$GRPCURL"):$PATH"
src=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
KERNEL=${VESSEL_KERNEL:-$(bash "$src/kernel/build.sh" | tail -n 1)/vmlinux}
INITRD=$ws/guest-agent/initramfs.cpio
REG_PORT=5000
# The page's repository prefix and the test registry's stand-in for it.
DOC_REPO=docker.io/library/
TEST_REPO=127.0.0.1:$REG_PORT/library/

tmp=$(mktemp -d /tmp/vsl-gx-XXXXXX)
ns=vsl-gx$$
pid= reg=
cleanup() {
  set +e
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -n "$reg" ] && kill "$reg" 2>/dev/null && wait "$reg" 2>/dev/null
  ip netns del "$ns" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- vesseld log"; tail -n 40 "$tmp/log"; exit 1; }

ip netns add "$ns"
ip -n "$ns" link set lo up
inns() { ip netns exec "$ns" "$@"; }

bash "$CERTS" "$tmp/certs" >/dev/null
bash "$CERTS" "$tmp/other" >/dev/null
ip netns exec "$ns" "$VESSELD" --root "$tmp/root" --listen "unix://$tmp/v.sock" --listen tcp://127.0.0.1:0 \
  --tls-cert "$tmp/certs/server.pem" --tls-key "$tmp/certs/server.key" \
  --tls-client-ca "$tmp/certs/ca.pem" --kernel "$KERNEL" --initrd "$INITRD" 2> "$tmp/log" &
pid=$!
for _ in $(seq 100); do grep -q " ready " "$tmp/log" && break; sleep 0.1; done
grep -q " ready " "$tmp/log" || fail "vesseld not ready"
tcp=$(sed -n 's|.*listening on tcp://||p' "$tmp/log")

# A registry in the namespace holding busybox (built from Debian's
# busybox-static, loaded and pushed through the Python client, then removed
# locally so that the page's Pull really pulls).
mkdir -p "$tmp/reg"
printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
  "$tmp/reg" "$REG_PORT" > "$tmp/reg.yml"
ip netns exec "$ns" docker-registry serve "$tmp/reg.yml" 2>/dev/null &
reg=$!
for _ in $(seq 100); do inns bash -c "echo > /dev/tcp/127.0.0.1/$REG_PORT" 2>/dev/null && break; sleep 0.1; done
PYTHONPATH=$ws/clients/python:$ws/tests/integration PYTHONDONTWRITEBYTECODE=1 \
  /usr/bin/python3 - "unix://$tmp/v.sock" "${TEST_REPO}busybox:latest" "$tmp" <<'PY'
import sys
import vessel
from test_containers import busybox_image_tar
address, ref, tmp = sys.argv[1:]
with vessel.Client(address, timeout=120) as c:
    c.images.load(busybox_image_tar(tmp), reference="seed:1")
    c.images.push("seed:1", ref)
    c.images.delete("seed:1")
PY

# Split the page into blocks (with their markers), substituting as we go.
mkdir "$tmp/blocks"
/usr/bin/python3 - "$DOC" "$tmp/blocks" "unix://$tmp/v.sock" "$TEST_REPO" "$tcp" "$DOC_REPO" <<'PY'
import os, re, sys
doc, out, sock, repo, tcp, doc_repo = sys.argv[1:]
text = open(doc).read()
n = 0
marker = None
lines = text.splitlines()
i = 0
while i < len(lines):
    line = lines[i]
    m = re.match(r"<!-- (expect-failure|expect: (.*)) -->$", line)
    if m:
        marker = m.group(1)
    elif line == "```sh":
        j = lines.index("```", i + 1)
        body = "\n".join(lines[i + 1:j]) + "\n"
        body = (body.replace("unix:///run/vessel/vessel.sock", sock)
                    .replace(doc_repo, repo).replace("vessel.example.com:7443", tcp))
        n += 1
        with open(os.path.join(out, f"{n:03d}.sh"), "w") as f:
            f.write(body)
        if marker:
            with open(os.path.join(out, f"{n:03d}.marker"), "w") as f:
                f.write(marker)
        marker = None
        i = j
    elif line.strip():
        marker = None if not line.startswith("```") else marker
    i += 1
print(f"{n} sh blocks")
PY

count=0
for block in "$tmp"/blocks/*.sh; do
  count=$((count + 1))
  marker=$(cat "${block%.sh}.marker" 2>/dev/null || true)
  echo "== block $count: $(head -n 1 "$block")"
  set +e
  out=$(cd "$tmp" && inns timeout 300 bash -e -o pipefail "$block" 2>&1)
  rc=$?
  set -e
  # Image names as the page shows them, so expectations match.
  out=${out//$TEST_REPO/$DOC_REPO}
  if [ "$marker" = expect-failure ]; then
    [ $rc != 0 ] || fail "block $count succeeded but must fail:\n$(cat "$block")\n$out"
    echo "   refused (as expected): $(tail -n 1 <<<"$out")"
    continue
  fi
  [ $rc = 0 ] || fail "block $count exited $rc:
$(cat "$block")
$out"
  case $marker in
    expect:\ *)
      want=${marker#expect: }
      grep -qF -- "$want" <<<"$out" || fail "block $count: output lacks '$want':
$out" ;;
  esac
done
[ "$count" -ge 20 ] || fail "only $count sh blocks found in examples/grpcurl.md"

# A client certificate from another CA is refused too.
if (cd "$tmp" && inns "$GRPCURL" -max-time 5 -cacert certs/ca.pem -cert other/client.pem \
      -key other/client.key "$tcp" list) >/dev/null 2>&1; then
  fail "a client certificate of another CA was accepted"
fi
echo "grpcurl examples: all $count blocks behaved as documented"
