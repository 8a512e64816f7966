"""vminitd in a real VM (vessel kernel, QEMU microvm), driven through the
vessel.v1.Agent API: containers, processes, stdio, signals, users, limits,
events, system RPCs. With VESSEL_GUEST_ARCH=arm64 (//tests/vm:agent_arm64_test)
the same tests run in an arm64 VM (qemu-system-aarch64 -M virt) with the
cross-built vminitd and arm64 containers."""
import hashlib
import os
import re
import threading
import time

import grpc
import pytest

from agentvm import A, T, STDOUT, STDERR, STDIN, request_stream

SIGTERM, SIGKILL = 15, 9
ARM64 = os.environ.get("VESSEL_GUEST_ARCH") == "arm64"


def test_info(vm):
    i = vm.stub.Info(A.AgentInfoRequest(), timeout=10)
    assert i.api_version == "vessel.v1"
    assert i.agent_version
    assert i.kernel_release.endswith("-vessel")
    assert i.machine == ("aarch64" if ARM64 else "x86_64")
    assert i.cpus == 2
    assert 400 << 20 < i.memory_total_bytes <= 512 << 20
    assert 0 < i.memory_available_bytes <= i.memory_total_bytes
    assert i.uptime_ms > 0


def test_true_false_exit_codes(vm):
    _, _, ex = vm.run("t-true", ["true"])
    assert (ex.code, ex.signal) == (0, 0)
    _, _, ex = vm.run("t-false", ["false"])
    assert ex.code == 1
    _, _, ex = vm.run("t-exit", ["sh", "-c", "exit 42"])
    assert ex.code == 42


def test_echo_hi(vm):
    out, err, ex = vm.run("t-echo", ["echo", "hi"])
    assert out == b"hi\n" and err == b"" and ex.code == 0
    out, err, ex = vm.run("t-err", ["sh", "-c", "echo out; echo err >&2"])
    assert out == b"out\n" and err == b"err\n"


def test_missing_executable_is_an_error(vm):
    vm.create("t-missing", ["/no/such/binary"])
    try:
        with pytest.raises(grpc.RpcError) as e:
            vm.stub.StartProcess(A.AgentStartProcessRequest(container_id="t-missing"), timeout=30)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert "/no/such/binary" in e.value.details()
        w = vm.stub.WaitProcess(A.AgentWaitProcessRequest(container_id="t-missing"), timeout=10)
        assert w.exit_status.code == 127
    finally:
        vm.delete("t-missing")
    vm.create("t-missing2", ["nosuchcommand"])
    try:
        with pytest.raises(grpc.RpcError) as e:
            vm.stub.StartProcess(A.AgentStartProcessRequest(container_id="t-missing2"), timeout=30)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert "not found in $PATH" in e.value.details()
    finally:
        vm.delete("t-missing2")


def test_stdin_64mib_roundtrip(vm):
    data = os.urandom(1 << 20) * 64  # 64 MiB
    chunks = [data[i:i + 32768] for i in range(0, len(data), 32768)]
    vm.create("t-cat", ["cat"])
    try:
        out, err, ex = vm.stdio("t-cat", stdin_chunks=chunks, timeout=300)
    finally:
        vm.delete("t-cat")
    assert ex.code == 0
    assert len(out) == len(data)
    assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()


def test_output_of_fast_exit_is_not_lost(vm):
    # 1 MiB written by a process that exits at once, read only afterwards.
    vm.create("t-fast", ["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x"])
    try:
        vm.stub.StartProcess(A.AgentStartProcessRequest(container_id="t-fast"), timeout=30)
        time.sleep(0.5)
        q = [A.AgentStdioRequest(open=A.AgentStdioOpen(container_id="t-fast"))]
        out = b""
        exit_ = None
        for r in vm.stub.Stdio(iter(q), timeout=60):
            if r.HasField("frame"):
                out += r.frame.data
            else:
                exit_ = r.exit
        assert out == b"x" * 1048576
        assert exit_.code == 0
    finally:
        vm.delete("t-fast")


