"""The vesseld every contract test module talks to: real VMs, in a network
namespace of its own, with the busybox test image loaded. A module may name
other images: IMAGES = {reference: busybox_image_tar keyword arguments}, and
more vesseld flags: VESSELD_ARGS."""
import os

import pytest

from contract import ARGS, IMAGE, INITRD, KERNEL

import vessel
from test_containers import busybox_image_tar
from vesseld import Vesseld


@pytest.fixture(scope="module")
def c(tmp_path_factory, request):
    """A client; c.daemon is its Vesseld."""
    assert KERNEL and os.path.exists(KERNEL), "VESSEL_KERNEL must name the guest kernel"
    assert INITRD and os.path.exists(INITRD), "VESSEL_INITRD must name the initramfs"
    images = getattr(request.module, "IMAGES", {IMAGE: {}})
    extra = getattr(request.module, "VESSELD_ARGS", ())
    with Vesseld(*ARGS, *extra, netns=True) as d, vessel.Client(d.address, timeout=180) as client:
        for ref, kw in images.items():
            client.images.load(busybox_image_tar(str(tmp_path_factory.mktemp("img")), **kw),
                               reference=ref)
        client.daemon = d
        yield client
