from __future__ import annotations

import asyncio
import itertools
import random
import statistics

import pytest
from simulated import LoopClock, run_virtual
from support import FakeClock

from fwprep import AdaptiveRateLimiter, FixedRateLimiter


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def send_times(limiter: FixedRateLimiter | AdaptiveRateLimiter, count: int) -> list[float]:
    """``count`` requests asking at once; the times they were let go, in order."""
    return list(await asyncio.gather(*(limiter.acquire() for _ in range(count))))


# -- the fixed rate ---------------------------------------------------------------


def test_a_fixed_rate_spaces_requests_evenly_in_the_order_they_asked() -> None:
    async def main() -> list[float]:
        return await send_times(FixedRateLimiter(4.0, clock=LoopClock()), 5)

    assert run_virtual(main()) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_a_fixed_rate_earns_no_burst_after_an_idle_spell() -> None:
    async def main() -> list[float]:
        limiter = FixedRateLimiter(4.0, clock=LoopClock())
        await limiter.acquire()
        await asyncio.sleep(100)
        return await send_times(limiter, 3)

    assert run_virtual(main()) == pytest.approx([100.0, 100.25, 100.5])


async def test_a_fixed_rate_waits_on_the_injected_clock(clock: FakeClock) -> None:
    limiter = FixedRateLimiter(10.0, clock=clock)
    sent = [await limiter.acquire() for _ in range(4)]
    assert sent == pytest.approx([1000.0, 1000.1, 1000.2, 1000.3])
    assert clock.slept == pytest.approx([0.1, 0.1, 0.1])


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf")])
def test_a_fixed_rate_must_be_a_positive_number(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        FixedRateLimiter(rate)


# -- pauses (Retry-After) ---------------------------------------------------------


def test_a_pause_holds_every_waiting_request_then_they_resume_at_the_rate() -> None:
    async def main() -> list[float]:
        limiter = FixedRateLimiter(10.0, clock=LoopClock())
        waiting = asyncio.gather(*(limiter.acquire() for _ in range(4)))
        await asyncio.sleep(0.15)  # two have left (0.0, 0.1); a 429 says "wait 5 s"
        limiter.pause(5.0)
        return list(await waiting)

    assert run_virtual(main()) == pytest.approx([0.0, 0.1, 5.15, 5.25])


def test_a_shorter_pause_does_not_end_a_longer_one() -> None:
    async def main() -> float:
        limiter = FixedRateLimiter(10.0, clock=LoopClock())
        limiter.pause(3.0)
        limiter.pause(1.0)
        return await limiter.acquire()

    assert run_virtual(main()) == pytest.approx(3.0)


def test_a_cancelled_waiter_does_not_hold_up_the_ones_behind_it() -> None:
    async def main() -> list[float]:
        limiter = FixedRateLimiter(1.0, clock=LoopClock())
        await limiter.acquire()
        head = asyncio.ensure_future(limiter.acquire())  # due at 1.0
        middle = asyncio.ensure_future(limiter.acquire())
        tail = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.5)
        head.cancel()
        middle.cancel()
        return [await tail]

    assert run_virtual(main()) == pytest.approx([1.0])


# -- the adaptive rate ------------------------------------------------------------


def answer(limiter: AdaptiveRateLimiter, clock: FakeClock, sent_at: float, *, ok: bool) -> None:
    """An answer arriving now to a request sent at ``sent_at``."""
    if ok:
        limiter.on_success(sent_at)
    else:
        limiter.on_throttle(sent_at)


def test_the_start_is_cautious_and_doubles_while_the_rate_holds_requests_back() -> None:
    async def main() -> tuple[list[float], float]:
        limiter = AdaptiveRateLimiter(initial_rate=2.0, clock=LoopClock())
        first = await send_times(limiter, 3)
        for sent in first:
            limiter.on_success(sent)  # three clean answers to requests that waited
        return first, limiter.rate

    first, rate = run_virtual(main())
    # 2 a second, not all at once: each request in its own half-second slot,
    # at a random point of it (which keeps processes out of step).
    assert first[0] == 0.0
    assert all(0.0 <= b - a <= 1.0 for a, b in itertools.pairwise(first))
    assert first[2] <= 1.25
    # The first answer (to a request sent before any change) doubles the rate
    # once; the other two were sent before that change and are not judged again.
    assert rate == 4.0


