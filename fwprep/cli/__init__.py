"""The ``fwprep`` command line: one module a command, each with its parser beside its handler."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from fwprep._version import __version__
from fwprep.batch.report import ReportError
from fwprep.cli import batch, emulator, models, prepare, report
from fwprep.cli._common import (
    ENVIRONMENT,
    EXIT_CODES,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_USAGE,
    Parser,
    logging_to_stderr,
    parse_duration,
    say,
)
from fwprep.errors import ConfigError, InputError

__all__ = ["EXIT_CODES", "build_parser", "main", "parse_duration"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``fwprep`` command."""
    parser = Parser(
        prog="fwprep",
        description="Prepare Fireworks AI models for deployment precisions, one or in bulk.",
        epilog=EXIT_CODES + "\n" + ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fwprep {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in (prepare, batch, models, report, emulator):
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fwprep`` command line; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with logging_to_stderr(getattr(args, "verbose", False)):
            exit_code: int = asyncio.run(args.handler(args))
            return exit_code
    except (ConfigError, InputError, ReportError) as exc:
        say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        if args.command == "emulator":
            say("emulator stopped")
            return EXIT_OK
        say("interrupted")
        return EXIT_SIGINT


if __name__ == "__main__":
    sys.exit(main())
