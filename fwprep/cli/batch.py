"""``fwprep batch``: prepare every item of one or more manifests, with a report of each."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fwprep.batch.admit import Shard
from fwprep.batch.estimate import AccountEstimate, estimate, human_duration
from fwprep.batch.manifest import FORMATS, InvalidRow, Manifest, ManifestError
from fwprep.batch.progress import Progress
from fwprep.batch.report import Record
from fwprep.batch.runner import DEFAULT_GRACE, BatchOptions, BatchRunner
from fwprep.batch.session import (
    chain_entries,
    default_report_path,
    open_batch,
    open_manifests,
    plan_manifests,
    resumed_from,
)
from fwprep.batch.status import DONE_STATUSES, WAITING_STATUSES
from fwprep.cli._common import (
    ENVIRONMENT,
    EXIT_CODES,
    account,
    add_connection,
    add_poll_interval,
    completes_files,
    duration,
    open_client,
    plural,
    poll_interval,
    positive_duration,
    positive_float,
    positive_int,
    precision,
    say,
    show_duration,
)
from fwprep.client import DEFAULT_MAX_CONCURRENCY, DEFAULT_WAIT_TIMEOUT
from fwprep.exit_codes import ExitCode
from fwprep.limits import LEAST_BUDGET_RPM, MOST_BUDGET_RPM, AdaptiveRateLimiter

_EPILOG = """manifests:
  CSV with a header (model, precision, read_mask), JSON Lines with the same keys,
  TOML with [[prepare]] tables (precision or precisions = [...]), or plain text
  (.txt: one model a line, # comments). '-' reads standard input (CSV unless
  --format says otherwise). A row with no precision takes each -p given (one item
  per precision); with no -p, the API chooses.

examples:
  fwprep batch batch_examples/quickstart.csv --emulate
  fwprep models --missing fp8 -o csv | fwprep batch - -p fp8 --wait
  fwprep batch models.txt -p fp8 -p fp4     # every model listed, at two precisions
  fwprep batch models.csv -j 32 --max-rps 90 --report run.jsonl
  fwprep batch models.csv --resume           # after a crash or Ctrl-C: finish the job
  fwprep batch models.toml --check --wait --wait-timeout 45m
  fwprep batch models.csv --shard auto       # one shard per Slurm/Kubernetes task

"""


def add_parser(commands: Any) -> None:
    """Add ``batch`` to the subcommands."""
    parser = commands.add_parser(
        "batch",
        help="prepare every item of one or more manifests",
        description="Prepare every (model, precision) item of one or more manifests, "
        "concurrently, with a report that records each item.",
        epilog=_EPILOG + EXIT_CODES + "\n" + ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    _add_manifests(parser)
    completes_files(
        add(
            "--report",
            metavar="PATH",
            help="the report (JSON Lines); default: <first>.report.jsonl",
        )
    )
    _add_pace(parser)
    add("--resume", action="store_true", help="skip items the report already has as ok")
    add(
        "--dry-run", action="store_true", help="check the manifests and show the plan; send nothing"
    )
    _add_state_reads(parser)
    add("--strict", action="store_true", help="send nothing if any manifest row is invalid")
    add("--max-failures", type=positive_int, metavar="N", help="halt after N failed items")
    add("--shard", metavar="K/N", help="run shard K of N (1-based), or 'auto' (Slurm, Kubernetes)")
    add(
        "--grace",
        type=duration,
        default=DEFAULT_GRACE,
        metavar="D",
        help="after Ctrl-C or SIGTERM, time for requests in flight "
        f"(default: {show_duration(DEFAULT_GRACE)})",
    )
    add("-q", "--quiet", action="store_true", help="no progress display")
    add(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="the summary as text on stderr (default), or one JSON object on stdout",
    )
    add_connection(parser)
    parser.set_defaults(handler=run)


def _add_state_reads(parser: argparse.ArgumentParser) -> None:
    """Reading models' state: before preparing (--check) and after (--wait)."""
    add = parser.add_argument
    add(
        "--check",
        action="store_true",
        help="read each model's state first (list pages when cheaper); precisions it "
        "already has are recorded as skipped",
    )
    add(
        "--wait",
        action="store_true",
        help="wait until each accepted preparation shows on its model (accepted items wait "
        "in one set, read in rounds, and hold no slot)",
    )
    add(
        "--wait-timeout",
        type=positive_duration,
        default=DEFAULT_WAIT_TIMEOUT,
        metavar="D",
        help="how long each --wait may take from its acceptance "
        f"(default: {show_duration(DEFAULT_WAIT_TIMEOUT)})",
    )
    add_poll_interval(
        parser,
        "--wait reads an item at first (then less often, down to once a minute)",
    )


