"""``fwprep models``: list an account's models, choose some, print a table or a manifest."""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from fwprep.cli._common import (
    account,
    add_connection,
    exit_codes,
    open_client,
    plural,
    positive_int,
    precision,
    say,
)
from fwprep.errors import ApiError, ConfigError, TransportError
from fwprep.exit_codes import ExitCode
from fwprep.models import Model

KINDS = (
    "KIND_UNSPECIFIED",
    "HF_BASE_MODEL",
    "HF_PEFT_ADDON",
    "HF_TEFT_ADDON",
    "FLUMINA_BASE_MODEL",
    "FLUMINA_ADDON",
    "DRAFT_ADDON",
    "FIRE_AGENT",
    "LIVE_MERGE",
    "CUSTOM_MODEL",
    "EMBEDDING_MODEL",
    "SNAPSHOT_MODEL",
)
"""Model kinds ``--kind`` knows (the API's, as of SDK 1.2.30)."""

STATES = ("STATE_UNSPECIFIED", "UPLOADING", "READY")
"""Model states ``--state`` knows (the API's)."""

_EPILOG = """output:
  table (the default on a terminal): model id, kind, state, precisions.
  csv (the default when piped) and jsonl: one model a row with its full name in
  'model', plus kind, state and supported_precisions; both are fwprep manifests.

examples:
  fwprep models --emulate                            # the demo account's models
  fwprep models --kind hf-peft-addon --state ready --missing fp8
  fwprep models --missing fp8 -o csv | fwprep batch - -p fp8 --wait
  fwprep models --match 'llama-*' --limit 20
  fwprep models --filter 'create_time > timestamp("2026-01-01T00:00:00Z")'

"""

_EXIT_CODES = exit_codes(
    {
        ExitCode.OK: "the listing went through to its end (or to --limit)",
        ExitCode.FAILED: "the listing failed part-way (what was printed stays printed)",
        ExitCode.USAGE: "usage or configuration error: nothing was listed",
    }
)


