"""Registry faults: retries, resumes and clean errors; the content store
never holds a corrupt blob; kill -9 mid-pull recovers."""
import json
import os
import signal
import threading
import time

import grpc
import pytest

import vessel
from fake_registry import FakeRegistry
from oci_layout import Layout, busybox_layer, tar_layer
from test_images import pull, store_is_consistent
from vesseld import Vesseld
from vessel.v1 import images_pb2


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    lay = Layout(str(tmp_path_factory.mktemp("faults")))
    big = os.urandom(8 << 20)  # incompressible: a layer that takes a moment
    desc = lay.image([busybox_layer(), tar_layer({"big": big}, mode=0o644)])
    lay.tag(desc, "1")
    # A "manifest" of 50 MiB.
    lay.manifests_big = lay.blob(b"{" + b" " * (50 << 20) + b"}")
    lay.tag({"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": lay.manifests_big, "size": (50 << 20) + 2}, "huge")
    with open(os.path.join(lay.path, "blobs", "sha256", desc["digest"][7:])) as f:
        lay.manifest = json.load(f)
    return lay


@pytest.fixture
def env(layout):
    with FakeRegistry(layout.path) as reg, Vesseld() as d, \
            vessel.Client(d.address, timeout=120) as c:
        c.daemon = d
        yield reg, c


def layer_keys(layout):
    return [f"blobs/{l['digest']}" for l in layout.manifest["layers"]]


def test_retries_503_408_and_429_with_retry_after(env, layout):
    reg, c = env
    reg.faults["manifests/1"] = ["503", "503"]
    big = layer_keys(layout)[1]
    reg.faults[big] = ["429:1", "408"]
    t0 = time.monotonic()
    _, image = pull(c, f"{reg.host}/test/app:1")
    assert image.name.endswith("/test/app:1")
    assert reg.hits["manifests/1"] == 3
    assert reg.hits[big] == 3
    assert time.monotonic() - t0 >= 1.0  # Retry-After honoured
    assert store_is_consistent(c.daemon.root)


def test_truncated_body_resumes_with_range(env, layout):
    reg, c = env
    big = layer_keys(layout)[1]
    reg.faults[big] = ["truncate"]
    pull(c, f"{reg.host}/test/app:1")
    assert reg.hits[big] == 2
    assert store_is_consistent(c.daemon.root)


def test_corrupt_bytes_are_data_loss_and_never_stored(env, layout):
    reg, c = env
    big = layer_keys(layout)[1]
    reg.faults[big] = ["corrupt"]
    with pytest.raises(grpc.RpcError) as e:
        pull(c, f"{reg.host}/test/app:1")
    assert e.value.code() == grpc.StatusCode.DATA_LOSS
    assert big[len("blobs/sha256:"):] not in os.listdir(
        os.path.join(c.daemon.root, "content", "blobs", "sha256"))
    assert store_is_consistent(c.daemon.root)
    # The next pull gets good bytes and completes.
    pull(c, f"{reg.host}/test/app:1")
    assert store_is_consistent(c.daemon.root)


def test_huge_manifest_is_refused(env):
    reg, c = env
    with pytest.raises(grpc.RpcError) as e:
        pull(c, f"{reg.host}/test/app:huge")
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than" in e.value.details()


def test_persistent_5xx_is_a_clean_error(env, layout):
    reg, c = env
    reg.faults["manifests/1"] = ["503"] * 20
    with pytest.raises(grpc.RpcError) as e:
        pull(c, f"{reg.host}/test/app:1")
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_concurrent_pulls_download_each_blob_once(env, layout):
    reg, c = env
    for k in layer_keys(layout):
        reg.faults[k] = ["slow:0.5"]
    errors = []

    def one():
        try:
            pull(c, f"{reg.host}/test/app:1")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in layer_keys(layout):
        assert reg.hits[k] == 1, k
    assert store_is_consistent(c.daemon.root)


