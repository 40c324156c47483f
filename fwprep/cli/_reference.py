"""The command line's reference in Markdown, made from the parsers themselves.

The docs site's "command line" page is built from :func:`markdown`, so it
lists every command and option of this version and cannot drift from them.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["commands", "markdown"]

WIDTH = 100
"""The columns help is wrapped at, whatever the terminal that builds the page."""


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each subcommand's parser, by name, in the order ``fwprep --help`` lists them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def markdown() -> str:
    """``fwprep --help`` and each command's ``--help``, a section each, as Markdown."""
    from fwprep.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        parser = build_parser()
        parts = ["## fwprep", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name, command in commands(parser).items():
            parts += [f"## fwprep {name}", "", "```text", command.format_help().rstrip(), "```", ""]
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(parts)
