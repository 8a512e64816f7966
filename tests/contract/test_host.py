"""The host-only services as proto/vessel/v1/{networks,system,events}.proto
promise them: Networks, System and Events, one test per documented
behaviour. A real vesseld in a network namespace of its own (its bridges
stay there); no VMs."""
import re
import time

import grpc
import pytest

import vessel
from contract import code
from test_containers import busybox_image_tar
from vesseld import Vesseld
from vessel.v1 import events_pb2, networks_pb2, system_pb2, types_pb2

S = grpc.StatusCode


@pytest.fixture(scope="module")
def h(tmp_path_factory):
    with Vesseld(netns=True) as d, vessel.Client(d.address, timeout=60) as client:
        client.daemon = d
        client.archive = busybox_image_tar(str(tmp_path_factory.mktemp("img")))
        yield client


# ---- Networks ----

def test_network_create_inspect_list_delete(h):
    """Create returns the network (64-hex ID, driver bridge, a /24 from the
    pool when no subnet is given, the first host address as gateway);
    Inspect and List find it; Delete removes it and its bridge."""
    n = h.networks.create("ct-a", labels={"suite": "host"})
    assert re.fullmatch(r"[0-9a-f]{64}", n.id) and n.driver == "bridge"
    assert n.subnet.endswith("/24") and n.gateway == n.subnet.rsplit(".", 1)[0] + ".1"
    assert h.networks.inspect("ct-a").id == n.id
    assert [x.name for x in h.networks.list(filters={"label": "suite=host"})] == ["ct-a"]
    assert [x.name for x in h.networks.list(filters={"name": "ct-*"})] == ["ct-a"]
    m = h.networks.create("ct-b", subnet="10.123.0.0/16", gateway="10.123.0.254")
    assert (m.subnet, m.gateway) == ("10.123.0.0/16", "10.123.0.254")
    h.networks.delete("ct-b")
    h.networks.delete("ct-a")
    assert code(lambda: h.networks.inspect("ct-a")) == S.NOT_FOUND
    links = h.daemon.in_netns("ip", "-br", "link", capture_output=True, text=True).stdout
    assert "vsl-" + n.id[:10] not in links  # the bridge, named after the network's ID


def test_network_errors(h):
    """ALREADY_EXISTS (name, overlapping subnet), INVALID_ARGUMENT (bad
    name, CIDR, gateway outside subnet, driver), NOT_FOUND, FAILED_PRECONDITION
    (the built-in network), unknown filter key INVALID_ARGUMENT."""
    h.networks.create("ct-c", subnet="10.124.0.0/24")
    try:
        assert code(lambda: h.networks.create("ct-c")) == S.ALREADY_EXISTS
        assert code(lambda: h.networks.create("ct-d", subnet="10.124.0.128/25")) == \
            S.ALREADY_EXISTS
        for kw in [dict(name="bad name!"), dict(name="ct-e", subnet="10.300.0.0/24"),
                   dict(name="ct-e", subnet="10.125.0.0/24", gateway="10.126.0.1")]:
            assert code(lambda: h.networks.create(**kw)) == S.INVALID_ARGUMENT, kw
        req = networks_pb2.NetworksCreateRequest(name="ct-e", driver="macvlan")
        assert code(lambda: h.networks.stub.Create(req)) == S.INVALID_ARGUMENT
        assert code(lambda: h.networks.delete("no-such")) == S.NOT_FOUND
        assert code(lambda: h.networks.delete("default")) == S.FAILED_PRECONDITION
        assert code(lambda: h.networks.stub.List(
            networks_pb2.NetworksListRequest(filters=["colour=red"]))) == S.INVALID_ARGUMENT
    finally:
        h.networks.delete("ct-c")


# ---- System ----

