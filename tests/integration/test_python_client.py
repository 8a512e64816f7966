"""The idiomatic Python client (clients/python) against one real vesseld in a
network namespace of its own (real VMs), a real docker-registry inside that
namespace, remote TCP + mutual TLS on the namespace's loopback, and
examples/python run as a user would."""
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

import grpc
import pytest

import vessel
from oci_layout import Layout, tar_layer
from test_containers import busybox_image_tar
from vesseld import Vesseld, wait_for
from vessel.v1 import containers_pb2 as cp
from vessel.v1 import images_pb2, types_pb2

KERNEL = os.environ.get("VESSEL_KERNEL", "")
INITRD = os.environ.get("VESSEL_INITRD", "")
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "..")
IMAGE = "busybox:test"
REGISTRY_PORT = 5000


@pytest.fixture(scope="module")
def vm(certs, tmp_path_factory):
    """One vesseld for the whole file: unix socket plus TCP+mTLS, in its own
    network namespace, busybox:test loaded."""
    assert KERNEL and os.path.exists(KERNEL), "VESSEL_KERNEL must name the guest kernel"
    assert INITRD and os.path.exists(INITRD), "VESSEL_INITRD must name the initramfs"
    tar = tmp_path_factory.mktemp("img") / "busybox.tar"
    tar.write_bytes(busybox_image_tar(str(tar.parent)))
    with Vesseld("--kernel", KERNEL, "--initrd", INITRD, tcp=True,
                 certs=os.path.join(certs, "good"), netns=True) as d, \
            vessel.Client(d.address, timeout=120) as c:
        loaded = c.images.load(str(tar), reference=IMAGE)
        assert [i.name for i in loaded] == ["docker.io/library/busybox:test"]
        c.daemon = d
        c.image_tar = str(tar)
        yield c


@pytest.fixture(scope="module")
def registry(vm):
    """docker-registry with Basic auth (alice/s3cret), inside vesseld's
    namespace on its loopback."""
    import bcrypt
    d = vm.daemon
    tmp = tempfile.mkdtemp(prefix="vsl-pyreg-", dir="/tmp")
    with open(os.path.join(tmp, "htpasswd"), "w") as f:
        f.write("alice:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    with open(os.path.join(tmp, "config.yml"), "w") as f:
        f.write("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {tmp}/data\n"
                f"http:\n  addr: 127.0.0.1:{REGISTRY_PORT}\n"
                f"auth:\n  htpasswd:\n    realm: vessel-test\n    path: {tmp}/htpasswd\n")
    proc = subprocess.Popen(["ip", "netns", "exec", d.netns, "docker-registry", "serve",
                             f"{tmp}/config.yml"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: d.in_netns(
            "bash", "-c", f"echo > /dev/tcp/127.0.0.1/{REGISTRY_PORT}",
            stderr=subprocess.DEVNULL).returncode == 0, timeout=20), "registry did not start"
        yield f"127.0.0.1:{REGISTRY_PORT}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# Package and helpers (no daemon)
# ---------------------------------------------------------------------------

def test_package_installs_with_pip(tmp_path):
    """pyproject.toml builds an installable package with the stubs and
    py.typed; the installed copy imports on its own; what pip leaves in
    the source tree is ignored by the repository's .gitignore."""
    repo = tmp_path / "repo"
    src = repo / "clients" / "python"
    shutil.copytree(os.path.join(SRC, "clients", "python"), src,
                    ignore=shutil.ignore_patterns("__pycache__", "BUILD"))
    shutil.copy(os.path.join(SRC, ".gitignore"), repo / ".gitignore")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)

    def untracked():
        return subprocess.run(["git", "-C", str(repo), "ls-files", "--others", "--exclude-standard"],
                              check=True, capture_output=True, text=True).stdout.split()
    before = untracked()
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target), str(src)],
                   check=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
                   stderr=subprocess.PIPE)
    for f in ["vessel/__init__.py", "vessel/py.typed", "vessel/v1/containers_pb2.py",
              "vessel/v1/images_pb2_grpc.py"]:
        assert (target / f).exists(), f
    assert (src / "build").exists() or list(src.glob("*.egg-info"))  # pip did leave some
    assert untracked() == before
    out = subprocess.run([sys.executable, "-c", "import vessel, sys; print(vessel.__file__, "
                          "vessel.Client.__doc__ is not None)"],
                         env={"PYTHONPATH": str(target), "PATH": os.environ["PATH"]},
                         cwd=str(tmp_path), capture_output=True, text=True, check=True).stdout
    assert out.startswith(str(target)) and out.strip().endswith("True")