def test_output_ends_with_eof_or_with_the_exit(vm):
    """A stream the process closes while it lives on ends with an eof frame
    (before the process exits); output that ends with the process is ended
    by the exit itself."""
    vm.create("t-eof", ["sh", "-c", "exec >&-; echo closed >&2; sleep 1; echo gone >&2"])
    try:
        q, reqs = request_stream(A.AgentStdioRequest(open=A.AgentStdioOpen(container_id="t-eof")))
        it = vm.stub.Stdio(reqs, timeout=60)
        vm.stub.StartProcess(A.AgentStartProcessRequest(container_id="t-eof"), timeout=30)
        seen = []
        for r in it:
            if r.HasField("frame"):
                seen.append(("eof" if r.frame.eof else "data", r.frame.stream, r.frame.data))
            else:
                seen.append(("exit", r.exit.code, b""))
                q.put(None)
        q.put(None)
        kinds = [(k, s) for k, s, _ in seen]
        assert kinds.index(("eof", STDOUT)) < kinds.index(("exit", 0)), seen
        assert b"".join(d for k, s, d in seen if k == "data" and s == STDERR) == b"closed\ngone\n"
        assert ("data", STDOUT) not in kinds, seen
        # stderr ended as the process exited: the exit ended it
        assert kinds[-1] == ("exit", 0), seen
    finally:
        vm.delete("t-eof")
    out, err, ex = vm.run("t-true", ["true"])
    assert (out, err, ex.code) == (b"", b"", 0)


def test_tty_term_and_resize(vm):
    vm.create("t-tty", ["sh", "-c", "echo T=$TERM; stty size; read x; stty size"],
              terminal=True, console_size=T.ConsoleSize(rows=24, cols=80))
    q, reqs = request_stream(A.AgentStdioRequest(open=A.AgentStdioOpen(container_id="t-tty")))
    it = vm.stub.Stdio(reqs, timeout=60)
    vm.stub.StartProcess(A.AgentStartProcessRequest(container_id="t-tty"), timeout=30)
    out = b""
    resized = False
    exit_ = None
    try:
        for r in it:
            if r.HasField("frame"):
                assert r.frame.stream == STDOUT
                out += r.frame.data
                if not resized and b"24 80" in out:
                    vm.stub.ResizeProcess(A.AgentResizeProcessRequest(
                        container_id="t-tty", size=T.ConsoleSize(rows=50, cols=132)), timeout=10)
                    resized = True
                    q.put(A.AgentStdioRequest(frame=T.StdioFrame(stream=STDIN, data=b"go\n")))
            else:
                exit_ = r.exit
                q.put(None)
    finally:
        q.put(None)
        vm.delete("t-tty")
    text = out.decode().replace("\r", "")
    assert "T=xterm" in text
    assert "24 80" in text
    assert "50 132" in text
    assert exit_.code == 0
    # ResizeProcess without a terminal is refused.
    vm.create("t-notty", ["true"])
    try:
        with pytest.raises(grpc.RpcError) as e:
            vm.stub.ResizeProcess(A.AgentResizeProcessRequest(
                container_id="t-notty", size=T.ConsoleSize(rows=5, cols=5)), timeout=10)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        vm.delete("t-notty")


