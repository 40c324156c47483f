from __future__ import annotations

import inspect
import subprocess
import sys
import types

import attrs
import pytest

import fwprep
import fwprep.batch
import fwprep.emulator

# Aliases of typing constructs carry typing's __module__, so each module's are named here.
TYPE_ALIASES = {
    "fwprep": {"ItemLike"},
    "fwprep.emulator": {"ErrorFormat"},
    "fwprep.batch": {"ManifestEntry", "ManifestFormat", "RecordStatus"},
}
MODULES = [fwprep, fwprep.emulator, fwprep.batch]


def _public(module: types.ModuleType) -> set[str]:
    """Names the package defines or re-exports from its own subpackage, not what it imports."""
    for name in getattr(module, "__all__", ()):
        getattr(module, name)  # a name imported on first use is then in vars() too
    prefix = module.__name__
    names = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and (getattr(value, "__module__", None) or "").startswith(prefix)
    }
    if module is fwprep:
        names.add("__version__")
    return names | TYPE_ALIASES[prefix]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_all_lists_exactly_the_public_names(module: types.ModuleType) -> None:
    assert set(module.__all__) == _public(module)
    assert sorted(module.__all__, key=str.lower) == sorted(set(module.__all__), key=str.lower)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_public_name_has_a_docstring(module: types.ModuleType) -> None:
    missing = []
    for name in module.__all__:
        value = getattr(module, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if not inspect.getdoc(value):
            missing.append(name)
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if not attr.startswith("_") and callable(member) and not inspect.getdoc(member):
                    missing.append(f"{name}.{attr}")
    assert missing == []


def test_run_batch_and_iter_batch_take_the_same_arguments() -> None:
    # Both are the library's way into a batch; the CLI builds the same BatchOptions.
    run, each = inspect.signature(fwprep.run_batch), inspect.signature(fwprep.iter_batch)
    assert list(run.parameters.values()) == list(each.parameters.values())
    options = {field.name for field in attrs.fields(fwprep.BatchOptions)}
    assert options <= set(run.parameters)


def test_importing_fwprep_loads_the_client_and_not_the_batch_runner_or_the_emulator() -> None:
    # A fresh interpreter: what an application that awaits the client pays for.
    heavy = ("fwprep.batch", "fwprep.emulator", "fwprep.cli", "rich")
    code = (
        "import sys, fwprep; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich' "
        f"or '.'.join(m.split('.')[:2]) in {heavy!r}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
    used = "import fwprep; fwprep.run_batch; fwprep.emulator.Emulator; print('ok')"
    assert (
        subprocess.run([sys.executable, "-c", used], capture_output=True, text=True).stdout
        == "ok\n"
    )


def test_the_command_line_help_loads_no_server() -> None:
    code = (
        "import sys; from fwprep.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith(('aiohttp.web', 'fwprep.emulator.s'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
