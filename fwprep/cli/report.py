"""``fwprep report``: summarise one or more batch reports, merged (one per shard, say)."""

from __future__ import annotations

import argparse
import glob
import json
import os
from typing import Any

from fwprep.batch.journal import index_report
from fwprep.batch.report import ReportError, is_report
from fwprep.batch.status import UNFINISHED_STATUSES, WAITING_STATUSES, needs_attention
from fwprep.cli._common import exit_codes, plural, say
from fwprep.exit_codes import ExitCode


def add_parser(commands: Any) -> None:
    """Add ``report`` to the subcommands."""
    parser = commands.add_parser(
        "report",
        help="summarise one or more reports (merged, for sharded runs)",
        description="Summarise batch reports: the last record of each item, merged across "
        "the reports given (one per shard, say).",
        epilog="examples:\n"
        "  fwprep report models.csv.report.jsonl\n"
        "  fwprep report 'models.csv.shard-*.report.jsonl' -o json   # every shard, merged\n\n"
        "A pattern (*, ?, [...]) that names no file is expanded by fwprep itself.\n\n"
        + exit_codes(
            {
                ExitCode.OK: "every item ended ok, skipped or duplicate",
                ExitCode.FAILED: "some item failed, was invalid, never finished, or is still "
                "waiting",
                ExitCode.USAGE: "a report cannot be read, is not a fwprep report, or no report "
                "holds a record",
            }
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("reports", nargs="+", metavar="REPORT")
    parser.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="text or one JSON object"
    )
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    """Print the merged counts and the top errors; exit 1 unless the job is complete."""
    paths = reports(args.reports)
    contents = index_report(paths)
    for problem in contents.bad_lines[:20]:
        say(f"warning: {problem}")
    counts = contents.counts()
    errors = contents.errors()
    unfinished = sum(n for status, n in counts.items() if status in UNFINISHED_STATUSES)
    waiting = sum(n for status, n in counts.items() if status in WAITING_STATUSES)
    complete = not any(needs_attention(status) for status in counts)
    if args.output == "json":
        data = {
            "items": len(contents),
            "counts": dict(counts),
            "top_errors": [
                {"type": kind, "message": message, "count": n}
                for (kind, message), n in errors.most_common(5)
            ],
            "waiting": waiting,
            "unreadable_lines": len(contents.bad_lines),
            "complete": complete,
        }
        print(json.dumps(data, sort_keys=True))
    else:
        parts = ", ".join(f"{n} {status}" for status, n in counts.most_common())
        items = plural(len(contents), "item")
        print(f"{items} in {plural(len(paths), 'report')}: {parts}")
        for (kind, message), n in errors.most_common(5):
            print(f"  {n} x {kind}: {message}")
        if unfinished:
            print(f"  {unfinished} never finished (started or interrupted): run with --resume")
        if waiting:
            print(
                f"  {waiting} still waiting (accepted, precision not yet seen): "
                "run with --resume --wait to wait on them without preparing them again"
            )
    return ExitCode.OK if complete else ExitCode.FAILED


def reports(arguments: list[str]) -> list[str]:
    """The reports named: each path as given, a pattern that names no file expanded.

    Raises:
        ReportError: a pattern matches nothing; a file is not a fwprep report
            (a manifest, say); or no file holds a single record.
    """
    paths: list[str] = []
    for argument in arguments:
        if os.path.exists(argument) or not glob.has_magic(argument):
            paths.append(argument)
            continue
        matches = sorted(glob.glob(argument))
        if not matches:
            raise ReportError(f"no report matches {argument}")
        paths.extend(matches)
    empty = 0
    for path in paths:
        try:
            verdict = is_report(path)
        except OSError as exc:
            raise ReportError(f"cannot read the report {path}: {exc.strerror or exc}") from None
        if verdict is False:
            raise ReportError(f"{path} is not a fwprep report (its first line is no record)")
        empty += verdict is None
    if empty == len(paths):
        raise ReportError(f"no record in {' or '.join(paths)}: nothing to summarise")
    return paths
