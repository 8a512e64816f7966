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


def host_resolvers():
    want = []
    with open("/etc/resolv.conf") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 1 and parts[0] == "nameserver" and \
                    not parts[1].startswith("127.") and parts[1] != "::1":
                want.append(parts[1])
    return want[:3]


def test_default_resolv_conf_is_the_networks_dns_or_the_hosts(c):
    """ContainersCreateRequest.dns: 'absent = the network's gateway ... With
    network "none": the host's resolvers (loopback ones left out)'; given,
    exactly that."""
    r = c.containers.run(IMAGE, ["cat", "/etc/resolv.conf"])
    gw = c.networks.inspect("default").gateway
    assert [l.split()[1] for l in r.stdout.decode().splitlines()
            if l.startswith("nameserver")] == [gw], r.stdout
    r = c.containers.run(IMAGE, ["cat", "/etc/resolv.conf"], networks=["none"])
    got = [l.split()[1] for l in r.stdout.decode().splitlines() if l.startswith("nameserver")]
    assert got == host_resolvers(), r.stdout
    from vessel.v1 import types_pb2
    r = c.containers.run(IMAGE, ["cat", "/etc/resolv.conf"],
                         dns=types_pb2.Dns(nameservers=["10.9.8.7"], search=["example.test"]))
    assert b"nameserver 10.9.8.7" in r.stdout and b"example.test" in r.stdout, r.stdout


# An upstream resolver inside vesseld's namespace: answers every A query
# with 192.0.2.7 (TEST-NET-1: an address nothing is sent to).
UPSTREAM = r"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 5354))
while True:
    q, a = s.recvfrom(4096)
    end = 12
    while q[end]:
        end += q[end] + 1
    end += 5
    r = q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x01\x00\x00\x00\x00" + q[12:end]
    r += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x07"
    s.sendto(r, a)
"""
VESSELD_ARGS = ("--dns-upstream", "127.0.0.1:5354")


def lookup(c, network, name):
    """The address busybox's nslookup gets for name from a container on
    network, or None."""
    r = c.containers.run(IMAGE, ["nslookup", name], networks=[network])
    out = r.stdout.decode()
    addrs = [l.split()[-1] for l in out.split("Name:", 1)[-1].splitlines()
             if l.startswith("Address")] if "Name:" in out else []
    return addrs[0] if addrs else None


def test_the_networks_dns_names_its_containers_and_forwards_the_rest(c):
    """'the names of the network's containers (ID, its first 12 characters,
    hostname, aliases), other names forwarded to the host's resolvers'; a
    container on another network does not resolve them."""
    import subprocess
    from vessel.v1 import containers_pb2 as cp
    up = subprocess.Popen(["ip", "netns", "exec", c.daemon.netns, "/usr/bin/python3", "-c",
                           UPSTREAM])
    c.networks.create("dns-a")
    c.networks.create("dns-b")
    web = c.containers.create(IMAGE, ["sleep", "600"], id="webby", hostname="webhost",
                              networks=[cp.NetworkAttachment(network="dns-a", aliases=["www"])])
    try:
        web.start()
        ip = web.reload().networks[0].ip_address
        for name in ["webby", "WEBBY", "webhost", "www"]:
            assert lookup(c, "dns-a", name) == ip, name
        assert lookup(c, "dns-b", "webby") != ip
        assert lookup(c, "dns-a", "elsewhere.example") == "192.0.2.7"
    finally:
        web.delete(force=True)
        c.networks.delete("dns-a")
        c.networks.delete("dns-b")
        up.kill()
        up.wait()


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
