"""Images through the real Python client against a real vesseld and a real
registry (Debian's docker-registry), with skopeo as the peer."""
import hashlib
import json
import os
import subprocess
import time

import grpc
import pytest

import vessel
from oci_layout import Layout, busybox_layer, skopeo_push, skopeo_raw_digest, tar_layer
from registry import Registry
from vesseld import Vesseld
from vessel.v1 import images_pb2, types_pb2


@pytest.fixture(scope="module")
def registry():
    with Registry() as r:
        yield r


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """busybox image (2 gzip layers), a zstd image, a 2-platform index."""
    lay = Layout(str(tmp_path_factory.mktemp("layout")))
    bb = busybox_layer()
    extra = tar_layer({"etc": None, "etc/motd": b"hello from vessel\n"}, mode=0o644)
    lay.tag(lay.image([bb, extra], config_extra={"Labels": {"app": "demo"}}), "busybox")
    lay.tag(lay.image([bb, extra], compression="zstd"), "zstd")
    lay.tag(lay.image([extra], compression="none"), "plain")
    amd = lay.image([bb, extra], arch="amd64")
    arm = lay.image([extra, tar_layer({"arm": b"64"})], arch="arm64")
    lay.multi([amd, arm], "multi")
    return lay


@pytest.fixture(scope="module")
def pushed(registry, layout):
    skopeo_push(layout.path, "busybox", f"{registry.host}/test/busybox:1")
    skopeo_push(layout.path, "zstd", f"{registry.host}/test/zstd:1")
    skopeo_push(layout.path, "plain", f"{registry.host}/test/plain:1", "--preserve-digests")
    skopeo_push(layout.path, "multi", f"{registry.host}/test/multi:1", "--all")
    skopeo_push(layout.path, "busybox", f"{registry.host}/test/docker:1", "--format", "v2s2")
    return registry


@pytest.fixture
def client():
    with Vesseld() as d, vessel.Client(d.address, timeout=120) as c:
        c.daemon = d
        yield c


def pull(c, ref, **kw):
    """Runs Images.Pull; returns (progress messages, final image)."""
    progress, image = [], None
    for msg in c.images.Pull(images_pb2.ImagesPullRequest(reference=ref, **kw), timeout=120):
        if msg.HasField("progress"):
            progress.append(msg.progress)
        else:
            image = msg.image
    return progress, image


