from __future__ import annotations

import pytest

from fwprep import AdaptiveRateLimiter, TokenBucket
from fwprep import limits as limits_module


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(limits_module.time, "monotonic", fake)
    return fake


def test_token_bucket_spaces_slots_evenly_with_no_burst_after_idle(clock: FakeClock) -> None:
    bucket = TokenBucket(4.0)
    slots = [bucket._reserve(clock.now) for _ in range(5)]
    assert slots == [1000.0, 1000.25, 1000.5, 1000.75, 1001.0]
    clock.now = 2000.0  # a long idle spell earns no burst
    assert [bucket._reserve(clock.now) for _ in range(3)] == [2000.0, 2000.25, 2000.5]


def test_token_bucket_rejects_a_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        TokenBucket(0)


async def test_token_bucket_acquire_waits_for_its_slot(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)
        clock.now += delay

    monkeypatch.setattr(limits_module.anyio, "sleep", fake_sleep)
    bucket = TokenBucket(10.0)
    sent = [await bucket.acquire() for _ in range(4)]
    assert sent == pytest.approx([1000.0, 1000.1, 1000.2, 1000.3])
    assert slept == pytest.approx([0.1, 0.1, 0.1])


def test_adaptive_starts_unlimited_and_cuts_from_the_measured_rate(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(decrease_factor=0.5)
    assert limiter.rate is None
    for i in range(21):  # 20 intervals of 50 ms: 20 requests/s
        clock.now = 1000.0 + i * 0.05
        limiter._sends.append(clock.now)
    limiter.on_throttle(sent_at=clock.now)
    assert limiter.rate == pytest.approx(10.0)


def test_adaptive_cuts_once_per_burst(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(decrease_factor=0.5)
    limiter._rate = 40.0
    sent_before_cut = clock.now - 0.01
    limiter.on_throttle(sent_at=clock.now)
    assert limiter.rate == 20.0
    for _ in range(10):  # the rest of the burst was sent before the cut
        limiter.on_throttle(sent_at=sent_before_cut)
    assert limiter.rate == 20.0
    clock.now += 1.0
    limiter.on_throttle(sent_at=clock.now)  # a request sent after the cut: cut again
    assert limiter.rate == 10.0
    assert limiter.throttles == 12


def test_adaptive_regrows_additively_and_respects_the_floor(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter(decrease_factor=0.5, increase_per_second=2.0, min_rate=1.0)
    limiter._rate = 1.5
    limiter.on_throttle(sent_at=clock.now)
    assert limiter.rate == 1.0  # floor
    for _ in range(5):
        clock.now += 0.5
        limiter.on_success()
    assert limiter.rate == pytest.approx(6.0)
    clock.now += 30.0  # a long quiet spell grows it by at most one second's worth
    limiter.on_success()
    assert limiter.rate == pytest.approx(8.0)


def test_adaptive_does_not_grow_while_unlimited(clock: FakeClock) -> None:
    limiter = AdaptiveRateLimiter()
    clock.now += 10
    limiter.on_success()
    assert limiter.rate is None


@pytest.mark.parametrize(
    "kwargs", [{"decrease_factor": 1.0}, {"decrease_factor": 0.0}, {"min_rate": 0.0}]
)
def test_adaptive_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        AdaptiveRateLimiter(**kwargs)
