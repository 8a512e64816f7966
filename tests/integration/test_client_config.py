"""Which vesseld a client reaches, alike in vesselctl, the Python client
(vessel.from_env) and the Go client (vessel.FromEnv): VESSEL_HOST (with
VESSEL_TLS_*), VESSEL_CONTEXT, the current context of the contexts file
that `vesselctl context` writes, and a flag or argument before all of them.
Two real vesselds, one on a unix socket, one on TCP with mutual TLS; each
client says which one answered by its root directory (System.Info).

Also the clients used from outside this checkout: a Go program in a module
of its own (a replace directive pointing at the checkout, built offline),
and the Python wheel built with `python3 -m build` and installed into a
fresh venv, each run against a real vesseld."""
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest

from vesseld import Vesseld, make_certs

VESSELCTL = os.environ.get("VESSELCTL", "")
# The checkout itself (the runfiles tree holds symlinks into it).
SRC = os.path.realpath(os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", ".."))
GO = shutil.which("go") or "/usr/local/go/bin/go"
CLIENTS = ["vesselctl", "python", "go"]

# What the Python client does for this test: from_env, then Info and Version.
PY_PROBE = r"""
import sys
import vessel
args = dict(a.split("=", 1) for a in sys.argv[1:])
try:
    client = vessel.from_env(host=args.get("host"), context=args.get("context"), timeout=30)
except vessel.ConfigError as e:
    print(e, file=sys.stderr)
    sys.exit(2)
with client:
    print("root=" + client.info().root_dir)
    print("api=" + client.version().api_version)
    print("module=" + vessel.__file__)
"""


class World:
    """The two vesselds, their certificates and a home for the clients."""

    def __init__(self, unix_d, tcp_d, certs, goprobe, tmp):
        self.unix, self.tcp, self.certs, self.goprobe, self.tmp = unix_d, tcp_d, certs, goprobe, tmp

    def tls_env(self):
        return {"VESSEL_TLS_CA": f"{self.certs}/ca.pem", "VESSEL_TLS_CERT": f"{self.certs}/client.pem",
                "VESSEL_TLS_KEY": f"{self.certs}/client.key"}


def go_env(**extra):
    """Go offline: modules only from the cache bazel/setup.sh filled."""
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOTOOLCHAIN": "local"}
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":" + os.path.dirname(GO)
    return {**env, **extra}


def build_go_probe(where) -> str:
    """tests/integration/clientprobe as a module of its own outside the
    checkout, as clients/go/README.md tells a user to do it."""
    mod = os.path.join(where, "probe")
    os.makedirs(mod)
    shutil.copy(os.path.join(SRC, "tests", "integration", "clientprobe", "main.go"), mod)
    client = os.path.join(SRC, "clients", "go")
    run = dict(cwd=mod, env=go_env(), capture_output=True, text=True, timeout=900)
    for cmd in (["mod", "init", "example.com/probe"],
                ["mod", "edit", "-require=github.com/vessel/vessel/clients/go@v0.0.0",
                 f"-replace=github.com/vessel/vessel/clients/go={client}"]):
        r = subprocess.run([GO, *cmd], **run)
        assert r.returncode == 0, r.stderr
    # Offline there is no checksum database: the client module's go.sum
    # vouches for the modules both use.
    shutil.copy(os.path.join(client, "go.sum"), mod)
    r = subprocess.run([GO, "build", "-o", "probe", "."], **run)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(mod, "go.mod")) as f:
        gomod = f.read()
    assert f"=> {client}" in gomod and "google.golang.org/grpc" in gomod, gomod
    return os.path.join(mod, "probe")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("cfg"))
    assert not tmp.startswith(SRC + "/")
    certs = make_certs(os.path.join(tmp, "certs"))
    goprobe = build_go_probe(tmp)
    with Vesseld() as unix_d, Vesseld(tcp=True, certs=certs) as tcp_d:
        assert tcp_d.tcp_address.startswith("tcp://127.0.0.1:") and unix_d.root != tcp_d.root
        yield World(unix_d, tcp_d, certs, goprobe, tmp)


