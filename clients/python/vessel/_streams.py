"""Server-stream iterators that can be cancelled and used as context managers."""
from __future__ import annotations

import collections
from typing import Callable, Deque, Generic, Iterable, Iterator, TypeVar

import grpc

from vessel.errors import error_from_rpc

T = TypeVar("T")


class Stream(Generic[T]):
    """An iterator over the records of a server-streaming RPC.

    Iterating yields records (events, log entries...) as they arrive and
    raises VesselError if the call fails. ``cancel()`` (also from another
    thread, or on leaving a ``with`` block) ends the call: the iteration then
    simply stops.
    """

    def __init__(self, call, records: Callable[[object], Iterable[T]]):
        self._call = call
        self._records = records
        self._pending: Deque[T] = collections.deque()
        self._cancelled = False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        while not self._pending:
            if self._cancelled:
                raise StopIteration
            try:
                msg = next(self._call)
            except grpc.RpcError as e:
                if self._cancelled and e.code() == grpc.StatusCode.CANCELLED:
                    raise StopIteration from None
                raise error_from_rpc(e) from None
            self._pending.extend(self._records(msg))
        return self._pending.popleft()

    def cancel(self) -> None:
        """Ends the call; a blocked iteration (in any thread) stops."""
        self._cancelled = True
        self._call.cancel()

    close = cancel

    def __enter__(self) -> "Stream[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()