def test_request_helpers():
    from vessel.images import filters_list, platform_message
    assert filters_list({"label": ["a=1", "b"], "dangling": True}) == \
        ["label=a=1", "label=b", "dangling=true"]
    assert filters_list(["state=running"]) == ["state=running"]
    assert platform_message("linux/arm64/v8") == types_pb2.Platform(
        os="linux", architecture="arm64", variant="v8")
    spec = vessel.process_spec("sh -c 'echo a b'", env={"A": "1"}, workdir="/tmp", user="1:2")
    assert list(spec.args) == ["sh", "-c", "echo a b"] and list(spec.env) == ["A=1"]
    assert spec.cwd == "/tmp" and spec.user.name == "1:2"
    assert vessel.process_spec() is None
    assert vessel.event_type("container_exited") == types_pb2.EVENT_TYPE_CONTAINER_EXITED
    assert vessel.event_type_name(types_pb2.EVENT_TYPE_IMAGE_TAGGED) == "image_tagged"
    with pytest.raises(ValueError):
        vessel.Client("tcp://127.0.0.1:1")  # TCP needs TLS or insecure=True
    with pytest.raises(ValueError):
        vessel.Client("http://x")


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------

def test_images_list_inspect_tag_save_load_delete_prune(vm, tmp_path):
    c = vm
    names = [i.name for i in c.images.list()]
    assert "docker.io/library/busybox:test" in names
    img = c.images.inspect(IMAGE)
    assert img.config.cmd == ["echo", "hello from a vessel VM"] and img.size > 0
    assert c.images.exists(IMAGE) and not c.images.exists("nope:1")

    tagged = c.images.tag(IMAGE, "example.com/mine/bb:1")
    assert tagged.name == "example.com/mine/bb:1" and tagged.target.digest == img.target.digest
    assert [i.name for i in c.images.list(filters={"reference": "example.com/*"})] == \
        ["example.com/mine/bb:1"]

    archive = tmp_path / "bb.tar"
    n = c.images.save(["example.com/mine/bb:1"], str(archive))
    assert n == archive.stat().st_size and n > 100_000
    with tarfile.open(archive) as t:
        assert "index.json" in t.getnames()
    buf = io.BytesIO()
    c.images.save("example.com/mine/bb:1", buf)  # a file object works too
    assert buf.getvalue() == archive.read_bytes()

    gone = c.images.delete("example.com/mine/bb:1")
    assert list(gone.untagged) == ["example.com/mine/bb:1"]
    with pytest.raises(vessel.NotFoundError):
        c.images.inspect("example.com/mine/bb:1")
    with open(archive, "rb") as f:  # load from a file object under a new name
        back = c.images.load(f, reference="example.com/mine/back:2")
    assert [(i.name, i.target.digest) for i in back] == \
        [("example.com/mine/back:2", img.target.digest)]
    c.images.delete("example.com/mine/back:2")
    # An image of its own: deleting its only reference deletes its three
    # blobs (manifest, config, layer) and nothing of IMAGE's; prune then
    # finds nothing left over.
    layer = tar_layer({"only-here": os.urandom(200_000)})
    lay = Layout(str(tmp_path / "lone"))
    desc = lay.image([layer])
    lay.tag(desc, "lone")
    lone = tmp_path / "lone.tar"
    lone.write_bytes(lay.archive())
    c.images.load(str(lone), reference="example.com/mine/lone:1")
    gone = c.images.delete("example.com/mine/lone:1")
    assert desc["digest"] in gone.deleted and len(gone.deleted) == 3, gone
    assert img.target.digest not in gone.deleted
    assert c.images.prune().bytes_reclaimed == 0
    assert c.images.inspect(IMAGE).target.digest == img.target.digest

    # Nothing is written when the export fails.
    with pytest.raises(vessel.NotFoundError):
        c.images.save(["nope:1"], str(tmp_path / "nope.tar"))
    assert not (tmp_path / "nope.tar").exists()


