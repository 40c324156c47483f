"""``fwprep prepare``: prepare one model for a precision, optionally waiting for it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fwprep.cli._common import (
    ENVIRONMENT,
    account,
    add_connection,
    add_poll_interval,
    emit,
    exit_codes,
    open_client,
    plural,
    poll_interval,
    positive_duration,
    precision,
    say,
    show_duration,
)
from fwprep.client import DEFAULT_WAIT_TIMEOUT
from fwprep.errors import ConfigError, FwprepError
from fwprep.exit_codes import ExitCode
from fwprep.models import PrepareItem
from fwprep.names import ModelRef

_EXIT_CODES = exit_codes(
    {
        ExitCode.OK: "the prepare was accepted (with --wait: the precision is ready)",
        ExitCode.FAILED: "the prepare was refused or failed, or the preparation failed or "
        "timed out",
        ExitCode.USAGE: "usage or configuration error, or an invalid model or precision: "
        "nothing was sent",
        ExitCode.HALTED: "the API refused the key (401/403)",
        ExitCode.SIGINT: "interrupted by Ctrl-C (SIGINT)",
    }
)


def add_parser(commands: Any) -> None:
    """Add ``prepare`` to the subcommands."""
    parser = commands.add_parser(
        "prepare",
        help="prepare one model for a precision",
        description="Prepare one model for a precision (like firectl prepare-model).",
        epilog="examples:\n"
        "  fwprep prepare accounts/acme/models/ft-7 -p fp8 --wait\n"
        "  fwprep prepare ft-7 -a acme -p fp8 -o json\n"
        "  fwprep prepare my-model -p fp8 --wait --emulate\n\n" + _EXIT_CODES + "\n" + ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="accounts/ACCOUNT/models/MODEL, or a bare model id")
    parser.add_argument(
        "-p",
        "--precision",
        type=precision,
        help="FP8, fp8-mm, BF16, ... (default: leave it to the API)",
    )
    parser.add_argument("--read-mask", help="the request's readMask field")
    parser.add_argument(
        "--wait", action="store_true", help="wait until the precision shows on the model"
    )
    parser.add_argument(
        "--wait-timeout",
        type=positive_duration,
        default=DEFAULT_WAIT_TIMEOUT,
        metavar="D",
        help="how long --wait waits: 90s, 30m, 1h "
        f"(default: {show_duration(DEFAULT_WAIT_TIMEOUT)})",
    )
    add_poll_interval(parser, "--wait reads the model")
    parser.add_argument(
        "--dry-run", action="store_true", help="check the input and show the request; send nothing"
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (default), or one JSON object on stdout, failures included",
    )
    add_connection(parser)
    parser.set_defaults(handler=run)


def _error_json(error: BaseException) -> dict[str, Any]:
    return {
        "type": type(error).__name__,
        "code": getattr(error, "code", None),
        "message": str(error),
    }


def _failed(args: argparse.Namespace, text: str, result: dict[str, Any], error: Exception) -> int:
    """Report a failure (stderr as text, stdout as JSON); its exit code."""
    result.update(status="failed", error=_error_json(error))
    if args.output == "json":
        print(json.dumps(result, sort_keys=True))
    else:
        say(text)
    halts = isinstance(error, FwprepError) and error.halts  # every later request would fail too
    return ExitCode.HALTED if halts else ExitCode.FAILED


def _dry_run(args: argparse.Namespace, item: PrepareItem) -> int:
    body = {} if item.precision is None else {"precision": item.precision.value}
    if item.read_mask is not None:
        body["readMask"] = item.read_mask
    emit(
        args.output,
        f"would send: POST /v1/{item.model}:prepare {json.dumps(body)}",
        {"dry_run": True, "model": item.model.name, "body": body},
    )
    return ExitCode.OK


async def run(args: argparse.Namespace) -> int:
    """Prepare the model; with ``--wait``, wait until the precision shows on it."""
    if args.wait and args.precision is None:
        raise ConfigError("--wait needs a precision (-p) to wait for")
    item = PrepareItem(ModelRef.parse(args.model, account(args)), args.precision, args.read_mask)
    if args.dry_run:
        return _dry_run(args, item)
    async with open_client(args, max_concurrency=1) as client:
        ref, wanted = item.model, item.precision
        result: dict[str, Any] = {"model": ref.name, "precision": wanted and wanted.value}
        try:
            outcome = await client.prepare_model(ref, wanted, read_mask=args.read_mask)
        except FwprepError as exc:
            return _failed(args, f"{ref}: prepare failed: {exc}", result, exc)
        what = wanted.value if wanted else "the default precision"
        result.update(
            status="ok", attempts=outcome.attempts, http_status=outcome.http_status, ready=None
        )
        if not args.wait:
            emit(
                args.output,
                f"{ref}: preparation for {what} started "
                f"(HTTP {outcome.http_status}, {plural(outcome.attempts, 'attempt')})",
                result,
            )
            return ExitCode.OK
        if args.output == "text":
            say(f"{ref}: preparation for {what} started; waiting for it to finish")
        assert wanted is not None
        try:
            await client.wait_until_prepared(
                ref, wanted, timeout=args.wait_timeout, poll_interval=poll_interval(args)
            )
        except FwprepError as exc:
            result["ready"] = False
            return _failed(args, f"{ref}: {exc}", result, exc)
        result["ready"] = True
        emit(args.output, f"{ref}: {what} is ready", result)
        return ExitCode.OK
