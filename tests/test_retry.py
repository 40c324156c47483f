from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fwprep import RetryBudget, RetryPolicy, parse_retry_after

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "120"}, 120.0),
        ({"retry-after": "0"}, 0.0),
        ({"Retry-After": " 7 "}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "Thu, 26 Nov 2026 12:00:30 GMT"}, 30.0),
        ({"Retry-After": "Thu, 26 Nov 2026 11:59:00 GMT"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-5"}, None),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "nan"}, None),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"retry-after-ms": "junk", "Retry-After": "9"}, 9.0),
        ({"RETRY-AFTER-MS": "1000"}, 1.0),
    ],
)
def test_retry_after_table(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


@given(st.dictionaries(st.sampled_from(["Retry-After", "retry-after-ms", "X"]), st.text()))
def test_retry_after_never_raises(headers: dict[str, str]) -> None:
    value = parse_retry_after(headers, now=NOW)
    assert value is None or value >= 0


@pytest.mark.usefixtures("real_waits")
def test_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=8.0, jitter=0.0)
    assert [policy.backoff(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


@pytest.mark.usefixtures("real_waits")
def test_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=100.0, jitter=0.25)
    rng = random.Random(7)
    waits = [policy.backoff(3, rng) for _ in range(2000)]
    assert min(waits) >= 3.0
    assert max(waits) <= 4.0
    assert max(waits) - min(waits) > 0.9  # it does vary


@pytest.mark.usefixtures("real_waits")
def test_huge_retry_numbers_do_not_overflow() -> None:
    assert RetryPolicy(jitter=0.0).backoff(10_000) == 8.0


def test_testing_switch_zeroes_backoff() -> None:
    assert RetryPolicy(initial_backoff=5.0, jitter=0.0).backoff(3) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"initial_backoff": -1},
        {"jitter": 1.5},
        {"max_retry_after": float("inf")},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_budget_charges_retries_and_refunds_successes() -> None:
    budget = RetryBudget(capacity=20, retry_cost=5, timeout_cost=10, success_refund=1)
    assert budget.try_acquire() == 5
    assert budget.try_acquire(timeout=True) == 10
    assert budget.tokens == 5
    assert budget.try_acquire(timeout=True) is None
    assert budget.tokens == 5
    budget.release(spent=10)
    assert budget.tokens == 16
    budget.release(spent=100)
    assert budget.tokens == 20
