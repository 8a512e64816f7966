#!/usr/bin/env bash
# Builds the vessel guest kernel from Debian's linux-source package and caches
# it by the hash of (config fragments, source version, arch, recipe), so it is
# built once per machine and every later call returns at once.
#
#   kernel/build.sh [--arch x86_64|arm64] [--print-hash] [--config-only]
#
# Prints the cache directory on stdout (last line). It holds:
#   vmlinux   stripped ELF, booted directly through PVH (x86_64)
#   bzImage   (x86_64) / Image (arm64): the classic boot images
#   config    the full .config that was built
#   release   `make kernelrelease`
#
# Cache root: $VESSEL_KERNEL_CACHE, default /var/cache/vessel/kernel.
# Needs: linux-source-6.1 make gcc flex bison bc libelf-dev (bazel/setup.sh).
# arm64 additionally needs a cross compiler (gcc-aarch64-linux-gnu) unless the
# host is arm64. --config-only stops after generating and checking .config
# (prints its path): a quick check of a fragment change.
set -euo pipefail

# Bump when the way the kernel is built changes (not for comments here).
RECIPE=1

here=$(cd "$(dirname "$0")" && pwd)
cache=${VESSEL_KERNEL_CACHE:-/var/cache/vessel/kernel}
arch=$(uname -m)
print_hash=0
config_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift 2 ;;
    --print-hash) print_hash=1; shift ;;
    --config-only) config_only=1; shift ;;
    *) echo "usage: $0 [--arch x86_64|arm64] [--print-hash] [--config-only]" >&2; exit 2 ;;
  esac
done
case "$arch" in
  x86_64|amd64) arch=x86_64; karch=x86; images="vmlinux bzImage"; img_path=arch/x86/boot/bzImage ;;
  arm64|aarch64) arch=arm64; karch=arm64; images="Image"; img_path=arch/arm64/boot/Image ;;
  *) echo "build.sh: unsupported arch $arch" >&2; exit 2 ;;
esac

pkg=linux-source-6.1
tarball=/usr/src/$pkg.tar.xz
srcver=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)
if [ -z "$srcver" ] || [ ! -f "$tarball" ]; then
  echo "build.sh: $pkg is not installed (run bazel/setup.sh)" >&2
  exit 1
fi

hash=$( {
  echo "recipe=$RECIPE arch=$arch src=$pkg=$srcver"
  cat "$here/configs/common.config" "$here/configs/$arch.config"
} | sha256sum | cut -c1-16)
out=$cache/$arch-$hash
if [ "$print_hash" = 1 ]; then echo "$out"; exit 0; fi
if [ -f "$out/release" ] && [ "$config_only" = 0 ]; then echo "$out"; exit 0; fi

for t in make gcc flex bison bc; do
  command -v "$t" >/dev/null || { echo "build.sh: missing tool $t (run bazel/setup.sh)" >&2; exit 1; }
done
[ -f /usr/include/libelf.h ] || { echo "build.sh: missing libelf-dev (run bazel/setup.sh)" >&2; exit 1; }

mkdir -p "$cache"
# One build at a time per machine: a second caller waits, then finds the cache.
exec 9>"$cache/.lock"
flock 9
if [ -f "$out/release" ] && [ "$config_only" = 0 ]; then echo "$out"; exit 0; fi

cross=()
if [ "$arch" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
  command -v aarch64-linux-gnu-gcc >/dev/null ||
    { echo "build.sh: arm64 needs gcc-aarch64-linux-gnu" >&2; exit 1; }
  cross=(CROSS_COMPILE=aarch64-linux-gnu-)
fi

src=$cache/src/$pkg-$srcver
if [ ! -f "$src/Makefile" ]; then
  echo "build.sh: unpacking $tarball" >&2
  rm -rf "$src.tmp" && mkdir -p "$src.tmp"
  tar -xf "$tarball" -C "$src.tmp" --strip-components=1
  mv "$src.tmp" "$src"
fi

# Out-of-tree build directory per arch: a config change rebuilds incrementally.
work=$cache/build-$arch
mkdir -p "$work"
mk=(make -C "$src" O="$work" ARCH="$karch" "${cross[@]}")
"${mk[@]}" -s allnoconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$work" "$work/.config" \
  "$here/configs/common.config" "$here/configs/$arch.config" >/dev/null
"${mk[@]}" -s olddefconfig >&2

# Every requested value must have survived olddefconfig: a silently dropped
# option (unmet dependency) is a kernel that misses a feature.
bad=0
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=*) grep -qxF -- "$line" "$work/.config" || { echo "build.sh: not applied: $line" >&2; bad=1; } ;;
    "# CONFIG_"*" is not set")
      opt=${line#\# }; opt=${opt%% *}
      if grep -q "^$opt=" "$work/.config"; then echo "build.sh: not applied: $line" >&2; bad=1; fi ;;
  esac
done < <(cat "$here/configs/common.config" "$here/configs/$arch.config")
[ "$bad" = 0 ] || exit 1
if [ "$config_only" = 1 ]; then echo "$work/.config"; exit 0; fi

echo "build.sh: building $arch kernel from $pkg $srcver (several minutes)" >&2
jobs=$(nproc)
if [ "$arch" = x86_64 ]; then
  nice -n 10 "${mk[@]}" -j"$jobs" vmlinux bzImage >&2
else
  nice -n 10 "${mk[@]}" -j"$jobs" Image >&2
fi

tmp=$out.tmp
rm -rf "$tmp" && mkdir -p "$tmp"
if [ "$arch" = x86_64 ]; then
  # Stripped vmlinux keeps the PVH ELF note QEMU boots from.
  strip -o "$tmp/vmlinux" "$work/vmlinux"
fi
cp "$work/$img_path" "$tmp/"
cp "$work/.config" "$tmp/config"
"${mk[@]}" -s kernelrelease > "$tmp/release"
rm -rf "$out" && mv "$tmp" "$out"
echo "$out"
