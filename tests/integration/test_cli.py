"""vesselctl against a real vesseld and real VMs."""
import json
import os
import subprocess

import pytest

from test_containers import INITRD, KERNEL, busybox_image_tar
from vesseld import Vesseld, make_certs

VESSELCTL = os.environ.get("VESSELCTL", "")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    archive = tmp / "busybox.tar"
    archive.write_bytes(busybox_image_tar(str(tmp)))
    certs = make_certs(str(tmp / "certs"))
    with Vesseld("--kernel", KERNEL, "--initrd", INITRD, tcp=True, certs=certs, netns=True) as d:
        d.archive, d.certs = str(archive), certs
        yield d


def ctl(d, *args, input=None, host=None, tls=False):
    argv = [VESSELCTL, "--host", host or d.address]
    if tls:
        argv += ["--tls-ca", f"{d.certs}/ca.pem", "--tls-cert", f"{d.certs}/client.pem",
                 "--tls-key", f"{d.certs}/client.key"]
    if host:  # vesseld's TCP listener is on its namespace's loopback
        argv = ["ip", "netns", "exec", d.netns] + argv
    return subprocess.run(argv + list(args), input=input, capture_output=True, timeout=180)


def test_tour_example_runs(env):
    r = subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "..", "..", "examples",
                                             "cli-tour.sh"), env.archive],
                       env={**os.environ, "VESSELCTL": VESSELCTL, "VESSEL_HOST": env.address},
                       capture_output=True, timeout=300)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "hello from a VM" in out and "exit code: 3" in out
    assert "hello over the bridge" in out and "serving" in out


def test_run_semantics(env):
    ctl(env, "image", "load", "-i", env.archive, "--name", "cli/bb:1")
    r = ctl(env, "run", "--rm", "cli/bb:1", "sh", "-c", "echo out; echo err >&2; exit 5")
    assert (r.returncode, r.stdout, r.stderr) == (5, b"out\n", b"err\n")
    r = ctl(env, "run", "-i", "--rm", "cli/bb:1", "sh", "-c", "read a; echo got:$a",
            input=b"typed\n")
    assert (r.returncode, r.stdout) == (0, b"got:typed\n")
    r = ctl(env, "run", "--rm", "-e", "X=1", "-w", "/tmp", "cli/bb:1", "sh", "-c", "echo $X; pwd")
    assert r.stdout == b"1\n/tmp\n"


def test_json_inspect_and_errors(env):
    ctl(env, "image", "load", "-i", env.archive, "--name", "cli/bb:1")
    cid = ctl(env, "create", "--name", "js", "cli/bb:1", "true").stdout.decode().strip()
    assert cid == "js"
    doc = json.loads(ctl(env, "inspect", "js").stdout)
    assert doc["id"] == "js" and doc["state"] == "CONTAINER_STATE_CREATED"
    assert doc["networks"][0]["ipAddress"].startswith("10.88.")
    listed = json.loads(ctl(env, "--json", "ps", "-a").stdout)
    assert [c["id"] for c in listed["containers"]] == ["js"]
    r = ctl(env, "rm", "js")  # created: deleting it needs -f
    assert r.returncode == 1 and b"FAILED_PRECONDITION" in r.stderr, r.stderr
    assert ctl(env, "rm", "-f", "js").returncode == 0
    r = ctl(env, "inspect", "js")
    assert r.returncode == 1 and b"no container js" in r.stderr and b"NOT_FOUND" in r.stderr
    # --network repeated: one attachment each, in order.
    assert ctl(env, "network", "create", "cli-b").returncode == 0
    ctl(env, "create", "--name", "two", "--network", "cli-b", "--network", "default", "cli/bb:1", "true")
    doc = json.loads(ctl(env, "inspect", "two").stdout)
    assert [(n["network"], n["interface"]) for n in doc["networks"]] == \
        [("cli-b", "eth0"), ("default", "eth1")], doc["networks"]
    assert ctl(env, "rm", "-f", "two").returncode == 0
    assert ctl(env, "network", "rm", "cli-b").returncode == 0
    r = ctl(env, "run", "no/such:image")
    assert r.returncode == 125 and b"no local image" in r.stderr
    r = ctl(env, "frobnicate")
    assert r.returncode == 2 and b"unknown command" in r.stderr


def test_help_on_every_verb(env):
    for verb in ["run", "exec", "image", "logs", "stop", "rm", "network", "system", "start",
                 "kill", "inspect", "stats", "cp", "events", "login", "rootfs", "create", "ps"]:
        r = ctl(env, verb, "--help")
        assert r.returncode in (0, 2), verb
        assert b"usage" in (r.stdout + r.stderr).lower(), verb


