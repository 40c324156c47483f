"""Failures grouped by error type and API code: one rule for run summaries and ``fwprep report``."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

__all__ = ["ErrorGroup", "ErrorKey", "error_groups"]

ErrorKey = tuple[str, str | None, str]
"""One failure as it is counted: (error type, API code or ``None``, message)."""


@attrs.frozen
class ErrorGroup:
    """Failures of one error type and API code, however their messages differ.

    Attributes:
        type: the error's class name (``NotFoundError``).
        code: the API's code (``NOT_FOUND``), when the answer carried one.
        count: how many items failed so.
        message: the most frequent message of the group.
        messages: how many different messages the group holds.
    """

    type: str
    code: str | None
    count: int
    message: str
    messages: int

    def line(self) -> str:
        """``30 x FailedPreconditionError (FAILED_PRECONDITION): model is still uploading``."""
        kind = f"{self.type} ({self.code})" if self.code else self.type
        text = self.message
        if self.messages > 1:
            text = f"{self.messages} different messages, such as: {text}"
        return f"{self.count} x {kind}: {text}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the group."""
        return attrs.asdict(self)


def error_groups(errors: Counter[ErrorKey], limit: int | None = 5) -> list[ErrorGroup]:
    """The failures grouped by (type, code), largest group first, at most ``limit`` groups."""
    groups: dict[tuple[str, str | None], Counter[str]] = {}
    for (kind, code, message), n in errors.items():
        groups.setdefault((kind, code), Counter())[message] += n
    found = [
        ErrorGroup(kind, code, sum(messages.values()), messages.most_common(1)[0][0], len(messages))
        for (kind, code), messages in groups.items()
    ]
    found.sort(key=lambda g: (-g.count, g.type, g.code or ""))
    return found if limit is None else found[:limit]
