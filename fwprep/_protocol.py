"""The HTTP conversation with the API, as pure functions (no I/O, no event loop).

The client is a thin adapter: it asks this module what to send, sends it,
and asks this module what the answer means. Everything here is testable
with plain values.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from fwprep._version import __version__
from fwprep.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
)
from fwprep.models import PrepareItem
from fwprep.names import ModelRef
from fwprep.precision import Precision
from fwprep.retry import Action, Verdict, parse_retry_after

__all__ = [
    "DEFAULT_BASE_URL",
    "GRPC_CODE_NAMES",
    "MAX_ERROR_BODY",
    "MAX_MODEL_BODY",
    "MAX_PAGE_SIZE",
    "Action",
    "ErrorBody",
    "Request",
    "Verdict",
    "api_error_for",
    "build_get_model_request",
    "build_list_models_request",
    "build_prepare_request",
    "check_base_url",
    "classify_response",
    "is_loopback_host",
    "parse_error_body",
]

DEFAULT_BASE_URL = "https://api.fireworks.ai"
USER_AGENT = f"fwprep/{__version__}"


def _redact(headers: Mapping[str, str]) -> str:
    shown = {k: ("<redacted>" if k.lower() == "authorization" else v) for k, v in headers.items()}
    return repr(shown)


MAX_ERROR_BODY = 64 * 1024
"""The most bytes of an error answer's body that are read."""
MAX_MODEL_BODY = 4 * 1024 * 1024
"""The most bytes of a Model read."""


@attrs.frozen
class Request:
    """An HTTP request to send. Its repr never shows the Authorization header.

    ``max_body`` is the most bytes of a successful answer's body the
    transport reads (an error answer's body: at most :data:`MAX_ERROR_BODY`).
    ``account`` is the account whose budget the request draws on (the client
    paces each account on its own); ``None`` when it names none.
    """

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(repr=_redact)
    body: bytes | None = None
    max_body: int = MAX_ERROR_BODY
    account: str | None = None

    @property
    def path(self) -> str:
        """The URL's path, for messages and logs (no host, no query)."""
        return urlsplit(self.url).path


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost``, 127.0.0.0/8 or ``::1``."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """Validate a base URL and return it without a trailing slash.

    Raises:
        ConfigError: if it is not an ``http(s)://host`` URL, or if it is plain
            ``http://`` to a host that is not loopback (the API key would
            cross the network in clear text).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base URL {url!r} is not an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ConfigError(f"base URL {url!r} must not have a query or a fragment")
    if parts.username or parts.password:
        raise ConfigError("base URL must not carry a user name or password")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"refusing to send the API key over plain http:// to {parts.hostname}: "
            "use https://, or a loopback address for a local server"
        )
    return url.strip().rstrip("/")


def _headers(api_key: str, with_body: bool) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}
    if with_body:
        headers["Content-Type"] = "application/json"
    return headers


@functools.lru_cache(maxsize=64)
def _prepare_body(precision: Precision | None, read_mask: str | None) -> bytes:
    body: dict[str, str] = {}
    if precision is not None:
        body["precision"] = precision.value
    if read_mask is not None:
        body["readMask"] = read_mask
    return json.dumps(body, separators=(",", ":")).encode()


def build_prepare_request(base_url: str, api_key: str, item: PrepareItem) -> Request:
    """The ``POST .../models/{id}:prepare`` request for one item.

    The body holds ``precision`` and ``readMask`` only when they are set; an
    item with no precision sends ``{}``, which lets the API choose.
    """
    return Request(
        "POST",
        f"{base_url}/v1/{item.model.name}:prepare",
        _headers(api_key, True),
        _prepare_body(item.precision, item.read_mask),
        account=item.model.account_id,
    )


def build_get_model_request(
    base_url: str, api_key: str, model: ModelRef, read_mask: str | None = None
) -> Request:
    """The ``GET .../models/{id}`` request."""
    url = f"{base_url}/v1/{model.name}"
    if read_mask is not None:
        from urllib.parse import quote

        url += f"?readMask={quote(read_mask, safe='')}"
    return Request(
        "GET", url, _headers(api_key, False), max_body=MAX_MODEL_BODY, account=model.account_id
    )


MAX_PAGE_SIZE = 200
"""The most models one ListModels page carries; larger page sizes are sent as this."""
MAX_PAGE_BODY = 64 * 1024 * 1024


def build_list_models_request(
    base_url: str,
    api_key: str,
    account_id: str,
    *,
    page_size: int,
    page_token: str | None = None,
    filter: str | None = None,
    order_by: str | None = None,
    read_mask: str | None = None,
) -> Request:
    """The ``GET .../models`` request for one page: every parameter on every page."""
    from urllib.parse import urlencode

    query: dict[str, str | int] = {"pageSize": min(page_size, MAX_PAGE_SIZE)}
    for name, value in (
        ("filter", filter),
        ("orderBy", order_by),
        ("readMask", read_mask),
        ("pageToken", page_token),
    ):
        if value:
            query[name] = value
    url = f"{base_url}/v1/accounts/{account_id}/models?{urlencode(query)}"
    return Request("GET", url, _headers(api_key, False), max_body=MAX_PAGE_BODY, account=account_id)


