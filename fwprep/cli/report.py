"""``fwprep report``: summarise one or more batch reports, merged (one per shard, say)."""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from fwprep.batch.failures import error_groups
from fwprep.batch.journal import ReportIndex, index_report
from fwprep.batch.report import Record, ReportError, is_report, last_records
from fwprep.batch.status import STATUSES, UNFINISHED_STATUSES, WAITING_STATUSES, needs_attention
from fwprep.cli._common import completes_files, exit_codes, plural, say
from fwprep.errors import InputError
from fwprep.exit_codes import ExitCode

COLUMNS = ("key", "status", "attempts", "http_status", "error_type", "error_code", "message")
"""The columns of ``--status``'s table and CSV (``key`` is ``source:line`` for a manifest row)."""


def add_parser(commands: Any) -> None:
    """Add ``report`` to the subcommands."""
    parser = commands.add_parser(
        "report",
        help="summarise one or more reports (merged, for sharded runs), or list items by status",
        description="Summarise batch reports: the last record of each item, merged across "
        "the reports given (one per shard, say). With --status, list the items whose last "
        "record has that status: which failed and why, or a manifest of them to run again.",
        epilog="examples:\n"
        "  fwprep report models.csv.report.jsonl\n"
        "  fwprep report 'models.csv.shard-*.report.jsonl' -o json   # every shard, merged\n"
        "  fwprep report run.jsonl --status failed                  # which failed, and why\n"
        "  fwprep report run.jsonl --status failed -o manifest > again.csv\n"
        "  fwprep batch again.csv                                   # run exactly those again\n\n"
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
    completes_files(parser.add_argument("reports", nargs="+", metavar="REPORT"))
    parser.add_argument(
        "-s",
        "--status",
        action="append",
        choices=STATUSES,
        metavar="STATUS",
        help=f"list the items whose last status is this (repeatable): {', '.join(STATUSES)}",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json", "csv", "jsonl", "manifest"),
        default="text",
        help="the summary as text or one JSON object; with --status, the items as a table, "
        "csv, jsonl, or a manifest (model,precision) for fwprep batch (-o manifest alone "
        "lists the failed items)",
    )
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    """Print the merged counts and the errors, or the items of some statuses; exit 1 unless done."""
    statuses = args.status or (["failed"] if args.output == "manifest" else None)
    if statuses is None and args.output not in ("text", "json"):
        raise InputError(f"-o {args.output} lists items: give --status (failed, say)")
    if statuses is not None and args.output == "json":
        raise InputError("with --status, -o is text, csv, jsonl or manifest")
    paths = reports(args.reports)
    contents = index_report(paths)
    for problem in contents.bad_lines[:20]:
        say(f"warning: {problem}")
    counts = contents.counts()  # one pass over the index, however many million items
    complete = not any(needs_attention(status) for status in counts)
    code = ExitCode.OK if complete else ExitCode.FAILED
    if statuses is None:
        summarise(args.output, paths, contents, counts, complete=complete)
        return code
    listed = last_records(paths, set(statuses), contents.status_of)
    LISTERS[args.output](list(listed.values()))
    return code


def summarise(
    output: str, paths: list[str], contents: ReportIndex, counts: Counter[str], *, complete: bool
) -> None:
    """The counts, the errors grouped by type and code, and what to do next."""
    groups = error_groups(contents.errors())
    unfinished = sum(n for status, n in counts.items() if status in UNFINISHED_STATUSES)
    waiting = sum(n for status, n in counts.items() if status in WAITING_STATUSES)
    if output == "json":
        data = {
            "items": len(contents),
            "counts": dict(counts),
            "top_errors": [group.to_json() for group in groups],
            "waiting": waiting,
            "unreadable_lines": len(contents.bad_lines),
            "complete": complete,
        }
        print(json.dumps(data, sort_keys=True))
        return
    parts = ", ".join(f"{n} {status}" for status, n in counts.most_common())
    print(f"{plural(len(contents), 'item')} in {plural(len(paths), 'report')}: {parts}")
    for group in groups:
        print(f"  {group.line()}")
    if counts["failed"]:
        print("  list them: fwprep report ... --status failed (-o manifest to run them again)")
    if unfinished:
        print(f"  {unfinished} never finished (started or interrupted): run with --resume")
    if waiting:
        print(
            f"  {waiting} still waiting (accepted, precision not yet seen): "
            "run with --resume --wait to wait on them without preparing them again"
        )


def row(record: Record) -> dict[str, Any]:
    """One listed item, column by column (see :data:`COLUMNS`)."""
    error = record.error
    return {
        "key": record.key if record.key is not None else record.identity,
        "status": record.status,
        "attempts": record.attempts,
        "http_status": record.http_status,
        "error_type": error.type if error else None,
        "error_code": error.code if error else None,
        "message": error.message if error else None,
    }


def list_table(records: list[Record]) -> None:
    """The items as an aligned table, the message last and whole."""
    rows = [["" if v is None else str(v) for v in row(r).values()] for r in records]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(COLUMNS)]
    for cells in [list(COLUMNS), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(cells[:-1], widths, strict=False)), cells[-1])
    say(f"{plural(len(records), 'item')}")


def list_csv(records: list[Record]) -> None:
    """The items as CSV, a header first."""
    writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(row(r) for r in records)


def list_jsonl(records: list[Record]) -> None:
    """The items as JSON lines, one object each (model, precision and source included)."""
    for r in records:
        data = row(r) | {"model": r.model, "precision": r.precision, "source": r.source}
        print(json.dumps(data | {"line": r.line}, sort_keys=True))


def list_manifest(records: list[Record]) -> None:
    """A manifest ``fwprep batch`` runs: ``model,precision`` for each item that names a model."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(("model", "precision"))
    rows = [r for r in records if r.model is not None]
    writer.writerows((r.model, r.precision or "") for r in rows)
    if len(rows) < len(records):
        left = len(records) - len(rows)
        say(f"{plural(left, 'manifest row')} named no model and cannot run again: fix at source")


LISTERS: dict[str, Callable[[list[Record]], None]] = {
    "text": list_table,
    "csv": list_csv,
    "jsonl": list_jsonl,
    "manifest": list_manifest,
}


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
