"""Crashes and signals: nothing finished is lost or redone, and the report always reads back."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from support import env_for, final_statuses, lines_in, wait_for, write_manifest

from fwprep.emulator import EmulatorThread, Faults


def _grown_or_ended(report: Path, target: int, proc: subprocess.Popen[bytes]) -> bool:
    return lines_in(report) >= target or proc.poll() is not None


def test_crash_loop_with_kill_9_then_resume(
    tmp_path: Path, figures: dict[str, Any], contract: Any
) -> None:
    items, concurrency, kills = 3000, 16, 5
    manifest = write_manifest(tmp_path / "m.csv", items)
    report = Path(f"{manifest}.report.jsonl")
    rng = random.Random(5150)
    torn_seen = 0
    with EmulatorThread(faults=Faults(latency_ms=2), record_requests=True) as emu:
        command = [
            sys.executable,
            "-m",
            "fwprep",
            "batch",
            str(manifest),
            "-j",
            str(concurrency),
            "-q",
            "--resume",
        ]
        for _ in range(kills):
            target = lines_in(report) + rng.randint(50, 1200)
            with subprocess.Popen(
                command, env=env_for(emu), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            ) as proc:
                wait_for(partial(_grown_or_ended, report, target, proc))
                proc.kill()
                proc.wait()
            torn_seen += not report.read_bytes().endswith(b"\n")
            # Every line but a torn last one parses.
            lines = report.read_bytes().split(b"\n")
            for line in lines[:-1]:
                json.loads(line)
        result = subprocess.run(
            command, env=env_for(emu), capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        total_prepares = sum(emu.stats.prepare_requests.values())
        received = list(emu.stats.received)
    statuses = final_statuses(report)
    assert len(statuses) == items
    assert set(statuses.values()) == {"ok"}
    assert total_prepares <= items + kills * concurrency
    for text in report.read_text().splitlines():
        json.loads(text)
    contract.check(received)
    figures["crash loop"] = (
        f"{items} items, {kills} kill -9s survived ({torn_seen} left a torn last line), "
        f"{total_prepares} prepares sent for {items} items "
        f"(at most {items + kills * concurrency} allowed), results lost: 0"
    )


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_stop_gracefully_with_the_report_flushed(
    tmp_path: Path, sig: signal.Signals, code: int, figures: dict[str, Any], contract: Any
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 200)
    report = Path(f"{manifest}.report.jsonl")
    grace = 0.5
    with EmulatorThread(faults=Faults(latency_ms=30_000), record_requests=True) as emu:
        with subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fwprep",
                "batch",
                str(manifest),
                "-j",
                "4",
                "--grace",
                str(grace),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_for(emu),
        ) as proc:
            emu.wait_until(lambda stats: stats.in_flight == 4)
            sent_at = time.monotonic()
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=30)
            took = time.monotonic() - sent_at
        received = list(emu.stats.received)
    assert proc.returncode == code
    assert "still in flight" not in stderr  # ended by the grace period, not forced out after it
    assert "sending nothing more" in stderr
    assert "finished in" in stderr  # the summary
    assert f"interrupted by {sig.name}; rerun with --resume" in stderr
    assert "Traceback" not in stderr
    for text in report.read_text().splitlines():
        json.loads(text)
    assert Counter(final_statuses(report).values()) == {"interrupted": 4}
    contract.check(received)
    figures[f"{sig.name}"] = f"exit {proc.returncode} after {took:.2f} s (grace {grace} s)"


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 50)
    with EmulatorThread(faults=Faults(latency_ms=30_000)) as emu:
        with subprocess.Popen(
            [sys.executable, "-m", "fwprep", "batch", str(manifest), "-j", "2", "--grace", "60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_for(emu),
        ) as proc:
            emu.wait_until(lambda stats: stats.in_flight == 2)
            proc.send_signal(signal.SIGINT)
            assert proc.stderr is not None
            for line in proc.stderr:  # the first signal has been handled once this is said
                if "sending nothing more" in line:
                    break
            proc.send_signal(signal.SIGINT)
            _, rest = proc.communicate(timeout=30)  # well inside the 60 s grace
    assert proc.returncode == 130
    assert "SIGINT again: exiting now" in rest
