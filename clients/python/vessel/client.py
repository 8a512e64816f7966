"""Connection to vesseld and the idiomatic layer over the generated stubs."""
from __future__ import annotations

import dataclasses
import types
from typing import List, Mapping, Optional

import grpc

from vessel.containers import Containers
from vessel.errors import VesselError, call  # noqa: F401 (vessel.client.VesselError)
from vessel.events import Events
from vessel.images import Filters, Images, filters_list
from vessel.containers import _networks, _ports
from vessel.v1 import (containers_pb2_grpc, events_pb2_grpc, images_pb2_grpc, networks_pb2,
                       networks_pb2_grpc, pods_pb2, pods_pb2_grpc, system_pb2, system_pb2_grpc,
                       types_pb2)

DEFAULT_ADDRESS = "unix:///run/vessel/vessel.sock"
_MAX_MESSAGE = 128 << 20


@dataclasses.dataclass
class TLS:
    """PEM files for TCP with mutual TLS (vesseld requires client certs)."""
    ca_file: str
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name: Optional[str] = None


def _read(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


class Networks:
    """``client.networks``: container networks. The raw gRPC methods stay
    reachable as ``client.networks.List(request)`` etc."""

    def __init__(self, client: "Client", stub):
        self._client = client
        self.stub = stub

    def __getattr__(self, name: str):
        return getattr(self.stub, name)

    def create(self, name: str, subnet: str = "", gateway: str = "", internal: bool = False,
               labels: Optional[Mapping[str, str]] = None) -> networks_pb2.Network:
        """Creates a bridge network (subnet "" = allocate one)."""
        req = networks_pb2.NetworksCreateRequest(name=name, subnet=subnet, gateway=gateway,
                                                 internal=internal, labels=labels or {})
        return call(self.stub.Create, req, self._client.timeout).network

    def list(self, filters: Filters = None) -> List[networks_pb2.Network]:
        """Networks; filters e.g. {"name": "bl*"}."""
        req = networks_pb2.NetworksListRequest(filters=filters_list(filters))
        return list(call(self.stub.List, req, self._client.timeout).networks)

    def inspect(self, name: str) -> networks_pb2.Network:
        """One network by name."""
        req = networks_pb2.NetworksInspectRequest(name=name)
        return call(self.stub.Inspect, req, self._client.timeout).network

    def delete(self, name: str, force: bool = False) -> None:
        """Deletes a network."""
        req = networks_pb2.NetworksDeleteRequest(name=name, force=force)
        call(self.stub.Delete, req, self._client.timeout)


class Pods:
    """``client.pods``: pods, several containers in one VM (create a
    container in one with ``client.containers.create(..., pod=POD_ID)``).
    The raw gRPC methods stay reachable as ``client.pods.List(request)``."""

    def __init__(self, client: "Client", stub):
        self._client = client
        self.stub = stub

    def __getattr__(self, name: str):
        return getattr(self.stub, name)

    def create(self, id: str = "", *, hostname: str = "", networks=None, ports=None,
               cpus: float = 0, memory: int = 0, slots: int = 0,
               dns: Optional[types_pb2.Dns] = None,
               extra_hosts: Optional[Mapping[str, str]] = None,
               labels: Optional[Mapping[str, str]] = None,
               annotations: Optional[Mapping[str, str]] = None,
               volumes: Optional[List[str]] = None, share_pid: bool = False,
               share_ipc: bool = False, timeout: Optional[float] = None) -> pods_pb2.Pod:
        """Boots a pod's VM (RUNNING when it returns). networks and ports as
        for containers.create; cpus: vCPUs; memory: the VM's bytes; slots:
        containers it holds at once (0 = 4); volumes: host directories its
        containers may mount ("/dir" or "/dir:ro"; a container mounts one
        with mounts=["/dir:/where"]); share_pid / share_ipc: one PID / IPC
        namespace for all its containers."""
        res = None
        if cpus or memory:
            res = types_pb2.Resources(milli_cpus=int(cpus * 1000), memory_bytes=int(memory))
        req = pods_pb2.PodsCreateRequest(
            id=id, hostname=hostname, networks=_networks(networks), ports=_ports(ports),
            resources=res, slots=slots, dns=dns,
            extra_hosts=[types_pb2.HostsEntry(ip=ip, hostnames=[h])
                         for h, ip in (extra_hosts or {}).items()],
            labels=labels or {}, annotations=annotations or {}, share_pid=share_pid,
            share_ipc=share_ipc,
            volumes=[types_pb2.Mount(type="bind", source=v.rsplit(":", 1)[0],
                                     options=["ro"] if v.endswith(":ro") else [])
                     for v in volumes or []])
        t = self._client.timeout if timeout is None else timeout
        return call(self.stub.Create, req, t).pod

    def list(self, labels: Optional[Mapping[str, str]] = None) -> List[pods_pb2.Pod]:
        """Pods, newest first (only those with all these labels)."""
        req = pods_pb2.PodsListRequest(label_filter=labels or {})
        return list(call(self.stub.List, req, self._client.timeout).pods)

    def inspect(self, pod_id: str) -> pods_pb2.Pod:
        """One pod (ID or unambiguous prefix)."""
        req = pods_pb2.PodsInspectRequest(pod_id=pod_id)
        return call(self.stub.Inspect, req, self._client.timeout).pod

    def stop(self, pod_id: str, signal: int = 0, grace: float = 0,
             timeout: Optional[float] = None) -> pods_pb2.Pod:
        """Stops its containers (signal, SIGKILL after grace seconds), then
        its VM."""
        req = pods_pb2.PodsStopRequest(pod_id=pod_id, signal=signal, timeout_ms=int(grace * 1000))
        t = self._client.timeout if timeout is None else timeout
        return call(self.stub.Stop, req, t).pod

    def stats(self, pod_id: str) -> pods_pb2.PodsStatsResponse:
        """Its VM as the host sees it (``.vm``) and each running container
        (``.containers``)."""
        req = pods_pb2.PodsStatsRequest(pod_id=pod_id)
        return call(self.stub.Stats, req, self._client.timeout)

    def delete(self, pod_id: str, force: bool = False) -> None:
        """Deletes the pod (force: with its containers)."""
        req = pods_pb2.PodsDeleteRequest(pod_id=pod_id, force=force)
        call(self.stub.Delete, req, self._client.timeout)


class Client:
    """A connection to vesseld.

    address: "unix:///path" (default: the local daemon) or "tcp://host:port"
    with tls=TLS(...) (or insecure=True for a daemon run with --insecure-tcp).
    timeout: default deadline in seconds of unary calls (None = none);
    streams (pull, logs, events, attach) have no deadline unless given one.

    Services: ``images``, ``containers``, ``networks``, ``pods`` (idiomatic methods,
    plus the raw gRPC methods under their proto names, e.g.
    ``client.images.Pull(request)``), ``events(...)`` (an iterator),
    ``version()``, ``info()``, ``disk_usage()``. ``stubs`` holds the raw
    generated stubs. Every failure raises VesselError (with ``.code``).
    Use as a context manager to close the channel.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, tls: Optional[TLS] = None,
                 insecure: bool = False, timeout: Optional[float] = 30.0):
        options = [("grpc.max_receive_message_length", _MAX_MESSAGE),
                   ("grpc.max_send_message_length", _MAX_MESSAGE)]
        if address.startswith("unix://"):
            self._channel = grpc.insecure_channel(address, options=options)
        elif address.startswith("tcp://"):
            target = address[len("tcp://"):]
            if tls is not None:
                creds = grpc.ssl_channel_credentials(
                    root_certificates=_read(tls.ca_file),
                    private_key=_read(tls.key_file),
                    certificate_chain=_read(tls.cert_file))
                if tls.server_name:
                    options.append(("grpc.ssl_target_name_override", tls.server_name))
                self._channel = grpc.secure_channel(target, creds, options=options)
            elif insecure:
                self._channel = grpc.insecure_channel(target, options=options)
            else:
                raise ValueError(f"{address}: TCP needs tls=TLS(...) (or insecure=True)")
        else:
            raise ValueError(f"address {address!r}: use unix:///path or tcp://host:port")
        self.address = address
        self.timeout = timeout
        self.stubs = types.SimpleNamespace(
            system=system_pb2_grpc.SystemStub(self._channel),
            images=images_pb2_grpc.ImagesStub(self._channel),
            containers=containers_pb2_grpc.ContainersStub(self._channel),
            events=events_pb2_grpc.EventsStub(self._channel),
            networks=networks_pb2_grpc.NetworksStub(self._channel),
            pods=pods_pb2_grpc.PodsStub(self._channel))
        self.system = self.stubs.system
        self.images = Images(self, self.stubs.images)
        self.containers = Containers(self, self.stubs.containers)
        self.pods = Pods(self, self.stubs.pods)
        self.events = Events(self, self.stubs.events)
        self.networks = Networks(self, self.stubs.networks)

    def __repr__(self) -> str:
        return f"<vessel.Client {self.address}>"

    def _call(self, method, request):
        return call(method, request, self.timeout)

    def version(self) -> system_pb2.SystemVersionResponse:
        """vesseld's version and API version."""
        return self._call(self.system.Version, system_pb2.SystemVersionRequest())

    def info(self) -> system_pb2.SystemInfoResponse:
        """Host, configuration and inventory information."""
        return self._call(self.system.Info, system_pb2.SystemInfoRequest())

    def disk_usage(self) -> system_pb2.SystemDiskUsageResponse:
        """Disk space used by images, containers and caches."""
        return self._call(self.system.DiskUsage, system_pb2.SystemDiskUsageRequest())

    @property
    def channel(self) -> grpc.Channel:
        """The underlying gRPC channel."""
        return self._channel

    def close(self) -> None:
        """Closes the channel (streams still open are cancelled)."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
