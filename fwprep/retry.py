"""When to retry, how long to wait, and how much retrying a client may do.

:class:`RetryPolicy` holds the rules and makes every next-step decision
(:meth:`RetryPolicy.decide`), as a pure function of the attempt and what it
brought back; :class:`RetryBudget` is shared by all requests of one client so
a failing API is not hammered; :func:`parse_retry_after` reads the server's
own wait request. :func:`set_testing` makes every wait zero, for test suites.
"""

from __future__ import annotations

import enum
import math
import random
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import attrs

from fwprep.errors import ApiError, FwprepError, InputError, TransportError, with_note

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "Action",
    "Charge",
    "RetryBudget",
    "RetryPolicy",
    "Step",
    "Verdict",
    "is_testing",
    "parse_retry_after",
    "set_testing",
]

DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})

_testing = False


class _Testing:
    """What :func:`set_testing` returns: also a context manager that restores the old setting."""

    def __init__(self, previous: bool) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        global _testing
        _testing = self._previous


def set_testing(enabled: bool = True) -> _Testing:
    """Turn every backoff wait into no wait at all, for test suites.

    Retries still happen and are still counted, so a test suite exercises the
    real retry logic without spending seconds asleep. A wait the server asks
    for (``Retry-After``) is still obeyed: it is the server's pacing, and a
    client that ignored it would only collect more 429s from a rate-limited
    test server. Affects every client in the process. Call it once
    (``set_testing(False)`` restores normal waits), or use it as a context
    manager, which restores the previous setting on exit::

        with fwprep.set_testing():
            outcome = await client.prepare(item)
    """
    global _testing
    previous, _testing = _testing, enabled
    return _Testing(previous)


def is_testing() -> bool:
    """Whether :func:`set_testing` has switched waits off."""
    return _testing