def _add_manifests(parser: argparse.ArgumentParser) -> None:
    """What to read: the manifests, their format, and the precisions for rows that name none."""
    completes_files(
        parser.add_argument("manifests", nargs="+", metavar="MANIFEST", help="manifest files, or -")
    )
    parser.add_argument("--format", choices=(*FORMATS, "ndjson"), help="manifest format")
    parser.add_argument(
        "-p",
        "--precision",
        dest="precisions",
        action="append",
        type=precision,
        default=[],
        metavar="P",
        help="the precision for rows that name none; repeat for one item per precision "
        "(rows that name one keep it)",
    )


def _add_pace(parser: argparse.ArgumentParser) -> None:
    """How fast a batch sends: requests in flight, and a fixed rate (per second or per minute)."""
    parser.add_argument(
        "-j",
        "--concurrency",
        type=positive_int,
        default=DEFAULT_MAX_CONCURRENCY,
        metavar="N",
        help=f"requests in flight at once (default: {DEFAULT_MAX_CONCURRENCY})",
    )
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument(
        "--max-rps",
        type=positive_float,
        metavar="R",
        help="send at most R requests a second (default: adapt to the server's 429s)",
    )
    rate.add_argument(
        "--max-rpm",
        type=positive_float,
        metavar="N",
        help="send at most N requests a minute, as Fireworks states its limits",
    )
    rate.add_argument(
        "--shared",
        action="store_true",
        help="other processes use the account's budget at the same time (other jobs); "
        "--shard K/N with N > 1 implies it",
    )


def _spool_stdin(paths: list[str]) -> tuple[list[str], list[str]]:
    """Copy standard input to a temporary file so it can be read twice; return paths, temps."""
    if "-" not in paths:
        return paths, []
    if sys.stdin is None:
        raise ManifestError("-: standard input is closed; nothing to read")
    with tempfile.NamedTemporaryFile("wb", suffix=".stdin", delete=False) as spool:
        try:
            shutil.copyfileobj(sys.stdin.buffer, spool)
        except OSError as exc:
            spool.close()
            os.unlink(spool.name)
            raise ManifestError(f"-: cannot keep standard input for --strict: {exc}") from None
    return [spool.name if p == "-" else p for p in paths], [spool.name]


async def run(args: argparse.Namespace) -> int:
    """Plan (``--dry-run``) or run the batch; return its exit code."""
    shard = Shard.parse(args.shard) if args.shard else None
    report_path = Path(args.report) if args.report else default_report_path(args.manifests, shard)
    paths, temporary = _spool_stdin(list(args.manifests)) if args.strict else (args.manifests, [])
    try:
        if args.dry_run:
            return await _dry_run(args, paths, shard, report_path)
        if args.strict and not _strict_check(paths, args):
            return ExitCode.USAGE
        return await _run(args, paths, shard, report_path)
    finally:
        for name in temporary:
            os.unlink(name)


def _strict_check(paths: list[str], args: argparse.Namespace) -> bool:
    """Read every row first; print the invalid ones. True when there are none."""
    bad = 0
    with open_manifests(paths, args.format, account(args), args.precisions) as manifests:
        for entry in chain_entries(manifests):
            if isinstance(entry, InvalidRow):
                bad += 1
                say(str(entry))
    if bad:
        say(f"error: --strict: {plural(bad, 'invalid row')}; nothing was sent")
    return bad == 0


def _precisions_unused(args: argparse.Namespace, manifests: list[Manifest]) -> None:
    """Say so when ``-p`` was given and every valid row read named its own precision.

    A manifest with no valid row says nothing: ``-p`` had nothing to change.
    """
    named = any(manifest.named for manifest in manifests)
    if args.precisions and named and not any(manifest.unnamed for manifest in manifests):
        given = " ".join(f"-p {p.value}" for p in args.precisions)
        say(f"warning: {given} changed nothing: every valid row names its precision")


