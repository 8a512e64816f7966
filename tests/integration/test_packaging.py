"""packaging/: install.sh into a scratch PREFIX and SYSCONFDIR, the
installed unit checked by systemd-analyze verify (which checks that its
ExecStart binary exists), and the installed vesseld started as the unit
starts it: its config file honoured (root, listen, kernel), readiness and
stopping told to systemd's notify socket, flags winning over the file."""
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

import vessel

HERE = os.path.dirname(os.path.abspath(__file__))
INSTALL = os.path.join(HERE, "..", "..", "packaging", "install.sh")


@pytest.fixture(scope="module")
def inst():
    """An installation under a scratch directory; its paths."""
    t = tempfile.mkdtemp(prefix="vsl-pkg-", dir="/tmp")
    r = subprocess.run(["bash", INSTALL], env={**os.environ, "PREFIX": f"{t}/usr",
                                                "SYSCONFDIR": f"{t}/etc"},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    yield {"dir": t, "unit": f"{t}/usr/lib/systemd/system/vesseld.service",
           "conf": f"{t}/etc/vessel/vesseld.conf", "bin": f"{t}/usr/bin/vesseld",
           "share": f"{t}/usr/share/vessel"}
    shutil.rmtree(t, ignore_errors=True)


def exec_start(unit: str) -> list[str]:
    for line in open(unit):
        if line.startswith("ExecStart="):
            return shlex.split(line[len("ExecStart="):])
    raise AssertionError("no ExecStart in " + unit)


def verify(unit: str):
    return subprocess.run(["systemd-analyze", "verify", "--man=no", unit],
                          capture_output=True, text=True, timeout=60)


def test_install_lays_out_the_files(inst):
    for f in ["bin/vesseld", "bin/vesselctl"]:
        assert os.access(f"{inst['dir']}/usr/{f}", os.X_OK), f
    assert os.path.getsize(f"{inst['share']}/vmlinux") > 1 << 20
    assert os.path.getsize(f"{inst['share']}/initramfs.cpio") > 1 << 10
    # The unit and the settings name the installed paths.
    assert exec_start(inst["unit"]) == [inst["bin"], "--config", inst["conf"]]
    conf = open(inst["conf"]).read()
    assert f"kernel = {inst['share']}/vmlinux\n" in conf
    assert "/usr/local/" not in conf


def test_unit_verifies_with_its_binary_in_place(inst):
    r = verify(inst["unit"])
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
    # The check is real: the same unit naming a binary that is not there fails.
    bad = os.path.join(inst["dir"], "bad.service")
    with open(bad, "w") as f:
        f.write(open(inst["unit"]).read().replace(inst["bin"], inst["dir"] + "/none/vesseld"))
    r = verify(bad)
    assert r.returncode != 0 and "is not executable" in r.stderr, r.stderr


def test_second_install_keeps_the_edited_config(inst):
    with open(inst["conf"], "a") as f:
        f.write("# edited\n")
    r = subprocess.run(["bash", INSTALL], env={**os.environ, "PREFIX": f"{inst['dir']}/usr",
                                                "SYSCONFDIR": f"{inst['dir']}/etc"},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert open(inst["conf"]).read().endswith("# edited\n")
    assert os.path.exists(inst["conf"] + ".example")


class Notify:
    """systemd's notify socket, as the service manager offers it."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(30)

    def next(self) -> str:
        return self.sock.recv(4096).decode()

    def close(self):
        self.sock.close()
        os.unlink(self.path)


def run_as_the_unit(inst, tmp, *extra):
    """The unit's ExecStart (plus extra flags) with NOTIFY_SOCKET set;
    returns (process, notify socket) once vesseld said READY=1."""
    notify = Notify(os.path.join(tmp, "notify"))
    p = subprocess.Popen(exec_start(inst["unit"]) + list(extra), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, "NOTIFY_SOCKET": notify.path})
    try:
        msg = notify.next()
    except socket.timeout:
        p.kill()
        raise AssertionError("no READY=1: " + p.communicate()[0])
    assert msg == "READY=1", msg
    return p, notify


def stop(p, notify):
    p.send_signal(signal.SIGTERM)
    assert notify.next() == "STOPPING=1"
    out = p.communicate(timeout=30)[0]
    assert p.returncode == 0, out
    notify.close()
    return out


def test_installed_config_is_honoured(inst):
    tmp = tempfile.mkdtemp(prefix="vsl-cfg-", dir="/tmp")
    try:
        root, sock = f"{tmp}/state", f"{tmp}/from-file.sock"
        # The installed file, edited as an administrator would.
        text = open(inst["conf"]).read()
        text = text.replace("root = /var/lib/vessel", f"root = {root}")
        text = text.replace("listen = unix:///run/vessel/vessel.sock",
                            f'listen = "unix://{sock}"')
        text = text.replace("accel = auto", "accel = tcg")
        with open(inst["conf"], "w") as f:
            f.write(text)
        p, notify = run_as_the_unit(inst, tmp)
        with vessel.Client("unix://" + sock) as c:
            info = c.info()
        out = stop(p, notify)
        assert info.root_dir == root and list(info.listen_addresses) == ["unix://" + sock]
        assert info.accelerator == "tcg" and info.accelerator_reason == "chosen by --accel tcg"
        assert [k.path for k in info.kernels] == [f"{inst['share']}/vmlinux"]
        assert os.path.exists(f"{root}/vesseld.lock") and not os.path.exists(sock)
        assert "ready" in out

        # Flags win: another root and socket; the file's socket stays unused.
        other, osock = f"{tmp}/other", f"{tmp}/flag.sock"
        p, notify = run_as_the_unit(inst, tmp, "--root", other, "--listen", "unix://" + osock)
        try:
            assert not os.path.exists(sock)
            with vessel.Client("unix://" + osock) as c:
                info = c.info()
            assert info.root_dir == other and list(info.listen_addresses) == ["unix://" + osock]
            assert info.accelerator == "tcg"  # the file's, not overridden
        finally:
            stop(p, notify)

        # A bad line: vesseld refuses to start, naming the file and the line.
        lines = text.count("\n")
        with open(inst["conf"], "a") as f:
            f.write("spares = many\n")
        r = subprocess.run(exec_start(inst["unit"]), capture_output=True, text=True, timeout=30)
        assert r.returncode == 2
        assert f"{inst['conf']}:{lines + 1}: --spares many" in r.stderr, r.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
