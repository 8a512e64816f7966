"""The host event stream (containers, processes, images, networks)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Union

from vessel._streams import Stream
from vessel.containers import TimeLike, _timestamp
from vessel.v1 import events_pb2, types_pb2

if TYPE_CHECKING:
    from vessel.client import Client

Event = types_pb2.Event
EventTypeLike = Union[int, str]


def event_type(t: EventTypeLike) -> int:
    """An EventType number from a number or a name: "container_exited",
    "CONTAINER_EXITED" or "EVENT_TYPE_CONTAINER_EXITED"."""
    if isinstance(t, int):
        return t
    name = t.upper()
    if not name.startswith("EVENT_TYPE_"):
        name = "EVENT_TYPE_" + name
    return types_pb2.EventType.Value(name)


def event_type_name(t: int) -> str:
    """"container_exited" for EVENT_TYPE_CONTAINER_EXITED."""
    return types_pb2.EventType.Name(t)[len("EVENT_TYPE_"):].lower()


class Events:
    """``client.events``: call it to subscribe. The raw gRPC method stays
    reachable as ``client.events.Subscribe(request)``."""

    def __init__(self, client: "Client", stub):
        self._client = client
        self.stub = stub

    def __getattr__(self, name: str):  # raw stub method (Subscribe)
        return getattr(self.stub, name)

    def __call__(self, types: Optional[Sequence[EventTypeLike]] = None, container_id: str = "",
                 since: TimeLike = None, after_sequence: int = 0,
                 timeout: Optional[float] = None) -> Stream[types_pb2.Event]:
        """Subscribes to events; returns an iterator of Event messages
        (``.type``, ``.sequence``, ``.container_id``, ``.exit_status``...)
        that runs until ``cancel()`` or the end of a ``with`` block (then it
        simply stops); with ``timeout`` (seconds) it raises
        DeadlineExceededError when that passes.

        types: only these (numbers or names like "container_exited");
        container_id: only about this container; since (datetime / epoch
        seconds) or after_sequence (the last sequence seen): replay history
        first.
        """
        req = events_pb2.EventsSubscribeRequest(
            types=[event_type(t) for t in types or []], container_id=container_id,
            since=_timestamp(since), after_sequence=after_sequence)
        return Stream(self.stub.Subscribe(req, timeout=timeout), lambda m: [m.event])

    subscribe = __call__