async def _dry_run(
    args: argparse.Namespace, paths: list[str], shard: Shard | None, report_path: Path
) -> int:
    """The plan a run would make: the same admission over the same journal index."""
    plan, manifests = await plan_manifests(
        paths,
        format=args.format,
        account=account(args),
        precisions=args.precisions,
        shard=shard,
        resumed=resumed_from(report_path) if args.resume else None,
        wait=args.wait,
    )
    _precisions_unused(args, manifests)
    for problem in plan.invalid:
        say(problem)
    data = {
        "dry_run": True,
        "to_send": plan.to_send,
        "per_precision": dict(plan.per_precision),
        "duplicates": plan.duplicates,
        "invalid": len(plan.invalid),
        "already_done": plan.already_done,
        "to_wait": plan.to_wait,
        "shard": str(shard) if shard else None,
        "error": plan.read_error,
    }
    budgets = _budgets(args)
    accounts = estimate(plan, [rpm for rpm, _ in budgets], check=args.check)
    data["accounts"] = {a.account: a.to_json() for a in accounts}
    data["budgets_rpm"] = {f"{rpm:g}": label for rpm, label in budgets}
    data["wait_seconds"] = "unknown" if args.wait else None
    if args.output == "json":
        print(json.dumps(data, sort_keys=True))
    else:
        where = f" (shard {shard})" if shard else ""
        print(f"would prepare {plural(plan.to_send, 'item')}{where}; nothing was sent")
        for precision, count in sorted(plan.per_precision.items()):
            print(f"  {count:>8}  {precision}")
        for label, count in (
            ("duplicates (would run once)", plan.duplicates),
            ("invalid rows", len(plan.invalid)),
            ("already done (--resume)", plan.already_done),
            ("accepted, to wait on (--resume --wait)", plan.to_wait),
        ):
            if count:
                print(f"  {count:>8}  {label}")
        for line in _time_lines(accounts, budgets, wait=args.wait):
            print(line)
    if plan.read_error:
        say(f"error: {plan.read_error}")
        return ExitCode.USAGE
    return ExitCode.FAILED if plan.invalid else ExitCode.OK


def _budgets(args: argparse.Namespace) -> list[tuple[float, str]]:
    """The budgets to time the plan at, requests a minute, each with what it is."""
    if args.max_rpm is not None:
        return [(args.max_rpm, "--max-rpm")]
    if args.max_rps is not None:
        return [(args.max_rps * 60.0, "--max-rps")]
    return [
        (LEAST_BUDGET_RPM, "the least budget Fireworks documents"),
        (MOST_BUDGET_RPM, "the most"),
    ]


def _time_lines(
    accounts: list[AccountEstimate], budgets: list[tuple[float, str]], *, wait: bool
) -> list[str]:
    """The plan's requests and least wall time, account by account."""
    lines = []
    for a in accounts:
        reads = ""
        if a.check_reads is not None:
            low, high = a.check_reads
            span = plural(high, "read") if low == high else f"{low} to {high} reads"
            reads = f", and {span} (--check)"
        waits = f", {a.waits} to wait on" if a.waits else ""
        lines.append(f"account {a.account}: {plural(a.prepares, 'prepare')}{reads}{waits}")
        for rpm, label in budgets:
            took = human_duration(a.least_seconds[rpm])
            lines.append(f"  at least {took} at {rpm:g} requests a minute ({label})")
    if accounts:
        lines.append("  (if the run has the account's budget to itself)")
    if wait:
        lines.append("--wait adds the preparations' own time, which no plan knows, and its reads")
    return lines


def _options(args: argparse.Namespace, shard: Shard | None) -> BatchOptions:
    return BatchOptions(
        check=args.check,
        wait=args.wait,
        wait_timeout=args.wait_timeout,
        poll_interval=poll_interval(args),
        max_failures=args.max_failures,
        shard=shard,
        concurrency=args.concurrency,
        grace=args.grace,
    )


