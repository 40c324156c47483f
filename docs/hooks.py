"""MkDocs hooks: pages made at build time from what they describe, so that they cannot drift.

- ``cli.md``: every command's ``--help``, from the parsers (``fwprep.cli._reference``);
- ``benchmarks.md``: ``benchmarks/results/RESULTS.md`` as the last run wrote it, and each other
  results table as a page of its own under ``benchmarks/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CLI_MARK = "<!-- fwprep-cli-reference -->"
RESULTS_MARK = "<!-- fwprep-benchmark-results -->"


def on_files(files: Files, config: Any) -> Files:
    """Add each results table but RESULTS.md as ``benchmarks/<name>.md``."""
    for table in sorted(RESULTS.glob("*.md")):
        if table.name != "RESULTS.md":
            files.append(
                File.generated(config, f"benchmarks/{table.name}", content=table.read_text())
            )
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Fill the marks of the command-line and benchmark pages."""
    if CLI_MARK in markdown:
        from fwprep.cli._reference import markdown as cli_reference

        markdown = markdown.replace(CLI_MARK, cli_reference())
    if RESULTS_MARK in markdown:
        text = (RESULTS / "RESULTS.md").read_text()
        body = text.split("\n", 1)[1] if text.startswith("# ") else text  # the page has its title
        markdown = markdown.replace(RESULTS_MARK, body)
    return markdown
