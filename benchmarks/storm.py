"""The fault storm: do stray 429s cost more than the requests they refuse?

500 items, 16 at a time, against the emulator (loopback, 20 ms latency) with
15% 503s, 10% stray 429s carrying ``Retry-After: 1``, 2% dropped connections
and 0.5% stalls past the client's timeout; and the same storm with 503s in
place of the 429s. A 429 that has nothing to do with the client's rate should
cost about what a 503 costs: the ratio of the two walls is the figure (the
target is at most 1.3x). Real time: each storm takes seconds to a minute.

    python benchmarks/storm.py                          # the storm, both ways
    python benchmarks/storm.py --limiter c8ef9ca --label before  # a commit's limiter beside
    python benchmarks/storm.py --write                  # also benchmarks/results/storm.md
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from limiter_sweep import load_limiter, revision
from run import machine

from fwprep import FireworksClient, RetryPolicy, limits
from fwprep.emulator import Emulator, Faults

ITEMS = 500
RESULTS = Path(__file__).resolve().parent / "results" / "storm.md"


async def storm(limiter: Any, throttles: bool) -> tuple[float, int]:
    """One storm's wall time and items ok; ``throttles``: 10% 429s, else 10% more 503s."""
    faults = Faults(
        error_503=0.15 if throttles else 0.25,
        throttle_429=0.10 if throttles else 0.0,
        reset=0.02,
        stall=0.005,
        stall_seconds=5.0,
        latency_ms=20,
    )
    async with Emulator(faults=faults, retry_after="seconds", seed=1) as emu:
        client = FireworksClient(
            emu.api_key,
            base_url=emu.base_url,
            max_concurrency=16,
            timeout=2.0,
            retry=RetryPolicy(max_attempts=10),
            limiter=limiter(),
        )
        async with client:
            started = time.monotonic()
            items = ((f"accounts/a/models/m{i}", "fp8") for i in range(ITEMS))
            ok = sum([outcome.ok async for outcome in client.prepare_many(items)])
            return time.monotonic() - started, ok


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--limiter",
        help="another fwprep/limits.py to run beside this one: a file, or a git revision",
    )
    parser.add_argument("--label", default="tried")
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS.name}")
    args = parser.parse_args()
    limiters: dict[str, Any] = {"fwprep": limits.AdaptiveRateLimiter}
    if args.limiter:
        limiters[args.label] = load_limiter(args.limiter)
    lines = [f"{ITEMS} items, 16 at a time: wall with 10% stray 429s, with 503s instead, ratio"]
    print(lines[0], flush=True)
    for name, limiter in limiters.items():
        throttled, throttled_ok = await storm(limiter, True)
        plain, plain_ok = await storm(limiter, False)
        line = (
            f"{name:8} 429s {throttled:6.1f} s ({throttled_ok} ok)   "
            f"503s {plain:6.1f} s ({plain_ok} ok)   {throttled / plain:.2f}x"
        )
        print(line, flush=True)
        lines.append(line)
    if args.write:
        m = machine()
        RESULTS.write_text(
            "# The fault storm\n\n"
            f"Written by `python benchmarks/storm.py {' '.join(sys.argv[1:])}` "
            f"at fwprep {revision()} on {m['date']}: "
            f"{m['cpu']}; {m['os']}; Python {m['python']}; {m['versions']}.\n"
            "Real time on loopback: a noisy machine moves these figures.\n\n"
            "```\n" + "\n".join(lines) + "\n```\n"
        )


if __name__ == "__main__":
    asyncio.run(main())
