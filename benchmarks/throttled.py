"""The "throttled" scenario: whole `fwprep batch` jobs against one rate-limited account.

Each cell runs 1, 4 or 8 `fwprep batch --shard k/N` processes at once against
one emulator enforcing the account's limit (a token bucket one second deep),
with and without `Retry-After` on its 429s, and reports the wall time of the
whole job against the ideal (items / limit), the share of 429s among all
requests, and failed items. The 10 requests/minute cells take minutes each:
they run in the full run only.

The "shapes" scenario runs one process against budgets of other shapes the
documentation allows (a bucket five requests deep, a calendar minute, a bucket
one token deep whose 429s always say `Retry-After: 6`), each against the best
its shape allows: minutes of real time, in the full run only.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from plotting import pyplot

from fwprep.batch import read_report

CELLS = [(10, 20), (1200, 600), (6000, 3000)]
QUICK_CELLS = [(1200, 200)]
EARLY = 10.0  # seconds: the limiter's start, left out of the late 429 share
PROCESSES = (1, 4, 8)
# (limit, items, the emulator's shape options, its Retry-After): one process each.
SHAPE_CELLS = [
    (6000, 3000, ("--limit-shape", "bucket", "--burst", "5"), "seconds"),
    (1200, 3000, ("--limit-shape", "window"), "none"),
    (10, 16, ("--limit-shape", "bucket", "--burst", "1"), "fixed:6"),
]


def best(rpm: int, items: int, shape: tuple[str, ...], phase: float) -> float:
    """The least wall time the shape allows (``phase``: seconds of the minute gone at start)."""
    if "window" in shape:
        return max(60 * math.floor((items - 1) / rpm) - phase, 0.0)
    depth = float(shape[shape.index("--burst") + 1]) if "--burst" in shape else rpm / 60
    return max(items - depth, 0.0) / (rpm / 60)


def run_cell(
    emulator: Any,
    stats: Any,
    key: str,
    rpm: int,
    items: int,
    processes: int,
    retry_after: bool | str,
    shape: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One cell: its own emulator, ``processes`` shards of one manifest of ``items``.

    ``retry_after``: ``True`` for the emulator's default header, or a mode
    (``seconds``, ``fixed:6``, ...); ``shape``: the emulator's shape options.
    """
    args = ["--rpm", str(rpm), *shape]
    if retry_after is True:
        args.append("--retry-after")
    elif retry_after:
        args += ["--retry-after", str(retry_after)]
    phase = time.time() % 60.0  # the calendar minute already gone, for a window's best
    with tempfile.TemporaryDirectory() as tmp, emulator(*args) as url:
        manifest = Path(tmp, "models.csv")
        manifest.write_text("model,precision\n" + "".join(f"m{i},fp8\n" for i in range(items)))
        env = {**os.environ, "FIREWORKS_API_KEY": key, "FIREWORKS_BASE_URL": url}
        env["FIREWORKS_ACCOUNT_ID"] = "bench"
        start = time.monotonic()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fwprep",
                    "batch",
                    str(manifest),
                    "-q",
                    "--report",
                    str(Path(tmp, f"report-{k}.jsonl")),
                    "--shard",
                    f"{k}/{processes}",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in range(1, processes + 1)
        ]
        early = _statuses_after(procs, start + EARLY, stats, url)
        codes = [p.wait() for p in procs]
        wall = time.monotonic() - start
        served = stats(url)
        reports = [Path(tmp, f"report-{k}.jsonl") for k in range(1, processes + 1)]
        last = read_report(reports).last
        failed = sum(record.status != "ok" for record in last.values())
    ok = served["statuses"].get("200", 0)
    throttled = served["statuses"].get("429", 0)
    late_ok = ok - early.get("200", 0)
    late_throttled = throttled - early.get("429", 0)
    ideal = best(rpm, items, shape, phase) if shape else items / (rpm / 60)
    return {
        "rpm": rpm,
        "items": items,
        "processes": processes,
        "retry_after": retry_after,
        "wall_s": wall,
        "ideal_s": ideal,
        "ratio": wall / ideal,
        "share_429": throttled / max(1, ok + throttled),
        "late_share_429": (
            late_throttled / (late_ok + late_throttled) if late_ok + late_throttled else None
        ),
        "requests_per_item": (ok + throttled) / items,
        "failed": failed,
        "exit_codes": codes,
    }


def _share(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def _statuses_after(
    procs: list[subprocess.Popen[str]], when: float, stats: Any, url: str
) -> dict[str, int]:
    """The emulator's answer counts at monotonic time ``when`` (or when every process ended)."""
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, when - time.monotonic()))
        except subprocess.TimeoutExpired:
            break
    return dict(stats(url)["statuses"])


