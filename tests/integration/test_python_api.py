"""The Python API as applications use it: loops, cancellation, reuse, shapes, pickling, typing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import fwprep
from fwprep import ClientClosedError, ConfigError, FireworksClient, InputError, RetryPolicy
from fwprep.batch import BatchOptions, iter_batch, read_report, run_batch
from fwprep.emulator import Emulator, EmulatorThread, Faults

ITEMS = [(f"accounts/a/models/m{i}", "fp8") for i in range(20)]


async def drain(iterator: AsyncGenerator[Any, None]) -> None:
    async with contextlib.aclosing(iterator) as items:
        async for _ in items:
            pass


def last_statuses(report: Path) -> Counter[str]:
    return Counter(r.status for r in read_report([report]).last.values())


# -- r01: concurrency below 1 is refused by every entry point ------------------------------


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
async def test_every_entry_point_refuses_a_concurrency_below_one(bad: Any) -> None:
    async with Emulator() as emu, FireworksClient(emu.api_key, base_url=emu.base_url) as c:
        with pytest.raises(ConfigError, match="concurrency"):
            await run_batch(items=ITEMS, client=c, concurrency=bad)
        with pytest.raises(ConfigError, match="concurrency"):
            await drain(iter_batch(items=ITEMS, client=c, concurrency=bad))
        with pytest.raises(ConfigError, match="concurrency"):
            c.prepare_many(ITEMS, concurrency=bad)  # at the call, before anything is sent
        with pytest.raises(ConfigError, match="concurrency"):
            BatchOptions(concurrency=bad)
        with pytest.raises(ConfigError, match="max_concurrency"):
            FireworksClient(emu.api_key, max_concurrency=bad)
        assert emu.stats.requests == 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"max_rps": float("inf")}, "max_rps"),
        ({"max_rps": 0}, "max_rps"),
    ],
)
def test_the_client_refuses_numbers_that_cannot_work(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        FireworksClient("key", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"wait_timeout": -1}, "wait_timeout"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"grace": -0.5}, "grace"),
        ({"max_failures": 0}, "max_failures"),
        ({"shard": 3}, "shard"),
        ({"shard": "5/4"}, "shard"),
    ],
)
def test_batch_options_refuse_values_that_cannot_work(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        BatchOptions(**kwargs)


def test_a_shard_can_be_given_as_text() -> None:
    assert str(BatchOptions(shard="2/4").shard) == "2/4"


async def test_wait_until_prepared_refuses_a_negative_timeout() -> None:
    async with Emulator() as emu, FireworksClient(emu.api_key, base_url=emu.base_url) as c:
        with pytest.raises(ConfigError, match="timeout"):
            await c.wait_until_prepared("accounts/a/models/m", "fp8", timeout=-1)
        assert emu.stats.requests == 0


async def test_resume_without_a_report_is_refused() -> None:
    with pytest.raises(ConfigError, match="resume needs a report"):
        await run_batch(items=ITEMS, client=FireworksClient("key"), resume=True)


# -- r02: the emulator under uvloop ------------------------------------------------------


def test_the_emulator_and_the_client_run_under_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> bool:
        async with Emulator() as emu, FireworksClient(emu.api_key, base_url=emu.base_url) as c:
            return (await c.prepare_model("accounts/a/models/m", "fp8")).ok

    assert uvloop.run(main()) is True


# -- r03 and r12: one client, several event loops; a closed client --------------------------


def test_a_client_works_in_a_second_event_loop_under_contention() -> None:
    with EmulatorThread(faults=Faults(latency_ms=5)) as emu:
        client = FireworksClient(emu.api_key, base_url=emu.base_url, max_concurrency=2)

        async def main() -> list[bool]:
            async with client:

                async def one(prefix: str) -> list[bool]:
                    items = ((f"accounts/a/models/{prefix}{i}", "fp8") for i in range(5))
                    return [o.ok async for o in client.prepare_many(items)]

                results = await asyncio.gather(one("x"), one("y"))
            return [ok for part in results for ok in part]

        assert asyncio.run(main()) == [True] * 10
        assert asyncio.run(main()) == [True] * 10


async def test_a_closed_client_says_so_and_reopens_with_async_with() -> None:
    async with Emulator() as emu:
        client = FireworksClient(emu.api_key, base_url=emu.base_url)
        async with client:
            await client.prepare_model("accounts/a/models/m", "fp8")
        with pytest.raises(ClientClosedError, match="closed"):
            await client.prepare_model("accounts/a/models/m", "fp8")
        with pytest.raises(ClientClosedError):
            client.prepare_many(ITEMS)
        assert isinstance(ClientClosedError("x"), RuntimeError)
        async with client:
            assert (await client.prepare_model("accounts/a/models/m", "fp8")).ok
        assert emu.stats.prepare_requests["accounts/a/models/m@FP8"] == 2


# -- r04 and r15: the client's timeout with the caller's session; a closed session --------------


async def test_the_client_timeout_applies_to_a_callers_session() -> None:
    faults = Faults(stall=1.0, stall_seconds=30)
    async with Emulator(faults=faults) as emu, aiohttp.ClientSession() as session:
        policy = RetryPolicy(max_attempts=1)
        client = FireworksClient(
            emu.api_key, base_url=emu.base_url, timeout=0.3, session=session, retry=policy
        )
        async with client, asyncio.timeout(20):  # aiohttp's own default would be 300 s
            outcome = await client.prepare(client.item(("accounts/a/models/m", "fp8")))
        assert not session.closed  # the caller's session is left open for the caller
    assert isinstance(outcome.error, fwprep.RequestTimeoutError)
    assert "no answer within 0.3 s" in str(outcome.error)


async def test_a_closed_session_is_refused_up_front() -> None:
    session = aiohttp.ClientSession()
    await session.close()
    with pytest.raises(ConfigError, match="already closed"):
        FireworksClient("key", session=session)


# -- r05, r06: a batch from Python records every item, however it ends ---------------------------


async def test_a_bad_pair_in_items_is_an_invalid_row_and_the_rest_runs(tmp_path: Path) -> None:
    items: list[Any] = [(f"accounts/a/models/m{i}", "fp8") for i in range(100)]
    items.insert(40, ("accounts/a/models/bad", "fp9"))
    items.insert(60, ("accounts/a/models/m1", 8))
    report = tmp_path / "r.jsonl"
    async with Emulator() as emu, FireworksClient(emu.api_key, base_url=emu.base_url) as c:
        summary = await run_batch(items=items, client=c, report=report)
    assert summary.counts == {"ok": 100, "invalid": 2}
    assert summary.exit_code == 1
    invalid = sorted(
        r.error.message for r in read_report([report]).last.values() if r.error is not None
    )
    assert invalid[0].startswith("items:41: unknown precision 'fp9'")
    assert invalid[1].startswith("items:61: item ('accounts/a/models/m1', 8): the precision")
    assert last_statuses(report) == {"ok": 100, "invalid": 2}


async def test_run_batch_gives_rows_without_a_precision_each_one_asked_for(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "models.txt"
    manifest.write_text("m1\naccounts/b/models/m2\n")
    async with (
        Emulator() as emu,
        FireworksClient(emu.api_key, base_url=emu.base_url, account_id="a") as c,
    ):
        summary = await run_batch(manifest, client=c, precisions=["fp8", fwprep.Precision.FP4])
        assert set(emu.stats.prepare_successes) == {
            "accounts/a/models/m1@FP8",
            "accounts/a/models/m1@FP4",
            "accounts/b/models/m2@FP8",
            "accounts/b/models/m2@FP4",
        }
    assert summary.counts == {"ok": 4}
    with pytest.raises(InputError, match="unknown precision 'fp9'"):
        await run_batch(manifest, client=c, precisions=["fp9"])


async def test_cancelling_an_embedded_batch_records_every_started_item(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    async with Emulator(faults=Faults(latency_ms=300)) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as c:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await run_batch(items=ITEMS * 10, client=c, report=report)
    statuses = last_statuses(report)
    assert statuses["started"] == 0
    assert statuses["interrupted"] >= 1


async def test_closing_iter_batch_early_records_the_items_in_flight(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    async with Emulator(faults=Faults(latency_ms=50)) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as c:
            batch = iter_batch(items=ITEMS * 10, client=c, report=report)
            async with contextlib.aclosing(batch) as records:
                async for _ in records:
                    break
    statuses = last_statuses(report)
    assert statuses["started"] == 0
    assert statuses["ok"] >= 1


async def test_a_stop_event_stops_a_batch_gracefully(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    stop = asyncio.Event()
    async with Emulator(faults=Faults(latency_ms=100)) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url, max_concurrency=4) as c:
            seen = 0
            async with contextlib.aclosing(
                iter_batch(items=ITEMS * 10, client=c, report=report, stop=stop, grace=5)
            ) as records:
                async for _ in records:
                    seen += 1
                    stop.set()
        sent = sum(emu.stats.prepare_requests.values())
    statuses = last_statuses(report)
    assert statuses["started"] == 0
    assert statuses["ok"] <= 1 + 4 + 4  # the first, those in flight and those being fetched
    # On the wire within the grace: finished ok. Not on the wire yet (waiting for the
    # limiter or a slot): never sent, recorded interrupted.
    assert sent == statuses["ok"]
    assert sum(statuses.values()) == statuses["ok"] + statuses["interrupted"]
    assert seen == sum(statuses.values())


# -- r07: testing mode zeroes backoff, not the pacing the server asks for ----------------------


async def test_testing_mode_keeps_the_servers_retry_after() -> None:
    assert fwprep.retry.is_testing()  # the suite runs with testing on
    async with Emulator(rpm=1200, retry_after=True) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as c:
            outcomes = [o async for o in c.prepare_many(ITEMS * 2)]
    assert [o.error for o in outcomes if not o.ok] == []
    assert emu.stats.statuses[429] >= 1  # the limit was reached, and waited out


# -- r09, r10, r13: the package as a user imports it, pickles it and feeds it -----------------


def test_the_emulator_is_reachable_after_a_plain_import() -> None:
    code = "import fwprep; print(fwprep.emulator.Emulator.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (result.returncode, result.stdout.strip()) == (0, "Emulator")


def _exceptions() -> list[BaseException]:
    from fwprep.batch import ManifestError, ReportError

    errors = fwprep.errors
    samples: list[BaseException] = [
        errors.InvalidPrecisionError("fp9", ("FP8", "FP4")),
        errors.PreparationFailedError("accounts/a/models/m", "INTERNAL", "boom"),
        ManifestError("m.csv: unreadable"),
        ReportError("r.jsonl: disk full"),
    ]
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not isinstance(cls, type) or not issubclass(cls, BaseException):
            continue
        if issubclass(cls, errors.ApiError):
            samples.append(cls(503, "down", code="UNAVAILABLE", request_id="r", retry_after=2.0))
        elif cls not in (errors.InvalidPrecisionError, errors.PreparationFailedError):
            samples.append(cls("what happened"))
    return samples


@pytest.mark.parametrize("error", _exceptions(), ids=lambda e: type(e).__name__)
def test_every_exception_survives_pickling(error: BaseException) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def _raise_in_a_worker() -> None:
    raise fwprep.PreparationFailedError("accounts/a/models/m", "INTERNAL", "boom")


def test_an_exception_crosses_a_process_pool() -> None:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1) as pool:
        with pytest.raises(fwprep.PreparationFailedError, match="INTERNAL: boom"):
            pool.submit(_raise_in_a_worker).result()


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({"m1": "fp8"}, "got a dict"),
        ("accounts/a/models/m", "got a str"),
        ([("m1", "fp8", "x")], r"item \('m1', 'fp8', 'x'\): expected a PrepareItem or a"),
        ([{"model": "m1"}], r"item \{'model': 'm1'\}: expected a PrepareItem or a"),
        ([("m1", 8)], r"item \('m1', 8\): the precision must be text"),
        ([(7, "fp8")], r"item \(7, 'fp8'\): the model must be text"),
        ([("m1", "fp9")], "unknown precision 'fp9'"),
    ],
)
async def test_malformed_items_are_named_with_the_shape_expected(items: Any, message: str) -> None:
    async with FireworksClient("key", account_id="acct") as c:
        with pytest.raises(InputError, match=message):
            await drain(c.prepare_many(items))


# -- r14: a client that hangs up is counted, not logged as an error ------------------------


async def test_a_request_dropped_by_the_client_is_counted_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Emulator(faults=Faults(latency_ms=200)) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as c:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await c.prepare_model("accounts/a/models/m", "fp8")
        await emu.wait_until(lambda stats: stats.in_flight == 0)
    assert emu.stats.dropped_by_client == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# -- r16: leaving prepare_many early ------------------------------------------------------


class CountingTransport(fwprep.AiohttpTransport):
    """The default transport, counting the requests handed to it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def __call__(self, request: fwprep.Request, /) -> fwprep.Response:
        self.calls += 1
        return await super().__call__(request)


