"""The transport seam: how one HTTP request becomes one answer.

:class:`~fwprep.FireworksClient` decides what to send and what an answer
means; a transport only carries a :class:`~fwprep.Request` to the server and
brings back a :class:`Response`. The default is :class:`AiohttpTransport`.
Any async callable with the same shape works, which is how client behaviour
is tested without a network (the way httpx's ``MockTransport`` is used)::

    async def handler(request: fwprep.Request) -> fwprep.Response:
        if request.url.endswith(":prepare"):
            return fwprep.Response(200, {}, b"{}")
        return fwprep.Response(404, {}, b'{"code": 5, "message": "no such model"}')

    async with fwprep.FireworksClient("key", transport=handler) as client:
        await client.prepare_model("accounts/acme/models/ft-7", "fp8")

A transport raises a :class:`~fwprep.TransportError` subclass when no answer
arrived (:class:`~fwprep.ConnectError`, :class:`~fwprep.ReadError`,
:class:`~fwprep.RequestTimeoutError`); the client retries those as it would
any transient failure. Concurrency and rate limits are applied by the client
before the transport is called, so a transport never sees queued time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, runtime_checkable

import aiohttp
import attrs

from fwprep._protocol import MAX_ERROR_BODY, Request
from fwprep.errors import ClientClosedError, ConnectError, ReadError, RequestTimeoutError

__all__ = [
    "AiohttpTransport",
    "FunctionTransport",
    "Response",
    "SendFunction",
    "Transport",
    "as_transport",
]


@attrs.frozen
class Response:
    """One HTTP answer: its status, its headers and (up to the request's cap) its body."""

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""


@runtime_checkable
class Transport(Protocol):
    """What the client needs from a transport: ``await transport(request)``, and ``aclose()``.

    A plain async function ``send(request) -> Response`` is taken too: the
    client wraps it in a :class:`FunctionTransport`, whose ``aclose`` does
    nothing.
    """

    async def __call__(self, request: Request, /) -> Response:
        """Send ``request`` once; return the answer or raise a ``TransportError``."""
        ...

    async def aclose(self) -> None:
        """Release what the transport holds (connections); a later request may reopen them."""
        ...


SendFunction = Callable[[Request], Awaitable[Response]]
"""An async function that sends one request: the simplest transport."""


@attrs.frozen
class FunctionTransport:
    """A :class:`Transport` made of an async function; closing it does nothing."""

    send: SendFunction

    async def __call__(self, request: Request, /) -> Response:
        """Send ``request`` with the function."""
        return await self.send(request)

    async def aclose(self) -> None:
        """Nothing to release."""


def as_transport(transport: Transport | SendFunction) -> Transport:
    """``transport`` itself, or a plain send function wrapped in a :class:`FunctionTransport`."""
    return transport if isinstance(transport, Transport) else FunctionTransport(transport)


class AiohttpTransport:
    """The default transport: one ``aiohttp.ClientSession`` and its connection pool.

    The session is created on first use, inside the running event loop, and
    closed by :meth:`aclose`. A caller's own ``session`` is used as given and
    left open (the caller closes it); ``timeout`` still applies to each
    request sent through it, since a per-request timeout is what the client
    promises, whatever the session's own default.

    Args:
        timeout: seconds one request may take, connecting included
            (connecting alone: at most 5 s).
        limit: the most connections the pool keeps open.
        session: an ``aiohttp.ClientSession`` to send with.
    """

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        limit: int = 16,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.timeout = float(timeout)
        self._limit = limit
        self._session = session
        self._owns_session = session is None
        self._request_timeout = aiohttp.ClientTimeout(
            total=self.timeout, connect=min(5.0, self.timeout)
        )

    def _ready_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300)
            session = self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._request_timeout
            )
        elif session.closed:
            raise ClientClosedError("the aiohttp session given to fwprep was closed by its owner")
        return session

    async def __call__(self, request: Request, /) -> Response:
        """Send ``request`` once and read its answer, body capped as the request says."""
        session = self._ready_session()
        try:
            async with session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=self._request_timeout,
            ) as response:
                limit = request.max_body if response.status < 300 else MAX_ERROR_BODY
                length = response.content_length
                if length is not None and length <= limit:
                    body = await response.read()
                else:
                    body = await _read_capped(response.content, limit)
                return Response(response.status, response.headers, body)
        except TimeoutError:
            raise RequestTimeoutError(
                f"{request.method} {request.path}: no answer within {self.timeout:g} s"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise ConnectError(
                f"{request.method} {request.path}: cannot connect to "
                f"{exc.host}:{exc.port}: {exc.os_error.strerror or type(exc.os_error).__name__}"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ReadError(
                f"{request.method} {request.path}: connection broken: "
                f"{type(exc).__name__}{': ' + str(exc) if str(exc) else ''}"
            ) from None

    async def aclose(self) -> None:
        """Close the session, if this transport created it; a later request opens a new one."""
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()


async def _read_capped(content: aiohttp.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