def store_is_consistent(root):
    """Every blob in the content store hashes to its name."""
    blobs = os.path.join(root, "content", "blobs", "sha256")
    for name in os.listdir(blobs):
        with open(os.path.join(blobs, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == name, f"corrupt blob {name}"
    return True


def test_pull_matches_skopeo_digests(client, pushed):
    ref = f"{pushed.host}/test/busybox:1"
    progress, image = pull(client, ref)
    assert image.name == ref
    assert image.target.digest == skopeo_raw_digest(ref)
    assert len(image.layers) == 2
    assert image.config.cmd == ["/bin/busybox", "echo", "hi"]
    assert dict(image.config.labels) == {"app": "demo"}
    assert image.platform.architecture == "amd64"
    assert image.created.seconds == 1704164645
    # Progress went through resolving and downloading to done, bytes add up.
    phases = [p.phase for p in progress]
    assert phases[0] == images_pb2.TRANSFER_PHASE_RESOLVING
    assert phases[-1] == images_pb2.TRANSFER_PHASE_DONE
    assert progress[-1].bytes_done == progress[-1].bytes_total > 1_000_000
    assert store_is_consistent(client.daemon.root)


def test_second_pull_reuses_blobs(client, pushed):
    ref = f"{pushed.host}/test/busybox:1"
    pull(client, ref)
    progress, _ = pull(client, ref)
    states = {l.state for l in progress[-1].layers}
    assert states == {images_pb2.LAYER_STATE_EXISTS}


@pytest.mark.parametrize("repo", ["zstd", "plain", "docker"])
def test_pull_layer_and_manifest_formats(client, pushed, repo):
    ref = f"{pushed.host}/test/{repo}:1"
    _, image = pull(client, ref)
    assert image.target.digest == skopeo_raw_digest(ref)
    want = {"zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
            "plain": "application/vnd.oci.image.layer.v1.tar",
            "docker": "application/vnd.docker.image.rootfs.diff.tar.gzip"}[repo]
    assert {l.media_type for l in image.layers} == {want}
    if repo == "docker":
        assert image.target.media_type == "application/vnd.docker.distribution.manifest.v2+json"


def test_multi_platform_selection(client, pushed):
    ref = f"{pushed.host}/test/multi:1"
    _, host = pull(client, ref)
    assert host.target.media_type == "application/vnd.oci.image.index.v1+json"
    assert host.platform.architecture == "amd64"
    _, arm = pull(client, ref, platform=types_pb2.Platform(os="linux", architecture="aarch64"))
    assert arm.platform.architecture == "arm64"
    assert {p.architecture for p in arm.platforms} == {"amd64", "arm64"}
    with pytest.raises(grpc.RpcError) as e:
        pull(client, ref, platform=types_pb2.Platform(os="linux", architecture="s390x"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "linux/amd64" in e.value.details() and "linux/arm64" in e.value.details()


def test_list_inspect_tag_delete_prune(client, pushed):
    ref = f"{pushed.host}/test/busybox:1"
    _, image = pull(client, ref)
    c = client.images
    tagged = c.Tag(images_pb2.ImagesTagRequest(source=ref, target="mine:v1")).image
    assert tagged.name == "docker.io/library/mine:v1"
    names = [i.name for i in c.List(images_pb2.ImagesListRequest()).images]
    assert names == sorted([ref, "docker.io/library/mine:v1"])
    only = c.List(images_pb2.ImagesListRequest(filters=["reference=docker.io/*"])).images
    assert [i.name for i in only] == ["docker.io/library/mine:v1"]
    by_label = c.List(images_pb2.ImagesListRequest(filters=["label=app=demo"])).images
    assert len(by_label) == 2
    with pytest.raises(grpc.RpcError) as e:
        c.List(images_pb2.ImagesListRequest(filters=["bogus=1"]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Inspect by digest prefix.
    got = c.Inspect(images_pb2.ImagesInspectRequest(reference=image.target.digest[7:19])).image
    assert got.target.digest == image.target.digest
    # Deleting one of two names keeps the blobs.
    r = c.Delete(images_pb2.ImagesDeleteRequest(reference="mine:v1"))
    assert list(r.untagged) == ["docker.io/library/mine:v1"] and not r.deleted
    # Deleting the last one removes them.
    r = c.Delete(images_pb2.ImagesDeleteRequest(reference=ref))
    assert len(r.deleted) == 4  # manifest, config, 2 layers
    blobs = os.path.join(client.daemon.root, "content", "blobs", "sha256")
    assert os.listdir(blobs) == []
    with pytest.raises(grpc.RpcError) as e:
        c.Inspect(images_pb2.ImagesInspectRequest(reference=ref))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    pull(client, ref)
    r = c.Prune(images_pb2.ImagesPruneRequest(all=True))
    assert r.bytes_reclaimed > 1_000_000 and list(r.untagged) == [ref]


def test_bad_references_are_clear_errors(client, pushed):
    cases = {"": "empty", "UPPER/case": "lowercase", "x@sha256:123": "digest"}
    for ref, word in cases.items():
        with pytest.raises(grpc.RpcError) as e:
            pull(client, ref)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, ref
        assert word in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        pull(client, f"{pushed.host}/test/nothere:1")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_push_to_registry_verified_by_skopeo(client, pushed, tmp_path):
    src = f"{pushed.host}/test/busybox:1"
    _, image = pull(client, src)
    dest = f"{pushed.host}/copy/pushed:2"
    progress, final = [], None
    for m in client.images.Push(images_pb2.ImagesPushRequest(reference=src, destination=dest),
                                timeout=120):
        if m.HasField("progress"):
            progress.append(m.progress)
        else:
            final = m.pushed
    assert final.digest == image.target.digest
    assert skopeo_raw_digest(dest) == image.target.digest
    # skopeo pulls it back and verifies every blob.
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{dest}",
                    f"oci:{tmp_path}/out:x"], check=True)
    # A multi-platform index pushes too (both platforms present locally).
    multi = f"{pushed.host}/test/multi:1"
    pull(client, multi)
    pull(client, multi, platform=types_pb2.Platform(os="linux", architecture="arm64"))
    out = list(client.images.Push(images_pb2.ImagesPushRequest(
        reference=multi, destination=f"{pushed.host}/copy/multi:1"), timeout=120))
    assert out[-1].pushed.digest == skopeo_raw_digest(multi)


def test_basic_auth_login_logout(layout):
    with Registry(htpasswd=("alice", "s3cret")) as reg, Vesseld() as d, \
            vessel.Client(d.address, timeout=60) as c:
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds",
                        "alice:s3cret", f"oci:{layout.path}:plain",
                        f"docker://{reg.host}/private/app:1"], check=True)
        ref = f"{reg.host}/private/app:1"
        with pytest.raises(grpc.RpcError) as e:
            pull(c, ref)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as e:
            c.images.Login(images_pb2.ImagesLoginRequest(server=reg.host, username="alice",
                                                         password="wrong"))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        c.images.Login(images_pb2.ImagesLoginRequest(server=reg.host, username="alice",
                                                     password="s3cret"))
        assert os.stat(os.path.join(d.root, "auth.json")).st_mode & 0o077 == 0
        _, image = pull(c, ref)
        assert image.target.digest == skopeo_raw_digest(ref, "--creds", "alice:s3cret")
        c.images.Logout(images_pb2.ImagesLogoutRequest(server=reg.host))
        c.images.Delete(images_pb2.ImagesDeleteRequest(reference=ref))
        with pytest.raises(grpc.RpcError) as e:
            pull(c, ref)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Per-request credentials work without Login.
        _, image = pull(c, ref, auth=images_pb2.RegistryAuth(username="alice", password="s3cret"))
        assert image.name == ref


def test_tls_registry_with_per_registry_ca(layout, certs):
    good = os.path.join(certs, "good")
    with Registry(tls_dir=good) as reg, Vesseld() as d, vessel.Client(d.address, timeout=60) as c:
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                        f"oci:{layout.path}:plain", f"docker://{reg.host}/tls/app:1"], check=True)
        ref = f"{reg.host}/tls/app:1"
        # Unknown CA: refused (no silent downgrade to plain HTTP).
        with pytest.raises(grpc.RpcError) as e:
            pull(c, ref)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "not trusted" in e.value.details()
        cadir = os.path.join(d.root, "certs.d", reg.host)
        os.makedirs(cadir)
        with open(os.path.join(good, "ca.pem"), "rb") as f, \
                open(os.path.join(cadir, "ca.crt"), "wb") as g:
            g.write(f.read())
        _, image = pull(c, ref)
        assert image.target.digest == skopeo_raw_digest(ref)


