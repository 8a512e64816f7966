"""vesseld's skeleton through the real Python client (grpcio): System over
unix and TCP+mTLS, refused connections, health, flags, shutdown."""
import os
import signal
import subprocess
import time

import grpc
import pytest

import vessel
from vesseld import Vesseld, vesseld_path


def test_version_over_unix(daemon):
    with vessel.Client(daemon.address) as c:
        v = c.version()
    assert v.api_version == "vessel.v1"
    assert v.version


def test_info_reports_root_and_listeners(daemon):
    with vessel.Client(daemon.address) as c:
        info = c.info()
    assert info.root_dir == daemon.root
    assert daemon.address in info.listen_addresses
    assert info.accelerator in ("kvm", "tcg")
    assert info.cpus >= 1 and info.memory_bytes > 0
    assert info.started_at.seconds > 0


def test_disk_usage_counts_the_content_store(daemon, tmp_path):
    """An empty store holds directories only; an imported image's blobs count."""
    from test_containers import busybox_image_tar
    from vessel.v1 import system_pb2
    archive = busybox_image_tar(str(tmp_path))
    with vessel.Client(daemon.address) as c:
        before = c.system.DiskUsage(system_pb2.SystemDiskUsageRequest(), timeout=10)
        c.images.load(archive, reference="busybox:du")
        after = c.system.DiskUsage(system_pb2.SystemDiskUsageRequest(), timeout=10)
    # The gzip'd layer holds busybox (~1 MB compressed): allocated bytes grew by at least that.
    busybox_gz = len(__import__("gzip").compress(open("/bin/busybox", "rb").read()))
    assert before.content_store_bytes < 64 * 1024  # directories only
    assert after.content_store_bytes - before.content_store_bytes >= busybox_gz


def test_version_over_tcp_with_mutual_tls(certs):
    good = os.path.join(certs, "good")
    with Vesseld(tcp=True, certs=good) as d:
        assert d.tcp_address.startswith("tcp://127.0.0.1:")
        tls = vessel.TLS(f"{good}/ca.pem", f"{good}/client.pem", f"{good}/client.key")
        with vessel.Client(d.tcp_address, tls=tls) as c:
            assert c.version().api_version == "vessel.v1"


