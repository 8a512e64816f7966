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
