"""Every model of an account, page after page: :class:`ModelListing`.

``FireworksClient.list_models`` returns one. Each page is one request of the
account's budget and carries up to 200 models, so reading the state of many
models this way costs up to 200 times fewer requests than one read each.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

from fwprep._convert import describe_structure_error, structure_model
from fwprep._protocol import MAX_PAGE_SIZE
from fwprep.errors import UnexpectedResponseError
from fwprep.models import Model

__all__ = ["ModelListing"]

PageFetcher = Callable[[str | None], Awaitable[bytes]]
"""Fetches the page a token names (``None``: the first) and returns its raw JSON body."""


class ModelListing:
    """The models of one account, fetched a page at a time as you iterate.

    An async iterator of :class:`~fwprep.Model`; the next page is requested
    only when the models of the previous one have been taken, so memory
    stays flat however large the account::

        listing = client.list_models(filter='kind="HF_PEFT_ADDON"')
        async for model in listing:
            print(model.name, model.supported_precisions)
        print(listing.pages, "pages,", listing.total_size, "models")

    Attributes:
        account_id: the account being listed.
        pages: pages received so far (each one request).
        listed: models yielded so far.
        total_size: the server's count of matching models, from the latest
            page (``None`` until the first page, or if the server omits it).
        page_size: the models a page holds (at most 200, as the server
            coerces larger sizes).

    Iterating raises what the request raised (an :class:`~fwprep.ApiError`
    or :class:`~fwprep.TransportError`, after any retries), or
    :class:`~fwprep.UnexpectedResponseError` when a page is malformed, or
    when the server sends a page token it sent before, or an empty page that
    names a next one: the listing stops there instead of looping.
    """

    def __init__(self, account_id: str, fetch: PageFetcher, page_size: int = MAX_PAGE_SIZE) -> None:
        self.account_id = account_id
        self.page_size = min(page_size, MAX_PAGE_SIZE)
        self.pages = 0
        self.listed = 0
        self.total_size: int | None = None
        self._fetch = fetch
        self._buffer: deque[Model] = deque()
        self._next_token: str | None = None
        self._seen_tokens: set[str] = set()
        self._done = False

    def __repr__(self) -> str:
        return (
            f"ModelListing(account_id={self.account_id!r}, pages={self.pages}, "
            f"listed={self.listed}, total_size={self.total_size})"
        )

    @property
    def total_pages(self) -> int | None:
        """The pages (requests) the whole listing takes, once ``total_size`` is known."""
        if self.total_size is None:
            return None
        return math.ceil(self.total_size / self.page_size)

    def __aiter__(self) -> AsyncIterator[Model]:
        return self

    async def __anext__(self) -> Model:
        while not self._buffer:
            if self._done:
                raise StopAsyncIteration
            await self._next_page()
        self.listed += 1
        return self._buffer.popleft()

    async def by_page(self) -> AsyncIterator[list[Model]]:
        """The models a page at a time, for a reader that may stop between pages.

        Each list is one page, one request; the next page is requested only
        when the loop asks for it, so breaking out costs nothing more. Use it
        or iterate model by model, not both on one listing.
        """
        while self._buffer or not self._done:
            if not self._buffer:
                await self._next_page()
            page = list(self._buffer)
            self._buffer.clear()
            self.listed += len(page)
            if page:
                yield page

    async def _next_page(self) -> None:
        body = await self._fetch(self._next_token)
        self.pages += 1
        models, token, total = self._parse(body)
        if total is not None:
            self.total_size = total
        self._buffer.extend(models)
        if not token:
            self._done = True
            return
        if token in self._seen_tokens:
            self._fail(f"page {self.pages} named a page token the server had sent before")
        if not models:
            self._fail(f"page {self.pages} held no model yet named a next page")
        self._seen_tokens.add(token)
        self._next_token = token

    def _fail(self, why: str) -> NoReturn:
        self._done = True
        self._buffer.clear()
        raise UnexpectedResponseError(
            200,
            f"listing the models of {self.account_id} stopped after {self.listed} models: "
            f"{why}, so it would never end",
        )

    def _parse(self, body: bytes) -> tuple[list[Model], str | None, int | None]:
        try:
            data: Any = json.loads(body)
        except ValueError as exc:
            self._fail_malformed(f"invalid JSON ({exc})")
        if not isinstance(data, dict):
            self._fail_malformed(f"expected a JSON object, got {type(data).__name__}")
        raw_models = data.get("models") or []
        token = data.get("nextPageToken")
        total = data.get("totalSize")
        if not isinstance(raw_models, list) or not isinstance(token, str | None):
            self._fail_malformed("models must be a list and nextPageToken a string")
        try:
            models = [structure_model(raw) for raw in raw_models]
        except Exception as exc:
            self._fail_malformed(describe_structure_error(exc))
        if isinstance(total, str) and total.isdigit():
            total = int(total)  # int32 fields may come as JSON strings
        return models, token, total if isinstance(total, int) else None

    def _fail_malformed(self, why: str) -> NoReturn:
        self._done = True
        raise UnexpectedResponseError(
            200, f"page {self.pages} of the models of {self.account_id} came back malformed: {why}"
        )
