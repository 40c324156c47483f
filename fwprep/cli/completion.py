"""``fwprep completion``: a shell completion script, generated from the command's own parsers."""

from __future__ import annotations

import argparse
from typing import Any

from fwprep.cli._common import exit_codes
from fwprep.exit_codes import ExitCode

SHELLS = ("bash", "zsh", "fish")
"""The shells a completion script is made for."""


def add_parser(commands: Any) -> None:
    """Add ``completion`` to the subcommands."""
    parser = commands.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description="Print a completion script for every fwprep command and option, "
        "generated from fwprep's own parsers (so it matches this version).",
        epilog="install (once; open a new shell after):\n"
        "  bash  fwprep completion bash > ~/.local/share/bash-completion/completions/fwprep\n"
        '  zsh   fwprep completion zsh > "${fpath[1]}/_fwprep"\n'
        "  fish  fwprep completion fish > ~/.config/fish/completions/fwprep.fish\n\n"
        + exit_codes({ExitCode.OK: "the script was printed"}),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shell", choices=SHELLS)
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    """Print the script for ``args.shell``."""
    import shtab  # only this command needs it

    from fwprep.cli import build_parser

    print(shtab.complete(build_parser(), shell=args.shell), end="")
    return ExitCode.OK
