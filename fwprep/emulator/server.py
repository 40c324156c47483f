"""The running emulator: :class:`Emulator` in an event loop, :class:`EmulatorThread` beside one."""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from fwprep.emulator.app import (
    SERVICE,
    EmulatorConfig,
    EmulatorStats,
    build_app,
)
from fwprep.errors import ConfigError

__all__ = ["Emulator", "EmulatorThread"]


class Emulator:
    """A running emulator, as an async context manager.

    Pass an :class:`EmulatorConfig`, or its fields as keywords
    (``Emulator(rpm=600, faults=Faults(error_503=0.1), seed=1)``). It binds to
    ``host`` (loopback by default) on ``port`` (a free port by default).
    ``models=1000`` is a catalogue of models ``accounts/acme/models/m0`` to
    ``m999`` (``account_id="team"`` puts them in another account; see
    :func:`~fwprep.emulator.catalog.numbered_catalog`), and
    ``models="models.jsonl"`` one read from a file of Model objects.
    ``api_key="k"`` is short for ``api_keys=("k",)``. With ``tls_cert`` and
    ``tls_key`` (PEM files: a certificate for the host, and its key) it serves
    ``https://``, so that clients' CA bundles and proxy tunnels are tested
    end to end on loopback.

    Attributes:
        config: the :class:`EmulatorConfig` in force.
        stats: the live :class:`EmulatorStats`.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        **settings: Any,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise TypeError("give tls_cert and tls_key together")
        self._tls = None if tls_cert is None or tls_key is None else (tls_cert, tls_key)
        account_id = settings.pop("account_id", "acme")  # for models=N only
        if config is not None and settings:
            raise TypeError("pass either an EmulatorConfig or keyword settings, not both")
        if "api_key" in settings:
            if "api_keys" in settings:
                raise TypeError("pass api_key or api_keys, not both")
            settings["api_keys"] = (settings.pop("api_key"),)
        models = settings.pop("models", None)
        if models is not None:
            from fwprep.emulator.catalog import numbered_catalog, read_catalog

            is_count = isinstance(models, int) and not isinstance(models, bool)
            settings["catalog"] = (
                numbered_catalog(models, account_id=account_id)
                if is_count
                else read_catalog(models)
            )
        self.config = config or EmulatorConfig(**settings)
        self.stats = EmulatorStats()
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def api_key(self) -> str:
        """A key the emulator accepts (the first of ``config.api_keys``)."""
        return self.config.api_keys[0]

    @property
    def base_url(self) -> str:
        """``http://host:port`` (``https://`` with TLS) of the running server, for ``base_url``."""
        if self._runner is None:
            raise RuntimeError("the emulator is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}"

    async def start(self) -> None:
        """Start serving. Prefer ``async with``."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        tls = self._ssl_context()  # a certificate that cannot be loaded fails before anything runs
        app = build_app(self.config, self.stats)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True, ssl_context=tls)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        # The bound port, from any event loop's server (asyncio's, uvloop's, ...).
        self.port = int(runner.addresses[0][1])

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self._tls is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert, key = self._tls
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            message = f"cannot load the TLS certificate {cert} with key {key}: {reason}"
            raise ConfigError(message) from None
        return context

    async def wait_until(
        self, predicate: Callable[[EmulatorStats], bool], timeout: float = 30.0
    ) -> None:
        """Wait until ``predicate(stats)`` is true, checking each time a request starts or ends.

        For tests that must act at a given moment (say, once four requests
        are in flight) without sleeping and hoping::

            await emu.wait_until(lambda stats: stats.in_flight >= 4)

        Raises:
            TimeoutError: when it is still false after ``timeout`` seconds.
        """
        if self._runner is None:
            raise RuntimeError("the emulator is not running")
        service = self._runner.app[SERVICE]
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while not predicate(self.stats):
                changed: asyncio.Future[None] = loop.create_future()
                service.watchers.append(changed)
                await changed

    async def stop(self) -> None:
        """Stop serving; requests still in flight (stalls included) are cut off."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        async with self:
            await asyncio.Event().wait()


class EmulatorThread:
    """An :class:`Emulator` on its own event loop in a background thread.

    For synchronous code and for tests that drive a subprocess (the fwprep
    CLI, say) against the emulator::

        with EmulatorThread(rpm=1200) as emu:
            env = dict(os.environ, FIREWORKS_BASE_URL=emu.base_url, FIREWORKS_API_KEY=emu.api_key)
            command = ["fwprep", "prepare", "accounts/acme/models/m", "-p", "fp8"]
            subprocess.run(command, env=env, check=True)
            print(emu.stats.prepare_successes)  # Counter({'accounts/acme/models/m@FP8': 1})

    ``stats`` is written by the server thread; read it after the work it
    counts has finished.
    """

    def __init__(self, config: EmulatorConfig | None = None, **kwargs: Any) -> None:
        self.emulator = Emulator(config, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """The running server's ``http://host:port``."""
        return self.emulator.base_url

    @property
    def config(self) -> EmulatorConfig:
        """The :class:`EmulatorConfig` in force."""
        return self.emulator.config

    @property
    def api_key(self) -> str:
        """A key the emulator accepts."""
        return self.emulator.api_key

    @property
    def stats(self) -> EmulatorStats:
        """The live :class:`EmulatorStats`."""
        return self.emulator.stats

    def start(self) -> None:
        """Start the server thread and return once the server listens."""
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                await self.emulator.start()
            except BaseException as exc:
                self._error = exc
                ready.set()
                return
            ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.emulator.stop()

        def run() -> None:
            # asyncio.run also cancels and awaits what the server left running (stalls).
            asyncio.run(main())

        self._thread = threading.Thread(target=run, name="fwprep-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def wait_until(self, predicate: Callable[[EmulatorStats], bool], timeout: float = 30.0) -> None:
        """Block until ``predicate(stats)`` is true; see :meth:`Emulator.wait_until`."""
        if self._loop is None:
            raise RuntimeError("the emulator is not running")
        future = asyncio.run_coroutine_threadsafe(
            self.emulator.wait_until(predicate, timeout), self._loop
        )
        future.result()

    def stop(self) -> None:
        """Stop the server and wait for its thread to end."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
