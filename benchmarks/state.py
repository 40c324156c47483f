"""Reading state at scale: "check" (requests), "journal" and "listing" (time, memory).

- check: `fwprep batch --check` of 1,000 items, a third already prepared, in an
  account of 1,000 models and in one of 100,000: the requests spent reading
  state (list pages and single reads), from the emulator's counts.
- journal: a report of 1,000,000 items (two records each, as a batch writes
  them), read by `fwprep report` and by `fwprep batch --resume` when every
  item is done: wall time and peak memory of each command.
- listing: `fwprep models -o csv` of an account of 1,000 models and of one of
  100,000 (the emulator's numbered catalogue): wall time, list pages and peak
  memory, which stays flat because models are printed page by page.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from fwprep.batch.report import Record, RecordStatus

CHECK_ITEMS = 1000
ACCOUNTS = (1000, 100_000)
JOURNAL_ITEMS = 1_000_000
QUICK_JOURNAL_ITEMS = 50_000
LISTING_ACCOUNTS = (1000, 100_000)
QUICK_LISTING_ACCOUNTS = (1000, 10_000)

# Runs a command and prints its wall time and its peak RSS (the only child measured).
MEASURE = """
import resource, subprocess, sys, time
start = time.monotonic()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.monotonic() - start
print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode)
"""


def _catalog(path: Path, count: int) -> None:
    with path.open("w") as out:
        for i in range(count):
            model: dict[str, object] = {"name": f"accounts/bench/models/m{i}"}
            if i < CHECK_ITEMS and i % 3 == 0:
                model["supportedPrecisions"] = ["FP8"]
            out.write(json.dumps(model) + "\n")


def scenario_check(quick: bool, emulator: Any, stats: Any, key: str) -> dict[str, Any]:
    rows = []
    for size in ACCOUNTS[:1] if quick else ACCOUNTS:
        with tempfile.TemporaryDirectory() as tmp:
            catalog = Path(tmp, "models.jsonl")
            _catalog(catalog, size)
            manifest = Path(tmp, "models.csv")
            manifest.write_text(
                "model,precision\n" + "".join(f"m{i},fp8\n" for i in range(CHECK_ITEMS))
            )
            with emulator("--models", str(catalog)) as url:
                env = {**os.environ, "FIREWORKS_API_KEY": key, "FIREWORKS_BASE_URL": url}
                env["FIREWORKS_ACCOUNT_ID"] = "bench"
                command = [sys.executable, "-m", "fwprep", "batch", str(manifest), "--check"]
                done = subprocess.run(
                    [*command, "-q", "-o", "json"], env=env, capture_output=True, text=True
                )
                operations = stats(url).get("operations", {})
        summary = json.loads(done.stdout)
        row = {
            "account": size,
            "items": CHECK_ITEMS,
            "list_pages": operations.get("list_models", 0),
            "single_reads": operations.get("get_model", 0),
            "skipped": summary["counts"].get("skipped", 0),
            "prepared": summary["counts"].get("ok", 0),
        }
        rows.append(row)
        print(
            f"  check {CHECK_ITEMS} items in an account of {size}: {row['list_pages']} pages, "
            f"{row['single_reads']} single reads; {row['skipped']} skipped",
            flush=True,
        )
    return {"rows": rows}


def _journal(folder: Path, count: int) -> Path:
    """A manifest and its report, every item done, as a batch writes them."""
    manifest = folder / "models.csv"
    report = folder / "models.csv.report.jsonl"
    with manifest.open("w") as rows, report.open("w") as lines:
        rows.write("model,precision\n")
        for i in range(count):
            rows.write(f"m{i},fp8\n")
            key = f"accounts/bench/models/m{i}@FP8"
            statuses: tuple[RecordStatus, ...] = ("started", "ok")
            for status in statuses:
                record = Record(
                    key=key,
                    status=status,
                    model=key.removesuffix("@FP8"),
                    precision="FP8",
                    source=str(manifest),
                    line=i + 2,
                    attempts=1 if status == "ok" else None,
                    http_status=200 if status == "ok" else None,
                )
                lines.write(record.to_line() + "\n")
    return manifest


def _measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], env=env, capture_output=True, text=True
    )
    wall, rss_kb, _ = out.stdout.split()
    return float(wall), int(rss_kb) / 1024


def scenario_journal(quick: bool) -> dict[str, Any]:
    count = QUICK_JOURNAL_ITEMS if quick else JOURNAL_ITEMS
    with tempfile.TemporaryDirectory() as tmp:
        manifest = _journal(Path(tmp), count)
        report = Path(f"{manifest}.report.jsonl")
        size_mb = report.stat().st_size / 1e6
        env = {**os.environ, "FIREWORKS_API_KEY": "unused", "FIREWORKS_ACCOUNT_ID": "bench"}
        env["FIREWORKS_BASE_URL"] = "http://127.0.0.1:9"  # nothing is sent: every item is done
        fwprep = [sys.executable, "-m", "fwprep"]
        report_s, report_mb = _measure([*fwprep, "report", str(report)], env)
        resume_s, resume_mb = _measure([*fwprep, "batch", str(manifest), "--resume", "-q"], env)
        dry_s, dry_mb = _measure([*fwprep, "batch", str(manifest), "--resume", "--dry-run"], env)
    row = {
        "items": count,
        "report_mb": size_mb,
        "report_s": report_s,
        "report_rss_mb": report_mb,
        "resume_s": resume_s,
        "resume_rss_mb": resume_mb,
        "dry_run_s": dry_s,
        "dry_run_rss_mb": dry_mb,
    }
    print(
        f"  journal {count} items ({size_mb:.0f} MB): fwprep report {report_s:.1f} s "
        f"{report_mb:.0f} MB; --resume {resume_s:.1f} s {resume_mb:.0f} MB; "
        f"--resume --dry-run {dry_s:.1f} s {dry_mb:.0f} MB",
        flush=True,
    )
    return {"rows": [row]}


def scenario_listing(quick: bool, emulator: Any, stats: Any, key: str) -> dict[str, Any]:
    rows = []
    for size in QUICK_LISTING_ACCOUNTS if quick else LISTING_ACCOUNTS:
        with emulator("--models", str(size), "-a", "bench") as url:
            env = {**os.environ, "FIREWORKS_API_KEY": key, "FIREWORKS_BASE_URL": url}
            env["FIREWORKS_ACCOUNT_ID"] = "bench"
            command = [sys.executable, "-m", "fwprep", "models", "-o", "csv"]
            wall, rss_mb = _measure(command, env)
            pages = stats(url).get("operations", {}).get("list_models", 0)
        rows.append({"account": size, "wall_s": wall, "pages": pages, "rss_mb": rss_mb})
        print(
            f"  listing {size} models: {wall:.1f} s, {pages} pages, peak RSS {rss_mb:.0f} MB",
            flush=True,
        )
    return {"rows": rows}


def markdown_listing(data: dict[str, Any]) -> list[str]:
    lines = [
        "## 2f. Listing: `fwprep models` of a large account",
        "",
        f"Run: {data.get('run_at', 'unknown')}.",
        "",
        "`fwprep models -o csv` (every model, printed page by page) against the emulator "
        "serving an account of the given size. Wall time, list pages (one request each) and "
        "peak RSS of the command.",
        "",
        "| account (models) | wall s | list pages | peak RSS MB |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for r in data["rows"]:
        lines.append(f"| {r['account']:,} | {r['wall_s']:.1f} | {r['pages']} | {r['rss_mb']:.0f} |")
    lines += ["", "Target: memory flat (the same peak RSS at 100,000 models as at 1,000).", ""]
    return lines


def markdown_check(data: dict[str, Any]) -> list[str]:
    lines = [
        "## 2d. Check: reading state before preparing",
        "",
        f"Run: {data.get('run_at', 'unknown')}.",
        "",
        f"`fwprep batch --check` of {CHECK_ITEMS} items, a third already prepared, against the "
        "emulator serving an account of the given size. Requests spent reading state: list "
        "pages (200 models each) and single reads.",
        "",
        "| account (models) | items | list pages | single reads | skipped | prepared |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['account']:,} | {r['items']:,} | {r['list_pages']} | {r['single_reads']} | "
            f"{r['skipped']} | {r['prepared']} |"
        )
    lines += ["", "Targets: <= 10 reads in the small account; <= 1,000 in the large one.", ""]
    return lines


def markdown_journal(data: dict[str, Any]) -> list[str]:
    lines = [
        "## 2e. Journal: reading a large report",
        "",
        f"Run: {data.get('run_at', 'unknown')}.",
        "",
        "A report of two records per item (`started`, then `ok`), every item done. `fwprep "
        "report` summarises it; `fwprep batch --resume` reads it and the manifest and sends "
        "nothing; `--resume --dry-run` plans the same. Wall time and peak RSS of each command.",
        "",
        "| items | report MB | `fwprep report` s | MB | `--resume` s | MB | `--dry-run` s | MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in data["rows"]:
        dry = f"{r['dry_run_s']:.1f} | {r['dry_run_rss_mb']:.0f}" if "dry_run_s" in r else "- | -"
        lines.append(
            f"| {r['items']:,} | {r['report_mb']:.0f} | {r['report_s']:.1f} | "
            f"{r['report_rss_mb']:.0f} | {r['resume_s']:.1f} | {r['resume_rss_mb']:.0f} | {dry} |"
        )
    lines += ["", "Target: each under about 150 MB and 10 s at a million items.", ""]
    return lines
