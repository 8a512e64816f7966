#!/usr/bin/env python3
"""Runs a command in a container VM, then starts a second container and
streams its log while it writes.

    VESSEL_HOST     vesseld to talk to (unix:///PATH, or tcp://HOST:PORT with
                    the three files below); else VESSEL_CONTEXT or the current
                    context of `vesselctl context`; else the local socket
    VESSEL_TLS_CA, VESSEL_TLS_CERT, VESSEL_TLS_KEY   PEM files for TCP + mutual TLS
    VESSEL_IMAGE    image to use (default docker.io/library/busybox:latest;
                    pulled when it is not local yet)

Needs the `vessel` package: pip install clients/python (or PYTHONPATH=clients/python).
"""
import os
import sys

import vessel
from vessel.v1 import types_pb2


def connect() -> vessel.Client:
    # The vesseld vesselctl would talk to (VESSEL_HOST, VESSEL_CONTEXT, the
    # contexts file); vessel.Client(address, tls=...) names one outright.
    return vessel.from_env(timeout=120)


def show_progress(p) -> None:
    if p.bytes_total:
        print(f"\r  pulling: {p.bytes_done * 100 // p.bytes_total:3d}%", end="", flush=True)


def main() -> int:
    image = os.environ.get("VESSEL_IMAGE", "docker.io/library/busybox:latest")
    with connect() as client:
        v = client.version()
        print(f"vesseld {v.version} at {client.address}")

        if not client.images.exists(image):
            img = client.images.pull(image, progress=show_progress)
            print(f"\npulled {img.name} ({img.target.digest})")

        # One command, start to finish: output and exit code (the container
        # is deleted afterwards).
        result = client.containers.run(image, ["sh", "-c", "echo hello from a VM; uname -s"])
        print(f"run: exit code {result.exit_code}, output: {result.stdout.decode()!r}")

        # A container that writes for a while; follow its log until it stops.
        # Leaving the `with` block deletes the container.
        script = "for i in 1 2 3; do echo tick $i; sleep 0.2; done; echo done >&2"
        with client.containers.create(image, ["sh", "-c", script]) as ct:
            ct.start()
            for entry in ct.logs(follow=True):
                stream = "err" if entry.stream == types_pb2.STDIO_STREAM_STDERR else "out"
                print(f"log[{stream}]: {entry.data.decode().rstrip()}")
            status = ct.wait()
            print(f"container {ct.id[:12]} exited with code {status.code}")
    return 0 if result.exit_code == 0 and status.code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
