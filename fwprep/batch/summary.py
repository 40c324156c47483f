"""What a batch did: counts per status, errors, requests, and its exit code."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

from fwprep.batch.failures import ErrorKey, error_groups
from fwprep.batch.report import Record
from fwprep.batch.status import FINAL_STATUSES, needs_attention
from fwprep.exit_codes import ExitCode

__all__ = ["BatchSummary"]


@attrs.define
class BatchSummary:
    """What a batch did, as the CLI prints it at the end.

    Attributes:
        counts: final records written in this run, per status.
        already_done: items skipped because the report says they are done.
        halted: why the batch stopped early (a refused key, too many
            failures, an unreadable manifest or report), if it did.
        interrupted: ``"SIGINT"`` or ``"SIGTERM"`` when a signal stopped it.
        errors: failures per (error type, API code, message); see
            :func:`~fwprep.batch.failures.error_groups`.
        requests: HTTP requests sent for prepares, retries included.
        reads: reads of models' state, for ``check`` and while waiting (list
            pages or single models; each one request of the account's
            budget, retries aside).
        waiting: items whose prepare was accepted and whose precision had
            not shown when the batch ended (``accepted`` in the report):
            ``--resume --wait`` waits on them without preparing them again.
        elapsed: seconds from start to end.
        report: the report's path, when there is one.
    """

    counts: Counter[str] = attrs.field(factory=Counter)
    already_done: int = 0
    halted: str | None = None
    interrupted: str | None = None
    errors: Counter[ErrorKey] = attrs.field(factory=Counter)
    requests: int = 0
    reads: int = 0
    waiting: int = 0
    elapsed: float = 0.0
    report: str | None = None

    @property
    def finished(self) -> int:
        """Items and rows with a final record in this run."""
        return sum(self.counts.values())

    @property
    def exit_code(self) -> ExitCode:
        """What the batch exits with (an ``int``); see :class:`~fwprep.ExitCode`.

        ``OK`` all done; ``FAILED`` some item failed, was invalid or is
        unfinished, or a ``stop`` event stopped the batch (items may be left
        undone); ``HALTED`` a refused key or ``max_failures``; ``SIGINT`` and
        ``SIGTERM`` the signals.
        """
        if self.interrupted == "SIGINT":
            return ExitCode.SIGINT
        if self.interrupted == "SIGTERM":
            return ExitCode.SIGTERM
        if self.halted is not None:
            return ExitCode.HALTED
        if self.interrupted is not None:
            return ExitCode.FAILED
        if self.waiting or any(n and needs_attention(s) for s, n in self.counts.items()):
            return ExitCode.FAILED
        return ExitCode.OK

    def add(self, record: Record, *, waited: bool = False) -> None:
        """Count one record: the requests it took and, if final, its status and error.

        An ``accepted`` record counts as one more item waiting; the final
        record that ends a wait (``waited``) counts one fewer.
        """
        if waited:
            self.waiting -= 1
        if record.attempts:
            self.requests += record.attempts
        if record.status == "accepted":
            self.waiting += 1
            return
        self.counts[record.status] += 1
        if record.status == "failed" and record.error is not None:
            error = record.error
            self.errors[(error.type, error.code, error.message)] += 1

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the summary."""
        return {
            "counts": {s: self.counts[s] for s in FINAL_STATUSES if self.counts[s]},
            "already_done": self.already_done,
            "halted": self.halted,
            "interrupted": self.interrupted,
            "top_errors": [group.to_json() for group in error_groups(self.errors)],
            "requests": self.requests,
            "reads": self.reads,
            "waiting": self.waiting,
            "elapsed_s": round(self.elapsed, 3),
            "rate_per_s": round(self.finished / self.elapsed, 1) if self.elapsed > 0 else None,
            "report": self.report,
            "exit_code": int(self.exit_code),
        }

    def lines(self) -> list[str]:
        """The summary as lines of text."""
        parts = [f"{self.counts[s]} {s}" for s in FINAL_STATUSES if self.counts[s]]
        rate = f" ({self.finished / self.elapsed:.1f}/s)" if self.elapsed > 0 else ""
        head = f"{self.finished} finished in {self.elapsed:.1f} s{rate}"
        out = [head + (": " + ", ".join(parts) if parts else "")]
        if self.waiting:
            out.append(
                f"{self.waiting} still waiting (accepted, precision not yet seen): "
                "rerun with --resume --wait to wait on them without preparing them again"
            )
        if self.reads:
            out.append(f"{self.reads} reads of model state ({self.requests} prepare requests)")
        if self.already_done:
            out.append(f"{self.already_done} already done according to the report (skipped)")
        out += [f"  {group.line()}" for group in error_groups(self.errors)]
        if self.halted:
            out.append(f"halted: {self.halted}")
        if self.interrupted:
            out.append(f"interrupted by {self.interrupted}; rerun with --resume to finish")
        if self.report:
            out.append(f"report: {self.report}")
        return out