def _positive(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not value >= 0 or math.isinf(value):
        raise InputError(f"{attr.name} must be a finite number >= 0, got {value!r}")


class Action(enum.Enum):
    """What an HTTP answer says, before any retry policy decides what to do about it."""

    SUCCESS = "success"
    """The request did what was asked."""
    ALREADY_DONE = "already_done"
    """409 ALREADY_EXISTS: nothing was left to do, which counts as success."""
    RETRY = "retry"
    """The answer itself says to try again (409 ABORTED), whatever the status list."""
    FAIL = "fail"
    """The answer itself says retrying will not help (any other 409)."""
    ERROR = "error"
    """An error status: the policy's ``retry_statuses`` say whether it is retried."""


@attrs.frozen
class Verdict:
    """The meaning of one HTTP answer: what to do, the error, and the wait the server asked for."""

    action: Action
    error: ApiError | None = None
    retry_after: float | None = None

    @property
    def throttled(self) -> bool:
        """Whether the answer was a 429: the server asks the client to slow down."""
        return self.error is not None and self.error.status == 429


class Charge(enum.Enum):
    """What a retry costs the client's :class:`RetryBudget`."""

    NONE = "none"
    """Nothing: a retry after a 429 is paced by the rate limiter instead."""
    RETRY = "retry"
    """The ordinary cost: an error status, or a connection that never opened."""
    TIMEOUT = "timeout"
    """The higher cost: a request that may have reached a struggling server."""


@attrs.frozen
class Step:
    """The next step for a request, as :meth:`RetryPolicy.decide` sees it.

    Attributes:
        retry: send the request again (after ``wait`` seconds), or stop.
        error: why the attempt failed; ``None`` when it succeeded.
        wait: seconds to wait before the retry.
        charge: what the retry costs the retry budget; a retry that cannot
            be paid for becomes a stop (:meth:`give_up`).
    """

    retry: bool
    error: FwprepError | None = None
    wait: float = 0.0
    charge: Charge = Charge.NONE

    def give_up(self, note: str) -> Step:
        """A stop instead of this retry, its error saying why (``note``)."""
        error = with_note(self.error, note) if self.error is not None else None
        return Step(False, error)


_DONE = Step(False)


def _status_set(statuses: Iterable[int]) -> frozenset[int]:
    """``retry_statuses`` as given (a set, a list, a tuple), kept as a frozenset of ints."""
    return frozenset(statuses)


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

    A 429 means "slow down", not "failed": a throttled attempt does not
    count toward ``max_attempts``, costs the retry budget nothing and, with
    no ``Retry-After``, goes back in line at once (the client's rate limiter
    is what slows down, for every request). A
    request fails for throttling only when the server asks for a wait longer
    than ``max_retry_after``, or when the client has been throttled for
    ``throttle_timeout`` seconds with none of its requests succeeding.

    Attributes:
        max_attempts: total tries including the first, 429s not counted; 1
            disables retries.
        initial_backoff: seconds before the first retry.
        max_backoff: the longest computed wait, in seconds.
        jitter: the fraction of the wait that is random, from 0 to 1.
        max_retry_after: the longest server-requested wait obeyed, in seconds.
        retry_statuses: HTTP statuses that are retried.
        throttle_timeout: how long a client may be throttled (429 after
            429, no request succeeding) before a throttled request fails;
            30 minutes by default.
    """

    max_attempts: int = attrs.field(default=5)
    initial_backoff: float = attrs.field(default=0.5, validator=_positive)
    max_backoff: float = attrs.field(default=8.0, validator=_positive)
    jitter: float = attrs.field(default=0.25, validator=_positive)
    max_retry_after: float = attrs.field(default=60.0, validator=_positive)
    retry_statuses: frozenset[int] = attrs.field(
        default=DEFAULT_RETRY_STATUSES, converter=_status_set
    )
    throttle_timeout: float = attrs.field(default=1800.0, validator=_positive)

    @max_attempts.validator
    def _check_attempts(self, _attr: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"max_attempts must be an integer >= 1, got {value!r}")

    @jitter.validator
    def _check_jitter(self, _attr: attrs.Attribute[float], value: float) -> None:
        if value > 1:
            raise InputError(f"jitter must be between 0 and 1, got {value!r}")

    def decide(
        self,
        attempt: int,
        result: Verdict | TransportError,
        rng: random.Random | None = None,
        *,
        throttled: int = 0,
        throttled_for: float = 0.0,
    ) -> Step:
        """The next step after attempt number ``attempt`` (1-based) came back with ``result``.

        ``result`` is the :class:`Verdict` on an answer, or the
        :class:`~fwprep.TransportError` when none arrived. ``throttled`` is
        how many of the request's attempts so far (this one included) were
        429s, and ``throttled_for`` how long the client has been throttled
        with no request succeeding. A pure function of its arguments and this
        policy (and :func:`set_testing`, which zeroes the backoff): no I/O, no
        clock, no event loop, the way urllib3's ``Retry.increment`` decides
        for its connection pool. In order:

        - success, or 409 ``ALREADY_EXISTS``: stop with no error;
        - an answer that retrying will not fix, or a transport error that
          ``halts`` (a proxy's 407, a certificate that does not verify):
          stop with its error;
        - a ``Retry-After`` longer than :attr:`max_retry_after`: stop, the
          error saying so, rather than hold a worker that long;
        - a 429 after :attr:`throttle_timeout` of throttling: stop, saying so;
        - ``max_attempts`` reached, 429s not counted: stop, saying after how many;
        - otherwise retry, after the server's ``Retry-After`` when it sent
          one, else after :meth:`backoff`; a 429 without ``Retry-After`` is
          retried with no wait of its own, since the rate limiter slows
          every request down. A retry after a 429 charges the retry budget
          nothing; one after a request that may have arrived charges the
          timeout cost.
        """
        retry_after: float | None = None
        if isinstance(result, TransportError):
            if result.halts:
                return Step(False, result)  # every retry would fail the same way
            error: FwprepError = result
            charge = Charge.TIMEOUT if result.may_have_arrived else Charge.RETRY
        else:
            if result.action in (Action.SUCCESS, Action.ALREADY_DONE) or result.error is None:
                return _DONE
            error = result.error
            if result.action is Action.FAIL or (
                result.action is Action.ERROR and error.status not in self.retry_statuses
            ):
                return Step(False, error)
            retry_after = result.retry_after
            if retry_after is not None and retry_after > self.max_retry_after:
                note = (
                    f"the server asked to wait {retry_after:g} s, longer than "
                    f"max_retry_after={self.max_retry_after:g} s"
                )
                return Step(False, with_note(error, note))
            if result.throttled:
                return self._after_throttle(error, retry_after, throttled, throttled_for, rng)
            charge = Charge.RETRY
        counted = attempt - throttled
        if counted >= self.max_attempts:
            if self.max_attempts > 1:
                error = with_note(error, f"gave up after {counted} attempts")
            return Step(False, error)
        wait = self.backoff(counted, rng) if retry_after is None else retry_after
        return Step(True, error, wait, charge)

    def _after_throttle(
        self,
        error: FwprepError,
        retry_after: float | None,
        throttled: int,
        throttled_for: float,
        rng: random.Random | None,
    ) -> Step:
        if throttled_for >= self.throttle_timeout:
            note = (
                f"throttled for {throttled_for:.0f} s with no request succeeding "
                f"(throttle_timeout={self.throttle_timeout:g} s)"
            )
            return Step(False, with_note(error, note))
        # Without Retry-After the rate limiter slows every request down: the
        # throttled one goes back in line at once, with no wait of its own.
        return Step(True, error, retry_after or 0.0, Charge.NONE)

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
            raise InputError("retry budget numbers must be >= 0")
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
    import email.utils  # an HTTP date is rare: its parser is loaded when one comes

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
