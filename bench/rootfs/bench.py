#!/usr/bin/env python3
"""Rootfs benchmark: the same OCI image turned into an ext4 image by
vessel-rootfs and by two peer pipelines, several runs each; prints per-run
times, medians and the ratios.

  vessel      vessel-rootfs create --layer L1 --layer L2 ... --out IMAGE
  peer A      umoci unpack (a runtime bundle: verifies each blob's digest and
              diff_id, unpacks, hashes every file for its mtree manifest,
              writes config.json) + mke2fs -t ext4 -d ROOTFS (same size)
  peer B      umoci raw unpack (verifies the digests and unpacks the layers,
              nothing else) + mke2fs -t ext4 -d ROOTFS (same size)

Each run does all three, one after the other; the order rotates from run to
run. vessel-rootfs does not hash the layers (vesseld's content store verified
them when they were pulled); both umoci commands do.

  bench.py VESSEL_ROOTFS IMAGE_DIR WORK_DIR RUNS

Ends with one JSON line (for bench/all).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time


def timed(cmd):
    t = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - t


def main():
    vr, img, work, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    layers = open(os.path.join(img, "layers.txt")).read().split()
    layout = os.path.join(img, "layout")
    os.makedirs(work, exist_ok=True)
    out_v = os.path.join(work, "vessel.ext4")
    bundle = os.path.join(work, "bundle")
    rawdir = os.path.join(work, "raw")
    out_m = os.path.join(work, "mke2fs.ext4")
    vcmd = [vr, "create", "--out", out_v, "--free-bytes", "256M"]
    for l in layers:
        vcmd += ["--layer", l]
    # Size for mke2fs: what vessel chose for content + 256 MiB free.
    subprocess.run(vcmd, check=True, stdout=subprocess.DEVNULL)
    size_kb = os.path.getsize(out_v) // 1024
    os.unlink(out_v)
    mkfs = lambda src: ["mke2fs", "-q", "-F", "-t", "ext4", "-d", src, out_m, "%dk" % size_kb]
    tv, ua, ma, ub, mb = [], [], [], [], []

    def vessel():
        tv.append(timed(vcmd))
        os.unlink(out_v)

    def peer_a():
        ua.append(timed(["umoci", "unpack", "--image", layout + ":bench", bundle]))
        ma.append(timed(mkfs(os.path.join(bundle, "rootfs"))))
        shutil.rmtree(bundle)
        os.unlink(out_m)

    def peer_b():
        ub.append(timed(["umoci", "raw", "unpack", "--image", layout + ":bench", rawdir]))
        mb.append(timed(mkfs(rawdir)))
        shutil.rmtree(rawdir)
        os.unlink(out_m)

    sides = [vessel, peer_a, peer_b]
    for i in range(runs):
        for side in sides[i % 3:] + sides[:i % 3]:  # the order rotates from run to run
            subprocess.run(["sync"])
            side()
        print("run %d: vessel %.2fs | A: umoci unpack %.2fs + mke2fs -d %.2fs = %.2fs"
              " | B: umoci raw unpack %.2fs + mke2fs -d %.2fs = %.2fs"
              % (i + 1, tv[-1], ua[-1], ma[-1], ua[-1] + ma[-1], ub[-1], mb[-1], ub[-1] + mb[-1]),
              flush=True)
    med = statistics.median
    mv = med(tv)
    pa = med([a + b for a, b in zip(ua, ma)])
    pb = med([a + b for a, b in zip(ub, mb)])
    print("median: vessel-rootfs %.2fs" % mv)
    print("median: peer A, umoci unpack (bundle: digests, mtree, config) %.2fs + mke2fs -d %.2fs"
          " = %.2fs" % (med(ua), med(ma), pa))
    print("median: peer B, umoci raw unpack (digests, layers only) %.2fs + mke2fs -d %.2fs"
          " = %.2fs" % (med(ub), med(mb), pb))
    print("ratio A (umoci unpack + mke2fs / vessel): %.2fx" % (pa / mv))
    print("ratio B (umoci raw unpack + mke2fs / vessel): %.2fx   (goal >= 3x)" % (pb / mv))
    print("[image: %d layers, ext4 image %d MiB]" % (len(layers), size_kb // 1024))
    print(json.dumps({"rootfs": {"vessel_s": mv, "umoci_unpack_mke2fs_s": pa,
                                 "umoci_raw_unpack_mke2fs_s": pb, "ratio_unpack": pa / mv,
                                 "ratio_raw_unpack": pb / mv, "runs": runs,
                                 "vessel_runs": tv, "umoci_unpack_runs": ua,
                                 "mke2fs_after_unpack_runs": ma, "umoci_raw_unpack_runs": ub,
                                 "mke2fs_after_raw_unpack_runs": mb}}))


if __name__ == "__main__":
    main()