def test_the_start_doubles_at_most_once_a_window_however_quick_the_answers(
    clock: FakeClock,
) -> None:
    # A second of clean answers 1/64 s apart, every request held back by the
    # pace: a token bucket takes a second's worth at any rate, so these say
    # little. Doubling on each of them would reach 10 * 2**64 a second.
    limiter = AdaptiveRateLimiter(initial_rate=10.0, window=0.25, clock=clock)
    start, doubled_at = clock.t, []
    for _ in range(64):
        limiter._sent(waited=True)
        sent = clock.t
        clock.t += 1 / 64
        before = limiter.rate
        limiter.on_success(sent)
        if limiter.rate != before:
            doubled_at.append(clock.t - start)
    assert doubled_at == [1 / 64, 17 / 64, 33 / 64, 49 / 64]  # a quarter second apart
    assert limiter.rate == 160.0
    assert limiter.starting


def test_a_rate_that_holds_nothing_back_does_not_grow(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(initial_rate=2.0, clock=clock)
    for _ in range(5):
        sent = clock.t
        clock.t += 10  # one request every 10 s: the 2/s pace never binds
        limiter.on_success(sent)
    assert limiter.rate == 2.0
    assert limiter.starting


async def test_two_429s_end_the_start_at_half_the_rate(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(initial_rate=8.0, clock=clock)
    first, second = await limiter.acquire(), await limiter.acquire()
    limiter.on_throttle(first)
    assert (limiter.rate, limiter.starting) == (8.0, True)  # one may be a stray
    limiter.on_throttle(second)
    assert (limiter.rate, limiter.starting) == (4.0, False)


def test_a_stray_429_among_clean_answers_does_not_end_the_start(clock: FakeClock) -> None:
    # One answer in ten a 429 that has nothing to do with the rate (a proxy):
    # ended at the first of them, the start would leave the rate at a few
    # requests a second, where such a stream holds it for good.
    limiter = AdaptiveRateLimiter(initial_rate=10.0, window=0.25, clock=clock)
    for i in range(100):  # two seconds of answers, 1/50 s apart
        limiter._sent(waited=True)
        sent = clock.t
        clock.t += 1 / 50
        answer(limiter, clock, sent, ok=i % 10 != 5)
    assert limiter.starting
    assert limiter.rate >= 10.0 * 2**5  # still doubling, a quarter second apart at most


def steady(clock: FakeClock, rate: float = 40.0, **options: float) -> AdaptiveRateLimiter:
    """A limiter past its start, at ``rate``."""
    limiter = AdaptiveRateLimiter(initial_rate=2 * rate, clock=clock, **options)  # type: ignore[arg-type]
    limiter.on_throttle(clock.t - 1)
    limiter.on_throttle(clock.t - 1)
    assert limiter.rate == rate
    return limiter


def window(
    limiter: AdaptiveRateLimiter, clock: FakeClock, oks: int, throttles: int, span: float
) -> None:
    """Answers evenly spread over ``span`` seconds, 429s mixed evenly among them."""
    total = oks + throttles
    start = clock.t
    for i in range(total):
        clock.t = start + span * (i + 1) / total
        answer(
            limiter,
            clock,
            start + span * i / total,
            ok=(i + 1) * throttles // total == i * throttles // total,
        )


def test_too_many_429s_cut_the_rate_to_what_the_server_accepted(clock: FakeClock) -> None:
    limiter = steady(clock, rate=40.0, window=1.0)
    window(limiter, clock, oks=25, throttles=15, span=1.0)  # the server took 25 of 40 a second
    assert limiter.rate == pytest.approx(0.97 * 25.5)


def test_one_cut_is_at_least_a_tenth_and_at_most_a_half(clock: FakeClock) -> None:
    limiter = steady(clock, rate=40.0, window=1.0)
    window(limiter, clock, oks=38, throttles=6, span=1.0)  # 14% 429s, 38/s accepted
    assert limiter.rate == pytest.approx(36.0)
    limiter = steady(clock, rate=40.0, window=1.0)
    window(limiter, clock, oks=1, throttles=3, span=0.1)  # 20/s accepted: judged at once
    assert limiter.rate == pytest.approx(20.0)


def test_a_flood_of_429s_is_judged_before_the_window_is_full(clock: FakeClock) -> None:
    limiter = steady(clock, rate=1.0, min_samples=10)
    window(limiter, clock, oks=0, throttles=3, span=3.0)  # 3 answers, all 429: at 1/s, not 10 s
    assert limiter.rate == pytest.approx(0.5)


def test_a_thin_stream_of_429s_does_not_cut(clock: FakeClock) -> None:
    limiter = steady(clock, rate=40.0, window=0.5)
    for _ in range(20):
        window(limiter, clock, oks=19, throttles=1, span=0.5)
    assert limiter.rate == 40.0


def test_429s_among_a_few_slow_answers_are_not_judged_early(clock: FakeClock) -> None:
    limiter = steady(clock, rate=0.5, min_samples=10)
    window(limiter, clock, oks=2, throttles=1, span=6.0)  # 1 in 3: too few answers to tell
    assert limiter.rate == 0.5


def test_clean_windows_grow_the_rate_faster_and_faster_when_it_binds(clock: FakeClock) -> None:
    limiter = steady(clock, rate=40.0, window=1.0)
    rates = []
    for _ in range(3):
        limiter._sent(waited=True)  # requests were held back by the pace
        window(limiter, clock, oks=40, throttles=0, span=1.0)
        rates.append(limiter.rate)
    assert rates == pytest.approx([44.0, 44.0 * 1.2, 44.0 * 1.2 * 1.4])


def test_a_step_up_that_brings_429s_back_is_taken_back(clock: FakeClock) -> None:
    # Alone at the account's limit: a clean window grows the rate, and the
    # next one brings back a few 429s, too few to cut. Held there, the rate
    # would sit just above the limit; the step goes back instead, one clean
    # window holds, and growth starts again from its first step.
    limiter = steady(clock, rate=40.0, window=0.5)
    rates = []
    for throttles in (0, 2, 0, 0):
        limiter._sent(waited=True)
        window(limiter, clock, oks=20, throttles=throttles, span=0.5)
        rates.append(limiter.rate)
    assert rates == pytest.approx([44.0, 40.0, 40.0, 44.0])


def test_a_step_up_judged_over_a_long_window_holds_on_a_few_429s(clock: FakeClock) -> None:
    # Windows over a second (a small share of a crowded account): a window
    # of holding would cost seconds, and a neighbour's burst looks the same.
    limiter = steady(clock, rate=40.0, window=2.0)
    limiter._sent(waited=True)
    window(limiter, clock, oks=80, throttles=0, span=2.0)
    assert limiter.rate == pytest.approx(40.0 * 1.1**2)  # growth a second
    limiter._sent(waited=True)
    window(limiter, clock, oks=80, throttles=4, span=2.0)
    assert limiter.rate == pytest.approx(40.0 * 1.1**2)


def test_a_slow_share_grows_on_a_clean_spell_after_a_429(clock: FakeClock) -> None:
    # One request a second in a crowded account: a 429, then three clean
    # answers over 3 s. The window (10 answers) would take 6 s more; the
    # clean spell since the 429 is judged now, and the rate grows gently.
    limiter = steady(clock, rate=1.0)
    limiter._sent(waited=True)
    window(limiter, clock, oks=0, throttles=1, span=1.0)
    window(limiter, clock, oks=3, throttles=0, span=3.0)
    assert limiter.rate == pytest.approx(1.1**3)  # growth a second, over the spell's 3 s


def test_a_clean_spell_too_short_to_judge_holds_the_rate(clock: FakeClock) -> None:
    limiter = steady(clock, rate=4.0)
    limiter._sent(waited=True)
    window(limiter, clock, oks=0, throttles=1, span=0.25)
    window(limiter, clock, oks=6, throttles=0, span=1.5)  # six answers, but 1.25 s
    assert limiter.rate == 4.0


def test_a_slow_rate_grows_per_second_not_per_window(clock: FakeClock) -> None:
    limiter = steady(clock, rate=0.5)
    limiter._sent(waited=True)
    window(limiter, clock, oks=3, throttles=0, span=6.0)  # 3 clean answers in 6 s
    assert limiter.rate == pytest.approx(0.5 * 1.1**6)


def test_growth_is_at_most_one_and_a_half_times_a_second_over_two(clock: FakeClock) -> None:
    # A small share left alone (its neighbours finished): clean window after
    # clean window, growth speeds up until it meets the cap. Each window of
    # 2 s or more grows by 2.25x at most, so one long window is no leap; the
    # 2 s window grows by as much, so a small share's windows of seconds
    # regrow it about as fast in time as a large share's quick ones.
    limiter = steady(clock, rate=2.0)
    rates = []
    for span in (2.0, 2.0, 2.0, 2.0, 6.0):
        limiter._sent(waited=True)
        window(limiter, clock, oks=10, throttles=0, span=span)
        rates.append(limiter.rate)
    steps = [after / before for before, after in itertools.pairwise([2.0, *rates])]
    assert steps == pytest.approx([1.1**2, 1.2**2, 1.4**2, 2.25, 2.25])


def test_answers_to_requests_sent_before_a_cut_are_not_judged_again(clock: FakeClock) -> None:
    limiter = steady(clock, rate=40.0, window=1.0)
    before = clock.t
    window(limiter, clock, oks=0, throttles=40, span=1.0)
    rate = limiter.rate
    for _ in range(100):
        limiter.on_throttle(before)  # the rest of that burst coming back
    assert limiter.rate == rate
    assert limiter.throttles == 142  # with the two that ended the start


def test_the_rate_never_falls_below_the_floor(clock: FakeClock) -> None:
    limiter = steady(clock, rate=20.0, window=1.0, min_rate=12.0)
    for _ in range(5):
        window(limiter, clock, oks=0, throttles=20, span=1.0)
    assert limiter.rate == 12.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"high_fraction": 0.01, "low_fraction": 0.5},
        {"high_fraction": 1.0},
        {"growth": 0.9},
        {"window": 0},
        {"min_samples": 0},
        {"min_rate": 0},
        {"min_rate": 20.0, "initial_rate": 10.0},
    ],
)
def test_adaptive_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="need"):
        AdaptiveRateLimiter(**kwargs)  # type: ignore[arg-type]


