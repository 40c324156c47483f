"""The client's behaviour through its transport seam: plain functions stand in for the server."""

from __future__ import annotations

import pytest
from support import FakeClock, Unlimited

import fwprep
from fwprep import (
    ConfigError,
    FireworksClient,
    FixedRateLimiter,
    ModelRef,
    PrepareItem,
    ReadError,
    Request,
    Response,
    RetryPolicy,
)

KEY = "fw-secret-for-transport-tests"
ITEM = PrepareItem(ModelRef("acme", "ft-7"), "fp8")


class Script:
    """A transport that answers from a list, and keeps every request it was sent."""

    def __init__(self, *answers: Response | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[Request] = []

    async def __call__(self, request: Request) -> Response:
        self.sent.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


OK = Response(200, {}, b"{}")


async def test_a_plain_function_is_a_transport() -> None:
    script = Script(OK)
    async with FireworksClient(KEY, transport=script) as client:
        outcome = await client.prepare(ITEM)
    assert outcome.ok
    assert [(r.method, r.path, r.body) for r in script.sent] == [
        ("POST", "/v1/accounts/acme/models/ft-7:prepare", b'{"precision":"FP8"}')
    ]
    assert script.sent[0].headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(script.sent[0])


async def test_transport_errors_and_error_statuses_are_retried_on_the_clock() -> None:
    clock = FakeClock()
    script = Script(ReadError("reset"), Response(503, {}, b""), OK)
    policy = RetryPolicy(initial_backoff=1.0, jitter=0.0)
    async with FireworksClient(KEY, transport=script, retry=policy, clock=clock) as client:
        with fwprep.set_testing(False):
            outcome = await client.prepare(ITEM)
    assert (outcome.ok, outcome.attempts, len(script.sent)) == (True, 3, 3)
    assert clock.slept == [1.0, 2.0]
    assert outcome.elapsed == 3.0  # from the first send, backoff included


async def test_elapsed_excludes_the_wait_for_the_rate_limiter() -> None:
    clock = FakeClock()
    limiter = FixedRateLimiter(1.0, clock=clock)  # one request a second
    script = Script(OK)
    async with FireworksClient(KEY, transport=script, limiter=limiter, clock=clock) as client:
        first = await client.prepare(ITEM)
        second = await client.prepare(ITEM)  # waits a second for its turn
    assert clock.slept == [1.0]
    assert (first.elapsed, second.elapsed) == (0.0, 0.0)


async def test_a_429_feeds_the_limiter_and_charges_no_retry_budget() -> None:
    class Recording(Unlimited):
        def __init__(self) -> None:
            self.answers: list[str] = []

        def on_success(self, sent_at: float) -> None:
            self.answers.append("ok")

        def on_throttle(self, sent_at: float) -> None:
            self.answers.append("429")

    limiter = Recording()
    script = Script(Response(429, {}, b""), Response(429, {}, b""), OK)
    async with FireworksClient(KEY, transport=script, limiter=limiter) as client:
        budget_before = client.retry_budget.tokens
        assert (await client.prepare(ITEM)).ok
        assert client.retry_budget.tokens == budget_before
    assert limiter.answers == ["429", "429", "ok"]


async def test_a_pacing_limiter_takes_a_429_without_retry_after_back_in_line_at_once() -> None:
    clock = FakeClock()
    script = Script(Response(429, {}, b""), OK)
    async with FireworksClient(
        KEY, transport=script, clock=clock, limiter=FixedRateLimiter(1000.0, clock=clock)
    ) as client:
        with fwprep.set_testing(False):
            assert (await client.prepare(ITEM)).ok
    assert clock.slept == pytest.approx([0.001])  # the limiter's pace, and no backoff of its own


def test_transport_and_session_or_limiter_and_max_rps_do_not_mix() -> None:
    with pytest.raises(ConfigError, match="transport or a session"):
        FireworksClient(KEY, transport=Script(OK), session=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="limiter or max_rps"):
        FireworksClient(KEY, limiter=FixedRateLimiter(1.0), max_rps=2.0)


async def test_a_throttled_request_is_slowed_down_not_failed() -> None:
    script = Script(*[Response(429, {}, b"")] * 12, OK)
    policy = RetryPolicy(max_attempts=3)
    async with FireworksClient(KEY, transport=script, retry=policy, clock=FakeClock()) as client:
        budget = client.retry_budget.tokens
        outcome = await client.prepare(ITEM)
        assert client.retry_budget.tokens == budget
    assert (outcome.ok, outcome.attempts) == (True, 13)


async def test_a_client_throttled_past_throttle_timeout_fails_the_request_saying_so() -> None:
    clock = FakeClock()
    script = Script(Response(429, {"Retry-After": "30"}, b""))
    policy = RetryPolicy(throttle_timeout=120.0)
    async with FireworksClient(
        KEY,
        transport=script,
        retry=policy,
        clock=clock,
        limiter=FixedRateLimiter(100, clock=clock),
    ) as client:
        outcome = await client.prepare(ITEM)
    assert isinstance(outcome.error, fwprep.RateLimitError)
    assert "throttled for 120 s with no request succeeding (throttle_timeout=120 s)" in str(
        outcome.error
    )
    assert outcome.attempts == 5  # at 0, 30, 60, 90 and 120 s


async def test_a_success_anywhere_in_the_client_restarts_the_throttle_clock() -> None:
    clock = FakeClock()
    answers = [Response(429, {"Retry-After": "50"}, b""), Response(429, {"Retry-After": "50"}, b"")]
    script = Script(*answers, OK, *answers, *answers, OK)
    policy = RetryPolicy(throttle_timeout=120.0)
    async with FireworksClient(KEY, transport=script, retry=policy, clock=clock) as client:
        first = await client.prepare(ITEM)  # 100 s throttled, then ok
        second = await client.prepare(ITEM)  # 200 s throttled since that success: fails at 150
    assert first.ok
    assert not second.ok
    assert second.attempts == 4
