"""Reading file trees for comparison: an ext4 image through debugfs (never
mounted), and a directory (umoci's unpack). Both give the same record per
path, so two unpackings can be compared field by field."""
import hashlib
import os
import re
import stat
import subprocess
import tempfile


def _debugfs(image, commands):
    """Runs debugfs commands in one process; returns {command: output}."""
    with tempfile.NamedTemporaryFile("w", suffix=".cmds", delete=False) as f:
        f.write("\n".join(commands) + "\n")
        path = f.name
    try:
        out = subprocess.run(["debugfs", "-f", path, image], capture_output=True,
                             check=True).stdout.decode("utf-8", "surrogateescape")
    finally:
        os.unlink(path)
    res, cur, buf = {}, None, []
    for line in out.split("\n"):
        if line.startswith("debugfs: "):
            if cur is not None:
                res[cur] = "\n".join(buf)
            cur, buf = line[len("debugfs: "):], []
        else:
            buf.append(line)
    if cur is not None:
        res[cur] = "\n".join(buf)
    return res


def _quote(p):
    return '"' + p.replace('"', '\\"') + '"'


def _parse_xattrs(text):
    xs = {}
    in_section = False
    for line in text.split("\n"):
        if line.startswith("Extended attributes:"):
            in_section = True
            continue
        if in_section:
            m = re.match(r"^  (\S+) \((\d+)\)(?: = (.*))?$", line)
            if not m:
                in_section = False
                continue
            name, n, v = m.group(1), int(m.group(2)), m.group(3) or ""
            if v.startswith('"') and v.endswith('"'):
                raw = v[1:-1].encode("latin-1", "surrogateescape")
                val = re.sub(rb"\\([0-7]{3})", lambda mm: bytes([int(mm.group(1), 8)]), raw)
            elif v:
                val = bytes.fromhex(v.replace(" ", ""))
            else:
                val = b""
            assert len(val) == n, (name, n, v)
            xs[name] = val
    return xs


def read_image(image):
    """{path: record} for every entry of an ext4 image, read with debugfs."""
    entries = {}  # path -> (ino, mode, uid, gid, size)
    entries["/"] = None
    level = ["/"]
    while level:
        outs = _debugfs(image, ["ls -p " + _quote(d) for d in level])
        nxt = []
        for d in level:
            for line in outs["ls -p " + _quote(d)].split("\n"):
                m = re.match(r"^/(\d+)/(\d+)/(\d+)/(\d+)/(.*)/(\d*)/$", line)
                if not m:
                    continue
                ino, mode, uid, gid, name, size = m.groups()
                if ino == "0" or not name:
                    continue  # unused space in a directory block
                mode = int(mode, 8)
                rec = (int(ino), mode, int(uid), int(gid), int(size or 0))
                if name == ".":
                    if d == "/":
                        entries["/"] = rec
                    continue
                if name == "..":
                    continue
                p = (d.rstrip("/") + "/" + name)
                entries[p] = rec
                if stat.S_ISDIR(mode):
                    nxt.append(p)
        level = nxt
    stats = _debugfs(image, ["stat " + _quote(p) for p in entries])
    dump = tempfile.mkdtemp()
    subprocess.run(["debugfs", "-R", "rdump / " + dump, image], capture_output=True, check=True)
    tree = {}
    for p, (ino, mode, uid, gid, size) in entries.items():
        st = stats["stat " + _quote(p)]
        rec = {"type": stat.S_IFMT(mode), "mode": stat.S_IMODE(mode), "uid": uid, "gid": gid,
               "ino": ino, "xattrs": _parse_xattrs(st)}
        m = re.search(r"\n\s*mtime: 0x([0-9a-f]+)(?::([0-9a-f]+))?", st)
        if m:
            lo = int(m.group(1), 16)
            extra = int(m.group(2), 16) if m.group(2) else 0
            secs = (lo if lo < 2**31 else lo - 2**32) + ((extra & 3) << 32)
            rec["mtime"] = secs
        local = os.path.join(dump, p.lstrip("/")) if p != "/" else dump
        if stat.S_ISREG(mode):
            rec["size"] = size
            with open(local, "rb") as f:
                rec["sha256"] = hashlib.sha256(f.read()).hexdigest()
        elif stat.S_ISLNK(mode):
            rec["target"] = os.readlink(local)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            m = re.search(r"Device major/minor number: (\d+):(\d+)", st)
            rec["rdev"] = (int(m.group(1)), int(m.group(2)))
        tree[p] = rec
    subprocess.run(["rm", "-rf", dump])
    return tree


def read_dir(root):
    """{path: record} for a directory tree on the host."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [""] + dirnames + filenames:
            full = os.path.join(dirpath, name) if name else dirpath
            if not name and dirpath != root:
                continue
            p = "/" + os.path.relpath(full, root) if full != root else "/"
            st = os.lstat(full)
            rec = {"type": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode),
                   "uid": st.st_uid, "gid": st.st_gid, "ino": st.st_ino,
                   "mtime": int(st.st_mtime // 1)}
            xs = {}
            try:
                for x in os.listxattr(full, follow_symlinks=False):
                    xs[x] = os.getxattr(full, x, follow_symlinks=False)
            except OSError:
                pass
            rec["xattrs"] = xs
            if stat.S_ISREG(st.st_mode):
                rec["size"] = st.st_size
                with open(full, "rb") as f:
                    rec["sha256"] = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                rec["target"] = os.readlink(full)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                rec["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            tree[p] = rec
    return tree


def hardlink_groups(tree):
    """Sets of paths sharing an inode (non-directories with 2+ names)."""
    by = {}
    for p, r in tree.items():
        if r["type"] != stat.S_IFDIR:
            by.setdefault(r["ino"], set()).add(p)
    return sorted(sorted(g) for g in by.values() if len(g) > 1)
