"""One benchmark client run: ``python benchmarks/clients.py TOOL BASE_URL KEY CONCURRENCY COUNT``.

Prints one JSON line: elapsed seconds and CPU seconds of the timed part (start-up and imports
excluded), items ok and failed, and HTTP 429s seen where the tool can tell. The parent
(benchmarks/run.py) reads the process's peak RSS with wait4. TOOL is one of:

  fwprep           FireworksClient.prepare_many, adaptive rate (the default)
  fwprep-warm      the same, its adaptive limiter started at WARM requests a second
  fwprep-rps=R     FireworksClient.prepare_many with max_rps=R
  fwprep-batch     the batch runner over a CSV manifest (COUNT rows), with its report,
                   its adaptive limiter started at WARM requests a second
  aiohttp          a minimal asyncio loop: one ClientSession, a semaphore, session.post
  sdk              the official fireworks-ai SDK's AsyncFireworks under a semaphore

The limiter's start on an account it knows nothing of (10 requests a second,
doubling at most every quarter second) is policy for real accounts, at most
6,000 requests a minute: a server with no limit would meet it for the first
seconds of a run. "warm" clients start where that ramp ends on such a server,
so that scenarios of a client's own speed (overhead, scale) measure the client.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ACCOUNT = "bench"


def model_id(i: int) -> str:
    return f"bench-model-{i}"


# Requests a second: so high that the pace never holds a request back (slots
# shorter than the limiter's microsecond), where a long run on a server with
# no limit leaves the default limiter once its start has doubled far enough.
WARM = 1e9


async def run_fwprep(
    base: str, key: str, concurrency: int, count: int, rps: float | None, warm: bool = False
) -> dict[str, Any]:
    import fwprep

    def items() -> Iterator[fwprep.PrepareItem]:
        for i in range(count):
            yield fwprep.PrepareItem(fwprep.ModelRef(ACCOUNT, model_id(i)), fwprep.Precision.FP8)

    ok = failed = 0
    async with fwprep.FireworksClient(
        key,
        base_url=base,
        max_concurrency=concurrency,
        max_rps=rps,
        limiter=fwprep.AdaptiveRateLimiter(initial_rate=WARM) if warm else None,
        retry=fwprep.RetryPolicy(max_attempts=10),
    ) as client:
        started = time.perf_counter()
        async for outcome in client.prepare_many(items()):
            if outcome.ok:
                ok += 1
            else:
                failed += 1
        elapsed = time.perf_counter() - started
        throttles = getattr(client.limiter, "throttles", None)
    return {"elapsed": elapsed, "ok": ok, "failed": failed, "throttles": throttles}


async def run_fwprep_batch(base: str, key: str, concurrency: int, count: int) -> dict[str, Any]:
    import fwprep

    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "bench.csv"
        with manifest.open("w") as fh:
            fh.write("model,precision\n")
            for i in range(count):
                fh.write(f"accounts/{ACCOUNT}/models/{model_id(i)},fp8\n")
        limiter = fwprep.AdaptiveRateLimiter(initial_rate=WARM)
        async with fwprep.FireworksClient(
            key, base_url=base, max_concurrency=concurrency, limiter=limiter
        ) as c:
            started = time.perf_counter()
            summary = await fwprep.run_batch(manifest, client=c, report=Path(tmp) / "r.jsonl")
            elapsed = time.perf_counter() - started
    return {
        "elapsed": elapsed,
        "ok": summary.counts["ok"],
        "failed": summary.counts["failed"],
        "throttles": None,
    }


async def run_aiohttp(base: str, key: str, concurrency: int, count: int) -> dict[str, Any]:
    import aiohttp

    ok = failed = throttles = 0
    semaphore = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = b'{"precision":"FP8"}'

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(i: int) -> None:
            nonlocal ok, failed, throttles
            async with semaphore:
                url = f"{base}/v1/accounts/{ACCOUNT}/models/{model_id(i)}:prepare"
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        ok += 1
                    else:
                        failed += 1
                        throttles += response.status == 429

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "ok": ok, "failed": failed, "throttles": throttles}


async def run_sdk(base: str, key: str, concurrency: int, count: int) -> dict[str, Any]:
    import fireworks

    ok = failed = 0
    semaphore = asyncio.Semaphore(concurrency)
    client = fireworks.AsyncFireworks(api_key=key, base_url=base, account_id=ACCOUNT)

    async def one(i: int) -> None:
        nonlocal ok, failed
        async with semaphore:
            try:
                await client.models.prepare(model_id(i), precision="FP8")
            except fireworks.APIError:
                failed += 1
            else:
                ok += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - started
    await client.close()
    return {"elapsed": elapsed, "ok": ok, "failed": failed, "throttles": None}


def main() -> None:
    tool, base, key, concurrency, count = sys.argv[1:6]
    c, n = int(concurrency), int(count)
    # Imports happen before the clock starts: start-up is scenario 4's business.
    __import__(
        "fireworks" if tool == "sdk" else "fwprep" if tool.startswith("fwprep") else "aiohttp"
    )
    cpu_started = time.process_time()
    if tool == "fwprep":
        result = asyncio.run(run_fwprep(base, key, c, n, None))
    elif tool == "fwprep-warm":
        result = asyncio.run(run_fwprep(base, key, c, n, None, warm=True))
    elif tool.startswith("fwprep-rps="):
        result = asyncio.run(run_fwprep(base, key, c, n, float(tool.split("=", 1)[1])))
    elif tool == "fwprep-batch":
        result = asyncio.run(run_fwprep_batch(base, key, c, n))
    elif tool == "aiohttp":
        result = asyncio.run(run_aiohttp(base, key, c, n))
    elif tool == "sdk":
        result = asyncio.run(run_sdk(base, key, c, n))
    else:
        raise SystemExit(f"unknown tool {tool!r}")
    result["cpu"] = time.process_time() - cpu_started
    print(json.dumps(result))


if __name__ == "__main__":
    main()
