"""The exceptions fwprep raises.

Every exception fwprep raises on purpose derives from :class:`FwprepError`, so
``except fwprep.FwprepError`` catches them all. The tree separates what a
caller does about each case::

    FwprepError
    ├── ConfigError                  fwprep is set up wrongly (no API key, bad base URL)
    ├── ClientClosedError            (also RuntimeError) the client was used after it was closed
    ├── InputError (ValueError)      a value given to fwprep is not valid
    │   ├── InvalidPrecisionError    "fp9" is not a precision
    │   └── InvalidModelError        "My_Model" is not a model id
    ├── ApiError                     the server answered, and the answer was "no"
    │   ├── BadRequestError          400, 422: the request itself is wrong; do not retry
    │   ├── AuthenticationError      401: the API key is missing, wrong or revoked
    │   ├── PermissionDeniedError    403: the key may not touch this account or model
    │   ├── NotFoundError            404: no such account or model
    │   ├── ConflictError            409: ABORTED (transient) or ALREADY_EXISTS
    │   ├── RateLimitError           429: over the account's request limit
    │   ├── ServerError              5xx: the server failed; usually transient
    │   └── UnexpectedResponseError  a 2xx answer whose body fwprep cannot read
    ├── TransportError               no usable answer arrived at all
    │   ├── ConnectError             the connection could not be opened
    │   ├── ReadError                the connection broke (reset, closed early)
    │   └── RequestTimeoutError      (also TimeoutError) no answer in time
    ├── PreparationFailedError       the model reports that preparation failed
    └── WaitTimeoutError             (also TimeoutError) preparation did not finish in time

"The server said no" (:class:`ApiError`) and "the request never got an answer"
(:class:`TransportError`) are kept apart because the retry decision depends on
it: a transport failure may or may not have reached the server, an API error
certainly did.

No exception carries the API key: messages are built from the status, the
error body and the model name only.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "CertificateError",
    "ClientClosedError",
    "ConfigError",
    "ConflictError",
    "ConnectError",
    "FwprepError",
    "InputError",
    "InvalidModelError",
    "InvalidPrecisionError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreparationFailedError",
    "ProxyAuthenticationError",
    "RateLimitError",
    "ReadError",
    "RequestTimeoutError",
    "ServerError",
    "TransportError",
    "UnexpectedResponseError",
    "WaitTimeoutError",
    "with_note",
]


class FwprepError(Exception):
    """The root of every error fwprep raises on purpose.

    ``halts`` says that every later request would fail the same way (a
    refused key, a proxy that wants credentials, a certificate that does
    not verify): such an error is not retried, and a batch halts on it
    (exit 3) instead of failing every item in turn.
    """

    halts: bool = False


class ConfigError(FwprepError):
    """fwprep is configured in a way that cannot work.

    Raised before any request is sent: no API key was given or found in
    ``FIREWORKS_API_KEY``, the base URL is not an ``http(s)://`` URL, or it
    would send the key in clear text to a host that is not this machine.
    """


class ClientClosedError(FwprepError, RuntimeError):
    """A request on a client that was closed (after its ``async with`` block, or ``aclose``).

    Also a :class:`RuntimeError`, as using any closed resource is. Open the
    client again with ``async with client:``.
    """


class InputError(FwprepError, ValueError):
    """A value handed to fwprep is not valid. Also a :class:`ValueError`."""


class InvalidPrecisionError(InputError):
    """A precision name that is not one of the 15 the API knows.

    ``suggestions`` holds the closest valid names, best first, and the message
    names them, so ``fp8mm`` tells its user about ``FP8_MM``.
    """

    def __init__(self, value: str, suggestions: tuple[str, ...] = ()) -> None:
        self.value = value
        self.suggestions = suggestions
        hint = f"; did you mean {' or '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown precision {value!r}{hint}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.value, self.suggestions))


class InvalidModelError(InputError):
    """A model reference that is not a valid resource name or id."""


class ApiError(FwprepError):
    """The server answered with an HTTP error status.

    Attributes:
        status: the HTTP status code, for example 404.
        code: the google.rpc code name from the error body when there is one
            (``"NOT_FOUND"``), else ``None``.
        message: the server's message, or a description of the body when it
            was not the JSON the API documents (an HTML page from a proxy, an
            empty body).
        request_id: the server's request id header (``x-request-id``) when
            sent; quote it to Fireworks support.
        retry_after: seconds the server asked the client to wait, if it did.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.code:
            parts.append(self.code)
        text = " ".join(parts) + f": {self.message}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_api_error,
            (type(self), self.status, self.message, self.code, self.request_id, self.retry_after),
        )