def test_registry_login_push_pull_with_progress(vm, registry):
    c = vm
    dest = f"{registry}/py/busybox:1"
    with pytest.raises(vessel.UnauthenticatedError) as e:
        c.images.push(IMAGE, dest)
    assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(vessel.UnauthenticatedError):
        c.images.login(registry, "alice", "wrong")
    assert c.images.login(registry, "alice", "s3cret") == registry

    pushed_progress = []
    desc = c.images.push(IMAGE, dest, progress=pushed_progress.append)
    assert desc.digest == c.images.inspect(IMAGE).target.digest
    assert pushed_progress and all(isinstance(p, images_pb2.TransferProgress)
                                   for p in pushed_progress)

    progress = []
    img = c.images.pull(dest, progress=progress.append)
    assert img.name == dest and img.target.digest == desc.digest
    assert progress[-1].bytes_total > 0 and progress[-1].bytes_done == progress[-1].bytes_total
    assert any(p.phase == images_pb2.TRANSFER_PHASE_DOWNLOADING or p.layers for p in progress)

    # (vesseld does not fill ImagesLogoutResponse.removed yet: only the
    # effect is checked.)
    assert isinstance(c.images.logout(registry), bool)
    c.images.delete(dest)
    with pytest.raises(vessel.UnauthenticatedError):
        c.images.pull(dest)
    img = c.images.pull(dest, auth=("alice", "s3cret"))  # per-call credentials
    assert img.target.digest == desc.digest
    c.images.delete(dest)
    with pytest.raises(vessel.NotFoundError):
        c.images.pull(f"{registry}/py/missing:1", auth=("alice", "s3cret"))


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

def test_every_failure_is_a_vessel_error_with_the_status(vm):
    c = vm
    with pytest.raises(vessel.NotFoundError) as e:
        c.containers.inspect("ghost")
    assert e.value.code == grpc.StatusCode.NOT_FOUND and "ghost" in e.value.message
    assert isinstance(e.value, vessel.VesselError)
    with pytest.raises(vessel.InvalidArgumentError):
        c.containers.create(IMAGE, id="bad id!")
    with pytest.raises(vessel.NotFoundError):
        c.containers.create("nope:1")
    with pytest.raises(vessel.NotFoundError):
        c.containers.start("ghost")
    with pytest.raises(vessel.NotFoundError):
        list(c.containers.logs("ghost"))
    with pytest.raises(vessel.InvalidArgumentError):
        c.networks.list(filters={"bogus": "1"})
    with pytest.raises(vessel.InvalidArgumentError):
        c.events(since=time.time(), after_sequence=1).__next__()
    with pytest.raises(vessel.NotFoundError):
        c.images.inspect("sha256:" + "0" * 64)
    # The raw generated methods stay available under their proto names.
    raw = c.containers.List(cp.ContainersListRequest(all=True), timeout=10)
    assert isinstance(raw, cp.ContainersListResponse)
    with pytest.raises(grpc.RpcError):
        c.containers.Inspect(cp.ContainersInspectRequest(container_id="ghost"))


# ---------------------------------------------------------------------------
# Containers (real VMs)
# ---------------------------------------------------------------------------

def test_run_returns_output_and_exit_code(vm):
    c = vm
    script = "echo out; echo $FROM_IMAGE $MINE; pwd; cat; echo err >&2; exit 3"
    with pytest.raises(vessel.ContainerError) as e:
        c.containers.run(IMAGE, ["sh", "-c", script], env={"MINE": "2"}, workdir="/tmp",
                         input=b"from stdin\n", check=True, remove=False, id="py-run")
    r = e.value.result
    assert (r.exit_code, r.stdout, r.stderr) == (3, b"out\n1 2\n/tmp\nfrom stdin\n", b"err\n")
    assert r.container_id == "py-run" and r.exit_status.code == 3
    kept = c.containers.inspect("py-run")  # remove=False keeps it, STOPPED
    assert kept.state == cp.CONTAINER_STATE_STOPPED and kept.exit_status.code == 3
    c.containers.delete("py-run")

    r = c.containers.run(IMAGE)  # the image's CMD; removed afterwards
    assert (r.exit_code, r.stdout, r.stderr) == (0, b"hello from a vessel VM\n", b"")
    assert r.container_id not in [x.id for x in c.containers.list(all=True)]


