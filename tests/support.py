"""Helpers shared by the tests: the command line against an emulator, simulated time, a scripted API."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yarl import URL

from fwprep import Request, Response
from fwprep.batch import read_report
from fwprep.emulator import EmulatorThread


def run_cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """Run the command line in process: (exit code, stdout, stderr); argparse's exits included."""
    from fwprep.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


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


class Unlimited:
    """A rate limiter of one's own that lets every request through and learns nothing."""

    rate = math.inf

    async def acquire(self) -> float:
        return 0.0

    def on_success(self, sent_at: float) -> None:
        pass

    def on_throttle(self, sent_at: float) -> None:
        pass

    def pause(self, seconds: float) -> None:
        pass


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


class _Call:
    """One request a FakeApi received, shaped like aioresponses' record: ``kwargs`` data and headers."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.kwargs = {"data": request.body, "headers": dict(request.headers)}


class FakeApi:
    """A transport for FireworksClient that answers from scripted responses: no network, no aiohttp.

    ``api.post(url, status=..., payload=... | body=..., headers=..., repeat=...)`` (and
    ``get``) queue answers for a URL (a string, or a compiled pattern searched in the URL),
    used in order; a ``repeat=True`` answer is used again and again. ``exception=`` raises
    instead (a ``fwprep.TransportError``, say). ``api.requests[(method, URL(url))]`` lists
    what was sent, as aioresponses does.
    """

    def __init__(self) -> None:
        self.routes: list[tuple[str, str | re.Pattern[str], list[dict[str, Any]]]] = []
        self.requests: dict[tuple[str, URL], list[_Call]] = {}

    def add(self, method: str, url: str | re.Pattern[str], **answer: Any) -> None:
        for route_method, route_url, answers in self.routes:
            if route_method == method and route_url == url:
                answers.append(answer)
                return
        self.routes.append((method, url, [answer]))

    def post(self, url: str | re.Pattern[str], **answer: Any) -> None:
        self.add("POST", url, **answer)

    def get(self, url: str | re.Pattern[str], **answer: Any) -> None:
        self.add("GET", url, **answer)

    async def __call__(self, request: Request) -> Response:
        self.requests.setdefault((request.method, URL(request.url)), []).append(_Call(request))
        for method, url, answers in self.routes:
            matches = url == request.url if isinstance(url, str) else url.search(request.url)
            if method == request.method and matches and answers:
                answer = answers[0] if answers[0].get("repeat") else answers.pop(0)
                break
        else:
            raise AssertionError(f"FakeApi: nothing scripted for {request.method} {request.url}")
        if answer.get("exception") is not None:
            raise answer["exception"]
        headers = dict(answer.get("headers") or {})
        body = answer.get("body")
        if body is None:
            body = json.dumps(answer.get("payload", {})).encode()
            headers.setdefault("Content-Type", "application/json")
        elif answer.get("content_type"):
            headers.setdefault("Content-Type", answer["content_type"])
        await asyncio.sleep(0)
        return Response(answer.get("status", 200), headers, body)
