"""Reading models' state at few requests: list pages or one read per model, decided here.

An account's list pages carry 200 models a request; a read of one model
costs a request too. :func:`worth_listing` is the one rule both ``--check``
(:class:`~fwprep.batch.check.StateCheck`) and waiting
(:class:`~fwprep.Waiter`) follow, and :func:`pages_worth_reading` the one
listing they both read, through a :class:`ModelSource` (a
:class:`~fwprep.FireworksClient` is one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from fwprep._clock import Clock
from fwprep._protocol import MAX_PAGE_SIZE
from fwprep.errors import FwprepError
from fwprep.limits import RateLimiter
from fwprep.listing import ModelListing
from fwprep.models import Model
from fwprep.names import ModelRef

__all__ = ["ModelSource", "pages_worth_reading", "worth_listing"]


class ModelSource(Protocol):
    """What reading models' state needs: the two reads, a clock, and the account's pace."""

    @property
    def clock(self) -> Clock:
        """Where the time is read and waits are slept."""
        ...

    @property
    def limiter(self) -> RateLimiter:
        """The account's limiter: reads take a share of its rate."""
        ...

    async def get_model(self, model: ModelRef | str, *, read_mask: str | None = None) -> Model:
        """One model, in one request."""
        ...

    def list_models(
        self,
        account_id: str | None = None,
        *,
        filter: str | None = None,
        order_by: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        read_mask: str | None = None,
    ) -> ModelListing:
        """The account's models, a page (a request) at a time."""
        ...


def worth_listing(pages_left: int, reads_instead: float) -> bool:
    """Whether ``pages_left`` list pages cost no more requests than reading the models one by one.

    ``reads_instead`` is how many models would otherwise be read on their
    own: the items still to settle, or those a batch expects to check.
    """
    return pages_left <= reads_instead


async def pages_worth_reading(
    source: ModelSource,
    account: str,
    reads_instead: Callable[[], float],
    on_read: Callable[[int], None],
) -> AsyncIterator[tuple[list[Model], int | None]]:
    """The account's list pages with its total page count, for as long as they are worth it.

    After each page, the listing stops when the pages left would cost more
    than ``reads_instead()`` reads of single models (:func:`worth_listing`).
    ``on_read(1)`` counts each page's request. A listing that fails ends
    quietly: the models it did not show are read one by one, and their own
    errors say what is wrong.
    """
    listing = source.list_models(account, page_size=MAX_PAGE_SIZE)
    try:
        async for page in listing.by_page():
            on_read(1)
            total = listing.total_pages
            yield page, total
            if total is not None and not worth_listing(total - listing.pages, reads_instead()):
                return
    except FwprepError:
        return
