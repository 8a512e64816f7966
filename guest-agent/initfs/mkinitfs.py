#!/usr/bin/python3
"""Builds the vessel init filesystem: a newc cpio archive.

Contents: /sbin/vminitd (stripped) and /init -> sbin/vminitd, the shared
libraries vminitd needs (found with ldd) and the dynamic loader, /dev/console,
the empty mount points, and optionally kernel modules with their load order
(/lib/modules/order) for the stock kernel. Entries are sorted, owned by root
and dated 0, so the same inputs give the same bytes (no root needed: device
nodes are written as archive entries, not created on disk).

Also used alone to build the module-only archive that is appended to the
initramfs for the stock kernel (the kernel unpacks concatenated archives).
"""
import argparse
import os
import re
import stat
import subprocess
import sys
import tempfile

LIBDIR = "usr/lib/x86_64-linux-gnu"
# ELF e_machine -> the strip that understands it (an arm64 vminitd is cross
# built: guest-agent/cross.sh; it is static, so nothing else to carry).
STRIP = {62: "strip", 183: "aarch64-linux-gnu-strip"}


def elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        sys.exit(f"mkinitfs: {path} is not an ELF file")
    return int.from_bytes(head[18:20], "little")


class Cpio:
    def __init__(self):
        self.entries = {}  # path -> (mode, data, rdev)

    def dir(self, path, mode=0o755):
        self.entries[path] = (stat.S_IFDIR | mode, b"", (0, 0))

    def file(self, path, data, mode=0o644):
        self.entries[path] = (stat.S_IFREG | mode, data, (0, 0))

    def symlink(self, path, target):
        self.entries[path] = (stat.S_IFLNK | 0o777, target.encode(), (0, 0))

    def chardev(self, path, major, minor, mode=0o600):
        self.entries[path] = (stat.S_IFCHR | mode, b"", (major, minor))

    def bytes(self):
        out = bytearray()
        ino = 1
        for path in sorted(self.entries):
            mode, data, (rmaj, rmin) = self.entries[path]
            out += self._entry(ino, mode, data, rmaj, rmin, path)
            ino += 1
        out += self._entry(0, 0, b"", 0, 0, "TRAILER!!!")
        return bytes(out)

    @staticmethod
    def _entry(ino, mode, data, rmaj, rmin, name):
        nb = name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = [ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmaj, rmin, len(nb), 0]
        h = b"070701" + b"".join(b"%08X" % f for f in fields)
        rec = bytearray(h + nb)
        rec += b"\0" * (-len(rec) % 4)
        rec += data
        rec += b"\0" * (-len(rec) % 4)
        return rec


def ldd_deps(binary):
    if elf_machine(binary) != 62:
        return [], None  # cross built, static
    r = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if r.returncode != 0:
        if "not a dynamic executable" in r.stdout + r.stderr:
            return [], None  # static: nothing else to carry
        sys.exit("mkinitfs: ldd failed: " + r.stderr)
    out = r.stdout
    libs, loader = [], None
    for line in out.splitlines():
        line = line.strip()
        m = re.match(r"(\S+) => (\S+) \(0x", line)
        if m:
            libs.append(m.group(2))
            continue
        m = re.match(r"(/\S+) \(0x", line)
        if m:
            loader = m.group(1)
        if "not found" in line:
            sys.exit("mkinitfs: missing library: " + line)
    return libs, loader


def stripped(path):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "s")
        tool = STRIP.get(elf_machine(path))
        if not tool:
            sys.exit(f"mkinitfs: no strip for ELF machine {elf_machine(path)} ({path})")
        subprocess.run([tool, "-o", out, path], check=True)
        with open(out, "rb") as f:
            return f.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vminitd", help="the vminitd binary (omit for a modules-only archive)")
    ap.add_argument("--modules", nargs="*", default=[],
                    help="kernel module files, in load order")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    c = Cpio()
    if a.vminitd:
        for d in ["dev", "proc", "sys", "run", "tmp", "etc", "sbin", "usr", "usr/lib",
                  LIBDIR, "lib64", "mnt"]:
            c.dir(d)
        c.symlink("lib", "usr/lib")
        c.chardev("dev/console", 5, 1)
        c.chardev("dev/null", 1, 3, 0o666)
        c.file("sbin/vminitd", stripped(a.vminitd), 0o755)
        c.symlink("init", "sbin/vminitd")
        libs, loader = ldd_deps(a.vminitd)
        for lib in libs:
            with open(os.path.realpath(lib), "rb") as f:
                c.file(LIBDIR + "/" + os.path.basename(lib), f.read(), 0o755)
        if loader:
            with open(os.path.realpath(loader), "rb") as f:
                c.file(loader.lstrip("/"), f.read(), 0o755)
    if a.modules:
        c.dir("usr")
        c.dir("usr/lib")
        c.dir("usr/lib/modules")
        order = []
        for m in a.modules:
            name = os.path.basename(m)
            with open(m, "rb") as f:
                c.file("usr/lib/modules/" + name, f.read())
            order.append(name)
        c.file("usr/lib/modules/order", ("\n".join(order) + "\n").encode())
    with open(a.out, "wb") as f:
        f.write(c.bytes())


if __name__ == "__main__":
    main()