def scenario_throttled(quick: bool, emulator: Any, stats: Any, key: str) -> dict[str, Any]:
    rows = []
    for rpm, items in QUICK_CELLS if quick else CELLS:
        for retry_after in (False, True):
            for processes in (1,) if quick else PROCESSES:
                row = run_cell(emulator, stats, key, rpm, items, processes, retry_after)
                rows.append(row)
                print(
                    f"  throttled {rpm:5} rpm {'RA' if retry_after else '--'} x{processes}: "
                    f"{row['wall_s']:6.1f} s ({row['ratio']:.2f}x ideal) "
                    f"429s {row['share_429']:.0%} (after {EARLY:g} s: "
                    f"{_share(row['late_share_429'])}) failed={row['failed']}",
                    flush=True,
                )
    return {"rows": rows}


def scenario_shapes(quick: bool, emulator: Any, stats: Any, key: str) -> dict[str, Any]:
    """One process against each of :data:`SHAPE_CELLS` (nothing with ``quick``)."""
    rows = []
    for rpm, items, shape, retry_after in [] if quick else SHAPE_CELLS:
        row = run_cell(emulator, stats, key, rpm, items, 1, retry_after, shape)
        row["shape"] = " ".join(shape)
        rows.append(row)
        print(
            f"  shapes {rpm:5} rpm {row['shape']} {retry_after}: {row['wall_s']:6.1f} s "
            f"({row['ratio']:.2f}x the best) failed={row['failed']}",
            flush=True,
        )
    return {"rows": rows}


def markdown_shapes(data: dict[str, Any]) -> list[str]:
    """The "shapes" table: one process, each budget's shape against its own best."""
    lines = [
        "## 2g. Throttled: budgets of other shapes",
        "",
        f"Run: {data.get('run_at', 'unknown')}.",
        "",
        "One `fwprep batch` process, default settings, against the emulator enforcing a budget "
        "of another shape. The best: a bucket `(items - depth) / rate`; a calendar minute, the "
        "start of the minute in which the last item fits.",
        "",
        "| limit (rpm) | items | shape | Retry-After | wall s | best s | wall / best "
        "| requests / item | items failed |",
        "| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['rpm']} | {r['items']} | `{r['shape']}` | {r['retry_after']} | "
            f"{r['wall_s']:.1f} | {r['ideal_s']:.1f} | {r['ratio']:.2f}x | "
            f"{r['requests_per_item']:.2f} | {r['failed']} |"
        )
    return [*lines, ""]


def markdown(data: dict[str, Any]) -> list[str]:
    lines = [
        "## 2b. Throttled: one account's limit, several processes",
        "",
        f"Run: {data.get('run_at', 'unknown')}.",
        "",
        "`fwprep batch --shard k/N` processes started together against one emulator enforcing "
        "the limit (a token bucket one second deep, at least one token), default settings "
        "(one process, `--shard 1/1`, is alone on the account; shards are told it is shared). "
        "Ideal = items / limit. The 429 share is of all requests, then of those after the first "
        f"{EARLY:g} s (the limiter's start left out).",
        "",
        "| limit (rpm) | items | Retry-After | processes | wall s | wall / ideal | 429 share "
        f"| after {EARLY:g} s | requests / item | items failed |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['rpm']} | {r['items']} | {'yes' if r['retry_after'] else 'no'} | "
            f"{r['processes']} | {r['wall_s']:.1f} | {r['ratio']:.2f}x | {r['share_429']:.0%} | "
            f"{_share(r.get('late_share_429'))} | "
            f"{r['requests_per_item']:.2f} | {r['failed']} |"
        )
    lines += [
        "",
        "Targets: no failed item in any cell; wall <= 1.10x ideal for one process and <= 1.20x "
        "for eight; 429s under 10% of requests after the first 10 s.",
        "",
    ]
    return lines


def plot(data: dict[str, Any], results: Path) -> None:
    """throttled.png: wall / ideal for every cell, one group of bars per limit and Retry-After."""
    plt = pyplot()
    if plt is None:
        return
    rows = data["rows"]
    groups = list(dict.fromkeys((r["rpm"], r["retry_after"]) for r in rows))
    counts = sorted({r["processes"] for r in rows})
    width = 0.8 / len(counts)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k, processes in enumerate(counts):
        xs, ys = [], []
        for g, (rpm, retry_after) in enumerate(groups):
            for r in rows:
                if (r["rpm"], r["retry_after"], r["processes"]) == (rpm, retry_after, processes):
                    xs.append(g + (k - (len(counts) - 1) / 2) * width)
                    ys.append(r["ratio"])
        label = f"{processes} process" + ("es" if processes > 1 else "")
        ax.bar(xs, ys, width, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.axhline(1.1, color="grey", linestyle="--", linewidth=0.8, label="1.10x (one process)")
    ax.axhline(1.2, color="grey", linestyle=":", linewidth=0.8, label="1.20x (eight)")
    ax.set_xticks(
        range(len(groups)),
        labels=[f"{rpm}/min\n{'Retry-After' if ra else 'no Retry-After'}" for rpm, ra in groups],
    )
    ax.set_ylabel("wall time / ideal (items / limit)")
    ax.set_title("Whole batch jobs on one rate-limited account (emulator)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(results / "throttled.png", dpi=120)
    plt.close(fig)
