"""Waiting on many preparations at once: :class:`Waiter`, a poller that holds no slot.

A prepare returns as soon as the server accepts it; the precision shows on
the model minutes later. Waiting on each item in its own task would hold a
concurrency slot for those minutes and read each model again and again.
A :class:`Waiter` keeps every accepted item in one waiting set instead and
reads their state in rounds, through the client (so on the account's one
budget, paced by its limiter):

- **Reads cost as few requests as they can.** An account whose models fit
  in fewer list pages (200 models a page) than there are items to read is
  read a page at a time (one request can settle 200 items); a handful of
  items in a large account is read model by model. The choice is made per
  account and per round, from the ``totalSize`` the first page reports.
- **The interval grows with the wait.** An item is read ``poll_interval``
  seconds after its acceptance, then after half the time it has waited so
  far, up to ``max_poll_interval``: a preparation of ten minutes costs 17
  reads, not the 120 of a read every 5 s. A read may come up to half its
  interval early to join a round with others, so one page serves them all.
- **Prepares come first.** While items are still being added (the batch is
  still sending prepares), reads take at most ``sending_share`` of the
  limiter's rate; once :meth:`Waiter.close` says no more will come, they
  may take all of it.

An item ends ``ok`` when its precision shows on the model, or with an error:
:class:`~fwprep.PreparationFailedError` when the model's status reports a
failure (its code and message), :class:`~fwprep.WaitTimeoutError` when
``timeout`` seconds pass from its acceptance, or the error that reading its
model ended with (a deleted model's :class:`~fwprep.NotFoundError`).
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import AsyncGenerator, Iterable

import attrs

from fwprep._checks import check_positive
from fwprep._reads import ModelSource, pages_worth_reading, worth_listing
from fwprep.errors import ConfigError, FwprepError, PreparationFailedError, WaitTimeoutError
from fwprep.models import Model, PrepareItem

__all__ = ["DEFAULT_MAX_POLL_INTERVAL", "DEFAULT_SENDING_SHARE", "WaitOutcome", "Waiter"]

DEFAULT_MAX_POLL_INTERVAL = 60.0
"""The longest a waiting item goes unread, in seconds."""

DEFAULT_SENDING_SHARE = 0.2
"""The share of the limiter's rate reads may take while prepares are still being sent."""

_SLACK = 0.5  # a read may come this share of its interval early, to join a round


@attrs.frozen
class WaitOutcome:
    """How waiting on one accepted preparation ended.

    Attributes:
        item: the item waited on.
        model: the model as last read (``None`` if it could not be read).
        error: why the wait failed, or ``None`` when the precision showed.
        waited: seconds from the item's acceptance to this outcome.
    """

    item: PrepareItem
    model: Model | None
    error: FwprepError | None
    waited: float

    @property
    def ok(self) -> bool:
        """Whether the precision showed on the model."""
        return self.error is None


@attrs.define(eq=False)
class _Waiting:
    item: PrepareItem
    accepted_at: float
    due: float  # start a round for it then
    early: float  # from then on, it joins any round (so that one page serves many)


