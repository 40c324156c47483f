"""Rate limiting: a fixed rate, or an adaptive one that finds the account's limit from its 429s.

Both limiters share one interface: ``await limiter.acquire()`` before a
request is sent (it returns the send time), then ``limiter.on_success(sent_at)``
or ``limiter.on_throttle(sent_at)`` when the answer arrives, and
``limiter.pause(seconds)`` when a 429 carries ``Retry-After``. Both let
requests go one after another, in the order they asked; how many are in
flight at once is the client's ``max_concurrency``, not the limiter's.
The adaptive limiter's rules are listed on :class:`AdaptiveRateLimiter`,
and every number they use is a field of :class:`AdaptiveConfig`.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any, Protocol

import attrs

from fwprep._clock import SYSTEM_CLOCK, Clock
from fwprep._slots import Slots
from fwprep.errors import InputError

__all__ = [
    "LEAST_BUDGET_RPM",
    "MOST_BUDGET_RPM",
    "AdaptiveConfig",
    "AdaptiveRateLimiter",
    "FixedRateLimiter",
    "RateLimiter",
]

_RESOLUTION = 1e-6  # a send due within a microsecond is due now (no endless tiny naps)
_MINUTE = 60.0  # the unit Fireworks states the budget in: no spent minute lasts longer

LEAST_BUDGET_RPM = 10
"""The smallest budget Fireworks documents for an account, in requests a minute."""
MOST_BUDGET_RPM = 6000
"""The largest budget Fireworks documents for an account, in requests a minute."""


class RateLimiter(Protocol):
    """What the client needs from a rate limiter: everything it calls on one.

    On a 429 the client calls ``pause`` with the server's ``Retry-After``
    (when there is one), then ``on_throttle``, and sends the refused
    request back in line no sooner than that ``Retry-After``: slowing down
    is the limiter's part, so a limiter of your own must slow down on 429s
    or they come back as fast as it lets requests go.
    """

    @property
    def rate(self) -> float:
        """The current pace, in requests per second (reads of model state take a share)."""
        ...

    async def acquire(self) -> float:
        """Wait until one request may be sent; return the monotonic send time."""
        ...

    def on_success(self, sent_at: float) -> None:
        """Record an answer that was not a 429, for a request sent at ``sent_at``."""
        ...

    def on_throttle(self, sent_at: float) -> None:
        """Record a 429 for a request sent at ``sent_at``."""
        ...

    def pause(self, seconds: float) -> None:
        """A 429's ``Retry-After``, in seconds: the limiter decides who waits it."""
        ...


