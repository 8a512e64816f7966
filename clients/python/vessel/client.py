"""Connection to vesseld and the idiomatic layer over the generated stubs."""
from __future__ import annotations

import dataclasses
from typing import Optional

import grpc

from vessel.v1 import (containers_pb2_grpc, events_pb2_grpc, images_pb2_grpc,
                       networks_pb2_grpc, system_pb2, system_pb2_grpc)

DEFAULT_ADDRESS = "unix:///run/vessel/vessel.sock"
_MAX_MESSAGE = 128 << 20


class VesselError(Exception):
    """A failed call; carries the gRPC status code and vesseld's message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


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


class Client:
    """A connection to vesseld.

    address: "unix:///path" (default: the local daemon) or "tcp://host:port"
    with tls=TLS(...) (or insecure=True for a daemon run with --insecure-tcp).
    The stubs of every service are attributes: system, images, containers,
    events, networks.
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
        self.timeout = timeout
        self.system = system_pb2_grpc.SystemStub(self._channel)
        self.images = images_pb2_grpc.ImagesStub(self._channel)
        self.containers = containers_pb2_grpc.ContainersStub(self._channel)
        self.events = events_pb2_grpc.EventsStub(self._channel)
        self.networks = networks_pb2_grpc.NetworksStub(self._channel)

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as e:  # one exception type for callers
            raise VesselError(e.code(), e.details()) from None

    def version(self) -> system_pb2.SystemVersionResponse:
        """vesseld's version and API version."""
        return self._call(self.system.Version, system_pb2.SystemVersionRequest())

    def info(self) -> system_pb2.SystemInfoResponse:
        """Host, configuration and inventory information."""
        return self._call(self.system.Info, system_pb2.SystemInfoRequest())

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