def test_system_version_info_and_disk_usage(h):
    """Version names the API; Info the host and vesseld's configuration;
    DiskUsage grows with what is stored."""
    v = h.system.Version(system_pb2.SystemVersionRequest())
    assert v.api_version == "vessel.v1" and v.version and v.git_commit
    info = h.system.Info(system_pb2.SystemInfoRequest())
    assert info.root_dir == h.daemon.root and info.cpus >= 1 and info.memory_bytes > 0
    assert h.daemon.address in list(info.listen_addresses)
    before = h.system.DiskUsage(system_pb2.SystemDiskUsageRequest())
    h.images.load(h.archive, reference="host/du:1")
    after = h.system.DiskUsage(system_pb2.SystemDiskUsageRequest())
    assert after.content_store_bytes > before.content_store_bytes
    assert h.system.Info(system_pb2.SystemInfoRequest()).images >= 1


# ---- Events ----

def subscribe(h, **kw):
    return h.events.stub.Subscribe(events_pb2.EventsSubscribeRequest(**kw), timeout=10)


def drain(call, n):
    """The first n events of a stream."""
    out = []
    for m in call:
        out.append(m.event)
        if len(out) == n:
            break
    call.cancel()
    return out


def test_events_replay_filter_order_and_history(h):
    """'first replayed history (if asked), then live events'; 'in sequence
    order without duplicates'; type filter; history of at least the last
    1000; after_sequence replays what a reconnecting client missed."""
    h.images.load(h.archive, reference="host/ev:0")
    start = time.time()
    for i in range(1, 1101):  # 1100 tag events
        h.images.tag("host/ev:0", f"host/ev:{i}")
    tagged = types_pb2.EVENT_TYPE_IMAGE_TAGGED
    from google.protobuf.timestamp_pb2 import Timestamp
    t = Timestamp()
    t.FromSeconds(int(start) - 1)
    got = drain(subscribe(h, types=[tagged], since=t), 1000)
    seqs = [e.sequence for e in got]
    assert len(got) == 1000 and seqs == sorted(set(seqs))
    assert all(e.type == tagged for e in got)
    # A client that saw seqs[500] gets exactly what followed.
    after = drain(subscribe(h, types=[tagged], after_sequence=seqs[500]), 10)
    assert [e.sequence for e in after] == seqs[501:511]


def test_events_since_and_after_sequence_together_are_refused(h):
    from google.protobuf.timestamp_pb2 import Timestamp
    t = Timestamp()
    t.FromSeconds(1)
    assert code(lambda: drain(subscribe(h, since=t, after_sequence=5), 1)) == S.INVALID_ARGUMENT


def test_info_platforms_and_foreign_images_refused(h, tmp_path):
    """Info.platforms: 'its own first (natively), then those it has
    user-mode emulators for (qemu-user-static in /usr/bin)'; 'an image of
    another platform is refused at Create with FAILED_PRECONDITION'."""
    import os
    from oci_layout import Layout, busybox_layer
    from vessel.v1 import containers_pb2 as cp, images_pb2
    arches = {"arm64": "aarch64", "arm": "arm", "riscv64": "riscv64", "ppc64le": "ppc64le",
              "s390x": "s390x"}
    got = [(p.os, p.architecture) for p in h.system.Info(system_pb2.SystemInfoRequest()).platforms]
    assert got[0] == ("linux", "amd64")
    assert sorted(got[1:]) == sorted(("linux", a) for a, q in arches.items()
                                     if os.access(f"/usr/bin/qemu-{q}-static", os.X_OK))
    lay = Layout(str(tmp_path / "layout"))
    lay.tag(lay.image([busybox_layer()], arch="mips64le"), "mips")
    h.stubs.images.Import(iter([images_pb2.ImagesImportRequest(header=images_pb2.ImagesImportHeader(
        reference="host/mips:1")), images_pb2.ImagesImportRequest(data=lay.archive())]))
    with pytest.raises(grpc.RpcError) as e:
        h.stubs.containers.Create(cp.ContainersCreateRequest(
            image="host/mips:1", platform=types_pb2.Platform(os="linux", architecture="mips64le"),
            process=types_pb2.ProcessSpec(args=["true"])))
    assert e.value.code() == S.FAILED_PRECONDITION
    assert "linux/mips64le" in e.value.details() and "linux/amd64" in e.value.details()
