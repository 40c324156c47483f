"""An HTTP proxy on loopback for the tests: forwards plain requests, tunnels CONNECT, records heads.

One class plays both proxies a company runs: a forward proxy (a request
line with an absolute URI, ``POST http://host:port/path HTTP/1.1``, passed on
to the server) and a ``CONNECT`` proxy (a tunnel of raw bytes, for
``https://``). It records the head (request line and headers) of every
request it receives, and can demand credentials (407) as many do.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from types import TracebackType
from typing import Self

import attrs


@attrs.frozen
class Head:
    """What the proxy was asked: the method, the target and the headers (names lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]


class ProxyThread:
    """A proxy served from its own thread, on a free loopback port.

    Args:
        credentials: ``"user:password"`` to demand (407 without them).
    """

    def __init__(self, credentials: str | None = None) -> None:
        self.credentials = credentials
        self.heads: list[Head] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, without credentials."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        ready = threading.Event()

        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            async with server:
                await self._stop.wait()

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _allowed(self, head: Head) -> bool:
        if self.credentials is None:
            return True
        token = base64.b64encode(self.credentials.encode()).decode()
        return head.headers.get("proxy-authorization") == f"Basic {token}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
                head = _parse(raw)
                self.heads.append(head)
                if not self._allowed(head):
                    writer.write(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                        b'Proxy-Authenticate: Basic realm="tests"\r\n'
                        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    await writer.drain()
                elif head.method == "CONNECT":
                    await self._tunnel(head, reader, writer)
                else:
                    await self._forward(head, reader, writer)
            finally:
                await _close(writer)

    async def _tunnel(
        self, head: Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port = head.target.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            await _close(up_writer)

    async def _forward(
        self, head: Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        rest = head.target.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.rpartition(":")
        body = await reader.readexactly(int(head.headers.get("content-length", "0")))
        up_reader, up_writer = await asyncio.open_connection(host, int(port or 80))
        try:
            await _send_on(head, path, body, up_writer)
            await _pipe(up_reader, writer)
        finally:
            await _close(up_writer)


async def _send_on(head: Head, path: str, body: bytes, up_writer: asyncio.StreamWriter) -> None:
    """The request, in origin form, on to the server (one request a connection)."""
    lines = [f"{head.method} /{path} HTTP/1.1"]
    lines += [
        f"{name}: {value}"
        for name, value in head.headers.items()
        if name not in ("proxy-authorization", "proxy-connection", "connection")
    ]
    lines.append("connection: close")
    up_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await up_writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close a connection and wait until it is closed, so that no transport outlives the loop."""
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


def _parse(raw: bytes) -> Head:
    first, *fields = raw.decode("latin-1").split("\r\n")
    method, target, _ = first.split(" ", 2)
    headers = {}
    for field in fields:
        if ":" in field:
            name, _, value = field.partition(":")
            headers[name.strip().lower()] = value.strip()
    return Head(method, target, headers)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
        with contextlib.suppress(OSError):
            sink.write_eof()
