"""The ``fwprep`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

from fwprep._version import __version__
from fwprep.batch import (
    BatchRunner,
    Manifest,
    Record,
    ReportError,
    ReportWriter,
    chain_entries,
    default_report_path,
    open_manifests,
    read_report,
)
from fwprep.batch.manifest import InvalidRow
from fwprep.batch.progress import Progress
from fwprep.batch.runner import Shard
from fwprep.client import FireworksClient
from fwprep.errors import ConfigError, FwprepError, InputError
from fwprep.models import PrepareItem
from fwprep.names import ModelRef
from fwprep.precision import Precision
from fwprep.retry import RetryPolicy

__all__ = ["EXIT_CODES", "main", "parse_duration"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_HALTED = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

EXIT_CODES = f"""exit codes:
  {EXIT_OK}    every item succeeded (or was skipped as already done)
  {EXIT_FAILED}    some item failed or was invalid
  {EXIT_USAGE}    usage or configuration error, or an unreadable manifest: nothing was sent
  {EXIT_HALTED}    halted: the API refused the key (401/403) or --max-failures was reached
  {EXIT_SIGINT}  interrupted by Ctrl-C (SIGINT)
  {EXIT_SIGTERM}  interrupted by SIGTERM
"""

ENVIRONMENT = """environment:
  FIREWORKS_API_KEY     the API key (prefer it to --api-key, which other users can see in ps)
  FIREWORKS_ACCOUNT_ID  the account for bare model ids
  FIREWORKS_BASE_URL    the API root (default https://api.fireworks.ai)
  NO_COLOR              no colour in progress output
"""

_N = TypeVar("_N", int, float)

EMULATE_ACCOUNT = "demo"
EMULATE_PREPARE_DELAY = 1.0

_DURATION_RE = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str) -> float:
    """Read a duration such as ``90``, ``90s``, ``30m``, ``1h30m`` or ``2.5m`` as seconds.

    Raises:
        ValueError: when the text is not a duration.
    """
    compact = text.strip().lower().replace(" ", "")
    match = _DURATION_RE.fullmatch(compact)
    if not compact or match is None or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (examples: 45, 90s, 30m, 1h30m)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _checked(
    convert: Callable[[str], _N], ok: Callable[[_N], bool], rule: str, kind: str
) -> Callable[[str], _N]:
    """An argparse type: ``convert`` the text, then insist on ``ok``."""

    def parse(text: str) -> _N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{rule}, got {text}")
        return value

    return parse


_positive_int = _checked(int, lambda v: v >= 1, "must be at least 1", "a whole number")
_non_negative_int = _checked(int, lambda v: v >= 0, "must be 0 or more", "a whole number")
_positive_float = _checked(float, lambda v: v > 0, "must be more than 0", "a number")
_probability = _checked(
    float, lambda v: 0.0 <= v <= 1.0, "must be a probability from 0 to 1", "a number"
)


def _precision(text: str) -> Precision:
    try:
        return Precision.parse(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _latency(text: str) -> tuple[float, float | None]:
    low, sep, high = text.partition("-")
    try:
        values = (float(low), float(high) if sep else None)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a latency: {text!r} (examples: 20, or 10-50 for uniform)"
        ) from None
    if values[0] < 0 or (values[1] is not None and values[1] < values[0]):
        raise argparse.ArgumentTypeError(f"not a latency range: {text!r}")
    return values


class _Parser(argparse.ArgumentParser):
    """argparse, with exit code 2 and a one-line hint on errors."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_connection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "-a", "--account-id", help="account for bare model ids (default: $FIREWORKS_ACCOUNT_ID)"
    )
    group.add_argument("--api-key", help="API key (default: $FIREWORKS_API_KEY)")
    group.add_argument(
        "--base-url", help="API root (default: $FIREWORKS_BASE_URL or https://api.fireworks.ai)"
    )
    group.add_argument(
        "--emulate",
        action="store_true",
        help="run against a local Fireworks emulator started in this process; nothing is "
        "sent to Fireworks",
    )
    group.add_argument(
        "--timeout",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="seconds one request may take (default: 60)",
    )
    group.add_argument(
        "--retries",
        type=_non_negative_int,
        default=4,
        metavar="N",
        help="retries after a transient failure (default: 4)",
    )
    group.add_argument("-v", "--verbose", action="store_true", help="log each request to stderr")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``fwprep`` command."""
    parser = _Parser(
        prog="fwprep",
        description="Prepare Fireworks AI models for deployment precisions, one or in bulk.",
        epilog=EXIT_CODES + "\n" + ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fwprep {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    prepare = commands.add_parser(
        "prepare",
        help="prepare one model for a precision",
        description="Prepare one model for a precision (like firectl prepare-model).",
        epilog="examples:\n"
        "  fwprep prepare accounts/acme/models/ft-7 -p fp8 --wait\n"
        "  fwprep prepare ft-7 -a acme -p fp8 -o json\n"
        "  fwprep prepare my-model -p fp8 --wait --emulate\n\n" + EXIT_CODES + "\n" + ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_argument("model", help="accounts/ACCOUNT/models/MODEL, or a bare model id")
    prepare.add_argument(
        "-p",
        "--precision",
        type=_precision,
        help="FP8, fp8-mm, BF16, ... (default: leave it to the API)",
    )
    prepare.add_argument("--read-mask", help="the request's readMask field")
    prepare.add_argument(
        "--wait", action="store_true", help="wait until the precision shows on the model"
    )
    prepare.add_argument(
        "--wait-timeout",
        type=_duration,
        default=1800.0,
        metavar="D",
        help="how long --wait waits: 90s, 30m, 1h (default: 30m)",
    )
    prepare.add_argument(
        "--poll-interval",
        type=_duration,
        metavar="D",
        help="how often --wait reads the model (default: 5s; 0.25s with --emulate)",
    )
    prepare.add_argument(
        "--dry-run", action="store_true", help="check the input and show the request; send nothing"
    )
    prepare.add_argument("-o", "--output", choices=("text", "json"), default="text")
    _add_connection(prepare)

    batch = commands.add_parser(
        "batch",
        help="prepare every item of one or more manifests",
        description="Prepare every (model, precision) item of one or more manifests, "
        "concurrently, with a report that records each item.",
        epilog="manifests:\n"
        "  CSV with a header (model, precision, read_mask), JSON Lines with the same keys,\n"
        "  or TOML with [[prepare]] tables (precision or precisions = [...]).\n"
        "  '-' reads standard input (CSV unless --format says otherwise).\n\n"
        "examples:\n"
        "  fwprep batch batch_examples/quickstart.csv --emulate\n"
        "  fwprep batch models.csv -j 32 --max-rps 90 --report run.jsonl\n"
        "  fwprep batch models.csv --resume           # after a crash or Ctrl-C: finish the job\n"
        "  fwprep batch models.toml --check --wait --wait-timeout 45m\n"
        "  fwprep batch models.csv --shard auto       # one shard per Slurm/Kubernetes task\n\n"
        + EXIT_CODES
        + "\n"
        + ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument("manifests", nargs="+", metavar="MANIFEST", help="manifest files, or -")
    batch.add_argument(
        "--format", choices=("csv", "jsonl", "ndjson", "toml"), help="manifest format"
    )
    batch.add_argument(
        "--report",
        metavar="PATH",
        help="the report (JSON Lines); default: <first manifest>.report.jsonl",
    )
    batch.add_argument(
        "-j",
        "--concurrency",
        type=_positive_int,
        default=16,
        metavar="N",
        help="requests in flight at once (default: 16)",
    )
    batch.add_argument(
        "--max-rps",
        type=_positive_float,
        metavar="R",
        help="send at most R requests a second (default: adapt to the server's 429s)",
    )
    batch.add_argument(
        "--resume", action="store_true", help="skip items the report already has as ok"
    )
    batch.add_argument(
        "--dry-run", action="store_true", help="check the manifests and show the plan; send nothing"
    )
    batch.add_argument(
        "--check",
        action="store_true",
        help="read each model first; precisions it already has are recorded as skipped",
    )
    batch.add_argument(
        "--wait", action="store_true", help="after each prepare, wait until the model has it"
    )
    batch.add_argument(
        "--wait-timeout",
        type=_duration,
        default=1800.0,
        metavar="D",
        help="how long each --wait may take (default: 30m)",
    )
    batch.add_argument(
        "--poll-interval",
        type=_duration,
        metavar="D",
        help="how often --wait reads a model (default: 5s; 0.25s with --emulate)",
    )
    batch.add_argument(
        "--strict", action="store_true", help="send nothing if any manifest row is invalid"
    )
    batch.add_argument(
        "--max-failures", type=_positive_int, metavar="N", help="halt after N failed items"
    )
    batch.add_argument(
        "--shard", metavar="K/N", help="run shard K of N (1-based), or 'auto' (Slurm, Kubernetes)"
    )
    batch.add_argument(
        "--grace",
        type=_duration,
        default=5.0,
        metavar="D",
        help="after Ctrl-C or SIGTERM, time for requests in flight (default: 5s)",
    )
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    batch.add_argument("-o", "--output", choices=("text", "json"), default="text")
    _add_connection(batch)

    report = commands.add_parser(
        "report",
        help="summarise one or more reports (merged, for sharded runs)",
        description="Summarise batch reports: the last record of each item, merged across "
        "the reports given (one per shard, say).",
        epilog="examples:\n"
        "  fwprep report models.csv.report.jsonl\n"
        "  fwprep report shard-*.jsonl -o json\n\n"
        "exit codes:\n"
        "  0    every item ended ok, skipped or duplicate\n"
        "  1    some item failed, was invalid, or never finished\n"
        "  2    a report cannot be read\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("reports", nargs="+", metavar="REPORT")
    report.add_argument("-o", "--output", choices=("text", "json"), default="text")

    emulator = commands.add_parser(
        "emulator",
        help="serve a local Fireworks emulator",
        description="Serve a local emulator of the Fireworks control plane until Ctrl-C.",
        epilog="examples:\n"
        "  fwprep emulator --port 8765\n"
        "  fwprep emulator --rpm 600 --retry-after --fault-rate 0.05 --seed 1\n\n"
        "Then point fwprep (or any client) at it:\n"
        "  export FIREWORKS_BASE_URL=http://127.0.0.1:8765 FIREWORKS_API_KEY=fw-emulator-key\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    emulator.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    emulator.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    emulator.add_argument("--api-key", help="the accepted key (default: fw-emulator-key)")
    emulator.add_argument("--rpm", type=_positive_float, help="account-wide requests/minute limit")
    emulator.add_argument("--burst", type=_positive_float, help="rate-limit bucket depth")
    emulator.add_argument(
        "--retry-after", action="store_true", help="send Retry-After with rate-limit 429s"
    )
    emulator.add_argument(
        "--prepare-delay",
        type=_duration,
        default=2.0,
        metavar="D",
        help="time until a prepared precision shows on the model (default: 2s)",
    )
    emulator.add_argument(
        "--latency-ms", type=_latency, metavar="MS", help="added latency: 20, or 10-50 (uniform)"
    )
    emulator.add_argument(
        "--fault-rate",
        type=_probability,
        default=0.0,
        metavar="P",
        help="chance of a transient fault, spread evenly over 500, 503, 429 and a reset",
    )
    emulator.add_argument("--stall-rate", type=_probability, default=0.0, metavar="P")
    emulator.add_argument("--stall-seconds", type=_positive_float, default=300.0, metavar="S")
    emulator.add_argument(
        "--error-format",
        choices=("google", "nested", "flat", "html", "empty"),
        default="google",
        help="shape of error bodies (default: google.rpc.Status JSON)",
    )
    emulator.add_argument("--seed", type=int, help="make faults and latency reproducible")
    return parser


@contextlib.contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """Send fwprep's log records to stderr for one command, then restore the logger.

    Restoring matters when ``main()`` is called in process (tests, notebooks).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("fwprep: %(levelname)s %(message)s"))
    log = logging.getLogger("fwprep")
    saved = (log.handlers[:], log.level, log.propagate)
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    log.propagate = False
    try:
        yield
    finally:
        log.handlers[:], level, log.propagate = saved
        log.setLevel(level)


