"""Rate limiting: a smooth fixed rate, or one that adapts to the server's 429s.

Both limiters share one interface: ``await limiter.acquire()`` before a
request is sent (it returns the send time), then ``limiter.on_success(sent_at)`` or
``limiter.on_throttle(sent_at)`` when the answer arrives. Concurrency is not
limited here but by the client, before :meth:`acquire` is called.
"""

from __future__ import annotations

from typing import Protocol

from fwprep._clock import SYSTEM_CLOCK, Clock
from fwprep.errors import InputError

__all__ = ["AdaptiveRateLimiter", "FixedRateLimiter", "RateLimiter"]


class RateLimiter(Protocol):
    """What the client needs from a rate limiter."""

    async def acquire(self) -> float:
        """Wait until one request may be sent; return the monotonic send time."""
        ...

    def on_success(self, sent_at: float) -> None:
        """Record an answer that was not a 429, for a request sent at ``sent_at``."""
        ...

    def on_throttle(self, sent_at: float) -> None:
        """Record a 429 for a request sent at ``sent_at``."""
        ...


class FixedRateLimiter:
    """Send at most ``rate`` requests a second, evenly spaced.

    Each :meth:`acquire` reserves the next free slot on a schedule spaced
    ``1 / rate`` seconds apart and sleeps until it comes, so the limit holds
    over every window, with no burst above it after an idle spell (a
    bucket of depth one). Waiters are served in the order they arrived.

    Args:
        rate: requests per second, > 0. ``FixedRateLimiter(100)`` sends one
            request every 10 ms at most.
        clock: where it reads the time and sleeps (default: the real clock).
    """

    def __init__(self, rate: float, *, clock: Clock | None = None) -> None:
        if not rate > 0:
            raise InputError(f"rate must be > 0 requests per second, got {rate!r}")
        self._rate = float(rate)
        self._next = 0.0
        self._clock = clock or SYSTEM_CLOCK

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
        slot = self._reserve(self._clock.now())
        delay = slot - self._clock.now()
        if delay > 0:
            await self._clock.sleep(delay)
        return self._clock.now()

    def on_success(self, sent_at: float) -> None:
        """A fixed rate does not change with the answers."""

    def on_throttle(self, sent_at: float) -> None:
        """A fixed rate does not change with the answers."""


class AdaptiveRateLimiter:
    """A send rate that finds the server's limit from the share of 429 answers.

    It starts unlimited and judges the answers in windows (at least
    ``window`` seconds and ``min_samples`` answers each):

    - more than ``high_fraction`` of them 429: the rate is lowered to what
      the server actually accepted in that window (its goodput), a little
      under, but at most halved at a time;
    - at most ``low_fraction`` of them 429: a limited rate grows by
      ``growth`` (10% a window by default), probing for more;
    - in between: the rate holds.

    So the client settles just under the account's limit with few 429s, and
    goodput stays close to the limit itself. Unlike a controller that cuts on
    every 429 (TCP-style AIMD), a thin stream of 429s that has nothing to do
    with the client's rate (a busy shard, a proxy) does not drag the rate
    down. Answers to requests sent before the last change of rate are not
    counted, so one burst is never judged twice.

    Args:
        high_fraction: share of 429s above which the rate is cut.
        low_fraction: share of 429s at or below which a limited rate grows.
        growth: the factor a limited rate grows by after a clean window.
        window: the shortest window, in seconds.
        min_samples: the fewest answers a window is judged on.
        min_rate: the floor, in requests per second.
        clock: where it reads the time and sleeps (default: the real clock).
    """

    def __init__(
        self,
        *,
        high_fraction: float = 0.2,
        low_fraction: float = 0.05,
        growth: float = 1.1,
        window: float = 0.25,
        min_samples: int = 10,
        min_rate: float = 0.1,
        clock: Clock | None = None,
    ) -> None:
        if not 0 <= low_fraction <= high_fraction < 1:
            raise InputError("need 0 <= low_fraction <= high_fraction < 1")
        if growth < 1 or window <= 0 or min_samples < 1 or min_rate <= 0:
            raise InputError("need growth >= 1, window > 0, min_samples >= 1 and min_rate > 0")
        self._clock = clock or SYSTEM_CLOCK
        self._high = high_fraction
        self._low = low_fraction
        self._growth = growth
        self._window = window
        self._min_samples = min_samples
        self._min_rate = min_rate
        self._rate: float | None = None
        self._next = 0.0
        self._changed_at = -1.0
        self._window_start: float | None = None
        self._answers = 0
        self._throttled = 0
        self.throttles = 0

    @property
    def rate(self) -> float | None:
        """The current limit in requests per second, ``None`` while unlimited."""
        return self._rate

    async def acquire(self) -> float:
        """Wait for this request's slot under the current rate; return the send time."""
        now = self._clock.now()
        if self._rate is not None:
            slot = max(now, self._next)
            self._next = slot + 1.0 / self._rate
            delay = slot - now
            if delay > 0:
                await self._clock.sleep(delay)
                now = self._clock.now()
        return now

    def on_success(self, sent_at: float) -> None:
        """Count an answer that was not a 429."""
        self._record(sent_at, throttled=False)

    def on_throttle(self, sent_at: float) -> None:
        """Count a 429 answer."""
        self.throttles += 1
        self._record(sent_at, throttled=True)

    def _record(self, sent_at: float, *, throttled: bool) -> None:
        if sent_at < self._changed_at:
            return  # sent under the previous rate: already judged
        if self._window_start is None:
            self._window_start = sent_at  # a window opens with its first request
        self._answers += 1
        self._throttled += throttled
        now = self._clock.now()
        elapsed = now - self._window_start
        if self._answers < self._min_samples or elapsed < self._window:
            return
        share = self._throttled / self._answers
        if share > self._high:
            goodput = (self._answers - self._throttled) / elapsed
            # Never below half the rate sent: when workers sit out a backoff, the
            # goodput understates what the server would take.
            sent = self._answers / elapsed
            target = max(self._min_rate, 0.95 * max(goodput, sent / 2))
            if self._rate is None or target < self._rate:
                self._set_rate(target, now)
            # else: the server took all the current rate allows; these 429s
            # came from requests booked under an earlier, higher rate.
        elif share <= self._low and self._rate is not None:
            self._set_rate(self._rate * self._growth, now)
        self._window_start = None
        self._answers = 0
        self._throttled = 0

    def _set_rate(self, rate: float, now: float) -> None:
        # Slots already handed out stay booked; the new spacing starts after them.
        self._rate = rate
        self._changed_at = now