def test_bearer_token_auth(layout, tmp_path):
    from token_server import TokenServer
    ts = TokenServer(str(tmp_path), {"bob": "pw"}, anonymous_pull=True)
    try:
        with Registry(token=ts.registry_config()) as reg, Vesseld() as d, \
                vessel.Client(d.address, timeout=60) as c:
            subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds",
                            "bob:pw", f"oci:{layout.path}:plain",
                            f"docker://{reg.host}/tok/app:1"], check=True)
            ref = f"{reg.host}/tok/app:1"
            issued = ts.issued
            _, image = pull(c, ref)  # anonymous token with pull scope
            assert ts.issued == issued + 1  # one token, cached for every blob
            assert image.target.digest == skopeo_raw_digest(ref, "--creds", "bob:pw")
            # Push needs credentials: anonymous is refused, bob may.
            with pytest.raises(grpc.RpcError) as e:
                list(c.images.Push(images_pb2.ImagesPushRequest(
                    reference=ref, destination=f"{reg.host}/tok/copy:1"), timeout=60))
            assert e.value.code() in (grpc.StatusCode.UNAUTHENTICATED,
                                      grpc.StatusCode.PERMISSION_DENIED)
            out = list(c.images.Push(images_pb2.ImagesPushRequest(
                reference=ref, destination=f"{reg.host}/tok/copy:1",
                auth=images_pb2.RegistryAuth(username="bob", password="pw")), timeout=60))
            assert out[-1].pushed.digest == image.target.digest
            with pytest.raises(grpc.RpcError) as e:
                c.images.Login(images_pb2.ImagesLoginRequest(server=reg.host, username="bob",
                                                             password="nope"))
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        ts.stop()


def export(c, refs):
    req = images_pb2.ImagesExportRequest(references=refs, format=images_pb2.ARCHIVE_FORMAT_OCI)
    return b"".join(m.data for m in c.images.Export(req, timeout=120))


