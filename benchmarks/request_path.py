"""The "request_path" scenario: what fwprep costs per request beside the raw aiohttp loop.

    python benchmarks/request_path.py            # about ten seconds; prints the table
    python benchmarks/request_path.py --rounds 15 --requests 2000   # steadier figures
    python benchmarks/request_path.py --instructions   # and instructions a request (minutes)
    python benchmarks/run.py --only request_path  # the full run, written into RESULTS.md

The server (nginx answering `{}` when installed, the emulator otherwise) runs
in its own process; this process runs rounds of three clients, one after the
other at each concurrency:

  aiohttp    the minimal loop: one ClientSession, a semaphore, session.post
  transport  fwprep's AiohttpTransport under fwprep's worker pool, no client:
             items and requests built, sent, answers read
  client     FireworksClient.prepare_many, its adaptive limiter started warm
             (see clients.py)

Each figure is the median, over rounds, of a client's ratio to the aiohttp
round it was paired with: rounds a few seconds apart in one process share
the machine's slow spells, which separate runs minutes apart do not. The
"own cost" line is fwprep's CPU per request with an instant transport (an
`asyncio.sleep(0)`, no network): the client alone, steady from run to run.

Where valgrind is installed, the full run also counts the instructions each
client spends a request (callgrind, two runs of 200 and 1,200 requests: their
difference is the requests' work, start-up left out). A count does not move
with the machine's load as times do, so small changes show in it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

import aiohttp

import fwprep
from fwprep._pool import bounded_map
from fwprep._protocol import build_prepare_request

ACCOUNT = "bench"
KEY = "bench-key"
CONCURRENCIES = (1, 16, 64, 256)
QUICK = {"rounds": 5, "requests": 500}
FULL = {"rounds": 15, "requests": 2000}
Timing = tuple[float, float]  # wall seconds, CPU seconds
Round = Callable[[str, int, int], Coroutine[Any, Any, Timing]]


def _items(count: int) -> Iterator[fwprep.PrepareItem]:
    for i in range(count):
        yield fwprep.PrepareItem(fwprep.ModelRef(ACCOUNT, f"bench-model-{i}"), fwprep.Precision.FP8)


async def _timed(run: Awaitable[object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    await run
    return time.perf_counter() - wall, time.process_time() - cpu


async def _drain(outcomes: Any) -> None:
    async for _ in outcomes:
        pass


async def raw_aiohttp(url: str, concurrency: int, count: int) -> Timing:
    """The loop a user would write with aiohttp alone."""
    slots = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            async with slots:
                target = f"{url}/v1/accounts/{ACCOUNT}/models/bench-model-{i}:prepare"
                async with session.post(target, data=b'{"precision":"FP8"}', headers=headers) as r:
                    await r.read()

        await one(-1)  # the connection opened outside the timing, as for the others
        return await _timed(asyncio.gather(*(one(i) for i in range(count))))


async def transport_only(url: str, concurrency: int, count: int) -> Timing:
    """fwprep's transport and worker pool, without the client's limiter and retries."""
    transport = fwprep.AiohttpTransport(limit=concurrency)

    async def send(item: fwprep.PrepareItem) -> fwprep.Response:
        return await transport(build_prepare_request(url, KEY, item))

    try:
        await send(next(_items(1)))
        return await _timed(_drain(bounded_map(_items(count), send, concurrency)))
    finally:
        await transport.aclose()


def _client(url: str, concurrency: int, **kwargs: Any) -> fwprep.FireworksClient:
    warm = fwprep.AdaptiveRateLimiter(initial_rate=1e9)
    return fwprep.FireworksClient(
        KEY, base_url=url, max_concurrency=concurrency, limiter=warm, **kwargs
    )


async def client(url: str, concurrency: int, count: int) -> Timing:
    """FireworksClient.prepare_many, as an application awaits it."""

    async with _client(url, concurrency) as c:
        await c.prepare_model(f"accounts/{ACCOUNT}/models/warm", "fp8")
        return await _timed(_drain(c.prepare_many(_items(count))))


ROUNDS: dict[str, Round] = {"aiohttp": raw_aiohttp, "transport": transport_only, "client": client}


async def own_cost(concurrency: int, count: int) -> dict[str, float]:
    """fwprep's CPU microseconds per request with an instant transport (no network).

    ``transport``: items, requests and the worker pool; ``client``: the same
    through ``FireworksClient.prepare_many`` (limiter, retries, outcomes).
    """
    answer = fwprep.Response(200, {}, b"{}")

    async def instant(request: fwprep.Request) -> fwprep.Response:
        await asyncio.sleep(0)
        return answer

    async def send(item: fwprep.PrepareItem) -> fwprep.Response:
        return await instant(build_prepare_request("http://127.0.0.1:1", KEY, item))

    _, pool_cpu = await _timed(_drain(bounded_map(_items(count), send, concurrency)))
    async with _client("http://127.0.0.1:1", concurrency, transport=instant) as c:
        _, client_cpu = await _timed(_drain(c.prepare_many(_items(count))))
    return {"transport": pool_cpu / count * 1e6, "client": client_cpu / count * 1e6}


def server() -> tuple[str, AbstractContextManager[str]]:
    """nginx when installed (a server whose own cost is small), else the emulator."""
    import run  # benchmarks/run.py: the servers

    if shutil.which("nginx"):
        return "nginx", run.nginx_server()
    return "fwprep emulator", run.emulator_server()


def measure(url: str, rounds: int, requests: int) -> list[dict[str, Any]]:
    """Paired rounds at each concurrency; one row per client and concurrency."""
    rows = []
    for concurrency in CONCURRENCIES:
        timings: dict[str, list[Timing]] = {name: [] for name in ROUNDS}
        for n in range(rounds + 1):
            for name, one_round in ROUNDS.items():
                timing = asyncio.run(one_round(url, concurrency, requests))
                if n:  # the first round warms the server and the process up
                    timings[name].append(timing)
        base = timings["aiohttp"]
        for name, runs in timings.items():
            rows.append(
                {
                    "tool": name,
                    "concurrency": concurrency,
                    "rps": requests / statistics.median(w for w, _ in runs),
                    "cpu_us": statistics.median(c for _, c in runs) / requests * 1e6,
                    "rps_ratio": statistics.median(
                        b[0] / r[0] for b, r in zip(base, runs, strict=True)
                    ),
                    "cpu_ratio": statistics.median(
                        r[1] / b[1] for b, r in zip(base, runs, strict=True)
                    ),
                }
            )
    return rows


INSTRUCTION_SIZES = (200, 1200)  # requests a run; the difference is the requests' own work


def instructions(url: str, name: str, concurrency: int) -> float:
    """Instructions a request of one client (callgrind): two runs' counts, differenced."""
    counts = []
    for requests in INSTRUCTION_SIZES:
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        command += [sys.executable, __file__, "--one", name, "--url", url]
        command += ["--concurrency", str(concurrency), "--requests", str(requests)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise RuntimeError(f"callgrind printed no count: {done.stderr[-500:]}")
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / (INSTRUCTION_SIZES[1] - INSTRUCTION_SIZES[0])


def count_instructions(url: str) -> list[dict[str, Any]]:
    """Instructions a request of each client at each concurrency, two runs at a time."""
    jobs = [(name, c) for c in CONCURRENCIES for name in ROUNDS]
    with ThreadPoolExecutor(2) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: instructions(url, *job), jobs), strict=True))
    return [
        {
            "tool": name,
            "concurrency": c,
            "instructions": counts[name, c],
            "ratio": counts[name, c] / counts["aiohttp", c],
        }
        for name, c in jobs
    ]


