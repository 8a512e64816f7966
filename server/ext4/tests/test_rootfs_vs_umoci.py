"""vessel-rootfs against the reference unpacker: the same OCI images (built
here, multi-layer, with every feature the layer format has) unpacked by
`umoci unpack` and turned into ext4 by vessel-rootfs must hold the same
paths, types, modes, owners, sizes, content, symlink targets, xattrs,
device numbers, mtimes and hardlink groups. vessel's image is read back
with debugfs only (never mounted), and must pass e2fsck -fn."""
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile

import pytest

import rootfs_read

VESSEL_ROOTFS = os.environ.get("VESSEL_ROOTFS", "server/ext4/vessel-rootfs")
CAP = bytes.fromhex("0100000200040000000000000000000000000000")  # cap_net_bind_service+ep
T0 = 1700000000


class Layer:
    """A layer tar built in memory with Python's tarfile."""

    def __init__(self, fmt=tarfile.PAX_FORMAT):
        self.buf = io.BytesIO()
        self.t = tarfile.open(fileobj=self.buf, mode="w", format=fmt)

    def _add(self, name, typ, data=b"", mode=0o644, uid=0, gid=0, mtime=T0, xattrs=None, **kw):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = typ, mode, uid, gid, mtime
        for k, v in kw.items():
            setattr(ti, k, v)
        if xattrs:
            ti.pax_headers = {"SCHILY.xattr." + k: v.decode("latin-1") if isinstance(v, bytes) else v
                              for k, v in xattrs.items()}
        if typ == tarfile.REGTYPE:
            ti.size = len(data)
            self.t.addfile(ti, io.BytesIO(data))
        else:
            self.t.addfile(ti)
        return self

    def dir(self, name, mode=0o755, **kw):
        return self._add(name, tarfile.DIRTYPE, mode=mode, **kw)

    def file(self, name, data=b"", **kw):
        return self._add(name, tarfile.REGTYPE, data=data, **kw)

    def symlink(self, name, target):
        return self._add(name, tarfile.SYMTYPE, mode=0o777, linkname=target)

    def hardlink(self, name, target):
        return self._add(name, tarfile.LNKTYPE, linkname=target)

    def dev(self, name, typ, major, minor, mode=0o600):
        return self._add(name, typ, mode=mode, devmajor=major, devminor=minor)

    def fifo(self, name):
        return self._add(name, tarfile.FIFOTYPE)

    def whiteout(self, name):
        return self.file(name)

    def tar(self):
        self.t.close()
        return self.buf.getvalue()


