"""A local emulator of the Fireworks control plane, for tests, demos and offline runs.

It is a real HTTP server (``aiohttp.web``) on loopback that speaks the part of
the API fwprep uses (prepare, get model) with the faults a real API has:
errors, throttling, dropped connections, stalls, latency, and a rate limit.

In an async program or test::

    from fwprep.emulator import Emulator

    async with Emulator(prepare_delay=0.2) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as client:
            await client.prepare_model("accounts/demo/models/m", "fp8")
        assert emu.stats.prepare_successes["accounts/demo/models/m@FP8"] == 1

From synchronous code (or a test that shells out to a CLI), use
:class:`EmulatorThread`. Projects that install fwprep get a
``fireworks_emulator`` pytest fixture (see :mod:`fwprep.emulator.pytest_plugin`).
From a shell: ``fwprep emulator``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fwprep._lazy import on_first_use as _on_first_use

if TYPE_CHECKING:  # imported on first use: the server is aiohttp's web side
    from fwprep.emulator.app import (
        CatalogEntry,
        EmulatorConfig,
        EmulatorStats,
        ErrorFormat,
        Faults,
        ReceivedRequest,
        build_app,
    )
    from fwprep.emulator.server import Emulator, EmulatorThread

__all__ = [
    "CatalogEntry",
    "Emulator",
    "EmulatorConfig",
    "EmulatorStats",
    "EmulatorThread",
    "ErrorFormat",
    "Faults",
    "ReceivedRequest",
    "build_app",
]

_WHERE = {
    **dict.fromkeys(("Emulator", "EmulatorThread"), "fwprep.emulator.server"),
    **dict.fromkeys(
        (
            "CatalogEntry",
            "EmulatorConfig",
            "EmulatorStats",
            "ErrorFormat",
            "Faults",
            "ReceivedRequest",
            "build_app",
        ),
        "fwprep.emulator.app",
    ),
}


# What only reads the emulator's settings (``fwprep emulator --help``, the budget's shapes)
# does not load aiohttp's server; ``from fwprep.emulator import Emulator`` works as ever.
__getattr__, __dir__ = _on_first_use(__name__, globals(), _WHERE)