def _say(message: str, stream: TextIO | None = None) -> None:
    print(f"fwprep: {message}", file=stream or sys.stderr, flush=True)


def _poll_interval(args: argparse.Namespace) -> float:
    if args.poll_interval is not None:
        return float(args.poll_interval)
    return 0.25 if args.emulate else 5.0


def _account(args: argparse.Namespace) -> str | None:
    """The account for bare ids: -a, else $FIREWORKS_ACCOUNT_ID, else the emulator's."""
    account: str | None = args.account_id or os.environ.get("FIREWORKS_ACCOUNT_ID")
    if not account and args.emulate:
        return EMULATE_ACCOUNT
    return account or None


@contextlib.asynccontextmanager
async def open_client(args: argparse.Namespace, **overrides: Any) -> AsyncIterator[FireworksClient]:
    """A client configured from the common connection options (and ``--emulate``)."""
    retry = RetryPolicy(max_attempts=args.retries + 1)
    if args.emulate:
        from fwprep.emulator import Emulator

        async with Emulator(prepare_delay=EMULATE_PREPARE_DELAY) as emu:
            _say(
                f"--emulate: talking to a local Fireworks emulator at {emu.base_url}; "
                "nothing is sent to Fireworks"
            )
            async with FireworksClient(
                emu.api_key,
                account_id=args.account_id
                or os.environ.get("FIREWORKS_ACCOUNT_ID")
                or EMULATE_ACCOUNT,
                base_url=emu.base_url,
                retry=retry,
                timeout=args.timeout,
                **overrides,
            ) as client:
                yield client
        return
    async with FireworksClient(
        args.api_key,
        account_id=_account(args),
        base_url=args.base_url,
        retry=retry,
        timeout=args.timeout,
        **overrides,
    ) as client:
        yield client