def write_image(layout, tars, tag, compress=True):
    """Writes an OCI image layout; returns the layer blob paths in order."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)

    def blob(data, mt):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
            f.write(data)
        return {"mediaType": mt, "digest": "sha256:" + d, "size": len(data)}

    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    layers = []
    for t in tars:
        if compress:
            layers.append(blob(gzip.compress(t, 6), "application/vnd.oci.image.layer.v1.tar+gzip"))
        else:
            layers.append(blob(t, "application/vnd.oci.image.layer.v1.tar"))
    cfg = blob(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                           "rootfs": {"type": "layers", "diff_ids": [
                               "sha256:" + hashlib.sha256(t).hexdigest() for t in tars]}}).encode(),
               "application/vnd.oci.image.config.v1+json")
    man = blob(json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": cfg, "layers": layers}).encode(),
               "application/vnd.oci.image.manifest.v1+json")
    man["annotations"] = {"org.opencontainers.image.ref.name": tag}
    idx_path = os.path.join(layout, "index.json")
    idx = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(idx_path):
        with open(idx_path) as f:
            idx = json.load(f)
    idx["manifests"].append(man)
    with open(idx_path, "w") as f:
        json.dump(idx, f)
    return [(os.path.join(layout, "blobs", "sha256", l["digest"][7:]), l["mediaType"]) for l in layers]


def corpus():
    """Images of the comparison, by tag: lists of layer tars."""
    rnd = __import__("random").Random(7)
    big = rnd.randbytes(300000)
    zeros_mid = b"a" * 5000 + b"\0" * 20000 + b"b" * 100
    base = (Layer()
            .dir("./", mode=0o755)
            .dir("bin").file("bin/sh", b"#!sh\n" * 100, mode=0o755)
            .file("bin/su", b"suid", mode=0o4755)
            .file("bin/wall", b"sgid", mode=0o2755, gid=5)
            .dir("tmp", mode=0o1777)
            .dir("etc").file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
            .file("etc/empty")
            .file("etc/shadow", b"secret", mode=0o600, uid=0, gid=42)
            .dir("home", mode=0o755).dir("home/user", mode=0o700, uid=1000, gid=1000)
            .file("home/user/big.bin", big, uid=1000, gid=1000, mtime=T0 + 5)
            .file("home/user/holes", zeros_mid, uid=1000, gid=1000)
            .file("home/user/nobody", b"n", uid=65534, gid=65534)
            .symlink("bin/bash", "sh")
            .symlink("home/user/longlink", "/very/long/target/" + "x" * 100)
            .hardlink("bin/sh-hard", "bin/sh")
            .file("usr/lib/liba.so.1", b"lib a", mode=0o755)
            .hardlink("usr/lib/liba-copy", "usr/lib/liba.so.1")
            .hardlink("usr/lib/liba-copy2", "usr/lib/liba.so.1")
            .dir("dev").dev("dev/null", tarfile.CHRTYPE, 1, 3, mode=0o666)
            .dev("dev/sda", tarfile.BLKTYPE, 8, 0, mode=0o660)
            .dev("dev/big", tarfile.CHRTYPE, 300, 70000)
            .fifo("dev/initctl")
            .file("usr/bin/ping", b"\x7fELF", mode=0o755, xattrs={"security.capability": CAP})
            .file("usr/share/attrs", b"x", xattrs={"user.mime_type": "text/plain", "trusted.x": "y",
                                                   "user.big": "v" * 2000})
            .dir("usr/share/xdir", xattrs={"user.dirattr": "d"})
            .dir("opaque").file("opaque/lower1", b"1").dir("opaque/sub").file("opaque/sub/lower2", b"2")
            .dir("merge", mode=0o700).file("merge/lower", b"l")
            .file("f2d", b"file").dir("d2f").file("d2f/child", b"c")
            .file("f2l", b"file").symlink("l2f", "somewhere").dir("d2l").file("d2l/x", b"x")
            .dir("wh").file("wh/file", b"w").dir("wh/dir").file("wh/dir/inner", b"i")
            .file("p/" + "a" * 120 + "/" + "b" * 120 + "/" + "c" * 200, b"pax long path")
            .file("n/" + "x" * 255, b"255-byte name")
            .dir("many"))
    for i in range(3000):
        base.file("many/entry-%05d" % i, b"%d" % i)
    upper = (Layer()
             .whiteout("wh/.wh.file").whiteout("wh/.wh.dir").whiteout("wh/.wh.absent")
             .whiteout("f2l/.wh.under-a-file")                     # hides nothing
             .dir("opaque").whiteout("opaque/.wh..wh..opq").file("opaque/upper", b"u")
             .dir("merge", mode=0o750, uid=3, gid=4).file("merge/upper", b"u")
             .dir("f2d").file("f2d/inside", b"i")
             .file("d2f", b"now a file")
             .symlink("f2l", "target")
             .file("l2f", b"now a file")
             .symlink("d2l", "/tmp")
             .hardlink("etc/passwd-link", "etc/passwd")          # to a lower file
             .whiteout("usr/lib/.wh.liba-copy")                   # one link of three
             .file("bin/sh", b"replaced shell", mode=0o755)        # one name of a pair
             .file("usr/share/attrs", b"x2", xattrs={"user.new": "n"})
             .whiteout("many/.wh.entry-00007"))
    gnu = (Layer(fmt=tarfile.GNU_FORMAT)
           .dir("gnu").file("gnu/" + "g" * 200, b"gnu long name")
           .symlink("gnu/longtarget", "t" * 150)
           .hardlink("gnu/" + "h" * 150, "gnu/" + "g" * 200))
    return {"corpus": [base.tar(), upper.tar(), gnu.tar()]}


def compare(vessel, umoci):
    vessel = {p: r for p, r in vessel.items() if p != "/lost+found"}
    assert set(vessel) - set(umoci) == set() and set(umoci) - set(vessel) == set()
    for p in sorted(umoci):
        a, b = vessel[p], umoci[p]
        for k in ("type", "mode", "uid", "gid", "size", "sha256", "target", "rdev", "xattrs"):
            assert a.get(k) == b.get(k), (p, k, a.get(k), b.get(k))
        if b["type"] == stat.S_IFREG:
            assert a["mtime"] == b["mtime"], (p, a["mtime"], b["mtime"])
    assert rootfs_read.hardlink_groups(vessel) == rootfs_read.hardlink_groups(umoci)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("rootfs")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def build(layers, out, *extra):
    args = [VESSEL_ROOTFS, "create", "--out", str(out)]
    for path, mt in layers:
        args += ["--layer", path, "--media-type", mt]
    r = subprocess.run(args + list(extra), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    fsck = subprocess.run(["e2fsck", "-fn", str(out)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    return r.stdout


@pytest.mark.parametrize("compress", [True, False])
def test_same_content_as_umoci(work, compress):
    layout = work / ("layout-%d" % compress)
    tars = corpus()["corpus"]
    layers = write_image(str(layout), tars, "corpus", compress=compress)
    bundle = work / ("bundle-%d" % compress)
    subprocess.run(["umoci", "unpack", "--image", "%s:corpus" % layout, str(bundle)],
                   check=True, capture_output=True)
    img = work / ("corpus-%d.ext4" % compress)
    build(layers, img, "--free-bytes", "16M")
    vessel = rootfs_read.read_image(str(img))
    umoci = rootfs_read.read_dir(str(bundle / "rootfs"))
    compare(vessel, umoci)
    # Spot checks that the corpus exercised what it claims.
    assert "/wh/file" not in vessel and "/wh/dir" not in vessel
    assert sorted(p for p in vessel if p.startswith("/opaque/")) == ["/opaque/upper"]
    assert vessel["/usr/bin/ping"]["xattrs"]["security.capability"] == CAP
    assert len([p for p in vessel if p.startswith("/many/")]) == 2999
    assert ["/etc/passwd", "/etc/passwd-link"] in rootfs_read.hardlink_groups(vessel)


def test_many_files_and_sizes(work):
    """A wider image (20k files in nested dirs, multi-MB files) against
    umoci, and the kernel-independent size options."""
    rnd = __import__("random").Random(3)
    l1, l2 = Layer(), Layer()
    for i in range(20000):
        d = "d%02d/s%02d" % (i % 37, i % 11)
        l1.file("%s/f%05d" % (d, i), rnd.randbytes(rnd.randint(0, 3000)))
    for i in range(0, 20000, 7):
        d = "d%02d/s%02d" % (i % 37, i % 11)
        l2.whiteout("%s/.wh.f%05d" % (d, i))
    l2.file("big/blob", rnd.randbytes(6 << 20))
    layout = work / "layout-many"
    layers = write_image(str(layout), [l1.tar(), l2.tar()], "many")
    bundle = work / "bundle-many"
    subprocess.run(["umoci", "unpack", "--image", "%s:many" % layout, str(bundle)],
                   check=True, capture_output=True)
    img = work / "many.ext4"
    build(layers, img, "--size-bytes", "256M")
    assert os.path.getsize(img) == 256 << 20
    compare(rootfs_read.read_image(str(img)), rootfs_read.read_dir(str(bundle / "rootfs")))


def test_kernel_mounts_the_image(work):
    """The kernel accepts the image: the only test where a real kernel reads
    vessel's htree and extents. Needs loop devices (root; CI has them): fails
    rather than skips without, so a missing one is seen."""
    layers = write_image(str(work / "layout-mount"), corpus()["corpus"], "m")
    img = work / "mount.ext4"
    build(layers, img, "--free-bytes", "8M", "--free-inodes", "5000")
    mnt = work / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-o", "loop,ro", str(img), str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("cannot loop-mount (this test needs loop devices): " + r.stderr.strip())
    try:
        assert (mnt / "etc/passwd").read_bytes().startswith(b"root:x:0:0")
        assert os.readlink(mnt / "bin/bash") == "sh"
        assert len(os.listdir(mnt / "many")) == 2999
        assert (mnt / "many" / "entry-02999").read_bytes() == b"2999"  # htree lookup
        assert os.getxattr(mnt / "usr/bin/ping", "security.capability") == CAP
        assert os.stat(mnt / "bin/su").st_mode & 0o7777 == 0o4755
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    # Read-write: the kernel extends and shrinks the htree directory and
    # allocates around vessel's layout; the result is still clean.
    subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
    try:
        for i in range(2000):
            (mnt / "many" / ("added-%d" % i)).write_bytes(b"%d" % i)
        for i in range(0, 3000, 2):
            (mnt / "many" / ("entry-%05d" % i)).unlink()
        (mnt / "bin/sh").write_bytes(b"rewritten")
        assert len(os.listdir(mnt / "many")) == 2999 + 2000 - 1500
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    fsck = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout
