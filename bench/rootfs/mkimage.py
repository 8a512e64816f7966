#!/usr/bin/env python3
"""Builds the benchmark image: an OCI image layout (usable by umoci) whose
gzip layers hold a Debian-like tree of many small files and some large
ones. Deterministic for a given seed.

  mkimage.py OUTDIR [--files 60000] [--mbytes 600] [--layers 3]

Writes OUTDIR/layout (OCI layout, tag "bench") and OUTDIR/layers.txt (the
layer blob paths in order, for vessel-rootfs).
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import random
import tarfile


def blob(layout, data, media_type):
    d = hashlib.sha256(data).hexdigest()
    p = os.path.join(layout, "blobs", "sha256", d)
    with open(p, "wb") as f:
        f.write(data)
    return {"mediaType": media_type, "digest": "sha256:" + d, "size": len(data)}


def write_layout(layout, layer_tars_gz, tag):
    """layer_tars_gz: list of (gzip bytes, uncompressed digest)."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    layers = [blob(layout, gz, "application/vnd.oci.image.layer.v1.tar+gzip")
              for gz, _ in layer_tars_gz]
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for _, d in layer_tars_gz]},
    }
    cfg = blob(layout, json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cfg, "layers": layers}
    man = blob(layout, json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    man["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [man]}, f)
    return [os.path.join(layout, "blobs", "sha256", l["digest"][7:]) for l in layers]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=60000)
    ap.add_argument("--mbytes", type=int, default=600)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    # Content source: half incompressible, half text-like, so gzip works
    # about as hard as on real images.
    words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9)))
             for _ in range(2000)]
    text = b" ".join(rnd.choice(words) for _ in range(1500000))[:8 << 20]
    noise = rnd.randbytes(8 << 20)
    src = text + noise

    total = a.mbytes << 20
    big = max(1, a.files // 2000)           # a few large files carry most bytes
    small_total = total // 3
    big_each = (total - small_total) // big
    small_each = max(1, small_total // a.files)
    per_layer = (a.files + a.layers - 1) // a.layers
    outs = []
    n = 0
    for li in range(a.layers):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
            dirs = set()
            def mkdir(d):
                if d in dirs:
                    return
                parent = os.path.dirname(d)
                if parent:
                    mkdir(parent)
                ti = tarfile.TarInfo(d + "/"); ti.type = tarfile.DIRTYPE; ti.mode = 0o755
                ti.mtime = 1700000000
                t.addfile(ti)
                dirs.add(d)
            for k in range(per_layer):
                if n >= a.files:
                    break
                d = "usr/share/pkg%03d/sub%02d" % (n // 500, (n // 50) % 10)
                mkdir(d)
                size = big_each if n % (a.files // big) == 0 else rnd.randint(1, 2 * small_each)
                off = rnd.randrange(0, len(src) - min(size, len(src)) + 1) if size < len(src) else 0
                data = (src * (size // len(src) + 1))[off:off + size] if size >= len(src) else src[off:off + size]
                ti = tarfile.TarInfo("%s/file%06d" % (d, n))
                ti.size = len(data); ti.mode = 0o644; ti.mtime = 1700000000 + n
                t.addfile(ti, io.BytesIO(data))
                n += 1
        tar = raw.getvalue()
        outs.append((gzip.compress(tar, compresslevel=6), hashlib.sha256(tar).hexdigest()))
    paths = write_layout(os.path.join(a.out, "layout"), outs, "bench")
    with open(os.path.join(a.out, "layers.txt"), "w") as f:
        f.write("\n".join(paths) + "\n")
    print("files=%d bytes~%d layers=%d" % (n, total, a.layers))


if __name__ == "__main__":
    main()
