"""Which vesseld a client reaches: explicit arguments, the VESSEL_*
environment and the contexts file, by the same rules as vesselctl
(clients/cli/clientcfg.h) and the Go client (config.go).

The first of these that is set picks the address:

1. ``host=`` or ``context=`` given to :func:`from_env` / :func:`resolve`,
2. ``VESSEL_HOST`` (TLS files from ``VESSEL_TLS_CA``, ``VESSEL_TLS_CERT``,
   ``VESSEL_TLS_KEY``),
3. ``VESSEL_CONTEXT``, a context of the contexts file,
4. the file's current context,
5. ``unix:///run/vessel/vessel.sock``.

An explicit ``tls=`` replaces the TLS files that came with the address; TLS
applies to tcp:// only. The contexts file is ``$XDG_CONFIG_HOME/vessel/config``
(else ``~/.config/vessel/config``), JSON::

    {"current": "lab",
     "contexts": {"lab": {"host": "tcp://h:7443", "tls_ca": "ca.pem",
                          "tls_cert": "client.pem", "tls_key": "client.key",
                          "server_name": "optional"}}}

Relative TLS paths are relative to the file's directory. ``vesselctl context
create|use|rm`` writes it. The context "default" is the default socket.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Mapping, Optional

from vessel.client import DEFAULT_ADDRESS, TLS, Client

DEFAULT_CONTEXT = "default"
_TLS_KEYS = ("tls_ca", "tls_cert", "tls_key", "server_name")
_HOST = re.compile(r"unix:///.+|tcp://.+:[0-9]{1,5}")


class ConfigError(ValueError):
    """The configuration names no usable vesseld: an unknown context, a
    malformed contexts file (the message names it), a bad host, TCP without
    TLS files."""


@dataclasses.dataclass
class Endpoint:
    """Where to connect: ``host``, ``tls`` (None for unix://) and where the
    address came from (``source``, for messages)."""
    host: str
    tls: Optional[TLS]
    source: str


def config_path(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The contexts file's path (None when neither XDG_CONFIG_HOME nor HOME
    is set). An XDG_CONFIG_HOME that is not absolute is ignored."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg.startswith("/"):
        return os.path.join(xdg, "vessel", "config")
    home = env.get("HOME", "")
    return os.path.join(home, ".config", "vessel", "config") if home else None


def _no_duplicates(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"duplicate key {k!r}")
        seen[k] = v
    return seen


def _malformed(path: str, what: str) -> ConfigError:
    return ConfigError(f"{path}: malformed contexts file: {what}")


def load_contexts(path: str) -> dict:
    """The file as a dict, checked as vesselctl checks it ({} when it does
    not exist). Raises ConfigError naming the path when it is malformed."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise _malformed(path, f"{e.msg} (line {e.lineno}, column {e.colno})") from None
    except ValueError as e:
        raise _malformed(path, str(e)) from None
    if not isinstance(doc, dict):
        raise _malformed(path, "the top level must be an object")
    if doc.get("current") is not None and not isinstance(doc["current"], str):
        raise _malformed(path, '"current" must be a string')
    contexts = doc.get("contexts", {})
    if not isinstance(contexts, dict):
        raise _malformed(path, '"contexts" must be an object')
    for name, c in contexts.items():
        if not isinstance(c, dict):
            raise _malformed(path, f'context "{name}" must be an object')
        if not isinstance(c.get("host"), str):
            raise _malformed(path, f'context "{name}" has no "host" string')
        if not _HOST.fullmatch(c["host"]):
            raise ConfigError(f'{path}: context "{name}": host "{c["host"]}" must be '
                              "unix:///path or tcp://host:port")
        for k in _TLS_KEYS:
            if c.get(k) is not None and not isinstance(c[k], str):
                raise _malformed(path, f'context "{name}": "{k}" must be a string')
    return doc


def _context(name: str, where: str, path: Optional[str]) -> Endpoint:
    source = f'context "{name}" ({where})'
    if name == DEFAULT_CONTEXT:
        return Endpoint(DEFAULT_ADDRESS, None, source)
    if path is None:
        raise ConfigError(f'{where}: unknown context "{name}": no contexts file (neither '
                          "XDG_CONFIG_HOME nor HOME is set)")
    contexts = load_contexts(path).get("contexts", {})
    if name not in contexts:
        known = ", ".join(sorted(contexts))
        raise ConfigError(f'{where}: unknown context "{name}": {path} defines '
                          + (known or "none"))
    c = contexts[name]
    base = os.path.dirname(path)

    def file(key):
        v = c.get(key) or None
        return os.path.join(base, v) if v and not v.startswith("/") else v
    tls = None
    if file("tls_ca") or file("tls_cert") or file("tls_key"):
        tls = TLS(file("tls_ca"), file("tls_cert"), file("tls_key"), c.get("server_name") or None)
    return Endpoint(c["host"], tls, source)


def resolve(host: Optional[str] = None, context: Optional[str] = None,
            tls: Optional[TLS] = None, environ: Optional[Mapping[str, str]] = None,
            path: Optional[str] = None, insecure: bool = False) -> Endpoint:
    """The endpoint these choices, the environment (os.environ unless given)
    and the contexts file (config_path() unless given) lead to. The file is
    read only when a context is needed. insecure: allow tcp:// without TLS
    (a vesseld started with --insecure-tcp)."""
    env = os.environ if environ is None else environ
    if path is None:
        path = config_path(env)
    if host and context:
        raise ConfigError("give host or context, not both")
    if host:
        ep = Endpoint(host, None, "host argument")
    elif context:
        ep = _context(context, "context argument", path)
    elif env.get("VESSEL_HOST"):
        ep = Endpoint(env["VESSEL_HOST"], None, "VESSEL_HOST")
    elif env.get("VESSEL_CONTEXT"):
        ep = _context(env["VESSEL_CONTEXT"], "VESSEL_CONTEXT", path)
    else:
        current = load_contexts(path).get("current") if path else None
        ep = (_context(current, "the current context", path) if current
              else Endpoint(DEFAULT_ADDRESS, None, "the default"))
    if ep.source in ("host argument", "VESSEL_HOST") and env.get("VESSEL_TLS_CA"):
        # an address given outright takes its TLS files from the environment
        ep.tls = TLS(env["VESSEL_TLS_CA"], env.get("VESSEL_TLS_CERT") or None,
                     env.get("VESSEL_TLS_KEY") or None)
    if tls is not None:
        ep.tls = tls
    if not _HOST.fullmatch(ep.host):
        raise ConfigError(f'host "{ep.host}" (from {ep.source}) must be unix:///path or '
                          "tcp://host:port")
    if ep.host.startswith("unix://"):
        ep.tls = None  # a unix socket is local and plaintext
    elif (ep.tls is None or not ep.tls.ca_file) and not insecure:
        raise ConfigError(
            f"{ep.host} (from {ep.source}) is TCP: vesseld requires mutual TLS: give tls=TLS(...) "
            "(or VESSEL_TLS_CA, VESSEL_TLS_CERT and VESSEL_TLS_KEY, or a context's tls_ca, "
            "tls_cert and tls_key)")
    return ep


def from_env(host: Optional[str] = None, context: Optional[str] = None,
             tls: Optional[TLS] = None, insecure: bool = False,
             timeout: Optional[float] = 30.0,
             environ: Optional[Mapping[str, str]] = None) -> Client:
    """A Client of the vesseld that arguments, VESSEL_HOST / VESSEL_CONTEXT
    and the contexts file choose (see the module's doc); as vesselctl does.
    Raises ConfigError when they name no usable vesseld."""
    ep = resolve(host=host, context=context, tls=tls, environ=environ, insecure=insecure)
    return Client(ep.host, tls=ep.tls, insecure=insecure and ep.tls is None, timeout=timeout)
