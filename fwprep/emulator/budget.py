"""An account's request budget, in each shape Fireworks' documentation allows, and its 429s.

Fireworks documents the budget (10 to 6,000 requests a minute per account), not
its shape. "Per-minute request volume above the cap is rejected" fits each of:

- ``bucket``: a token bucket refilled at ``rpm / 60`` a second, ``burst``
  requests deep (default: a second's worth, at least one);
- ``window``: a fixed calendar minute that accepts ``rpm`` requests, then
  nothing until the next minute starts;
- ``sliding``: at most ``rpm`` requests in any trailing 60 seconds.

With ``count_refused``, a refused request spends budget too (a bucket's
token, a place in the sliding minute), as some servers count every request
they see; in a fixed minute it changes nothing, the minute being spent.

A 429 may carry no ``Retry-After``, the wait rounded up to whole seconds, the
exact wait, the wait in ``retry-after-ms``, or a fixed value whatever the
wait: :class:`RetryAfter` says which. The emulator and the test suite's
simulated accounts both use these, so that the client is judged on every
shape, not on the one it was tuned on.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal, get_args

import attrs

__all__ = ["SHAPES", "Budget", "LimitShape", "RetryAfter"]

LimitShape = Literal["bucket", "window", "sliding"]
"""The budget's shape: a token bucket, a fixed calendar minute, or a trailing 60 seconds."""

SHAPES: tuple[str, ...] = get_args(LimitShape)

_MINUTE = 60.0


@attrs.frozen
class RetryAfter:
    """What a 429 says about when to come back.

    ``mode`` is ``none`` (no header), ``seconds`` (``Retry-After``: the wait
    rounded up to whole seconds, at least 1), ``exact`` (``Retry-After`` in
    fractional seconds), ``ms`` (``retry-after-ms``: the wait in whole
    milliseconds) or ``fixed`` (``Retry-After: N`` whatever the wait).
    """

    mode: Literal["none", "seconds", "exact", "ms", "fixed"] = "none"
    fixed: float = 1.0

    @classmethod
    def parse(cls, value: RetryAfter | str | bool | None) -> RetryAfter:
        """Read ``none``, ``seconds``, ``exact``, ``ms`` or ``fixed:N`` (``True``: ``seconds``).

        Raises:
            ValueError: for any other text, or a fixed value that is not a
                finite number of seconds >= 0.
        """
        if isinstance(value, RetryAfter):
            return value
        if value is None or value is False:
            return cls("none")
        if value is True:
            return cls("seconds")
        text = str(value).strip().lower()
        if text in ("none", "seconds", "exact", "ms"):
            return cls(text)  # type: ignore[arg-type]
        kind, _, number = text.partition(":")
        if kind == "fixed":
            try:
                seconds = float(number)
            except ValueError:
                seconds = math.nan
            if 0 <= seconds < math.inf:
                return cls("fixed", seconds)
        raise ValueError(
            f"unknown Retry-After mode {value!r}: use none, seconds, exact, ms or fixed:N"
        )

    def __str__(self) -> str:
        return f"fixed:{self.fixed:g}" if self.mode == "fixed" else self.mode

    def headers(self, wait: float) -> dict[str, str]:
        """The headers of a 429 whose request would be accepted ``wait`` seconds from now."""
        if self.mode == "seconds":
            return {"Retry-After": str(max(1, math.ceil(wait)))}
        if self.mode == "exact":
            return {"Retry-After": f"{max(wait, 0.0):.3f}"}
        if self.mode == "ms":
            return {"retry-after-ms": str(max(0, math.ceil(wait * 1000)))}
        if self.mode == "fixed":
            return {"Retry-After": f"{self.fixed:g}"}
        return {}


class Budget:
    """One account's budget: :meth:`take` accepts a request or says how long until one would be.

    Args:
        rpm: requests a minute.
        shape: ``bucket``, ``window`` or ``sliding`` (see the module's text).
        burst: the bucket's depth in requests (``bucket`` only; default a
            second's worth, at least 1).
        count_refused: refused requests spend budget too.
        start: the clock's reading when the budget starts; a bucket starts
            full, and calendar minutes begin at ``start - phase``.
        phase: seconds of the first calendar minute already gone at ``start``
            (``window`` only): a job rarely starts as a minute does.
    """

    def __init__(
        self,
        rpm: float,
        shape: LimitShape = "bucket",
        *,
        burst: float | None = None,
        count_refused: bool = False,
        start: float = 0.0,
        phase: float = 0.0,
    ) -> None:
        if shape not in SHAPES:
            raise ValueError(f"unknown limit shape {shape!r}: use {', '.join(SHAPES)}")
        if not 0 < rpm < math.inf:
            raise ValueError(f"rpm must be a finite number > 0, got {rpm!r}")
        self.rpm = float(rpm)
        self.shape = shape
        self.count_refused = count_refused
        self.depth = float(burst) if burst is not None else max(1.0, self.rpm / _MINUTE)
        self._tokens = self.depth
        self._stamp = start
        self._origin = start - phase
        self._window = -1  # the calendar minute counted, and how many it holds
        self._count = 0
        self._times: deque[float] = deque()

    def take(self, now: float) -> float:
        """Spend budget on a request arriving at ``now``: 0 if accepted, else the wait."""
        if self.shape == "bucket":
            return self._bucket(now)
        if self.shape == "window":
            return self._calendar(now)
        return self._sliding(now)

    def _bucket(self, now: float) -> float:
        per_second = self.rpm / _MINUTE
        self._tokens = min(self.depth, self._tokens + (now - self._stamp) * per_second)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        if self.count_refused:  # this request's token too: the wait told is the true one
            self._tokens -= 1.0
        return (1.0 - self._tokens) / per_second

    def _calendar(self, now: float) -> float:
        window = math.floor((now - self._origin) / _MINUTE)
        if window != self._window:
            self._window, self._count = window, 0
        accepted = self._count < self.rpm
        if accepted or self.count_refused:
            self._count += 1
        if accepted:
            return 0.0
        return max(self._origin + (window + 1) * _MINUTE - now, 1e-9)

    def _sliding(self, now: float) -> float:
        times = self._times
        while times and times[0] <= now - _MINUTE:
            times.popleft()
        accepted = len(times) < self.rpm
        if accepted or self.count_refused:
            times.append(now)
        if accepted:
            return 0.0
        # A place frees when the request a whole limit back leaves the trailing minute.
        return max(times[len(times) - math.ceil(self.rpm)] + _MINUTE - now, 1e-9)
