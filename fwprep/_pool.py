"""A lazy, bounded worker pool over an iterator, yielding results in completion order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["bounded_map", "merge"]

T = TypeVar("T")
R = TypeVar("R")


class _Failure(Generic[T]):
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


async def bounded_map(
    source: Iterable[T] | AsyncIterator[T],
    work: Callable[[T], Awaitable[R]],
    limit: int,
) -> AsyncGenerator[R, None]:
    """Run ``work`` on each item of ``source``, ``limit`` at a time; yield results as they finish.

    ``limit`` workers each pull the next item only when they are free, and at
    most ``limit`` finished results wait for the consumer, so at most
    ``2 * limit`` items are in hand however long the source; a worker
    waiting on a slow source never holds up results that are ready. There is
    no task per item: the cost per item is one call of ``work``. An exception
    from the source or from ``work`` propagates (after the other workers are
    cancelled); closing the generator cancels the workers and closes the source.
    """
    results: asyncio.Queue[object] = asyncio.Queue(maxsize=limit)
    pull_lock = asyncio.Lock()
    is_async = isinstance(source, AsyncIterator)
    sync_iter = None if is_async else iter(source)  # type: ignore[arg-type]

    async def next_item() -> tuple[bool, T | None]:
        if sync_iter is not None:
            for item in sync_iter:
                return True, item
            return False, None
        async with pull_lock:
            try:
                return True, await anext(source)  # type: ignore[arg-type]
            except StopAsyncIteration:
                return False, None

    async def worker() -> None:
        try:
            while True:
                found, item = await next_item()
                if not found:
                    break
                await results.put(await work(item))  # type: ignore[arg-type]
        except asyncio.CancelledError:
            raise  # the consumer is closing: it no longer reads results
        except BaseException as exc:  # handed to the consumer, which re-raises it
            await results.put(_Failure(exc))
            return
        await results.put(_DONE)

    workers = [asyncio.ensure_future(worker()) for _ in range(limit)]
    running = limit
    try:
        while running:
            result = await results.get()
            if result is _DONE:
                running -= 1
            elif isinstance(result, _Failure):
                raise result.error
            else:
                yield result  # type: ignore[misc]
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


async def merge(*sources: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """Yield what several async iterators yield, as it comes, until all of them end.

    Each source is advanced by its own pending ``anext``; an exception from
    one propagates (after the others' pending steps are cancelled), and
    closing the merged generator cancels those steps and closes every source
    that can be closed.
    """
    pending: dict[asyncio.Future[T], AsyncIterator[T]] = {
        asyncio.ensure_future(anext(source)): source for source in sources
    }
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for step in done:
                source = pending.pop(step)
                try:
                    value = step.result()
                except StopAsyncIteration:
                    continue
                pending[asyncio.ensure_future(anext(source))] = source
                yield value
    finally:
        for step in pending:
            step.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for source in sources:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
