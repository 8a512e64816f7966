"""Builds OCI image layouts for tests (from Debian's busybox-static), and
pushes them to a registry with skopeo."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile

BUSYBOX = "/bin/busybox"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_layer(files: dict[str, bytes | None], mode: int = 0o755) -> bytes:
    """files: path -> content (None = directory). Deterministic tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for path in sorted(files):
            data = files[path]
            info = tarfile.TarInfo(path)
            info.mtime = 1700000000
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            else:
                info.size = len(data)
                info.mode = mode
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_add(t: tarfile.TarFile, name: str, data: bytes | None = None, link: str | None = None,
            mode: int = 0o755, hard: bool = False):
    """One entry, mtime fixed: a file (data), a symbolic link (link; a hard
    link with hard=True) or else a directory."""
    info = tarfile.TarInfo(name)
    info.mtime = 1700000000
    if link:
        info.type, info.linkname = (tarfile.LNKTYPE if hard else tarfile.SYMTYPE), link
    elif data is None:
        info.type, info.mode = tarfile.DIRTYPE, mode
    else:
        info.size, info.mode = len(data), mode
    t.addfile(info, io.BytesIO(data) if data is not None else None)


def busybox_layer() -> bytes:
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    return tar_layer({"bin": None, "bin/busybox": bb})


def compress(raw: bytes, how: str) -> tuple[bytes, str]:
    if how == "gzip":
        return gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"
    if how == "zstd":
        out = subprocess.run(["zstd", "-q", "-c"], input=raw, stdout=subprocess.PIPE, check=True)
        return out.stdout, "application/vnd.oci.image.layer.v1.tar+zstd"
    return raw, "application/vnd.oci.image.layer.v1.tar"


class Layout:
    """An OCI image layout directory being assembled."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.index = {"schemaVersion": 2, "manifests": []}

    def blob(self, data: bytes) -> str:
        d = sha(data)
        with open(os.path.join(self.path, "blobs", "sha256", d[7:]), "wb") as f:
            f.write(data)
        return d

    def image(self, layers: list[bytes], arch="amd64", compression="gzip",
              config_extra: dict | None = None, diff_ids: list | None = None) -> dict:
        """Adds config+layers+manifest; returns the manifest descriptor.
        diff_ids: the config's, instead of the layers' true ones."""
        ldescs, true_ids = [], []
        for raw in layers:
            data, mt = compress(raw, compression)
            ldescs.append({"mediaType": mt, "digest": self.blob(data), "size": len(data)})
            true_ids.append(sha(raw))
        cfg = {"architecture": arch, "os": "linux", "created": "2024-01-02T03:04:05Z",
               "config": {"Cmd": ["/bin/busybox", "echo", "hi"], "Env": ["PATH=/bin"],
                          **(config_extra or {})},
               "rootfs": {"type": "layers",
                          "diff_ids": true_ids if diff_ids is None else list(diff_ids)}}
        cdata = json.dumps(cfg, sort_keys=True).encode()
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": self.blob(cdata), "size": len(cdata)},
                    "layers": ldescs}
        mdata = json.dumps(manifest, sort_keys=True).encode()
        return {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": self.blob(mdata), "size": len(mdata),
                "platform": {"os": "linux", "architecture": arch}}

    def tag(self, desc: dict, tag: str):
        d = dict(desc)
        d["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index["manifests"].append(d)
        self.flush()

    def multi(self, descs: list[dict], tag: str) -> dict:
        """An image index over several manifests, tagged."""
        idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": descs}
        data = json.dumps(idx, sort_keys=True).encode()
        d = {"mediaType": "application/vnd.oci.image.index.v1+json",
             "digest": self.blob(data), "size": len(data)}
        self.tag(d, tag)
        return d

    def flush(self):
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(self.index, f)

    def archive(self) -> bytes:
        """The layout as an OCI archive (tar)."""
        import io
        import tarfile
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as t:
            t.add(self.path, arcname=".")
        return out.getvalue()


def skopeo_push(layout: str, tag: str, dest: str, *extra: str):
    """skopeo copy oci:layout:tag docker://dest (plain HTTP registry)."""
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", *extra,
                    f"oci:{layout}:{tag}", f"docker://{dest}"], check=True,
                   stdout=subprocess.DEVNULL)


def skopeo_raw_digest(ref: str, *extra: str) -> str:
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", *extra,
                          f"docker://{ref}"], check=True, stdout=subprocess.PIPE).stdout
    return sha(raw)