def test_container_lifecycle_exec_copy_logs_stats_events(vm, tmp_path):
    c = vm
    events = c.events(container_id="py-life", timeout=120)
    with c.containers.create(IMAGE, ["sh", "-c", "echo started; echo warn >&2; sleep 600"],
                             id="py-life", labels={"suite": "py"}) as ct:
        assert ct.id == "py-life" and ct.state_name == "created"
        init = ct.attach(logs=True)  # before start: sees everything
        ct.start()
        assert ct.state == cp.CONTAINER_STATE_RUNNING and ct.info.pid > 0
        assert {init.stdout.readline(), init.stderr.readline()} == {b"started\n", b"warn\n"}
        init.detach()

        # exec: iterate the output in arrival order
        p = ct.exec(["sh", "-c", "echo a; echo b >&2; echo c; exit 4"])
        chunks = list(p)
        assert [x for x in chunks if x.stream == "stdout"] == \
            [vessel.Output("stdout", b"a\n"), vessel.Output("stdout", b"c\n")]
        assert vessel.Output("stderr", b"b\n") in chunks
        assert p.wait().code == 4 and p.exit_code == 4 and p.exec_id and p.pid > 0

        # exec: stdin and communicate
        p = ct.exec("cat", stdin=True)
        out, err, st = p.communicate(b"hello stdin\n")
        assert (out, err, st.code) == (b"hello stdin\n", b"", 0)

        # exec: file-like reading, interactive stdin
        with ct.exec(["sh", "-c", "read x; echo got:$x; echo more"], stdin=True,
                     env={"X": "1"}) as p:
            p.write("line\n")
            assert p.stdout.readline() == b"got:line\n"
            assert p.stdout.read() == b"more\n"
            assert p.wait(timeout=30).code == 0

        # exec as another user
        p = ct.exec(["id", "-u"], user="65534")
        assert p.stdout.read() == b"65534\n"

        # logs: stored, filtered, tail
        entries = list(ct.logs())
        assert sorted(e.data for e in entries) == [b"started\n", b"warn\n"]
        assert [e.data for e in ct.logs(stderr=False)] == [b"started\n"]
        assert len(list(ct.logs(tail=1))) == 1

        # copy a tar archive in (bytes) and a directory out (to a file)
        payload = tar_layer({"d/a.txt": b"alpha\n", "d/b.bin": bytes(range(256)) * 3000})
        assert ct.copy_in("/tmp", payload) == len(payload)
        assert ct.exec(["cat", "/tmp/d/a.txt"]).stdout.read() == b"alpha\n"
        out = tmp_path / "out.tar"
        info = ct.copy_out("/tmp/d", str(out))
        assert info.path == "/tmp/d" and info.type == types_pb2.FILE_TYPE_DIRECTORY
        with tarfile.open(out) as t:
            got = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
        assert got == {"d/a.txt": b"alpha\n", "d/b.bin": bytes(range(256)) * 3000}
        with pytest.raises(vessel.VesselError) as e:
            ct.copy_out("/no/such", str(tmp_path / "none.tar"))
        assert e.value.code == grpc.StatusCode.NOT_FOUND
        assert not (tmp_path / "none.tar").exists()

        stats = ct.stats()
        assert stats.container_id == "py-life" and stats.memory.usage_bytes > 0
        assert [x.id for x in c.containers.list(filters={"label": "suite=py"})] == ["py-life"]
        assert c.containers.list(filters={"state": "stopped", "id": "py-life"}) == []
        with pytest.raises(vessel.FailedPreconditionError):
            ct.delete()  # running, no force

        # follow the log while the container is stopped: the stream ends
        followed = []
        follow = ct.logs(follow=True)
        t = threading.Thread(target=lambda: followed.extend(e.data for e in follow))
        t.start()
        st = ct.stop(grace=1)
        t.join(30)
        assert not t.is_alive() and b"started\n" in followed
        assert st.signal in (9, 15)
        assert ct.reload().state == cp.CONTAINER_STATE_STOPPED
    # leaving the block deleted it
    with pytest.raises(vessel.NotFoundError):
        c.containers.inspect("py-life")

    seen = []
    for ev in events:
        seen.append(ev.type)
        if ev.type == types_pb2.EVENT_TYPE_CONTAINER_DELETED:
            events.cancel()
    assert seen[:2] == [types_pb2.EVENT_TYPE_CONTAINER_CREATED,
                        types_pb2.EVENT_TYPE_CONTAINER_STARTED]
    assert seen.count(types_pb2.EVENT_TYPE_PROCESS_STARTED) >= 5  # the execs (copies exec tar)
    assert seen[-2:] == [types_pb2.EVENT_TYPE_CONTAINER_EXITED,
                         types_pb2.EVENT_TYPE_CONTAINER_DELETED]