def _emit(output: str, text: str, data: dict[str, Any]) -> None:
    if output == "json":
        print(json.dumps(data, sort_keys=True))
    else:
        print(text)


def _error_json(error: BaseException) -> dict[str, Any]:
    return {
        "type": type(error).__name__,
        "code": getattr(error, "code", None),
        "message": str(error),
    }


async def _cmd_prepare(args: argparse.Namespace) -> int:
    if args.wait and args.precision is None:
        raise ConfigError("--wait needs a precision (-p) to wait for")
    item = PrepareItem(ModelRef.parse(args.model, _account(args)), args.precision, args.read_mask)
    if args.dry_run:
        body = {} if item.precision is None else {"precision": item.precision.value}
        if item.read_mask is not None:
            body["readMask"] = item.read_mask
        _emit(
            args.output,
            f"would send: POST /v1/{item.model}:prepare {json.dumps(body)}",
            {"dry_run": True, "model": item.model.name, "body": body},
        )
        return EXIT_OK
    async with open_client(args, max_concurrency=1) as client:
        ref = item.model
        precision = item.precision
        result: dict[str, Any] = {"model": ref.name, "precision": precision and precision.value}
        try:
            outcome = await client.prepare_model(ref, precision, read_mask=args.read_mask)
        except FwprepError as exc:
            result.update(status="failed", error=_error_json(exc))
            _emit(args.output, f"{ref}: prepare failed: {exc}", result)
            return EXIT_FAILED
        what = precision.value if precision else "the default precision"
        result.update(
            status="ok", attempts=outcome.attempts, http_status=outcome.http_status, ready=None
        )
        if not args.wait:
            _emit(
                args.output,
                f"{ref}: preparation for {what} started "
                f"(HTTP {outcome.http_status}, {_plural(outcome.attempts, 'attempt')})",
                result,
            )
            return EXIT_OK
        if args.output == "text":
            _say(f"{ref}: preparation for {what} started; waiting for it to finish")
        assert precision is not None
        try:
            await client.wait_until_prepared(
                ref, precision, timeout=args.wait_timeout, poll_interval=_poll_interval(args)
            )
        except FwprepError as exc:
            result.update(status="failed", ready=False, error=_error_json(exc))
            _emit(args.output, f"{ref}: {exc}", result)
            return EXIT_FAILED
        result["ready"] = True
        _emit(args.output, f"{ref}: {what} is ready", result)
        return EXIT_OK


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