def _median_cost(concurrency: int, count: int, runs: int = 5) -> dict[str, float]:
    costs = [asyncio.run(own_cost(concurrency, count)) for _ in range(runs)]
    return {name: statistics.median(c[name] for c in costs) for name in costs[0]}


def scenario(
    quick: bool,
    *,
    rounds: int | None = None,
    requests: int | None = None,
    count: bool | None = None,
) -> dict[str, Any]:
    """Run the paired rounds, the own-cost measure and (``count``, by default in the full
    run where valgrind is installed) the instruction counts; print each line as it comes."""
    sizes = QUICK if quick else FULL
    rounds, requests = rounds or sizes["rounds"], requests or sizes["requests"]
    count = (not quick and shutil.which("valgrind") is not None) if count is None else count
    name, context = server()
    with context as url:
        rows = measure(url, rounds, requests)
        counted = count_instructions(url) if count else []
    for r in rows:
        print(
            f"  request path {r['tool']:9} c={r['concurrency']:<4} {r['rps']:7.0f} req/s "
            f"{r['cpu_us']:6.1f} us CPU/req  vs aiohttp: req/s {r['rps_ratio']:.2f}x, "
            f"CPU {r['cpu_ratio']:.2f}x",
            flush=True,
        )
    for r in counted:
        print(
            f"  instructions {r['tool']:9} c={r['concurrency']:<4} {r['instructions']:9.0f} "
            f"a request, {r['ratio']:.3f}x aiohttp's",
            flush=True,
        )
    own = {c: _median_cost(c, 20 * requests) for c in (1, 64)}
    for c, us in own.items():
        print(
            f"  own cost (instant transport) c={c}: transport {us['transport']:.1f} us, "
            f"client {us['client']:.1f} us a request",
            flush=True,
        )
    return {
        "server": name,
        "rounds": rounds,
        "requests": requests,
        "rows": rows,
        "own_us": own,
        "instructions": counted,
    }


