"""A lazy, bounded worker pool over an async iterator, in completion order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["bounded_map"]

T = TypeVar("T")
R = TypeVar("R")


async def bounded_map(
    source: AsyncIterator[T],
    work: Callable[[T], Awaitable[R]],
    limit: int,
) -> AsyncGenerator[R, None]:
    """Run ``work`` on each item of ``source``, ``limit`` at a time; yield results as they finish.

    Items are pulled one at a time and only while fewer than ``limit`` are
    running, so at most ``limit + 1`` items are held however long the source.
    Pulling the next item is itself a task, so a slow source never holds up
    results that are ready. An exception from the source or from ``work``
    propagates; closing the generator cancels whatever is still running and
    closes the source.
    """
    running: set[asyncio.Future[R]] = set()
    fetch: asyncio.Future[T] | None = None
    exhausted = False
    try:
        while True:
            if fetch is None and not exhausted and len(running) < limit:
                fetch = asyncio.ensure_future(anext(source))
            waiting: set[asyncio.Future[Any]] = set(running)
            if fetch is not None:
                waiting.add(fetch)
            if not waiting:
                return
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if fetch is not None and fetch in done:
                finished_fetch, fetch = fetch, None
                try:
                    item = finished_fetch.result()
                except StopAsyncIteration:
                    exhausted = True
                else:
                    running.add(asyncio.ensure_future(work(item)))
            for task in done:
                if task in running:
                    running.discard(task)
                    yield task.result()
    finally:
        leftovers: list[asyncio.Future[Any]] = list(running)
        if fetch is not None:
            leftovers.append(fetch)
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.gather(*leftovers, return_exceptions=True)
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
