from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fwprep import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
)
from fwprep._protocol import ErrorBody, api_error_for, parse_error_body


@pytest.mark.parametrize(
    ("status", "body", "ctype", "expected"),
    [
        (
            404,
            b'{"code": 5, "message": "model not found", "details": []}',
            "application/json",
            ErrorBody("NOT_FOUND", "model not found"),
        ),
        (
            409,
            b'{"code": "ALREADY_EXISTS", "message": "exists"}',
            "application/json",
            ErrorBody("ALREADY_EXISTS", "exists"),
        ),
        (
            400,
            b'{"error": {"code": 3, "message": "bad precision", "status": "INVALID_ARGUMENT"}}',
            "application/json",
            ErrorBody("INVALID_ARGUMENT", "bad precision"),
        ),
        (
            429,
            b'{"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}',
            "application/json",
            ErrorBody("RESOURCE_EXHAUSTED", "slow down"),
        ),
        (
            429,
            b'{"error": "Too Many Requests", "message": "rate limit of 600/min exceeded"}',
            "application/json",
            ErrorBody(None, "Too Many Requests: rate limit of 600/min exceeded"),
        ),
        (
            401,
            b'{"error": "unauthorized"}',
            "application/json",
            ErrorBody(None, "unauthorized"),
        ),
        (
            502,
            b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            "text/html",
            ErrorBody(None, "HTML error page: 502 Bad Gateway"),
        ),
        (503, b"", None, ErrorBody(None, "503 Service Unavailable (empty body)")),
        (500, b"upstream connect error", "text/plain", ErrorBody(None, "upstream connect error")),
        (500, b"{not json", "application/json", ErrorBody(None, "{not json")),
        (500, b"[1, 2]", "application/json", ErrorBody(None, "[1, 2]")),
        (500, b'{"code": 13}', "application/json", ErrorBody("INTERNAL", "INTERNAL")),
        (599, b"", None, ErrorBody(None, "HTTP 599 (empty body)")),
    ],
)
def test_every_error_body_shape_gives_a_readable_message(
    status: int, body: bytes, ctype: str | None, expected: ErrorBody
) -> None:
    assert parse_error_body(status, body, ctype) == expected


def test_long_messages_are_clipped() -> None:
    parsed = parse_error_body(500, b"x" * 10_000)
    assert len(parsed.message) == 500
    assert parsed.message.endswith("...")


@given(st.integers(min_value=100, max_value=599), st.binary(max_size=2000), st.none() | st.text())
def test_arbitrary_bytes_never_raise(status: int, body: bytes, ctype: str | None) -> None:
    parsed = parse_error_body(status, body, ctype)
    assert isinstance(parsed.message, str)
    assert parsed.message


@given(
    st.dictionaries(
        st.text(max_size=10),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=10,
        ),
    )
)
def test_arbitrary_json_objects_never_raise(data: dict[str, object]) -> None:
    import json

    parsed = parse_error_body(400, json.dumps(data).encode())
    assert isinstance(parsed.message, str)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, BadRequestError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
        (200, UnexpectedResponseError),
        (418, ApiError),
    ],
)
def test_status_maps_to_its_error_class(status: int, cls: type[ApiError]) -> None:
    error = api_error_for(status, ErrorBody("X", "m"), request_id="r-1", retry_after=2.0)
    assert type(error) is cls
    assert (error.status, error.code, error.message, error.request_id, error.retry_after) == (
        status,
        "X",
        "m",
        "r-1",
        2.0,
    )
    assert str(error) == f"HTTP {status} X: m (request id r-1)"


def test_api_errors_survive_pickling() -> None:
    error = api_error_for(404, ErrorBody("NOT_FOUND", "gone"), request_id="abc")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is NotFoundError
    assert str(copy) == str(error)


def test_timeout_is_both_a_transport_error_and_a_timeout_error() -> None:
    error = RequestTimeoutError("no answer")
    assert isinstance(error, TransportError)
    assert isinstance(error, TimeoutError)
