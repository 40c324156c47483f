from __future__ import annotations

import pytest
from support import FakeClock

from fwprep import AdaptiveRateLimiter, FixedRateLimiter


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_token_bucket_spaces_slots_evenly_with_no_burst_after_idle(clock: FakeClock) -> None:
    bucket = FixedRateLimiter(4.0, clock=clock)
    slots = [bucket._reserve(clock.t) for _ in range(5)]
    assert slots == [1000.0, 1000.25, 1000.5, 1000.75, 1001.0]
    clock.t = 2000.0  # a long idle spell earns no burst
    assert [bucket._reserve(clock.t) for _ in range(3)] == [2000.0, 2000.25, 2000.5]


def test_token_bucket_rejects_a_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        FixedRateLimiter(0)


async def test_token_bucket_acquire_waits_for_its_slot(clock: FakeClock) -> None:
    bucket = FixedRateLimiter(10.0, clock=clock)
    sent = [await bucket.acquire() for _ in range(4)]
    assert sent == pytest.approx([1000.0, 1000.1, 1000.2, 1000.3])
    assert clock.slept == pytest.approx([0.1, 0.1, 0.1])


def feed(
    limiter: AdaptiveRateLimiter, clock: FakeClock, oks: int, throttles: int, span: float
) -> None:
    """One window: answers evenly spread over ``span`` seconds, 429s mixed evenly among them.

    The first request is sent at the window's start; each answer comes as the
    next request leaves.
    """
    total = oks + throttles
    step = span / total
    start = clock.t
    for i in range(total):
        clock.t = start + step * (i + 1)
        sent_at = start + step * i
        if (i + 1) * throttles // total > i * throttles // total:
            limiter.on_throttle(sent_at=sent_at)
        else:
            limiter.on_success(sent_at=sent_at)


def test_adaptive_starts_unlimited_and_sets_the_rate_to_the_goodput(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(clock=clock, window=1.0)
    assert limiter.rate is None
    feed(limiter, clock, oks=35, throttles=25, span=1.0)  # the server took 35/s
    assert limiter.rate == pytest.approx(35 * 0.95)
    assert limiter.throttles == 25


def test_one_window_at_most_halves_the_rate_sent(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(clock=clock, window=1.0)
    feed(limiter, clock, oks=10, throttles=90, span=1.0)  # sent 100/s, 10/s accepted
    assert limiter.rate == pytest.approx(50 * 0.95)
    feed(limiter, clock, oks=2, throttles=45, span=1.0)  # sent 47/s, 2/s accepted
    assert limiter.rate == pytest.approx(23.5 * 0.95)


def test_a_thin_stream_of_429s_does_not_limit(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(clock=clock, window=0.5)
    for _ in range(20):
        feed(limiter, clock, oks=90, throttles=10, span=0.5)
    assert limiter.rate is None


def test_a_limited_rate_holds_in_the_band_and_grows_when_clean(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(clock=clock, window=1.0)
    feed(limiter, clock, oks=50, throttles=50, span=1.0)
    assert limiter.rate == pytest.approx(47.5)  # 95% of the 50/s accepted
    clock.t += 1
    feed(limiter, clock, oks=90, throttles=10, span=1.0)  # 10%: hold
    assert limiter.rate == pytest.approx(47.5)
    feed(limiter, clock, oks=100, throttles=0, span=1.0)  # clean: grow 10%
    assert limiter.rate == pytest.approx(47.5 * 1.1)


def test_answers_to_requests_sent_before_a_change_are_not_counted(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(clock=clock, window=1.0)
    feed(limiter, clock, oks=10, throttles=90, span=1.0)
    rate = limiter.rate
    assert rate is not None
    before_change = clock.t - 0.5
    for _ in range(200):  # the tail of the same burst
        clock.t += 0.01
        limiter.on_throttle(sent_at=before_change)
    assert limiter.rate == rate
    assert limiter.throttles == 290


def test_a_window_opens_with_its_first_request_not_at_construction(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(clock=clock, window=1.0)
    clock.t += 3600  # an idle hour before the first request must not dilute the goodput
    feed(limiter, clock, oks=60, throttles=40, span=1.0)
    assert limiter.rate == pytest.approx(60 * 0.95)


def test_429s_the_current_rate_cannot_explain_do_not_lower_it(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(clock=clock, window=1.0)
    feed(limiter, clock, oks=10, throttles=10, span=1.0)
    assert limiter.rate == pytest.approx(9.5)
    clock.t += 1
    feed(limiter, clock, oks=40, throttles=60, span=1.0)  # accepted 40/s > 9.5/s
    assert limiter.rate == pytest.approx(9.5)


def test_the_rate_never_falls_below_the_floor(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(clock=clock, window=1.0, min_rate=12.0)
    feed(limiter, clock, oks=0, throttles=20, span=1.0)  # would be 9.5/s
    assert limiter.rate == 12.0


def test_small_or_short_windows_are_not_judged(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(clock=clock, window=1.0, min_samples=10)
    feed(limiter, clock, oks=0, throttles=9, span=5.0)  # too few answers
    assert limiter.rate is None
    fresh = AdaptiveRateLimiter(clock=clock, window=1.0, min_samples=10)
    feed(fresh, clock, oks=0, throttles=50, span=0.1)  # many answers, but not yet 1 s
    assert fresh.rate is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"high_fraction": 1.0},
        {"low_fraction": 0.5, "high_fraction": 0.2},
        {"growth": 0.9},
        {"min_rate": 0.0},
    ],
)
def test_adaptive_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        AdaptiveRateLimiter(**kwargs)  # type: ignore[arg-type]