def test_remote_over_mutual_tls(env):
    r = ctl(env, "version", host=env.tcp_address, tls=True)
    assert r.returncode == 0 and b"vessel.v1" in r.stdout
    r = ctl(env, "version", host=env.tcp_address)
    assert r.returncode == 2 and b"mutual TLS" in r.stderr
    other = make_certs(os.path.join(env.tmp, "other"))
    r = subprocess.run(["ip", "netns", "exec", env.netns,
                        VESSELCTL, "--host", env.tcp_address, "--tls-ca", f"{env.certs}/ca.pem",
                        "--tls-cert", f"{other}/client.pem", "--tls-key", f"{other}/client.key",
                        "version"], capture_output=True, timeout=60)
    assert r.returncode == 1 and b"UNAVAILABLE" in r.stderr
    assert b"TLS handshake failed" in r.stderr and b"client certificate" in r.stderr, r.stderr
    r = subprocess.run(["ip", "netns", "exec", env.netns, VESSELCTL, "--host", env.tcp_address,
                        "--tls-ca", f"{env.certs}/ca.pem", "version"], capture_output=True,
                       timeout=60)
    assert r.returncode == 1 and b"TLS handshake failed" in r.stderr, r.stderr
    assert "vesseld WARN: TLS handshake with a client failed" in env.log


def test_cp_both_ways(env, tmp_path):
    ctl(env, "image", "load", "-i", env.archive, "--name", "cli/bb:1")
    assert ctl(env, "run", "-d", "--name", "cp1", "cli/bb:1", "sleep", "600").returncode == 0
    src = tmp_path / "payload"
    src.mkdir()
    (src / "f.txt").write_text("copied in\n")
    r = ctl(env, "cp", str(src), "cp1:/tmp")
    assert r.returncode == 0, r.stderr
    r = ctl(env, "exec", "cp1", "cat", "/tmp/payload/f.txt")
    assert r.stdout == b"copied in\n"
    out = tmp_path / "back"
    out.mkdir()
    r = ctl(env, "cp", "cp1:/tmp/payload", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "payload" / "f.txt").read_text() == "copied in\n"
    ctl(env, "rm", "-f", "cp1")


def test_rootfs_create(env, tmp_path):
    ctl(env, "image", "load", "-i", env.archive, "--name", "cli/bb:1")
    out = tmp_path / "rootfs.ext4"
    r = ctl(env, "rootfs", "create", "--free", str(32 << 20), "cli/bb:1", str(out))
    assert r.returncode == 0, r.stderr
    assert str(out).encode() in r.stdout
    fsck = subprocess.run(["e2fsck", "-fn", str(out)], capture_output=True)
    assert fsck.returncode == 0, fsck.stdout
    ls = subprocess.run(["debugfs", "-R", "ls -l /bin", str(out)], capture_output=True, text=True)
    assert "busybox" in ls.stdout
    r = ctl(env, "rootfs", "create", "cli/bb:1", str(out))
    assert r.returncode == 1 and b"exists" in r.stderr


