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

import base64
import ipaddress
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

import aiohttp
import attrs

from fwprep._protocol import MAX_ERROR_BODY, Request
from fwprep.errors import (
    CertificateError,
    ClientClosedError,
    ConfigError,
    ConnectError,
    ProxyAuthenticationError,
    ReadError,
    RequestTimeoutError,
)

__all__ = [
    "PROXY_FROM_ENVIRONMENT",
    "AiohttpTransport",
    "FunctionTransport",
    "ProxySetting",
    "Response",
    "SendFunction",
    "Transport",
    "as_transport",
    "proxy_for",
    "show_proxy",
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


class _FromEnvironment:
    """The default of ``proxy``: the environment's proxy variables, as curl reads them."""

    def __repr__(self) -> str:
        return "PROXY_FROM_ENVIRONMENT"


PROXY_FROM_ENVIRONMENT: Final = _FromEnvironment()
"""``proxy``'s default: ``HTTPS_PROXY``/``HTTP_PROXY`` (either case) by the API root's
scheme, unless ``NO_PROXY`` names its host (a host, a domain, or ``*``)."""

ProxySetting = str | None | _FromEnvironment
"""A proxy URL, ``None`` (none, whatever the environment says), or the environment's."""


def proxy_for(url: str, setting: ProxySetting = PROXY_FROM_ENVIRONMENT) -> str | None:
    """The proxy a request to ``url`` goes through (``None``: straight to the server).

    From the environment as curl and httpx read it: ``https_proxy`` or
    ``HTTPS_PROXY`` for an ``https://`` URL, ``http_proxy``/``HTTP_PROXY`` for
    ``http://``, skipped for a host ``no_proxy``/``NO_PROXY`` names. A proxy
    given without a scheme is taken as ``http://``.
    """
    if isinstance(setting, _FromEnvironment):
        from urllib.request import getproxies_environment

        parts = urlsplit(url)
        proxies = getproxies_environment()  # lower-case keys; either case read, lower first
        found = proxies.get(parts.scheme)
        if not found or _bypassed(parts.hostname or "", parts.port, proxies.get("no", "")):
            return None
        setting = found
    if not setting:
        return None
    return setting if "://" in setting else f"http://{setting}"


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` names ``host``: ``*``, the host, a domain it is in, or its network.

    Entries are comma-separated, any case: ``internal.example`` and
    ``.internal.example`` both match ``api.internal.example``; ``10.0.0.0/8``
    matches an address in it; ``host:8080`` matches that port only.
    """
    host = host.lower().strip("[]")
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else ("", "", "")
        if name and entry_port.isdigit():
            if port is not None and int(entry_port) != port:
                continue
            entry = name
        entry = entry.strip("[]").lstrip(".")
        if not entry:
            continue
        if host == entry or host.endswith("." + entry) or _in_network(host, entry):
            return True
    return False


def _in_network(host: str, entry: str) -> bool:
    if "/" not in entry:
        return False
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


def show_proxy(proxy: str) -> str:
    """A proxy URL fit to print: its password, if any, replaced by ``***``."""
    parts = urlsplit(proxy)
    if parts.password is None:
        return proxy
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


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
        proxy: the proxy to send through: by default the environment's (see
            :func:`proxy_for`), a URL (``http://user:password@proxy:3128``;
            its credentials go to the proxy only), or ``None`` for none. An
            ``https://`` API root is reached through a ``CONNECT`` tunnel, so
            the proxy never sees the API key.
        ca_bundle: a PEM file of the certificate authorities to trust instead
            of the system's (a company's TLS-inspecting proxy, say). By default
            the system's, with ``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured as
            Python's default context honours them.
    """

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        limit: int = 16,
        session: aiohttp.ClientSession | None = None,
        proxy: ProxySetting = PROXY_FROM_ENVIRONMENT,
        ca_bundle: str | os.PathLike[str] | None = None,
    ) -> None:
        self.timeout = float(timeout)
        self._limit = limit
        self._session = session
        self._owns_session = session is None
        self._request_timeout = aiohttp.ClientTimeout(
            total=self.timeout, connect=min(5.0, self.timeout)
        )
        self._proxy = proxy
        self._proxies: dict[str, tuple[str | None, dict[str, str] | None]] = {}
        self._ssl: ssl.SSLContext | bool = True
        if ca_bundle is not None:
            try:
                self._ssl = ssl.create_default_context(cafile=os.fspath(ca_bundle))
            except (OSError, ssl.SSLError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise ConfigError(f"cannot read the CA bundle {ca_bundle}: {reason}") from None

    def _ready_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300, ssl=self._ssl)
            # trust_env stays off: proxies are chosen here, and ~/.netrc must never
            # replace the API key's Authorization header.
            session = self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._request_timeout
            )
        elif session.closed:
            raise ClientClosedError("the aiohttp session given to fwprep was closed by its owner")
        return session

    def _route(self, url: str) -> tuple[str | None, dict[str, str] | None]:
        """The proxy for ``url``'s scheme and host, and the headers that carry its credentials."""
        cut = url.find("/", url.find("//") + 2)
        origin = url if cut < 0 else url[:cut]
        found = self._proxies.get(origin)
        if found is None:
            proxy = proxy_for(origin, self._proxy)
            headers = None
            if proxy is not None:
                parts = urlsplit(proxy)
                if parts.username is not None:
                    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                    token = base64.b64encode(pair.encode()).decode("ascii")
                    headers = {"Proxy-Authorization": f"Basic {token}"}
                    proxy = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
            found = self._proxies[origin] = (proxy, headers)
        return found

    async def __call__(self, request: Request, /) -> Response:
        """Send ``request`` once and read its answer, body capped as the request says."""
        session = self._ready_session()
        proxy, proxy_headers = self._route(request.url)
        headers = request.headers
        if proxy_headers and request.url.startswith("http:"):
            # No tunnel for plain http: the proxy reads the request itself, and its
            # credentials travel in it (for https they go on the CONNECT alone).
            headers = {**headers, **proxy_headers}
        try:
            async with session.request(
                request.method,
                request.url,
                headers=headers,
                data=request.body,
                timeout=self._request_timeout,
                proxy=proxy,
                proxy_headers=proxy_headers,
            ) as response:
                if response.status == 407 and proxy is not None:
                    raise _proxy_refused(request, proxy)
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
        except aiohttp.ClientHttpProxyError as exc:
            if exc.status == 407 and proxy is not None:
                raise _proxy_refused(request, proxy) from None
            raise ConnectError(
                f"{request.method} {request.path}: the proxy {show_proxy(proxy or '')} "
                f"answered {exc.status} {exc.message} to CONNECT"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise _connect_error(request, exc, proxy) from None
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


def _proxy_refused(request: Request, proxy: str) -> ProxyAuthenticationError:
    return ProxyAuthenticationError(
        f"{request.method} {request.path}: the proxy {show_proxy(proxy)} asked for "
        "credentials (407): give them in the proxy URL, http://user:password@host:port"
    )


def _connect_error(
    request: Request, exc: aiohttp.ClientConnectorError, proxy: str | None
) -> ConnectError:
    """The connection failed: say to what, and why, in a line a user can act on."""
    where = f"{request.method} {request.path}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):  # it carries no os_error
        problem = exc.certificate_error
        why = problem.verify_message if isinstance(problem, ssl.SSLCertVerificationError) else ""
        return CertificateError(
            f"{where}: the TLS certificate of {exc.host} did not verify "
            f"({why or problem}): if a proxy or your network inspects TLS, trust its "
            "certificate authority with --ca-bundle or SSL_CERT_FILE"
        )
    error, number = exc.os_error, exc.os_error.errno
    # asyncio says "Connect call failed (host, port)"; the errno says why. A resolver's is < 0.
    reason = os.strerror(number) if number and number > 0 else error.strerror or str(error)
    if isinstance(exc, aiohttp.ClientProxyConnectionError) and proxy is not None:
        return ConnectError(f"{where}: cannot connect to the proxy {show_proxy(proxy)}: {reason}")
    if isinstance(exc.os_error, socket.gaierror):  # the name did not resolve
        return ConnectError(f"{where}: cannot resolve the host {exc.host}: {reason}")
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return ConnectError(f"{where}: TLS with {exc.host}:{exc.port} failed: {exc.os_error}")
    return ConnectError(f"{where}: cannot connect to {exc.host}:{exc.port}: {reason}")


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
