"""The ``fwprep`` command line: one module a command, each with its parser beside its handler."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence

from fwprep._version import __version__
from fwprep.batch.report import ReportError
from fwprep.cli import batch, completion, emulator, models, prepare, report
from fwprep.cli._common import (
    COMMAND_EXIT_CODES,
    ENVIRONMENT,
    EXIT_CODES,
    Parser,
    logging_to_stderr,
    parse_duration,
    say,
)
from fwprep.errors import ConfigError, InputError
from fwprep.exit_codes import ExitCode

__all__ = ["EXIT_CODES", "build_parser", "main", "parse_duration"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``fwprep`` command."""
    parser = Parser(
        prog="fwprep",
        description="Prepare Fireworks AI models for deployment precisions, one or in bulk.",
        epilog=COMMAND_EXIT_CODES + "\n" + ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fwprep {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in (prepare, batch, models, report, emulator, completion):
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fwprep`` command line; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        with logging_to_stderr(getattr(args, "verbose", False)):
            exit_code: int = asyncio.run(args.handler(args))
            if sys.stdout is not None:
                sys.stdout.flush()  # a full disk shows here, not at the interpreter's exit
            return exit_code
    except (ConfigError, InputError, ReportError) as exc:
        say(f"error: {exc}")
        return ExitCode.USAGE
    except BrokenPipeError:
        _discard_output()  # the reader went away (| head): stop quietly, as shell tools do
        return ExitCode.OK
    except OSError as exc:  # every file fwprep reads or writes says its own errors: the output
        _discard_output()
        say(f"error: cannot write the output: {exc.strerror or exc}")
        return ExitCode.FAILED
    except KeyboardInterrupt:
        if args.command == "emulator":
            say("emulator stopped")
            return ExitCode.OK
        say("interrupted")
        return ExitCode.SIGINT


def _discard_output() -> None:
    """Point standard output at the null device, for what could not be written.

    What is still buffered goes there, so that the interpreter's last flush
    at exit neither fails nor prints.
    """
    if sys.stdout is None:
        return
    with contextlib.suppress(OSError, ValueError):  # ValueError: no descriptor behind it
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


if __name__ == "__main__":
    sys.exit(main())
