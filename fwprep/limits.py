"""Rate limiting: a smooth fixed rate, or one that finds the account's limit from its 429s.

Both limiters share one interface: ``await limiter.acquire()`` before a
request is sent (it returns the send time), then ``limiter.on_success(sent_at)``
or ``limiter.on_throttle(sent_at)`` when the answer arrives, and
``limiter.pause(seconds)`` when a 429 carries ``Retry-After``.
Concurrency is not limited here but by the client, before :meth:`acquire`
is called.

Both pace requests one after another, in the order they asked, and both
obey a server's ``Retry-After``: a 429 that carries one pauses *every*
request of the limiter until then, and when the pause ends requests resume
at the limiter's pace, not all at once.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from typing import Protocol

from fwprep._clock import SYSTEM_CLOCK, Clock
from fwprep._spacing import Spacing, is_slow
from fwprep.errors import InputError

__all__ = ["AdaptiveRateLimiter", "FixedRateLimiter", "RateLimiter"]

_RESOLUTION = 1e-6  # a send due within a microsecond is due now (no endless tiny naps)
_QUICK = 1.0  # seconds: a window this short that brings 429s back after a step up steps back
_EVEN = 0.25  # seconds between requests from which a client alone on its account paces evenly


class RateLimiter(Protocol):
    """What the client needs from a rate limiter.

    A limiter may also define ``pause(seconds)``: the client then calls it
    with the server's ``Retry-After`` on a 429, before ``on_throttle``, so
    that every request waits, not only the throttled one. Both of fwprep's
    limiters do. Defining it also tells the client that the limiter paces
    its requests: a 429 without ``Retry-After`` then goes straight back in
    line, slowed down by the limiter alone. Without ``pause``, the client
    waits the retry policy's backoff before it asks ``acquire`` again, so a
    limiter that never slows down does not turn 429s into a hot loop.
    """

    async def acquire(self) -> float:
        """Wait until one request may be sent; return the monotonic send time."""
        ...

    def on_success(self, sent_at: float) -> None:
        """Record an answer that was not a 429, for a request sent at ``sent_at``."""
        ...

    def on_throttle(self, sent_at: float) -> None:
        """Record a 429 for a request sent at ``sent_at``."""
        ...


class _Pacer:
    """Requests leave one at a time, ``1 / rate`` seconds apart and never during a pause.

    Waiters queue in arrival order; the one at the head sleeps until its send
    time and then hands the head to the next, so a change of pace (a new
    rate, a pause) reaches the very next request: the head is woken to
    recompute its time, and the rest wait behind it.
    """

    def __init__(self, rate: float, clock: Clock | None) -> None:
        self._rate = float(rate)
        self._clock = clock or SYSTEM_CLOCK
        self._waiters: deque[asyncio.Future[None]] = deque()
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

    def _changed(self) -> None:
        """The pace changed: wake the head waiter to recompute its send time."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def acquire(self) -> float:
        """Wait for this request's turn at the current pace; return the time it was sent."""
        now = self._clock.now()
        if not self._waiters and now + _RESOLUTION >= self._due():
            self._last_sent = now
            self._sent(waited=False)
            return now
        me = asyncio.get_running_loop().create_future()
        self._waiters.append(me)
        try:
            if self._waiters[0] is not me:
                await me  # the request ahead hands the head over when it leaves
            while (due := self._due()) > (now := self._clock.now()) + _RESOLUTION:
                await self._nap(due - now)
        finally:
            self._leave(me)
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

    def _leave(self, me: asyncio.Future[None]) -> None:
        head = bool(self._waiters) and self._waiters[0] is me
        if head:
            self._waiters.popleft()
        else:
            self._waiters.remove(me)
        if head and self._waiters and not self._waiters[0].done():
            self._waiters[0].set_result(None)


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


