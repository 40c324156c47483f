"""What fwprep exits with: one set of codes for the library's batches and every command."""

from __future__ import annotations

import enum

__all__ = ["ExitCode"]


class ExitCode(enum.IntEnum):
    """The exit code of a batch (:attr:`fwprep.BatchSummary.exit_code`) and of each command.

    An ``int``: ``sys.exit(summary.exit_code)`` exits with it, and JSON shows
    the number. A scheduler can tell "retry later" (``HALTED``, the signals)
    from "fix the input" (``USAGE``) from "look at the report" (``FAILED``).
    """

    OK = 0
    """Every item succeeded or was already done."""
    FAILED = 1
    """Some item failed, was invalid or is unfinished (still waiting, stopped)."""
    USAGE = 2
    """A usage or configuration error, or unreadable input: nothing was sent."""
    HALTED = 3
    """Halted: the API refused the key (401/403), or ``max_failures`` was reached."""
    SIGINT = 130
    """Interrupted by Ctrl-C."""
    SIGTERM = 143
    """Interrupted by SIGTERM."""
