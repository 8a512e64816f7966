#!/usr/bin/env bash
# Builds a small ext4 root filesystem for VM tests from Debian's
# busybox-static, without root privileges (mke2fs -d):
#   tests/vm/mkrootfs.sh OUT.img [SIZE_MB]
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
cp "$bb" "$dir/bin/busybox"
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
