"""Python client of vessel: Linux containers, each in its own lightweight VM.

    import vessel
    with vessel.Client("unix:///run/vessel/vessel.sock") as c:
        print(c.version().version)
"""
from vessel.client import DEFAULT_ADDRESS, TLS, Client, VesselError

__all__ = ["Client", "TLS", "VesselError", "DEFAULT_ADDRESS"]