@pytest.fixture
def home(tmp_path):
    """A HOME of the test's own (the contexts file goes to its ~/.config)."""
    h = tmp_path / "home"
    h.mkdir()
    return str(h)


def client_env(home, **env):
    """Only what is given: no VESSEL_* of the caller leaks in."""
    out = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
           "PYTHONDONTWRITEBYTECODE": "1"}
    out.update({k: v for k, v in env.items() if v is not None})
    return out


def ask(world, client, env, host=None, context=None):
    """Runs one client; (exit code, root dir of the answering vesseld or
    None, stderr)."""
    if client == "vesselctl":
        argv = [VESSELCTL] + (["--host", host] if host else []) + \
            (["--context", context] if context else []) + ["--json", "system", "info"]
    elif client == "python":
        argv = [sys.executable, "-c", PY_PROBE] + ([f"host={host}"] if host else []) + \
            ([f"context={context}"] if context else [])
        env = {**env, "PYTHONPATH": os.path.join(SRC, "clients", "python")}
    else:
        argv = [world.goprobe] + (["-host", host] if host else []) + \
            (["-context", context] if context else [])
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    root = None
    if r.returncode == 0:
        if client == "vesselctl":
            root = json.loads(r.stdout)["rootDir"]
        else:
            root = dict(line.split("=", 1) for line in r.stdout.split())["root"]
    return r.returncode, root, r.stderr


def ctl(home, *args, **env):
    return subprocess.run([VESSELCTL, *args], env=client_env(home, **env), capture_output=True,
                          text=True, timeout=60)


