"""A lazy, bounded worker pool over an iterator, yielding results in completion order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Generic, TypeVar

from fwprep._slots import Slots

__all__ = ["bounded_map", "lend_place", "merge"]

T = TypeVar("T")
R = TypeVar("R")


class _Failure(Generic[T]):
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


class _Places:
    """The places of one :func:`bounded_map`: ``limit`` items worked on at once.

    An item waiting to retry lends its place (:func:`lend_place`) to the next
    item, up to ``limit`` items lent at once, and takes a place again when
    its wait is over: a wait that sends nothing holds no place.
    """

    def __init__(self, limit: int, spawn: Callable[[], None]) -> None:
        self.limit, self.lent, self.workers = limit, 0, 0
        self.free = Slots(limit)
        self.spawn = spawn


class _Held:
    """Whether the item a worker is on holds its place (not while lent)."""

    __slots__ = ("holds",)

    def __init__(self) -> None:
        self.holds = True


_PLACE: ContextVar[tuple[_Places, _Held] | None] = ContextVar("fwprep_place", default=None)


@contextlib.asynccontextmanager
async def lend_place() -> AsyncIterator[None]:
    """Within :func:`bounded_map`'s ``work``: lend this item's place for the block.

    The next item starts meanwhile; at the block's end the item waits for a
    place again. Outside a pool, or with ``limit`` items already lent, the
    block runs with the place kept.
    """
    entry = _PLACE.get()
    if entry is None or not entry[1].holds or entry[0].lent >= entry[0].limit:
        yield
        return
    places, held = entry
    held.holds = False
    places.lent += 1
    places.free.give()
    if places.workers < places.limit + places.lent:
        places.spawn()
    try:
        yield
    finally:
        places.lent -= 1
    await places.free.take()  # cancelled here, it holds nothing to give back
    held.holds = True


class _Map(Generic[T, R]):
    """The workers of one :func:`bounded_map`, the source they share and their results."""

    def __init__(
        self, source: Iterable[T] | AsyncIterator[T], work: Callable[[T], Awaitable[R]], limit: int
    ) -> None:
        self.source, self.work = source, work
        self.results: asyncio.Queue[object] = asyncio.Queue(maxsize=limit)
        self.workers: list[asyncio.Future[None]] = []
        self.places = _Places(limit, self.spawn)
        self._pull_lock = asyncio.Lock()
        self._sync = None if isinstance(source, AsyncIterator) else iter(source)

    def spawn(self) -> None:
        """Start one more worker."""
        self.places.workers += 1
        self.workers.append(asyncio.ensure_future(self._worker()))

    def _next_now(self) -> tuple[bool, T | None]:
        """The next item of a plain iterable (no awaiting: no coroutine made per item)."""
        assert self._sync is not None
        for item in self._sync:
            return True, item
        return False, None

    async def _next_item(self) -> tuple[bool, T | None]:
        async with self._pull_lock:
            try:
                return True, await anext(self.source)  # type: ignore[arg-type]
            except StopAsyncIteration:
                return False, None

    async def _worker(self) -> None:
        places, held = self.places, _Held()
        place = (places, held)  # one per worker: its items take turns with it
        try:
            while True:
                if not places.free.take_now():
                    await places.free.take()
                held.holds = True
                try:
                    if places.workers > places.limit + places.lent:
                        break  # a spare, no longer needed: a lent place came back
                    found, item = (
                        self._next_now() if self._sync is not None else await self._next_item()
                    )
                    if not found:
                        break
                    _PLACE.set(place)  # for the item's work only, not the source's
                    result = await self.work(item)  # type: ignore[arg-type]
                    _PLACE.set(None)
                    if self.results.full():
                        await self.results.put(result)
                    else:
                        self.results.put_nowait(result)  # no coroutine when there is room
                finally:
                    if held.holds:
                        places.free.give()
        except asyncio.CancelledError:
            raise  # the consumer is closing: it no longer reads results
        except BaseException as exc:  # handed to the consumer, which re-raises it
            await self.results.put(_Failure(exc))
            return
        finally:
            places.workers -= 1
        await self.results.put(_DONE)

    async def close(self) -> None:
        """Cancel every worker, then close the source."""
        while self.workers:  # a worker cancelled while lending may have spawned one more
            batch, self.workers[:] = list(self.workers), []
            for task in batch:
                task.cancel()
            await asyncio.gather(*batch, return_exceptions=True)
        await _close(self.source)


async def bounded_map(
    source: Iterable[T] | AsyncIterator[T],
    work: Callable[[T], Awaitable[R]],
    limit: int,
) -> AsyncGenerator[R, None]:
    """Run ``work`` on each item of ``source``, ``limit`` at a time; yield results as they finish.

    ``limit`` workers each pull the next item only when they are free, and at
    most ``limit`` finished results wait for the consumer, so at most
    ``2 * limit`` items are in hand however long the source (``3 * limit``
    while items waiting to retry lend their places, see :func:`lend_place`);
    a worker waiting on a slow source never holds up results that are ready.
    There is no task per item: the cost per item is one call of ``work``. An
    exception from the source or from ``work`` propagates (after the other
    workers are cancelled); closing the generator cancels the workers and
    closes the source.
    """
    running = _Map(source, work, limit)
    for _ in range(limit):
        running.spawn()
    done = 0
    try:
        while done < len(running.workers):
            results = running.results
            result = await results.get() if results.empty() else results.get_nowait()
            if result is _DONE:
                done += 1
            elif isinstance(result, _Failure):
                raise result.error
            else:
                yield result  # type: ignore[misc]
    finally:
        await running.close()


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
            await _close(source)


async def _close(source: object) -> None:
    """Close an async generator (a source that has ``aclose``); other sources need nothing."""
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()
