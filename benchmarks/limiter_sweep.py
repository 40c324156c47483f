"""The adaptive limiter on simulated accounts of every shape, many timings a cell, virtual time.

Fireworks documents an account's budget, not its shape (a token bucket of some
depth, a fixed calendar minute, a sliding minute; `Retry-After` absent, rounded
up, exact, in milliseconds or fixed; refused requests counted or not). This
sweep runs the real client on virtual time (`tests/simulated.py`) against each
shape (`fwprep/emulator/budget.py`, the emulator's own), with seeded timings
(answer jitter; processes starting 0.03 s apart; items split by hash as
`--shard k/N` splits them; a window's minute already partly gone), so a rule
of the limiter is judged on shapes it was not chosen on, in minutes.

    python benchmarks/limiter_sweep.py                          # the default cells
    python benchmarks/limiter_sweep.py --shapes window --modes none --rpm 10 1200
    python benchmarks/limiter_sweep.py --count-refused          # refused requests spend budget
    python benchmarks/limiter_sweep.py --limiter /tmp/limits.py # another limiter beside this one

Each cell: mean and worst wall time over the best the shape allows (bucket:
(N - depth) / rate; window: the start of the minute in which the last item
fits; sliding: (ceil(N / limit) - 1) x 60 s), the share of 429s among the
requests after the first 10 s, requests per item, and FAILED when an item
failed. `--limiter` loads another copy of `fwprep/limits.py` (with the
`_spacing.py` beside it, if any) and runs it on the same timings.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fwprep import limits

# The simulated account and bulk job of the test suite (tests/simulated.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
simulated = importlib.import_module("simulated")

ITEMS = {10: 25, 60: 150, 600: 1500, 1200: 3000, 6000: 15000}  # requests/minute: items
SHAPES = ("bucket:1", "bucket:5", "bucket:1s", "bucket:60s", "window", "sliding")
MODES = ("none", "seconds", "exact", "ms", "fixed:1", "fixed:6")


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_limiter(path: str) -> Any:
    """The ``AdaptiveRateLimiter`` class of another copy of ``fwprep/limits.py``."""
    spacing = Path(path).with_name("_spacing.py")
    installed = sys.modules.get("fwprep._spacing")
    if spacing.is_file():
        sys.modules["fwprep._spacing"] = _load("fwprep_spacing_tried", spacing)
    try:
        return _load("fwprep_limits_tried", Path(path)).AdaptiveRateLimiter
    finally:
        if installed is not None:
            sys.modules["fwprep._spacing"] = installed


def account(shape: str, rpm: int, mode: str, seed: int, **options: Any) -> Any:
    """A simulated account of ``shape`` (``bucket:D`` requests deep, ``bucket:Ds`` seconds deep)."""
    kind, _, depth = shape.partition(":")
    burst = None
    if depth:
        burst = float(depth[:-1]) * rpm / 60 if depth.endswith("s") else float(depth)
        burst = max(burst, 1.0)
    phase = (seed * 37.0) % 60.0 if kind == "window" else 0.0  # the minute already gone
    return simulated.Account(
        rpm=rpm, retry_after=mode, depth=burst, shape=kind, phase=phase, seed=seed, **options
    )


def best(acct: Any, items: int) -> float:
    """The shortest wall time the account's shape allows for ``items`` requests."""
    limit = acct.rpm
    if acct.shape == "bucket":
        return max(items - acct.budget.depth, 0.0) / (limit / 60)
    if acct.shape == "window":
        return max(60 * math.floor((items - 1) / limit) - acct.phase, 0.0)
    return (math.ceil(items / limit) - 1) * 60.0


def cell(
    limiter: Callable[..., Any],
    shape: str,
    mode: str,
    rpm: int,
    clients: int,
    seeds: int,
    *,
    count_refused: bool = False,
    jitter: float = 0.5,
    stagger: float = 0.03,
) -> dict[str, Any]:
    """One cell over ``seeds`` timings."""
    ratios, late, per_item, failed = [], [], [], 0
    for seed in range(1, seeds + 1):
        acct = account(shape, rpm, mode, seed, jitter=jitter, count_refused=count_refused)
        run = simulated.run_virtual(
            simulated.bulk_job(
                acct,
                items=ITEMS[rpm],
                clients=clients,
                stagger=stagger if clients > 1 else 0.0,
                limiter_type=limiter,
                by_hash=True,
            )
        )
        ideal = best(acct, ITEMS[rpm])
        ratios.append(run.wall / ideal if ideal > 0 else math.inf)
        late.append(run.late_429_share)
        per_item.append(
            (run.ok + sum(n for (_, s), n in acct.answers.items() if s == 429)) / ITEMS[rpm]
        )
        failed += run.failed
    return {
        "mean": statistics.mean(ratios),
        "worst": max(ratios),
        "late_429": statistics.mean(late),
        "requests_per_item": statistics.mean(per_item),
        "failed": failed,
    }


def show(result: dict[str, Any]) -> str:
    text = f"{result['mean']:.2f}/{result['worst']:.2f} {result['late_429']:3.0%}"
    return text + (" FAILED" if result["failed"] else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="timings per cell (default 10)")
    parser.add_argument("--rpm", type=int, nargs="+", choices=list(ITEMS), default=list(ITEMS))
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES))
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    parser.add_argument("--clients", type=int, default=1, help="processes on the account")
    parser.add_argument("--count-refused", action="store_true")
    parser.add_argument("--limiter", help="another fwprep/limits.py to run beside this one")
    parser.add_argument("--jitter", type=float, default=0.5)
    args = parser.parse_args()
    limiters: dict[str, Any] = {"fwprep": limits.AdaptiveRateLimiter}
    if args.limiter:
        limiters["tried"] = load_limiter(args.limiter)
    print(
        f"{args.clients} process(es), {args.seeds} timings a cell"
        f"{', refused requests counted' if args.count_refused else ''}: "
        "mean/worst wall over the best, 429 share after 10 s"
    )
    print(f"{'shape':11} {'Retry-After':11} {'':7}" + "".join(f"{r:>20}" for r in args.rpm))
    started = time.monotonic()
    for shape in args.shapes:
        for mode in args.modes:
            for name, limiter in limiters.items():
                row = [
                    show(
                        cell(
                            limiter,
                            shape,
                            mode,
                            rpm,
                            args.clients,
                            args.seeds,
                            count_refused=args.count_refused,
                            jitter=args.jitter,
                        )
                    )
                    for rpm in args.rpm
                ]
                print(f"{shape:11} {mode:11} {name:7}" + "".join(f"{c:>20}" for c in row))
    print(f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