_SUCCESS = Verdict(Action.SUCCESS)


def classify_response(status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
    """Say what an answer is: success, nothing to do, or an error, with what it carried.

    2xx is success. 409 with code ``ALREADY_EXISTS`` is "already done", with
    ``ABORTED`` a retry, otherwise a failure: the body says so. Every other
    status is an error that the retry policy retries or not by its
    ``retry_statuses`` (:meth:`~fwprep.RetryPolicy.decide`). The error
    carries the parsed body, the request id and any ``Retry-After``.
    """
    if 200 <= status <= 299:
        return _SUCCESS
    lowered = {k.lower(): v for k, v in headers.items()}
    parsed = parse_error_body(status, body, lowered.get("content-type"))
    retry_after = parse_retry_after(lowered)
    request_id = lowered.get("x-request-id") or lowered.get("request-id")
    error = api_error_for(status, parsed, request_id=request_id, retry_after=retry_after)
    if status == 409:
        if parsed.code == "ALREADY_EXISTS":
            return Verdict(Action.ALREADY_DONE, error)
        if parsed.code == "ABORTED":
            return Verdict(Action.RETRY, error, retry_after)
        return Verdict(Action.FAIL, error)
    return Verdict(Action.ERROR, error, retry_after)


# -- error bodies: what the server said, in any of the shapes it says it -------------

# google.rpc.Code numbers and names, in the order the proto defines them.
GRPC_CODE_NAMES: tuple[str, ...] = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)

_MAX_MESSAGE_CHARS = 500


@attrs.frozen
class ErrorBody:
    """What fwprep could read from an error response body.

    ``code`` is a google.rpc code name when the body carried one, ``message``
    always holds readable text.
    """

    code: str | None
    message: str


def _code_name(raw: object) -> str | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        # Out of range: an HTTP status in the "code" field (Google API style), not a gRPC code.
        return GRPC_CODE_NAMES[raw] if 0 <= raw < len(GRPC_CODE_NAMES) else None
    if isinstance(raw, str) and raw.strip():
        text = raw.strip()
        if text.isdigit():
            return _code_name(int(text))
        upper = text.upper()
        return upper if upper in GRPC_CODE_NAMES else None
    return None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_MESSAGE_CHARS:
        return text[: _MAX_MESSAGE_CHARS - 3] + "..."
    return text


def _message_of(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    return None


def parse_error_body(status: int, body: bytes, content_type: str | None = None) -> ErrorBody:
    """Read an error response body in any of the shapes seen from the API.

    Understood shapes, tried in order:

    - google.rpc.Status: ``{"code": 5, "message": "...", "details": [...]}``
      (the code may also be a name such as ``"NOT_FOUND"``);
    - nested: ``{"error": {"code": ..., "message": ..., "status": "NOT_FOUND"}}``;
    - flat: ``{"error": "Too Many Requests", "message": "..."}``;
    - anything else: non-JSON text (an HTML page from a proxy) is reduced to its
      title or first words; an empty body becomes the HTTP reason.

    Never raises: any bytes give an :class:`ErrorBody` with a readable message.
    """
    text = body.decode("utf-8", errors="replace").strip()
    data: object = None
    if text[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
    if isinstance(data, dict):
        parsed = _from_json_object(data)
        if parsed is not None:
            return ErrorBody(parsed.code, _clip(parsed.message))
    if not text:
        return ErrorBody(None, _reason(status) + " (empty body)")
    if "<" in text and ("html" in (content_type or "").lower() or "<html" in text.lower()):
        return ErrorBody(None, _clip(_html_summary(text, status)))
    return ErrorBody(None, _clip(text))


def _from_json_object(data: dict[str, Any]) -> ErrorBody | None:
    error = data.get("error")
    if isinstance(error, dict):
        inner = _from_json_object(error)
        if inner is not None:
            return inner
    code = _code_name(data.get("status")) or _code_name(data.get("code"))
    message = _message_of(data.get("message"))
    if isinstance(error, str) and error.strip():
        message = f"{error}: {message}" if message and message != error else error
    if message is None and code is None:
        return None
    return ErrorBody(code, message or code or "")


def _html_summary(text: str, status: int) -> str:
    lower = text.lower()
    start = lower.find("<title>")
    end = lower.find("</title>")
    if start != -1 and end > start:
        title = text[start + len("<title>") : end].strip()
        if title:
            return f"HTML error page: {title}"
    return f"HTML error page ({_reason(status)})"


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: BadRequestError,
    429: RateLimitError,
}


def api_error_for(
    status: int,
    body: ErrorBody,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Build the :class:`ApiError` subclass that matches an HTTP status."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        if 500 <= status <= 599:
            cls = ServerError
        elif 200 <= status <= 299:
            cls = UnexpectedResponseError
        else:
            cls = ApiError
    return cls(status, body.message, code=body.code, request_id=request_id, retry_after=retry_after)
