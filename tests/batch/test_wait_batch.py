"""Batches that wait: two phases per item, an ``accepted`` record between, resume into waiting."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from support import env_for, final_statuses, fwprep, wait_for, write_manifest

from fwprep import AdaptiveRateLimiter, FireworksClient, ModelRef, PrepareItem
from fwprep.batch import BatchOptions, BatchRunner, Record, ReportWriter, read_report, run_batch
from fwprep.batch.session import open_batch
from fwprep.emulator import CatalogEntry, Emulator, EmulatorThread


def items(count: int) -> Iterator[PrepareItem]:
    for i in range(count):
        yield PrepareItem(ModelRef("acme", f"m{i}"), "fp8", source="gen", line=i + 1)


def statuses_in_order(path: Path) -> list[str]:
    return [json.loads(line)["status"] for line in path.read_text().splitlines()]


async def test_waiting_items_hold_no_slot(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    # The limiter starts at the emulator's speed: from its cautious 10 a second
    # the twenty prepares would take most of the preparations' second.
    fast = AdaptiveRateLimiter(initial_rate=1000.0)
    async with Emulator(prepare_delay=1.0) as emu:
        async with FireworksClient(
            emu.api_key, base_url=emu.base_url, max_concurrency=2, limiter=fast
        ) as c:
            writer = ReportWriter(report)
            options = BatchOptions(wait=True, poll_interval=0.1)
            summary = await BatchRunner(c, options, report=writer).run(items(20))
            writer.close()
        prepares = emu.stats.operations["prepare"]
        reads = emu.stats.operations["list_models"] + emu.stats.operations["get_model"]
    assert summary.counts["ok"] == 20
    assert summary.waiting == 0
    assert summary.exit_code == 0
    order = [s for s in statuses_in_order(report) if s != "started"]
    # With two slots, all twenty prepares are accepted before the first
    # preparation is done: a waiting item holds no slot.
    assert order == ["accepted"] * 20 + ["ok"] * 20
    assert prepares == 20
    # The twenty are read from one list page a round, not one read each a round.
    assert reads == summary.reads <= 10


async def test_a_failed_preparation_ends_its_item_failed_with_the_status_message() -> None:
    catalog = {
        "accounts/acme/models/m0": CatalogEntry(),
        "accounts/acme/models/m1": CatalogEntry(fail_preparation="quantizer crashed"),
    }
    async with Emulator(catalog=catalog, prepare_delay=0.05) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as c:
            options = BatchOptions(wait=True, poll_interval=0.01)
            records = [r async for r in BatchRunner(c, options).records(items(2))]
    by_model = {r.model: r for r in records}
    assert by_model["accounts/acme/models/m0"].status == "ok"
    failed = by_model["accounts/acme/models/m1"]
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.type == "PreparationFailedError"
    assert "quantizer crashed" in failed.error.message


async def test_a_stopped_wait_leaves_items_accepted_and_resume_waits_without_preparing_again(
    tmp_path: Path,
) -> None:
    report = tmp_path / "r.jsonl"
    async with Emulator(prepare_delay=1.5) as emu:
        fast = AdaptiveRateLimiter(initial_rate=1000.0)  # all ten sent well within 1.5 s
        async with FireworksClient(emu.api_key, base_url=emu.base_url, limiter=fast) as c:
            stop = asyncio.Event()
            waiting: list[Record] = []

            def on_record(record: Record) -> None:
                waiting.append(record)
                if len(waiting) == 10:
                    stop.set()

            writer = ReportWriter(report)
            runner = BatchRunner(c, BatchOptions(wait=True, poll_interval=0.1), report=writer)
            runner.on_record = on_record
            first = await runner.run(items(10), stop=stop)
            writer.close()
            assert {r.status for r in waiting} == {"accepted"}
            assert first.waiting == 10
            assert first.exit_code == 1
            assert any("10 still waiting" in line for line in first.lines())
            last = read_report([report]).last
            assert {k for k, r in last.items() if r.status == "accepted"} == {
                i.key for i in items(10)
            }

            shown: list[str] = []
            async with open_batch(
                items=items(10),
                client=c,
                report=report,
                resume=True,
                options=BatchOptions(wait=True, poll_interval=0.1),
                on_record=lambda record: shown.append(record.status),
            ) as batch:
                again = await batch.runner.run(batch.entries)
            assert shown == ["accepted"] * 10 + ["ok"] * 10  # the progress display sees them wait
        prepares = emu.stats.prepare_requests
    assert again.counts["ok"] == 10
    assert again.exit_code == 0
    assert set(prepares.values()) == {1}  # no item prepared twice
    assert set(final_statuses(report).values()) == {"ok"}


async def test_resume_without_wait_counts_accepted_items_as_done(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    accepted = Record(
        key="accounts/acme/models/m0@FP8",
        status="accepted",
        model="accounts/acme/models/m0",
        precision="FP8",
        source="gen",
        line=1,
    )
    report.write_text(accepted.to_line() + "\n")
    async with Emulator() as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as c:
            summary = await run_batch(items=items(2), client=c, report=report, resume=True)
        prepares = emu.stats.prepare_requests
    assert summary.already_done == 1
    assert list(prepares) == ["accounts/acme/models/m1@FP8"]


def test_kill_9_while_waiting_then_resume_wait_prepares_nothing_twice(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "models.csv", 30)
    report = Path(f"{manifest}.report.jsonl")
    with EmulatorThread(prepare_delay=4.0) as emu:
        env = env_for(emu)
        args = [str(manifest), "-q", "--wait", "--poll-interval", "0.2"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "fwprep", "batch", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: report.exists() and report.read_text().count('"accepted"') == 30)
        finally:
            proc.kill()
            proc.wait()
        assert "ok" not in final_statuses(report).values()  # killed while all were waiting
        shown = fwprep("report", str(report), env=env)
        assert "30 still waiting" in shown.stdout
        assert shown.returncode == 1
        resumed = fwprep("batch", *args, "--resume", env=env)
        prepares = dict(emu.stats.prepare_requests)
    assert resumed.returncode == 0, resumed.stderr
    assert "30 accepted to wait on" in resumed.stderr
    assert len(prepares) == 30
    assert set(prepares.values()) == {1}
    assert set(final_statuses(report).values()) == {"ok"}
