"""The adaptive limiter on simulated accounts: many timings per cell, on virtual time.

`benchmarks/run.py --only throttled` runs real `fwprep batch` processes
against the emulator: one timing per cell, and 20 minutes for the table. A
shared account's outcome depends on timing (which process wins the start's
tokens, and how large the shards fall), so one run of a cell can land
anywhere from 1.0x to 1.4x the ideal. This sweep runs the real client on
virtual time against a token bucket (`tests/simulated.py`): every cell with
many seeded timings (answer jitter; processes starting 0.03 s apart, as 8
real ones launched at once on two cores do; the items split over them by
hash as `--shard k/N` splits them, so that shards are of unequal size, as
real ones are), so a change to the limiter is judged on the spread, in
under a minute.

    python benchmarks/limiter_sweep.py                         # every cell, 12 timings each
    python benchmarks/limiter_sweep.py --rpm 1200 --seeds 30   # one limit, more timings
    python benchmarks/limiter_sweep.py --limiter /tmp/limits.py  # the same cells, side by side

Several processes are told they share the account, as `--shard k/N` tells
them; `--unshared` runs them as if each were alone (jobs started side by
side without `--shared`), to show what that costs.

`--limiter` loads another copy of `fwprep/limits.py` (a change being tried),
with the `_spacing.py` beside it if there is one (the slow account's
spacing), and runs every cell with both, on the same timings. `--jitter 0`
takes the answers' latency jitter away, as on loopback: paced requests then
reach the token bucket as evenly spaced as they left, which is what the
benchmark's real processes meet (the default 0.5 spreads them, and hides
how a process paced near the account's rate takes most of its tokens).
Each row: mean and worst wall time over the ideal (items / limit), the
share of 429s among the requests after the first 10 s, and the 429s of the
first 10 s (the start).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from fwprep import limits

# The simulated account and bulk job of the test suite (tests/simulated.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
simulated = importlib.import_module("simulated")

CELLS = {10: 20, 60: 60, 90: 90, 300: 200, 1200: 600, 6000: 3000}  # requests/minute: items
CLIENTS = (1, 4, 8)


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_limiter(path: str) -> Any:
    """The ``AdaptiveRateLimiter`` class of another copy of ``fwprep/limits.py``.

    A ``_spacing.py`` beside it stands in for ``fwprep._spacing`` while the
    copy is loaded, so a change to the slow account's spacing is tried too.
    """
    spacing = Path(path).with_name("_spacing.py")
    installed = sys.modules["fwprep._spacing"]
    if spacing.is_file():
        sys.modules["fwprep._spacing"] = _load("fwprep_spacing_tried", spacing)
    try:
        return _load("fwprep_limits_tried", Path(path)).AdaptiveRateLimiter
    finally:
        sys.modules["fwprep._spacing"] = installed


def cell(
    limiter: type[limits.AdaptiveRateLimiter],
    rpm: int,
    retry_after: bool,
    clients: int,
    seeds: int,
    jitter: float = 0.5,
    stagger: float = 0.03,
    shared: bool | None = None,
) -> str:
    """One cell over ``seeds`` timings: mean/worst ratio, late 429 share, start 429s."""
    runs = [
        simulated.run_virtual(
            simulated.bulk_job(
                simulated.Account(rpm=rpm, retry_after=retry_after, jitter=jitter, seed=seed),
                items=CELLS[rpm],
                clients=clients,
                stagger=stagger if clients > 1 else 0.0,
                limiter_type=limiter,
                by_hash=True,
                shared=shared,
            )
        )
        for seed in range(1, seeds + 1)
    ]
    if any(run.failed for run in runs):
        return f"x{clients} FAILED ITEMS"
    ratios = [run.ratio for run in runs]
    late = statistics.mean(run.late_429_share for run in runs)
    start = statistics.mean(run.throttled - run.late_throttled for run in runs)
    return f"x{clients} {statistics.mean(ratios):.2f}/{max(ratios):.2f} {late:4.0%} {start:4.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=12, help="timings per cell (default 12)")
    parser.add_argument("--rpm", type=int, nargs="+", choices=list(CELLS), default=list(CELLS))
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS))
    parser.add_argument("--limiter", help="another fwprep/limits.py to run beside this one")
    parser.add_argument(
        "--jitter",
        type=float,
        default=0.5,
        help="each answer's latency varies by up to this share (default 0.5); 0 is loopback, "
        "where paced requests reach the server as evenly as they leave",
    )
    parser.add_argument(
        "--stagger",
        type=float,
        default=0.03,
        help="seconds between the processes' starts (default 0.03: 8 real processes launched "
        "at once on two cores start within about 0.25 s of each other)",
    )
    parser.add_argument(
        "--unshared",
        action="store_true",
        help="several processes each believe they are alone (not told the account is shared)",
    )
    args = parser.parse_args()
    limiters: dict[str, type[limits.AdaptiveRateLimiter]] = {"fwprep": limits.AdaptiveRateLimiter}
    if args.limiter:
        limiters["tried"] = load_limiter(args.limiter)
    print("cell: processes mean/worst wall/ideal, 429 share after 10 s, 429s in the first 10 s")
    started = time.monotonic()
    for rpm in args.rpm:
        for retry_after in (False, True):
            for name, limiter in limiters.items():
                cells = (
                    cell(
                        limiter,
                        rpm,
                        retry_after,
                        n,
                        args.seeds,
                        args.jitter,
                        args.stagger,
                        False if args.unshared else None,
                    )
                    for n in args.clients
                )
                row = " | ".join(cells)
                label = f"{rpm}/min {'RA' if retry_after else '--'} {name}"
                print(f"{label:22} | {row}", flush=True)
    print(f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