def _rebuild_api_error(
    cls: type[ApiError],
    status: int,
    message: str,
    code: str | None,
    request_id: str | None,
    retry_after: float | None,
) -> ApiError:
    return cls(status, message, code=code, request_id=request_id, retry_after=retry_after)


class BadRequestError(ApiError):
    """400 or 422: the request is malformed or names something invalid. Not retried."""


class AuthenticationError(ApiError):
    """401: the API key is missing, wrong or revoked. Not retried; a batch halts."""

    halts = True


class PermissionDeniedError(ApiError):
    """403: the key is valid but may not act on this account or model. Not retried; halts."""

    halts = True


class NotFoundError(ApiError):
    """404: the account or model does not exist (or the key cannot see it). Not retried."""


class ConflictError(ApiError):
    """409: ``ABORTED`` is transient and retried; ``ALREADY_EXISTS`` counts as done."""


class RateLimitError(ApiError):
    """429: the account's request limit was exceeded. Retried after a pause."""


class ServerError(ApiError):
    """5xx: the server failed. 500, 502, 503 and 504 are retried."""


class UnexpectedResponseError(ApiError):
    """A successful status whose body is not what the API documents."""


class TransportError(FwprepError):
    """No usable answer arrived: the request may or may not have reached the server.

    ``may_have_arrived`` tells which: ``False`` only when the connection was
    never opened (:class:`ConnectError`), so the server cannot have acted on
    the request. A retry after one that may have arrived costs the retry
    budget more, since the server may be struggling.
    """

    may_have_arrived: bool = True


class ConnectError(TransportError):
    """The connection could not be opened (refused, DNS failure, TLS failure)."""

    may_have_arrived = False


class ProxyAuthenticationError(ConnectError):
    """The proxy answered 407: it wants credentials (``http://user:password@proxy:port``).

    Not retried; a batch halts, since every request goes through the same proxy.
    """

    halts = True


class CertificateError(ConnectError):
    """The server's TLS certificate did not verify against the trusted authorities.

    Behind a proxy or a network that inspects TLS, its certificate authority
    must be trusted: ``--ca-bundle``, ``ca_bundle=``, or ``SSL_CERT_FILE``. Not
    retried; a batch halts. Verification is never turned off for a remote host.
    """

    halts = True


class ReadError(TransportError):
    """The connection broke before the whole answer arrived (reset, closed early)."""


class RequestTimeoutError(TransportError, TimeoutError):
    """No answer arrived within the client's timeout. Also a :class:`TimeoutError`."""


class PreparationFailedError(FwprepError):
    """The model's ``status`` reports that its last operation failed.

    ``code`` is the status code name (``"INTERNAL"``), ``message`` the server's text.
    """

    def __init__(self, model: str, code: str, message: str) -> None:
        self.model = model
        self.code = code
        self.message = message
        super().__init__(f"preparation of {model} failed: {code}: {message or '(no message)'}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.model, self.code, self.message))


class WaitTimeoutError(FwprepError, TimeoutError):
    """A precision did not appear on the model before the wait timed out."""

    @classmethod
    def after(cls, model: object, precision: object, timeout: float) -> WaitTimeoutError:
        """The error for ``precision`` not showing on ``model`` within ``timeout`` seconds."""
        return cls(f"{model}: {precision} did not appear within {timeout:g} s")


def with_note(error: FwprepError, note: str) -> FwprepError:
    """A copy of ``error`` of the same class whose message ends with ``(note)``."""
    if isinstance(error, ApiError):
        return type(error)(
            error.status,
            f"{error.message} ({note})",
            code=error.code,
            request_id=error.request_id,
            retry_after=error.retry_after,
        )
    try:
        return type(error)(f"{error} ({note})")
    except TypeError:
        return error