# -- a slow account's spacing ----------------------------------------------------------


async def lone_client_on_a_spacing(
    limiter: AdaptiveRateLimiter, spacing: float, requests: int
) -> list[tuple[float, bool]]:
    """One client, one request at a time, against a server that accepts a request
    only ``spacing`` seconds or more after the last one it accepted."""
    answers: list[tuple[float, bool]] = []
    accepted = -float("inf")
    for _ in range(requests):
        sent = await limiter.acquire()
        ok = sent - accepted >= spacing
        accepted = sent if ok else accepted
        await asyncio.sleep(0.05)
        (limiter.on_success if ok else limiter.on_throttle)(sent)
        answers.append((sent, ok))
    return answers


@pytest.mark.parametrize("seed", range(5))
def test_a_lone_client_finds_a_slow_accounts_spacing_and_keeps_to_it(seed: int) -> None:
    async def main() -> tuple[list[tuple[float, bool]], float | None]:
        limiter = AdaptiveRateLimiter(clock=LoopClock(), rng=random.Random(seed))
        answers = await lone_client_on_a_spacing(limiter, 6.0, 60)
        return answers, limiter.spacing

    answers, spacing = run_virtual(main())
    # 6 s, or a probe a little under it (every 20 accepted requests, in case
    # the account's limit grew).
    assert spacing is not None
    assert 6.0 * 0.9 <= spacing <= 6.0 * 1.03
    late = [ok for sent, ok in answers if sent > 60.0]
    assert late.count(False) <= len(late) // 10  # a probe now and then, no more
    accepted = [sent for sent, ok in answers if ok and sent > 60.0]
    gaps = [b - a for a, b in itertools.pairwise(accepted)]
    assert max(gaps) <= 6.0 * 1.03  # each accepted request soon after its token


