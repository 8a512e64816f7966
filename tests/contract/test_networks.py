"""Networks as proto/vessel/v1/networks.proto promises them: isolated from
each other. Real vesseld and VMs, in a network namespace of its own."""
import time

import grpc
import pytest

import vessel
from contract import IMAGE


# wget without -T (busybox 1.35 crashes with it): given up after 4 s here.
FETCH = ("wget -qO- http://{ip}/index.html > /tmp/o 2>&1 & p=$!; "
         "i=0; while [ $i -lt 20 ] && kill -0 $p 2>/dev/null; do sleep 0.2; i=$((i+1)); done; "
         "kill $p 2>/dev/null; cat /tmp/o; echo end")


def fetch_from(c, network, ip):
    r = c.containers.run(IMAGE, ["sh", "-c", FETCH.format(ip=ip)], networks=[network])
    return r.stdout


def test_networks_are_isolated_from_each_other(c):
    """'a container reaches the containers of its own network ... never a
    container on another network'; the host reaches both."""
    c.networks.create("iso-a")
    c.networks.create("iso-b")
    web = c.containers.create(IMAGE, ["httpd", "-f", "-p", "80", "-h", "/var/www"],
                              networks=["iso-a"])
    try:
        web.start()
        ip = web.reload().networks[0].ip_address
        same = b""
        for _ in range(20):  # httpd needs a moment to listen
            same = fetch_from(c, "iso-a", ip)
            if b"hello over the bridge" in same:
                break
            time.sleep(0.5)
        assert b"hello over the bridge" in same, same
        other = fetch_from(c, "iso-b", ip)
        assert b"hello" not in other and other.endswith(b"end\n"), other
        other = fetch_from(c, "default", ip)
        assert b"hello" not in other, other
        host = c.daemon.in_netns("/usr/bin/python3", "-c",
                                 "import urllib.request,sys; sys.stdout.buffer.write("
                                 f"urllib.request.urlopen('http://{ip}/index.html', timeout=10).read())",
                                 capture_output=True)
        assert host.stdout == b"hello over the bridge\n", host.stderr
    finally:
        web.delete(force=True)
        c.networks.delete("iso-a")
        c.networks.delete("iso-b")


def test_default_resolv_conf_names_the_hosts_resolvers(c):
    """ContainersCreateRequest.dns: 'absent = the host's resolvers ...
    loopback addresses left out'; given, exactly that."""
    want = []
    with open("/etc/resolv.conf") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 1 and parts[0] == "nameserver" and \
                    not parts[1].startswith("127.") and parts[1] != "::1":
                want.append(parts[1])
    r = c.containers.run(IMAGE, ["cat", "/etc/resolv.conf"])
    got = [l.split()[1] for l in r.stdout.decode().splitlines() if l.startswith("nameserver")]
    assert got == want[:3], r.stdout
    from vessel.v1 import types_pb2
    r = c.containers.run(IMAGE, ["cat", "/etc/resolv.conf"],
                         dns=types_pb2.Dns(nameservers=["10.9.8.7"], search=["example.test"]))
    assert b"nameserver 10.9.8.7" in r.stdout and b"example.test" in r.stdout, r.stdout


def test_what_is_not_there_yet_is_unimplemented_naming_the_field(c):
    """More than one network, and UDP ports: UNIMPLEMENTED naming the field."""
    c.networks.create("iso-c")
    try:
        for kw, field in [(dict(networks=["default", "iso-c"]), "networks"),
                          (dict(ports={"53/udp": 0}), "protocol")]:
            with pytest.raises(vessel.VesselError) as e:
                c.containers.create(IMAGE, ["true"], **kw)
            assert e.value.code == grpc.StatusCode.UNIMPLEMENTED and field in str(e.value), e.value
    finally:
        c.networks.delete("iso-c")