async def _cmd_emulator(args: argparse.Namespace) -> int:
    from fwprep.emulator import Emulator, EmulatorConfig, Faults

    latency, latency_max = args.latency_ms or (0.0, None)
    share = args.fault_rate / 4
    faults = Faults(
        error_500=share,
        error_503=share,
        throttle_429=share,
        reset=share,
        stall=args.stall_rate,
        stall_seconds=args.stall_seconds,
        latency_ms=latency,
        latency_max_ms=latency_max,
    )
    config = EmulatorConfig(
        api_keys=(str(args.api_key or "fw-emulator-key"),),
        prepare_delay=args.prepare_delay,
        rpm=args.rpm,
        burst=args.burst,
        retry_after=args.retry_after,
        error_format=args.error_format,
        faults=faults,
        seed=args.seed,
    )
    emulator = Emulator(config, host=args.host, port=args.port)
    try:
        await emulator.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    try:
        print(f"fwprep emulator serving on {emulator.base_url} (Ctrl-C stops it)", flush=True)
        print(
            f"export FIREWORKS_BASE_URL={emulator.base_url} FIREWORKS_API_KEY={emulator.api_key}",
            flush=True,
        )
        await asyncio.Event().wait()
    finally:
        await emulator.stop()
    return EXIT_OK