def make_contexts(world, home, current="a"):
    """Contexts a (the unix vesseld) and b (the TCP one, relative TLS paths
    given from the certificates' directory), written by vesselctl."""
    r = ctl(home, "context", "create", "a", "--host", world.unix.address)
    assert r.returncode == 0 and r.stdout == "a\n", r.stderr
    r = subprocess.run([VESSELCTL, "context", "create", "b", "--host", world.tcp.tcp_address,
                        "--tls-ca", "ca.pem", "--tls-cert", "client.pem", "--tls-key", "client.key"],
                       cwd=world.certs, env=client_env(home), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if current:
        assert ctl(home, "context", "use", current).returncode == 0
    return os.path.join(home, ".config", "vessel", "config")


# ---------------------------------------------------------------------------
# The routes, each client alike
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("client", CLIENTS)
def test_vessel_host_with_vessel_tls(world, client, home):
    A, B = world.unix.root, world.tcp.root
    assert ask(world, client, client_env(home, VESSEL_HOST=world.unix.address))[:2] == (0, A)
    env = client_env(home, VESSEL_HOST=world.tcp.tcp_address, **world.tls_env())
    assert ask(world, client, env)[:2] == (0, B)
    if not os.path.exists("/run/vessel/vessel.sock"):
        # Nothing set, no file: the default socket, which is not there.
        rc, _, err = ask(world, client, client_env(home))
        assert rc == 1 and "/run/vessel/vessel.sock" in err, err
    # TCP without TLS files: refused before dialling, naming the way out.
    rc, _, err = ask(world, client, client_env(home, VESSEL_HOST=world.tcp.tcp_address))
    assert rc == 2 and "(from VESSEL_HOST) is TCP: vesseld requires mutual TLS" in err, err
    assert "VESSEL_TLS_CA" in err


@pytest.mark.parametrize("client", CLIENTS)
def test_contexts_file_written_by_vesselctl(world, client, home):
    A, B = world.unix.root, world.tcp.root
    make_contexts(world, home, current="a")
    env = client_env(home)
    assert ask(world, client, env)[:2] == (0, A)                      # current context
    assert ask(world, client, {**env, "VESSEL_CONTEXT": "b"})[:2] == (0, B)  # beats current
    both = {**env, "VESSEL_CONTEXT": "b", "VESSEL_HOST": world.unix.address}
    assert ask(world, client, both)[:2] == (0, A)                     # VESSEL_HOST beats it
    assert ask(world, client, both, context="b")[:2] == (0, B)        # a flag beats both
    assert ask(world, client, {**env, "VESSEL_CONTEXT": "b"}, host=world.unix.address)[:2] == (0, A)
    if not os.path.exists("/run/vessel/vessel.sock"):  # "default": the default socket
        rc, _, err = ask(world, client, {**env, "VESSEL_CONTEXT": "a"}, context="default")
        assert rc == 1 and "/run/vessel/vessel.sock" in err, err
    assert ctl(home, "context", "use", "b").returncode == 0
    assert ask(world, client, env)[:2] == (0, B)                      # the new current one


@pytest.mark.parametrize("client", CLIENTS)
def test_context_server_name_is_checked(world, client, home):
    """A context's server_name is the name checked in vesseld's certificate
    (valid for localhost and 127.0.0.1, not for other.example)."""
    for name, sni in (("ok", "localhost"), ("bad", "other.example")):
        r = ctl(home, "context", "create", name, "--host", world.tcp.tcp_address,
                "--tls-ca", f"{world.certs}/ca.pem", "--tls-cert", f"{world.certs}/client.pem",
                "--tls-key", f"{world.certs}/client.key", "--tls-server-name", sni)
        assert r.returncode == 0, r.stderr
    assert ask(world, client, client_env(home), context="ok")[:2] == (0, world.tcp.root)
    rc, root, err = ask(world, client, client_env(home), context="bad")
    assert (rc, root) == (1, None), err


@pytest.mark.parametrize("client", CLIENTS)
def test_xdg_config_home_is_honoured(world, client, home, tmp_path):
    make_contexts(world, home, current="a")
    xdg = tmp_path / "xdg"
    (xdg / "vessel").mkdir(parents=True)
    path = os.path.join(home, ".config", "vessel", "config")
    with open(path) as f:
        doc = json.load(f)
    doc["current"] = "b"
    (xdg / "vessel" / "config").write_text(json.dumps(doc))
    assert ask(world, client, client_env(home))[1] == world.unix.root
    assert ask(world, client, client_env(home, XDG_CONFIG_HOME=str(xdg)))[1] == world.tcp.root
    # vesselctl writes there too
    r = ctl(home, "context", "use", "a", XDG_CONFIG_HOME=str(xdg))
    assert r.returncode == 0
    assert json.loads((xdg / "vessel" / "config").read_text())["current"] == "a"


@pytest.mark.parametrize("client", CLIENTS)
def test_errors_name_the_problem(world, client, home):
    path = make_contexts(world, home, current=None)
    env = client_env(home)
    rc, _, err = ask(world, client, {**env, "VESSEL_CONTEXT": "nope"})
    assert rc == 2 and f'VESSEL_CONTEXT: unknown context "nope": {path} defines a, b' in err, err
    rc, _, err = ask(world, client, env, context="nope")
    assert rc == 2 and 'unknown context "nope"' in err, err
    rc, _, err = ask(world, client, env, host=world.unix.address, context="a")
    assert rc == 2 and "not both" in err, err
    with open(path, "w") as f:
        f.write('{"current": "gone"}')
    rc, _, err = ask(world, client, env)
    assert rc == 2 and 'the current context: unknown context "gone"' in err, err
    with open(path, "w") as f:
        f.write('{"contexts": {"a": {"host": "unix:///x"},')
    rc, _, err = ask(world, client, env)
    assert rc == 2 and f"{path}: malformed contexts file" in err, err
    # An address given outright does not read the broken file.
    assert ask(world, client, {**env, "VESSEL_HOST": world.unix.address})[:2] == (0, world.unix.root)
    with open(path, "w") as f:
        f.write('{"contexts": {"a": {"host": "http://x:1"}}}')
    rc, _, err = ask(world, client, {**env, "VESSEL_CONTEXT": "a"})
    assert rc == 2 and f'{path}: context "a": host "http://x:1" must be unix:///path or ' \
        "tcp://host:port" in err, err


# ---------------------------------------------------------------------------
# vesselctl context
# ---------------------------------------------------------------------------

def test_vesselctl_context_verbs(world, home):
    path = make_contexts(world, home, current="b")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    with open(path) as f:
        doc = json.load(f)
    # relative TLS paths were made absolute: the context works from anywhere
    assert doc["contexts"]["b"]["tls_ca"] == os.path.realpath(f"{world.certs}/ca.pem")
    assert doc["current"] == "b"

    lines = ctl(home, "context", "ls").stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "HOST"]
    rows = {ln.split()[0]: ln for ln in lines[1:]}
    assert set(rows) == {"default", "a", "b"}
    assert "*" in rows["b"].split() and "*" not in rows["a"].split()
    assert world.unix.address in rows["a"] and "/run/vessel/vessel.sock" in rows["default"]
    listed = json.loads(ctl(home, "--json", "context", "ls").stdout)
    assert listed["current"] == "b" and listed["path"] == path
    assert [(c["name"], c["current"]) for c in listed["contexts"]] == \
        [("default", False), ("a", False), ("b", True)]
    assert listed["contexts"][2]["tlsCert"] == os.path.realpath(f"{world.certs}/client.pem")
    # VESSEL_CONTEXT marks the one in use; VESSEL_HOST overriding is said
    listed = json.loads(ctl(home, "--json", "context", "ls", VESSEL_CONTEXT="a").stdout)
    assert [c["name"] for c in listed["contexts"] if c["current"]] == ["a"]
    r = ctl(home, "context", "use", "a", VESSEL_HOST=world.unix.address)
    assert r.returncode == 0 and "VESSEL_HOST" in r.stderr and "overrides" in r.stderr

    # refusals, each naming the problem; the file is left as it was
    with open(path) as f:
        before = f.read()
    for args, code, words in [
        (["create", "a", "--host", "unix:///x"], 1, 'context "a" already exists'),
        (["create", "default", "--host", "unix:///x"], 1, '"default" is the default socket'),
        (["create", "b@d", "--host", "unix:///x"], 1, 'context name "b@d"'),
        (["create", "c", "--host", "http://x"], 1, "must be unix:///path or tcp://host:port"),
        (["create", "c", "--host", world.tcp.tcp_address], 2, "give --tls-ca, --tls-cert and --tls-key"),
        (["create", "c", "--host", world.tcp.tcp_address, "--tls-ca", "/no/ca.pem", "--tls-cert",
          "/no/c.pem", "--tls-key", "/no/c.key"], 1, "--tls-ca /no/ca.pem: No such file"),
        (["create", "c", "--host", "unix:///x", "--tls-ca", f"{world.certs}/ca.pem"], 1,
         "TLS files are for tcp:// hosts"),
        (["create", "c"], 2, "give --host"),
        (["create", "c", "--bogus", "x"], 2, "unknown flag --bogus"),
        (["use", "nope"], 1, 'unknown context "nope"'),
        (["rm", "a", "nope"], 1, 'unknown context "nope"'),
        (["frob"], 2, "usage: vesselctl context"),
    ]:
        r = ctl(home, "context", *args)
        assert (r.returncode, words in r.stderr) == (code, True), (args, r.returncode, r.stderr)
    with open(path) as f:
        assert f.read() == before

    # rm: the current one removed, the default socket is current again
    assert ctl(home, "context", "use", "b").returncode == 0
    r = ctl(home, "context", "rm", "b")
    assert r.returncode == 0 and r.stdout == "b\n"
    listed = json.loads(ctl(home, "--json", "context", "ls").stdout)
    assert [c["name"] for c in listed["contexts"] if c["current"]] == ["default"]
    assert "b" not in json.load(open(path))["contexts"]
    # a broken file: every context verb says where
    with open(path, "w") as f:
        f.write("[")
    r = ctl(home, "context", "ls")
    assert r.returncode == 1 and f"{path}: malformed contexts file" in r.stderr
    # the unreachable hint says where the address came from
    os.remove(path)
    make_contexts(world, home, current=None)
    assert ctl(home, "context", "create", "gone", "--host", f"unix://{home}/none.sock").returncode == 0
    r = ctl(home, "version", VESSEL_CONTEXT="gone")
    assert r.returncode == 1 and 'is vesseld running? address from context "gone" (VESSEL_CONTEXT)' \
        in r.stderr, r.stderr