# Three refused 4 s after an accepted request, three accepted 6 s after one.
LONE_ANSWERS = [(0.0, True), (4.0, False), (6.0, True), (10.0, False), (12.0, True)]
LONE_ANSWERS += [(16.0, False), (18.0, True)]


def after_lone_answers(clock: FakeClock, *, shared: bool = False) -> AdaptiveRateLimiter:
    """A limiter that has seen :data:`LONE_ANSWERS`: a spacing between 4 and 6 s."""
    limiter = AdaptiveRateLimiter(initial_rate=0.5, clock=clock, shared=shared)
    for sent, ok in LONE_ANSWERS:
        clock.t = sent + 0.05
        answer(limiter, clock, sent, ok=ok)
    return limiter


def test_answers_no_spacing_explains_leave_the_rate_to_windows(clock: FakeClock) -> None:
    # Lone-client answers bracket a spacing between 4 and 6 s (two of each
    # would not do: shards of one account can look like that for a while),
    # and the next request goes a step under the 6 s accepted...
    limiter = after_lone_answers(clock)
    assert limiter.spacing == pytest.approx(6.0 * 0.975)
    # ...until a request 1 s after an accepted one is accepted too: another
    # client's share moves, not a spacing.
    clock.t = 19.05
    answer(limiter, clock, 19.0, ok=True)
    assert limiter.spacing is None


