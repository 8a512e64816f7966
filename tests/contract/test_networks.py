"""Networks as proto/vessel/v1/networks.proto promises them: isolated from
each other. Real vesseld and VMs, in a network namespace of its own."""
import re
import time

import grpc
import pytest

import vessel
from contract import IMAGE
from vesseld import wait_for


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


# An upstream resolver inside vesseld's namespace: over UDP it answers every
# A query with 192.0.2.7 (TEST-NET-1: an address nothing is sent to); over
# TCP with 40 such records (an answer larger than plain UDP DNS carries).
UPSTREAM = r"""
import socket, struct, threading

def answer(q, n):
    end = 12
    while q[end]:
        end += q[end] + 1
    end += 5
    r = q[:2] + b"\x81\x80" + q[4:6] + struct.pack(">H", n) + b"\x00\x00\x00\x00" + q[12:end]
    return r + n * b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x07"

def tcp():
    t = socket.socket()
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("127.0.0.1", 5354))
    t.listen(8)
    while True:
        k, _ = t.accept()
        q = k.recv(2)
        q = k.recv(struct.unpack(">H", q)[0], socket.MSG_WAITALL)
        r = answer(q, 40)
        k.sendall(struct.pack(">H", len(r)) + r)
        k.close()

threading.Thread(target=tcp, daemon=True).start()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 5354))
while True:
    q, a = s.recvfrom(4096)
    s.sendto(answer(q, 1), a)
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


# A DNS query over TCP from vesseld's namespace (not a container): prints
# the number of answers and the last answer's address.
TCP_QUERY = r"""
import socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00\x00\x01\x00\x01"
k = socket.create_connection((server, 53), timeout=10)
k.sendall(struct.pack(">H", len(q)) + q)
n = struct.unpack(">H", k.recv(2, socket.MSG_WAITALL))[0]
r = k.recv(n, socket.MSG_WAITALL)
assert r[:2] == q[:2] and len(r) == n, r
print(struct.unpack(">H", r[6:8])[0], socket.inet_ntoa(r[-4:]) if r[7] else "-", len(r))
"""


def tcp_lookup(c, network, name):
    gw = c.networks.inspect(network).gateway
    r = c.daemon.in_netns("/usr/bin/python3", "-c", TCP_QUERY, gw, name, capture_output=True)
    assert r.returncode == 0, r.stderr
    count, addr, size = r.stdout.decode().split()
    return int(count), addr, int(size)


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
        # Over TCP too: the container's names, and forwarded names over TCP
        # (the upstream's 40 records, more than 512 bytes, arrive whole).
        assert tcp_lookup(c, "dns-a", "www")[:2] == (1, ip)
        count, addr, size = tcp_lookup(c, "dns-a", "elsewhere.example")
        assert (count, addr) == (40, "192.0.2.7") and size > 512, size
    finally:
        web.delete(force=True)
        c.networks.delete("dns-a")
        c.networks.delete("dns-b")
        up.kill()
        up.wait()


def sh(ct, script):
    out, err, status = ct.exec(["sh", "-c", script]).communicate()
    assert status.code == 0, err
    return out.decode()


def reach(ct, ip):
    """What a fetch of http://ip/ from inside ct gets."""
    return sh(ct, FETCH.format(ip=ip))