def import_(c, data, reference="", format=0):
    def gen():
        yield images_pb2.ImagesImportRequest(header=images_pb2.ImagesImportHeader(
            reference=reference, format=format))
        for i in range(0, len(data), 1 << 20):
            yield images_pb2.ImagesImportRequest(data=data[i:i + (1 << 20)])
    return c.images.Import(gen(), timeout=120).images


def test_export_is_read_by_skopeo_and_reimported(client, pushed, tmp_path):
    ref = f"{pushed.host}/test/busybox:1"
    _, image = pull(client, ref)
    tar = tmp_path / "img.tar"
    tar.write_bytes(export(client, [ref]))
    # skopeo reads vessel's archive and pushes it: same manifest digest.
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "--preserve-digests",
                    f"oci-archive:{tar}", f"docker://{pushed.host}/fromtar/app:1"], check=True)
    assert skopeo_raw_digest(f"{pushed.host}/fromtar/app:1") == image.target.digest
    # Load into a fresh daemon: same image back.
    with Vesseld() as d2, vessel.Client(d2.address, timeout=60) as c2:
        imgs = import_(c2, tar.read_bytes())
        assert [i.name for i in imgs] == [ref]
        assert imgs[0].target.digest == image.target.digest
        assert store_is_consistent(d2.root)


def test_import_skopeo_archive_with_index(client, pushed, tmp_path):
    src = f"{pushed.host}/test/multi:1"
    tar = tmp_path / "multi.tar"
    subprocess.run(["skopeo", "copy", "-q", "--all", "--src-tls-verify=false", f"docker://{src}",
                    f"oci-archive:{tar}:multi"], check=True)
    imgs = import_(client, tar.read_bytes(), reference="example.com/loaded/multi:2")
    assert imgs[0].name == "example.com/loaded/multi:2"
    assert imgs[0].target.digest == skopeo_raw_digest(src)
    assert {p.architecture for p in imgs[0].platforms} == {"amd64", "arm64"}
    # Exported again, skopeo reads it with --all.
    out = tmp_path / "again.tar"
    out.write_bytes(export(client, ["example.com/loaded/multi:2"]))
    subprocess.run(["skopeo", "copy", "-q", "--all", "--preserve-digests", f"oci-archive:{out}",
                    f"oci:{tmp_path}/again:x"], check=True)