def test_a_spacing_given_up_is_looked_for_afresh_15_s_later(clock: FakeClock) -> None:
    # Another client's requests break the spacing (a shard's neighbours)...
    limiter = after_lone_answers(clock)
    clock.t = 19.05
    answer(limiter, clock, 19.0, ok=True)
    assert limiter.spacing is None

    def lone_answers_from(start: float) -> None:
        for sent, ok in LONE_ANSWERS:
            clock.t = start + sent + 0.05
            answer(limiter, clock, start + sent, ok=ok)

    # ...and answers like a lone client's, sent within 15 s of that, are not
    # looked at: the neighbours are still there, and their traffic can look
    # like a spacing for a while.
    lone_answers_from(19.5)  # 19.5 s to 37.5 s: those from 34 s on are too few
    assert limiter.spacing is None
    # Its neighbours done, the last shard's answers bracket its spacing again.
    lone_answers_from(44.0)
    assert limiter.spacing == pytest.approx(6.0 * 0.975)


@pytest.mark.parametrize(("shared", "settled"), [(True, 5), (False, 30)], ids=["shared", "alone"])
def test_a_spacing_the_account_does_not_keep_is_given_up_after_its_test(
    clock: FakeClock, shared: bool, settled: int
) -> None:
    # Refusals that came from other clients' traffic (or a limit that grew).
    limiter = after_lone_answers(clock, shared=shared)
    assert limiter.spacing == pytest.approx(6.0 * 0.975)
    sent, spacings = 18.0, list[float]()
    while (spacing := limiter.spacing) is not None and len(spacings) < 60:
        spacings.append(spacing)
        sent += spacing
        clock.t = sent + 0.05
        answer(limiter, clock, sent, ok=True)  # this account accepts every request
    # The bracket settles near 4 s; five requests later (shared: the bracket
    # may be other clients' doing), or thirty (alone: a limit that grew is
    # all the test can find, and the 5th finds it no sooner than the 30th),
    # one goes at half of that, is accepted, and the spacing is given up.
    assert limiter.spacing is None
    assert spacings[-1] == pytest.approx(spacings[-2] / 2)
    at_the_bracket = [s for s in spacings[:-1] if s == pytest.approx(spacings[-2])]
    assert len(at_the_bracket) == settled


def test_refusals_past_the_top_raise_it_once_and_then_give_the_spacing_up(
    clock: FakeClock,
) -> None:
    # Two shards can answer like a lone client for a while. Then the other's
    # requests take the tokens: requests sent at the top are refused. The
    # first may be the network's jitter, and raises the top by 3%; a second
    # gives the spacing up. Raised each time, the top crept up 3% a refusal
    # and requests left a fifth of a second apart, each refused.
    limiter = after_lone_answers(clock)
    sent = 18.0 + 6.0
    clock.t = sent + 0.05
    answer(limiter, clock, sent, ok=False)
    assert limiter.spacing == pytest.approx(6.0 * 1.03)
    sent = 18.0 + 6.0 * 1.03
    clock.t = sent + 0.05
    answer(limiter, clock, sent, ok=False)
    assert limiter.spacing is None