class Waiter:
    """A waiting set of accepted preparations, read in rounds; outcomes as items finish.

    Add items as their prepares are accepted, iterate :meth:`outcomes` for
    what becomes of them, and :meth:`close` once no more will be added::

        waiter = Waiter(client, timeout=1800)
        for item in accepted:
            waiter.add(item)
        waiter.close()
        async for outcome in waiter.outcomes():
            print(outcome.item.key, "ok" if outcome.ok else outcome.error)

    Items may be added while :meth:`outcomes` runs (a batch adds each one as
    its prepare is accepted). Only items with a precision can be waited on.

    Every setting is checked here (a finite number of seconds above 0), so
    a wrong one raises :class:`~fwprep.ConfigError` naming it.

    Args:
        client: what reads the models: a :class:`~fwprep.FireworksClient`, or
            any :class:`~fwprep._reads.ModelSource`.
        timeout: seconds from an item's acceptance until its wait fails.
        poll_interval: seconds until an item's first read, and the shortest
            interval between its reads.
        max_poll_interval: the longest interval between an item's reads.
        sending_share: the share of the limiter's rate reads may take until
            :meth:`close` (1: no bound).
        bulk: read from list pages when that is cheaper (``False``: always
            one read per model).
    """

    def __init__(
        self,
        client: ModelSource,
        *,
        timeout: float,
        poll_interval: float,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        sending_share: float = DEFAULT_SENDING_SHARE,
        bulk: bool = True,
    ) -> None:
        self.client = client
        self.timeout = check_positive("timeout", timeout)
        self.poll_interval = check_positive("poll_interval", poll_interval)
        self.max_poll_interval = max(
            check_positive("max_poll_interval", max_poll_interval), self.poll_interval
        )
        if not 0 < sending_share <= 1:  # also refuses NaN
            raise ConfigError(
                f"sending_share must be more than 0 and at most 1, got {sending_share!r}"
            )
        self.sending_share = sending_share
        self.bulk = bulk
        self.reads = 0  # requests spent reading (pages and single models)
        self._waiting: dict[str, list[_Waiting]] = defaultdict(list)  # by model name
        self._count = 0
        self._pages: dict[str, int] = {}  # an account's pages a sweep, once known
        self._closed = False
        self._stopped = False
        self._changed = asyncio.Event()
        self._budget = 0.0
        self._budget_at: float | None = None

    @property
    def waiting(self) -> int:
        """Items still waiting."""
        return self._count

    def add(self, item: PrepareItem, *, waited: float = 0.0) -> None:
        """Wait on ``item``, whose prepare was accepted ``waited`` seconds ago (a resumed wait).

        Raises:
            ValueError: the item has no precision (nothing to wait for).
        """
        if item.precision is None:
            raise ValueError(f"{item.key}: no precision to wait for")
        now = self.client.clock.now()
        waiting = _Waiting(item, now - waited, now, now)
        self._schedule(waiting, now)
        self._waiting[item.model.name].append(waiting)
        self._count += 1
        self._changed.set()

    def close(self) -> None:
        """No more items will be added: reads may take the whole rate, and iteration ends."""
        self._closed = True
        self._changed.set()

    def stop(self) -> None:
        """Stop waiting: :meth:`outcomes` ends at once, leaving the items still waiting.

        :attr:`waiting` then says how many there are; a batch leaves them
        ``accepted`` in its report, for ``--resume --wait``.
        """
        self._stopped = True
        self._changed.set()

    def _schedule(self, waiting: _Waiting, now: float) -> None:
        """The next read: after half the time waited so far, within the interval's bounds."""
        age = now - waiting.accepted_at
        interval = min(self.max_poll_interval, max(self.poll_interval, age / 2))
        waiting.due = min(now + interval, waiting.accepted_at + self.timeout)
        waiting.early = waiting.due - _SLACK * interval

    async def outcomes(self) -> AsyncGenerator[WaitOutcome, None]:
        """Yield each item's outcome as it is known, until closed and nothing is left."""
        clock = self.client.clock
        while not self._stopped:
            if not self._count:
                if self._closed:
                    return
                self._changed.clear()
                await self._changed.wait()
                continue
            for outcome in self._expire(clock.now()):
                yield outcome
            if not self._count:
                continue
            wake = min(w.due for ws in self._waiting.values() for w in ws)
            if wake > clock.now():
                await self._sleep(wake - clock.now())
                continue
            allowance = await self._allowance()
            if self._stopped:
                return
            for outcome in await self._round(clock.now(), allowance):
                yield outcome

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake early when an item is added (its read may be due sooner)."""
        self._changed.clear()
        sleeper = asyncio.ensure_future(self.client.clock.sleep(seconds))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait((sleeper, changed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            changed.cancel()

    def _expire(self, now: float) -> list[WaitOutcome]:
        late = [
            w for ws in self._waiting.values() for w in ws if now >= w.accepted_at + self.timeout
        ]
        return [
            self._end(
                w,
                None,
                WaitTimeoutError.after(w.item.model, w.item.precision, self.timeout),
                now,
            )
            for w in late
        ]

    async def _allowance(self) -> float:
        """How many reads the next round may make; while prepares are sent, wait for one.

        Until :meth:`close`, reads accrue at ``sending_share`` of the
        limiter's rate, up to one ``poll_interval``'s worth, and a round
        makes at most what has accrued; then there is no bound.
        """
        rate = self.client.limiter.rate
        if self._closed or self.sending_share >= 1 or not math.isfinite(rate):
            return math.inf
        clock = self.client.clock
        per_second = rate * self.sending_share
        cap = max(1.0, per_second * self.poll_interval)
        now = clock.now()
        if self._budget_at is None:
            self._budget = 1.0
        else:
            self._budget = min(cap, self._budget + (now - self._budget_at) * per_second)
        self._budget_at = now
        if self._budget < 1:
            await clock.sleep((1 - self._budget) / per_second)
            self._budget, self._budget_at = 1.0, clock.now()
        return math.floor(self._budget)

    def _charge(self, requests: int) -> None:
        self.reads += requests
        self._budget -= requests

    async def _round(self, now: float, allowance: float) -> list[WaitOutcome]:
        """Read the items that are due, an account at a time, whichever way costs fewer requests.

        Reads one by one stop at ``allowance`` (earliest due first); the rest
        are read in the next round.
        """
        due: dict[str, list[_Waiting]] = defaultdict(list)
        for ws in self._waiting.values():
            for w in ws:
                if w.early <= now:
                    due[w.item.model.account_id].append(w)
        outcomes: list[WaitOutcome] = []
        for account, items in due.items():
            pages = self._pages.get(account)
            unread = items
            if self.bulk and len(items) > 1 and (pages is None or worth_listing(pages, len(items))):
                unread = await self._sweep(account, items, outcomes)
            room = math.inf if allowance == math.inf else max(0, math.floor(self._budget))
            if room < len(unread):
                unread = sorted(unread, key=lambda w: w.due)[: int(room)]
            outcomes += await self._read_each(unread)
        return outcomes

    async def _sweep(
        self, account: str, due: list[_Waiting], outcomes: list[WaitOutcome]
    ) -> list[_Waiting]:
        """Read the account's list pages; return the due items no page showed.

        Every waiting item a page shows is settled or rescheduled, due or
        not. The pages stop when the rest would cost more than reading the
        unseen items one by one (:func:`~fwprep._reads.worth_listing`).
        """
        clock = self.client.clock
        unseen = {id(w): w for w in due}
        async for page, total in pages_worth_reading(
            self.client, account, lambda: len(unseen), self._charge
        ):
            now = clock.now()
            for model in page:
                for w in list(self._waiting.get(model.name, ())):
                    unseen.pop(id(w), None)
                    if (outcome := self._judge(w, model, now)) is not None:
                        outcomes.append(outcome)
            if total is not None:
                self._pages[account] = max(1, total)
        return list(unseen.values())

    async def _read_each(self, due: Iterable[_Waiting]) -> list[WaitOutcome]:
        """Read each model with items due once, concurrently (the client bounds how many)."""
        by_model: dict[str, list[_Waiting]] = defaultdict(list)
        for w in due:
            by_model[w.item.model.name].append(w)

        async def read(ws: list[_Waiting]) -> list[WaitOutcome]:
            self._charge(1)
            try:
                model = await self.client.get_model(ws[0].item.model)
            except FwprepError as exc:
                now = self.client.clock.now()
                return [self._end(w, None, exc, now) for w in ws]
            now = self.client.clock.now()
            return [o for w in ws if (o := self._judge(w, model, now)) is not None]

        results = await asyncio.gather(*(read(ws) for ws in by_model.values()))
        return [outcome for found in results for outcome in found]

    def _judge(self, waiting: _Waiting, model: Model, now: float) -> WaitOutcome | None:
        """An item's outcome from its model as read, or ``None`` (rescheduled) while pending."""
        precision = waiting.item.precision
        assert precision is not None
        if model.has_precision(precision):
            return self._end(waiting, model, None, now)
        if model.failed and model.status is not None:
            error = PreparationFailedError(model.name, model.status.code, model.status.message)
            return self._end(waiting, model, error, now)
        self._schedule(waiting, now)
        return None

    def _end(
        self, waiting: _Waiting, model: Model | None, error: FwprepError | None, now: float
    ) -> WaitOutcome:
        name = waiting.item.model.name
        siblings = self._waiting[name]
        siblings.remove(waiting)
        if not siblings:
            del self._waiting[name]
        self._count -= 1
        return WaitOutcome(waiting.item, model, error, now - waiting.accepted_at)