def test_import_docker_save_archive(client, pushed, tmp_path):
    """A Docker `save` archive (written by skopeo's docker-archive:) loads:
    the same config as in the registry, its tag, a working rootfs."""
    src = f"{pushed.host}/test/busybox:1"
    tar = tmp_path / "saved.tar"
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{src}",
                    f"docker-archive:{tar}:saved/busybox:7"], check=True)
    imgs = import_(client, tar.read_bytes())
    assert [i.name for i in imgs] == ["docker.io/saved/busybox:7"]
    cfg = json.loads(subprocess.run(
        ["skopeo", "inspect", "--config", "--tls-verify=false", f"docker://{src}"],
        check=True, stdout=subprocess.PIPE).stdout)
    got = client.images.Inspect(images_pb2.ImagesInspectRequest(
        reference="saved/busybox:7")).image
    # The layers are the uncompressed tars the config's diff_ids name.
    assert [l.digest for l in got.layers] == cfg["rootfs"]["diff_ids"]
    assert list(got.config.env) == cfg["config"].get("Env", [])
    r = client.images.CreateRootfs(images_pb2.ImagesCreateRootfsRequest(
        reference="saved/busybox:7", free_bytes=64 << 20), timeout=120)
    motd = subprocess.run(["debugfs", "-R", "cat /etc/motd", r.path], capture_output=True,
                          text=True).stdout
    assert motd == "hello from vessel\n"
    # A reference given at import names it instead.
    imgs = import_(client, tar.read_bytes(), reference="example.com/again/bb:2")
    assert [i.name for i in imgs] == ["example.com/again/bb:2"]
    # A manifest naming a layer that is not in the archive: nothing is stored.
    bad = tar_layer({"manifest.json": json.dumps([{
        "Config": "c.json", "RepoTags": ["x/y:1"], "Layers": ["nope/layer.tar"]}]).encode(),
        "c.json": b"{}"})
    with pytest.raises(grpc.RpcError) as e:
        import_(client, bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nope/layer.tar is missing" in e.value.details()


def test_push_survives_a_lost_blob_put_answer(client, pushed):
    """When a blob PUT's answer is lost after the registry stored the blob,
    the retry hits the spent upload URL: vesseld checks the blob (HEAD) and
    goes on."""
    from lossy_proxy import LossyProxy
    src = f"{pushed.host}/test/busybox:1"
    pull(client, src)
    once = []

    def lose(method, path):
        if method == "PUT" and "/blobs/uploads/" in path and "digest=" in path and not once:
            once.append(path)
            return True
        return False
    with LossyProxy(pushed.host, lose) as proxy:
        dest = f"{proxy.host}/lossy/pushed:1"
        out = list(client.images.Push(images_pb2.ImagesPushRequest(
            reference=src, destination=dest), timeout=120))
        assert proxy.lost, "no PUT answer was lost: the test did not test"
    assert out[-1].pushed.digest == skopeo_raw_digest(f"{pushed.host}/lossy/pushed:1")


def test_import_format_is_honoured(client, pushed, tmp_path):
    """ArchiveFormat: DOCKER loads a docker save archive, OCI an OCI layout;
    each refuses the other (INVALID_ARGUMENT naming the format), unset
    detects."""
    tar = tmp_path / "saved.tar"
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false",
                    f"docker://{pushed.host}/test/busybox:1",
                    f"docker-archive:{tar}:fmt/docker:1"], check=True)
    docker = tar.read_bytes()
    lay = Layout(str(tmp_path / "oci"))
    lay.tag(lay.image([busybox_layer()]), "example.com/fmt/oci:1")
    oci = lay.archive()
    DOCKER, OCI = images_pb2.ARCHIVE_FORMAT_DOCKER, images_pb2.ARCHIVE_FORMAT_OCI
    assert [i.name for i in import_(client, docker, format=DOCKER)] == ["docker.io/fmt/docker:1"]
    assert [i.name for i in import_(client, oci, format=OCI)] == ["example.com/fmt/oci:1"]
    for data, fmt, word in [(docker, OCI, "format OCI"), (oci, DOCKER, "format DOCKER")]:
        with pytest.raises(grpc.RpcError) as e:
            import_(client, data, format=fmt)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and word in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        import_(client, oci, format=7)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_import_refuses_an_oci_image_missing_a_layer(client, tmp_path):
    """An OCI archive whose manifest names a layer blob the archive lacks:
    INVALID_ARGUMENT naming the digest, no image recorded."""
    lay = Layout(str(tmp_path / "oci"))
    desc = lay.image([tar_layer({"only-here": b"unique layer %d" % os.getpid()})])
    lay.tag(desc, "example.com/broken/img:1")
    manifest = json.loads(open(os.path.join(lay.path, "blobs", "sha256",
                                            desc["digest"][7:]), "rb").read())
    layer = manifest["layers"][0]["digest"]
    os.unlink(os.path.join(lay.path, "blobs", "sha256", layer[7:]))
    before = [i.name for i in client.images.List(images_pb2.ImagesListRequest()).images]
    with pytest.raises(grpc.RpcError) as e:
        import_(client, lay.archive())
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert layer in e.value.details()
    after = [i.name for i in client.images.List(images_pb2.ImagesListRequest()).images]
    assert after == before and "example.com/broken/img:1" not in after


def test_rootfs_verifies_the_configs_diff_ids(client, tmp_path):
    """A config whose diff_ids name other content than the layers': the
    rootfs build fails DATA_LOSS naming the layer (umoci refuses it too)."""
    lay = Layout(str(tmp_path / "oci"))
    other = "sha256:" + "ab" * 32
    lay.tag(lay.image([busybox_layer()], diff_ids=[other]), "example.com/diff/ids:1")
    import_(client, lay.archive())
    with pytest.raises(grpc.RpcError) as e:
        client.images.CreateRootfs(images_pb2.ImagesCreateRootfsRequest(
            reference="example.com/diff/ids:1"), timeout=120)
    assert e.value.code() == grpc.StatusCode.DATA_LOSS
    assert "layer 1" in e.value.details() and other in e.value.details()