def test_a_spacing_longer_than_the_floor_is_kept_to() -> None:
    # A floor of one request every 4 s, and a spacing of about 6 s. Cut to
    # the floor, the next request would be due 4 s after the last success:
    # at once, after every 429 that comes later than that, one after
    # another. Each request goes one spacing after the last success.
    async def main() -> list[tuple[float, bool]]:
        limiter = AdaptiveRateLimiter(initial_rate=0.5, min_rate=0.25, clock=LoopClock())
        return await lone_client_on_a_spacing(limiter, 6.0, 40)

    answers = run_virtual(main())
    # After the start, a refused probe is followed by a request at the top,
    # which is accepted (cut to the floor: 28 s in, 40 refusals in 2 s).
    late = [ok for sent, ok in answers if sent > 10.0]
    assert not any(not a and not b for a, b in itertools.pairwise(late))
    assert answers[-1][0] > 180.0  # 40 requests, about one a spacing


def test_a_retry_after_bounds_the_spacing_from_above(clock: FakeClock) -> None:
    limiter = after_lone_answers(clock)
    # Refused 4.5 s after the last accepted request, and told to come back
    # 5 s after it: the spacing is between 4.5 and 5 s, and the next request
    # goes a step under 5 s.
    clock.t = 22.55
    limiter.pause(0.45)
    answer(limiter, clock, 22.5, ok=False)
    assert limiter.spacing == pytest.approx(5.0 * 0.975)


def test_a_whole_seconds_retry_after_bounds_the_spacing_from_below(clock: FakeClock) -> None:
    limiter = after_lone_answers(clock)  # a spacing between 4 and 6 s
    # Refused half a second after the last accepted request, its answer
    # back 0.05 s later with "Retry-After: 5": come back 5.55 s after the
    # accepted request, and, the header being whole seconds rounded up, not
    # before 4.5 s. The lower bound counts from when the request left: the
    # server's wait began between that and the answer. (Counted from the
    # answer, 4.55 s: at one request a second, a round trip of 0.05 s made
    # the bound longer than the spacing, and every request left late.)
    clock.t = 18.55
    limiter.pause(5.0)
    answer(limiter, clock, 18.5, ok=False)
    assert limiter.spacing == pytest.approx(5.55 * 0.975)
    # Each accepted step down doubles the next, but never past the middle
    # of the bracket: the middle of 4.5 s and 5.55 s, not of 4 s and 6 s.
    sent = 18.0
    for _ in range(2):
        sent += limiter.spacing or 0.0
        clock.t = sent + 0.05
        answer(limiter, clock, sent, ok=True)
    # Accepted at 5.55 s less 2.5%, then less 5%: the next step would be
    # 10%, past the middle.
    high = 5.55 * 0.975 * 0.95
    assert limiter.spacing == pytest.approx((4.5 + high) / 2)


def test_a_spacing_never_sends_during_a_pause() -> None:
    async def main() -> float:
        clock = LoopClock()
        limiter = AdaptiveRateLimiter(initial_rate=0.5, clock=clock)
        for sent, ok in LONE_ANSWERS:
            await asyncio.sleep(sent + 0.05 - clock.now())
            (limiter.on_success if ok else limiter.on_throttle)(sent)
        await asyncio.sleep(22.55 - clock.now())
        limiter.pause(2.0)  # longer than the spacing says: the server is obeyed
        limiter.on_throttle(22.5)
        return await limiter.acquire()

    assert run_virtual(main()) == pytest.approx(24.55)