def test_kill_9_mid_pull_then_restart_completes(layout):
    with FakeRegistry(layout.path) as reg:
        big = layer_keys(layout)[1]
        reg.faults[big] = ["slow:3"]
        d = Vesseld()
        root = d.root
        try:
            c = vessel.Client(d.address, timeout=60)
            stream = c.images.Pull(images_pb2.ImagesPullRequest(reference=f"{reg.host}/test/app:1"))
            next(stream)  # the pull is under way
            time.sleep(1)
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
            c.close()
        finally:
            d.stop()
        assert store_is_consistent(root)
        with Vesseld(root=root) as d2, vessel.Client(d2.address, timeout=60) as c2:
            _, image = pull(c2, f"{reg.host}/test/app:1")
            assert len(image.layers) == 2
            assert store_is_consistent(root)
        import shutil
        shutil.rmtree(os.path.dirname(root), ignore_errors=True)


def test_redirect_to_blob_storage_does_not_leak_credentials(layout):
    # "localhost" and "127.0.0.1" are different hosts to an HTTP client.
    with FakeRegistry(layout.path, basic=("u", "p")) as reg:
        port = reg.host.split(":")[1]
        reg.redirect_blobs_to = f"http://localhost:{port}"
        with Vesseld() as d, vessel.Client(d.address, timeout=60) as c:
            _, image = pull(c, f"{reg.host}/test/app:1",
                            auth=images_pb2.RegistryAuth(username="u", password="p"))
            assert len(image.layers) == 2
    storage = [s for s in reg.seen_auth if s.startswith("/storage/")]
    assert len(storage) == 3  # config + 2 layers
    assert all(s.endswith(" -") for s in storage), storage
    registry_side = [s for s in reg.seen_auth if s.startswith("/v2/test/app/blobs/")]
    assert registry_side and all("Basic" in s for s in registry_side)


def test_http_proxy_from_environment(layout):
    with FakeRegistry(layout.path) as reg, FakeRegistry(layout.path) as proxy:
        # The second instance acts as the proxy: it serves what it is asked.
        env = {"http_proxy": f"http://{proxy.host}", "HTTP_PROXY": f"http://{proxy.host}",
               "no_proxy": "", "NO_PROXY": ""}
        with Vesseld(env=env) as d, vessel.Client(d.address, timeout=60) as c:
            pull(c, f"{reg.host}/test/app:1")
        assert proxy.proxied >= 4  # manifest, config, layers went through it


def test_retry_after_as_an_http_date(env, layout):
    """Retry-After in HTTP-date form is honoured like the seconds form."""
    reg, c = env
    big = layer_keys(layout)[1]
    reg.faults[big] = ["429date:3"]
    t0 = time.monotonic()
    pull(c, f"{reg.host}/test/app:1")
    assert reg.hits[big] == 2
    assert time.monotonic() - t0 >= 1.5  # (the date has whole seconds)


def test_body_cut_short_without_content_length_resumes(env, layout):
    """A blob body that ends early on a connection without Content-Length is
    resumed with Range, not DATA_LOSS."""
    reg, c = env
    big = layer_keys(layout)[1]
    reg.faults[big] = ["truncate-nolength"]
    pull(c, f"{reg.host}/test/app:1")
    assert reg.hits[big] == 2 and reg.ranges[big][1].startswith("bytes="), reg.ranges[big]
    assert store_is_consistent(c.daemon.root)


def pull_in_thread(c, ref):
    """Starts a Pull; returns (call, thread, result dict)."""
    call = c.images.stub.Pull(images_pb2.ImagesPullRequest(reference=ref), timeout=300)
    out = {}

    def drain():
        try:
            for _ in call:
                pass
            out["ok"] = True
        except grpc.RpcError as e:
            out["code"], out["details"] = e.code(), e.details()
    t = threading.Thread(target=drain, daemon=True)
    t.start()
    return call, t, out