def _spool_stdin(paths: list[str]) -> tuple[list[str], list[str]]:
    """Copy standard input to a temporary file so it can be read twice; return paths, temps."""
    if "-" not in paths:
        return paths, []
    with tempfile.NamedTemporaryFile("wb", suffix=".stdin", delete=False) as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool)
    return [spool.name if p == "-" else p for p in paths], [spool.name]


async def _cmd_batch(args: argparse.Namespace) -> int:
    shard = Shard.parse(args.shard) if args.shard else None
    report_path = Path(args.report) if args.report else default_report_path(args.manifests)
    paths, temporary = _spool_stdin(list(args.manifests)) if args.strict else (args.manifests, [])
    try:
        with open_manifests(paths, args.format, _account(args)) as manifests:
            if args.dry_run:
                return await _dry_run(args, manifests, shard, report_path)
            if args.strict and not _strict_check(paths, args):
                return EXIT_USAGE
            return await _run_batch(args, manifests, shard, report_path, paths)
    finally:
        for name in temporary:
            os.unlink(name)


def _strict_check(paths: list[str], args: argparse.Namespace) -> bool:
    """Read every row first; print the invalid ones. True when there are none."""
    bad = 0
    with open_manifests(paths, args.format, _account(args)) as manifests:
        for entry in chain_entries(manifests):
            if isinstance(entry, InvalidRow):
                bad += 1
                _say(str(entry))
    if bad:
        _say(f"--strict: {_plural(bad, 'invalid row')}; nothing was sent")
    return bad == 0


def _done_keys(args: argparse.Namespace, report_path: Path) -> frozenset[str]:
    if not args.resume or not report_path.exists():
        return frozenset()
    contents = read_report([report_path])
    for problem in contents.bad_lines[:10]:
        _say(f"warning: {problem}")
    done = contents.done_keys()
    _say(f"--resume: {report_path} has {_plural(len(done), 'item')} done already")
    return done


async def _dry_run(
    args: argparse.Namespace, manifests: list[Manifest], shard: Shard | None, report_path: Path
) -> int:
    runner = BatchRunner(None, done=_done_keys(args, report_path), shard=shard)
    plan = await runner.plan(chain_entries(manifests))
    for problem in plan.invalid:
        _say(problem)
    data = {
        "dry_run": True,
        "to_send": plan.to_send,
        "per_precision": dict(plan.per_precision),
        "duplicates": plan.duplicates,
        "invalid": len(plan.invalid),
        "already_done": plan.already_done,
        "shard": str(shard) if shard else None,
        "error": plan.read_error,
    }
    if args.output == "json":
        print(json.dumps(data, sort_keys=True))
    else:
        where = f" (shard {shard})" if shard else ""
        print(f"would prepare {_plural(plan.to_send, 'item')}{where}; nothing was sent")
        for precision, count in sorted(plan.per_precision.items()):
            print(f"  {count:>8}  {precision}")
        for label, count in (
            ("duplicates (would run once)", plan.duplicates),
            ("invalid rows", len(plan.invalid)),
            ("already done (--resume)", plan.already_done),
        ):
            if count:
                print(f"  {count:>8}  {label}")
    if plan.read_error:
        _say(f"error: {plan.read_error}")
        return EXIT_USAGE
    return EXIT_FAILED if plan.invalid else EXIT_OK