def test_events_filter_replay_and_cancel(vm):
    c = vm
    c.images.tag(IMAGE, "example.com/ev/a:1")
    with c.events(types=["image_tagged"], after_sequence=1) as replay:
        first = next(replay)
    assert first.type == types_pb2.EVENT_TYPE_IMAGE_TAGGED and first.sequence > 1
    # A live subscription blocked in another thread ends on cancel().
    live = c.events(types=[types_pb2.EVENT_TYPE_NETWORK_CREATED])
    got = []
    t = threading.Thread(target=lambda: got.extend(live))
    t.start()
    time.sleep(0.3)
    live.cancel()
    t.join(10)
    assert not t.is_alive() and got == []
    c.images.delete("example.com/ev/a:1")


# ---------------------------------------------------------------------------
# Remote (TCP + mutual TLS on the namespace's loopback) and the example
# ---------------------------------------------------------------------------

def _python(vm, code_or_file, env=None, netns=True, timeout=300):
    """Runs Python code or a script with only the client on its path, in
    vesseld's network namespace (where its TCP listener is) or on the host."""
    cmd = [sys.executable] + ([code_or_file] if code_or_file.endswith(".py")
                              else ["-c", code_or_file])
    full = {"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": os.path.join(SRC, "clients", "python"), **(env or {})}
    cmd = ["env", "-i", *[f"{k}={v}" for k, v in full.items()], *cmd]
    if netns:
        return vm.daemon.in_netns(*cmd, capture_output=True, text=True, timeout=timeout)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_remote_tcp_mtls_refuses_untrusted_clients(vm, certs):
    good, other = os.path.join(certs, "good"), os.path.join(certs, "other")
    code = f"""
import vessel
addr = {vm.daemon.tcp_address!r}
ok = vessel.Client(addr, tls=vessel.TLS("{good}/ca.pem", "{good}/client.pem", "{good}/client.key"))
print("images", sorted(i.name for i in ok.images.list()))
print("version", ok.version().api_version)
for name, tls in [("no-cert", vessel.TLS("{good}/ca.pem")),
                  ("other-ca", vessel.TLS("{good}/ca.pem", "{other}/client.pem", "{other}/client.key"))]:
    try:
        vessel.Client(addr, tls=tls, timeout=5).images.list()
        print(name, "ACCEPTED")
    except vessel.UnavailableError as e:
        print(name, "refused", e.code.name, "handshake-said" if "TLS handshake failed" in str(e)
              and "client certificate" in str(e) else "handshake-unsaid")
try:
    vessel.Client(addr, insecure=True, timeout=5).version()
    print("plaintext ACCEPTED")
except vessel.VesselError as e:
    print("plaintext refused", e.code.name)
"""
    r = _python(vm, code)
    assert r.returncode == 0, r.stderr
    assert "docker.io/library/busybox:test" in r.stdout
    assert "version vessel.v1" in r.stdout
    assert "no-cert refused UNAVAILABLE handshake-said" in r.stdout
    assert "other-ca refused UNAVAILABLE handshake-said" in r.stdout
    # vesseld says why, in its own log format.
    assert "vesseld WARN: TLS handshake with a client failed" in vm.daemon.log
    assert "the client sent no certificate" in vm.daemon.log
    assert "plaintext refused UNAVAILABLE" in r.stdout


def test_example_run_and_logs_over_unix_and_remote_mtls(vm, certs):
    """examples/python/run_and_logs.py as a user runs it: over the unix
    socket, and remotely over TCP + mTLS."""
    example = os.path.join(SRC, "examples", "python", "run_and_logs.py")
    good = os.path.join(certs, "good")
    runs = {
        "unix": {"VESSEL_HOST": vm.daemon.address, "VESSEL_IMAGE": IMAGE},
        "tcp": {"VESSEL_HOST": vm.daemon.tcp_address, "VESSEL_IMAGE": IMAGE,
                "VESSEL_TLS_CA": f"{good}/ca.pem", "VESSEL_TLS_CERT": f"{good}/client.pem",
                "VESSEL_TLS_KEY": f"{good}/client.key"},
    }
    for how, env in runs.items():
        r = _python(vm, example, env, netns=how == "tcp")
        assert r.returncode == 0, f"{how}:\n{r.stdout}\n{r.stderr}"
        out = r.stdout
        assert f"at {env['VESSEL_HOST']}" in out
        assert "run: exit code 0, output: 'hello from a VM\\nLinux\\n'" in out, out
        for line in ["log[out]: tick 1", "log[out]: tick 2", "log[out]: tick 3", "log[err]: done"]:
            assert line in out, out
        assert "exited with code 0" in out
    assert vm.containers.list(all=True) == []  # the example cleaned up
