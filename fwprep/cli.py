"""The ``fwprep`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any, NoReturn, TextIO

from fwprep._version import __version__
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1, got {text}")
    return value


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
        default=5.0,
        metavar="D",
        help="how often --wait reads the model (default: 5s)",
    )
    prepare.add_argument(
        "--dry-run", action="store_true", help="check the input and show the request; send nothing"
    )
    prepare.add_argument("-o", "--output", choices=("text", "json"), default="text")
    _add_connection(prepare)

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


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("fwprep: %(levelname)s %(message)s"))
    log = logging.getLogger("fwprep")
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    log.propagate = False


def _say(message: str, stream: TextIO | None = None) -> None:
    print(f"fwprep: {message}", file=stream or sys.stderr, flush=True)


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
                ref, precision, timeout=args.wait_timeout, poll_interval=args.poll_interval
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fwprep`` command line; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _setup_logging(getattr(args, "verbose", False))
    handler = {"prepare": _cmd_prepare, "emulator": _cmd_emulator}[args.command]
    try:
        return asyncio.run(handler(args))
    except (ConfigError, InputError) as exc:
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