def add_parser(commands: Any) -> None:
    """Add ``models`` to the subcommands."""
    parser = commands.add_parser(
        "models",
        help="list an account's models, choose some, print a table or a manifest",
        description="List every model of an account, page after page (one request a page of "
        "200), keep those the options choose, and print them as they come.",
        epilog=_EPILOG + _EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--filter", metavar="EXPR", help="an AIP-160 filter, sent to the server as written")
    add(
        "--kind",
        action="append",
        type=_one_of(KINDS, "kind"),
        default=[],
        metavar="KIND",
        help="only models of this kind (hf-peft-addon, any case); repeat for several",
    )
    add(
        "--state",
        action="append",
        type=_one_of(STATES, "state"),
        default=[],
        metavar="STATE",
        help="only models in this state (ready, uploading); repeat for several",
    )
    add("--missing", type=precision, metavar="P", help="only models not prepared for P")
    add("--has", type=precision, metavar="P", help="only models prepared for P")
    add("--match", metavar="GLOB", help="only models whose id matches GLOB ('llama-*')")
    add("--limit", type=positive_int, metavar="N", help="stop after N models")
    add(
        "-o",
        "--output",
        choices=("table", "csv", "jsonl", "json"),
        help="table, csv or jsonl (json: the same as jsonl, one object a line)",
    )
    add_connection(parser)
    parser.set_defaults(handler=run)


def _one_of(known: tuple[str, ...], what: str) -> Callable[[str], str]:
    """An argparse type: one of ``known``, in any case, ``-`` for ``_``."""

    def parse(text: str) -> str:
        value = text.strip().upper().replace("-", "_")
        if value not in known:
            raise argparse.ArgumentTypeError(f"unknown {what} {text!r}; known: {', '.join(known)}")
        return value

    return parse


def selection(args: argparse.Namespace) -> Callable[[Model], bool]:
    """Whether a model passes ``--kind``, ``--state``, ``--missing``, ``--has`` and ``--match``."""
    kinds, states = set(args.kind), set(args.state)
    pattern = args.match.lower() if args.match else None

    def chosen(model: Model) -> bool:
        if kinds and (model.kind or "KIND_UNSPECIFIED") not in kinds:
            return False
        if states and model.state not in states:
            return False
        if args.missing is not None and model.has_precision(args.missing):
            return False
        if args.has is not None and not model.has_precision(args.has):
            return False
        return pattern is None or fnmatch.fnmatchcase(model.name.rsplit("/", 1)[-1], pattern)

    return chosen


async def run(args: argparse.Namespace) -> int:
    """List, choose and print; exit 1 if the listing fails part-way."""
    output = args.output or ("table" if sys.stdout.isatty() else "csv")
    output = "jsonl" if output == "json" else output
    account_id = account(args)
    if account_id is None:
        raise ConfigError("no account to list: pass -a ACCOUNT or set FIREWORKS_ACCOUNT_ID")
    chosen = selection(args)
    if sys.stdout is None:
        raise ConfigError("standard output is closed: nowhere to print the models")
    out = _Printer(output, sys.stdout)
    seen = 0
    try:
        async with open_client(args) as client:
            listing = client.list_models(account_id, filter=args.filter)
            async for model in listing:
                seen += 1
                if chosen(model):
                    out.add(model)
                    if args.limit is not None and out.count >= args.limit:
                        break
            out.close()
    except (ApiError, TransportError) as exc:
        out.close(complete=False)
        say(f"error: the listing failed after {plural(out.count, 'model')} printed: {exc}")
        return ExitCode.FAILED
    total = listing.total_size if listing.total_size is not None else seen
    say(f"{plural(out.count, 'model')} of {total} in {account_id}")
    return ExitCode.OK


class _Printer:
    """Prints models as they come: CSV or JSON Lines rows, or a table a screenful at a time."""

    def __init__(self, output: str, stream: TextIO) -> None:
        self.output = output
        self.stream = stream
        self.count = 0
        self._pending: list[Model] = []
        self._csv = csv.writer(stream, lineterminator="\n") if output == "csv" else None

    def _header(self) -> None:
        if self._csv is not None:
            self._csv.writerow(["model", "kind", "state", "supported_precisions"])

    def add(self, model: Model) -> None:
        if not self.count:
            self._header()
        self.count += 1
        kind = model.kind or "KIND_UNSPECIFIED"
        precisions = list(model.supported_precisions or model.precisions)
        if self._csv is not None:
            self._csv.writerow([model.name, kind, model.state, " ".join(precisions)])
        elif self.output == "jsonl":
            row = {"model": model.name, "kind": kind, "state": model.state}
            self.stream.write(json.dumps({**row, "supported_precisions": precisions}) + "\n")
        else:
            self._pending.append(model)
            if len(self._pending) >= 50:
                self._table()

    def close(self, *, complete: bool = True) -> None:
        """Print what is pending; a complete listing with no model still prints the CSV header.

        (An empty manifest with its header is a batch of nothing; a failed listing prints
        nothing it has not printed already.)
        """
        if complete and not self.count:
            self._header()
        if self._pending:
            self._table()
        self.stream.flush()

    def _table(self) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, show_header=self.count <= len(self._pending), pad_edge=False)
        table.add_column("model", width=34, overflow="fold")
        table.add_column("kind", width=14, overflow="fold")
        table.add_column("state", width=9, overflow="fold")
        table.add_column("precisions", min_width=15, overflow="fold")
        for model in self._pending:
            precisions = model.supported_precisions or model.precisions
            kind = model.kind or "KIND_UNSPECIFIED"
            table.add_row(model.name.rsplit("/", 1)[-1], kind, model.state, " ".join(precisions))
        Console(file=self.stream, highlight=False).print(table)
        self._pending.clear()