def markdown(data: dict[str, Any]) -> list[str]:
    """The RESULTS.md section."""
    lines = [
        "## 1b. Request path, paired rounds",
        "",
        f"Run: {data.get('run_at', 'unknown')}.",
        "",
        f"Server: {data['server']} on loopback. {data['rounds']} rounds of {data['requests']} "
        "requests a client and concurrency, the clients one after the other in one process; "
        "each ratio is the median over rounds of the client's round against the aiohttp round "
        "paired with it (`benchmarks/request_path.py`).",
        "",
        "| client | concurrency | req/s | CPU us / req | req/s vs aiohttp | CPU vs aiohttp |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['tool']} | {r['concurrency']} | {r['rps']:.0f} | {r['cpu_us']:.1f} | "
            f"{r['rps_ratio']:.2f}x | {r['cpu_ratio']:.2f}x |"
        )
    own = "; ".join(
        f"at concurrency {c}, {us['transport']:.1f} us for items, requests and the pool, "
        f"{us['client']:.1f} us through the client"
        for c, us in data["own_us"].items()
    )
    lines += [
        "",
        "`transport` is fwprep's transport and worker pool alone; `client` adds the limiter, "
        "retries and outcomes. With an instant transport (no network; medians of 5 runs), "
        f"fwprep's own CPU per request is: {own}. Targets: req/s >= 0.95x, CPU <= 1.10x.",
        "",
    ]
    return lines + _instructions_markdown(data.get("instructions") or [])


def _instructions_markdown(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    concurrencies = sorted({r["concurrency"] for r in rows})
    tools = list(dict.fromkeys(r["tool"] for r in rows))
    found = {(r["tool"], r["concurrency"]): r for r in rows}
    lines = [
        "Instructions a request (callgrind: runs of "
        f"{INSTRUCTION_SIZES[0]} and {INSTRUCTION_SIZES[1]} requests, differenced), and each "
        "client's against the aiohttp loop's at the same concurrency: a count the machine's "
        "load does not move. It is not time: the time ratios above run higher, though the "
        "system calls a request are the same for the three clients (strace, at 16 in flight), "
        "so an instruction of fwprep's (the interpreter's, on fwprep's Python) takes more time "
        "than the average of aiohttp's.",
        "",
        "| client | " + " | ".join(f"concurrency {c}" for c in concurrencies) + " |",
        "| --- |" + " ---: |" * len(concurrencies),
    ]
    for tool in tools:
        cells = (found[tool, c] for c in concurrencies)
        lines.append(
            f"| {tool} | "
            + " | ".join(f"{r['instructions'] / 1000:.0f}k ({r['ratio']:.3f}x)" for r in cells)
            + " |"
        )
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=QUICK["rounds"])
    parser.add_argument("--requests", type=int, default=QUICK["requests"])
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions too (valgrind; minutes)"
    )
    parser.add_argument("--one", choices=list(ROUNDS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # one client's round, for the instruction count
        asyncio.run(ROUNDS[args.one](args.url, args.concurrency, args.requests))
        return
    scenario(True, rounds=args.rounds, requests=args.requests, count=args.instructions)


if __name__ == "__main__":
    main()
