"""Both kernels boot vminitd and run a container: the vessel kernel (built by
kernel/build.sh, virtio built in) and Debian's cloud kernel (virtio modules
loaded by vminitd from the appended module archive)."""
import os

import pytest

from agentvm import A, AgentVM


@pytest.mark.parametrize("flavour", ["vessel", "stock"])
def test_kernel_boots_and_runs_echo(flavour):
    if flavour == "vessel":
        v = AgentVM()
    else:
        d = os.environ["VESSEL_STOCK_DIR"]
        v = AgentVM(kernel=os.path.join(d, "vmlinuz"), stock=True,
                    initrd_extra=os.path.join(d, "modules.cpio"))
    try:
        info = v.stub.Info(A.AgentInfoRequest(), timeout=10)
        if flavour == "vessel":
            assert info.kernel_release.endswith("-vessel")
        else:
            assert info.kernel_release.endswith("-cloud-amd64")
        out, err, ex = v.run("c", ["echo", "hi"])
        assert (out, ex.code) == (b"hi\n", 0)
        print("%s kernel: agent ready %d ms" % (flavour, v.boot["ready_ms"]))
        # Clean power-off: QEMU exits by itself.
        assert v.shutdown(timeout=20)
    finally:
        v.close()
