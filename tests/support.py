"""Helpers shared by the tests that run fwprep's command line against an emulator."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fwprep.batch import read_report
from fwprep.emulator import EmulatorThread


def env_for(emulator: EmulatorThread, key: str | None = None) -> dict[str, str]:
    """The environment of a user pointed at ``emulator`` (with ``key``, or the right one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORKS_")}
    env.update(
        FIREWORKS_API_KEY=key or emulator.api_key,
        FIREWORKS_BASE_URL=emulator.base_url,
        FIREWORKS_ACCOUNT_ID="acme",
        PYTHONUNBUFFERED="1",
    )
    return env


def fwprep(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m fwprep ARGS`` to the end."""
    return subprocess.run(
        [sys.executable, "-m", "fwprep", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def write_manifest(path: Path, count: int) -> Path:
    """A CSV manifest of ``count`` bare model ids, all FP8."""
    with path.open("w") as fh:
        fh.write("model,precision\n")
        for i in range(count):
            fh.write(f"m{i},fp8\n")
    return path


def final_statuses(report: Path) -> dict[str, str]:
    """The last status of each item or row in a report."""
    return {k: r.status for k, r in read_report([report]).last.items()}


def lines_in(path: Path) -> int:
    """Complete lines in a file another process is writing (0 if it does not exist yet)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll a condition that another process makes true (a file growing), up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.005)


class FakeClock:
    """Simulated time for a client or a limiter: ``sleep`` advances it and returns at once.

    ``t`` is the current time; ``slept`` lists every wait asked for, in order.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += max(seconds, 0.0)
        await asyncio.sleep(0)