async def test_aclosing_prepare_many_stops_at_once() -> None:
    transport = CountingTransport()
    async with Emulator(faults=Faults(latency_ms=20)) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url, transport=transport) as c:
            items = [(f"accounts/a/models/m{i}", "fp8") for i in range(1000)]
            async with contextlib.aclosing(c.prepare_many(items)) as outcomes:
                async for _ in outcomes:
                    break
            sent = transport.calls
            # Closed: no worker is left to send anything more.
            workers = [t for t in asyncio.all_tasks() if "bounded_map" in repr(t.get_coro())]
            assert workers == []
            await emu.wait_until(lambda stats: stats.in_flight == 0)
            assert transport.calls == sent
    assert sent <= 1 + 16 + 16  # the first, the others in flight, the next ones started


def test_an_abandoned_prepare_many_closes_cleanly_at_shutdown(tmp_path: Path) -> None:
    script = tmp_path / "abandon.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, fwprep
            from fwprep.emulator import EmulatorThread, Faults
            keep = []
            async def main(emu):
                async with fwprep.FireworksClient(emu.api_key, base_url=emu.base_url) as c:
                    it = c.prepare_many([(f"accounts/a/models/m{i}", "fp8") for i in range(200)])
                    keep.append(it)
                    async for _ in it:
                        break
            with EmulatorThread(faults=Faults(latency_ms=20)) as emu:
                asyncio.run(main(emu))
            print("done")
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", str(script)], capture_output=True, text=True
    )
    assert (result.returncode, result.stdout.strip()) == (0, "done"), result.stderr
    assert "already running" not in result.stderr
    assert "Traceback" not in result.stderr


# -- the docstring example of EmulatorThread runs as written -------------------------------------


def test_the_emulator_thread_example_runs_as_written(tmp_path: Path) -> None:
    doc = EmulatorThread.__doc__ or ""
    example = textwrap.dedent(doc.split("::", 1)[1].split("\n\n")[1])
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    code = "import os, subprocess\nfrom fwprep.emulator import EmulatorThread\n" + example
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "'accounts/acme/models/m@FP8': 1" in result.stdout
