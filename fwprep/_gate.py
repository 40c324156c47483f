"""The send gate: how a stopping batch keeps its client's requests from leaving.

A batch runs each item's requests with its :class:`SendGate` set in
:data:`GATE`. The client checks the gate where a request would leave (before
it waits for a slot, once it has its slot and the limiter's go-ahead, and
before it waits to retry) and marks the task as on the wire while the
transport holds the request. When the batch stops, it closes the gate: a
request not yet on the wire never leaves (:class:`RequestNotSent`), and one on
the wire is left its grace period to be answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["GATE", "RequestNotSent", "SendGate"]


class RequestNotSent(Exception):
    """The gate closed before the request could leave.

    ``retry`` tells whether an earlier request of the same exchange had left
    (this one was a retry), so that the item may have reached the server.
    """

    def __init__(self, *, retry: bool = False) -> None:
        super().__init__("the batch stopped before a retry left" if retry else "not sent")
        self.retry = retry


class SendGate:
    """Whether the requests of a batch may still leave, and which are on the wire now."""

    def __init__(self) -> None:
        self.closed = False
        self.on_wire: set[asyncio.Task[object]] = set()

    def check(self, *, retry: bool = False) -> None:
        """Raise :class:`RequestNotSent` once the gate is closed (``retry``: for a retry)."""
        if self.closed:
            raise RequestNotSent(retry=retry)

    @contextlib.contextmanager
    def sending(self, *, retry: bool = False) -> Iterator[None]:
        """Check the gate, then mark the current task on the wire for the block."""
        self.check(retry=retry)
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always inside a task under asyncio
            yield
            return
        self.on_wire.add(task)
        try:
            yield
        finally:
            self.on_wire.discard(task)


GATE: ContextVar[SendGate | None] = ContextVar("fwprep_send_gate", default=None)
"""The gate of the batch whose item the current task is working on (``None`` outside one)."""
