"""The "wait" scenario: a batch that waits until every precision shows, on a rate-limited account.

`fwprep batch --wait` (prepares at the budget's pace; accepted items wait in
one set read in rounds) against the way fwprep 0.1 waited, kept here for
comparison: each item prepared and then polled every `--poll-interval` in its
own slot, 16 slots. Both run against one emulator per mode, with the account's
limit on every call and preparations of 5 to 30 s (uniform, seeded). Ideal =
items / limit + the longest preparation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fwprep.batch import read_report

RPM = 1200
FULL = (1000, (5.0, 30.0))  # items, preparation times (s)
QUICK = (50, (0.5, 1.5))

# fwprep 0.1's way to wait: prepare, then poll the model every 5 s, in the same slot.
SLOT_HOLDING = """
import asyncio, sys
from fwprep import FireworksClient

async def one(client, slots, model):
    async with slots:
        outcome = await client.prepare_model(model, "fp8")
        if not outcome.ok:
            return False
        try:
            await client.wait_until_prepared(model, "fp8", poll_interval=5.0)
        except Exception:
            return False
        return True

async def main(count):
    async with FireworksClient() as client:
        slots = asyncio.Semaphore(16)
        done = await asyncio.gather(*(one(client, slots, f"m{i}") for i in range(count)))
    print(sum(not ok for ok in done))

asyncio.run(main(int(sys.argv[1])))
"""


def run_mode(
    emulator: Any, stats: Any, key: str, mode: str, items: int, delay: tuple[float, float]
) -> dict[str, Any]:
    """One mode against its own emulator; wall time, requests by operation, failed items."""
    low, high = delay
    args = ["--rpm", str(RPM), "--prepare-delay", f"{low:g}-{high:g}", "--seed", "1"]
    with tempfile.TemporaryDirectory() as tmp, emulator(*args) as url:
        env = {**os.environ, "FIREWORKS_API_KEY": key, "FIREWORKS_BASE_URL": url}
        env["FIREWORKS_ACCOUNT_ID"] = "bench"
        report = Path(tmp, "report.jsonl")
        if mode == "fwprep":
            manifest = Path(tmp, "models.csv")
            manifest.write_text("model,precision\n" + "".join(f"m{i},fp8\n" for i in range(items)))
            command = ["-m", "fwprep", "batch", str(manifest), "-q", "--wait"]
            command += ["--report", str(report)]
        else:
            command = ["-c", SLOT_HOLDING, str(items)]
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, *command], env=env, capture_output=True, text=True, check=False
        )
        wall = time.monotonic() - start
        served = stats(url)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"{mode} exited {done.returncode}: {done.stderr[-2000:]}")
        if mode == "fwprep":
            last = read_report([report]).last
            failed = sum(record.status != "ok" for record in last.values())
        else:
            failed = int(done.stdout.strip() or items)
    operations = served.get("operations", {})
    requests = sum(served["statuses"].values())
    ideal = items / (RPM / 60) + high
    return {
        "mode": mode,
        "items": items,
        "wall_s": wall,
        "ideal_s": ideal,
        "ratio": wall / ideal,
        "requests_per_item": requests / items,
        "reads": operations.get("get_model", 0) + operations.get("list_models", 0),
        "throttled": served["statuses"].get("429", 0),
        "failed": failed,
        "exit_code": done.returncode,
    }


def scenario_wait(quick: bool, emulator: Any, stats: Any, key: str) -> dict[str, Any]:
    items, delay = QUICK if quick else FULL
    rows = []
    for mode in ("fwprep", "slot-holding"):
        row = run_mode(emulator, stats, key, mode, items, delay)
        rows.append(row)
        print(
            f"  wait {mode:13} {items} items: {row['wall_s']:7.1f} s ({row['ratio']:.2f}x ideal) "
            f"{row['requests_per_item']:.2f} requests/item ({row['reads']} reads, "
            f"{row['throttled']} 429s) failed={row['failed']}",
            flush=True,
        )
    return {"rows": rows, "rpm": RPM, "delay": list(delay)}


def markdown(data: dict[str, Any]) -> list[str]:
    low, high = data["delay"]
    lines = [
        "## 2c. Wait: prepare and wait until every precision shows",
        "",
        f"Run: {data.get('run_at', 'unknown')}.",
        "",
        f"One emulator per mode, {data['rpm']} requests/minute on every call (prepares and "
        f"reads alike), each preparation {low:g}-{high:g} s (uniform, seeded). `fwprep` is "
        "`fwprep batch --wait` with default settings; `slot-holding` is how fwprep 0.1 "
        "waited, kept for comparison: prepare, then read the model every 5 s, in the same "
        "slot, 16 slots. Ideal = items / limit + the longest preparation.",
        "",
        "| mode | items | wall s | wall / ideal | requests / item | reads | 429s | failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['mode']} | {r['items']} | {r['wall_s']:.1f} | {r['ratio']:.2f}x | "
            f"{r['requests_per_item']:.2f} | {r['reads']} | {r['throttled']} | {r['failed']} |"
        )
    lines += [
        "",
        "Targets (fwprep): wall <= 1.15x ideal and <= 1.2 requests per item.",
        "",
    ]
    return lines