def pace(args: argparse.Namespace, shard: Shard | None) -> dict[str, Any]:
    """The client's rate options: a fixed rate, or the adaptive limiter, alone or shared.

    Shards of one job (``--shard K/N``, N > 1) and ``--shared`` share the
    account's budget with other processes: their limiter is told so (see
    :class:`~fwprep.AdaptiveRateLimiter`'s ``shared``).
    """
    if args.max_rpm is not None:
        return {"max_rps": args.max_rpm / 60.0}
    if args.max_rps is not None:
        return {"max_rps": args.max_rps}
    if args.shared or (shard is not None and shard.count > 1):
        return {"limiter": AdaptiveRateLimiter(shared=True)}
    return {}


async def _run(
    args: argparse.Namespace, paths: list[str], shard: Shard | None, report_path: Path
) -> int:
    def connect() -> contextlib.AbstractAsyncContextManager[Any]:
        return open_client(args, max_concurrency=args.concurrency, **pace(args, shard))

    async with open_batch(
        paths,
        connect=connect,
        account_id=account(args),
        report=report_path,
        resume=args.resume,
        format=args.format,
        precisions=args.precisions,
        options=_options(args, shard),
        plan=not args.quiet and sys.stderr.isatty(),
    ) as batch:
        if batch.resumed is not None:
            for problem in batch.resumed.bad_lines[:10]:
                say(f"warning: {problem}")
            done = plural(batch.resumed.count(DONE_STATUSES), "item")
            accepted = batch.resumed.count(WAITING_STATUSES)
            verb = "to wait on" if args.wait else "counted as done (no --wait)"
            extra = f", {accepted} accepted {verb}" if accepted else ""
            say(f"--resume: {report_path} has {done} done already{extra}")
        progress = Progress(batch.plan.records if batch.plan else None, quiet=args.quiet)

        def on_record(record: Record) -> None:
            if record.status == "invalid" and record.error is not None and not args.quiet:
                say(record.error.message)
            progress(record)

        batch.runner.on_record = on_record
        with _signals(batch.runner, args.grace, lambda: _print_summary(args, batch.runner)):
            summary = await batch.runner.run(batch.entries)
        progress.close()
        _precisions_unused(args, batch.manifests)
    _print_summary(args, batch.runner)
    return summary.exit_code


def _print_summary(args: argparse.Namespace, runner: BatchRunner) -> None:
    if args.output == "json":
        print(json.dumps(runner.summary.to_json(), sort_keys=True), flush=True)
    else:
        for line in runner.summary.lines():
            say(line)


FORCE_EXIT_AFTER = 2.0
"""Seconds past the grace period after which a stopping batch exits whatever is still running."""


@contextlib.contextmanager
def _signals(
    runner: BatchRunner, grace: float, print_summary: Callable[[], None]
) -> Iterator[None]:
    """First SIGINT/SIGTERM: a graceful stop. Second: exit at once (the report is consistent).

    The end of the grace period ends the run: items in flight are cancelled
    then, and if a request ignores its cancellation (an HTTP library stuck on
    a stalled connection), :data:`FORCE_EXIT_AFTER` seconds later every item
    still in flight is recorded ``interrupted``, the report is fsync'd, the
    summary printed, and the process exits with the signal's code.
    """
    loop = asyncio.get_running_loop()

    def code(name: str) -> int:
        return ExitCode.SIGINT if name == "SIGINT" else ExitCode.SIGTERM

    def force_exit(name: str) -> None:
        say(f"requests still in flight {FORCE_EXIT_AFTER:g} s after the grace period: exiting")
        runner.abandon()
        print_summary()
        os._exit(code(name))

    def on_signal(name: str) -> None:
        if runner.summary.interrupted is not None:
            say(f"{name} again: exiting now")
            os._exit(code(name))
        say(
            f"{name}: sending nothing more; requests on the wire get {grace:g} s to finish "
            "(press Ctrl-C again to quit at once)"
        )
        runner.stop(name)
        timers.append(loop.call_later(grace + FORCE_EXIT_AFTER, force_exit, name))

    timers: list[asyncio.TimerHandle] = []
    installed = []
    for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, name)
            installed.append(sig)
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()
        for sig in installed:
            loop.remove_signal_handler(sig)
