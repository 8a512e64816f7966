"""Exceptions: every failed RPC surfaces as a VesselError carrying the gRPC
status code and vesseld's message (see proto/README.md, "Errors")."""
from __future__ import annotations

from typing import Callable, Dict, Iterator, Optional, Type, TypeVar

import grpc

T = TypeVar("T")


class VesselError(Exception):
    """A failed call; carries the gRPC status code and vesseld's message.

    Catch a subclass (NotFoundError, ...) to handle one code, or VesselError
    and look at ``.code`` (a ``grpc.StatusCode``).
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvalidArgumentError(VesselError):
    """INVALID_ARGUMENT: the request is malformed."""


class NotFoundError(VesselError):
    """NOT_FOUND: unknown container, exec, image, network or path."""


class AlreadyExistsError(VesselError):
    """ALREADY_EXISTS: name/ID clash."""


class FailedPreconditionError(VesselError):
    """FAILED_PRECONDITION: the object is in the wrong state for the call."""


class UnavailableError(VesselError):
    """UNAVAILABLE: vesseld (or a guest agent, or a registry) cannot be reached."""


class DeadlineExceededError(VesselError):
    """DEADLINE_EXCEEDED: the call's deadline passed."""


class UnauthenticatedError(VesselError):
    """UNAUTHENTICATED: a registry rejected the credentials."""


class PermissionDeniedError(VesselError):
    """PERMISSION_DENIED: a registry refused access."""


class UnimplementedError(VesselError):
    """UNIMPLEMENTED: this vesseld does not implement the RPC."""


_BY_CODE: Dict[grpc.StatusCode, Type[VesselError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
}


def error_from_rpc(e: grpc.RpcError) -> VesselError:
    """The VesselError (most specific subclass) for a failed gRPC call."""
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = e.details() if hasattr(e, "details") else str(e)
    code = code or grpc.StatusCode.UNKNOWN
    details = details or ""
    tcp = "ipv4:" in details or "ipv6:" in details
    if code == grpc.StatusCode.UNAVAILABLE and tcp and (
            "Socket closed" in details or "andshake" in details or "SSL" in details):
        # TLS 1.3: a server that refuses our certificate just closes the socket.
        details += (" (the TLS handshake failed: vesseld requires a client certificate signed "
                    "by its --tls-client-ca, given as TLS(cert_file=..., key_file=...), and "
                    "ca_file must be the CA of vesseld's certificate)")
    return _BY_CODE.get(code, VesselError)(code, details)


def call(method: Callable[..., T], request, timeout: Optional[float]) -> T:
    """Runs a unary (or client-streaming) RPC, raising VesselError."""
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as e:
        raise error_from_rpc(e) from None


def translate(it: Iterator[T]) -> Iterator[T]:
    """Iterates a server stream, raising VesselError instead of grpc.RpcError."""
    try:
        yield from it
    except grpc.RpcError as e:
        raise error_from_rpc(e) from None
