"""Python client of vessel: Linux containers, each in its own lightweight VM.

    import vessel

    with vessel.Client("unix:///run/vessel/vessel.sock") as client:
        client.images.pull("docker.io/library/alpine:3.20")
        result = client.containers.run("alpine:3.20", ["echo", "hello"])
        print(result.exit_code, result.stdout)

Over TCP with mutual TLS::

    vessel.Client("tcp://host:7443", tls=vessel.TLS("ca.pem", "client.pem", "client.key"))

Or as vesselctl chooses (VESSEL_HOST, VESSEL_CONTEXT, the contexts file of
``vesselctl context``; see vessel.config)::

    client = vessel.from_env()

Every failed call raises VesselError (``.code`` is the grpc.StatusCode);
subclasses such as NotFoundError name the common codes. The generated
messages and stubs live in ``vessel.v1`` (never edited by hand).
"""
from vessel.client import DEFAULT_ADDRESS, TLS, Client, Networks
from vessel.config import ConfigError, Endpoint, config_path, from_env, resolve
from vessel.containers import (Container, ContainerError, Containers, Output, Process, RunResult,
                               process_spec)
from vessel.errors import (AlreadyExistsError, DeadlineExceededError, FailedPreconditionError,
                           InvalidArgumentError, NotFoundError, PermissionDeniedError,
                           UnauthenticatedError, UnavailableError, UnimplementedError, VesselError)
from vessel.events import Events, event_type, event_type_name
from vessel.images import Images
from vessel._streams import Stream

__version__ = "0.1.0"

__all__ = [
    "Client", "TLS", "DEFAULT_ADDRESS", "from_env", "resolve", "config_path", "Endpoint",
    "ConfigError",
    "Images", "Containers", "Container", "Process", "Output", "RunResult", "ContainerError",
    "Events", "Networks", "Stream", "process_spec", "event_type", "event_type_name",
    "VesselError", "InvalidArgumentError", "NotFoundError", "AlreadyExistsError",
    "FailedPreconditionError", "UnavailableError", "DeadlineExceededError",
    "UnauthenticatedError", "PermissionDeniedError", "UnimplementedError",
]
