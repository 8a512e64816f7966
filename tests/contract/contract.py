"""What the contract tests share: paths, the test image, and the status
code a call fails with. (conftest.py holds the vesseld fixture.)"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "..")
sys.path[:0] = [os.path.join(HERE, "..", "integration"), os.path.join(SRC, "clients", "python")]

import grpc  # noqa: E402
import pytest  # noqa: E402
import vessel  # noqa: E402

KERNEL = os.environ.get("VESSEL_KERNEL", "")
INITRD = os.environ.get("VESSEL_INITRD", "")
ARGS = ("--kernel", KERNEL, "--initrd", INITRD)
IMAGE = "busybox:test"


def code(f):
    """The status code f fails with (stubs raise RpcError, the client
    VesselError)."""
    with pytest.raises((grpc.RpcError, vessel.VesselError)) as e:
        f()
    return e.value.code() if isinstance(e.value, grpc.RpcError) else e.value.code
