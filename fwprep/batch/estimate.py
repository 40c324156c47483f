"""How long a planned batch takes at least, account by account, at a budget of requests a minute.

Fireworks documents an account's budget as 10 to 6,000 requests a minute
(:data:`~fwprep.limits.LEAST_BUDGET_RPM`, :data:`~fwprep.limits.MOST_BUDGET_RPM`),
shared by everything that uses the account. A plan's least wall time at a
budget is the time to its last request at that pace, the first sent at
once: what the budget allows, with the network, the server and retries
taking nothing (a deep bucket's burst aside). Waiting on preparations
(``--wait``) adds their own time, which no plan can know.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from fwprep._protocol import MAX_PAGE_SIZE
from fwprep.batch.admit import BatchPlan

__all__ = ["AccountEstimate", "estimate", "human_duration"]


@attrs.frozen
class AccountEstimate:
    """One account's share of a plan and the least time its budget allows.

    Attributes:
        account: the account id.
        prepares: prepare requests to send (one an item, retries aside).
        waits: items accepted before, to wait on without preparing again.
        check_reads: with ``--check``, the fewest and the most reads of the
            models' state before sending (list pages of 200 when the account
            holds few other models, one read an item at most); ``None`` without.
        least_seconds: per budget (requests a minute), the least wall time.
    """

    account: str
    prepares: int
    waits: int
    check_reads: tuple[int, int] | None
    least_seconds: dict[float, float]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (budgets as text keys, ``"600"`` for 600 a minute)."""
        return {
            "prepares": self.prepares,
            "waits": self.waits,
            "check_reads": list(self.check_reads) if self.check_reads else None,
            "least_seconds": {f"{rpm:g}": round(s, 3) for rpm, s in self.least_seconds.items()},
        }


def estimate(plan: BatchPlan, budgets: Sequence[float], *, check: bool) -> list[AccountEstimate]:
    """Each account of ``plan`` with its least wall time at each budget (requests a minute).

    The least time counts the prepares and the fewest ``--check`` reads.
    """
    found = []
    for account in sorted(plan.per_account.keys() | plan.waits_per_account.keys()):
        prepares = plan.per_account[account]
        reads = (math.ceil(prepares / MAX_PAGE_SIZE), prepares) if check and prepares else None
        requests = prepares + (reads[0] if reads else 0)
        least = {rpm: max(0, requests - 1) / rpm * 60.0 for rpm in budgets}
        found.append(
            AccountEstimate(account, prepares, plan.waits_per_account[account], reads, least)
        )
    return found


def human_duration(seconds: float) -> str:
    """``5h00m``, ``2m30s``, ``30s``, ``0.4s``: a wall time as a user reads it."""
    if seconds >= 3600:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours}h{rest:02d}m"
    if seconds >= 60:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes}m{rest:02d}s"
    return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
