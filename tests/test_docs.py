"""The docs site against what it describes: commands, options, statuses, fields and public names."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import attrs
import pytest

import fwprep
from fwprep.batch.report import ErrorInfo, Record
from fwprep.batch.status import STATUSES
from fwprep.cli import build_parser
from fwprep.cli._reference import commands, markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_cli_page_has_every_command_and_option() -> None:
    page = markdown()
    parser = build_parser()
    for name, command in commands(parser).items():
        assert f"## fwprep {name}\n" in page
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for flag in action.option_strings:
                assert flag in page, f"fwprep {name} {flag}"
    assert "<!-- fwprep-cli-reference -->" in (DOCS / "cli.md").read_text()


def test_the_cli_page_is_wrapped_the_same_on_any_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = markdown()
    monkeypatch.setenv("COLUMNS", "40")
    assert markdown() == before
    assert os.environ["COLUMNS"] == "40"  # and the terminal's width is left as it was


def test_the_report_format_names_every_status_and_field() -> None:
    page = (DOCS / "manifests.md").read_text()
    for status in STATUSES:
        assert f"| `{status}` |" in page, status
    for field in attrs.fields(Record):
        assert f"`{field.name}`" in page, field.name
    for field in attrs.fields(ErrorInfo):
        assert f"`{field.name}`" in page, field.name


def test_the_reference_documents_every_public_name() -> None:
    page = (DOCS / "reference.md").read_text()
    shown = set(re.findall(r"^::: fwprep\.(\w+)$", page, flags=re.MULTILINE))
    modules = {"errors": fwprep.errors, "credentials": fwprep.credentials}
    covered = shown | {n for m, module in modules.items() if m in shown for n in module.__all__}
    missing = {name for name in fwprep.__all__ if not name.startswith("_")} - covered
    assert missing == set()


def test_every_page_is_in_the_navigation() -> None:
    nav = (DOCS.parent / "mkdocs.yml").read_text()
    for page in DOCS.glob("*.md"):
        assert f": {page.name}" in nav, page.name
