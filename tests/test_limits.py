from __future__ import annotations

import asyncio
import itertools
import random
import statistics

import attrs
import pytest
from simulated import LoopClock, run_virtual
from support import FakeClock

from fwprep import AdaptiveConfig, AdaptiveRateLimiter, FixedRateLimiter, InputError


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


# -- the adaptive rate: its numbers ---------------------------------------------------


def test_every_number_of_the_adaptive_limiter_is_a_field_of_one_frozen_config() -> None:
    limiter = AdaptiveRateLimiter(initial_rate=50.0, probe_cap=2.0)
    assert limiter.config == AdaptiveConfig(initial_rate=50.0, probe_cap=2.0)
    assert limiter.rate == 50.0
    given = AdaptiveConfig(min_rate=1.0)
    assert AdaptiveRateLimiter(given, window=1.0).config == AdaptiveConfig(min_rate=1.0, window=1.0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        limiter.config.window = 1.0  # type: ignore[misc]
    assert len(attrs.fields(AdaptiveConfig)) <= 12


@pytest.mark.parametrize(
    "kwargs",
    [
        {"high": 0.01, "low": 0.5},
        {"high": 1.0},
        {"growth": 0.9},
        {"growth": 2.0, "max_growth": 1.5},
        {"window": 0},
        {"min_samples": 0},
        {"min_rate": 0},
        {"min_rate": 20.0, "initial_rate": 10.0},
        {"closed_after": 0},
        {"probe_cap": float("inf")},
    ],
)
def test_adaptive_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(InputError, match="need"):
        AdaptiveRateLimiter(**kwargs)  # type: ignore[arg-type]


def test_adaptive_names_a_number_it_does_not_have() -> None:
    with pytest.raises(InputError, match="not a field of AdaptiveConfig"):
        AdaptiveRateLimiter(speed=3.0)


# -- the start ------------------------------------------------------------------------


def answer(limiter: AdaptiveRateLimiter, clock: FakeClock, sent_at: float, *, ok: bool) -> None:
    """An answer arriving now to a request sent at ``sent_at``."""
    if ok:
        limiter.on_success(sent_at)
    else:
        limiter.on_throttle(sent_at)


def held_back_answers(
    limiter: AdaptiveRateLimiter, clock: FakeClock, count: int, gap: float, *, every: int = 0
) -> None:
    """``count`` answers ``gap`` apart, each to a request the pace held back; with
    ``every``, each ``every``-th of them a 429."""
    for i in range(count):
        limiter._sent(waited=True)
        sent = clock.t
        clock.t += gap
        answer(limiter, clock, sent, ok=not every or i % every != every // 2)


def test_the_start_doubles_at_most_once_a_window_however_quick_the_answers(
    clock: FakeClock,
) -> None:
    # A second of clean answers 1/64 s apart, every request held back by the
    # pace: a token bucket takes a second's worth at any rate, so these say
    # little. Doubling on each of them would reach 10 * 2**64 a second.
    limiter = AdaptiveRateLimiter(initial_rate=10.0, window=0.25, clock=clock)
    start, doubled_at = clock.t, []
    for _ in range(64):
        before = limiter.rate
        held_back_answers(limiter, clock, 1, 1 / 64)
        if limiter.rate != before:
            doubled_at.append(clock.t - start)
    assert doubled_at == [2 / 64, 18 / 64, 34 / 64, 50 / 64]  # a quarter second apart
    assert limiter.rate == 128.0  # 16 (twice the 8 a second accepted at first), then doubled
    assert limiter.starting


def test_the_start_grows_no_further_than_twice_what_the_server_accepted(
    clock: FakeClock,
) -> None:
    # Answers come back at 100 a second whatever the rate (the client's
    # concurrency bounds it), while requests queue behind the pace: doubling
    # on would run the rate to millions a second, and the first 429s of a
    # window spent would leave it there.
    limiter = AdaptiveRateLimiter(initial_rate=10.0, clock=clock)
    held_back_answers(limiter, clock, 1000, 0.01)
    assert limiter.starting
    assert 100.0 <= limiter.rate <= 2 * 100.0 + 1e-6


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
    # requests a second.
    limiter = AdaptiveRateLimiter(initial_rate=10.0, window=0.25, clock=clock)
    held_back_answers(limiter, clock, 100, 1 / 50, every=10)  # two seconds
    assert limiter.starting
    assert limiter.rate >= 40.0  # doubled up to twice the 45 a second accepted


# -- windows: cut, grow, step back -------------------------------------------------------


def steady(
    clock: FakeClock, rate: float = 40.0, *, shared: bool = True, **options: float
) -> AdaptiveRateLimiter:
    """A limiter past its start, at ``rate``, after one clean window.

    Shared by default: a client alone at a slow pace keeps a spacing, which
    evenly spread answers can bracket.
    """
    limiter = AdaptiveRateLimiter(initial_rate=2 * rate, clock=clock, shared=shared, **options)  # type: ignore[arg-type]
    limiter.on_throttle(clock.t - 1)
    limiter.on_throttle(clock.t - 1)
    cfg = limiter.config
    window(limiter, clock, cfg.min_samples, 0, max(cfg.window, 2 * cfg.slow))
    assert (limiter.rate, limiter.starting) == (rate, False)
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
    window(limiter, clock, oks=1, throttles=3, span=0.1)  # 15/s accepted: judged at once
    assert limiter.rate == pytest.approx(20.0)


def test_a_flood_of_429s_is_judged_before_the_window_is_full(clock: FakeClock) -> None:
    limiter = steady(clock, rate=1.0, min_samples=10)
    window(limiter, clock, oks=1, throttles=3, span=4.0)  # 3 of 4 429s: at 1/s, not 10 s
    assert limiter.rate == pytest.approx(0.5)


def test_a_thin_stream_of_429s_does_not_cut(clock: FakeClock) -> None:
    limiter = steady(clock, rate=40.0, window=0.5)
    for _ in range(20):
        window(limiter, clock, oks=19, throttles=1, span=0.5)
    assert limiter.rate == 40.0


def test_429s_a_cut_does_not_end_are_taken_for_the_background(clock: FakeClock) -> None:
    # One answer in six a 429 whatever the rate (a proxy, another tool's
    # bursts): the first window cuts, the one after shows the cut changed
    # nothing, and from then on windows are judged on their 429s above that.
    limiter = steady(clock, rate=40.0, window=0.5)
    window(limiter, clock, oks=20, throttles=4, span=0.5)
    cut = limiter.rate
    assert cut < 40.0
    rates = []
    for _ in range(6):
        limiter._sent(waited=True)
        window(limiter, clock, oks=20, throttles=4, span=0.5)
        rates.append(limiter.rate)
    assert rates[-1] == rates[-2] >= rates[0] >= cut * 0.9  # held: no cut after cut
    # A real limit still cuts: most of a window refused.
    window(limiter, clock, oks=10, throttles=10, span=0.5)
    assert limiter.rate < rates[-1]


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


def test_the_rate_never_grows_past_twice_what_the_server_accepted(clock: FakeClock) -> None:
    limiter = steady(clock, rate=40.0, window=1.0)
    for _ in range(10):
        limiter._sent(waited=True)
        window(limiter, clock, oks=40, throttles=0, span=1.0)  # 40 a second, however fast
        assert limiter.rate <= 2 * 40.5
    assert limiter.rate == pytest.approx(2 * 40.5)


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
    # Windows longer than four of the shortest (a small share of a crowded
    # account): holding a step back would cost seconds, and a neighbour's
    # burst looks the same.
    limiter = steady(clock, rate=5.0)
    limiter._sent(waited=True)
    window(limiter, clock, oks=10, throttles=0, span=2.0)
    assert limiter.rate == pytest.approx(5.0 * 1.1**2)  # growth a second
    limiter._sent(waited=True)
    window(limiter, clock, oks=9, throttles=1, span=2.0)  # the 429 last
    assert limiter.rate == pytest.approx(5.0 * 1.1**2)


def test_a_slow_rate_grows_per_second_not_per_window(clock: FakeClock) -> None:
    limiter = steady(clock, rate=0.5)
    limiter._sent(waited=True)
    window(limiter, clock, oks=3, throttles=0, span=6.0)  # 3 clean answers in 6 s
    assert limiter.rate == pytest.approx(0.5 * 1.1**6)


def test_a_clean_spell_too_short_to_judge_holds_the_rate(clock: FakeClock) -> None:
    limiter = steady(clock, rate=4.0)
    limiter._sent(waited=True)
    window(limiter, clock, oks=0, throttles=1, span=0.25)
    window(limiter, clock, oks=6, throttles=0, span=1.5)  # a 429 and six answers in 1.75 s
    assert limiter.rate == 4.0


def test_growth_is_at_most_one_and_a_half_times_a_second_over_two(clock: FakeClock) -> None:
    # Clean window after clean window, growth speeds up until it meets the
    # cap: a window of 2 s grows by 2.25x at most.
    limiter = steady(clock, rate=2.0, window=2.0)
    rates = []
    for _ in range(5):
        limiter._sent(waited=True)
        window(limiter, clock, oks=400, throttles=0, span=2.0)
        rates.append(limiter.rate)
    steps = [after / before for before, after in itertools.pairwise([2.0, *rates])]
    assert steps == pytest.approx([1.1**2, 1.2**2, 1.4**2, 2.25, 2.25])


def test_answers_to_requests_sent_before_a_cut_are_not_judged_again(clock: FakeClock) -> None:
    limiter = steady(clock, rate=40.0, window=1.0)
    before = clock.t
    window(limiter, clock, oks=30, throttles=10, span=1.0)
    rate = limiter.rate
    for _ in range(100):
        limiter.on_throttle(before)  # the rest of that burst coming back
        limiter.on_success(before)
    assert limiter.rate == rate
    assert limiter.throttles == 112  # with the two that ended the start


def test_the_rate_never_falls_below_the_floor(clock: FakeClock) -> None:
    limiter = steady(clock, rate=20.0, window=1.0, min_rate=12.0)
    for _ in range(5):
        window(limiter, clock, oks=10, throttles=10, span=1.0)
    assert limiter.rate == 12.0


# -- a closed account, and Retry-After ----------------------------------------------------


def refused_in_flight(limiter: AdaptiveRateLimiter, clock: FakeClock, requests: int) -> None:
    """``requests`` sent together, refused one after another 10 ms apart."""
    sent = clock.t
    for _ in range(requests):
        clock.t += 0.01
        limiter.on_throttle(sent)


def test_429s_in_a_row_close_the_account_hold_the_rate_and_probe_with_backoff(
    clock: FakeClock,
) -> None:
    # A fixed window spent: every request refused until the next minute,
    # and no Retry-After. The third 429 in a row closes the account: one cut,
    # then the rate is held for the minute's end, and every request waits a
    # backoff doubling from a quarter second to four.
    limiter = steady(clock, rate=100.0)
    refused_in_flight(limiter, clock, 3)
    assert limiter.closed
    held = limiter.rate
    assert held == pytest.approx(50.0)
    waits = []
    for _ in range(7):
        sent = clock.t
        clock.t += 0.05
        limiter.on_throttle(sent)
        waits.append(limiter.paused_until - clock.t)
    assert waits == pytest.approx([0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0])
    assert limiter.rate == held
    # The first answer that is not a 429 reopens it, at the rate held.
    limiter.on_success(clock.t)
    assert not limiter.closed
    assert limiter.rate == held


async def test_a_closed_account_is_probed_by_one_request_at_a_time(clock: FakeClock) -> None:
    # At a hundred a second, a request every 10 ms; closed, the next request
    # after a probe waits for the probe's answer (at most the backoff, at
    # least a quarter second: an answer that never comes holds nothing for good).
    limiter = steady(clock, rate=100.0)
    for _ in range(3):
        limiter.on_throttle(clock.t)  # no Retry-After
    assert limiter.closed
    probe = await limiter.acquire()
    second = await limiter.acquire()
    assert second - probe == pytest.approx(0.25)
    limiter.on_throttle(second)  # refused: the backoff grows, and holds the next as long
    third = await limiter.acquire()
    assert third - second == pytest.approx(0.25)
    fourth = await limiter.acquire()
    assert fourth - third == pytest.approx(0.25)
    # A probe accepted reopens the account: the requests held behind it go at once.
    limiter.on_success(fourth)
    assert not limiter.closed
    after = [await limiter.acquire() for _ in range(3)]
    assert after[2] - fourth < 0.05  # at its pace again, not a quarter second apart


async def test_a_lone_429s_retry_after_pauses_no_other_request(clock: FakeClock) -> None:
    limiter = steady(clock, rate=100.0)
    for in_a_row in (1, 2):
        sent = await limiter.acquire()
        limiter.pause(1.0)  # a whole second at a hundred a second: a hundred requests' worth
        limiter.on_throttle(sent)
        assert limiter.paused_until < clock.now(), in_a_row  # the refused request's own wait
    sent = await limiter.acquire()
    limiter.pause(1.0)  # a third 429 in a row: the account is closed for now
    limiter.on_throttle(sent)
    assert limiter.paused_until == pytest.approx(clock.now() + 1.0)
    assert limiter.closed


def test_429s_to_requests_sent_before_the_closure_do_not_lengthen_the_backoff(
    clock: FakeClock,
) -> None:
    # Ten requests in flight when a window is spent: their 429s arrive after
    # the third closed the account. Only refused probes, sent since, double it.
    limiter = steady(clock, rate=100.0)
    refused_in_flight(limiter, clock, 10)
    assert limiter.closed
    assert limiter.paused_until <= clock.t  # no backoff yet: no probe was refused
    limiter.on_throttle(clock.t)  # a probe, refused
    assert limiter.paused_until - clock.t == pytest.approx(0.25)
    limiter.on_throttle(clock.t)
    assert limiter.paused_until - clock.t == pytest.approx(0.5)


async def probe_a_closed_account(
    limiter: AdaptiveRateLimiter, clock: FakeClock, probes: int, retry_after: float
) -> list[tuple[float, float]]:
    """Send ``probes`` requests, each refused with ``retry_after``: (time, wait) for each."""
    waits = []
    for _ in range(probes):
        sent = await limiter.acquire()
        limiter.pause(retry_after)
        limiter.on_throttle(sent)
        waits.append((clock.now(), limiter.paused_until - clock.now()))
    return waits


async def test_a_closed_accounts_probes_back_off_past_a_short_retry_after(
    clock: FakeClock,
) -> None:
    # A spent minute whose 429s all say Retry-After: 1 (a fixed answer, not
    # the minute's end): the probes wait the longer of it and the backoff, so
    # a minute closed costs a dozen 429s, not sixty.
    limiter = steady(clock, rate=100.0)
    waits = [wait for _, wait in await probe_a_closed_account(limiter, clock, 9, 1.0)]
    assert all(wait < 0 for wait in waits[:2])  # not closed yet: the refused requests' own
    assert waits[2:] == pytest.approx([1.0, 1.0, 1.0, 1.0, 2.0, 4.0, 4.0])
    # A long Retry-After (the minute's end, honestly named) is the wait itself.
    sent = await limiter.acquire()
    limiter.pause(37.0)
    limiter.on_throttle(sent)
    assert limiter.paused_until - clock.now() == pytest.approx(37.0)


async def test_an_account_closed_past_a_minute_is_probed_ever_more_slowly(
    clock: FakeClock,
) -> None:
    # No spent minute lasts longer than a minute: closed for longer, the probes
    # themselves keep it closed (where refused requests spend budget too, at 10
    # a minute a probe every 4 s never lets a token build up), and the backoff
    # doubles on, up to a minute, for as long as it lasts (hours, here).
    limiter = steady(clock, rate=100.0)
    waits = await probe_a_closed_account(limiter, clock, 2000, 1.0)
    closed_at = waits[2][0]
    within = [wait for t, wait in waits[2:] if t - closed_at < 60.0]
    past = [wait for t, wait in waits[2:] if t - closed_at >= 60.0]
    assert max(within) == pytest.approx(4.0)
    assert past[:4] == pytest.approx([8.0, 16.0, 32.0, 60.0])
    assert past[-1] == pytest.approx(60.0)
    # The first answer that is not a 429 reopens it. An account that took over
    # a minute to reopen is probed, the next time it closes, from the backoff
    # that reopened it: where refused requests spend budget, the quicker
    # probes would keep it closed again.
    limiter.on_success(clock.now())
    waits = await probe_a_closed_account(limiter, clock, 5, 1.0)
    assert [wait for _, wait in waits[2:]] == pytest.approx([60.0, 60.0, 60.0])


async def test_an_account_that_reopens_within_a_minute_is_probed_afresh_next_time(
    clock: FakeClock,
) -> None:
    limiter = steady(clock, rate=100.0)
    waits = await probe_a_closed_account(limiter, clock, 8, 1.0)
    assert waits[-1][1] == pytest.approx(4.0)  # closed for seconds: the backoff at 4 s
    limiter.on_success(clock.now())
    waits = await probe_a_closed_account(limiter, clock, 6, 1.0)
    assert [wait for _, wait in waits[2:]] == pytest.approx([1.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "shared"])
async def test_a_429s_retry_after_pauses_no_other_request_of_a_shared_account_either(
    clock: FakeClock, shared: bool
) -> None:
    limiter = AdaptiveRateLimiter(initial_rate=100.0, clock=clock, shared=shared)
    sent = await limiter.acquire()
    limiter.pause(6.0)  # a fixed Retry-After, whatever the wait
    limiter.on_throttle(sent)
    assert limiter.paused_until < clock.now()


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


@pytest.mark.parametrize("spacing", [1.0, 2.5, 6.0])
def test_a_lone_client_finds_a_slow_accounts_spacing_and_keeps_to_it(spacing: float) -> None:
    async def main() -> tuple[list[tuple[float, bool]], float | None]:
        limiter = AdaptiveRateLimiter(clock=LoopClock())
        answers = await lone_client_on_a_spacing(limiter, spacing, 80)
        return answers, limiter.spacing

    answers, found = run_virtual(main())
    assert found == pytest.approx(spacing, rel=0.03)
    late = answers[len(answers) // 2 :]
    assert not any(not ok for _, ok in late)  # narrow enough: no probe refused
    accepted = [sent for sent, ok in late if ok]
    gaps = [b - a for a, b in itertools.pairwise(accepted)]
    assert max(gaps) <= spacing * 1.03  # each accepted request soon after its token


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


def test_the_spacing_is_narrowed_from_above_a_step_at_a_time(clock: FakeClock) -> None:
    limiter = after_lone_answers(clock)
    assert limiter.spacing == pytest.approx(6.0 * 0.97)
    sent = 18.0
    for _ in range(2):  # each step down accepted doubles the next
        sent += limiter.spacing or 0.0
        clock.t = sent + 0.05
        answer(limiter, clock, sent, ok=True)
    # 3%, then 6%, then 12% under the last top accepted:
    assert limiter.spacing == pytest.approx(6.0 * 0.97 * 0.94 * 0.88)


def test_answers_no_spacing_explains_start_it_afresh(clock: FakeClock) -> None:
    # A request 1 s after an accepted one is accepted too: another client's
    # share moves, or the limit has another shape, not a spacing.
    limiter = after_lone_answers(clock)
    clock.t = 19.05
    answer(limiter, clock, 19.0, ok=True)
    assert limiter.spacing is None
    assert not limiter.shared
    for sent, ok in LONE_ANSWERS:  # the same answers again: the same spacing
        clock.t = 20.0 + sent + 0.05
        answer(limiter, clock, 20.0 + sent, ok=ok)
    assert limiter.spacing == pytest.approx(6.0 * 0.97)


def test_a_shared_limiter_keeps_no_spacing(clock: FakeClock) -> None:
    assert after_lone_answers(clock, shared=True).spacing is None


def test_a_spacing_is_kept_only_from_a_second_to_the_floors_pace(clock: FakeClock) -> None:
    # A minute's window spent: refused 8 s after the last acceptance, then
    # accepted 12 s after it. No one-token bucket refills that slowly (the
    # floor is 9 a minute, 6.7 s): the rate, not a spacing, paces what follows.
    limiter = AdaptiveRateLimiter(initial_rate=0.5, clock=clock)
    for sent, ok in [(0.0, True), (8.0, False), (12.0, True), (20.0, False), (24.0, True)]:
        clock.t = sent + 0.05
        answer(limiter, clock, sent, ok=ok)
    assert limiter.spacing is None
    # Nor does one under a second: windows of answers pace a fast account.
    limiter = AdaptiveRateLimiter(initial_rate=0.5, clock=clock)
    for sent, ok in [(30.0, True), (30.5, False), (30.8, True), (31.3, False), (31.6, True)]:
        clock.t = sent + 0.05
        answer(limiter, clock, sent, ok=ok)
    assert limiter.spacing is None


def test_an_account_that_accepted_a_burst_keeps_no_slow_spacing(clock: FakeClock) -> None:
    # A fixed minute at 6,000 a minute: after its spent end looked like a 4-6 s
    # spacing, the next minute accepts 100 a second. No slow bucket holds more
    # than a minute's worth of requests a second apart: from then on, answers
    # that look like a spacing again (the minute spent again) are not one.
    limiter = after_lone_answers(clock)
    assert limiter.spacing == pytest.approx(6.0 * 0.97)
    for i in range(62):  # 61 gaps of 10 ms
        clock.t = 30 + i * 0.01 + 0.05
        answer(limiter, clock, 30 + i * 0.01, ok=True)
    for sent, ok in LONE_ANSWERS:
        clock.t = 40.0 + sent + 0.05
        answer(limiter, clock, 40.0 + sent, ok=ok)
    assert limiter.spacing is None


@pytest.mark.parametrize(("accepted", "spacing"), [(59, True), (60, False)])
def test_a_minutes_worth_counts_as_a_burst_whatever_order_its_answers_come_in(
    clock: FakeClock, accepted: int, spacing: bool
) -> None:
    # A fixed minute of 60 spent at once, its answers overtaking one another (16
    # in flight): a minute's worth accepted under a second apart is no slow
    # bucket, so the refusals that follow (a spent minute) bracket no spacing.
    limiter = after_lone_answers(clock)
    sent = [30 + i * 0.01 for i in range(accepted)]
    order = [t for pair in zip(sent[1::2], sent[::2], strict=False) for t in pair]
    order += sent[len(order) :]
    for i, t in enumerate(order):
        clock.t = 31 + i * 0.001
        answer(limiter, clock, t, ok=True)
    for when, ok in LONE_ANSWERS:
        clock.t = 40.0 + when + 0.05
        answer(limiter, clock, 40.0 + when, ok=ok)
    assert (limiter.spacing is not None) is spacing


def test_a_retry_after_does_not_shape_the_spacing(clock: FakeClock) -> None:
    # A server whose 429s always say "Retry-After: 6", whatever the wait:
    # taken as a bound, it made a 1 s spacing 5 s.
    told = after_lone_answers(clock)
    clock.t = 18.55
    told.pause(6.0)
    answer(told, clock, 18.5, ok=False)
    untold = after_lone_answers(FakeClock())
    untold._clock = clock
    answer(untold, clock, 18.5, ok=False)
    assert told.spacing == untold.spacing == pytest.approx(6.0 * 0.97)


def test_refusals_at_the_top_raise_it_once_and_then_start_the_spacing_afresh(
    clock: FakeClock,
) -> None:
    # A spacing of 6 s whose top was set by a request accepted a few
    # milliseconds short of it (the one before it late on the wire): each
    # request sent at the top arrives a hair too soon and is refused. The
    # first such refusal raises the top by the jitter; a second starts the
    # spacing afresh (another client takes the tokens).
    limiter = AdaptiveRateLimiter(initial_rate=0.5, clock=clock)
    answers = [(0.0, True), (5.9, False), (5.995, True), (11.8, False), (11.99, True)]
    answers += [(17.8, False), (17.985, True)]
    for sent, ok in answers:
        clock.t = sent + 0.05
        answer(limiter, clock, sent, ok=ok)
    assert limiter.spacing == pytest.approx(5.995)
    sent = 17.985 + 5.995
    clock.t = sent + 0.05
    answer(limiter, clock, sent, ok=False)
    assert limiter.spacing == pytest.approx(5.995 * 1.03)
    sent = 17.985 + 5.995 * 1.03
    clock.t = sent + 0.05
    answer(limiter, clock, sent, ok=False)
    assert limiter.spacing is None


def test_a_spacing_never_sends_during_a_pause() -> None:
    async def main() -> float:
        clock = LoopClock()
        limiter = AdaptiveRateLimiter(initial_rate=0.5, clock=clock)
        for sent, ok in LONE_ANSWERS:
            await asyncio.sleep(sent + 0.05 - clock.now())
            (limiter.on_success if ok else limiter.on_throttle)(sent)
        for sent in (22.5, 22.6, 22.7):  # three in a row: the account is closed
            await asyncio.sleep(sent + 0.05 - clock.now())
            limiter.pause(3.0)
            limiter.on_throttle(sent)
        return await limiter.acquire()

    assert run_virtual(main()) == pytest.approx(22.75 + 3.0)


# -- pacing: even alone, at random points when shared ------------------------------------


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


@pytest.mark.parametrize("rate", [100.0, 4.0, 0.5])
def test_a_limiter_alone_on_its_account_paces_evenly(rate: float) -> None:
    # A shallow bucket takes evenly spaced requests best: one soon after the
    # one before finds it empty.
    async def main() -> list[float]:
        limiter = AdaptiveRateLimiter(initial_rate=rate, clock=LoopClock())
        return await send_times(limiter, 20)

    gaps = [b - a for a, b in itertools.pairwise(run_virtual(main()))]
    assert gaps == pytest.approx([1 / rate] * 19)