@pytest.fixture
def sleeper(vm):
    """A container whose init is a shell that keeps running (and reaps)."""
    cid = "t-sleeper-%d" % (time.monotonic_ns() % 100000)
    vm.create(cid, ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"])
    vm.stub.StartProcess(A.AgentStartProcessRequest(container_id=cid), timeout=30)
    yield cid
    vm.delete(cid)


def wait(vm, cid, pid=""):
    return vm.stub.WaitProcess(A.AgentWaitProcessRequest(container_id=cid, process_id=pid), timeout=60).exit_status


def test_sigterm_and_sigkill(vm, sleeper):
    vm.stub.CreateProcess(A.AgentCreateProcessRequest(
        container_id=sleeper, process_id="p-term", process=T.ProcessSpec(args=["sleep", "1000"])), timeout=30)
    vm.stub.StartProcess(A.AgentStartProcessRequest(container_id=sleeper, process_id="p-term"), timeout=30)
    vm.stub.SignalProcess(A.AgentSignalProcessRequest(container_id=sleeper, process_id="p-term", signal=SIGTERM), timeout=10)
    st = wait(vm, sleeper, "p-term")
    assert (st.signal, st.code) == (SIGTERM, 128 + SIGTERM)
    # Signalling an exited process is refused; deleting it twice is fine.
    with pytest.raises(grpc.RpcError) as e:
        vm.stub.SignalProcess(A.AgentSignalProcessRequest(container_id=sleeper, process_id="p-term", signal=9), timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    vm.stub.DeleteProcess(A.AgentDeleteProcessRequest(container_id=sleeper, process_id="p-term"), timeout=10)
    vm.stub.DeleteProcess(A.AgentDeleteProcessRequest(container_id=sleeper, process_id="p-term"), timeout=10)
    with pytest.raises(grpc.RpcError) as e:
        vm.stub.SignalProcess(A.AgentSignalProcessRequest(container_id=sleeper, process_id="x", signal=99), timeout=10)
    # The container's init: its TERM trap exits 0.
    vm.stub.SignalProcess(A.AgentSignalProcessRequest(container_id=sleeper, signal=SIGTERM), timeout=10)
    assert wait(vm, sleeper).code == 0


def test_sigkill_init(vm):
    vm.create("t-kill", ["sleep", "1000"])
    try:
        vm.stub.StartProcess(A.AgentStartProcessRequest(container_id="t-kill"), timeout=30)
        vm.stub.SignalProcess(A.AgentSignalProcessRequest(container_id="t-kill", signal=SIGKILL), timeout=10)
        st = wait(vm, "t-kill")
        assert (st.signal, st.code) == (SIGKILL, 137)
        assert st.exited_at.seconds > 0
    finally:
        vm.delete("t-kill")


def test_user_by_name_uid_and_bad_user(vm, sleeper):
    out, code, _ = vm.sh(sleeper, "id", user=T.User(name="alice"))
    assert code == 0
    assert "uid=1000(alice)" in out and "gid=1000(alice)" in out
    assert "10(wheel)" in out and "29(audio)" in out
    out, code, _ = vm.sh(sleeper, "id -u; id -g; echo $HOME", user=T.User(name="4242:77"))
    assert out.split() == ["4242", "77", "/"]
    out, code, _ = vm.sh(sleeper, "id -u; id -g; id -G", user=T.User(uid=1000, gid=1000, additional_gids=[500]))
    lines = out.split("\n")
    assert lines[0] == "1000" and lines[1] == "1000" and "500" in lines[2].split()
    out, _, _ = vm.sh(sleeper, "id -un; echo $HOME", user=T.User(name="alice:wheel"))
    assert out.split() == ["alice", "/home/alice"]
    with pytest.raises(grpc.RpcError) as e:
        vm.stub.CreateProcess(A.AgentCreateProcessRequest(
            container_id=sleeper, process_id="bad", process=T.ProcessSpec(args=["id"], user=T.User(name="mallory"))), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "mallory" in e.value.details()


def test_hostname_hosts_resolv(vm):
    out, _, ex = vm.run("t-host", ["sh", "-c", "hostname; cat /etc/hostname; cat /etc/hosts; cat /etc/resolv.conf"],
                        hostname="myhost",
                        dns=T.Dns(nameservers=["10.0.0.53"], search=["corp.example"], options=["ndots:2"]),
                        hosts=[T.HostsEntry(ip="10.1.2.3", hostnames=["db", "db.local"])])
    text = out.decode()
    assert text.startswith("myhost\nmyhost\n")
    assert "127.0.0.1\tlocalhost" in text
    assert "10.1.2.3\tdb db.local" in text
    assert "nameserver 10.0.0.53" in text and "search corp.example" in text and "options ndots:2" in text
    out, _, _ = vm.run("t-defhost", ["hostname"])
    assert out == b"t-defhost\n"


def test_cwd_created_and_env(vm, sleeper):
    out, code, err = vm.sh(sleeper, "pwd; stat -c %u /work/a/b", cwd="/work/a/b", user=T.User(name="alice"))
    assert code == 0, err
    assert out.split() == ["/work/a/b", "1000"]
    out, _, _ = vm.sh(sleeper, "env", env=["FOO=bar", "X=1", "X=2"])
    env = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    assert env["FOO"] == "bar" and env["X"] == "2"
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["HOME"] == "/root"
    assert "TERM" not in env
    out, _, _ = vm.sh(sleeper, "echo $HOME", env=["HOME=/custom"])
    assert out.strip() == "/custom"


def test_rlimit_nofile(vm, sleeper):
    out, _, _ = vm.sh(sleeper, "ulimit -n; ulimit -Hn")
    assert out.split() == ["1048576", "1048576"]
    out, _, _ = vm.sh(sleeper, "ulimit -n; ulimit -Hn",
                      rlimits=[T.Rlimit(type="RLIMIT_NOFILE", soft=1024, hard=2048)])
    assert out.split() == ["1024", "2048"]


def test_no_new_privileges_and_capabilities(vm, sleeper):
    out, _, _ = vm.sh(sleeper, "grep -E 'NoNewPrivs|CapEff|CapBnd' /proc/self/status", no_new_privileges=True)
    st = dict(re.findall(r"(\w+):\s+(\S+)", out))
    assert st["NoNewPrivs"] == "1"
    assert st["CapEff"] == "00000000a80425fb"  # the OCI/Docker default set
    out, _, _ = vm.sh(sleeper, "grep -E 'NoNewPrivs|CapBnd|CapEff' /proc/self/status",
                      capabilities=T.Capabilities(add=["NET_ADMIN"], drop=["ALL"]))
    st = dict(re.findall(r"(\w+):\s+(\S+)", out))
    assert st["NoNewPrivs"] == "0"
    assert st["CapBnd"] == "0000000000001000"
    assert st["CapEff"] == "0000000000001000"
    out, _, _ = vm.sh(sleeper, "grep CapEff /proc/self/status", user=T.User(name="alice"))
    assert out.split()[1] == "0000000000000000"


def test_masked_and_readonly_paths(vm, sleeper):
    out, _, _ = vm.sh(sleeper, "grep -E ' /proc/acpi | /sys/firmware ' /proc/mounts | cut -d' ' -f2,3; "
                      "ls -A /proc/acpi /sys/firmware | grep -v :$ | grep -c . ; "
                      "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo writable || echo ro; "
                      "grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; "
                      "mount | grep ' /dev/pts ' | cut -d' ' -f5; ls /dev")
    # An arm64 guest (-M virt booted by device tree) has no /proc/acpi to mask.
    masked = ["/sys/firmware tmpfs"] if ARM64 else ["/proc/acpi tmpfs", "/sys/firmware tmpfs"]
    lines = out.split("\n")
    n = len(masked)
    assert sorted(lines[0:n]) == masked
    assert lines[n].strip() == "0"
    assert lines[n + 1] == "ro"
    assert lines[n + 2] == "ro"
    assert lines[n + 3] == "devpts"
    for d in ["null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "ptmx", "fd"]:
        assert d in lines[n + 4:], d


def test_memory_limit_oom_event(vm):
    events = []
    call = vm.stub.Events(A.AgentEventsRequest(), timeout=120)

    def collect():
        try:
            for e in call:
                events.append(e.event)
        except grpc.RpcError:
            pass

    t = threading.Thread(target=collect, daemon=True)
    t.start()
    time.sleep(0.5)
    try:
        _, _, ex = vm.run("t-oom", ["awk", "BEGIN { s = \"xxxxxxxxxxxxxxxx\"; while (1) s = s s }"],
                          resources=T.Resources(memory_bytes=32 << 20), delete=False)
        assert ex.signal == SIGKILL and ex.oom_killed
        st = vm.stub.Statistics(A.AgentStatisticsRequest(container_ids=["t-oom"]), timeout=10).statistics[0]
        assert st.memory.limit_bytes == 32 << 20
        assert st.memory.oom_kill_events >= 1
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(e.type == T.EVENT_TYPE_CONTAINER_OOM for e in events):
            time.sleep(0.1)
    finally:
        vm.delete("t-oom")
        call.cancel()
    kinds = [(e.type, e.container_id) for e in events]
    assert (T.EVENT_TYPE_CONTAINER_OOM, "t-oom") in kinds
    assert (T.EVENT_TYPE_CONTAINER_STARTED, "t-oom") in kinds
    exited = [e for e in events if e.type == T.EVENT_TYPE_CONTAINER_EXITED and e.container_id == "t-oom"]
    assert exited and exited[0].exit_status.oom_killed
    seqs = [e.sequence for e in events]
    assert seqs == sorted(seqs)


def test_cgroup_limits_applied(vm):
    out, _, _ = vm.run("t-cg", ["sh", "-c", "cat /sys/fs/cgroup/vessel/t-cg/memory.max /sys/fs/cgroup/vessel/t-cg/cpu.max "
                                           "/sys/fs/cgroup/vessel/t-cg/pids.max"],
                       resources=T.Resources(memory_bytes=64 << 20, milli_cpus=500, pids_max=50))
    assert out.decode().split("\n")[:3] == [str(64 << 20), "50000 100000", "50"]


def test_ten_concurrent_execs(vm, sleeper):
    results = {}

    def one(i):
        out, code, _ = vm.sh(sleeper, "echo exec-%d; sleep 0.2" % i)
        results[i] = (out, code)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert sorted(results) == list(range(10))
    for i, (out, code) in results.items():
        assert (out, code) == ("exec-%d\n" % i, 0)


def test_exec_events_and_wait(vm, sleeper):
    call = vm.stub.Events(A.AgentEventsRequest(), timeout=60)
    got = []

    def collect():
        try:
            for e in call:
                got.append(e.event)
        except grpc.RpcError:
            pass

    threading.Thread(target=collect, daemon=True).start()
    time.sleep(0.3)
    vm.exec_(sleeper, "ev1", ["sh", "-c", "exit 5"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(e.type == T.EVENT_TYPE_PROCESS_EXITED for e in got):
        time.sleep(0.05)
    call.cancel()
    ex = [e for e in got if e.type == T.EVENT_TYPE_PROCESS_EXITED and e.process_id == "ev1"]
    assert ex and ex[0].exit_status.code == 5
    assert any(e.type == T.EVENT_TYPE_PROCESS_STARTED and e.process_id == "ev1" for e in got)
    # Wait on an exited process returns at once, repeatedly.
    assert wait(vm, sleeper, "ev1").code == 5
    assert wait(vm, sleeper, "ev1").code == 5


def test_orphans_are_reaped(vm, sleeper):
    # vminitd reaps its direct children: a finished exec leaves no /proc entry.
    vm.stub.CreateProcess(A.AgentCreateProcessRequest(
        container_id=sleeper, process_id="orph", process=T.ProcessSpec(args=["sh", "-c", "sleep 0.3 & echo $!"])), timeout=30)
    pid = vm.stub.StartProcess(A.AgentStartProcessRequest(container_id=sleeper, process_id="orph"), timeout=30).pid
    assert wait(vm, sleeper, "orph").code == 0
    with pytest.raises(grpc.RpcError) as e:
        vm.stub.Stat(A.AgentStatRequest(path="/proc/%d/stat" % pid), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # The orphaned grandchild (reparented inside the container) is gone too.
    out, _, _ = vm.sh(sleeper, "sleep 1; ps -o stat,args | grep -c '^Z' || true")
    assert out.strip() == "0"


def test_delete_semantics(vm):
    vm.create("t-del", ["sleep", "1000"])
    vm.stub.StartProcess(A.AgentStartProcessRequest(container_id="t-del"), timeout=30)
    with pytest.raises(grpc.RpcError) as e:
        vm.stub.DeleteContainer(A.AgentDeleteContainerRequest(container_id="t-del"), timeout=30)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "t-del" in vm.stub.Info(A.AgentInfoRequest(), timeout=10).container_ids
    vm.delete("t-del", force=True)
    assert "t-del" not in vm.stub.Info(A.AgentInfoRequest(), timeout=10).container_ids
    with pytest.raises(grpc.RpcError) as e:
        vm.delete("t-del")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # A created, never started container deletes without force.
    vm.create("t-del2", ["true"])
    vm.delete("t-del2", force=False)
    with pytest.raises(grpc.RpcError) as e:
        vm.create("bad/id", ["true"])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_set_time_entropy_sysctl(vm):
    vm.stub.SetTime(A.AgentSetTimeRequest(time={"seconds": 1893456000}), timeout=10)  # 2030-01-01
    out, _, _ = vm.run("t-time", ["date", "-u", "+%Y"])
    assert out == b"2030\n"
    vm.stub.SetTime(A.AgentSetTimeRequest(time={"seconds": int(time.time())}), timeout=10)
    out, _, _ = vm.run("t-time2", ["date", "+%s"])
    assert abs(int(out) - time.time()) < 30
    vm.stub.AddEntropy(A.AgentAddEntropyRequest(data=os.urandom(64)), timeout=10)
    with pytest.raises(grpc.RpcError) as e:
        vm.stub.AddEntropy(A.AgentAddEntropyRequest(data=b""), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    vm.stub.Sysctl(A.AgentSysctlRequest(settings={"net.ipv4.ip_forward": "1"}), timeout=10)
    out, _, _ = vm.run("t-sysctl", ["cat", "/proc/sys/net/ipv4/ip_forward"])
    assert out == b"1\n"
    with pytest.raises(grpc.RpcError) as e:
        vm.stub.Sysctl(A.AgentSysctlRequest(settings={"no.such.key": "1"}), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_statistics(vm, sleeper):
    st = vm.stub.Statistics(A.AgentStatisticsRequest(container_ids=[sleeper]), timeout=10).statistics
    assert len(st) == 1 and st[0].container_id == sleeper
    assert st[0].pids.current >= 1
    assert st[0].memory.usage_bytes > 0
    assert st[0].cpu.usage_usec > 0 and st[0].cpu.online_cpus == 2
    assert st[0].memory.limit_bytes > 0
    with pytest.raises(grpc.RpcError) as e:
        vm.stub.Statistics(A.AgentStatisticsRequest(container_ids=["nope"]), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_guest_files_mount_and_binfmt(vm, sleeper):
    vm.stub.WriteFile(A.AgentWriteFileRequest(path="/run/t/hello", data=b"hello", create_parents=True), timeout=10)
    st = vm.stub.Stat(A.AgentStatRequest(path="/run/t/hello"), timeout=10).info
    assert st.size == 5 and st.type == T.FILE_TYPE_REGULAR and st.mode == 0o644
    vm.stub.Mkdir(A.AgentMkdirRequest(path="/mnt/rootdisk", all=True), timeout=10)
    vm.stub.Mount(A.AgentMountRequest(mount=T.Mount(type="ext4", source="/dev/vda", destination="/mnt/rootdisk")), timeout=30)
    # A foreign "architecture": files starting with VSLBIN run through busybox echo.
    vm.stub.SetupEmulator(A.AgentSetupEmulatorRequest(
        name="vessel-test", type=A.BINFMT_TYPE_MAGIC, magic=b"VSLBIN", interpreter="/mnt/rootdisk/bin/echo",
        flags="F"), timeout=10)
    with pytest.raises(grpc.RpcError) as e:
        vm.stub.SetupEmulator(A.AgentSetupEmulatorRequest(
            name="vessel-test", type=A.BINFMT_TYPE_MAGIC, magic=b"VSLBIN", interpreter="/x", flags="F"), timeout=10)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    out, code, err = vm.sh(sleeper, "printf 'VSLBIN rest' > /tmp/prog && chmod +x /tmp/prog && /tmp/prog arg1")
    assert code == 0, err
    assert out.strip() == "/tmp/prog arg1"
    vm.stub.Umount(A.AgentUmountRequest(path="/mnt/rootdisk", flags=2), timeout=10)


def test_container_mounts_and_readonly_root(vm):
    vm.stub.WriteFile(A.AgentWriteFileRequest(path="/run/share/file.txt", data=b"shared", create_parents=True), timeout=10)
    out, err, ex = vm.run("t-mnt", ["sh", "-c", "cat /data/file.txt; echo; grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4; "
                                              "touch /data/x 2>/dev/null && echo rw || echo ro; touch /y 2>/dev/null && echo rw || echo ro"],
                          mounts=[T.Mount(type="bind", source="/run/share", destination="/data", options=["ro"]),
                                  T.Mount(type="tmpfs", source="tmpfs", destination="/scratch", options=["nosuid", "size=1m"])])
    lines = out.decode().split("\n")
    assert ex.code == 0, err
    assert lines[0] == "shared"
    assert lines[1].startswith("tmpfs rw,nosuid")
    assert lines[2] == "ro"
    assert lines[3] == "rw"
    req = A.AgentCreateContainerRequest(container_id="t-ro", rootfs=T.Mount(type="ext4", source="/dev/vda", options=["ro"]),
                                        process=T.ProcessSpec(args=["sh", "-c", "touch /z 2>/dev/null && echo rw || echo ro"]))
    vm.stub.CreateContainer(req, timeout=60)
    try:
        out, _, _ = vm.stdio("t-ro")
    finally:
        vm.delete("t-ro")
    assert out == b"ro\n"
    with pytest.raises(grpc.RpcError) as e:
        vm.stub.CreateContainer(A.AgentCreateContainerRequest(
            container_id="t-nodisk", rootfs=T.Mount(type="ext4", source="/dev/vdz"),
            process=T.ProcessSpec(args=["true"])), timeout=60)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_waiting_init_holds_no_foreign_pipes(vm, sleeper):
    # An exec'd process is created (its pipes exist), then another container
    # is created whose init waits for StartProcess. The exec's output must
    # still reach EOF when it exits (the waiting init keeps no copies).
    vm.stub.CreateProcess(A.AgentCreateProcessRequest(
        container_id=sleeper, process_id="early", process=T.ProcessSpec(args=["echo", "early"])), timeout=30)
    vm.create("t-waiting", ["true"])
    try:
        out, _, ex = vm.stdio(sleeper, "early", timeout=30)
        assert (out, ex.code) == (b"early\n", 0)
    finally:
        vm.delete("t-waiting")


def test_copy_in_and_out(vm, sleeper):
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in [("d/hello.txt", b"hello"), ("d/sub/big.bin", os.urandom(3 << 20))]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o640
            t.addfile(ti, io.BytesIO(data))
        ln = tarfile.TarInfo("d/link")
        ln.type = tarfile.SYMTYPE
        ln.linkname = "hello.txt"
        t.addfile(ln)
    blob = buf.getvalue()

    def reqs():
        yield A.AgentCopyInRequest(header=A.AgentCopyInHeader(
            container_id=sleeper, path="/copied", archive=True, create_parents=True,
            chown=True, uid=1000, gid=1000))
        for i in range(0, len(blob), 65536):
            yield A.AgentCopyInRequest(data=blob[i:i + 65536])

    r = vm.stub.CopyIn(reqs(), timeout=120)
    assert r.bytes_received == len(blob)
    out, code, err = vm.sh(sleeper, "cat /copied/d/hello.txt; echo; stat -c '%u %a' /copied/d/hello.txt; readlink /copied/d/link")
    assert code == 0, err
    assert out.split("\n")[:3] == ["hello", "1000 640", "hello.txt"]
    # A single file.
    vm.stub.CopyIn(iter([A.AgentCopyInRequest(header=A.AgentCopyInHeader(container_id=sleeper, path="/copied/one.txt", mode=0o600)),
                         A.AgentCopyInRequest(data=b"one")]), timeout=30)
    out, _, _ = vm.sh(sleeper, "cat /copied/one.txt; stat -c ' %a' /copied/one.txt")
    assert out.strip() == "one 600"
    # Out again, as a tar stream with the directory as the top entry.
    chunks = list(vm.stub.CopyOut(A.AgentCopyOutRequest(container_id=sleeper, path="/copied/d"), timeout=120))
    assert chunks[0].info.type == T.FILE_TYPE_DIRECTORY and chunks[0].info.path == "/copied/d"
    data = b"".join(c.data for c in chunks)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        names = sorted(t.getnames())
        assert names == ["d", "d/hello.txt", "d/link", "d/sub", "d/sub/big.bin"]
        src = tarfile.open(fileobj=io.BytesIO(blob))
        assert t.extractfile("d/sub/big.bin").read() == src.extractfile("d/sub/big.bin").read()
        assert t.getmember("d/link").linkname == "hello.txt"
    with pytest.raises(grpc.RpcError) as e:
        list(vm.stub.CopyOut(A.AgentCopyOutRequest(container_id=sleeper, path="/nope"), timeout=30))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # An archive that tries to leave the destination is refused.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo("../escape")
        ti.size = 1
        t.addfile(ti, io.BytesIO(b"x"))
    with pytest.raises(grpc.RpcError) as e:
        vm.stub.CopyIn(iter([A.AgentCopyInRequest(header=A.AgentCopyInHeader(container_id=sleeper, path="/copied", archive=True)),
                             A.AgentCopyInRequest(data=buf.getvalue())]), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_container_paths_resolve_inside_the_container(vm, sleeper):
    # /etc/hosts in the container is a bind mount; the rootfs file under it
    # differs, so check with a plain file reached through an absolute link.
    out, code, err = vm.sh(sleeper, "mkdir -p /sj/real && echo inside > /sj/real/f && ln -sfn /sj/real /sj/abs && ln -sfn /etc /sj/etc")
    assert code == 0, err
    st = vm.stub.Stat(A.AgentStatRequest(container_id=sleeper, path="/sj/abs/f"), timeout=10).info
    assert st.size == 7
    st = vm.stub.Stat(A.AgentStatRequest(container_id=sleeper, path="/sj/abs"), timeout=10).info
    assert st.type == T.FILE_TYPE_SYMLINK and st.link_target == "/sj/real"
    # A write through an absolute link lands in the container, not the guest.
    vm.stub.WriteFile(A.AgentWriteFileRequest(container_id=sleeper, path="/sj/etc/vessel-marker", data=b"m"), timeout=10)
    with pytest.raises(grpc.RpcError):
        vm.stub.Stat(A.AgentStatRequest(path="/etc/vessel-marker"), timeout=10)
    out, _, _ = vm.sh(sleeper, "cat /etc/vessel-marker")
    assert out == "m"
