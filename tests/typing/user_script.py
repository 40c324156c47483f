"""An application's use of fwprep, checked with ``mypy --strict`` in CI (not run by pytest).

It uses the standard ``contextlib.aclosing`` pattern on both async
generators and the batch API's typed keyword arguments; a wrong name or type
there is a type error, not a silent surprise at run time.
"""

from __future__ import annotations

import asyncio
import contextlib

import fwprep


async def first_failure(
    client: fwprep.FireworksClient, items: list[fwprep.ItemLike]
) -> fwprep.PrepareOutcome | None:
    """The first failed outcome, if any; stops sending as soon as it is found."""
    async with contextlib.aclosing(client.prepare_many(items, concurrency=8)) as outcomes:
        async for outcome in outcomes:
            if not outcome.ok:
                return outcome
    return None


async def first_record(items: list[fwprep.ItemLike]) -> fwprep.Record | None:
    """The first final record of a batch, then stop it."""
    async with contextlib.aclosing(fwprep.iter_batch(items=items, concurrency=4)) as records:
        async for record in records:
            return record
    return None


async def nightly(stop: asyncio.Event) -> int:
    """A scheduled job: resume the manifest's batch, stoppable from elsewhere."""
    summary = await fwprep.run_batch(
        "models.csv",
        resume=True,
        max_failures=3,
        shard=fwprep.Shard(1, 2),
        wait=True,
        wait_timeout=1800.0,
        stop=stop,
    )
    return summary.exit_code


async def ready_models(client: fwprep.FireworksClient, items: list[fwprep.ItemLike]) -> list[str]:
    """Prepare, then wait on every accepted item at once; the keys that are ready."""
    accepted = [outcome.item async for outcome in client.prepare_many(items) if outcome.ok]
    ready: list[str] = []
    async with contextlib.aclosing(client.wait_many(accepted, timeout=3600.0)) as outcomes:
        async for outcome in outcomes:
            if outcome.ok and outcome.model is not None:
                ready.append(outcome.item.key)
    return ready
