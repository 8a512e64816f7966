"""Guest networking through the agent: a VM with a virtio-net NIC on a tap
device inside a network namespace this test creates (no traffic leaves it)."""
import os
import subprocess

import grpc
import pytest

from agentvm import A, T, AgentVM


def ip(*args, ns=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip"] + list(args)
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def netvm():
    ns = "vsltest%d" % os.getpid()
    ip("netns", "add", ns)
    try:
        ip("tuntap", "add", "dev", "tap0", "mode", "tap", ns=ns)
        ip("addr", "add", "10.77.0.1/24", "dev", "tap0", ns=ns)
        ip("link", "set", "tap0", "up", ns=ns)
        v = AgentVM(wrap=["ip", "netns", "exec", ns], extra_args=["--tap", "tap0", "--mac", "02:00:00:00:77:02"])
        try:
            v.create("net", ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"])
            v.stub.StartProcess(A.AgentStartProcessRequest(container_id="net"), timeout=30)
            yield v
        finally:
            v.close()
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def test_list_interfaces(netvm):
    ifs = {i.name: i for i in netvm.stub.ListInterfaces(A.AgentListInterfacesRequest(), timeout=10).interfaces}
    assert ifs["lo"].up and "127.0.0.1/8" in ifs["lo"].addresses
    assert ifs["eth0"].mac == "02:00:00:00:77:02"
    assert [i.index for i in ifs.values()] == sorted(i.index for i in ifs.values())


def test_configure_interface_visible_in_guest(netvm):
    netvm.stub.ConfigureInterface(A.AgentConfigureInterfaceRequest(interface=T.NetworkInterface(
        name="eth0", mac="02:00:00:00:77:03", mtu=1400,
        addresses=["10.77.0.2/24", "fd77::2/64"], gateway_v4="10.77.0.1",
        routes=[T.Route(destination="10.78.0.0/16", gateway="10.77.0.254")])), timeout=30)
    # Idempotent: applying it again is fine.
    netvm.stub.ConfigureInterface(A.AgentConfigureInterfaceRequest(interface=T.NetworkInterface(
        name="eth0", addresses=["10.77.0.2/24"], gateway_v4="10.77.0.1")), timeout=30)
    out, code, err = netvm.sh("net", "ip addr show eth0; ip route; ip -6 addr show eth0; cat /proc/net/route")
    assert code == 0, err
    assert "02:00:00:00:77:03" in out
    assert "mtu 1400" in out
    assert "inet 10.77.0.2/24" in out
    assert "inet6 fd77::2/64" in out
    assert "default via 10.77.0.1 dev eth0" in out
    assert "10.78.0.0/16 via 10.77.0.254 dev eth0" in out
    # /proc/net/route: destination 0000FFFF... is 10.78.0.0 in little-endian hex.
    assert "00004E0A" in out
    ifs = {i.name: i for i in netvm.stub.ListInterfaces(A.AgentListInterfacesRequest(), timeout=10).interfaces}
    assert ifs["eth0"].up and ifs["eth0"].mtu == 1400
    assert "10.77.0.2/24" in ifs["eth0"].addresses


def test_link_address_route_rpcs(netvm):
    netvm.stub.LinkSet(A.AgentLinkSetRequest(name="eth0", state=A.LINK_STATE_DOWN), timeout=10)
    out, _, _ = netvm.sh("net", "cat /sys/class/net/eth0/flags")
    assert int(out, 16) & 1 == 0
    netvm.stub.LinkSet(A.AgentLinkSetRequest(name="eth0", state=A.LINK_STATE_UP, mtu=1300), timeout=10)
    netvm.stub.AddressAdd(A.AgentAddressAddRequest(interface="eth0", address="10.77.0.9/24"), timeout=10)
    netvm.stub.DefaultRouteAdd(A.AgentDefaultRouteAddRequest(gateway="10.77.0.1", device="eth0"), timeout=10)
    netvm.stub.RouteAdd(A.AgentRouteAddRequest(route=T.Route(destination="10.79.1.0/24", device="eth0", metric=7)), timeout=10)
    out, _, _ = netvm.sh("net", "cat /sys/class/net/eth0/mtu; ip addr show eth0; ip route")
    assert out.startswith("1300\n")
    assert "inet 10.77.0.9/24" in out
    assert "default via 10.77.0.1 dev eth0" in out
    assert "10.79.1.0/24 dev eth0" in out and "metric 7" in out
    for bad, code in [(A.AgentAddressAddRequest(interface="nope0", address="10.1.1.1/24"), grpc.StatusCode.NOT_FOUND),
                      (A.AgentAddressAddRequest(interface="eth0", address="10.1.1.1/99"), grpc.StatusCode.INVALID_ARGUMENT)]:
        with pytest.raises(grpc.RpcError) as e:
            netvm.stub.AddressAdd(bad, timeout=10)
        assert e.value.code() == code
    with pytest.raises(grpc.RpcError) as e:
        netvm.stub.RouteAdd(A.AgentRouteAddRequest(route=T.Route(destination="10.80.0.0/16", gateway="fd77::1")), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_dns_and_hosts_rewritten_live(netvm):
    netvm.stub.ConfigureDns(A.AgentConfigureDnsRequest(container_id="net", dns=T.Dns(nameservers=["10.77.0.1"])), timeout=10)
    netvm.stub.ConfigureHosts(A.AgentConfigureHostsRequest(container_id="net", entries=[
        T.HostsEntry(ip="10.77.0.50", hostnames=["svc"])]), timeout=10)
    out, _, _ = netvm.sh("net", "cat /etc/resolv.conf /etc/hosts")
    assert "nameserver 10.77.0.1" in out
    assert "10.77.0.50\tsvc" in out and "127.0.0.1\tlocalhost" in out


def test_network_statistics(netvm):
    st = netvm.stub.Statistics(A.AgentStatisticsRequest(), timeout=10).statistics
    nets = {n.interface: n for n in st[0].networks}
    assert "eth0" in nets and "lo" not in nets
