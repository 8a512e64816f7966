import os
import sys
import tempfile
import shutil

import pytest

# The Python client under test, straight from the tree.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "clients", "python"))
sys.path.insert(0, os.path.dirname(__file__))

from vesseld import Vesseld, make_certs  # noqa: E402


@pytest.fixture
def daemon():
    with Vesseld() as d:
        yield d


@pytest.fixture(scope="session")
def certs():
    d = tempfile.mkdtemp(prefix="vsl-certs-", dir="/tmp")
    make_certs(os.path.join(d, "good"))
    make_certs(os.path.join(d, "other"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
