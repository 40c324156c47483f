"""The Python examples of the README and the docs: they compile, their ``fwprep.`` names exist, they run."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

import fwprep

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [
    textwrap.dedent(block)
    for page in DOCS
    for block in re.findall(r"```python\n(.*?)\n *```", page.read_text(), flags=re.DOTALL)
]


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_every_fwprep_name_in_a_readme_example_exists(block: str) -> None:
    tree = ast.parse(block)  # top-level await parses; it is compiled with the flag below
    compile(block, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain: list[str] = []
        current: ast.expr = node
        while isinstance(current, ast.Attribute):
            chain.insert(0, current.attr)
            current = current.value
        if not (isinstance(current, ast.Name) and current.id == "fwprep"):
            continue
        value: object = fwprep
        for part in chain:
            assert hasattr(value, part), f"fwprep.{'.'.join(chain)}: no {part!r}"
            value = getattr(value, part)


def prose(page: Path) -> str:
    """A page without its fenced code blocks (a shell line's ``fwprep.fish`` is a file name)."""
    return re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)


NAMES = sorted(
    {
        name
        for page in DOCS
        for name in re.findall(r"`[^`\n]*?\bfwprep\.([A-Za-z_][\w.]*)", prose(page))
    }
)


@pytest.mark.parametrize("dotted", NAMES)
def test_every_fwprep_name_in_the_readme_prose_exists(dotted: str) -> None:
    value: object = fwprep
    for part in dotted.rstrip(".").split("."):
        assert hasattr(value, part), f"fwprep.{dotted}: no {part!r}"
        value = getattr(value, part)


async def test_the_readme_python_examples_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each block runs against an emulator, given only what its prose says it assumes."""
    from fwprep.emulator import Emulator

    (tmp_path / "models.csv").write_text("model,precision\nft-1,fp8\nft-2,bf16\n")
    monkeypatch.chdir(tmp_path)
    async with Emulator() as emu:
        monkeypatch.setenv("FIREWORKS_API_KEY", emu.api_key)
        monkeypatch.setenv("FIREWORKS_BASE_URL", emu.base_url)
        monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", "acme")
        async with fwprep.FireworksClient() as client:
            for block in BLOCKS:
                namespace = {
                    "items": [("accounts/acme/models/ft-3", "fp8")],  # "items: ... pairs"
                    "client": client,  # the aclosing example continues the client's block
                    "run_my_service": lambda: None,
                }
                code = compile(block, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                result = eval(code, namespace)
                if result is not None:
                    await result
        assert emu.stats.prepare_successes["accounts/acme/models/ft-1@FP8"] == 1  # run_batch
        assert emu.stats.prepare_successes["accounts/acme/models/ft-3@FP8"] >= 1  # prepare_many


def test_no_example_installs_fwprep_by_name_from_a_package_index() -> None:
    # No package index publishes fwprep for this project: whoever registers the name first
    # would run code in every job that installs it by name. Jobs use the image the
    # Containerfile builds, or a wheel built from a checkout.
    root = README.parent
    texts = [README, root / "Containerfile", *sorted((root / "batch_examples").iterdir())]
    by_name = re.compile(r"pip3?\s+install\s+(?:-{1,2}[\w-]+\s+)*['\"]?fwprep\b(?![-\w./])")
    for path in texts:
        found = by_name.search(path.read_text())
        assert found is None, f"{path.name}: {found.group(0) if found else ''}"
    assert by_name.search("pip install --quiet fwprep &&") is not None
    assert by_name.search("pip install dist/fwprep-0.1.0-py3-none-any.whl") is None
