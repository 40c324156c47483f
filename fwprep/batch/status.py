"""The statuses an item's report records go through, and what each one means.

One place for the rules, used by the report, the runner's exit code, the
progress display and ``fwprep report``, so a new status is one edit here.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "DONE_STATUSES",
    "FAILED_STATUSES",
    "FINAL_STATUSES",
    "ROW_STATUSES",
    "STATUSES",
    "UNFINISHED_STATUSES",
    "WAITING_STATUSES",
    "RecordStatus",
    "needs_attention",
]

RecordStatus = Literal[
    "started", "accepted", "ok", "failed", "invalid", "duplicate", "skipped", "interrupted"
]
"""The states an item's records go through."""

STATUSES: tuple[RecordStatus, ...] = get_args(RecordStatus)
"""Every status, in a fixed order: a report's reader keeps each as its position here."""

FINAL_STATUSES: tuple[RecordStatus, ...] = (
    "ok",
    "skipped",
    "failed",
    "invalid",
    "duplicate",
    "interrupted",
)
"""Every status that ends an item (or a manifest row), in the order summaries list them."""

DONE_STATUSES: frozenset[str] = frozenset({"ok", "skipped"})
"""A key whose last record has one of these needs no more work: ``--resume`` skips it."""

ROW_STATUSES: frozenset[str] = frozenset({"invalid", "duplicate"})
"""Records about a manifest row (``source:line``), not about the item it names."""

FAILED_STATUSES: frozenset[str] = frozenset({"failed", "invalid"})
"""The item, or the row naming it, failed."""

UNFINISHED_STATUSES: frozenset[str] = frozenset({"started", "interrupted"})
"""The item began but did not end: a resumed run does it again."""

WAITING_STATUSES: frozenset[str] = frozenset({"accepted"})
"""The server accepted the item's prepare and the batch waits for the precision to show.

A resumed run with ``wait`` goes straight back to waiting on such an item,
with no second prepare; one without ``wait`` counts it as done (accepting the
prepare is all such a batch asks of the server).
"""


def needs_attention(status: str) -> bool:
    """Whether a status means the job is not complete: a failure, or an item left unfinished.

    A batch with any such record exits 1, and ``fwprep report`` says it is
    not complete; an item still waiting (``accepted``) is not complete either.
    """
    return status in FAILED_STATUSES or status in UNFINISHED_STATUSES or status in WAITING_STATUSES
