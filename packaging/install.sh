#!/usr/bin/env bash
# Installs vesseld, vesselctl, the guest kernel and initramfs, the systemd
# unit and an example /etc/vessel/vesseld.conf, from a built tree:
#
#   bazel build //server/daemon:vesseld //clients/cli:vesselctl //guest-agent:initramfs
#   sudo packaging/install.sh                  # into /usr/local and /etc
#   sudo systemctl daemon-reload && sudo systemctl enable --now vesseld
#
# PREFIX (default /usr/local) is where binaries, the guest files and the
# unit go (the unit in PREFIX/lib/systemd/system, which systemd reads for
# /usr/local and /usr); SYSCONFDIR (default /etc) holds vessel/vesseld.conf;
# DESTDIR (default empty) is prepended to every path, for packaging into a
# staging root. The unit and the config file name the PREFIX and SYSCONFDIR
# paths, without DESTDIR. An existing vesseld.conf is left as it is (the
# example goes next to it as vesseld.conf.example).
#
# Where the files come from: VESSELD, VESSELCTL, VESSEL_INITRD and
# VESSEL_KERNEL (as for the tests), by default bazel-bin's and the kernel
# that kernel/build.sh built.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
DESTDIR=${DESTDIR:-}
VESSELD=${VESSELD:-$src/bazel-bin/server/daemon/vesseld}
VESSELCTL=${VESSELCTL:-$src/bazel-bin/clients/cli/vesselctl}
VESSEL_INITRD=${VESSEL_INITRD:-$src/bazel-bin/guest-agent/initramfs.cpio}
if [ -z "${VESSEL_KERNEL:-}" ]; then
  VESSEL_KERNEL=$(bash "$src/kernel/build.sh" | tail -n 1)/vmlinux
fi
for f in "$VESSELD" "$VESSELCTL" "$VESSEL_INITRD" "$VESSEL_KERNEL"; do
  [ -r "$f" ] || { echo "install.sh: $f missing: build first (see the top of this script)" >&2; exit 1; }
done
for d in "$PREFIX" "$SYSCONFDIR"; do
  case $d in /*) ;; *) echo "install.sh: $d: PREFIX and SYSCONFDIR must be absolute" >&2; exit 1 ;; esac
done

bin=$DESTDIR$PREFIX/bin share=$DESTDIR$PREFIX/share/vessel
units=$DESTDIR$PREFIX/lib/systemd/system etc=$DESTDIR$SYSCONFDIR/vessel
install -d -m 0755 "$bin" "$share" "$units" "$etc"
install -m 0755 "$VESSELD" "$bin/vesseld"
install -m 0755 "$VESSELCTL" "$bin/vesselctl"
install -m 0644 "$VESSEL_KERNEL" "$share/vmlinux"
install -m 0644 "$VESSEL_INITRD" "$share/initramfs.cpio"
# The files name /usr/local and /etc; other directories replace them.
subst="s|/usr/local/|$PREFIX/|g; s|/etc/vessel/|$SYSCONFDIR/vessel/|g"
sed "$subst" "$src/packaging/systemd/vesseld.service" > "$units/vesseld.service"
chmod 0644 "$units/vesseld.service"
conf=$etc/vesseld.conf
[ -e "$conf" ] && conf=$etc/vesseld.conf.example
sed "$subst" "$src/packaging/vesseld.conf" > "$conf"
chmod 0644 "$conf"
echo "installed vesseld into $DESTDIR$PREFIX, its unit $units/vesseld.service, settings $conf"
[ -n "$DESTDIR" ] || echo "then: systemctl daemon-reload && systemctl enable --now vesseld"
