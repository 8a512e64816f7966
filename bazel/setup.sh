#!/usr/bin/env bash
# Installs everything vessel needs on a fresh Debian 12 machine. Idempotent:
# only missing packages are installed, so a second run takes a second.
set -euo pipefail

DEB_PACKAGES=(
  # build
  bazel-bootstrap bazel-rules-java default-jdk-headless build-essential pkg-config
  protobuf-compiler protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev
  libgrpc-dev libgrpc++-dev protobuf-compiler-grpc libgtest-dev
  libssl-dev libcurl4-openssl-dev libarchive-dev libjansson-dev libzstd-dev zlib1g-dev
  libext2fs-dev libsqlite3-dev libmicrohttpd-dev libwslay-dev libsystemd-dev
  # runtime peers and tools
  openssl ca-certificates iproute2 iptables tmux e2fsprogs busybox-static qemu-system-x86 qemu-utils
  docker-registry skopeo umoci cpio runc
  # scrapes vesseld's --metrics-listen in tests/integration/test_metrics.py
  prometheus
  # user-mode emulators for foreign-architecture images (server/runtime/emulate.c)
  qemu-user-static
  # python clients and tests run on Debian's python3 (matches protoc 3.21)
  python3 python3-grpcio python3-protobuf python3-pytest python3-jwt python3-cryptography python3-bcrypt zstd
  # packaging/systemd: the unit is checked with systemd-analyze verify
  systemd
  # the Python client's wheel, built offline and installed into a fresh venv
  # (tests/integration/test_client_config.py)
  python3-build python3-setuptools python3-wheel python3-venv python3-pip
  # vesselctl's zsh completion is tested in zsh
  zsh
  # rootfs builder fuzzing (server/ext4/fuzz/run.sh): clang with libFuzzer
  clang libclang-rt-14-dev
  # guest kernel build (kernel/build.sh) from Debian's kernel source
  linux-source-6.1 flex bison bc libelf-dev
  # arm64 guests: the cross compilers, the arm64 libraries vminitd links
  # statically (//bazel/arm64), QEMU for arm64 machines
  gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-system-arm
  libgrpc-dev:arm64 libprotobuf-c-dev:arm64 libssl-dev:arm64 zlib1g-dev:arm64
)
GO_TOOLS=(
  google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.6
  google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
  github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3
  github.com/grpc-ecosystem/grpc-health-probe@v0.4.62
  sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0
)

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

# arm64 packages (above, and busybox-static:arm64 below) come through multiarch.
dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# Go tools go to /usr/local/bin so that Bazel actions (which see a plain PATH) find them.
GO=$(command -v go || echo /usr/local/go/bin/go)
for t in "${GO_TOOLS[@]}"; do
  name=${t%@*}; name=${name##*/}
  [ -x "/usr/local/bin/$name" ] || { echo "setup: go install $t" >&2; $SUDO env GOBIN=/usr/local/bin "$GO" install "$t" >&2; }
done

# critest, cri-tools' CRI validation suite: a Go test binary of the same
# module as crictl, built from its source on the module proxy.
CRI_TOOLS=v1.37.0
if [ ! -x /usr/local/bin/critest ]; then
  echo "setup: build critest $CRI_TOOLS" >&2
  src=$(cd /tmp && GOFLAGS=-mod=mod "$GO" mod download -json "sigs.k8s.io/cri-tools@$CRI_TOOLS" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  build=$(mktemp -d)
  cp -r "$src/." "$build" && chmod -R u+w "$build"
  (cd "$build" && "$GO" test -c -o critest ./cmd/critest >&2)
  $SUDO mv "$build/critest" /usr/local/bin/critest
  rm -rf "$build"
fi

# The Go client's module dependencies, so its tests need no download later.
(cd "$(dirname "$0")/../clients/go" && "$GO" mod download >&2)

# Debian's arm64 busybox-static, from which the tests build an arm64 image
# (tests/integration/test_platforms.py): the .deb only, not installed.
debs=/var/cache/vessel/debs
if ! ls "$debs"/busybox-static_*_arm64.deb >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO mkdir -p "$debs"
  (cd "$debs" && $SUDO apt-get download -q busybox-static:arm64 >&2)
fi

# Kubernetes' CRI definitions (runtime.v1), from the k8s.io/cri-api module on
# the Go module proxy, where //proto/cri reads them (not kept in this
# repository).
CRI_API=v0.37.2
cri=/var/cache/vessel/cri-api/$CRI_API
if [ ! -s "$cri/api.proto" ]; then
  dir=$(cd /tmp && GOFLAGS=-mod=mod "$GO" mod download -json "k8s.io/cri-api@$CRI_API" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  $SUDO mkdir -p "$cri"
  $SUDO cp "$dir/pkg/apis/runtime/v1/api.proto" "$cri/api.proto.tmp"
  $SUDO mv "$cri/api.proto.tmp" "$cri/api.proto"
fi
