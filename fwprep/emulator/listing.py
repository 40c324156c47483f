"""The emulator's ListModels: pages of an account's models, as the contract describes them.

``pageSize`` defaults to 50 and is coerced to at most 200; ``pageToken`` is
opaque (an offset, bound to the call's other parameters, which every later
call must repeat); ``nextPageToken`` is absent on the last page; ``totalSize``
counts every matching model. ``orderBy`` may be ``name`` (ascending, the
default) or ``name desc``; ``readMask`` is accepted and every field returned.
The emulator does not evaluate ``filter`` expressions: a non-empty one is
refused, so a test cannot mistake an unfiltered listing for a filtered one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence

import attrs

from fwprep._protocol import MAX_PAGE_SIZE

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "ListingError", "PageRequest", "page_of"]

DEFAULT_PAGE_SIZE = 50


class ListingError(ValueError):
    """A ListModels call the emulator answers with 400 INVALID_ARGUMENT (the message says why)."""


@attrs.frozen
class PageRequest:
    """The parameters of one ListModels call, read from its query string."""

    page_size: int
    page_token: str
    order_by: str
    filter: str
    read_mask: str

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> PageRequest:
        """Read and check the query parameters.

        Raises:
            ListingError: a page size that is not a whole number >= 0, an
                order other than by name, or a filter.
        """
        raw_size = query.get("pageSize", "")
        try:
            size = int(raw_size) if raw_size else 0
        except ValueError:
            raise ListingError(f"pageSize must be a whole number, got {raw_size!r}") from None
        if size < 0:
            raise ListingError(f"pageSize must be >= 0, got {size}")
        order = " ".join(query.get("orderBy", "").split()).lower()
        if order not in ("", "name", "name asc", "name desc"):
            raise ListingError(f"orderBy {query['orderBy']!r}: the emulator orders by name only")
        if query.get("filter", "").strip():
            raise ListingError(
                "filter: the emulator does not evaluate filter expressions; select client-side"
            )
        return cls(
            page_size=min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
            page_token=query.get("pageToken", ""),
            order_by=order,
            filter=query.get("filter", ""),
            read_mask=query.get("readMask", ""),
        )

    def fingerprint(self) -> str:
        """What a page token is bound to: every parameter but the token."""
        text = "\n".join((str(self.page_size), self.order_by, self.filter, self.read_mask))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"offset": offset, "call": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _offset(token: str, fingerprint: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset, call = data["offset"], data["call"]
    except (ValueError, KeyError, TypeError):
        raise ListingError(f"invalid pageToken {token!r}") from None
    if call != fingerprint:
        raise ListingError(
            "pageToken came from a call with other parameters: repeat every parameter "
            "of that call with its token"
        )
    if not isinstance(offset, int) or offset < 0:
        raise ListingError(f"invalid pageToken {token!r}")
    return int(offset)


def page_of(names: Sequence[str], call: PageRequest) -> tuple[list[str], str | None]:
    """The names on the page ``call`` asks for, and the next page's token (``None``: last).

    ``names`` are every model of the account, sorted by name.

    Raises:
        ListingError: an invalid token, or one from a call with other parameters.
    """
    fingerprint = call.fingerprint()
    start = _offset(call.page_token, fingerprint) if call.page_token else 0
    end = min(start + call.page_size, len(names))
    if call.order_by == "name desc":
        page = list(reversed(names[max(0, len(names) - end) : max(0, len(names) - start)]))
    else:
        page = list(names[start:end])
    token = _token(end, fingerprint) if end < len(names) else None
    return page, token
