"""Account budgets of every shape, as the emulator and the simulated accounts keep them."""

from __future__ import annotations

import aiohttp
import pytest

from fwprep.emulator import Emulator
from fwprep.emulator.budget import Budget, RetryAfter


def accepted(budget: Budget, times: range) -> list[int]:
    return [t for t in times if budget.take(float(t)) == 0]


def test_a_bucket_refills_at_its_rate_up_to_its_depth() -> None:
    assert accepted(Budget(10, "bucket"), range(60)) == [0, 7, 14, 21, 28, 35, 42, 49, 56]
    deep = Budget(60, "bucket", burst=5)
    assert accepted(deep, range(8)) == [0, 1, 2, 3, 4, 5, 6, 7]  # a token a second
    burst = Budget(60, "bucket", burst=5)
    assert [burst.take(0.0) for _ in range(6)][-1] == pytest.approx(1.0)  # the sixth waits 1 s


def test_a_window_is_a_calendar_minute() -> None:
    budget = Budget(10, "window", phase=30)  # the job starts half way into a minute
    assert accepted(budget, range(100)) == [*range(10), *range(30, 40), *range(90, 100)]
    full = Budget(2, "window", phase=45)
    full.take(0.0), full.take(1.0)
    assert full.take(2.0) == pytest.approx(13.0)  # until the next minute starts


def test_a_sliding_minute_counts_any_trailing_60_seconds() -> None:
    budget = Budget(10, "sliding")
    assert accepted(budget, range(130)) == [*range(10), *range(60, 70), *range(120, 130)]
    spread = Budget(2, "sliding")
    spread.take(0.0), spread.take(20.0)
    assert spread.take(30.0) == pytest.approx(30.0)  # the first leaves the window at 60 s


@pytest.mark.parametrize("shape", ["bucket", "sliding"])
def test_refused_requests_spend_budget_when_counted(shape: str) -> None:
    kept, counted = Budget(10, shape), Budget(10, shape, count_refused=True)  # type: ignore[arg-type]
    times = [t * 0.5 for t in range(400)]  # two requests a second for 200 s
    kept_ok = sum(kept.take(t) == 0 for t in times)
    counted_ok = sum(counted.take(t) == 0 for t in times)
    assert counted_ok < kept_ok


@pytest.mark.parametrize("shape", ["bucket", "window", "sliding"])
@pytest.mark.parametrize("counted", [False, True])
def test_the_wait_told_is_the_true_wait(shape: str, counted: bool) -> None:
    # Whether or not the refused request spent budget, a request sent when the
    # wait is over is accepted, and one sent a little sooner is not.
    for gap in (0.5, 3.0, 5.5):  # under a token's 6 s
        sooner, on_time = (
            Budget(10, shape, count_refused=counted, phase=50.0)  # type: ignore[arg-type]
            for _ in range(2)
        )
        for budget in (sooner, on_time):
            while budget.take(0.0) == 0:
                pass
        wait = sooner.take(gap)
        assert on_time.take(gap) == wait > 0
        assert on_time.take(gap + wait + 1e-9) == 0
        assert sooner.take(gap + wait * 0.9) > 0


@pytest.mark.parametrize(
    ("mode", "wait", "headers"),
    [
        ("none", 2.2, {}),
        ("seconds", 2.2, {"Retry-After": "3"}),
        ("seconds", 0.01, {"Retry-After": "1"}),
        ("exact", 2.2, {"Retry-After": "2.200"}),
        ("ms", 2.2, {"retry-after-ms": "2200"}),
        ("fixed:6", 0.5, {"Retry-After": "6"}),
        (True, 0.5, {"Retry-After": "1"}),
        (False, 0.5, {}),
    ],
)
def test_retry_after_modes(mode: str | bool, wait: float, headers: dict[str, str]) -> None:
    assert RetryAfter.parse(mode).headers(wait) == headers


@pytest.mark.parametrize("text", ["sometimes", "fixed:", "fixed:-1", "fixed:inf"])
def test_an_unknown_retry_after_mode_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="Retry-After mode"):
        RetryAfter.parse(text)


async def test_the_emulator_speaks_a_window_with_exact_retry_after() -> None:
    async with (
        Emulator(rpm=2, limit_shape="window", retry_after="exact") as emu,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {emu.api_key}"}) as http,
    ):
        statuses, waits = [], []
        for i in range(3):
            url = f"{emu.base_url}/v1/accounts/a/models/m{i}:prepare"
            async with http.post(url, json={"precision": "FP8"}) as answer:
                statuses.append(answer.status)
                waits.append(answer.headers.get("Retry-After"))
    # Two a minute, then none until the minute ends (unless it ended between them).
    assert statuses[:2] == [200, 200]
    if statuses[2] == 429:
        assert waits[2] is not None
        assert 0 < float(waits[2]) <= 60
        assert "." in waits[2]  # fractional: the exact wait
