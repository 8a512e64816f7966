#!/usr/bin/env python3
"""Writes the seed corpus of the layer fuzzer: small layers (and layer
sequences joined by the "\\nVSL\\n" separator) covering whiteouts, opaque
dirs, hardlinks, symlinks through parents, devices, xattrs, long names,
sparse files and compression."""
import gzip
import io
import os
import subprocess
import sys
import tarfile
import tempfile

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def layer(entries, fmt=tarfile.PAX_FORMAT):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
        for name, typ, extra in entries:
            ti = tarfile.TarInfo(name)
            ti.type = typ
            data = extra.pop("data", b"") if isinstance(extra, dict) else b""
            for k, v in (extra or {}).items():
                setattr(ti, k, v)
            if typ == tarfile.REGTYPE:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    return b.getvalue()


R, D, S, H = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
seeds = {
    "basic": [layer([("etc/", D, {}), ("etc/passwd", R, {"data": b"root\n"}),
                     ("bin/sh", R, {"data": b"x" * 5000, "mode": 0o4755}),
                     ("bin/l", H, {"linkname": "bin/sh"}), ("s", S, {"linkname": "/etc"}),
                     ("dev/null", tarfile.CHRTYPE, {"devmajor": 1, "devminor": 3}),
                     ("fifo", tarfile.FIFOTYPE, {}),
                     ("x", R, {"pax_headers": {"SCHILY.xattr.user.a": "b",
                                               "SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}})])],
    "whiteouts": [layer([("a/", D, {}), ("a/f", R, {"data": b"1"}), ("o/", D, {}), ("o/x", R, {})]),
                  layer([("a/.wh.f", R, {}), ("o/.wh..wh..opq", R, {}), ("o/y", R, {"data": b"y"})])],
    "escape": [layer([("lnk", S, {"linkname": "../../../../tmp"}), ("abs", S, {"linkname": "/"})]),
               layer([("lnk/evil", R, {"data": b"e"}), ("../../x", R, {}), ("/abs/y", R, {}),
                      ("h", H, {"linkname": "../../etc/passwd"})])],
    "types": [layer([("f", R, {}), ("d/", D, {}), ("d/c", R, {}), ("s", S, {"linkname": "d"})]),
              layer([("f/", D, {}), ("d", R, {"data": b"z"}), ("s/", D, {}), ("f/n", R, {})])],
    "long": [layer([("p/" + "a" * 200 + "/" + "b" * 255, R, {"data": b"l"}),
                    ("l", S, {"linkname": "t" * 300})]),
             layer([("g" * 150, R, {})], fmt=tarfile.GNU_FORMAT)],
    "many": [layer([("d/f%d" % i, R, {"data": b"%d" % i}) for i in range(400)])],
}
for name, layers in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"\nVSL\n".join(layers))
    with open(os.path.join(out, name + ".gz"), "wb") as f:
        f.write(b"\nVSL\n".join(gzip.compress(l) for l in layers))
# GNU tar's own sparse format.
with tempfile.TemporaryDirectory() as d:
    with open(os.path.join(d, "sparse"), "wb") as f:
        f.write(b"head")
        f.seek(1 << 20)
        f.write(b"tail")
    subprocess.run(["tar", "--sparse", "--format=posix", "-cf", os.path.join(out, "sparse-pax"),
                    "-C", d, "sparse"], check=True)
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", os.path.join(out, "sparse-gnu"),
                    "-C", d, "sparse"], check=True)