class _Pacer:
    """Requests leave one at a time, ``1 / rate`` seconds apart and never during a pause.

    Waiters queue in arrival order for the head of the line (one :class:`Slots`);
    the one at the head sleeps until its send time and then hands the head to
    the next, so a change of pace (a new rate, a pause) reaches the very next
    request: the head is woken to recompute its time, and the rest wait behind it.
    """

    def __init__(self, rate: float, clock: Clock | None) -> None:
        self._rate = float(rate)
        self._clock = clock or SYSTEM_CLOCK
        self._head = Slots(1)
        self._last_sent = -math.inf
        self._paused_until = -math.inf
        self._wake: asyncio.Future[None] | None = None

    def _interval(self) -> float:
        return 1.0 / self._rate

    def _due(self) -> float:
        return max(self._last_sent + self._interval(), self._paused_until)

    @property
    def paused_until(self) -> float:
        """The monotonic time a server's ``Retry-After`` pauses requests until (past: none)."""
        return self._paused_until

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` from now (a server's ``Retry-After``).

        Every request waiting for its turn waits until then; afterwards they
        leave at the limiter's pace again, one after another.
        """
        self._paused_until = max(self._paused_until, self._clock.now() + seconds)
        self._changed()

    def _resume(self) -> None:
        """End a pause now: the requests waiting go at the limiter's pace again."""
        self._paused_until = min(self._paused_until, self._clock.now())
        self._changed()

    def _changed(self) -> None:
        """The pace changed: wake the head waiter to recompute its send time."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def acquire(self) -> float:
        """Wait for this request's turn at the current pace; return the time it was sent."""
        now = self._clock.now()
        if not self._head.take_now():
            await self._head.take()  # the request ahead hands the head over when it leaves
        elif now + _RESOLUTION >= self._due():  # nobody waiting, and due: go now
            self._head.give()
            self._last_sent = now
            self._sent(waited=False)
            return now
        try:
            while (due := self._due()) > (now := self._clock.now()) + _RESOLUTION:
                await self._nap(due - now)
        finally:
            self._head.give()
        # Keep to the schedule (a late wake-up does not push every later slot
        # back) without letting a long stall turn into a burst.
        self._last_sent = max(due, now - self._interval())
        self._sent(waited=True)
        return now

    def _sent(self, *, waited: bool) -> None:
        """Hook: a request was just let go (``waited``: it had to wait for the pace)."""

    async def _nap(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._wake = loop.create_future()
        nap = loop.create_task(self._clock.sleep(seconds))
        try:
            await asyncio.wait((nap, self._wake), return_when=asyncio.FIRST_COMPLETED)
        finally:
            nap.cancel()
            self._wake = None


class FixedRateLimiter(_Pacer):
    """Send at most ``rate`` requests a second, evenly spaced.

    Requests leave ``1 / rate`` seconds apart, in the order they asked, so
    the limit holds over every window, with no burst above it after an idle
    spell (a bucket of depth one). A 429 with ``Retry-After`` pauses every
    request until then; the rate itself never changes.

    Args:
        rate: requests per second, > 0. ``FixedRateLimiter(100)`` sends one
            request every 10 ms at most; ``FixedRateLimiter(600 / 60)`` is
            600 requests a minute.
        clock: where it reads the time and sleeps (default: the real clock).
    """

    def __init__(self, rate: float, *, clock: Clock | None = None) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise InputError(f"rate must be > 0 requests per second, got {rate!r}")
        super().__init__(rate, clock)

    @property
    def rate(self) -> float:
        """The limit, in requests per second."""
        return self._rate

    def on_success(self, sent_at: float) -> None:
        """A fixed rate does not change with the answers."""

    def on_throttle(self, sent_at: float) -> None:
        """A fixed rate does not change with the answers (a ``Retry-After`` pauses it)."""


def _fraction(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value < 1:
        raise InputError(f"need 0 <= {attribute.name} < 1, got {value!r}")


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 < value < math.inf:
        raise InputError(f"need {attribute.name} > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class AdaptiveConfig:
    """Every number an :class:`AdaptiveRateLimiter` runs on, each named for its rule.

    ``AdaptiveRateLimiter(initial_rate=50)`` changes one of them;
    ``AdaptiveRateLimiter(config=AdaptiveConfig(...))`` gives them all.

    Attributes:
        initial_rate: requests a second at the start.
        min_rate: the floor, in requests a second. The default, 9 a
            minute, is under the smallest account limit (10 a minute).
        window: the shortest span of answers judged, in seconds, and the
            shortest time between two doublings of the start.
        min_samples: the fewest answers a window is judged on (or three
            clean ones over ``2 * slow`` seconds, at a slow rate).
        high: the share of 429s in a window above which the rate is cut.
        low: the share at or below which the rate grows.
        growth: the factor the rate grows by in a second after a clean
            window; each clean window in a row doubles the step.
        max_growth: the most the rate grows in one second.
        closed_after: 429s in a row that show the account closed for now.
        probe_cap: the longest backoff, in seconds, between probes of an
            account closed for under a minute (a longer ``Retry-After`` is
            waited in full).
        slow: seconds between requests from which a client alone on its
            account keeps to a slow account's spacing.
        jitter: how far (relative) the network may move an answer across a
            bound of the spacing; also the first step the spacing is
            narrowed by, and how narrow it gets.
    """

    initial_rate: float = attrs.field(default=10.0, validator=_positive)
    min_rate: float = attrs.field(default=0.15, validator=_positive)
    window: float = attrs.field(default=0.25, validator=_positive)
    min_samples: int = attrs.field(default=10, validator=_positive)
    high: float = attrs.field(default=0.1, validator=_fraction)
    low: float = attrs.field(default=0.02, validator=_fraction)
    growth: float = attrs.field(default=1.1, validator=_positive)
    max_growth: float = attrs.field(default=1.5, validator=_positive)
    closed_after: int = attrs.field(default=3, validator=_positive)
    probe_cap: float = attrs.field(default=4.0, validator=_positive)
    slow: float = attrs.field(default=1.0, validator=_positive)
    jitter: float = attrs.field(default=0.03, validator=_fraction)

    def __attrs_post_init__(self) -> None:
        if self.low > self.high or self.min_rate > self.initial_rate:
            raise InputError("need low <= high and min_rate <= initial_rate")
        if not 1 <= self.growth <= self.max_growth:
            raise InputError("need 1 <= growth <= max_growth")


class _Spacing:
    """The shortest gap after an accepted request that the account accepts, bracketed.

    A limit kept as a minimum spacing (a token bucket one token deep, as slow
    accounts have) refuses a request sent less than ``T`` after the last
    accepted one and accepts one sent later: each 429 says ``T`` is longer
    than its gap (:attr:`low`), each success that it is at most its gap
    (:attr:`high`). An answer that contradicts the bracket by more than the
    network's jitter makes :meth:`answer` return False: the account has
    another shape, or other clients.
    """

    def __init__(self, jitter: float) -> None:
        self.jitter = jitter
        self.low, self.high, self.last_ok = 0.0, math.inf, -math.inf
        self.step, self.raised = jitter, False

    def answer(self, sent_at: float, *, throttled: bool) -> bool:
        """Fold in one answer; False if it contradicts the bracket."""
        gap, j = sent_at - self.last_ok, self.jitter
        if gap <= 0 or (throttled and self.last_ok == -math.inf):
            return True  # overtaken by a later answer, or nothing accepted yet
        if throttled:
            self.low, self.step = max(self.low, gap), j
            if gap >= self.high - 1e-3:  # refused at the top, which jitter set short
                if self.raised or gap > self.high * (1 + j):
                    return False
                self.high, self.raised = gap * (1 + j), True  # once: it must not creep
            return True
        if gap < self.low * (1 - j):
            return False
        if gap <= self.low:  # accepted a hair under the bottom: the jitter's doing
            self.low = gap * (1 - j)
        if gap < self.high:
            self.step = min(0.5, self.step * 2) if self.high < math.inf else j
            self.high = gap
        self.last_ok = sent_at
        return True

    def next(self) -> float:
        """Seconds after the last success to send the next request: a step under the top."""
        if self.high - self.low <= self.jitter * self.high:
            return self.high  # narrow enough
        return max(self.high * (1 - self.step), (self.low + self.high) / 2)


class AdaptiveRateLimiter(_Pacer):
    """A send rate that finds the account's limit from its 429s, and then keeps under it.

    An account's limit is 10 to 6,000 requests a minute, shared with every
    other process using the account, and its shape (a token bucket of some
    depth, a fixed or a sliding minute) is not told. The limiter assumes
    only that a 429 means too many requests. Its rules, the numbers named
    as fields of :class:`AdaptiveConfig`:

    - **Start**: ``initial_rate``, doubled each ``window`` while the answers
      are clean and the rate holds requests back, up to twice the rate
      the server accepted. Two 429s that are more than ``2 * high`` of the
      answers since the last doubling, or the account closing, halve it
      and end the start.
    - **Windows**: the answers to requests sent since the last change of
      rate are judged together once there are ``min_samples`` over
      ``window`` seconds, three clean ones over ``2 * slow`` seconds, three
      429s that are the majority, or the account closes. Answers to
      requests sent before a change are not judged again: one burst
      causes one cut.
    - **Cut**: a share of 429s above ``high`` cuts the rate to what the
      server accepted in the window, by a tenth at least and half at most.
      The share of 429s in the first full window after a cut down to what
      the server accepted (up to ``high``) is the background, 429s that
      are not the rate's doing (a proxy, another tool's burst): windows
      are judged on their share above it.
    - **Grow**: a share at or below ``low``, while the rate held requests
      back, grows it by ``growth`` a second, the step doubling with each
      clean window in a row, at most ``max_growth`` a second and twice the
      rate the server accepted.
    - **Step back**: a step up whose window (up to ``4 * window``
      seconds) brings 429s back is taken back, and one clean window
      passes before the next.
    - **Closed**: ``closed_after`` 429s in a row show the account closed
      for now (a window spent, a one-token bucket asked too soon). The
      rate is held; one request at a time probes it (the next waits for
      its answer, or for the backoff), and each waits the longer of the
      429's ``Retry-After`` and a backoff from ``window``, doubling with
      each refused probe up to ``probe_cap`` (a fixed ``Retry-After: 1``
      through a spent minute costs a 429 every few seconds, not every
      second). Closed for over a minute, longer than any spent minute
      lasts, the probes are what keep it closed (refused requests that
      spend budget too), and the backoff doubles on up to a minute; the
      next closure then starts at the backoff that reopened this one. The
      first answer that is not a 429 reopens it, and the requests held
      behind the probe go at once.
    - **Retry-After**: the refused request waits it in any case (the client
      retries it no sooner). Every other request waits too only when the
      account is closed: one stray 429's wait is its own.
    - **Spacing**: a client alone on its account whose answers bracket a
      spacing between ``slow`` seconds and the floor's pace (a slow
      account's one-token bucket) sends each request one spacing after
      the last accepted one, narrowing the bracket from above a step at a
      time (see :attr:`spacing`). Answers the bracket cannot explain start
      it afresh. An account that has accepted a minute's worth of
      requests (at ``slow`` seconds apart) less than ``slow`` seconds apart
      in a row, answers in any order, is no slow bucket, and keeps no
      spacing.
    - **Shared**: a limiter told ``shared`` (``--shard``, ``--shared``) lets
      each request go at a random point of its own slot (slots ``1 / rate``
      apart), so that no process takes every token for its timing alone,
      and keeps no spacing. Alone, requests leave evenly spaced.

    Args:
        config: every number at once (default :class:`AdaptiveConfig()`).
        clock: where it reads the time and sleeps (default: the real clock).
        rng: where the random points are drawn (a seeded one repeats a run).
        shared: other processes draw on the account's budget at the same time.
        **numbers: fields of :class:`AdaptiveConfig` to change, such as
            ``initial_rate=50``.
    """

    def __init__(
        self,
        config: AdaptiveConfig | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        shared: bool = False,
        **numbers: Any,
    ) -> None:
        try:
            self.config = attrs.evolve(config or AdaptiveConfig(), **numbers)
        except TypeError as exc:
            raise InputError(f"not a field of AdaptiveConfig: {exc}") from None
        super().__init__(self.config.initial_rate, clock)
        self._random = rng or random.Random()
        self._spacing = None if shared else _Spacing(self.config.jitter)
        self._starting, self._held_back = True, False
        self._changed_at = -math.inf
        self._window_start: float | None = None
        self._answers = self._refused = 0
        self._clean = 0  # clean windows in a row; -1: the one after a step back
        self._grown_from: float | None = None  # the rate before a step up, while it is judged
        self._in_a_row = 0
        self._last_ok, self._fast_run, self._burst = -math.inf, 0, False  # no slow spacing
        self._closed_at, self._backoff = math.inf, 0.0  # while closed: the wait between probes
        self._background, self._after_cut = 0.0, False  # the share of 429s a cut leaves
        self._retry_after: float | None = None  # the Retry-After of the 429 recorded next
        self._stretch, self._point = 1.0, 0.5
        self.throttles = 0

    @property
    def rate(self) -> float:
        """The current rate, in requests per second."""
        return self._rate

    @property
    def spacing(self) -> float | None:
        """The seconds kept after each accepted request on a slow account, while they show.

        A client alone on its account whose answers bracket a spacing
        between ``slow`` seconds and the floor's pace (a request refused a
        little sooner after an accepted one, and one accepted a little
        later) sends each request that long after the last accepted one,
        narrowing the bracket from above; ``None`` otherwise.
        """
        return self._spacing.next() if self._spacing is not None and self._steering() else None

    @property
    def shared(self) -> bool:
        """Whether it was told that other processes draw on the account's budget too."""
        return self._spacing is None

    @property
    def starting(self) -> bool:
        """Whether it is still in its start (doubling, no run of 429s seen yet)."""
        return self._starting

    @property
    def closed(self) -> bool:
        """Whether ``closed_after`` 429s in a row show the account closed for now."""
        return self._in_a_row >= self.config.closed_after

    def _steering(self) -> bool:
        # A narrow bracket from a second up, its bottom under the floor's pace: no
        # account's one-token bucket refills more slowly than that.
        sp, cfg = self._spacing, self.config
        return (
            sp is not None
            and not self._burst
            and not self._starting
            and sp.high / 2 <= sp.low < sp.high
            and cfg.slow * (1 - cfg.jitter) <= sp.high
            and sp.low <= (1 + cfg.jitter) / cfg.min_rate
        )

    def _interval(self) -> float:
        return (1.0 if self._spacing is not None else self._stretch) / self._rate

    def _sent(self, *, waited: bool) -> None:
        self._held_back = self._held_back or waited
        if self.closed:  # one probe at a time: the next waits for its answer (or the backoff)
            super().pause(max(self._backoff, self.config.window))
        if self._spacing is None:  # shared: the next request at a fresh point of its slot
            point = self._random.random()
            self._stretch, self._point = 1 + point - self._point, point

    def pause(self, seconds: float) -> None:
        """A 429's ``Retry-After``: every request waits it only when the account is closed.

        The client calls it before :meth:`on_throttle`, so the 429 it comes
        with counts: the ``closed_after``-th in a row closes the account.
        The refused request waits ``seconds`` in any case (the client
        retries it no sooner).
        """
        self._retry_after = seconds

    def on_success(self, sent_at: float) -> None:
        """Count an answer that was not a 429 (it reopens a closed account)."""
        if self.closed:  # reopened: a window is not judged across a closure
            if self._clock.now() - self._closed_at < _MINUTE:
                self._backoff = 0.0  # a closure over a minute leaves its backoff to the next
            self._new_window()
            self._resume()  # the requests held behind the probe go now
        self._in_a_row = 0
        self._record(sent_at, throttled=False)

    def on_throttle(self, sent_at: float) -> None:
        """Count a 429; past ``closed_after`` in a row, hold the rate and probe."""
        self._in_a_row += 1
        self.throttles += 1
        retry_after, self._retry_after = self._retry_after, None
        cfg, now = self.config, self._clock.now()
        if self._in_a_row == cfg.closed_after:
            self._closed_at = now
        elif self.closed and sent_at >= self._closed_at:  # a probe, not one already on its way
            # No minute of a budget stays spent longer than a minute: closed for
            # longer, the probes themselves keep it closed (refused requests that
            # spend budget too), and the backoff doubles on, up to a minute.
            cap = cfg.probe_cap if now - self._closed_at < _MINUTE else _MINUTE
            self._backoff = min(max(cfg.window, 2 * self._backoff), max(cap, self._backoff))
        if self.closed:  # the next probe after the longer of Retry-After and the backoff
            super().pause(max(retry_after or 0.0, self._backoff))
        self._record(sent_at, throttled=True)

    def _follow_spacing(self, sp: _Spacing, sent_at: float, now: float, throttled: bool) -> bool:
        """Fold an answer into the spacing; True when the spacing sets the pace."""
        cfg = self.config
        if not throttled:
            # A minute's worth of requests accepted less than `slow` apart in a row (answers
            # overtaken by later ones included): no slow bucket, so no slow spacing, for good.
            fast = abs(sent_at - self._last_ok) < cfg.slow * (1 - cfg.jitter)
            self._fast_run = self._fast_run + 1 if fast else 0
            self._burst |= self._fast_run + 1 >= _MINUTE / cfg.slow
            self._last_ok = max(self._last_ok, sent_at)
        if not sp.answer(sent_at, throttled=throttled):
            self._spacing = sp = _Spacing(cfg.jitter)  # explained by no spacing: look afresh
        if not self._steering():
            return False
        # The next request one spacing after the last success, whatever was refused.
        self._last_sent = sp.last_ok
        self._set_rate(1.0 / sp.next(), now, floor=False)
        return True

    def _record(self, sent_at: float, *, throttled: bool) -> None:
        now, cfg, sp = self._clock.now(), self.config, self._spacing
        # Once a burst has shown no slow bucket, the spacing never steers again: skip it.
        if sp is not None and not self._burst and self._follow_spacing(sp, sent_at, now, throttled):
            return
        if sent_at < self._changed_at or self._in_a_row > cfg.closed_after:
            return  # sent under the previous rate (already judged), or while closed
        if self._window_start is None:
            self._window_start = sent_at
        self._answers += 1
        self._refused += throttled
        share, elapsed = self._refused / self._answers, now - self._window_start
        if self._starting:
            if throttled and self._refused >= 2 and (share > 2 * cfg.high or self.closed):
                self._starting = False
                accepted = (self._answers - self._refused) / max(elapsed, cfg.window)
                self._set_rate(self._rate / 2, now)
                self._after_cut = self._rate < accepted  # down to what the server took
            elif (
                not throttled
                and self._held_back
                and now - self._changed_at >= cfg.window
                and share <= cfg.high
            ):
                accepted = (self._answers - self._refused) / max(elapsed, cfg.window)
                if accepted > self._rate / 2:  # not past twice what the server takes
                    self._set_rate(2 * self._rate if accepted >= self._rate else 2 * accepted, now)
            return
        full = self._answers >= cfg.min_samples and elapsed >= cfg.window
        slow = self._answers >= 3 and elapsed >= 2 * cfg.slow and not self._refused
        if full or slow or self.closed or (self._refused >= 3 and share > 0.5):
            self._judge(share, elapsed, now)

    def _judge(self, share: float, elapsed: float, now: float) -> None:
        """Cut, grow, step back or hold, on a window's share of 429s."""
        cfg, rate = self.config, self._rate
        grown_from, self._grown_from = self._grown_from, None
        if self._after_cut and self._answers >= cfg.min_samples:
            # 429s that a cut left are not the rate's doing (a proxy, a neighbour's burst)
            self._background = min(cfg.high, (self._background + share) / 2)
        self._after_cut = False
        accepted = (self._answers - self._refused + 0.5) / max(elapsed, 1e-3)
        share -= self._background
        if share > cfg.high:
            self._clean = 0
            cut = min(rate * (1 - cfg.high), accepted * (1 - cfg.jitter))
            self._set_rate(max(rate / 2, cut), now)
            self._after_cut = self._rate < accepted  # down to what the server took
        elif share <= cfg.low and self._held_back:
            self._clean += 1
            if self._clean > 0:  # not the clean window after a step back
                step = (cfg.growth - 1) * 2 ** min(self._clean - 1, 4)
                span = max(elapsed, 1.0)
                factor = min(cfg.max_growth ** min(span, 2.0), (1 + step) ** span)
                self._set_rate(min(rate * factor, 2 * accepted), now)
                self._grown_from = rate
        elif share > cfg.low and grown_from is not None and elapsed <= 4 * cfg.window:
            self._clean = -1
            self._set_rate(grown_from, now)
        self._new_window()

    def _new_window(self) -> None:
        self._window_start = None
        self._answers = self._refused = 0

    def _set_rate(self, rate: float, now: float, *, floor: bool = True) -> None:
        self._grown_from = None  # only the window right after a step up may take it back
        self._rate = max(self.config.min_rate, rate) if floor else rate
        self._changed_at = now
        self._held_back = False
        self._new_window()
        self._changed()
