"""``--check``: whether each item's model already has its precision, at few requests.

One read per model costs a request per item. An account's list pages carry
200 models a request, so when the account's models fit in fewer pages than
the batch has items to check, the whole account is listed once and every
check is answered from that listing. Which way is cheaper is decided per
account from the ``totalSize`` of its first page, against the number of
items the batch expects (or, when it cannot know, the number it checks at
once), by the rule waiting follows too (:mod:`fwprep._reads`).
"""

from __future__ import annotations

import asyncio
import contextlib

from fwprep._reads import ModelSource, pages_worth_reading
from fwprep.models import PrepareItem

__all__ = ["StateCheck"]

_Listing = dict[str, frozenset[str]]  # model name -> the precisions it has


class StateCheck:
    """Answers "is this item's model already prepared for its precision?" for a batch.

    Args:
        client: what reads the models (a :class:`~fwprep.FireworksClient`).
        expected: how many items the batch will check, when known (a
            manifest counted up front); otherwise ``fallback`` stands in.
        fallback: the items assumed without ``expected`` (the batch's
            concurrency: that many checks wait at once).
    """

    def __init__(self, client: ModelSource, *, expected: int | None, fallback: int) -> None:
        self.client = client
        self.expected = expected
        self.fallback = fallback
        self.reads = 0  # list pages and single reads
        self._listings: dict[str, asyncio.Future[_Listing]] = {}

    async def has_precision(self, item: PrepareItem) -> bool:
        """Whether the model already has the item's precision (the item needs one).

        Raises:
            FwprepError: reading the model failed (it does not exist, the key
                is refused, ...).
        """
        precision = item.precision
        assert precision is not None
        account = item.model.account_id
        listing = self._listings.get(account)
        if listing is None:
            listing = self._listings[account] = asyncio.ensure_future(self._list(account))
        found = await asyncio.shield(listing)
        if item.model.name in found:
            return precision.value in found[item.model.name]
        self.reads += 1
        model = await self.client.get_model(item.model)
        return model.has_precision(precision)

    async def _list(self, account: str) -> _Listing:
        """The account's models and their precisions, by name.

        All of them, or only the first page when reading the rest one by one
        costs less (:func:`~fwprep._reads.worth_listing`); a model missing
        here is read on its own.
        """
        found: _Listing = {}
        budget = self.expected if self.expected is not None else self.fallback
        async for page, _ in pages_worth_reading(self.client, account, lambda: budget, self._read):
            for model in page:
                found[model.name] = frozenset(model.supported_precisions + model.precisions)
        return found

    def _read(self, requests: int) -> None:
        self.reads += requests

    async def close(self) -> None:
        """Cancel any listing still running."""
        for listing in self._listings.values():
            listing.cancel()
        for listing in self._listings.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listing
