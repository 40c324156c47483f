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
from urllib.parse import urlsplit

import attrs

from fwprep._version import __version__
from fwprep.errors import ConfigError, api_error_for, parse_error_body
from fwprep.models import PrepareItem
from fwprep.names import ModelRef
from fwprep.precision import Precision
from fwprep.retry import Action, RetryPolicy, Verdict, parse_retry_after

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_ERROR_BODY",
    "MAX_MODEL_BODY",
    "MAX_PAGE_SIZE",
    "Action",
    "Request",
    "Verdict",
    "build_get_model_request",
    "build_list_models_request",
    "build_prepare_request",
    "check_base_url",
    "classify_response",
    "is_loopback_host",
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


def classify_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    policy: RetryPolicy | None = None,
) -> Verdict:
    """Decide what an answer means: success, nothing to do, retry, or fail.

    2xx is success. 409 with code ``ALREADY_EXISTS`` is "already done", with
    ``ABORTED`` a retry, otherwise a failure. Statuses in the policy's
    ``retry_statuses`` are retried; every other status fails. The error
    carries the parsed body, the request id and any ``Retry-After``.
    """
    if 200 <= status <= 299:
        return _SUCCESS
    policy = policy or RetryPolicy()
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
    if status in policy.retry_statuses:
        return Verdict(Action.RETRY, error, retry_after)
    return Verdict(Action.FAIL, error)