class AdaptiveRateLimiter(_Pacer):
    """A send rate that finds the account's limit from its 429s, and then keeps under it.

    An account's limit can be anything from 10 to 6,000 requests a minute,
    shared with every other process using the account, so the limiter learns
    it rather than being told:

    - **A cautious start.** It begins at ``initial_rate`` requests a second
      and doubles when an answer comes back clean while the rate was
      holding requests back, at most once a ``window``: 6,000 requests a
      minute is reached within a second. An account's bucket accepts a
      second's worth of requests at any pace, so quicker answers say little:
      doubling on each of them (every round trip) ran to many times the
      account's rate, as far as the client's concurrency allowed, before the
      bucket ran dry, and every halving back down cost a round trip of
      429s. Two 429s that are more than a quarter of the answers since the
      last doubling end the start, halving the rate to the last one that
      ran clean; a single stray one (a proxy, another tool's burst) does
      not, since a start ended at a few requests a second would stay there
      under a thin stream of such 429s.
    - **Cuts to what the server accepts.** Answers are judged in windows (at
      least ``window`` seconds and ``min_samples`` answers; sooner for a slow
      rate, once three 429s are the majority or three answers and two
      seconds come back clean). Above ``high_fraction`` of 429s the rate is
      cut to what the server accepted in the window, a little under, by at
      least a tenth and at most half at a time. Answers to requests sent
      before a change of rate are not judged again, so one burst causes one
      cut: at most one a round trip.
    - **Regrows slowly, then faster.** A window with at most
      ``low_fraction`` of 429s, while the rate was holding requests back,
      grows it by ``growth`` a second, faster after each clean window in a
      row, up to 1.5x a second (room another process left is taken up in
      seconds, by a small share as by a large one); in between, the rate
      holds. A thin stream of 429s (up to ``high_fraction`` of the
      answers) that has nothing to do with this client's rate, such as
      another tool's burst or a proxy, does not drag it down. But a step
      up whose window (a second or less) brings 429s back is taken back,
      and one clean window passes before the next: alone at the account's
      limit, a rate held there would sit just above it, with up to a tenth
      of its requests refused. A window with
      a 429 that is followed by three answers and two seconds clean closes
      early and grows the rate by ``growth`` a second of that clean spell:
      a process with a small share of a crowded account (a request or two a
      second, windows of many seconds) would otherwise hold its rate for
      the rest of a window after each stray 429, stay small, and be the
      one left running long after its neighbours finished.
    - **Slow accounts: the spacing.** A 10 requests/minute account refuses
      a request sent too soon after the last one it accepted, and windows of
      a few answers a minute learn that too slowly. At one request a
      second or slower (give or take the network's jitter), once its
      answers bracket such a spacing, the limiter sends
      each request that long after the last accepted one and narrows the
      bracket from above, a step shorter each time, until a step is
      refused (one 429, and no time lost but a whole-second
      ``Retry-After``'s pause past the spacing): see :attr:`spacing`. A 429's
      ``Retry-After`` narrows the bracket from both sides (the time it
      names, less the last acceptance, is a spacing that works, and at most
      a second and a round trip too long). Answers that no spacing explains
      (other clients on the account) leave the rate to the windows above,
      for 15 s at a time: then a spacing is looked for afresh, and the
      last shard of a thin account, its neighbours done, keeps its pace
      exactly again (at random points of its slots, some of its requests
      left early and were refused, others late).
    - **In flight follows the rate.** Requests are paced one after another,
      so at 10 requests a minute there is about one in flight whatever the
      client's concurrency. Each request leaves at a random point of its own
      slot (slots ``1 / rate`` apart), drawn afresh each time: the rate is
      kept over every few requests, but when one comes is not told by when
      the last one came. Evenly paced, a process near the account's rate
      asks just after each token appears and takes nearly every one, and a
      neighbour's requests find the bucket empty (on loopback, the large
      share saw 5%-7% 429s and the small ones 30%-40%, and the others
      waited for it to finish). A lone client's slow pace stays exact until
      answers show other clients, so that it can find its spacing, and is
      exact again 15 s later, until answers show them again.
    - **Alone, or sharing the account.** The random point is for processes
      that share the account (``shared``). A process alone on it (the
      default) gains nothing from it where each request is a good share of
      the account's budget: paced at four requests a second or slower, and
      in the start, its requests leave evenly spaced, as a shallow bucket
      takes them (at 90 requests a minute, a bucket one and a half tokens
      deep, a request soon after the last finds it empty: simulated, a
      lone process took 1.16x the ideal at random points, 1.06x evenly
      spaced). And while a slow account's spacing forms, it sends nothing
      before the bracket says the server will take it: the spacing's next
      step after the last accepted request, not a request at half the
      spacing that only a crowd's answers could show worth sending.
      Faster, it keeps the random points: fair to the other tools that
      may use the account too.

    With several processes on one account each finds a share: they all see
    the account's 429s and cut to what each was accepted. The shares are not
    equal, but the random point in each slot keeps any one from being
    refused more often than the others for its timing alone, the floor (``min_rate``)
    keeps every one asking often enough that a thin account's tokens are
    taken soon after they come, and a process whose neighbours finish
    regrows into their room.

    Args:
        initial_rate: requests per second at the start.
        high_fraction: share of 429s above which the rate is cut.
        low_fraction: share of 429s at or below which the rate grows.
        growth: the factor the rate grows by after a clean window.
        window: the shortest window, in seconds, and the shortest time
            between two doublings of the start.
        min_samples: the fewest answers a window is judged on.
        min_rate: the floor, in requests per second. The default, 9 a
            minute, is under the smallest account limit (10 a minute), so a
            lone process never asks above it. Processes sharing a thin
            account may together: their extra asks are refused (429s take
            no token), and the account's tokens are used as they come. The
            last shard of a thin account, its neighbours done, keeps to the
            floor: at 7.5 a minute its last items took a third longer.
        clock: where it reads the time and sleeps (default: the real clock).
        rng: where the points in the slots are drawn (default: a fresh
            generator); a seeded one makes a run repeatable.
        shared: other processes draw on the account's budget at the same
            time (shards of one job, or other jobs): each request then
            leaves at a random point of its slot (at one a second or
            slower, once answers show the others), and a slow account's
            spacing, which their traffic can fake, is first tested after
            5 requests. ``fwprep batch --shard K/N`` (N > 1) and
            ``--shared`` set it. A limiter told it is alone becomes shared
            once answers break a slow spacing as only other clients'
            requests do; at faster paces nothing tells it, and processes
            side by side that each believe themselves alone find their
            shares slowly (see the README's "Rate limits").
    """

    def __init__(
        self,
        *,
        initial_rate: float = 10.0,
        high_fraction: float = 0.1,
        low_fraction: float = 0.02,
        growth: float = 1.1,
        window: float = 0.25,
        min_samples: int = 10,
        min_rate: float = 0.15,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        shared: bool = False,
    ) -> None:
        if not 0 <= low_fraction <= high_fraction < 1:
            raise InputError("need 0 <= low_fraction <= high_fraction < 1")
        if growth < 1 or window <= 0 or min_samples < 1 or not 0 < min_rate <= initial_rate:
            raise InputError(
                "need growth >= 1, window > 0, min_samples >= 1 and 0 < min_rate <= initial_rate"
            )
        super().__init__(initial_rate, clock)
        self._high = high_fraction
        self._low = low_fraction
        self._growth = growth
        self._window = window
        self._min_samples = min_samples
        self._min_rate = min_rate
        self._starting = True
        self._held_back = False
        self._changed_at = -math.inf
        self._window_start: float | None = None
        self._answers = 0
        self._throttled = 0
        self._clean_windows = 0
        self._grown_from: float | None = None  # the rate before a step up, while it is judged
        self._streak = 0
        self._streak_start: float | None = None
        self._spacing = Spacing(alone=not shared)
        self._retry_after: float | None = None  # the Retry-After of the 429 recorded next
        self._stretch = 1.0
        self._slot_point = 0.5  # where in its slot the last request left, 0 to 1
        self._random = rng or random.Random()
        self.throttles = 0
        self._in_a_row = 0  # 429s since the last answer that was not one

    @property
    def rate(self) -> float:
        """The current rate, in requests per second."""
        return self._rate

    @property
    def spacing(self) -> float | None:
        """The seconds it keeps between accepted requests on a slow account, once they show.

        Some limits are kept as a minimum spacing: a request sent too soon
        after the last accepted one is refused, one sent later is accepted
        (a 10 requests/minute account's one-token bucket). Once the answers
        of a pace slower than one request a second bracket that spacing, the
        limiter sends each request that long after the last accepted one,
        narrowing the bracket from above until a step is refused, and
        ``spacing`` is the seconds it keeps to. It is ``None`` while the
        answers show no such spacing, and once they contradict one (other
        clients drawing on the budget): then windows of answers steer the
        rate, and 15 s later a spacing is looked for afresh (the other
        clients may be done). A ``Retry-After`` bounds the spacing from
        above (the time it names, less the last acceptance, is one the
        server will accept) and from below (the same wait counted from when
        the refused request left, less the second a whole-seconds header may
        have rounded up).
        """
        return self._spacing.next_spacing() if self._spacing.known else None

    @property
    def shared(self) -> bool:
        """Whether other processes draw on the account's budget too: as told, or as seen.

        A limiter told it is alone takes itself to be shared from the
        moment answers break a slow account's spacing as only other
        clients' requests do.
        """
        return not self._spacing.alone

    @property
    def starting(self) -> bool:
        """Whether it is still in its cautious start (no run of 429s seen yet)."""
        return self._starting

    def _sent(self, *, waited: bool) -> None:
        self._held_back = self._held_back or waited
        # The next request leaves at a fresh random point of the next slot.
        point = self._random.random()
        self._stretch, self._slot_point = 1 + point - self._slot_point, point

    def _interval(self) -> float:
        interval = 1.0 / self._rate
        if not self.shared and (self._starting or interval >= _EVEN):
            return interval  # alone: evenly, as a shallow bucket takes requests
        if self._spacing.known or (is_slow(interval) and not self._spacing.abandoned):
            # A spacing is kept to exactly, and so is a slow pace until answers
            # show other clients: a lone slow client's answers must bracket it.
            return interval
        return self._stretch / self._rate

    def _forming(self) -> bool:
        """Whether a client alone on its account is finding a slow account's spacing.

        The bracket has both sides, and its lower one is a second or more (a
        lower bound under that, such as a fast account's whole-second
        ``Retry-After`` leaves, says nothing of a slow one) and shorter than
        the floor's pace (a refusal later than that after an acceptance is
        other clients' doing: no account's own spacing is that long), and
        it is not yet narrow: until the spacing is known, each request
        waits for the bracket's next step after the last accepted one (see
        :meth:`_due`).
        """
        sp = self._spacing
        return (
            sp.alone
            and not sp.known
            and not sp.abandoned
            and is_slow(sp.low)
            and sp.low < 1.0 / self._min_rate
            and sp.low < sp.high < math.inf
            and not sp.tight
        )

    def _due(self) -> float:
        due = super()._due()
        if not self._starting and self._forming():
            # A request sooner than the bracket's next step would be refused,
            # were the client alone: a 429 that tells it nothing new.
            due = max(due, self._spacing.last_ok + self._spacing.next_spacing())
        return due

    def on_success(self, sent_at: float) -> None:
        """Count an answer that was not a 429."""
        self._in_a_row = 0
        self._record(sent_at, throttled=False)

    def on_throttle(self, sent_at: float) -> None:
        """Count a 429."""
        self._in_a_row += 1
        self.throttles += 1
        self._record(sent_at, throttled=True)

    def _record(self, sent_at: float, *, throttled: bool) -> None:
        now = self._clock.now()
        retry_after, self._retry_after = self._retry_after, None
        self._spacing.answer(sent_at, throttled=throttled, retry_after=retry_after, answered_at=now)
        if self._spacing.alone and self._spacing.abandoned and is_slow(self._spacing.low):
            # A slow spacing broken, by answers a client alone does not get
            # (refused a second or more after an acceptance, and accepted
            # sooner, or refused at the top): others use the account too.
            self._spacing.alone = False
        if self._forming():
            self._changed()  # the bracket moved: so did the next request's time
        if not self._starting and self._spacing.known:
            self._steer_by_spacing()
            return
        if sent_at < self._changed_at:
            return  # sent under the previous rate: already judged
        if self._starting:
            self._start(throttled=throttled, now=now)
            return
        if self._window_start is None:
            self._window_start = sent_at  # a window opens with its first request
        self._answers += 1
        self._throttled += throttled
        if throttled:
            self._streak, self._streak_start = 0, None
        else:
            self._streak += 1
            if self._streak_start is None:
                self._streak_start = sent_at
        share = self._throttled / self._answers
        elapsed = now - self._window_start
        full = self._answers >= self._min_samples and elapsed >= self._window
        # Two ways to judge sooner, for slow rates whose windows would last
        # minutes: a clear majority of 429s, or a clean spell (three answers
        # and two seconds, no 429). A few answers with one 429 among them are
        # not judged, so a slow process is not cut more often than a fast one.
        flooded = self._throttled >= 3 and share > 0.5
        spell = now - self._streak_start if self._streak_start is not None else 0.0
        clean = self._streak >= 3 and spell >= 2.0
        if full or flooded or (clean and not self._throttled):
            self._judge(share, elapsed, now)  # a spell with no 429 before it is the whole window
            self._new_window()
        elif clean:
            # The window's 429s are behind the spell: a slow share, whose
            # window would last many seconds more, grows gently on it (held
            # until a full window otherwise).
            if self._held_back:
                self._set_rate(self._rate * min(1.5, self._growth**spell), now)
            self._new_window()

    def _start(self, *, throttled: bool, now: float) -> None:
        """The cautious start (see the class docstring): double, or end on a run of 429s.

        Answers are counted since the last doubling, in the window's counters.
        """
        self._answers += 1
        self._throttled += throttled
        if throttled:
            if self._throttled >= 2 and self._throttled * 4 > self._answers:
                self._starting = False
                self._new_window()
                self._set_rate(self._rate / 2, now)
        elif (
            self._held_back
            and now - self._changed_at >= self._window
            and self._throttled <= self._high * self._answers
        ):
            self._new_window()
            self._set_rate(self._rate * 2, now)

    def _new_window(self) -> None:
        self._window_start = None
        self._answers = self._throttled = 0
        self._streak, self._streak_start = 0, None

    def pause(self, seconds: float) -> None:
        """A 429's ``Retry-After``: every request waits only on evidence the account is closed.

        The refused request waits ``seconds`` in any case (the client retries
        it no sooner). Every request of the account waits too (see
        :meth:`_Pacer.pause`) when the account is shared (other processes'
        requests drew the 429 as much as this one's), while the limiter is
        still starting (the header is then the best knowledge of the account
        there is), when the wait costs at most two requests' worth of the
        pace, or when this is the second 429 in a row: then the account is
        closed for now. Otherwise a lone 429's wait is its own: a
        whole-second ``Retry-After`` at a hundred requests a second would
        idle a hundred requests' worth.

        The time it names also bounds a slow account's spacing (see
        :attr:`spacing`), with the 429 that :meth:`on_throttle` records next,
        right after (the wait counts from then).
        """
        self._retry_after = seconds
        closed = self._in_a_row >= 1 or seconds * self._rate <= 2.0
        if self.shared or self._starting or closed:
            super().pause(seconds)

    def _steer_by_spacing(self) -> None:
        """A slow pace whose spacing shows: send each request one spacing after the last success.

        The next request leaves :meth:`Spacing.next_spacing` after the last
        accepted one, whatever was refused in between (and never during a
        pause), so a probe that is refused costs one 429 and, but for a
        ``Retry-After`` that pauses past the spacing, no time. The spacing
        is kept to even where it is longer than the floor's: cut to the
        floor, the next request would be due at once after every 429, once
        that long had passed since the last success, and one refusal would
        follow another.
        """
        self._last_sent = self._spacing.last_ok
        self._new_window()
        self._set_rate(1.0 / self._spacing.next_spacing(), self._clock.now(), floor=False)

    def _judge(self, share: float, elapsed: float, now: float) -> None:
        """Cut, grow, step back or hold, on a window's share of 429s."""
        grown_from, self._grown_from = self._grown_from, None
        if share > self._high:
            self._clean_windows = 0
            accepted = (self._answers - self._throttled + 0.5) / max(elapsed, 1e-3)
            self._set_rate(max(self._rate / 2, min(self._rate * 0.9, 0.97 * accepted)), now)
        elif share <= self._low and self._held_back:
            # Clean window after clean window, the rate grows faster, so room
            # another process left is taken up in seconds. Growth is per
            # second, at most 1.5x a second over two (2.25x a window): a
            # small share, whose windows last seconds, regrows nearly as fast
            # in time as a large one, and one long window is no leap.
            self._clean_windows += 1
            if self._clean_windows > 0:  # not the clean window after a step back
                step = (self._growth - 1) * 2 ** min(self._clean_windows - 1, 4)
                rate, span = self._rate, max(elapsed, 1.0)
                self._set_rate(rate * min(1.5 ** min(span, 2.0), (1 + step) ** span), now)
                self._grown_from = rate
        elif share > self._low and grown_from is not None and elapsed <= _QUICK:
            # Longer windows (a small share of a crowded account) hold: a
            # window of holding would cost seconds, and says less.
            self._clean_windows = -1
            self._set_rate(grown_from, now)

    def _set_rate(self, rate: float, now: float, *, floor: bool = True) -> None:
        self._grown_from = None  # only the window right after a step up may take it back
        self._rate = max(self._min_rate, rate) if floor else rate
        self._changed_at = now
        self._held_back = False
        self._changed()
