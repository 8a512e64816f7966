#!/usr/bin/env python3
"""Rootfs benchmark: the same OCI image turned into an ext4 image by
vessel-rootfs and by `umoci unpack` + `mke2fs -t ext4 -d` (the same size),
several runs each; prints per-run times, medians and the ratio.

  bench.py VESSEL_ROOTFS IMAGE_DIR WORK_DIR RUNS
"""
import os
import shutil
import statistics
import subprocess
import sys
import time


def timed(cmds):
    t = time.monotonic()
    for c in cmds:
        subprocess.run(c, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - t


def main():
    vr, img, work, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    layers = open(os.path.join(img, "layers.txt")).read().split()
    layout = os.path.join(img, "layout")
    os.makedirs(work, exist_ok=True)
    out_v = os.path.join(work, "vessel.ext4")
    bundle = os.path.join(work, "bundle")
    out_m = os.path.join(work, "mke2fs.ext4")
    vcmd = [vr, "create", "--out", out_v, "--free-bytes", "256M"]
    for l in layers:
        vcmd += ["--layer", l]
    # Size for mke2fs: what vessel chose for content + 256 MiB free.
    subprocess.run(vcmd, check=True, stdout=subprocess.DEVNULL)
    size_kb = os.path.getsize(out_v) // 1024
    os.unlink(out_v)
    ncontent = sum(1 for _ in open(os.path.join(img, "layers.txt")))
    tv, tu, tm = [], [], []
    for i in range(runs):
        subprocess.run(["sync"])
        t = timed([vcmd])
        tv.append(t)
        os.unlink(out_v)
        subprocess.run(["sync"])
        t1 = timed([["umoci", "unpack", "--image", layout + ":bench", bundle]])
        t2 = timed([["mke2fs", "-q", "-F", "-t", "ext4", "-d", os.path.join(bundle, "rootfs"),
                     out_m, "%dk" % size_kb]])
        tu.append(t1)
        tm.append(t2)
        shutil.rmtree(bundle)
        os.unlink(out_m)
        print("run %d: vessel %.2fs   umoci unpack %.2fs + mke2fs -d %.2fs = %.2fs"
              % (i + 1, tv[-1], t1, t2, t1 + t2), flush=True)
    peer = [a + b for a, b in zip(tu, tm)]
    mv, mp = statistics.median(tv), statistics.median(peer)
    print("median: vessel-rootfs %.2fs | umoci unpack %.2fs + mke2fs -d %.2fs = %.2fs"
          % (mv, statistics.median(tu), statistics.median(tm), mp))
    print("ratio (umoci+mke2fs / vessel): %.2fx   [image: %d layers, size %d MiB]"
          % (mp / mv, ncontent, size_kb // 1024))


if __name__ == "__main__":
    main()
