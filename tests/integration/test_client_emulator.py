"""FireworksClient against the emulator, over real HTTP on loopback."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import pytest

from fwprep import (
    AuthenticationError,
    FireworksClient,
    ModelRef,
    NotFoundError,
    PreparationFailedError,
    PrepareItem,
    RetryPolicy,
)
from fwprep.emulator import CatalogEntry, Emulator, Faults
from fwprep.limits import AdaptiveRateLimiter


def items(count: int, models: int | None = None) -> Iterator[PrepareItem]:
    for i in range(count):
        yield PrepareItem(ModelRef("acme", f"m{i % models if models else i}"), "fp8")


async def test_concurrency_is_bounded_and_used() -> None:
    # The limiter starts at the emulator's speed: from its cautious 10 a
    # second, 64 items would all be sent before 8 were ever in flight.
    fast = AdaptiveRateLimiter(initial_rate=1000.0)
    async with Emulator(faults=Faults(latency_ms=20)) as emu:
        async with FireworksClient(
            emu.api_key, base_url=emu.base_url, max_concurrency=8, limiter=fast
        ) as c:
            outcomes = [o async for o in c.prepare_many(items(64))]
    assert len(outcomes) == 64
    assert all(o.ok for o in outcomes)
    assert emu.stats.max_in_flight == 8


async def test_prepare_many_pulls_items_lazily() -> None:
    pulled = 0
    finished = 0
    most_ahead = 0

    def source() -> Iterator[PrepareItem]:
        nonlocal pulled, most_ahead
        for item in items(500, models=5):
            pulled += 1
            most_ahead = max(most_ahead, pulled - finished)
            yield item

    async with Emulator() as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url, max_concurrency=4) as c:
            async for _ in c.prepare_many(source()):
                finished += 1
    assert finished == 500
    # The workers' items, plus at most as many finished ones waiting to be taken.
    assert most_ahead <= 2 * 4


async def test_async_iterables_are_accepted() -> None:
    async def source() -> AsyncIterator[tuple[str, str]]:
        for i in range(20):
            yield f"accounts/acme/models/a{i}", "bf16"

    async with Emulator() as emu, FireworksClient(emu.api_key, base_url=emu.base_url) as c:
        keys = {o.item.key async for o in c.prepare_many(source())}
    assert keys == {f"accounts/acme/models/a{i}@BF16" for i in range(20)}
    assert sum(emu.stats.prepare_successes.values()) == 20


async def test_one_bad_item_does_not_stop_the_others() -> None:
    catalog = {f"accounts/acme/models/m{i}": CatalogEntry() for i in range(10) if i != 3}
    async with Emulator(catalog=catalog) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as c:
            outcomes = {o.item.model.model_id: o async for o in c.prepare_many(items(10))}
    assert not outcomes["m3"].ok
    assert isinstance(outcomes["m3"].error, NotFoundError)
    assert outcomes["m3"].http_status == 404
    assert all(o.ok for name, o in outcomes.items() if name != "m3")


async def test_breaking_out_cancels_the_rest() -> None:
    async with Emulator(faults=Faults(latency_ms=50)) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url, max_concurrency=4) as c:
            stream = c.prepare_many(items(1000))
            async for _ in stream:
                break
            await stream.aclose()
        sent = emu.stats.requests
    # The one taken, the ones in flight, and finished ones not taken yet.
    assert sent <= 1 + 2 * 4


async def test_faults_are_retried_until_every_item_succeeds() -> None:
    faults = Faults(error_500=0.1, error_503=0.1, throttle_429=0.05, reset=0.05, bad_gateway=0.05)
    async with Emulator(faults=faults, seed=11) as emu:
        retry = RetryPolicy(max_attempts=10)
        async with FireworksClient(emu.api_key, base_url=emu.base_url, retry=retry) as c:
            outcomes = [o async for o in c.prepare_many(items(300))]
    assert all(o.ok for o in outcomes), [str(o.error) for o in outcomes if not o.ok][:3]
    assert sum(o.attempts for o in outcomes) == emu.stats.requests
    assert sum(emu.stats.faults.values()) > 0
    assert len(emu.stats.prepare_successes) == 300


async def test_stalls_time_out_and_are_retried() -> None:
    async with Emulator(faults=Faults(stall=0.3, stall_seconds=60), seed=5) as emu:
        async with FireworksClient(
            emu.api_key, base_url=emu.base_url, timeout=0.3, retry=RetryPolicy(max_attempts=8)
        ) as c:
            outcomes = [o async for o in c.prepare_many(items(20))]
    assert all(o.ok for o in outcomes)
    assert emu.stats.faults["stall"] > 0
    assert max(o.attempts for o in outcomes) > 1


async def test_a_fixed_rate_never_bursts_past_the_server_limit() -> None:
    # The server allows 40/s with a bucket 3 deep; the client sends at 40/s, evenly.
    async with (
        Emulator(rpm=2400, burst=3) as emu,
        FireworksClient(emu.api_key, base_url=emu.base_url, max_rps=40, max_concurrency=32) as c,
    ):
        outcomes = [o async for o in c.prepare_many(items(80))]
    assert all(o.ok for o in outcomes)
    assert emu.stats.statuses[429] == 0


@pytest.mark.usefixtures("real_waits")
async def test_adaptive_rate_converges_under_the_server_limit() -> None:
    # 100 requests/s allowed; the client starts unlimited with 32 workers.
    async with (
        Emulator(rpm=6000, burst=10) as emu,
        FireworksClient(
            emu.api_key,
            base_url=emu.base_url,
            max_concurrency=32,
            retry=RetryPolicy(max_attempts=20),
        ) as c,
    ):
        outcomes = [o async for o in c.prepare_many(items(400))]
        limiter = c.limiter
    assert all(o.ok for o in outcomes)
    assert isinstance(limiter, AdaptiveRateLimiter)
    assert limiter.rate is not None  # it found a limit
    # Converged: most requests went through the first time. A client that did not
    # adapt keeps sending at its unthrottled rate and is refused most of the time.
    assert emu.stats.statuses[429] < 400 * 0.5


async def test_without_adapting_the_same_batch_is_mostly_refused() -> None:
    """The control for the test above: a fixed, too-high rate gets many more 429s."""
    async with (
        Emulator(rpm=6000, burst=10) as emu,
        FireworksClient(
            emu.api_key,
            base_url=emu.base_url,
            max_concurrency=32,
            max_rps=100_000,
            retry=RetryPolicy(max_attempts=1000),
        ) as c,
    ):
        outcomes = [o async for o in c.prepare_many(items(400))]
    assert all(o.ok for o in outcomes)
    assert emu.stats.statuses[429] >= 400 * 0.5


async def test_prepare_then_wait_until_prepared() -> None:
    async with Emulator(prepare_delay=0.1) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url, account_id="acme") as c:
            await c.prepare_model("ft-7", "fp8-mm")
            model = await c.wait_until_prepared("ft-7", "FP8_MM", poll_interval=0.02)
    assert model.has_precision("FP8_MM")


async def test_a_failed_preparation_is_reported() -> None:
    name = "accounts/acme/models/ft-7"
    catalog = {name: CatalogEntry(fail_preparation="out of memory")}
    async with Emulator(catalog=catalog) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as c:
            await c.prepare_model(name, "fp8")
            with pytest.raises(PreparationFailedError, match="out of memory"):
                await c.wait_until_prepared(name, "fp8", poll_interval=0.01)


async def test_a_wrong_key_is_an_authentication_error_naming_no_key() -> None:
    async with Emulator() as emu:
        async with FireworksClient("fw-WRONG-KEY-42", base_url=emu.base_url) as c:
            with pytest.raises(AuthenticationError) as info:
                await c.prepare_model("accounts/acme/models/m", "fp8")
    assert "fw-WRONG-KEY-42" not in repr(info.value)
    assert emu.stats.requests == 1


@pytest.fixture
def emulator_process() -> Iterator[tuple[str, str]]:
    """An emulator in its own process, so only the client is in this one's memory."""
    command = [sys.executable, "-m", "fwprep", "emulator", "--port", "0", "--prepare-delay", "0"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        match = re.search(r"(http://\S+)", proc.stdout.readline())
        assert match
        try:
            yield match.group(1), "fw-emulator-key"
        finally:
            proc.terminate()
            proc.communicate(timeout=10)


async def test_ten_thousand_items_keep_memory_flat(emulator_process: tuple[str, str]) -> None:
    base_url, key = emulator_process
    samples: dict[int, int] = {}
    async with FireworksClient(key, base_url=base_url, max_concurrency=32) as c:
        tracemalloc.start()
        try:
            done = 0
            async for outcome in c.prepare_many(items(10_000)):
                assert outcome.ok
                done += 1
                if done in (1_000, 10_000):
                    gc.collect()
                    samples[done] = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    assert done == 10_000
    # Buffering the outcomes (or creating every task up front) would hold several
    # hundred bytes per item: megabytes here. Streaming holds only the workers' share.
    assert samples[10_000] - samples[1_000] < 256 * 1024, samples
