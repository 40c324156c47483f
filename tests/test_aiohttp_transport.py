"""The aiohttp transport's own behaviour, with aioresponses standing in for the server.

How aiohttp's failures become fwprep's errors, the caller's session, and the key kept out of
everything the adapter logs or raises. The client's behaviour above the transport is tested in
test_client_http.py with a scripted transport.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from fwprep import (
    ConfigError,
    FireworksClient,
    ReadError,
    RequestTimeoutError,
    RetryPolicy,
)

BASE = "https://api.fireworks.ai"
KEY = "fw-VERY-secret-0123456789"
PREPARE = f"{BASE}/v1/accounts/acme/models/ft-7:prepare"


@pytest.fixture
async def client() -> AsyncIterator[FireworksClient]:
    async with FireworksClient(KEY, account_id="acme") as c:
        yield c


def sent(mocked: Any, method: str, url: str) -> list[Any]:
    return list(mocked.requests.get((method, URL(url)), []))


@pytest.mark.parametrize(
    ("exception", "error"),
    [
        (aiohttp.ServerDisconnectedError(), ReadError),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), ReadError),
        (TimeoutError(), RequestTimeoutError),
        (aiohttp.ServerTimeoutError("read timeout"), RequestTimeoutError),
    ],
)
async def test_transport_failures_are_typed_and_retried(
    mocked: Any, client: FireworksClient, exception: Exception, error: type[Exception]
) -> None:
    mocked.post(PREPARE, exception=exception, repeat=True)
    client.retry = RetryPolicy(max_attempts=2)
    with pytest.raises(error) as info:
        await client.prepare_model("ft-7", "fp8")
    assert len(sent(mocked, "POST", PREPARE)) == 2
    assert "accounts/acme/models/ft-7:prepare" in str(info.value)


async def test_plain_http_to_a_remote_host_is_refused_before_any_request(mocked: Any) -> None:
    with pytest.raises(ConfigError, match="plain http://"):
        FireworksClient(KEY, base_url="http://api.fireworks.ai")
    assert not mocked.requests


async def test_the_key_never_shows(mocked: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mocked.post(PREPARE, status=401, payload={"code": 16, "message": "bad key"})
    mocked.post(PREPARE, exception=aiohttp.ServerDisconnectedError(), repeat=True)
    async with FireworksClient(KEY, account_id="acme", retry=RetryPolicy(max_attempts=2)) as c:
        texts = [repr(c), str(c)]
        for _ in range(2):
            try:
                await c.prepare_model("ft-7", "fp8")
            except Exception as exc:
                texts += [repr(exc), str(exc), repr(exc.__cause__), repr(exc.__context__)]
    texts += [r.getMessage() for r in caplog.records]
    assert any("POST" in t for t in texts[6:])  # requests were logged
    for text in texts:
        assert KEY not in text


async def test_an_injected_session_is_used_and_left_open(mocked: Any) -> None:
    mocked.post(PREPARE, payload={})
    async with aiohttp.ClientSession() as session:
        async with FireworksClient(KEY, account_id="acme", session=session) as c:
            await c.prepare_model("ft-7", "fp8")
        assert not session.closed
