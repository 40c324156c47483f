"""Time, as the client and the limiters see it: injectable, so tests need no global patch."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    """Where fwprep reads the time and sleeps.

    Pass one as ``clock=`` to :class:`~fwprep.FireworksClient` or to a rate
    limiter to run them on simulated time: a test's clock can advance
    ``now()`` inside ``sleep()`` and return at once, so a test of a
    ten-minute backoff takes no time and patches nothing globally.
    """

    def now(self) -> float:
        """Seconds on a monotonic scale (only differences mean anything)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (zero or less: just let other tasks run)."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    now = staticmethod(time.monotonic)
    """``time.monotonic()`` itself: read several times a request, so no frame of fwprep's own."""

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)``."""
        await asyncio.sleep(max(seconds, 0.0))


SYSTEM_CLOCK = SystemClock()
