"""vesseld's CRI server (--cri-listen), checked by crictl (cri-tools,
built from the Go module proxy by bazel/setup.sh): the runtime's version
and status, and the image service over vessel's image store with a real
registry (Debian's docker-registry on loopback). The sandbox and container
calls are not served yet."""
import json
import os
import subprocess

import pytest

import vessel
from registry import Registry
from test_containers import busybox_image_tar
from vesseld import Vesseld


class Env:
    def __init__(self, d, tmp, sock):
        self.d, self.tmp, self.sock = d, tmp, sock

    def crictl(self, *args, check=True):
        r = subprocess.run(["crictl", "--runtime-endpoint", self.sock, "--image-endpoint", self.sock,
                            "--timeout", "60s", *args], capture_output=True, text=True)
        if check:
            assert r.returncode == 0, (args, r.stderr)
        return r


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cri")
    sock = "unix://" + str(tmp / "cri.sock")
    with Vesseld("--cri-listen", sock) as d:
        yield Env(d, tmp, sock)


def test_version_and_status(env):
    """Version names the runtime and the CRI API; Status: runtime and
    network ready."""
    out = env.crictl("version").stdout
    assert "RuntimeName:  vessel" in out and "RuntimeApiVersion:  v1" in out, out
    info = json.loads(env.crictl("info").stdout)
    conds = {c["type"]: c["status"] for c in info["status"]["conditions"]}
    assert conds == {"RuntimeReady": True, "NetworkReady": True}, info


def test_images_pull_list_inspect_remove(env):
    """PullImage from a registry, ListImages, ImageStatus (also verbose),
    RemoveImage; references normalise as containerd's (busybox =
    docker.io/library/busybox:latest); ImageFsInfo counts the store."""
    with Registry() as reg, vessel.Client(env.d.address, timeout=60) as c:
        ref = f"{reg.host}/cri/busybox:1"
        c.images.load(busybox_image_tar(str(env.tmp)), reference=ref)
        c.images.push(ref)
        c.images.delete(ref)
        assert env.crictl("images", "-q").stdout.strip() == ""
        out = env.crictl("pull", ref).stdout
        digest = out.split()[-1]
        assert digest.startswith("sha256:"), out
        listed = json.loads(env.crictl("images", "-o", "json").stdout)["images"]
        assert [i["repoTags"] for i in listed] == [[ref]] and listed[0]["id"] == digest, listed
        assert listed[0]["repoDigests"] == [f"{reg.host}/cri/busybox@{digest}"]
        st = json.loads(env.crictl("inspecti", "-o", "json", ref).stdout)
        assert st["status"]["id"] == digest and int(st["status"]["size"]) > 0, st
        assert st["info"]["layers"] == 1 and st["info"]["name"] == ref, st["info"]  # verbose
        # The same image under Docker Hub's name is found by its short name.
        c.images.tag(ref, "docker.io/library/busybox:latest")
        st = json.loads(env.crictl("inspecti", "-o", "json", "busybox").stdout)
        assert st["status"]["id"] == digest
        assert sorted(st["status"]["repoTags"]) == sorted([ref, "docker.io/library/busybox:latest"])
        fs = json.loads(env.crictl("imagefsinfo", "-o", "json").stdout)["status"]["imageFilesystems"][0]
        assert int(fs["usedBytes"]["value"]) > 0 and int(fs["inodesUsed"]["value"]) > 0, fs
        # Removing the image removes it under every name; again is no error.
        env.crictl("rmi", digest)
        assert env.crictl("images", "-q").stdout.strip() == ""
        assert not c.images.list()
        r = env.crictl("inspecti", "busybox", check=False)
        assert r.returncode != 0 and "no such image" in (r.stdout + r.stderr).lower(), r
        # A registry that is not there: the pull fails with the reason.
        r = env.crictl("pull", "127.0.0.1:1/none/such:1", check=False)
        assert r.returncode != 0 and "127.0.0.1:1" in r.stderr, r.stderr
