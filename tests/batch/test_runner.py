"""The batch runner against the emulator, in process."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fwprep import FireworksClient, ModelRef, PrepareItem, Request, Response
from fwprep.batch import (
    BatchOptions,
    BatchRunner,
    InvalidRow,
    ManifestError,
    Record,
    ReportError,
    ReportWriter,
    Shard,
    iter_batch,
    read_report,
    run_batch,
)
from fwprep.emulator import CatalogEntry, Emulator, Faults


def items(count: int, precision: str = "fp8") -> Iterator[PrepareItem]:
    for i in range(count):
        yield PrepareItem(ModelRef("acme", f"m{i}"), precision, source="gen", line=i + 1)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as e:
        yield e


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[FireworksClient]:
    async with FireworksClient(emu.api_key, base_url=emu.base_url, max_concurrency=4) as c:
        yield c


def finals(path: Path) -> Counter[str]:
    """How many final records each identity has in the report."""
    out: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        record = Record.from_json(json.loads(line))
        if record.status != "started":
            out[record.identity] += 1
    return out


async def test_every_item_gets_exactly_one_final_record(
    tmp_path: Path, emu: Emulator, client: FireworksClient
) -> None:
    report = ReportWriter(tmp_path / "r.jsonl")
    entries: list[PrepareItem | InvalidRow] = [*items(30)]
    entries.insert(5, InvalidRow("gen", 99, "bad row"))
    entries.append(PrepareItem(ModelRef("acme", "m3"), "fp8", source="gen", line=100))
    summary = await BatchRunner(client, report=report).run(entries)
    report.close()
    assert summary.counts == {"ok": 30, "invalid": 1, "duplicate": 1}
    assert summary.exit_code == 1
    assert set(finals(tmp_path / "r.jsonl").values()) == {1}
    assert emu.stats.prepare_requests["accounts/acme/models/m3@FP8"] == 1  # the duplicate ran once
    assert sum(emu.stats.prepare_requests.values()) == 30


async def test_started_is_written_before_the_request_leaves(
    tmp_path: Path, emu: Emulator, client: FireworksClient
) -> None:
    path = tmp_path / "r.jsonl"
    report = ReportWriter(path)
    seen_at_request: list[bool] = []
    original = client.prepare

    async def spy(item: PrepareItem):  # type: ignore[no-untyped-def]
        seen_at_request.append(f'"key":"{item.key}","status":"started"' in path.read_text())
        return await original(item)

    client.prepare = spy  # type: ignore[method-assign]
    await BatchRunner(client, report=report).run(items(5))
    report.close()
    assert seen_at_request == [True] * 5


async def test_resume_skips_what_the_report_has_done(
    tmp_path: Path, emu: Emulator, client: FireworksClient
) -> None:
    path = tmp_path / "r.jsonl"
    report = ReportWriter(path)
    await BatchRunner(client, report=report).run(items(10))
    report.close()
    done = read_report([path]).done_keys()
    assert len(done) == 10
    report = ReportWriter(path)
    summary = await BatchRunner(client, report=report, done=done).run(items(15))
    report.close()
    assert summary.already_done == 10
    assert summary.counts == {"ok": 5}
    assert max(emu.stats.prepare_requests.values()) == 1  # nothing was sent twice


async def test_a_refused_key_halts_with_at_most_the_concurrency_sent(tmp_path: Path) -> None:
    async with Emulator() as emu:
        async with FireworksClient("wrong", base_url=emu.base_url, max_concurrency=4) as c:
            report = ReportWriter(tmp_path / "r.jsonl")
            summary = await BatchRunner(c, report=report).run(items(200))
            report.close()
    assert emu.stats.requests <= 4
    assert summary.halted is not None
    assert "refused the key" in summary.halted
    assert summary.exit_code == 3
    assert summary.counts["failed"] == emu.stats.requests
    assert summary.finished <= 4 + 1 + 1  # in flight, being fetched, and not started


async def test_max_failures_halts(tmp_path: Path) -> None:
    async with Emulator(catalog={}) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url, max_concurrency=2) as c:
            summary = await BatchRunner(c, BatchOptions(max_failures=5)).run(items(100))
    assert 5 <= summary.counts["failed"] <= 5 + 2
    # A library message names the argument the caller passed, not a command-line flag.
    assert summary.halted == "5 items failed (max_failures=5)"
    assert emu.stats.requests < 10
    assert summary.errors.most_common(1)[0][0][0] == "NotFoundError"


def test_shards_partition_the_keys_exactly() -> None:
    keys = [f"accounts/acme/models/m{i}@FP8" for i in range(3000)]
    owners = [[s for s in range(1, 5) if Shard(s, 4).owns(k)] for k in keys]
    assert all(len(o) == 1 for o in owners)
    sizes = Counter(o[0] for o in owners)
    assert set(sizes) == {1, 2, 3, 4}
    assert min(sizes.values()) > 600  # roughly even


async def test_shard_runners_cover_every_item_once(emu: Emulator, client: FireworksClient) -> None:
    for index in (1, 2, 3):
        await BatchRunner(client, BatchOptions(shard=Shard(index, 3))).run(items(90))
    assert len(emu.stats.prepare_successes) == 90
    assert set(emu.stats.prepare_successes.values()) == {1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2/5", Shard(2, 5)), (" 5/5", Shard(5, 5))],
)
def test_shard_parse(text: str, expected: Shard) -> None:
    assert Shard.parse(text, {}) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {
                "SLURM_ARRAY_TASK_ID": "3",
                "SLURM_ARRAY_TASK_COUNT": "4",
                "SLURM_ARRAY_TASK_MIN": "1",
            },
            Shard(3, 4),
        ),
        ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4"}, Shard(1, 4)),
        ({"JOB_COMPLETION_INDEX": "4", "FWPREP_SHARD_COUNT": "5"}, Shard(5, 5)),
    ],
)
def test_shard_auto(env: dict[str, str], expected: Shard) -> None:
    assert Shard.parse("auto", env) == expected


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("0/4", {}, "need 1 <= K <= N"),
        ("5/4", {}, "need 1 <= K <= N"),
        ("a/b", {}, "expected K/N"),
        ("3", {}, "expected K/N"),
        ("auto", {}, "no Slurm array"),
        ("auto", {"JOB_COMPLETION_INDEX": "1"}, "set FWPREP_SHARD_COUNT"),
    ],
)
def test_bad_shards(text: str, env: dict[str, str], message: str) -> None:
    from fwprep import ConfigError

    with pytest.raises(ConfigError, match=message):
        Shard.parse(text, env)


async def test_check_skips_precisions_the_model_already_has() -> None:
    catalog = {
        "accounts/acme/models/m0": CatalogEntry(supported_precisions=("FP8",)),
        "accounts/acme/models/m1": CatalogEntry(),
    }
    async with Emulator(catalog=catalog) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as c:
            summary = await BatchRunner(c, BatchOptions(check=True)).run(items(2))
    assert summary.counts == {"skipped": 1, "ok": 1}
    assert dict(emu.stats.prepare_requests) == {"accounts/acme/models/m1@FP8": 1}


async def test_stop_gives_a_grace_period_then_records_the_rest_as_interrupted(
    tmp_path: Path,
) -> None:
    async with Emulator(faults=Faults(latency_ms=5_000)) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url, max_concurrency=4) as c:
            report = ReportWriter(tmp_path / "r.jsonl")
            runner = BatchRunner(c, BatchOptions(grace=0.2), report=report)
            records: list[Record] = []

            async def consume() -> None:
                async for record in runner.records(items(50)):
                    records.append(record)

            task = asyncio.ensure_future(consume())
            await emu.wait_until(lambda stats: stats.in_flight == 4)
            runner.stop("SIGTERM")
            await task
            report.close()
    assert runner.summary.interrupted == "SIGTERM"
    assert runner.summary.exit_code == 143
    assert [r.status for r in records] == ["interrupted"] * 4
    assert finals(tmp_path / "r.jsonl") == {f"accounts/acme/models/m{i}@FP8": 1 for i in range(4)}


async def test_a_manifest_that_breaks_mid_stream_keeps_what_was_done(
    emu: Emulator, client: FireworksClient
) -> None:
    def entries() -> Iterator[PrepareItem]:
        yield from items(5)
        raise ManifestError("big.csv: read failed: Input/output error")

    summary = await BatchRunner(client).run(entries())
    assert summary.counts == {"ok": 5}
    assert summary.halted == "big.csv: read failed: Input/output error"
    assert summary.exit_code == 3


class FullDisk(ReportWriter):
    """A report that fails after a number of writes, as a full disk would."""

    def __init__(self, path: Path, room: int) -> None:
        super().__init__(path)
        self.room = room

    def write(self, record: Record) -> None:
        if self.room == 0:
            raise ReportError(f"cannot write the report {self.path}: No space left on device")
        self.room -= 1
        super().write(record)


async def test_a_report_that_cannot_be_written_stops_the_run_and_claims_nothing_more(
    tmp_path: Path, emu: Emulator, client: FireworksClient
) -> None:
    path = tmp_path / "r.jsonl"
    report = FullDisk(path, room=7)
    runner = BatchRunner(client, report=report)
    summary = await runner.run(items(100))
    report.close()
    written_ok = sum(1 for line in path.read_text().splitlines() if '"status":"ok"' in line)
    assert summary.counts["ok"] == written_ok
    assert summary.halted is not None
    assert "No space left on device" in summary.halted
    assert summary.exit_code == 3
    assert emu.stats.requests < 100


async def test_run_batch_and_iter_batch_from_python(tmp_path: Path, emu: Emulator) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("model,precision\nm1,fp8\nm2,bf16\nm2,bf16\nM3,fp8\n")
    async with FireworksClient(emu.api_key, base_url=emu.base_url, account_id="acme") as c:
        summary = await run_batch(manifest, client=c)
        assert summary.counts == {"ok": 2, "duplicate": 1, "invalid": 1}
        assert summary.report == f"{manifest}.report.jsonl"
        again = await run_batch([manifest], client=c, resume=True)
        assert again.already_done == 2
        statuses = [r.status async for r in iter_batch(items=[("m9", "fp8")], client=c)]
    assert statuses == ["ok"]
    assert emu.stats.prepare_successes["accounts/acme/models/m9@FP8"] == 1
    assert max(emu.stats.prepare_requests.values()) == 1


async def test_abandon_records_items_whose_requests_ignore_cancellation(tmp_path: Path) -> None:
    """The last resort of a stopping CLI: a request stuck past its cancellation still ends recorded."""
    arrived: list[Request] = []
    three_in_flight, cancel_ignored, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def deaf_transport(request: Request) -> Response:
        arrived.append(request)
        if len(arrived) == 3:
            three_in_flight.set()
        while not release.is_set():  # an HTTP library swallowing cancellation on a stall
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancel_ignored.set()
        raise asyncio.CancelledError

    path = tmp_path / "r.jsonl"
    report = ReportWriter(path)
    client = FireworksClient("key", transport=deaf_transport, max_concurrency=3)
    runner = BatchRunner(client, BatchOptions(grace=0.01), report=report)
    task = asyncio.ensure_future(runner.run(items(10)))
    await three_in_flight.wait()
    runner.stop("SIGTERM")
    await cancel_ignored.wait()  # the grace period ended and the cancellation was ignored
    runner.abandon()
    report.close()
    statuses = Counter(r.status for r in read_report([path]).last.values())
    assert statuses == {"interrupted": 3}
    assert runner.summary.exit_code == 143
    release.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