def test_each_request_of_a_shared_limiter_leaves_at_a_random_point_of_its_own_slot() -> None:
    async def main() -> list[float]:
        limiter = AdaptiveRateLimiter(
            initial_rate=10.0, clock=LoopClock(), rng=random.Random(7), shared=True
        )
        return await send_times(limiter, 201)

    sent = run_virtual(main())
    # Slots 0.1 s apart: request k leaves within one slot of k * 0.1, so the
    # rate holds over every few requests and never drifts...
    offsets = [t - k * 0.1 for k, t in enumerate(sent)]
    assert max(offsets) - min(offsets) <= 0.1 + 1e-9
    # ...but when a request leaves is not told by when the last one left: gaps
    # run from nothing to two slots, and a long gap tends to follow a short one.
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) < 0.02
    assert max(gaps) > 0.18
    assert statistics.pstdev(gaps) > 0.03
    assert statistics.correlation(gaps[:-1], gaps[1:]) < -0.3


def out_of_its_start(limiter: AdaptiveRateLimiter) -> AdaptiveRateLimiter:
    """``limiter`` after two 429s ended its start, at half its initial rate."""
    limiter.on_throttle(0.0)
    limiter.on_throttle(0.0)
    assert not limiter.starting
    return limiter


@pytest.mark.parametrize("rate", [4.0, 2.0])
def test_a_limiter_alone_on_its_account_paces_evenly_at_four_requests_a_second_or_slower(
    rate: float,
) -> None:
    # A bucket a second or so deep holds a few tokens at such paces: a
    # request at a random point of its slot, soon after the one before,
    # finds it empty (see test_throttling: 90 a minute). Shared, they
    # leave at random points (and evenly from one a second: see the spacing).
    async def main(shared: bool) -> list[float]:
        limiter = AdaptiveRateLimiter(
            initial_rate=2 * rate, clock=LoopClock(), rng=random.Random(7), shared=shared
        )
        return await send_times(out_of_its_start(limiter), 40)

    alone = [b - a for a, b in itertools.pairwise(run_virtual(main(shared=False)))]
    assert alone == pytest.approx([1 / rate] * 39)
    shared = [b - a for a, b in itertools.pairwise(run_virtual(main(shared=True)))]
    assert statistics.pstdev(shared) > 0.1 / rate


def test_a_limiter_alone_keeps_random_points_at_fast_paces_and_is_even_in_its_start() -> None:
    # Faster than four a second, the random points stay: fair to other tools
    # that may use the account. In the start, requests leave evenly: its
    # 429s are what tells a slow account's spacing.
    async def main(started: bool) -> list[float]:
        limiter = AdaptiveRateLimiter(initial_rate=20.0, clock=LoopClock(), rng=random.Random(7))
        return await send_times(out_of_its_start(limiter) if started else limiter, 41)

    fast = [b - a for a, b in itertools.pairwise(run_virtual(main(started=True)))]
    assert statistics.pstdev(fast) > 0.01
    start = [b - a for a, b in itertools.pairwise(run_virtual(main(started=False)))]
    assert start == pytest.approx([0.05] * 40)


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "shared"])
@pytest.mark.parametrize(("low", "high"), [(4.0, 6.0), (5.9, 7.6)])
def test_while_a_spacing_forms_a_limiter_alone_sends_nothing_before_its_next_step(
    clock: FakeClock, shared: bool, low: float, high: float
) -> None:
    # Refused ``low`` after an accepted request and accepted ``high`` after
    # one: a spacing between the two forms (two acceptances: not yet known).
    # The top may be longer than any account's own spacing (6 s at 10 a
    # minute): the first acceptance after the start's cuts comes late.
    limiter = AdaptiveRateLimiter(initial_rate=0.5, clock=clock, shared=shared)
    for sent, ok in [(0.0, True), (low, False), (high, True), (high + 1.6, False)]:
        clock.t = sent + 0.05
        answer(limiter, clock, sent, ok=ok)
    assert limiter.spacing is None

    async def next_send() -> float:
        return await limiter.acquire()

    clock.t = high + 1.65
    sent = asyncio.run(next_send())
    if shared:
        # At the limiter's rate, whatever the bracket: at once here, sooner
        # than the spacing, which only other clients' answers could make
        # worth it.
        assert sent == pytest.approx(high + 1.65)
    else:
        # A step under the top accepted, after the last acceptance (never
        # past the middle of the bracket): alone, any sooner would be
        # refused and tell nothing new.
        assert sent == pytest.approx(high + max(high * 0.975, (low + high) / 2))