async def _run_batch(
    args: argparse.Namespace,
    manifests: list[Manifest],
    shard: Shard | None,
    report_path: Path,
    paths: list[str],
) -> int:
    done = _done_keys(args, report_path)
    writer = ReportWriter(report_path)
    try:
        total = None
        if not args.quiet and sys.stderr.isatty() and "-" not in paths:
            total = await _count(paths, args, shard, done)
        progress = Progress(total, quiet=args.quiet)

        def on_record(record: Record) -> None:
            if record.status == "invalid" and record.error is not None and not args.quiet:
                _say(record.error.message)
            progress(record)

        async with open_client(
            args, max_concurrency=args.concurrency, max_rps=args.max_rps
        ) as client:
            runner = BatchRunner(
                client,
                report=writer,
                done=done,
                check=args.check,
                wait=args.wait,
                wait_timeout=args.wait_timeout,
                poll_interval=_poll_interval(args),
                max_failures=args.max_failures,
                shard=shard,
                concurrency=args.concurrency,
                grace=args.grace,
                on_record=on_record,
            )
            with _signals(runner, args.grace):
                summary = await runner.run(chain_entries(manifests))
        progress.close()
    finally:
        writer.close()
    if args.output == "json":
        print(json.dumps(summary.to_json(), sort_keys=True))
    else:
        for line in summary.lines():
            _say(line)
    return summary.exit_code


async def _count(
    paths: list[str], args: argparse.Namespace, shard: Shard | None, done: frozenset[str]
) -> int:
    """How many records the run will write: for the progress bar's total."""
    with open_manifests(paths, args.format, _account(args)) as manifests:
        plan = await BatchRunner(None, done=done, shard=shard).plan(chain_entries(manifests))
    return plan.to_send + plan.duplicates + len(plan.invalid)


@contextlib.contextmanager
def _signals(runner: BatchRunner, grace: float) -> Iterator[None]:
    """First SIGINT/SIGTERM: a graceful stop. Second: exit at once (the report is consistent)."""
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        if runner.summary.interrupted is not None:
            _say(f"{name} again: exiting now")
            os._exit(EXIT_SIGINT if name == "SIGINT" else EXIT_SIGTERM)
        _say(
            f"{name}: starting no new items; requests in flight get {grace:g} s to finish "
            "(press Ctrl-C again to quit at once)"
        )
        runner.stop(name)

    installed = []
    for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, name)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _cmd_report(args: argparse.Namespace) -> int:
    contents = read_report(args.reports)
    for problem in contents.bad_lines[:20]:
        _say(f"warning: {problem}")
    counts = contents.counts()
    errors: Counter[tuple[str, str]] = Counter(
        (r.error.type, r.error.message)
        for r in contents.last.values()
        if r.status == "failed" and r.error is not None
    )
    unfinished = [r for r in contents.last.values() if r.status in ("started", "interrupted")]
    complete = not (counts["failed"] or counts["invalid"] or unfinished)
    if args.output == "json":
        data = {
            "items": len(contents.last),
            "counts": dict(counts),
            "top_errors": [
                {"type": kind, "message": message, "count": n}
                for (kind, message), n in errors.most_common(5)
            ],
            "unreadable_lines": len(contents.bad_lines),
            "complete": complete,
        }
        print(json.dumps(data, sort_keys=True))
    else:
        parts = ", ".join(f"{n} {status}" for status, n in counts.most_common())
        items = _plural(len(contents.last), "item")
        print(f"{items} in {_plural(len(args.reports), 'report')}: {parts}")
        for (kind, message), n in errors.most_common(5):
            print(f"  {n} x {kind}: {message}")
        if unfinished:
            print(f"  {len(unfinished)} never finished (started or interrupted): run with --resume")
    return EXIT_OK if complete else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fwprep`` command line; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler = {
        "prepare": _cmd_prepare,
        "batch": _cmd_batch,
        "report": _cmd_report,
        "emulator": _cmd_emulator,
    }[args.command]
    try:
        with _logging(getattr(args, "verbose", False)):
            return asyncio.run(handler(args))
    except (ConfigError, InputError, ReportError) as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        if args.command == "emulator":
            _say("emulator stopped")
            return EXIT_OK
        _say("interrupted")
        return EXIT_SIGINT


if __name__ == "__main__":
    sys.exit(main())