def test_a_container_on_several_networks(c):
    """ContainersCreateRequest.networks: 'a NIC on each, attachment i is
    eth<i> in the guest; the first has the default route'. It reaches the
    containers of each of its networks and resolves their names on either,
    the others still do not reach each other; Inspect lists both
    attachments; a start from STOPPED (here from the two-NIC template)
    keeps them."""
    import glob
    import ipaddress
    from vessel.v1 import containers_pb2 as cp
    nets = {n: c.networks.create(n) for n in ("multi-a", "multi-b")}
    httpd = ["httpd", "-f", "-p", "80", "-h", "/var/www"]
    web_a = c.containers.create(IMAGE, httpd, id="web-a", networks=["multi-a"])
    web_b = c.containers.create(IMAGE, httpd, id="web-b", networks=["multi-b"])
    templates = lambda: len(glob.glob(c.daemon.root + "/templates/*/state"))
    before = templates()
    both = c.containers.create(IMAGE, ["sleep", "600"], id="both", networks=[
        cp.NetworkAttachment(network="multi-a"),
        cp.NetworkAttachment(network="multi-b", aliases=["bee"])])
    try:
        for ct in (web_a, web_b, both):
            ct.start()
        ip_a, ip_b = web_a.reload().networks[0].ip_address, web_b.reload().networks[0].ip_address
        info = both.reload()
        assert [(n.network, n.interface) for n in info.networks] == \
            [("multi-a", "eth0"), ("multi-b", "eth1")], info.networks
        mine = [n.ip_address for n in info.networks]
        for n, net in zip(info.networks, ("multi-a", "multi-b")):
            got = c.networks.inspect(net)
            assert ipaddress.ip_address(n.ip_address) in ipaddress.ip_network(got.subnet)
            assert n.gateway == got.gateway and n.mac_address
        assert list(info.networks[1].aliases) == ["bee"]

        def check():
            out = sh(both, "ip -4 -o addr show; ip route; ip -o link")
            assert re.search(rf"eth0\s+inet {re.escape(mine[0])}/", out), out
            assert re.search(rf"eth1\s+inet {re.escape(mine[1])}/", out), out
            assert f"default via {info.networks[0].gateway} dev eth0" in out, out
            assert info.networks[1].mac_address in out, out
            for ip in (ip_a, ip_b):
                got = ""
                for _ in range(20):  # httpd needs a moment to listen
                    got = reach(both, ip)
                    if "hello over the bridge" in got:
                        break
                    time.sleep(0.5)
                assert "hello over the bridge" in got, (ip, got)
            # Names on either network, asking the first network's DNS.
            for name, ip in (("web-a", ip_a), ("web-b", ip_b)):
                out = sh(both, f"nslookup {name}")
                assert f"Address: {ip}" in out or f"Address 1: {ip}" in out, (name, out)

        check()
        # The others stay apart: a container on multi-a alone does not reach
        # web-b, and "bee" is a name on multi-b only.
        assert "hello" not in fetch_from(c, "multi-a", ip_b).decode()
        assert lookup(c, "multi-b", "bee") == mine[1]
        assert lookup(c, "multi-a", "bee") not in mine
        # Started again from STOPPED once the two-NIC template is built:
        # restored with the template's MACs, found and renamed by them.
        assert wait_for(lambda: templates() > before, timeout=300), "no two-NIC template"
        both.stop(grace=1)
        both.start()
        assert both.reload().vm.boot_mode == cp.BOOT_MODE_TEMPLATE
        assert [n.ip_address for n in both.reload().networks] == mine
        check()
    finally:
        for ct in (both, web_a, web_b):
            ct.delete(force=True)
        for n in nets:
            c.networks.delete(n)


def test_attachments_are_checked(c):
    """'At most 4, each network once, "none" only alone, MACs distinct (else
    INVALID_ARGUMENT)'; NetworkAttachment.mac_address 'a unicast MAC'."""
    from vessel.v1 import containers_pb2 as cp
    A = cp.NetworkAttachment
    for nets, word in [(["default", "default"], "twice"),
                       (["none", "default"], "none"),
                       ([f"n{i}" for i in range(5)], "at most 4"),
                       ([A(network="default", mac_address="03:00:00:00:00:01")], "mac_address"),
                       ([A(network="default", mac_address="02:00:00:00:00")], "mac_address"),
                       ([A(network="default", mac_address="02:00:00:00:00:09"),
                         A(network="none2", mac_address="02:00:00:00:00:09")], "twice"),
                       ([A(network="")], "empty")]:
        with pytest.raises(vessel.VesselError) as e:
            c.containers.create(IMAGE, ["true"], networks=nets)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and word in str(e.value), e.value


def test_what_is_not_there_yet_is_unimplemented_naming_the_field(c):
    """UDP ports: UNIMPLEMENTED naming the field."""
    with pytest.raises(vessel.VesselError) as e:
        c.containers.create(IMAGE, ["true"], ports={"53/udp": 0})
    assert e.value.code == grpc.StatusCode.UNIMPLEMENTED and "protocol" in str(e.value), e.value
