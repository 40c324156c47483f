"""The client's behaviour, with a scripted transport (FakeApi) standing in for the server."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support import FakeApi, FakeClock, Unlimited
from yarl import URL

from fwprep import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    FireworksClient,
    NotFoundError,
    PreparationFailedError,
    RateLimitError,
    RetryBudget,
    RetryPolicy,
    ServerError,
    UnexpectedResponseError,
    WaitTimeoutError,
)

BASE = "https://api.fireworks.ai"
KEY = "fw-VERY-secret-0123456789"
PREPARE = f"{BASE}/v1/accounts/acme/models/ft-7:prepare"
MODEL = f"{BASE}/v1/accounts/acme/models/ft-7"


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def client(api: FakeApi) -> AsyncIterator[FireworksClient]:
    async with FireworksClient(KEY, account_id="acme", transport=api) as c:
        yield c


def sent(api: FakeApi, method: str, url: str) -> list[Any]:
    return list(api.requests.get((method, URL(url)), []))


async def test_success_sends_precision_and_bearer_key(
    api: FakeApi, client: FireworksClient
) -> None:
    api.post(PREPARE, payload={})
    outcome = await client.prepare_model("ft-7", "fp8")
    assert outcome.ok
    assert (outcome.attempts, outcome.http_status) == (1, 200)
    (call,) = sent(api, "POST", PREPARE)
    assert json.loads(call.kwargs["data"]) == {"precision": "FP8"}
    assert call.kwargs["headers"]["Authorization"] == f"Bearer {KEY}"


async def test_no_precision_leaves_the_field_out(api: FakeApi, client: FireworksClient) -> None:
    api.post(PREPARE, payload={})
    await client.prepare_model("accounts/acme/models/ft-7")
    (call,) = sent(api, "POST", PREPARE)
    assert json.loads(call.kwargs["data"]) == {}


async def test_transient_statuses_are_retried(api: FakeApi, client: FireworksClient) -> None:
    for status in (503, 500, 502, 504, 408, 429):
        api.post(PREPARE, status=status, body=b"")
    api.post(PREPARE, payload={})
    client.retry = RetryPolicy(max_attempts=10)
    outcome = await client.prepare_model("ft-7", "fp8")
    assert outcome.ok
    assert outcome.attempts == 7


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (422, BadRequestError),
    ],
)
async def test_permanent_errors_are_not_retried(
    api: FakeApi, client: FireworksClient, status: int, error: type[Exception]
) -> None:
    api.post(PREPARE, status=status, payload={"code": 3, "message": "nope"}, repeat=True)
    with pytest.raises(error, match="nope"):
        await client.prepare_model("ft-7", "fp8")
    assert len(sent(api, "POST", PREPARE)) == 1


async def test_already_exists_counts_as_done(api: FakeApi, client: FireworksClient) -> None:
    api.post(PREPARE, status=409, payload={"code": 6, "message": "already prepared"})
    outcome = await client.prepare_model("ft-7", "fp8")
    assert outcome.ok
    assert outcome.http_status == 409


async def test_aborted_is_retried(api: FakeApi, client: FireworksClient) -> None:
    api.post(PREPARE, status=409, payload={"code": "ABORTED", "message": "concurrent"})
    api.post(PREPARE, payload={})
    assert (await client.prepare_model("ft-7", "fp8")).attempts == 2


async def test_gives_up_after_max_attempts_saying_so(api: FakeApi, client: FireworksClient) -> None:
    api.post(PREPARE, status=503, payload={"code": 14, "message": "down"}, repeat=True)
    client.retry = RetryPolicy(max_attempts=3)
    with pytest.raises(ServerError, match="gave up after 3 attempts"):
        await client.prepare_model("ft-7", "fp8")
    assert len(sent(api, "POST", PREPARE)) == 3


async def test_retry_after_is_obeyed(api: FakeApi, real_waits: None) -> None:
    clock = FakeClock()
    client = FireworksClient(
        KEY, account_id="acme", clock=clock, limiter=Unlimited(), transport=api
    )
    api.post(PREPARE, status=429, headers={"Retry-After": "7"}, body=b"")
    api.post(PREPARE, status=503, headers={"retry-after-ms": "1500"}, body=b"")
    api.post(PREPARE, payload={})
    async with client:
        await client.prepare_model("ft-7", "fp8")
    assert clock.slept == [7.0, 1.5]  # only the retry waits: the limiter is unlimited


async def test_backoff_grows_between_attempts(api: FakeApi, real_waits: None) -> None:
    clock = FakeClock()
    api.post(PREPARE, status=500, body=b"", repeat=True)
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.5, max_backoff=2.0, jitter=0.0)
    async with FireworksClient(
        KEY, account_id="acme", retry=policy, clock=clock, transport=api
    ) as c:
        outcome = await c.prepare(c_item(c))
    assert not outcome.ok
    assert clock.slept == [0.5, 1.0, 2.0, 2.0]


def c_item(c: FireworksClient) -> Any:
    from fwprep import PrepareItem

    return PrepareItem(c.model_ref("ft-7"), "fp8")


async def test_retry_after_beyond_the_cap_fails_at_once(
    api: FakeApi, client: FireworksClient
) -> None:
    api.post(PREPARE, status=429, headers={"Retry-After": "120"}, body=b"", repeat=True)
    with pytest.raises(
        RateLimitError, match=r"asked to wait 120 s, longer than max_retry_after=60 s"
    ):
        await client.prepare_model("ft-7", "fp8")
    assert len(sent(api, "POST", PREPARE)) == 1


async def test_a_spent_retry_budget_stops_retries(api: FakeApi) -> None:
    api.post(PREPARE, status=503, body=b"", repeat=True)
    budget = RetryBudget(capacity=10, retry_cost=5)
    async with FireworksClient(KEY, account_id="acme", retry_budget=budget, transport=api) as c:
        first = await c.prepare(c_item(c))
        second = await c.prepare(c_item(c))
    assert first.attempts == 3  # two retries paid for, then the budget is empty
    assert second.attempts == 1
    assert second.error is not None
    assert "retry budget is spent" in str(second.error)


async def test_success_refills_the_budget(api: FakeApi) -> None:
    api.post(PREPARE, status=503, body=b"")
    api.post(PREPARE, payload={})
    budget = RetryBudget(capacity=100, retry_cost=5, success_refund=1)
    async with FireworksClient(KEY, account_id="acme", retry_budget=budget, transport=api) as c:
        await c.prepare(c_item(c))
    assert budget.tokens == 100


async def test_get_model(api: FakeApi, client: FireworksClient) -> None:
    api.get(MODEL, payload={"name": "accounts/acme/models/ft-7", "supportedPrecisions": ["FP8"]})
    model = await client.get_model("ft-7")
    assert model.has_precision("fp8")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "invalid JSON"),
        (b"[1]", "malformed"),
        (b'{"calibrated": "very"}', "$.calibrated"),
    ],
)
async def test_get_model_with_a_bad_body(
    api: FakeApi, client: FireworksClient, body: bytes, fragment: str
) -> None:
    api.get(MODEL, body=body, content_type="application/json")
    with pytest.raises(UnexpectedResponseError) as info:
        await client.get_model("ft-7")
    assert fragment in str(info.value)


async def test_wait_until_prepared_polls_until_the_precision_shows(
    api: FakeApi, client: FireworksClient
) -> None:
    api.get(MODEL, payload={"state": "UPLOADING"})
    api.get(MODEL, payload={"state": "PREPARING", "supportedPrecisions": ["FP16"]})
    api.get(MODEL, payload={"state": "READY", "precisions": ["FP16", "FP8"]})
    model = await client.wait_until_prepared("ft-7", "fp8", poll_interval=0.001)
    assert model.state == "READY"
    assert len(sent(api, "GET", MODEL)) == 3


async def test_wait_until_prepared_fails_on_a_failed_status(
    api: FakeApi, client: FireworksClient
) -> None:
    api.get(MODEL, payload={"status": {"code": "INTERNAL", "message": "quantizer crashed"}})
    with pytest.raises(PreparationFailedError, match="quantizer crashed") as info:
        await client.wait_until_prepared("ft-7", "fp8", poll_interval=0.001)
    assert info.value.code == "INTERNAL"


async def test_wait_until_prepared_times_out(api: FakeApi, client: FireworksClient) -> None:
    api.get(MODEL, payload={"state": "READY"}, repeat=True)
    with pytest.raises(WaitTimeoutError, match=r"FP8 did not appear within 0\.05 s"):
        await client.wait_until_prepared("ft-7", "fp8", timeout=0.05, poll_interval=0.01)


async def test_missing_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="FIREWORKS_API_KEY"):
        FireworksClient()


async def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREWORKS_API_KEY", KEY)
    monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", "env-acct")
    monkeypatch.setenv("FIREWORKS_BASE_URL", "https://proxy.example.com/")
    c = FireworksClient()
    assert c.base_url == "https://proxy.example.com"
    assert str(c.model_ref("m")) == "accounts/env-acct/models/m"


async def test_prepare_many_accepts_pairs_and_items(api: FakeApi, client: FireworksClient) -> None:
    api.post(re.compile(r".*:prepare$"), payload={}, repeat=True)
    outcomes = [
        o
        async for o in client.prepare_many(
            [("a", "fp8"), ("accounts/other/models/b", None), c_item(client)]
        )
    ]
    assert sorted(o.item.key for o in outcomes) == [
        "accounts/acme/models/a@FP8",
        "accounts/acme/models/ft-7@FP8",
        "accounts/other/models/b",
    ]
    assert all(o.ok for o in outcomes)
