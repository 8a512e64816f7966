"""vessel.config without a daemon: the shared cases of
clients/testdata/config_cases.json (vesselctl and the Go client run the same
ones), the file's path, and from_env building the client it resolved."""
import json
import os

import pytest

import vessel
from vessel import config

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = json.load(open(os.path.join(HERE, "..", "..", "testdata", "config_cases.json")))["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_shared_case(case, tmp_path):
    d = tmp_path / "vessel"
    path = str(d / "config")
    if "file" in case or "file_text" in case:
        d.mkdir()
        (d / "config").write_text(case["file_text"] if "file_text" in case
                                  else json.dumps(case["file"]))
    tls = None
    if case.get("tls"):
        t = case["tls"]
        tls = vessel.TLS(t.get("ca"), t.get("cert"), t.get("key"))
    args = dict(host=case.get("host"), context=case.get("context"), tls=tls,
                environ=case.get("env", {}), path=path)
    if "error" in case:
        with pytest.raises(vessel.ConfigError) as e:
            vessel.resolve(**args)
        assert case["error"].replace("CONFIG", path) in str(e.value)
        return
    ep = vessel.resolve(**args)
    want = {k: v.replace("DIR", str(d)) for k, v in case["want"].items()}
    assert ep.host == want["host"]
    got_tls = ep.tls or vessel.TLS(None)
    assert (got_tls.ca_file or "", got_tls.cert_file or "", got_tls.key_file or "",
            got_tls.server_name or "") == \
        (want.get("tls_ca", ""), want.get("tls_cert", ""), want.get("tls_key", ""),
         want.get("server_name", ""))
    if "source" in want:
        assert ep.source == want["source"]


def test_config_path_xdg_then_home():
    assert config.config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == "/x/vessel/config"
    assert config.config_path({"XDG_CONFIG_HOME": "rel", "HOME": "/h"}) == "/h/.config/vessel/config"
    assert config.config_path({"HOME": "/h"}) == "/h/.config/vessel/config"
    assert config.config_path({}) is None
    # Without a file to read, the default still resolves; a context cannot.
    assert vessel.resolve(environ={}).host == vessel.DEFAULT_ADDRESS
    with pytest.raises(vessel.ConfigError, match="no contexts file"):
        vessel.resolve(environ={"VESSEL_CONTEXT": "lab"})


def test_resolve_reads_the_file_under_xdg_config_home(tmp_path):
    (tmp_path / "vessel").mkdir()
    (tmp_path / "vessel" / "config").write_text(json.dumps(
        {"current": "a", "contexts": {"a": {"host": "unix:///a.sock"}}}))
    ep = vessel.resolve(environ={"XDG_CONFIG_HOME": str(tmp_path), "HOME": "/nonexistent"})
    assert (ep.host, ep.source) == ("unix:///a.sock", 'context "a" (the current context)')


def test_from_env_builds_the_resolved_client(tmp_path):
    with vessel.from_env(environ={"VESSEL_HOST": "unix:///tmp/none.sock"}, timeout=1) as c:
        assert c.address == "unix:///tmp/none.sock"
        with pytest.raises(vessel.UnavailableError):
            c.version()
    with vessel.from_env(host="unix:///tmp/explicit.sock",
                         environ={"VESSEL_HOST": "unix:///tmp/env.sock"}) as c:
        assert c.address == "unix:///tmp/explicit.sock"
    # insecure=True lets TCP go without TLS (vesseld --insecure-tcp), nothing else does
    with vessel.from_env(host="tcp://127.0.0.1:1", insecure=True, environ={}) as c:
        assert c.address == "tcp://127.0.0.1:1"
    with pytest.raises(vessel.ConfigError, match="requires mutual TLS"):
        vessel.from_env(host="tcp://127.0.0.1:1", environ={})