def test_completion_knows_context():
    script = (f"source <({VESSELCTL} completion bash); COMP_WORDS=(vesselctl {{}}); "
              "COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _vesselctl; echo ${COMPREPLY[@]}")
    def complete(words):
        return subprocess.run(["bash", "-c", script.replace("{}", words)], capture_output=True,
                              text=True, check=True).stdout.split()
    assert complete("cont") == ["context"]
    assert complete('context ""') == ["ls", "use", "create", "rm"]
    assert complete("--cont") == ["--context"]
    assert complete('--context x ps -') == ["-a", "--all"]


# ---------------------------------------------------------------------------
# The clients from outside the checkout
# ---------------------------------------------------------------------------

def test_go_program_in_a_module_of_its_own(world, home):
    """The module fixture built tests/integration/clientprobe in a temp dir
    with `replace` -> the checkout, offline (GOPROXY=off); it runs against
    the TCP vesseld by a context, and by VESSEL_HOST."""
    assert not world.goprobe.startswith(SRC + "/")
    make_contexts(world, home, current="b")
    r = subprocess.run([world.goprobe], env=client_env(home), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    got = dict(line.split("=", 1) for line in r.stdout.split())
    assert got == {"root": world.tcp.root, "api": "vessel.v1"}
    # go.mod was completed by the build and now builds read-only, as a user's would
    mod = os.path.dirname(world.goprobe)
    r = subprocess.run([GO, "build", "-o", "probe2", "."], cwd=mod,
                       env=go_env(GOFLAGS="-mod=readonly"), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr


def test_python_wheel_in_a_fresh_venv(world, home, tmp_path):
    """python3 -m build (Debian's python3-build, setuptools, no download)
    makes a wheel of a copy of clients/python; a venv outside the checkout
    installs it with pip --no-index (grpcio and protobuf from Debian's
    packages through --system-site-packages) and uses it."""
    src = tmp_path / "src"
    shutil.copytree(os.path.join(SRC, "clients", "python"), src,
                    ignore=shutil.ignore_patterns("__pycache__", "BUILD", "tests"))
    dist = tmp_path / "dist"
    r = subprocess.run(["/usr/bin/python3", "-m", "build", "--wheel", "--no-isolation",
                        "--outdir", str(dist), str(src)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    wheels = list(dist.glob("vessel-*-py3-none-any.whl"))
    assert len(wheels) == 1, list(dist.iterdir())
    names = zipfile.ZipFile(wheels[0]).namelist()
    for f in ["vessel/__init__.py", "vessel/config.py", "vessel/py.typed",
              "vessel/v1/system_pb2_grpc.py"]:
        assert f in names, f
    assert not [n for n in names if n.startswith("tests/")]

    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index",
                          str(wheels[0])], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert pip.returncode == 0, pip.stderr

    make_contexts(world, home, current="a")
    env = client_env(home, VESSEL_CONTEXT="b")
    run = tmp_path / "elsewhere"
    run.mkdir()
    r = subprocess.run([str(venv / "bin" / "python"), "-c", PY_PROBE], cwd=str(run), env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = dict(line.split("=", 1) for line in r.stdout.split())
    assert got["root"] == world.tcp.root and got["api"] == "vessel.v1"
    assert got["module"].startswith(str(venv) + "/"), got  # the installed copy, not the tree