def test_run_interactive_tty_in_tmux(env):
    """`run -it` in a real terminal (tmux): raw mode, TERM, the window size,
    and a resize reaching the process."""
    import shutil
    import time
    ctl(env, "image", "load", "-i", env.archive, "--name", "cli/bb:1")
    session = "vsl" + os.path.basename(env.tmp)[-6:]
    cmd = f"{VESSELCTL} --host {env.address} run -it --rm --name tty1 cli/bb:1 sh"
    tmux = shutil.which("tmux")
    subprocess.run([tmux, "new-session", "-d", "-s", session, "-x", "100", "-y", "30", cmd],
                   check=True)

    def screen():
        return subprocess.run([tmux, "capture-pane", "-p", "-t", session], capture_output=True,
                              text=True).stdout

    def wait_for(text, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in screen():
                return True
            time.sleep(0.2)
        return False
    try:
        assert wait_for("#"), screen()  # the shell prompt in the container
        subprocess.run([tmux, "send-keys", "-t", session, "echo T=$TERM; stty size", "Enter"])
        assert wait_for("T=xterm"), screen()
        assert wait_for("30 100") or wait_for("29 100"), screen()
        subprocess.run([tmux, "resize-window", "-t", session, "-x", "120", "-y", "40"])
        time.sleep(1)
        subprocess.run([tmux, "send-keys", "-t", session, "stty size", "Enter"])
        assert wait_for("40 120") or wait_for("39 120"), screen()
        subprocess.run([tmux, "send-keys", "-t", session, "exit", "Enter"])
    finally:
        subprocess.run([tmux, "kill-session", "-t", session], capture_output=True)


def test_unknown_flags_are_usage_errors(env):
    """'Unknown flags are errors everywhere'."""
    for args in [["ps", "--bogus"], ["inspect", "--x", "y"], ["version", "-q"],
                 ["system", "info", "--nope"], ["image", "ls", "--x"], ["image", "prune", "-z"],
                 ["stats", "-v", "y"], ["run", "--bogus", "img"], ["logout", "--all"]]:
        r = ctl(env, *args)
        assert r.returncode == 2 and b"unknown flag" in r.stderr, (args, r.stderr)


def test_json_for_version_and_events_fields(env):
    doc = json.loads(ctl(env, "--json", "version").stdout)
    assert doc["clientVersion"] and doc["server"]["apiVersion"], doc


def test_exit_codes_of_run_and_exec(env):
    """125 not created or started, 126 cannot invoke, 127 not found (as
    Docker); --help says so."""
    ctl(env, "image", "load", "-i", env.archive, "--name", "cli/codes:1")
    assert ctl(env, "run", "--rm", "cli/codes:1", "/no/such/binary").returncode == 127
    assert ctl(env, "run", "--rm", "cli/codes:1", "/etc/passwd").returncode == 126
    assert ctl(env, "run", "--rm", "cli/codes:1", "sh", "-c", "exit 3").returncode == 3
    assert ctl(env, "run", "no/such:image").returncode == 125
    assert b"127 the command" in ctl(env, "--help").stdout


def test_unavailable_hint_only_when_vesseld_is_unreachable(env, tmp_path):
    """'(is vesseld running?)' when vesseld cannot be reached, not after an
    UNAVAILABLE vesseld answered (a registry out of reach)."""
    r = ctl(env, "image", "pull", "127.0.0.1:9/none/such:1")
    assert r.returncode == 1 and b"UNAVAILABLE" in r.stderr and b"vesseld running" not in r.stderr, \
        r.stderr
    r = subprocess.run([VESSELCTL, "--host", f"unix://{tmp_path}/none.sock", "ps"],
                       capture_output=True, timeout=60)
    assert r.returncode == 1 and b"is vesseld running" in r.stderr, r.stderr


def test_image_load_names(env, tmp_path):
    """load uses the name the archive's index gives; an unnamed image is
    printed as a reference run accepts; an invalid --name is refused."""
    from oci_layout import Layout, busybox_layer
    lay = Layout(str(tmp_path / "named"))
    lay.tag(lay.image([busybox_layer()]), "cli/named:3")
    named = tmp_path / "named.tar"
    named.write_bytes(lay.archive())
    r = ctl(env, "image", "load", "-i", str(named))
    assert r.returncode == 0 and r.stdout == b"loaded docker.io/cli/named:3\n", r
    r = ctl(env, "image", "load", "-i", env.archive)  # its index names a tag only
    ref = r.stdout.decode().split()[-1]
    assert r.returncode == 0 and ref.startswith("sha256:"), r
    r = ctl(env, "run", "--rm", ref, "echo", "ran-by-digest")
    assert r.returncode == 0 and r.stdout == b"ran-by-digest\n", r
    r = ctl(env, "image", "load", "-i", env.archive, "--name", "Bad Name!")
    assert r.returncode == 1 and b"INVALID_ARGUMENT" in r.stderr, r


def test_pods(env):
    """vesselctl pod create|ls|inspect|stats|stop|rm and run --pod."""
    ctl(env, "image", "load", "-i", env.archive, "--name", "cli/bb:1")
    r = ctl(env, "pod", "create", "--name", "cp1", "--hostname", "cliphost", "--slots", "2",
            "-l", "team=x")
    assert r.returncode == 0 and r.stdout == b"cp1\n", r.stderr
    r = ctl(env, "run", "--rm", "--pod", "cp1", "cli/bb:1", "hostname")
    assert (r.returncode, r.stdout) == (0, b"cliphost\n"), r.stderr
    assert ctl(env, "create", "--pod", "cp1", "--name", "inpod", "cli/bb:1", "sleep", "60").returncode == 0
    assert ctl(env, "start", "inpod").returncode == 0
    listed = ctl(env, "pod", "ls").stdout.decode()
    assert "cp1" in listed and "1/2" in listed and "cliphost" in listed, listed
    doc = json.loads(ctl(env, "pod", "inspect", "cp1").stdout)
    assert doc["id"] == "cp1" and doc["containerIds"] == ["inpod"] and doc["labels"] == {"team": "x"}
    stats = json.loads(ctl(env, "pod", "stats", "cp1").stdout)
    assert [s["containerId"] for s in stats["containers"]] == ["inpod"], stats
    assert json.loads(ctl(env, "inspect", "inpod").stdout)["podId"] == "cp1"
    assert ctl(env, "update", "--memory", "100000000", "inpod").returncode == 0
    assert json.loads(ctl(env, "inspect", "inpod").stdout)["resources"]["memoryBytes"] == "100000000"
    r = ctl(env, "pod", "rm", "cp1")  # it has a container
    assert r.returncode == 1 and b"FAILED_PRECONDITION" in r.stderr, r.stderr
    assert ctl(env, "pod", "stop", "-t", "1", "cp1").returncode == 0
    assert json.loads(ctl(env, "pod", "inspect", "cp1").stdout)["state"] == "POD_STATE_STOPPED"
    assert ctl(env, "pod", "rm", "-f", "cp1").returncode == 0
    r = ctl(env, "pod", "inspect", "cp1")
    assert r.returncode == 1 and b"NOT_FOUND" in r.stderr


def complete(shell_cmd: list[str], script: str, words: list[str]) -> list[str]:
    """COMPREPLY of vesselctl's completion function for words (the last is
    the one being completed)."""
    arr = " ".join(f"'{w}'" for w in words)
    prog = (f"{script}; COMP_WORDS=({arr}); COMP_CWORD={len(words) - 1}; _vesselctl; "
            "echo \"${COMPREPLY[@]}\"")
    out = subprocess.run([*shell_cmd, prog], capture_output=True, text=True, check=True)
    got = out.stdout.split()
    if shell_cmd[0] == "zsh":  # bashcompinit leaves matching the typed prefix to zsh itself
        got = [w for w in got if w.startswith(words[-1])]
    return got


def test_completion_from_the_verb_table():
    """`vesselctl completion bash|zsh`: verbs, sub-commands, flags."""
    for shell, cmd in (("bash", ["bash", "-c"]), ("zsh", ["zsh", "-c"])):
        script = f"source <({VESSELCTL} completion {shell})"
        if shell == "zsh":  # as bashcompinit calls it: arrays from 0
            script += "; setopt ksharrays"
        assert complete(cmd, script, ["vesselctl", "im"]) == ["image", "images"], shell
        assert complete(cmd, script, ["vesselctl", "--host", "unix:///x", "image", "p"]) == \
            ["pull", "push", "prune"], shell
        assert complete(cmd, script, ["vesselctl", "pod", ""]) == \
            ["create", "ls", "inspect", "stop", "rm", "stats"], shell
        assert complete(cmd, script, ["vesselctl", "ps", "-"]) == ["-a", "--all"], shell
        assert complete(cmd, script, ["vesselctl", "--js"]) == ["--json"], shell
    bad = subprocess.run([VESSELCTL, "completion", "fish"], capture_output=True, text=True)
    assert bad.returncode == 2 and "bash or zsh" in bad.stderr


def test_json_is_protobufs_own_mapping(env):
    """--json prints the proto3 JSON mapping: what protobuf's json_format
    (and grpcurl) make of the same message, key for key."""
    from google.protobuf import json_format
    import vessel
    from vessel.v1 import containers_pb2 as cp, system_pb2
    ctl(env, "image", "load", "-i", env.archive, "--name", "cli/pj:1")
    ctl(env, "create", "--name", "pj", "-e", "A=1", "--memory", "300000000", "cli/pj:1", "sleep", "5")
    with vessel.Client(env.address) as c:
        want_ct = json_format.MessageToDict(c.stubs.containers.Inspect(
            cp.ContainersInspectRequest(container_id="pj")).container)
        want_ps = json_format.MessageToDict(c.stubs.containers.List(cp.ContainersListRequest(all=True)))
        want_v = json_format.MessageToDict(c.stubs.system.Version(system_pb2.SystemVersionRequest()))
    got_ct = json.loads(ctl(env, "inspect", "pj").stdout)
    assert got_ct == want_ct
    assert got_ct["resources"]["memoryBytes"] == "300000000"  # 64-bit: a string
    assert got_ct["state"] == "CONTAINER_STATE_CREATED" and "createdAt" in got_ct
    assert json.loads(ctl(env, "--json", "ps", "-a").stdout) == want_ps
    assert json.loads(ctl(env, "--json", "version").stdout)["server"] == want_v
    assert ctl(env, "rm", "-f", "pj").returncode == 0
