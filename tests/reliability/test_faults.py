"""Under a storm of faults, and against a server that misbehaves, every item ends clearly."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fwprep import FireworksClient, ModelRef, PrepareItem, RetryPolicy
from fwprep.batch import BatchRunner, Record, ReportWriter
from fwprep.emulator import Emulator, Faults, ReceivedRequest


async def test_fault_storm_every_item_ends_ok_exactly_once(
    tmp_path: Path, figures: dict[str, Any], contract: Any
) -> None:
    count = 2000
    faults = Faults(error_503=0.20, throttle_429=0.10, reset=0.05, stall=0.02, stall_seconds=60)
    report_path = tmp_path / "storm.jsonl"
    items = [
        PrepareItem(ModelRef("acme", f"m{i}"), "fp8", source="storm", line=i) for i in range(count)
    ]
    # No Retry-After on these 429s: each would pause the whole client for a second.
    async with Emulator(faults=faults, seed=6, record_requests=True) as emu:
        async with FireworksClient(
            emu.api_key,
            base_url=emu.base_url,
            max_concurrency=32,
            timeout=0.5,
            retry=RetryPolicy(max_attempts=15),
        ) as client:
            report = ReportWriter(report_path)
            summary = await BatchRunner(client, report=report).run(items)
            report.close()
        received = list(emu.stats.received)
        stats = emu.stats
    assert summary.counts == {"ok": count}, summary.lines()
    finals: Counter[str] = Counter()
    for line in report_path.read_text().splitlines():
        record = Record.from_json(json.loads(line))
        if record.status != "started":
            finals[record.identity] += 1
    assert len(finals) == count
    assert set(finals.values()) == {1}
    assert set(stats.prepare_successes) == {item.key for item in items}
    contract.check(received)
    injected = sum(stats.faults.values())
    figures["fault storm"] = (
        f"{count} items, {stats.requests} requests, {injected} faults injected "
        f"({dict(stats.faults)}), {summary.counts['ok']} ok, results lost: 0"
    )


# -- a server that misbehaves ------------------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


async def endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(b'{"name": ')
    await asyncio.Event().wait()  # never finishes
    return response


def behaviour(model: str) -> Any:
    pages = {
        "html-502": lambda: web.Response(
            status=502,
            text="<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            content_type="text/html",
        ),
        "bad-json-200": lambda: web.Response(
            status=200, body=b"{not json", content_type="application/json"
        ),
        "empty-200": lambda: web.Response(status=200, body=b""),
    }
    return pages.get(model)


CHUNK = b"x" * 65536


async def huge(request: web.Request, status: int) -> web.StreamResponse:
    """10 MB, streamed in chunks, so the server itself holds little of it."""
    response = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
    response.content_length = TEN_MB
    await response.prepare(request)
    try:
        for _ in range(TEN_MB // len(CHUNK)):
            await response.write(CHUNK)
    except ConnectionError:
        pass  # the client stopped reading: as it should
    return response


@pytest.fixture
async def misbehaving() -> AsyncIterator[tuple[str, list[ReceivedRequest]]]:
    seen: list[ReceivedRequest] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(
            ReceivedRequest(
                request.method, request.path_qs, dict(request.headers), await request.read()
            )
        )
        model = request.match_info["model"].split(":")[0]
        if model == "endless":
            return await endless(request)
        if model.startswith("huge-"):
            return await huge(request, int(model.removeprefix("huge-")))
        return behaviour(model)()  # type: ignore[no-any-return]

    app = web.Application()
    app.router.add_route("*", "/v1/accounts/{account}/models/{model}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("model", "ok", "message"),
    [
        (
            "html-502",
            False,
            "HTTP 502: HTML error page: 502 Bad Gateway (gave up after 3 attempts)",
        ),
        ("bad-json-200", True, None),  # the prepare call's answer body is documented as {}; unused
        ("empty-200", True, None),
        ("huge-500", False, "HTTP 500: xxxxxxxx"),
        ("endless", False, "no answer within 0.5 s (gave up after 3 attempts)"),
    ],
)
async def test_each_misbehaviour_ends_with_a_clear_outcome(
    misbehaving: tuple[str, list[ReceivedRequest]],
    model: str,
    ok: bool,
    message: str | None,
    contract: Any,
) -> None:
    base, seen = misbehaving
    tracemalloc.start()
    try:
        async with FireworksClient(
            "k", base_url=base, timeout=0.5, retry=RetryPolicy(max_attempts=3)
        ) as client:
            outcome = await client.prepare(PrepareItem(ModelRef("acme", model), "fp8"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcome.ok is ok
    if message is not None:
        assert outcome.error is not None
        assert str(outcome.error).startswith(message) or message in str(outcome.error)
        assert len(str(outcome.error)) < 1000
    assert peak < 2 * 1024 * 1024, f"read {peak} bytes: error bodies must be capped"
    contract.check(seen)


async def test_a_huge_or_broken_model_body_is_a_clear_error(
    misbehaving: tuple[str, list[ReceivedRequest]], contract: Any
) -> None:
    from fwprep import UnexpectedResponseError

    base, seen = misbehaving
    async with FireworksClient("k", base_url=base, timeout=2) as client:
        for model in ("bad-json-200", "huge-200", "empty-200"):
            with pytest.raises(UnexpectedResponseError, match="came back as invalid JSON"):
                await client.get_model(f"accounts/acme/models/{model}")
    contract.check(seen)
