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
    python benchmarks/limiter_sweep.py --limiter c8ef9ca --label before  # a commit's limiter
    python benchmarks/limiter_sweep.py --shapes bucket:1 --modes none --paced 1.2 1.4
                                                        # what an even pace of limit/F reaches
    python benchmarks/limiter_sweep.py --write          # also benchmarks/results/limiter_sweep.md
    python benchmarks/limiter_sweep.py --clients 8 --write --output limiter_sweep_shards.md
                                                        # (--count-refused: ..._count_refused.md)

Each cell: mean and worst wall time over the best the shape allows (bucket:
(N - depth) / rate; window: the start of the minute in which the last item
fits; sliding: (ceil(N / limit) - 1) x 60 s), the share of 429s among the
requests after the first 10 s, requests per item, and FAILED when an item
failed. `--limiter` loads another copy of `fwprep/limits.py` (with the
`_spacing.py` beside it, if any) and runs it on the same timings; `--paced F`
adds an even pace of the limit / F, told the limit and deaf to `Retry-After`,
the frontier pacing alone reaches (on a one-token bucket, the network's jitter
keeps it well above 1.0x: see `results/limiter_sweep_paced.md`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fwprep import RetryPolicy, limits

# The simulated account and bulk job of the test suite (tests/simulated.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
simulated = importlib.import_module("simulated")

ITEMS = {10: 25, 60: 150, 600: 1500, 1200: 3000, 6000: 15000}  # requests/minute: items


def items_for(rpm: int) -> int:
    """The items of a cell: :data:`ITEMS`, or two and a half minutes' worth at another rate."""
    return ITEMS.get(rpm, max(25, round(rpm * 2.5)))


SHAPES = ("bucket:1", "bucket:5", "bucket:1s", "bucket:60s", "window", "sliding")
MODES = ("none", "seconds", "exact", "ms", "fixed:1", "fixed:6")
RESULTS = Path(__file__).resolve().parent / "results" / "limiter_sweep.md"


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_limiter(path: str) -> Any:
    """The ``AdaptiveRateLimiter`` class of another copy of ``fwprep/limits.py``.

    ``path`` is a file, or a git revision of this repository (``c8ef9ca``,
    ``HEAD~3``) whose ``fwprep/limits.py`` is taken.
    """
    if not Path(path).is_file():
        path = str(_from_git(path))
    spacing = Path(path).with_name("_spacing.py")
    installed = sys.modules.get("fwprep._spacing")
    if spacing.is_file():
        sys.modules["fwprep._spacing"] = _load("fwprep_spacing_tried", spacing)
    try:
        return _load("fwprep_limits_tried", Path(path)).AdaptiveRateLimiter
    finally:
        if installed is not None:
            sys.modules["fwprep._spacing"] = installed


def _from_git(revision: str) -> Path:
    """``fwprep/limits.py`` (and ``_spacing.py``, if any) of ``revision``, in a new directory."""
    root = Path(__file__).resolve().parent.parent
    where = Path(tempfile.mkdtemp(prefix="fwprep-limiter-"))
    for name in ("limits.py", "_spacing.py"):
        shown = subprocess.run(
            ["git", "-C", str(root), "show", f"{revision}:fwprep/{name}"],
            capture_output=True,
            text=True,
        )
        if shown.returncode == 0:
            (where / name).write_text(shown.stdout)
        elif name == "limits.py":
            raise SystemExit(f"--limiter {revision}: neither a file nor a git revision")
    return where / "limits.py"


def revision() -> str:
    """The commit this checkout is at, ``+`` when it has changes not committed."""
    root = str(Path(__file__).resolve().parent.parent)
    head = subprocess.run(
        ["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "fwprep"],
        capture_output=True,
        text=True,
    )
    return (head.stdout.strip() or "unknown") + ("+" if dirty.stdout.strip() else "")


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


def even(rate: float) -> Callable[..., Any]:
    """A limiter that sends ``rate`` requests a second, evenly, whatever the answers say."""

    class Even(limits.FixedRateLimiter):
        def pause(self, seconds: float) -> None:
            """Ignore ``Retry-After``: the pace alone."""

    return lambda clock, rng, shared: Even(rate, clock=clock)


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
    items = items_for(rpm)
    for seed in range(1, seeds + 1):
        acct = account(shape, rpm, mode, seed, jitter=jitter, count_refused=count_refused)
        run = simulated.run_virtual(
            simulated.bulk_job(
                acct,
                items=items,
                clients=clients,
                stagger=stagger if clients > 1 else 0.0,
                limiter_type=limiter,
                by_hash=True,
            )
        )
        ideal = best(acct, items)
        ratios.append(run.wall / ideal if ideal > 0 else math.inf)
        late.append(run.late_429_share)
        per_item.append((run.ok + sum(n for (_, s), n in acct.answers.items() if s == 429)) / items)
        failed += run.failed
    return {
        "mean": statistics.mean(ratios),
        "worst": max(ratios),
        "late_429": statistics.mean(late),
        "requests_per_item": statistics.mean(per_item),
        "failed": failed,
    }


def storm(limiter: Callable[..., Any], seeds: int) -> str:
    """500 items, 16 at a time, on an account with no limit in reach: 10% stray 429s
    (``Retry-After: 1``) and 15% 503s, against the same with 25% 503s; the mean walls and
    their ratio (``benchmarks/storm.py`` runs it on the emulator, in real time)."""
    walls: dict[bool, list[float]] = {True: [], False: []}
    for seed in range(1, seeds + 1):
        for stray in (True, False):
            acct = simulated.Account(
                rpm=600_000,
                latency=0.02,
                jitter=0.5,
                seed=seed,
                stray_429=0.10 if stray else 0.0,
                error_503=0.15 if stray else 0.25,
            )
            run = simulated.run_virtual(
                simulated.bulk_job(
                    acct, items=500, limiter_type=limiter, retry=RetryPolicy(max_attempts=10)
                )
            )
            walls[stray].append(run.wall)
    with_429, without = statistics.mean(walls[True]), statistics.mean(walls[False])
    ratio = with_429 / without
    return f"{with_429:6.1f} s with 429s, {without:6.1f} s with 503s instead: {ratio:.2f}x"


def two_accounts(seed: int = 1) -> str:
    """600 items of a 1,200/min account interleaved with 12 of a 10/min one: each as if alone?

    One client, its default limiter per account, `BatchRunner` as `fwprep batch`
    runs it; the time each account's last item ends, together and alone.
    """
    from fwprep import FireworksClient
    from fwprep.batch.runner import BatchRunner
    from fwprep.batch.session import entries_from_items

    def job(fast_items: int, slow_items: int) -> dict[str, float]:
        accounts = {
            "fast": simulated.Account(rpm=1200, seed=seed, jitter=0.5),
            "slow": simulated.Account(rpm=10, seed=seed + 1, jitter=0.5),
        }
        sends = {name: acct.transport(0) for name, acct in accounts.items()}

        async def send(request: Any) -> Any:
            return await sends[request.account](request)

        items = [(f"accounts/fast/models/m{i}", "fp8") for i in range(fast_items)]
        for k in range(slow_items):  # one in fifty rows
            items.insert(min(k * 50, len(items)), (f"accounts/slow/models/m{k}", "fp8"))
        ended: dict[str, float] = {}

        async def main() -> None:
            loop = asyncio.get_running_loop()
            start = loop.time()

            def record(rec: Any) -> None:
                ended[rec.key.split("/")[1]] = loop.time() - start

            async with FireworksClient("key", transport=send, clock=simulated.LoopClock()) as c:
                await BatchRunner(c, on_record=record).run(entries_from_items(items, None))

        simulated.run_virtual(main())
        return ended

    together, fast, slow = job(600, 12), job(600, 0), job(0, 12)
    return (
        f"two accounts, rows interleaved: 1,200/min {together['fast']:.1f} s "
        f"({together['fast'] / fast['fast']:.2f}x alone), "
        f"10/min {together['slow']:.1f} s ({together['slow'] / slow['slow']:.2f}x alone)"
    )


def show(result: dict[str, Any]) -> str:
    """One cell: mean/worst wall over the best, 429 share after 10 s, requests per item."""
    text = f"{result['mean']:.2f}/{result['worst']:.2f} {result['late_429']:3.0%}"
    text += f" {result['requests_per_item']:4.2f}"
    return text + (" FAILED" if result["failed"] else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="timings per cell (default 10)")
    parser.add_argument(
        "--rpm",
        type=int,
        nargs="+",
        default=list(ITEMS),
        help="limits, requests a minute (default: 10 60 600 1200 6000; other rates run "
        "two and a half minutes' worth of items)",
    )
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES))
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    parser.add_argument("--clients", type=int, default=1, help="processes on the account")
    parser.add_argument("--count-refused", action="store_true")
    parser.add_argument(
        "--limiter",
        help="another fwprep/limits.py to run beside this one: a file, or a git revision",
    )
    parser.add_argument("--label", default="tried", help="its name in the table (default: tried)")
    parser.add_argument("--jitter", type=float, default=0.5)
    parser.add_argument(
        "--accounts", action="store_true", help="also the two-accounts scenario (one budget each)"
    )
    parser.add_argument(
        "--storm",
        action="store_true",
        help="also the fault storm (10%% stray 429s against 503s), --seeds timings",
    )
    parser.add_argument(
        "--write", action="store_true", help=f"also write the table to {RESULTS.name}"
    )
    parser.add_argument(
        "--output",
        metavar="NAME",
        help="with --write, the file in benchmarks/results/, or a path (default: limiter_sweep.md, "
        "or limiter_sweep_count_refused.md with --count-refused)",
    )
    parser.add_argument(
        "--paced",
        type=float,
        nargs="+",
        default=[],
        metavar="F",
        help="also rows for an even pace of the limit / F that knows the limit and ignores "
        "Retry-After: what pacing alone can reach on each shape",
    )
    args = parser.parse_args()
    limiters: dict[str, Callable[[int], Any]] = {"fwprep": lambda rpm: limits.AdaptiveRateLimiter}
    if args.limiter:
        tried = load_limiter(args.limiter)
        limiters[args.label[:7]] = lambda rpm: tried
    for factor in args.paced:
        limiters[f"/{factor:g}"[:7]] = lambda rpm, f=factor: even(rpm / 60 / f)
    lines: list[str] = []

    def out(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    out(
        f"{args.clients} process(es), {args.seeds} timings a cell, answer jitter {args.jitter:g}"
        f"{', refused requests counted' if args.count_refused else ''}: "
        "mean/worst wall over the best, 429 share after 10 s, requests per item"
    )
    out(f"{'shape':11} {'Retry-After':11} {'':7}" + "".join(f"{r:>25}" for r in args.rpm))
    started = time.monotonic()
    for shape in args.shapes:
        for mode in args.modes:
            for name, limiter in limiters.items():
                row = [
                    show(
                        cell(
                            limiter(rpm),
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
                out(f"{shape:11} {mode:11} {name:7}" + "".join(f"{c:>25}" for c in row))
    if args.accounts:
        out(two_accounts())
    if args.storm:
        for name, limiter in limiters.items():
            out(f"fault storm, {name:7} {storm(limiter(6000), args.seeds)}")
    print(f"{time.monotonic() - started:.0f} s")
    if args.write:
        name = args.output or (
            "limiter_sweep_count_refused.md" if args.count_refused else RESULTS.name
        )
        write(lines, " ".join(sys.argv[1:]), Path(name) if "/" in name else RESULTS.with_name(name))


def write(lines: list[str], arguments: str, path: Path = RESULTS) -> None:
    """The table, with when and where it ran (``results/limiter_sweep.md`` by default)."""
    from run import machine  # benchmarks/run.py: the machine line every result carries

    m = machine()
    path.write_text(
        "# The limiter on simulated accounts of every shape\n\n"
        f"Written by `python benchmarks/limiter_sweep.py {arguments}` at fwprep {revision()} "
        f"on {m['date']}: "
        f"{m['cpu']}; {m['os']}; Python {m['python']}; {m['versions']}.\n"
        "Virtual time: the figures do not depend on the machine's speed.\n\n"
        "```\n" + "\n".join(lines) + "\n```\n"
    )


if __name__ == "__main__":
    main()
