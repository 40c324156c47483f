from __future__ import annotations

import json

import pytest

from fwprep import ConfigError, ModelRef, Precision, PrepareItem, RetryPolicy
from fwprep._protocol import (
    Action,
    build_get_model_request,
    build_prepare_request,
    check_base_url,
    classify_response,
    is_loopback_host,
)
from fwprep.errors import ConflictError, RateLimitError, ServerError

BASE = "https://api.fireworks.ai"
KEY = "fw-secret-key-123"
REF = ModelRef("acme", "ft-7")


def test_prepare_request_has_path_headers_and_body() -> None:
    request = build_prepare_request(BASE, KEY, PrepareItem(REF, Precision.FP8_MM))
    assert request.method == "POST"
    assert request.url == "https://api.fireworks.ai/v1/accounts/acme/models/ft-7:prepare"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body or b"") == {"precision": "FP8_MM"}


def test_prepare_without_precision_sends_an_empty_object() -> None:
    request = build_prepare_request(BASE, KEY, PrepareItem(REF))
    assert json.loads(request.body or b"") == {}


def test_read_mask_is_camel_case_on_the_wire() -> None:
    request = build_prepare_request(BASE, KEY, PrepareItem(REF, "fp8", read_mask="name"))
    assert json.loads(request.body or b"") == {"precision": "FP8", "readMask": "name"}


def test_get_model_request_quotes_the_read_mask() -> None:
    request = build_get_model_request(BASE, KEY, REF, read_mask="name,state")
    assert request.url == f"{BASE}/v1/accounts/acme/models/ft-7?readMask=name%2Cstate"
    assert request.body is None
    assert "Content-Type" not in request.headers


def test_request_repr_never_shows_the_key() -> None:
    request = build_prepare_request(BASE, KEY, PrepareItem(REF, "fp8"))
    assert KEY not in repr(request)
    assert "<redacted>" in repr(request)


@pytest.mark.parametrize(
    ("status", "body", "headers", "action", "retry_after"),
    [
        (200, b"{}", {}, Action.SUCCESS, None),
        (204, b"", {}, Action.SUCCESS, None),
        (400, b'{"code": 3, "message": "bad"}', {}, Action.ERROR, None),
        (401, b"", {}, Action.ERROR, None),
        (403, b"", {}, Action.ERROR, None),
        (404, b"", {}, Action.ERROR, None),
        (422, b"", {}, Action.ERROR, None),
        (408, b"", {}, Action.ERROR, None),
        (429, b"", {"Retry-After": "3"}, Action.ERROR, 3.0),
        (500, b"", {}, Action.ERROR, None),
        (501, b"", {}, Action.ERROR, None),
        (502, b"<html></html>", {}, Action.ERROR, None),
        (503, b"", {"retry-after-ms": "1500"}, Action.ERROR, 1.5),
        (504, b"", {}, Action.ERROR, None),
        (409, b'{"code": 6, "message": "exists"}', {}, Action.ALREADY_DONE, None),
        (409, b'{"code": "ABORTED", "message": "try again"}', {}, Action.RETRY, None),
        (409, b'{"message": "conflict"}', {}, Action.FAIL, None),
    ],
)
def test_classification_table(
    status: int, body: bytes, headers: dict[str, str], action: Action, retry_after: float | None
) -> None:
    verdict = classify_response(status, headers, body)
    assert verdict.action is action
    assert verdict.retry_after == retry_after
    if action is Action.SUCCESS:
        assert verdict.error is None
    else:
        assert verdict.error is not None
        assert verdict.error.status == status


def test_classification_keeps_the_request_id_and_class() -> None:
    verdict = classify_response(429, {"X-Request-Id": "req-9"}, b"")
    assert isinstance(verdict.error, RateLimitError)
    assert verdict.error.request_id == "req-9"
    assert isinstance(classify_response(503, {}, b"").error, ServerError)
    assert isinstance(classify_response(409, {}, b'{"code": 10}').error, ConflictError)


def test_retry_statuses_come_from_the_policy() -> None:
    # The answer says what it is; which error statuses are retried is the policy's.
    policy = RetryPolicy(retry_statuses={503})  # any iterable of ints, typed as such
    assert not policy.decide(1, classify_response(500, {}, b"")).retry
    assert policy.decide(1, classify_response(503, {}, b"")).retry
    assert RetryPolicy().decide(1, classify_response(500, {}, b"")).retry
    # The body decides a 409, whatever the list.
    assert policy.decide(1, classify_response(409, {}, b'{"code": "ABORTED"}')).retry
    assert not RetryPolicy(retry_statuses={409}).decide(1, classify_response(409, {}, b"")).retry


@pytest.mark.parametrize(
    "url",
    [
        "https://api.fireworks.ai",
        "https://api.fireworks.ai/",
        "http://127.0.0.1:8765",
        "http://localhost:1",
        "http://[::1]:80",
        "http://127.9.9.9",
    ],
)
def test_acceptable_base_urls(url: str) -> None:
    assert check_base_url(url) == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://api.fireworks.ai", "refusing to send the API key over plain http://"),
        ("http://10.0.0.5:8000", "refusing"),
        ("ftp://api.fireworks.ai", "not an http:// or https:// URL"),
        ("api.fireworks.ai", "not an http:// or https:// URL"),
        ("https://user:pw@api.fireworks.ai", "user name or password"),
        ("https://api.fireworks.ai/?x=1", "query"),
    ],
)
def test_unacceptable_base_urls(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_base_url(url)
    assert fragment in str(info.value)


def test_loopback_detection() -> None:
    assert is_loopback_host("localhost")
    assert is_loopback_host("127.0.0.1")
    assert is_loopback_host("[::1]")
    assert not is_loopback_host("example.com")
    assert not is_loopback_host("192.168.1.1")