def test_import_rejects_bad_archives(client, tmp_path):
    cases = {
        b"not a tar at all": "not a tar",
        tar_layer({"oci-layout": b"{}"}): "no index.json",
        tar_layer({"oci-layout": b"{}", "index.json": b'{"manifests":[{"digest":"sha256:'
                   + b"a" * 64 + b'","mediaType":"x","size":1}]}'}): "missing blob",
        tar_layer({"blobs/sha256/" + "b" * 64: b"does not hash to its name"}): "hashes to",
    }
    for data, word in cases.items():
        with pytest.raises(grpc.RpcError) as e:
            import_(client, data)
        assert e.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DATA_LOSS)
        assert word in e.value.details(), (word, e.value.details())
    blobs = os.path.join(client.daemon.root, "content", "blobs", "sha256")
    assert "b" * 64 not in os.listdir(blobs)
    # Paths that try to escape are just not blobs: nothing is written by name.
    data = tar_layer({"../../escape": b"x", "/abs": b"y"})
    with pytest.raises(grpc.RpcError):
        import_(client, data)
    assert not os.path.exists(os.path.join(os.path.dirname(client.daemon.root), "escape"))




def test_image_events_in_order(client, pushed):
    import queue
    import threading
    from vessel.v1 import events_pb2
    got = queue.Queue()
    stream = client.events.Subscribe(events_pb2.EventsSubscribeRequest(), timeout=60)

    def reader():
        try:
            for m in stream:
                got.put(m.event)
        except grpc.RpcError:
            pass
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    time.sleep(0.3)  # subscribed before the first event
    ref = f"{pushed.host}/test/busybox:1"
    pull(client, ref)
    client.images.Tag(images_pb2.ImagesTagRequest(source=ref, target="ev:1"))
    client.images.Delete(images_pb2.ImagesDeleteRequest(reference="ev:1"))
    events = [got.get(timeout=10) for _ in range(3)]
    stream.cancel()
    assert [e.type for e in events] == [types_pb2.EVENT_TYPE_IMAGE_PULLED, types_pb2.EVENT_TYPE_IMAGE_TAGGED,
                                        types_pb2.EVENT_TYPE_IMAGE_DELETED]
    assert events[0].image == ref and events[0].attributes["digest"].startswith("sha256:")
    assert events[1].image == "docker.io/library/ev:1"
    seqs = [e.sequence for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    # Replay: a late subscriber asks for what came after the first event.
    replay = client.events.Subscribe(events_pb2.EventsSubscribeRequest(
        after_sequence=seqs[0], types=[42]), timeout=5)
    first = next(iter(replay))
    assert first.event.sequence == seqs[2] and first.event.type == 42
    replay.cancel()
    with pytest.raises(grpc.RpcError) as e:
        next(iter(client.events.Subscribe(events_pb2.EventsSubscribeRequest(
            after_sequence=1, since=events[0].timestamp), timeout=5)))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_create_rootfs_cached_and_checked(client, pushed, tmp_path):
    ref = f"{pushed.host}/test/busybox:1"
    pull(client, ref)
    req = images_pb2.ImagesCreateRootfsRequest(reference=ref, free_bytes=64 << 20)
    r1 = client.images.CreateRootfs(req, timeout=120)
    assert not r1.cached and r1.path.startswith(client.daemon.root)
    r2 = client.images.CreateRootfs(req, timeout=120)
    assert r2.cached and r2.path == r1.path and r2.cache_key == r1.cache_key
    fsck = subprocess.run(["e2fsck", "-fn", r1.path], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    motd = subprocess.run(["debugfs", "-R", "cat /etc/motd", r1.path], capture_output=True,
                          text=True).stdout
    assert motd == "hello from vessel\n"
    out = str(tmp_path / "copy.ext4")
    r3 = client.images.CreateRootfs(images_pb2.ImagesCreateRootfsRequest(
        reference=ref, free_bytes=64 << 20, output_path=out), timeout=120)
    assert r3.path == out and os.path.getsize(out) == os.path.getsize(r1.path)
    for bad, code in [("relative.ext4", grpc.StatusCode.INVALID_ARGUMENT),
                      (out, grpc.StatusCode.ALREADY_EXISTS)]:
        with pytest.raises(grpc.RpcError) as e:
            client.images.CreateRootfs(images_pb2.ImagesCreateRootfsRequest(
                reference=ref, output_path=bad), timeout=60)
        assert e.value.code() == code
    with pytest.raises(grpc.RpcError) as e:
        client.images.CreateRootfs(images_pb2.ImagesCreateRootfsRequest(reference="nope:1"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
