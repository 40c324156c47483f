"""Slots, the request path's semaphore: the limit holds, the line is fair, none is lost."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from fwprep._slots import Slots


async def _hold(slots: Slots, inside: list[int], most: list[int], turns: int) -> None:
    if not slots.take_now():
        await slots.take()
    try:
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        for _ in range(turns):
            await asyncio.sleep(0)
    finally:
        inside[0] -= 1
        slots.give()


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 5),
    holds=st.lists(st.integers(0, 4), min_size=1, max_size=25),
    cancel=st.sets(st.integers(0, 24)),
    when=st.integers(0, 6),
)
def test_never_more_than_the_limit_and_every_slot_comes_back(
    limit: int, holds: list[int], cancel: set[int], when: int
) -> None:
    """Random holders, some cancelled at a random moment: at most `limit` inside, none lost."""

    async def main() -> tuple[int, int, int]:
        slots, inside, most = Slots(limit), [0], [0]
        tasks = [asyncio.create_task(_hold(slots, inside, most, n)) for n in holds]
        for _ in range(when):
            await asyncio.sleep(0)
        for i in cancel:
            if i < len(tasks):
                tasks[i].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return most[0], slots.free, inside[0]

    most, free, inside = asyncio.run(main())
    assert most <= limit
    assert (free, inside) == (limit, 0)


def test_the_line_is_first_come_first_served_and_a_newcomer_does_not_jump_it() -> None:
    async def main() -> list[str]:
        slots, order = Slots(1), []
        assert slots.take_now()

        async def wait(name: str) -> None:
            await slots.take()
            order.append(name)
            slots.give()

        waiters = [asyncio.create_task(wait(n)) for n in "abc"]
        await asyncio.sleep(0)  # all three in line
        slots.give()  # handed to "a" at once: not free for a newcomer
        assert not slots.take_now()
        await asyncio.gather(*waiters)
        return order

    assert asyncio.run(main()) == ["a", "b", "c"]


def test_a_waiter_cancelled_just_as_it_is_handed_a_slot_passes_it_on() -> None:
    async def main() -> tuple[bool, int]:
        slots = Slots(1)
        assert slots.take_now()
        first = asyncio.create_task(slots.take())
        second = asyncio.create_task(slots.take())
        await asyncio.sleep(0)
        slots.give()  # handed to `first`...
        first.cancel()  # ...which is cancelled before it runs again
        await asyncio.gather(first, return_exceptions=True)
        await asyncio.wait_for(second, 1)  # `second` got the slot `first` passed on
        slots.give()
        return first.cancelled(), slots.free

    assert asyncio.run(main()) == (True, 1)


def test_a_waiter_cancelled_in_line_leaves_it() -> None:
    async def main() -> int:
        slots = Slots(1)
        assert slots.take_now()
        waiting = asyncio.create_task(slots.take())
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        slots.give()  # nobody waits any more: the slot is free
        return slots.free

    assert asyncio.run(main()) == 1
