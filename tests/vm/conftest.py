import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agentvm import AgentVM  # noqa: E402


@pytest.fixture(scope="session")
def vm():
    """One booted VM (vessel kernel, 2 vCPUs) shared by the tests of a file."""
    v = AgentVM(vcpus=2, memory=512)
    yield v
    v.close()
