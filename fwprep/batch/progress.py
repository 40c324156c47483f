"""Progress while a batch runs: a bar on a terminal, a status line every 10 s elsewhere."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any, TextIO

from fwprep.batch.report import Record
from fwprep.batch.status import FAILED_STATUSES, FINAL_STATUSES, WAITING_STATUSES

__all__ = ["Progress"]


class Progress:
    """Shows a batch's progress on stderr; feed it each record the batch passes on.

    Final records count as done; ``accepted`` ones (a prepare accepted, its
    precision awaited) are shown as waiting, until the final record that
    ends each wait.

    On a terminal it draws a rich progress bar (done/total, rate, ETA,
    failures so far); rich honours ``NO_COLOR``. Anywhere else (a log file, a
    CI job, a Kubernetes pod) it prints one status line every ``interval``
    seconds. ``quiet`` shows nothing.
    """

    def __init__(
        self,
        total: int | None,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        interval: float = 10.0,
        terminal: bool | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.quiet = quiet
        self.interval = interval
        self.counts: Counter[str] = Counter()
        self._waiting: set[str | None] = set()
        self._started = time.monotonic()
        self._last_line = self._started
        is_tty = self.stream.isatty() if terminal is None else terminal
        self._bar: Any = None
        self._task: Any = None
        if not quiet and is_tty:
            self._start_bar()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]fwprep[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}/s"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[failures]}"),
            console=Console(file=self.stream),
            transient=False,
        )
        self._task = self._bar.add_task("batch", total=self.total, rate="0.0", failures="")
        self._bar.start()

    def __call__(self, record: Record) -> None:
        """Count one record and refresh the display when due."""
        if record.status in WAITING_STATUSES:
            self._waiting.add(record.key)
        else:
            self.counts[record.status] += 1
            self._waiting.discard(record.key)
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.update(
                self._task, completed=self.done, rate=f"{self.rate:.1f}", failures=self.notes()
            )
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            print(f"fwprep: {self.status_line()}", file=self.stream, flush=True)

    def notes(self) -> str:
        """What the bar shows beside the count: ``2 failed, 1 invalid, 5 waiting``.

        Each status under its own name: an invalid manifest row is no failed
        preparation.
        """
        failed = (s for s in FINAL_STATUSES if s in FAILED_STATUSES and self.counts[s])
        notes = [f"{self.counts[s]} {s}" for s in failed]
        notes += [f"{self.waiting} waiting"] if self.waiting else []
        return ", ".join(notes)

    @property
    def waiting(self) -> int:
        """Items accepted whose precision has not shown yet."""
        return len(self._waiting)

    @property
    def done(self) -> int:
        """Records counted so far."""
        return sum(self.counts.values())

    @property
    def rate(self) -> float:
        """Records per second since the start."""
        elapsed = time.monotonic() - self._started
        return self.done / elapsed if elapsed > 0 else 0.0

    def status_line(self) -> str:
        """One line: done (of total), the counts, the rate."""
        of = f" of {self.total}" if self.total is not None else ""
        parts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts.items()))
        waiting = f", {self.waiting} waiting" if self.waiting else ""
        return f"{self.done}{of} done ({parts}){waiting} at {self.rate:.1f}/s"

    def close(self) -> None:
        """Stop drawing (the bar stays on screen)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