@pytest.mark.parametrize("who", ["no-cert", "other-ca-cert", "plaintext"])
def test_tcp_refuses_clients_without_a_trusted_certificate(certs, who):
    good, other = os.path.join(certs, "good"), os.path.join(certs, "other")
    with Vesseld(tcp=True, certs=good) as d:
        if who == "no-cert":
            c = vessel.Client(d.tcp_address, tls=vessel.TLS(f"{good}/ca.pem"), timeout=5)
        elif who == "other-ca-cert":
            c = vessel.Client(d.tcp_address, timeout=5, tls=vessel.TLS(
                f"{good}/ca.pem", f"{other}/client.pem", f"{other}/client.key"))
        else:
            c = vessel.Client(d.tcp_address, insecure=True, timeout=5)
        with c, pytest.raises(vessel.VesselError) as e:
            c.version()
        assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_tcp_without_tls_flags_is_refused_at_start():
    r = subprocess.run([vesseld_path(), "--root", "/tmp/vsl-never", "--listen",
                        "tcp://127.0.0.1:0"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "--tls-cert" in r.stderr
    assert not os.path.exists("/tmp/vsl-never")


def test_insecure_tcp_works_and_warns():
    with Vesseld(tcp=True, insecure_tcp=True) as d:
        assert "plaintext TCP" in d.log and "WARN" in d.log
        with vessel.Client(d.tcp_address, insecure=True) as c:
            assert c.version().api_version == "vessel.v1"


def test_health_check(daemon):
    ch = grpc.insecure_channel(daemon.address)
    check = ch.unary_unary("/grpc.health.v1.Health/Check")
    # HealthCheckRequest{service=""} is empty; the reply is {status: SERVING=1}.
    assert check(b"", timeout=5) == b"\x08\x01"
    svc = b"\x0a" + bytes([len("vessel.v1.System")]) + b"vessel.v1.System"
    assert check(svc, timeout=5) == b"\x08\x01"
    with pytest.raises(grpc.RpcError) as e:
        check(b"\x0a\x03foo", timeout=5)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    ch.close()


def test_unimplemented_rpc_is_a_clean_error(daemon):
    ch = grpc.insecure_channel(daemon.address)
    with pytest.raises(grpc.RpcError) as e:
        ch.unary_unary("/vessel.v1.Containers/NoSuchMethod")(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "/vessel.v1.Containers/NoSuchMethod" in e.value.details()
    ch.close()


def test_second_daemon_on_same_root_is_refused(daemon):
    r = subprocess.run([vesseld_path(), "--root", daemon.root, "--listen",
                        "unix:///tmp/vsl-second.sock"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    assert "another vesseld" in r.stderr


def test_sigterm_stops_cleanly_and_removes_socket():
    d = Vesseld()
    try:
        assert os.path.exists(d.socket)
        assert d.stop(signal.SIGTERM) == 0
        assert not os.path.exists(d.socket)
        assert "stopped" in d.log
    finally:
        d.cleanup()


def test_bad_flag_names_the_problem():
    r = subprocess.run([vesseld_path(), "--nope"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--nope" in r.stderr


def test_networks_crud(daemon):
    from vessel.v1 import networks_pb2 as n
    with vessel.Client(daemon.address) as c:
        nets = c.networks.List(n.NetworksListRequest(), timeout=5).networks
        assert [x.name for x in nets] == ["default"] and nets[0].builtin
        made = c.networks.Create(n.NetworksCreateRequest(name="blue", subnet="10.77.0.0/24"),
                                 timeout=5).network
        assert made.gateway == "10.77.0.1" and made.driver == "bridge" and made.bridge
        with pytest.raises(grpc.RpcError) as e:
            c.networks.Create(n.NetworksCreateRequest(name="green", subnet="10.77.0.128/25"),
                              timeout=5)
        assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
        with pytest.raises(grpc.RpcError) as e:
            c.networks.Create(n.NetworksCreateRequest(name="x", subnet="nonsense"), timeout=5)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        got = c.networks.Inspect(n.NetworksInspectRequest(name="blue"), timeout=5).network
        assert got.id == made.id and got.subnet == "10.77.0.0/24"
        only = c.networks.List(n.NetworksListRequest(filters=["name=bl*"]), timeout=5).networks
        assert [x.name for x in only] == ["blue"]
        c.networks.Delete(n.NetworksDeleteRequest(name="blue"), timeout=5)
        with pytest.raises(grpc.RpcError) as e:
            c.networks.Inspect(n.NetworksInspectRequest(name="blue"), timeout=5)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as e:
            c.networks.Delete(n.NetworksDeleteRequest(name="default"), timeout=5)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_calls_in_flight_per_connection_are_limited():
    """--max-calls-per-connection N: a client connection with N calls in
    flight (here Events streams) gets RESOURCE_EXHAUSTED for one more, named
    as such; once one ends, calls go through again."""
    from vessel.v1 import events_pb2
    with Vesseld("--max-calls-per-connection", "4") as d, vessel.Client(d.address) as c:
        streams = [c.events.stub.Subscribe(events_pb2.EventsSubscribeRequest(), timeout=60)
                   for _ in range(4)]
        time.sleep(1)  # the streams reach the server
        with pytest.raises(vessel.VesselError) as e:
            c.version()
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "at most 4" in str(e.value)
        streams[0].cancel()
        deadline = time.monotonic() + 10
        while True:  # the cancelled handler ends a moment later
            try:
                assert c.version().api_version == "vessel.v1"
                break
            except vessel.VesselError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        for s in streams[1:]:
            s.cancel()


def test_bad_max_calls_flag_is_refused():
    r = subprocess.run([vesseld_path(), "--max-calls-per-connection", "0"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--max-calls-per-connection" in r.stderr + r.stdout


def test_open_file_soft_limit_is_raised_to_the_hard_limit():
    """vesseld raises RLIMIT_NOFILE's soft limit to the hard one at start
    (each container holds a few fds). Started here with soft 1024."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard > 1024, "the test needs a hard limit above 1024"

    def low():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    import tempfile  # (Vesseld takes no preexec_fn: started by hand)
    tmp = tempfile.mkdtemp(prefix="vsl-", dir="/tmp")
    p = subprocess.Popen([vesseld_path(), "--root", f"{tmp}/root", "--listen", f"unix://{tmp}/v.sock"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=low)
    try:
        for line in p.stdout:
            if " ready " in line:
                break
        with open(f"/proc/{p.pid}/limits") as f:
            row = next(l for l in f if l.startswith("Max open files")).split()
        assert int(row[3]) == hard and int(row[4]) == hard, row
    finally:
        p.terminate()
        p.wait(20)
        subprocess.run(["rm", "-rf", tmp])


@pytest.mark.parametrize("group", [None, "nogroup"])
def test_unix_socket_is_0660_whatever_the_umask(group):
    """Under umask 000 the unix socket is still 0660 (owner and group only),
    owned by --socket-group when given; an unknown group is refused."""
    import grp
    import stat
    import tempfile
    tmp = tempfile.mkdtemp(prefix="vsl-", dir="/tmp")
    args = [vesseld_path(), "--root", f"{tmp}/root", "--listen", f"unix://{tmp}/v.sock"]
    if group:
        args += ["--socket-group", group]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         preexec_fn=lambda: os.umask(0))
    try:
        for line in p.stdout:
            if " ready " in line:
                break
        st = os.stat(f"{tmp}/v.sock")
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
        want = grp.getgrnam(group).gr_gid if group else os.getgid()
        assert st.st_gid == want
        with vessel.Client(f"unix://{tmp}/v.sock") as c:
            assert c.version().api_version == "vessel.v1"
    finally:
        p.terminate()
        p.wait(20)
        subprocess.run(["rm", "-rf", tmp])
    r = subprocess.run([vesseld_path(), "--root", f"{tmp}/root", "--socket-group", "no-such-group-x"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "no-such-group-x" in r.stdout + r.stderr
    subprocess.run(["rm", "-rf", tmp])


def test_info_reports_kernel_qemu_defaults_networks_and_templates(tmp_path):
    """System.Info fills kernels (name, path, release read from the image's
    banner, architecture, default), qemu_version, default_resources,
    networks and template_boot."""
    import re
    kernel = tmp_path / "vmlinux"
    # A stand-in image: what vesseld reads of it is the banner.
    kernel.write_bytes(os.urandom(100_000) + b"Linux version %s\0" +
                       b"Linux version 6.1.99-test (builder@host) #1 SMP\0" + os.urandom(1000))
    with Vesseld("--kernel", str(kernel)) as d, vessel.Client(d.address) as c:
        info = c.info()
    assert len(info.kernels) == 1
    k = info.kernels[0]
    assert (k.name, k.path, k.release, k.is_default) == ("optimized", str(kernel), "6.1.99-test", True)
    assert k.architecture == info.host_architecture
    want = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                          text=True).stdout.split("version ")[1].split()[0]
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", info.qemu_version) and info.qemu_version == want
    assert info.default_resources.milli_cpus == 1000
    assert info.default_resources.memory_bytes == 192 << 20
    assert info.networks == 1  # the built-in "default"
    assert info.template_boot


def _kvm_unusable_reason() -> str | None:
    """What vesseld's probe must find on this host before booting anything,
    or None when the host looks KVM-capable (then the probe guest decides)."""
    if not os.path.exists("/dev/kvm"):
        return "/dev/kvm absent"
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as e:
        return f"/dev/kvm: {e.strerror}"
    flags = [l for l in open("/proc/cpuinfo") if l.startswith("flags")]
    if not any(" vmx" in l or " svm" in l for l in flags):
        return "no vmx/svm in /proc/cpuinfo"
    return None


def test_accel_auto_says_why():
    """--accel auto (the default): decided once at start by the probe;
    System.Info names the choice and the reason, a fallback to TCG is
    logged as a warning with it."""
    want = _kvm_unusable_reason()
    with Vesseld() as d, vessel.Client(d.address) as c:
        info = c.info()
    if want is not None:
        assert info.accelerator == "tcg"
        assert info.accelerator_reason.startswith("KVM is not usable: " + want), \
            info.accelerator_reason
        assert "WARN" in d.log and "VMs run under TCG" in d.log and want in d.log
    elif info.accelerator == "kvm":
        assert info.accelerator_reason.startswith("a KVM guest answered in ")
    else:
        assert "KVM guest" in info.accelerator_reason


def test_accel_kvm_refuses_to_start_without_kvm():
    want = _kvm_unusable_reason()
    if want is None:
        pytest.skip("this host looks KVM-capable: --accel kvm may start")
    r = subprocess.run([vesseld_path(), "--root", "/tmp/vsl-nokvm", "--listen",
                        "unix:///tmp/vsl-nokvm.sock", "--accel", "kvm"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    assert "--accel kvm: KVM is not usable: " + want in r.stderr
    # Refused before anything was made: no root, no socket.
    assert not os.path.exists("/tmp/vsl-nokvm") and not os.path.exists("/tmp/vsl-nokvm.sock")


def test_accel_tcg_is_taken_without_probing():
    with Vesseld("--accel", "tcg") as d, vessel.Client(d.address) as c:
        info = c.info()
    assert info.accelerator == "tcg"
    assert info.accelerator_reason == "chosen by --accel tcg"
    assert "VMs run under TCG" not in d.log  # asked for: no warning


def test_bad_accel_flag_is_refused():
    r = subprocess.run([vesseld_path(), "--accel", "fast"], capture_output=True, text=True)
    assert r.returncode == 2 and "--accel fast: give kvm, tcg or auto" in r.stderr
