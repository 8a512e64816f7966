"""Containers.CopyIn and CopyOut as proto/vessel/v1/containers.proto
promises them, in an image that has no tar: real vesseld, real VMs, in a
network namespace of its own."""
import io
import tarfile

import grpc
import pytest

from vessel.v1 import containers_pb2 as cp
from vessel.v1 import types_pb2

IMAGE = "busybox:notar"
IMAGES = {IMAGE: {"without": ("tar",)}}


def archive(*entries):
    """A tar of (name, data, mode, uid, gid) entries (data None: a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data, mode, uid, gid in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, 1700000000
            if data is None:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def copy_in(c, cid, path, data, **kw):
    def reqs():
        yield cp.ContainersCopyInRequest(header=cp.ContainersCopyInHeader(
            container_id=cid, path=path, **kw))
        for i in range(0, len(data), 1 << 20):
            yield cp.ContainersCopyInRequest(data=data[i:i + (1 << 20)])
    return c.containers.stub.CopyIn(reqs(), timeout=60)


def copy_out(c, cid, path):
    msgs = list(c.containers.stub.CopyOut(cp.ContainersCopyOutRequest(
        container_id=cid, path=path), timeout=60))
    return msgs[0].info, msgs, b"".join(m.data for m in msgs)


def code(f):
    with pytest.raises(grpc.RpcError) as e:
        f()
    return e.value.code(), e.value.details()


def run_output(c, ct, cmd):
    p = ct.exec(cmd)
    out = p.stdout.read()
    assert p.wait(timeout=60).code == 0
    return out.decode()


@pytest.fixture
def created(c):
    ct = c.containers.create(IMAGE, ["sleep", "600"])
    yield ct
    ct.delete(force=True)


def test_copy_in_a_created_container_keeps_modes_and_owners_without_tar(c, created):
    """'container not CREATED or RUNNING' is the only state error: a CREATED
    one accepts a copy; the image has no tar; the archive's modes and
    numeric owners are kept."""
    data = archive(("d", None, 0o750, 1234, 5678), ("d/f", b"secret\n", 0o640, 1234, 5678),
                   ("d/x", b"#!/bin/sh\necho run\n", 0o755, 0, 0))
    r = copy_in(c, created.id, "/root", data)
    assert r.bytes_received == len(data)
    created.start()
    assert run_output(c, created, ["sh", "-c", "ls /bin/tar /usr/bin/tar 2>&1; true"]).count(
        "No such file") == 2
    listing = run_output(c, created, ["ls", "-ln", "/root/d"])
    f = [l.split() for l in listing.splitlines() if l.endswith(" f")][0]
    x = [l.split() for l in listing.splitlines() if l.endswith(" x")][0]
    assert (f[0], f[2], f[3]) == ("-rw-r-----", "1234", "5678"), listing
    assert (x[0], x[2], x[3]) == ("-rwxr-xr-x", "0", "0"), listing
    assert run_output(c, created, ["cat", "/root/d/f"]) == "secret\n"


def test_copy_in_chown_owns_every_entry(c, created):
    """'Override ownership stored in the archive with uid/gid'."""
    copy_in(c, created.id, "/tmp", archive(("o", None, 0o755, 1, 1), ("o/a", b"a", 0o644, 2, 2)),
            uid=4321, gid=8765, chown=True)
    created.start()
    listing = run_output(c, created, ["ls", "-lnd", "/tmp/o", "/tmp/o/a"])
    assert all(l.split()[2:4] == ["4321", "8765"] for l in listing.splitlines()), listing


def test_copy_out_sends_file_info_first_then_a_tar(c, created):
    """'The first response carries `info`' (docker cp layout: the path's
    base name is the top entry)."""
    copy_in(c, created.id, "/root", archive(("f.txt", b"hello\n", 0o600, 42, 43)))
    info, msgs, tar = copy_out(c, created.id, "/root/f.txt")
    assert (info.path, info.mode, info.size, info.uid, info.gid, info.type) == (
        "/root/f.txt", 0o600, 6, 42, 43, types_pb2.FILE_TYPE_REGULAR)
    assert all(not m.HasField("info") for m in msgs[1:])
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        m = t.getmember("f.txt")
        assert t.extractfile(m).read() == b"hello\n" and (m.uid, m.mode) == (42, 0o600)
    info, _, tar = copy_out(c, created.id, "/root")
    assert info.type == types_pb2.FILE_TYPE_DIRECTORY
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        assert "root/f.txt" in t.getnames()


def test_missing_paths_are_not_found(c, created):
    """CopyOut: 'NOT_FOUND (path missing)'; CopyIn: 'NOT_FOUND (destination
    missing)'."""
    assert code(lambda: copy_out(c, created.id, "/no/such"))[0] == grpc.StatusCode.NOT_FOUND
    assert code(lambda: copy_in(c, created.id, "/no/such/dir", archive(("a", b"", 0o644, 0, 0))))[0] \
        == grpc.StatusCode.NOT_FOUND


def test_bad_input_is_invalid_argument(c, created):
    """'INVALID_ARGUMENT (first message not a header, not a directory,
    corrupt archive)'; relative paths too."""
    def data_first():
        yield cp.ContainersCopyInRequest(data=b"x")
    assert code(lambda: c.containers.stub.CopyIn(data_first(), timeout=60))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert code(lambda: copy_in(c, created.id, "/root", b"this is no tar archive" * 100))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    copy_in(c, created.id, "/root", archive(("plain", b"x", 0o644, 0, 0)))
    st, msg = code(lambda: copy_in(c, created.id, "/root/plain", archive(("a", b"", 0o644, 0, 0))))
    assert st == grpc.StatusCode.INVALID_ARGUMENT and "not a directory" in msg
    assert code(lambda: copy_out(c, created.id, "relative"))[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_a_stopped_container_is_failed_precondition(c):
    """'FAILED_PRECONDITION (container not CREATED or RUNNING)'."""
    ct = c.containers.create(IMAGE, ["true"])
    try:
        ct.start()
        ct.wait(timeout=120)
        assert code(lambda: copy_out(c, ct.id, "/bin"))[0] == grpc.StatusCode.FAILED_PRECONDITION
        assert code(lambda: copy_in(c, ct.id, "/tmp", archive(("a", b"", 0o644, 0, 0))))[0] == \
            grpc.StatusCode.FAILED_PRECONDITION
    finally:
        ct.delete(force=True)
