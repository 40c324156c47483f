"""When to retry, how long to wait, and how much retrying a client may do.

:class:`RetryPolicy` holds the rules; :class:`RetryBudget` is shared by all
requests of one client so a failing API is not hammered; :func:`parse_retry_after`
reads the server's own wait request. :func:`set_testing` makes every wait
zero, for test suites.
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
from collections.abc import Mapping
from datetime import UTC, datetime

import attrs

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "RetryBudget",
    "RetryPolicy",
    "is_testing",
    "parse_retry_after",
    "set_testing",
]

DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})

_testing = False


def set_testing(enabled: bool = True) -> None:
    """Turn every backoff and ``Retry-After`` wait into no wait at all.

    Retries still happen and are still counted, so a test suite exercises the
    real retry logic without spending seconds asleep. Affects every client
    in the process; call ``set_testing(False)`` to restore normal waits.
    """
    global _testing
    _testing = enabled


def is_testing() -> bool:
    """Whether :func:`set_testing` has switched waits off."""
    return _testing


def _positive(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"{attr.name} must be a finite number >= 0, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """The rules for retrying one request.

    Retried: connection failures, resets, timeouts, and the statuses in
    ``retry_statuses`` (408, 429, 500, 502, 503, 504 by default), plus 409
    when the error code is ``ABORTED``. Never retried: 400, 401, 403, 404,
    422, and 409 ``ALREADY_EXISTS`` (which counts as success).

    The wait before retry ``n`` (``n`` = 1 for the first retry) is
    ``min(initial_backoff * 2**(n-1), max_backoff)``, multiplied by a random
    factor in ``[1 - jitter, 1]`` so that many clients do not retry in step.
    When the server sends ``retry-after-ms`` or ``Retry-After``, that wait is
    used instead; if it is longer than ``max_retry_after`` seconds the request
    fails at once with the wait in its message, instead of holding a worker.

    Attributes:
        max_attempts: total tries including the first; 1 disables retries.
        initial_backoff: seconds before the first retry.
        max_backoff: the longest computed wait, in seconds.
        jitter: the fraction of the wait that is random, from 0 to 1.
        max_retry_after: the longest server-requested wait obeyed, in seconds.
        retry_statuses: HTTP statuses that are retried.
    """

    max_attempts: int = attrs.field(default=5)
    initial_backoff: float = attrs.field(default=0.5, validator=_positive)
    max_backoff: float = attrs.field(default=8.0, validator=_positive)
    jitter: float = attrs.field(default=0.25, validator=_positive)
    max_retry_after: float = attrs.field(default=60.0, validator=_positive)
    retry_statuses: frozenset[int] = attrs.field(
        default=DEFAULT_RETRY_STATUSES, converter=frozenset
    )

    @max_attempts.validator
    def _check_attempts(self, _attr: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, got {value!r}")

    @jitter.validator
    def _check_jitter(self, _attr: attrs.Attribute[float], value: float) -> None:
        if value > 1:
            raise ValueError(f"jitter must be between 0 and 1, got {value!r}")

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), jitter included."""
        if _testing:
            return 0.0
        exponent = min(max(retry - 1, 0), 62)
        base = min(self.initial_backoff * (2.0**exponent), self.max_backoff)
        factor = 1.0 - self.jitter * (rng or random).random()
        return base * factor


class RetryBudget:
    """A token bucket that caps how much retrying a whole client may do.

    Shared by every request of one client, as in botocore's standard retry
    mode: the bucket starts with ``capacity`` tokens; each retry takes
    ``retry_cost`` tokens (``timeout_cost`` after a timeout or a broken
    connection); a request that succeeds puts back ``success_refund`` (and
    the cost of its own retries). When a retry cannot be paid for, the
    request fails with its last error instead of retrying, so a batch facing
    an API that is down stops hammering it while the first requests are
    still retrying. Retries after a 429 are not charged: the server is
    answering, and the client's rate limiter (with ``Retry-After``) paces
    them. Thread-safe.
    """

    def __init__(
        self,
        capacity: int = 500,
        *,
        retry_cost: int = 5,
        timeout_cost: int = 10,
        success_refund: int = 1,
    ) -> None:
        if capacity < 0 or retry_cost < 0 or timeout_cost < 0 or success_refund < 0:
            raise ValueError("retry budget numbers must be >= 0")
        self.capacity = capacity
        self.retry_cost = retry_cost
        self.timeout_cost = timeout_cost
        self.success_refund = success_refund
        self._tokens = capacity
        self._lock = threading.Lock()

    @property
    def tokens(self) -> int:
        """Tokens left now."""
        return self._tokens

    def try_acquire(self, *, timeout: bool = False) -> int | None:
        """Take the cost of one retry and return it, or ``None`` if it cannot be paid."""
        cost = self.timeout_cost if timeout else self.retry_cost
        with self._lock:
            if cost > self._tokens:
                return None
            self._tokens -= cost
            return cost

    def release(self, spent: int = 0) -> None:
        """Record a success: refund ``spent`` (what its retries took) plus the success refund."""
        if not spent and self._tokens >= self.capacity:
            return  # full already: the common case needs no lock
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + spent + self.success_refund)

    def __repr__(self) -> str:
        return f"RetryBudget(tokens={self._tokens}/{self.capacity})"


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds the server asked to wait, from ``retry-after-ms`` or ``Retry-After``.

    ``retry-after-ms`` (milliseconds) wins when present and valid. ``Retry-After``
    may be a number of seconds (``"120"``, ``"1.5"``) or an HTTP date; a date
    in the past means 0. Header names are matched case-insensitively. Returns
    ``None`` when neither header is present or readable; never raises.
    """
    lowered = {str(k).lower(): v for k, v in headers.items()}
    ms = _number(lowered.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(str(raw).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _number(raw: object) -> float | None:
    if raw is None:
        return None
    text = str(raw).strip()
    if not text or not all(c.isdigit() or c == "." for c in text):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if math.isnan(value) or math.isinf(value):
        return None
    return value