def test_a_refusal_a_hair_under_the_top_is_one_at_the_top(clock: FakeClock) -> None:
    # A spacing of 6 s whose top was set by a request accepted a few
    # milliseconds short of it (the one before it late on the wire): each
    # request sent at the top arrives a hair too soon and is refused, and
    # with Retry-After each such 429 pauses the client a whole second. A
    # refusal within half a percent under the top (narrowing steps go 2.5%
    # under it or more) is one at the top: it is raised once by the jitter...
    limiter = AdaptiveRateLimiter(initial_rate=0.5, clock=clock)
    answers = [(0.0, True), (5.9, False), (5.995, True), (11.8, False), (11.99, True)]
    answers += [(17.8, False), (17.985, True)]
    for sent, ok in answers:
        clock.t = sent + 0.05
        answer(limiter, clock, sent, ok=ok)
    assert limiter.spacing == pytest.approx(5.995)
    sent = 17.985 + 5.994
    clock.t = sent + 0.05
    answer(limiter, clock, sent, ok=False)
    assert limiter.spacing == pytest.approx(5.994 * 1.03)
    # ...and refused there too, the spacing is given up (other clients).
    sent = 17.985 + 5.994 * 1.03 - 0.001
    clock.t = sent + 0.05
    answer(limiter, clock, sent, ok=False)
    assert limiter.spacing is None


def test_a_limiter_alone_whose_slow_spacing_breaks_takes_the_account_to_be_shared(
    clock: FakeClock,
) -> None:
    # A spacing between 4 and 6 s, and then a request accepted 1 s after an
    # accepted one: no client alone gets that answer, another took no token
    # in between. From then on the limiter behaves as one told it shares
    # the account (random points; a spacing tested after 5 requests).
    limiter = after_lone_answers(clock)
    assert not limiter.shared
    clock.t = 19.05
    answer(limiter, clock, 19.0, ok=True)
    assert limiter.spacing is None
    assert limiter.shared


# -- Retry-After: the refused request's floor; every request's only when the account is closed --


async def _past_the_start(clock: FakeClock, *, shared: bool = False) -> AdaptiveRateLimiter:
    """A limiter at 100 requests a second whose start ended (two 429s)."""
    limiter = AdaptiveRateLimiter(initial_rate=200.0, clock=clock, shared=shared)
    first, second = await limiter.acquire(), await limiter.acquire()
    limiter.on_throttle(first)
    limiter.on_throttle(second)
    limiter.on_success(await limiter.acquire())
    assert (limiter.rate, limiter.starting) == (100.0, False)
    return limiter


async def test_a_lone_429s_retry_after_pauses_no_other_request(clock: FakeClock) -> None:
    limiter = await _past_the_start(clock)
    sent = await limiter.acquire()
    limiter.pause(1.0)  # a whole second at a hundred a second: a hundred requests' worth
    limiter.on_throttle(sent)
    assert limiter.paused_until < clock.now()  # the refused request's own wait, no one else's
    sent = await limiter.acquire()
    limiter.pause(1.0)  # a second 429 in a row: the account is closed for now
    limiter.on_throttle(sent)
    assert limiter.paused_until == pytest.approx(clock.now() + 1.0)


async def test_a_retry_after_of_a_request_or_two_of_the_pace_pauses_every_request(
    clock: FakeClock,
) -> None:
    limiter = await _past_the_start(clock)
    sent = await limiter.acquire()
    limiter.pause(0.02)  # two requests' worth: waiting costs little, and spares a refusal
    limiter.on_throttle(sent)
    assert limiter.paused_until == pytest.approx(clock.now() + 0.02)


async def test_a_shared_accounts_429_pauses_every_request(clock: FakeClock) -> None:
    limiter = await _past_the_start(clock, shared=True)
    sent = await limiter.acquire()
    limiter.pause(1.0)  # other processes drew it as much as this one
    limiter.on_throttle(sent)
    assert limiter.paused_until == pytest.approx(clock.now() + 1.0)