def test_a_trickle_cannot_hold_a_pull_and_a_cancel_ends_it_at_once(layout):
    """'a minimum-rate rule that a trickle cannot satisfy forever'; 'every
    download honours cancellation at once': the trickle stops, the blob's
    lock is released, the next pull of the same image goes through."""
    big = layer_keys(layout)[1]
    with FakeRegistry(layout.path) as reg, Vesseld("--pull-min-speed", "1024/2") as d, \
            vessel.Client(d.address, timeout=120) as c:
        reg.faults[big] = ["trickle:2"] * 20
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            pull(c, f"{reg.host}/test/app:1")
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "slower than" in e.value.details()
        assert time.monotonic() - t0 < 60
        # A cancelled pull ends its download at once.
        call, t, out = pull_in_thread(c, f"{reg.host}/test/app:1")
        deadline = time.monotonic() + 20
        while reg.trickling == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reg.trickling == 1
        call.cancel()
        t.join(10)
        deadline = time.monotonic() + 5
        while reg.trickling and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reg.trickling == 0, "the download went on after the cancel"
        reg.faults[big] = []
        t0 = time.monotonic()
        pull(c, f"{reg.host}/test/app:1")
        assert time.monotonic() - t0 < 30
        assert store_is_consistent(d.root)


def test_sigterm_ends_a_pull_in_flight(layout):
    """'shutdown ends in-flight pulls within seconds'."""
    big = layer_keys(layout)[1]
    with FakeRegistry(layout.path) as reg, Vesseld() as d, \
            vessel.Client(d.address, timeout=120) as c:
        reg.faults[big] = ["trickle:2"] * 20
        call, t, out = pull_in_thread(c, f"{reg.host}/test/app:1")
        deadline = time.monotonic() + 20
        while reg.trickling == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reg.trickling == 1
        t0 = time.monotonic()
        assert d.stop(signal.SIGTERM, timeout=30) == 0
        assert time.monotonic() - t0 < 10
        t.join(10)
        assert not out.get("ok")


def test_disk_full_pull_leaves_no_partial_and_later_pulls_work(layout, tmp_path):
    """'a pull that hits ENOSPC drops its partial'; no 0-byte partials;
    the next pull (with room again) succeeds with nothing removed by hand."""
    import subprocess
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(small)], check=True)
    try:
        with FakeRegistry(layout.path) as reg, Vesseld(root=str(small / "root")) as d, \
                vessel.Client(d.address, timeout=120) as c:
            with pytest.raises(grpc.RpcError) as e:
                pull(c, f"{reg.host}/test/app:1")
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value.details()
            ingest = small / "root" / "content" / "ingest"
            assert [p.name for p in ingest.iterdir() if p.name.endswith(".partial")] == []
            subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
            pull(c, f"{reg.host}/test/app:1")
            assert store_is_consistent(d.root)
            assert [p.name for p in ingest.iterdir() if p.name.endswith(".partial")] == []
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_prune_reclaims_partials_nobody_owns(env, layout):
    reg, c = env
    ingest = os.path.join(c.daemon.root, "content", "ingest")
    stray = os.path.join(ingest, "ab" * 32 + ".partial")
    with open(stray, "wb") as f:
        f.write(b"x" * 100000)
    r = c.images.Prune(images_pb2.ImagesPruneRequest(), timeout=60)
    assert not os.path.exists(stray) and r.bytes_reclaimed >= 100000


def test_references_with_nul_or_control_characters_are_refused(env):
    """A NUL cuts a C string: 'evil\\0@good' must not be used as 'evil'."""
    reg, c = env
    for ref in [f"{reg.host}/test/app:1\x00@evil", f"{reg.host}/test/app\n:1", "a b/c:1"]:
        with pytest.raises(grpc.RpcError) as e:
            pull(c, ref)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (ref, e.value.details())
    assert reg.hits == {}  # nothing reached the registry


def test_a_manifest_with_too_many_layers_is_refused(tmp_path):
    """A documented layer limit (1000): the 10,000-layer manifest is refused
    after one GET, not 10,001."""
    lay = Layout(str(tmp_path / "many"))
    cfg = lay.blob(b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}')
    layers = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
               "digest": "sha256:%064x" % i, "size": 10} for i in range(10000)]
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": cfg, "size": 80}, "layers": layers}).encode()
    lay.tag({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": lay.blob(m),
             "size": len(m)}, "many")
    with FakeRegistry(lay.path) as reg, Vesseld() as d, \
            vessel.Client(d.address, timeout=120) as c:
        with pytest.raises(grpc.RpcError) as e:
            pull(c, f"{reg.host}/test/app:many")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 1000" in e.value.details()
        assert sum(reg.hits.values()) == 1
