from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fwprep
from fwprep import ConnectError, RateLimitError, ReadError, RetryBudget, RetryPolicy, ServerError
from fwprep.errors import ConflictError, NotFoundError
from fwprep.retry import Action, Charge, Step, Verdict, is_testing, parse_retry_after

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


# -- the retry decision, as a table: no event loop, no server -----------------------------

THROTTLED = Verdict(Action.ERROR, RateLimitError(429, "slow down"))
THROTTLED_7S = Verdict(Action.ERROR, RateLimitError(429, "slow down", retry_after=7.0), 7.0)
THROTTLED_2M = Verdict(Action.ERROR, RateLimitError(429, "slow down", retry_after=120.0), 120.0)
DOWN = Verdict(Action.ERROR, ServerError(503, "down"))
MISSING = Verdict(Action.ERROR, NotFoundError(404, "no such model"))
EXISTS = Verdict(Action.ALREADY_DONE, ConflictError(409, "exists", code="ALREADY_EXISTS"))
RESET = ReadError("connection broken")
REFUSED = ConnectError("cannot connect")
POLICY = RetryPolicy(max_attempts=3, initial_backoff=1.0, max_backoff=8.0, jitter=0.0)


@pytest.mark.usefixtures("real_waits")
@pytest.mark.parametrize(
    ("attempt", "result", "retry", "wait", "charge", "note"),
    [
        (1, Verdict(Action.SUCCESS), False, 0.0, Charge.NONE, None),
        (1, EXISTS, False, 0.0, Charge.NONE, None),
        (1, MISSING, False, 0.0, Charge.NONE, "no such model"),
        (1, DOWN, True, 1.0, Charge.RETRY, None),
        (2, DOWN, True, 2.0, Charge.RETRY, None),
        (3, DOWN, False, 0.0, Charge.NONE, "gave up after 3 attempts"),
        (1, THROTTLED, True, 0.0, Charge.NONE, None),  # back in line: the limiter slows down
        (1, THROTTLED_7S, True, 7.0, Charge.NONE, None),
        (1, THROTTLED_2M, False, 0.0, Charge.NONE, "longer than max_retry_after=60 s"),
        (1, RESET, True, 1.0, Charge.TIMEOUT, None),
        (1, REFUSED, True, 1.0, Charge.RETRY, None),
        (3, REFUSED, False, 0.0, Charge.NONE, "gave up after 3 attempts"),
    ],
)
def test_the_retry_decision_table(
    attempt: int,
    result: Verdict | ReadError,
    retry: bool,
    wait: float,
    charge: Charge,
    note: str | None,
) -> None:
    step = POLICY.decide(attempt, result, random.Random(0))
    assert (step.retry, step.wait, step.charge) == (retry, wait, charge)
    if note is None and not retry:
        assert step.error is None
    if note is not None:
        assert step.error is not None
        assert note in str(step.error)


def test_a_single_attempt_policy_stops_without_a_note() -> None:
    step = RetryPolicy(max_attempts=1).decide(1, DOWN)
    assert not step.retry
    assert str(step.error) == "HTTP 503: down"


def test_giving_up_keeps_the_error_class_and_says_why() -> None:
    step = POLICY.decide(1, DOWN).give_up("not retried: the budget is spent")
    assert step == Step(False, step.error)
    assert isinstance(step.error, ServerError)
    assert str(step.error) == "HTTP 503: down (not retried: the budget is spent)"


def test_testing_mode_zeroes_the_backoff_in_the_decision() -> None:
    assert POLICY.decide(1, DOWN).wait == 0.0  # conftest switches testing on


def test_set_testing_works_as_a_context_manager(real_waits: None) -> None:
    assert not is_testing()
    with fwprep.set_testing():
        assert is_testing()
        assert POLICY.decide(1, DOWN).wait == 0.0
    assert not is_testing()
    assert POLICY.decide(1, DOWN).wait == 1.0


@pytest.mark.usefixtures("real_waits")
@pytest.mark.parametrize(
    ("attempt", "result", "throttled", "throttled_for", "retry", "wait", "note"),
    [
        (10, THROTTLED, 10, 60.0, True, 0.0, None),  # 429s never exhaust max_attempts
        (40, THROTTLED_7S, 40, 600.0, True, 7.0, None),
        (5, DOWN, 3, 0.0, True, 2.0, None),  # 2 counted attempts of 3
        (6, DOWN, 3, 0.0, False, 0.0, "gave up after 3 attempts"),
        (9, THROTTLED, 9, 1800.0, False, 0.0, "throttled for 1800 s with no request succeeding"),
        (2, THROTTLED_7S, 2, 1799.0, True, 7.0, None),
        (2, THROTTLED_2M, 2, 0.0, False, 0.0, "longer than max_retry_after=60 s"),
    ],
)
def test_throttling_slows_a_request_and_fails_it_only_on_the_two_limits(
    attempt: int,
    result: Verdict,
    throttled: int,
    throttled_for: float,
    retry: bool,
    wait: float,
    note: str | None,
) -> None:
    step = POLICY.decide(
        attempt, result, random.Random(0), throttled=throttled, throttled_for=throttled_for
    )
    assert (step.retry, step.wait) == (retry, wait)
    if retry and result.throttled:
        assert step.charge is Charge.NONE
    if note is not None:
        assert step.error is not None
        assert note in str(step.error)


def test_throttle_timeout_is_a_policy_setting() -> None:
    assert RetryPolicy().throttle_timeout == 1800.0
    with pytest.raises(fwprep.InputError, match="throttle_timeout"):
        RetryPolicy(throttle_timeout=float("inf"))
