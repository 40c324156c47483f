"""Rate limiting: a smooth fixed rate, or one that adapts to the server's 429s.

Both limiters share one interface: ``await limiter.acquire()`` before a
request is sent (it returns the send time), then ``limiter.on_success()`` or
``limiter.on_throttle(sent_at)`` when the answer arrives. Concurrency is not
limited here but by the client, before :meth:`acquire` is called.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Protocol

import anyio

__all__ = ["AdaptiveRateLimiter", "RateLimiter", "TokenBucket"]


class RateLimiter(Protocol):
    """What the client needs from a rate limiter."""

    async def acquire(self) -> float:
        """Wait until one request may be sent; return the monotonic send time."""
        ...

    def on_success(self) -> None:
        """Record an answer that was not a 429."""
        ...

    def on_throttle(self, sent_at: float) -> None:
        """Record a 429 for a request sent at ``sent_at``."""
        ...


class TokenBucket:
    """Send at most ``rate`` requests a second, evenly spaced.

    Each :meth:`acquire` reserves the next free slot on a schedule spaced
    ``1 / rate`` seconds apart and sleeps until it comes, so the limit holds
    over every window, with no burst above it after an idle spell (a
    bucket of depth one). Waiters are served in the order they arrived.

    Args:
        rate: requests per second, > 0. ``TokenBucket(100)`` sends one request
            every 10 ms at most.
    """

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 requests per second, got {rate!r}")
        self._rate = float(rate)
        self._next = 0.0

    @property
    def rate(self) -> float:
        """The limit, in requests per second."""
        return self._rate

    def _reserve(self, now: float) -> float:
        slot = max(now, self._next)
        self._next = slot + 1.0 / self._rate
        return slot

    async def acquire(self) -> float:
        """Wait for this request's slot; return the monotonic time it was sent at."""
        slot = self._reserve(time.monotonic())
        delay = slot - time.monotonic()
        if delay > 0:
            await anyio.sleep(delay)
        return time.monotonic()

    def on_success(self) -> None:
        """A fixed rate does not change with the answers."""

    def on_throttle(self, sent_at: float) -> None:
        """A fixed rate does not change with the answers."""


class AdaptiveRateLimiter:
    """A send rate that finds the server's limit from its 429 answers.

    It starts unlimited. On the first 429 it measures the rate it was
    actually sending at and cuts that by ``decrease_factor``; every later
    429 cuts the current rate again, but only once per burst: a 429 for a
    request sent before the last cut says nothing new and is ignored. While
    answers succeed the rate grows by ``increase_per_second`` requests a
    second every second, so after a cut it climbs back toward the limit, is
    cut again just above it, and settles in a saw-tooth under it (AIMD, as
    TCP and botocore's adaptive retry mode do).

    Args:
        decrease_factor: the multiplier applied on a 429, between 0 and 1.
        increase_per_second: additive regrowth, in requests/second per second.
        min_rate: the floor, in requests per second.
    """

    def __init__(
        self,
        *,
        decrease_factor: float = 0.7,
        increase_per_second: float = 1.0,
        min_rate: float = 0.1,
    ) -> None:
        if not 0 < decrease_factor < 1:
            raise ValueError("decrease_factor must be between 0 and 1")
        if increase_per_second < 0 or min_rate <= 0:
            raise ValueError("increase_per_second must be >= 0 and min_rate > 0")
        self._decrease = decrease_factor
        self._increase = increase_per_second
        self._min_rate = min_rate
        self._rate: float | None = None
        self._last_cut = -1.0
        self._last_grow = 0.0
        self._next = 0.0
        self._sends: deque[float] = deque(maxlen=64)
        self.throttles = 0

    @property
    def rate(self) -> float | None:
        """The current limit in requests per second, ``None`` while unlimited."""
        return self._rate

    def _measured_rate(self, now: float) -> float:
        recent = [t for t in self._sends if now - t <= 2.0]
        if len(recent) < 2:
            return max(self._min_rate, float(len(recent)))
        span = max(recent[-1] - recent[0], 1e-3)
        return (len(recent) - 1) / span

    async def acquire(self) -> float:
        """Wait for this request's slot under the current rate; return its send time."""
        now = time.monotonic()
        if self._rate is not None:
            slot = max(now, self._next)
            self._next = slot + 1.0 / self._rate
            delay = slot - now
            if delay > 0:
                await anyio.sleep(delay)
            now = time.monotonic()
        self._sends.append(now)
        return now

    def on_success(self) -> None:
        """Grow the rate additively, at most ``increase_per_second`` per second."""
        if self._rate is None:
            return
        now = time.monotonic()
        elapsed = now - self._last_grow
        if elapsed <= 0:
            return
        self._rate += self._increase * min(elapsed, 1.0)
        self._last_grow = now

    def on_throttle(self, sent_at: float) -> None:
        """Cut the rate multiplicatively, once per burst of 429s."""
        self.throttles += 1
        if sent_at < self._last_cut:
            return
        now = time.monotonic()
        current = self._rate if self._rate is not None else self._measured_rate(now)
        self._rate = max(self._min_rate, current * self._decrease)
        self._last_cut = now
        self._last_grow = now
        self._next = max(self._next, now)
