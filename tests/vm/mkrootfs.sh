#!/usr/bin/env bash
# Builds a small ext4 root filesystem for VM tests from Debian's
# busybox-static, without root privileges (mke2fs -d):
#   tests/vm/mkrootfs.sh OUT.img [SIZE_MB]
# With VESSEL_GUEST_ARCH=arm64 the busybox is Debian's arm64 one (the .deb
# bazel/setup.sh keeps in /var/cache/vessel/debs), for an arm64 guest.
# /bin/busybox + applet symlinks, /etc/passwd and /etc/group with a few
# users (root, alice 1000 in wheel/audio, nobody), /tmp 1777.
set -euo pipefail
out=$1
size=${2:-64}
bb=/bin/busybox
[ -x "$bb" ] || { echo "mkrootfs: $bb missing (apt-get install busybox-static)" >&2; exit 1; }
dir=$(mktemp -d /tmp/vessel-rootfs.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"/{bin,sbin,etc,proc,sys,dev,root,home/alice,usr/bin,usr/sbin,run,var,tmp}
chmod 1777 "$dir/tmp"
if [ "${VESSEL_GUEST_ARCH:-}" = arm64 ]; then
  deb=$(ls /var/cache/vessel/debs/busybox-static_*_arm64.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || { echo "mkrootfs: no arm64 busybox-static .deb (run bazel/setup.sh)" >&2; exit 1; }
  dpkg-deb --fsys-tarfile "$deb" | tar -xO ./bin/busybox > "$dir/bin/busybox"
  chmod 755 "$dir/bin/busybox"
else
  cp "$bb" "$dir/bin/busybox"
fi
# The applet list of the host's busybox: the same Debian build configuration.
for a in $("$bb" --list); do
  [ "$a" = busybox ] || ln -sf busybox "$dir/bin/$a"
done
cat > "$dir/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
alice:x:1000:1000:Alice:/home/alice:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$dir/etc/group" <<'G'
root:x:0:
wheel:x:10:alice
audio:x:29:alice
alice:x:1000:
nogroup:x:65534:
G
rm -f "$out"
mke2fs -q -F -t ext4 -L vessel-test -E root_owner=0:0 -d "$dir" "$out" "${size}M"
